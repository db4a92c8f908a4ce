"""Aggregate statistics over seeds: IQM with stratified bootstrap confidence intervals.

Follows Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS 2021) and its ``rliable`` library: the interquartile mean (mean of the
middle 50% of runs) is robust to outlier seeds yet uses more data than the median, and
percentile bootstrap intervals resample runs *within each task* (stratified) so a task
with high scores is never dropped from or duplicated into a resample.

The statistics themselves (:func:`iqm`, :func:`mean`, the :class:`Interval` type) are the ones
of :mod:`mmrl.evaluation.stats`, shared with ``mmrl evaluate``; this module adds only the
stratification across seeds and tasks, and the bench's cell rows and group summaries (issue 14).
Conventions match ``rliable.library.get_interval_estimates`` (percentile intervals, 95% by
default); ``tests/bench/test_aggregate.py`` checks them against hand-computed values and
rliable itself. Unlike rliable, tasks may have different numbers of runs (a grid with a failed
cell still aggregates).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mmrl.evaluation.stats import Interval, iqm, mean, percentile_bounds

__all__ = [
    "DEFAULT_REPS",
    "NAN_ESTIMATE",
    "Estimate",
    "Interval",
    "bootstrap_ci",
    "cell_row",
    "estimate",
    "final_summaries",
    "groups_of",
    "iqm",
    "mean",
    "modalities_of",
    "separated_pairs",
    "stratified_resample_indices",
    "summarize_fusion_over_envs",
    "summarize_group",
]

Tasks = Sequence[Sequence[float]]


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


#: A bench estimate: the statistic, its interval and the number of runs (``n``).
Estimate = Interval

NAN_ESTIMATE = Interval(float("nan"), float("nan"), float("nan"), 0)

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
    low, high = percentile_bounds(statistic(resamples, axis=1), confidence)
    value = float(statistic(np.concatenate(arrays)))
    return Interval(value, low, high, int(sum(t.size for t in arrays)))


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


def final_summaries(record: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, int | None]]:
    """Per split, the summary the report's success figures come from, and its episodes.

    A record's own final evaluation (``final``, :func:`mmrl.bench.runner.evaluate_cell`)
    where it has one. Records written before it existed fall back, per split, to what
    measured the same thing on the most episodes: for the train split the unablated
    policy of the ablation pass (the same seeds, policy and episodes the final evaluation
    now uses), otherwise the run's last periodic evaluation (``eval``, ``eval_episodes``).
    """
    summaries: dict[str, Any] = {}
    episodes: dict[str, int | None] = {}
    final = record.get("final") or {}
    periodic = record.get("eval") or {}
    unablated = (record.get("ablation") or {}).get("none")
    for split in dict.fromkeys([*final, *periodic]):
        if isinstance(final.get(split), Mapping):
            summary = final[split]
        elif split == "train" and isinstance(unablated, Mapping):
            summary = unablated
        else:
            summary = periodic.get(split)
        if isinstance(summary, Mapping):
            summaries[split] = summary
            count = summary.get("episodes", record.get("eval_episodes"))
            episodes[split] = None if count is None else int(count)
    return summaries, episodes


def cell_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One flat row (``results.csv``) from a cell record.

    Columns: env, fusion, seed, steps, success/return/collision on held-out seeds (train
    instructions) and on the test instruction split (from :func:`final_summaries`, with the
    episodes each rests on), the generalization gap (train minus test success), timing,
    parameter counts, and per modality the success and return with that modality removed
    and the change against the unablated policy on the same episodes, and (records from
    2026-12-06 on) ``group_success_<group>``: the unablated policy's success per
    instruction group on the train split's final episodes.
    """
    cell = record["cell"]
    final, episodes = final_summaries(record)
    row: dict[str, Any] = {
        "env": record.get("env_name", cell["env"]),
        "fusion": cell["fusion"],
        "seed": cell["seed"],
        "steps": record.get("steps"),
        "success": _get(final, "train", "success_rate"),
        "return": _get(final, "train", "mean_return"),
        "collision": _get(final, "train", "collision_rate"),
        "length": _get(final, "train", "mean_length"),
        "test_success": _get(final, "test", "success_rate"),
        "test_return": _get(final, "test", "mean_return"),
        "success_episodes": episodes.get("train"),
        "test_success_episodes": episodes.get("test"),
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
    for split, prefix in (("train", GROUP_PREFIX), ("test", TEST_GROUP_PREFIX)):
        for group, stats in (final.get(split, {}).get("by_group") or {}).items():
            row[f"{prefix}{group}"] = stats.get("success_rate")
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


#: Column prefix of the per-instruction-group success in a cell row.
GROUP_PREFIX = "group_success_"
#: The same on the held-out instruction split (records with a final evaluation of it).
TEST_GROUP_PREFIX = "test_group_success_"


def groups_of(rows: Sequence[Mapping[str, Any]], prefix: str = GROUP_PREFIX) -> list[str]:
    """Instruction groups that appear in any row's ``<prefix><group>`` columns, sorted."""
    n = len(prefix)
    return sorted({col[n:] for r in rows for col in r if col.startswith(prefix)})


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
    for prefix in (GROUP_PREFIX, TEST_GROUP_PREFIX):
        for group in groups_of(rows, prefix):
            column = f"{prefix}{group}"
            out[column] = estimate([_values(rows, column)], reps=reps)
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


def separated_pairs(estimates: Mapping[str, Estimate]) -> list[tuple[str, str]]:
    """Pairs ``(higher, lower)`` of names whose intervals do not overlap.

    The rule issue 19 states for calling a fusion difference significant: one interval's
    lower end strictly above the other's upper end (touching intervals overlap). It is
    conservative: a difference whose intervals overlap may still be real. Names whose
    estimate has no value or rests on fewer than two runs (an interval on one seed is a
    point) are left out.

    Args:
        estimates: Name (e.g. fusion) -> its estimate of one metric.

    Returns:
        Pairs ordered by the higher one's value, then the lower one's (descending).
    """
    usable = {
        name: est
        for name, est in estimates.items()
        if not np.isnan(est.value) and (est.n is None or est.n >= 2)
    }
    pairs = [(a, b) for a, ea in usable.items() for b, eb in usable.items() if ea.low > eb.high]
    return sorted(pairs, key=lambda p: (-usable[p[0]].value, -usable[p[1]].value))
