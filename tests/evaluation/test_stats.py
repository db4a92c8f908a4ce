import numpy as np
import pytest
import scipy.stats

from mmrl.evaluation.stats import (
    bootstrap_ci,
    bootstrap_diff_ci,
    bootstrap_distribution,
    iqm,
    newcombe_diff_interval,
    trimmed_mean,
    wilson_interval,
)


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
