"""The batched-simulator core and its VecEnv, on a tiny random-walk simulator."""

import pickle

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from mmrl.envs.base import BatchedSimulator, MultimodalEnv, StepResult
from mmrl.envs.config import SensorConfig
from mmrl.envs.vec_env import BatchedVecEnv


class WalkSimulator(BatchedSimulator):
    """Walk on a line to a random goal; noise in every sensor comes from the copy's rng."""

    env_id = "test/Walk-v0"
    reward_terms = ("progress", "goal")

    def __init__(self, num_envs: int, continuous: bool = False, horizon: int = 12):
        super().__init__(num_envs, SensorConfig(camera_size=8, lidar_beams=4))
        self.max_episode_steps = horizon
        self.continuous = continuous
        self.observation_space = spaces.Dict(
            camera=spaces.Box(0, 255, (8, 8, 3), np.uint8),
            lidar=spaces.Box(0, 1, (4,), np.float32),
            text=spaces.Box(0, self.tokenizer.vocab_size - 1, (16,), np.int64),
            state=spaces.Box(-100, 100, (2,), np.float32),
        )
        self.action_space = (
            spaces.Box(-1, 1, (1,), np.float32) if continuous else spaces.Discrete(3)
        )
        self.pos = np.zeros(num_envs, np.float32)
        self.goal = np.zeros(num_envs, np.float32)
        self.noise = np.zeros((num_envs, 4), np.float32)

    def _reset_envs(self, idx):
        for i in idx:
            self.pos[i] = 0.0
            self.goal[i] = self.rngs[i].choice([-3.0, 3.0])

    def _step(self, actions):
        move = actions[:, 0] if self.continuous else actions.astype(np.float32) - 1.0
        before = np.abs(self.goal - self.pos)
        self.pos += move
        after = np.abs(self.goal - self.pos)
        reached = after < 0.5
        self.noise = np.stack([r.normal(size=4) for r in self.rngs]).astype(np.float32)
        return StepResult(
            rewards={"progress": (before - after).astype(np.float32),
                     "goal": reached.astype(np.float32)},
            terminated=reached, success=reached, collision=np.zeros(self.num_envs, bool),
        )  # fmt: skip

    def _observe(self, idx=None):
        idx = np.arange(self.num_envs) if idx is None else idx
        k = len(idx)
        camera = np.zeros((k, 8, 8, 3), np.uint8)
        camera[..., 0] = (self.pos[idx, None, None] * 10 + 100).astype(np.uint8)
        text = np.stack([self.tokenizer.encode(s) for s in self.instructions()])[idx]
        return {
            "camera": camera,
            "lidar": np.clip(0.5 + 0.1 * self.noise[idx], 0, 1).astype(np.float32),
            "text": text,
            "state": np.stack([self.pos[idx], np.zeros(k, np.float32)], 1),
        }

    def instructions(self):
        return ["go left" if g < 0 else "go right" for g in self.goal]

    def labels(self):
        return {"goal": self.goal.copy(), "distance": np.abs(self.goal - self.pos)}

    def expert_action(self):
        if self.continuous:
            return np.sign(self.goal - self.pos)[:, None].astype(np.float32)
        return (np.sign(self.goal - self.pos) + 1).astype(np.int64)


class WalkEnv(MultimodalEnv):
    simulator_cls = WalkSimulator


def _rollout_single(seed, actions):
    env = WalkEnv()
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        obs, _, term, trunc, _ = env.step(a)
        out.append(obs)
        if term or trunc:
            obs, _ = env.reset()
            out.append(obs)
    return out


def test_single_env_passes_gymnasium_checker():
    from gymnasium.utils.env_checker import check_env

    check_env(WalkEnv(), skip_render_check=True)


def test_reward_is_sum_of_terms_and_info_contract():
    env = WalkEnv()
    env.reset(seed=1)
    _, reward, _, _, info = env.step(2)
    assert reward == pytest.approx(sum(info["rewards"].values()))
    assert set(info) >= {"instruction", "is_success", "rewards", "labels", "collision"}


