"""Interval estimates: IQM, mean, percentile bootstrap, Wilson and Newcombe (one statistics module).

``mmrl evaluate`` uses them over episodes and ``mmrl bench`` over seeds: :mod:`mmrl.bench.aggregate`
keeps only its cross-seed stratification (resampling runs within each task) on top of the
:class:`Interval`, :func:`iqm` and :func:`mean` defined here (issue 14).

Point estimates follow rliable (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
Precipice"): the interquartile mean (IQM, the 25 % trimmed mean, identical to
``rliable.metrics.aggregate_iqm`` / ``scipy.stats.trim_mean(x, 0.25)``) is robust to a few
outlier episodes yet, unlike the median, uses half the data. Intervals are percentile
bootstrap intervals over episodes, computed here with vectorized NumPy (rliable's
``get_interval_estimates`` bootstraps through the ``arch`` package with a Python-level loop
per resample; this is one ``(B, n)`` gather per chunk). Binary rates (success, collision) get
Wilson score intervals (Wilson 1927), which keep their coverage at rates near 0 or 1 where the
normal ("Wald") interval collapses to a point. Differences of two rates get Newcombe's
hybrid score interval (Newcombe 1998, method 10), built from the two Wilson intervals, which
keeps that coverage where the Wald difference interval does not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]
"""Maps ``(B, n)`` samples to ``(B,)`` values (a reduction over the last axis)."""

_CHUNK_ELEMENTS = 4_000_000  # Bootstrap resamples are drawn in chunks of at most this many values.


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval.

    Attributes:
        value: The point estimate on the observed data.
        low: Lower end of the interval.
        high: Upper end of the interval.
        n: How many values (episodes, runs) it is computed from, where the caller records it
            (``mmrl bench``'s summaries do); ``None`` otherwise.
    """

    value: float
    low: float
    high: float
    n: int | None = None

    def to_dict(self) -> dict[str, float]:
        """``{"value", "low", "high"}`` as plain floats (JSON)."""
        return {"value": self.value, "low": self.low, "high": self.high}

    def fmt(self, digits: int = 2) -> str:
        """``"0.75 [0.60, 0.90]"`` (``"n/a"`` without data: a NaN value)."""
        if np.isnan(self.value):
            return "n/a"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def trimmed_mean(x: np.ndarray, proportion: float) -> np.ndarray:
    """Mean after cutting ``int(proportion * n)`` values from each end of the last axis.

    Same convention as ``scipy.stats.trim_mean``.

    Args:
        x: ``(..., n)`` numbers.
        proportion: Fraction cut from each end, in ``[0, 0.5)``.

    Returns:
        ``(...)`` float64.
    """
    if not 0.0 <= proportion < 0.5:
        raise ValueError(f"proportion must be in [0, 0.5), got {proportion}")
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    if n == 0:
        raise ValueError("trimmed_mean of an empty sample")
    cut = int(proportion * n)
    if cut == 0:
        return x.mean(axis=-1)
    # partition is O(n) per row where a full sort is O(n log n); only the cut points matter.
    part = np.partition(x, (cut, n - cut - 1), axis=-1)
    return part[..., cut : n - cut].mean(axis=-1)


def iqm(x: np.ndarray | Sequence[float], axis: int | None = -1) -> Any:
    """Interquartile mean: the mean after cutting ``floor(n / 4)`` values at each end.

    Same as ``scipy.stats.trim_mean(x, 0.25)`` and ``rliable.metrics.aggregate_iqm`` (so the
    IQM of 1..8 is the mean of 3, 4, 5, 6 = 4.5; with fewer than 4 values nothing is cut).

    Args:
        x: Numbers.
        axis: Axis to reduce (default the last, so ``(B, n)`` gives ``(B,)``); ``None``
            pools every value and returns a float.

    Raises:
        ValueError: On an empty input.
    """
    x = np.asarray(x, dtype=np.float64)
    if axis is None:
        return float(trimmed_mean(x.ravel(), 0.25))
    return trimmed_mean(np.moveaxis(x, axis, -1), 0.25)


def mean(x: np.ndarray | Sequence[float], axis: int | None = -1) -> Any:
    """Mean (float64) over ``axis`` (default the last; ``None``: every value, as a float)."""
    result = np.asarray(x, dtype=np.float64).mean(axis=axis)
    return float(result) if axis is None else result


STATISTICS: dict[str, Statistic] = {"mean": mean, "iqm": iqm}
"""Named statistics accepted by :func:`bootstrap_ci`."""


