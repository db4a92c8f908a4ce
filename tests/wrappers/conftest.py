"""Tiny flat Dict-observation environments for the wrapper tests."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from mmrl.envs.tokenizer import VOCAB, Tokenizer

INSTRUCTIONS = ("go to the red car", "drive toward the blue ball", "head to the green cube")


class ToyMultimodalEnv(gym.Env):
    """Random camera/lidar/text/state observations; the episode lasts ``length`` steps.

    With ``string_text=True`` the ``text`` key is a raw string (``spaces.Text``) instead of
    token ids, as in envs that need :class:`~mmrl.wrappers.TextToTokens`.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, length: int = 5, string_text: bool = False, size: int = 16) -> None:
        self.length = length
        self.string_text = string_text
        self.tokenizer = Tokenizer(max_len=8)
        text_space: spaces.Space = (
            spaces.Text(max_length=64, charset="abcdefghijklmnopqrstuvwxyz ")
            if string_text
            else spaces.Box(0, len(VOCAB) - 1, shape=(8,), dtype=np.int64)
        )
        self.observation_space = spaces.Dict(
            {
                "camera": spaces.Box(0, 255, shape=(size, size, 3), dtype=np.uint8),
                "lidar": spaces.Box(0.0, 1.0, shape=(8,), dtype=np.float32),
                "text": text_space,
                "state": spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
            }
        )
        self.action_space = spaces.Discrete(2)
        self._t = 0
        self._instruction = INSTRUCTIONS[0]

    def _obs(self) -> dict[str, Any]:
        rng = self.np_random
        text: Any = self._instruction
        if not self.string_text:
            text = self.tokenizer.encode(self._instruction)
        cam_shape = self.observation_space["camera"].shape
        return {
            "camera": rng.integers(0, 256, size=cam_shape, dtype=np.uint8),
            "lidar": rng.uniform(0.0, 1.0, size=8).astype(np.float32),
            "text": text,
            "state": np.array([self._t / self.length, 0.0], dtype=np.float32),
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._t = 0
        self._instruction = INSTRUCTIONS[int(self.np_random.integers(len(INSTRUCTIONS)))]
        return self._obs(), {}

    def step(self, action: Any):
        self._t += 1
        reward = float(action == 1)
        truncated = self._t >= self.length
        return self._obs(), reward, False, truncated, {}


def _rollout(env: gym.Env, seed: int, steps: int = 8) -> list[tuple[dict, dict]]:
    """``(obs, info)`` of a reset with ``seed`` and ``steps`` steps of action 1 (auto-reset)."""
    obs, info = env.reset(seed=seed)
    out = [(obs, info)]
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(1)
        out.append((obs, info))
        if terminated or truncated:
            obs, info = env.reset()
            out.append((obs, info))
    return out


# Test modules reach the helpers through fixtures: tests/ has no __init__.py, so conftest is not
# importable by a stable module name.
@pytest.fixture
def toy_env() -> ToyMultimodalEnv:
    return ToyMultimodalEnv()


@pytest.fixture
def string_env() -> ToyMultimodalEnv:
    return ToyMultimodalEnv(string_text=True)


@pytest.fixture
def make_toy() -> type[ToyMultimodalEnv]:
    return ToyMultimodalEnv


@pytest.fixture
def rollout():
    return _rollout
