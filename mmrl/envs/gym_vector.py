"""Gymnasium ``VectorEnv`` over a :class:`~mmrl.envs.base.BatchedSimulator`: one array step.

``gym.make_vec(id, num_envs=N)`` on an mmrl id (``vectorization_mode="vector_entry_point"``,
Gymnasium's default when an id registers one) builds a :class:`MultimodalVectorEnv`: one
simulator holding all ``N`` copies, stepped with array operations, instead of Gymnasium's
``SyncVectorEnv`` looping over ``N`` single envs (issue 17). It is the Gymnasium-API twin of
the SB3 :class:`~mmrl.envs.vec_env.BatchedVecEnv`.

Autoreset: **same-step** (``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP``). A copy
whose episode ends is reset inside the same ``step`` call; the returned observation is the
new episode's first one, and the last observation and info of the finished episode are in
``infos["final_obs"]`` / ``infos["final_info"]`` (masks ``_final_obs`` / ``_final_info``).
Same-step is the simulator's own mode (it is what SB3 and ``BatchedVecEnv`` do); next-step
would have to step a finished copy or hold it out of the batched step for one call, and
stepping it would draw from its random generator before the reset, so copy ``i`` would no
longer follow the trajectory of a single env. See https://farama.org/Vector-Autoreset-Mode.

Everything else is what ``SyncVectorEnv(autoreset_mode=SAME_STEP)`` over ``gym.make(id)``
returns, value for value: ``reset(seed=s)`` seeds copy ``i`` with ``s + i`` (a list seeds
each copy), infos are Gymnasium's dict of arrays with ``_key`` masks (for a copy reset in
this step the top-level info is its reset info, as Gymnasium does), rewards are float64 and
the episode time limit is the registration's ``max_episode_steps`` (``TimeLimit`` in
``gym.make``).

Worker processes: ``gym.make_vec(id, num_envs=N, n_workers=K)`` steps the copies in ``K``
processes (a :class:`~mmrl.envs.worker_pool.WorkerPool`, the one behind
``mmrl.make_vec_env(..., n_workers=K)``; observations in shared memory, one message per
worker and step) with the same results as ``n_workers=1``: both step with
:func:`~mmrl.envs.block.step_block`. ``close()`` stops the workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mmrl.envs.base import BatchedSimulator
from mmrl.envs.block import StepReply, step_block
from mmrl.errors import ConfigError

__all__ = ["MultimodalVectorEnv"]


#: The dtype Gymnasium's ``_add_info`` gives a single env's Python scalars, by numpy kind.
_INFO_DTYPES = {"b": np.dtype(bool), "i": np.dtype(np.int64), "u": np.dtype(np.int64)}


def _info_array(value: Any) -> np.ndarray:
    """One info entry batched over copies, with the dtype Gymnasium's ``_add_info`` gives the
    single envs' Python scalars (bool, int64, float64; strings as an object array)."""
    if isinstance(value, list):
        return np.array(value, dtype=object)
    return value.astype(_INFO_DTYPES.get(value.dtype.kind, np.float64))


