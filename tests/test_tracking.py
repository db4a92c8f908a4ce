"""``mmrl train --track``: the SB3 writer, missing extras, and real W&B (offline) and MLflow
(SQLite) runs whose stored records are read back and compared with TensorBoard's tags."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from mmrl.cli import main
from mmrl.errors import ConfigError, MissingDependencyError
from mmrl.runs import RunFolder
from mmrl.tracking import Tracker, TrackerOutput, Tracking, final_scalars, flatten
from mmrl.train import train

TINY = [
    "agent.ppo.n_steps=64",
    "agent.ppo.batch_size=128",
    "agent.ppo.n_epochs=1",
    "agent.extractor.features_dim=64",
    "eval_freq=256",
    "eval_episodes=2",
    "checkpoint_freq=512",
]


class _Recorder(Tracker):
    def __init__(self) -> None:
        self.logged: list[tuple[dict[str, float], int]] = []

    def start(self, config, resume_id):
        return "x"

    def log_scalars(self, values, step):
        self.logged.append((dict(values), step))

    def log_files(self, files):
        pass

    def finish(self, failed=False):
        pass


def test_writer_forwards_what_tensorboard_gets():
    import numpy as np

    recorder = _Recorder()
    TrackerOutput(recorder).write(
        {"rollout/success_rate": np.float32(0.5), "time/fps": 7, "train/text": "hi",
         "time/hidden": 1.0, "json/only": 2.0, "eval/x": float("nan")},
        {"time/hidden": ("tensorboard", "stdout"), "json/only": ("stdout",)},
        step=128,
    )  # fmt: skip
    assert recorder.logged == [({"rollout/success_rate": 0.5, "time/fps": 7.0,
                                 "json/only": 2.0}, 128)]  # fmt: skip


def test_helpers_and_bad_names():
    assert flatten({"a": {"b": 1, "c": {}}, "d": [1]}) == {"a.b": 1, "a.c": {}, "d": [1]}
    assert final_scalars({"test": {"success_rate": 1.0, "episodes": [1]}}) == {
        "final/test/success_rate": 1.0
    }
    with pytest.raises(ConfigError, match="track must be one of wandb, mlflow, got 'neptune'"):
        Tracking("neptune")


def test_train_bench_and_tune_share_one_track_flag_definition():
    """``--track`` / ``--track-project``: typed fields of train, bench and tune, the same two
    flags (choices, default, help) from :mod:`mmrl.commands.track`."""
    import argparse

    from mmrl.cli import build_parser
    from mmrl.commands import BenchOptions, TrainOptions, TuneOptions
    from mmrl.commands.track import DEFAULT_PROJECT, TRACKERS

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    seen = {}
    for name in ("train", "bench", "tune"):
        actions = {a.dest: a for a in sub.choices[name]._actions}
        seen[name] = [(a.option_strings, a.choices, a.default, a.help)
                      for a in (actions["track"], actions["track_project"])]  # fmt: skip
    assert seen["train"] == seen["bench"] == seen["tune"]
    assert tuple(seen["tune"][0][1]) == TRACKERS
    for cls in (TrainOptions, BenchOptions, TuneOptions):
        assert cls().track is None and cls().track_project == DEFAULT_PROJECT
    args = build_parser().parse_args(["tune", "--track", "mlflow", "--track-project", "p"])
    assert (args.track, args.track_project) == ("mlflow", "p")


@pytest.mark.parametrize(("kind", "module"), [("wandb", "wandb"), ("mlflow", "mlflow")])
def test_missing_library_names_the_extra_before_the_run_folder(kind, module, tmp_path,
                                                               monkeypatch, capsys):  # fmt: skip
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    with pytest.raises(MissingDependencyError, match=rf'pip install "mmrl\[track-{kind}\]"'):
        train(steps=64, out=tmp_path / "lib", verbose=0, track=kind)
    out = tmp_path / "cli"
    assert main(["train", "--steps", "64", "--out", str(out), "--track", kind]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"mmrl[track-{kind}]" in err, err
    assert not out.exists() and not (tmp_path / "lib").exists()


def _tb_tags(run_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = sorted((run_dir / "tb").iterdir())
    acc = EventAccumulator(str(run))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def _wandb_records(path: Path) -> list:
    """Every record of a ``.wandb`` transaction log: a 7-byte header (``:W&B``, magic,
    version), then LevelDB-log framed protobuf ``Record``s in 32 KiB blocks."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    records, chunk, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            break
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def _wandb_run(run_dir: Path) -> dict:
    (log,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    found: dict = {"config": {}, "history": [], "artifacts": [], "exit": None}
    for record in _wandb_records(log):
        kind = record.WhichOneof("record_type")
        if kind in ("run", "config"):  # the run record carries the initial config
            updates = record.run.config.update if kind == "run" else record.config.update
            found["config"].update({i.key: json.loads(i.value_json) for i in updates})
        elif kind == "history":
            items = record.history.item  # W&B keeps a key with "/" as a nested_key
            found["history"].append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}
            )
        elif kind == "artifact":
            found["artifacts"].append([e.path for e in record.artifact.manifest.contents])
        elif kind == "exit":
            found["exit"] = record.exit.exit_code
    return found


