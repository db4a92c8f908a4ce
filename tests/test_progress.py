"""Progress lines of ``mmrl train`` when stdout is not a terminal (issue 16)."""

from __future__ import annotations

import io
import re
import time

import pytest

from mmrl.cli import main
from mmrl.progress import (
    ProgressLines,
    ProgressLinesCallback,
    format_duration,
    format_evaluation,
)
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


# ---------------------------------------------------------------------------- other commands
def _lines(out: str, prefix: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(prefix + " ")]


def test_progress_lines_parts_and_the_ticker():
    stream = io.StringIO()
    lines = ProgressLines(4, "cells", interval_s=0.02, prefix="[job]", stream=stream, bound=True)
    lines.start(1)
    assert lines.count(2) == "2/4 cells (50%)"
    assert re.fullmatch(r"ETA ≤\d+s", lines.eta(2)) and lines.eta(4) == "ETA 0s"
    assert re.fullmatch(r"[\d,]+ samples/s", lines.rate(100, "samples"))
    assert lines.eta(1) == "ETA ≤?"  # nothing done since start: no rate yet
    with lines.ticking(lambda: "tick"):
        time.sleep(0.3)
    printed = stream.getvalue().splitlines()
    assert len(printed) >= 3 and set(printed) == {"[job] tick"}
    assert lines.due() and not lines.due()  # an interval passed; then the wait restarts
    lines.say("own line", bare=True)
    assert stream.getvalue().endswith("\nown line\n")


def test_collect_and_pretrain_print_lines_when_stdout_is_not_a_terminal(
    toy, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    env, agent = toy.write_presets(tmp_path)
    collect = ["collect", "--env", env, "--policy", "random", "--episodes", "6",
               "--dataset-id", "toy/lines-v0", "--log-interval", "1e-9"]  # fmt: skip
    assert main(collect) == 0  # pytest's captured stdout is not a TTY
    out = capsys.readouterr().out
    lines = _lines(out, "[collect]")
    assert lines[0] == "[collect] toy/lines-v0: 6 episodes of random on " + env + ", 2 copies"
    pattern = (r"\[collect\] \d/6 episodes \(\d+%\)  [\d,]+ steps  [\d,]+ steps/s  "
               r"ETA (\d+s|\?)(  success \d\.\d\d  return -?\d+\.\d\d)?")  # fmt: skip
    assert len(lines) >= 4 and all(re.fullmatch(pattern, line) for line in lines[1:]), lines
    assert lines[-1].startswith("[collect] 6/6 episodes (100%)") and "  success " in lines[-1]
    assert main([*collect, "--force", "--quiet"]) == 0
    assert capsys.readouterr().out == ""

    pretrain = ["pretrain", "--dataset", "toy/lines-v0", "--agent", agent, "--env", env,
                "--epochs", "2", "--batch-size", "16", "--objectives", "bc",
                "--out", str(tmp_path / "enc.pt"), "--log-interval", "1e-9"]  # fmt: skip
    assert main(pretrain) == 0
    out = capsys.readouterr().out
    lines = _lines(out, "[pretrain]")
    assert re.fullmatch(r"\[pretrain\] \d+ training transitions, \d+ validation; up to 2 "
                        r"epochs of \d+ batches of 16", lines[0]), lines[0]  # fmt: skip
    pattern = (r"\[pretrain\] epoch [12]/2  \d+/\d+ batches \(\d+%\)  [\d,]+ samples/s  "
               r"ETA (≤\d+s|≤\?|0s)  loss bc \d+\.\d{3}, total \d+\.\d{3}")  # fmt: skip
    assert len(lines) >= 4 and all(re.fullmatch(pattern, line) for line in lines[1:]), lines
    assert "(100%)" in lines[-1] and "ETA 0s" in lines[-1]
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1", "epoch 2"]  # one per epoch
    assert main([*pretrain, "--force", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert main([*pretrain, "--force", "--log-interval", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--log-interval must be > 0, got -1" in err


def test_bench_prints_lines_while_its_cells_run(tmp_path, monkeypatch, capsys):
    """Lines come from a ticker thread while a cell blocks the driver, one per cell, and a
    last one; ``--quiet`` silences all of them."""
    import mmrl.bench.runner as runner

    def slow_cell(cell, spec, out):  # what the cell line and cell.json need, not a report
        time.sleep(0.4)
        return {"cell": cell.to_dict(), "cell_id": cell.cell_id, "steps_per_second": 100.0,
                "eval": {"train": {"success_rate": 0.5, "mean_return": 1.0}},
                "cell_seconds": 0.4}  # fmt: skip

    monkeypatch.setattr(runner, "run_cell", slow_cell)
    monkeypatch.setattr("mmrl.bench.report.write_report", lambda out, command=None: None)
    argv = ["bench", "--envs", "driving", "--fusions", "concat", "--seeds", "2", "--steps", "8",
            "--backend", "inline", "--out", str(tmp_path / "b"),
            "--log-interval", "0.1"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = _lines(out, "[bench]")
    pattern = (r"\[bench\] [012]/2 cells \(\d+%\)  [01] running  ETA (\d+s|\?)"
               r"(  last driving-concat-s[01]: train success 0\.50, return 1\.00, 100 steps/s, "
               r"0 s)?")  # fmt: skip
    assert len(lines) >= 4 and all(re.fullmatch(pattern, line) for line in lines), lines
    assert lines[0].startswith("[bench] 0/2 cells (0%)  1 running  ETA ?")
    assert lines[-1].startswith("[bench] 2/2 cells (100%)  0 running  ETA 0s  last ")
    cells = [line for line in out.splitlines() if line.startswith(("[1/2] ", "[2/2] "))]
    assert len(cells) == 2  # one per cell
    assert main([*argv[:-4], "--out", str(tmp_path / "c"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
