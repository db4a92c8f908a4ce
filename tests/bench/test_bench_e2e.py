"""Real tiny grids end to end: PPO training, held-out evaluation, ablations, report.

Each cell trains 64 steps on 2 env copies with a small extractor and evaluates 2 episodes,
so a cell takes seconds; the numbers are meaningless, the plumbing is what is tested.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from mmrl.bench import BenchSpec, InlineBackend, LocalBackend, run_bench
from mmrl.bench.grid import CELL_RECORD, RUN_SUBDIR, cell_dir
from mmrl.bench.runner import SESSION_FILE
from mmrl.cli import main

TINY = [
    "env.n_envs=2",
    "agent.ppo.n_steps=32",
    "agent.ppo.batch_size=32",
    "agent.ppo.n_epochs=1",
    "agent.extractor.features_dim=32",
    "eval_episodes=2",
    "eval_freq=32",
    "checkpoint_freq=32",
]
MODALITIES = {"camera", "lidar", "text", "state"}


def _spec(**kwargs) -> BenchSpec:
    values = {"envs": ["driving"], "fusions": ["concat"], "seeds": [0], "steps": 64,
              "overrides": TINY}  # fmt: skip
    values.update(kwargs)
    return BenchSpec(**values)


def test_tiny_grid_end_to_end_on_the_process_pool(tmp_path):
    spec = _spec(fusions=["concat", "mean"])
    result = run_bench(spec, tmp_path, LocalBackend(workers=2), progress=False)
    assert not result.failed, [
        (cell_dir(tmp_path, c) / "error.txt").read_text() for c in result.failed
    ]
    assert len(result.finished) == 2
    for cell in spec.cells():
        record = json.loads((cell_dir(tmp_path, cell) / CELL_RECORD).read_text())
        assert record["steps"] == 64 and record["params"]["policy"] > record["params"]["extractor"]
        assert set(record["eval"]) == {"train", "test"}
        assert [p["step"] for p in record["curve"]] == [32, 64]
        assert set(record["ablation"]) == {"none"} | MODALITIES
        # The cell's own final evaluation covers both splits; its train split is the
        # ablations' baseline, and with as many episodes as the periodic evaluation it
        # replays that evaluation's episodes exactly.
        assert record["final_episodes"] == 2 and set(record["final"]) == {"train", "test"}
        assert record["ablation"]["none"] == record["final"]["train"]
        for split in ("train", "test"):
            assert record["final"][split]["mean_return"] == pytest.approx(
                record["eval"][split]["mean_return"]
            )
        assert record["steps_per_second"] > 0
        # Per task of the unablated policy on the same episodes: they add up to its success.
        clean = record["ablation"]["none"]
        by_group = clean["by_group"]
        assert sum(g["episodes"] for g in by_group.values()) == clean["episodes"]
        assert sum(g["episodes"] * g["success_rate"] for g in by_group.values()) == pytest.approx(
            clean["success_rate"] * clean["episodes"]
        )
    frame = pd.read_csv(tmp_path / "results.csv")
    assert any(c.startswith("group_success_") for c in frame.columns)
    assert sorted(frame["fusion"]) == ["concat", "mean"] and len(frame) == 2
    assert {f"delta_success_without_{k}" for k in MODALITIES} <= set(frame.columns)
    summary = (tmp_path / "summary.md").read_text()
    assert "| driving | concat | 1 |" in summary and "without camera" in summary
    assert "## Success by instruction group" in summary
    for name in ("learning_curves.png", "final_performance.png", "robustness.png"):
        assert (tmp_path / name).stat().st_size > 5000
    # Same command again: everything is skipped.
    again = run_bench(spec, tmp_path, LocalBackend(workers=2), progress=False, report=False)
    assert len(again.skipped) == 2 and not again.finished


def test_an_interrupted_cell_resumes_without_retraining(tmp_path):
    spec = _spec(steps=128)  # two rollouts: a checkpoint at step 64, the final one at 128
    (cell,) = spec.cells()
    run_bench(spec, tmp_path, InlineBackend(), progress=False, report=False)
    run_dir = cell_dir(tmp_path, cell) / RUN_SUBDIR
    record_path = cell_dir(tmp_path, cell) / CELL_RECORD
    first = json.loads(record_path.read_text())
    model_mtime = (run_dir / "model.zip").stat().st_mtime_ns

    # Killed during the ablations: training is not repeated.
    record_path.unlink()
    run_bench(spec, tmp_path, InlineBackend(), progress=False, report=False)
    second = json.loads(record_path.read_text())
    assert (run_dir / "model.zip").stat().st_mtime_ns == model_mtime
    assert second["train_seconds"] == first["train_seconds"]
    assert second["ablation"] == first["ablation"]

    # Killed during training, after the checkpoint at step 64: the run continues from it.
    record_path.unlink()
    (cell_dir(tmp_path, cell) / SESSION_FILE).unlink()
    (run_dir / "metrics.json").unlink()
    checkpoints = run_dir / "checkpoints"
    shutil.rmtree(checkpoints / "step_000000000128")
    (checkpoints / "latest").write_text("step_000000000064")
    run_bench(spec, tmp_path, InlineBackend(), progress=False, report=False)
    third = json.loads(record_path.read_text())
    session = json.loads((cell_dir(tmp_path, cell) / SESSION_FILE).read_text())
    assert session == {"steps_at_start": 64, "steps": 128, "train_seconds": pytest.approx(
        third["train_seconds"])}  # fmt: skip
    assert third["steps"] == 128
    assert (run_dir / "checkpoints" / "step_000000000128").is_dir()
    assert (run_dir / "model.zip").stat().st_mtime_ns != model_mtime


def test_reevaluate_rebuilds_the_final_evaluation_from_the_run_folders(tmp_path, capsys):
    """``mmrl bench --reevaluate``: records without the cells' own final evaluation (written
    before it existed) get it from their saved runs, with no training; a cell whose run
    folder is elsewhere is left as it was and counted."""
    spec = _spec(seeds=[0, 1], overrides=[*TINY, "eval_episodes=3"])
    run_bench(spec, tmp_path, InlineBackend(), progress=False, command="mmrl bench --tiny")
    records = {c: cell_dir(tmp_path, c) / CELL_RECORD for c in spec.cells()}
    first = {c: json.loads(p.read_text()) for c, p in records.items()}
    mtimes = {c: (cell_dir(tmp_path, c) / RUN_SUBDIR / "model.zip").stat().st_mtime_ns
              for c in spec.cells()}  # fmt: skip
    for cell, path in records.items():  # as an older mmrl wrote them
        old = dict(first[cell])
        for key in ("final", "final_episodes"):
            del old[key]
        old["ablation"] = {"none": {"episodes": 3, "success_rate": -1.0}}
        path.write_text(json.dumps(old))
    elsewhere, here = spec.cells()
    shutil.rmtree(cell_dir(tmp_path, elsewhere) / RUN_SUBDIR)

    assert main(["bench", "--reevaluate", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "evaluated 1 cell(s) again" in out and "1 without their run folder here" in out
    again = json.loads(records[here].read_text())
    assert again["final"] == first[here]["final"] and again["final_episodes"] == 3
    assert again["ablation"] == first[here]["ablation"]  # deterministic: the same figures
    assert again["train_seconds"] == first[here]["train_seconds"] and "reevaluated_at" in again
    assert (cell_dir(tmp_path, here) / RUN_SUBDIR / "model.zip").stat().st_mtime_ns == mtimes[here]
    kept = json.loads(records[elsewhere].read_text())
    assert "final" not in kept and kept["ablation"]["none"]["success_rate"] == -1.0
    summary = (tmp_path / "summary.md").read_text()
    assert "- command: `mmrl bench --tiny`" in summary
    assert "held-out seeds (3 episodes per cell on each split)" in summary


def test_cli_bad_grid_is_one_line_exit_2(capsys, tmp_path):
    out = str(tmp_path / "b")
    assert main(["bench", "--envs", "driving,mars", "--steps", "64", "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown environment preset 'mars'; available:" in err and "\n" not in err
    assert main(["bench", "--fusions", "concat,lstm", "--out", out]) == 2
    assert "available: attention, concat, film, gated, mean, perceiver, query" in capsys.readouterr().err
    assert main(["bench", "--seeds", "0", "--out", out]) == 2
    assert "--seeds must be >= 1" in capsys.readouterr().err
    assert main(["bench", "--steps", "0", "--out", out]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err
    assert main(["bench", "--report-only", "--out", out]) == 2
    assert "not a bench folder" in capsys.readouterr().err
    assert main(["bench", "--reevaluate", "--out", out]) == 2
    assert "--reevaluate: " in capsys.readouterr().err
    assert main(["bench", "--reevaluate", "--report-only", "--out", out]) == 2
    assert "pick one" in capsys.readouterr().err


def test_ray_backend_tiny_grid_through_the_cli(tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "bench"
    args = ["bench", "--envs", "driving", "--fusions", "concat", "--seeds", "2", "--steps", "64",
            "--backend", "ray", "--workers", "2", "--cpus-per-task", "1", "--out", str(out),
            "--no-ablation", "--quiet"]  # fmt: skip
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0, capsys.readouterr().err
    frame = pd.read_csv(out / "results.csv")
    assert sorted(frame["seed"]) == [0, 1]
    assert frame["success"].between(0, 1).all()
    summary = (out / "summary.md").read_text()
    assert "--backend ray" in summary and "| driving | concat | 2 |" in summary
    assert main(["bench", "--report-only", "--out", str(out)]) == 0


@pytest.mark.slow
def test_pretrained_encoders_reach_every_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset = "mmrl/driving/bench-test-v0"
    assert main(["collect", "--env", "driving", "--policy", "expert", "--episodes", "4",
                 "--n-envs", "2", "--dataset-id", dataset, "--quiet"]) == 0  # fmt: skip
    pre = tmp_path / "pre"
    pre.mkdir()
    assert main(["pretrain", "--dataset", dataset, "--agent", "ppo-concat", "--env", "driving",
                 "--objectives", "bc", "--epochs", "1", "--max-updates", "2",
                 "--batch-size", "16", "--set", "agent.extractor.features_dim=32",
                 "--out", str(pre / "driving-concat.pt"), "--quiet"]) == 0  # fmt: skip
    out = tmp_path / "bench"
    args = ["bench", "--envs", "driving", "--fusions", "concat", "--seeds", "1", "--steps", "64",
            "--pretrained-dir", str(pre), "--backend", "inline", "--out", str(out),
            "--no-ablation", "--quiet"]  # fmt: skip
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    (cell,) = _spec().cells()
    record = json.loads((cell_dir(out, cell) / CELL_RECORD).read_text())
    assert record["pretrained"] == str(pre / "driving-concat.pt")
    config = (cell_dir(out, cell) / RUN_SUBDIR / "config.yaml").read_text()
    assert f"path: {pre / 'driving-concat.pt'}" in config
    # A fusion without a checkpoint is refused before anything runs.
    args[args.index("concat")] = "concat,mean"
    assert main(args) == 2


def test_tracked_cells_are_mlflow_runs_grouped_by_the_bench(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "tracked"
    args = ["bench", "--envs", "driving", "--fusions", "concat", "--seeds", "1", "--steps",
            "64", "--no-ablation", "--backend", "inline", "--out", str(out), "--quiet",
            "--track", "mlflow", "--track-project", "bench-test"]  # fmt: skip
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0, capsys.readouterr().err
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("bench-test").experiment_id])
    assert run.data.tags["mmrl.group"] == "tracked" and run.info.status == "FINISHED"
    assert "eval/test/success_rate" in run.data.metrics