def _statistic(statistic: str | Statistic) -> Statistic:
    if callable(statistic):
        return statistic
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; allowed: {', '.join(STATISTICS)}")
    return STATISTICS[statistic]


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_distribution(
    x: np.ndarray,
    statistic: str | Statistic = "mean",
    n_resamples: int = 2000,
    rng: np.random.Generator | int | None = 0,
) -> np.ndarray:
    """Values of ``statistic`` on ``n_resamples`` resamples of ``x`` (with replacement).

    Args:
        x: ``(n,)`` sample (e.g. per-episode returns), ``n >= 1``.
        statistic: ``"mean"``, ``"iqm"`` or a function ``(B, n) -> (B,)``.
        n_resamples: Number of bootstrap resamples ``B``.
        rng: Generator or seed (the default makes tables reproducible).

    Returns:
        ``(B,)`` float64.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("cannot bootstrap an empty sample")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    stat = _statistic(statistic)
    rng = np.random.default_rng(rng)
    rows = max(1, _CHUNK_ELEMENTS // x.size)
    out = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, rows):
        b = min(rows, n_resamples - start)
        out[start : start + b] = stat(x[rng.integers(0, x.size, size=(b, x.size))])
    return out


def percentile_bounds(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of bootstrap
    ``samples`` (``(B,)``): a percentile interval's ends."""
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(
    x: np.ndarray,
    statistic: str | Statistic = "mean",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    rng: np.random.Generator | int | None = 0,
) -> Interval:
    """Percentile bootstrap confidence interval of a statistic of one sample.

    Args:
        x: ``(n,)`` sample, ``n >= 1``.
        statistic: ``"mean"``, ``"iqm"`` or a function ``(B, n) -> (B,)``.
        confidence: Coverage, in ``(0, 1)``.
        n_resamples: Bootstrap resamples (rliable uses 2000 for its figures' defaults).
        rng: Generator or seed.

    Returns:
        The statistic on ``x`` with the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
        quantiles of its bootstrap distribution.
    """
    _check_confidence(confidence)
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("cannot bootstrap an empty sample")
    stat = _statistic(statistic)
    value = float(stat(x[None])[0])
    low, high = percentile_bounds(bootstrap_distribution(x, stat, n_resamples, rng), confidence)
    return Interval(value, low, high)


def bootstrap_diff_ci(
    baseline: np.ndarray,
    other: np.ndarray,
    statistic: str | Statistic = "mean",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    rng: np.random.Generator | int | None = 0,
) -> Interval:
    """Percentile bootstrap interval of ``stat(other) - stat(baseline)``.

    The two samples are resampled independently (unpaired): episodes of two evaluation
    conditions share their seeds, but their trajectories diverge, so no episode-level pairing
    is assumed.

    Args:
        baseline: ``(n,)`` sample of the reference condition (e.g. clean observations).
        other: ``(m,)`` sample of the changed condition.
        statistic: ``"mean"``, ``"iqm"`` or a function ``(B, n) -> (B,)``.
        confidence: Coverage, in ``(0, 1)``.
        n_resamples: Bootstrap resamples.
        rng: Generator or seed.
    """
    _check_confidence(confidence)
    stat = _statistic(statistic)
    rng = np.random.default_rng(rng)
    a = np.asarray(baseline, dtype=np.float64).ravel()
    b = np.asarray(other, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("cannot bootstrap an empty sample")
    value = float(stat(b[None])[0] - stat(a[None])[0])
    diffs = bootstrap_distribution(b, stat, n_resamples, rng) - bootstrap_distribution(
        a, stat, n_resamples, rng
    )
    low, high = percentile_bounds(diffs, confidence)
    return Interval(value, low, high)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval of a binomial proportion.

    Args:
        successes: Number of successes, ``0 <= successes <= n``.
        n: Number of trials, ``>= 1``.
        confidence: Coverage, in ``(0, 1)``.

    Returns:
        The observed rate ``successes / n`` and the Wilson interval (always inside ``[0, 1]``
        and never of zero width, even at 0 or ``n`` successes).
    """
    _check_confidence(confidence)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, {n}], got {successes}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z * np.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n)) / (1.0 + z2n)
    return Interval(p, max(0.0, float(centre - half)), min(1.0, float(centre + half)))


def newcombe_diff_interval(
    successes_a: int, n_a: int, successes_b: int, n_b: int, confidence: float = 0.95
) -> Interval:
    """Newcombe's hybrid score interval of the difference of two independent rates, ``a - b``.

    Method 10 of Newcombe (1998), "Interval estimation for the difference between independent
    proportions: comparison of eleven methods", Statistics in Medicine 17(8): each end combines
    the distances from each rate to the matching end of its Wilson interval
    (:func:`wilson_interval`). It keeps close to nominal coverage for small samples and rates
    at 0 or 1, where the Wald interval ``d +- z * se`` collapses to a point. The samples are
    treated as independent; for positively correlated samples (the same seeds under two
    conditions) the interval is conservative.

    Args:
        successes_a: Successes of sample ``a``, ``0 <= successes_a <= n_a``.
        n_a: Trials of sample ``a``, ``>= 1``.
        successes_b: Successes of sample ``b``.
        n_b: Trials of sample ``b``, ``>= 1``.
        confidence: Coverage, in ``(0, 1)``.

    Returns:
        ``successes_a / n_a - successes_b / n_b`` and its interval (inside ``[-1, 1]``).
    """
    a = wilson_interval(successes_a, n_a, confidence)
    b = wilson_interval(successes_b, n_b, confidence)
    d = a.value - b.value
    low = d - float(np.hypot(a.value - a.low, b.high - b.value))
    high = d + float(np.hypot(a.high - a.value, b.value - b.low))
    return Interval(d, max(-1.0, low), min(1.0, high))
