"""Episode buffers and the atomic Minari writer behind ``mmrl collect``.

:class:`EpisodeRecorder` keeps one growing buffer per key, shaped ``(rows, copies, ...)``, so
each vectorised step is recorded with one assignment per key and a finished episode is one
column slice. :class:`AtomicDatasetWriter` writes episodes in chunks with Minari's own
``create_dataset_from_buffers`` / ``update_episodes`` into a hidden temporary datasets root
inside Minari's folder, then renames the finished dataset into place.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.data.dataset import (
    BEHAVIOUR_LOG_PROB_KEY,
    EXPERT_ACTION_KEY,
    INSTRUCTION_KEY,
    LABELS_KEY,
    DatasetError,
    dataset_root,
    validate_dataset_id,
)


class EpisodeRecorder:
    """Per-copy episode buffers: row ``t`` of column ``i`` is step ``t`` of copy ``i``'s episode.

    Args:
        n: Copies stepped together.
        obs_space: The vec env's ``Dict`` observation space; action_space: its action space.
        with_expert: Also buffer the expert's actions.
        capacity: Initial rows. Pass the episode limit + 2 when known: buffers then never
            grow (growing copies every buffer, hundreds of MB of camera frames at 256
            copies), and ``np.zeros`` only commits the rows episodes actually reach.
    """

    def __init__(
        self,
        n: int,
        obs_space: spaces.Dict,
        action_space: spaces.Space,
        with_expert: bool,
        capacity: int = 64,
    ) -> None:
        self.n = n
        self.cols = np.arange(n)
        cap = max(int(capacity), 2)
        self.obs = {k: np.zeros((cap, n, *s.shape), s.dtype) for k, s in obs_space.spaces.items()}
        self.discrete = isinstance(action_space, spaces.Discrete)
        act_shape = () if self.discrete else tuple(action_space.shape)
        act_dtype = np.int64 if self.discrete else np.float32
        self.actions = np.zeros((cap, n, *act_shape), act_dtype)
        self.expert = np.zeros((cap, n, *act_shape), act_dtype) if with_expert else None
        self.rewards = np.zeros((cap, n), np.float32)
        self.behaviour_log_prob = np.zeros((cap, n), np.float64)
        self.terminated = np.zeros((cap, n), bool)
        self.truncated = np.zeros((cap, n), bool)
        self.success = np.zeros((cap, n), bool)
        self.collision = np.zeros((cap, n), bool)
        self.instruction = np.full((cap, n), "", dtype=object)
        self.labels: dict[str, np.ndarray] = {}
        self.terms: dict[str, np.ndarray] = {}
        self.pos = np.zeros(n, np.int64)

    def _arrays(self) -> Iterator[tuple[object, str, np.ndarray]]:
        for owner in (self.obs, self.labels, self.terms):
            for key, arr in owner.items():
                yield owner, key, arr
        for name in ("actions", "expert", "rewards", "terminated", "truncated", "success",
                     "collision", "instruction", "behaviour_log_prob"):  # fmt: skip
            arr = getattr(self, name)
            if arr is not None:
                yield self, name, arr

    def ensure_capacity(self) -> None:
        cap = self.rewards.shape[0]
        if self.pos.max() + 2 <= cap:
            return
        for owner, key, arr in list(self._arrays()):
            grown = np.zeros((2 * cap, *arr.shape[1:]), arr.dtype)
            if arr.dtype == object:
                grown[:] = ""
            grown[:cap] = arr
            if isinstance(owner, dict):
                owner[key] = grown
            else:
                setattr(owner, key, grown)

    def write_obs(self, rows: np.ndarray, cols: np.ndarray, obs: dict[str, np.ndarray]) -> None:
        for key, buf in self.obs.items():
            buf[rows, cols] = obs[key]

    def write_infos(self, rows: np.ndarray, cols: np.ndarray, infos: list[dict[str, Any]]) -> None:
        """Stores per-copy ``info`` dicts (SB3's form) at ``rows``, ``cols``."""
        if not infos:
            return
        arrays: dict[str, Any] = {
            "instruction": [info.get("instruction", "") for info in infos],
            "is_success": [bool(info.get("is_success", False)) for info in infos],
            "collision": [bool(info.get("collision", False)) for info in infos],
        }
        for group in (LABELS_KEY, "rewards"):
            names = infos[0].get(group) or {}
            arrays[group] = {
                name: np.asarray([info.get(group, {}).get(name, 0) for info in infos])
                for name in names
            }
        self.write_info_arrays(rows, cols, arrays)

    def write_info_arrays(self, rows: np.ndarray, cols: np.ndarray, arrays: dict[str, Any]) -> None:
        """Stores batched info contents (``BatchedVecEnv.step_info_arrays``, or what
        :meth:`write_infos` gathered) without a Python loop over copies."""
        self.instruction[rows, cols] = np.asarray(arrays["instruction"], dtype=object)
        self.success[rows, cols] = arrays["is_success"]
        self.collision[rows, cols] = arrays["collision"]
        for group, store in ((LABELS_KEY, self.labels), ("rewards", self.terms)):
            for name, values in arrays.get(group, {}).items():
                values = np.asarray(values)
                if name not in store:
                    dtype = np.int64 if np.issubdtype(values.dtype, np.integer) else np.float32
                    store[name] = np.zeros(self.rewards.shape, dtype)
                store[name][rows, cols] = values

    def episode(self, i: int, seed: int | None = None) -> Any:
        """Copy ``i``'s finished episode as a Minari ``EpisodeBuffer`` (``seed``: its reset
        seed when known, i.e. for each copy's first episode)."""
        from minari.data_collector import EpisodeBuffer

        t = int(self.pos[i])
        infos: dict[str, Any] = {
            INSTRUCTION_KEY: [str(s) for s in self.instruction[: t + 1, i]],
            "is_success": self.success[: t + 1, i].copy(),
            "collision": self.collision[: t + 1, i].copy(),
        }
        if self.terms:
            infos["rewards"] = {k: v[: t + 1, i].copy() for k, v in self.terms.items()}
        if self.labels:
            infos[LABELS_KEY] = {k: v[: t + 1, i].copy() for k, v in self.labels.items()}
        if self.expert is not None:
            expert = self.expert[: t + 1, i].copy()
            expert[t] = -1 if self.discrete else np.nan
            infos[EXPERT_ACTION_KEY] = expert
        behaviour = self.behaviour_log_prob[: t + 1, i].copy()
        behaviour[t] = np.nan  # the final observation has no decision
        infos[BEHAVIOUR_LOG_PROB_KEY] = behaviour
        return EpisodeBuffer(
            seed=seed,
            observations={k: v[: t + 1, i].copy() for k, v in self.obs.items()},
            actions=self.actions[:t, i].copy(),
            rewards=self.rewards[:t, i].copy(),
            terminations=self.terminated[:t, i].copy(),
            truncations=self.truncated[:t, i].copy(),
            infos=infos,
        )


@contextlib.contextmanager
def _datasets_path(path: Path) -> Iterator[None]:
    """Points Minari at ``path`` for the duration (it reads the variable on every call)."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


class AtomicDatasetWriter:
    """Writes episodes in chunks into a hidden temporary datasets root, then renames."""

    def __init__(self, dataset_id: str, env_spec: Any, obs_space, action_space, **meta) -> None:
        self.dataset_id = dataset_id
        self.root = dataset_root()
        self.tmp_root = Path(tempfile.mkdtemp(dir=self.root, prefix=".mmrl-collect-"))
        self.env_spec = env_spec
        self.obs_space = obs_space
        self.action_space = action_space
        self.meta = meta
        self.dataset: Any = None
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def write(self, episodes: list[Any]) -> None:
        if not episodes:
            return
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            self._write(episodes)
        finally:
            self.seconds += time.perf_counter() - t0
            self.cpu_seconds += time.process_time() - c0

    def _write(self, episodes: list[Any]) -> None:
        if self.dataset is None:
            import minari

            kwargs = dict(self.meta)
            params = inspect.signature(minari.create_dataset_from_buffers).parameters
            if "jpeg_encoding" not in params:
                kwargs.pop("jpeg_encoding", None)
            with _datasets_path(self.tmp_root), warnings.catch_warnings():
                # Minari nags about optional metadata (permalink, e-mail, eval env) it lacks.
                warnings.filterwarnings("ignore", category=UserWarning, module="minari")
                self.dataset = minari.create_dataset_from_buffers(
                    self.dataset_id,
                    episodes,
                    env=self.env_spec,
                    observation_space=self.obs_space,
                    action_space=self.action_space,
                    **kwargs,
                )
        else:
            self.dataset.storage.update_episodes(episodes)

    def commit(self, extra_metadata: dict[str, Any], force: bool) -> Path:
        from minari.namespace import create_namespace, list_local_namespaces

        self.dataset.storage.update_metadata(extra_metadata)
        namespace = validate_dataset_id(self.dataset_id)[0]
        with _datasets_path(self.root):
            if namespace is not None and namespace not in list_local_namespaces():
                create_namespace(namespace)
        final = self.root / self.dataset_id
        final.parent.mkdir(parents=True, exist_ok=True)
        trash = None
        if final.exists():
            if not force:
                raise DatasetError(f"dataset {self.dataset_id!r} appeared at {final} meanwhile")
            trash = Path(tempfile.mkdtemp(dir=self.root, prefix=".mmrl-trash-"))
            os.replace(final, trash / "old")
        os.replace(self.tmp_root / self.dataset_id, final)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        self.discard()
        return final

    def discard(self) -> None:
        shutil.rmtree(self.tmp_root, ignore_errors=True)