def test_wandb_offline_run_holds_config_tensorboard_scalars_and_files(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    out = tmp_path / "run"
    args = ["train", "--env", "driving", "--steps", "512", "--n-envs", "4", "--out", str(out),
            "--quiet", "--track", "wandb", "--track-project", "mmrl-test"]  # fmt: skip
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    # W&B's service writes the run file on its own schedule and flushes it when it stops,
    # which a CLI process does as it exits; here the test process stops it.
    wandb.teardown()
    run = _wandb_run(out)
    assert run["config"]["agent"]["ppo"]["n_steps"] == 64
    assert run["config"]["env_name"] == "driving"
    keys = set().union(*run["history"])
    missing = _tb_tags(out) - keys
    assert not missing, f"TensorBoard scalars absent from the W&B run: {missing}"
    for key in ["rollout/success_rate", "eval/test/success_rate", "time/env_steps_per_s",
                "final/test/mean_return", "global_step"]:  # fmt: skip
        assert key in keys, key
    evals = [h for h in run["history"] if "eval/test/success_rate" in h]
    assert [h["global_step"] for h in evals][:2] == [256, 512]
    assert run["artifacts"] == [sorted(["best_model.zip", "config.yaml", "evaluations.jsonl",
                                        "metrics.json", "model.zip"])]  # fmt: skip
    assert run["exit"] == 0
    assert RunFolder(out).tracking()["kind"] == "wandb"


def test_mlflow_sqlite_run_holds_params_scalars_files_and_resumes(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # the experiment's artifacts go to ./mlruns
    out = tmp_path / "run"
    train("driving", steps=256, n_envs=4, out=out, overrides=TINY, verbose=0, track="mlflow")
    first = RunFolder(out).tracking()
    client = MlflowClient(uri)
    run = client.get_run(first["id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["agent.ppo.n_steps"] == "64"
    assert run.data.params["env.n_envs"] == "4"
    missing = _tb_tags(out) - set(run.data.metrics)
    assert not missing, f"TensorBoard scalars absent from the MLflow run: {missing}"
    assert "final/train/success_rate" in run.data.metrics
    files = {a.path for a in client.list_artifacts(first["id"], "run")}
    assert {"run/model.zip", "run/config.yaml", "run/metrics.json"} <= files

    # A resumed run continues the same MLflow run, at the environment steps it reached.
    train(resume=out, steps=512, verbose=0, track="mlflow")
    assert RunFolder(out).tracking()["id"] == first["id"]
    history = client.get_metric_history(first["id"], "eval/test/success_rate")
    assert sorted(m.step for m in history) == [256, 512]
    assert client.get_run(first["id"]).info.status == "FINISHED"
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_a_refused_tracker_leaves_no_run_folder(tmp_path, monkeypatch, capsys):
    """W&B online without an API key: one line naming the fix, and no half-made run."""
    wandb = pytest.importorskip("wandb")
    wandb.teardown()  # W&B keeps the settings (an offline mode) of a run made earlier here
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    out = tmp_path / "run"
    args = ["train", "--steps", "64", "--n-envs", "2", "--out", str(out), "--track", "wandb"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No API key configured" in err, err
    assert "WANDB_MODE=offline" in err and not out.exists()
