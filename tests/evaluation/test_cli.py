import csv
import json
import pickle
import shutil

import numpy as np
import pytest
import yaml

from mmrl.cli import main

TINY = [
    "agent.extractor.features_dim=32",
    "agent.policy.pi=[32]",
    "agent.policy.vf=[32]",
    "agent.ppo.n_steps=16",
    "agent.ppo.batch_size=16",
    "agent.ppo.n_epochs=1",
    "eval_episodes=2",
    "eval_freq=0",
    "checkpoint_freq=1000",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, corridor):
    """A real (tiny) ``mmrl train`` run folder on the corridor."""
    from mmrl.train import train

    root = tmp_path_factory.mktemp("runs")
    preset = root / "corridor.yaml"
    preset.write_text(f"env_id: {corridor.ENV_ID}\nn_envs: 2\n")
    return train(
        str(preset),
        "ppo-concat",
        steps=32,
        seed=0,
        out=root / "run-a",
        overrides=TINY,
        device="cpu",
        verbose=0,
    )


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    for needle in needles:
        assert needle in err, err
    return err


def test_evaluate_writes_table_json_and_csv(expert_zip, corridor, tmp_path, capsys):
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    status = main(
        [
            "evaluate",
            str(expert_zip),
            "--env",
            corridor.ENV_ID,
            "--episodes",
            "8",
            "--n-envs",
            "4",
            "--ablate",
            "text",
            "--noise",
            "lidar=0.2",
            "--json",
            str(out_json),
            "--csv",
            str(out_csv),
            "--bootstrap",
            "200",
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "return IQM" in out and "success" in out and "robustness" in out and "-text" in out
    data = json.loads(out_json.read_text())
    assert [r["condition"] for r in data["results"]] == ["clean", "-text", "noise lidar=0.2"]
    clean = data["results"][0]
    assert clean["episodes"] == 8 and len(clean["per_episode"]["return"]) == 8
    assert clean["success_rate"]["value"] == 1.0
    assert clean["mean_return"]["low"] <= clean["mean_return"]["value"]
    assert set(clean["by_group"]) <= {"left", "right"}
    assert [c["condition"] for c in data["comparisons"]] == ["-text", "noise lidar=0.2"]
    with open(out_csv) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["condition"] for r in rows] == ["clean", "-text", "noise lidar=0.2"]
    assert rows[0]["delta_success_rate"] == "" and rows[1]["delta_success_rate"] != ""
    assert float(rows[0]["success_rate"]) == 1.0
    assert float(rows[1]["mean_return"]) == pytest.approx(
        data["results"][1]["mean_return"]["value"]
    )


def test_several_models_side_by_side(expert_zip, random_zip, corridor, tmp_path, capsys):
    out_json = tmp_path / "r.json"
    assert (
        main(
            [
                "evaluate",
                str(expert_zip),
                str(random_zip),
                "--env",
                corridor.ENV_ID,
                "--episodes",
                "6",
                "--split",
                "train,test",
                "--json",
                str(out_json),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "expert0 [train]" in out and "random0 [test]" in out
    results = json.loads(out_json.read_text())["results"]
    assert [(r["label"], r["split"]) for r in results] == [
        ("expert0", "train"),
        ("expert0", "test"),
        ("random0", "train"),
        ("random0", "test"),
    ]


def test_run_folder_and_its_checkpoint_evaluate_without_env(run_dir, tmp_path, capsys):
    out_json = tmp_path / "r.json"
    checkpoint = next((run_dir / "checkpoints").glob("step_*")) / "model.zip"
    assert (
        main(
            [
                "evaluate",
                str(run_dir),
                str(checkpoint),
                "--episodes",
                "4",
                "--json",
                str(out_json),
                "--quiet",
            ]
        )
        == 0
    )
    labels = [r["label"] for r in json.loads(out_json.read_text())["results"]]
    assert labels == ["run-a", f"run-a/{checkpoint.parent.name}"]


def test_run_folder_normalization_statistics_are_applied(run_dir, tmp_path):
    from stable_baselines3.common.running_mean_std import RunningMeanStd
    from stable_baselines3.common.vec_env import VecNormalize

    from mmrl.evaluation.rollouts import make_eval_vec_env
    from mmrl.policies import load_policy

    run = tmp_path / "normalized"
    shutil.copytree(run_dir, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["agent"]["normalize"]["obs_keys"] = ["state"]
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    checkpoint = next((run / "checkpoints").glob("step_*"))
    state = pickle.loads((checkpoint / "state.pkl").read_bytes())
    rms = {"state": RunningMeanStd(shape=(2,))}
    rms["state"].mean[:] = 0.5
    rms["state"].var[:] = 0.25
    state["env"] = [{"kind": "VecNormalize", "obs_rms": rms}, *state["env"]]
    (checkpoint / "state.pkl").write_bytes(pickle.dumps(state))

    policy = load_policy(run)
    assert policy.obs_rms["state"].mean[0] == 0.5
    # The evaluation env emits raw observations; the policy normalizes them itself.
    venv = make_eval_vec_env(policy.config.env, "train", 2, 0)
    assert not isinstance(venv, VecNormalize)
    obs = policy.normalize(venv.reset())
    # Raw state at reset is [elapsed 0, last action 2/2 = 1]: (x - 0.5) / 0.5 = [-1, 1].
    np.testing.assert_allclose(obs["state"], [[-1.0, 1.0]] * 2, atol=1e-6)
    assert obs["camera"].dtype == np.uint8  # only the configured key is normalized

    shutil.rmtree(run / "checkpoints")
    with pytest.raises(Exception, match="no checkpoint with the VecNormalize statistics"):
        load_policy(run / "model.zip")


def test_bare_model_without_env_is_refused(expert_zip, capsys):
    assert main(["evaluate", str(expert_zip)]) == 2
    _one_line_error(capsys, "bare model file", "--env", "driving")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["evaluate", "/nonexistent/run"], ["no such run folder or model file"]),
        (["evaluate", "{zip}", "--env", "nowhere"], ["unknown env preset 'nowhere'"]),
        (["evaluate", "{zip}", "--env", "mmrl/Navigation-v1"], ["does not fit", "key 'camera'"]),
        (["evaluate", "{zip}", "--env", "{env}", "--split", "val"], ["--split"]),
        (["evaluate", "{zip}", "--env", "{env}", "--ablate", "depth"], ["unknown observation key"]),
        (["evaluate", "{zip}", "--env", "{env}", "--noise", "sonar=1"], ["unknown modality"]),
        (["evaluate", "{zip}", "--env", "{env}", "--video", "x.avi"], [".mp4"]),
        (["evaluate", "{zip}", "--env", "{env}", "--json", "/nonexistent/r.json"], ["--json"]),
        (["evaluate", "{zip}", "--env", "{env}", "--episodes", "0"], ["--episodes"]),
    ],
)
def test_bad_input_exits_2_with_one_line(args, needles, expert_zip, corridor, capsys):
    argv = [a.format(zip=expert_zip, env=corridor.ENV_ID) for a in args]
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse type errors exit from inside the parser
        status = exit_.code
    assert status == 2
    _one_line_error(capsys, *needles)


def test_not_a_model_file_is_refused(tmp_path, corridor, capsys):
    bogus = tmp_path / "model.zip"
    bogus.write_bytes(b"not a zip")
    assert main(["evaluate", str(bogus), "--env", corridor.ENV_ID]) == 2
    _one_line_error(capsys, "not a valid SB3 model archive")
    folder = tmp_path / "empty"
    folder.mkdir()
    assert main(["evaluate", str(folder)]) == 2
    _one_line_error(capsys, "not an mmrl run folder")


def test_video_from_the_cli(expert_zip, random_zip, corridor, tmp_path, capsys):
    from mmrl.evaluation.encoding import decode_video

    video = tmp_path / "eval.mp4"
    assert (
        main(
            [
                "evaluate",
                str(expert_zip),
                str(random_zip),
                "--env",
                corridor.ENV_ID,
                "--episodes",
                "4",
                "--video",
                str(video),
                "--video-episodes",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for label in ("expert0", "random0"):
        path = tmp_path / f"eval-{label}.mp4"
        assert path.is_file() and f"wrote {path}" in out
        codec, frames = decode_video(path)
        assert codec == "h264" and len(frames) >= 2


def test_model_whose_weights_do_not_fit_its_architecture_is_one_line(
    expert_zip, corridor, tmp_path, capsys
):
    import io
    import zipfile

    import torch as th

    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(expert_zip) as src, zipfile.ZipFile(broken, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "policy.pth":
                state = th.load(io.BytesIO(data), weights_only=False)
                key = next(k for k, v in state.items() if v.ndim == 2)
                state[key] = th.zeros(state[key].shape[0] + 1, state[key].shape[1])
                buf = io.BytesIO()
                th.save(state, buf)
                data = buf.getvalue()
            dst.writestr(name, data)
    assert main(["evaluate", str(broken), "--env", corridor.ENV_ID, "--episodes", "1"]) == 2
    _one_line_error(capsys, "cannot load", "size mismatch")


def test_evaluate_expert_and_random_by_name(tmp_path, capsys):
    """``mmrl evaluate expert --env ...`` and ``random`` load through ``load_policy``."""
    out = tmp_path / "ref.json"
    argv = ["evaluate", "expert", "random", "--env", "navigation", "--episodes", "4",
            "--n-envs", "4", "--bootstrap", "20", "--json", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    results = {r["label"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"expert", "random"}
    assert results["expert"]["success_rate"]["value"] > results["random"]["success_rate"]["value"]
    assert main(["evaluate", "expert"]) == 2
    _one_line_error(capsys, "expert: no environment to act in", "pass --env")