def _masked(info: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    """``info`` (name to batched value or nested dict) in Gymnasium's vector-info format for
    the copies in ``mask``: entries of other copies zeroed (``None`` for objects), a ``_name``
    mask beside every name, names no copy has left out (as ``_add_info`` would).

    The value arrays are new; the ``_name`` masks of one call share one array (read-only), a
    step's info has ~30 of them and copying each costs a fifth of a small batch's step.
    """
    out: dict[str, Any] = {}
    if not mask.any():
        return out
    everyone = bool(mask.all())
    mask = mask.copy()
    mask.flags.writeable = False
    for name, value in info.items():
        if isinstance(value, dict):
            out[name] = _masked(value, mask)
        else:
            # astype copies, so zeroing other copies never writes into the simulator's arrays.
            array = _info_array(value)
            if not everyone:
                array[~mask] = None if array.dtype == object else 0
            out[name] = array
        out[f"_{name}"] = mask
    return out


class _InProcess:
    """Every copy stepped in this process, by one simulator (``n_workers=1``)."""

    def __init__(self, sim: BatchedSimulator, time_limit: int | None) -> None:
        self.sim = sim
        self.time_limit = time_limit

    def reset(
        self, seeds: list[int | None], idx: np.ndarray, previous: dict[str, np.ndarray] | None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Seeds, resets copies ``idx``; returns every copy's observation (``previous``
        with the reset rows replaced, new arrays) and reset info contents."""
        self.sim.seed(seeds)
        self.sim.reset_envs(idx)
        if previous is None or len(idx) == self.sim.num_envs:
            obs = self.sim.observe()
        else:
            # New arrays: observations already returned to the caller stay as they were.
            obs = {key: value.copy() for key, value in previous.items()}
            for key, value in self.sim.observe(idx).items():
                obs[key][idx] = value
        return obs, self.sim.reset_info_arrays()

    def step(self, actions: Any) -> tuple[dict[str, np.ndarray], StepReply]:
        return step_block(self.sim, actions, self.time_limit)

    def render_frames(self) -> list[np.ndarray]:
        return self.sim.render_frames()

    def expert_action(self) -> np.ndarray:
        return self.sim.expert_action()

    def close(self) -> None:
        """Nothing to release."""


class _InWorkers:
    """The copies stepped by a :class:`~mmrl.envs.worker_pool.WorkerPool` (``n_workers > 1``)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def reset(
        self, seeds: list[int | None], idx: np.ndarray, previous: dict[str, np.ndarray] | None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        # The shared buffers hold every copy's current observation, the reset rows renewed.
        arrays = self.pool.reset(seeds, idx)
        return self.pool.observations(), arrays

    def step(self, actions: Any) -> tuple[dict[str, np.ndarray], StepReply]:
        self.pool.step_async(actions)
        reply = self.pool.step_wait()
        return self.pool.observations(), reply

    def render_frames(self) -> list[np.ndarray]:
        return self.pool.render_frames()

    def expert_action(self) -> np.ndarray:
        return self.pool.expert_action()

    def close(self) -> None:
        self.pool.close()


class MultimodalVectorEnv(VectorEnv):
    """``num_envs`` copies of an mmrl environment as one Gymnasium ``VectorEnv``.

    Subclasses set ``simulator_cls`` (as :class:`~mmrl.envs.base.MultimodalEnv` subclasses
    do); the registration names them as ``vector_entry_point``, so build one with
    ``gym.make_vec("mmrl/Driving-v1", num_envs=8)``.

    Observations are the single env's ``Dict`` batched: ``camera (N, S, S, 3)`` uint8,
    ``lidar (N, B)`` float32, ``text (N, L)`` int64, ``state (N, D)`` float32. Actions are
    ``(N,)`` ints (discrete ids) or ``(N, 2)`` float32 (continuous, clipped to the bounds).
    Step returns rewards ``(N,)`` float64 and terminations/truncations ``(N,)`` bool.

    Args:
        num_envs: Number of copies (>= 1).
        render_mode: ``None`` or ``"rgb_array"``; :meth:`render` returns one frame per copy.
        max_episode_steps: Steps after which an episode is truncated (what ``gym.make`` wraps
            the single env's ``TimeLimit`` with; ``make_vec`` passes the registration's).
            ``None`` keeps the simulator's own limit only.
        n_workers: Processes stepping the copies (1 <= ``n_workers`` <= ``num_envs``), each a
            contiguous block of them; 1 steps them in this process. Same results either way.
        **kwargs: Environment parameters, as for ``gym.make`` (unknown names raise
            ``ValueError`` listing the allowed ones).
    """

    simulator_cls: ClassVar[type[BatchedSimulator]]
    metadata: dict[str, Any] = {
        "render_modes": ["rgb_array"],
        "render_fps": 15,
        "autoreset_mode": AutoresetMode.SAME_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
        n_workers: int = 1,
        **kwargs: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ConfigError(f"must be a positive integer, got {num_envs!r}", field="num_envs")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"must be None or one of {self.metadata['render_modes']}, got {render_mode!r}",
                field="render_mode",
            )
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, int)
            or max_episode_steps < 1
        ):
            raise ConfigError(
                f"must be a positive integer or None, got {max_episode_steps!r}",
                field="max_episode_steps",
            )
        if not (type(n_workers) is int and n_workers == 1):
            from mmrl.envs.worker_pool import check_n_workers

            n_workers = check_n_workers(n_workers, num_envs)
        self.sim: BatchedSimulator | None = None
        self.pool = None
        if n_workers == 1:  # the common case checks nothing more and imports no pool
            self.sim = self.simulator_cls(num_envs, **kwargs)
            self._copies: _InProcess | _InWorkers = _InProcess(self.sim, max_episode_steps)
            source: Any = self.sim
        else:
            # Imported here: ``import mmrl`` loads this module, and most users never start
            # worker processes.
            from mmrl.envs.worker_pool import WorkerPool

            self.pool = WorkerPool(
                self.simulator_cls, num_envs, n_workers, kwargs, time_limit=max_episode_steps
            )
            self._copies = _InWorkers(self.pool)
            source = self.pool
        self._obs: dict[str, np.ndarray] | None = None
        self.metadata = dict(type(self).metadata)  # an instance's own, as SyncVectorEnv's
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.single_observation_space = source.observation_space
        self.single_action_space = source.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._needs_reset = True

    # ------------------------------------------------------------------ VectorEnv API
    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Starts new episodes in every copy (or those in ``options["reset_mask"]``).

        Args:
            seed: ``None`` keeps each copy's generator, an int ``s`` seeds copy ``i`` with
                ``s + i``, a sequence gives one seed (or ``None``) per copy.
            options: ``{"reset_mask": (N,) bool}`` resets only those copies (the others keep
                their episode and observation); other options are ignored, as the single
                envs ignore them.

        Returns:
            ``(observations, infos)``: the batched observation and the reset infos
            (``instruction``, ``is_success``, ``labels``) of the copies reset.
        """
        self._check_open()
        n = self.num_envs
        seeds = self._seeds(seed)
        mask = np.ones(n, dtype=bool)
        if options is not None and "reset_mask" in options:
            mask = self._reset_mask(options["reset_mask"])
        elif options is not None and not isinstance(options, dict):
            raise ConfigError(
                f"must be a dict or None, got {type(options).__name__}", field="options"
            )
        if self._needs_reset and not mask.all():
            raise RuntimeError("call reset() on every copy before a partial reset_mask reset")
        idx = np.flatnonzero(mask)
        self._obs, arrays = self._copies.reset(
            [seeds[i] if mask[i] else None for i in range(n)], idx, self._obs
        )
        self._needs_reset = False
        reset_info = {
            "instruction": arrays["instruction"],
            "is_success": np.zeros(n, dtype=bool),
            "labels": arrays["labels"],
        }
        return dict(self._obs), _masked(reset_info, mask)

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Steps every copy; finished copies are reset in the same call (same-step).

        Args:
            actions: ``(N,)`` discrete ids or ``(N, *action_shape)`` floats.

        Returns:
            ``(observations, rewards (N,) float64, terminations (N,) bool, truncations (N,)
            bool, infos)``; ``infos`` holds ``instruction``, ``is_success``, ``collision``,
            ``rewards`` and ``labels`` and, when a copy finished, ``final_obs`` and
            ``final_info`` for it.
        """
        self._check_open()
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        # Step, info snapshot and same-step auto-reset (gym.make's TimeLimit included: at
        # the limit truncated even when also terminated), in this process or the workers.
        obs, reply = self._copies.step(actions)
        terminated, truncated = reply.terminated, reply.truncated
        step_info = reply.info_arrays  # a snapshot from before any reset
        done = terminated | truncated
        live = ~done
        infos: dict[str, Any] = {}
        if reply.reset_info_arrays is not None:
            idx = reply.done_idx
            final_obs = np.full(self.num_envs, None, dtype=object)
            for j, i in enumerate(idx.tolist()):
                # Rows of the step's fresh terminal arrays (nothing reuses them): views.
                final_obs[i] = {key: value[j] for key, value in reply.terminal_obs.items()}
            infos["final_obs"], infos["_final_obs"] = final_obs, done.copy()
            infos["final_info"], infos["_final_info"] = _masked(step_info, done), done.copy()
            fresh = reply.reset_info_arrays
            instructions = list(step_info["instruction"])
            for j, i in enumerate(idx.tolist()):
                instructions[i] = fresh["instruction"][j]
            labels = {}
            for key, value in step_info["labels"].items():
                labels[key] = value.copy()
                labels[key][idx] = fresh["labels"][key]
            step_info = {
                "instruction": instructions,
                "is_success": step_info["is_success"] & live,
                "labels": labels,
            }
            # Step-only entries are absent for the copies reset (their info is a reset info).
            infos.update(_masked(step_info, np.ones(self.num_envs, dtype=bool)))
            rest = {
                "collision": reply.info_arrays["collision"],
                "rewards": reply.info_arrays["rewards"],
            }
            infos.update(_masked(rest, live))
        else:
            infos.update(_masked(step_info, np.ones(self.num_envs, dtype=bool)))
        self._obs = obs
        return (
            dict(obs),
            reply.reward.astype(np.float64),
            np.asarray(terminated, dtype=bool).copy(),
            np.asarray(truncated, dtype=bool).copy(),
            infos,
        )

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One RGB frame ``(H, W, 3)`` uint8 per copy (camera, lidar and instruction)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; use render_mode='rgb_array'")
            return None
        return tuple(self._copies.render_frames())

    def close_extras(self, **kwargs: Any) -> None:
        """Stops the worker processes, if any (the pool also stops them when collected)."""
        self._needs_reset = True
        self._copies.close()

    def expert_action(self) -> np.ndarray:
        """Batched actions of the scripted expert for the current states (privileged)."""
        return self._copies.expert_action()

    # ------------------------------------------------------------------ helpers
    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"{self!r} is closed")

    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        n = self.num_envs
        if seed is None:
            return [None] * n
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(n)]
        if isinstance(seed, Sequence) and not isinstance(seed, str) and len(seed) == n:
            return list(seed)
        raise ConfigError(
            f"must be None, an int or a sequence of {n} ints/None (one per copy), got {seed!r}",
            field="seed",
        )

    def _reset_mask(self, mask: Any) -> np.ndarray:
        if not (
            isinstance(mask, np.ndarray)
            and mask.dtype == np.bool_
            and mask.shape == (self.num_envs,)
        ):
            raise ConfigError(
                f"must be a bool numpy array of shape ({self.num_envs},), got {mask!r}",
                field="reset_mask",
            )
        if not mask.any():
            raise ConfigError("must select at least one copy", field="reset_mask")
        return mask
