"""Tests of ``mmrl/Navigation-v1``: API conformance, determinism, task properties, bad input."""

from __future__ import annotations

import dataclasses
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest

import mmrl
from mmrl.envs.config import SensorConfig
from mmrl.envs.navigation import NavigationConfig, NavigationEnv, NavigationSimulator
from mmrl.envs.navigation.instructions import (
    COLOR_RGB,
    HELD_OUT,
    TEST_TEMPLATES,
    make_instruction,
    target_combos,
)
from mmrl.envs.navigation.room import OBJECT_RADIUS
from mmrl.envs.navigation.simulator import CONTACT_RADIUS, SUCCESS_RADIUS

IDS = ("mmrl/Navigation-v1", "mmrl/NavigationContinuous-v1")
SENSOR_CONFIGS = (
    {},
    {"camera_size": 48, "lidar_beams": 32, "lidar_noise": 0.05, "lidar_dropout": 0.1},
)


def _random_actions(space: gym.Space, n: int, seed: int) -> list:
    space.seed(seed)
    return [space.sample() for _ in range(n)]


def _assert_obs_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("kwargs", SENSOR_CONFIGS)
def test_gymnasium_and_sb3_check_env(env_id: str, kwargs: dict) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(env_id, render_mode="rgb_array", **kwargs).unwrapped)
        sb3_check_env(gym.make(env_id, **kwargs), warn=True)


def test_registered_entry_points() -> None:
    env = gym.make("mmrl/Navigation-v1")
    assert isinstance(env.unwrapped, NavigationEnv)
    assert env.spec is not None and env.spec.max_episode_steps == 100
    assert env.unwrapped.sim.max_episode_steps == 100
    assert gym.make("mmrl/Navigation-v0").unwrapped.sim.max_episode_steps == 200
    assert isinstance(env.action_space, gym.spaces.Discrete) and env.action_space.n == 4
    cont = gym.make("mmrl/NavigationContinuous-v1")
    assert cont.action_space.shape == (2,)
    assert mmrl.__version__


@pytest.mark.parametrize("env_id", IDS)
def test_seeded_determinism(env_id: str) -> None:
    runs = []
    for _ in range(2):
        env = gym.make(env_id, lidar_noise=0.05, lidar_dropout=0.05)
        obs, info = env.reset(seed=123)
        trace = [(obs, info["instruction"])]
        for action in _random_actions(env.action_space, 60, seed=7):
            obs, reward, terminated, truncated, info = env.step(action)
            trace.append((obs, reward, terminated, truncated, info["rewards"]))
            if terminated or truncated:
                obs, info = env.reset()
                trace.append((obs, info["instruction"]))
        runs.append(trace)
    for a, b in zip(*runs, strict=True):
        _assert_obs_equal(a[0], b[0])
        assert a[1:] == b[1:]
    # A different seed gives a different episode.
    env = gym.make(env_id)
    first = env.reset(seed=123)[0]["lidar"]
    assert not np.array_equal(first, env.reset(seed=124)[0]["lidar"])


def test_pickle_roundtrip_continues_identically() -> None:
    env = gym.make("mmrl/Navigation-v1")
    env.reset(seed=5)
    for action in _random_actions(env.action_space, 5, seed=1):
        env.step(action)
    clone = pickle.loads(pickle.dumps(env))
    for action in _random_actions(env.action_space, 30, seed=2):
        out_a, out_b = env.step(action), clone.step(action)
        _assert_obs_equal(out_a[0], out_b[0])
        assert out_a[1:4] == out_b[1:4]
        if out_a[2] or out_a[3]:
            _assert_obs_equal(env.reset()[0], clone.reset()[0])


