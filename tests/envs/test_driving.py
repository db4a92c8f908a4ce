"""Driving-specific tests of ``mmrl/Driving-v1`` and ``mmrl/DrivingContinuous-v1``."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mmrl
from mmrl.envs.driving import DrivingEnv, DrivingSimulator
from mmrl.envs.driving.camera import EGO_RGB
from mmrl.envs.driving.instructions import COLOR_RGB, COLORS, TASKS
from mmrl.envs.driving.simulator import FASTER, IDLE, LANE_LEFT, LANE_RIGHT, DrivingSimulatorV0

IDS = ("mmrl/Driving-v1", "mmrl/DrivingContinuous-v1")
SENSOR_CONFIGS = (
    {},
    {"camera_size": 40, "lidar_beams": 16, "lidar_noise": 0.05, "lidar_dropout": 0.1},
)


def _obs_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("kwargs", SENSOR_CONFIGS)
def test_gymnasium_and_sb3_checkers_pass_without_warnings(env_id, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(env_id, **kwargs)
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(DrivingEnv(continuous=env_id.endswith("Continuous-v0"), **kwargs))
        env.close()


def test_spaces_follow_sensor_arguments():
    env = gym.make("mmrl/Driving-v1", camera_size=48, lidar_beams=32, max_text_len=12)
    obs, _ = env.reset(seed=0)
    assert obs["camera"].shape == (48, 48, 3) and obs["camera"].dtype == np.uint8
    assert obs["lidar"].shape == (32,) and obs["lidar"].dtype == np.float32
    assert obs["text"].shape == (12,) and obs["text"].dtype == np.int64
    assert obs["state"].dtype == np.float32
    assert env.observation_space.contains(obs)
    assert env.action_space == gym.spaces.Discrete(5)
    cont = gym.make("mmrl/DrivingContinuous-v1")
    assert cont.action_space.shape == (2,)


def _rollout(env: gym.Env, seed: int, steps: int) -> list:
    """Observations and rewards of ``steps`` seeded random steps, resetting (unseeded) on end."""
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        out.append((obs, reward))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append(obs)
    return out


@pytest.mark.parametrize("env_id", IDS)
def test_seeded_runs_are_identical(env_id):
    kwargs = {"lidar_noise": 0.02, "lidar_dropout": 0.05}
    a = _rollout(gym.make(env_id, **kwargs), 3, 60)
    b = _rollout(gym.make(env_id, **kwargs), 3, 60)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, tuple):
            assert _obs_equal(x[0], y[0]) and x[1] == y[1]
        else:
            assert _obs_equal(x, y)
    c = _rollout(gym.make(env_id, **kwargs), 4, 5)
    assert not _obs_equal(a[0], c[0])


def test_observe_and_render_consume_no_randomness():
    kwargs = {"lidar_noise": 0.05, "lidar_dropout": 0.1, "render_mode": "rgb_array"}
    a = gym.make("mmrl/Driving-v1", **kwargs).unwrapped
    b = gym.make("mmrl/Driving-v1", **kwargs).unwrapped
    a.reset(seed=9)
    b.reset(seed=9)
    for _ in range(10):
        first = a.sim.observe()
        assert _obs_equal(first, a.sim.observe())
        a.render()
        ra = a.step(a.expert_action())
        rb = b.step(b.expert_action())
        assert _obs_equal(ra[0], rb[0])


def test_observing_a_subset_matches_observing_all():
    sim = DrivingSimulator(5, lidar_noise=0.05, continuous=True)
    sim.seed(list(range(5)))
    sim.reset_envs()
    rng = np.random.default_rng(1)
    for _ in range(8):
        sim.step(rng.uniform(-0.3, 1, size=(5, 2)))
    full = sim.observe()
    idx = np.array([3, 1])
    part = sim.observe(idx)
    for key in full:
        assert np.array_equal(full[key][idx], part[key]), key


def test_pickled_env_continues_identically():
    env = gym.make("mmrl/Driving-v1", lidar_noise=0.05).unwrapped
    env.reset(seed=7)
    for _ in range(5):
        env.step(env.expert_action())
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(40):
        action = env.expert_action()
        assert action == clone.expert_action()
        r1 = env.step(action)
        r2 = clone.step(action)
        assert _obs_equal(r1[0], r2[0]) and r1[1:4] == r2[1:4]
        if r1[2] or r1[3]:
            break


@pytest.mark.parametrize("env_id", IDS)
def test_vec_env_copy_matches_single_env_across_auto_reset(env_id):
    n, seed, steps = 3, 11, 90
    kwargs = {"lidar_noise": 0.03, "traffic_density": 2.0}
    venv = mmrl.make_vec_env(env_id, n_envs=n, seed=seed, monitor=False, **kwargs)
    singles = [gym.make(env_id, **kwargs) for _ in range(n)]
    rng = np.random.default_rng(0)
    continuous = "Continuous" in env_id
    obs = venv.reset()
    single_obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    boundaries = 0
    for _ in range(steps):
        for i in range(n):
            assert _obs_equal({k: v[i] for k, v in obs.items()}, single_obs[i])
        if continuous:
            actions = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
        else:
            actions = rng.choice([IDLE, FASTER, LANE_LEFT, LANE_RIGHT], size=n)
        obs, rewards, dones, infos = venv.step(actions)
        for i, env in enumerate(singles):
            o, r, terminated, truncated, info = env.step(actions[i])
            assert np.isclose(rewards[i], r)
            assert dones[i] == (terminated or truncated)
            assert infos[i]["is_success"] == info["is_success"]
            if dones[i]:
                boundaries += 1
                assert _obs_equal(infos[i]["terminal_observation"], o)
                o, _ = env.reset()
            single_obs[i] = o
    assert boundaries >= 2  # the comparison crossed auto-resets


def _expert_success(split: str, episodes: int, continuous: bool = False) -> float:
    sim = DrivingSimulator(episodes, instruction_split=split, continuous=continuous)
    sim.seed(list(range(10_000, 10_000 + episodes)))
    sim.reset_envs()
    done = np.zeros(episodes, bool)
    success = np.zeros(episodes, bool)
    while not done.all():
        _, terminated, truncated, result = sim.step(sim.expert_action())
        new = (terminated | truncated) & ~done
        success[new] = sim.success[new] & ~result.collision[new]
        done |= new
    return float(success.mean())


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("continuous", [False, True])
def test_expert_carries_out_instructions(split, continuous):
    # 200 episodes run as one batch in about a second.
    assert _expert_success(split, 200, continuous=continuous) >= 0.95


def test_expert_through_gym_api_succeeds():
    env = gym.make("mmrl/Driving-v1")
    wins = 0
    for seed in range(20):
        env.reset(seed=seed)
        while True:
            _, _, terminated, truncated, info = env.step(env.unwrapped.expert_action())
            if terminated or truncated:
                break
        assert terminated and not truncated
        wins += info["is_success"]
    assert wins >= 17


def test_random_policy_rarely_succeeds():
    # Success must depend on acting on the instruction, not come for free.
    sim = DrivingSimulator(100)
    sim.seed(list(range(100)))
    sim.reset_envs()
    rng = np.random.default_rng(0)
    done = np.zeros(100, bool)
    success = np.zeros(100, bool)
    while not done.all():
        _, terminated, truncated, _ = sim.step(rng.integers(0, 5, size=100))
        new = (terminated | truncated) & ~done
        success[new] = sim.success[new]
        done |= new
    assert success.mean() < 0.5


def test_reward_terms_sum_to_scalar_and_labels_are_present():
    env = gym.make("mmrl/Driving-v1")
    _, info = env.reset(seed=1)
    keys = set(info["labels"])
    expected = {
        "lane_index", "target_lane", "target_lane_offset", "n_lanes", "instruction_type",
        "target_color", "speed",
        "lateral_offset", "heading", "lead_distance", "lead_bearing", "ramp_distance",
        "ramp_bearing", "decision_distance", "target_distance", "target_bearing",
    }  # fmt: skip
    assert expected <= keys
    for _ in range(200):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert set(info["rewards"]) == set(DrivingSimulator.reward_terms)
        assert np.isclose(sum(info["rewards"].values()), reward, atol=1e-5)
        assert set(info["labels"]) == keys
        assert all(np.isscalar(v) and np.isfinite(v) for v in info["labels"].values())
        if terminated or truncated:
            env.reset()


def test_labels_agree_with_instruction():
    env = gym.make("mmrl/Driving-v1").unwrapped
    seen = set()
    for seed in range(60):
        _, info = env.reset(seed=seed)
        labels = info["labels"]
        task = TASKS[labels["instruction_type"]]
        seen.add(task)
        if task in ("follow", "overtake"):
            assert COLORS[labels["target_color"]] in info["instruction"]
            assert labels["target_distance"] > 0
        else:
            assert labels["target_color"] == -1
        if task == "take_exit":
            assert labels["target_lane"] == labels["n_lanes"]
        # A main lane, or (v1) the on-ramp, which has the exit lane's index.
        assert 0 <= labels["lane_index"] <= labels["n_lanes"]
        offset = labels["target_lane_offset"]
        if labels["target_lane"] < 0:
            assert offset == -4
        else:
            assert offset == np.clip(labels["target_lane"] - labels["lane_index"], -3, 3)
    assert seen == set(TASKS)


def test_text_encodes_instruction():
    env = gym.make("mmrl/Driving-v1").unwrapped
    obs, info = env.reset(seed=5)
    assert env.sim.tokenizer.decode(obs["text"]) == info["instruction"]


def test_camera_shows_the_named_car_in_its_colour():
    env = gym.make("mmrl/Driving-v1", tasks=("follow", "overtake")).unwrapped
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        color = COLOR_RGB[info["labels"]["target_color"]]
        hits = np.all(obs["camera"] == color, axis=-1).sum()
        assert hits >= 4, info["instruction"]


V0_OUT_OF_DATE = "ignore:.*is out of date.*:DeprecationWarning"


@pytest.mark.filterwarnings(V0_OUT_OF_DATE)
@pytest.mark.parametrize("env_id, ahead", [("mmrl/Driving-v1", 76.0), ("mmrl/Driving-v0", 60.0)])
def test_camera_draws_cars_where_they_are(env_id, ahead):
    env = gym.make(env_id, traffic_density=0.0, tasks=("follow",)).unwrapped
    env.reset(seed=4)
    sim = env.sim
    j = sim.tasks.target[0]
    sim.traffic.x[0, j] = sim.ego.x[0] + 20.0  # 16 px ahead
    sim.traffic.y[0, j] = sim.ego.y[0] + 4.0  # one lane (6.4 px) to the right
    camera = sim.observe()["camera"][0]
    color = COLOR_RGB[sim.tasks.arg[0]]
    ego_r, ego_c = np.nonzero(np.all(camera == EGO_RGB, axis=-1))
    car_r, car_c = np.nonzero(np.all(camera == color, axis=-1))
    # The ego sits `ahead` m below the top edge (v1: row 60.3 of 64, v0: 47.5) and centred
    # across.
    assert abs(ego_r.mean() - (ahead / 1.25 - 0.5)) <= 1.0 and abs(ego_c.mean() - 31.5) <= 1.0
    assert abs(car_r.mean() - (ego_r.mean() - 16.0)) <= 1.0
    assert abs(car_c.mean() - (ego_c.mean() + 6.4)) <= 1.0
    assert len(car_r) == 12  # 4.6 m x 1.9 m at 1.25 m x 0.625 m per pixel


@pytest.mark.filterwarnings(V0_OUT_OF_DATE)
@pytest.mark.parametrize(
    "env_id, sees_70_ahead, sees_10_behind",
    [("mmrl/Driving-v1", True, False), ("mmrl/Driving-v0", False, True)],
)
def test_camera_footprint_per_version(env_id, sees_70_ahead, sees_10_behind):
    # v1's camera looks forward (76 m ahead, 4 m behind): only the lidar sees traffic behind.
    # v0's shows 60 m ahead and 20 m behind.
    env = gym.make(env_id, traffic_density=0.0, tasks=("follow",)).unwrapped
    env.reset(seed=4)
    sim = env.sim
    t = sim.traffic
    j = sim.tasks.target[0]
    t.valid[0] = False
    t.valid[0, j] = True
    t.y[0, j] = sim.ego.y[0]
    color = COLOR_RGB[sim.tasks.arg[0]]
    seen = {}
    for dx in (70.0, -10.0):
        t.x[0, j] = sim.ego.x[0] + dx
        seen[dx] = np.all(sim.observe()["camera"][0] == color, axis=-1).sum()
    assert (seen[70.0] >= 4) == sees_70_ahead
    assert (seen[-10.0] >= 4) == sees_10_behind
    # The lidar (50 m range) sees the car behind in both versions.
    assert sim.observe()["lidar"][0].min() * sim.config.lidar_range < 8.0


@pytest.mark.parametrize("view", [(76.0, 4.0), (60.0, 20.0)])
def test_camera_paints_every_row_in_view_past_the_decision_point(view):
    # Row kinds past the decision point must reach as far as the view can look: the ego one
    # fast step (15 m) past the decision point, plus view_ahead.
    from mmrl.envs.driving.camera import Camera, row_table

    cam = Camera(1, 64, *view)
    ramp_end = np.array([400.0])
    cam.paint_roads(np.array([0]), np.array([3]), ramp_end - 120.0, ramp_end)
    _, layout = row_table(64, cam.length)
    q0 = int((cam.x_top - view[0] - (ramp_end[0] + 15.0)) / cam.res_x)
    assert q0 >= 0
    after = cam.kinds[0, q0 : q0 + 64] - 3 * layout["per_lanes"] - layout["after0"]
    assert after.max() < layout["n_after"] - 1  # never the saturated last kind
    with pytest.raises(ValueError, match="view_ahead"):
        Camera(1, 64, 150.0, 4.0)


@pytest.mark.parametrize("kerbs", [True, False])
def test_lidar_sees_a_car_ahead_and_the_kerbs_when_there_are_kerbs(kerbs):
    env = gym.make(
        "mmrl/Driving-v1", traffic_density=0.0, tasks=("follow",), lidar_kerbs=kerbs
    ).unwrapped
    obs, info = env.reset(seed=2)
    sim = env.sim
    d = info["labels"]["target_distance"]
    # Put the named car dead ahead in the ego's lane, the other candidates away.
    others = np.arange(sim.traffic.valid.shape[1]) != sim.tasks.target[0]
    sim.traffic.valid[0, others] = False
    sim.traffic.x[0, others] = -1e4
    sim.traffic.y[0, sim.tasks.target[0]] = sim.ego.y[0]
    obs = sim.observe()
    expected = (d - 2.3) / sim.config.lidar_range
    assert abs(obs["lidar"][0, 0] - min(expected, 1.0)) < 1e-3
    # Beam 16 of 64 points left (counter-clockwise 90 degrees): the left kerb at y = 0,
    # or nothing (full range) on a road whose edges are paint.
    left = obs["lidar"][0, 16] * sim.config.lidar_range
    assert abs(left - (sim.ego.y[0] if kerbs else sim.config.lidar_range)) < 1e-3


def test_v1_lidar_sees_only_cars_and_v0_sees_kerbs():
    """Driving-v1's road edges are paint (``lidar_kerbs=False``), so an empty road reads full
    range on every beam and lane identity comes from the camera; v0 keeps its kerbs."""
    for env_id, kerbs in (("mmrl/Driving-v1", False), ("mmrl/Driving-v0", True)):
        env = gym.make(env_id, traffic_density=0.0, tasks=("slow",)).unwrapped
        env.reset(seed=0)
        sim = env.sim
        assert sim.config.lidar_kerbs is kerbs
        sim.traffic.valid[:] = False
        sim.traffic.x[:] = -1e4
        lidar = sim.observe()["lidar"][0]
        assert bool(lidar.min() < 1.0) == kerbs, env_id


def test_lidar_matches_generic_ray_casting():
    from mmrl.envs.driving.road import LANE_WIDTH
    from mmrl.envs.driving.traffic import CAR_LENGTH, CAR_WIDTH
    from mmrl.envs.geometry import ray_boxes, ray_directions, ray_segments

    n = 24
    sim = DrivingSimulator(n, continuous=True, lidar_kerbs=True)
    sim.seed(list(range(n)))
    sim.reset_envs()
    rng = np.random.default_rng(0)
    for _ in range(6):  # turn a little so beams are not axis-aligned
        sim.step(np.stack([rng.uniform(-0.4, 0.4, n), rng.uniform(0, 1, n)], axis=1))
    ego, t, road = sim.ego, sim.traffic, sim.road
    r_max = sim.config.lidar_range
    origins = np.stack([ego.x, ego.y], axis=1).astype(np.float32)
    # geometry's angles are counter-clockwise in a y-up frame; the road frame's y points
    # right (a mirror image) and the ego's heading turns clockwise.
    dirs = ray_directions(-ego.psi, sim.lidar.angles)
    dirs[..., 1] *= -1
    main = road.n_lanes * LANE_WIDTH
    far = 1e4
    onramp = road.onramp_end  # v1: the on-ramp's kerb and its end
    seg_a = np.stack(
        [
            np.stack([ego.x - far, np.zeros(n)], 1),
            np.stack([onramp, main], 1),
            np.stack([road.ramp_end, main], 1),
            np.stack([road.ramp_start, main + LANE_WIDTH], 1),
            np.stack([road.ramp_start, main], 1),
            np.stack([ego.x - far, main + LANE_WIDTH], 1),
            np.stack([onramp, main], 1),
        ],
        axis=1,
    ).astype(np.float32)
    seg_b = np.stack(
        [
            np.stack([ego.x + far, np.zeros(n)], 1),
            np.stack([road.ramp_start, main], 1),
            np.stack([ego.x + far, main], 1),
            np.stack([road.ramp_end, main + LANE_WIDTH], 1),
            np.stack([road.ramp_start, main + LANE_WIDTH], 1),
            np.stack([onramp, main + LANE_WIDTH], 1),
            np.stack([onramp, main + LANE_WIDTH], 1),
        ],
        axis=1,
    ).astype(np.float32)
    kerbs = ray_segments(origins, dirs, seg_a, seg_b, r_max)
    centers = np.stack([t.x, t.y], axis=-1).astype(np.float32)
    half = np.array([CAR_LENGTH / 2, CAR_WIDTH / 2], np.float32)
    cars = ray_boxes(origins, dirs, centers, half, np.zeros_like(t.x), r_max, valid=t.valid)
    expected = np.minimum(kerbs, cars) / r_max
    lidar = sim.observe()["lidar"]
    in_range = (t.valid & (np.hypot(t.x - ego.x[:, None], t.y - ego.y[:, None]) < 60)).sum(1)
    checked = in_range <= 8  # the lidar tests the 8 nearest cars
    assert checked.sum() >= n // 2
    np.testing.assert_allclose(lidar[checked], expected[checked], atol=2e-4)


def test_lane_change_and_exit_on_an_empty_road():
    env = gym.make("mmrl/Driving-v1", traffic_density=0.0, tasks=("take_exit",)).unwrapped
    _, info = env.reset(seed=0)
    env.sim.traffic.valid[0] = False  # no background traffic; remove the candidate cars too
    env.sim.traffic.x[0] = -1e4
    n = info["labels"]["n_lanes"]
    lane = info["labels"]["lane_index"]  # v1: maybe the on-ramp (index n): merge left
    for _ in range(abs(n - 1 - lane)):
        info = env.step(LANE_RIGHT if lane < n - 1 else LANE_LEFT)[4]
    for _ in range(4):
        info = env.step(IDLE)[4]
    assert info["labels"]["lane_index"] == n - 1
    while info["labels"]["ramp_distance"] > 0:
        info = env.step(IDLE)[4]
    env.step(LANE_RIGHT)
    terminated = False
    while not terminated:
        _, _, terminated, truncated, info = env.step(IDLE)
        assert not truncated
    assert info["labels"]["lane_index"] == n and info["is_success"]


def test_overtake_means_pulling_in_ahead_of_the_named_car():
    # v1: passing the named car is not enough; success needs its lane and 6-30 m ahead of it.
    from mmrl.envs.driving import tasks as T
    from mmrl.envs.driving.road import lane_center

    env = gym.make("mmrl/Driving-v1", traffic_density=0.0, tasks=("overtake",)).unwrapped
    env.reset(seed=3)
    sim = env.sim
    t, ego = sim.traffic, sim.ego
    j = sim.tasks.target[0]
    lane_t = int(t.lane[0, j])
    assert sim.tasks.goal_lane[0] == lane_t  # the named car's lane is the goal lane
    others = [k for k in np.flatnonzero(t.valid[0]) if k != j]
    other_lane = 0 if lane_t else 1
    cases = [  # (ego lane, ego ahead of the named car (m), success)
        (lane_t, 15.0, True),
        (lane_t, 6.5, True),
        (lane_t, 29.5, True),
        (lane_t, 4.0, False),  # not far enough ahead
        (lane_t, 35.0, False),  # too far ahead
        (lane_t, -15.0, False),  # behind it
        (other_lane, 15.0, False),  # passed, not pulled in
    ]
    for lane, ahead, success in cases:
        for k in others:  # every other candidate car passed too, far behind
            t.x[0, k] = ego.x[0] - 45.0
        t.x[0, j] = ego.x[0] - ahead
        ego.y[0] = lane_center(lane)
        der = T.derive(sim)
        now = T.satisfied(sim, der)
        assert bool(T.succeeded(sim, der, now)[0]) == success, (lane, ahead)
        # The potential is highest (0) exactly when the condition holds.
        assert (T.potential(sim, der)[0] == 0.0) == success, (lane, ahead)


def test_collision_terminates_with_penalty():
    env = gym.make("mmrl/Driving-v1", tasks=("overtake",)).unwrapped
    env.reset(seed=0)
    sim = env.sim
    sim.traffic.y[0, sim.tasks.target[0]] = sim.ego.y[0]  # named car dead ahead, slower
    for _ in range(60):
        _, _, terminated, _, info = env.step(FASTER)
        if terminated:
            break
    assert info["collision"] and not info["is_success"]
    assert info["rewards"]["collision"] == -1.0


def test_continuous_actions_are_clipped():
    a = gym.make("mmrl/DrivingContinuous-v1").unwrapped
    b = gym.make("mmrl/DrivingContinuous-v1").unwrapped
    a.reset(seed=0)
    b.reset(seed=0)
    for _ in range(5):
        ra = a.step(np.array([5.0, -3.0], np.float32))
        rb = b.step(np.array([1.0, -1.0], np.float32))
        assert _obs_equal(ra[0], rb[0]) and ra[1:4] == rb[1:4]
        if ra[2] or ra[3]:
            break


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"camera_sise": 64}, "camera_sise"),
        ({"camera_size": 4}, "camera_size"),
        ({"lidar_beams": 0}, "lidar_beams"),
        ({"lidar_noise": -0.1}, "lidar_noise"),
        ({"lidar_range": float("nan")}, "lidar_range"),
        ({"instruction_split": "val"}, "instruction_split"),
        ({"tasks": ("fly",)}, "tasks"),
        ({"tasks": ()}, "tasks"),
        ({"min_lanes": 4, "max_lanes": 3}, "max_lanes"),
        ({"max_lanes": 5}, "max_lanes"),
        ({"traffic_density": -1.0}, "traffic_density"),
        ({"continuous": "yes"}, "continuous"),
        ({"max_episode_steps": 0}, "max_episode_steps"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DrivingEnv(**kwargs)
    with pytest.raises(ValueError, match=name):
        mmrl.make_vec_env("mmrl/Driving-v1", n_envs=2, **kwargs)


def test_unknown_argument_lists_allowed_names():
    with pytest.raises(ValueError, match=r"allowed parameters: .*traffic_density"):
        DrivingEnv(lanes=3)


@pytest.mark.parametrize(
    "env_id, action",
    [
        ("mmrl/Driving-v1", 5),
        ("mmrl/Driving-v1", -1),
        ("mmrl/Driving-v1", 1.5),
        ("mmrl/Driving-v1", np.array([1, 2])),
        ("mmrl/DrivingContinuous-v1", np.array([np.nan, 0.0], np.float32)),
        ("mmrl/DrivingContinuous-v1", np.array([np.inf, 0.0], np.float32)),
        ("mmrl/DrivingContinuous-v1", np.array([0.0, 0.0, 0.0], np.float32)),
    ],
)
def test_bad_actions_raise_value_error(env_id, action):
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(action)


def test_vec_env_rejects_wrong_action_batch():
    venv = mmrl.make_vec_env("mmrl/Driving-v1", n_envs=3, seed=0)
    venv.reset()
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros(2, np.int64))


def test_render_returns_rgb_frame():
    env = gym.make("mmrl/Driving-v1", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8


def test_tasks_and_expert_need_only_the_driving_state():
    # Tasks and the expert read a DrivingState, not the simulator: a plain object holding
    # just the protocol's members gives the same labels, rewards' inputs and expert actions.
    from types import SimpleNamespace

    from mmrl.envs.driving import expert
    from mmrl.envs.driving import tasks as T
    from mmrl.envs.driving.state import DrivingState

    members = sorted(
        name for name, value in vars(DrivingState).items() if isinstance(value, property)
    )
    assert {"ego", "traffic", "tasks", "derived", "config"} <= set(members)
    for env_id in ("mmrl/Driving-v0", "mmrl/Driving-v1", "mmrl/DrivingContinuous-v1"):
        venv = mmrl.make_vec_env(env_id, n_envs=4, seed=1, monitor=False)
        venv.reset()
        for _ in range(5):
            venv.step(venv.sim.expert_action())
        sim = venv.sim
        state = SimpleNamespace(**{name: getattr(sim, name) for name in members})
        np.testing.assert_array_equal(expert.act(state), sim.expert_action())
        der = T.derive(state)
        np.testing.assert_array_equal(der.lane, sim.derived.lane)
        np.testing.assert_array_equal(T.potential(state, der), T.potential(sim, sim.derived))
        got, want = T.labels(state, der), sim.labels()
        assert got.keys() == want.keys()
        for key in got:
            np.testing.assert_array_equal(got[key], want[key])


def _empty_road(env_id: str = "mmrl/Driving-v1") -> tuple[DrivingEnv, dict]:
    env = gym.make(env_id, traffic_density=0.0, tasks=("skip_exit",)).unwrapped
    _, info = env.reset(seed=0)
    env.sim.traffic.valid[0] = False  # remove the candidate cars too
    env.sim.traffic.x[0] = -1e4
    return env, info


@pytest.mark.parametrize("env_id, leaves", [("mmrl/Driving-v1", True), ("mmrl/Driving-v0", False)])
def test_a_lane_change_off_the_edge_leaves_the_road_in_v1_only(env_id, leaves):
    # v1 carries out "lane left" in the leftmost lane (the camera shows where the road ends);
    # v0's action model ignores it.
    env, info = _empty_road(env_id)
    for _ in range(info["labels"]["lane_index"]):
        env.step(LANE_LEFT)
    for _ in range(4):
        env.step(IDLE)
    terminated = False
    for _ in range(6):
        _, _, terminated, _, info = env.step(LANE_LEFT)
        if terminated:
            break
    assert terminated == leaves
    if leaves:
        assert info["rewards"]["off_road"] < 0 and not info["is_success"]


@pytest.mark.parametrize("behind, cut_in", [(10.0, True), (45.0, False)])
def test_moving_in_front_of_a_close_car_is_a_cut_in(behind, cut_in):
    # A car in the next lane `behind` metres back at the ego's speed: moving in front of it
    # leaves it less than a 0.6 s gap at 10 m (a cut-in, ended as a collision), not at 45 m.
    env, info = _empty_road()
    sim, t = env.sim, env.sim.traffic
    lane = info["labels"]["lane_index"]
    other = lane - 1 if lane > 0 else lane + 1
    t.valid[0, 0], t.has_leader[0, 0] = True, False
    t.x[0, 0], t.lane[0, 0], t.y[0, 0] = sim.ego.x[0] - behind, other, (other + 0.5) * 4.0
    t.v[0, 0] = t.v0[0, 0] = sim.ego.v[0]
    sim.behind_steps[0, 0] = 0  # a new car, not following the ego
    change = LANE_LEFT if other < lane else LANE_RIGHT
    collided = False
    for k in range(8):
        _, _, terminated, _, info = env.step(change if k == 0 else IDLE)
        if terminated:
            collided = info["collision"]
            break
    assert collided == cut_in


@pytest.mark.parametrize("continuous", [False, True])
def test_expert_never_collides_or_cuts_in(continuous):
    sim = DrivingSimulator(300, continuous=continuous)
    sim.seed(list(range(20_000, 20_300)))
    sim.reset_envs()
    done = np.zeros(300, bool)
    collided = np.zeros(300, bool)
    while not done.all():
        _, terminated, truncated, result = sim.step(sim.expert_action())
        new = (terminated | truncated) & ~done
        collided[new] = result.collision[new]
        done |= new
    assert not collided.any()


def test_v1_candidate_lanes_get_trailers_behind_the_ego_only_the_lidar_sees():
    # Every candidate lane but the ego's may get a car 8-22 m behind the ego at its
    # candidate's speed: out of the camera's view (4 m behind), within the lidar's range.
    from mmrl.envs.driving.scenes import TRAILER_WINDOW

    sim = DrivingSimulator(200)
    sim.seed(list(range(200)))
    sim.reset_envs()
    t, ego = sim.traffic, sim.ego
    dx = t.x - ego.x[:, None]
    ego_lane = (ego.y // 4.0).astype(int)
    trailer = t.valid & (dx >= TRAILER_WINDOW[0]) & (dx <= TRAILER_WINDOW[1])
    trailer &= (t.lane != ego_lane[:, None]) & (t.lane >= 1)  # not the passing lane
    assert 0.3 < trailer.any(axis=1).mean() < 1.0
    assert (t.v[trailer] <= 19.0).all()  # at a candidate's speed (14-19 m/s)


def test_v1_episodes_start_on_an_on_ramp_that_ends():
    # Most v1 episodes start on the on-ramp (lane index n_lanes); staying on it leaves the
    # road where it ends, so every such episode begins with a merge. v0 has no on-ramp.
    sim = DrivingSimulator(200)
    sim.seed(list(range(200)))
    sim.reset_envs()
    on_ramp = sim.derived.lane == sim.road.n_lanes
    assert 0.6 < on_ramp.mean() < 0.9
    assert ((sim.road.onramp_end >= 100.0) & (sim.road.onramp_end <= 160.0)).all()
    assert DrivingSimulatorV0(4).road.onramp_end is None

    env, info = _empty_road()
    while info["labels"]["lane_index"] != info["labels"]["n_lanes"]:  # a seed on the ramp
        _, info = env.reset()
        env.sim.traffic.valid[0] = False
    end = env.sim.road.onramp_end[0]
    terminated = False
    while not terminated:
        _, _, terminated, truncated, info = env.step(IDLE)
        assert not truncated
    assert info["rewards"]["off_road"] < 0
    assert end <= env.sim.ego.x[0] <= end + 30.0


def test_a_lidar_pickled_before_on_ramps_scans_the_same():
    # Before on-ramps the across-road kerb arrays were (n, 1); __setstate__ upgrades them.
    from mmrl.envs.driving.lidar import Lidar

    lidar = Lidar(3, 16, 50.0, kerbs=True)
    idx = np.arange(3)
    lidar.set_roads(
        idx, np.array([3, 3, 4]), np.array([200.0, 250, 300]), np.array([330.0, 380, 420])
    )
    args = (slice(None), np.array([190.0, 10, 290]), np.array([6.0, 10, 14]), np.zeros(3),
            np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 2), bool))  # fmt: skip
    old_state = {k: (v[0] if k in ("v_c", "v_lo", "v_hi") else v) for k, v in vars(lidar).items()}
    old = Lidar.__new__(Lidar)
    old.__setstate__(old_state)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(old)).scan(*args), lidar.scan(*args))
