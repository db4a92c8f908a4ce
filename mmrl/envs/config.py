"""Typed, validated keyword arguments for environments.

highway-env keeps configuration in nested dicts that silently ignore misspelt keys; mmrl
environments take a dataclass instead, built from keyword arguments by :func:`build_config`,
which rejects unknown names and out-of-range values with a ``ValueError`` that names the
parameter and what is allowed.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np

from mmrl.errors import ConfigError

C = TypeVar("C")

#: Most camera frames an observation may stack (``SensorConfig.camera_frames``).
MAX_CAMERA_FRAMES = 8

#: Largest step count between stacked camera frames (``SensorConfig.camera_frame_stride``).
MAX_CAMERA_FRAME_STRIDE = 16

#: Largest seed: NumPy's legacy generator and SB3's ``set_random_seed`` take 32-bit seeds.
MAX_SEED = 2**32 - 1


def build_config(config_cls: type[C], kwargs: Mapping[str, Any], owner: str) -> C:
    """Builds ``config_cls(**kwargs)`` after checking every key is a field.

    A deprecated name listed in the class's ``renamed`` map is accepted with a
    ``DeprecationWarning`` and its value moved to the new name.

    Args:
        config_cls: A dataclass whose ``__post_init__`` validates values.
        kwargs: User-supplied keyword arguments.
        owner: Name used in error messages (e.g. ``"mmrl/Driving-v0"``).

    Raises:
        ValueError: On an unknown parameter, listing the allowed ones, or on a deprecated
            name given together with its replacement.
    """
    kwargs = _apply_renames(config_cls, kwargs, owner)
    names = [f.name for f in dataclasses.fields(config_cls)]  # type: ignore[arg-type]
    # The config's own parameters first, then the inherited ones (the shared sensor settings,
    # which a dataclass lists first).
    inherited = {
        f.name
        for base in config_cls.__mro__[1:]
        if dataclasses.is_dataclass(base)
        for f in dataclasses.fields(base)
    }
    allowed = [n for n in names if n not in inherited] + [n for n in names if n in inherited]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"{owner}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
            f"allowed parameters: {', '.join(allowed)}"
        )
    return config_cls(**kwargs)


def _rename_target(new: str) -> str:
    """``"reward_weights.comfort"`` -> ``"reward_weights={'comfort': ...}"`` for messages."""
    field, _, key = new.partition(".")
    return f"{field}={{{key!r}: ...}}" if key else new


def _apply_renames(
    config_cls: type, kwargs: Mapping[str, Any], owner: str | None
) -> dict[str, Any]:
    """Moves deprecated keyword names onto their replacements (see ``SensorConfig.renamed``).

    Args:
        config_cls: The config class (its ``renamed`` map; none means nothing to do).
        kwargs: Keyword arguments, old names allowed.
        owner: Name for warnings and errors; ``None`` renames silently (old pickles).
    """
    renamed: Mapping[str, str] = getattr(config_cls, "renamed", {})
    prefix = f"{owner}: " if owner else ""
    out = dict(kwargs)
    for old in [k for k in kwargs if k in renamed]:
        new = renamed[old]
        field, _, key = new.partition(".")
        value = out.pop(old)
        if owner is not None:
            warnings.warn(
                f"{prefix}parameter {old!r} is deprecated; use {_rename_target(new)} "
                "(same value and meaning)",
                DeprecationWarning,
                stacklevel=3,
            )
        if not key:
            if field in out:
                raise ValueError(f"{prefix}give {field} or its old name {old}, not both")
            out[field] = value
            continue
        entries = out.get(field, {})
        if not isinstance(entries, Mapping):
            raise ValueError(f"{field} must be a mapping, got {entries!r}")
        if key in entries:
            raise ValueError(f"{prefix}give {field}[{key!r}] or its old name {old}, not both")
        out[field] = {**entries, key: value}
    return out


def check_weights(
    name: str, value: Any, defaults: Mapping[str, float], high: float = 1000.0
) -> dict[str, float]:
    """Validates a mapping of weights keyed by name and fills the missing keys.

    Args:
        name: Field name for messages (e.g. ``"reward_weights"``).
        value: The user's mapping; it may name only some keys.
        defaults: Every allowed key with its default weight, in order.
        high: Largest allowed weight.

    Returns:
        A new dict with every key of ``defaults`` in its order, each a ``float``.

    Raises:
        ValueError: ``value`` is not a mapping, names a key ``defaults`` lacks (listing the
            allowed ones), or holds a weight that is not a finite number in ``[0, high]``.
    """
    allowed = ", ".join(defaults)
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping of {allowed} to weights, got {value!r}")
    unknown = [k for k in value if k not in defaults]
    if unknown:
        raise ValueError(
            f"{name}: unknown key(s) {', '.join(map(repr, unknown))}; allowed keys: {allowed}"
        )
    for key, weight in value.items():
        check_float(f"{name}[{key!r}]", weight, 0.0, high)
    return {k: float(value.get(k, default)) for k, default in defaults.items()}


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """Raises ``ValueError`` unless ``value`` is an int in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be in {bound}, got {value}")


