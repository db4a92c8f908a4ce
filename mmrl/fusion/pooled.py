"""Fusions of one pooled embedding per modality: ``concat``, ``mean``, ``gated``, ``film``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch as th
from torch import nn
from torch.nn import functional as F

from mmrl.encoders import Encoder
from mmrl.fusion.base import PooledFusion, register_fusion


class BlockLinear(nn.Linear):
    """``nn.Linear`` over concatenated blocks that also measures each block's contribution.

    The weight share of block ``k`` is the mean squared norm of ``W[:, block_k] @ x_k``
    relative to the sum over blocks: how much of the pre-activation each modality moves.
    """

    def __init__(self, block_dims: Sequence[int], out_features: int) -> None:
        super().__init__(sum(block_dims), out_features)
        self.block_dims = [int(d) for d in block_dims]

    def forward_blocks(self, blocks: Sequence[th.Tensor]) -> tuple[th.Tensor, th.Tensor]:
        """Blocks ``(B, d_k)`` -> ``(pre-activation (B, out), contribution shares (K,))``."""
        out = super().forward(th.cat(list(blocks), dim=1))
        with th.no_grad():
            weights = self.weight.detach().split(self.block_dims, dim=1)
            shares = th.stack(
                [F.linear(b.detach(), w).pow(2).sum(dim=1).mean() for b, w in zip(blocks, weights)]
            )
        return out, shares


@register_fusion("concat")
class ConcatFusion(PooledFusion):
    """Concatenate the per-modality embeddings, then ``Linear + ReLU`` to ``features_dim``.

    The baseline, as SB3's ``CombinedExtractor`` (which concatenates per-key features); the
    projection makes the output width ``features_dim`` like every other fusion. Weights:
    each modality's share of the projection's pre-activation energy.
    """

    def __init__(self, encoders: Mapping[str, Encoder], features_dim: int) -> None:
        super().__init__(encoders, features_dim)
        self.head = BlockLinear(list(self.embed_dims.values()), features_dim)

    def fuse(self, feats: dict[str, th.Tensor]) -> th.Tensor:
        out, shares = self.head.forward_blocks([feats[k] for k in self.modalities])
        self._record_weights(shares)
        return F.relu(out)


@register_fusion("mean")
class MeanFusion(PooledFusion):
    """Project every modality to ``features_dim``, average, ReLU.

    Weights: each projected modality's share of the summed squared norms.
    """

    def __init__(self, encoders: Mapping[str, Encoder], features_dim: int) -> None:
        super().__init__(encoders, features_dim)
        self.proj = nn.ModuleDict(
            {key: nn.Linear(dim, features_dim) for key, dim in self.embed_dims.items()}
        )

    def fuse(self, feats: dict[str, th.Tensor]) -> th.Tensor:
        projected = th.stack([self.proj[k](feats[k]) for k in self.modalities], dim=1)
        with th.no_grad():
            self._record_weights(projected.detach().pow(2).sum(dim=2).mean(dim=0))
        return F.relu(projected.mean(dim=1))


@register_fusion("gated")
class GatedFusion(PooledFusion):
    """Gated Multimodal Unit (Arevalo et al. 2017), N-modality form.

    ``h_k = tanh(W_k x_k)``, ``z_k = sigmoid(W_z,k [x_1, ..., x_N])``, output
    ``sum_k z_k * h_k``: every gate sees all modalities, so it can learn which one to trust
    for the current input. Weights: mean gate value per modality (normalised).
    """

    def __init__(self, encoders: Mapping[str, Encoder], features_dim: int) -> None:
        super().__init__(encoders, features_dim)
        self.proj = nn.ModuleDict(
            {key: nn.Linear(dim, features_dim) for key, dim in self.embed_dims.items()}
        )
        n = len(self.modalities)
        self.gates = nn.Linear(sum(self.embed_dims.values()), n * features_dim)

    def fuse(self, feats: dict[str, th.Tensor]) -> th.Tensor:
        ordered = [feats[k] for k in self.modalities]
        hidden = th.stack([th.tanh(self.proj[k](feats[k])) for k in self.modalities], dim=1)
        gates = th.sigmoid(self.gates(th.cat(ordered, dim=1))).view_as(hidden)
        self._record_weights(gates.detach().mean(dim=(0, 2)))
        return (gates * hidden).sum(dim=1)


@register_fusion("film")
class FiLMFusion(PooledFusion):
    """Text conditions the image and lidar encoders with FiLM (Perez et al. 2018), as BabyAI
    (Chevalier-Boisvert et al. 2019) conditions its CNN on the instruction.

    The text embedding predicts a per-channel ``(gamma, beta)`` for every conv layer of each
    target encoder (``gamma = 1 + delta`` so an untrained FiLM starts near identity, as the
    FiLM paper recommends). The conditioned embeddings and all other modalities (text
    included, so the instruction also reaches the policy directly) are then fused as in
    ``concat``. A dropped text modality conditions with its learned missing embedding.
    Observations without text condition on their vector keys (proprioception, goals), so
    ``film`` fits wherever SB3's ``CombinedExtractor`` does (its multi-input test envs have an
    image and a vector; issue 17).

    Args:
        encoders: The extractor's encoders.
        features_dim: Output width.
        condition_keys: Keys whose embeddings produce the FiLM parameters (default: every
            ``text`` encoder; without one, every ``vector`` encoder, e.g. ``state``).
        target_keys: Keys whose encoders are modulated (default: every ``image``/``lidar``
            encoder that supports FiLM).
    """

    def __init__(
        self,
        encoders: Mapping[str, Encoder],
        features_dim: int,
        condition_keys: Sequence[str] | None = None,
        target_keys: Sequence[str] | None = None,
    ) -> None:
        super().__init__(encoders, features_dim)
        if condition_keys is None:
            condition_keys = [k for k, e in encoders.items() if e.modality == "text"]
            if not condition_keys:
                condition_keys = [k for k, e in encoders.items() if e.modality == "vector"]
        if target_keys is None:
            target_keys = [
                k for k, e in encoders.items() if e.modality in ("image", "lidar") and e.film_dims
            ]
        for key in [*condition_keys, *target_keys]:
            if key not in encoders:
                raise ValueError(f"film: unknown key {key!r}; modalities are {list(encoders)}")
        if not condition_keys:
            raise ValueError(
                "fusion='film' needs a text or vector modality to condition on (an integer "
                "token Box or a flat vector, or pass fusion_kwargs={'condition_keys': [...]}); "
                f"modalities are {list(encoders)}. Use fusion='concat' otherwise."
            )
        bad = [k for k in target_keys if not encoders[k].film_dims or k in condition_keys]
        if not target_keys or bad:
            raise ValueError(
                "fusion='film' needs image or lidar encoders to modulate (that are not "
                f"conditioning keys); got target_keys={list(target_keys)} with invalid {bad}"
            )
        self.condition_keys = tuple(condition_keys)
        self.target_keys = tuple(target_keys)
        cond_dim = sum(self.embed_dims[k] for k in self.condition_keys)
        self.film = nn.ModuleDict(
            {k: nn.Linear(cond_dim, 2 * sum(encoders[k].film_dims)) for k in self.target_keys}
        )
        self._film_splits = {
            k: [d for d in encoders[k].film_dims for _ in range(2)] for k in self.target_keys
        }
        self.head = BlockLinear(list(self.embed_dims.values()), features_dim)

    def forward(
        self,
        inputs: Mapping[str, th.Tensor],
        encoders: Mapping[str, Encoder],
        drop: th.Tensor | None = None,
    ) -> th.Tensor:
        cond_feats = self.fill_missing(
            {k: encoders[k](inputs[k]) for k in self.condition_keys}, drop
        )
        cond = th.cat([cond_feats[k] for k in self.condition_keys], dim=1)
        feats = dict(cond_feats)
        for key in self.target_keys:
            chunks = self.film[key](cond).split(self._film_splits[key], dim=1)
            params = [(1.0 + chunks[i], chunks[i + 1]) for i in range(0, len(chunks), 2)]
            feats[key] = encoders[key](inputs[key], film=params)
        for key in self.modalities:
            if key not in feats:
                feats[key] = encoders[key](inputs[key])
        # Conditioning keys are already filled; filling again is a no-op for them.
        feats = self.fill_missing(feats, drop)
        out, shares = self.head.forward_blocks([feats[k] for k in self.modalities])
        self._record_weights(shares)
        return F.relu(out)
