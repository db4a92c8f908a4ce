"""``render_mode="human"``: a pygame window, tested headless with SDL's dummy video driver."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest

import mmrl  # noqa: F401  (registers the environments)
from mmrl.envs import viewer as viewer_module
from mmrl.envs.viewer import Viewer
from mmrl.errors import MissingDependencyError, UsageError

pygame = pytest.importorskip("pygame")

SMALL = {"camera_size": 32, "lidar_beams": 16}


@pytest.fixture
def headless(monkeypatch):
    """SDL's dummy driver: a real window surface with no screen behind it."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


@pytest.mark.parametrize(
    "env_id", ["mmrl/Driving-v1", "mmrl/Navigation-v1", "mmrl/Driving-v0", "mmrl/Navigation-v0"]
)
@pytest.mark.filterwarnings("ignore:.*is out of date.*")
def test_human_mode_shows_the_rgb_array_frame_in_a_window(headless, env_id):
    env = gym.make(env_id, render_mode="human", **SMALL)
    reference = gym.make(env_id, render_mode="rgb_array", **SMALL)
    try:
        env.reset(seed=3)
        reference.reset(seed=3)
        window = env.unwrapped.viewer
        assert window.frames == 1  # reset shows the first frame itself
        for action in (0, 1):
            env.step(action)
            reference.step(action)
        assert window.frames == 3
        shown = window.capture()
        expected = reference.render()
        # The window holds exactly the rgb_array frame, and that frame is no blank.
        np.testing.assert_array_equal(shown, expected)
        assert shown.std() > 10 and len(np.unique(shown.reshape(-1, 3), axis=0)) > 20
        assert env.render() is None  # Gymnasium: human mode draws, returns nothing
    finally:
        env.close()
        reference.close()
    assert env.unwrapped.viewer is None


def test_rgb_array_mode_opens_no_window(headless):
    env = gym.make("mmrl/Driving-v1", render_mode="rgb_array", **SMALL)
    env.reset(seed=0)
    assert env.unwrapped.viewer is None
    assert env.render().shape[2] == 3


def test_missing_extra_is_one_clear_error(headless, monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # import pygame now fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'mmrl\[viewer\]'"):
        gym.make("mmrl/Navigation-v1", render_mode="human")


def test_no_display_is_a_clear_error_where_a_window_must_be_seen(monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(viewer_module.sys, "platform", "linux")
    with pytest.raises(UsageError, match=r"no display.*--video"):
        Viewer(require_display=True)
    # An env's human mode draws into SDL's dummy driver instead (Gymnasium's check_env makes
    # the env in every declared render mode, on servers and in CI too).
    env = gym.make("mmrl/Navigation-v1", render_mode="human", **SMALL)
    env.reset(seed=0)
    assert pygame.display.get_driver() == "dummy" and env.unwrapped.viewer.capture().std() > 10
    env.close()


def test_keys_pause_step_and_quit(headless):
    window = Viewer(fps=None)
    try:
        assert window.poll() == viewer_module.ViewerInput()  # no window yet: nothing to read
        window.show(np.full((10, 12, 3), 200, dtype=np.uint8))
        for key in (pygame.K_SPACE, pygame.K_RIGHT, pygame.K_n):
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))
        keys = window.poll()
        assert keys.toggle_pause and keys.steps == 2 and not keys.quit
        assert window.poll() == viewer_module.ViewerInput()  # each event is read once
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE))
        assert window.poll().quit
        pygame.event.post(pygame.event.Event(pygame.QUIT))
        assert window.poll().quit
    finally:
        window.close()
    assert not window.is_open


def test_window_follows_the_frame_size_and_refuses_non_frames(headless):
    window = Viewer(fps=None)
    try:
        window.show(np.zeros((10, 12, 3), dtype=np.uint8))
        frame = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
        window.show(frame)
        np.testing.assert_array_equal(window.capture(), frame)
        with pytest.raises(UsageError, match=r"\(H, W, 3\) uint8"):
            window.show(np.zeros((10, 12), dtype=np.float32))
    finally:
        window.close()
    with pytest.raises(UsageError, match="not open"):
        window.capture()


def test_fps_paces_the_frames(headless):
    import time

    window = Viewer(fps=50)
    try:
        t0 = time.perf_counter()
        for _ in range(6):
            window.show(np.zeros((8, 8, 3), dtype=np.uint8))
        # Five intervals of 1/50 s between six frames.
        assert time.perf_counter() - t0 >= 5 / 50 - 1e-3
    finally:
        window.close()
    with pytest.raises(UsageError, match="fps"):
        Viewer(fps=-1)
