"""IQM and stratified bootstrap against hand-computed values, scipy and rliable."""

from __future__ import annotations

import numpy as np
import pytest

from mmrl.bench.aggregate import (
    NAN_ESTIMATE,
    bootstrap_ci,
    cell_row,
    estimate,
    iqm,
    mean,
    stratified_resample_indices,
    summarize_fusion_over_envs,
    summarize_group,
)


def test_iqm_of_one_to_eight_is_mean_of_middle_half():
    # 8 scores: cut 2 at each end -> mean(3, 4, 5, 6) = 4.5
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)  # order does not matter


def test_iqm_ignores_outlier_seeds():
    # 8 scores, cut 2 at each end: both 100s and both 0s go.
    assert iqm([0, 0, 1, 1, 1, 1, 100, 100]) == pytest.approx(1.0)
    # fewer than 4 scores: nothing is cut (scipy's floor(0.25 n) convention)
    assert iqm([1, 2, 9]) == pytest.approx(4.0)
    # 5 scores: cut 1 at each end -> mean(2, 3, 4)
    assert iqm([5, 1, 4, 2, 3]) == pytest.approx(3.0)


def test_iqm_matches_scipy_trim_mean_and_rliable():
    from scipy.stats import trim_mean

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 5, 7, 10, 13, 40):
        x = rng.normal(size=n)
        assert iqm(x) == pytest.approx(trim_mean(x, 0.25))
    matrix = rng.normal(size=(5, 3))
    rliable_metrics = pytest.importorskip("rliable.metrics")
    # axis=None pools every run of every task, as rliable's aggregate does
    assert iqm(matrix, axis=None) == pytest.approx(rliable_metrics.aggregate_iqm(matrix))
    # the vectorized form reduces each row like the scalar form
    rows = rng.normal(size=(6, 9))
    np.testing.assert_allclose(iqm(rows, axis=1), [iqm(r) for r in rows])


def test_iqm_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        iqm([])


def test_bootstrap_ci_on_constant_data_is_degenerate():
    est = bootstrap_ci([[0.7, 0.7, 0.7, 0.7]], reps=500)
    assert (est.value, est.low, est.high) == pytest.approx((0.7, 0.7, 0.7))
    one_seed = bootstrap_ci([[0.3]], reps=500)
    assert one_seed.low == one_seed.high == pytest.approx(0.3)


def test_bootstrap_ci_two_point_hand_computed():
    # Resamples of [0, 1] (2 draws): mean 0 w.p. 1/4, 0.5 w.p. 1/2, 1 w.p. 1/4.
    est = bootstrap_ci([[0.0, 1.0]], statistic=mean, reps=20_000, confidence=0.95)
    assert (est.value, est.low, est.high) == pytest.approx((0.5, 0.0, 1.0))
    # a 40% interval lies inside the central mass at 0.5
    narrow = bootstrap_ci([[0.0, 1.0]], statistic=mean, reps=20_000, confidence=0.4)
    assert (narrow.low, narrow.high) == pytest.approx((0.5, 0.5))


def test_stratified_bootstrap_resamples_within_each_task():
    # Task A all 0, task B all 1: a stratified resample always keeps 3 runs of each, so
    # the pooled mean is exactly 0.5 every time. Pooling the runs into one task (an
    # unstratified bootstrap) mixes them and the interval widens.
    tasks = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    stratified = bootstrap_ci(tasks, statistic=mean, reps=2000)
    assert stratified.low == stratified.high == pytest.approx(0.5)
    pooled = bootstrap_ci([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]], statistic=mean, reps=2000)
    assert pooled.low < 0.4 and pooled.high > 0.6
    rng = np.random.default_rng(1)
    indices = stratified_resample_indices([3, 5], reps=1000, rng=rng)
    assert [i.shape for i in indices] == [(1000, 3), (1000, 5)]
    assert indices[0].max() == 2 and indices[1].max() == 4 and indices[1].min() == 0


