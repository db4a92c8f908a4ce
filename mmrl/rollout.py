"""Batched episode collection used by training-time evaluation and ``mmrl evaluate``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv


@dataclasses.dataclass
class Episode:
    """Summary of one finished episode.

    Attributes:
        ret: Undiscounted return.
        length: Steps.
        success: ``info["is_success"]`` at the end (``False`` when the env does not report it).
        collision: Whether any step reported ``info["collision"]``.
        instruction: The instruction of the episode (``""`` when the env has none).
        reward_terms: Per named reward term, the episode sum.
        env_index: Which copy of the vec env ran it.
        labels: ``info["labels"]`` of the episode's last step (privileged labels such as the
            instruction type; empty when the env reports none).
    """

    ret: float
    length: int
    success: bool
    collision: bool
    instruction: str
    reward_terms: dict[str, float]
    env_index: int
    labels: dict[str, Any] = dataclasses.field(default_factory=dict)


def collect_episodes(
    predict: Callable[..., tuple[np.ndarray, Any]],
    venv: VecEnv,
    n_episodes: int,
    deterministic: bool = True,
    on_step: Callable[[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict]], None]
    | None = None,
    subset_rows: bool = True,
) -> list[Episode]:
    """Runs ``n_episodes`` episodes spread evenly over the copies of ``venv``.

    Like SB3's ``evaluate_policy``, each copy runs a fixed quota of episodes so short
    episodes do not crowd out long ones (SB3 issue #402); unlike it, per-episode success,
    collision, instruction and reward terms are kept for the tables of ``mmrl evaluate``.

    Args:
        predict: ``model.predict``-like: ``(obs, state, episode_start, deterministic)``.
        venv: The environment; it is reset first.
        n_episodes: Episodes to collect (>= 1).
        deterministic: Greedy actions.
        on_step: Optional hook called with ``(obs, actions, rewards, infos)`` every step.
        subset_rows: Once some copies have finished their quota, pass only the active rows
            to ``predict``. ``False`` always passes every row, for policies that act for all
            copies at once from the simulator's state (the scripted expert).

    Returns:
        The episodes in completion order.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    n = venv.num_envs
    quota = np.array([(n_episodes + i) // n for i in range(n)], dtype=np.int64)
    done_count = np.zeros(n, dtype=np.int64)
    returns = np.zeros(n, dtype=np.float64)
    lengths = np.zeros(n, dtype=np.int64)
    collided = np.zeros(n, dtype=bool)
    terms: list[dict[str, float]] = [{} for _ in range(n)]
    obs = venv.reset()
    instructions = [info.get("instruction", "") for info in getattr(venv, "reset_infos", [{}] * n)]
    if len(instructions) != n:
        instructions = [""] * n
    episode_starts = np.ones(n, dtype=bool)
    state = None
    episodes: list[Episode] = []
    actions: np.ndarray | None = None
    while (done_count < quota).any():
        active = done_count < quota
        if subset_rows and state is None and actions is not None and not active.all():
            # Copies that finished their quota still step (a VecEnv steps all copies) but
            # their episodes are discarded, so only the active rows go through the policy:
            # in the long tail of an evaluation that is most of the compute.
            rows = np.flatnonzero(active)
            sub = {k: v[rows] for k, v in obs.items()} if isinstance(obs, dict) else obs[rows]
            sub_actions, _ = predict(
                sub, state=None, episode_start=episode_starts[rows], deterministic=deterministic
            )
            actions = actions.copy()
            actions[rows] = sub_actions
        else:
            actions, state = predict(
                obs, state=state, episode_start=episode_starts, deterministic=deterministic
            )
            actions = np.asarray(actions)
        next_obs, rewards, dones, infos = venv.step(actions)
        if on_step is not None:
            on_step(obs, actions, rewards, infos)
        returns += rewards
        lengths += 1
        for i, info in enumerate(infos):
            collided[i] |= bool(info.get("collision", False))
            for k, v in info.get("rewards", {}).items():
                terms[i][k] = terms[i].get(k, 0.0) + float(v)
            if not instructions[i]:
                instructions[i] = info.get("instruction", "")
            if not dones[i]:
                continue
            if done_count[i] < quota[i]:
                ret = float(info["episode"]["r"]) if "episode" in info else float(returns[i])
                episodes.append(
                    Episode(
                        ret=ret,
                        length=int(info["episode"]["l"]) if "episode" in info else int(lengths[i]),
                        success=bool(info.get("is_success", False)),
                        collision=bool(collided[i]),
                        instruction=instructions[i],
                        reward_terms=dict(terms[i]),
                        env_index=i,
                        labels=dict(info.get("labels", {})),
                    )
                )
                done_count[i] += 1
            returns[i] = 0.0
            lengths[i] = 0
            collided[i] = False
            terms[i] = {}
            instructions[i] = ""
        episode_starts = dones
        obs = next_obs
    return episodes


def summarize(episodes: list[Episode]) -> dict[str, float]:
    """Means over episodes: return, length, success and collision rates."""
    if not episodes:
        return {"episodes": 0}
    return summarize_arrays(
        np.array([e.ret for e in episodes], dtype=np.float64),
        np.array([e.length for e in episodes], dtype=np.int64),
        np.array([e.success for e in episodes], dtype=bool),
        np.array([e.collision for e in episodes], dtype=bool),
    )


def summarize_arrays(
    returns: np.ndarray, lengths: np.ndarray, successes: np.ndarray, collisions: np.ndarray
) -> dict[str, float]:
    """:func:`summarize` of per-episode arrays (what an evaluation result keeps), so the
    periodic evaluation, ``mmrl evaluate`` and bench records share one formula."""
    if len(returns) == 0:
        return {"episodes": 0}
    return {
        "episodes": len(returns),
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)),
        "success_rate": float(np.mean(successes)),
        "collision_rate": float(np.mean(collisions)),
    }
