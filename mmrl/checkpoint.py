"""Atomic run checkpoints that a resumed run can continue from exactly.

SB3's ``CheckpointCallback`` writes ``model.zip`` in place, so a kill during the write leaves
a corrupt latest checkpoint. Here every checkpoint is written into a temporary folder,
flushed to disk, then renamed into place (``os.replace`` is atomic on POSIX), and the
``latest`` pointer is itself replaced atomically, so a ``SIGKILL`` at any moment leaves the
previous checkpoint intact.

A checkpoint holds the model (policy, optimizer, step counter), the ``VecNormalize``
statistics, every random generator (Python, NumPy, torch and each environment copy's), the
batched simulator's state and the last observation, so the resumed run continues the
interrupted episodes rather than restarting them.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from mmrl._umask import share_like_umask
from mmrl.errors import CheckpointError, ConfigError

LATEST = "latest"
STATE_FILE = "state.pkl"
MODEL_FILE = "model.zip"


def fsync_dir(path: Path) -> None:
    """Flushes a directory entry so a rename survives power loss (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _existing_ancestor(path: Path) -> Path:
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return candidate
    return Path.cwd()


def _check_writable_folder(folder: Path, path: Path, field: str | None) -> None:
    """Creates and removes a file in ``folder``: ``os.access`` says yes to root and knows
    nothing of read-only mounts or quotas."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ConfigError(
            f"{path}: cannot write in {folder} ({err.strerror or err})", field=field
        ) from None


def check_output_dir(path: str | Path, field: str | None = "out") -> Path:
    """Refuses an output folder that cannot be written, before any work is done.

    ``path`` may be missing (it is created later); it must not be a file or lie below one,
    and its nearest existing folder must accept a new file (not read-only, not full).

    Args:
        path: The folder a command will write.
        field: The argument naming it, for the message (``out`` reads ``--out`` in the CLI).

    Raises:
        ConfigError: Naming ``field``, the path and what is wrong.
    """
    path = Path(path)
    base = _existing_ancestor(path)
    if not base.is_dir():
        where = "is a file" if base == path else f"is below the file {base}"
        raise ConfigError(f"{path} {where}, not a folder", field=field)
    _check_writable_folder(base, path, field)
    return path


def check_output_file(
    path: str | Path, field: str | None = "out", parent_must_exist: bool = False
) -> Path:
    """Refuses an output file that cannot be written, before any work is done.

    Args:
        path: The file a command will write (replaced atomically later).
        field: The argument naming it (``json`` reads ``--json`` in the CLI).
        parent_must_exist: Refuse a missing folder instead of creating it later.

    Raises:
        ConfigError: ``path`` is a folder, its folder is missing (with
            ``parent_must_exist``), lies below a file or cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name", field=field)
    if parent_must_exist and not path.parent.is_dir():
        raise ConfigError(f"{path}: folder {path.parent} does not exist", field=field)
    base = _existing_ancestor(path.parent)
    if not base.is_dir():
        raise ConfigError(f"{path} is below the file {base}", field=field)
    _check_writable_folder(base, path, field)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` so readers see either the old or the new file, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            share_like_umask(tmp, fh.fileno())  # mkstemp's 0600 would stay after the rename
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_model(model: Any, path: Path) -> None:
    """``model.save`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".zip")
    os.close(fd)
    try:
        share_like_umask(tmp)  # mkstemp's 0600 would stay after the rename
        model.save(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunLock:
    """An exclusive lock on a run folder (``RUN_DIR/.lock``), so two processes never write
    one run (a second ``mmrl train --resume``, or ``--force`` into a running run's folder).

    ``flock`` locks vanish with their process, a ``SIGKILL`` included, so a killed run never
    leaves its folder locked. Without ``fcntl`` (Windows) the lock does nothing.

    Args:
        run_dir: The run folder.
        field: The argument naming the folder, for the message (``out``, ``resume``).
    """

    NAME = ".lock"

    def __init__(self, run_dir: str | Path, field: str = "out") -> None:
        self.path = Path(run_dir) / self.NAME
        self.field = field
        self._fd: int | None = None

    def _try_lock(self, fd: int) -> bool:
        try:
            import fcntl
        except ImportError:  # pragma: no cover (Windows)
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _refuse(self, fd: int) -> ConfigError:
        try:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip()
        except OSError:
            owner = ""
        who = f" (pid {owner})" if owner.isdigit() else ""
        return ConfigError(
            f"{self.path.parent} is in use by another mmrl process{who}; wait for it to "
            "finish or stop it first",
            field=self.field,
        )

    def check(self) -> None:
        """Raises :class:`ConfigError` if another process holds the lock (takes nothing)."""
        if not self.path.is_file():
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if not self._try_lock(fd):
                raise self._refuse(fd)
        finally:
            os.close(fd)  # closing drops the probe's lock

    def acquire(self) -> None:
        """Takes the lock (creating ``.lock``) or raises :class:`ConfigError`."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not self._try_lock(fd):
            error = self._refuse(fd)
            os.close(fd)
            raise error
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drops the lock (the file stays: deleting it would race with a new owner)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def rng_state() -> dict[str, Any]:
    """Python, NumPy (global) and torch generator states."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (SB3 seeds the legacy global RNG)
        "torch": th.get_rng_state(),
    }
    if th.cuda.is_available():
        state["torch_cuda"] = th.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    th.set_rng_state(state["torch"])
    if "torch_cuda" in state and th.cuda.is_available():
        th.cuda.set_rng_state_all(state["torch_cuda"])


