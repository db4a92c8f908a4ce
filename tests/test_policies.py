"""One loader for SB3 model files (issue 14): the algorithm class comes from the zip."""

from __future__ import annotations

import pytest
from stable_baselines3 import DQN, PPO

from mmrl.errors import CheckpointError
from mmrl.policies import algorithm_class, load_sb3_model
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


@pytest.mark.parametrize("cls", [PPO, DQN])
def test_models_load_with_the_class_that_saved_them(zips, cls):
    assert algorithm_class(zips[cls] / "model.zip") is cls
    assert type(load_sb3_model(zips[cls] / "model.zip")) is cls


def test_bench_loads_a_dqn_run_with_dqn(zips):
    from mmrl.bench.runner import load_policy

    assert type(load_policy(zips[DQN])) is DQN


def test_not_a_model_file_is_one_clear_error(tmp_path):
    (tmp_path / "x.zip").write_text("nope")
    with pytest.raises(CheckpointError, match="not a valid SB3 model archive"):
        load_sb3_model(tmp_path / "x.zip")
