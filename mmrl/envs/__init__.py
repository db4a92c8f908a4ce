"""mmrl environments: batched simulators, their Gymnasium envs and the batched ``VecEnv``."""

from __future__ import annotations

import importlib
from typing import Any

from mmrl._lazy import lazy_getattr
from mmrl.envs.base import BatchedSimulator, MultimodalEnv, StepResult
from mmrl.envs.config import MAX_SEED, check_seed
from mmrl.envs.gym_vector import MultimodalVectorEnv
from mmrl.envs.tokenizer import VOCAB, Tokenizer
from mmrl.errors import ConfigError

# The SB3 VecEnv loads SB3 and torch (~2.5 s), which ``import mmrl`` and ``gym.make`` do
# without: imported on first use (issue 17).
__getattr__ = lazy_getattr(
    __name__, {"BatchedVecEnv": "mmrl.envs.vec_env", "WorkerVecEnv": "mmrl.envs.workers"}
)

__all__ = [
    "VOCAB",
    "BatchedSimulator",
    "BatchedVecEnv",
    "MultimodalEnv",
    "MultimodalVectorEnv",
    "StepResult",
    "Tokenizer",
    "WorkerVecEnv",
    "make_vec_env",
]


def _load(path: str) -> Any:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def make_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    monitor: bool = True,
    render_mode: str | None = None,
    n_workers: int = 1,
    **env_kwargs: Any,
):
    """Builds an SB3 ``VecEnv`` of ``n_envs`` copies of ``env_id``.

    mmrl ids run as one :class:`BatchedVecEnv` (all copies in one array computation); copy
    ``i`` follows the same trajectory as ``gym.make(env_id)`` reset with seed ``seed + i``.
    With ``n_workers=K > 1`` the copies are split into ``K`` contiguous blocks, each stepped
    by its own process (a :class:`~mmrl.envs.workers.WorkerVecEnv`, observations in shared
    memory), with the same results as one process. Any other Gymnasium id falls back to
    SB3's ``make_vec_env`` (a ``DummyVecEnv``).

    Args:
        env_id: A registered id, e.g. ``"mmrl/Driving-v0"``.
        n_envs: Number of copies (>= 1).
        seed: Base seed; ``None`` seeds from entropy.
        monitor: Wrap in SB3's ``VecMonitor`` (episode return/length and ``is_success`` in
            ``info["episode"]``), as SB3's own ``make_vec_env`` does with ``Monitor``.
        render_mode: ``None`` or ``"rgb_array"``.
        n_workers: Worker processes stepping the copies (1 <= ``n_workers`` <= ``n_envs``);
            1 steps them in this process. mmrl ids only.
        **env_kwargs: Environment parameters (validated; unknown names raise ``ValueError``).

    Returns:
        A ``stable_baselines3.common.vec_env.VecEnv``.

    Raises:
        ConfigError: Bad ``seed`` or ``n_workers`` (``n_workers > 1`` for a non-mmrl id).
    """
    from stable_baselines3.common.vec_env import VecMonitor

    from mmrl.envs.vec_env import BatchedVecEnv
    from mmrl.envs.workers import WorkerVecEnv, check_n_workers
    from mmrl.registration import entry_for, register_envs

    register_envs()
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    check_seed("seed", seed)
    if seed is not None and seed + n_envs - 1 > MAX_SEED:
        raise ConfigError(
            f"must be <= 2**32 - {n_envs} for {n_envs} copies, got {seed}", field="seed"
        )
    check_n_workers(n_workers, n_envs)
    entry = entry_for(env_id)
    if entry is None and n_workers > 1:
        raise ConfigError(
            f"must be 1 for {env_id!r}: worker processes run mmrl environments only",
            field="n_workers",
        )
    if entry is None:
        from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

        return sb3_make_vec_env(
            env_id, n_envs=n_envs, seed=seed, env_kwargs={**env_kwargs, "render_mode": render_mode}
        )
    simulator_cls = _load(entry.simulator)
    kwargs = {**entry.kwargs, **env_kwargs}
    if n_workers > 1:
        venv = WorkerVecEnv(simulator_cls, n_envs, n_workers, kwargs, render_mode)
    else:
        venv = BatchedVecEnv(simulator_cls(n_envs, **kwargs), render_mode)
    venv.seed(seed)
    if monitor:
        venv = VecMonitor(venv, info_keywords=("is_success",))
    return venv
