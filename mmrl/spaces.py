"""Observation and action spaces: the policy's view, descriptions, differences and one check.

Every place that asks "does this model / dataset / environment fit that one?" (``mmrl collect``,
``mmrl pretrain``, ``mmrl evaluate``, ``mmrl evaluate-offline``) compares spaces here and
refuses a mismatch with one :class:`~mmrl.errors.SpaceMismatchError` naming each differing key
and what differs (shape, dtype, bounds), issue 14. This module sits in the bottom layer with
:mod:`mmrl.errors`; Stable-Baselines3 is imported only inside :func:`policy_view`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.errors import SpaceMismatchError

__all__ = [
    "SpaceMismatchError",
    "check",
    "describe",
    "differences",
    "image_keys_to_transpose",
    "policy_view",
    "summary",
]


# ---------------------------------------------------------------------------- the policy's view
def _channel_last_image(space: spaces.Space) -> bool:
    """SB3's rule for an image it transposes: a ``uint8`` ``[0, 255]`` 3-D Box, channels last."""
    from stable_baselines3.common.preprocessing import (
        is_image_space,
        is_image_space_channels_first,
    )

    return is_image_space(space) and not is_image_space_channels_first(space)


def image_keys_to_transpose(space: spaces.Dict) -> list[str]:
    """Keys SB3 transposes to channel-first (``VecTransposeImage``'s rule)."""
    return [key for key, sub in space.spaces.items() if _channel_last_image(sub)]


def policy_view(space: spaces.Space) -> spaces.Space:
    """The observation space an SB3 policy is built on for an environment with ``space``.

    SB3 wraps an env with channel-last image observations in ``VecTransposeImage`` (see
    ``BaseAlgorithm._wrap_env``), so the policy, its features extractor and the space saved in
    its ``model.zip`` have ``(C, H, W)`` images where the environment reports ``(H, W, C)``.

    Args:
        space: An environment's observation space (a ``Dict`` or a single image ``Box``).

    Returns:
        ``space`` with channel-last ``uint8`` images transposed; a ``Dict`` keeps its key
        order, which is the extractor's fusion order that pretrained weights depend on.
    """
    from stable_baselines3.common.vec_env import VecTransposeImage

    if isinstance(space, spaces.Dict):
        keys = image_keys_to_transpose(space)
        if not keys:
            return space
        # Pairs keep the key order (Gymnasium would sort a dict's keys), as VecTransposeImage.
        return spaces.Dict(
            [
                (key, VecTransposeImage.transpose_space(sub, key) if key in keys else sub)
                for key, sub in space.spaces.items()
            ]
        )
    return VecTransposeImage.transpose_space(space) if _channel_last_image(space) else space


# ---------------------------------------------------------------------------- descriptions
def describe(space: spaces.Space) -> str:
    """One line for a space: ``"Box(16, 16, 3) uint8 [0, 255]"``, ``"Discrete(3)"``, or for a
    ``Dict`` ``"camera: Box(...), lidar: Box(...)"`` in its key order."""
    if isinstance(space, spaces.Dict):
        return ", ".join(f"{key}: {describe(sub)}" for key, sub in space.spaces.items())
    if isinstance(space, spaces.Box):
        low, high = np.min(space.low), np.max(space.high)
        return f"Box{tuple(space.shape)} {space.dtype} [{low:g}, {high:g}]"
    if isinstance(space, spaces.Discrete):
        start = f", start={space.start}" if space.start else ""
        return f"Discrete({space.n}{start})"
    return str(space)


def summary(space: spaces.Space) -> dict[str, Any]:
    """Plain-data summary of a subspace (type, shape, dtype, range), e.g. for an extractor's
    ``.config``: ``{"type": "Box", "shape": [8], "dtype": "float32", "low": 0.0, "high": 1.0}``.
    Infinite bounds are ``None`` (JSON has no infinity)."""
    out: dict[str, Any] = {
        "type": type(space).__name__,
        "shape": list(space.shape or ()),
        "dtype": str(np.dtype(space.dtype)) if space.dtype is not None else None,
    }
    if isinstance(space, spaces.Box):
        low, high = float(np.min(space.low)), float(np.max(space.high))
        out["low"] = low if np.isfinite(low) else None
        out["high"] = high if np.isfinite(high) else None
    elif isinstance(space, spaces.Discrete):
        out["n"] = int(space.n)
    elif isinstance(space, spaces.MultiDiscrete):
        out["nvec"] = np.asarray(space.nvec).tolist()
    return out


