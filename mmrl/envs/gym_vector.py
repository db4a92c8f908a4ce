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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mmrl.envs.base import BatchedSimulator
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
        self.sim = self.simulator_cls(num_envs, **kwargs)
        self.metadata = dict(type(self).metadata)  # an instance's own, as SyncVectorEnv's
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.single_observation_space = self.sim.observation_space
        self.single_action_space = self.sim.action_space
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
        self.sim.seed([seeds[i] if mask[i] else None for i in range(n)])
        self.sim.reset_envs(idx)
        if mask.all():
            self._obs = self.sim.observe()
        else:
            # New arrays: observations already returned to the caller stay as they were.
            obs = {key: value.copy() for key, value in self._obs.items()}
            for key, value in self.sim.observe(idx).items():
                obs[key][idx] = value
            self._obs = obs
        self._needs_reset = False
        return dict(self._obs), _masked(self._reset_info(), mask)

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
        reward, terminated, truncated, result = self.sim.step(actions)
        if self.max_episode_steps is not None:
            # gym.make's TimeLimit: truncated at the limit even when also terminated.
            truncated = truncated | (self.sim.elapsed >= self.max_episode_steps)
        obs = self.sim.observe()
        step_info = self.sim.info_arrays(result)  # a snapshot from before any reset
        done = terminated | truncated
        live = ~done
        infos: dict[str, Any] = {}
        if done.any():
            idx = np.flatnonzero(done)
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in idx:
                final_obs[i] = {key: value[i].copy() for key, value in obs.items()}
            infos["final_obs"], infos["_final_obs"] = final_obs, done.copy()
            infos["final_info"], infos["_final_info"] = _masked(step_info, done), done.copy()
            self.sim.reset_envs(idx)
            for key, value in self.sim.observe(idx).items():
                obs[key][idx] = value
            fresh = self._reset_info()
            instructions = list(step_info["instruction"])
            for i in idx:
                instructions[i] = fresh["instruction"][i]
            step_info = {
                "instruction": instructions,
                "is_success": step_info["is_success"] & live,
                "labels": {
                    key: np.where(done, fresh["labels"][key], value)
                    for key, value in step_info["labels"].items()
                },
            }
            # Step-only entries are absent for the copies reset (their info is a reset info).
            infos.update(_masked(step_info, np.ones(self.num_envs, dtype=bool)))
            infos.update(_masked({"collision": result.collision, "rewards": result.rewards}, live))
        else:
            infos.update(_masked(step_info, np.ones(self.num_envs, dtype=bool)))
        self._obs = obs
        return (
            dict(obs),
            reward.astype(np.float64),
            np.asarray(terminated, dtype=bool).copy(),
            np.asarray(truncated, dtype=bool).copy(),
            infos,
        )

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One RGB frame ``(H, W, 3)`` uint8 per copy (camera, lidar and instruction)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; use render_mode='rgb_array'")
            return None
        return tuple(self.sim.render_frames())

    def close_extras(self, **kwargs: Any) -> None:
        self._needs_reset = True

    def expert_action(self) -> np.ndarray:
        """Batched actions of the scripted expert for the current states (privileged)."""
        return self.sim.expert_action()

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

    def _reset_info(self) -> dict[str, Any]:
        """The reset info contents of every copy, batched (``instruction`` a list)."""
        return {
            "instruction": self.sim.instructions(),
            "is_success": np.zeros(self.num_envs, dtype=bool),
            "labels": self.sim.labels(),
        }
