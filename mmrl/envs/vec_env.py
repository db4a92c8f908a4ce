"""SB3 ``VecEnv`` over a :class:`~mmrl.envs.base.BatchedSimulator`: all copies in one array step.

SB3's ``DummyVecEnv`` steps ``n`` Python envs in a loop and ``SubprocVecEnv`` pays pickling
and IPC per step; here one simulator holds all copies, so a step is one batched computation.
Auto-reset follows SB3: a finished copy is reset inside ``step_wait``, its last observation
is in ``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"]`` tells
truncation from termination.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from mmrl.envs.base import BatchedSimulator, infos_from_arrays, reset_infos_from_arrays
from mmrl.envs.block import StepReply, step_block


def sb3_step_infos(reply: StepReply, reset_infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SB3's per-copy ``info`` dicts of a step (a :class:`~mmrl.envs.block.StepReply` of all
    copies): a finished copy's holds ``terminal_observation`` and ``TimeLimit.truncated``,
    and its new episode's reset info replaces its entry of ``reset_infos`` (in place)."""
    infos = infos_from_arrays(reply.info_arrays)
    if reply.reset_info_arrays is not None:
        fresh = reset_infos_from_arrays(reply.reset_info_arrays)
        for j, i in enumerate(reply.done_idx.tolist()):
            # Rows of the step's own fresh terminal arrays: nothing else holds or reuses
            # them, so a view per copy is as safe as a copy (and ~150 fewer small copies
            # per step under random actions).
            infos[i]["terminal_observation"] = {
                key: value[j] for key, value in reply.terminal_obs.items()
            }
            infos[i]["TimeLimit.truncated"] = bool(reply.truncated[i])
            reset_infos[i] = fresh[j]
    return infos


class BatchedVecEnv(VecEnv):
    """Runs ``simulator.num_envs`` copies as an SB3 vectorized environment.

    Args:
        simulator: The batched simulator to drive.
        render_mode: ``None`` or ``"rgb_array"``.
    """

    def __init__(self, simulator: BatchedSimulator, render_mode: str | None = None) -> None:
        self.sim = simulator
        self.render_mode = render_mode
        super().__init__(simulator.num_envs, simulator.observation_space, simulator.action_space)
        self._actions: np.ndarray | None = None
        self._obs: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> VecEnvObs:
        self.sim.seed(self._seeds)
        self.sim.reset_envs()
        self._reset_seeds()
        self._reset_options()
        self._obs = self.sim.observe()
        self.reset_infos = self.sim.reset_infos()
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        obs, reply = step_block(self.sim, self._actions)
        # Batched info contents, kept for consumers that want arrays (the dataset recorder)
        # instead of re-collecting them from the per-copy dicts SB3's API requires.
        self.step_info_arrays = reply.info_arrays
        infos = sb3_step_infos(reply, self.reset_infos)
        self._obs = obs
        return obs, reply.reward, reply.terminated | reply.truncated, infos

    def close(self) -> None:
        self._obs = None

    def get_images(self) -> Sequence[np.ndarray | None]:
        return self.sim.render_frames()

    def expert_action(self) -> np.ndarray:
        """Batched actions of the scripted expert for the current states."""
        return self.sim.expert_action()

    def labels(self) -> dict[str, np.ndarray]:
        """The simulator's privileged labels of the current states, each ``(n,)``."""
        return self.sim.labels()

    # ------------------------------------------------------------------ attribute plumbing
    def _targets(self, indices: VecEnvIndices) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        # All copies share one simulator, so an attribute is the simulator's (or ours).
        owner = self if attr_name in ("render_mode",) else self.sim
        value = getattr(owner, attr_name)
        return [value for _ in self._targets(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if len(self._targets(indices)) != self.num_envs:
            raise ValueError(
                "BatchedVecEnv copies share one simulator: set_attr applies to all copies only"
            )
        setattr(self.sim, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        method = getattr(self.sim, method_name)
        result = method(*method_args, **method_kwargs)
        return [result for _ in self._targets(indices)]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [False for _ in self._targets(indices)]


def vec_env_layers(venv: Any) -> list[Any]:
    """``venv`` and the VecEnvs it wraps, outermost first."""
    layers = [venv]
    while getattr(layers[-1], "venv", None) is not None:
        layers.append(layers[-1].venv)
    return layers


def _simulator_layer(venv: Any) -> Any:
    """The mmrl :class:`~mmrl.envs.vec_env.BatchedVecEnv` or
    :class:`~mmrl.envs.workers.WorkerVecEnv` layer of ``venv`` (``None`` if it has none)."""
    for layer in vec_env_layers(venv):
        # A worker pool has no simulator here (``sim``); its blocks name the pool.
        if hasattr(layer, "expert_action") and (hasattr(layer, "sim") or hasattr(layer, "blocks")):
            return layer
    return None


def find_expert(venv: Any) -> Callable[[], np.ndarray] | None:
    """The batched scripted expert of an mmrl ``VecEnv`` (found through its wrappers).

    Returns:
        A function giving the expert's actions for every copy's current state, or ``None``
        when no layer of ``venv`` is an mmrl :class:`~mmrl.envs.vec_env.BatchedVecEnv` or
        :class:`~mmrl.envs.workers.WorkerVecEnv`.
    """
    layer = _simulator_layer(venv)
    return None if layer is None else layer.expert_action


def find_labels(venv: Any) -> Callable[[], dict[str, np.ndarray]] | None:
    """The privileged labels of an mmrl ``VecEnv``'s current states (through its wrappers).

    Unlike ``info["labels"]``, which describes the state a step ended in (before a finished
    copy's auto-reset), these describe the states of the observations the step returned.

    Returns:
        A function giving ``{name: (n,) array}``, or ``None`` as :func:`find_expert`.
    """
    layer = _simulator_layer(venv)
    return None if layer is None else layer.labels
