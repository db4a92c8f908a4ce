"""The ``--log-interval SECONDS`` option of the long-running commands (:mod:`mmrl.progress`).

Declared once here and shared by ``mmrl train``, ``pretrain``, ``collect`` and ``bench``:
each declares its field with :func:`log_interval_option`, and its handler turns the value
into the interval the library takes with :func:`progress_interval` (``None``: no lines).
"""

from __future__ import annotations

import math
import sys
from typing import Any

from mmrl.commands.options import option
from mmrl.errors import UsageError

__all__ = ["DEFAULT_LOG_INTERVAL", "log_interval_option", "progress_interval"]

#: Seconds between progress lines: a line every half minute keeps a day-long log readable.
DEFAULT_LOG_INTERVAL = 30.0


def log_interval_option(what: str) -> Any:
    """The ``--log-interval SECONDS`` field; ``what`` names the extra lines
    (``"one per evaluation"``)."""
    return option(
        DEFAULT_LOG_INTERVAL,
        metavar="SECONDS",
        help=f"when stdout is not a terminal: a progress line every SECONDS and {what} "
        f"(default {DEFAULT_LOG_INTERVAL:g})",
        exclusive_minimum=0,
    )


def progress_interval(log_interval: float, quiet: bool) -> float | None:
    """The progress-line interval a command passes to the library: ``None`` (no lines) with
    ``--quiet`` or when stdout is a terminal (the progress bar shows it there).

    Raises:
        UsageError: ``--log-interval`` not a finite number > 0 (checked even when unused,
            so a typo does not wait for the first redirected run).
    """
    if not (math.isfinite(log_interval) and log_interval > 0):
        raise UsageError(f"--log-interval must be > 0 seconds, got {log_interval}")
    if quiet or sys.stdout.isatty():
        return None
    return log_interval
