"""``mmrl enjoy``: episodes live in a window (SDL's dummy driver here) or into a video file."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mmrl.cli import main
from mmrl.envs.viewer import Viewer, ViewerInput
from mmrl.errors import ConfigError
from mmrl.evaluation.encoding import decode_video
from mmrl.evaluation.enjoy import BASE_FPS, enjoy

pytest.importorskip("pygame")

SMALL = "navigation"


@pytest.fixture
def headless(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


class ScriptedViewer(Viewer):
    """A real (dummy-driver) window whose keyboard is a script: one ``ViewerInput`` per
    poll, then nothing; records which frame each poll came after."""

    def __init__(self, script: list[ViewerInput]) -> None:
        super().__init__(fps=None)
        self.script = list(script)
        self.polled_after: list[int] = []

    def poll(self) -> ViewerInput:
        self.polled_after.append(self.frames)
        return self.script.pop(0) if self.script else ViewerInput()


def test_live_play_shows_every_frame_in_the_window(headless):
    window = Viewer(fps=None)
    lines = []
    try:
        result = enjoy("expert", SMALL, episodes=2, seed=1, viewer=window, on_episode=lines.append)
        shown = window.capture()  # the window's own pixels: the last episode's outcome frame
    finally:
        window.close()
    assert [e.index for e in result.episodes] == [0, 1] and lines == result.episodes
    assert not result.quit and result.video is None and result.policy == "expert"
    hold = BASE_FPS // 2 + 1  # round(7.5): the outcome frame is held half a second
    assert result.frames == window.frames == sum(e.length + hold for e in result.episodes)
    assert shown.std() > 10 and len(np.unique(shown.reshape(-1, 3), axis=0)) > 50
    # The camera panel is the left square, the lidar plot the right one; neither is blank.
    assert shown[:256, :256].std() > 10 and shown[:256, 256:].std() > 10
    first = result.episodes[0]
    assert first.instruction and first.line(2).startswith("episode 1/2: ")
    assert f"{first.length} steps" in first.line(2)


def test_space_pauses_n_steps_and_q_quits(headless):
    pause, step, quit_ = (
        ViewerInput(toggle_pause=True),
        ViewerInput(steps=1),
        ViewerInput(quit=True),
    )
    # Frame 1: pause. Waiting: two idle polls, then a step (frame 2 is shown, still paused),
    # one idle poll, a step (frame 3), then quit.
    window = ScriptedViewer([pause, ViewerInput(), ViewerInput(), step, ViewerInput(), step, quit_])
    try:
        result = enjoy("expert", SMALL, episodes=3, viewer=window)
    finally:
        window.close()
    assert result.quit and result.episodes == [] and result.frames == 3
    assert window.polled_after == [1, 1, 1, 1, 2, 2, 3]


def test_video_instead_of_a_window(tmp_path, monkeypatch):
    # No display at all: --video never opens a window.
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "play.mp4"
    result = enjoy("expert", SMALL, episodes=1, video=out, speed=2, seed=4, split="test")
    codec, frames = decode_video(result.video)
    assert result.video == out and codec == result.codec == "h264"
    assert len(frames) == result.frames == result.episodes[0].length + BASE_FPS  # hold 15
    assert frames[-1].std() > 10 and not np.array_equal(frames[0], frames[-1])


def test_a_trained_run_plays_from_its_folder(toy_run, tmp_path):
    out = tmp_path / "toy.gif"
    result = enjoy(toy_run, episodes=1, video=out)
    codec, frames = decode_video(out)
    assert codec == "gif" and len(frames) == result.frames
    assert result.env_id == "mmrltest/Toy-v0" and result.policy == toy_run.name


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"episodes": 0}, "episodes must be an integer >= 1"),
        ({"speed": 0.0}, "speed must be in (0, 100]"),
        ({"speed": float("nan")}, "speed must be in (0, 100]"),
        ({"split": "val"}, "split must be train or test"),
        ({"video": "x.avi"}, "use a .mp4"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(kwargs, says):
    with pytest.raises(ConfigError) as err:
        enjoy("expert", SMALL, **kwargs)
    assert says in str(err.value)


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and err.startswith("mmrl enjoy: error: "), captured
    return err


def test_cli_plays_and_prints_a_line_per_episode(headless, capsys, tmp_path):
    assert main(["enjoy", "expert", "--env", SMALL, "--episodes", "2", "--speed", "100"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["episode 1/2", "episode 2/2"]
    video = tmp_path / "e.webm"
    assert main(["enjoy", "expert", "--env", SMALL, "--episodes", "1", "--video", str(video)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("episode 1/1: ") and out[-1].startswith(f"wrote {video} (vp9, ")
    assert decode_video(video)[0] == "vp9"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["expert", "--env", SMALL, "--episodes", "0"], "--episodes must be an integer >= 1"),
        (["expert", "--env", SMALL, "--speed", "-2"], "--speed must be in (0, 100]"),
        (["expert", "--env", SMALL, "--video", "out.avi"], "use a .mp4"),
        (["expert", "--env", SMALL, "--video", "missing/out.mp4"], "does not exist"),
        (["expert"], "pass --env"),
        (["expert", "--env", "nowhere"], "unknown env preset 'nowhere'"),
        (["runs/none", "--env", SMALL], "runs/none"),
        (["random", "--env", "babyai-gotoredball", "--split", "test"], "test"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(headless, capsys, argv, says):
    assert says in _one_line_error(capsys, ["enjoy", *argv])


def test_cli_without_a_display_says_to_use_video(capsys, monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("mmrl.envs.viewer.sys.platform", "linux")
    err = _one_line_error(capsys, ["enjoy", "expert", "--env", SMALL])
    assert "no display" in err and "--video" in err


def test_cli_without_pygame_names_the_extra(headless, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)
    err = _one_line_error(capsys, ["enjoy", "expert", "--env", SMALL])
    assert "pip install 'mmrl[viewer]'" in err