def check_seed(name: str, value: Any) -> None:
    """Raises :class:`~mmrl.errors.ConfigError` naming ``name`` unless ``value`` is ``None``
    or an integer seed in ``[0, 2**32 - 1]`` (a negative seed used to fail at the first reset,
    deep inside NumPy, without saying which seed)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"must be an integer seed, got {value!r}", field=name)
    if not 0 <= value <= MAX_SEED:
        raise ConfigError(f"must be in [0, 2**32 - 1], got {value}", field=name)


def check_float(
    name: str,
    value: Any,
    low: float,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
) -> None:
    """Raises ``ValueError`` unless ``value`` is a finite real number in the given range."""
    if isinstance(value, str | bytes):
        # float("0.5") passes, but the config keeps the string and the simulator's
        # arithmetic failed on it at the first reset (issue 15).
        raise ValueError(f"{name} must be a number, got the string {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    too_low = value < low if low_inclusive else value <= low
    if too_low or (high is not None and value > high):
        left = "[" if low_inclusive else "("
        bound = (
            f"{left}{low}, {high}]"
            if high is not None
            else f"{'>=' if low_inclusive else '>'} {low}"
        )
        raise ValueError(f"{name} must be in {bound}, got {value}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raises ``ValueError`` unless ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


@dataclasses.dataclass
class SensorConfig:
    """Sensor settings shared by all mmrl environments; each env's config inherits them.

    The fields live here once, with their docs and validation. An env whose default differs
    redeclares just that field with its own default (a dataclass subclass may; the field
    keeps its place), e.g. Navigation's 8 m ``lidar_range``. A subclass's ``__post_init__``
    checks its own fields, then calls this one.

    A subclass lists the parameters it renamed in ``renamed``: :func:`build_config` still
    takes the old names (with a ``DeprecationWarning``), and a config pickled under them
    (inside an old simulator or run checkpoint) loads with the new ones.

    Attributes:
        camera_size: Height and width of the square RGB camera image, pixels (>= 8).
        camera_frames: Camera frames stacked along the channel axis, in ``[1, 8]``: with
            ``k > 1`` the ``camera`` key is ``(S, S, 3k)``, the last ``k`` frames oldest
            first (the newest in the last 3 channels); at a reset every slot holds the new
            episode's first frame. ``3k`` must stay below ``camera_size`` so SB3 (which takes
            the smallest axis for the channels) reads the image as channels-last.
        camera_frame_stride: Steps between the stacked frames, in ``[1, 16]`` (needs
            ``camera_frames > 1`` when above 1): with stride ``s`` the slots hold the frames
            of steps ``t - (k - 1) s, ..., t - s, t``, so ``k`` frames span ``(k - 1) s``
            steps of memory at the cost of ``k`` (a feed-forward agent remembers a car it
            passed several seconds ago without a recurrent policy).
        lidar_beams: Number of 360-degree lidar beams (>= 4).
        lidar_range: Maximum lidar range in metres; readings are divided by it.
        lidar_noise: Standard deviation of Gaussian noise on normalized ranges.
        lidar_dropout: Probability that a beam returns max range (a missed echo).
        max_text_len: Length of the ``text`` token-id vector.
    """

    camera_size: int = 64
    camera_frames: int = 1
    camera_frame_stride: int = 1
    lidar_beams: int = 64
    lidar_range: float = 50.0
    lidar_noise: float = 0.0
    lidar_dropout: float = 0.0
    max_text_len: int = 16

    renamed: ClassVar[dict[str, str]] = {}
    """Deprecated parameter name -> its replacement: a field, or ``"field.key"`` for an entry
    of a dict field (``"reward_weights.comfort"``)."""

    def __post_init__(self) -> None:
        self.validate()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restores a pickled config through the constructor, so one pickled before a rename
        or an added field loads with today's names and defaults (same values, validated)."""
        state = _apply_renames(type(self), state, owner=None)
        names = {f.name for f in dataclasses.fields(self) if f.init}
        type(self).__init__(self, **{k: v for k, v in state.items() if k in names})

    def validate(self) -> None:
        """Checks every field, raising ``ValueError`` naming the first bad one."""
        check_int("camera_size", self.camera_size, 8, 512)
        check_int("camera_frames", self.camera_frames, 1, MAX_CAMERA_FRAMES)
        if 3 * self.camera_frames >= self.camera_size:
            # SB3's is_image_space_channels_first takes the smallest axis for the channels:
            # (S, S, 3k) with 3k >= S would be read as channels-first (or be ambiguous).
            raise ValueError(
                f"camera_frames={self.camera_frames} gives {3 * self.camera_frames} camera "
                f"channels, which must be fewer than camera_size={self.camera_size} (SB3 "
                "reads the smallest image axis as the channels); use camera_frames <= "
                f"{(self.camera_size - 1) // 3} or a larger camera_size"
            )
        check_int("camera_frame_stride", self.camera_frame_stride, 1, MAX_CAMERA_FRAME_STRIDE)
        if self.camera_frame_stride > 1 and self.camera_frames == 1:
            raise ValueError(
                f"camera_frame_stride={self.camera_frame_stride} needs camera_frames > 1 "
                "(the stride spaces the stacked frames; one frame has nothing to space)"
            )
        check_int("lidar_beams", self.lidar_beams, 4, 4096)
        check_float("lidar_range", self.lidar_range, 0.0, 1e4, low_inclusive=False)
        check_float("lidar_noise", self.lidar_noise, 0.0, 1.0)
        check_float("lidar_dropout", self.lidar_dropout, 0.0, 1.0)
        check_int("max_text_len", self.max_text_len, 4, 256)
