"""The one Minari dataset reader: locate, open and walk a dataset's episodes with one-line errors.

Both views of offline data read through :func:`open_dataset`: the transition view for
pretraining (:func:`mmrl.data.dataset.load_offline_data`, contiguous tensors in the policy
layout) and the episode view for offline evaluation (:func:`mmrl.data.episodes.load_logged_data`,
every state of every episode, final ones included). So a missing dataset, unreadable metadata, a
truncated or corrupt HDF5 file, or an index that lists more episodes than the file holds raises
the same :class:`~mmrl.errors.DatasetError` with the same message from ``mmrl pretrain`` and
``mmrl evaluate-offline`` (issue 14: one reader). Every dataset Minari 0.5 reads is accepted, so
datasets written by earlier mmrl versions keep loading.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.errors import DatasetError, one_line

__all__ = [
    "DatasetReader",
    "Episode",
    "dataset_root",
    "load_minari_dataset",
    "open_dataset",
    "validate_dataset_id",
]

#: What Minari and h5py raise on damaged files: h5py's "truncated file" and "bad object
#: header" are OSError, a missing ``episode_N`` group is KeyError, bad attributes ValueError.
_READ_ERRORS = (OSError, KeyError, ValueError, TypeError, IndexError, json.JSONDecodeError)


# ---------------------------------------------------------------------------- locations and ids
def dataset_root() -> Path:
    """Minari's datasets folder (``MINARI_DATASETS_PATH`` or ``~/.minari/datasets``)."""
    from minari.storage.datasets_root_dir import get_dataset_path

    return Path(get_dataset_path())


def validate_dataset_id(dataset_id: str) -> tuple[str | None, str, int]:
    """Parses ``(namespace/)name-v<version>``; raises :class:`DatasetError` if malformed."""
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        return parse_dataset_id(dataset_id)
    except (ValueError, TypeError):  # minari 0.5 raises TypeError when "-vN" is missing
        raise DatasetError(
            f"malformed dataset id {dataset_id!r}: use (namespace/)name-v<version>, "
            "e.g. mmrl/driving/expert-v0"
        ) from None


def _corrupt(dataset_id: str, path: Path, err: BaseException | str) -> DatasetError:
    """The one error for a data file that cannot be read, whichever view reads it."""
    where = f"dataset {dataset_id!r} at {path}"
    if isinstance(err, OSError) and err.errno is not None:
        # The system refused the file (permissions, a folder in its place): not damage.
        return DatasetError(
            f"{where} is unreadable: {type(err).__name__}: {os.strerror(err.errno)}"
        )
    detail = err if isinstance(err, str) else f"{type(err).__name__}: {one_line(err)}"
    return DatasetError(f"{where} is truncated or corrupt: {detail}")


def load_minari_dataset(dataset_id: str):
    """``minari.load_dataset`` with one-line errors for missing, empty or unreadable datasets.

    Args:
        dataset_id: Minari id, e.g. ``"mmrl/driving/expert-v0"``.

    Returns:
        A ``minari.MinariDataset``.

    Raises:
        DatasetError: Malformed id, not found (naming the folder searched), unreadable
            metadata, or no episodes.
    """
    import minari

    validate_dataset_id(dataset_id)
    root = dataset_root()
    path = root / dataset_id
    if not (path / "data").is_dir():
        hint = ""
        try:
            prefix = dataset_id.split("/")[0]
            near = sorted(k for k in minari.list_local_datasets() if k.startswith(prefix))
            if near:
                hint = f"; local datasets: {', '.join(near[:8])}"
        except Exception:  # listing is only a hint; a broken sibling must not hide the error
            pass
        raise DatasetError(
            f"dataset {dataset_id!r} not found in {root} (set MINARI_DATASETS_PATH to change "
            f"the folder){hint}; create it with: mmrl collect --dataset-id {dataset_id} ..."
        )
    try:
        dataset = minari.load_dataset(dataset_id)
    except _READ_ERRORS as err:
        raise DatasetError(
            f"dataset {dataset_id!r} at {path} is unreadable: {one_line(err)}"
        ) from None
    if dataset.total_episodes == 0:
        raise DatasetError(f"dataset {dataset_id!r} at {path} has no episodes")
    return dataset


# ---------------------------------------------------------------------------- episodes
@dataclasses.dataclass
class Episode:
    """One stored episode, checked against the dataset's index and spaces.

    Attributes:
        index: Episode number (``0 .. n_episodes - 1``).
        observations: Key -> ``(T + 1, ...)`` array in the stored layout and dtype (channel-last
            images), the final observation included.
        actions: ``(T, ...)`` logged actions as stored.
        rewards: ``(T,)`` rewards.
        terminations: ``(T,)`` bool.
        truncations: ``(T,)`` bool.
        infos: The stored info dict (``expert_action``, ``labels``, ``instruction`` when
            ``mmrl collect`` wrote it), possibly empty.
    """

    index: int
    observations: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    infos: dict[str, Any]

    def __len__(self) -> int:
        return len(self.rewards)


