"""One loader for every policy reference (issue 14): ``mmrl.policies.load_policy``."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN, PPO

from mmrl.errors import CheckpointError, ConfigError, SpaceMismatchError
from mmrl.policies import (
    ModelPolicy,
    ReferencePolicy,
    algorithm_class,
    find_expert,
    load_policy,
    load_sb3_model,
    normalize_observations,
)
from mmrl.testing import RandomDictEnv


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    from gymnasium import spaces

    from mmrl import MultimodalExtractor

    root = tmp_path_factory.mktemp("zips")
    obs = spaces.Dict({"state": spaces.Box(-1, 1, (3,)), "lidar": spaces.Box(0, 1, (8,))})
    env = RandomDictEnv(obs, spaces.Discrete(3))
    kwargs = {"features_extractor_class": MultimodalExtractor,
              "features_extractor_kwargs": {"fusion": "concat", "features_dim": 8}}  # fmt: skip
    paths = {}
    for cls in (PPO, DQN):
        extra = {"buffer_size": 16} if cls is DQN else {"n_steps": 8, "batch_size": 8}
        run = root / cls.__name__.lower()
        run.mkdir()
        cls("MultiInputPolicy", env, policy_kwargs=kwargs, **extra).save(run / "model.zip")
        paths[cls] = run
    return paths


def _venv(policy, n=3):
    from mmrl.make import make_training_vec_env

    return make_training_vec_env(policy.require_env(), n_envs=n, seed=0)


@pytest.mark.parametrize("cls", [PPO, DQN])
def test_models_load_with_the_class_that_saved_them(zips, cls):
    assert algorithm_class(zips[cls] / "model.zip") is cls
    assert type(load_sb3_model(zips[cls] / "model.zip")) is cls
    policy = load_policy(zips[cls] / "model.zip")
    assert type(policy.model) is cls and policy.kind == "model"


def test_not_a_model_file_is_one_clear_error(tmp_path):
    (tmp_path / "x.zip").write_text("nope")
    with pytest.raises(CheckpointError, match="not a valid SB3 model archive"):
        load_sb3_model(tmp_path / "x.zip")
    with pytest.raises(CheckpointError, match="not a valid SB3 model archive"):
        load_policy(tmp_path / "x.zip")
    with pytest.raises(CheckpointError, match="no such run folder or model file"):
        load_policy(tmp_path / "typo")
    with pytest.raises(CheckpointError, match="not an mmrl run folder"):
        load_policy(tmp_path)


def test_a_run_folder_and_each_of_its_models_load_and_act(toy_run):
    checkpoint = toy_run / "checkpoints" / "step_000000000064"
    refs = {
        toy_run: "run",
        toy_run / "model.zip": "run",
        toy_run / "best_model.zip": "run/best_model",
        checkpoint: "run/step_000000000064",
        checkpoint / "model.zip": "run/step_000000000064",
    }
    for ref, label in refs.items():
        policy = load_policy(ref)
        assert isinstance(policy, ModelPolicy) and policy.kind == "run", ref
        assert policy.label == label and policy.run.path == toy_run
        assert policy.checkpoint == checkpoint
        assert policy.env_config.env_id == "mmrltest/Toy-v0"  # the run's, without --env
        assert set(policy.obs_rms) == {"state"}
        venv = _venv(policy)
        policy.attach(venv)
        actions = policy.act(venv.reset())
        assert actions.shape == (3,) and venv.action_space.contains(int(actions[0]))
        venv.close()


def test_a_killed_run_acts_with_its_newest_checkpoint(toy_run, tmp_path):
    run = tmp_path / "killed"
    shutil.copytree(toy_run, run)
    (run / "model.zip").unlink()
    policy = load_policy(run)
    assert policy.model_path == run / "checkpoints" / "step_000000000064" / "model.zip"


def test_a_bare_model_file_needs_an_environment(toy_run, tmp_path):
    shutil.copy(toy_run / "model.zip", tmp_path / "bare.zip")
    policy = load_policy(tmp_path / "bare.zip")
    assert policy.kind == "model" and policy.run is None and policy.obs_rms is None
    with pytest.raises(ConfigError, match=r"bare model file .* pass --env"):
        policy.require_env()
    policy = load_policy(tmp_path / "bare.zip", env="mmrltest/Toy-v0")
    venv = _venv(policy)
    policy.attach(venv)
    assert policy.act(venv.reset()).shape == (3,)


@pytest.mark.parametrize("name", ["expert", "random"])
def test_expert_and_random_load_and_act(toy, name):
    from mmrl.envs.vec_env import BatchedVecEnv

    policy = load_policy(name, env="mmrltest/Toy-v0", seed=4)
    assert isinstance(policy, ReferencePolicy) and policy.policy is None
    assert policy.env_config.env_id == "mmrltest/Toy-v0"
    venv = BatchedVecEnv(toy.ToySimulator(4))  # the expert acts from the batched simulator
    obs = venv.reset()
    with pytest.raises(RuntimeError, match="attach"):
        policy.act(obs)
    policy.attach(venv)
    actions = policy.act(obs)
    assert actions.shape == (4,)
    if name == "expert":
        np.testing.assert_array_equal(actions, find_expert(venv)())
    else:
        policy.attach(venv)  # the same seed restarts the same actions
        np.testing.assert_array_equal(policy.act(obs), actions)


def test_the_run_normalization_is_what_the_network_sees(toy_run):
    """Fails if normalization were ignored: the network must receive normalized state."""
    policy = load_policy(toy_run)
    venv = _venv(policy)
    obs = venv.reset()
    seen = []
    real = policy.model.predict

    def spy(observation, *args, **kwargs):
        seen.append(observation)
        return real(observation, *args, **kwargs)

    policy.model.predict = spy
    policy.act(obs)
    rms = policy.obs_rms["state"]
    expected = np.clip((obs["state"] - rms.mean) / np.sqrt(rms.var + 1e-8), -10, 10)
    np.testing.assert_allclose(seen[0]["state"], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(seen[0]["state"], obs["state"])
    np.testing.assert_array_equal(seen[0]["camera"], obs["camera"])  # not a normalized key


def test_extreme_statistics_change_the_actions(toy_run, tmp_path):
    """A run whose saved statistics are extreme acts on clipped (+-10) state: unlike the same
    network fed raw observations. The statistics come from the checkpoint, not model.zip."""
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    run = tmp_path / "extreme"
    shutil.copytree(toy_run, run)
    checkpoint = run / "checkpoints" / "step_000000000064"
    state = pickle.loads((checkpoint / "state.pkl").read_bytes())
    for layer in state["env"]:
        if layer["kind"] == "VecNormalize":
            shape = layer["obs_rms"]["state"].mean.shape
            layer["obs_rms"]["state"] = rms = RunningMeanStd(shape=shape)
            rms.mean[:], rms.var[:] = -1e3, 1.0
    (checkpoint / "state.pkl").write_bytes(pickle.dumps(state))
    policy = load_policy(run)
    venv = _venv(policy, n=64)
    obs = venv.reset()
    network = policy.policy

    def probs(observation):
        with th.no_grad():
            tensor, _ = network.obs_to_tensor(observation)
            return network.get_distribution(tensor).distribution.probs.numpy()

    raw, normalized = probs(obs), probs(policy.normalize(obs))
    assert np.all(policy.normalize(obs)["state"] == 10.0)
    assert not np.allclose(raw, normalized, atol=1e-4)
    np.testing.assert_array_equal(policy.act(obs), normalized.argmax(axis=1))


def test_a_run_that_normalizes_without_statistics_is_refused(toy_run, tmp_path):
    run = tmp_path / "nostats"
    shutil.copytree(toy_run, run)
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(CheckpointError, match="no checkpoint with the VecNormalize statistics"):
        load_policy(run)


def test_a_policy_for_other_spaces_is_refused_on_attach(zips, toy_run):
    policy = load_policy(zips[PPO] / "model.zip", env="mmrltest/Toy-v0")
    venv = _venv(policy)
    with pytest.raises(SpaceMismatchError, match="keys only in the environment"):
        policy.attach(venv, "environment mmrltest/Toy-v0")


def test_normalize_observations_matches_vec_normalize():
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    rms = {"state": RunningMeanStd(shape=(2,))}
    rms["state"].mean[:] = [1.0, -1.0]
    rms["state"].var[:] = [4.0, 0.01]
    obs = {"state": np.array([[3.0, -1.0], [1.0, 1.0]], dtype=np.float32), "text": np.ones((2, 3))}
    out = normalize_observations(obs, rms)
    np.testing.assert_allclose(out["state"], [[1.0, 0.0], [0.0, 10.0]], atol=1e-4)  # clipped
    assert out["text"] is obs["text"] and out["state"].dtype == np.float32