def test_bootstrap_ci_handles_unequal_task_sizes():
    est = bootstrap_ci([[0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], statistic=mean, reps=200)
    assert est.n == 6
    assert est.value == est.low == est.high == pytest.approx(4 / 6)


def test_bootstrap_ci_is_seeded_and_brackets_the_estimate():
    data = [[0.1, 0.5, 0.4, 0.9, 0.3]]
    a, b = bootstrap_ci(data, reps=3000, seed=3), bootstrap_ci(data, reps=3000, seed=3)
    assert a == b
    assert a.low <= a.value <= a.high and a.low < a.high


def _import_rliable_library():
    """rliable.library, working around an ``arch`` whose top-level ``__init__`` fails to
    import with newer pandas (rliable only needs ``arch.bootstrap``)."""
    import importlib
    import importlib.util
    import sys
    import types

    try:
        return importlib.import_module("rliable.library")
    except ImportError:
        pytest.skip("rliable is not installed (an optional cross-check: pip install rliable)")
    except TypeError:
        pass
    spec = importlib.util.find_spec("arch")
    for name in [m for m in sys.modules if m == "arch" or m.startswith(("arch.", "rliable"))]:
        del sys.modules[name]
    shim = types.ModuleType("arch")
    shim.__path__ = list(spec.submodule_search_locations)
    sys.modules["arch"] = shim
    try:
        return importlib.import_module("rliable.library")
    except Exception as err:
        pytest.skip(f"rliable.library cannot be imported here: {err}")


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_bootstrap_ci_matches_rliable_interval_estimates():
    library = _import_rliable_library()
    rliable_metrics = pytest.importorskip("rliable.metrics")
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=(5, 3))  # 5 runs x 3 tasks
    points, intervals = library.get_interval_estimates(
        {"x": scores},
        lambda s: np.array([rliable_metrics.aggregate_iqm(s)]),
        reps=20_000,
        random_state=np.random.RandomState(0),
    )
    ours = bootstrap_ci([scores[:, t] for t in range(3)], reps=20_000)
    assert ours.value == pytest.approx(points["x"][0])
    # Different random draws: the ends agree up to Monte Carlo error (~0.005 here).
    assert ours.low == pytest.approx(intervals["x"][0, 0], abs=0.015)
    assert ours.high == pytest.approx(intervals["x"][1, 0], abs=0.015)


def test_bad_bootstrap_arguments_are_refused():
    with pytest.raises(ValueError):
        bootstrap_ci([], reps=10)
    with pytest.raises(ValueError):
        bootstrap_ci([[1.0], []], reps=10)
    with pytest.raises(ValueError):
        bootstrap_ci([[1.0]], reps=10, confidence=1.5)
    assert estimate([[], []]) is NAN_ESTIMATE


def _record(fusion: str, seed: int, success: float, test: float | None, drop: float) -> dict:
    ev = {"train": {"success_rate": success, "mean_return": 10 * success}}
    if test is not None:
        ev["test"] = {"success_rate": test, "mean_return": 10 * test}
    return {
        "cell": {"env": "driving", "fusion": fusion, "seed": seed},
        "env_name": "driving",
        "steps": 100,
        "eval": ev,
        "steps_per_second": 50.0 + seed,
        "params": {"policy": 1234, "extractor": 1000},
        "ablation": {
            "none": {"success_rate": success, "mean_return": 10 * success},
            "camera": {"success_rate": success - drop, "mean_return": 10 * (success - drop)},
        },
    }


