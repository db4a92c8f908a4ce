"""``gym.make_vec`` on every mmrl id: one batched simulator behind Gymnasium's ``VectorEnv``."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, VectorEnv

import mmrl
from mmrl.envs import MultimodalVectorEnv
from mmrl.errors import ConfigError
from mmrl.registration import ENV_ENTRIES

IDS = [e.env_id for e in ENV_ENTRIES if e.env_id in gym.registry]
SMALL = {"camera_size": 24, "lidar_beams": 8}  # keeps the battery fast; sizes are kwargs too


@pytest.fixture(autouse=True)
def _no_out_of_date_notice():
    with warnings.catch_warnings():
        # Gymnasium's notice that a newer version (-v1) of a -v0 id exists.
        warnings.filterwarnings("ignore", message=".*is out of date.*", category=DeprecationWarning)
        yield


def assert_same(a, b, path="infos"):
    """Deep equality of Gymnasium vector infos: nested dicts, object arrays, dtypes."""
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{path}: {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert isinstance(b, np.ndarray) and b.dtype == object and a.shape == b.shape, path
        for i, (x, y) in enumerate(zip(a, b)):
            if x is None or y is None or isinstance(x, str):
                assert x == y, f"{path}[{i}]"
            else:
                assert_same(x, y, f"{path}[{i}]")
    else:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, f"{path}: {a.dtype} != {b.dtype}"
        np.testing.assert_array_equal(a, b, err_msg=path)


def actions_for(space, rng, n):
    """``n`` steps of batched actions from a seeded generator (reproducible across envs)."""
    space.seed(int(rng.integers(2**31)))
    return [space.sample() for _ in range(n)]


@pytest.mark.parametrize("env_id", IDS)
def test_make_vec_builds_one_batched_simulator(env_id):
    envs = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **SMALL)
    assert isinstance(envs, VectorEnv) and isinstance(envs, MultimodalVectorEnv)
    assert envs.sim.num_envs == 3  # one simulator, not three envs
    assert envs.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert envs.spec.id == env_id and envs.max_episode_steps == gym.spec(env_id).max_episode_steps
    single = gym.make(env_id, **SMALL)
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    assert envs.observation_space == gym.vector.utils.batch_space(single.observation_space, 3)
    assert envs.action_space == gym.vector.utils.batch_space(single.action_space, 3)
    # Without a mode, Gymnasium picks the registered vector entry point.
    assert isinstance(gym.make_vec(env_id, num_envs=2, **SMALL), MultimodalVectorEnv)

    obs, infos = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    assert infos["_instruction"].all() and all(isinstance(s, str) for s in infos["instruction"])
    for actions in actions_for(envs.action_space, np.random.default_rng(0), 4):
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        assert envs.observation_space.contains(obs)
        assert rewards.shape == (3,) and rewards.dtype == np.float64
        assert terminated.dtype == truncated.dtype == np.bool_ and terminated.shape == (3,)
        assert {"instruction", "is_success", "labels", "_labels"} <= set(infos)
    envs.close()
    envs.close()  # idempotent, as VectorEnv.close is
    with pytest.raises(RuntimeError, match="closed"):
        envs.step(envs.action_space.sample())


@pytest.mark.parametrize("env_id", ["mmrl/Driving-v1", "mmrl/NavigationContinuous-v1"])
def test_observations_equal_n_single_envs_through_autoreset(env_id):
    """Copy i follows gym.make(env_id) reset with seed s + i, across episode ends."""
    n, seed, limit = 3, 7, 6  # a short time limit makes every copy autoreset twice
    envs = gym.make_vec(env_id, num_envs=n, max_episode_steps=limit, **SMALL)
    singles = [gym.make(env_id, max_episode_steps=limit, **SMALL) for _ in range(n)]
    obs, _ = envs.reset(seed=seed)
    single_obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    ends = 0
    for actions in actions_for(envs.action_space, np.random.default_rng(1), 2 * limit + 2):
        for i in range(n):
            for key in obs:
                np.testing.assert_array_equal(obs[key][i], single_obs[i][key], err_msg=key)
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        for i, env in enumerate(singles):
            o, r, term, trunc, _ = env.step(actions[i])
            assert (rewards[i], terminated[i], truncated[i]) == (r, term, trunc)
            if term or trunc:
                ends += 1
                for key in o:
                    np.testing.assert_array_equal(infos["final_obs"][i][key], o[key])
                o, _ = env.reset()
            single_obs[i] = o
    assert ends >= 2 * n


@pytest.mark.parametrize("env_id", ["mmrl/Driving-v0", "mmrl/Navigation-v1"])
def test_everything_equals_syncvectorenv_over_single_envs(env_id):
    """Observations, rewards, flags and the whole info dict (masks, final_obs, final_info,
    dtypes) equal Gymnasium's own SyncVectorEnv(autoreset_mode=SAME_STEP) over gym.make."""
    n, limit = 4, 5
    ours = gym.make_vec(env_id, num_envs=n, max_episode_steps=limit, **SMALL)
    sync = gym.make_vec(
        env_id,
        num_envs=n,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        max_episode_steps=limit,
        **SMALL,
    )
    assert_same(ours.reset(seed=[3, 4, 5, 6]), sync.reset(seed=[3, 4, 5, 6]), "reset")
    # Seed None keeps a copy's generator: copy 1 continues instead of restarting seed 4.
    assert_same(ours.reset(seed=[3, None, 5, 6]), sync.reset(seed=[3, None, 5, 6]), "reset")
    assert not np.array_equal(
        ours.reset(seed=[3, None, 5, 6])[0]["lidar"][1], sync.reset(seed=3)[0]["lidar"][1]
    )
    assert_same(ours.reset(seed=3), sync.reset(seed=3), "reset")
    saw_final = False
    for actions in actions_for(ours.action_space, np.random.default_rng(2), 2 * limit + 1):
        a, b = ours.step(actions), sync.step(actions)
        for name, x, y in zip(("obs", "reward", "terminated", "truncated", "infos"), a, b):
            assert_same(x, y, name)
        saw_final |= "final_info" in a[4]
    assert saw_final


