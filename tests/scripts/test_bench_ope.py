"""``scripts/bench_ope.py --quick`` on tiny sizes: the DOPE scores and files it writes."""

import json

import numpy as np
import pytest


@pytest.mark.slow
def test_bench_ope_quick_smoke(tmp_path, load_script, capsys, monkeypatch):
    """Builds the whole pool on tiny sizes (BC, PPO checkpoints, masked) and scores it."""
    bench = load_script("bench_ope")
    out = tmp_path / "ope"
    # The script points MINARI_DATASETS_PATH at its cache; restore it after the test.
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    argv = ["--quick", "--online-episodes", "3", "--dataset-episodes", "4", "--fqe-iters", "2",
            "--fqe-steps", "2", "--bootstrap", "10", "--bc-epochs", "1,2", "--bc-batch-size",
            "32", "--ppo-steps", "4096", "--mask", "camera,text", "--out", str(out),
            "--datasets", ",".join(bench.DATASETS)]  # fmt: skip
    scores = bench.main(argv)
    written = json.loads((out / "ope.json").read_text())
    assert written == json.loads(json.dumps(scores))
    assert set(written) == {"navigation"}
    assert set(written["navigation"]) == {"broad", "narrow", "mixed", "spread", "replay"}
    for per_est in written["navigation"].values():
        assert set(per_est) == set(bench.ESTIMATORS)
        for s in per_est.values():
            assert set(s) == {"spearman", "regret_at_1", "abs_error"}
            assert 0.0 <= s["regret_at_1"] <= 1.0
    details = json.loads((out / "details.json").read_text())["navigation"]
    pool = details["pool"]
    kinds = [m["kind"] for m in pool.values()]
    assert kinds.count("expert") == len(bench.POOL_EPSILONS)
    assert kinds.count("bc") == 2
    # 4096 steps, a checkpoint every third: at the rollout after 1365 steps (2048) and the end.
    assert [label for label in pool if pool[label]["kind"] == "ppo"] == ["ppo-2048", "ppo-4096"]
    masked = [label for label in pool if pool[label]["kind"] == "masked"]
    learned = [label for label in pool if pool[label]["kind"] in ("bc", "ppo")]
    best = max(learned, key=details["true_returns"].get)
    assert masked == [f"{best}-no-camera", f"{best}-no-text"]
    # The mixed log: the broad data's first half and a learner's episodes, not in the pool.
    mixed = details["mixed"]
    assert mixed["episodes"] == 4 and mixed["dataset"].startswith(details["broad"]["dataset"])
    assert "learner-bc3" in mixed["dataset"] and "learner" not in " ".join(pool)
    assert "sampled" in mixed["behaviour"] and "expert" in mixed["behaviour"]
    assert np.isfinite(details["learner"]["true_return"])
    # The spread log: the expert at each of SPREAD_EPSILONS (none a pool member's, each from
    # other scenes) and the learner's first episodes, in equal parts of at least 2.
    spread = details["spread"]
    parts = spread["dataset"].split(",")
    assert len(parts) == len(bench.SPREAD_EPSILONS) + 1 and "learner-bc3" in parts[-1]
    assert all(f"-e{round(100 * e)}-" in part for part, e in zip(parts, bench.SPREAD_EPSILONS))
    assert not set(bench.SPREAD_EPSILONS) & set(bench.POOL_EPSILONS)
    assert spread["episodes"] == 2 * len(parts)
    assert "sampled" in spread["behaviour"] and "0.9" in spread["behaviour"]
    # The replay log: the spread log's parts and the BC start and PPO checkpoints of the pool's
    # recipe run again with another seed (none of them in the pool), in equal parts of >= 2.
    replay = details["replay"]
    replay_parts = replay["dataset"].split(",")
    assert replay_parts[: len(parts)] == parts
    assert [p.split("/")[-1] for p in replay_parts[len(parts) :]] == [
        "replay-bc-e2-n2-v0", "replay-2048-n2-v0", "replay-4096-n2-v0"]  # fmt: skip
    assert replay["episodes"] == 2 * len(replay_parts)
    assert set(details["replay_behaviour"]) == {"replay-bc-e2", "replay-2048", "replay-4096"}
    assert not set(details["replay_behaviour"]) & set(pool)
    assert all(np.isfinite(b["true_return"]) for b in details["replay_behaviour"].values())
    assert all("seed30000" in b["ref"] for b in details["replay_behaviour"].values())
    for name in bench.DATASETS:
        for est in bench.ESTIMATORS:
            values = details[name]["estimates"][est]
            # Every learned member has exact target probabilities: every estimate exists.
            for label in learned + masked:
                assert np.isfinite(values[label]["value"]), (name, est, label)
    summary = (out / "summary.md").read_text()
    assert "| broad | fqe |" in summary and f"| {best}-no-camera | masked |" in summary
    assert "spread: equal parts of the expert at epsilon 0.05, 0.3, 0.6, 0.9" in summary
    assert "replay: the spread log's parts and the BC start and PPO checkpoints" in summary
    assert "FQE on the data features, 1 Q-head(s)" in summary  # --quick's FQE setting
    assert "spearman" in capsys.readouterr().out

    # A rerun reuses everything built: no pretraining, training or online episodes again.
    def no_online(*args, **kwargs):
        raise AssertionError("the rerun measured a true return again instead of its cache")

    monkeypatch.setattr(bench, "online_returns", no_online)
    assert json.dumps(bench.main(argv)) == json.dumps(scores)  # same data, same seeds
    printed = capsys.readouterr().out
    assert "pretraining" not in printed and "PPO from" not in printed


def test_dope_scores(load_script):
    bench = load_script("bench_ope")
    truth = np.array([0.0, 1.0, 2.0, 4.0])
    perfect = bench.dope_scores(truth.copy(), truth)
    assert perfect == {"spearman": 1.0, "regret_at_1": 0.0, "abs_error": 0.0}
    flipped = bench.dope_scores(truth[::-1].copy(), truth)
    assert flipped["spearman"] == pytest.approx(-1.0)
    assert flipped["regret_at_1"] == pytest.approx(1.0)  # picks the worst: regret = range
    assert flipped["abs_error"] == pytest.approx((4 + 1 + 1 + 4) / 4 / 4)
    partial = bench.dope_scores(np.array([0.0, np.nan, 2.0, 1.0]), truth)
    assert partial["regret_at_1"] == pytest.approx(0.5)  # ranks policy 2 (true 2.0) first


def test_unknown_dataset_is_refused(load_script, tmp_path, capsys):
    """``--datasets`` picks among the script's datasets; anything else exits 2 naming them."""
    bench = load_script("bench_ope")
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--datasets", "broad,wide", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "wide" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--ppo-steps", "0"], ["--bc-epochs", ""]])
def test_replay_needs_its_run(load_script, tmp_path, capsys, argv):
    """The replay log's behaviour is a BC policy and a PPO run from it: without BC epochs or
    PPO steps it exits 2 saying so."""
    bench = load_script("bench_ope")
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--datasets", "replay", *argv, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--ppo-steps > 0 and --bc-epochs" in capsys.readouterr().err
