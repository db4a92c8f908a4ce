"""Token-based fusions: ``attention`` (TransFuser-style) and ``perceiver``."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch as th
from torch import nn
from torch.nn import functional as F

from mmrl.encoders import Encoder
from mmrl.fusion.base import Fusion, register_fusion

#: Init std of the learned per-token position embeddings. Larger than BERT/ViT's 0.02 on
#: purpose: projected tokens here have a std of ~0.2-0.5, and shift-equivariant encoders (the
#: circular lidar CNN especially) give tokens whose mean is nearly invariant to *where*
#: things are; with 0.02 positions the pooled features start out blind to bearing and
#: training can sit on a plateau (seen in mmrl.testing.fit_routing with the lidar signal).
POSITION_INIT_STD = 0.3


class MultiHeadAttention(nn.Module):
    """Multi-head attention that can also return its attention probabilities.

    Uses ``F.scaled_dot_product_attention`` (fused kernels) unless the probabilities are
    requested; then it computes them explicitly (only done for the small pooling /
    cross-attention step that the modality weights are read from).

    Args:
        dim: Query/model width (divisible by ``num_heads``).
        num_heads: Number of heads.
        context_dim: Width of keys/values input (default ``dim``).
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"model width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        x: th.Tensor,
        context: th.Tensor,
        padding: th.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """Attend from ``x`` ``(B, Tq, dim)`` to ``context`` ``(B, Tk, context_dim)``.

        Args:
            x: Queries.
            context: Keys/values.
            padding: Optional bool ``(B, Tk)``, True = ignore that key.
            need_weights: Also return the probabilities.

        Returns:
            ``(out (B, Tq, dim), probs (B, heads, Tq, Tk) or None)``.
        """
        b, tq, dim = x.shape
        tk, h = context.shape[1], self.num_heads
        q = self.q(x).view(b, tq, h, dim // h).transpose(1, 2)
        k, v = self.kv(context).view(b, tk, 2, h, dim // h).permute(2, 0, 3, 1, 4)
        bias = None if padding is None else padding_bias(padding, q.dtype)
        probs = None
        if need_weights:
            logits = (q @ k.transpose(-2, -1)) / math.sqrt(dim // h)
            probs = (logits if bias is None else logits + bias).softmax(dim=-1)
            out = probs @ v
        else:
            # An additive float mask: on CPU (torch 2.x) SDPA with a bool mask can fall back
            # to a much slower path for some head sizes.
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.out(out.transpose(1, 2).reshape(b, tq, dim)), probs


def padding_bias(padding: th.Tensor, dtype: th.dtype) -> th.Tensor:
    """Bool padding ``(B, T)`` (True = ignore) -> additive mask ``(B, 1, 1, T)`` (0 / -inf)."""
    bias = th.zeros(padding.shape, dtype=dtype, device=padding.device)
    return bias.masked_fill(padding, float("-inf"))[:, None, None, :]


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer block (Xiong et al. 2020: stable without warm-up, which
    matters with RL's small, noisy updates)."""

    def __init__(self, dim: int, num_heads: int, ff_mult: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Linear(ff_mult * dim, dim)
        )

    def forward(self, x: th.Tensor, padding: th.Tensor | None = None) -> th.Tensor:
        """Tokens ``(B, T, dim)``, optional padding ``(B, T)`` -> ``(B, T, dim)``."""
        h = self.norm1(x)
        x = x + self.attn(h, h, padding)[0]
        return x + self.ff(self.norm2(x))


class TokenFusion(Fusion):
    """Base of fusions over tokens from every modality.

    Each modality's tokens (``Encoder.tokens``: CNN grid cells, lidar sectors, words, or one
    token for other keys) are projected to ``model_dim`` and get a learned modality embedding
    plus a learned per-position embedding. A dropped modality becomes a single learned
    "missing" token (its first slot) with its other tokens masked out, so masking removes
    the modality's content but keeps tensor shapes fixed.

    Token fusions do not use the encoders' pooled heads (the final ``Linear`` of the image,
    lidar and text encoders); those only serve ``MultimodalExtractor.encode``, e.g. for
    pretraining, and get no gradient from RL losses.

    Args:
        encoders: The extractor's encoders.
        features_dim: Output width.
        model_dim: Token width (default: the largest encoder ``embed_dim``).
    """

    def __init__(
        self, encoders: Mapping[str, Encoder], features_dim: int, model_dim: int | None = None
    ) -> None:
        super().__init__(encoders, features_dim)
        dim = int(model_dim or max(e.embed_dim for e in encoders.values()))
        self.model_dim = dim
        shapes = {key: enc.token_shape() for key, enc in encoders.items()}
        self.proj = nn.ModuleDict({k: nn.Linear(d, dim) for k, (_, d) in shapes.items()})
        self.position = nn.ParameterDict(
            {k: nn.Parameter(th.randn(t, dim) * POSITION_INIT_STD) for k, (t, _) in shapes.items()}
        )
        n = len(self.modalities)
        self.modality_embed = nn.Parameter(th.randn(n, dim) * 0.02)
        self.missing = nn.Parameter(th.randn(n, dim) * 0.02)
        # (T_total, n) one-hot: which modality each token belongs to, to sum attention mass.
        segments = th.cat(
            [th.full((shapes[k][0],), i, dtype=th.long) for i, k in enumerate(self.modalities)]
        )
        self.register_buffer("segments", F.one_hot(segments, n).float(), persistent=False)

    def tokens(
        self,
        inputs: Mapping[str, th.Tensor],
        encoders: Mapping[str, Encoder],
        drop: th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor]:
        """All modalities' tokens ``(B, T_total, model_dim)`` and padding ``(B, T_total)``."""
        all_tokens, all_padding = [], []
        for i, key in enumerate(self.modalities):
            toks, padding = encoders[key].tokens(inputs[key])
            toks = self.proj[key](toks) + self.position[key] + self.modality_embed[i]
            b, t = toks.shape[:2]
            if padding is None:
                padding = th.zeros(b, t, dtype=th.bool, device=toks.device)
            else:
                # Keep one slot of an all-padding row (e.g. an empty instruction) attendable
                # so softmax never sees only -inf.
                padding = padding.clone()
                padding[:, 0] &= ~padding.all(dim=1)
            if drop is not None:
                dropped = drop[:, i].unsqueeze(1)
                first = th.where(dropped, self.missing[i] + self.modality_embed[i], toks[:, 0])
                toks = th.cat([first.unsqueeze(1), toks[:, 1:]], dim=1)
                padding = th.cat([padding[:, :1] & ~dropped, padding[:, 1:] | dropped], dim=1)
            all_tokens.append(toks)
            all_padding.append(padding)
        return th.cat(all_tokens, dim=1), th.cat(all_padding, dim=1)

    def _record_attention(self, probs: th.Tensor) -> None:
        """Attention probabilities ``(B, heads, Tq, T_total)`` -> mass per modality."""
        with th.no_grad():
            self._record_weights(probs.detach().mean(dim=(0, 1, 2)) @ self.segments)


@register_fusion("attention")
class AttentionFusion(TokenFusion):
    """Self-attention over the tokens of all modalities, then attention pooling.

    In the spirit of TransFuser (Prakash et al. 2021; Chitta et al. 2022), which fuses camera
    and lidar feature-map cells with a transformer, extended to word and vector tokens.
    ``num_queries`` learned queries then attention-pool the normalised tokens (a
    projection-free form of Lee et al. 2019's "PMA": the transformer block already
    transforms the tokens, and skipping key/value projections over every token keeps the
    CPU cost down); their attention mass per modality is what :meth:`modality_weights`
    reports.

    Args:
        encoders: The extractor's encoders.
        features_dim: Output width.
        model_dim: Token width (``None``: the encoders' ``embed_dim``). The default 48 with
            2 heads is sized for CPU training: self-attention over ~40 tokens at batch 256
            costs about as much as the encoders, and at width 64 / 4 heads the extractor
            falls to ~0.6x the throughput of SB3's CombinedExtractor on a 2-core CPU
            (``scripts/bench_extractors.py``); at 48 / 2 it stays above 0.75x.
        num_layers: Transformer blocks.
        num_heads: Attention heads.
        ff_mult: Feed-forward expansion.
        num_queries: Pooling queries (the output concatenates them).
    """

    def __init__(
        self,
        encoders: Mapping[str, Encoder],
        features_dim: int,
        model_dim: int | None = 48,
        num_layers: int = 1,
        num_heads: int = 2,
        ff_mult: int = 2,
        num_queries: int = 4,
    ) -> None:
        super().__init__(encoders, features_dim, model_dim)
        dim = self.model_dim
        self.blocks = nn.ModuleList(
            [TransformerBlock(dim, num_heads, ff_mult) for _ in range(num_layers)]
        )
        self.norm = nn.LayerNorm(dim)
        # Unit-scale queries against layer-normed tokens give pooling logits of unit variance:
        # selective from the start. Tiny (0.02) queries pool uniformly, i.e. take the mean,
        # which is blind to where things are and sometimes stalled routing on lidar.
        self.queries = nn.Parameter(th.randn(num_queries, dim))
        self.head = nn.Sequential(nn.Linear(num_queries * dim, features_dim), nn.ReLU())

    def forward(
        self,
        inputs: Mapping[str, th.Tensor],
        encoders: Mapping[str, Encoder],
        drop: th.Tensor | None = None,
    ) -> th.Tensor:
        x, padding = self.tokens(inputs, encoders, drop)
        for block in self.blocks:
            x = block(x, padding)
        x = self.norm(x)
        logits = th.einsum("btd,qd->bqt", x, self.queries) / math.sqrt(self.model_dim)
        probs = logits.masked_fill(padding.unsqueeze(1), float("-inf")).softmax(dim=-1)
        self._record_attention(probs.unsqueeze(1))
        return self.head((probs @ x).flatten(1))


@register_fusion("perceiver")
class PerceiverFusion(TokenFusion):
    """A small learned latent array cross-attends to all tokens, then self-attends
    (Perceiver, Jaegle et al. 2021); the output is the mean latent. Cost is linear in the
    number of tokens. Weights: cross-attention mass per modality.

    Args:
        encoders: The extractor's encoders.
        features_dim: Output width.
        model_dim: Token and latent width (default: the encoders' ``embed_dim``).
        num_latents: Size of the latent array.
        num_layers: Latent self-attention blocks after the cross-attention.
        num_heads: Attention heads.
        ff_mult: Feed-forward expansion.
    """

    def __init__(
        self,
        encoders: Mapping[str, Encoder],
        features_dim: int,
        model_dim: int | None = None,
        num_latents: int = 16,
        num_layers: int = 1,
        num_heads: int = 4,
        ff_mult: int = 2,
    ) -> None:
        super().__init__(encoders, features_dim, model_dim)
        dim = self.model_dim
        self.latents = nn.Parameter(th.randn(num_latents, dim) * 0.02)
        self.norm_latents = nn.LayerNorm(dim)
        self.norm_tokens = nn.LayerNorm(dim)
        self.cross = MultiHeadAttention(dim, num_heads)
        self.cross_ff = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, ff_mult * dim),
            nn.GELU(),
            nn.Linear(ff_mult * dim, dim),
        )
        self.blocks = nn.ModuleList(
            [TransformerBlock(dim, num_heads, ff_mult) for _ in range(num_layers)]
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.Linear(dim, features_dim), nn.ReLU())

    def forward(
        self,
        inputs: Mapping[str, th.Tensor],
        encoders: Mapping[str, Encoder],
        drop: th.Tensor | None = None,
    ) -> th.Tensor:
        x, padding = self.tokens(inputs, encoders, drop)
        z = self.latents.expand(x.shape[0], -1, -1)
        attended, probs = self.cross(
            self.norm_latents(z), self.norm_tokens(x), padding, need_weights=True
        )
        self._record_attention(probs)
        z = z + attended
        z = z + self.cross_ff(z)
        for block in self.blocks:
            z = block(z)
        return self.head(self.norm(z).mean(dim=1))
