"""Options of experiment tracking (``--track``, ``--track-project``; :mod:`mmrl.tracking`).

Declared once here and shared: :class:`~mmrl.commands.TrainOptions`,
:class:`~mmrl.commands.PretrainOptions`, :class:`~mmrl.commands.BenchOptions` and
:class:`~mmrl.commands.TuneOptions` declare their fields with :func:`track_option` and
:func:`track_project_option`.
"""

from __future__ import annotations

from typing import Any

from mmrl.commands.options import option

__all__ = ["DEFAULT_PROJECT", "TRACKERS", "track_option", "track_project_option"]

#: The tracking services ``--track`` accepts (:class:`mmrl.tracking.Tracking` checks the same).
TRACKERS = ("wandb", "mlflow")
#: ``--track-project``'s default: the W&B project / MLflow experiment.
DEFAULT_PROJECT = "mmrl"

_TRACKING = "experiment tracking (mmrl.tracking)"


def track_option() -> Any:
    """The ``--track wandb|mlflow`` field (``None``: not tracked)."""
    return option(
        None,
        group=_TRACKING,
        choices=TRACKERS,
        help="also log config, scalars and final files to W&B or MLflow",
    )


def track_project_option() -> Any:
    """The ``--track-project NAME`` field."""
    return option(
        DEFAULT_PROJECT, group=_TRACKING, metavar="NAME", help="W&B project / MLflow experiment"
    )
