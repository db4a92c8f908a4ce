"""``mmrl export``: a run as a self-contained folder that mmrl and plain SB3 both read."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from mmrl.cli import main
from mmrl.config import load_agent_preset, load_env_preset
from mmrl.evaluation.encoding import decode_video
from mmrl.export import EXPORT_FILES, export_run
from mmrl.make import make_training_vec_env
from mmrl.policies import load_policy
from mmrl.runs import RunFolder


@pytest.fixture(scope="module")
def exported(toy_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "toy-ppo"
    result = export_run(toy_run, out, preview_episodes=2)
    return out, result


def test_the_folder_holds_model_presets_statistics_card_and_preview(toy_run, exported):
    out, result = exported
    names = {p.name for p in out.iterdir()}
    assert names == set(result.files) <= set(EXPORT_FILES)
    assert {"model.zip", "config.yaml", "env.yaml", "agent.yaml", "vec_normalize.pkl",
            "results.json", "replay.mp4", "README.md", "evaluations.jsonl"} <= names  # fmt: skip
    config = RunFolder(toy_run).config()
    assert load_env_preset(str(out / "env.yaml")) == config.env
    assert load_agent_preset(str(out / "agent.yaml")) == config.agent
    codec, frames = decode_video(out / "replay.mp4")
    assert codec == "h264" and len(frames) >= 2
    results = json.loads((out / "results.json").read_text())
    assert results["env_id"] == "mmrltest/Toy-v0"
    assert results["n_evaluation_episodes"] == config.eval_episodes


def test_the_model_card_states_task_spaces_metrics_command_and_versions(toy_run, exported):
    out, _ = exported
    card = (out / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "stable-baselines3" and "mmrltest/Toy-v0" in meta["tags"]
    metric_types = {m["type"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metric_types == {"mean_reward", "success_rate"}
    final = RunFolder(toy_run).metrics()["eval"]["train"]
    assert f"| train instructions | {final['episodes']} | {final['success_rate']:.1%} [" in body
    for needle in ("| camera | Box | (3, 16, 16) | uint8 | [0, 255] |", "| 32 |", "| 64 |",
                   "mmrl train --env env.yaml --agent agent.yaml --steps 64 --seed 0",
                   "| stable-baselines3 |", "| torch |", "vec_normalize.pkl"):  # fmt: skip
        assert needle in body, needle


def test_load_policy_reads_it_like_the_run(toy_run, exported):
    out, _ = exported
    original, copy = load_policy(toy_run), load_policy(out)
    assert copy.env_config == original.env_config
    for key in ("state",):
        np.testing.assert_array_equal(copy.obs_rms[key].mean, original.obs_rms[key].mean)
        np.testing.assert_array_equal(copy.obs_rms[key].var, original.obs_rms[key].var)
    venv = make_training_vec_env(copy.require_env(), n_envs=4, seed=3)
    obs = venv.reset()
    copy.attach(venv)
    original.attach(venv)
    np.testing.assert_array_equal(copy.act(obs), original.act(obs))
    venv.close()


def test_plain_sb3_reads_the_model_and_the_normalization(toy_run, exported):
    out, _ = exported
    model = PPO.load(out / "model.zip", device="cpu")
    reference = PPO.load(toy_run / "model.zip", device="cpu")
    for a, b in zip(model.policy.parameters(), reference.policy.parameters()):
        assert (a == b).all()
    venv = VecNormalize.load(str(out / "vec_normalize.pkl"), make_training_vec_env(
        load_policy(out).require_env(), n_envs=2, seed=0))  # fmt: skip
    venv.training = False
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (2,)
    venv.close()


def test_mmrl_evaluate_reads_the_folder(exported, capsys):
    out, _ = exported
    assert main(["evaluate", str(out), "--episodes", "2", "--n-envs", "2"]) == 0
    assert out.name in capsys.readouterr().out


def test_cli_export_and_its_bad_inputs(toy_run, tmp_path, capsys):
    out = tmp_path / "share"
    assert main(["export", str(toy_run), "--out", str(out), "--preview-episodes", "0",
                 "--best"]) == 0  # fmt: skip
    assert "wrote" in capsys.readouterr().out and not (out / "replay.mp4").exists()
    assert (out / "model.zip").read_bytes() == (toy_run / "best_model.zip").read_bytes()
    cases = [
        (["export", str(toy_run), "--out", str(out)], "not an empty folder (use --force)"),
        (["export", str(tmp_path), "--out", str(tmp_path / "x")], "not an mmrl run folder"),
        (["export", str(toy_run), "--out", str(tmp_path / "no" / "x")], "does not exist"),
        (["export", str(toy_run), "--out", str(tmp_path / "y"), "--preview-episodes", "-1"],
         "--preview-episodes must be >= 0"),
        (["export", str(toy_run), "--out", str(toy_run)], "the run folder itself"),
    ]  # fmt: skip
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("mmrl export: error:") and needle in err
    assert not (tmp_path / "y").exists()
    assert main(["export", str(toy_run), "--out", str(out), "--force",
                 "--preview-episodes", "0"]) == 0  # fmt: skip
    assert (out / "model.zip").read_bytes() == (toy_run / "model.zip").read_bytes()