def test_cell_rows_and_group_summary_by_hand():
    records = [_record("concat", s, v, v - 0.2, d) for s, (v, d) in
               enumerate([(0.5, 0.1), (0.7, 0.3), (0.9, 0.2)])]  # fmt: skip
    rows = [cell_row(r) for r in records]
    assert rows[1]["generalization_gap"] == pytest.approx(0.2)
    assert rows[1]["delta_success_without_camera"] == pytest.approx(-0.3)
    assert rows[1]["delta_return_without_camera"] == pytest.approx(-3.0)
    summary = summarize_group(rows, reps=1000)
    assert summary["seeds"] == 3
    assert summary["success"].value == pytest.approx(0.7)  # 3 seeds: IQM = mean
    assert summary["test_success"].value == pytest.approx(0.5)
    assert summary["generalization_gap"].value == pytest.approx(0.2)
    assert summary["generalization_gap"].low == pytest.approx(0.2)  # constant gap
    assert summary["delta_success_without_camera"].value == pytest.approx(-0.2)
    assert summary["steps_per_second"] == pytest.approx(51.0)
    assert summary["params"] == 1234


def test_group_summary_without_test_split_is_not_a_number():
    rows = [cell_row(_record("mean", s, 0.5, None, 0.0)) for s in range(2)]
    summary = summarize_group(rows, reps=100)
    assert np.isnan(summary["test_success"].value)
    assert summary["test_success"].fmt() == "n/a"
    assert rows[0]["generalization_gap"] is None


def test_fusion_over_envs_is_stratified_by_env():
    rows = [{"env": "a", "success": 0.0}] * 3 + [{"env": "b", "success": 1.0}] * 3
    est = summarize_fusion_over_envs(rows, reps=500)
    assert est.value == pytest.approx(0.5)  # 6 runs, IQM cuts one 0 and one 1
    assert est.low == est.high == pytest.approx(0.5)


def test_separated_pairs_are_those_whose_intervals_do_not_overlap():
    from mmrl.bench.aggregate import Interval, separated_pairs

    estimates = {
        "film": Interval(0.9, 0.85, 0.95, 3),
        "concat": Interval(0.7, 0.6, 0.8, 3),
        "mean": Interval(0.75, 0.7, 0.85, 3),  # touches film's low end: overlapping
        "gated": Interval(0.3, 0.2, 0.4, 3),
        "attention": Interval(0.99, 0.99, 0.99, 1),  # one seed: left out
        "perceiver": Interval(float("nan"), float("nan"), float("nan"), 0),
    }
    assert separated_pairs(estimates) == [
        ("film", "concat"), ("film", "gated"), ("mean", "gated"), ("concat", "gated"),
    ]  # fmt: skip
    same = Interval(0.5, 0.4, 0.6, 3)
    assert separated_pairs({"a": same, "b": same}) == []


def test_cell_row_takes_the_cells_own_final_evaluation_over_the_periodic_one():
    """A record's ``final`` (its own, larger evaluation) gives the success columns; records
    written before it existed fall back to the ablation pass's unablated policy (train) and
    the run's last periodic evaluation (test), and the row says how many episodes each is."""
    record = _record("film", 0, 0.97, 0.9, 0.5)  # periodic: 0.97 / 0.9 on 32 episodes
    record["eval_episodes"] = 32
    for split in ("train", "test"):
        record["eval"][split]["episodes"] = 32
    record["ablation"]["none"].update(episodes=200, success_rate=0.84)
    old = cell_row(record)
    assert (old["success"], old["success_episodes"]) == (pytest.approx(0.84), 200)
    assert (old["test_success"], old["test_success_episodes"]) == (pytest.approx(0.9), 32)
    assert old["delta_success_without_camera"] == pytest.approx(0.47 - 0.84)

    summary = {"episodes": 200, "success_rate": 0.8, "mean_return": 5.0,
               "by_group": {"cone": {"episodes": 50, "success_rate": 0.5}}}  # fmt: skip
    record["final"] = {"train": summary, "test": {**summary, "success_rate": 0.6}}
    new = cell_row(record)
    assert (new["success"], new["return"], new["success_episodes"]) == (0.8, 5.0, 200)
    assert (new["test_success"], new["test_success_episodes"]) == (0.6, 200)
    assert new["generalization_gap"] == pytest.approx(0.2)
    assert new["group_success_cone"] == new["test_group_success_cone"] == 0.5
