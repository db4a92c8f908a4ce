"""Image encoders: a lean NatureCNN-style stack, a small IMPALA ResNet, and a shape/colour
factored stack."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space_channels_first
from torch import nn
from torch.nn import functional as F

from mmrl.encoders.base import Encoder, FiLMParams, apply_film, dummy_input, register_encoder


def image_layout(space: spaces.Space) -> tuple[int, int, int, bool]:
    """``(channels, height, width, channels_last)`` of a 3-D image Box.

    Uses SB3's own heuristic (channels are the smallest axis) so the encoder agrees with
    ``VecTransposeImage``: inside SB3 the policy already sees channel-first spaces, while a
    stand-alone extractor built on a channel-last space transposes in ``forward``.
    """
    shape = tuple(space.shape)
    if is_image_space_channels_first(space):
        c, h, w = shape
        return c, h, w, False
    h, w, c = shape
    return c, h, w, True


def conv_plan(size: int) -> list[tuple[int, int, int]]:
    """``(kernel, stride, padding)`` of the three conv layers for an image side of ``size``.

    Large images get the NatureCNN geometry (Mnih et al. 2015). Medium ones use 3x3 stride-2
    convs so a 16x16 view still yields a 4x4 grid. Small egocentric views (MiniGrid's 7x7)
    keep their resolution with padded 3x3 stride-1 convs, as in BabyAI (Chevalier-Boisvert et
    al. 2019), where every cell is an object.
    """
    if size >= 36:
        return [(8, 4, 0), (4, 2, 0), (3, 1, 0)]
    if size >= 12:
        return [(3, 2, 1), (3, 2, 1), (3, 1, 1)]
    return [(3, 1, 1), (3, 1, 1), (3, 1, 1)]


class _ImageEncoder(Encoder):
    """Shared parts: layout check, channel-last transpose, pooled head and grid tokens."""

    modality = "image"

    @classmethod
    def check_space(cls, space: spaces.Space) -> None:
        if not (isinstance(space, spaces.Box) and len(space.shape) == 3):
            raise ValueError(f"image encoders need a 3-D Box (H, W, C) or (C, H, W), got {space}")

    def _init_heads(self, max_grid: int) -> None:
        # Output sizes from a no-grad dummy forward, as SB3's NatureCNN does.
        with th.no_grad():
            fmap = self.feature_map(dummy_input(self.observation_space))
        _, channels, gh, gw = fmap.shape
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * gh * gw, self.embed_dim), nn.ReLU()
        )
        # Cap the token grid so large images do not blow up attention cost (quadratic in T).
        self.token_pool: nn.Module = (
            nn.AdaptiveAvgPool2d((min(gh, max_grid), min(gw, max_grid)))
            if max(gh, gw) > max_grid
            else nn.Identity()
        )

    def _to_channels_first(self, x: th.Tensor) -> th.Tensor:
        return x.permute(0, 3, 1, 2) if self.channels_last else x

    def feature_map(self, x: th.Tensor, film: FiLMParams | None = None) -> th.Tensor:
        """Final conv feature map ``(B, C, h, w)`` (after ReLU) of images ``x``."""
        raise NotImplementedError

    def forward(self, x: th.Tensor, film: FiLMParams | None = None) -> th.Tensor:
        """Float images ``(B, C, H, W)`` or ``(B, H, W, C)`` (as in the space) -> ``(B, d)``."""
        return self.head(self.feature_map(x, film))

    def tokens(self, x: th.Tensor) -> tuple[th.Tensor, None]:
        """One token per cell of the (pooled) final grid: ``(B, h*w, C)``, no padding."""
        grid = self.token_pool(self.feature_map(x))
        return grid.flatten(2).transpose(1, 2), None


@register_encoder("nature")
class NatureCNNEncoder(_ImageEncoder):
    """Three-conv NatureCNN-style encoder with geometry adapted to the image size.

    Mnih et al. 2015 ("Human-level control through deep RL") with kernel/stride chosen by
    :func:`conv_plan`, so anything from 7x7 to 84x84+ works. Default channels are half of
    NatureCNN's (32, 64, 64): on a 64x64 camera that is ~3x fewer multiply-adds, which keeps
    the attention fusion within budget on CPU (see ``scripts/bench_extractors.py``). Pass
    ``channels=(32, 64, 64)`` for the original widths.

    Args:
        space: 3-D Box, channel-first or channel-last, any number of channels.
        embed_dim: Width of the pooled embedding.
        channels: Output channels of the three conv layers (FiLM modulates each).
        max_grid: Token grid side cap for :meth:`tokens` (adaptive average pooling beyond).
    """

    def __init__(
        self,
        space: spaces.Box,
        embed_dim: int = 64,
        channels: Sequence[int] = (16, 32, 32),
        max_grid: int = 8,
    ) -> None:
        super().__init__(space, embed_dim)
        c, h, w, self.channels_last = image_layout(space)
        self.convs = nature_convs(c, channels, min(h, w))
        self.film_dims = tuple(int(ch) for ch in channels)
        self._init_heads(max_grid)

    def feature_map(self, x: th.Tensor, film: FiLMParams | None = None) -> th.Tensor:
        return run_convs(self.convs, self._to_channels_first(x), film)


def nature_convs(in_channels: int, channels: Sequence[int], side: int) -> nn.ModuleList:
    """The three conv layers of :class:`NatureCNNEncoder` for images of side ``side``."""
    plan = conv_plan(side)
    if len(channels) != len(plan):
        raise ValueError(f"channels must have {len(plan)} entries, got {tuple(channels)}")
    convs = []
    for out_ch, (kernel, stride, pad) in zip(channels, plan):
        convs.append(nn.Conv2d(in_channels, out_ch, kernel, stride, pad))
        in_channels = out_ch
    return nn.ModuleList(convs)


def run_convs(convs: nn.ModuleList, x: th.Tensor, film: FiLMParams | None) -> th.Tensor:
    """``conv -> FiLM -> ReLU`` per layer (FiLM before the non-linearity, as in Perez et al.
    2018)."""
    for i, conv in enumerate(convs):
        x = F.relu(apply_film(conv(x), film, i))
    return x


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: th.Tensor) -> th.Tensor:
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


@register_encoder("impala")
class ImpalaEncoder(_ImageEncoder):
    """Small IMPALA ResNet (Espeholt et al. 2018): per stage conv, max-pool, residual blocks.

    Stages only downsample while the image side is at least 8, so MiniGrid-sized views keep
    their cells. FiLM modulates each stage's output.

    Args:
        space: 3-D Box, channel-first or channel-last, any number of channels.
        embed_dim: Width of the pooled embedding.
        channels: Channels per stage (the paper uses (16, 32, 32)).
        blocks_per_stage: Residual blocks per stage (the paper uses 2).
        max_grid: Token grid side cap for :meth:`tokens`.
    """

    def __init__(
        self,
        space: spaces.Box,
        embed_dim: int = 64,
        channels: Sequence[int] = (16, 32, 32),
        blocks_per_stage: int = 2,
        max_grid: int = 8,
    ) -> None:
        super().__init__(space, embed_dim)
        c, h, w, self.channels_last = image_layout(space)
        stages = []
        in_ch, side = c, min(h, w)
        for out_ch in channels:
            downsample = side >= 8
            stages.append(
                nn.Sequential(
                    nn.Conv2d(in_ch, out_ch, 3, padding=1),
                    nn.MaxPool2d(3, stride=2, padding=1) if downsample else nn.Identity(),
                    *[_ResidualBlock(out_ch) for _ in range(blocks_per_stage)],
                )
            )
            side = int(np.ceil(side / 2)) if downsample else side
            in_ch = out_ch
        self.stages = nn.ModuleList(stages)
        self.film_dims = tuple(int(ch) for ch in channels)
        self._init_heads(max_grid)

    def feature_map(self, x: th.Tensor, film: FiLMParams | None = None) -> th.Tensor:
        x = self._to_channels_first(x)
        for i, stage in enumerate(self.stages):
            x = apply_film(stage(x), film, i)
        return F.relu(x)


@register_encoder("factored")
class FactoredImageEncoder(_ImageEncoder):
    """Shape and colour in separate streams: how an object's outline looks cannot depend on
    its colour.

    The *shape* stream is :class:`NatureCNNEncoder`'s conv stack on the image's brightness
    (the largest of each pixel's red, green and blue: bright objects against a dim room
    look alike whatever their hue). The *colour* stream is a per-pixel MLP (1x1 convs) on
    the image's 4x4-pixel means, max-pooled onto the shape stream's grid, so it says which
    colours are where but nothing about outlines. Both are stacked into the final feature map.

    Why: a CNN on RGB learns shape features that depend on the colours it saw each shape
    in, so an unseen (colour, shape) pair (Navigation-v1's held-out red cone) is not read as
    its shape: a linear shape probe fitted on the train pairs' embeddings reads 0-10 % of
    the held-out pairs right (``docs/bench/navigation-red-cone/attribute_probe.py``).

    Args:
        space: 3-D Box with ``3k`` channels (``k`` stacked RGB frames), channel-first or
            channel-last.
        embed_dim: Width of the pooled embedding.
        channels: Output channels of the shape stream's three conv layers (FiLM modulates
            each).
        colour_channels: Width of the colour stream.
        max_grid: Token grid side cap for :meth:`tokens`.
    """

    def __init__(
        self,
        space: spaces.Box,
        embed_dim: int = 64,
        channels: Sequence[int] = (16, 32, 32),
        colour_channels: int = 8,
        max_grid: int = 8,
    ) -> None:
        super().__init__(space, embed_dim)
        c, h, w, self.channels_last = image_layout(space)
        if c % 3:
            raise ValueError(
                f"the factored image encoder needs RGB frames (3k channels), got {c} channels; "
                "use 'nature' or 'impala' for other images"
            )
        self.frames = c // 3
        self.convs = nature_convs(self.frames, channels, min(h, w))
        self.colour = nn.Sequential(
            nn.Conv2d(c, colour_channels, 1),
            nn.ReLU(),
            nn.Conv2d(colour_channels, colour_channels, 1),
            nn.ReLU(),
        )
        self.film_dims = tuple(int(ch) for ch in channels)
        self.colour_channels = int(colour_channels)
        self._init_heads(max_grid)

    def token_groups(self) -> tuple[int, ...]:
        """``(shape channels, colour channels)``: the two streams, stacked in that order."""
        return (self.film_dims[-1], self.colour_channels)

    def feature_map(self, x: th.Tensor, film: FiLMParams | None = None) -> th.Tensor:
        x = self._to_channels_first(x)
        b, _, h, w = x.shape
        shape = run_convs(self.convs, x.reshape(b, self.frames, 3, h, w).amax(dim=2), film)
        # The per-pixel MLP runs on 4x4-pixel means: 16x cheaper than at full resolution
        # (8x slower pretraining than NatureCNN there), and an object's colour survives it.
        small = F.avg_pool2d(x, 4) if min(h, w) >= 16 else x
        colour = F.adaptive_max_pool2d(self.colour(small.contiguous()), shape.shape[-2:])
        return th.cat([shape, colour], dim=1)