def test_vec_env_matches_single_envs_through_auto_reset():
    n, seed, steps = 3, 7, 30
    venv = BatchedVecEnv(WalkSimulator(n))
    assert isinstance(venv, VecEnv)
    venv.seed(seed)
    obs = venv.reset()
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3, size=(steps, n))
    vec_obs = [obs]
    terminal = {i: [] for i in range(n)}
    for t in range(steps):
        obs, _, dones, infos = venv.step(actions[t])
        vec_obs.append(obs)
        for i in np.flatnonzero(dones):
            terminal[i].append((t, infos[i]["terminal_observation"]))
    for i in range(n):
        env = WalkEnv()
        o, _ = env.reset(seed=seed + i)
        np.testing.assert_array_equal(o["lidar"], vec_obs[0]["lidar"][i])
        ends = iter(terminal[i])
        for t in range(steps):
            o, _, term, trunc, _ = env.step(actions[t, i])
            if term or trunc:
                end_t, end_obs = next(ends)
                assert end_t == t
                for k in o:
                    np.testing.assert_array_equal(o[k], end_obs[k])
                o, _ = env.reset()
            for k in o:
                np.testing.assert_array_equal(o[k], vec_obs[t + 1][k][i], err_msg=f"{k} t={t}")


def test_truncation_is_flagged_and_distinct_from_termination():
    venv = BatchedVecEnv(WalkSimulator(2, horizon=3))
    venv.seed(0)
    venv.reset()
    for _ in range(3):
        _, _, dones, infos = venv.step(np.array([1, 1]))  # idle: never reaches the goal
    assert dones.all()
    assert all(info["TimeLimit.truncated"] for info in infos)


@pytest.mark.parametrize(
    "action, match",
    [(np.array([0, 1]), "shape"), (5, "out of range"), (np.nan, "NaN"), (1.5, "integers"),
     ("a", "integers")],
)  # fmt: skip
def test_bad_discrete_actions_raise(action, match):
    env = WalkEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_continuous_actions_clip_and_reject_nan():
    env = WalkEnv(continuous=True)
    env.reset(seed=0)
    env.step(np.array([5.0], np.float32))
    assert env.unwrapped.sim.pos[0] == pytest.approx(1.0)  # clipped to the bound
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.inf], np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.array([0.1, 0.2], np.float32))


def test_step_before_reset_raises():
    with pytest.raises(RuntimeError, match="reset"):
        WalkEnv().step(0)


def test_pickled_env_continues_identically():
    env = WalkEnv()
    env.reset(seed=3)
    env.step(2)
    clone = pickle.loads(pickle.dumps(env))
    a = env.step(0)[0]
    b = clone.step(0)[0]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_vec_env_attribute_plumbing():
    venv = BatchedVecEnv(WalkSimulator(2))
    assert venv.get_attr("max_episode_steps") == [12, 12]
    assert venv.env_method("instructions", indices=[0]) == [venv.sim.instructions()]
    assert venv.env_is_wrapped(object) == [False, False]
    with pytest.raises(ValueError, match="all copies"):
        venv.set_attr("max_episode_steps", 3, indices=[0])
    venv.set_attr("max_episode_steps", 3)
    assert venv.sim.max_episode_steps == 3


def test_zero_copies_rejected():
    with pytest.raises(ValueError, match="num_envs"):
        WalkSimulator(0)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "3"])
def test_bad_seeds_are_refused_naming_the_seed(seed):
    """Issue 15: ``make_vec_env(seed=-1)`` was accepted and failed at the first reset, inside
    NumPy, without saying which seed."""
    import mmrl
    from mmrl.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^seed must be"):
        mmrl.make_vec_env("mmrl/Driving-v1", 2, seed=seed)
    venv = BatchedVecEnv(WalkSimulator(2))
    venv.seed(seed if isinstance(seed, int) else None)
    if isinstance(seed, int):
        with pytest.raises(ConfigError, match=r"^seed must be"):
            venv.reset()


def test_single_env_action_errors_show_the_shape_given():
    """Issue 15: the message showed the internal batched shape (1, 3), not the user's (3,)."""
    import gymnasium as gym

    import mmrl  # noqa: F401  (registers the ids)

    env = gym.make("mmrl/Driving-v1")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"expected an action of shape \(\), got shape \(3,\)$"):
        env.step(np.array([0, 1, 2]))
    env.step(np.array([1]))  # a discrete action as a 1-element array still works
    cont = gym.make("mmrl/Driving-v1", continuous=True)
    cont.reset(seed=0)
    with pytest.raises(ValueError, match=r"expected an action of shape \(2,\), got shape \(3,\)$"):
        cont.step(np.zeros(3, np.float32))
