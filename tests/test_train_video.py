"""``mmrl train --video-every``: one episode of the current policy as a video, on disk and in
TensorBoard (an animated GIF image summary, written without moviepy)."""

from __future__ import annotations

import numpy as np
import pytest

from mmrl.cli import main
from mmrl.errors import ConfigError
from mmrl.evaluation.encoding import decode_video
from mmrl.runs import RunFolder
from mmrl.train import train
from mmrl.train_video import VIDEO_TAG, VideoCallback, gif_size


def _tensorboard_gifs(tb_dir) -> dict[int, bytes]:
    """Step -> encoded image of every ``eval/video`` summary in the run's event files, as
    written (the raw loader: the other one converts image summaries to tensors)."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event

    found = {}
    for path in sorted(tb_dir.rglob("events.out.tfevents.*")):
        for record in RawEventFileLoader(str(path)).Load():
            event = Event.FromString(record)
            for value in event.summary.value:
                if value.tag == VIDEO_TAG:
                    found[event.step] = value.image.encoded_image_string
    return found


@pytest.fixture(scope="module")
def video_run(toy, tmp_path_factory):
    """96 steps of the toy task (2 copies, rollouts of 32 steps), a video every 32 steps,
    normalized ``state`` observations (the video's policy sees them normalized too)."""
    root = tmp_path_factory.mktemp("video-run")
    env, agent = toy.write_presets(root)
    overrides = ["eval_freq=0", "eval_episodes=1", "checkpoint_freq=1000",
                 "agent.normalize.obs_keys=[state]", "agent.extractor.features_dim=16"]  # fmt: skip
    return train(env, agent, steps=96, seed=0, out=root / "run", verbose=0, device="cpu",
                 overrides=overrides, video_every=32)  # fmt: skip


def test_videos_land_in_the_run_folder_and_decode(video_run, tmp_path):
    videos = sorted(RunFolder(video_run).videos_dir.glob("*.mp4"))
    assert [v.name for v in videos] == [f"step_{s:09d}.mp4" for s in (32, 64, 96)]
    for video in videos:
        codec, frames = decode_video(video)
        # One whole episode of the toy task (horizon 10): 1 to 10 frames of camera + lidar.
        assert codec == "h264" and 1 <= len(frames) <= 10
        assert frames[0].shape[1] == 512 and frames[0].std() > 10


def test_videos_reach_tensorboard_as_animated_gifs(video_run, tmp_path):
    gifs = _tensorboard_gifs(RunFolder(video_run).tb_dir)
    assert sorted(gifs) == [32, 64, 96]
    for step, data in gifs.items():
        assert data[:6] == b"GIF89a"
        path = tmp_path / f"{step}.gif"
        path.write_bytes(data)
        codec, frames = decode_video(path)
        _, mp4 = decode_video(RunFolder(video_run).videos_dir / f"step_{step:09d}.mp4")
        assert codec == "gif" and len(frames) == len(mp4)
        assert gif_size(data) == frames[0].shape[:2]
        # Same picture as the MP4, up to the GIF's fixed 3-3-2 palette and H.264's loss:
        # the brightness of the two first frames correlates strongly, and far more than with
        # the MP4's frame mirrored (a different picture of the same colours).
        gif_grey, mp4_grey = frames[0].mean(axis=2), mp4[0].mean(axis=2)
        same = np.corrcoef(gif_grey.ravel(), mp4_grey.ravel())[0, 1]
        mirrored = np.corrcoef(gif_grey.ravel(), mp4_grey[:, ::-1].ravel())[0, 1]
        assert same > 0.8 and mirrored < same - 0.3


def test_cli_flag_and_its_bad_values(toy, tmp_path, capsys):
    env, agent = toy.write_presets(tmp_path)
    argv = ["train", "--env", env, "--agent", agent, "--steps", "32", "--device", "cpu",
            "--quiet", "--set", "eval_freq=0", "--set", "eval_episodes=1"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "r"), "--video-every", "32"]) == 0
    assert [p.name for p in (tmp_path / "r" / "videos").iterdir()] == ["step_000000032.mp4"]
    for bad in ("0", "-5"):
        assert main([*argv, "--out", str(tmp_path / "bad"), "--video-every", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"mmrl train: error: --video-every must be >= 1, got {bad}"
        assert not (tmp_path / "bad").exists()


def test_library_refuses_a_bad_interval():
    with pytest.raises(ConfigError, match="video_every must be an integer >= 1"):
        train("driving", steps=10, video_every=0)
    with pytest.raises(ConfigError, match="video_every must be an integer >= 1"):
        VideoCallback(2.5, lambda: None, "videos")
