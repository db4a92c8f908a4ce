"""Episode buffers and the atomic Minari writer behind ``mmrl collect``.

:class:`EpisodeRecorder` keeps one growing buffer per key, shaped ``(rows, copies, ...)``, so
each vectorised step is recorded with one assignment per key and a finished episode is one
column slice. :class:`AtomicDatasetWriter` writes episodes in chunks into a hidden temporary
datasets root inside Minari's folder, then renames the finished dataset into place. Minari's
``create_dataset_from_buffers`` creates the dataset (its metadata and empty HDF5 file); the
episodes are written by :mod:`mmrl.data.minari_hdf5` in Minari's layout, several times faster
than Minari's own ``update_episodes``, which stays the reference (``hdf5_writer="minari"``)
and writes what the direct writer declines (JPEG-encoded images, other storage formats).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.data import minari_hdf5
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


#: Free space a write must leave: :func:`episodes_nbytes` (HDF5's chunk padding counted
#: exactly, :data:`DATASET_OVERHEAD` per dataset; Driving-v1 and Navigation-v1 chunks measured
#: 2.8 KiB of metadata per dataset) times :data:`SPACE_FACTOR`, plus :data:`SPACE_MARGIN`
#: (the final metadata update). HDF5 does not report a full disk to Python: it prints an
#: error per object it frees and then crashes the process (issue 15), so a write that may
#: not fit is refused before it starts.
DATASET_OVERHEAD = 4096
SPACE_FACTOR = 1.1
SPACE_MARGIN = 16 * 2**20

_TMP_PREFIX = ".mmrl-collect-"
_TRASH_PREFIX = ".mmrl-trash-"
#: Temporary folders whose name does not say which process made them (older mmrl, or another
#: machine sharing the folder) are deleted once this old.
STALE_SECONDS = 24 * 3600


def _nbytes(value: Any) -> int:
    """Bytes HDF5 allocates for a nested episode field: Minari writes each array as a chunked
    dataset, so a partly filled last chunk counts whole, plus :data:`DATASET_OVERHEAD`."""
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, str | bytes):
        return len(value) + 16  # a variable-length string: heap entry + reference
    if isinstance(value, list | tuple):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return DATASET_OVERHEAD + sum(_nbytes(v) for v in value.flat)
        if value.ndim == 0 or value.size == 0:
            return DATASET_OVERHEAD + value.nbytes
        return DATASET_OVERHEAD + _chunked_nbytes(value.shape, value.dtype.itemsize)
    return 8


@functools.lru_cache(maxsize=4096)
def _chunked_nbytes(shape: tuple[int, ...], itemsize: int) -> int:
    """Bytes of the chunks h5py picks for a resizable dataset of ``shape``: cached, since
    episodes repeat a few lengths and h5py's guess took a quarter of a fast write's time."""
    from h5py._hl.filters import guess_chunk

    chunk = guess_chunk(shape, (None, *shape[1:]), itemsize)
    chunks = math.prod(-(-n // c) for n, c in zip(shape, chunk, strict=True))
    return chunks * math.prod(chunk) * itemsize


def episodes_nbytes(episodes: list[Any]) -> int:
    """Bytes HDF5 allocates for the data of Minari ``EpisodeBuffer``s, metadata aside (at
    most: JPEG-encoded images take less, and so do the direct writer's contiguous datasets,
    which have no chunk padding)."""
    fields = ("observations", "actions", "rewards", "terminations", "truncations", "infos")
    return sum(_nbytes(getattr(ep, name, None)) for ep in episodes for name in fields)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_temporaries(root: Path) -> list[Path]:
    """Deletes the temporary folders of ``collect`` runs that were killed (SIGKILL, SIGTERM,
    power loss) before they could remove them; returns what was deleted.

    A folder's name holds the host and process id that made it: it is stale when that process
    is gone on this host. Folders without them are stale after :data:`STALE_SECONDS`.
    """
    host = socket.gethostname()
    removed = []
    for path in Path(root).glob(".mmrl-*"):
        if not path.is_dir() or not path.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)):
            continue
        prefix = _TMP_PREFIX if path.name.startswith(_TMP_PREFIX) else _TRASH_PREFIX
        owner = path.name[len(prefix) :]  # "<host>-<pid>-<random>", or "<random>" (older)
        parts = owner.rsplit("-", 2)
        if len(parts) == 3 and parts[1].isdigit() and parts[0] == host:
            stale = not _process_alive(int(parts[1]))
        else:
            try:
                stale = time.time() - path.stat().st_mtime > STALE_SECONDS
            except OSError:
                continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _owned_prefix(prefix: str) -> str:
    return f"{prefix}{socket.gethostname()}-{os.getpid()}-"


#: How episodes are written: ``"direct"`` (:mod:`mmrl.data.minari_hdf5`, Minari's layout in
#: one pass per chunk) or ``"minari"`` (Minari's ``update_episodes``, the reference).
HDF5_WRITERS = ("direct", "minari")


class AtomicDatasetWriter:
    """Writes episodes in chunks into a hidden temporary datasets root, then renames.

    Args:
        dataset_id: Minari id.
        env_spec: Gymnasium spec Minari records (``None``: none).
        obs_space: The dataset's observation space; action_space: its action space.
        hdf5_writer: One of :data:`HDF5_WRITERS`. ``"direct"`` falls back to Minari's
            writer for chunks it does not write exactly as Minari would.
        **meta: Further ``minari.create_dataset_from_buffers`` arguments (author,
            description, ``jpeg_encoding``...).

    Raises:
        DatasetError: The datasets folder cannot be written, or a chunk would not fit on its
            disk (checked before each write, see :data:`SPACE_MARGIN`).
        ValueError: An unknown ``hdf5_writer``.
    """

    def __init__(
        self,
        dataset_id: str,
        env_spec: Any,
        obs_space: spaces.Space,
        action_space: spaces.Space,
        hdf5_writer: str = "direct",
        **meta: Any,
    ) -> None:
        if hdf5_writer not in HDF5_WRITERS:
            raise ValueError(f"hdf5_writer must be one of {HDF5_WRITERS}, got {hdf5_writer!r}")
        self.hdf5_writer = hdf5_writer
        self.dataset_id = dataset_id
        self.root = dataset_root()
        clean_stale_temporaries(self.root)
        try:
            self.tmp_root = Path(tempfile.mkdtemp(dir=self.root, prefix=_owned_prefix(_TMP_PREFIX)))
        except OSError as err:
            raise self._error(err) from None
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
        # thread_time: the CPU time of the thread that writes, which is not the caller's
        # when the write runs in the background (mmrl.data.background).
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            self._check_space(episodes)
            self._write(episodes)
        except OSError as err:
            raise self._error(err) from None
        finally:
            self.seconds += time.perf_counter() - t0
            self.cpu_seconds += time.thread_time() - c0

    def _error(self, err: OSError) -> DatasetError:
        reason = err.strerror or str(err).splitlines()[0]
        return DatasetError(f"cannot write dataset {self.dataset_id!r} in {self.root}: {reason}")

    def _check_space(self, episodes: list[Any]) -> None:
        need = int(SPACE_FACTOR * episodes_nbytes(episodes)) + SPACE_MARGIN
        free = shutil.disk_usage(self.tmp_root).free
        if free < need:
            raise DatasetError(
                f"cannot write dataset {self.dataset_id!r} in {self.root}: No space left on "
                f"device (the next {len(episodes)} episodes need up to {need / 2**20:.0f} MiB, "
                f"{free / 2**20:.0f} MiB free)"
            )

    def _write(self, episodes: list[Any]) -> None:
        direct = self.hdf5_writer == "direct"
        if self.dataset is None:
            # Minari creates the dataset (metadata, empty HDF5 file) and, as the reference
            # writer, writes its first chunk; the direct writer appends every chunk.
            self.dataset = self._create([] if direct else episodes)
            if not direct:
                return
        if not (direct and minari_hdf5.append_episodes(self.dataset.storage, episodes)):
            self.dataset.storage.update_episodes(episodes)

    def _create(self, episodes: list[Any]) -> Any:
        """``minari.create_dataset_from_buffers`` in the temporary root."""
        import minari

        kwargs = dict(self.meta)
        params = inspect.signature(minari.create_dataset_from_buffers).parameters
        if "jpeg_encoding" not in params:
            kwargs.pop("jpeg_encoding", None)
        with _datasets_path(self.tmp_root), warnings.catch_warnings():
            # Minari nags about optional metadata (permalink, e-mail, eval env) it lacks.
            warnings.filterwarnings("ignore", category=UserWarning, module="minari")
            return minari.create_dataset_from_buffers(
                self.dataset_id,
                episodes,
                env=self.env_spec,
                observation_space=self.obs_space,
                action_space=self.action_space,
                **kwargs,
            )

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
            trash = Path(tempfile.mkdtemp(dir=self.root, prefix=_owned_prefix(_TRASH_PREFIX)))
            os.replace(final, trash / "old")
        os.replace(self.tmp_root / self.dataset_id, final)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        self.discard()
        return final

    def discard(self) -> None:
        shutil.rmtree(self.tmp_root, ignore_errors=True)
