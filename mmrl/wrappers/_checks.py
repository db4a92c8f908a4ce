"""Validation and seeding helpers shared by the observation wrappers (private)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from gymnasium import spaces

from mmrl.envs.config import check_float, check_seed


def require_dict_space(space: spaces.Space, owner: str) -> spaces.Dict:
    """Returns ``space`` if it is a ``spaces.Dict``, else raises a ``ValueError`` naming it."""
    if not isinstance(space, spaces.Dict):
        raise ValueError(
            f"{owner} needs a flat Dict observation space (keys such as camera, lidar, text, "
            f"state); got {space!r}. Use it on an mmrl environment or an mmrl.adapters env."
        )
    return space


def require_keys(space: spaces.Dict, keys: Iterable[str], owner: str, what: str = "key") -> None:
    """Raises ``ValueError`` if any of ``keys`` is not a key of ``space``, listing the allowed."""
    for key in keys:
        if key not in space.spaces:
            raise ValueError(
                f"{owner}: {what} {key!r} is not in the observation space; "
                f"available keys: {', '.join(map(repr, space.spaces))}"
            )


def check_probability(name: str, value: float) -> float:
    """Raises ``ValueError`` unless ``value`` is in ``[0, 1]``; returns it as a float."""
    check_float(name, value, 0.0, 1.0)
    return float(value)


def make_rng(seed: int | None, salt: int) -> np.random.Generator:
    """A generator for a wrapper's own randomness, seeded from the env's reset seed.

    The seed is mixed with a per-wrapper ``salt`` so the wrapper's stream differs from the
    environment's own ``np_random`` (``default_rng(seed)``): sharing it would correlate sensor
    corruption with the scenario the env draws. ``seed=None`` draws fresh OS entropy.
    """
    if seed is None:
        return np.random.default_rng()
    check_seed("seed", seed)
    return np.random.default_rng(np.random.SeedSequence([int(seed), salt]))
