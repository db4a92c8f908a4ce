"""``scripts/bench_ope.py --quick`` on tiny sizes: the DOPE scores and files it writes."""

import json

import numpy as np
import pytest


@pytest.mark.slow
def test_bench_ope_quick_smoke(tmp_path, load_script, capsys, monkeypatch):
    bench = load_script("bench_ope")
    out = tmp_path / "ope"
    # The script points MINARI_DATASETS_PATH at its cache; restore it after the test.
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    scores = bench.main(["--quick", "--online-episodes", "3", "--dataset-episodes", "4",
                         "--fqe-iters", "2", "--fqe-steps", "2", "--bootstrap", "10",
                         "--out", str(out)])  # fmt: skip
    written = json.loads((out / "ope.json").read_text())
    assert written == json.loads(json.dumps(scores))
    assert set(written) == {"navigation"} and set(written["navigation"]) == {"broad", "narrow"}
    for per_est in written["navigation"].values():
        assert set(per_est) == set(bench.ESTIMATORS)
        for s in per_est.values():
            assert set(s) == {"spearman", "regret_at_1", "abs_error"}
            assert 0.0 <= s["regret_at_1"] <= 1.0
    assert "| broad | fqe |" in (out / "summary.md").read_text()
    assert "spearman" in capsys.readouterr().out


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
