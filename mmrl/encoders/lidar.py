"""Range-scan (lidar) encoder: 1-D convolutions with circular padding over the angle."""

from __future__ import annotations

from collections.abc import Sequence

import torch as th
from gymnasium import spaces
from torch import nn
from torch.nn import functional as F

from mmrl.encoders.base import Encoder, FiLMParams, apply_film, dummy_input, register_encoder


@register_encoder("lidar")
class LidarEncoder(Encoder):
    """1-D CNN over a 360-degree range scan.

    Beam ``N-1`` neighbours beam ``0``, so convolutions pad circularly: an obstacle straddling
    the wrap-around looks the same as anywhere else (the usual trick for polar scans, e.g.
    Pfeiffer et al. 2017). Layers stride 2 while the scan has at least 16 beams left. The
    pooled head flattens the final map, keeping *where* each feature is (bearing matters for
    control); tokens are angular sectors (adaptive average pooling to ``num_sectors``).

    Args:
        space: 1-D float Box of ``N`` ranges.
        embed_dim: Width of the pooled embedding.
        channels: Output channels per conv layer (FiLM modulates each).
        kernel_size: Odd kernel size (shrunk for very short scans).
        num_sectors: Number of tokens for :meth:`tokens`.
    """

    modality = "lidar"

    def __init__(
        self,
        space: spaces.Box,
        embed_dim: int = 64,
        channels: Sequence[int] = (16, 32, 32),
        kernel_size: int = 5,
        num_sectors: int = 8,
    ) -> None:
        super().__init__(space, embed_dim)
        length = int(space.shape[0])
        convs = []
        in_ch = 1
        for out_ch in channels:
            # Odd kernel no longer than the scan: circular padding cannot wrap more than once.
            kernel = max(1, min(kernel_size, length if length % 2 else length - 1))
            stride = 2 if length >= 16 else 1
            convs.append(
                nn.Conv1d(in_ch, out_ch, kernel, stride, kernel // 2, padding_mode="circular")
            )
            length = (length - 1) // stride + 1
            in_ch = out_ch
        self.convs = nn.ModuleList(convs)
        self.film_dims = tuple(int(ch) for ch in channels)
        with th.no_grad():
            fmap = self.feature_map(dummy_input(space))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(fmap[0].numel(), embed_dim), nn.ReLU())
        self.sector_pool: nn.Module = (
            nn.AdaptiveAvgPool1d(num_sectors) if fmap.shape[-1] > num_sectors else nn.Identity()
        )

    @classmethod
    def check_space(cls, space: spaces.Space) -> None:
        if not (isinstance(space, spaces.Box) and len(space.shape) == 1):
            raise ValueError(
                f"the lidar encoder needs a 1-D Box of ranges, got {space}; "
                "use encoders={key: 'mlp'} for other shapes"
            )

    def feature_map(self, x: th.Tensor, film: FiLMParams | None = None) -> th.Tensor:
        """Scans ``(B, N)`` -> conv feature map ``(B, C, N')``."""
        x = x.unsqueeze(1)
        for i, conv in enumerate(self.convs):
            x = F.relu(apply_film(conv(x), film, i))
        return x

    def forward(self, x: th.Tensor, film: FiLMParams | None = None) -> th.Tensor:
        """Scans ``(B, N)`` float -> ``(B, embed_dim)``."""
        return self.head(self.feature_map(x, film))

    def tokens(self, x: th.Tensor) -> tuple[th.Tensor, None]:
        """Scans ``(B, N)`` -> sector tokens ``(B, num_sectors, C)``, no padding."""
        return self.sector_pool(self.feature_map(x)).transpose(1, 2), None
