"""Progress lines of ``mmrl train`` when stdout is not a terminal (issue 16)."""

from __future__ import annotations

import io
import re

import pytest

from mmrl.cli import main
from mmrl.progress import ProgressLinesCallback, format_duration, format_evaluation
from mmrl.train import train

OVERRIDES = ["eval_freq=32", "eval_episodes=2", "checkpoint_freq=32",
             "agent.extractor.features_dim=16"]  # fmt: skip
PROGRESS = re.compile(
    r"^\[train\] [\d,]+/64 steps \(\d+%\)  [\d,]+ steps/s  ETA (\d+s|\d+m\d\ds|\?)"
    r"(  success \d\.\d\d)?(  return -?\d+\.\d\d|  \(no finished episode yet\))$"
)


def test_format_duration_and_evaluation():
    assert [format_duration(s) for s in (0, 45.4, 152, 3 * 3600 + 300)] == [
        "0s", "45s", "2m32s", "3h05m"
    ]  # fmt: skip
    assert format_duration(float("inf")) == "?"
    record = {"step": 5, "train": {"success_rate": 0.5, "mean_return": 1.0},
              "test": {"success_rate": 0.25, "mean_return": -2.0}}  # fmt: skip
    assert format_evaluation(record) == (
        "train success 0.50 return 1.00 | test success 0.25 return -2.00"
    )
    with pytest.raises(ValueError, match="interval_s"):
        ProgressLinesCallback(10, interval_s=0)


def test_a_tiny_run_prints_progress_and_one_line_per_evaluation(toy, tmp_path, capsys):
    env, agent = toy.write_presets(tmp_path)
    train(env, agent, steps=64, seed=0, out=tmp_path / "run", verbose=0, device="cpu",
          overrides=OVERRIDES, log_interval=1e-9)  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[train] training from 0 to 64 steps"
    evals = [line for line in lines if " eval at " in line]
    assert [line.split(" steps:")[0] for line in evals] == [
        "[train] eval at 32", "[train] eval at 64"
    ]  # fmt: skip
    assert all(re.search(r"train success \d\.\d\d return -?\d+\.\d\d$", e) for e in evals)
    progress = [line for line in lines[1:] if line not in evals]
    assert len(progress) >= 10, lines  # one per callback step at this interval
    for line in progress:
        assert PROGRESS.match(line), line
    assert progress[-1].startswith("[train] 64/64 steps (100%)")
    assert "  success " in progress[-1] and "  return " in progress[-1]  # toy episodes: 10 steps


def test_lines_come_at_the_interval_not_every_step(toy, tmp_path):
    stream = io.StringIO()
    callback = ProgressLinesCallback(64, interval_s=3600, stream=stream)
    from mmrl.agent import build_model, build_vec_env
    from mmrl.config import resolve_run_config

    env, agent = toy.write_presets(tmp_path)
    config = resolve_run_config(env, agent, OVERRIDES, steps=64, seed=0)
    venv = build_vec_env(config, seed=0)
    model = build_model(config, venv, "cpu", None)
    model.learn(64, callback=callback)
    venv.close()
    # The start line and the final line only: an hour never passed.
    assert callback.lines == 2 and stream.getvalue().count("\n") == 2


def test_cli_prints_lines_when_stdout_is_not_a_terminal(toy, tmp_path, capsys):
    env, agent = toy.write_presets(tmp_path)
    argv = ["train", "--env", str(env), "--agent", str(agent), "--steps", "64",
            "--device", "cpu", "--out", str(tmp_path / "run"),
            *[x for o in OVERRIDES for x in ("--set", o)]]  # fmt: skip
    assert main(argv) == 0  # pytest's captured stdout is not a TTY
    out = capsys.readouterr().out
    assert "[train] training from 0 to 64 steps" in out and "[train] eval at 64 steps" in out
    assert main([*argv, "--force", "--quiet"]) == 0
    assert "[train]" not in capsys.readouterr().out
    assert main([*argv, "--force", "--log-interval", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--log-interval must be > 0" in err
