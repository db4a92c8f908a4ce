"""Options of ``mmrl tune`` (:func:`mmrl.tune.tune` takes its defaults and allowed values)."""

from __future__ import annotations

import dataclasses

from mmrl.commands.options import option
from mmrl.commands.track import track_option, track_project_option
from mmrl.config import RunConfig

__all__ = ["BACKENDS", "METRICS", "TuneOptions"]

#: Held-out objectives a study maximizes.
METRICS = ("mean_return", "success_rate")
#: Where trials run: processes on this machine, or Ray tasks.
BACKENDS = ("local", "ray")


@dataclasses.dataclass(kw_only=True)
class TuneOptions:
    """``mmrl tune``: an Optuna hyperparameter search over training runs.

    The counts' ``>= 1`` bounds are checked by :func:`~mmrl.tune.tune` itself (its Python
    callers get the same errors, named by the same fields).
    """

    # The same defaults as mmrl train: a study tunes what a plain `mmrl train` runs.
    env: str = option(RunConfig.env_name, help="env preset name or YAML path")
    agent: str = option(RunConfig.agent_name, help="base agent recipe name or YAML path")
    trials: int = option(50, help="finished trials the study should hold")
    steps: int = option(200_000, help="environment steps per trial")
    # Not required by argparse: --show-space needs no study (run_tune asks for it otherwise).
    study: str | None = option(None, help="study name, required (an existing study resumes)")
    storage: str | None = option(None, help="Optuna storage URL (default sqlite:///OUT/study.db)")
    workers: int = option(1, help="trials side by side: processes, or CPUs of a local Ray")
    backend: str = option(
        "local", choices=BACKENDS, help="local processes or Ray tasks (either resumes a study)"
    )
    address: str | None = option(None, help="existing Ray cluster (auto, ray://host:10001)")
    space: str | None = option(
        None, metavar="FILE.yaml", help="search-space entries over the default"
    )
    show_space: bool = option(False, help="print the search space and exit")
    out: str | None = option(None, help="study folder (default tune/<study>)")
    metric: str = option(
        "mean_return",
        choices=METRICS,
        help="held-out objective (test split when the env has one)",
    )
    evaluations: int = option(4, help="periodic evaluations per trial, reported to the pruner")
    seed: int = option(0, help="training seed of every trial")
    device: str = option("cpu", help="cpu, auto or cuda[:N] for every trial")
    overrides: list[str] = option(
        [],
        flag="--set",
        metavar="KEY=VALUE",
        help="override every trial's run config, e.g. env.n_envs=8",
    )
    quiet: bool = option(False, help="no line per trial")
    track: str | None = track_option()
    track_project: str = track_project_option()
