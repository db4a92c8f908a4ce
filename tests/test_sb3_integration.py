"""MultimodalExtractor inside Stable-Baselines3: algorithms, wrappers, save/load, devices."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecFrameStack,
    VecNormalize,
)

from mmrl.extractor import MultimodalExtractor, multimodal_extractors, set_policy_modality_mask
from mmrl.testing import BUILTIN_FUSIONS, RandomDictEnv, make_routing_env

FUSIONS = list(BUILTIN_FUSIONS)
ON_POLICY = {"n_steps": 16, "batch_size": 32, "n_epochs": 1}


def policy_kwargs(fusion: str = "attention", **extra) -> dict:
    kwargs = {"fusion": fusion, "features_dim": 32, "embed_dim": 16, **extra}
    return {
        "features_extractor_class": MultimodalExtractor,
        "features_extractor_kwargs": kwargs,
        "net_arch": [32],
    }


def vec_env(n_envs: int = 2, continuous: bool = False, **kwargs) -> DummyVecEnv:
    return make_vec_env(
        partial(make_routing_env, "lidar", continuous=continuous, **kwargs), n_envs, seed=0
    )


def make_model(algo: str, fusion: str, env=None, **kwargs):
    continuous = algo in ("SAC", "TD3")
    env = env if env is not None else vec_env(1 if algo in ("SAC", "TD3", "DQN") else 2, continuous)
    common = {"policy_kwargs": policy_kwargs(fusion), "seed": 0, "device": "cpu", **kwargs}
    if algo == "PPO":
        return PPO("MultiInputPolicy", env, **ON_POLICY, **common)
    if algo == "A2C":
        return A2C("MultiInputPolicy", env, n_steps=8, **common)
    off = {"buffer_size": 256, "learning_starts": 16, "batch_size": 16, "train_freq": 4}
    if algo == "DQN":
        return DQN("MultiInputPolicy", env, **off, **common)
    if algo == "SAC":
        return SAC("MultiInputPolicy", env, **off, **common)
    return TD3("MultiInputPolicy", env, **off, **common)


def check_predict(model, n: int = 2) -> None:
    obs = model.get_env().reset()
    actions, _ = model.predict(obs, deterministic=True)
    assert model.action_space.contains(actions[0])
    extractors = multimodal_extractors(model.policy)
    assert extractors
    assert all(abs(sum(e.modality_weights().values()) - 1) < 1e-5 for e in extractors)


# One fusion per algorithm in the default run; the whole grid is marked slow.
FAST_GRID = [
    ("PPO", "attention"),
    ("A2C", "film"),
    ("DQN", "gated"),
    ("SAC", "perceiver"),
    ("TD3", "mean"),
]


@pytest.mark.parametrize(("algo", "fusion"), FAST_GRID)
def test_algorithms(algo: str, fusion: str) -> None:
    model = make_model(algo, fusion)
    model.learn(64)
    check_predict(model)


@pytest.mark.slow
@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("algo", ["PPO", "A2C", "DQN", "SAC", "TD3"])
def test_algorithm_fusion_grid(algo: str, fusion: str) -> None:
    model = make_model(algo, fusion)
    model.learn(200)
    check_predict(model)


@pytest.mark.parametrize("share", [True, False])
def test_share_features_extractor(share: bool) -> None:
    model = PPO(
        "MultiInputPolicy",
        vec_env(),
        policy_kwargs={**policy_kwargs("gated"), "share_features_extractor": share},
        seed=0,
        device="cpu",
        **ON_POLICY,
    )
    assert len(multimodal_extractors(model.policy)) == (1 if share else 2)
    model.learn(32)
    set_policy_modality_mask(model.policy, ["camera"])
    assert all(e.masked_modalities == ("camera",) for e in multimodal_extractors(model.policy))
    check_predict(model)


@pytest.mark.parametrize(("algo", "fusion"), [("PPO", "attention"), ("SAC", "film")])
def test_save_load_identical_predictions(tmp_path, algo: str, fusion: str) -> None:
    model = make_model(algo, fusion)
    model.learn(48)
    obs = model.get_env().reset()
    expected, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model.zip")
    loaded = type(model).load(tmp_path / "model.zip", device="cpu")
    actual, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actual, expected)
    obs_t, _ = model.policy.obs_to_tensor(obs)
    ext_a = multimodal_extractors(model.policy)[0]
    ext_b = multimodal_extractors(loaded.policy)[0]
    assert ext_a.config == ext_b.config
    with th.no_grad():
        feats_a = model.policy.extract_features(obs_t, ext_a)
        feats_b = loaded.policy.extract_features(obs_t, ext_b)
    assert th.equal(feats_a, feats_b)


def test_drop_unseen_words_learns_the_seen_ids_and_saves_them(tmp_path) -> None:
    kwargs = policy_kwargs("attention", encoder_kwargs={"text": {"drop_unseen_words": True}})
    model = PPO(
        "MultiInputPolicy", vec_env(), policy_kwargs=kwargs, seed=0, device="cpu", **ON_POLICY
    )
    seen = multimodal_extractors(model.policy)[0].encoders["text"].seen_words
    assert not seen.any()  # the first rollout runs before any training step
    model.learn(32)
    shown = np.unique(model.rollout_buffer.observations["text"].astype(np.int64))
    assert set(seen.nonzero().flatten().tolist()) == set(shown.tolist()) - {0}
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    assert th.equal(multimodal_extractors(loaded.policy)[0].encoders["text"].seen_words, seen)


def test_seeded_training_is_deterministic() -> None:
    params = []
    for _ in range(2):
        model = make_model(
            "PPO", "perceiver", policy_kwargs=policy_kwargs("perceiver", modality_dropout=0.2)
        )
        model.learn(64)
        params.append(th.nn.utils.parameters_to_vector(model.policy.parameters()).detach())
    assert th.equal(params[0], params[1])


@pytest.mark.parametrize("channels_first", [False, True])
def test_image_layouts_inside_sb3(channels_first: bool) -> None:
    model = make_model("PPO", "film", env=vec_env(channels_first=channels_first))
    ext = model.policy.features_extractor
    # SB3 wraps channel-last envs in VecTransposeImage, so the policy sees channel-first.
    assert model.observation_space["camera"].shape == (3, 12, 12)
    assert ext.encoders["camera"].channels_last is False
    model.learn(32)
    check_predict(model)


def test_vec_frame_stack() -> None:
    env = VecFrameStack(vec_env(), n_stack=2)
    model = make_model("PPO", "attention", env=env)
    assert model.observation_space["camera"].shape == (6, 12, 12)
    assert model.observation_space["lidar"].shape == (32,)
    model.learn(32)
    check_predict(model)


def test_vec_normalize_with_norm_obs_keys() -> None:
    env = VecNormalize(vec_env(), norm_obs_keys=["lidar", "state"])
    model = make_model("PPO", "concat", env=env)
    model.learn(32)
    check_predict(model)


def test_subproc_vec_env() -> None:
    env = make_vec_env(
        partial(make_routing_env, "text"),
        2,
        seed=0,
        vec_env_cls=SubprocVecEnv,
        vec_env_kwargs={"start_method": "fork"},
    )
    try:
        model = make_model("PPO", "mean", env=env)
        model.learn(32)
        check_predict(model)
    finally:
        env.close()


def test_mixed_space_env() -> None:
    space = spaces.Dict(
        {
            "grid": spaces.Box(0, 255, (7, 7, 3), np.uint8),
            "mission": spaces.Box(0, 20, (5,), np.int64),
            "direction": spaces.Discrete(4),
            "carrying": spaces.MultiBinary(3),
            "inventory": spaces.MultiDiscrete([3, 2]),
        }
    )
    env = make_vec_env(partial(RandomDictEnv, space), 2, seed=0)
    model = PPO("MultiInputPolicy", env, policy_kwargs=policy_kwargs("attention"), **ON_POLICY)
    model.learn(32)
    check_predict(model)


@pytest.mark.gpu
@pytest.mark.skipif(not th.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("fusion", FUSIONS)
def test_cuda(fusion: str) -> None:
    model = make_model("PPO", fusion, device="cuda")
    model.learn(32)
    ext = model.policy.features_extractor
    assert next(ext.parameters()).is_cuda and ext.fusion.last_weights.is_cuda
    ext.set_modality_mask(["camera"])
    check_predict(model)
    cpu = make_model("PPO", fusion)
    cpu.policy.load_state_dict({k: v.cpu() for k, v in model.policy.state_dict().items()})
    obs = model.get_env().reset()
    cpu.policy.features_extractor.set_modality_mask(["camera"])
    np.testing.assert_allclose(
        model.policy.predict_values(model.policy.obs_to_tensor(obs)[0]).cpu().detach().numpy(),
        cpu.policy.predict_values(cpu.policy.obs_to_tensor(obs)[0]).detach().numpy(),
        rtol=1e-3,
        atol=1e-4,
    )


@pytest.mark.slow
def test_ppo_learns_routing() -> None:
    # A contextual bandit: gamma=0 removes value-bootstrapping noise.
    env = make_vec_env(partial(make_routing_env, "text"), 8, seed=0)
    model = PPO(
        "MultiInputPolicy",
        env,
        n_steps=32,
        batch_size=64,
        n_epochs=4,
        learning_rate=1e-3,
        gamma=0.0,
        policy_kwargs=policy_kwargs("attention"),
        seed=0,
        device="cpu",
    )
    model.learn(4000)
    eval_env = make_routing_env("text")
    obs, _ = eval_env.reset(seed=123)
    hits = []
    for _ in range(200):
        action, _ = model.predict(obs, deterministic=True)
        obs, _, _, _, info = eval_env.step(action)
        hits.append(info["is_success"])
    assert np.mean(hits) > 0.9
    # Without the instruction the answer is a coin flip.
    set_policy_modality_mask(model.policy, ["text"])
    hits = []
    for _ in range(200):
        action, _ = model.predict(obs, deterministic=True)
        obs, _, _, _, info = eval_env.step(action)
        hits.append(info["is_success"])
    assert np.mean(hits) < 0.7
