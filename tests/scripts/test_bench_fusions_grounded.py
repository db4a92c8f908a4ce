"""``scripts/bench_fusions_grounded.sh``: the steps it runs per env, its refusals, and one tiny
real sitting (datasets, an encoder, a bench cell) that a second sitting resumes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_fusions_grounded.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

SETTINGS = ("STEPS", "SEEDS", "FUSIONS", "WORKERS", "EPISODES", "EPOCHS", "DATA", "DEVICE",
            "ABLATION_EPISODES", "ADOPT_ENCODERS")  # fmt: skip


def run(*args: str, timeout: float = 60, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    # The mmrl of this interpreter, whatever PATH holds.
    env["MMRL"] = f"{Path(sys.executable).parent / 'mmrl'}"
    env.update(settings)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def set_overrides(command: str) -> list[str]:
    """The ``--set`` values of a printed command, in order."""
    return [part.split(" ")[0] for part in command.split(" --set ")[1:]]


def test_dry_run_driving_pretrains_every_fusion_on_the_lane_label(tmp_path):
    result = run("--dry-run", "driving", str(tmp_path / "out"), DATA=str(tmp_path / "d"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count(" collect ") == 2 and "--env driving-follow" in out
    for fusion in ("concat", "mean", "gated", "film", "attention", "perceiver"):
        assert f"--agent ppo-{fusion} --objectives bc,labels --labels target_lane_offset" in out
    bench = next(line for line in out.splitlines() if " bench " in line)
    assert "--seeds 3 --steps 1000000" in bench
    assert "agent.guidance.weight=1" in bench and "agent.init.init_policy_head=true" in bench
    assert f"--pretrained-dir {tmp_path / 'd'}/encoders" in bench
    assert "--adopt-encoders" not in bench
    assert "critic_warmup" not in bench  # Driving's recipe has no critic warm-up
    # The same overrides, in the same order, as the committed grid's protocol: otherwise
    # `mmrl bench` refuses to resume docs/bench/fusions-grounded-driving.
    overrides = set_overrides(bench)
    committed = json.loads((ROOT / "docs/bench/fusions-grounded-driving/bench.json").read_text())
    assert overrides == committed["protocol"]["overrides"]
    assert not (tmp_path / "d").exists() and not (tmp_path / "out").exists()  # wrote nothing


def test_adopt_encoders_is_passed_on_to_the_bench(tmp_path):
    result = run("--dry-run", "driving", str(tmp_path / "out"), DATA=str(tmp_path / "d"),
                 ADOPT_ENCODERS="1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    bench = next(line for line in result.stdout.splitlines() if " bench " in line)
    assert bench.endswith(" --adopt-encoders")


def test_dry_run_navigation_uses_the_readme_recipe(tmp_path):
    result = run("--dry-run", "navigation", str(tmp_path / "out"), DATA=str(tmp_path / "d"),
                 FUSIONS="film", STEPS="5000")  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count(" collect ") == 1
    pretrain = next(line for line in out.splitlines() if " pretrain " in line)
    # `mmrl pretrain`'s default objectives on every label, 40 epochs, default patience.
    assert " --agent ppo-film --epochs 40 --threads 1 " in pretrain
    assert "--objectives" not in pretrain and "--labels" not in pretrain
    assert "--patience" not in pretrain
    bench = next(line for line in out.splitlines() if " bench " in line)
    assert "agent.guidance" not in bench  # no label or expert guidance
    overrides = set_overrides(bench)
    assert overrides == ["agent.init.init_policy_head=true",
                         "agent.init.critic_warmup_steps=50000", "eval_freq=100000",
                         "eval_episodes=32"]  # fmt: skip
    assert "--fusions film --seeds 3 --steps 5000" in bench


@pytest.mark.parametrize(
    ("args", "settings", "message"),
    [
        (["walking"], {}, "ENV must be driving or navigation, got 'walking'"),
        (["driving"], {"STEPS": "1e6"}, "STEPS must be a whole number >= 1, got '1e6'"),
        (["driving"], {"WORKERS": "0"}, "WORKERS must be a whole number >= 1"),
        (["driving", "out", "extra"], {}, "at most ENV and OUT"),
        (["driving"], {"ADOPT_ENCODERS": "yes"}, "ADOPT_ENCODERS must be 0 or 1, got 'yes'"),
    ],
)
def test_bad_settings_exit_2_with_one_line(tmp_path, args, settings, message):
    result = run("--dry-run", *args, DATA=str(tmp_path / "d"), **settings)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_tiny_sitting_runs_end_to_end_and_the_next_one_resumes(tmp_path):
    small = {"STEPS": "256", "SEEDS": "1", "FUSIONS": "concat", "EPISODES": "20", "EPOCHS": "1",
             "ABLATION_EPISODES": "2", "WORKERS": "1", "DATA": str(tmp_path / "data")}  # fmt: skip
    out = tmp_path / "out"
    first = run("driving", str(out), timeout=600, **small)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (tmp_path / "data" / "encoders" / "driving-concat.pt").is_file()
    record = json.loads((out / "cells" / "driving-concat-s0" / "cell.json").read_text())
    assert record["protocol"]["pretrained"].keys() == {"driving-concat.pt"}
    assert set(record["ablation"]) >= {"camera", "lidar", "text"}
    second = run("driving", str(out), timeout=600, **small)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "= dataset mmrl/grounded/driving-all-v1 exists" in second.stdout
    assert "= encoder" in second.stdout and " pretrain " not in second.stdout
    assert "1 already finished, 0 to run" in second.stdout + second.stderr
