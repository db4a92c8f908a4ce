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

#: Slows the ``word_queries`` gates' learning (Adam moves each weight at about its learning
#: rate, so an output scale slows the logits alike): unscaled, every gate shut all but one
#: route within the first few dozen pretraining updates, before the queries had learnt what
#: each route reads, and the routes so fixed were random (colour words on shape channels).
GATE_SCALE = 0.1


def sparsemax(z: th.Tensor) -> th.Tensor:
    """Sparsemax over the last dim (Martins and Astudillo 2016): the Euclidean projection of
    ``z`` onto the probability simplex, like softmax but with exact zeros.

    Written here because torch has none; it is a sort and a cumulative sum (autograd's
    gradient through them is sparsemax's own: zero off the support).
    """
    ranked, _ = z.sort(dim=-1, descending=True)
    rank = th.arange(1, z.shape[-1] + 1, device=z.device, dtype=z.dtype)
    cumulative = ranked.cumsum(dim=-1) - 1.0
    support = (rank * ranked > cumulative).sum(dim=-1, keepdim=True)
    threshold = cumulative.gather(-1, support - 1) / support.to(z.dtype)
    return (z - threshold).clamp(min=0.0)


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
        word_queries: Each word of the instruction (the query key's ``tokens``) makes its own
            query and the cells' match is the sum over words. A learned gate per word
            (sparsemax, so with exact zeros; shared by the heads) routes each word's query
            to the kinds of cell feature it reads: the image encoder's channel groups
            (``Encoder.token_groups``; ``factored``: shape, colour) and the cells' positions.
            The pooled query then only sets how sure the match must be (the empty slot).
            Why: a pooled query learns the pairings it was trained on (no trained "cylinder"
            instruction names a purple object, so every cylinder query learns to pass purple
            by), and so misses an unseen pair; a word whose gate reads only shape features
            has no colour preference to learn.
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
        word_queries: bool = False,
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
        self.word_queries = bool(word_queries)
        if self.word_queries:  # the words' per-group key maps stand in for the whole-cell one
            self._init_word_queries(encoders, shapes)
        else:
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

    def _init_word_queries(
        self, encoders: Mapping[str, Encoder], shapes: Mapping[str, tuple[int, int]]
    ) -> None:
        if len(self.query_keys) != 1:
            raise ValueError(
                "query: word_queries needs exactly one query key (the instruction), got "
                f"{list(self.query_keys)}"
            )
        _, word_dim = encoders[self.query_keys[0]].token_shape()
        self.groups: dict[str, tuple[int, ...]] = {}
        for key in self.target_keys:
            groups = tuple(int(c) for c in encoders[key].token_groups())
            if sum(groups) != shapes[key][1] or min(groups) < 1:
                raise ValueError(
                    f"query: {key}'s token_groups() {groups} must be positive widths summing "
                    f"to its token width {shapes[key][1]}"
                )
            self.groups[key] = groups
        width = self.num_heads * self.head_dim
        # Per target: one key map per channel group; a word routes among them and the cells'
        # positions (the last route).
        self.group_key = nn.ModuleDict(
            {k: nn.ModuleList(nn.Linear(c, width) for c in g) for k, g in self.groups.items()}
        )
        routes = {k: len(g) + 1 for k, g in self.groups.items()}
        self.word_query = nn.ModuleDict(
            {k: nn.Linear(word_dim, width * r) for k, r in routes.items()}
        )
        # One route per word, shared by the heads: with a gate per head, each head fixed its
        # own routes at random (BENCHMARKS.md) and crossed them (colour words on shape).
        self.word_gate = nn.ModuleDict({k: nn.Linear(word_dim, r) for k, r in routes.items()})
        for gate in self.word_gate.values():  # every route open alike at first
            nn.init.zeros_(gate.weight)
            nn.init.zeros_(gate.bias)

    def word_logits(
        self, key: str, tokens: th.Tensor, words: th.Tensor, silent: th.Tensor
    ) -> th.Tensor:
        """Match scores of one image's cells, summed over the instruction's words.

        Args:
            key: The target key.
            tokens: Its cells ``(B, T, d)``.
            words: The query key's tokens ``(B, L, word_dim)``.
            silent: Bool ``(B, L)``, True where a word must not count (padding, a dropped
                instruction).

        Returns:
            ``(B, heads, T)`` attention logits (before the softmax with the empty slot).
        """
        b, t, _ = tokens.shape
        length = words.shape[1]
        h, d = self.num_heads, self.head_dim
        routes = len(self.groups[key]) + 1
        gate = sparsemax(GATE_SCALE * self.word_gate[key](words)).view(b, length, 1, routes)
        gate = gate * (~silent).to(gate.dtype).view(b, length, 1, 1)
        queries = self.word_query[key](words).view(b, length, h, routes, d)
        # Linear in the words, so sum their queries per route first: (B, h, routes, d).
        summed = (gate.unsqueeze(-1) * queries).sum(dim=1)
        parts = th.split(tokens, self.groups[key], dim=-1)
        keys = [lin(p).view(b, t, h, d) for lin, p in zip(self.group_key[key], parts)]
        keys.append(self.position[key].view(1, t, h, d).expand(b, t, h, d))
        return th.einsum("bhrd,bthrd->bht", summed, th.stack(keys, dim=3)) / math.sqrt(d)

    def read(
        self,
        key: str,
        tokens: th.Tensor,
        cond: th.Tensor,
        cell_logits: th.Tensor | None = None,
    ) -> th.Tensor:
        """Query one image's cells.

        Args:
            key: The target key.
            tokens: Its cells ``(B, T, d)``.
            cond: Query-key embeddings ``(B, cond_dim)``.
            cell_logits: ``(B, heads, T)`` match scores from :meth:`word_logits`
                (``word_queries``); the pooled query then scores only the empty slot.

        Returns:
            ``(B, heads * head_dim + heads)``: the attended values, then per head the
            attention mass on the cells (``1 -`` the empty slot's: how sure it found them).
        """
        b, t, _ = tokens.shape
        h, d = self.num_heads, self.head_dim
        q = self.query[key](cond).view(b, h, 1, d)
        v = self.position[key].expand(b, t, h * d)
        if self.values == "cells":
            v = v + self.value[key](tokens)
        v = v.reshape(b, t, h, d).transpose(1, 2)
        v = th.cat([self.empty_value[key].expand(b, h, d).unsqueeze(2), v], dim=2)
        if cell_logits is None:
            k = (self.key[key](tokens) + self.position[key]).view(b, t, h, d).transpose(1, 2)
            k = th.cat([self.empty_key[key].expand(b, h, d).unsqueeze(2), k], dim=2)
            logits = (q @ k.transpose(-2, -1)).squeeze(2) / math.sqrt(d)
        else:
            empty = (q.squeeze(2) * self.empty_key[key]).sum(-1, keepdim=True) / math.sqrt(d)
            logits = th.cat([empty, cell_logits], dim=-1)
        probs = logits.softmax(dim=-1)
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
        words = silent = None
        if self.word_queries:
            (text,) = self.query_keys
            words, padding = encoders[text].tokens(inputs[text])
            silent = th.zeros(words.shape[:2], dtype=th.bool, device=words.device)
            if padding is not None:
                silent = silent | padding
            if drop is not None:  # a dropped instruction must not speak through its words
                silent = silent | drop[:, self._column[text]].unsqueeze(1)
        for key in self.target_keys:
            tokens, _ = encoders[key].tokens(inputs[key])
            logits = None if words is None else self.word_logits(key, tokens, words, silent)
            feats[key] = self.read(key, tokens, cond, logits)
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
