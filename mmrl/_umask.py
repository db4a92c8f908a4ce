"""The permissions the user's umask gives new files and folders.

Atomic writes go through :func:`tempfile.mkstemp` (mode 0600) and :func:`tempfile.mkdtemp`
(0700), which are private on purpose; renamed into place, they would leave every run,
checkpoint and table unreadable to the colleagues a shared cluster's umask (0022, 0002)
means to share them with (issue 16). :func:`share_like_umask` gives such a temporary file or
folder the mode ``open()`` / ``mkdir()`` would have given it, before it is renamed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["current_umask", "share_like_umask"]

_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc``)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # Elsewhere the only way to read it is to set it: do so briefly, under a lock.
    with _lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def share_like_umask(path: str | Path, fd: int | None = None) -> None:
    """Sets ``path`` (a file, or a folder) to ``0o666`` (``0o777`` for a folder) minus the umask.

    Args:
        path: The temporary file or folder.
        fd: An open descriptor of the file, changed instead of the path when given.
    """
    directory = fd is None and Path(path).is_dir()
    mode = (0o777 if directory else 0o666) & ~current_umask()
    if fd is not None:
        os.fchmod(fd, mode)
    else:
        os.chmod(path, mode)
