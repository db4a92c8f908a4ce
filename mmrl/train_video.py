"""Training-time videos (``mmrl train --video-every N``): the current policy, one episode.

SB3's ``VecVideoRecorder`` idea with mmrl's frames: every ``N`` environment steps
:class:`VideoCallback` plays one deterministic episode of the policy being trained (no
expert involved) in a fresh single-copy environment and writes it with
:class:`mmrl.evaluation.video.VideoRecorder` (camera, lidar, instruction, action, reward) to
``RUN_DIR/videos/step_<steps>.mp4``.

When the run logs to TensorBoard, the same frames also go there as an animated GIF image
summary (tag ``eval/video``, under IMAGES). That is exactly what ``SummaryWriter.add_video``
(and so SB3's ``Video`` log type) writes, but ``add_video`` encodes its GIF with moviepy:
without moviepy it prints "add_video needs package moviepy" and logs nothing, and it imports
``moviepy.editor``, which moviepy 2 removed. Here PyAV (already a dependency) encodes the GIF,
so videos reach TensorBoard with no further package.

Each video is also recorded in the model's SB3 logger as a :class:`VideoFile` (the file, not
its frames), excluded from the text outputs and ignored by TensorBoard's; a tracked run's
writer (:class:`mmrl.tracking.TrackerOutput`) uploads it to W&B or MLflow.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from mmrl.callbacks import find_vec_normalize
from mmrl.errors import ConfigError

__all__ = ["VIDEO_TAG", "VideoCallback", "VideoFile", "gif_summary", "tensorboard_writer"]

#: TensorBoard tag of the training videos (and their key in a tracked run).
VIDEO_TAG = "eval/video"
#: SB3 logger outputs that cannot show a :class:`VideoFile` (``tensorboard``'s skips it by
#: type, and gets the frames as a GIF summary instead).
_NOT_SHOWN = ("stdout", "log", "json", "csv")


@dataclasses.dataclass(frozen=True)
class VideoFile:
    """A video written to disk, as a value of the SB3 logger.

    Attributes:
        path: The MP4 file.
        step: Environment steps when it was recorded.
    """

    path: Path
    step: int


def tensorboard_writer(logger: Any) -> Any | None:
    """The ``SummaryWriter`` of an SB3 logger's TensorBoard output, or ``None``."""
    from stable_baselines3.common.logger import TensorBoardOutputFormat

    for output in getattr(logger, "output_formats", []):
        if isinstance(output, TensorBoardOutputFormat):
            return output.writer
    return None


def gif_summary(tag: str, gif: bytes, height: int, width: int) -> Any:
    """A TensorBoard image summary holding an animated GIF (what ``add_video`` writes).

    Args:
        tag: Summary tag.
        gif: The encoded GIF file.
        height: Frame height in pixels.
        width: Frame width in pixels.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary

    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
    return Summary(value=[Summary.Value(tag=tag, image=image)])


class VideoCallback(BaseCallback):
    """Every ``every`` environment steps, records one episode of the current policy.

    Args:
        every: Environment steps between videos (>= 1). The first comes after ``every``
            steps; a resumed run continues the schedule.
        make_env: Builds the raw single-copy ``VecEnv`` to play in (no normalization: the
            training env's ``VecNormalize`` statistics are applied to the observations the
            policy sees, while the frames show the raw sensors).
        folder: Where ``step_<steps>.mp4`` files go (created when the first is written).
        seed: Seed of every video's episode (the same start each time, so videos compare).
        fps: Frames per second.
        tensorboard: Also log each video to the model's TensorBoard output, if it has one.

    Attributes:
        written: The video files written so far.
    """

    def __init__(
        self,
        every: int,
        make_env: Callable[[], VecEnv],
        folder: str | Path,
        seed: int = 0,
        fps: int = 15,
        tensorboard: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"must be an integer >= 1, got {every!r}", field="video_every")
        self.every = every
        self.make_env = make_env
        self.folder = Path(folder)
        self.seed = seed
        self.fps = fps
        self.tensorboard = tensorboard
        self.written: list[Path] = []
        self._next = every

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.every + 1) * self.every
            self.record(self.num_timesteps)
        return True

    def record(self, step: int) -> Path:
        """Plays one episode now and writes ``step_<step>.mp4`` (and the TensorBoard GIF).

        Returns:
            The file written.
        """
        from mmrl.evaluation.encoding import VideoFileWriter
        from mmrl.evaluation.video import VideoRecorder
        from mmrl.rollout import collect_episodes

        self.folder.mkdir(parents=True, exist_ok=True)
        recorder = VideoRecorder(self.folder / f"step_{step:09d}.mp4", n_videos=1, fps=self.fps)
        venv = recorder.wrap(self.make_env(), n_episodes=1)
        norm = find_vec_normalize(self.model.get_env())

        def predict(
            obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
        ) -> Any:
            if norm is not None:  # the statistics as they are now, not updated by this play
                obs = norm.normalize_obs(obs)
            return self.model.predict(obs, state, episode_start, deterministic)

        try:
            venv.seed(self.seed)
            collect_episodes(predict, venv, 1)
        finally:
            venv.close()
        writer = tensorboard_writer(self.logger) if self.tensorboard else None
        if writer is None:
            path = recorder.write()
        else:
            with tempfile.TemporaryDirectory() as tmp:
                gif = VideoFileWriter(Path(tmp) / "video.gif", self.fps)
                with gif:
                    path = recorder.write(also=[gif])
                data = gif.path.read_bytes()
            height, width = gif_size(data)
            writer._get_file_writer().add_summary(gif_summary(VIDEO_TAG, data, height, width), step)
            writer.flush()
        self.written.append(path)
        logger = getattr(self.model, "_logger", None)  # set up by learn()
        if logger is not None:
            logger.record(VIDEO_TAG, VideoFile(Path(path), step), exclude=_NOT_SHOWN)
        if self.verbose:
            print(f"wrote {path}")
        return path


def gif_size(gif: bytes) -> tuple[int, int]:
    """``(height, width)`` of a GIF from its logical screen descriptor (bytes 6-9)."""
    width, height = np.frombuffer(gif[6:10], dtype="<u2")
    return int(height), int(width)
