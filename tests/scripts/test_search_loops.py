"""``docs/bench/navigation-query-1m/search_loops.py``: every episode gets one ending class,
and the counts follow the rooms the robot was in."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "docs/bench/navigation-query-1m/search_loops.py"


@pytest.fixture(scope="module")
def search_loops():
    spec = importlib.util.spec_from_file_location("search_loops", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["search_loops"] = module
    spec.loader.exec_module(module)
    return module


def test_the_table_has_every_count_when_no_episode_succeeds(search_loops, monkeypatch, capsys):
    monkeypatch.setattr(search_loops, "summarize", lambda records: {
        "success": {"share": 0.0},
        "timeout, never lit": {"share": 1.0, "steps": 100.0},
        "timeout, target lit": {"share": 0.0},
        "wrong stop": {"share": 0.0},
    })  # fmt: skip
    monkeypatch.setattr(search_loops, "roll", lambda *args: [])
    assert search_loops.main(["random", "--episodes", "4"]) == 0
    printed = capsys.readouterr().out
    assert "| episodes | share | steps |" in printed
    assert "| success | 0 | nan |" in printed and "| timeout, never lit | 1 | 100 |" in printed


def test_expert_and_random_searches(search_loops, monkeypatch):
    monkeypatch.setattr(search_loops, "N_ENVS", 8)
    expert = search_loops.roll("expert", "train", 16)
    assert len(expert) == 16
    assert all(r["outcome"] == "success" for r in expert)
    for r in expert:
        # the expert stops next to the named object (reach 0.8 m from its centre)
        assert r["closest_to_target"] < 1.0 and r["steps"] < 100
        assert (
            0 <= r["other_lit"] <= r["other_objects"] <= r["other_lightings"] + r["other_objects"]
        )
    random = search_loops.roll("random", "train", 16)
    assert {r["outcome"] for r in random} <= set(search_loops.CLASSES)
    timeouts = [r for r in random if r["outcome"].startswith("timeout")]
    assert timeouts and all(r["steps"] == 100 for r in timeouts)
    # a random walk of 100 steps lights some other object in some episode
    assert any(r["other_lightings"] > 0 and r["other_lit_steps"] > 0 for r in random)
    never_lit = [r for r in random if r["outcome"] == "timeout, never lit"]
    summary = search_loops.summarize(random)
    assert sum(row["share"] for row in summary.values()) == pytest.approx(1.0, abs=0.01)
    assert summary["timeout, never lit"]["share"] == pytest.approx(len(never_lit) / 16, abs=1e-3)
