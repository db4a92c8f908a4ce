"""Memory beside the features: a recurrent policy whose heads read the extractor's features
next to the LSTM's output (``agent.recurrent.skip_connection``).

sb3-contrib's ``RecurrentPPO`` puts its LSTM *between* the extractor and the heads: the heads see
only the LSTM's output, so a policy pretrained feed-forward (or fine-tuned so) cannot keep acting
while the memory is learned, and the features reach the heads only through a freshly initialized
LSTM. With ``skip_connection`` the heads read ``concat(features, lstm(features))`` instead, an
LSTM *beside* the feed-forward path. A feed-forward BC head loads into the feature columns of the
heads' first layer with zeros in the memory columns (:func:`load_feedforward_head`), so the
fine-tuned policy starts as exactly the pretrained feed-forward policy and PPO grows the memory's
weight only where it pays (e.g. against Navigation's search loops: revisiting objects it has
already rejected, BENCHMARKS.md).

Only module swaps, no copied algorithm code: :class:`SkipLSTM` is an ``nn.LSTM`` whose output is
its input and its output side by side, so sb3-contrib's ``_process_sequence``, rollout buffer
and update run unchanged; :class:`SkipLstmPolicy` swaps it in and widens the heads' input.
Needs sb3-contrib (``pip install "mmrl[contrib]"``).
"""

from __future__ import annotations

from typing import Any

import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentMultiInputActorCriticPolicy
from torch import nn

__all__ = [
    "SkipLSTM",
    "SkipLinear",
    "SkipLstmPolicy",
    "drop_memory",
    "load_feedforward_head",
    "memory_width",
]


class SkipLSTM(nn.LSTM):
    """An ``nn.LSTM`` whose output is ``concat(input, lstm_output)`` along the last axis.

    Shapes as ``nn.LSTM`` (``batch_first=False``): input ``(T, B, F)`` -> output
    ``(T, B, F + H)`` float32, with the same ``(h, c)`` states ``(layers, B, H)``.
    """

    @property
    def output_size(self) -> int:
        """Width of the output: the input's plus the hidden state's."""
        return self.input_size + self.hidden_size

    def forward(self, input: th.Tensor, hx: Any = None) -> tuple[th.Tensor, Any]:
        output, states = super().forward(input, hx)
        return th.cat([input, output], dim=-1), states


def memory_width(lstm: nn.LSTM) -> int:
    """Width of what a policy's LSTM hands its heads: the hidden size, or for a
    :class:`SkipLSTM` the features' width plus it."""
    return lstm.output_size if isinstance(lstm, SkipLSTM) else lstm.hidden_size


class SkipLinear(nn.Linear):
    """The critic's feed-forward stand-in for an LSTM (no critic LSTM, none shared):
    ``(B, F) -> (B, F + H)``, the features beside a linear map of them, so the critic's heads
    have the actor's input width."""

    def forward(self, input: th.Tensor) -> th.Tensor:
        return th.cat([input, super().forward(input)], dim=-1)


class SkipLstmPolicy(RecurrentMultiInputActorCriticPolicy):
    """sb3-contrib's ``MultiInputLstmPolicy`` with the heads reading the features beside the
    LSTM's output (module docstring). Takes the same arguments.

    The actor LSTM (and the critic's, when it has its own) is a :class:`SkipLSTM`; a critic
    without an LSTM gets a :class:`SkipLinear`; with ``shared_lstm`` the critic reads the
    actor's output detached, as in sb3-contrib (so the value loss then trains neither the
    LSTM nor the extractor).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        hidden, layers = self.lstm_actor.hidden_size, self.lstm_actor.num_layers
        self.lstm_actor = SkipLSTM(self.features_dim, hidden, num_layers=layers, **self.lstm_kwargs)
        if self.lstm_critic is not None:
            self.lstm_critic = SkipLSTM(
                self.features_dim, hidden, num_layers=layers, **self.lstm_kwargs
            )
        if self.critic is not None:
            self.critic = SkipLinear(self.features_dim, hidden)
        # The parent built its optimizer over the modules just replaced.
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=self.optimizer.param_groups[0]["lr"], **self.optimizer_kwargs
        )

    def _build_mlp_extractor(self) -> None:
        # Called from the parent's constructor, after ``features_dim`` is known and before the
        # LSTMs exist: the heads read the features and the LSTM's ``lstm_output_dim`` units.
        self.lstm_output_dim = self.features_dim + self.lstm_output_dim
        super()._build_mlp_extractor()


def _reading_layer(policy: SkipLstmPolicy) -> tuple[str, str, nn.Linear]:
    """The actor's layer that reads the heads' input (features and memory): ``policy_net``'s
    first linear layer, or ``action_net`` when ``pi`` is empty; as ``(part, weight key in the
    part's state, layer)``."""
    for name, module in policy.mlp_extractor.policy_net.named_children():
        if isinstance(module, nn.Linear):
            return "policy_net", f"{name}.weight", module
    return "action_net", "weight", policy.action_net


def load_feedforward_head(policy: SkipLstmPolicy, head: dict[str, Any]) -> None:
    """Loads a feed-forward BC head (``policy_net`` and ``action_net`` states) into a skip
    policy: the weights of the layer reading the heads' input go to its feature columns and
    its memory columns are zeroed, so the policy acts exactly as the feed-forward one until
    training moves them.

    Raises:
        RuntimeError: The state does not fit (torch's shape or key message).
        KeyError: The head lacks a part.
    """
    states = {"policy_net": dict(head["policy_net"]), "action_net": dict(head["action_net"])}
    part, key, layer = _reading_layer(policy)
    weight = states[part][key]
    if tuple(weight.shape) != (layer.out_features, policy.features_dim):
        raise RuntimeError(
            f"{part}.{key}: the checkpoint's {tuple(weight.shape)} does not fit "
            f"{layer.out_features} units reading {policy.features_dim} features"
        )
    widened = th.zeros_like(layer.weight)
    widened[:, : policy.features_dim] = weight.to(widened.device)
    states[part][key] = widened
    policy.mlp_extractor.policy_net.load_state_dict(states["policy_net"])
    policy.action_net.load_state_dict(states["action_net"])


def drop_memory(policy: SkipLstmPolicy) -> None:
    """Zeroes, in place, the weights through which the actor's heads read the LSTM's output,
    so the policy acts from the features alone (whatever its LSTM state): the memory's
    ablation, as masking a sensor is a modality's. The critic is left as it is (it does
    not act).

    Raises:
        TypeError: ``policy`` is not a :class:`SkipLstmPolicy` (nothing to drop).
    """
    if not isinstance(policy, SkipLstmPolicy):
        raise TypeError(
            "only a policy with the LSTM beside its features (agent.recurrent.skip_connection) "
            "can act without its memory, got "
            + ("a policy with no network" if policy is None else type(policy).__name__)
        )
    _, _, layer = _reading_layer(policy)
    with th.no_grad():
        layer.weight[:, policy.features_dim :] = 0.0
