"""Options of ``mmrl bench`` (:mod:`mmrl.bench.driver` reads them)."""

from __future__ import annotations

import dataclasses

from mmrl.commands.options import option
from mmrl.commands.progress import log_interval_option
from mmrl.commands.track import track_option, track_project_option

_GRID = "grid"
_EXECUTION = "execution"


@dataclasses.dataclass(kw_only=True)
class BenchOptions:
    """``mmrl bench``: train and evaluate a grid of envs x fusions x seeds."""

    envs: str = option("driving,navigation", group=_GRID, help="comma-separated env presets")
    fusions: str = option(
        "all", group=_GRID, help="comma-separated fusions (recipes ppo-<fusion>) or 'all'"
    )
    seeds: int = option(3, group=_GRID, help="seeds per env x fusion", minimum=1)
    seed_start: int = option(0, group=_GRID, help="first seed")
    steps: int = option(300_000, group=_GRID, help="environment steps per cell", minimum=1)
    overrides: list[str] = option(
        [],
        group=_GRID,
        flag="--set",
        metavar="KEY=VALUE",
        help="override every cell's run config, e.g. eval_freq=10000",
    )
    pretrained: bool = option(
        False, group=_GRID, help="init from mmrl pretrain encoders (default dir: pretrained/)"
    )
    pretrained_dir: str | None = option(
        None, group=_GRID, metavar="DIR", help="folder of <env>-<fusion>.pt files"
    )
    adopt_encoders: bool = option(
        False,
        group=_GRID,
        help="continue --out although its encoders were rebuilt (same mmrl pretrain commands, "
        "other bytes, e.g. another machine): finished cells keep theirs, the rest use these",
    )
    device: str = option("cpu", group=_GRID, help="cpu, auto or cuda[:N] for every cell")
    no_ablation: bool = option(False, group=_GRID, help="skip the modality ablations")
    ablation_episodes: int | None = option(
        None,
        group=_GRID,
        help="episodes per ablation (default: the run's eval_episodes)",
        minimum=1,
    )
    out: str = option(
        "bench/default", group=_GRID, help="bench folder; rerun with the same --out to resume"
    )
    report_only: bool = option(
        False, group=_GRID, help="only rewrite results.csv, summary.md and figures of --out"
    )
    reevaluate: bool = option(
        False,
        group=_GRID,
        help="evaluate the finished cells of --out again from their run folders (final "
        "evaluation on each split, ablations; the protocol's episodes), then the report; "
        "no training",
    )
    quiet: bool = option(False, group=_GRID, help="no progress display or lines")
    log_interval: float = log_interval_option("one per cell")
    backend: str = option(
        "local",
        group=_EXECUTION,
        choices=("local", "ray", "inline"),
        help="local process pool, Ray tasks, or inline (debugging)",
    )
    workers: int | None = option(
        None,
        group=_EXECUTION,
        help="parallel cells (local) or CPUs of a local Ray (default: cores / --cpus-per-task)",
        minimum=1,
    )
    address: str | None = option(
        None, group=_EXECUTION, help="existing Ray cluster (auto, ray://host:10001)"
    )
    cpus_per_task: float = option(
        1.0,
        group=_EXECUTION,
        help="CPUs (torch threads) per cell",
        exclusive_minimum=0,
        maximum=1024,
    )
    gpus_per_task: float = option(
        0.0, group=_EXECUTION, help="GPUs per Ray task", minimum=0, maximum=64
    )
    track: str | None = track_option()
    track_project: str = track_project_option()
