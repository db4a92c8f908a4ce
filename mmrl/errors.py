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
    "WorkerError",
    "one_line",
]


class MmrlError(Exception):
    """Base of every mmrl error: bad input reported as one line (CLI exit status 2).

    Args:
        message: What is wrong and what is allowed.
        field: The argument or config field at fault (``"n_envs"``), if one is. The message
            then reads ``"n_envs must be >= 1, got 0"``; the CLI prints the field as its flag
            (``"--n-envs must be >= 1, got 0"``), see :meth:`cli_message`.
    """

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def __str__(self) -> str:
        message = super().__str__()
        return f"{self.field} {message}" if self.field else message

    def cli_message(self) -> str:
        """The message with the field named as a command-line flag."""
        message = super().__str__()
        if not self.field:
            return message
        return f"--{self.field.replace('_', '-')} {message}"


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


class SpaceMismatchError(CheckpointError, DatasetError):
    """Two observation or action spaces differ: a model, dataset or environment does not fit
    another (raised by :func:`mmrl.spaces.check`, naming each differing key).

    Both a :class:`CheckpointError` (a model file that does not fit) and a
    :class:`DatasetError` (a dataset that does not fit), so callers that catch either kind
    keep catching it.
    """


class WorkerError(MmrlError, RuntimeError):
    """A worker process of a multi-process environment died, or stopped answering; the
    message names the worker, its copies and its exit code. The other workers have been
    stopped by the time it is raised (no orphan processes)."""


def _state_dict_summary(lines: list[str]) -> str:
    """torch's ``load_state_dict`` error (one line per kind of difference) as one line that
    names the tensors: what is missing, unexpected, and each size mismatch's two shapes."""
    import re

    parts = []
    for line in lines[1:]:
        kind, _, names = line.partition(" in state_dict: ")
        if names:
            listed = ", ".join(re.findall(r'"([^"]+)"', names))
            parts.append(f"{kind.lower().replace('key(s)', 'tensors')}: {listed}")
            continue
        size = re.match(r"size mismatch for (\S+): .*?torch\.Size\((\[.*?\])\).*?"
                        r"torch\.Size\((\[.*?\])\)", line)  # fmt: skip
        if size:
            name, saved, model = size.groups()
            parts.append(f"size mismatch for {name}: {saved} in the file, {model} in the model")
        else:
            parts.append(line)
    return f"{lines[0].rstrip(':')}: {'; '.join(parts)}"


def one_line(err: BaseException, limit: int = 300) -> str:
    """An exception message on one line: torch's state-dict errors list one line per tensor,
    summarized as the tensors that differ."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    if lines[0].startswith("Error(s) in loading state_dict") and len(lines) > 1:
        text = _state_dict_summary(lines)
        return text if len(text) <= 2 * limit else text[: 2 * limit - 3] + "..."
    text = lines[0] if len(lines) == 1 else f"{lines[0]} {lines[1]}"
    if len(lines) > 2:
        text += f" (+{len(lines) - 2} more)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def portable_error(err: BaseException, where: str) -> BaseException:
    """``err`` as a child process sends it to its parent: ``err`` itself if it survives
    pickling (the parent re-raises it as is), else a ``RuntimeError`` with its text; either
    way with the child's traceback as a note that says ``where`` it was raised."""
    import pickle
    import traceback

    text = "".join(traceback.format_exception(err))
    try:
        copy = pickle.loads(pickle.dumps(err))
    except Exception:
        copy = RuntimeError(f"{type(err).__name__}: {err}")
    copy.add_note(f"in {where}:\n{text}")
    return copy
