"""Argument and setting handling of ``scripts/gpu_check.sh`` through ``--dry-run`` (no GPU)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run(*args: str, **settings: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GPU_") and k not in ("OUT", "STEPS", "PYTHON")
    }
    env.update(settings)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_dry_run_lists_phase_one_and_no_bench_by_default():
    result = run("--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "bench off" in out
    for step in ("[import,", "[cuda,", "[cuda-tests,", "[gpu_check.py,", "[bench_pretrain.py,"):
        assert step in out
    assert "pytest -q -m gpu" in out and "--steps 16384" in out
    assert "mmrl bench" not in out
    # No index there: any install is offline (the wheels of .whl/, when that folder exists).
    assert all("--no-index" in line for line in out.splitlines() if "pip install" in line)


def test_dry_run_bench_phase_on_cuda_with_all_but_one_core():
    result = run(
        "--dry-run",
        GPU_BENCH_STEPS="2048",
        GPU_BENCH_FUSIONS="all",
        GPU_BENCH_ARGS="--no-ablation --set eval_episodes=4",
        OMP_NUM_THREADS="1",
    )
    assert result.returncode == 0, result.stderr
    workers = max(1, len(os.sched_getaffinity(0)) - 1)  # OMP_NUM_THREADS must not count
    bench = re.search(
        r"-m mmrl bench --envs driving\\,navigation --fusions all --seeds 1 --steps 2048 "
        rf"--device cuda --workers {workers} --out (/tmp/mmrl-gpu-bench-\d+) --no-ablation "
        r"--set eval_episodes=4",
        result.stdout,
    )
    assert bench, result.stdout
    assert "bench.tar.gz" in result.stdout
    # Another protocol gets another folder (mmrl bench refuses to mix them); the same resumes.
    again = run(
        "--dry-run", GPU_BENCH_STEPS="2048", GPU_BENCH_ARGS="--no-ablation --set eval_episodes=4"
    )
    other = run(
        "--dry-run", GPU_BENCH_STEPS="4096", GPU_BENCH_ARGS="--no-ablation --set eval_episodes=4"
    )
    assert bench[1] in again.stdout and bench[1] not in other.stdout


def test_bench_alone_on_cpu_skips_the_cuda_check():
    result = run(
        "--dry-run",
        GPU_CHECK_BASE="0",
        GPU_BENCH_STEPS="256",
        GPU_BENCH_DEVICE="cpu",
        GPU_BENCH_WORKERS="3",
    )
    assert result.returncode == 0, result.stderr
    assert "[cuda," not in result.stdout and "[cuda-tests," not in result.stdout
    assert "--device cpu --workers 3" in result.stdout


@pytest.mark.parametrize(
    ("args", "settings", "message"),
    [
        (["--bogus"], {}, "unknown argument '--bogus'; allowed: --dry-run, --help"),
        (["--dry-run"], {"GPU_BENCH_STEPS": "1e4"}, "GPU_BENCH_STEPS must be a whole number"),
        (["--dry-run"], {"GPU_CHECK_BASE": "yes"}, "GPU_CHECK_BASE must be 0 or 1"),
        (["--dry-run"], {"GPU_BENCH_WORKERS": "0"}, "GPU_BENCH_WORKERS must be at least 1"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, settings, message):
    result = run(*args, **settings)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def test_help_documents_the_settings():
    result = run("--help")
    assert result.returncode == 0
    for name in ("GPU_BENCH_STEPS", "GPU_CHECK_BUDGET", "OUT", "--dry-run"):
        assert name in result.stdout
    assert "set -euo" not in result.stdout
