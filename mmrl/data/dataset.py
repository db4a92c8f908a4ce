"""The transition view of a Minari dataset: every step as contiguous tensors, for pretraining.

Read through the one reader, :func:`mmrl.data.reader.open_dataset` (the episode view for
offline evaluation is :mod:`mmrl.data.episodes`). Pretraining samples random minibatches from
every step of every episode, so the data is held as one contiguous tensor per observation key
(``(N, ...)``, images as ``uint8``) and batched by indexing with a tensor of row ids: no
per-sample Python loop and no ``DataLoader`` workers. Images are stored channel-first, exactly
as SB3's ``VecTransposeImage`` hands them to a ``MultiInputPolicy``, so weights pretrained here
see the same layout as in PPO.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from mmrl.data.reader import (
    dataset_root,
    load_minari_dataset,
    open_dataset,
    validate_dataset_id,
)
from mmrl.errors import DatasetError, one_line
from mmrl.spaces import check, differences, image_keys_to_transpose, policy_view

if TYPE_CHECKING:
    import torch as th

# torch is imported where tensors are made, not here: the dataset writer's process
# (mmrl.data.background) imports this package, and torch would triple its start-up time.

__all__ = [
    "BEHAVIOUR_LOG_PROB_KEY",
    "EXPERT_ACTION_KEY",
    "INSTRUCTION_KEY",
    "LABELS_KEY",
    "DatasetError",
    "OfflineData",
    "check_spaces",
    "concat_offline_data",
    "dataset_root",
    "image_keys_to_transpose",
    "load_minari_dataset",
    "load_offline_data",
    "load_offline_datasets",
    "mmrl_metadata",
    "parse_dataset_ids",
    "policy_observation_space",
    "space_differences",
    "validate_dataset_id",
]

#: Info keys written by ``mmrl collect`` (see :mod:`mmrl.collect`).
EXPERT_ACTION_KEY = "expert_action"
#: ``log mu(a_t|s_t)`` of the executed action under the behaviour policy (``(T + 1,)`` float64,
#: the final row NaN): a log-probability for discrete actions, a log-density for continuous
#: ones, ``+inf`` for a deterministic policy's continuous choice (see :mod:`mmrl.densities`).
BEHAVIOUR_LOG_PROB_KEY = "behaviour_log_prob"
LABELS_KEY = "labels"
INSTRUCTION_KEY = "instruction"


# The spaces' helpers live in mmrl.spaces (one place to compare spaces); these names stay
# importable from here for code written before issue 14.
policy_observation_space = policy_view
check_spaces = check
space_differences = differences


# ---------------------------------------------------------------------------- contiguous data
@dataclasses.dataclass
class OfflineData:
    """Every step of a dataset as contiguous CPU tensors (row ``i`` = one transition).

    Attributes:
        dataset_id: Minari id it was read from.
        observations: Key -> ``(N, ...)`` tensor in the policy layout (images ``uint8``
            ``(N, C, H, W)``; other keys in their stored dtype).
        actions: Logged (executed) actions, ``(N,)`` int64 or ``(N, A)`` float32.
        bc_actions: Behaviour-cloning targets: the expert's action where the dataset logged
            one (``infos["expert_action"]``, so epsilon-noise steps still get clean labels,
            as in DART, Laskey et al. 2017), else the executed action. Same shape as actions.
        rewards: ``(N,)`` float32.
        terminations: ``(N,)`` bool.
        truncations: ``(N,)`` bool.
        labels: Privileged label name -> ``(N,)`` tensor (int64 or float32) at the step's
            observation.
        instruction_ids: ``(N,)`` int64 index into :attr:`instructions`.
        instructions: Distinct instruction strings.
        episode: ``(N,)`` int64 episode index of each row.
        observation_space: Policy-layout observation space (images channel-first).
        dataset_observation_space: Observation space as stored (the environment's).
        action_space: Action space.
        metadata: Minari metadata (``metadata["mmrl"]`` holds the collection settings).
    """

    dataset_id: str
    observations: dict[str, th.Tensor]
    actions: th.Tensor
    bc_actions: th.Tensor
    rewards: th.Tensor
    terminations: th.Tensor
    truncations: th.Tensor
    labels: dict[str, th.Tensor]
    instruction_ids: th.Tensor
    instructions: list[str]
    episode: th.Tensor
    observation_space: spaces.Dict
    dataset_observation_space: spaces.Dict
    action_space: spaces.Space
    metadata: dict[str, Any]

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def num_episodes(self) -> int:
        """Number of episodes."""
        return int(self.episode.max().item()) + 1 if len(self) else 0

    def split(self, val_fraction: float, seed: int = 0) -> tuple[th.Tensor, th.Tensor]:
        """Train/validation row ids, split by episode (no episode straddles the two).

        Whole episodes go to validation so near-duplicate consecutive frames cannot leak
        between the sets and inflate validation scores.

        Args:
            val_fraction: Fraction of episodes for validation (at least one episode when
                ``> 0`` and there are two or more episodes).
            seed: Seed of the episode permutation.

        Returns:
            ``(train_rows, val_rows)``, int64 tensors (``val_rows`` may be empty).
        """
        import torch as th

        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        n_ep = self.num_episodes
        n_val = round(val_fraction * n_ep)
        n_val = min(max(n_val, 1), n_ep - 1) if val_fraction > 0 and n_ep >= 2 else 0
        gen = th.Generator().manual_seed(seed)
        val_eps = th.randperm(n_ep, generator=gen)[:n_val]
        is_val = th.zeros(n_ep, dtype=th.bool)
        is_val[val_eps] = True
        row_is_val = is_val[self.episode]
        rows = th.arange(len(self))
        return rows[~row_is_val], rows[row_is_val]

    def batch(self, rows: th.Tensor) -> dict[str, th.Tensor]:
        """Observations of ``rows`` (int64 ``(B,)``): key -> ``(B, ...)`` (one gather per key)."""
        return {key: value.index_select(0, rows) for key, value in self.observations.items()}


def _decode_strings(values: Any) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def load_offline_data(dataset_id: str, max_episodes: int | None = None) -> OfflineData:
    """Reads a Minari dataset into an :class:`OfflineData` of contiguous tensors.

    The transition view of :func:`mmrl.data.reader.open_dataset` (the episode view is
    :func:`mmrl.data.episodes.load_logged_data`): row ``i`` is one step, the final observation
    of each episode is dropped.

    Args:
        dataset_id: Minari id.
        max_episodes: Read only the first episodes (``None``: all).

    Returns:
        The data, observations in the SB3 policy layout.

    Raises:
        DatasetError: Missing, empty, truncated or corrupt data, naming the dataset and the
            episode or key that is wrong.
    """
    import torch as th

    reader = open_dataset(dataset_id, max_episodes)
    obs_space, action_space = reader.observation_space, reader.action_space
    total = reader.total_steps
    transpose = set(image_keys_to_transpose(obs_space))
    pol_space = policy_view(obs_space)
    obs = {
        key: np.empty((total, *sub.shape), dtype=sub.dtype) for key, sub in pol_space.spaces.items()
    }
    discrete = isinstance(action_space, spaces.Discrete)
    act_shape = () if discrete else action_space.shape
    act_dtype = np.int64 if discrete else np.float32
    actions = np.empty((total, *act_shape), dtype=act_dtype)
    bc_actions = np.empty_like(actions)
    rewards = np.empty(total, dtype=np.float32)
    terminations = np.empty(total, dtype=bool)
    truncations = np.empty(total, dtype=bool)
    episode = np.empty(total, dtype=np.int64)
    labels: dict[str, np.ndarray] = {}
    instruction_ids = np.zeros(total, dtype=np.int64)
    instruction_index: dict[str, int] = {}

    offset = 0
    for ep in reader.episodes():
        t, ep_idx, where = len(ep), ep.index, reader.where(ep.index)
        rows = slice(offset, offset + t)
        try:
            for key, value in ep.observations.items():
                value = value[:t]
                # Channel-last -> channel-first, as VecTransposeImage does for the policy.
                obs[key][rows] = np.moveaxis(value, -1, 1) if key in transpose else value
            actions[rows] = ep.actions.reshape((t, *act_shape))
            rewards[rows] = ep.rewards
            terminations[rows] = ep.terminations
            truncations[rows] = ep.truncations
            episode[rows] = ep_idx
            expert = ep.infos.get(EXPERT_ACTION_KEY)
            bc_actions[rows] = actions[rows]
            if expert is not None:
                expert = np.asarray(expert)[:t].reshape((t, *act_shape))
                valid = expert >= 0 if discrete else np.isfinite(expert).all(axis=-1)
                view = bc_actions[rows]  # a view: basic slicing
                view[valid] = expert[valid].astype(act_dtype)
            for name, value in (ep.infos.get(LABELS_KEY) or {}).items():
                value = np.asarray(value)[:t]
                if name not in labels:
                    if ep_idx:
                        raise DatasetError(f"{where}: label {name!r} missing from earlier episodes")
                    dtype = np.int64 if np.issubdtype(value.dtype, np.integer) else np.float32
                    labels[name] = np.zeros(total, dtype=dtype)
                labels[name][rows] = value
            if INSTRUCTION_KEY in ep.infos:
                strings = _decode_strings(np.asarray(ep.infos[INSTRUCTION_KEY])[:t])
                instruction_ids[rows] = [
                    instruction_index.setdefault(s, len(instruction_index)) for s in strings
                ]
        except (KeyError, ValueError, TypeError, IndexError) as err:
            # Arrays that do not fit the spaces (a hand-written or damaged dataset).
            raise DatasetError(f"{where}: {type(err).__name__}: {one_line(err)}") from None
        offset += t

    return OfflineData(
        dataset_id=dataset_id,
        observations={k: th.from_numpy(v) for k, v in obs.items()},
        actions=th.from_numpy(actions),
        bc_actions=th.from_numpy(bc_actions),
        rewards=th.from_numpy(rewards),
        terminations=th.from_numpy(terminations),
        truncations=th.from_numpy(truncations),
        labels={k: th.from_numpy(v) for k, v in labels.items()},
        instruction_ids=th.from_numpy(instruction_ids),
        instructions=list(instruction_index),
        episode=th.from_numpy(episode),
        observation_space=pol_space,
        dataset_observation_space=obs_space,
        action_space=action_space,
        metadata=reader.metadata,
    )


def parse_dataset_ids(dataset_ids: str | Sequence[str]) -> list[str]:
    """The ids of ``"a"``, ``"a,b"`` or ``["a", "b"]``, checked.

    Raises:
        DatasetError: An empty id, or one named twice.
    """
    ids = (
        [i.strip() for i in dataset_ids.split(",")]
        if isinstance(dataset_ids, str)
        else list(dataset_ids)
    )
    if not ids or any(not i for i in ids):
        raise DatasetError(
            f"--dataset: expected one or more comma-separated ids, got {dataset_ids!r}"
        )
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise DatasetError(f"--dataset names {repeated} more than once")
    return ids


def load_offline_datasets(
    dataset_ids: str | Sequence[str], max_episodes: int | None = None
) -> OfflineData:
    """Reads one or several Minari datasets (comma-separated or a list) as one
    :class:`OfflineData`, e.g. expert data plus DAgger-style relabelled data.

    Args:
        dataset_ids: ``"a"``, ``"a,b"`` or ``["a", "b"]``.
        max_episodes: Read only the first episodes of each dataset.

    Raises:
        DatasetError: As :func:`load_offline_data`, a repeated id, or datasets whose spaces
            or label names differ (naming them).
    """
    parts = [
        load_offline_data(i, max_episodes=max_episodes) for i in parse_dataset_ids(dataset_ids)
    ]
    return parts[0] if len(parts) == 1 else concat_offline_data(parts)


def concat_offline_data(parts: Sequence[OfflineData]) -> OfflineData:
    """Concatenates datasets of the same spaces and labels (episodes keep their identity:
    episode indices are offset, instruction ids remapped to one shared list).

    Raises:
        DatasetError: Differing observation/action spaces or label names, naming them.
    """
    import torch as th

    first = parts[0]
    for part in parts[1:]:
        what = f"dataset {part.dataset_id!r} vs {first.dataset_id!r}"
        check(
            first.dataset_observation_space,
            first.action_space,
            part.dataset_observation_space,
            part.action_space,
            what,
            names=(f"dataset {first.dataset_id!r}", f"dataset {part.dataset_id!r}"),
        )
        if set(part.labels) != set(first.labels):
            raise DatasetError(
                f"{what}: label names differ: {sorted(set(part.labels) ^ set(first.labels))} "
                "are in only one of them"
            )
    instruction_index: dict[str, int] = {}
    instruction_ids, episodes, offset = [], [], 0
    for part in parts:
        remap = th.tensor(
            [instruction_index.setdefault(s, len(instruction_index)) for s in part.instructions],
            dtype=th.int64,
        )
        instruction_ids.append(remap[part.instruction_ids] if len(remap) else part.instruction_ids)
        episodes.append(part.episode + offset)
        offset += part.num_episodes

    def cat(get: Any) -> th.Tensor:
        return th.cat([get(p) for p in parts])

    return OfflineData(
        dataset_id=",".join(p.dataset_id for p in parts),
        observations={k: cat(lambda p, k=k: p.observations[k]) for k in first.observations},
        actions=cat(lambda p: p.actions),
        bc_actions=cat(lambda p: p.bc_actions),
        rewards=cat(lambda p: p.rewards),
        terminations=cat(lambda p: p.terminations),
        truncations=cat(lambda p: p.truncations),
        labels={k: cat(lambda p, k=k: p.labels[k]) for k in first.labels},
        instruction_ids=th.cat(instruction_ids),
        instructions=list(instruction_index),
        episode=th.cat(episodes),
        observation_space=first.observation_space,
        dataset_observation_space=first.dataset_observation_space,
        action_space=first.action_space,
        metadata=first.metadata,
    )


def mmrl_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The ``mmrl`` block of a dataset's metadata (collection settings), or ``{}``."""
    block = metadata.get("mmrl")
    if isinstance(block, str):
        try:
            block = json.loads(block)
        except json.JSONDecodeError:
            return {}
    return dict(block) if isinstance(block, Mapping) else {}
