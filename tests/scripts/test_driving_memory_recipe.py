"""``scripts/driving_memory_recipe.sh``: the chain it runs, its refusals, and a QUICK sitting
(every step at toy sizes) that a second sitting finds finished."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "driving_memory_recipe.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

SETTINGS = ("SEEDS", "STEPS", "WORKERS", "EPISODES", "EPOCHS", "THREADS", "QUICK")


def run(*args: str, timeout: float = 60, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    # The mmrl and python of this interpreter, whatever PATH holds.
    env["MMRL"] = f"{Path(sys.executable).parent / 'mmrl'}"
    env["PYTHON"] = sys.executable
    env.update(settings)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_dry_run_prints_the_recipe(tmp_path):
    result = run("--dry-run", str(tmp_path / "out"), SEEDS="1 2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()

    def step(name: str) -> list[str]:  # lines "+ MMRL name ..."
        return [line for line in lines if line.split()[2:3] == [name]]

    collects = step("collect")
    assert len(collects) == 5
    assert sum("--env driving-overtake" in line for line in collects) == 3
    # Distinct seeds: the three overtake datasets hold different scenes.
    assert len({line.split("--seed ")[1].split()[0] for line in collects[2:]}) == 3
    (pretrain,) = step("pretrain")
    assert "--agent recurrent-ppo-concat --set agent.extractor.fusion=film" in pretrain
    assert (
        "--weight labels=2 --monitor labels" in pretrain
        and pretrain.count("mmrl/driving-memory/") == 5
    )
    trains = step("train")
    assert [t.split("--seed ")[1].split()[0] for t in trains] == ["1", "2"]
    for train in trains:
        assert "--init-from" in train and "--init-policy-head --encoder-lr-scale 0.1" in train
        assert "agent.guidance.label_input=memory" in train and "--steps 500000" in train
    assert sum("modality_necessity.py" in line and "--episodes 500" in line for line in lines) == 2
    assert sum("memory_probe.py" in line and "--lstm" in line for line in lines) == 2


@pytest.mark.parametrize(
    ("args", "settings", "message"),
    [
        ([], {}, "expected one argument OUT"),
        (["out", "more"], {}, "expected one argument OUT"),
        (["out"], {"STEPS": "5e5"}, "STEPS must be a whole number >= 1, got '5e5'"),
        (["out"], {"SEEDS": "0 x"}, "SEEDS must be whole numbers >= 0, got 'x'"),
        (["out"], {"SEEDS": " "}, "SEEDS is empty"),
        (["out"], {"QUICK": "yes"}, "QUICK must be 0 or 1, got 'yes'"),
    ],
)
def test_bad_settings_exit_2_with_one_line(tmp_path, args, settings, message):
    result = run("--dry-run", *[str(tmp_path / a) for a in args], **settings)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_quick_sitting_runs_every_step_and_the_next_one_skips_them(tmp_path):
    out = tmp_path / "out"
    first = run(str(out), timeout=1200, QUICK="1", SEEDS="0")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (out / "enc.pt").is_file() and (out / "run-s0" / "model.zip").is_file()
    bc = json.loads((out / "bc-eval.json").read_text())
    assert bc  # the pretrained policy's own evaluation
    necessity = json.loads((out / "necessity-s0" / "necessity.json").read_text())
    assert necessity
    for name in ("outcomes-s0-overtake-train.json", "outcomes-s0-overtake-test.json",
                 "probe-s0.json", "bc-outcomes-overtake.json"):  # fmt: skip
        assert json.loads((out / name).read_text()), name
    second = run(str(out), timeout=1200, QUICK="1", SEEDS="0")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert " collect " not in second.stdout and " pretrain " not in second.stdout
    assert "--resume" in second.stdout  # the finished run is resumed (nothing left to train)
