"""Frames that explain themselves (issue 16): titles from the config, named state entries, the
ego marked, reward terms and outcome, Navigation's map, undistorted adapter cameras."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import mmrl  # noqa: F401  (registers the ids)
from mmrl.envs.driving import DrivingSimulator, DrivingSimulatorV0
from mmrl.envs.frames import FrameSource, state_lines, status_lines
from mmrl.envs.navigation import NavigationSimulator, NavigationSimulatorV0
from mmrl.envs.navigation.frames import MAP_SIZE, ROBOT_RGB, TARGET_RGB, map_projection
from mmrl.envs.navigation.room import OBJECT_RADIUS
from mmrl.envs.vec_env import BatchedVecEnv
from mmrl.envs.visualize import PANEL, TITLE_HEIGHT, compose_frame, frame_layout
from mmrl.evaluation.video import VideoRecorder

SIMULATORS = [DrivingSimulator, DrivingSimulatorV0, NavigationSimulator, NavigationSimulatorV0]
MARK = (255, 80, 200)  # visualize's camera-mark colour


def _titles(sim) -> list[str]:
    sim.reset_envs()
    obs = {k: v[0] for k, v in sim.observe().items()}
    source = FrameSource(sim)
    return frame_layout(obs, "", (), source.spec, source.panels([source.scene(0)])).titles


def test_driving_titles_state_the_config_sizes_and_ranges():
    titles = _titles(DrivingSimulator(1, camera_size=48, lidar_beams=32, lidar_range=40.0))
    assert titles == ["camera 48x48, 80 m x 40 m", "lidar 32 beams, 40 m"]


def test_navigation_titles_state_the_field_of_view_and_add_the_map():
    sim = NavigationSimulator(1, fov_deg=60.0, lamp_range=0.0, lidar_beams=16)
    sim.seed([4])
    titles = _titles(sim)
    assert titles[:2] == ["camera 64x64, 60 deg FOV", "lidar 16 beams, 8 m"]
    sx, sy = sim.size[0]
    assert titles[2] == f"map {sx:.1f} m x {sy:.1f} m, target ringed"
    assert "lamp 1.5 m" in _titles(NavigationSimulator(1))[0]  # v1's dark room says so


@pytest.mark.parametrize("simulator", SIMULATORS, ids=lambda c: c.__name__)
def test_every_state_entry_is_printed_with_its_name_and_value(simulator):
    sim = simulator(1)
    sim.seed([1])
    sim.reset_envs()
    sim.step(sim.expert_action())
    state = sim.observe()["state"][0]
    assert len(simulator.state_names) == state.shape[0] == len(set(simulator.state_names))
    spec = FrameSource(sim).spec
    lines = frame_layout({"state": state}, "", (), spec).lines
    text = "  ".join(lines)
    for name, value in zip(simulator.state_names, state, strict=True):
        assert f"{name} {value:+.2f}" in text
    assert all(len(line) <= 52 for line in lines)


def test_state_lines_never_split_a_name_from_its_value():
    names = [f"entry_{i}" for i in range(9)]
    lines = state_lines(np.arange(9, dtype=np.float32), names, width=30)
    assert len(lines) > 2
    assert all(line.count("entry_") == line.count("+") for line in lines)
    unnamed = state_lines(np.zeros(20), ())  # no names: values only, the first 12
    assert unnamed[0].startswith("state  +0.00") and "(20 entries)" in unnamed[-1]


def test_status_lines_show_terms_and_outcome_in_two_lines():
    assert status_lines() == ["terms  -", ""]
    lines = status_lines({"progress": 0.25, "time": -0.01}, success=True, collision=True)
    assert lines == ["terms  progress +0.250  time -0.010", "SUCCESS  COLLISION"]


@pytest.mark.parametrize("env_id", ["mmrl/Driving-v1", "mmrl/Navigation-v1"])
def test_rendered_frames_keep_one_size_and_show_step_terms_and_outcome(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    sizes = {env.render().shape}
    info: dict = {}
    for _ in range(12):
        _, _, terminated, truncated, info = env.step(env.unwrapped.expert_action())
        sizes.add(env.render().shape)
        if terminated or truncated:
            break
    panels = 3 if "Navigation" in env_id else 2
    assert len(sizes) == 1 and sizes.pop()[1] == panels * PANEL
    sim = env.unwrapped.sim
    names = sorted(info["rewards"])
    assert sorted(sim._last_step["rewards"]) == names  # the frame's terms are the info's
    env.close()


def test_the_driving_ego_is_marked_where_the_camera_draws_it():
    sim = DrivingSimulator(1)
    sim.seed([0])
    sim.reset_envs()
    obs = {k: v[0] for k, v in sim.observe().items()}
    spec = FrameSource(sim).spec
    (ego,) = spec.camera_marks
    frame = compose_frame(obs, "", (), spec)
    camera = frame[TITLE_HEIGHT : TITLE_HEIGHT + PANEL, :PANEL]
    marked = np.all(camera == MARK, axis=-1)
    rows, cols = np.nonzero(marked)
    # The mark surrounds the ego's box, which holds the camera's near-black ego pixels.
    x0, y0, x1, y1 = (np.array(ego.box) * PANEL).round().astype(int)
    assert rows.min() <= y0 and rows.max() >= y1 and cols.min() <= x0 and cols.max() >= x1
    scale = PANEL // obs["camera"].shape[0]
    ego_px = np.argwhere(np.all(obs["camera"] == (20, 20, 24), axis=-1)) * scale
    assert ((ego_px[:, 0] >= y0 - scale) & (ego_px[:, 0] <= y1 + scale)).all()
    assert not np.all(compose_frame(obs, "", ())[TITLE_HEIGHT:, :PANEL] == MARK, -1).any()


def _ring_hits(panel: np.ndarray, centre: np.ndarray, radius: float) -> int:
    """Pixels of the target colour within 2 px of a circle of ``radius`` around ``centre``."""
    rows, cols = np.nonzero(np.all(panel == TARGET_RGB, axis=-1))
    d = np.hypot(cols - centre[0], rows - centre[1])
    return int((np.abs(d - radius) <= 2).sum())


def test_the_navigation_map_rings_the_target_and_draws_the_path():
    sim = NavigationSimulator(1)
    sim.seed([2])
    sim.reset_envs()
    source = FrameSource(sim)
    scenes = [source.scene(0)]
    for _ in range(8):
        sim.step(sim.expert_action())
        scenes.append(source.scene(0))
    ((title, panel),) = source.panels(scenes)
    assert title.startswith("map ") and panel.shape == (MAP_SIZE, MAP_SIZE, 3)
    scale, origin = map_projection(sim.size[0])

    def project(p: np.ndarray) -> np.ndarray:
        return origin + scale * np.asarray(p) * np.array([1.0, -1.0])

    radius = max(3, round(OBJECT_RADIUS * scale)) + 5
    target = sim.objects[0, sim.target[0]]
    assert _ring_hits(panel, project(target), radius) > 20
    others = [k for k in np.flatnonzero(sim.obj_valid[0]) if k != sim.target[0]]
    assert others and all(_ring_hits(panel, project(sim.objects[0, k]), radius) < 5 for k in others)
    # The robot (and its path) in orange where the simulator says it is.
    x, y = np.round(project(sim.pos[0])).astype(int)
    assert np.all(panel[y, x] == ROBOT_RGB)
    start = np.round(project(scenes[0]["pos"])).astype(int)
    assert np.linalg.norm(start - (x, y)) > 5  # the robot moved: the path starts elsewhere
    near = panel[start[1] - 2 : start[1] + 3, start[0] - 2 : start[0] + 3]
    assert np.any(np.abs(near.astype(int) - ROBOT_RGB).sum(-1) < 120)


def test_video_frames_of_navigation_carry_the_map_at_one_size(tmp_path):
    recorder = VideoRecorder(tmp_path / "nav.gif", n_videos=1)
    sim = NavigationSimulator(1)
    venv = recorder.wrap(BatchedVecEnv(sim), n_episodes=1)
    venv.seed(3)
    venv.reset()
    while not recorder.recorded:
        venv.step(sim.expert_action())
    frames = list(recorder.frames())
    assert len(frames) == len(recorder.recorded[0])
    assert {f.shape for f in frames} == {frames[0].shape} and frames[0].shape[1] == 3 * PANEL
    last = recorder.recorded[0][-1]
    lines = recorder.frame_lines(last, 0, len(frames) - 1, 0.0, 1)
    assert lines[2].startswith("terms  progress") and lines[3] == "SUCCESS"


def test_a_wide_adapter_camera_keeps_its_aspect_ratio():
    camera = np.zeros((64, 128, 3), np.uint8)
    camera[:, 64:] = (0, 0, 255)  # right half blue: its edge must stay at the middle
    frame = compose_frame({"camera": camera, "lidar": np.ones(8, np.float32)})
    layout = frame_layout({"camera": camera, "lidar": np.ones(8, np.float32)})
    assert layout.titles == ["camera 64x128", "lidar 8 beams"]
    assert frame.shape[1] == 2 * PANEL + PANEL  # a 2:1 camera panel, then the lidar's
    row = frame[TITLE_HEIGHT + PANEL // 2, : 2 * PANEL]
    blue = np.flatnonzero(np.all(row == (0, 0, 255), axis=-1))
    assert blue.min() == PANEL and blue.max() == 2 * PANEL - 1
