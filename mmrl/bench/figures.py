"""Benchmark figures (PNG): learning curves, final performance, robustness heatmap.

Drawn with matplotlib's object API on an Agg canvas (no ``pyplot`` global state, no
display needed, safe in worker processes and on headless CI). Every figure shows IQM over
seeds with 95% stratified bootstrap intervals (:mod:`mmrl.bench.aggregate`), the
presentation recommended by Agarwal et al. (2021) over mean +- std of a few seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from mmrl.bench.aggregate import Estimate, estimate, modalities_of

#: Resamples per point of a curve band (many points; the band only needs to look right).
CURVE_REPS = 2000
SPLIT_LABELS = {"train": "held-out seeds, train instructions", "test": "test instructions"}


def _colors(names: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def _ordered(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def learning_curves(
    records: Sequence[Mapping[str, Any]], path: Path, metric: str = "success_rate"
) -> Path | None:
    """Success (or another eval metric) against environment steps, per env and split.

    One panel per (split, env); one line per fusion: IQM over seeds at each periodic
    evaluation with a 95% bootstrap band. Seeds of a cell share the evaluation schedule, so
    the k-th evaluations are aligned (x = their median step).

    Args:
        records: Cell records (with ``curve``).
        path: PNG to write.
        metric: Key of the evaluation summary to plot.

    Returns:
        The path, or ``None`` when no record has a learning curve (``eval_freq=0``).
    """
    groups: dict[tuple[str, str], list[list[dict[str, Any]]]] = {}
    for r in records:
        if r.get("curve"):
            groups.setdefault((r["env_name"], r["cell"]["fusion"]), []).append(r["curve"])
    if not groups:
        return None
    envs = _ordered(e for e, _ in groups)
    fusions = _ordered(f for _, f in groups)
    splits = [
        s for s in ("train", "test") if any(s in p for c in groups.values() for x in c for p in x)
    ]
    colors = _colors(fusions)
    fig = Figure(figsize=(4.2 * len(envs), 3.2 * len(splits)), layout="constrained")
    axes = fig.subplots(len(splits), len(envs), squeeze=False)
    for row, split in enumerate(splits):
        for col, env in enumerate(envs):
            ax = axes[row][col]
            for fusion in fusions:
                curves = groups.get((env, fusion))
                if not curves:
                    continue
                length = min(len(c) for c in curves)
                xs, mid, low, high = [], [], [], []
                for k in range(length):
                    points = [c[k] for c in curves if split in c[k]]
                    values = [p[split][metric] for p in points if metric in p[split]]
                    if not values:
                        continue
                    est = estimate([values], reps=CURVE_REPS)
                    xs.append(float(np.median([p["step"] for p in points])))
                    mid.append(est.value)
                    low.append(est.low)
                    high.append(est.high)
                if xs:
                    ax.plot(xs, mid, color=colors[fusion], label=fusion, marker=".")
                    ax.fill_between(xs, low, high, color=colors[fusion], alpha=0.15, lw=0)
            ax.set_title(f"{env} ({SPLIT_LABELS[split]})", fontsize=9)
            ax.set_xlabel("environment steps")
            ax.set_ylabel(f"{metric} (IQM, 95% CI)")
            if metric.endswith("_rate"):
                ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return _save(fig, path)


def final_performance(
    summaries: Mapping[tuple[str, str], Mapping[str, Any]], path: Path
) -> Path | None:
    """Bars of final success per fusion, one panel per env, with 95% CI error bars.

    Two bars per fusion when the env has a test instruction split: held-out seeds with
    training instructions, and held-out instruction combinations.

    Args:
        summaries: ``(env, fusion) -> summarize_group(...)``.
        path: PNG to write.
    """
    if not summaries:
        return None
    envs = _ordered(e for e, _ in summaries)
    fusions = _ordered(f for _, f in summaries)
    fig = Figure(figsize=(max(4.0, 0.9 * len(fusions)) * len(envs), 3.4), layout="constrained")
    axes = fig.subplots(1, len(envs), squeeze=False)[0]
    for ax, env in zip(axes, envs):
        names = [f for f in fusions if (env, f) in summaries]
        x = np.arange(len(names))
        columns = [("success", "train instr.")]
        if any(not np.isnan(summaries[(env, f)]["test_success"].value) for f in names):
            columns.append(("test_success", "test instr."))
        width = 0.8 / len(columns)
        for i, (column, label) in enumerate(columns):
            ests: list[Estimate] = [summaries[(env, f)][column] for f in names]
            values = np.array([e.value for e in ests])
            err = np.array([[e.value - e.low for e in ests], [e.high - e.value for e in ests]])
            ax.bar(x + (i - (len(columns) - 1) / 2) * width, values, width, label=label,
                   yerr=np.nan_to_num(err), capsize=3)  # fmt: skip
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_title(env)
        ax.set_ylabel("final success (IQM, 95% CI)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def robustness_heatmap(
    summaries: Mapping[tuple[str, str], Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    path: Path,
) -> Path | None:
    """Change in success when each modality is removed: env x fusion rows, modality columns.

    Red = the policy loses success without that sensor (it relies on it); near zero = the
    sensor is ignored. Grey = the env has no such modality.

    Args:
        summaries: ``(env, fusion) -> summarize_group(...)``.
        rows: Cell rows (to find the modality columns).
        path: PNG to write.

    Returns:
        The path, or ``None`` when no cell ran ablations.
    """
    keys = modalities_of(rows)
    if not keys or not summaries:
        return None
    labels = [f"{env} / {fusion}" for env, fusion in summaries]
    grid = np.full((len(labels), len(keys)), np.nan)
    for i, summary in enumerate(summaries.values()):
        for j, key in enumerate(keys):
            est = summary.get(f"delta_success_without_{key}")
            if est is not None:
                grid[i, j] = est.value
    fig = Figure(figsize=(1.3 * len(keys) + 3.0, 0.38 * len(labels) + 1.6), layout="constrained")
    ax = fig.subplots()
    masked = np.ma.masked_invalid(grid)
    from matplotlib import colormaps

    cmap = colormaps["RdBu"].with_extremes(bad="0.85")
    image = ax.imshow(masked, cmap=cmap, vmin=-1.0, vmax=1.0, aspect="auto")
    for i in range(len(labels)):
        for j in range(len(keys)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:+.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(keys)), [f"without {k}" for k in keys])
    ax.set_yticks(range(len(labels)), labels)
    ax.set_title("change in success when a modality is removed (IQM over seeds)", fontsize=9)
    fig.colorbar(image, ax=ax, label="\u0394 success")
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
