"""``camera_frames=k``: the camera key stacks the last ``k`` frames (issue 19, overtake memory),
``camera_frame_stride=s`` spaces them ``s`` steps apart.

The reference for every check is the same environment with ``camera_frames=1`` driven by
the same seeds and actions: its frames, stacked by hand, must be what the stacked env returns.
"""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import VecTransposeImage

import mmrl
from mmrl.envs.frames import FrameSpec
from mmrl.envs.visualize import compose_frame
from mmrl.wrappers import ModalityMask, SensorNoise

SMALL = {"camera_size": 16, "lidar_beams": 16}
IDS = ["mmrl/Driving-v1", "mmrl/Navigation-v1"]
K = 3


def _vec(env_id: str, frames: int, n_envs: int = 4, seed: int = 3, **extra):
    venv = mmrl.make_vec_env(
        env_id, n_envs=n_envs, seed=seed, monitor=False, camera_frames=frames, **SMALL, **extra
    )
    # Short episodes, so every copy sees several auto-resets (truncations besides terminations).
    venv.set_attr("max_episode_steps", 11)
    return venv


def _stacked(history: list[np.ndarray], k: int, stride: int = 1) -> np.ndarray:
    """Frames ``t - (k - 1) s, ..., t`` of one episode, oldest first; a step before the
    episode's start shows its first frame."""
    t = len(history) - 1
    frames = [history[max(0, t - j * stride)] for j in range(k - 1, -1, -1)]
    return np.concatenate(frames, axis=-1)


def _actions(space: gym.Space, rng: np.random.Generator, n: int) -> np.ndarray:
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(0, space.n, size=n)
    return rng.uniform(-1, 1, size=(n, *space.shape)).astype(np.float32)


