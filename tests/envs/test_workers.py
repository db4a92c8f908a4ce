"""``make_vec_env(..., n_workers=K)``: the multi-process pool against the one-process env."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import gymnasium as gym
import numpy as np
import pytest

import mmrl
from mmrl.envs.vec_env import BatchedVecEnv
from mmrl.envs.workers import WorkerVecEnv
from mmrl.errors import ConfigError, WorkerError

SMALL = {"camera_size": 16, "lidar_beams": 16}
# Short episodes so that 50 steps see truncations as well as terminations.
CASES = {
    "mmrl/Driving-v1": ({**SMALL, "max_episode_steps": 12}, 5),  # 5 copies: blocks 3 + 2
    "mmrl/Navigation-v1": (SMALL, 4),
}


def _make(env_id: str, n_workers: int, seed: int = 7, n_envs: int | None = None, **extra):
    kwargs, copies = CASES[env_id]
    venv = mmrl.make_vec_env(
        env_id,
        n_envs=n_envs or copies,
        seed=seed,
        monitor=False,
        n_workers=n_workers,
        **{**kwargs, **extra},
    )
    if env_id.startswith("mmrl/Navigation"):
        venv.set_attr("max_episode_steps", 9)  # set_attr reaches every worker's simulator
    return venv


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _assert_obs_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _assert_infos_equal(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert set(x) == set(y)
        for key in x:
            if key == "terminal_observation":
                _assert_obs_equal(x[key], y[key])
            else:
                assert x[key] == y[key], key


@pytest.mark.parametrize("env_id", list(CASES))
def test_matches_single_process_over_autoresets(env_id: str) -> None:
    single, pool = _make(env_id, 1), _make(env_id, 2)
    try:
        assert isinstance(single, BatchedVecEnv) and isinstance(pool, WorkerVecEnv)
        assert pool.observation_space == single.observation_space
        assert pool.action_space == single.action_space
        _assert_obs_equal(single.reset(), pool.reset())
        assert single.reset_infos == pool.reset_infos
        rng = np.random.default_rng(0)
        # Seeded, so the episode ends below are the same on every run (unseeded random
        # driving could crash every copy before its time limit and miss a truncation).
        single.action_space.seed(0)
        terminated = truncated = 0
        kept: list[tuple] = []  # every step's results, compared again at the end
        for _ in range(50):
            actions = np.stack([single.action_space.sample() for _ in range(single.num_envs)])
            actions = rng.permutation(actions)
            obs_a, rew_a, done_a, info_a = single.step(actions)
            obs_b, rew_b, done_b, info_b = pool.step(actions)
            _assert_obs_equal(obs_a, obs_b)
            assert rew_a.dtype == rew_b.dtype and done_a.dtype == done_b.dtype
            np.testing.assert_array_equal(rew_a, rew_b)
            np.testing.assert_array_equal(done_a, done_b)
            _assert_infos_equal(info_a, info_b)
            kept.append((obs_a, obs_b, info_a, info_b))
            assert single.reset_infos == pool.reset_infos
            for key, value in single.step_info_arrays.items():
                other = pool.step_info_arrays[key]
                if isinstance(value, dict):
                    for name in value:
                        np.testing.assert_array_equal(value[name], other[name])
                else:
                    np.testing.assert_array_equal(value, other)
            for info in info_a:
                if "terminal_observation" in info:
                    truncated += info["TimeLimit.truncated"]
                    terminated += not info["TimeLimit.truncated"]
        # What a caller kept is still what it was given: the pool hands out copies of its
        # shared buffers (observations and terminal observations), never views that a
        # later step overwrites.
        for obs_a, obs_b, info_a, info_b in kept:
            _assert_obs_equal(obs_a, obs_b)
            _assert_infos_equal(info_a, info_b)
        # The comparison covered both kinds of episode end, each auto-reset.
        assert truncated > 0
        if env_id.startswith("mmrl/Driving"):
            assert terminated > 0  # random driving crashes within 50 steps
        np.testing.assert_array_equal(single.expert_action(), pool.expert_action())
        frames_a, frames_b = single.get_images(), pool.get_images()
        assert len(frames_b) == single.num_envs
        for a, b in zip(frames_a, frames_b):
            np.testing.assert_array_equal(a, b)
    finally:
        single.close()
        pool.close()


def test_seeding_attributes_and_methods() -> None:
    pool = _make("mmrl/Driving-v1", 2, seed=3)
    try:
        first = pool.reset()
        # A later reset without seed continues each copy's generator: new scenes.
        assert any(not np.array_equal(first[k], v) for k, v in pool.reset().items())
        pool.seed(3)
        _assert_obs_equal(first, pool.reset())
        pool.seed(4)
        assert not np.array_equal(first["state"], pool.reset()["state"])
        # Copy i of a seeded pool is the single env reset with seed + i.
        single = gym.make("mmrl/Driving-v1", **CASES["mmrl/Driving-v1"][0])
        pool.seed(3)
        obs = pool.reset()
        for i in (0, 4):
            one, _ = single.reset(seed=3 + i)
            np.testing.assert_array_equal(one["camera"], obs["camera"][i])
        assert pool.get_attr("max_episode_steps") == [12] * 5
        assert pool.get_attr("num_envs", indices=[0, 4]) == [3, 2]  # each worker's block
        assert pool.get_attr("render_mode") == [None] * 5
        with pytest.raises(AttributeError):
            pool.get_attr("no_such_attribute")
        instructions = [info["instruction"] for info in pool.reset_infos]
        # Each copy gets the result of the worker holding it (worker 0: copies 0..2).
        assert pool.env_method("instructions", indices=[0, 4]) == [
            instructions[:3],
            instructions[3:],
        ]
        with pytest.raises(ValueError, match="all copies"):
            pool.set_attr("max_episode_steps", 5, indices=[0])
        assert pool.env_is_wrapped(object) == [False] * 5
        with pytest.raises(ValueError, match="expected 5 discrete action"):
            pool.step(np.zeros(4, np.int64))
        pool.step(np.zeros(5, np.int64))  # the pool still works after a refused step
    finally:
        pool.close()


@pytest.mark.parametrize("n_workers", [0, -1, 6, 1.5, True, "2", None])
def test_bad_n_workers(n_workers) -> None:
    with pytest.raises(ConfigError, match="n_workers"):
        mmrl.make_vec_env("mmrl/Driving-v1", n_envs=5, n_workers=n_workers)


def test_n_workers_needs_an_mmrl_id() -> None:
    with pytest.raises(ConfigError, match="n_workers must be 1 for 'CartPole-v1'"):
        mmrl.make_vec_env("CartPole-v1", n_envs=2, n_workers=2)


def test_bad_env_kwargs_fail_before_any_worker_starts() -> None:
    before = len(multiprocessing.active_children())
    with pytest.raises(ValueError, match="camera_size"):
        mmrl.make_vec_env("mmrl/Driving-v1", n_envs=2, n_workers=2, camera_size=2)
    assert len(multiprocessing.active_children()) == before


def test_close_is_idempotent_and_stops_the_workers() -> None:
    pool = _make("mmrl/Driving-v1", 2)
    pids = pool.worker_pids
    pool.reset()
    pool.close()
    pool.close()
    assert all(_gone(pid) for pid in pids)
    with pytest.raises(WorkerError, match="closed"):
        pool.reset()


def test_dead_worker_raises_and_leaves_no_process() -> None:
    pool = _make("mmrl/Driving-v1", 2)
    pids = pool.worker_pids
    pool.reset()
    os.kill(pids[1], signal.SIGKILL)
    with pytest.raises(WorkerError, match=r"worker 1 of 2 .*copies 3\.\.4.*SIGKILL.*exit code -9"):
        pool.step(np.zeros(5, np.int64))
    assert all(_gone(pid) for pid in pids)
    with pytest.raises(WorkerError, match="closed"):
        pool.step(np.zeros(5, np.int64))
    pool.close()  # still fine after a failure


def test_silent_worker_times_out_instead_of_hanging() -> None:
    pool = _make("mmrl/Driving-v1", 2)
    pids = pool.worker_pids
    pool.reset()
    pool.timeout = 1.0
    os.kill(pids[0], signal.SIGSTOP)  # alive, but never answers
    start = time.monotonic()
    with pytest.raises(WorkerError, match=r"worker 0 of 2 .*stopped answering.*within 1 s"):
        pool.step(np.zeros(5, np.int64))
    assert time.monotonic() - start < 10
    assert all(_gone(pid) for pid in pids)


def test_ctrl_c_stops_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = _make("mmrl/Driving-v1", 2)
    pids = pool.worker_pids
    pool.reset()
    # Workers ignore SIGINT (a terminal's Ctrl-C reaches them too): the parent decides.
    os.kill(pids[0], signal.SIGINT)
    pool.step(np.zeros(5, np.int64))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # Ctrl-C lands while the parent waits for the workers' replies.
    monkeypatch.setattr("mmrl.envs.worker_pool.wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pool.step(np.zeros(5, np.int64))
    assert all(_gone(pid) for pid in pids)
    pool.close()


def test_state_round_trip_resumes_exactly() -> None:
    """What a run checkpoint stores: each worker's simulator, the last observations."""
    pool, other = _make("mmrl/Driving-v1", 2), _make("mmrl/Driving-v1", 2, seed=99)
    try:
        pool.reset()
        actions = np.ones(5, np.int64)
        for _ in range(3):
            pool.step(actions)
        state = pool.get_state()
        expected = [pool.step(actions) for _ in range(15)]  # past the 12-step episodes
        other.reset()
        other.set_state(state)
        for obs, rew, done, infos in expected:
            obs_b, rew_b, done_b, infos_b = other.step(actions)
            _assert_obs_equal(obs, obs_b)
            np.testing.assert_array_equal(rew, rew_b)
            np.testing.assert_array_equal(done, done_b)
            _assert_infos_equal(infos, infos_b)
    finally:
        other.close()
    three = _make("mmrl/Driving-v1", 3)
    try:
        with pytest.raises(ConfigError, match=r"n_workers .*blocks of \[3, 2\] copies"):
            three.set_state(state)
    finally:
        three.close()
        pool.close()
