"""What ``mmrl evaluate`` evaluates, under the names this module had before issue 14.

Loading moved to :func:`mmrl.policies.load_policy` (run folders, model files, checkpoints,
pretraining checkpoints, ``expert`` and ``random``, with normalization applied inside the
returned :class:`~mmrl.policies.Policy`) and run folders to :class:`mmrl.runs.RunFolder`. The
names below keep code written against this module working; new code should use those.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmrl.config import EnvConfig
from mmrl.errors import SpaceMismatchError
from mmrl.policies import (
    Policy,
    algorithm_class,
    check_spaces,
    load_policy,
    one_line,
    policy_view,
    space_differences,
)
from mmrl.runs import CONFIG_FILE, MODEL_FILE

__all__ = [
    "CONFIG_FILE",
    "MODEL_FILE",
    "SpaceMismatchError",
    "Target",
    "algorithm_class",
    "check_spaces",
    "load_model",
    "normalization_stats",
    "one_line",
    "policy_view",
    "resolve_env_config",
    "resolve_target",
    "space_differences",
]

Target = Policy
"""A policy to evaluate (what :func:`resolve_target` returns)."""


def resolve_target(path: str | Path) -> Policy:
    """:func:`mmrl.policies.load_policy` on CPU."""
    return load_policy(path)


def load_model(target: Policy, device: str = "auto") -> Policy:
    """The target itself, moved to ``device`` (it was loaded by :func:`resolve_target`)."""
    mover = getattr(target, "to", None)
    return mover(device) if mover is not None else target


def resolve_env_config(target: Policy, env: str | EnvConfig | None) -> EnvConfig:
    """The environment a target is evaluated on: ``env`` if given, else the one it records.

    Raises:
        ConfigError: A bare model file without ``env``, or an unknown preset.
    """
    from mmrl.make import resolve_env

    return resolve_env(env) if env is not None else target.require_env()


def normalization_stats(target: Policy) -> Any | None:
    """The ``VecNormalize`` observation statistics the target applies (``None``: none)."""
    return target.obs_rms
