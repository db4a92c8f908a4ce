"""``mmrl train|pretrain --track``: the SB3 writer, missing extras, and real W&B (offline)
and MLflow (SQLite) runs whose stored records (config, scalars, videos, artifacts) are read
back and compared with TensorBoard's tags and the files on disk."""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

import pytest

from mmrl.cli import main
from mmrl.errors import ConfigError, MissingDependencyError
from mmrl.runs import RunFolder
from mmrl.tracking import (
    VIDEOS_ARTIFACT,
    Tracker,
    TrackerOutput,
    Tracking,
    TrackingCallback,
    final_scalars,
    flatten,
)
from mmrl.train import train
from mmrl.train_video import _NOT_SHOWN, VIDEO_TAG, VideoFile

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
        self.videos: list[tuple[Path, str, int]] = []

    def start(self, config, resume_id):
        return "x"

    def log_scalars(self, values, step):
        self.logged.append((dict(values), step))

    def log_files(self, files, name="run"):
        pass

    def log_video(self, path, key, step):
        self.videos.append((path, key, step))

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


def test_video_files_pass_sb3_logger_to_the_tracker_only(tmp_path):
    """The video callback's logger record: the text outputs skip it (SB3 raises on values
    they cannot show), TensorBoard's ignores it, the tracker uploads it at its own step; one
    still pending when training ends is uploaded then."""
    import io
    from types import SimpleNamespace

    from stable_baselines3.common.logger import HumanOutputFormat, Logger, TensorBoardOutputFormat

    recorder, text = _Recorder(), io.StringIO()
    tb = TensorBoardOutputFormat(str(tmp_path / "tb"))
    logger = Logger(None, [HumanOutputFormat(text), tb, TrackerOutput(recorder)])
    logger.record("rollout/ep_rew_mean", 1.5)
    logger.record(VIDEO_TAG, VideoFile(tmp_path / "step_32.mp4", 32), exclude=_NOT_SHOWN)
    logger.dump(step=64)
    tb.close()
    assert recorder.logged == [({"rollout/ep_rew_mean": 1.5}, 64)]
    assert recorder.videos == [(tmp_path / "step_32.mp4", VIDEO_TAG, 32)]
    assert "ep_rew_mean" in text.getvalue() and "video" not in text.getvalue()
    assert _tb_scalar_tags(tmp_path / "tb") == {"rollout/ep_rew_mean"}

    callback = TrackingCallback(recorder)
    callback.init_callback(SimpleNamespace(logger=logger))
    logger.record(VIDEO_TAG, VideoFile(tmp_path / "step_96.mp4", 96), exclude=_NOT_SHOWN)
    callback.on_training_end()
    assert recorder.videos[-1] == (tmp_path / "step_96.mp4", VIDEO_TAG, 96)
    assert VIDEO_TAG not in logger.name_to_value


def test_helpers_and_bad_names():
    assert flatten({"a": {"b": 1, "c": {}}, "d": [1]}) == {"a.b": 1, "a.c": {}, "d": [1]}
    assert final_scalars({"test": {"success_rate": 1.0, "episodes": [1]}}) == {
        "final/test/success_rate": 1.0
    }
    with pytest.raises(ConfigError, match="track must be one of wandb, mlflow, got 'neptune'"):
        Tracking("neptune")


