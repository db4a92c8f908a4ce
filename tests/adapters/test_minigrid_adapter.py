"""make_minigrid: spaces, contents, success info, SB3 compatibility and the missing extra."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mmrl.adapters import make_minigrid, make_minigrid_vec_env

BABYAI_IDS = ("BabyAI-GoToRedBallGrey-v0", "BabyAI-GoToLocal-v0", "BabyAI-PutNextLocal-v0")

# SB3 warns that NatureCNN needs 36x36 images; mmrl's encoders take the 28x28 camera.
pytestmark = pytest.mark.filterwarnings("ignore:The minimal resolution for an image")


@pytest.fixture(autouse=True)
def _needs_minigrid(request):
    if "missing_extra" not in request.node.name:
        pytest.importorskip("minigrid")


@pytest.mark.parametrize("env_id", BABYAI_IDS)
def test_babyai_levels_pass_sb3_check_env(env_id):
    from stable_baselines3.common.env_checker import check_env

    env = make_minigrid(env_id)
    assert set(env.observation_space.spaces) == {"camera", "text", "state"}
    assert env.observation_space["camera"].shape == (28, 28, 3)
    assert env.observation_space["text"].dtype == np.int64
    check_env(env)
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        assert env.get_wrapper_attr("tokenizer").decode(obs["text"]) == info["instruction"]


def test_observation_contents_and_options():
    env = make_minigrid("BabyAI-GoToLocal-v0", tile_size=2, direction="scalar", max_len=8)
    assert env.observation_space["camera"].shape == (14, 14, 3)
    assert env.observation_space["text"].shape == (8,)
    obs, _ = env.reset(seed=0)
    assert obs["state"].shape == (1,)
    np.testing.assert_allclose(obs["state"], [env.unwrapped.agent_dir / 3])

    env = make_minigrid("BabyAI-GoToLocal-v0")
    obs, _ = env.reset(seed=0)
    for action in (0, 0, 2):
        np.testing.assert_array_equal(obs["state"], np.eye(4)[env.unwrapped.agent_dir])
        obs, *_ = env.step(action)
    frame = env.unwrapped.get_frame(tile_size=4, agent_pov=True)
    np.testing.assert_array_equal(obs["camera"], frame)


def test_seeded_resets_are_deterministic():
    a, b = make_minigrid("BabyAI-PutNextLocal-v0"), make_minigrid("BabyAI-PutNextLocal-v0")
    for seed in (0, 1):
        oa, ia = a.reset(seed=seed)
        ob, ib = b.reset(seed=seed)
        assert ia["instruction"] == ib["instruction"]
        for key in oa:
            np.testing.assert_array_equal(oa[key], ob[key])


def test_is_success_on_reaching_the_goal():
    env = make_minigrid("MiniGrid-Empty-5x5-v0")
    _, info = env.reset(seed=0)
    assert info["is_success"] is False
    # Start (1, 1) facing right, goal (3, 3): forward, forward, turn right, forward, forward.
    for action in (2, 2, 1, 2):
        _, _, terminated, _, info = env.step(action)
        assert not terminated and info["is_success"] is False
    _, reward, terminated, _, info = env.step(2)
    assert terminated and reward > 0 and info["is_success"] is True


def test_vec_env_and_ppo_with_multimodal_extractor():
    from stable_baselines3 import PPO

    from mmrl.extractor import MultimodalExtractor

    venv = make_minigrid_vec_env("BabyAI-GoToLocal-v0", n_envs=2, seed=0)
    obs = venv.reset()
    assert obs["camera"].shape == (2, 28, 28, 3) and obs["text"].shape == (2, 48)
    model = PPO(
        "MultiInputPolicy",
        venv,
        n_steps=64,
        batch_size=64,
        n_epochs=2,
        seed=0,
        device="cpu",
        policy_kwargs=dict(
            features_extractor_class=MultimodalExtractor,
            features_extractor_kwargs=dict(fusion="concat"),
        ),
    )
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=128)
    assert model.num_timesteps >= 128
    assert any(not b.equal(p) for b, p in zip(before, model.policy.parameters()))
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (2,) and venv.action_space.contains(int(action[0]))


def test_sensor_noise_swaps_synonyms_in_the_grammar_vocab():
    from mmrl.wrappers import ModalityMask, SensorNoise

    env = make_minigrid("BabyAI-GoToRedBallGrey-v0")  # "go to the red ball"
    env = ModalityMask(SensorNoise(env, text=dict(synonym_swap=1.0)), "camera")
    obs, info = env.reset(seed=0)
    words = env.get_wrapper_attr("tokenizer").decode(obs["text"]).split()
    assert info["instruction"] == "go to the red ball"
    assert words[1:4] == ["to", "the", "red"] and words[4] == "sphere" and words[0] != "go"
    assert not obs["camera"].any() and info["masked_modalities"] == ["camera"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(env_id="CartPole-v1"), "needs a MiniGrid or BabyAI env id"),
        (dict(env_id="BabyAI-GoToLocal-v0", tile_size=0), "tile_size must be in"),
        (dict(env_id="BabyAI-GoToLocal-v0", direction="angle"), "direction must be one of"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_minigrid(**kwargs)


def test_missing_extra_names_the_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "minigrid", None)
    with pytest.raises(ImportError, match=r"pip install 'mmrl\[minigrid\]'"):
        make_minigrid("BabyAI-GoToLocal-v0")
    with pytest.raises(ImportError, match=r"pip install 'mmrl\[minigrid\]'"):
        make_minigrid_vec_env("BabyAI-GoToLocal-v0", n_envs=2)
