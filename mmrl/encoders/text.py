"""Text encoders for tokenized instructions: GRU (default), bag-of-words, small transformer.

Inputs are token ids in a 1-D Box of length ``L`` with ``0`` as padding (the mmrl tokenizer's
convention). SB3's ``preprocess_obs`` casts integer Boxes to float; the encoders cast back to
long (ids below 2**24 are exact in float32) and clamp into the vocabulary so a stray value
cannot crash an embedding lookup.
"""

from __future__ import annotations

import numpy as np
import torch as th
from gymnasium import spaces
from torch import nn

from mmrl.encoders.base import Encoder, FiLMParams, register_encoder

#: Largest vocabulary inferred from a Box's ``high``; anything bigger is almost surely a
#: non-text key that needs ``encoders={key: "mlp"}``.
MAX_VOCAB = 1_000_000


def compact_tokens(ids: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """Move padding (id 0) to the end of each row, keeping the order of real tokens.

    After this, a left-to-right GRU's output at index ``length - 1`` has seen exactly the
    real tokens, whatever the padding side; no packing (and no host sync) is needed.

    Args:
        ids: Long tensor ``(B, L)``.

    Returns:
        ``(ids, lengths, padding)``: long ``(B, L)``, long ``(B,)``, bool ``(B, L)`` (True =
        padding).
    """
    pad = ids == 0
    order = th.argsort(pad.to(th.int8), dim=1, stable=True)
    lengths = (~pad).sum(dim=1)
    padding = th.arange(ids.shape[1], device=ids.device)[None, :] >= lengths[:, None]
    return ids.gather(1, order), lengths, padding


class _TextEncoder(Encoder):
    modality = "text"

    def __init__(
        self,
        space: spaces.Box,
        embed_dim: int,
        vocab_size: int | None,
        drop_unseen_words: bool = False,
    ) -> None:
        super().__init__(space, embed_dim)
        self.vocab_size = int(vocab_size) if vocab_size else int(np.max(space.high)) + 1
        self.seq_len = int(space.shape[0])
        self.drop_unseen_words = bool(drop_unseen_words)
        if self.drop_unseen_words:
            # Which ids a training-mode forward has shown, saved with the weights (so a
            # pretrained encoder hands it to fine-tuning, and a saved agent to evaluation).
            # Registered only with the option, so checkpoints without it load as before.
            self.register_buffer("seen_words", th.zeros(self.vocab_size, dtype=th.bool))

    @classmethod
    def check_space(cls, space: spaces.Space) -> None:
        if not (isinstance(space, spaces.Box) and len(space.shape) == 1):
            raise ValueError(f"text encoders need a 1-D Box of token ids, got {space}")
        high = np.max(space.high)
        if not np.isfinite(high) or high >= MAX_VOCAB or np.min(space.low) < 0:
            raise ValueError(
                f"text encoders need token ids in a finite range [0, V-1] (V <= {MAX_VOCAB}), "
                f"got low={np.min(space.low)}, high={high}; use encoders={{key: 'mlp'}} if "
                "this key is not text"
            )

    def token_ids(self, x: th.Tensor) -> th.Tensor:
        """Float ids ``(B, L)`` from ``preprocess_obs`` -> long ids ``(B, L)`` in range.

        With ``drop_unseen_words``, a training-mode call first marks its ids as seen, and
        any call then turns ids never seen in training into padding (0), as a tokenizer
        maps out-of-vocabulary words to an unknown token: a word no update has shaped
        keeps its random initial embedding, which says nothing yet moves the output (a
        held-out paraphrase's "please"). Until a first training-mode call nothing is
        dropped, so a from-scratch agent's first rollout sees its whole instruction.
        """
        ids = x.round().long().clamp_(0, self.vocab_size - 1)
        if not self.drop_unseen_words:
            return ids
        if self.training:
            self.seen_words[ids.flatten()] = True
            self.seen_words[0] = False  # padding is not a word (an empty instruction)
        # Tensor ops only (no ``if seen.any()``), so a GPU forward never waits on the host.
        keep = self.seen_words[ids] | ~self.seen_words.any()
        return ids * keep

    def _load_from_state_dict(
        self,
        state_dict: dict,
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # An encoder saved without the option (an earlier pretraining run) loads into one
        # with it: nothing is marked seen yet, so nothing is dropped until training starts.
        key = prefix + "seen_words"
        if self.drop_unseen_words and key not in state_dict:
            state_dict[key] = self.seen_words.clone()
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


@register_encoder("gru")
class GRUTextEncoder(_TextEncoder):
    """Word embedding + GRU, as in BabyAI's instruction encoder (Chevalier-Boisvert et al.
    2019). Padding is skipped by compacting real tokens to the front and reading the state at
    each row's last real token; an all-padding row embeds as the head applied to zeros.

    Args:
        space: 1-D Box of token ids (0 = padding).
        embed_dim: Width of the pooled embedding.
        word_dim: Word-embedding width.
        hidden_dim: GRU hidden width (also the token width).
        vocab_size: Override the vocabulary size inferred from ``space.high + 1``.
        drop_unseen_words: Read words that no training-mode forward has shown as padding
            (see :meth:`token_ids`); the ids seen are a buffer saved with the weights.
    """

    def __init__(
        self,
        space: spaces.Box,
        embed_dim: int = 64,
        word_dim: int = 32,
        hidden_dim: int = 64,
        vocab_size: int | None = None,
        drop_unseen_words: bool = False,
    ) -> None:
        super().__init__(space, embed_dim, vocab_size, drop_unseen_words)
        self.embedding = nn.Embedding(self.vocab_size, word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, hidden_dim, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden_dim, embed_dim), nn.ReLU())

    def _run(self, x: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        ids, lengths, padding = compact_tokens(self.token_ids(x))
        out, _ = self.gru(self.embedding(ids))
        return out, lengths, padding

    def forward(self, x: th.Tensor, film: FiLMParams | None = None) -> th.Tensor:
        """Token ids ``(B, L)`` (float or long) -> ``(B, embed_dim)``."""
        out, lengths, _ = self._run(x)
        last = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
        final = out.gather(1, last).squeeze(1) * (lengths > 0).unsqueeze(1).to(out.dtype)
        return self.head(final)

    def tokens(self, x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Token ids ``(B, L)`` -> GRU states ``(B, L, hidden_dim)`` and padding ``(B, L)``."""
        out, _, padding = self._run(x)
        return out, padding


@register_encoder("bow")
class BagOfWordsEncoder(_TextEncoder):
    """Mean of word embeddings over non-padding tokens (order-free baseline).

    Args:
        space: 1-D Box of token ids (0 = padding).
        embed_dim: Width of the pooled embedding.
        word_dim: Word-embedding width (also the token width).
        vocab_size: Override the vocabulary size inferred from ``space.high + 1``.
        linear: Map the mean embedding to the output without the ReLU, so an instruction's
            embedding is exactly the mean of its words' (an affine map of it): a word pair
            never seen together is then embedded from the two words' trained parts alone.
        embedding_std: Standard deviation of the initial word embeddings (default: torch's
            1). A word that training never shows keeps its initial embedding, so a small
            value makes such a word say little: a paraphrase's untrained words (Navigation's
            "please", "colored") then barely move the ``query`` fusion's ``word_queries``,
            which add every word's query at full weight.
        drop_unseen_words: Read words that no training-mode forward has shown as padding
            (see :meth:`token_ids`); the ids seen are a buffer saved with the weights.
    """

    def __init__(
        self,
        space: spaces.Box,
        embed_dim: int = 64,
        word_dim: int = 64,
        vocab_size: int | None = None,
        linear: bool = False,
        embedding_std: float | None = None,
        drop_unseen_words: bool = False,
    ) -> None:
        super().__init__(space, embed_dim, vocab_size, drop_unseen_words)
        self.embedding = nn.Embedding(self.vocab_size, word_dim, padding_idx=0)
        if embedding_std is not None:
            if not embedding_std > 0:
                raise ValueError(f"embedding_std must be > 0, got {embedding_std}")
            with th.no_grad():
                self.embedding.weight.normal_(0.0, float(embedding_std))
                self.embedding.weight[0].zero_()  # padding stays zero, as nn.Embedding's init
        # Same module layout either way (an Identity in place of the ReLU), so weights load
        # across the option.
        activation = nn.Identity() if linear else nn.ReLU()
        self.head = nn.Sequential(nn.Linear(word_dim, embed_dim), activation)

    def forward(self, x: th.Tensor, film: FiLMParams | None = None) -> th.Tensor:
        """Token ids ``(B, L)`` -> ``(B, embed_dim)``."""
        ids = self.token_ids(x)
        # Explicit mask rather than relying on padding_idx's zero row, which loaded or
        # hand-edited weights need not keep.
        keep = (ids != 0).unsqueeze(-1).to(self.embedding.weight.dtype)
        summed = (self.embedding(ids) * keep).sum(dim=1)
        return self.head(summed / keep.sum(dim=1).clamp(min=1))

    def tokens(self, x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Token ids ``(B, L)`` -> word embeddings ``(B, L, word_dim)`` and padding ``(B, L)``."""
        ids = self.token_ids(x)
        return self.embedding(ids), ids == 0


@register_encoder("transformer")
class TransformerTextEncoder(_TextEncoder):
    """Small pre-LN transformer encoder over words with learned positions, masked mean pool.

    Args:
        space: 1-D Box of token ids (0 = padding).
        embed_dim: Width of the pooled embedding.
        model_dim: Transformer width (also the token width).
        num_layers: Transformer layers.
        num_heads: Attention heads.
        vocab_size: Override the vocabulary size inferred from ``space.high + 1``.
        drop_unseen_words: Read words that no training-mode forward has shown as padding
            (see :meth:`token_ids`); the ids seen are a buffer saved with the weights.
    """

    def __init__(
        self,
        space: spaces.Box,
        embed_dim: int = 64,
        model_dim: int = 64,
        num_layers: int = 1,
        num_heads: int = 4,
        vocab_size: int | None = None,
        drop_unseen_words: bool = False,
    ) -> None:
        super().__init__(space, embed_dim, vocab_size, drop_unseen_words)
        self.embedding = nn.Embedding(self.vocab_size, model_dim, padding_idx=0)
        self.position = nn.Parameter(th.randn(self.seq_len, model_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            model_dim,
            num_heads,
            dim_feedforward=2 * model_dim,
            dropout=0.0,  # RL updates are noisy enough; dropout also breaks PPO's ratio.
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(model_dim, embed_dim), nn.ReLU())

    def _run(self, x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        ids = self.token_ids(x)
        padding = ids == 0
        # An all-padding row would make every attention logit -inf (NaN); let it attend to
        # its first (padding) position instead.
        attn_padding = padding.clone()
        attn_padding[:, 0] &= ~padding.all(dim=1)
        out = self.transformer(
            self.embedding(ids) + self.position, src_key_padding_mask=attn_padding
        )
        return out, padding

    def forward(self, x: th.Tensor, film: FiLMParams | None = None) -> th.Tensor:
        """Token ids ``(B, L)`` -> ``(B, embed_dim)``."""
        out, padding = self._run(x)
        keep = (~padding).unsqueeze(-1).to(out.dtype)
        pooled = (out * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
        return self.head(pooled)

    def tokens(self, x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Token ids ``(B, L)`` -> contextual tokens ``(B, L, model_dim)``, padding ``(B, L)``."""
        return self._run(x)
