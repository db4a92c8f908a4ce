import numpy as np
import pytest
import scipy.stats

from mmrl.evaluation.stats import (
    Interval,
    bootstrap_ci,
    bootstrap_diff_ci,
    bootstrap_distribution,
    iqm,
    newcombe_diff_interval,
    trimmed_mean,
    wilson_interval,
)
from mmrl.evaluation.stats import mean as stats_mean


@pytest.mark.parametrize("n", [1, 3, 4, 7, 10, 101])
def test_iqm_matches_scipy_trim_mean(n):
    x = np.random.default_rng(n).standard_cauchy(n)
    assert iqm(x) == pytest.approx(scipy.stats.trim_mean(x, 0.25))
    assert trimmed_mean(x, 0.1) == pytest.approx(scipy.stats.trim_mean(x, 0.1))


def test_iqm_matches_rliable_and_ignores_outliers():
    rliable_metrics = pytest.importorskip("rliable.metrics")
    x = np.concatenate([np.arange(20.0), [1e6]])
    assert iqm(x) == pytest.approx(rliable_metrics.aggregate_iqm(x[:, None]))
    assert abs(iqm(x) - 10.0) < 1.0 and x.mean() > 1e4
    assert iqm(np.array([0.0, 0.0, 0.0, 1e6])) == 0.0


def test_iqm_rowwise_on_batches():
    x = np.random.default_rng(0).normal(size=(5, 12))
    expected = [scipy.stats.trim_mean(row, 0.25) for row in x]
    np.testing.assert_allclose(iqm(x), expected)


def test_bootstrap_ci_contains_estimate_is_seeded_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=20), rng.normal(size=2000)
    a = bootstrap_ci(small, "mean", rng=1)
    assert a.low < a.value < a.high and a.value == pytest.approx(small.mean())
    assert bootstrap_ci(small, "mean", rng=1) == a
    b = bootstrap_ci(large, "mean", rng=1)
    assert (b.high - b.low) < (a.high - a.low) / 5
    c = bootstrap_ci(small, "iqm", rng=1)
    assert c.value == pytest.approx(scipy.stats.trim_mean(small, 0.25))


def test_bootstrap_ci_of_constant_sample_has_zero_width():
    ci = bootstrap_ci(np.full(30, 2.5), "iqm")
    assert (ci.value, ci.low, ci.high) == (2.5, 2.5, 2.5)


def test_bootstrap_mean_interval_has_nominal_coverage():
    # 300 repetitions: the 95 % interval of a normal mean must cover the truth 88-99 % of the
    # time (the binomial 99.9 % range around 0.95 for 300 draws is about 0.91-0.98; percentile
    # intervals undercover slightly at n = 40).
    rng = np.random.default_rng(123)
    covered = sum(
        ci.low <= 1.0 <= ci.high
        for ci in (
            bootstrap_ci(rng.normal(1.0, 2.0, size=40), "mean", n_resamples=400, rng=rng)
            for _ in range(300)
        )
    )
    assert 0.88 <= covered / 300 <= 0.99


def test_bootstrap_distribution_in_chunks_matches_shape(monkeypatch):
    import mmrl.evaluation.stats as stats

    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 50)  # forces many chunks
    samples = bootstrap_distribution(np.arange(20.0), "mean", n_resamples=37, rng=0)
    assert samples.shape == (37,) and samples.min() > 0 and samples.max() < 19


def test_bootstrap_diff_ci_recovers_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=500)
    d = bootstrap_diff_ci(a, a + 1.0, "mean", rng=0)
    assert d.value == pytest.approx(1.0)
    assert d.low < 1.0 < d.high
    same = bootstrap_diff_ci(a, rng.normal(size=500), "iqm", rng=0)
    assert same.low < 0.0 < same.high


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (81, 100, 0.7222, 0.8749),
    ],
)
def test_wilson_interval_known_values(k, n, low, high):
    iv = wilson_interval(k, n)
    assert iv.value == k / n
    assert iv.low == pytest.approx(low, abs=1e-4) and iv.high == pytest.approx(high, abs=1e-4)


def test_wilson_interval_rejects_bad_counts():
    with pytest.raises(ValueError, match="n must be >= 1"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="successes must be in"):
        wilson_interval(3, 2)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.0)


def test_bootstrap_rejects_empty_and_unknown_statistic():
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci(np.array([]))
    with pytest.raises(ValueError, match="unknown statistic"):
        bootstrap_ci(np.ones(3), "median")


