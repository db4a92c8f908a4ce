"""The censoring arithmetic of ``scripts/pretrain_vs_scratch.py`` (steps to a success bar)."""

import pytest


@pytest.fixture(scope="module")
def pvs(load_script):
    return load_script("pretrain_vs_scratch")


def run(seed: int, successes: list[float], step: int = 50_000) -> dict:
    history = [
        {"step": step * (i + 1), "train": {"success_rate": rate}}
        for i, rate in enumerate(successes)
    ]
    return {"seed": seed, "history": history, "last_step": history[-1]["step"]}


def test_steps_to_threshold_is_the_first_evaluation_at_or_above_it(pvs):
    history = run(0, [0.5, 0.8, 0.7, 0.9])["history"]
    assert pvs.steps_to_threshold(history, "train", 0.8) == 100_000
    assert pvs.steps_to_threshold(history, "train", 0.95) is None
    assert pvs.steps_to_threshold(history, "test", 0.5) is None  # split never evaluated


def test_median_counts_censored_runs_at_their_last_evaluation(pvs):
    runs = [run(0, [0.2, 0.9]), run(1, [0.2, 0.3, 0.4, 0.5]), run(2, [0.1, 0.2, 0.85])]
    for r in runs:
        r["steps_to_threshold"] = {"train": pvs.steps_to_threshold(r["history"], "train", 0.8)}
    median, censored, per_seed = pvs.arm_steps(runs, "train")
    assert median == 150_000 and not censored  # 100k, >200k, 150k
    assert per_seed == "s0 100k, s1 >200k, s2 150k"
    # Two of three censored: the median is only a lower bound.
    runs[0]["steps_to_threshold"]["train"] = None
    median, censored, _ = pvs.arm_steps(runs, "train")
    assert median == 150_000 and censored
