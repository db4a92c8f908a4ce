"""Per-modality sensor corruptions: typed configs that corrupt *batches* of observations.

:class:`CameraNoise`, :class:`LidarNoise` and :class:`TextNoise` each validate their parameters
and apply them to a batch (leading axis ``n``), so :class:`~mmrl.wrappers.SensorNoise` and
:class:`~mmrl.wrappers.VecSensorNoise` share one implementation. :func:`parse_noise_spec` reads
the compact command-line form documented in :mod:`mmrl.wrappers.noise`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from mmrl.envs.config import build_config, check_float, check_int
from mmrl.envs.tokenizer import PAD_ID, VOCAB, Tokenizer
from mmrl.wrappers._checks import check_probability

MODALITIES = ("camera", "lidar", "text")
"""Modalities :class:`SensorNoise` knows how to corrupt."""

SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("go", "drive", "head", "move", "navigate"),
    ("car", "vehicle"),
    ("ball", "sphere"),
    ("cube", "box", "block"),
    ("cylinder", "pillar"),
    ("toward", "towards"),
    ("fast", "quickly"),
    ("middle", "center"),
    ("overtake", "pass"),
    ("colored", "coloured"),
)
"""Built-in synonym groups of the mmrl driving/navigation grammars (and MiniGrid's ``box``).

Only interchangeable words are grouped: swapping must not change what the instruction asks for,
otherwise the "noise" would be a different task. That rules out near-synonyms that break a
phrase of the grammars (``slow``/``slowly``: "slow down"), or name distinct objects there
(``cone``/``pyramid``: Navigation's ``SHAPE_WORDS`` gives ``cone`` no synonym). Words missing
from an env's vocabulary are ignored for that env.
"""


@dataclasses.dataclass(frozen=True)
class CameraNoise:
    """Camera corruption, applied in the order occlusion, blur, brightness, noise.

    That order follows the physics: an occluder sits in front of the lens, the optics blur,
    exposure shifts brightness, and the sensor adds noise last.

    Attributes:
        noise_std: Standard deviation of additive Gaussian pixel noise, as a fraction of the full
            intensity range (``0.1`` is 25.5 grey levels), in ``[0, 1]``.
        blur: Side of the Gaussian blur kernel in pixels: ``0`` or ``1`` for none, else an odd
            number up to 99.
        brightness: Largest brightness shift, as a fraction of the full range, in ``[0, 1]``;
            each observation is shifted by a uniform draw from ``[-brightness, brightness]``.
        occlusion: Side of a black square occluder as a fraction of the image height and width,
            in ``[0, 1]``, placed uniformly at random in every observation.
    """

    noise_std: float = 0.0
    blur: int = 0
    brightness: float = 0.0
    occlusion: float = 0.0

    def __post_init__(self) -> None:
        check_float("camera.noise_std", self.noise_std, 0.0, 1.0)
        check_int("camera.blur", self.blur, 0, 99)
        if self.blur > 1 and self.blur % 2 == 0:
            raise ValueError(f"camera.blur must be 0, 1 or an odd kernel size, got {self.blur}")
        check_float("camera.brightness", self.brightness, 0.0, 1.0)
        check_float("camera.occlusion", self.occlusion, 0.0, 1.0)

    @property
    def active(self) -> bool:
        """Whether this config changes observations at all."""
        return bool(self.noise_std or self.blur > 1 or self.brightness or self.occlusion)

    def apply(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Corrupts a batch of images.

        Args:
            images: ``(n, H, W, C)`` uint8.
            rng: Source of randomness.

        Returns:
            A new ``(n, H, W, C)`` uint8 array.
        """
        out = np.array(images, dtype=np.uint8, copy=True)
        n, height, width = out.shape[:3]
        if self.occlusion:
            ph, pw = round(self.occlusion * height), round(self.occlusion * width)
            tops = rng.integers(0, height - ph + 1, size=n)
            lefts = rng.integers(0, width - pw + 1, size=n)
            for i in range(n):
                out[i, tops[i] : tops[i] + ph, lefts[i] : lefts[i] + pw] = 0
        if self.blur > 1:
            k = self.blur
            for i in range(n):
                # cv2 drops a trailing channel axis of size 1, hence the reshape.
                out[i] = cv2.GaussianBlur(out[i], (k, k), 0).reshape(out[i].shape)
        if self.brightness or self.noise_std:
            pixels = out.astype(np.float32)
            if self.brightness:
                shift = rng.uniform(-self.brightness, self.brightness, size=(n, 1, 1, 1))
                pixels += np.float32(255.0) * shift.astype(np.float32)
            if self.noise_std:
                pixels += rng.normal(0.0, 255.0 * self.noise_std, size=pixels.shape).astype(
                    np.float32
                )
            out = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        return out


@dataclasses.dataclass(frozen=True)
class LidarNoise:
    """Lidar corruption.

    Attributes:
        noise_std: Standard deviation of Gaussian noise added to the normalized ranges, in
            ``[0, 1]``; results are clipped to the space bounds.
        dropout: Probability, per beam and step, that a beam returns no echo and reads the space's
            maximum (max range, as mmrl's own lidars report a missed echo), in ``[0, 1]``.
    """

    noise_std: float = 0.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_float("lidar.noise_std", self.noise_std, 0.0, 1.0)
        check_probability("lidar.dropout", self.dropout)

    @property
    def active(self) -> bool:
        """Whether this config changes observations at all."""
        return bool(self.noise_std or self.dropout)

    def apply(
        self, scans: np.ndarray, rng: np.random.Generator, low: float = 0.0, high: float = 1.0
    ) -> np.ndarray:
        """Corrupts a batch of scans.

        Args:
            scans: ``(n, N)`` float ranges (any trailing shape works).
            rng: Source of randomness.
            low: Lowest value allowed by the space.
            high: Highest value allowed by the space; dropped beams read this.

        Returns:
            A new array of the same shape and dtype.
        """
        dtype = scans.dtype
        out = np.array(scans, dtype=np.float64, copy=True)
        if self.noise_std:
            out += rng.normal(0.0, self.noise_std, size=out.shape)
        if self.dropout:
            out[rng.random(out.shape) < self.dropout] = high
        return np.clip(out, low, high).astype(dtype)


@dataclasses.dataclass(frozen=True)
class TextNoise:
    """Instruction corruption, on token ids or on raw strings.

    Attributes:
        word_dropout: Probability that each word is removed (later words move up, padding fills
            the end), in ``[0, 1]``.
        synonym_swap: Probability that each word with synonyms is replaced by a different,
            uniformly drawn synonym of its group, in ``[0, 1]``.
        vocab: Vocabulary that the token ids index (``vocab[i]`` is the word of id ``i``).
            ``None`` means mmrl's shared :data:`~mmrl.envs.tokenizer.VOCAB`; pass
            ``TextToTokens(...).vocab`` for text tokenized by that wrapper. Unused for strings.
        synonyms: Synonym groups; ``None`` means the built-in :data:`SYNONYMS`.
    """

    word_dropout: float = 0.0
    synonym_swap: float = 0.0
    vocab: tuple[str, ...] | None = None
    synonyms: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        check_probability("text.word_dropout", self.word_dropout)
        check_probability("text.synonym_swap", self.synonym_swap)
        # Normalise lists (e.g. from YAML) to tuples so the frozen config stays hashable.
        if self.vocab is not None:
            object.__setattr__(self, "vocab", tuple(self.vocab))
        if self.synonyms is not None:
            object.__setattr__(self, "synonyms", tuple(tuple(g) for g in self.synonyms))
        groups = self.synonyms if self.synonyms is not None else SYNONYMS
        word_groups: dict[str, tuple[str, ...]] = {}
        for group in groups:
            for word in group:
                word_groups[word] = tuple(w for w in group if w != word)
        vocab = self.vocab if self.vocab is not None else VOCAB
        ids = {w: i for i, w in enumerate(vocab)}
        id_groups = {
            ids[w]: np.array([ids[s] for s in others if s in ids], dtype=np.int64)
            for w, others in word_groups.items()
            if w in ids
        }
        object.__setattr__(self, "_word_groups", word_groups)
        object.__setattr__(self, "_id_groups", {k: v for k, v in id_groups.items() if v.size})

    @property
    def active(self) -> bool:
        """Whether this config changes observations at all."""
        return bool(self.word_dropout or self.synonym_swap)

    def _corrupt(self, words: list[Any], groups: Mapping[Any, Sequence[Any]], rng) -> list[Any]:
        if self.word_dropout:
            keep = rng.random(len(words)) >= self.word_dropout
            words = [w for w, k in zip(words, keep) if k]
        if self.synonym_swap:
            swap = rng.random(len(words)) < self.synonym_swap
            for j, word in enumerate(words):
                others = groups.get(word)
                if swap[j] and others is not None and len(others):
                    words[j] = others[int(rng.integers(len(others)))]
        return words

    def apply_tokens(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Corrupts a batch of token-id sequences.

        Args:
            tokens: ``(n, L)`` integer ids, ``0`` = padding.
            rng: Source of randomness.

        Returns:
            A new ``(n, L)`` array of the same dtype, still right-padded with ``0``.
        """
        out = np.zeros_like(tokens)
        groups = self._id_groups  # type: ignore[attr-defined]
        for i, row in enumerate(tokens):
            words = [int(t) for t in row if t != PAD_ID]
            words = self._corrupt(words, groups, rng)
            out[i, : len(words)] = words
        return out

    def apply_strings(self, texts: Sequence[str], rng: np.random.Generator) -> list[str]:
        """Corrupts a batch of strings (lower-cased and split as by :class:`Tokenizer`)."""
        groups = self._word_groups  # type: ignore[attr-defined]
        return [" ".join(self._corrupt(Tokenizer.split(t), groups, rng)) for t in texts]


_CONFIG_CLASSES: dict[str, type] = {"camera": CameraNoise, "lidar": LidarNoise, "text": TextNoise}

NoiseArg = float | Mapping[str, Any] | CameraNoise | LidarNoise | TextNoise | None


def level_to_params(modality: str, level: float) -> dict[str, float]:
    """Expands a single noise level into the parameters it stands for (see module docstring)."""
    if modality == "camera":
        return {"noise_std": level}
    if modality == "lidar":
        return {"noise_std": level, "dropout": level}
    if modality == "text":
        return {"word_dropout": level, "synonym_swap": level}
    raise ValueError(f"unknown modality {modality!r}; allowed: {', '.join(MODALITIES)}")


def build_noise_config(modality: str, value: NoiseArg) -> Any:
    """Turns a level, a parameter mapping or a config object into the modality's config.

    Raises:
        ValueError: On an unknown modality or parameter, or an out-of-range value.
    """
    if modality not in _CONFIG_CLASSES:
        raise ValueError(f"unknown modality {modality!r}; allowed: {', '.join(MODALITIES)}")
    cls = _CONFIG_CLASSES[modality]
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{modality} noise must be a level, a mapping or {cls.__name__}")
    if isinstance(value, int | float):
        return cls(**level_to_params(modality, float(value)))
    if isinstance(value, Mapping):
        return build_config(cls, value, owner=f"SensorNoise {modality}")
    raise ValueError(
        f"{modality} noise must be a number (level), a mapping of parameters or "
        f"{cls.__name__}; got {value!r}"
    )


def _parse_number(text: str, item: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"noise spec item {item!r}: {text!r} is not a number") from None


def parse_noise_spec(spec: str) -> dict[str, dict[str, float | int]]:
    """Parses the compact command-line form into per-modality parameter mappings.

    Args:
        spec: Comma-separated ``modality=level`` or ``modality.param=value`` items, e.g.
            ``"camera=0.1,lidar=0.05"`` or ``"camera.blur=3,text.word_dropout=0.2"``. A level
            expands as in the module docstring; later items override earlier ones.

    Returns:
        ``{modality: {param: value}}``, ready for ``SensorNoise(env, **result)``.

    Raises:
        ValueError: On a malformed item or unknown modality (parameter names and ranges are
            checked when the configs are built).
    """
    result: dict[str, dict[str, float | int]] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise ValueError(
                f"noise spec item {item!r} must look like 'camera=0.1' or 'camera.blur=3'"
            )
        modality, dot, param = name.strip().partition(".")
        if modality not in MODALITIES:
            raise ValueError(
                f"noise spec item {item!r}: unknown modality {modality!r}; "
                f"allowed: {', '.join(MODALITIES)}"
            )
        number = _parse_number(value.strip(), item)
        params = result.setdefault(modality, {})
        if dot:
            params[param.strip()] = number
        else:
            params.update(level_to_params(modality, float(number)))
    return result
