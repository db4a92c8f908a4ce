"""A tiny corridor environment with every mmrl modality, a known optimal value and an expert.

The corridor has cells ``0..6``; the instruction says which end is the goal ("go left" /
"go right"), the camera and lidar show the position, so the text is the only source of the
goal. Dynamics are deterministic, so the discounted return of the expert from start cell ``p``
is exact (see :func:`expert_value`), which the FQE test compares against.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from mmrl.envs.base import BatchedSimulator, MultimodalEnv, StepResult
from mmrl.envs.config import SensorConfig
from mmrl.envs.tokenizer import VOCAB

CELLS = 7
MAX_STEPS = 20
GOAL_REWARD = 1.0
WRONG_END_REWARD = -1.0
TIME_REWARD = -0.05
ENV_ID = "mmrl-test/Corridor-v0"
INSTRUCTIONS = ("go left", "go right")


class CorridorSimulator(BatchedSimulator):
    """``n`` corridors; action 0 moves left, 1 right, 2 stays."""

    env_id = ENV_ID
    reward_terms = ("goal", "wrong_end", "time")
    label_names: ClassVar[dict[str, tuple[str, ...]]] = {"instruction_type": ("left", "right")}

    def __init__(self, num_envs: int, instruction_split: str = "train") -> None:
        super().__init__(num_envs, SensorConfig(camera_size=12, lidar_beams=8, max_text_len=4))
        if instruction_split not in ("train", "test"):
            raise ValueError(f"instruction_split must be train or test, got {instruction_split}")
        self.observation_space = spaces.Dict(
            {
                "camera": spaces.Box(0, 255, (12, 12, 3), np.uint8),
                "lidar": spaces.Box(0.0, 1.0, (8,), np.float32),
                "text": spaces.Box(0, len(VOCAB) - 1, (4,), np.int64),
                "state": spaces.Box(-1.0, 1.0, (2,), np.float32),
            }
        )
        self.action_space = spaces.Discrete(3)
        self.max_episode_steps = MAX_STEPS
        self.pos = np.zeros(num_envs, dtype=np.int64)
        self.goal = np.zeros(num_envs, dtype=np.int64)
        self.last_action = np.zeros(num_envs, dtype=np.int64)

    def _reset_envs(self, idx: np.ndarray) -> None:
        for i in idx:
            self.goal[i] = self.rngs[i].integers(2)
            self.pos[i] = self.rngs[i].integers(1, CELLS - 1)
        self.last_action[idx] = 2

    def _step(self, actions: np.ndarray) -> StepResult:
        self.pos = np.clip(
            self.pos + np.where(actions == 0, -1, np.where(actions == 1, 1, 0)), 0, CELLS - 1
        )
        self.last_action = actions.copy()
        goal_cell = np.where(self.goal == 0, 0, CELLS - 1)
        at_goal = self.pos == goal_cell
        at_wrong = (self.pos == CELLS - 1 - goal_cell) & ~at_goal
        n = self.num_envs
        return StepResult(
            rewards={
                "goal": np.where(at_goal, GOAL_REWARD, 0.0).astype(np.float32),
                "wrong_end": np.where(at_wrong, WRONG_END_REWARD, 0.0).astype(np.float32),
                "time": np.full(n, TIME_REWARD, dtype=np.float32),
            },
            terminated=at_goal | at_wrong,
            success=at_goal,
            collision=at_wrong,
        )

    def _observe(self, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        idx = np.arange(self.num_envs) if idx is None else np.asarray(idx)
        k = len(idx)
        pos = self.pos[idx]
        camera = np.zeros((k, 12, 12, 3), dtype=np.uint8)
        for row, p in enumerate(pos):
            camera[row, :, 2 * p : 2 * p + 2, 0] = 255
        frac = (pos / (CELLS - 1)).astype(np.float32)
        lidar = np.tile(np.stack([frac, 1.0 - frac], axis=1), (1, 4)).astype(np.float32)
        text = self.tokenizer.encode_batch([INSTRUCTIONS[g] for g in self.goal[idx]])
        state = np.stack(
            [self.elapsed[idx] / MAX_STEPS, self.last_action[idx] / 2.0], axis=1
        ).astype(np.float32)
        return {"camera": camera, "lidar": lidar, "text": text, "state": state}

    def instructions(self) -> list[str]:
        return [INSTRUCTIONS[g] for g in self.goal]

    def labels(self) -> dict[str, np.ndarray]:
        return {"instruction_type": self.goal.copy(), "position": self.pos.copy()}

    def expert_action(self) -> np.ndarray:
        return np.where(self.goal == 0, 0, 1).astype(np.int64)


class ContinuousCorridorSimulator(CorridorSimulator):
    """The corridor with a ``Box(-1, 1, (1,))`` action: below -1/3 moves left, above 1/3 right."""

    def __init__(self, num_envs: int, instruction_split: str = "train") -> None:
        super().__init__(num_envs, instruction_split)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def _step(self, actions: np.ndarray) -> StepResult:
        a = actions[:, 0]
        return super()._step(np.where(a < -1 / 3, 0, np.where(a > 1 / 3, 1, 2)))

    def expert_action(self) -> np.ndarray:
        return np.where(self.goal == 0, -1.0, 1.0).astype(np.float32)[:, None]


class CorridorEnv(MultimodalEnv):
    """Gymnasium view of :class:`CorridorSimulator` (one copy)."""

    simulator_cls = CorridorSimulator


class ContinuousCorridorEnv(MultimodalEnv):
    """Gymnasium view of :class:`ContinuousCorridorSimulator` (one copy)."""

    simulator_cls = ContinuousCorridorSimulator


CONTINUOUS_ENV_ID = "mmrl-test/CorridorContinuous-v0"
for _id, _entry in ((ENV_ID, CorridorEnv), (CONTINUOUS_ENV_ID, ContinuousCorridorEnv)):
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry, max_episode_steps=MAX_STEPS)


def expert_value(start: int, goal: int, gamma: float) -> float:
    """Exact discounted return of the expert from cell ``start`` towards end ``goal``."""
    steps = start if goal == 0 else CELLS - 1 - start
    return sum(TIME_REWARD * gamma**t for t in range(steps)) + GOAL_REWARD * gamma ** (steps - 1)


def expert_mean_value(gamma: float) -> float:
    """Expected discounted expert return over the uniform start distribution."""
    starts = range(1, CELLS - 1)
    return float(np.mean([expert_value(s, g, gamma) for s in starts for g in (0, 1)]))


def corridor_vec_env(n_envs: int = 4, seed: int = 0, **kwargs: Any):
    """A batched corridor ``VecEnv`` (``VecMonitor`` over ``BatchedVecEnv``), like mmrl's own."""
    from stable_baselines3.common.vec_env import VecMonitor

    from mmrl.envs.vec_env import BatchedVecEnv

    venv = BatchedVecEnv(CorridorSimulator(n_envs, **kwargs))
    venv.seed(seed)
    return VecMonitor(venv, info_keywords=("is_success",))


