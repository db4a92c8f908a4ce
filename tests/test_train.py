"""``mmrl train`` end to end on Driving-v1 with tiny settings."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch as th

from mmrl.checkpoint import latest_checkpoint
from mmrl.cli import main
from mmrl.config import ConfigError
from mmrl.train import resolve_device, train

TINY = [
    "agent.ppo.n_steps=64",
    "agent.ppo.batch_size=128",
    "agent.ppo.n_epochs=1",
    "agent.extractor.features_dim=64",
    "eval_freq=512",
    "eval_episodes=4",
    "checkpoint_freq=512",
]


def _tb_steps(run_dir: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = sorted((run_dir / "tb").iterdir())
    assert len(runs) == 1, f"a resumed run must continue one TensorBoard run, got {runs}"
    acc = EventAccumulator(str(runs[0]))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def test_cli_smoke_run_writes_every_artifact(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--env", "driving", "--agent", "ppo-concat", "--steps", "1024",
            "--n-envs", "4", "--seed", "3", "--out", str(out), "--quiet"]  # fmt: skip
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    for name in ["model.zip", "best_model.zip", "config.yaml", "metrics.json", "evaluations.jsonl"]:
        assert (out / name).is_file(), name
    assert latest_checkpoint(out / "checkpoints") is not None
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] >= 1024
    assert set(metrics["eval"]) == {"train", "test"}
    assert 0.0 <= metrics["eval"]["test"]["success_rate"] <= 1.0
    tags = _tb_tags(out)
    for tag in ["rollout/ep_rew_mean", "rollout/collision_rate", "time/env_steps_per_s",
                "eval/train/success_rate", "eval/test/success_rate"]:  # fmt: skip
        assert tag in tags, tag
    assert any(t.startswith("rollout/reward_") for t in tags)
    assert any(t.startswith("fusion/") for t in tags)
    # A finished run is not overwritten without --force.
    assert main(args) == 2
    assert "already holds a finished run" in capsys.readouterr().err


def _tb_tags(run_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = sorted((run_dir / "tb").iterdir())
    acc = EventAccumulator(str(run))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def test_resume_after_sigkill_reaches_total_steps(tmp_path):
    out = tmp_path / "run"
    total = 3072
    cmd = [sys.executable, "-m", "mmrl.cli", "train", "--env", "driving", "--agent",
           "ppo-concat", "--steps", str(total), "--n-envs", "4", "--out", str(out),
           "--quiet"]  # fmt: skip
    for item in TINY:
        cmd += ["--set", item]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONHASHSEED": "0"})
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            ckpt = latest_checkpoint(out / "checkpoints")
            if ckpt is not None and int(ckpt.name.split("_")[1]) >= 1024:
                break
            if proc.poll() is not None:
                pytest.fail(f"training exited early with {proc.returncode}")
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint written in time")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (out / "metrics.json").exists()
    resumed_from = int(latest_checkpoint(out / "checkpoints").name.split("_")[1])
    assert resumed_from < total
    run_dir = train(resume=out, verbose=0)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == total
    steps = _tb_steps(out, "time/fps")
    assert steps == sorted(steps) and steps[-1] >= total - 256
    assert min(steps) < resumed_from < max(steps)


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    cases = [
        (["train", "--env", "nope"], "unknown env preset 'nope'; available:"),
        (["train", "--agent", "ppo-nope"], "unknown agent preset 'ppo-nope'"),
        (["train", "--set", "agent.ppo.n_stepz=3"], "unknown key 'n_stepz'"),
        (["train", "--set", "novalue"], "KEY=VALUE"),
        (["train", "--steps", "0"], "--steps must be >= 1"),
        (["train", "--resume", str(tmp_path)], "no config.yaml"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and err.count("\n") == 0, err


def test_unbuildable_recipe_is_one_line_and_leaves_no_run_folder(tmp_path, capsys):
    """Issue 14 defect 3: the model is built before config.yaml is written, so the corrected
    rerun into the same --out is not refused ("already holds files")."""
    out = tmp_path / "run"
    args = ["train", "--steps", "8", "--n-envs", "2", "--out", str(out), "--quiet"]
    assert main([*args, "--set", "agent.extractor.fusion=transformer"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown fusion 'transformer'" in err, err
    assert err.startswith("mmrl train: error: agent 'ppo-concat': cannot build its model")
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(ConfigError, match=r"cannot build its model.*num_layer"):
        train(steps=8, n_envs=2, out=out, verbose=0,
              overrides=["agent.extractor.fusion=attention",
                         "agent.extractor.fusion_kwargs={num_layer: 2}"])  # fmt: skip
    assert not out.exists() or not any(out.iterdir())


def test_library_errors_name_fields_and_the_cli_names_flags(tmp_path):
    with pytest.raises(ConfigError, match=r"^n_envs must be >= 1, got 0$") as info:
        train(steps=8, n_envs=0, out=tmp_path / "r", verbose=0)
    assert info.value.cli_message() == "--n-envs must be >= 1, got 0"


def test_corrupt_checkpoint_gives_clear_error(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--agent", "ppo-concat", "--steps", "256", "--n-envs", "4",
            "--out", str(out), "--quiet", "--set", "eval_episodes=1"]  # fmt: skip
    for item in TINY[:-3]:
        args += ["--set", item]
    assert main(args) == 0
    ckpt = latest_checkpoint(out / "checkpoints")
    (ckpt / "model.zip").write_bytes(b"not a zip")
    (out / "metrics.json").unlink()
    assert main(["train", "--resume", str(out)]) == 2
    assert "not a valid SB3 model archive" in capsys.readouterr().err


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if th.cuda.is_available() else "cpu")
    if not th.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not th.cuda.is_available(), reason="no CUDA device")
def test_cuda_training_smoke(tmp_path):
    run_dir = train("driving", "ppo-concat", steps=512, n_envs=4, device="cuda",
                    out=tmp_path / "gpu", overrides=TINY, verbose=0)  # fmt: skip
    assert json.loads((run_dir / "metrics.json").read_text())["device"].startswith("cuda")


def test_resume_of_run_killed_after_last_checkpoint_only_evaluates(tmp_path):
    out = tmp_path / "run"
    overrides = [*TINY[:-3], "eval_episodes=1"]
    train("driving", "ppo-concat", steps=256, n_envs=4, out=out, overrides=overrides, verbose=0)
    (out / "metrics.json").unlink()  # as if killed between the last checkpoint and the end
    train(resume=out, verbose=0)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 256 and metrics["eval"]["train"]["episodes"] == 1


def test_observation_normalization_is_used_in_evaluation(tmp_path):
    out = tmp_path / "run"
    overrides = [*TINY[:-3], "eval_episodes=1", "agent.normalize.obs_keys=[state]"]
    train("driving", "ppo-concat", steps=256, n_envs=2, out=out, overrides=overrides, verbose=0)
    from mmrl.checkpoint import read_state

    state = read_state(latest_checkpoint(out / "checkpoints"))
    (norm,) = [layer for layer in state["env"] if layer["kind"] == "VecNormalize"]
    assert norm["obs_rms"]["state"].count > 256  # statistics were collected and checkpointed
    assert json.loads((out / "metrics.json").read_text())["eval"]["train"]["episodes"] == 1


def test_stop_success_ends_training_at_the_first_good_evaluation(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--steps", "2048", "--n-envs", "4", "--out", str(out), "--quiet",
            "--stop-success", "0"]  # fmt: skip
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 512 and metrics["stopped_early_at"] == 512
    assert len((out / "evaluations.jsonl").read_text().splitlines()) == 1
    # A resumed run may be given a stopping rule (like more steps): it stops at its next eval.
    (out / "metrics.json").unlink()
    train(resume=out, stop_success=0.0, verbose=0)
    assert json.loads((out / "metrics.json").read_text())["stopped_early_at"] == 1024
    assert main(["train", "--resume", str(out), "--stop-success", "1.5", "--quiet"]) == 2
    assert "stop_success must be in [0, 1]" in capsys.readouterr().err


def test_stop_split_watches_the_held_out_instructions(tmp_path):
    out = tmp_path / "run"
    train("driving", steps=2048, n_envs=4, out=out, overrides=TINY, stop_success=0.0,
          stop_split="test", verbose=0)  # fmt: skip
    assert json.loads((out / "metrics.json").read_text())["stopped_early_at"] == 512
    with pytest.raises(ConfigError, match="stop_split must be 'train' or 'test'"):
        train("driving", steps=512, out=tmp_path / "bad", stop_success=0.5, stop_split="val")


def _policy_tensors(model_zip: Path) -> dict[str, th.Tensor]:
    import io
    import zipfile

    with zipfile.ZipFile(model_zip) as zf:
        return th.load(io.BytesIO(zf.read("policy.pth")), map_location="cpu")


def test_resume_keeps_best_model_and_evaluation_history(tmp_path):
    """Issue 15: a resumed run restores the best score from its checkpoint (so a worse model
    does not replace best_model.zip) and ends with the uninterrupted run's evaluations.jsonl
    (the evaluations made after the checkpoint it resumed from are not repeated)."""
    out = tmp_path / "run"
    overrides = [*TINY[:-3], "eval_freq=256", "eval_episodes=2", "checkpoint_freq=256"]
    train("driving", steps=1024, n_envs=4, seed=1, out=out, overrides=overrides, verbose=0)
    history = (out / "evaluations.jsonl").read_text()
    assert [json.loads(line)["step"] for line in history.splitlines()] == [256, 512, 768, 1024]
    best = _policy_tensors(out / "best_model.zip")
    # As if killed right after the evaluation at step 1024 with the checkpoint at 512 the
    # latest one: resume from there.
    (out / "checkpoints" / "latest").write_text("step_000000000512")
    for name in ("step_000000000768", "step_000000001024"):
        shutil.rmtree(out / "checkpoints" / name)
    (out / "metrics.json").unlink()
    train(resume=out, verbose=0)
    assert (out / "evaluations.jsonl").read_text() == history
    resumed_best = _policy_tensors(out / "best_model.zip")
    assert resumed_best.keys() == best.keys()
    assert all(th.equal(resumed_best[k], best[k]) for k in best)


def test_resume_does_not_replace_a_better_best_model(tmp_path):
    """Extending a finished run (``--resume --steps``): its evaluations are no better than
    the recorded best score, so best_model.zip stays as it was."""
    out = tmp_path / "run"
    overrides = [*TINY[:-3], "eval_freq=256", "eval_episodes=1", "checkpoint_freq=256"]
    train("driving", steps=256, n_envs=4, out=out, overrides=overrides, verbose=0)
    from mmrl.checkpoint import read_state, write_checkpoint

    # Record an unbeatable best score in the last checkpoint (a best model of the past).
    ckpt = latest_checkpoint(out / "checkpoints")
    state = read_state(ckpt)
    state["evaluation"] = {"best_score": (2.0, 1e9)}
    from stable_baselines3 import PPO

    write_checkpoint(out / "checkpoints", 256, PPO.load(ckpt / "model.zip"), state)
    before = (out / "best_model.zip").read_bytes()
    train(resume=out, steps=768, verbose=0)
    steps = [json.loads(line)["step"] for line in (out / "evaluations.jsonl").open()]
    assert steps == [256, 512, 768]
    assert (out / "best_model.zip").read_bytes() == before


def test_full_disk_during_training_is_one_line_and_keeps_the_checkpoints(
    tmp_path, capsys, monkeypatch
):
    """Issue 15: a full disk gave three chained tracebacks; now one line, exit 2, and the
    checkpoints written before stay complete (a later --resume continues from them)."""
    import errno

    import mmrl.train as train_module
    from mmrl.checkpoint import read_state

    real = train_module.write_checkpoint
    calls = []

    def fills_the_disk(folder, step, *args, **kwargs):
        calls.append(step)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(folder / "x"))
        return real(folder, step, *args, **kwargs)

    monkeypatch.setattr(train_module, "write_checkpoint", fills_the_disk)
    out = tmp_path / "run"
    args = ["train", "--steps", "1024", "--n-envs", "4", "--out", str(out), "--quiet",
            "--set", "checkpoint_freq=256", "--set", "eval_freq=0"]  # fmt: skip
    for item in TINY[:-3]:
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("mmrl train: error: No space left on device: "), err
    assert read_state(latest_checkpoint(out / "checkpoints"))["num_timesteps"] == calls[0]


def _config_only_run(run_dir: Path, seed: int = 0) -> Path:
    """A run folder holding only config.yaml (the resume checks come before the checkpoint)."""
    import yaml

    from mmrl.config import RunConfig, to_dict

    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(RunConfig(seed=seed))))
    return run_dir


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--env", "navigation"], "--env cannot change a resumed run"),
        (["--agent", "ppo-mean"], "--agent cannot change a resumed run"),
        (["--n-envs", "3"], "--n-envs cannot change a resumed run"),
        (["--workers", "2"], "--n-workers cannot change a resumed run"),
        (["--seed", "5"], "--seed 5 differs from the resumed run's seed 2"),
        (["--out", "elsewhere"], "a resumed run writes to its own folder"),
    ],
)
def test_resume_refuses_options_it_would_ignore(tmp_path, capsys, extra, says):
    """Issue 15: --resume silently ignored --env, --agent, --n-envs and a new --seed."""
    run_dir = _config_only_run(tmp_path / "run", seed=2)
    assert main(["train", "--resume", str(run_dir), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]


def test_a_run_folder_in_use_is_refused(tmp_path, capsys):
    """Issue 15: two processes could write one run folder (a second --resume, or --force
    into a running run's folder). The lock is held here as another process would hold it."""
    from mmrl.checkpoint import RunLock

    run_dir = _config_only_run(tmp_path / "run")
    (run_dir / "checkpoints" / "step_000000000008").mkdir(parents=True)
    for name in ("model.zip", "state.pkl"):
        (run_dir / "checkpoints" / "step_000000000008" / name).write_bytes(b"x")
    holder = RunLock(run_dir)
    holder.acquire()
    try:
        assert main(["train", "--resume", str(run_dir)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is in use by another mmrl process (pid " in err, err
        args = ["train", "--steps", "8", "--n-envs", "2", "--out", str(run_dir), "--force",
                "--quiet", "--set", "agent.ppo.n_steps=4",
                "--set", "agent.ppo.batch_size=8"]  # fmt: skip
        assert main(args) == 2
        assert "is in use by another mmrl process" in capsys.readouterr().err
        assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints").is_dir()
    finally:
        holder.release()
    # Released (as a killed process's lock is), the folder can be used again.
    assert main(args) == 0


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path, capsys):
    """Issue 15: another fusion's checkpoints copied into a run were loaded (or failed deep
    inside SB3); the checkpoint's recorded config must match config.yaml."""
    overrides = [*TINY[:-3], "eval_episodes=1"]
    runs = {}
    for fusion in ("concat", "mean"):
        runs[fusion] = tmp_path / fusion
        train("driving", steps=256, n_envs=4, out=runs[fusion], verbose=0,
              overrides=[*overrides, f"agent.extractor.fusion={fusion}"])  # fmt: skip
    shutil.rmtree(runs["concat"] / "checkpoints")
    shutil.copytree(runs["mean"] / "checkpoints", runs["concat"] / "checkpoints")
    (runs["concat"] / "metrics.json").unlink()
    assert main(["train", "--resume", str(runs["concat"]), "--steps", "512"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "agent.extractor.fusion: 'mean' (checkpoint) vs 'concat' (config.yaml)" in err, err


def test_diverged_training_is_one_line(tmp_path, capsys, monkeypatch):
    """Issue 15: NaN policy outputs (a diverged update) ended in SB3's ValueError traceback."""
    import mmrl.train as train_module

    real = train_module.build_model

    def nan_model(*args, **kwargs):
        model = real(*args, **kwargs)
        with th.no_grad():
            for p in model.policy.action_net.parameters():
                p.fill_(float("nan"))
        return model

    monkeypatch.setattr(train_module, "build_model", nan_model)
    args = ["train", "--steps", "256", "--n-envs", "4", "--out", str(tmp_path / "run"),
            "--quiet", "--set", "eval_freq=0"]  # fmt: skip
    for item in TINY[:-3]:
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "training diverged at step 0" in err, err


def test_worker_processes_train_the_same_model(tmp_path):
    """``--workers 2`` steps the same observations in two processes: the same weights, and
    a checkpoint that holds the workers' simulators (exact resume)."""
    from stable_baselines3 import PPO

    from mmrl.checkpoint import read_state

    models = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        args = ["train", "--env", "driving", "--steps", "512", "--n-envs", "4", "--seed", "1",
                "--workers", str(workers), "--out", str(out), "--quiet"]  # fmt: skip
        for item in [*TINY, "eval_freq=100000", "env.kwargs.camera_size=16"]:
            args += ["--set", item]
        assert main(args) == 0
        models[workers] = PPO.load(out / "model.zip", device="cpu").policy.state_dict()
        kinds = [
            layer["kind"] for layer in read_state(latest_checkpoint(out / "checkpoints"))["env"]
        ]
        assert kinds[-1] == ("BatchedVecEnv" if workers == 1 else "WorkerVecEnv")
    assert models[1].keys() == models[2].keys()
    for name, tensor in models[1].items():
        assert th.equal(tensor, models[2][name]), name


def test_workers_beyond_the_copies_is_one_line(tmp_path, capsys):
    args = ["train", "--n-envs", "2", "--workers", "3", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "--n-workers must be between 1 and the number of copies (2), got 3" in err
    )
    assert main(["train", "--workers", "0", "--out", str(tmp_path / "r")]) == 2
    assert "--workers must be >= 1, got 0" in capsys.readouterr().err


def test_checkpointed_worker_pool_resumes_exactly():
    import numpy as np

    from mmrl import make_vec_env
    from mmrl.train import env_state, restore_env_state

    def pool(seed):
        return make_vec_env("mmrl/Driving-v1", n_envs=3, seed=seed, n_workers=2, camera_size=16)

    a, b = pool(0), pool(1)
    try:
        a.reset()
        a.step(np.zeros(3, np.int64))
        states = env_state(a)
        b.reset()
        assert restore_env_state(b, states) is True
        for _ in range(3):
            obs_a, rew_a, *_ = a.step(np.ones(3, np.int64))
            obs_b, rew_b, *_ = b.step(np.ones(3, np.int64))
            np.testing.assert_array_equal(obs_a["camera"], obs_b["camera"])
            np.testing.assert_array_equal(rew_a, rew_b)
    finally:
        a.close()
        b.close()


def test_the_training_env_is_closed_when_learning_raises(tmp_path, monkeypatch):
    import mmrl.train as train_module
    from mmrl.envs.vec_env import BatchedVecEnv, vec_env_layers

    closed, training = [], []
    original = BatchedVecEnv.close
    monkeypatch.setattr(BatchedVecEnv, "close", lambda self: closed.append(self) or original(self))

    def fail(model, *args, **kwargs):
        training.append(vec_env_layers(model.get_env())[-1])
        raise RuntimeError("learning failed")

    monkeypatch.setattr(train_module, "_learn", fail)
    with pytest.raises(RuntimeError, match="learning failed"):
        train("driving", steps=64, n_envs=2, out=tmp_path / "run", overrides=TINY, verbose=0)
    # The training env (its worker processes, with n_workers) is not left to the collector.
    assert any(venv is training[0] for venv in closed)