@pytest.mark.parametrize(
    ("a", "n_a", "b", "n_b", "low", "high"),
    [
        # Newcombe (1998), Table II, method 10.
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0),
    ],
)
def test_newcombe_interval_matches_the_published_values(a, n_a, b, n_b, low, high):
    iv = newcombe_diff_interval(a, n_a, b, n_b)
    assert iv.value == pytest.approx(a / n_a - b / n_b)
    assert (iv.low, iv.high) == pytest.approx((low, high), abs=1e-4)


def test_newcombe_interval_is_antisymmetric_and_excludes_zero_for_clear_drops():
    ab, ba = newcombe_diff_interval(30, 40, 12, 40), newcombe_diff_interval(12, 40, 30, 40)
    assert (ab.value, ab.low, ab.high) == pytest.approx((-ba.value, -ba.high, -ba.low))
    assert ab.low > 0
    same = newcombe_diff_interval(4, 4, 4, 4)
    assert same.value == 0.0 and same.low < 0 < same.high
    with pytest.raises(ValueError, match="n must be >= 1"):
        newcombe_diff_interval(0, 0, 1, 2)


# Numbers recorded from the two statistics modules before they became one (issue 14): the
# shared module must give exactly these, for evaluate's per-episode intervals and bench's
# stratified ones alike.
SAMPLE = np.array([0.0, 1.0, 0.5, 2.0, 3.5, -1.0, 0.25, 4.0, 1.5, 0.75])
OTHER = np.array([1.0, 2.0, 0.0, 3.0, 2.5, 1.25])
RECORDED = {
    ("ci", "mean"): (1.25, 0.31187500000000024, 2.075),
    ("ci", "iqm"): (1.0, 0.25, 2.1885416666666657),
    ("diff", "mean"): (0.375, -0.8420833333333332, 1.567083333333333),
    ("diff", "iqm"): (0.6875, -1.0, 1.8552083333333325),
}


@pytest.mark.parametrize(("kind", "statistic"), sorted(RECORDED))
def test_episode_intervals_are_unchanged(kind, statistic):
    if kind == "ci":
        interval = bootstrap_ci(SAMPLE, statistic, n_resamples=500, rng=3)
    else:
        interval = bootstrap_diff_ci(SAMPLE, OTHER, statistic, n_resamples=500, rng=3)
    assert (interval.value, interval.low, interval.high) == pytest.approx(
        RECORDED[kind, statistic], rel=1e-12, abs=1e-12
    )


def test_rate_intervals_are_unchanged():
    w = wilson_interval(3, 10)
    assert (w.value, w.low, w.high) == pytest.approx((0.3, 0.10779126740630102, 0.6032218525388546))
    d = newcombe_diff_interval(7, 10, 3, 12)
    assert (d.value, d.low, d.high) == pytest.approx(
        (0.45, 0.03570566744276171, 0.7007667901955255)
    )


def test_bench_stratified_intervals_are_unchanged_and_use_these_statistics():
    from mmrl.bench import aggregate

    # One definition: bench's names are this module's.
    assert aggregate.iqm is iqm and aggregate.mean is stats_mean and aggregate.Estimate is Interval
    assert iqm(SAMPLE) == 1.0 and iqm(SAMPLE, axis=None) == 1.0 and stats_mean(SAMPLE) == 1.25
    tasks = [[0.1, 0.9, 0.5, 0.7], [0.2, 0.4], [1.0, 0.0, 0.3]]
    recorded = {
        iqm: (0.41999999999999993, 0.18000000000000002, 0.72),
        stats_mean: (0.4555555555555556, 0.2555555555555556, 0.6777777777777777),
    }
    for statistic, expected in recorded.items():
        est = aggregate.bootstrap_ci(tasks, statistic, reps=1000, seed=5)
        assert (est.value, est.low, est.high) == pytest.approx(expected, rel=1e-12)
        assert est.n == 9
    est = aggregate.estimate([[0.5, 0.25, 1.0, 0.75, 0.0], []], reps=2000, seed=0)
    assert (est.value, est.low, est.high, est.n) == pytest.approx(
        (0.5, 0.08333333333333333, 0.9166666666666666, 5)
    )
    assert est.fmt() == "0.50 [0.08, 0.92]" and aggregate.NAN_ESTIMATE.fmt() == "n/a"
