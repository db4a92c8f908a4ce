"""Learning curves from run folders (``mmrl plot``): IQM over seeds with bootstrap bands.

Every run folder keeps its periodic held-out evaluations in ``evaluations.jsonl`` (read
through :class:`mmrl.runs.RunFolder`). :func:`plot_runs` groups runs by agent recipe,
environment preset, seed or the path they were given as (``LABEL=PATH`` names it: two
variants of one recipe, e.g. with and without an ``--set`` override), aggregates the seeds
of a group at each evaluation with the interquartile mean and a 95 % percentile bootstrap
interval over seeds (:func:`mmrl.evaluation.stats.bootstrap_ci`, the statistics of ``mmrl
bench``; Agarwal et al. 2021), and draws one panel per instruction split and facet. Seeds
of a group share the evaluation schedule, so their k-th evaluations are aligned (x = the
median step), up to the shortest run of the group (a run stopped early by
``--stop-success`` shortens its group).

Drawn with matplotlib's object API on an Agg canvas: no display, no ``pyplot`` state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmrl.commands.plot import PlotOptions
from mmrl.errors import ConfigError
from mmrl.evaluation.stats import Interval, bootstrap_ci
from mmrl.runs import RunFolder

__all__ = [
    "GROUP_BY",
    "METRICS",
    "Curve",
    "RunCurve",
    "aggregate_curves",
    "find_labelled_runs",
    "find_runs",
    "load_curves",
    "plot_runs",
]

#: ``--metric`` name -> key of an evaluation record's per-split summary, axis label.
METRICS: dict[str, tuple[str, str]] = {
    "success": ("success_rate", "success rate"),
    "return": ("mean_return", "return"),
}
#: ``--group-by`` choices: what one line of a panel stands for.
GROUP_BY: tuple[str, ...] = ("agent", "env", "seed", "path")
SPLIT_LABELS = {"train": "train instructions", "test": "held-out instructions"}
FIGURE_SUFFIXES = (".png", ".svg")


@dataclasses.dataclass
class RunCurve:
    """One run's evaluation curve of one metric.

    Attributes:
        run: The run folder.
        agent: Agent recipe name (a YAML path's stem).
        env: Environment preset name (a YAML path's stem).
        seed: The run's seed.
        source: The path argument (or its ``LABEL``) the run was found under.
        splits: Split name -> ``(steps, values)``, two ``(k,)`` float64 arrays.
    """

    run: RunFolder
    agent: str
    env: str
    seed: int
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    source: str = ""


@dataclasses.dataclass
class Curve:
    """A group's aggregated curve on one split.

    Attributes:
        label: What the line stands for (an agent, env, or ``agent seed N``).
        facet: The panel it belongs to (an env, or an agent for ``group_by="env"``).
        split: Instruction split.
        steps: ``(k,)`` median environment step of each aligned evaluation.
        points: ``k`` IQM values over the group's runs with their 95 % bootstrap interval.
        n_runs: Runs aggregated.
    """

    label: str
    facet: str
    split: str
    steps: np.ndarray
    points: list[Interval]
    n_runs: int


def _name(preset: str) -> str:
    """A preset name, or a YAML path's stem (``envs/my-env.yaml`` -> ``my-env``)."""
    path = Path(preset)
    return path.stem if path.suffix in (".yaml", ".yml") else preset


def split_label(raw: str | Path) -> tuple[str, Path]:
    """``"LABEL=PATH"`` -> ``(LABEL, PATH)``; a plain path is its own label. An existing path
    that contains ``=`` stays a path."""
    text = str(raw)
    label, sep, rest = text.partition("=")
    if sep and label and rest and not Path(text).exists():
        return label, Path(rest)
    return text, Path(text)


def find_runs(paths: Sequence[str | Path]) -> list[RunFolder]:
    """The run folders at ``paths``: each is a run folder, or a folder searched for them (a
    ``mmrl bench`` output, a folder of runs), in path order; a path may be ``LABEL=PATH``.

    Raises:
        ConfigError: A path does not exist, or holds no run folder.
    """
    return [run for _, run in find_labelled_runs(paths)]


def find_labelled_runs(paths: Sequence[str | Path]) -> list[tuple[str, RunFolder]]:
    """Like :func:`find_runs`, each run with the label of the argument it was found under
    (``LABEL`` of ``LABEL=PATH``, else the path as given); a run found twice keeps the first.

    Raises:
        ConfigError: A path does not exist, or holds no run folder.
    """
    runs: list[tuple[str, RunFolder]] = []
    for raw in paths:
        label, path = split_label(raw)
        if not path.exists():
            raise ConfigError(f"{path}: no such run or bench folder")
        if RunFolder.is_run(path):
            found = [path]
        else:
            found = sorted(
                p.parent for p in path.rglob("config.yaml") if RunFolder.is_run(p.parent)
            )
        if not found:
            raise ConfigError(f"{path}: not a run folder and holds none (no config.yaml found)")
        runs += [(label, RunFolder(p)) for p in found if all(p != r.path for _, r in runs)]
    return runs


def load_curves(
    runs: Sequence[RunFolder | tuple[str, RunFolder]], metric: str = "success"
) -> list[RunCurve]:
    """Every run's evaluation curve of ``metric`` (``success`` or ``return``).

    Args:
        runs: Run folders, or ``(label, run)`` pairs from :func:`find_labelled_runs` (the
            label is the curve's ``source``, what ``group_by="path"`` groups by).
        metric: ``success`` or ``return``.

    Raises:
        ConfigError: Unknown metric, or no run has a periodic evaluation.
    """
    if metric not in METRICS:
        raise ConfigError(f"must be one of {', '.join(METRICS)}; got {metric!r}", field="metric")
    key = METRICS[metric][0]
    curves = []
    for item in runs:
        source, run = item if isinstance(item, tuple) else (str(item.path), item)
        config = run.config()
        records = run.evaluations()
        splits = {}
        for split in dict.fromkeys(s for r in records for s in r if s != "step"):
            rows = [r for r in records if isinstance(r.get(split), dict) and key in r[split]]
            if rows:
                steps = np.array([r["step"] for r in rows], dtype=np.float64)
                values = np.array([r[split][key] for r in rows], dtype=np.float64)
                splits[split] = (steps, values)
        if splits:
            curves.append(
                RunCurve(
                    run,
                    _name(config.agent_name),
                    _name(config.env_name),
                    config.seed,
                    splits,
                    source,
                )
            )
    if not curves:
        paths = [(item[1] if isinstance(item, tuple) else item).path for item in runs]
        names = ", ".join(str(p) for p in paths[:3]) + (" ..." if len(paths) > 3 else "")
        raise ConfigError(
            f"no periodic evaluation in {names} (evaluations.jsonl is missing or empty; "
            f"train with eval_freq > 0)"
        )
    return curves


def _keys(curve: RunCurve, group_by: str) -> tuple[str, str]:
    """``(facet, label)`` of a run for ``group_by``."""
    if group_by == "env":
        return curve.agent, curve.env
    if group_by == "seed":
        return curve.env, f"{curve.agent} seed {curve.seed}"
    if group_by == "path":
        return curve.env, curve.source
    return curve.env, curve.agent


def aggregate_curves(
    curves: Sequence[RunCurve], group_by: str = "agent", n_resamples: int = 2000
) -> list[Curve]:
    """Groups run curves and aggregates each group's seeds per aligned evaluation.

    Args:
        curves: From :func:`load_curves`.
        group_by: ``agent`` (a line per agent, a panel per env), ``env`` (a line per env, a
            panel per agent), ``seed`` (a line per agent and seed, a panel per env) or
            ``path`` (a line per path argument or ``LABEL``, a panel per env).
        n_resamples: Bootstrap resamples per point.

    Raises:
        ConfigError: Unknown ``group_by``.
    """
    if group_by not in GROUP_BY:
        raise ConfigError(
            f"must be one of {', '.join(GROUP_BY)}; got {group_by!r}", field="group_by"
        )
    groups: dict[tuple[str, str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    for curve in curves:
        facet, label = _keys(curve, group_by)
        for split, xy in curve.splits.items():
            groups.setdefault((facet, label, split), []).append(xy)
    out = []
    for (facet, label, split), members in groups.items():
        length = min(len(steps) for steps, _ in members)
        steps = np.array([np.median([s[k] for s, _ in members]) for k in range(length)])
        points = [
            bootstrap_ci(np.array([v[k] for _, v in members]), "iqm", n_resamples=n_resamples)
            for k in range(length)
        ]
        out.append(Curve(label, facet, split, steps, points, len(members)))
    return out


def check_figure_path(out: str | Path) -> Path:
    """Validates a figure path: ``.png`` or ``.svg`` in an existing folder.

    Raises:
        ConfigError: Another suffix, or a missing folder (field ``out``).
    """
    path = Path(out)
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise ConfigError(f"{path}: use a .png or .svg file name", field="out")
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: folder {path.parent} does not exist", field="out")
    return path


def plot_runs(
    paths: Sequence[str | Path],
    out: str | Path,
    group_by: str = PlotOptions.group_by,
    metric: str = PlotOptions.metric,
    n_resamples: int = PlotOptions.bootstrap,
    dpi: int = 100,
) -> Path:
    """Draws learning curves of run folders (or folders of them) into a PNG or SVG.

    One column per instruction split present (``train``, then ``test``), one row per facet
    (see :func:`aggregate_curves`); each line the IQM over its runs with a 95 % bootstrap
    band, labelled with the number of runs.

    Args:
        paths: Run folders, ``mmrl bench`` folders or any folders holding run folders, each
            optionally ``LABEL=PATH`` (with ``group_by="path"``, paths sharing a label make
            one line).
        out: ``.png`` or ``.svg`` file; its folder must exist.
        group_by: ``agent``, ``env``, ``seed`` or ``path``.
        metric: ``success`` (held-out success rate) or ``return`` (mean episode return).
        n_resamples: Bootstrap resamples per point.
        dpi: Resolution of a PNG (a panel is 4.2 x 3.2 inches).

    Returns:
        The written file.

    Raises:
        ConfigError: Bad path, suffix, group or metric, or no run with evaluations.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    out = check_figure_path(out)
    if group_by not in GROUP_BY:  # before the (slower) reading of every run
        raise ConfigError(
            f"must be one of {', '.join(GROUP_BY)}; got {group_by!r}", field="group_by"
        )
    curves = aggregate_curves(load_curves(find_labelled_runs(paths), metric), group_by, n_resamples)
    splits = [s for s in ("train", "test") if any(c.split == s for c in curves)]
    splits += sorted({c.split for c in curves} - set(splits))
    facets = list(dict.fromkeys(c.facet for c in curves))
    labels = list(dict.fromkeys(c.label for c in curves))
    colors = {label: colormaps["tab10"](i % 10) for i, label in enumerate(labels)}
    key, axis_label = METRICS[metric]
    fig = Figure(figsize=(4.2 * len(splits), 3.2 * len(facets)), layout="constrained")
    axes = fig.subplots(len(facets), len(splits), squeeze=False)
    for row, facet in enumerate(facets):
        for col, split in enumerate(splits):
            ax = axes[row][col]
            for c in curves:
                if c.facet != facet or c.split != split:
                    continue
                mid = [p.value for p in c.points]
                ax.plot(c.steps, mid, color=colors[c.label], marker=".", label=_legend(c))
                ax.fill_between(
                    c.steps,
                    [p.low for p in c.points],
                    [p.high for p in c.points],
                    color=colors[c.label],
                    alpha=0.15,
                    lw=0,
                )
            ax.set_title(f"{facet} ({SPLIT_LABELS.get(split, split)})", fontsize=9)
            ax.set_xlabel("environment steps")
            ax.set_ylabel(f"{axis_label} (IQM, 95% CI)")
            if key.endswith("_rate"):
                ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
            if ax.has_data():
                ax.legend(fontsize=8)
    fig.savefig(out, dpi=dpi)
    return out


def _legend(curve: Curve) -> str:
    return curve.label if curve.n_runs == 1 else f"{curve.label} ({curve.n_runs} runs)"
