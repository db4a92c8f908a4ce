"""The battery every registered mmrl environment id must pass (MiniGrid-style)."""

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest

import mmrl
from mmrl.registration import ENV_ENTRIES

IDS = [e.env_id for e in ENV_ENTRIES if e.env_id in gym.registry]
SENSOR_CONFIGS = [{}, {"camera_size": 40, "lidar_beams": 16, "lidar_noise": 0.05,
                       "lidar_dropout": 0.1, "max_text_len": 12}]  # fmt: skip


def test_all_declared_environments_are_registered():
    assert [e.env_id for e in ENV_ENTRIES] == IDS


def test_registration_is_idempotent():
    before = len(gym.registry)
    mmrl.register_envs()
    mmrl.register_envs()
    assert len(gym.registry) == before


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("sensors", SENSOR_CONFIGS, ids=["default", "small-noisy"])
def test_checkers_pass_without_warnings(env_id, sensors):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Gymnasium's own notice that a newer version (-v1) of a -v0 id exists.
        warnings.filterwarnings("ignore", message=".*is out of date.*", category=DeprecationWarning)
        env = gym.make(env_id, **sensors)
        gym_check(env.unwrapped)
        sb3_check(gym.make(env_id, **sensors), warn=True)


@pytest.mark.parametrize("env_id", IDS)
def test_contract_keys_dtypes_and_info(env_id):
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    space = env.observation_space
    assert list(space.spaces) == ["camera", "lidar", "text", "state"]
    assert obs["camera"].dtype == np.uint8 and obs["camera"].shape == (64, 64, 3)
    assert obs["lidar"].dtype == np.float32 and obs["lidar"].shape == (64,)
    assert obs["text"].dtype == np.int64 and obs["text"].shape == (16,)
    assert obs["state"].dtype == np.float32
    assert isinstance(info["instruction"], str) and info["instruction"]
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert space.contains(obs)
        assert reward == pytest.approx(sum(info["rewards"].values()), abs=1e-5)
        assert isinstance(info["is_success"], bool)
        assert info["labels"] and all(np.isscalar(v) for v in info["labels"].values())
        if terminated or truncated:
            break
    assert env.spec.max_episode_steps is not None


@pytest.mark.parametrize("env_id", IDS)
def test_seeded_determinism(env_id):
    def rollout(seed):
        env = gym.make(env_id)
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        frames = [obs]
        for _ in range(40):
            obs, _, term, trunc, _ = env.step(env.action_space.sample())
            frames.append(obs)
            if term or trunc:
                obs, _ = env.reset()
        return frames

    a, b, c = rollout(11), rollout(11), rollout(12)
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    assert any(not np.array_equal(x["camera"], z["camera"]) for x, z in zip(a, c))


@pytest.mark.parametrize("env_id", IDS)
def test_pickle_round_trip_continues_identically(env_id):
    env = gym.make(env_id)
    env.reset(seed=5)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(10)]
    env.step(actions[0])
    clone = pickle.loads(pickle.dumps(env))
    for a in actions[1:]:
        o1, r1, t1, u1, _ = env.step(a)
        o2, r2, t2, u2, _ = clone.step(a)
        assert (r1, t1, u1) == (r2, t2, u2)
        for k in o1:
            np.testing.assert_array_equal(o1[k], o2[k])
        if t1 or u1:
            break


@pytest.mark.parametrize("env_id", IDS)
def test_vec_env_matches_single_envs(env_id):
    n, seed = 3, 21
    venv = mmrl.make_vec_env(env_id, n_envs=n, seed=seed, monitor=False)
    obs = venv.reset()
    singles = [gym.make(env_id) for _ in range(n)]
    single_obs = [e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]
    rng = np.random.default_rng(0)
    for t in range(60):
        for i in range(n):
            for k in obs:
                np.testing.assert_array_equal(obs[k][i], single_obs[i][k], err_msg=f"{k} {t}")
        if isinstance(venv.action_space, gym.spaces.Discrete):
            actions = rng.integers(0, venv.action_space.n, size=n)
        else:
            actions = rng.uniform(-1, 1, size=(n, *venv.action_space.shape)).astype(np.float32)
        obs, rewards, dones, infos = venv.step(actions)
        for i, env in enumerate(singles):
            o, r, term, trunc, _ = env.step(actions[i])
            assert r == pytest.approx(rewards[i], abs=1e-5)
            assert dones[i] == (term or trunc)
            if term or trunc:
                for k in o:
                    np.testing.assert_array_equal(o[k], infos[i]["terminal_observation"][k])
                o, _ = env.reset()
            single_obs[i] = o


@pytest.mark.parametrize("env_id", IDS)
def test_unknown_and_out_of_range_kwargs_raise(env_id):
    with pytest.raises(ValueError, match=r"unknown parameter.*'colour'.*allowed"):
        gym.make(env_id, colour="red")
    with pytest.raises(ValueError, match="camera_size"):
        gym.make(env_id, camera_size=2)
    with pytest.raises(ValueError, match="lidar_dropout"):
        gym.make(env_id, lidar_dropout=1.5)
    with pytest.raises(ValueError, match="instruction_split"):
        gym.make(env_id, instruction_split="validation")


@pytest.mark.parametrize("env_id", IDS)
def test_bad_actions_raise(env_id):
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    bad = [np.nan, np.array([1, 2, 3, 4, 5, 6, 7])]
    for action in bad:
        with pytest.raises(ValueError):
            env.step(action)


@pytest.mark.parametrize("env_id", IDS)
def test_render_rgb_array(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


@pytest.mark.parametrize(
    "sim_path",
    ["mmrl.envs.driving:DrivingSimulator", "mmrl.envs.navigation:NavigationSimulator"],
)
def test_simulator_pickled_before_versions_resumes_as_v0(sim_path):
    """Run checkpoints pickle the environment: a simulator pickled before v1 existed (its
    state has no ``scene_version``) comes back as the v0 simulator and continues exactly."""
    import importlib

    module, name = sim_path.split(":")
    v1_cls = getattr(importlib.import_module(module), name)
    v0_cls = getattr(importlib.import_module(module), name + "V0")
    sim = v0_cls(3)
    sim.seed([5, 6, 7])
    sim.reset_envs()
    reference = pickle.loads(pickle.dumps(sim))
    state = dict(sim.__dict__)
    del state["scene_version"]
    state.pop("obj_candidate", None)  # Navigation attribute added with v1
    old = v1_cls.__new__(v1_cls)  # what unpickling an old "DrivingSimulator" does
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert type(old) is v0_cls and old.scene_version == 0
    rng = np.random.default_rng(0)
    for _ in range(60):
        actions = np.stack([sim.action_space.sample() for _ in range(3)])
        if rng.random() < 0.5:
            actions = reference.expert_action()
        a = reference.step(actions)
        b = old.step(actions)
        for x, y in zip(a[:3], b[:3]):
            np.testing.assert_array_equal(x, y)
        for key, value in reference.observe().items():
            np.testing.assert_array_equal(value, old.observe()[key])


def test_class_paths_pickled_in_old_checkpoints_still_resolve():
    """Checkpoints from before the DrivingState refactor pickled these by these paths."""
    from mmrl.envs.driving import state, tasks

    assert tasks.TaskBatch is state.TaskBatch and tasks.Derived is state.Derived
