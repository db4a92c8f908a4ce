"""``query`` fusion: the instruction queries the image cells for its referent."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch as th
from torch import nn

from mmrl.encoders import Encoder
from mmrl.fusion.attention import POSITION_INIT_STD
from mmrl.fusion.base import PooledFusion, register_fusion
from mmrl.fusion.pooled import BlockLinear


@register_fusion("query")
class QueryFusion(PooledFusion):
    """Cross-attention from the instruction to the cells of each image's feature map.

    The pooled instruction embedding makes ``num_heads`` queries; each attends over the
    image's grid cells (``Encoder.tokens``, with learned per-cell position embeddings) plus
    one learned "nothing here" slot. The fusion passes on, per image, what the queries
    found (the attended values, which carry the cells' positions) and how sure they are
    (``1 -`` the mass on the empty slot), next to the other modalities' pooled embeddings.

    Why: with ``concat`` the policy reads the instruction and the image side by side and
    can learn each trained (colour, shape) pair as its own case; an unseen pair is then a
    new input it has no rule for (Navigation-v1's held-out pairs, issue 19). Here the match
    between words and cells is a dot product, and everything after it sees *where* and
    *how well* the referent matched, not which one was named, as in language-conditioned
    spatial attention for instruction following (e.g. Chaplot et al. 2018's gated attention
    reads the match through channels instead).

    Args:
        encoders: The extractor's encoders.
        features_dim: Output width.
        query_keys: Keys whose pooled embeddings make the queries (default: every ``text``
            encoder; without one, every ``vector`` encoder, so ``query`` fits wherever SB3's
            ``CombinedExtractor`` does).
        target_keys: Keys whose tokens are queried (default: every ``image`` encoder).
        num_heads: Queries per target (each its own attention over the cells).
        head_dim: Width of each query, key and value.
        direct_query: Also pass the query keys' embeddings to the output layer. ``False``
            makes the instruction reach the policy only through what it selects.
        values: What a query reads from the cells it attends: ``"cells"`` (their features
            and positions) or ``"positions"`` (only where they are). With ``positions`` and
            ``direct_query=False`` nothing after the match can tell which referent was
            named, so an unseen (colour, shape) pair is found as soon as its match score,
            a sum of a colour part and a shape part over a ``factored`` camera, is.
    """

    def __init__(
        self,
        encoders: Mapping[str, Encoder],
        features_dim: int,
        query_keys: Sequence[str] | None = None,
        target_keys: Sequence[str] | None = None,
        num_heads: int = 4,
        head_dim: int = 16,
        direct_query: bool = True,
        values: str = "cells",
    ) -> None:
        super().__init__(encoders, features_dim)
        if query_keys is None:
            query_keys = [k for k, e in encoders.items() if e.modality == "text"]
            if not query_keys:  # as FiLM: goals and other vectors can ask too (issue 17)
                query_keys = [k for k, e in encoders.items() if e.modality == "vector"]
        if target_keys is None:
            target_keys = [k for k, e in encoders.items() if e.modality == "image"]
        unknown = [k for k in (*query_keys, *target_keys) if k not in encoders]
        if unknown:
            raise ValueError(f"query: unknown keys {unknown}; modalities are {list(encoders)}")
        if not query_keys or not target_keys or set(query_keys) & set(target_keys):
            raise ValueError(
                "fusion='query' needs a text (or vector) modality to query with and an image "
                f"modality to query, distinct (got query_keys={list(query_keys)}, "
                f"target_keys={list(target_keys)}); modalities are {list(encoders)}"
            )
        if num_heads < 1 or head_dim < 1:
            raise ValueError(f"num_heads and head_dim must be >= 1, got {num_heads}, {head_dim}")
        self.query_keys = tuple(query_keys)
        self.target_keys = tuple(target_keys)
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.direct_query = bool(direct_query)
        if values not in ("cells", "positions"):
            raise ValueError(f"query: values must be 'cells' or 'positions', got {values!r}")
        self.values = values
        width = self.num_heads * self.head_dim
        cond_dim = sum(self.embed_dims[k] for k in self.query_keys)
        shapes = {k: encoders[k].token_shape() for k in self.target_keys}
        self.query = nn.ModuleDict({k: nn.Linear(cond_dim, width) for k in self.target_keys})
        self.key = nn.ModuleDict({k: nn.Linear(d, width) for k, (_, d) in shapes.items()})
        # Built with values="positions" too, where it is unused: the state dict then does not
        # depend on the option, so a model's weights load whichever way it is set.
        self.value = nn.ModuleDict({k: nn.Linear(d, width) for k, (_, d) in shapes.items()})
        self.position = nn.ParameterDict(
            {
                k: nn.Parameter(th.randn(t, width) * POSITION_INIT_STD)
                for k, (t, _) in shapes.items()
            }
        )
        self.empty_key = nn.ParameterDict(
            {k: nn.Parameter(th.zeros(self.num_heads, self.head_dim)) for k in self.target_keys}
        )
        self.empty_value = nn.ParameterDict(
            {k: nn.Parameter(th.zeros(self.num_heads, self.head_dim)) for k in self.target_keys}
        )
        # A missing image is a learned readout (zeros at first: nothing found), as a missing
        # modality is a learned embedding in every pooled fusion.
        for key in self.target_keys:
            self.missing[key] = nn.Parameter(th.zeros(width + self.num_heads))
        blocks = []
        for key in self.modalities:
            if key in self.target_keys:
                blocks.append(width + self.num_heads)
            elif key not in self.query_keys or self.direct_query:
                blocks.append(self.embed_dims[key])
        self.head = BlockLinear(blocks, features_dim)

    def read(self, key: str, tokens: th.Tensor, cond: th.Tensor) -> th.Tensor:
        """Query one image's cells.

        Args:
            key: The target key.
            tokens: Its cells ``(B, T, d)``.
            cond: Query-key embeddings ``(B, cond_dim)``.

        Returns:
            ``(B, heads * head_dim + heads)``: the attended values, then per head the
            attention mass on the cells (``1 -`` the empty slot's: how sure it found them).
        """
        b, t, _ = tokens.shape
        h, d = self.num_heads, self.head_dim
        q = self.query[key](cond).view(b, h, 1, d)
        k = (self.key[key](tokens) + self.position[key]).view(b, t, h, d).transpose(1, 2)
        v = self.position[key].expand(b, t, h * d)
        if self.values == "cells":
            v = v + self.value[key](tokens)
        v = v.reshape(b, t, h, d).transpose(1, 2)
        k = th.cat([self.empty_key[key].expand(b, h, d).unsqueeze(2), k], dim=2)
        v = th.cat([self.empty_value[key].expand(b, h, d).unsqueeze(2), v], dim=2)
        probs = ((q @ k.transpose(-2, -1)).squeeze(2) / math.sqrt(d)).softmax(dim=-1)
        attended = (probs.unsqueeze(2) @ v).squeeze(2)  # (B, h, d)
        return th.cat([attended.flatten(1), 1.0 - probs[..., 0]], dim=1)

    def forward(
        self,
        inputs: Mapping[str, th.Tensor],
        encoders: Mapping[str, Encoder],
        drop: th.Tensor | None = None,
    ) -> th.Tensor:
        feats = {k: encoders[k](inputs[k]) for k in self.modalities if k not in self.target_keys}
        feats = self.fill_missing(feats, drop)
        cond = th.cat([feats[k] for k in self.query_keys], dim=1)
        for key in self.target_keys:
            tokens, _ = encoders[key].tokens(inputs[key])
            feats[key] = self.read(key, tokens, cond)
        # Conditioning keys are already filled; filling again is a no-op for them.
        feats = self.fill_missing(feats, drop)
        blocks, owners = [], []
        for key in self.modalities:
            if key in self.target_keys or key not in self.query_keys or self.direct_query:
                blocks.append(feats[key])
                owners.append(key)
        out, shares = self.head.forward_blocks(blocks)
        # The instruction acts through the image readouts when it has no block of its own:
        # credit it with their share.
        weights = dict(zip(owners, shares))
        targets = sum(weights[k] for k in self.target_keys)
        self._record_weights(th.stack([weights.get(k, targets) for k in self.modalities]))
        return th.relu(out)
