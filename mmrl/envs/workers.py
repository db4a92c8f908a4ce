"""SB3 ``VecEnv`` whose copies are stepped by ``K`` worker processes, one block each.

The SB3 front end of :class:`~mmrl.envs.worker_pool.WorkerPool` (processes, shared-memory
observations, failure handling and shutdown live there). Results are those of
:class:`~mmrl.envs.vec_env.BatchedVecEnv` with the same seeds, value for value: copy ``i``
is seeded ``s + i`` whichever worker holds it, every worker steps with
:func:`~mmrl.envs.block.step_block`, and both turn its reply into SB3's infos with
:func:`~mmrl.envs.vec_env.sb3_step_infos`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from mmrl.envs.base import BatchedSimulator, reset_infos_from_arrays
from mmrl.envs.vec_env import sb3_step_infos
from mmrl.envs.worker_pool import WorkerPool, check_n_workers

__all__ = ["WorkerVecEnv", "check_n_workers"]


class WorkerVecEnv(VecEnv):
    """``num_envs`` copies of a simulator stepped by ``n_workers`` processes.

    Build it through :func:`mmrl.make_vec_env` with ``n_workers=K``. Observations are the
    batched single-copy ``Dict``: ``camera (n, S, S, 3)`` uint8, ``lidar (n, B)`` float32,
    ``text (n, L)`` int64, ``state (n, D)`` float32, each a fresh array per step. Rewards are
    ``(n,)`` float32, dones ``(n,)`` bool; infos, ``reset_infos``, ``step_info_arrays`` and
    the auto-reset (``terminal_observation``, ``TimeLimit.truncated``) are exactly
    :class:`~mmrl.envs.vec_env.BatchedVecEnv`'s.

    ``get_attr`` and ``env_method`` reach the simulator of the worker holding each requested
    copy (``env_method`` runs on every worker, as ``BatchedVecEnv`` runs it on its one
    simulator for all copies); an attribute that is the same for every copy (a name list,
    ``max_episode_steps``) reads as in ``BatchedVecEnv``, a per-copy array reads as the
    holding worker's block of it. ``set_attr`` applies to all copies only.

    Args:
        simulator_cls: The :class:`~mmrl.envs.base.BatchedSimulator` subclass to run.
        num_envs: Copies in all (>= ``n_workers``).
        n_workers: Worker processes (see :class:`~mmrl.envs.worker_pool.WorkerPool`).
        kwargs: Simulator keyword arguments (checked here, in this process, first).
        render_mode: ``None`` or ``"rgb_array"``.
        timeout: Seconds a worker may take to answer one request before the pool is stopped
            and :class:`~mmrl.errors.WorkerError` raised.

    Raises:
        ConfigError: Bad ``n_workers``; the simulator's own errors for bad ``kwargs``.
        WorkerError: A worker failed to start.
    """

    def __init__(
        self,
        simulator_cls: type[BatchedSimulator],
        num_envs: int,
        n_workers: int,
        kwargs: dict[str, Any] | None = None,
        render_mode: str | None = None,
        timeout: float = 300.0,
    ) -> None:
        self.pool = WorkerPool(simulator_cls, num_envs, n_workers, kwargs, timeout)
        self.env_id = self.pool.env_id
        self.max_episode_steps = self.pool.max_episode_steps
        self.render_mode = render_mode
        super().__init__(num_envs, self.pool.observation_space, self.pool.action_space)
        self._obs: dict[str, np.ndarray] | None = None
        self.step_info_arrays: dict[str, Any] = {}

    # ------------------------------------------------------------------ the pool's
    @property
    def n_workers(self) -> int:
        """Number of worker processes."""
        return self.pool.n_workers

    @property
    def blocks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` copies of each worker."""
        return self.pool.blocks

    @property
    def worker_pids(self) -> list[int | None]:
        """Process id of each worker (for monitoring and tests)."""
        return self.pool.worker_pids

    @property
    def timeout(self) -> float:
        """Seconds a worker may take to answer one request."""
        return self.pool.timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self.pool.timeout = float(value)

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> VecEnvObs:
        arrays = self.pool.reset(self._seeds)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = reset_infos_from_arrays(arrays)
        self._obs = self.pool.observations()
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        self.pool.check_open()
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        self.pool.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        reply = self.pool.step_wait()
        # Batched info contents, kept for consumers that want arrays (the dataset recorder).
        self.step_info_arrays = reply.info_arrays
        infos = sb3_step_infos(reply, self.reset_infos)
        self._obs = self.pool.observations()
        return self._obs, reply.reward, reply.terminated | reply.truncated, infos

    def close(self) -> None:
        """Stops the workers (idempotent; also run when the env is garbage-collected)."""
        self._obs = None
        self.pool.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        return self.pool.render_frames()

    def expert_action(self) -> np.ndarray:
        """Batched actions of the scripted expert for the current states."""
        return self.pool.expert_action()

    def labels(self) -> dict[str, np.ndarray]:
        """The simulators' privileged labels of the current states, each ``(n,)``."""
        return self.pool.labels()

    # ------------------------------------------------------------------ checkpoints
    def get_state(self) -> dict[str, Any]:
        """Picklable state of every copy: each worker's simulator (block order), the last
        observations and the reset infos, for a run checkpoint that resumes exactly."""
        return {
            "sims": self.pool.get_sims(),
            "obs": self._obs,
            "reset_infos": list(self.reset_infos),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores :meth:`get_state` into a pool with the same blocks.

        Raises:
            ConfigError: The state was taken from a pool with other blocks of copies.
        """
        self.pool.set_sims(state["sims"])
        self._obs, self.reset_infos = state["obs"], list(state["reset_infos"])

    # ------------------------------------------------------------------ attribute plumbing
    def _targets(self, indices: VecEnvIndices) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        targets = self._targets(indices)
        if attr_name in ("render_mode",):
            return [getattr(self, attr_name) for _ in targets]
        owners = [self.pool.worker_of(i) for i in targets]
        names = {w: attr_name for w in set(owners)}
        replies = self.pool.request("getattr", names, workers=sorted(names))
        return [replies[w] for w in owners]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if len(self._targets(indices)) != self.num_envs:
            raise ValueError(
                "WorkerVecEnv copies share one configuration: set_attr applies to all copies only"
            )
        self.pool.request("setattr", dict.fromkeys(range(self.n_workers), (attr_name, value)))

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        targets = self._targets(indices)
        request = (method_name, method_args, method_kwargs)
        replies = self.pool.request("call", dict.fromkeys(range(self.n_workers), request))
        return [replies[self.pool.worker_of(i)] for i in targets]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [False for _ in self._targets(indices)]
