"""Recipes beyond PPO (issue 17): A2C, RecurrentPPO, DQN and SAC with ``MultimodalExtractor``.

Each trains a few hundred steps on the toy task through ``mmrl.train``, resumes, is loaded by
``load_policy`` with the class that saved it, acts, and collects a dataset.
"""

from __future__ import annotations

import json

import minari
import numpy as np
import pytest
import yaml

from mmrl.agent import algorithm_class
from mmrl.cli import main
from mmrl.collect import collect
from mmrl.config import ALGORITHMS, ConfigError, resolve_run_config
from mmrl.make import make_training_vec_env
from mmrl.policies import algorithm_class as saved_class
from mmrl.policies import load_policy
from mmrl.rollout import collect_episodes
from mmrl.train import train

pytest.importorskip("sb3_contrib")

#: A small run: evaluated and checkpointed at step 64 and at the end.
SMALL = [
    "eval_freq=64",
    "eval_episodes=2",
    "checkpoint_freq=64",
    "agent.extractor.features_dim=16",
    "agent.extractor.fusion=concat",
    "agent.ppo.n_steps=16",
    "agent.ppo.batch_size=16",
    "agent.recurrent.lstm_hidden_size=8",
    "agent.off_policy.buffer_size=256",
    "agent.off_policy.learning_starts=32",
    "agent.off_policy.batch_size=16",
    "agent.off_policy.target_update_interval=64",
]
CLASSES = {"ppo": "PPO", "a2c": "A2C", "recurrent-ppo": "RecurrentPPO", "dqn": "DQN",
           "sac": "SAC"}  # fmt: skip


def _presets(toy, folder, algo):
    env, _ = toy.write_presets(folder, camera_size=8)
    if algo == "sac":  # continuous actions
        path = folder / "toy-env-continuous.yaml"
        path.write_text(
            f"env_id: {toy.TOY_ID}\nn_envs: 2\nkwargs:\n  camera_size: 8\n  continuous: true\n"
        )
        env = str(path)
    agent = folder / f"{algo}.yaml"
    agent.write_text(f"algo: {algo}\npolicy:\n  pi: [16]\n  vf: [16]\n")
    return env, str(agent)


@pytest.mark.parametrize("algo", ["a2c", "recurrent-ppo", "dqn", "sac"])
def test_each_algorithm_trains_resumes_loads_acts_and_collects(algo, toy, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    env, agent = _presets(toy, tmp_path, algo)
    run = train(env, agent, steps=128, seed=0, out=tmp_path / "run", device="cpu", verbose=0,
                overrides=SMALL)  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 128
    assert 0.0 <= metrics["eval"]["train"]["success_rate"] <= 1.0
    assert len((run / "evaluations.jsonl").read_text().splitlines()) == 2
    assert yaml.safe_load((run / "config.yaml").read_text())["agent"]["algo"] == algo

    # The model file says which class saved it; load_policy uses it.
    assert saved_class(run / "model.zip").__name__ == CLASSES[algo]
    policy = load_policy(run)
    assert type(policy.model).__name__ == CLASSES[algo]
    assert policy.recurrent == (algo == "recurrent-ppo")
    venv = make_training_vec_env(policy.env_config, n_envs=2, seed=5)
    policy.attach(venv)
    obs = venv.reset()
    actions = policy.act(obs)
    assert actions.shape[0] == 2 and venv.action_space.contains(actions[0])
    assert policy.act(obs, episode_start=np.zeros(2, dtype=bool)).shape[0] == 2
    episodes = collect_episodes(policy.predict, venv, 3)
    assert len(episodes) == 3
    venv.close()

    # Resume continues the same algorithm from the last checkpoint.
    resumed = train(resume=run, steps=192, device="cpu", verbose=0)
    assert json.loads((resumed / "metrics.json").read_text())["steps"] == 192
    assert type(load_policy(run).model).__name__ == CLASSES[algo]

    result = collect(env=None, policy=str(run), episodes=3, dataset_id=f"toy/{algo}-v0",
                     n_envs=2, seed=1)  # fmt: skip
    assert result.episodes == 3
    assert minari.load_dataset(f"toy/{algo}-v0").total_episodes == 3


def test_a_recurrent_policy_threads_its_state(toy, tmp_path):
    env, agent = _presets(toy, tmp_path, "recurrent-ppo")
    run = train(env, agent, steps=64, out=tmp_path / "run", device="cpu", verbose=0,
                overrides=[*SMALL, "eval_freq=0"])  # fmt: skip
    policy = load_policy(run)
    venv = make_training_vec_env(policy.env_config, n_envs=2, seed=0)
    seen = []

    def predict(obs, state=None, episode_start=None, deterministic=True):
        seen.append(state)
        return policy.predict(obs, state, episode_start, deterministic)

    collect_episodes(predict, venv, 2)
    assert seen[0] is None and all(s is not None for s in seen[1:]), "state must be threaded"

    # act() keeps the LSTM state: a second call must say which copies start an episode.
    obs = venv.reset()
    policy.act(obs)
    with pytest.raises(ConfigError, match="needs episode_start"):
        policy.act(obs)
    policy.reset()
    policy.act(obs)
    venv.close()


@pytest.mark.parametrize(
    ("algo", "env_kind", "message"),
    [
        ("dqn", "continuous", "dqn needs a Discrete action space"),
        ("sac", "discrete", "sac needs a Box action space"),
    ],
)
def test_an_algorithm_that_does_not_fit_the_action_space_is_refused(
    toy, tmp_path, algo, env_kind, message
):
    env, _ = _presets(toy, tmp_path, "sac" if env_kind == "continuous" else "dqn")
    (tmp_path / "x.yaml").write_text(f"algo: {algo}\n")
    with pytest.raises(ConfigError, match=message):
        train(env, str(tmp_path / "x.yaml"), steps=32, out=tmp_path / "run", verbose=0,
              device="cpu", overrides=SMALL)  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_unknown_algorithm_is_one_line_exit_2(toy, tmp_path, capsys):
    env, _ = toy.write_presets(tmp_path)
    (tmp_path / "x.yaml").write_text("algo: td4\n")
    code = main(["train", "--env", env, "--agent", str(tmp_path / "x.yaml"), "--steps", "32",
                 "--out", str(tmp_path / "run"), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "agent.algo must be one of ppo, a2c, recurrent-ppo, dqn, sac, got 'td4'" in err


def test_every_algorithm_has_a_class_and_a_recipe():
    for algo in ALGORITHMS:
        assert algorithm_class(algo).__name__ == CLASSES[algo]
    for algo, env in [("a2c", "driving"), ("recurrent-ppo", "navigation"), ("dqn", "driving"),
                      ("sac", "driving-continuous")]:  # fmt: skip
        config = resolve_run_config(env, f"{algo}-concat")
        assert config.agent.algo == algo
