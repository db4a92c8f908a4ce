"""Expert guidance: an imitation loss on the states the agent itself visits.

mmrl's simulators have a scripted expert that acts from every copy's true state, so the
expert's action is known for each state a training rollout visits — including the states
behaviour cloning never saw, which is DAgger's remedy for compounding errors (Ross, Gordon
and Bagnell 2011). :class:`ExpertGuidanceCallback` records the expert's action for every
observation of a rollout and, after the algorithm's own update on that rollout, makes
``agent.guidance.epochs`` minibatch passes minimizing

* discrete actions: ``weight * -log pi(a_expert | s)`` (cross-entropy to the expert),
* continuous actions: ``weight * |mean(s) - a_expert|^2`` (the policy's mean; its log-std
  stays the algorithm's, as fitting it to a deterministic expert would end exploration),

with the weight falling linearly to 0 over ``decay_steps`` env steps (0: constant), as in
kickstarting (Schmitt et al. 2018). The RL objective then improves on the expert where its
rewards say so, while the guidance keeps the policy near the expert's behaviour.

With ``label_weight > 0`` the same pass also fits the simulator's privileged labels (lane
index, distance and bearing to the instruction's referent, ...) from the actor's features
(or, with ``label_input: memory``, from a recurrent actor's LSTM output),
through a small head of its own, as the ``labels`` objective of ``mmrl pretrain`` does
offline (auxiliary tasks, Jaderberg et al. 2017). The labels are those of the states the
rollout's observations show (read from the simulator after every step, not the pre-reset
``info["labels"]``). Why: an action loss says *what* to do, which teaches slowly *where* the
instruction's referent is; a direct target for it shapes the features that ground the
instruction in the camera (on Driving-v1 every fusion otherwise learned to ignore the colour
word of "follow the red car", BENCHMARKS.md). The label weight does not decay. The head and
its optimizer state are saved in the run's checkpoints, so a resumed run continues them.

For ``recurrent-ppo`` (sb3-contrib's ``RecurrentPPO``) the pass reads the actor LSTM's state
that the rollout recorded before each observation and runs the LSTM one step from it
(truncated backpropagation of length one): the imitation and label terms shape the encoders,
the LSTM's weights and the heads, while PPO's own update, which runs the LSTM over whole
sequences, teaches the LSTM what to remember. With ``sequences: true`` the pass instead runs
each minibatch of copies' whole rollouts through the LSTM from the state each began with and
backpropagates through them, so the guidance terms too teach what to remember (at about the
cost of one more PPO epoch: sb3-contrib steps the LSTM one time step at a time wherever a
sequence holds an episode start).

Why a separate pass instead of a term inside PPO's loss: SB3's ``PPO.train`` computes its
loss inside one long method, so adding a term would mean copying it; a pass after the update
leaves SB3's algorithms untouched, works for PPO and A2C alike, and keeps the next rollout
fully on-policy (it is collected after both updates). It shares the policy's optimizer (and
so its learning rate, gradient clipping and the encoder learning-rate hooks of
``mmrl.pretrain.finetune``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from torch import nn

from mmrl.config import GuidanceConfig
from mmrl.envs.vec_env import find_expert, find_labels
from mmrl.errors import ConfigError
from mmrl.pretrain.objectives import LabelSpec, infer_label_specs, label_head, label_loss


class ExpertGuidanceCallback(BaseCallback):
    """Adds the expert-imitation pass of :mod:`mmrl.guidance` to an on-policy algorithm.

    Args:
        guidance: The weight, its decay and the passes per rollout.
        batch_size: Minibatch size of the pass (the algorithm's).
        max_grad_norm: Gradient-norm clip of the pass (the algorithm's).

    Logs ``guidance/weight``, ``guidance/loss`` (the unweighted loss) and
    ``guidance/agreement`` (discrete: the fraction of states where the policy's greedy action
    is the expert's; continuous: minus the mean squared distance of the mean to it), averaged
    over the first pass, whose minibatches meet the policy the algorithm has just updated.
    With labels: ``guidance/label_loss`` and ``guidance/label_acc/<name>`` or
    ``guidance/label_nmse/<name>`` per label, as ``mmrl pretrain`` logs them.

    Raises:
        ConfigError: At the start of training, when the training env has no scripted expert
            or no labels (:func:`check_guidance` says so earlier, before a run folder is
            written).
    """

    def __init__(self, guidance: GuidanceConfig, batch_size: int, max_grad_norm: float) -> None:
        super().__init__()
        self.guidance = guidance
        self.batch_size = batch_size
        self.max_grad_norm = max_grad_norm
        self._expert: Any = None
        self._read_labels: Any = None
        # One record per observation of the rollout: (expert action or None, labels or None).
        self._records: list[tuple[np.ndarray | None, dict[str, np.ndarray] | None]] = []
        self._carried: tuple | None = None  # the record of the next rollout's first state
        self._pending: tuple[Any, np.ndarray | None, dict[str, np.ndarray] | None] | None = None
        self.label_specs: list[LabelSpec] = []
        self.label_head: nn.Module | None = None
        self._head_optimizer: th.optim.Optimizer | None = None
        self._restored: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any] | None:
        """The label head, its specs and optimizer state (``None`` before the first fit)."""
        if self.label_head is None:
            return None
        return {
            "label_specs": [vars(spec).copy() for spec in self.label_specs],
            "label_head": {k: v.cpu() for k, v in self.label_head.state_dict().items()},
            "head_optimizer": self._head_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restores :meth:`state_dict` (the head is rebuilt when training starts)."""
        self._restored = state

    def weight(self, step: int) -> float:
        """The guidance weight after ``step`` env steps."""
        g = self.guidance
        if g.decay_steps <= 0:
            return g.weight
        return g.weight * max(0.0, 1.0 - step / g.decay_steps)

    def _init_callback(self) -> None:
        if self.guidance.weight > 0:
            self._expert = _expert_of(self.training_env)
        if self.guidance.label_weight > 0:
            self._read_labels = _labels_of(self.training_env)
            if self._restored is not None:
                self._build_head([LabelSpec(**spec) for spec in self._restored["label_specs"]])
                self.label_head.load_state_dict(self._restored["label_head"])
                self._head_optimizer.load_state_dict(self._restored["head_optimizer"])
                self._restored = None

    def _record(self) -> tuple[np.ndarray | None, dict[str, np.ndarray] | None]:
        """The expert's action (while its weight is above 0: the expert is not asked once
        the decay has ended) and the labels of every copy's current state."""
        asked = self._expert is not None and self.weight(self.num_timesteps) > 0
        action = self._expert() if asked else None
        labels = self._read_labels() if self._read_labels is not None else None
        return action, labels

    def _on_rollout_start(self) -> None:
        self._fit_pending()
        # The env's state is that of the rollout's first observation (the model's _last_obs):
        # recorded after the previous rollout's last step, or read now on the first rollout.
        first = self._carried if self._carried is not None else self._record()
        self._records, self._carried = [first], None

    def _on_step(self) -> bool:
        # After each step the env holds the next observation's state (reset copies included).
        self._records.append(self._record())
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        n = buffer.buffer_size  # steps per copy; the last record belongs to the next rollout
        records = self._records[:n]
        self._carried = self._records[n] if len(self._records) > n else None
        # No actions for a rollout during which the decayed weight reached 0.
        asked = all(a is not None for a, _ in records)
        actions = np.stack([a for a, _ in records]) if asked else None
        labels = None
        if self._read_labels is not None:
            labels = {k: np.stack([lab[k] for _, lab in records]) for k in records[0][1]}
        obs = buffer.observations
        # Copied: the buffer is refilled (and flattened in place by some SB3 versions) before
        # the pass runs, after the algorithm's update.
        kept = {k: v.copy() for k, v in obs.items()} if isinstance(obs, dict) else obs.copy()
        self._pending = (kept, actions, labels, _actor_memory(buffer))

    def _on_training_end(self) -> None:
        self._fit_pending()

    def _fit_pending(self) -> None:
        if self._pending is None:
            return
        obs, actions, labels, memory = self._pending
        self._pending = None
        weight = self.weight(self.num_timesteps)
        self.logger.record("guidance/weight", weight)
        if weight <= 0:
            actions = None
        if actions is None and labels is None:
            return
        if labels is not None and self.label_head is None:
            self._build_head(_infer_specs(labels, self.guidance.labels))
        for key, value in self._fit(obs, actions, labels, weight, memory).items():
            self.logger.record(f"guidance/{key}", value)

    def _build_head(self, specs: list[LabelSpec]) -> None:
        policy = self.model.policy
        self.label_specs = specs
        width = policy.pi_features_extractor.features_dim
        if self.guidance.label_input == "memory":  # config checks: recurrent-ppo
            from mmrl.recurrent import memory_width

            width = memory_width(policy.lstm_actor)
        self.label_head = label_head(width, specs)
        self.label_head.to(policy.device)
        lr = policy.optimizer.param_groups[0]["lr"]
        self._head_optimizer = th.optim.Adam(self.label_head.parameters(), lr=lr)

    def _fit(
        self,
        obs: dict[str, np.ndarray] | np.ndarray,
        actions: np.ndarray | None,
        labels: dict[str, np.ndarray] | None,
        weight: float,
        memory: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> dict[str, float]:
        """The minibatch passes; returns the first pass's mean metrics.

        ``memory``: for a recurrent policy, the actor LSTM's hidden and cell states before
        each observation, ``(steps, n_envs, layers, hidden)`` float32 each, and the episode
        starts ``(steps, n_envs)``."""
        policy = self.model.policy
        device = policy.device
        discrete = isinstance(policy.action_space, spaces.Discrete)

        # With ``sequences`` each minibatch is a few copies' whole rollouts, run through the
        # LSTM from the state each began with; rows are then copy-major, so a copy's rollout
        # is a run of consecutive rows. Otherwise rows are step-major and drawn at random.
        sequences = memory is not None and self.guidance.sequences
        steps = _rows(obs) if sequences else 1

        def flat(v: np.ndarray) -> np.ndarray:
            if sequences:
                v = v.swapaxes(0, 1)
            return v.reshape(-1, *v.shape[2:])

        flat_obs = {k: flat(v) for k, v in obs.items()} if isinstance(obs, dict) else flat(obs)
        flat_actions = flat(actions) if actions is not None else None
        flat_labels = {k: flat(v) for k, v in labels.items()} if labels is not None else None
        flat_memory = tuple(flat(m) for m in memory) if memory is not None else None
        total = _rows(flat_obs)
        policy.set_training_mode(True)
        params = list(policy.parameters())
        if flat_labels is not None:
            self.label_head.train()
            params += list(self.label_head.parameters())
        metrics: dict[str, list[float]] = {}
        for epoch in range(self.guidance.epochs):
            for idx in _minibatches(total, self.batch_size, steps):
                batch = (
                    {k: th.as_tensor(v[idx], device=device) for k, v in flat_obs.items()}
                    if isinstance(flat_obs, dict)
                    else th.as_tensor(flat_obs[idx], device=device)
                )
                # SB3's get_distribution, keeping the actor's features for the label head.
                features = BasePolicy.extract_features(policy, batch, policy.pi_features_extractor)
                # The actor's input to its heads: the LSTM's output for a recurrent policy.
                actor_in = features
                if flat_memory is not None:  # whole runs, or one step from the recorded state
                    actor_in = _lstm_sequences(policy, features, flat_memory, idx, steps)
                terms: dict[str, th.Tensor] = {}
                seen: dict[str, float] = {}
                if flat_actions is not None:
                    latent = policy.mlp_extractor.forward_actor(actor_in)
                    dist = policy._get_action_dist_from_latent(latent)
                    target = th.as_tensor(flat_actions[idx], device=device)
                    if discrete:
                        target = target.long()
                        loss = -dist.log_prob(target).mean()
                        seen["agreement"] = float((dist.mode() == target).float().mean())
                    else:
                        loss = (dist.distribution.mean - target.float()).pow(2).sum(-1).mean()
                        seen["agreement"] = -float(loss.detach())
                    terms["loss"] = weight * loss
                    seen["loss"] = float(loss.detach())
                if flat_labels is not None:
                    values = {
                        spec.name: th.as_tensor(flat_labels[spec.name][idx], device=device)
                        for spec in self.label_specs
                    }
                    head_in = actor_in if self.guidance.label_input == "memory" else features
                    loss, label_metrics = label_loss(
                        self.label_specs, self.label_head(head_in), values
                    )
                    terms["label_loss"] = self.guidance.label_weight * loss
                    seen["label_loss"] = float(loss.detach())
                    seen.update(label_metrics)
                policy.optimizer.zero_grad()
                if self._head_optimizer is not None:
                    self._head_optimizer.zero_grad()
                sum(terms.values()).backward()
                th.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
                policy.optimizer.step()
                if flat_labels is not None:
                    self._head_optimizer.step()
                if epoch == 0:
                    for key, value in seen.items():
                        metrics.setdefault(key, []).append(value)
        policy.set_training_mode(False)
        return {key: float(np.mean(values)) for key, values in metrics.items()}


def _actor_memory(buffer: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A recurrent rollout buffer's actor LSTM states before each observation, as
    ``(steps, n_envs, layers, hidden)`` copies, and its episode starts; ``None`` for the
    feed-forward algorithms' buffers."""
    if not hasattr(buffer, "hidden_states_pi"):
        return None
    # sb3-contrib keeps them as (steps, layers, n_envs, hidden).
    return (
        buffer.hidden_states_pi.swapaxes(1, 2).copy(),
        buffer.cell_states_pi.swapaxes(1, 2).copy(),
        buffer.episode_starts.copy(),
    )


def _minibatches(total: int, batch_size: int, steps: int = 1) -> list[np.ndarray]:
    """Row indices of one pass's minibatches. ``steps == 1``: rows in random order,
    ``batch_size`` at a time. ``steps > 1``: rows are copy-major runs of ``steps`` (one
    copy's rollout each); whole runs in random order, as many per minibatch as
    ``batch_size`` holds (at least one), each run's rows in time order."""
    if steps == 1:
        order = th.randperm(total).numpy()
        return [order[i : i + batch_size] for i in range(0, total, batch_size)]
    runs = th.randperm(total // steps).numpy()
    per = max(1, batch_size // steps)
    offsets = np.arange(steps)
    return [
        (runs[i : i + per, None] * steps + offsets).reshape(-1) for i in range(0, len(runs), per)
    ]


def _lstm_sequences(
    policy: Any, features: th.Tensor, memory: tuple[np.ndarray, ...], idx: np.ndarray, steps: int
) -> th.Tensor:
    """The actor LSTM's outputs, ``(B, hidden)``: ``idx`` holds ``B / steps`` runs of
    ``steps`` rows in time order (one copy's rollout each); each run starts from the state
    recorded before its first row and is reset where an episode starts, as PPO's own update
    runs it (backpropagation through the whole run). ``steps == 1``: every row one step from
    its own recorded state."""
    device = features.device
    hidden, cell, starts = (th.as_tensor(m[idx], device=device) for m in memory)
    runs = len(idx) // steps
    first = [m.reshape(runs, steps, *m.shape[1:])[:, 0] for m in (hidden, cell)]
    states = tuple(m.transpose(0, 1).contiguous() for m in first)  # (layers, runs, hidden)
    latent, _ = policy._process_sequence(features, states, starts.float(), policy.lstm_actor)
    return latent


def _rows(obs: dict[str, np.ndarray] | np.ndarray) -> int:
    return len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)


def _infer_specs(labels: dict[str, np.ndarray], names: Any = ()) -> list[LabelSpec]:
    """Label specs from a rollout's labels (``{name: (steps, n_envs)}``), as ``mmrl
    pretrain`` infers them from a dataset; integer labels get the classes this rollout shows
    (a later value outside them is left out of the loss). ``names``: only these (empty:
    all). Regression labels are standardised with this rollout's mean and spread."""
    chosen = {k: v for k, v in labels.items() if not names or k in names}
    tensors = {k: th.as_tensor(np.ascontiguousarray(v).reshape(-1)) for k, v in chosen.items()}
    rows = th.arange(len(next(iter(tensors.values()))))
    return infer_label_specs(tensors, rows)


def _required(found: Any, field: str, what: str) -> Any:
    if found is None:
        raise ConfigError(
            f"agent.guidance.{field} > 0 needs an environment with {what} (mmrl's own "
            "Driving and Navigation envs); this one has none"
        )
    return found


def _expert_of(venv: Any) -> Any:
    return _required(find_expert(venv), "weight", "a scripted expert")


def _labels_of(venv: Any) -> Any:
    return _required(find_labels(venv), "label_weight", "privileged labels")


def check_guidance(config: Any, venv: Any) -> None:
    """Raises :class:`~mmrl.errors.ConfigError` when the run asks for guidance and its
    training env ``venv`` has no scripted expert, or for labels it does not have."""
    if config.agent.guidance.weight > 0:
        _expert_of(venv)
    if config.agent.guidance.label_weight > 0:
        available = _labels_of(venv)()
        unknown = sorted(set(config.agent.guidance.labels) - set(available))
        if unknown:
            raise ConfigError(
                f"agent.guidance.labels names {unknown}, which this environment does not "
                f"label; its labels: {', '.join(available)}"
            )


def guidance_callbacks(config: Any, resumed: dict[str, Any] | None = None) -> list[BaseCallback]:
    """The run's :class:`ExpertGuidanceCallback` (a list of one), or ``[]`` when neither
    ``agent.guidance.weight`` nor ``label_weight`` is set. Its minibatches are
    ``agent.ppo.batch_size`` (A2C too).

    Args:
        config: The run config.
        resumed: The checkpoint state of a resumed run (its ``"guidance"`` entry restores
            the label head).
    """
    agent = config.agent
    if agent.guidance.weight <= 0 and agent.guidance.label_weight <= 0:
        return []
    callback = ExpertGuidanceCallback(agent.guidance, agent.ppo.batch_size, agent.ppo.max_grad_norm)
    if resumed is not None:
        callback.load_state_dict(resumed.get("guidance"))
    return [callback]


def guidance_state(callbacks: Any) -> dict[str, Any] | None:
    """What a run checkpoint keeps of the guidance callback among ``callbacks`` (its
    label head), or ``None``."""
    for callback in getattr(callbacks, "callbacks", callbacks):
        if isinstance(callback, ExpertGuidanceCallback):
            return callback.state_dict()
    return None
