"""The word-level tokenizer and fixed vocabulary shared by every mmrl environment.

One vocabulary for all environments means a text encoder pretrained on one task reads the
instructions of another without re-indexing. Ids are stable: ``0`` is padding, ``1`` is the
unknown word, and the words follow in the order of the sections below (new words are only
ever appended to a section's end, and new sections added at the end of ``_SECTIONS``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1

# Function words and verbs shared by all grammars.
_COMMON = (
    "the", "a", "an", "to", "and", "then", "of", "that", "is", "please", "in", "on", "at",
    "go", "drive", "move", "get", "reach", "head", "navigate", "find", "stay", "keep", "take",
    "with", "without", "your", "you", "it", "one", "object", "toward", "towards", "for",
)  # fmt: skip

# Words of the driving instruction grammar (mmrl/envs/driving/instructions.py).
_DRIVING: tuple[str, ...] = (
    "exit", "ramp", "off", "offramp", "highway", "road", "lane", "lanes", "left", "right",
    "middle", "center", "leftmost", "rightmost", "first", "second", "third", "fourth",
    "follow", "behind", "overtake", "pass", "car", "vehicle", "slowly", "slow", "fast",
    "quickly", "speed", "skip", "ignore", "continue", "straight", "ahead", "leave", "use",
    "red", "green", "blue", "yellow", "white", "purple", "orange", "cyan",
    "from", "next", "past", "do", "not", "low", "high", "down", "up", "tail",
)  # fmt: skip

# Words of the navigation instruction grammar (mmrl/envs/navigation/instructions.py).
_NAVIGATION: tuple[str, ...] = (
    "ball", "sphere", "cube", "box", "block", "cone", "pyramid", "cylinder", "pillar",
    "robot", "walk", "over", "there", "room", "which", "colored", "coloured",
)  # fmt: skip

_SECTIONS = (_COMMON, _DRIVING, _NAVIGATION)


def _build_vocab() -> tuple[str, ...]:
    words: list[str] = [PAD, UNK]
    seen = set(words)
    for section in _SECTIONS:
        for word in section:
            if word not in seen:
                seen.add(word)
                words.append(word)
    return tuple(words)


VOCAB: tuple[str, ...] = _build_vocab()
"""The exported vocabulary: ``VOCAB[i]`` is the word with token id ``i``."""

_WORD_RE = re.compile(r"[a-z0-9]+")


class Tokenizer:
    """Lower-cases, splits on non-alphanumerics, maps words to ids with UNK and pads with 0.

    Args:
        vocab: Ordered words; ``vocab[0]`` must be the padding token and ``vocab[1]`` UNK.
            Defaults to the shared :data:`VOCAB`.
        max_len: Length of every encoded sequence; longer instructions are truncated.
    """

    def __init__(self, vocab: Sequence[str] = VOCAB, max_len: int = 16) -> None:
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        if len(vocab) < 2 or vocab[0] != PAD or vocab[1] != UNK:
            raise ValueError(f"vocab must start with {PAD!r}, {UNK!r}; got {list(vocab[:2])}")
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocab contains duplicate words")
        self.vocab = tuple(vocab)
        self.max_len = int(max_len)
        self._ids = {word: i for i, word in enumerate(self.vocab)}
        self._cache: dict[str, np.ndarray] = {}

    @property
    def vocab_size(self) -> int:
        """Number of ids, padding and UNK included."""
        return len(self.vocab)

    @staticmethod
    def split(text: str) -> list[str]:
        """Splits text into lower-case alphanumeric words."""
        return _WORD_RE.findall(text.lower())

    def encode(self, text: str) -> np.ndarray:
        """Encodes one string.

        Returns:
            ``(max_len,)`` int64 token ids, ``0``-padded on the right.
        """
        cached = self._cache.get(text)
        if cached is None:
            ids = [self._ids.get(w, UNK_ID) for w in self.split(text)][: self.max_len]
            cached = np.zeros(self.max_len, dtype=np.int64)
            cached[: len(ids)] = ids
            # Instructions come from small grammars, so a cache makes encoding free in the
            # step loop; the bound stops unbounded growth for free-form text.
            if len(self._cache) < 100_000:
                self._cache[text] = cached
        return cached.copy()

    def encode_batch(self, texts: Iterable[str]) -> np.ndarray:
        """Encodes several strings into a ``(n, max_len)`` int64 array."""
        rows = [self.encode(t) for t in texts]
        if not rows:
            return np.zeros((0, self.max_len), dtype=np.int64)
        return np.stack(rows)

    def decode(self, ids: Iterable[int]) -> str:
        """Turns ids back into words, dropping padding."""
        return " ".join(self.vocab[int(i)] for i in ids if int(i) != PAD_ID)

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` that are not in the vocabulary."""
        return [w for w in self.split(text) if w not in self._ids]


DEFAULT_TOKENIZER = Tokenizer()