def small_policy_kwargs() -> dict[str, Any]:
    """A small MultimodalExtractor so models build and train in well under a second."""
    from mmrl.extractor import MultimodalExtractor

    return {
        "features_extractor_class": MultimodalExtractor,
        "features_extractor_kwargs": {"fusion": "concat", "features_dim": 32, "embed_dim": 16},
        "net_arch": {"pi": [32], "vf": [32]},
    }


def behaviour_clone(model: Any, n_states: int = 256, steps: int = 60, seed: int = 0) -> None:
    """Trains ``model.policy``'s action head on the corridor expert's actions (cross-entropy)."""
    sim = CorridorSimulator(n_states)
    sim.seed(list(range(seed, seed + n_states)))
    sim.reset_envs()
    # Visit every cell, not only starts, so the clone acts well along the whole way.
    sim.pos = np.random.default_rng(seed).integers(0, CELLS, size=n_states)
    obs = sim.observe()
    actions = th.as_tensor(sim.expert_action())
    policy = model.policy
    obs_t, _ = policy.obs_to_tensor(obs)
    optimizer = th.optim.Adam(policy.parameters(), lr=1e-2)
    policy.set_training_mode(True)
    for _ in range(steps):
        _, log_prob, _ = policy.evaluate_actions(obs_t, actions)
        loss = -log_prob.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.set_training_mode(False)


