"""Aggregate statistics over seeds: IQM with stratified bootstrap confidence intervals.

Follows Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS 2021) and its ``rliable`` library: the interquartile mean (mean of the
middle 50% of runs) is robust to outlier seeds yet uses more data than the median, and
percentile bootstrap intervals resample runs *within each task* (stratified) so a task
with high scores is never dropped from or duplicated into a resample.

Implemented in NumPy so it works without the optional ``rliable`` extra, with the same
conventions as ``rliable.metrics.aggregate_iqm`` (``scipy.stats.trim_mean(x, 0.25)``: cut
``floor(0.25 n)`` runs at each end) and ``rliable.library.get_interval_estimates``
(percentile intervals, 95% by default). ``tests/bench/test_aggregate.py`` checks both
against hand-computed values and against rliable itself. Unlike rliable, tasks may have
different numbers of runs (a grid with a failed cell still aggregates).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Tasks = Sequence[Sequence[float]]


def iqm(scores: Sequence[float] | np.ndarray, axis: int | None = None) -> Any:
    """Interquartile mean: the mean after cutting ``floor(n / 4)`` scores at each end.

    Same as ``scipy.stats.trim_mean(scores, 0.25, axis)`` (so IQM of 1..8 is the mean of
    3, 4, 5, 6 = 4.5; with fewer than 4 scores nothing is cut and it is the mean); the
    trimming itself is :func:`mmrl.evaluation.stats.trimmed_mean`, shared with
    ``mmrl evaluate``'s per-episode intervals.

    Args:
        scores: The scores.
        axis: Axis to reduce (``None``: all scores, returning a float).

    Raises:
        ValueError: On an empty input.
    """
    from mmrl.evaluation.stats import trimmed_mean

    x = np.asarray(scores, dtype=np.float64)
    if axis is None:
        return float(trimmed_mean(x.ravel(), 0.25))
    return trimmed_mean(np.moveaxis(x, axis, -1), 0.25)


def mean(scores: Sequence[float] | np.ndarray, axis: int | None = None) -> Any:
    """Plain mean, with the same signature as :func:`iqm`."""
    result = np.asarray(scores, dtype=np.float64).mean(axis=axis)
    return float(result) if np.ndim(result) == 0 else result


def stratified_resample_indices(
    sizes: Sequence[int], reps: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Indices of ``reps`` stratified bootstrap resamples.

    Args:
        sizes: Runs per task.
        reps: Resamples.
        rng: Random generator.

    Returns:
        Per task, an int array ``(reps, size)`` of run indices drawn with replacement from
        that task's runs only: every resample keeps each task and its run count.
    """
    return [rng.integers(0, n, size=(reps, n)) for n in sizes]


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval.

    Attributes:
        value: The statistic on the data.
        low: Lower bound of the interval.
        high: Upper bound of the interval.
        n: Number of runs it is computed from.
    """

    value: float
    low: float
    high: float
    n: int

    def fmt(self, digits: int = 2) -> str:
        """``"0.75 [0.60, 0.90]"`` (``"n/a"`` without data)."""
        if np.isnan(self.value):
            return "n/a"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


NAN_ESTIMATE = Estimate(float("nan"), float("nan"), float("nan"), 0)

#: Bootstrap resamples; rliable's ``get_interval_estimates`` default.
DEFAULT_REPS = 50_000


def bootstrap_ci(
    tasks: Tasks,
    statistic: Callable[..., Any] = iqm,
    reps: int = DEFAULT_REPS,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Stratified percentile bootstrap interval of a statistic of all runs pooled.

    Args:
        tasks: Per task (e.g. environment), the scores of its runs (seeds). One task gives
            an ordinary bootstrap over seeds.
        statistic: ``f(scores, axis)`` reducing pooled runs (:func:`iqm`, :func:`mean`);
            vectorized over resamples, so rliable's 50000 resamples take milliseconds.
        reps: Bootstrap resamples.
        confidence: Interval coverage.
        seed: Seed of the resampling, so reports are reproducible.

    Returns:
        The estimate and its interval. Constant data (or one run per task) gives a
        degenerate interval on the value: there is no spread to resample.

    Raises:
        ValueError: No tasks, a task without runs, or bad ``reps``/``confidence``.
    """
    arrays = [np.asarray(t, dtype=np.float64).ravel() for t in tasks]
    if not arrays or any(t.size == 0 for t in arrays):
        raise ValueError("bootstrap needs at least one task and one run per task")
    if reps < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need reps >= 1 and 0 < confidence < 1, got {reps}, {confidence}")
    rng = np.random.default_rng(seed)
    indices = stratified_resample_indices([t.size for t in arrays], reps, rng)
    resamples = np.concatenate([t[i] for t, i in zip(arrays, indices)], axis=1)
    samples = statistic(resamples, axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    value = float(statistic(np.concatenate(arrays)))
    return Estimate(value, float(low), float(high), int(sum(t.size for t in arrays)))


def estimate(
    tasks: Tasks, statistic: Callable[..., Any] = iqm, reps: int = DEFAULT_REPS, seed: int = 0
) -> Estimate:
    """:func:`bootstrap_ci` ignoring empty tasks, or :data:`NAN_ESTIMATE` when no data is
    left (e.g. an env without a test instruction split)."""
    tasks = [t for t in tasks if len(t)]
    if not tasks:
        return NAN_ESTIMATE
    return bootstrap_ci(tasks, statistic, reps=reps, seed=seed)


# ---------------------------------------------------------------------------- cell records
def _get(record: Mapping[str, Any], *path: str) -> float | None:
    node: Any = record
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return None if node is None else float(node)


def cell_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One flat row (``results.csv``) from a cell record.

    Columns: env, fusion, seed, steps, success/return/collision on held-out seeds (train
    instructions) and on the test instruction split, the generalization gap (train minus
    test success), timing, parameter counts, and per modality the success and return with
    that modality removed and the change against the unablated policy on the same episodes.
    """
    cell = record["cell"]
    row: dict[str, Any] = {
        "env": record.get("env_name", cell["env"]),
        "fusion": cell["fusion"],
        "seed": cell["seed"],
        "steps": record.get("steps"),
        "success": _get(record, "eval", "train", "success_rate"),
        "return": _get(record, "eval", "train", "mean_return"),
        "collision": _get(record, "eval", "train", "collision_rate"),
        "length": _get(record, "eval", "train", "mean_length"),
        "test_success": _get(record, "eval", "test", "success_rate"),
        "test_return": _get(record, "eval", "test", "mean_return"),
        "eval_episodes": record.get("eval_episodes"),
        "steps_per_second": record.get("steps_per_second"),
        "train_seconds": record.get("train_seconds"),
        "cell_seconds": record.get("cell_seconds"),
        "params": _get(record, "params", "policy"),
        "extractor_params": _get(record, "params", "extractor"),
    }
    if row["success"] is not None and row["test_success"] is not None:
        row["generalization_gap"] = row["success"] - row["test_success"]
    else:
        row["generalization_gap"] = None
    ablation = record.get("ablation") or {}
    base = ablation.get("none", {})
    for key, summary in ablation.items():
        if key == "none":
            continue
        row[f"success_without_{key}"] = summary.get("success_rate")
        row[f"return_without_{key}"] = summary.get("mean_return")
        if "success_rate" in base and "success_rate" in summary:
            row[f"delta_success_without_{key}"] = summary["success_rate"] - base["success_rate"]
        if "mean_return" in base and "mean_return" in summary:
            row[f"delta_return_without_{key}"] = summary["mean_return"] - base["mean_return"]
    return row


def _values(rows: Sequence[Mapping[str, Any]], column: str) -> list[float]:
    out = []
    for r in rows:
        v = r.get(column)
        if v is not None and not (isinstance(v, float) and np.isnan(v)):
            out.append(float(v))
    return out


def modalities_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Modality keys that appear in any row's ablation columns, in first-seen order."""
    keys: list[str] = []
    prefix = "delta_success_without_"
    for r in rows:
        for col in r:
            if col.startswith(prefix) and col[len(prefix) :] not in keys:
                keys.append(col[len(prefix) :])
    return keys


def summarize_group(rows: Sequence[Mapping[str, Any]], reps: int = DEFAULT_REPS) -> dict[str, Any]:
    """Statistics of one env x fusion group of cell rows (one row per seed).

    Returns a dict with :class:`Estimate` values for ``success``, ``return``,
    ``test_success``, ``test_return``, ``generalization_gap`` and
    ``delta_success_without_<key>`` (IQM over seeds with a bootstrap CI), plus
    ``steps_per_second`` (mean), ``params`` and ``seeds``.
    """
    out: dict[str, Any] = {"seeds": len(rows)}
    for column in ("success", "return", "test_success", "test_return", "generalization_gap"):
        out[column] = estimate([_values(rows, column)], reps=reps)
    for key in modalities_of(rows):
        out[f"delta_success_without_{key}"] = estimate(
            [_values(rows, f"delta_success_without_{key}")], reps=reps
        )
    rates = _values(rows, "steps_per_second")
    out["steps_per_second"] = float(np.mean(rates)) if rates else float("nan")
    params = _values(rows, "params")
    out["params"] = int(params[0]) if params else None
    return out


def summarize_fusion_over_envs(
    rows: Sequence[Mapping[str, Any]], column: str = "success", reps: int = DEFAULT_REPS
) -> Estimate:
    """IQM of one fusion over every env and seed, CI stratified by env (each env a task),
    as rliable aggregates over Atari games."""
    by_env: dict[str, list[float]] = {}
    for r in rows:
        v = r.get(column)
        if v is not None:
            by_env.setdefault(str(r["env"]), []).append(float(v))
    return estimate(list(by_env.values()), reps=reps)
