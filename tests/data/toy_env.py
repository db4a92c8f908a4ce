"""A tiny multimodal task for the data and pretraining tests (loaded by the conftests).

Walk along a line to the goal named by the instruction ("go left" / "go right"). The camera
(16x16, channel-last like the real envs) shows the walker's position, the lidar is noise and
the state holds the position, so the expert's action depends on text plus camera/state.
With ``memory=True`` the instruction is shown on an episode's first step only and the camera
and state are blank: the expert's action (the goal's direction) must be remembered.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.envs.base import BatchedSimulator, MultimodalEnv, StepResult
from mmrl.envs.config import SensorConfig

TOY_ID = "mmrltest/Toy-v0"


class ToySimulator(BatchedSimulator):
    """Walk to a goal at -3 or +3; episodes end at the goal or after ``horizon`` steps."""

    env_id = TOY_ID
    reward_terms = ("progress", "goal")

    def __init__(
        self,
        num_envs: int,
        continuous: bool = False,
        horizon: int = 10,
        camera_size: int = 16,
        memory: bool = False,
    ) -> None:
        super().__init__(num_envs, SensorConfig(camera_size=camera_size, lidar_beams=8))
        self.max_episode_steps = horizon
        self.continuous = continuous
        self.memory = memory
        self.size = camera_size
        vocab = self.tokenizer.vocab_size
        # Pairs keep this (unsorted) key order, as in the real environments' contract; a
        # dict or keyword arguments would be sorted by Gymnasium.
        self.observation_space = spaces.Dict(
            [
                ("camera", spaces.Box(0, 255, (camera_size, camera_size, 3), np.uint8)),
                ("lidar", spaces.Box(0, 1, (8,), np.float32)),
                ("text", spaces.Box(0, vocab - 1, (self.tokenizer.max_len,), np.int64)),
                ("state", spaces.Box(-10, 10, (2,), np.float32)),
            ]
        )
        self.action_space = (
            spaces.Box(-1, 1, (1,), np.float32) if continuous else spaces.Discrete(3)
        )
        self.pos = np.zeros(num_envs, np.float32)
        self.goal = np.ones(num_envs, np.float32)
        self.noise = np.zeros((num_envs, 8), np.float32)
        self.shown = np.zeros(num_envs, bool)  # memory: the instruction was shown already

    def _reset_envs(self, idx: np.ndarray) -> None:
        self.shown[idx] = False
        for i in idx:
            self.pos[i] = float(self.rngs[i].integers(-1, 2))
            self.goal[i] = float(self.rngs[i].choice([-3.0, 3.0]))

    def _step(self, actions: np.ndarray) -> StepResult:
        move = actions[:, 0] if self.continuous else actions.astype(np.float32) - 1.0
        before = np.abs(self.goal - self.pos)
        self.pos = np.clip(self.pos + move, -5, 5)
        after = np.abs(self.goal - self.pos)
        reached = after < 0.5
        self.shown[:] = True
        self.noise = np.stack([r.uniform(size=8) for r in self.rngs]).astype(np.float32)
        return StepResult(
            rewards={"progress": (before - after).astype(np.float32),
                     "goal": reached.astype(np.float32)},
            terminated=reached, success=reached, collision=np.zeros(self.num_envs, bool),
        )  # fmt: skip

    def _observe(self, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        idx = np.arange(self.num_envs) if idx is None else np.asarray(idx)
        k, s = len(idx), self.size
        camera = np.zeros((k, s, s, 3), np.uint8)
        column = np.clip(((self.pos[idx] + 5) / 10 * (s - 1)).round().astype(int), 0, s - 1)
        camera[np.arange(k), :, column, 1] = 255
        text = np.stack([self.tokenizer.encode(t) for t in self.instructions()])[idx]
        state = np.stack([self.pos[idx], np.zeros(k, np.float32)], 1).astype(np.float32)
        if self.memory:
            text = np.where(self.shown[idx, None], 0, text)
            camera[:] = 0
            state[:] = 0.0
        return {"camera": camera, "lidar": self.noise[idx].copy(), "text": text, "state": state}

    def instructions(self) -> list[str]:
        return ["go left" if g < 0 else "go right" for g in self.goal]

    def labels(self) -> dict[str, np.ndarray]:
        return {
            "goal_index": (self.goal > 0).astype(np.int64),
            "distance": np.abs(self.goal - self.pos).astype(np.float32),
        }

    def expert_action(self) -> np.ndarray:
        direction = np.sign(self.goal - self.pos)
        if self.continuous:
            return direction[:, None].astype(np.float32)
        return (direction + 1).astype(np.int64)


class ToyEnv(MultimodalEnv):
    """Single-copy Gymnasium env of :class:`ToySimulator`."""

    simulator_cls = ToySimulator


def register_toy() -> None:
    """Registers :data:`TOY_ID` (the batched simulator handles truncation itself)."""
    if TOY_ID not in gym.registry:
        gym.register(id=TOY_ID, entry_point=ToyEnv)


def write_presets(folder, camera_size: int = 16) -> tuple[str, str]:
    """A toy env preset and a small attention agent recipe; returns their paths."""
    env = folder / "toy-env.yaml"
    env.write_text(f"env_id: {TOY_ID}\nn_envs: 2\nkwargs:\n  camera_size: {camera_size}\n")
    agent = folder / "toy-agent.yaml"
    agent.write_text(
        "algo: ppo\n"
        "extractor:\n  fusion: attention\n  features_dim: 32\n"
        "policy:\n  pi: [16]\n  vf: [16]\n"
        "ppo:\n  n_steps: 16\n  batch_size: 32\n  n_epochs: 1\n"
    )
    return str(env), str(agent)