# ---------------------------------------------------------------------------- differences
def _what_differs(a: spaces.Space, b: spaces.Space) -> list[str]:
    """Which properties differ (``"type"``, ``"shape"``, ``"dtype"``, ``"bounds"``, ...)."""
    if type(a) is not type(b):
        return ["type"]
    if isinstance(a, spaces.Box):
        found = []
        if a.shape != b.shape:
            found.append("shape")
        if a.dtype != b.dtype:
            found.append("dtype")
        # Gymnasium's own Box equality (allclose): bounds round-tripped through a dataset's
        # JSON metadata or a pickled model must still count as equal.
        same_bounds = a.shape == b.shape and all(
            np.allclose(x, y, equal_nan=True) for x, y in ((a.low, b.low), (a.high, b.high))
        )
        if a.shape == b.shape and not same_bounds:
            found.append("bounds")
        return found
    if isinstance(a, spaces.Discrete):
        return [] if (a.n, a.start) == (b.n, b.start) else ["size"]
    return [] if a == b else ["value"]


def differences(
    expected: spaces.Space, actual: spaces.Space, names: Sequence[str] = ("expected", "actual")
) -> list[str]:
    """Human-readable differences between two spaces (empty if they are equal).

    Args:
        expected: One space (e.g. a model's, or an environment's).
        actual: The other (e.g. an environment's, or a dataset's).
        names: How the messages name the two sides, e.g. ``("model", "dataset x")``.

    Returns:
        For two ``Dict`` spaces one entry per kind of difference: ``"keys only in the model:
        ['lidar']"``, ``"keys only in the dataset x: ['depth']"``, and per differing key
        ``"key 'camera': model Box(16, 16, 3) uint8 [0, 255] vs dataset x Box(8, 8, 3) uint8
        [0, 255] (different shape)"``; otherwise at most one entry of the second form without
        the key. Keys are compared by name; their order does not count.
    """
    a_name, b_name = names
    if isinstance(expected, spaces.Dict) and isinstance(actual, spaces.Dict):
        mine, theirs = list(expected.spaces), list(actual.spaces)
        out = []
        if only := [k for k in mine if k not in actual.spaces]:
            out.append(f"keys only in the {a_name}: {only}")
        if only := [k for k in theirs if k not in expected.spaces]:
            out.append(f"keys only in the {b_name}: {only}")
        for key in mine:
            if key in actual.spaces:
                out += [f"key {key!r}: {d}" for d in differences(expected[key], actual[key], names)]
        return out
    what = ", ".join(_what_differs(expected, actual))
    if not what:
        return []
    return [f"{a_name} {describe(expected)} vs {b_name} {describe(actual)} (different {what})"]


def check(
    expected_obs: spaces.Space,
    expected_action: spaces.Space,
    actual_obs: spaces.Space,
    actual_action: spaces.Space,
    what: str,
    names: Sequence[str] = ("expected", "actual"),
) -> None:
    """Refuses two (observation, action) space pairs that differ, naming every difference.

    Both observation spaces must be in the same layout: pass an environment's space through
    :func:`policy_view` before comparing it with a model's.

    Args:
        expected_obs: Observation space of one side (e.g. the environment's or the model's).
        expected_action: Its action space.
        actual_obs: Observation space of the other side (e.g. the dataset's).
        actual_action: Its action space.
        what: What is compared, the start of the message (``"dataset d vs environment e"``).
        names: How the messages name the two sides (see :func:`differences`).

    Raises:
        SpaceMismatchError: ``"<what>: spaces differ: observation key 'camera': ...;
            action space: ..."``, one line.
    """
    problems = [f"observation {d}" for d in differences(expected_obs, actual_obs, names)]
    problems += [f"action space: {d}" for d in differences(expected_action, actual_action, names)]
    if problems:
        raise SpaceMismatchError(f"{what}: spaces differ: " + "; ".join(problems))