def collect_corridor(
    n_episodes: int,
    epsilon: float,
    seed: int = 0,
    continuous: bool = False,
    log_behaviour: bool = False,
) -> list[Any]:
    """Episodes of the epsilon-greedy expert as Minari ``EpisodeBuffer`` s.

    With probability ``epsilon`` a uniformly random action replaces the expert's, so the data
    covers non-expert actions, which FQE needs to learn ``Q(s, a)`` off the expert's path.
    ``log_behaviour`` also stores what ``mmrl collect`` logs: ``infos["behaviour_log_prob"]``
    (the exact epsilon-mixture probability, discrete only), ``infos["expert_action"]`` and
    the privileged ``infos["labels"]`` of every state.
    """
    from minari.data_collector import EpisodeBuffer

    rng = np.random.default_rng(seed)
    sim = ContinuousCorridorSimulator(1) if continuous else CorridorSimulator(1)
    out = []
    for e in range(n_episodes):
        sim.seed([seed + e])
        sim.reset_envs()
        obs, labels = [sim.observe()], [sim.labels()]
        actions, rewards, terms, truncs, experts = [], [], [], [], []
        while True:
            action = sim.expert_action()
            experts.append(action[0])
            if rng.random() < epsilon:
                action = (
                    rng.uniform(-1, 1, size=(1, 1)).astype(np.float32)
                    if continuous
                    else rng.integers(3, size=1)
                )
            reward, terminated, truncated, _ = sim.step(action)
            obs.append(sim.observe())
            labels.append(sim.labels())
            actions.append(action[0])
            rewards.append(float(reward[0]))
            terms.append(bool(terminated[0]))
            truncs.append(bool(truncated[0]))
            if terminated[0] or truncated[0]:
                break
        out.append(
            EpisodeBuffer(
                id=e,
                observations={k: np.concatenate([o[k] for o in obs]) for k in obs[0]},
                actions=np.asarray(actions, dtype=np.float32 if continuous else np.int64),
                rewards=np.asarray(rewards, dtype=np.float64),
                terminations=np.asarray(terms),
                truncations=np.asarray(truncs),
                infos=_behaviour_infos(actions, experts, epsilon, labels) if log_behaviour else {},
            )
        )
    return out


def _behaviour_infos(
    actions: list, experts: list, epsilon: float, labels: list[dict[str, np.ndarray]]
) -> dict[str, Any]:
    a, e = np.asarray(actions).reshape(-1), np.asarray(experts).reshape(-1)
    prob = (1.0 - epsilon) * (a == e) + epsilon / 3.0
    return {
        "behaviour_log_prob": np.append(np.log(prob), np.nan),
        "expert_action": np.append(e, -1).astype(np.int64),
        "labels": {k: np.concatenate([lab[k] for lab in labels]) for k in labels[0]},
    }


def write_dataset(dataset_id: str, episodes: list[Any], sim: Any | None = None) -> None:
    """Writes episodes as a Minari dataset under the current ``MINARI_DATASETS_PATH``."""
    import warnings

    import minari

    sim = sim or CorridorSimulator(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Minari warns about optional metadata
        minari.create_dataset_from_buffers(
            dataset_id,
            episodes,
            observation_space=sim.observation_space,
            action_space=sim.action_space,
            algorithm_name="epsilon-greedy expert",
            jpeg_encoding=False,
        )


@pytest.fixture(scope="session")
def expert_zip(tmp_path_factory: pytest.TempPathFactory):
    """A PPO ``model.zip`` behaviour-cloned from the corridor expert (near-perfect)."""
    from stable_baselines3 import PPO

    th.manual_seed(0)
    model = PPO(
        "MultiInputPolicy",
        corridor_vec_env(2),
        n_steps=16,
        batch_size=16,
        policy_kwargs=small_policy_kwargs(),
        seed=0,
        device="cpu",
    )
    behaviour_clone(model)
    path = tmp_path_factory.mktemp("expert") / "model.zip"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def random_zip(tmp_path_factory: pytest.TempPathFactory):
    """A freshly initialized PPO ``model.zip`` for the corridor."""
    from stable_baselines3 import PPO

    th.manual_seed(1)
    model = PPO(
        "MultiInputPolicy",
        corridor_vec_env(2),
        n_steps=16,
        batch_size=16,
        policy_kwargs=small_policy_kwargs(),
        seed=1,
        device="cpu",
    )
    path = tmp_path_factory.mktemp("random") / "model.zip"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def corridor():
    """The helpers above, for test modules (tests/ is not a package, so no imports)."""
    import types

    return types.SimpleNamespace(
        ENV_ID=ENV_ID,
        CONTINUOUS_ENV_ID=CONTINUOUS_ENV_ID,
        CELLS=CELLS,
        MAX_STEPS=MAX_STEPS,
        Simulator=CorridorSimulator,
        ContinuousSimulator=ContinuousCorridorSimulator,
        vec_env=corridor_vec_env,
        expert_value=expert_value,
        expert_mean_value=expert_mean_value,
        policy_kwargs=small_policy_kwargs,
        behaviour_clone=behaviour_clone,
        collect=collect_corridor,
        write_dataset=write_dataset,
    )