def test_partial_reset_mask_and_record_episode_statistics():
    envs = gym.make_vec("mmrl/Navigation-v1", num_envs=3, **SMALL)
    envs.reset(seed=0)
    stepped, *_ = envs.step(np.ones(3, dtype=np.int64))  # turn left: no episode ends
    mask = np.array([False, True, False])
    obs, infos = envs.reset(seed=[None, 1, None], options={"reset_mask": mask})
    np.testing.assert_array_equal(infos["_instruction"], mask)
    single, _ = gym.make("mmrl/Navigation-v1", **SMALL).reset(seed=1)
    for key in obs:  # copy 1 restarted as a seed-1 env; copies 0 and 2 kept their step
        np.testing.assert_array_equal(obs[key][1], single[key])
        np.testing.assert_array_equal(obs[key][[0, 2]], stepped[key][[0, 2]])
    with pytest.raises(ConfigError, match="reset_mask"):
        envs.reset(options={"reset_mask": [True, False, True]})

    # Gymnasium's own episode-statistics wrapper reads the declared same-step mode.
    wrapped = gym.wrappers.vector.RecordEpisodeStatistics(
        gym.make_vec("mmrl/Navigation-v1", num_envs=2, max_episode_steps=4, **SMALL)
    )
    wrapped.reset(seed=0)
    for _ in range(4):
        *_, infos = wrapped.step(np.ones(2, dtype=np.int64))
    np.testing.assert_array_equal(infos["episode"]["l"], [4, 4])
    np.testing.assert_array_equal(infos["_episode"], [True, True])


def test_render_returns_one_frame_per_copy():
    envs = gym.make_vec("mmrl/Driving-v1", num_envs=2, render_mode="rgb_array", **SMALL)
    envs.reset(seed=0)
    frames = envs.render()
    single = gym.make("mmrl/Driving-v1", render_mode="rgb_array", **SMALL)
    single.reset(seed=1)
    assert len(frames) == 2 and frames[0].dtype == np.uint8 and frames[0].ndim == 3
    np.testing.assert_array_equal(frames[1], single.render())