@dataclasses.dataclass
class DatasetReader:
    """An opened dataset: its spaces, metadata and per-episode lengths, read from the index.

    Attributes:
        dataset_id: The Minari id.
        path: Its folder.
        observation_space: The stored ``Dict`` observation space (channel-last images).
        action_space: ``Discrete`` or ``Box``.
        lengths: Steps of each episode read (``len == n_episodes``), from the index.
        metadata: Minari metadata without the spaces (``metadata["mmrl"]``: collection
            settings).
    """

    dataset_id: str
    path: Path
    observation_space: spaces.Dict
    action_space: spaces.Space
    lengths: list[int]
    metadata: dict[str, Any]
    _dataset: Any

    @property
    def n_episodes(self) -> int:
        """Episodes read (at most ``max_episodes``)."""
        return len(self.lengths)

    @property
    def total_steps(self) -> int:
        """Transitions over the episodes read."""
        return sum(self.lengths)

    def where(self, index: int) -> str:
        """``"dataset 'x' episode 3"``, the prefix of per-episode messages."""
        return f"dataset {self.dataset_id!r} episode {index}"

    def episodes(self) -> Iterator[Episode]:
        """The episodes in order, each checked against the index and the observation space.

        Raises:
            DatasetError: A truncated or corrupt file, an episode whose length differs from
                the index, missing or extra observation keys, or a key with other than
                ``T + 1`` observations.
        """
        keys = set(self.observation_space.spaces)
        stream = self._dataset.iterate_episodes(list(range(self.n_episodes)))
        for index in range(self.n_episodes):
            try:
                ep = next(stream)
                observations = {k: np.asarray(v) for k, v in ep.observations.items()}
                episode = Episode(
                    index=index,
                    observations=observations,
                    actions=np.asarray(ep.actions),
                    rewards=np.asarray(ep.rewards),
                    terminations=np.asarray(ep.terminations, dtype=bool),
                    truncations=np.asarray(ep.truncations, dtype=bool),
                    infos=dict(ep.infos or {}),
                )
            except StopIteration:
                raise _corrupt(
                    self.dataset_id,
                    self.path,
                    f"the index lists {self.n_episodes} episodes, the file holds {index}",
                ) from None
            except _READ_ERRORS as err:
                raise _corrupt(self.dataset_id, self.path, err) from None
            t, where = len(episode), self.where(index)
            if t != self.lengths[index]:
                raise DatasetError(f"{where}: {t} steps but the index says {self.lengths[index]}")
            if set(observations) != keys:
                raise DatasetError(
                    f"{where}: observation keys {sorted(observations)} differ from the "
                    f"dataset's space {sorted(keys)}"
                )
            for key, value in observations.items():
                if value.ndim == 0 or value.shape[0] != t + 1:
                    rows = value.shape[0] if value.ndim else 0
                    raise DatasetError(
                        f"{where}: {key!r} has {rows} observations for {t} steps (expected {t + 1})"
                    )
            yield episode


def open_dataset(dataset_id: str, max_episodes: int | None = None) -> DatasetReader:
    """Opens a Minari dataset of ``Dict`` observations and ``Discrete``/``Box`` actions.

    Args:
        dataset_id: Minari id (looked up under ``MINARI_DATASETS_PATH``).
        max_episodes: Read only the first episodes (``None``: all).

    Returns:
        A :class:`DatasetReader`; its :meth:`~DatasetReader.episodes` reads the data.

    Raises:
        DatasetError: Malformed id, missing dataset (naming the folder searched), unreadable
            metadata, no episodes, only empty episodes, a non-``Dict`` observation space, an
            unsupported action space, or an index that is truncated or lists more episodes than
            the file holds.
    """
    dataset = load_minari_dataset(dataset_id)
    path = dataset_root() / dataset_id
    obs_space, action_space = dataset.observation_space, dataset.action_space
    if not isinstance(obs_space, spaces.Dict):
        raise DatasetError(
            f"dataset {dataset_id!r}: observation space is {obs_space}, not a Dict of sensors"
        )
    if not isinstance(action_space, spaces.Discrete | spaces.Box):
        raise DatasetError(f"dataset {dataset_id!r}: unsupported action space {action_space}")
    n_episodes = dataset.total_episodes
    if max_episodes is not None:
        if max_episodes < 1:
            raise DatasetError(f"must be >= 1, got {max_episodes}", field="max_episodes")
        n_episodes = min(n_episodes, max_episodes)
    try:
        episode_meta = dataset.storage.get_episode_metadata(list(range(n_episodes)))
        lengths = [int(m["total_steps"]) for m in episode_meta]
    except KeyError as err:
        detail: BaseException | str = err
        if "doesn't exist" in str(err):  # h5py: "object 'episode_7' doesn't exist"
            detail = (
                f"the index lists {n_episodes} episodes, the file does not hold them all "
                f"({one_line(err).strip(chr(34) + chr(39))})"
            )
        raise _corrupt(dataset_id, path, detail) from None
    except _READ_ERRORS as err:
        raise _corrupt(dataset_id, path, err) from None
    if sum(lengths) == 0:
        raise DatasetError(f"dataset {dataset_id!r} at {path} has only empty episodes")
    metadata = dict(dataset.storage.metadata)
    metadata.pop("observation_space", None)
    metadata.pop("action_space", None)
    return DatasetReader(
        dataset_id=dataset_id,
        path=path,
        observation_space=obs_space,
        action_space=action_space,
        lengths=lengths,
        metadata=metadata,
        _dataset=dataset,
    )