@pytest.mark.parametrize("env_id", IDS)
def test_space_holds_k_frames_along_the_channels(env_id):
    single = gym.make(env_id, camera_frames=4)
    assert single.observation_space["camera"].shape == (64, 64, 12)
    assert single.observation_space["camera"].dtype == np.uint8
    assert gym.make(env_id).observation_space["camera"].shape == (64, 64, 3)
    obs, _ = single.reset(seed=0)
    assert single.observation_space.contains(obs)
    # SB3 reads it as one channels-last image and transposes it to (3k, S, S).
    space = single.observation_space["camera"]
    assert is_image_space(space) and not is_image_space_channels_first(space)
    venv = VecTransposeImage(_vec(env_id, 4, n_envs=2))
    assert venv.observation_space["camera"].shape == (12, 16, 16)
    assert venv.reset()["camera"].shape == (2, 12, 16, 16)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"camera_frames": 0}, r"camera_frames must be in \[1, 8\], got 0"),
        ({"camera_frames": 9}, r"camera_frames must be in \[1, 8\], got 9"),
        ({"camera_frames": 2.0}, "camera_frames must be an integer"),
        ({"camera_frames": True}, "camera_frames must be an integer"),
        # 12 channels of a 12x12 image: SB3 would take the first axis for the channels.
        ({"camera_frames": 4, "camera_size": 12}, "camera_frames=4 gives 12 camera channels"),
        (
            {"camera_frames": 2, "camera_frame_stride": 0},
            r"camera_frame_stride must be in \[1, 16\]",
        ),
        ({"camera_frames": 2, "camera_frame_stride": 17}, r"camera_frame_stride must be in"),
        ({"camera_frames": 2, "camera_frame_stride": 2.5}, "camera_frame_stride must be an int"),
        ({"camera_frame_stride": 4}, "camera_frame_stride=4 needs camera_frames > 1"),
    ],
)
@pytest.mark.parametrize("env_id", IDS)
def test_bad_frame_counts_are_refused_naming_the_field(env_id, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make(env_id, **kwargs)


def test_largest_frame_count_for_a_size_is_accepted():
    assert gym.make("mmrl/Driving-v1", camera_size=13, camera_frames=4).observation_space[
        "camera"
    ].shape == (13, 13, 12)


@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("env_id", IDS)
def test_stack_is_the_last_frames_of_the_unstacked_env_across_auto_resets(env_id, stride):
    """Newest slot = the k=1 camera, older slots = earlier frames of the same episode (every
    ``stride``-th), a reset fills every slot with the first frame; other keys and infos are
    untouched."""
    ref, venv = _vec(env_id, 1), _vec(env_id, K, camera_frame_stride=stride)
    rng = np.random.default_rng(0)
    obs_ref, obs = ref.reset(), venv.reset()
    histories = [[frame] for frame in obs_ref["camera"]]
    resets = 0
    for _ in range(40):
        for i, history in enumerate(histories):
            np.testing.assert_array_equal(obs["camera"][i], _stacked(history, K, stride))
        for key in ("lidar", "text", "state"):
            np.testing.assert_array_equal(obs[key], obs_ref[key])
        actions = _actions(venv.action_space, rng, venv.num_envs)
        obs_ref, rew_ref, done_ref, infos_ref = ref.step(actions)
        obs, rew, done, infos = venv.step(actions)
        np.testing.assert_array_equal(rew, rew_ref)
        np.testing.assert_array_equal(done, done_ref)
        for i in range(venv.num_envs):
            if not done[i]:
                histories[i].append(obs_ref["camera"][i])
                continue
            # The finished episode's last frame; the observation is the next one's first.
            resets += 1
            histories[i].append(infos_ref[i]["terminal_observation"]["camera"])
            last = infos[i]["terminal_observation"]["camera"]
            np.testing.assert_array_equal(last, _stacked(histories[i], K, stride))
            histories[i] = [obs_ref["camera"][i]]
    assert resets >= 6


@pytest.mark.parametrize("env_id", IDS)
def test_single_env_is_copy_i_of_the_batch(env_id):
    venv = _vec(env_id, K, n_envs=3, seed=5)
    i = 2
    single = gym.make(env_id, camera_frames=K, **SMALL).unwrapped
    single.sim.max_episode_steps = 11
    rng = np.random.default_rng(1)
    obs, single_obs = venv.reset(), single.reset(seed=5 + i)[0]
    for _ in range(25):
        np.testing.assert_array_equal(obs["camera"][i], single_obs["camera"])
        actions = _actions(venv.action_space, rng, venv.num_envs)
        obs, _, _, infos = venv.step(actions)
        single_obs, _, terminated, truncated, _ = single.step(actions[i])
        if terminated or truncated:
            last = infos[i]["terminal_observation"]["camera"]
            np.testing.assert_array_equal(last, single_obs["camera"])
            break
    else:
        pytest.fail("copy 2 never finished an episode")


def test_worker_processes_match_one_process():
    strided = {"camera_frames": K, "camera_frame_stride": 2}
    ref = _vec("mmrl/Driving-v1", K, n_envs=3, camera_frame_stride=2)
    pool = mmrl.make_vec_env(
        "mmrl/Driving-v1", n_envs=3, seed=3, monitor=False, n_workers=2, **strided, **SMALL
    )
    try:
        pool.set_attr("max_episode_steps", 11)
        assert pool.observation_space["camera"].shape == (16, 16, 3 * K)
        rng = np.random.default_rng(2)
        np.testing.assert_array_equal(pool.reset()["camera"], ref.reset()["camera"])
        for _ in range(15):
            actions = _actions(ref.action_space, rng, 3)
            np.testing.assert_array_equal(
                pool.step(actions)[0]["camera"], ref.step(actions)[0]["camera"]
            )
    finally:
        pool.close()


def test_gymnasium_vector_env_matches_the_sb3_vec_env():
    ref = _vec("mmrl/Navigation-v1", K, n_envs=3)
    envs = gym.make_vec("mmrl/Navigation-v1", num_envs=3, camera_frames=K, **SMALL)
    envs.unwrapped.sim.max_episode_steps = 11
    assert envs.single_observation_space["camera"].shape == (16, 16, 3 * K)
    rng = np.random.default_rng(4)
    obs, _ = envs.reset(seed=3)
    np.testing.assert_array_equal(obs["camera"], ref.reset()["camera"])
    finished = 0
    for _ in range(15):
        actions = _actions(ref.action_space, rng, 3)
        obs, *_, infos = envs.step(actions)
        ref_obs, _, done, ref_infos = ref.step(actions)
        np.testing.assert_array_equal(obs["camera"], ref_obs["camera"])
        for i in np.flatnonzero(done):
            finished += 1
            np.testing.assert_array_equal(
                infos["final_obs"][i]["camera"], ref_infos[i]["terminal_observation"]["camera"]
            )
    assert finished


def test_stepping_without_observing_still_records_every_frame():
    """A driver that steps the simulator without observing (an expert rollout) skips no frame."""
    ref = gym.make("mmrl/Navigation-v1", **SMALL).unwrapped.sim
    sim = gym.make("mmrl/Navigation-v1", camera_frames=K, **SMALL).unwrapped.sim
    for s in (ref, sim):
        s.seed([9])
        s.reset_envs()
    frames = [ref.observe()["camera"][0]]
    for action in (1, 2):
        for s in (ref, sim):
            s.step(np.array([action]))
        frames.append(ref.observe()["camera"][0])
    np.testing.assert_array_equal(sim.observe()["camera"][0], np.concatenate(frames, axis=-1))
    # Observing again, or a subset, gives the same arrays (observe stays a pure function).
    np.testing.assert_array_equal(
        sim.observe(np.array([0]))["camera"][0], sim.observe()["camera"][0]
    )


@pytest.mark.parametrize("stride", [1, 2])
def test_a_pickled_env_resumes_with_its_history(stride):
    env = gym.make("mmrl/Driving-v1", camera_frames=K, camera_frame_stride=stride, **SMALL)
    env.reset(seed=4)
    for action in (3, 1, 1):
        env.step(action)
    copy = pickle.loads(pickle.dumps(env))
    for action in (1, 4, 1, 1, 3):
        a, b = env.step(action)[0], copy.step(action)[0]
        np.testing.assert_array_equal(a["camera"], b["camera"])


@pytest.mark.parametrize("env_id", IDS)
def test_frames_show_the_newest_camera_frame(env_id):
    env = gym.make(env_id, camera_frames=K, render_mode="rgb_array", **SMALL)
    plain = gym.make(env_id, render_mode="rgb_array", **SMALL)
    env.reset(seed=0)
    plain.reset(seed=0)
    sim = env.unwrapped.sim
    assert sim.painter.spec(sim).camera_title.endswith(f", newest of {K} frames")
    strided = gym.make(env_id, camera_frames=K, camera_frame_stride=4, **SMALL).unwrapped.sim
    title = strided.painter.spec(strided).camera_title
    assert title.endswith(f", newest of {K} frames 4 steps apart")
    for _ in range(3):
        action = env.unwrapped.expert_action()  # the expert neither crashes nor stops so soon
        obs, *_ = env.step(action)
        plain.step(action)
    assert env.render().shape == plain.render().shape
    spec = FrameSpec(camera_title="camera")
    newest = {**obs, "camera": obs["camera"][..., -3:]}
    oldest = {**obs, "camera": obs["camera"][..., :3]}
    frame = compose_frame(obs, "go", spec=spec)
    np.testing.assert_array_equal(frame, compose_frame(newest, "go", spec=spec))
    if not np.array_equal(newest["camera"], oldest["camera"]):
        assert not np.array_equal(frame, compose_frame(oldest, "go", spec=spec))
    # A channels-first stack (after SB3's VecTransposeImage) shows the same frame.
    transposed = {**obs, "camera": np.transpose(obs["camera"], (2, 0, 1))}
    np.testing.assert_array_equal(frame, compose_frame(transposed, "go", spec=spec))


def test_noise_and_mask_wrappers_take_a_stacked_camera():
    env = gym.make("mmrl/Driving-v1", camera_frames=K, **SMALL)
    noisy = SensorNoise(env, camera={"noise_std": 0.2, "blur": 3})
    clean, _ = gym.make("mmrl/Driving-v1", camera_frames=K, **SMALL).reset(seed=1)
    obs, _ = noisy.reset(seed=1)
    assert obs["camera"].shape == clean["camera"].shape == (16, 16, 3 * K)
    assert noisy.observation_space.contains(obs)
    assert not np.array_equal(obs["camera"], clean["camera"])
    masked = ModalityMask(gym.make("mmrl/Driving-v1", camera_frames=K, **SMALL), "camera")
    obs, _ = masked.reset(seed=1)
    assert obs["camera"].shape == (16, 16, 3 * K) and not obs["camera"].any()
    obs, *_ = masked.step(1)
    assert masked.observation_space.contains(obs) and not obs["camera"].any()


def test_extractor_encodes_a_stacked_camera():
    import torch as th

    from mmrl.extractor import MultimodalExtractor

    venv = VecTransposeImage(_vec("mmrl/Driving-v1", K, n_envs=2))
    obs = venv.reset()
    for encoder in ("nature", "impala", "factored"):
        ext = MultimodalExtractor(venv.observation_space, encoders={"camera": encoder})
        with th.no_grad():
            out = ext({k: th.as_tensor(v).float() for k, v in obs.items()})
        assert out.shape == (2, ext.features_dim) and th.isfinite(out).all()
