"""Builds environments from presets or ids: one Gymnasium env, or a training ``VecEnv``."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

import gymnasium as gym

from mmrl.config import ConfigError, EnvConfig, find_preset, load_env_preset
from mmrl.errors import MmrlError, one_line

ADAPTERS = {
    "minigrid": ("mmrl.adapters", "make_minigrid"),
    "highway": ("mmrl.adapters", "make_highway"),
}


def resolve_env(name_or_id: str | EnvConfig) -> EnvConfig:
    """An :class:`EnvConfig` from a preset name/path, a Gymnasium id, or a config."""
    if isinstance(name_or_id, EnvConfig):
        return name_or_id
    import mmrl  # noqa: F401  (registers the environments)

    if name_or_id in gym.registry:
        return EnvConfig(env_id=name_or_id, description="")
    try:
        find_preset("envs", name_or_id)
    except ConfigError as err:
        raise ConfigError(f"{err}; or a registered Gymnasium id such as mmrl/Driving-v0") from None
    return load_env_preset(name_or_id)


def _apply_wrappers(env: gym.Env, config: EnvConfig) -> gym.Env:
    if not config.wrappers:
        return env
    wrappers = importlib.import_module("mmrl.wrappers")
    for spec in config.wrappers:
        cls = getattr(wrappers, spec.name, None)
        if cls is None:
            raise ConfigError(
                f"unknown wrapper {spec.name!r}; available: {', '.join(wrappers.__all__)}"
            )
        env = cls(env, **spec.kwargs)
    return env


def make_env(
    name_or_id: str | EnvConfig, render_mode: str | None = None, **overrides: Any
) -> gym.Env:
    """One Gymnasium env from a preset (``driving``), an id (``mmrl/Driving-v0``) or a config.

    Args:
        name_or_id: Preset name or path, Gymnasium id, or :class:`EnvConfig`.
        render_mode: Passed to the environment.
        **overrides: Environment kwargs on top of the preset's.
    """
    config = resolve_env(name_or_id)
    kwargs = {**config.kwargs, **overrides}
    with _env_errors(config.env_id):
        if config.adapter is None:
            env = gym.make(config.env_id, render_mode=render_mode, **kwargs)
        else:
            module, func = ADAPTERS[config.adapter]
            factory = getattr(importlib.import_module(module), func)
            env = factory(config.env_id, render_mode=render_mode, **kwargs)
        return _apply_wrappers(env, config)


@contextlib.contextmanager
def _env_errors(env_id: str) -> Iterator[None]:
    """Environment keyword errors (out of range, wrong type, unknown; a wrapper's) as one
    :class:`ConfigError` naming the env: the envs raise plain ``ValueError``/``TypeError``,
    which reached the user as a traceback after the run folder was written (issue 15)."""
    try:
        yield
    except MmrlError:
        raise
    except (ValueError, TypeError, gym.error.Error) as err:
        text = one_line(err)
        raise ConfigError(text if text.startswith(env_id) else f"env {env_id}: {text}") from None


def make_training_vec_env(
    config: EnvConfig,
    n_envs: int | None = None,
    seed: int | None = None,
    monitor: bool = True,
    n_workers: int = 1,
    **overrides: Any,
):
    """The SB3 ``VecEnv`` a run trains or evaluates on.

    mmrl ids become one batched :class:`~mmrl.envs.vec_env.BatchedVecEnv` (or, with
    ``n_workers > 1``, a :class:`~mmrl.envs.workers.WorkerVecEnv`); adapter suites and
    wrapped envs become a ``DummyVecEnv`` of single envs, each wrapped in ``Monitor``.

    Args:
        config: Environment preset.
        n_envs: Copies (default: the preset's ``n_envs``).
        seed: Base seed; copy ``i`` uses ``seed + i``.
        monitor: Record episode statistics (``VecMonitor``/``Monitor``).
        n_workers: Worker processes (mmrl ids without wrappers only; not the preset's
            ``n_workers``, which :func:`mmrl.agent.build_vec_env` applies to a run's
            training env).
        **overrides: Environment kwargs on top of the preset's (e.g. ``instruction_split``).
    """
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

    from mmrl.envs import make_vec_env

    n = config.n_envs if n_envs is None else n_envs
    kwargs = {**config.kwargs, **overrides}
    if config.adapter is None and not config.wrappers:
        with _env_errors(config.env_id):
            return make_vec_env(
                config.env_id, n_envs=n, seed=seed, monitor=monitor, n_workers=n_workers, **kwargs
            )
    if n_workers != 1:
        kind = "an adapter suite" if config.adapter else "with wrappers"
        raise ConfigError(
            f"must be 1 for {config.env_id} ({kind}): worker processes run unwrapped mmrl "
            "environments only",
            field="n_workers",
        )

    def factory() -> gym.Env:
        return make_env(config, **kwargs)

    # Monitor per copy: episode statistics and is_success, as SB3's make_vec_env does.
    return sb3_make_vec_env(
        factory, n_envs=n, seed=seed, monitor_kwargs={"info_keywords": ("is_success",)}
    )
