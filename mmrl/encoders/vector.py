"""Generic encoder for every other space SB3 supports (float Box, Discrete, MultiDiscrete,
MultiBinary), applied after SB3's own preprocessing (one-hot encoding, float cast)."""

from __future__ import annotations

from collections.abc import Sequence

import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import create_mlp
from torch import nn

from mmrl.encoders.base import Encoder, FiLMParams, register_encoder


@register_encoder("mlp")
class MlpEncoder(Encoder):
    """Flatten, then an MLP (SB3's ``create_mlp``) ending in ReLU.

    Args:
        space: Box, Discrete, MultiDiscrete or MultiBinary.
        embed_dim: Width of the output embedding.
        hidden: Hidden layer widths.
    """

    modality = "vector"

    def __init__(self, space: spaces.Space, embed_dim: int = 64, hidden: Sequence[int] = (64,)):
        super().__init__(space, embed_dim)
        in_dim = get_flattened_obs_dim(space)
        self.net = nn.Sequential(
            nn.Flatten(), *create_mlp(in_dim, embed_dim, list(hidden)), nn.ReLU()
        )

    @classmethod
    def check_space(cls, space: spaces.Space) -> None:
        if not isinstance(
            space, spaces.Box | spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary
        ):
            raise ValueError(
                f"the mlp encoder needs Box/Discrete/MultiDiscrete/MultiBinary, got {space}"
            )

    def forward(self, x: th.Tensor, film: FiLMParams | None = None) -> th.Tensor:
        """Preprocessed observations ``(B, *shape)`` float -> ``(B, embed_dim)``."""
        return self.net(x)