def write_checkpoint(
    folder: Path, step: int, model: Any, state: dict[str, Any], keep: int = 3
) -> Path:
    """Writes ``folder/step_<step>/`` atomically and points ``folder/latest`` at it.

    Args:
        folder: The run's ``checkpoints/`` folder.
        step: Environment steps so far (names the checkpoint).
        model: The SB3 model.
        state: Picklable extra state (RNGs, simulator, normalization, last observation).
        keep: Most recent checkpoints kept; older ones are deleted after the new one lands.

    Returns:
        The checkpoint folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:012d}"
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".{name}."))
    try:
        share_like_umask(tmp)  # mkdtemp's 0700 would stay after the rename
        model.save(tmp / MODEL_FILE)
        with open(tmp / STATE_FILE, "wb") as fh:
            pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        final = folder / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_bytes(folder / LATEST, name.encode())
    for old in sorted(folder.glob("step_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint in ``folder`` (``None`` when there is none)."""
    folder = Path(folder)
    pointer = folder / LATEST
    if pointer.is_file():
        candidate = folder / pointer.read_text().strip()
        if (candidate / MODEL_FILE).is_file() and (candidate / STATE_FILE).is_file():
            return candidate
    complete = [
        d for d in sorted(folder.glob("step_*"))
        if (d / MODEL_FILE).is_file() and (d / STATE_FILE).is_file()
    ]  # fmt: skip
    return complete[-1] if complete else None


def check_model_file(path: Path) -> None:
    """Raises :class:`CheckpointError` unless ``path`` looks like an SB3 ``model.zip``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"{path} is not a valid SB3 model archive ({err})") from None
    if bad is not None:
        raise CheckpointError(f"{path} is corrupt (bad CRC in {bad})")
    if "data" not in names or "policy.pth" not in names:
        raise CheckpointError(
            f"{path} is not an SB3 model archive (missing 'data'/'policy.pth'; found "
            f"{sorted(names)[:5]})"
        )


def read_state(checkpoint: Path) -> dict[str, Any]:
    """Loads ``state.pkl`` of a checkpoint with a clear error when it is corrupt."""
    path = Path(checkpoint) / STATE_FILE
    try:
        with open(path, "rb") as fh:
            state = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
        raise CheckpointError(f"cannot read checkpoint state {path}: {err}") from None
    if not isinstance(state, dict) or "num_timesteps" not in state:
        raise CheckpointError(f"{path} is not an mmrl checkpoint state")
    return state