def test_env_kwargs_reach_the_simulator():
    envs = gym.make_vec(
        "mmrl/DrivingContinuous-v1", num_envs=2, lidar_beams=12, max_text_len=9, min_lanes=4
    )
    assert envs.sim.config.continuous and envs.sim.config.min_lanes == 4
    obs, infos = envs.reset(seed=0)
    assert obs["lidar"].shape == (2, 12) and obs["text"].shape == (2, 9)
    np.testing.assert_array_equal(infos["labels"]["n_lanes"], [4, 4])
    assert envs.action_space.shape == (2, 2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_envs": 2, "lidar_beam": 8}, ValueError, "unknown parameter.*'lidar_beam'"),
        ({"num_envs": 2, "camera_size": -1}, ValueError, "camera_size"),
        ({"num_envs": 0}, ConfigError, "num_envs must be a positive integer, got 0"),
        ({"num_envs": 2, "render_mode": "human"}, ConfigError, "render_mode must be None"),
        ({"num_envs": 2, "max_episode_steps": 0}, ConfigError, "max_episode_steps must be"),
    ],
)
def test_bad_arguments_raise_clearly(kwargs, error, match):
    with pytest.raises(error, match=match):
        gym.make_vec("mmrl/Navigation-v1", **kwargs)


def test_bad_seeds_actions_and_order_raise():
    envs = gym.make_vec("mmrl/Driving-v1", num_envs=2, **SMALL)
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(np.zeros(2, dtype=np.int64))
    with pytest.raises(ConfigError, match="seed must be None, an int or a sequence of 2"):
        envs.reset(seed=[1, 2, 3])
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="out of range"):
        envs.step(np.array([0, 9]))
    assert mmrl.registration.entry_for("mmrl/Driving-v1").vector_entry_point


def _gone(pid):
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("env_id", ["mmrl/Driving-v1", "mmrl/Navigation-v1"])
def test_worker_processes_give_the_one_process_results(env_id):
    """``n_workers=2``: the same observations, rewards, flags and infos (final_obs and
    final_info included) as ``n_workers=1``, through auto-resets, a time limit shorter than
    the simulator's, partial resets, the expert and rendering; close stops the workers."""
    n, limit = 5, 6  # blocks of 3 + 2 copies; every copy auto-resets at least twice
    kwargs = dict(num_envs=n, max_episode_steps=limit, render_mode="rgb_array", **SMALL)
    one = gym.make_vec(env_id, vectorization_mode="vector_entry_point", **kwargs)
    two = gym.make_vec(env_id, vectorization_mode="vector_entry_point", n_workers=2, **kwargs)
    try:
        assert two.sim is None and two.pool.n_workers == 2 and two.pool.blocks == [(0, 3), (3, 5)]
        assert two.single_observation_space == one.single_observation_space
        assert two.single_action_space == one.single_action_space
        assert_same(one.reset(seed=11), two.reset(seed=11), "reset")
        saw_final = 0
        for actions in actions_for(one.action_space, np.random.default_rng(4), 2 * limit + 3):
            a, b = one.step(actions), two.step(actions)
            for name, x, y in zip(("obs", "reward", "terminated", "truncated", "infos"), a, b):
                assert_same(x, y, name)
            saw_final += int(a[4].get("_final_obs", np.zeros(n, bool)).sum())
        assert saw_final >= 2 * n
        # Partial reset: copies of both workers, one reseeded and one continuing its stream.
        mask = np.array([False, True, False, True, False])
        seeds = [None, 21, None, None, None]
        assert_same(
            one.reset(seed=seeds, options={"reset_mask": mask}),
            two.reset(seed=seeds, options={"reset_mask": mask}),
            "partial reset",
        )
        np.testing.assert_array_equal(one.expert_action(), two.expert_action())
        assert_same(one.render(), two.render(), "render")
        a, b = one.step(one.expert_action()), two.step(two.expert_action())
        assert_same(a, b, "step after the partial reset")
        pids = two.pool.worker_pids
    finally:
        one.close()
        two.close()
    assert all(_gone(pid) for pid in pids)
    two.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        two.step(np.zeros(n, np.int64))


@pytest.mark.parametrize("n_workers", [0, 4, 1.5, True, "2"])
def test_bad_n_workers_in_make_vec(n_workers):
    with pytest.raises(ConfigError, match="n_workers"):
        gym.make_vec("mmrl/Driving-v1", num_envs=3, n_workers=n_workers, **SMALL)
