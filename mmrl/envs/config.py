"""Typed, validated keyword arguments for environments.

highway-env keeps configuration in nested dicts that silently ignore misspelt keys; mmrl
environments take a dataclass instead, built from keyword arguments by :func:`build_config`,
which rejects unknown names and out-of-range values with a ``ValueError`` that names the
parameter and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import numpy as np

from mmrl.errors import ConfigError

C = TypeVar("C")

#: Largest seed: NumPy's legacy generator and SB3's ``set_random_seed`` take 32-bit seeds.
MAX_SEED = 2**32 - 1


def build_config(config_cls: type[C], kwargs: Mapping[str, Any], owner: str) -> C:
    """Builds ``config_cls(**kwargs)`` after checking every key is a field.

    Args:
        config_cls: A dataclass whose ``__post_init__`` validates values.
        kwargs: User-supplied keyword arguments.
        owner: Name used in error messages (e.g. ``"mmrl/Driving-v0"``).

    Raises:
        ValueError: On an unknown parameter, listing the allowed ones.
    """
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

    Attributes:
        camera_size: Height and width of the square RGB camera image, pixels (>= 8).
        lidar_beams: Number of 360-degree lidar beams (>= 4).
        lidar_range: Maximum lidar range in metres; readings are divided by it.
        lidar_noise: Standard deviation of Gaussian noise on normalized ranges.
        lidar_dropout: Probability that a beam returns max range (a missed echo).
        max_text_len: Length of the ``text`` token-id vector.
    """

    camera_size: int = 64
    lidar_beams: int = 64
    lidar_range: float = 50.0
    lidar_noise: float = 0.0
    lidar_dropout: float = 0.0
    max_text_len: int = 16

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Checks every field, raising ``ValueError`` naming the first bad one."""
        check_int("camera_size", self.camera_size, 8, 512)
        check_int("lidar_beams", self.lidar_beams, 4, 4096)
        check_float("lidar_range", self.lidar_range, 0.0, 1e4, low_inclusive=False)
        check_float("lidar_noise", self.lidar_noise, 0.0, 1.0)
        check_float("lidar_dropout", self.lidar_dropout, 0.0, 1.0)
        check_int("max_text_len", self.max_text_len, 4, 256)