@pytest.mark.parametrize("env_id", IDS)
def test_vec_env_copy_matches_single_env_across_autoreset(env_id: str) -> None:
    n, seed, steps = 3, 40, 60
    noise = {"lidar_noise": 0.05, "lidar_dropout": 0.05}
    venv = mmrl.make_vec_env(env_id, n_envs=n, seed=seed, monitor=False, **noise)
    vec_obs = [venv.reset()]
    actions, rewards, dones, terminal = [], [], [], []
    for _ in range(steps):
        # The expert ends episodes quickly, so every copy auto-resets at least once.
        action = venv.env_method("expert_action")[0]
        obs, reward, done, infos = venv.step(action)
        actions.append(action)
        vec_obs.append(obs)
        rewards.append(reward)
        dones.append(done)
        terminal.append([info.get("terminal_observation") for info in infos])
    assert np.asarray(dones).sum(axis=0).min() >= 1
    for i in range(n):
        env = gym.make(env_id, **noise)
        obs, _ = env.reset(seed=seed + i)
        _assert_obs_equal(obs, {k: v[i] for k, v in vec_obs[0].items()})
        for t in range(steps):
            obs, reward, terminated, truncated, _ = env.step(actions[t][i])
            assert reward == pytest.approx(float(rewards[t][i]), abs=1e-6)
            assert (terminated or truncated) == bool(dones[t][i])
            if terminated or truncated:
                _assert_obs_equal(obs, terminal[t][i])
                obs, _ = env.reset()
            _assert_obs_equal(obs, {k: v[i] for k, v in vec_obs[t + 1].items()})


