"""Imports of optional dependencies with an error that says how to install them (private)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def require_extra(module: str, extra: str, feature: str) -> ModuleType:
    """Imports ``module`` or raises an ``ImportError`` naming the ``pip install`` that fixes it.

    Args:
        module: Module to import, e.g. ``"minigrid"``.
        extra: mmrl extra that installs it, e.g. ``"minigrid"`` for ``mmrl[minigrid]``.
        feature: What needs it, for the message (e.g. ``"make_minigrid"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{feature} needs the optional dependency {module!r}, which is not installed; "
            f"install it with: pip install 'mmrl[{extra}]'"
        ) from exc


def adapter_vec_env(
    factory: Any,
    env_id: str,
    n_envs: int,
    seed: int | None,
    vec_env_cls: type | None,
    **kwargs: Any,
):
    """``n_envs`` Monitor-wrapped copies of ``factory(env_id, **kwargs)`` as an SB3 ``VecEnv``."""
    from stable_baselines3.common.env_util import make_vec_env

    from mmrl.envs.config import check_int

    check_int("n_envs", n_envs, 1)
    # Build one copy eagerly so a missing extra or bad argument fails here, not in a worker.
    factory(env_id, **kwargs).close()
    return make_vec_env(
        factory,
        n_envs=n_envs,
        seed=seed,
        vec_env_cls=vec_env_cls,
        env_kwargs=dict(env_id=env_id, **kwargs),
    )
