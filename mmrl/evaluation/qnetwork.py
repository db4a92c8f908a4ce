"""The Q-networks of Fitted Q Evaluation (:func:`mmrl.evaluation.offline.fitted_q_evaluation`).

:class:`QNetwork` is a two-layer MLP head over state features (precomputed, or a
:class:`RawEncoder` of the raw Dict observations trained with it): one output per discrete
action (the DQN head), or the continuous action concatenated to the features. With
``members > 1`` it is an ensemble of such heads, evaluated as one batched matrix product
(:class:`EnsembleHead`), whose mean is the Q-function.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from torch import nn

__all__ = ["EnsembleHead", "QNetwork", "RawEncoder"]


class RawEncoder(nn.Module):
    """Encodes raw Dict observations for ``--fqe-features raw``.

    Images (``(H, W, C)`` uint8): two stride-2 3x3 convolutions (16, 32 channels), global
    average pooling. Token ids (1-D integer Box): mean of learned 16-d word embeddings over
    non-padding tokens. Everything else: flattened as float.

    Args:
        observation_space: The dataset's Dict space (channel-last images).
    """

    def __init__(self, observation_space: spaces.Dict) -> None:
        super().__init__()
        from stable_baselines3.common.preprocessing import is_image_space

        self.images = nn.ModuleDict()
        self.tokens = nn.ModuleDict()
        self.flat: list[str] = []
        dim = 0
        for key, sub in observation_space.spaces.items():
            if is_image_space(sub, check_channels=False) and len(sub.shape) == 3:
                self.images[key] = nn.Sequential(
                    nn.Conv2d(sub.shape[-1], 16, 3, stride=2, padding=1),
                    nn.ReLU(),
                    nn.Conv2d(16, 32, 3, stride=2, padding=1),
                    nn.ReLU(),
                    nn.AdaptiveAvgPool2d(1),
                    nn.Flatten(),
                )
                dim += 32
            elif (
                isinstance(sub, spaces.Box)
                and len(sub.shape) == 1
                and np.issubdtype(sub.dtype, np.integer)
            ):
                self.tokens[key] = nn.Embedding(int(np.max(sub.high)) + 1, 16, padding_idx=0)
                dim += 16
            else:
                self.flat.append(key)
                dim += int(np.prod(sub.shape)) if sub.shape else 1
        self.output_dim = dim

    def forward(self, obs: Mapping[str, th.Tensor]) -> th.Tensor:
        """Key -> raw batched tensor (``(B, ...)``) to ``(B, output_dim)`` float."""
        parts = []
        for key, net in self.images.items():
            parts.append(net(obs[key].permute(0, 3, 1, 2).float() / 255.0))
        for key, emb in self.tokens.items():
            ids = obs[key].long()
            mask = (ids != 0).float().unsqueeze(-1)
            parts.append((emb(ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0))
        for key in self.flat:
            parts.append(obs[key].float().reshape(len(obs[key]), -1))
        return th.cat(parts, dim=1)


class EnsembleHead(nn.Module):
    """``members`` independent two-layer MLPs evaluated as one batched product.

    Each member is initialized as :class:`torch.nn.Linear` initializes its layers (weights
    and biases uniform in ``+-1/sqrt(fan_in)``), independently, so the members differ by
    their initialization (Lakshminarayanan, Pritzel & Blundell 2017, "Simple and Scalable
    Predictive Uncertainty Estimation using Deep Ensembles").

    Args:
        members: Ensemble size, at least 2.
        input_dim: Input width.
        hidden: Hidden width of every member.
        output_dim: Output width.
        dropout: Dropout probability after each hidden layer.
    """

    def __init__(
        self, members: int, input_dim: int, hidden: int, output_dim: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.members = members
        dims = [(input_dim, hidden), (hidden, hidden), (hidden, output_dim)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in dims:
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(
                nn.Parameter(th.empty(members, fan_in, fan_out).uniform_(-bound, bound))
            )
            self.biases.append(nn.Parameter(th.empty(members, 1, fan_out).uniform_(-bound, bound)))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: th.Tensor) -> th.Tensor:
        """``(B, input_dim)`` to ``(members, B, output_dim)``."""
        h = x.unsqueeze(0).expand(self.members, *x.shape)
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = th.baddbmm(bias, h, weight)
            if i < last:
                h = self.dropout(th.relu(h))
        return h


class QNetwork(nn.Module):
    """``Q(s, .)`` (discrete: ``(B, A)``) or ``Q(s, a)`` (continuous: ``(B,)``).

    Args:
        input_dim: Width of the state features.
        action_space: Discrete or Box.
        hidden: Hidden width of the two-layer MLP head.
        encoder: Trainable observation encoder (raw mode), or ``None`` when the inputs are
            precomputed features.
        dropout: Dropout probability after each hidden layer (active in training mode only).
        members: Ensemble size: 1 is one MLP head; above 1, an :class:`EnsembleHead` of that
            many heads (sharing the encoder, if any) whose mean is the Q-value.
    """

    def __init__(
        self,
        input_dim: int,
        action_space: spaces.Space,
        hidden: int = 128,
        encoder: RawEncoder | None = None,
        dropout: float = 0.0,
        members: int = 1,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.members = members
        out = int(action_space.n) if self.discrete else 1
        extra = 0 if self.discrete else int(np.prod(action_space.shape))
        self.head: nn.Module
        if members > 1:
            self.head = EnsembleHead(members, input_dim + extra, hidden, out, dropout)
        else:
            drop = [nn.Dropout(dropout)] if dropout > 0 else []
            self.head = nn.Sequential(
                nn.Linear(input_dim + extra, hidden),
                nn.ReLU(),
                *drop,
                nn.Linear(hidden, hidden),
                nn.ReLU(),
                *copy.deepcopy(drop),
                nn.Linear(hidden, out),
            )

    def forward(
        self, states: Any, actions: th.Tensor | None = None, per_member: bool = False
    ) -> th.Tensor:
        """States (features ``(B, F)`` or a raw observation dict) [+ actions] to Q-values.

        Args:
            states: Features or raw observations.
            actions: ``(B, d)`` continuous actions (``None`` for discrete actions).
            per_member: Return every ensemble member's values with a leading
                ``(members,)`` axis (``(1, ...)`` for a single head) instead of their mean.
        """
        x = self.encoder(states) if self.encoder is not None else states
        if not self.discrete:
            x = th.cat([x, actions.reshape(len(x), -1).float()], dim=1)
        q = self.head(x)
        if self.members == 1:
            q = q.unsqueeze(0)
        if not self.discrete:
            q = q.squeeze(-1)
        return q if per_member else q.mean(0)