def _expert_success(split: str, episodes: int, continuous: bool = False) -> float:
    n = 20
    sim = NavigationSimulator(n, instruction_split=split, continuous=continuous)
    sim.seed([1000 + i for i in range(n)])
    sim.reset_envs()
    finished = np.zeros(n, np.int64)
    successes = 0
    while finished.min() < episodes // n:
        _, terminated, truncated, _ = sim.step(sim.expert_action())
        done = np.flatnonzero(terminated | truncated)
        counted = done[finished[done] < episodes // n]
        successes += int(sim.success[counted].sum())
        finished[done] += 1
        sim.reset_envs(done)
    return successes / (n * (episodes // n))


@pytest.mark.parametrize("split", ["train", "test"])
def test_expert_solves_both_splits(split: str) -> None:
    assert _expert_success(split, 40) >= 0.9


def test_continuous_expert_solves_task() -> None:
    assert _expert_success("train", 20, continuous=True) >= 0.9


def test_splits_are_disjoint_and_respected() -> None:
    train, test = set(target_combos("train")), set(target_combos("test"))
    assert not train & test
    assert test == set(HELD_OUT)
    assert len(train) + len(test) == 24
    seen = {"train": set(), "test": set()}
    texts = {"train": set(), "test": set()}
    for split in seen:
        sim = NavigationSimulator(8, instruction_split=split)
        sim.seed(list(range(8)))
        for _ in range(15):
            sim.reset_envs()
            labels = sim.labels()
            seen[split] |= set(
                zip(labels["target_color"].tolist(), labels["target_shape"].tolist())
            )
            texts[split] |= set(sim.instructions())
    assert seen["train"] <= train and seen["test"] <= test
    assert len(seen["test"]) == len(test)
    # Test-only paraphrases never appear in train instructions.
    markers = ("which", "colored", "walk")
    assert not any(m in t.split() for t in texts["train"] for m in markers)
    assert any(m in t.split() for t in texts["test"] for m in markers)


@pytest.mark.parametrize("split", ["train", "test"])
def test_scene_candidates_and_shared_words(split) -> None:
    """v1 scenes: distinct pairs, the target a candidate of its split, and words shared."""
    from mmrl.envs.navigation.instructions import HELD_OUT

    sim = NavigationSimulator(64, instruction_split=split)
    sim.seed(list(range(64)))
    shared = 0
    for _ in range(5):
        sim.reset_envs()
        for i in range(sim.num_envs):
            valid = np.flatnonzero(sim.obj_valid[i])
            assert 3 <= len(valid) <= 5
            pairs = [(int(sim.obj_color[i, k]), int(sim.obj_shape[i, k])) for k in valid]
            assert len(set(pairs)) == len(pairs)  # every instruction is unambiguous
            held = [p in HELD_OUT for p in pairs]
            t = sim.target[i]
            assert sim.obj_candidate[i, t]
            if split == "train":
                assert not any(held) and sim.obj_candidate[i, valid].all()
            else:
                assert sum(held) == 2 and held[list(valid).index(t)]
                assert list(sim.obj_candidate[i, valid]) == held
            others = [p for k, p in zip(valid, pairs) if k != t]
            shared += any(c == pairs[t][0] or s == pairs[t][1] for c, s in others)
    # The target shares a word with another object in most rooms, so one word rarely suffices.
    assert shared >= 0.8 * 5 * sim.num_envs


def test_v0_distractors_share_colour_and_shape_with_target() -> None:
    """Navigation-v0 is kept unchanged: its (leaky) distractor rule still holds."""
    from mmrl.envs.navigation import NavigationSimulatorV0

    sim = NavigationSimulatorV0(16)
    sim.seed(list(range(16)))
    for _ in range(10):
        sim.reset_envs()
        for i in range(sim.num_envs):
            valid = np.flatnonzero(sim.obj_valid[i])
            t = sim.target[i]
            others = [k for k in valid if k != t]
            colors, shapes = sim.obj_color[i], sim.obj_shape[i]
            assert any(colors[k] == colors[t] and shapes[k] != shapes[t] for k in others)
            assert any(shapes[k] == shapes[t] and colors[k] != colors[t] for k in others)


def test_every_instruction_word_is_in_the_vocabulary() -> None:
    from mmrl.envs.navigation.instructions import COLORS, SHAPE_WORDS, all_words
    from mmrl.envs.tokenizer import VOCAB, Tokenizer

    assert all_words() <= set(VOCAB)
    tok = Tokenizer()
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, s in target_combos(split):
            for _ in range(10):
                text = make_instruction(rng, split, c, s)
                assert tok.unknown_words(text) == []
                assert len(tok.split(text)) <= 16
                assert COLORS[c] in text and any(
                    w in text for w in SHAPE_WORDS[("ball", "cube", "cone", "cylinder")[s]]
                )
    assert {w for t in TEST_TEMPLATES for w in t.split() if "{" not in w} <= set(VOCAB)


def test_reward_terms_sum_to_reward_and_info_contents() -> None:
    env = gym.make("mmrl/Navigation-v1")
    _, info = env.reset(seed=3)
    assert isinstance(info["instruction"], str) and info["is_success"] is False
    for action in _random_actions(env.action_space, 200, seed=3):
        obs, reward, terminated, truncated, info = env.step(action)
        assert set(info["rewards"]) == {"progress", "success", "wrong_object", "collision", "time"}
        assert sum(info["rewards"].values()) == pytest.approx(reward, abs=1e-5)
        assert info["collision"] == (info["rewards"]["collision"] < 0)
        assert obs["state"][4] == float(info["collision"])
        if terminated or truncated:
            assert info["is_success"] == (info["rewards"]["success"] > 0)
            env.reset()


def test_v0_success_and_wrong_object_termination() -> None:
    """v0: coming within reach of the target succeeds; touching a distractor fails."""
    from mmrl.envs.navigation import NavigationSimulatorV0

    sim = NavigationSimulatorV0(2)
    sim.seed([0, 1])
    sim.reset_envs()
    # Copy 0 right in front of its target, copy 1 in front of a distractor.
    distractor = (sim.target[1] + 1) % sim.obj_valid[1].sum()
    for i, which, gap in (
        (0, sim.target[0], SUCCESS_RADIUS + 0.1),
        (1, distractor, CONTACT_RADIUS + 0.1),
    ):
        sim.pos[i] = sim.objects[i, which] - np.array([gap, 0.0], np.float32)
        sim.heading[i] = 0.0
        sim.prev_distance[i] = sim._target_distance()[i]
    _, terminated, truncated, result = sim.step(np.array([0, 0]))
    assert terminated.tolist() == [True, True] and not truncated.any()
    assert result.success.tolist() == [True, False]
    assert result.rewards["success"][0] == pytest.approx(sim.cfg.reward_weights["success"])
    assert result.rewards["wrong_object"][1] == pytest.approx(
        -sim.cfg.reward_weights["wrong_object"]
    )
    assert result.rewards["success"][1] == 0.0 and result.rewards["wrong_object"][0] == 0.0
    assert sim.infos(result)[0]["is_success"] is True


def _in_reach(continuous: bool = False) -> tuple[NavigationSimulator, int]:
    """Four copies: 0 and 1 within reach of the target, 2 of a distractor, 3 of nothing."""
    sim = NavigationSimulator(4, continuous=continuous)
    sim.seed([0, 1, 2, 3])
    sim.reset_envs()
    for i in range(4):
        distractor = (sim.target[i] + 1) % sim.obj_valid[i].sum()
        which = sim.target[i] if i < 2 else distractor
        sim.pos[i] = sim.objects[i, which] - np.array([SUCCESS_RADIUS - 0.1, 0.0], np.float32)
        sim.heading[i] = np.pi  # facing away: no step below moves it closer
        if i == 3:
            sim.pos[i] = sim.objects[i, which] - np.array([SUCCESS_RADIUS + 0.4, 0.0])
        sim.prev_distance[i] = sim._target_distance()[i]
    return sim, 3


@pytest.mark.parametrize("continuous", [False, True])
def test_stopping_chooses_the_object_in_reach(continuous: bool) -> None:
    """v1: only stopping within reach of the target succeeds; stopping at another fails."""
    sim, stop = _in_reach(continuous)
    turn = np.array([[0.0, 1.0]] * 4, np.float32) if continuous else np.array([1, 1, 1, 1])
    halt = np.zeros((4, 2), np.float32) if continuous else np.array([stop] * 4)
    # Being within reach is not enough: turning in place there ends nothing.
    _, terminated, _, result = sim.step(turn)
    assert not terminated.any() and not result.success.any()
    actions = halt.copy()
    actions[1] = turn[1]  # copy 1 keeps turning next to its target
    _, terminated, _, result = sim.step(actions)
    assert terminated.tolist() == [True, False, True, False]  # 3 stopped far from all
    assert result.success.tolist() == [True, False, False, False]
    assert result.rewards["success"][0] == pytest.approx(sim.cfg.reward_weights["success"])
    assert result.rewards["wrong_object"][2] == pytest.approx(
        -sim.cfg.reward_weights["wrong_object"]
    )
    assert result.rewards["wrong_object"][[0, 1, 3]].tolist() == [0.0, 0.0, 0.0]


def test_touching_a_distractor_fails_without_stopping() -> None:
    sim = NavigationSimulator(1)
    sim.seed([1])
    sim.reset_envs()
    distractor = (sim.target[0] + 1) % sim.obj_valid[0].sum()
    sim.pos[0] = sim.objects[0, distractor] - np.array([CONTACT_RADIUS + 0.1, 0.0], np.float32)
    sim.heading[0] = 0.0
    _, terminated, _, result = sim.step(np.array([0]))
    assert terminated[0] and not result.success[0]
    assert result.rewards["wrong_object"][0] == pytest.approx(
        -sim.cfg.reward_weights["wrong_object"]
    )


def test_dark_room_hides_what_is_beyond_the_lamp() -> None:
    """v1's lamp: the target 2 m ahead is lit; moved 5 m ahead it is black, lit room or not."""
    sim = _clear_view_sim()
    colour = COLOR_RGB[sim.obj_color[0, sim.target[0]]]

    def colour_pixels() -> int:
        flat = sim.observe()["camera"][0].reshape(-1, 3).astype(np.float32)
        cos = flat @ colour / (np.linalg.norm(flat, axis=1) * np.linalg.norm(colour) + 1e-6)
        return int(((cos > 0.99) & (flat.max(axis=1) > 30)).sum())

    assert colour_pixels() > 20
    sim.pos[0] = (0.5, 3.0)  # now 3.5 m away, beyond the 3 m lamp
    assert colour_pixels() == 0
    assert sim.observe()["lidar"][0, 0] < 3.5 / sim.cfg.lidar_range  # the lidar still sees it
    lit = NavigationSimulator(1, lamp_range=0.0)
    lit.seed([11])
    lit.reset_envs()
    for name in ("box_valid", "obj_valid", "obj_shape", "objects", "size", "pos", "heading"):
        getattr(lit, name)[...] = getattr(sim, name)
    image = lit.observe()["camera"][0].reshape(-1, 3).astype(np.float32)
    cos = image @ colour / (np.linalg.norm(image, axis=1) * np.linalg.norm(colour) + 1e-6)
    assert (cos > 0.99).sum() > 5  # a lit room shows it at 3.5 m


def test_wall_bump_is_penalized_not_terminal() -> None:
    sim = NavigationSimulator(1, max_obstacles=0)
    sim.seed([0])
    sim.reset_envs()
    sim.pos[0] = (0.25, sim.size[0, 1] / 2)
    sim.heading[0] = np.pi
    sim.objects[0, ~sim.obj_valid[0]] = -100
    _, terminated, _, result = sim.step(np.array([0]))
    assert result.collision[0] and not terminated[0]
    assert result.rewards["collision"][0] < 0
    np.testing.assert_allclose(sim.pos[0], (0.25, sim.size[0, 1] / 2))
    assert sim.observe()["state"][0, 4] == 1.0


def _clear_view_sim(shape: int | None = None) -> NavigationSimulator:
    """One copy, no boxes, only the target left, robot 2 m west of it facing east; a 3 m lamp
    (v1's default 1.5 m would leave the target dark at 2 m)."""
    sim = NavigationSimulator(1, lamp_range=3.0)
    sim.seed([11])
    sim.reset_envs()
    t = sim.target[0]
    sim.box_valid[:] = False
    sim.obj_valid[0] = False
    sim.obj_valid[0, t] = True
    if shape is not None:
        sim.obj_shape[0, t] = shape
    sim.objects[0, t] = (4.0, 3.0)
    sim.size[0] = (7.0, 6.0)
    sim.pos[0] = (2.0, 3.0)
    sim.heading[0] = 0.0
    return sim


def test_camera_shows_target_colour_only_when_facing_it() -> None:
    sim = _clear_view_sim()
    colour = COLOR_RGB[sim.obj_color[0, sim.target[0]]]
    image = sim.observe()["camera"][0].astype(np.float32)
    size = image.shape[0]
    pixel = image[size // 2 + 2, size // 2]
    cosine = pixel @ colour / (np.linalg.norm(pixel) * np.linalg.norm(colour))
    assert cosine > 0.99, (pixel, colour)
    assert sim.labels()["target_in_view"][0] == 1
    assert sim.labels()["target_visible"][0] == 1
    assert abs(sim.labels()["target_bearing"][0]) < 1e-5
    assert sim.labels()["target_distance"][0] == pytest.approx(2.0)

    def colour_pixels(img: np.ndarray) -> int:
        flat = img.reshape(-1, 3).astype(np.float32)
        cos = flat @ colour / (np.linalg.norm(flat, axis=1) * np.linalg.norm(colour) + 1e-6)
        return int((cos > 0.99).sum())

    assert colour_pixels(image) > 20
    sim.heading[0] = np.pi  # facing away: the colour disappears from the image
    assert colour_pixels(sim.observe()["camera"][0]) == 0
    assert sim.labels()["target_in_view"][0] == 0
    assert sim.labels()["target_visible"][0] == 0
    # In the field of view but hidden behind a box: in view, not visible.
    sim.heading[0] = 0.0
    sim.boxes[0, 0] = (3.0, 3.0, 0.2, 0.6)
    sim.box_valid[0, 0] = True
    assert colour_pixels(sim.observe()["camera"][0]) == 0
    assert sim.labels()["target_in_view"][0] == 1
    assert sim.labels()["target_visible"][0] == 0


def test_target_lit_only_within_the_lamp() -> None:
    """``target_visible`` counts the target in the dark; ``target_lit`` only where the lamp
    lights it, which is what the camera can show (and ``target_lit_bearing`` is 0 elsewhere)."""
    sim = _clear_view_sim()  # 3 m lamp, target 2 m ahead (surface 1.75 m)
    sim.heading[0] = 0.3  # off-centre, so the bearing is not 0
    sim.observe()
    labels = sim.labels()
    assert labels["target_visible"][0] == 1 and labels["target_lit"][0] == 1
    assert labels["target_lit_bearing"][0] == pytest.approx(labels["target_bearing"][0])
    assert labels["target_bearing"][0] == pytest.approx(-0.3, abs=1e-5)
    sim.camera.lamp_range = np.float32(1.5)  # a shorter lamp: the same view goes dark
    sim.cfg = dataclasses.replace(sim.cfg, lamp_range=1.5)
    image = sim.observe()["camera"][0]
    labels = sim.labels()
    assert labels["target_visible"][0] == 1 and labels["target_lit"][0] == 0
    assert labels["target_lit_bearing"][0] == 0.0 and labels["target_bearing"][0] != 0.0
    colour = COLOR_RGB[sim.obj_color[0, sim.target[0]]].astype(np.float32)
    flat = image.reshape(-1, 3).astype(np.float32)
    cos = flat @ colour / (np.linalg.norm(flat, axis=1) * np.linalg.norm(colour) + 1e-6)
    assert (cos > 0.99).sum() == 0  # the camera indeed does not show it
    sim.pos[0] = (3.0, 3.0)  # 1 m away: lit again
    sim.observe()
    assert sim.labels()["target_lit"][0] == 1


def test_colour_and_shape_lit_count_other_objects_sharing_the_attribute() -> None:
    """``target_color_lit`` / ``target_shape_lit``: some object of the named colour / shape
    is lit in view, the target or another; a lit object sharing neither counts for neither,
    and one in the dark or hidden counts for nothing."""
    sim = _clear_view_sim()  # the target alone, 2 m ahead, 3 m lamp
    t = sim.target[0]
    other = (t + 1) % sim.obj_valid.shape[1]
    colour, shape = sim.obj_color[0, t], sim.obj_shape[0, t]

    def lit_labels() -> tuple[int, int, int]:
        sim.observe()
        labels = sim.labels()
        return labels["target_lit"][0], labels["target_color_lit"][0], labels["target_shape_lit"][0]

    assert lit_labels() == (1, 1, 1)  # the target itself
    sim.heading[0] = np.pi  # facing away: nothing lit
    assert lit_labels() == (0, 0, 0)
    # another object 1.5 m behind the robot (now ahead), sharing the colour only
    sim.obj_valid[0, other] = True
    sim.objects[0, other] = (0.5, 3.0)
    sim.obj_color[0, other] = colour
    sim.obj_shape[0, other] = (shape + 1) % 4
    assert lit_labels() == (0, 1, 0)
    sim.obj_color[0, other], sim.obj_shape[0, other] = (colour + 1) % 6, shape  # shape only
    assert lit_labels() == (0, 0, 1)
    sim.obj_shape[0, other] = (shape + 1) % 4  # neither
    assert lit_labels() == (0, 0, 0)
    sim.obj_color[0, other] = colour
    sim.camera.lamp_range = np.float32(1.0)  # a shorter lamp: the same object in the dark
    sim.cfg = dataclasses.replace(sim.cfg, lamp_range=1.0)
    assert lit_labels() == (0, 0, 0)


def test_target_lit_equals_visible_in_a_lit_room() -> None:
    sim = NavigationSimulator(32, lamp_range=0.0)
    sim.seed(list(range(32)))
    sim.reset_envs()
    rng = np.random.default_rng(0)
    for _ in range(20):
        sim.step(rng.integers(0, sim.action_space.n, 32))
        labels = sim.labels()
        np.testing.assert_array_equal(labels["target_lit"], labels["target_visible"])
        # the target shares its own colour and shape
        assert (labels["target_color_lit"] >= labels["target_lit"]).all()
        assert (labels["target_shape_lit"] >= labels["target_lit"]).all()


def test_simulator_pickled_before_target_lit_still_observes() -> None:
    sim = NavigationSimulator(2)
    sim.seed([0, 1])
    sim.reset_envs()
    state = sim.__getstate__()
    del state["lit_objects"]  # pickled before the per-object mask existed, ...
    state["target_lit"] = np.zeros(2, bool)  # ... with the target's flag alone, or without
    old = NavigationSimulator.__new__(NavigationSimulator)
    old.__setstate__(state)
    old.observe()
    sim.observe()
    np.testing.assert_array_equal(old.labels()["target_lit"], sim.labels()["target_lit"])
    for name in ("target_color_lit", "target_shape_lit"):
        np.testing.assert_array_equal(old.labels()[name], sim.labels()[name])


def test_shapes_have_distinct_silhouettes() -> None:
    def profile(shape: int) -> tuple[np.ndarray, np.ndarray]:
        sim = _clear_view_sim(shape)
        image = sim.observe()["camera"][0].astype(np.int32)
        colour = COLOR_RGB[sim.obj_color[0, sim.target[0]]]
        flat = image.reshape(-1, 3).astype(np.float32)
        cos = flat @ colour / (np.linalg.norm(flat, axis=1) * np.linalg.norm(colour) + 1e-6)
        mask = (cos > 0.99).reshape(image.shape[:2])
        cols = np.flatnonzero(mask.any(axis=0))
        top = np.array([np.flatnonzero(mask[:, c])[0] for c in cols])
        bottom = np.array([np.flatnonzero(mask[:, c])[-1] for c in cols])
        return top, bottom

    ball, cube, cone, cylinder = (profile(s) for s in range(4))
    # Cube and cylinder: flat tops; the cylinder is taller. Cone: tip in the middle.
    assert np.ptp(cube[0]) <= 1 and np.ptp(cylinder[0]) <= 1
    assert cylinder[0].min() < cube[0].min()
    tip = cone[0][len(cone[0]) // 2]
    assert tip < cone[0][0] - 2 and tip < cone[0][-1] - 2
    # Ball: rounded top and bottom (its edges do not reach the floor line).
    assert ball[0][len(ball[0]) // 2] < ball[0][0] - 1
    assert ball[1][0] < ball[1][len(ball[1]) // 2]
    assert np.ptp(cube[1]) <= 1


def test_lidar_ranges_and_noise() -> None:
    sim = _clear_view_sim()
    lidar = sim.observe()["lidar"][0]
    rng_max = sim.cfg.lidar_range
    beams = len(lidar)
    # Beam 0 ahead hits the object's footprint (2 m away); beam at 180 deg the wall.
    assert lidar[0] * rng_max == pytest.approx(2.0 - OBJECT_RADIUS, abs=1e-3)
    assert lidar[beams // 2] * rng_max == pytest.approx(2.0, abs=1e-3)
    assert lidar[beams // 4] * rng_max == pytest.approx(3.0, abs=1e-3)  # left wall (north)
    noisy = NavigationSimulator(1, lidar_noise=0.05, lidar_dropout=0.2)
    noisy.seed([0])
    noisy.reset_envs()
    scan = noisy.observe()["lidar"]
    np.testing.assert_array_equal(scan, noisy.observe()["lidar"])  # observe is pure
    assert scan.min() >= 0.0 and scan.max() <= 1.0 and (scan == 1.0).any()


def test_continuous_actions_are_clipped() -> None:
    sims = [NavigationSimulator(1, continuous=True) for _ in range(2)]
    for sim in sims:
        sim.seed([4])
        sim.reset_envs()
    sims[0].step(np.array([[5.0, -7.0]]))
    sims[1].step(np.array([[1.0, -1.0]]))
    np.testing.assert_array_equal(sims[0].pos, sims[1].pos)
    np.testing.assert_array_equal(sims[0].heading, sims[1].heading)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"colour": "red"}, "unknown parameter.*allowed parameters: continuous"),
        ({"instruction_split": "val"}, "instruction_split must be one of"),
        ({"continuous": "yes"}, "continuous must be one of"),
        ({"min_objects": 2}, "min_objects must be in"),
        ({"min_objects": 5, "max_objects": 4}, "max_objects must be >= min_objects"),
        ({"max_obstacles": 9}, "max_obstacles must be in"),
        ({"room_size": 6.5}, "room_size must be in"),
        ({"fov_deg": float("nan")}, "fov_deg must be finite"),
        ({"forward_speed": 0.0}, "forward_speed must be in"),
        ({"camera_size": 4}, "camera_size must be in"),
        ({"lidar_beams": 2}, "lidar_beams must be in"),
        ({"lidar_range": -1.0}, "lidar_range must be in"),
        ({"lidar_noise": -0.1}, "lidar_noise must be in"),
        ({"lidar_dropout": 1.5}, "lidar_dropout must be in"),
        ({"max_text_len": 2}, "max_text_len must be in"),
        (
            {"lamp_range": 0.5},
            r"lamp_range must be in \[1.0, 50.0\], got 0.5 \(or 0 for a lit room\)",
        ),
        ({"lamp_range": "dark"}, "lamp_range must be a number"),
        ({"stop_to_choose": "yes"}, "stop_to_choose must be one of"),
    ],
)
def test_bad_kwargs_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gym.make("mmrl/Navigation-v1", **kwargs)
    with pytest.raises(ValueError, match=match):
        mmrl.make_vec_env("mmrl/Navigation-v1", n_envs=2, **kwargs)


def test_config_defaults_are_valid() -> None:
    cfg = NavigationConfig()
    assert isinstance(cfg, SensorConfig)
    assert cfg.lidar_range == 8.0


@pytest.mark.parametrize(
    ("env_id", "action", "match"),
    [
        ("mmrl/Navigation-v1", 4, "out of range"),
        ("mmrl/Navigation-v1", -1, "out of range"),
        ("mmrl/Navigation-v1", 1.5, "integers"),
        ("mmrl/Navigation-v1", float("nan"), "NaN"),
        ("mmrl/Navigation-v1", [0, 1], "shape"),
        ("mmrl/NavigationContinuous-v1", [0.0, float("nan")], "NaN"),
        ("mmrl/NavigationContinuous-v1", [0.0, float("inf")], "NaN or infinity"),
        ("mmrl/NavigationContinuous-v1", [0.0, 0.0, 0.0], "shape"),
    ],
)
def test_bad_actions_raise(env_id: str, action, match: str) -> None:
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_render_and_labels() -> None:
    env = gym.make("mmrl/Navigation-v1", render_mode="rgb_array")
    _, info = env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    labels = info["labels"]
    expected = {
        "target_index", "target_color", "target_shape", "target_distance", "target_bearing",
        "target_in_view", "target_visible", "target_lit", "target_lit_bearing",
        "target_color_lit", "target_shape_lit", "obstacle_distance", "obstacle_bearing",
        "num_objects", "num_candidates", "x", "y", "heading",
    }  # fmt: skip
    assert set(labels) == expected
    assert labels["target_distance"] >= 2.0 and labels["obstacle_distance"] >= 0.0
    assert 0 <= labels["target_index"] < labels["num_objects"]


def test_observing_some_copies_equals_those_rows_of_observing_all() -> None:
    # A vec env alternates between all copies and the ones it just reset; the camera keeps
    # per-batch-size buffers, so interleave sizes and check earlier results stay intact.
    sim = NavigationSimulator(6)
    sim.seed(list(range(6)))
    sim.reset_envs()
    rng = np.random.default_rng(2)
    for _ in range(5):
        sim.step(rng.integers(0, 4, 6))
    full = sim.observe()
    kept = {k: v.copy() for k, v in full.items()}
    for idx in (np.array([4, 1]), np.array([0]), np.array([5, 2, 3])):
        part = sim.observe(idx)
        again = sim.observe()
        for key in full:
            assert np.array_equal(full[key][idx], part[key]), key
            assert np.array_equal(again[key], kept[key]), key
            assert np.array_equal(full[key], kept[key]), key


def test_obstacle_labels_match_brute_force() -> None:
    sim = NavigationSimulator(12)
    sim.seed(list(range(12)))
    sim.reset_envs()
    labels = sim.labels()
    t = np.linspace(0.0, 1.0, 801)[:, None]
    for i in range(sim.num_envs):
        w, h = sim.size[i]
        corners = [((0, 0), (w, 0)), ((w, 0), (w, h)), ((w, h), (0, h)), ((0, h), (0, 0))]
        for cx, cy, hx, hy in sim.boxes[i][sim.box_valid[i]]:
            c = [(cx - hx, cy - hy), (cx + hx, cy - hy), (cx + hx, cy + hy), (cx - hx, cy + hy)]
            corners += list(zip(c, c[1:] + c[:1]))
        points = np.concatenate([np.array(a) + t * (np.array(b) - np.array(a)) for a, b in corners])
        offsets = points - sim.pos[i]
        dist = np.hypot(offsets[:, 0], offsets[:, 1])
        k = dist.argmin()
        assert labels["obstacle_distance"][i] == pytest.approx(dist[k] - 0.2, abs=0.01)
        bearing = np.arctan2(offsets[k, 1], offsets[k, 0]) - sim.heading[i]
        bearing = (bearing + np.pi) % (2 * np.pi) - np.pi
        assert labels["obstacle_bearing"][i] == pytest.approx(bearing, abs=0.02)


def test_smallest_room_with_most_objects_still_generates() -> None:
    sim = NavigationSimulator(4, room_size=7.0, min_objects=6, max_objects=6, max_obstacles=4)
    sim.seed([0, 1, 2, 3])
    sim.reset_envs()
    assert (sim.obj_valid.sum(axis=1) == 6).all()
    assert (sim.size <= 7.0).all() and (sim.size >= 5.25).all()


@pytest.mark.parametrize("split", ["train", "test"])
def test_v1_starts_with_no_object_lit_and_the_expert_well_inside_the_step_limit(split) -> None:
    """Navigation-v1's design: every object starts >= 2 m away, beyond the 1.5 m lamp, so the
    first camera image shows no object (finding one is a search, which the lidar guides);
    the privileged expert needs at most half of the 100-step limit."""
    n = 200
    sim = NavigationSimulator(n, instruction_split=split)
    sim.seed(list(range(3000, 3000 + n)))
    sim.reset_envs()
    image = sim.observe()["camera"].reshape(n, -1, 3).astype(np.float32)
    for colour in COLOR_RGB.astype(np.float32):
        cos = image @ colour / (np.linalg.norm(image, axis=2) * np.linalg.norm(colour) + 1e-6)
        assert not ((cos > 0.99) & (image.max(axis=2) > 30)).any()
    done = np.zeros(n, bool)
    length = np.zeros(n, int)
    for t in range(1, sim.max_episode_steps + 1):
        _, terminated, truncated, _ = sim.step(sim.expert_action())
        finished = (terminated | truncated) & ~done
        length[finished] = t
        done |= finished
        if done.all():
            break
    assert done.all() and sim.max_episode_steps == 100
    assert length.max() <= 50
