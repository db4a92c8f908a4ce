"""The fake environments in mmrl.testing: valid Gymnasium envs, seeded, signal where claimed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from mmrl.testing import (
    ROUTING_KEYS,
    RandomDictEnv,
    make_routing_env,
    routing_observation_space,
    sample_routing_batch,
)


@pytest.mark.parametrize("signal_key", ROUTING_KEYS)
@pytest.mark.parametrize("kwargs", [{}, {"continuous": True, "channels_first": True}])
def test_routing_env_passes_check_env(signal_key: str, kwargs: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded state Box / no spec warnings
        check_env(make_routing_env(signal_key, **kwargs), skip_render_check=True)


def test_routing_env_is_seeded_and_rewards_the_label() -> None:
    a, b = make_routing_env("text"), make_routing_env("text")
    obs_a, _ = a.reset(seed=3)
    obs_b, _ = b.reset(seed=3)
    assert all(np.array_equal(obs_a[k], obs_b[k]) for k in ROUTING_KEYS)
    label = a._label
    _, reward, terminated, truncated, info = a.step(label)
    assert reward == 1.0 and info["is_success"] and not terminated and not truncated
    _, reward, *_ = b.step(1 - label)
    assert reward == 0.0


@pytest.mark.parametrize("signal_key", ROUTING_KEYS)
def test_signal_lives_only_in_its_modality(signal_key: str) -> None:
    space = routing_observation_space()
    obs, labels = sample_routing_batch(space, signal_key, 2000, np.random.default_rng(0))
    # A hand-written decoder per key recovers the label only from the signal key.
    decoded = {
        "camera": (obs["camera"].max(axis=-1) == 255).argmax(axis=2).max(axis=1) >= 6,
        "lidar": obs["lidar"].argmin(axis=1) >= 8,
        "text": (obs["text"] == 2).any(axis=1),
        "state": obs["state"][:, 0] > 0,
    }
    for key, guess in decoded.items():
        accuracy = np.mean(guess.astype(int) == labels)
        if key == signal_key:
            assert accuracy > 0.95, key
        else:
            assert 0.4 < accuracy < 0.6, key


def test_random_dict_env() -> None:
    space = spaces.Dict({"a": spaces.Discrete(3), "b": spaces.Box(0, 1, (2,), np.float32)})
    env = RandomDictEnv(space, episode_length=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert space.contains(obs)
    env.step(0)
    assert env.step(0)[3]  # truncated after episode_length steps
