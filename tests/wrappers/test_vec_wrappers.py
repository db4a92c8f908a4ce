"""VecSensorNoise / VecModalityMask on DummyVecEnv, and all wrappers on mmrl/Driving-v1."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from mmrl.wrappers import (
    MASK_INFO_KEY,
    ModalityMask,
    SensorNoise,
    VecModalityMask,
    VecSensorNoise,
)


@pytest.fixture
def venv(make_toy):
    return DummyVecEnv([lambda: make_toy(length=3) for _ in range(3)])


def _run(vec, seed: int, steps: int = 7):
    vec.seed(seed)
    frames = [vec.reset()]
    infos = []
    for _ in range(steps):
        obs, _, dones, info = vec.step(np.ones(vec.num_envs, dtype=np.int64))
        frames.append(obs)
        infos.append((dones, info))
    return frames, infos


def test_vec_sensor_noise_seeded_and_terminal_observation_noised(venv, make_toy):
    def build():
        inner = DummyVecEnv([lambda: make_toy(length=3) for _ in range(3)])
        return VecSensorNoise(inner, camera=0.2, lidar=dict(dropout=0.5))

    a, infos = _run(build(), seed=1)
    b, _ = _run(build(), seed=1)
    c, _ = _run(build(), seed=2)
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa["camera"], fb["camera"])
        np.testing.assert_array_equal(fa["lidar"], fb["lidar"])
    assert not np.array_equal(a[1]["camera"], c[1]["camera"])
    dones, info = infos[2]  # length=3: every copy ends at the third step
    assert dones.all()
    for i in range(3):
        terminal = info[i]["terminal_observation"]
        assert (terminal["lidar"] == 1.0).mean() > 0.25  # about half the beams dropped
        assert terminal["camera"].dtype == np.uint8
    space = build().observation_space
    for frame in a:
        for i in range(3):
            assert space.contains({k: v[i] for k, v in frame.items()})


def test_vec_sensor_noise_matches_gym_wrapper_validation(venv):
    with pytest.raises(ValueError, match="VecSensorNoise: noise key 'rgb' is not in"):
        VecSensorNoise(venv, camera=0.1, keys={"camera": "rgb"})


def test_vec_modality_mask_per_episode(make_toy):
    inner = DummyVecEnv([lambda: make_toy(length=3) for _ in range(4)])
    vec = VecModalityMask(inner, ["camera", "lidar"], p=0.5, per="episode", seed=0)
    vec.reset()
    first = vec.mask
    for row, info in zip(first, vec.reset_infos):
        assert info[MASK_INFO_KEY] == [k for k, m in zip(["camera", "lidar"], row) if m]
    changed = False
    for step in range(1, 13):
        before = vec.mask
        obs, _, dones, infos = vec.step(np.zeros(4, dtype=np.int64))
        after = vec.mask
        assert dones.all() == (step % 3 == 0)
        if not dones.any():
            np.testing.assert_array_equal(before, after)  # held within the episode
        changed |= not np.array_equal(before, after)
        for i in range(4):
            for j, key in enumerate(["camera", "lidar"]):
                assert (not obs[key][i].any()) == after[i, j]
                assert (key in infos[i][MASK_INFO_KEY]) == after[i, j]
                if dones[i]:  # the ending episode's mask applies to its last observation
                    terminal = infos[i]["terminal_observation"][key]
                    assert (not terminal.any()) == before[i, j]
    assert changed


def test_vec_modality_mask_seeding_and_p1(make_toy):
    def masks(seed):
        inner = DummyVecEnv([lambda: make_toy(length=50) for _ in range(2)])
        vec = VecModalityMask(inner, ["camera", "text"], p=0.5, per="step")
        vec.seed(seed)
        vec.reset()
        out = [vec.mask]
        for _ in range(10):
            vec.step(np.zeros(2, dtype=np.int64))
            out.append(vec.mask)
        return np.stack(out)

    np.testing.assert_array_equal(masks(3), masks(3))
    assert not np.array_equal(masks(3), masks(4))
    inner = DummyVecEnv([lambda: make_toy() for _ in range(2)])
    obs = VecModalityMask(inner, "text", p=1.0).reset()
    assert not obs["text"].any() and obs["camera"].any()


def _driving_or_skip() -> gym.Env:
    """mmrl/Driving-v1 is developed concurrently; skip until it can be built."""
    import mmrl  # noqa: F401  (registers the ids)

    try:
        return gym.make("mmrl/Driving-v1")
    except (ImportError, AttributeError, gym.error.Error) as exc:
        pytest.skip(f"mmrl/Driving-v1 not available yet: {exc}")


def test_wrappers_on_mmrl_driving():
    env = _driving_or_skip()
    noisy = SensorNoise(env, camera=dict(noise_std=0.1, blur=3), lidar=0.05, text=0.2)
    masked = ModalityMask(noisy, ["camera", "lidar"], p=1.0)
    obs, info = masked.reset(seed=0)
    assert info[MASK_INFO_KEY] == ["camera", "lidar"]
    assert not obs["camera"].any() and not obs["lidar"].any()
    masked.action_space.seed(0)
    for _ in range(5):
        assert masked.observation_space.contains(obs)
        obs, _, terminated, truncated, _ = masked.step(masked.action_space.sample())
        if terminated or truncated:  # random lane changes can leave Driving-v1's road
            obs, _ = masked.reset()

    import mmrl

    vec = mmrl.make_vec_env("mmrl/Driving-v1", n_envs=2, seed=0)
    vec = VecModalityMask(VecSensorNoise(vec, camera=0.1, lidar=0.1, seed=0), "text")
    obs = vec.reset()
    assert not obs["text"].any() and obs["camera"].shape[0] == 2
    obs, *_ = vec.step(np.array([vec.action_space.sample() for _ in range(2)]))
    assert not obs["text"].any()
