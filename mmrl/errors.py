"""Every error mmrl raises on purpose, under one base class :class:`MmrlError`.

The CLI catches :class:`MmrlError`, prints its message on one line and exits with status 2, so
a library function signals bad input by raising one of these with a message that says what is
wrong and what is allowed. Library messages name fields and arguments (``n_envs must be >= 1``),
not CLI flags; the CLI adds the flag where it knows it. This module sits at the bottom of the
package's layers and imports nothing from mmrl (issue 14: one place for error classes).
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "MissingDependencyError",
    "MmrlError",
    "SpaceMismatchError",
    "UsageError",
]


class MmrlError(Exception):
    """Base of every mmrl error: bad input reported as one line (CLI exit status 2)."""


class UsageError(MmrlError):
    """Bad user input to a command: printed as one line, exit status 2."""


class MissingDependencyError(UsageError, ImportError):
    """An optional dependency is missing; the message says what to install (CLI exit 2)."""


class ConfigError(MmrlError, ValueError):
    """A preset or override is invalid; the message says which key, file and what is allowed."""


class DatasetError(ConfigError):
    """A dataset is missing, empty, corrupt, or does not fit the agent/environment."""


class CheckpointError(MmrlError, ValueError):
    """A checkpoint or model file is missing, corrupt or not an mmrl/SB3 file."""


class SpaceMismatchError(CheckpointError):
    """A model's observation or action space does not fit an environment or dataset."""
