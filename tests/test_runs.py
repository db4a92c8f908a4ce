"""The run folder as one object (issue 14): names, config, checkpoints, statistics, curve."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mmrl.errors import CheckpointError, ConfigError
from mmrl.runs import RunFolder, parse_evaluations


def test_the_on_disk_names_are_the_ones_runs_were_always_written_with(toy_run):
    """Renaming a file would orphan every run written before: the names are pinned here."""
    run = RunFolder(toy_run)
    names = {p.relative_to(toy_run).as_posix() for p in toy_run.rglob("*") if p.is_file()}
    expected = {"config.yaml", "model.zip", "best_model.zip", "metrics.json",
                "evaluations.jsonl", "checkpoints/latest"}  # fmt: skip
    assert expected <= names
    assert any(n.startswith("checkpoints/step_") and n.endswith("/state.pkl") for n in names)
    assert any(n.startswith("tb/") for n in names)
    paths = (run.config_path, run.model_path, run.best_model_path, run.metrics_path,
             run.evaluations_path, run.checkpoints_dir, run.tb_dir)  # fmt: skip
    assert [p.name for p in paths] == [
        "config.yaml", "model.zip", "best_model.zip", "metrics.json", "evaluations.jsonl",
        "checkpoints", "tb",
    ]  # fmt: skip


def test_a_finished_run_reads_back(toy_run):
    run = RunFolder.open(toy_run)
    assert run.finished
    assert run.config().agent.normalize.obs_keys == ["state"]
    assert run.config().steps == 64
    assert run.policy_model_path() == toy_run / "model.zip"
    assert run.latest_checkpoint().name == "step_000000000064"
    assert run.checkpoint_steps() == 64
    assert run.metrics()["steps"] == 64
    steps, success = run.curve("train")
    assert steps == [32, 64] and all(0.0 <= s <= 1.0 for s in success)
    assert [r["step"] for r in run.evaluations()] == [32, 64]
    stats = run.normalization_stats()
    assert set(stats) == {"state"} and stats["state"].count > 1  # updated during training
    assert RunFolder.containing(toy_run / "best_model.zip").path == toy_run
    checkpoint_model = run.latest_checkpoint() / "model.zip"
    assert RunFolder.containing(checkpoint_model).path == toy_run
    assert RunFolder.containing(toy_run.parent / "elsewhere.zip") is None


def test_an_unfinished_run_acts_with_its_newest_checkpoint(toy_run, tmp_path):
    copy = tmp_path / "killed"
    shutil.copytree(toy_run, copy)
    for name in ("model.zip", "metrics.json"):
        (copy / name).unlink()
    run = RunFolder.open(copy)
    assert not run.finished and run.metrics() is None
    assert run.policy_model_path() == copy / "checkpoints" / "step_000000000064" / "model.zip"
    shutil.rmtree(copy / "checkpoints")
    with pytest.raises(CheckpointError, match=r"no model\.zip and no complete checkpoint"):
        run.policy_model_path()
    with pytest.raises(CheckpointError, match="no checkpoint with the VecNormalize statistics"):
        run.normalization_stats()


def test_what_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no such run folder"):
        RunFolder.open(tmp_path / "typo")
    with pytest.raises(CheckpointError, match="not an mmrl run folder"):
        RunFolder.open(tmp_path)
    (tmp_path / "config.yaml").write_text("steps: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        RunFolder.open(tmp_path).config()
    assert RunFolder(tmp_path / "new").evaluations() == []


def test_evaluations_parse_with_a_truncated_last_line():
    good = [{"step": 32, "train": {"success_rate": 0.5}}, {"step": 64, "train": {}}]
    text = "".join(json.dumps(r) + "\n" for r in good)
    assert parse_evaluations(text) == good
    assert parse_evaluations(text + '{"step": 96, "tra') == good  # a write cut short
    assert parse_evaluations(text + "\n\n") == good
    with pytest.raises(CheckpointError, match="line 2 is not JSON"):
        parse_evaluations(json.dumps(good[0]) + '\n{"step": 6\n' + json.dumps(good[1]) + "\n")
    with pytest.raises(CheckpointError, match="line 1 is not an evaluation record"):
        parse_evaluations("[1, 2]\n")


def test_the_curve_of_a_run_with_a_cut_short_history(toy_run, tmp_path):
    copy = tmp_path / "cut"
    shutil.copytree(toy_run, copy)
    with open(copy / "evaluations.jsonl", "a") as fh:
        fh.write('{"step": 96, "train": {"succ')
    steps, success = RunFolder(copy).curve("train")
    assert steps == [32, 64]
    assert np.all(np.isfinite(success))
