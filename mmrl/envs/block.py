"""One step of a block of copies with same-step auto-reset: the sequence every stepper shares.

The SB3 :class:`~mmrl.envs.vec_env.BatchedVecEnv`, a worker process of the pool
(:mod:`mmrl.envs.worker_process`) and the Gymnasium
:class:`~mmrl.envs.gym_vector.MultimodalVectorEnv` all step a
:class:`~mmrl.envs.base.BatchedSimulator` the same way: step, observe, snapshot the infos,
reset the copies that finished, observe those again. :func:`step_block` is that sequence,
written once, so the random draws happen in the same order whatever the process layout and
copy ``i`` follows the same trajectory in every front end (the seeding contract). What it
reports is a :class:`StepReply`, which a pool of workers joins with :func:`merge_replies`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmrl.envs.base import BatchedSimulator

__all__ = ["StepReply", "concat_info_arrays", "merge_replies", "step_block"]


@dataclasses.dataclass
class StepReply:
    """What one step of ``k`` copies reports (besides the observations).

    Attributes:
        reward: ``(k,)`` float32 summed reward.
        terminated: ``(k,)`` bool.
        truncated: ``(k,)`` bool.
        info_arrays: The step's batched info contents, taken before any auto-reset
            (:meth:`BatchedSimulator.info_arrays`).
        done_idx: ``(d,)`` int64 indices of the copies that finished (ascending).
        terminal_obs: Key to ``(d, ...)``: the finished copies' last observations (the
            returned observations already hold their next episode's first ones); empty
            when none finished.
        reset_info_arrays: The new episodes' reset info contents
            (:meth:`BatchedSimulator.reset_info_arrays` of ``done_idx``); ``None`` when none
            finished.
    """

    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    info_arrays: dict[str, Any]
    done_idx: np.ndarray
    terminal_obs: dict[str, np.ndarray]
    reset_info_arrays: dict[str, Any] | None


def step_block(
    sim: BatchedSimulator, actions: Any, time_limit: int | None = None
) -> tuple[dict[str, np.ndarray], StepReply]:
    """Steps every copy of ``sim`` and resets those whose episode ended (same-step).

    Args:
        sim: The simulator.
        actions: A batch of ``sim.num_envs`` actions (validated by ``sim.step``).
        time_limit: Also truncate at this many steps even when terminated (what Gymnasium's
            ``TimeLimit`` does to the single env); ``None``: the simulator's own limit only.

    Returns:
        ``(observations, reply)``: the batched observations after the auto-reset (new
        arrays) and the step's :class:`StepReply`.
    """
    reward, terminated, truncated, result = sim.step(actions)
    if time_limit is not None:
        truncated = truncated | (sim.elapsed >= time_limit)
    obs = sim.observe()
    info_arrays = sim.info_arrays(result)  # a snapshot from before any reset
    done_idx = np.flatnonzero(terminated | truncated)
    terminal: dict[str, np.ndarray] = {}
    reset_arrays = None
    if done_idx.size:
        terminal = {key: value[done_idx] for key, value in obs.items()}  # copies
        sim.reset_envs(done_idx)
        for key, value in sim.observe(done_idx).items():
            obs[key][done_idx] = value
        reset_arrays = sim.reset_info_arrays(done_idx)
    reply = StepReply(reward, terminated, truncated, info_arrays, done_idx, terminal, reset_arrays)
    return obs, reply


def concat_info_arrays(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Joins batched info contents in copy order (lists chained, arrays concatenated, nested
    dicts key by key): the single simulator's ``info_arrays`` from its blocks' ones."""
    first = parts[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        values = [part[key] for part in parts]
        if isinstance(value, dict):
            out[key] = concat_info_arrays(values)
        elif isinstance(value, list):
            out[key] = [item for v in values for item in v]
        else:
            out[key] = np.concatenate(values)
    return out


def merge_replies(parts: Sequence[StepReply], starts: Sequence[int]) -> StepReply:
    """One :class:`StepReply` for all copies from the replies of contiguous blocks that
    start at copies ``starts``."""
    done = [part.done_idx + start for part, start in zip(parts, starts)]
    finished = [part for part in parts if part.done_idx.size]
    return StepReply(
        reward=np.concatenate([part.reward for part in parts]),
        terminated=np.concatenate([part.terminated for part in parts]),
        truncated=np.concatenate([part.truncated for part in parts]),
        info_arrays=concat_info_arrays([part.info_arrays for part in parts]),
        done_idx=np.concatenate(done).astype(np.int64),
        terminal_obs={
            key: np.concatenate([part.terminal_obs[key] for part in finished])
            for key in (finished[0].terminal_obs if finished else {})
        },
        reset_info_arrays=(
            concat_info_arrays([part.reset_info_arrays for part in finished]) if finished else None
        ),
    )