def test_train_pretrain_bench_and_tune_share_one_track_flag_definition():
    """``--track`` / ``--track-project``: typed fields of train, pretrain, bench and tune, the
    same two flags (choices, default, help) from :mod:`mmrl.commands.track`."""
    import argparse
    import dataclasses

    from mmrl.cli import build_parser
    from mmrl.commands import BenchOptions, PretrainOptions, TrainOptions, TuneOptions
    from mmrl.commands.track import DEFAULT_PROJECT, TRACKERS

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    seen = {}
    for name in ("train", "pretrain", "bench", "tune"):
        actions = {a.dest: a for a in sub.choices[name]._actions}
        seen[name] = [(a.option_strings, a.choices, a.default, a.help)
                      for a in (actions["track"], actions["track_project"])]  # fmt: skip
    assert seen["train"] == seen["pretrain"] == seen["bench"] == seen["tune"]
    assert tuple(seen["tune"][0][1]) == TRACKERS
    for cls in (TrainOptions, PretrainOptions, BenchOptions, TuneOptions):
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        assert defaults["track"] is None and defaults["track_project"] == DEFAULT_PROJECT
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
    # pretrain: refused before the dataset is read (this one does not exist) or a file written
    from mmrl.pretrain import pretrain

    with pytest.raises(MissingDependencyError, match=rf'pip install "mmrl\[track-{kind}\]"'):
        pretrain("no/such-v0", out=tmp_path / "enc.pt", verbose=0, track=kind)
    args = ["pretrain", "--dataset", "no/such-v0", "--out", str(tmp_path / "enc.pt")]
    assert main([*args, "--track", kind]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"mmrl[track-{kind}]" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _tb_scalar_tags(folder: Path) -> set[str]:
    """The scalar tags of the TensorBoard event files in ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def _tb_tags(run_dir: Path) -> set[str]:
    (run,) = sorted((run_dir / "tb").iterdir())
    return _tb_scalar_tags(run)


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
            found.setdefault("artifact_names", []).append(record.artifact.name)
        elif kind == "exit":
            found["exit"] = record.exit.exit_code
    return found


@pytest.fixture
def wandb_offline(monkeypatch):
    """W&B in offline mode with fresh settings: W&B keeps the settings of the first run made
    in a process (a refused online one too) until ``wandb.teardown()``."""
    wandb = pytest.importorskip("wandb")
    wandb.teardown()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    yield wandb
    wandb.teardown()


def test_wandb_offline_run_holds_config_tensorboard_scalars_and_files(tmp_path, wandb_offline):
    wandb = wandb_offline
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


def _video_run(toy, root: Path, kind: str) -> Path:
    """64 steps of the toy task with a video every 32 steps, tracked in ``kind``."""
    env, agent = toy.write_presets(root)
    overrides = ["eval_freq=0", "eval_episodes=1", "checkpoint_freq=1000",
                 "agent.extractor.features_dim=16"]  # fmt: skip
    return train(env, agent, steps=64, seed=0, out=root / "run", verbose=0, device="cpu",
                 overrides=overrides, video_every=32, track=kind)  # fmt: skip


def test_training_videos_and_model_reach_wandb(toy, tmp_path, wandb_offline):
    wandb = wandb_offline
    out = _video_run(toy, tmp_path, "wandb")
    wandb.teardown()
    run = _wandb_run(out)
    # W&B stores a media value as nested keys under its own: eval/video/{_type,path,sha256}
    videos = [h for h in run["history"] if h.get(f"{VIDEO_TAG}/_type") == "video-file"]
    assert [h["global_step"] for h in videos] == [32, 64]
    (offline,) = (out / "wandb").glob("offline-run-*")
    written = sorted(RunFolder(out).videos_dir.glob("*.mp4"))
    for entry, mp4 in zip(videos, written, strict=True):
        # the MP4 as written (not re-encoded), copied into the run's media files
        data = (offline / "files" / entry[f"{VIDEO_TAG}/path"]).read_bytes()
        assert data == mp4.read_bytes()
        assert entry[f"{VIDEO_TAG}/sha256"] == hashlib.sha256(data).hexdigest()
    assert "model.zip" in run["artifacts"][0] and run["exit"] == 0


def test_training_videos_and_model_reach_mlflow(toy, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    out = _video_run(toy, tmp_path, "mlflow")
    client = MlflowClient(uri)
    run_id = RunFolder(out).tracking()["id"]
    videos = {a.path for a in client.list_artifacts(run_id, VIDEOS_ARTIFACT)}
    assert videos == {f"videos/step_{s:09d}.mp4" for s in (32, 64)}
    local = Path(client.download_artifacts(run_id, "videos/step_000000032.mp4", str(tmp_path)))
    assert local.read_bytes() == (RunFolder(out).videos_dir / "step_000000032.mp4").read_bytes()
    assert "run/model.zip" in {a.path for a in client.list_artifacts(run_id, "run")}


@pytest.fixture(scope="module")
def toy_data(toy, tmp_path_factory):
    """Toy presets and an expert toy dataset (``MINARI_DATASETS_PATH`` set for the module)."""
    from mmrl.data import collect
    from mmrl.envs.vec_env import BatchedVecEnv

    root = tmp_path_factory.mktemp("track-pretrain")
    env, agent = toy.write_presets(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root / "datasets"))
        collect(policy="expert", episodes=40, dataset_id="toy/expert-v0", epsilon=0.2, seed=0,
                venv=BatchedVecEnv(toy.ToySimulator(8)))  # fmt: skip
        yield env, agent, "toy/expert-v0"


def test_pretrain_wandb_offline_run_holds_config_tensorboard_scalars_and_checkpoint(
    toy_data, tmp_path, wandb_offline
):
    from mmrl.pretrain import pretrain

    wandb = wandb_offline
    env, agent, dataset = toy_data
    result = pretrain(dataset, agent, env=env, epochs=3, batch_size=16, out=tmp_path / "enc.pt",
                      val_fraction=0.2, patience=3, verbose=0, track="wandb")  # fmt: skip
    wandb.teardown()
    assert result.updates >= 20  # so training scalars (every 20 updates) were written
    run = _wandb_run(result.log_dir)
    assert run["config"]["pretrain"]["objectives"] == ["bc", "labels", "contrastive", "masked"]
    assert run["config"]["pretrain"]["dataset_id"] == dataset
    assert run["config"]["agent"]["extractor"]["fusion"] == "attention"
    keys = {k for k in set().union(*run["history"]) if not k.startswith("_")} - {"global_step"}
    tags = _tb_scalar_tags(result.log_dir)
    assert {"pretrain/train/loss/total", "pretrain/val/loss/bc"} <= tags
    assert {k for k in keys if not k.startswith("final/")} == tags
    epochs = [h["global_step"] for h in run["history"] if "pretrain/val/loss/total" in h]
    assert len(epochs) == result.epochs and epochs[-1] == result.updates
    final = next(h for h in run["history"] if "final/best_epoch" in h)
    assert final["final/best_epoch"] == result.best_epoch
    assert final["final/loss/total"] == pytest.approx(result.val_metrics["loss/total"])
    assert run["artifacts"] == [["enc.pt"]] and run["artifact_names"][0].startswith("encoder-")
    assert run["exit"] == 0


def test_pretrain_cli_mlflow_run_holds_params_scalars_and_checkpoint(toy_data, tmp_path,
                                                                      monkeypatch):  # fmt: skip
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    env, agent, dataset = toy_data
    out, tb = tmp_path / "enc.pt", tmp_path / "curves"
    args = ["pretrain", "--dataset", dataset, "--agent", agent, "--env", env, "--objectives",
            "bc,masked", "--epochs", "3", "--patience", "3", "--batch-size", "16", "--out",
            str(out), "--tb", str(tb), "--quiet", "--track", "mlflow", "--track-project",
            "mmrl-pre"]  # fmt: skip
    assert main(args) == 0
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("mmrl-pre")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "enc"
    assert run.data.tags["mmrl.checkpoint"] == str(out.resolve())
    assert run.data.params["pretrain.objectives"] == "['bc', 'masked']"
    assert run.data.params["pretrain.batch_size"] == "16"
    tags = _tb_scalar_tags(tb)
    assert "pretrain/train/loss/bc" in tags
    assert tags | {"final/best_epoch", "final/bc_accuracy"} <= set(run.data.metrics)
    history = client.get_metric_history(run.info.run_id, "pretrain/val/loss/total")
    assert len(history) == 3
    (artifact,) = client.list_artifacts(run.info.run_id, "encoder")
    assert artifact.path == "encoder/enc.pt" and artifact.file_size == out.stat().st_size


def test_pretrain_that_fails_after_starting_marks_the_tracked_run_failed(toy_data, tmp_path,
                                                                         monkeypatch):  # fmt: skip
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    import mmrl.pretrain.trainer as trainer
    from mmrl.pretrain import pretrain

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)

    def disk_full(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(trainer, "save_encoder_checkpoint", disk_full)
    env, agent, dataset = toy_data
    with pytest.raises(OSError, match="no space left"):
        pretrain(dataset, agent, env=env, objectives="bc", epochs=1, batch_size=16,
                 out=tmp_path / "enc.pt", verbose=0, track="mlflow")  # fmt: skip
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("mmrl").experiment_id])
    assert run.info.status == "FAILED"
    assert "pretrain/val/loss/bc" in run.data.metrics and not client.list_artifacts(run.info.run_id)
