"""``scripts/bench_fusions_grounded.sh --dry-run``: the steps it would run, its settings."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_fusions_grounded.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

SETTINGS = ("STEPS", "SEEDS", "WORKERS", "EPISODES", "EPOCHS", "ABLATION_EPISODES", "DEVICE",
            "FUSIONS", "ADOPT_ENCODERS", "MMRL")  # fmt: skip


def run(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update({"DATA": str(tmp_path / "data"), **settings})
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60
    )


def bench_line(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("+ mmrl bench"))


def test_dry_run_lists_every_step_and_writes_nothing(tmp_path):
    result = run(tmp_path, "--dry-run", "driving", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("+ mmrl collect") for line in lines) == 2
    assert sum(line.startswith("+ mmrl pretrain") for line in lines) == 6
    bench = bench_line(result.stdout)
    assert "--pretrained-dir" in bench and "--adopt-encoders" not in bench
    assert not (tmp_path / "data").exists() and not (tmp_path / "out").exists()


def test_adopt_encoders_is_passed_on_and_checked(tmp_path):
    result = run(tmp_path, "--dry-run", "driving", str(tmp_path / "out"), ADOPT_ENCODERS="1")
    assert result.returncode == 0, result.stderr
    assert bench_line(result.stdout).endswith("--adopt-encoders")
    bad = run(tmp_path, "--dry-run", ADOPT_ENCODERS="yes")
    assert bad.returncode == 2
    assert "ADOPT_ENCODERS must be 0 or 1, got 'yes'" in bad.stderr
