"""String instructions to token ids, with vocabularies read from the env's grammar."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.envs.config import check_int
from mmrl.envs.tokenizer import PAD, UNK, VOCAB, Tokenizer
from mmrl.wrappers._checks import require_dict_space, require_keys

# Past this many placeholder combinations a mission grammar is read one placeholder at a time
# instead of exhaustively, which still sees every template and placeholder word.
_MAX_ENUMERATED_MISSIONS = 4096

# Words of BabyAI's instruction grammar that are not object, colour or location names: the
# literals of the ``surface`` methods in minigrid/envs/babyai/core/verifier.py ("go to",
# "pick up", "put ... next to", "open", "in front of you", "on your", ", then", "after you",
# "and", articles and the generic "object").
_BABYAI_FUNCTION_WORDS = (
    "go", "to", "pick", "up", "put", "next", "open", "then", "after", "and", "you", "your",
    "a", "the", "object", "in", "front", "of", "behind", "on", "left", "right",
)  # fmt: skip


def is_text_space(space: spaces.Space) -> bool:
    """Whether ``space`` holds strings: Gymnasium ``Text`` or a string space such as MiniGrid's
    ``MissionSpace`` (whose dtype is a NumPy unicode dtype)."""
    if isinstance(space, spaces.Text):
        return True
    dtype = getattr(space, "dtype", None)
    return dtype is not None and np.dtype(dtype).kind == "U"


def babyai_words() -> list[str]:
    """Every word BabyAI's instruction grammar can produce (needs ``minigrid``).

    BabyAI levels expose a dummy ``MissionSpace`` (it always samples ``"go"``); their missions
    come from the verifier's instruction classes, so the vocabulary is read from there.
    """
    from minigrid.core.constants import COLOR_NAMES
    from minigrid.envs.babyai.core.verifier import LOC_NAMES, OBJ_TYPES

    return [*_BABYAI_FUNCTION_WORDS, *COLOR_NAMES, *OBJ_TYPES, *LOC_NAMES]


def mission_space_words(space: Any) -> list[str]:
    """Every word a MiniGrid ``MissionSpace`` (``mission_func`` + ``ordered_placeholders``)
    can produce.

    Small grammars are enumerated exhaustively; large ones are read one placeholder at a time
    with the others fixed, which covers every template word and every placeholder word.
    """
    func = space.mission_func
    placeholders: list[list[str]] = [list(p) for p in (space.ordered_placeholders or [])]
    if not placeholders:
        return Tokenizer.split(func())
    words: list[str] = []
    for values in placeholders:
        for value in values:
            words.extend(Tokenizer.split(str(value)))
    if math.prod(len(p) for p in placeholders) <= _MAX_ENUMERATED_MISSIONS:
        combos: Iterable[Sequence[str]] = itertools.product(*placeholders)
    else:
        base = [p[0] for p in placeholders]
        combos = (
            [*base[:i], value, *base[i + 1 :]]
            for i, values in enumerate(placeholders)
            for value in values
        )
    for combo in combos:
        words.extend(Tokenizer.split(func(*combo)))
    return words


def grammar_words(env: gym.Env, key: str) -> list[str] | None:
    """Words the env's instruction generator can produce for observation ``key``, if known.

    Recognises BabyAI levels and MiniGrid ``MissionSpace`` grammars; returns ``None`` otherwise.
    """
    space = env.observation_space[key] if isinstance(env.observation_space, spaces.Dict) else None
    if space is None:
        return None
    if type(space).__name__ == "BabyAIMissionSpace":
        return babyai_words()
    if hasattr(space, "mission_func") and hasattr(space, "ordered_placeholders"):
        return mission_space_words(space)
    return None


def build_vocab(words: Iterable[str] | None, extend_shared: bool = False) -> tuple[str, ...]:
    """Builds a tokenizer vocabulary (``<pad>`` at id 0, ``<unk>`` at id 1).

    Args:
        words: Words or phrases (lower-cased and split like instructions); leading ``<pad>`` /
            ``<unk>`` entries are accepted and kept in place. ``None`` gives the shared
            :data:`~mmrl.envs.tokenizer.VOCAB`.
        extend_shared: Start from the shared ``VOCAB`` and append the new words (sorted), so
            words the mmrl envs also use keep their ids and a text encoder trained on one
            transfers to the other. Otherwise the vocabulary is ``<pad>``, ``<unk>`` and the
            words in the given order.

    Returns:
        The ordered vocabulary.
    """
    if words is None:
        return VOCAB
    flat: list[str] = []
    for entry in words:
        if entry in (PAD, UNK):
            continue
        flat.extend(Tokenizer.split(entry))
    if extend_shared:
        known = set(VOCAB)
        return VOCAB + tuple(sorted({w for w in flat if w not in known}))
    return (PAD, UNK, *dict.fromkeys(flat))


class TextToTokens(gym.ObservationWrapper):
    """Turns a string observation (Gymnasium ``Text``, MiniGrid mission) into token ids.

    The output is an int64 ``Box`` of shape ``(max_len,)``, bounds ``[0, vocab_size - 1]``:
    ids right-padded with ``0``, unknown words mapped to ``1`` (UNK), instructions longer than
    ``max_len`` words truncated. The raw string is also put in ``info["instruction"]`` (unless
    the env already sets it), as mmrl's own envs do.

    Vocabulary, in order of preference:

    1. ``vocab`` if given (words or phrases; ``<pad>``/``<unk>`` are prepended).
    2. The env's grammar: for MiniGrid ``MissionSpace`` every word ``mission_func`` can produce
       from its ``ordered_placeholders``, for BabyAI levels the words of the BabyAI instruction
       grammar. These are appended to mmrl's shared ``VOCAB``, so words shared with mmrl's envs
       keep the same ids.
    3. mmrl's shared ``VOCAB``; a warning names the first unknown words seen.

    Args:
        env: Environment with a flat ``spaces.Dict`` observation space.
        key: Observation key holding the string.
        vocab: Word list, or ``None`` to read it from the env's grammar (see above).
        max_len: Length of the token-id vector (>= 1).
        output_key: Observation key of the token ids (default ``"text"``).
        keep_original: Keep the string under ``key`` too; by default ``key`` is removed (SB3
            cannot batch strings).

    Attributes:
        vocab: The vocabulary: ``vocab[i]`` is the word of id ``i``.
        tokenizer: The :class:`~mmrl.envs.tokenizer.Tokenizer` in use.

    Raises:
        ValueError: On a non-Dict observation space, a missing ``key``, a ``key`` whose space
            does not hold strings, an ``output_key`` that would overwrite another key or
            collide with a kept original, or ``max_len`` < 1.
    """

    def __init__(
        self,
        env: gym.Env,
        key: str,
        vocab: Sequence[str] | None = None,
        max_len: int = 16,
        output_key: str = "text",
        keep_original: bool = False,
    ) -> None:
        super().__init__(env)
        owner = "TextToTokens"
        space = require_dict_space(env.observation_space, owner)
        require_keys(space, [key], owner)
        if not is_text_space(space[key]):
            raise ValueError(
                f"{owner}: key {key!r} must be a string space (gymnasium.spaces.Text or a "
                f"MiniGrid MissionSpace); got {space[key]!r}"
            )
        check_int("TextToTokens max_len", max_len, 1)
        if output_key != key and output_key in space.spaces:
            raise ValueError(
                f"{owner}: output_key {output_key!r} already exists in the observation space; "
                f"choose another output_key (existing keys: {', '.join(space.spaces)})"
            )
        if keep_original and output_key == key:
            raise ValueError(
                f"{owner}: keep_original=True needs an output_key different from key {key!r}"
            )
        if vocab is not None:
            words = build_vocab(vocab)
            self.vocab_source = "given"
        else:
            grammar = grammar_words(env, key)
            words = build_vocab(grammar, extend_shared=True) if grammar is not None else VOCAB
            self.vocab_source = "grammar" if grammar is not None else "shared"
        self.tokenizer = Tokenizer(vocab=words, max_len=max_len)
        self.vocab: tuple[str, ...] = self.tokenizer.vocab
        self.key = key
        self.output_key = output_key
        self.keep_original = keep_original
        self._warned_unknown = False

        token_space = spaces.Box(
            low=0, high=self.tokenizer.vocab_size - 1, shape=(max_len,), dtype=np.int64
        )
        out_spaces: dict[str, spaces.Space] = {}
        for k, sub in space.spaces.items():
            if k == key:
                if keep_original:
                    out_spaces[k] = sub
                out_spaces[output_key] = token_space
            else:
                out_spaces[k] = sub
        self.observation_space = spaces.Dict(out_spaces)

    @property
    def vocab_size(self) -> int:
        """Number of token ids (padding and UNK included)."""
        return self.tokenizer.vocab_size

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        text = str(observation[self.key])
        if not self._warned_unknown and self.vocab_source == "shared":
            unknown = self.tokenizer.unknown_words(text)
            if unknown:
                self._warned_unknown = True
                gym.logger.warn(
                    f"TextToTokens: words {unknown} of {text!r} are not in mmrl's shared "
                    "vocabulary and read as UNK; pass vocab=[...] with the env's words"
                )
        out = {k: v for k, v in observation.items() if k != self.key or self.keep_original}
        out[self.output_key] = self.tokenizer.encode(text)
        return out

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        info.setdefault("instruction", str(obs[self.key]))
        return self.observation(obs), info

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info.setdefault("instruction", str(obs[self.key]))
        return self.observation(obs), reward, terminated, truncated, info
