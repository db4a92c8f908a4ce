"""The episode view of a Minari dataset: every state of every episode, for offline evaluation.

Fitted Q Evaluation needs each transition's next state, final observations included, and the
first state of every episode, so all ``S = N + E`` states are stored once and transitions index
into them. Read through :func:`mmrl.data.reader.open_dataset`, the reader the transition view
(:func:`mmrl.data.dataset.load_offline_data`, pretraining) uses too, so both refuse a bad dataset
with the same :class:`~mmrl.errors.DatasetError`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.data.dataset import (
    BEHAVIOUR_LOG_PROB_KEY,
    EXPERT_ACTION_KEY,
    LABELS_KEY,
    parse_dataset_ids,
)
from mmrl.data.reader import open_dataset
from mmrl.errors import DatasetError
from mmrl.spaces import check

__all__ = ["LoggedData", "concat_logged_data", "load_logged_data"]


@dataclasses.dataclass
class LoggedData:
    """Logged episodes flattened for batched indexing.

    All ``S`` states (every episode's ``T + 1`` observations, the final one included) are
    stored once; transition ``i`` goes from ``states[state_idx[i]]`` to
    ``states[state_idx[i] + 1]``.

    Attributes:
        dataset_id: The Minari id.
        observation_space: The dataset's observation space (channel-last images).
        action_space: The dataset's action space.
        observations: Key -> ``(S, ...)`` array in the dataset's dtype.
        actions: ``(N,)`` int64 (discrete) or ``(N, d)`` float32 logged actions.
        rewards: ``(N,)`` float64.
        terminated: ``(N,)`` bool, true terminations (truncations bootstrap).
        state_idx: ``(N,)`` int64 index of each transition's state.
        first_idx: ``(E,)`` int64 index of each episode's first state.
        episode_of: ``(N,)`` int64 episode of each transition.
        step_of: ``(N,)`` int64 step of each transition within its episode.
        behaviour_log_prob: ``(N,)`` float64 ``log mu(a|s)`` of each logged action under the
            behaviour policy (``infos["behaviour_log_prob"]``, see :mod:`mmrl.densities`), or
            ``None`` when some episode did not log it (older datasets, other tools).
        expert_actions: ``(S,)`` int64 or ``(S, d)`` float32 scripted-expert action at every
            state (``infos["expert_action"]``; final states hold -1 / NaN), or ``None``.
        metadata: The dataset's ``mmrl`` metadata (collection settings; ``behaviour`` names
            the behaviour policy), empty for datasets other tools wrote.
        labels: Name -> ``(S,)`` privileged simulator label of every state
            (``infos["labels"]``, written by ``mmrl collect``: lane, distance and bearing to
            the instruction's referent...), or ``None`` when some episode lacks them.
        time_limit: The environment's ``max_episode_steps`` (from the env spec Minari
            records), after which it truncates an episode; ``None`` when unknown.
    """

    dataset_id: str
    observation_space: spaces.Space
    action_space: spaces.Space
    observations: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    state_idx: np.ndarray
    first_idx: np.ndarray
    episode_of: np.ndarray
    step_of: np.ndarray
    behaviour_log_prob: np.ndarray | None = None
    expert_actions: np.ndarray | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    labels: dict[str, np.ndarray] | None = None
    time_limit: int | None = None

    @property
    def n_transitions(self) -> int:
        """``N``."""
        return len(self.rewards)

    @property
    def n_episodes(self) -> int:
        """``E``."""
        return len(self.first_idx)

    @property
    def n_states(self) -> int:
        """``S = N + E``."""
        return len(next(iter(self.observations.values())))

    @property
    def discrete(self) -> bool:
        """Whether actions are discrete."""
        return isinstance(self.action_space, spaces.Discrete)

    def episode_returns(self, gamma: float = 1.0) -> np.ndarray:
        """``(E,)`` float64 (discounted) return of every logged episode."""
        weights = self.rewards * np.power(gamma, self.step_of, dtype=np.float64)
        return np.bincount(self.episode_of, weights=weights, minlength=self.n_episodes)

    def episode_lengths(self) -> np.ndarray:
        """``(E,)`` int64 steps of every logged episode."""
        return np.bincount(self.episode_of, minlength=self.n_episodes).astype(np.int64)

    def state_steps(self) -> np.ndarray:
        """``(S,)`` int64 step of every state within its episode (``0`` for the first,
        ``T`` for an episode's final observation)."""
        steps = np.zeros(self.n_states, dtype=np.int64)
        steps[self.state_idx + 1] = self.step_of + 1  # every next state, final ones included
        steps[self.state_idx] = self.step_of
        return steps

    def states(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Observations of states ``idx`` (key -> ``(len(idx), ...)``)."""
        return {k: v[idx] for k, v in self.observations.items()}


def load_logged_data(
    dataset_ids: str | Sequence[str], max_episodes: int | None = None
) -> LoggedData:
    """Reads one Minari dataset of Dict observations, or several as one, into
    :class:`LoggedData`.

    Several datasets are one batch of logs from several behaviour policies (e.g. a noisy
    expert's and a deployed learner's): every episode keeps the behaviour probabilities its
    own policy logged, which is what per-episode importance weights need
    (:func:`concat_logged_data`).

    Args:
        dataset_ids: Minari id (looked up under ``MINARI_DATASETS_PATH``), ``"a,b"`` or
            ``["a", "b"]``.
        max_episodes: Read only the first episodes of each dataset (``None``: all).

    Raises:
        DatasetError: As :func:`mmrl.data.reader.open_dataset` and
            :meth:`~mmrl.data.reader.DatasetReader.episodes`: missing, unreadable, empty,
            truncated or corrupt data, or one that is not a Dict-observation dataset with
            Discrete or Box actions; an id named twice; datasets whose spaces differ.
    """
    parts = [_load_one(i, max_episodes) for i in parse_dataset_ids(dataset_ids)]
    return parts[0] if len(parts) == 1 else concat_logged_data(parts)


def _load_one(dataset_id: str, max_episodes: int | None) -> LoggedData:
    reader = open_dataset(dataset_id, max_episodes)
    keys = list(reader.observation_space.spaces)
    obs_parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    actions, rewards, terminated, state_idx, first_idx, episode_of, step_of = ([] for _ in range(7))
    behaviour: list[np.ndarray] | None = []
    expert: list[np.ndarray] | None = []
    privileged: list[dict[str, np.ndarray]] | None = []
    offset = 0
    for episode in reader.episodes():
        t, e = len(episode), episode.index
        for key in keys:
            obs_parts[key].append(episode.observations[key])
        actions.append(episode.actions)
        rewards.append(episode.rewards.astype(np.float64))
        terminated.append(episode.terminations)
        state_idx.append(offset + np.arange(t, dtype=np.int64))
        first_idx.append(offset)
        episode_of.append(np.full(t, e, dtype=np.int64))
        step_of.append(np.arange(t, dtype=np.int64))
        offset += t + 1
        logged = episode.infos.get(BEHAVIOUR_LOG_PROB_KEY)
        if behaviour is not None and logged is not None and len(logged) >= t:
            behaviour.append(np.asarray(logged, dtype=np.float64)[:t])
        else:
            behaviour = None  # one episode without it: the behaviour policy is unknown
        labels = episode.infos.get(EXPERT_ACTION_KEY)
        if expert is not None and labels is not None and len(labels) == t + 1:
            expert.append(np.asarray(labels))
        else:
            expert = None
        privileged = _add_labels(privileged, episode.infos.get(LABELS_KEY), t)
    act_space = reader.action_space
    act = np.concatenate(actions)
    act = (
        act.astype(np.int64).reshape(-1)
        if isinstance(act_space, spaces.Discrete)
        else act.astype(np.float32).reshape(-1, *act_space.shape)
    )
    return LoggedData(
        dataset_id=dataset_id,
        observation_space=reader.observation_space,
        action_space=act_space,
        observations={k: np.concatenate(v) for k, v in obs_parts.items()},
        actions=act,
        rewards=np.concatenate(rewards),
        terminated=np.concatenate(terminated),
        state_idx=np.concatenate(state_idx),
        first_idx=np.asarray(first_idx, dtype=np.int64),
        episode_of=np.concatenate(episode_of),
        step_of=np.concatenate(step_of),
        behaviour_log_prob=np.concatenate(behaviour) if behaviour else None,
        expert_actions=_expert_actions(expert, act_space) if expert else None,
        metadata=dict(reader.metadata.get("mmrl") or {}),
        labels=(
            {k: np.concatenate([ep[k] for ep in privileged]) for k in privileged[0]}
            if privileged
            else None
        ),
        time_limit=_time_limit(reader.metadata.get("env_spec")),
    )


def _time_limit(env_spec: Any) -> int | None:
    """The steps after which the recorded env truncates an episode, from the spec Minari
    stores as JSON: the env's own ``max_episode_steps`` kwarg where it takes one (Driving's
    simulator truncates there), else the registration's ``TimeLimit``. ``None``: no spec, no
    limit, or one that does not parse (datasets written by other tools stay readable)."""
    if isinstance(env_spec, str):
        try:
            env_spec = json.loads(env_spec)
        except ValueError:
            return None
    if not isinstance(env_spec, dict):
        return None
    kwargs = env_spec.get("kwargs") if isinstance(env_spec.get("kwargs"), dict) else {}
    for limit in (kwargs.get("max_episode_steps"), env_spec.get("max_episode_steps")):
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            return int(limit)
    return None


def _add_labels(
    kept: list[dict[str, np.ndarray]] | None, labels: Any, t: int
) -> list[dict[str, np.ndarray]] | None:
    """Appends one episode's per-state labels; ``None`` from the first episode whose labels
    are missing, named differently, or not one scalar per state (``t + 1`` of them)."""
    if kept is None or not isinstance(labels, dict) or not labels:
        return None
    arrays = {k: np.asarray(v) for k, v in labels.items()}
    if any(a.shape != (t + 1,) for a in arrays.values()) or (kept and set(arrays) != set(kept[0])):
        return None
    kept.append(arrays)
    return kept


def _expert_actions(parts: list[np.ndarray], space: spaces.Space) -> np.ndarray:
    joined = np.concatenate(parts)
    if isinstance(space, spaces.Discrete):
        return joined.astype(np.int64).reshape(-1)
    return joined.astype(np.float32).reshape(-1, *space.shape)


def concat_logged_data(parts: Sequence[LoggedData]) -> LoggedData:
    """Several datasets' episodes as one :class:`LoggedData`, in order.

    Behaviour log-probabilities, expert actions and labels are kept only when every part
    has them (with the same label names), as for the episodes of one dataset. The metadata
    keeps the first part's collection settings and describes the mixture in ``behaviour``
    (``policy``: each part's policy, noise and episode count) and ``sources`` (each part's
    id, episodes and ``behaviour`` block).

    Raises:
        DatasetError: Fewer than two parts, or parts whose observation or action spaces
            differ (naming both datasets and the difference).
    """
    if len(parts) < 2:
        raise DatasetError(f"concat_logged_data needs at least two datasets, got {len(parts)}")
    first = parts[0]
    for part in parts[1:]:
        check(
            first.observation_space,
            first.action_space,
            part.observation_space,
            part.action_space,
            f"dataset {part.dataset_id!r} vs {first.dataset_id!r}",
            names=(f"dataset {first.dataset_id!r}", f"dataset {part.dataset_id!r}"),
        )
    state_offsets = np.cumsum([0] + [p.n_states for p in parts[:-1]])
    episode_offsets = np.cumsum([0] + [p.n_episodes for p in parts[:-1]])

    def cat(name: str) -> np.ndarray | None:
        arrays = [getattr(p, name) for p in parts]
        return None if any(a is None for a in arrays) else np.concatenate(arrays)

    same_labels = all(
        p.labels is not None and first.labels is not None and set(p.labels) == set(first.labels)
        for p in parts
    )
    sources = [
        {"dataset_id": p.dataset_id, "episodes": p.n_episodes,
         "behaviour": dict(p.metadata.get("behaviour") or {})}
        for p in parts
    ]  # fmt: skip
    return LoggedData(
        dataset_id=",".join(p.dataset_id for p in parts),
        observation_space=first.observation_space,
        action_space=first.action_space,
        observations={
            k: np.concatenate([p.observations[k] for p in parts]) for k in first.observations
        },
        actions=np.concatenate([p.actions for p in parts]),
        rewards=np.concatenate([p.rewards for p in parts]),
        terminated=np.concatenate([p.terminated for p in parts]),
        state_idx=np.concatenate([p.state_idx + o for p, o in zip(parts, state_offsets)]),
        first_idx=np.concatenate([p.first_idx + o for p, o in zip(parts, state_offsets)]),
        episode_of=np.concatenate([p.episode_of + o for p, o in zip(parts, episode_offsets)]),
        step_of=np.concatenate([p.step_of for p in parts]),
        behaviour_log_prob=cat("behaviour_log_prob"),
        expert_actions=cat("expert_actions"),
        metadata={
            **first.metadata,
            "behaviour": {"policy": " + ".join(_describe(s) for s in sources), "mixture": True},
            "sources": sources,
        },
        labels=(
            {k: np.concatenate([p.labels[k] for p in parts]) for k in first.labels}
            if same_labels
            else None
        ),
        # One limit for the log only when every part ran under the same one.
        time_limit=first.time_limit if len({p.time_limit for p in parts}) == 1 else None,
    )


def _describe(source: dict[str, Any]) -> str:
    """``expert (epsilon 0.5, 150 episodes)`` or ``bc.pt (sampled, epsilon 0.1, ...)`` for one
    part of a mixture."""
    meta = source["behaviour"]
    sampled = "sampled, " if meta.get("stochastic") else ""
    return (
        f"{meta.get('policy', 'unknown policy')} ({sampled}epsilon {meta.get('epsilon', '?')}, "
        f"{source['episodes']} episodes)"
    )
