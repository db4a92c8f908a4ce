"""scripts/compare_agents.py: per-seed, pooled and difference rows, the figure, bad input."""

from __future__ import annotations

import json


def _run(folder, seed, train_wins, test_wins, episodes=100):
    run = folder / f"navigation-s{seed}"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{}")  # RunFolder.finished
    rows = [{"step": s, "train": {"success_rate": s / 3e5}, "test": {"success_rate": s / 4e5}}
            for s in (50_000, 100_000, 150_000)]  # fmt: skip
    (run / "evaluations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = [{"split": split, "condition": "clean", "episodes": episodes,
                "success_rate": {"value": wins / episodes, "low": 0.0, "high": 1.0}}
               for split, wins in (("train", train_wins), ("test", test_wins))]  # fmt: skip
    (run / "final_eval.json").write_text(json.dumps({"results": results}))


def test_rows_pool_seeds_and_difference_to_the_first_agent(load_script, tmp_path, capsys):
    script = load_script("compare_agents")
    for seed, (a, b) in enumerate([(40, 30), (50, 40)]):
        _run(tmp_path / "a", seed, a, b)
        _run(tmp_path / "b", seed, a + 20, b + 20)
    png, out = tmp_path / "cmp.png", tmp_path / "rows.json"
    code = script.main([f"A={tmp_path / 'a'}", f"B={tmp_path / 'b'}", "--out", str(png),
                        "--json", str(out)])  # fmt: skip
    assert code == 0 and png.stat().st_size > 0
    rows = json.loads(out.read_text())
    by = {(r["agent"], r["split"]): r for r in rows}
    assert by["A", "train"]["seeds"] == [0.4, 0.5]
    assert by["A", "train"]["pooled"]["value"] == 0.45 and by["A", "train"]["episodes"] == 200
    assert "diff" not in by["A", "train"]
    diff = by["B", "test"]["diff"]
    assert abs(diff["value"] - 0.2) < 1e-9 and 0.0 < diff["low"] < 0.2 < diff["high"]
    assert "| B | test | 0.50, 0.60 | 0.55" in capsys.readouterr().out


def test_missing_runs_or_final_evaluations_are_one_line_and_status_2(load_script, tmp_path, capsys):
    script = load_script("compare_agents")
    assert script.main([f"A={tmp_path / 'none'}"]) == 2
    assert "expected NAME=DIR with finished navigation-s<seed> runs" in capsys.readouterr().err
    _run(tmp_path / "a", 0, 10, 10)
    (tmp_path / "a" / "navigation-s0" / "final_eval.json").unlink()
    assert script.main([f"A={tmp_path / 'a'}"]) == 2
    assert "no final_eval.json in ['navigation-s0']" in capsys.readouterr().err
