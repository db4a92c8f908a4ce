"""Evaluation videos: titled sensor panels, instruction, action, reward terms, outcome.

:class:`VideoRecorder` watches chosen episodes of a batched evaluation as a ``VecEnv``
wrapper placed directly over the raw environment (below noise and normalization, so frames
show the true sensors). It keeps only the few small observations of the recorded episodes and
draws the frames with :func:`mmrl.envs.visualize.compose_frame` when writing, so recording
costs almost nothing during the rollout. Each frame shows the observation the action was
chosen from, that action, the reward it earned with its named terms, success and collision;
an episode of length ``T`` gives ``T`` frames. Over an mmrl simulator the frames also carry
its panel titles, state names and extra panels (Navigation's map, from a small scene kept
per recorded step; see :mod:`mmrl.envs.frames`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from mmrl.config import ConfigError
from mmrl.envs.frames import BG, FrameSource, Scene, status_lines
from mmrl.evaluation.encoding import VideoFileWriter, check_video_path


@dataclasses.dataclass
class _Step:
    obs: dict[str, np.ndarray]
    action: np.ndarray
    reward: float
    instruction: str
    terms: dict[str, float] = dataclasses.field(default_factory=dict)
    success: bool = False
    collision: bool = False
    scene: Scene | None = None


def episode_slots(n_episodes: int, n_envs: int, n_videos: int) -> list[tuple[int, int]]:
    """Which ``(copy, episode index)`` pairs to record, in video order.

    :func:`mmrl.rollout.collect_episodes` runs ``(n_episodes + i) // n_envs`` episodes on
    copy ``i``; recording round-robin over copies within those quotas takes the earliest
    episodes to finish and never asks for an episode that is not run.
    """
    quota = [(n_episodes + i) // n_envs for i in range(n_envs)]
    slots: list[tuple[int, int]] = []
    for k in range(max(quota, default=0)):
        for i in range(n_envs):
            if k < quota[i] and len(slots) < n_videos:
                slots.append((i, k))
    return slots


def format_action(action: np.ndarray, names: Sequence[str] | None = None) -> str:
    """An action as frame text.

    Args:
        action: A discrete action (integer scalar) or a continuous one (any shape).
        names: Name of each discrete action (a simulator's ``action_names``), or ``None``.

    Returns:
        ``"3 FASTER"`` for a discrete action with a name (``"3"`` without ``names`` or when
        the id is outside them), ``"[0.50, -1.00]"`` (2 decimals) for a continuous one.
    """
    action = np.asarray(action)
    if action.ndim == 0 and action.dtype.kind in "iub":
        index = int(action)
        if names is not None and 0 <= index < len(names):
            return f"{index} {names[index]}"
        return str(index)
    return "[" + ", ".join(f"{v:.2f}" for v in action.ravel().astype(float)) + "]"


def discrete_action_names(names: Sequence[str] | None, space: Any) -> tuple[str, ...] | None:
    """``names`` (a simulator's ``action_names``) while ``space`` is ``Discrete`` with that
    many actions, else ``None``: continuous variants and unnamed or mismatched actions are
    drawn as numbers."""
    if names is None or not isinstance(space, spaces.Discrete) or len(names) != int(space.n):
        return None
    return tuple(names)


class VideoRecorder:
    """Records episodes of an evaluation and writes them as one browser-playable video.

    Args:
        path: Output file: ``.mp4`` (H.264), ``.webm`` (VP9) or ``.gif`` (see
            :mod:`mmrl.evaluation.encoding`); its folder must exist.
        n_videos: Episodes to record (>= 1).
        fps: Frames per second of the video.
    """

    def __init__(self, path: str | Path, n_videos: int = 3, fps: int = 15) -> None:
        if n_videos < 1:
            raise ConfigError(f"--video-episodes must be >= 1, got {n_videos}")
        self.path = check_video_path(path)
        self.n_videos = int(n_videos)
        self.fps = int(fps)
        self.episodes: list[list[_Step]] = []
        self._wrapper: _RecordingVecEnv | None = None
        self.action_names: tuple[str, ...] | None = None
        self.source = FrameSource()

    def wrap(self, venv: VecEnv, n_episodes: int | None = None) -> VecEnv:
        """Wraps the raw evaluation ``VecEnv``.

        Args:
            venv: The raw ``VecEnv`` (before noise and normalization).
            n_episodes: Episodes the evaluation will run (default ``n_videos``); it decides
                which episodes exist on which copy (see :func:`episode_slots`).
        """
        total = n_episodes if n_episodes is not None else self.n_videos
        slots = episode_slots(total, venv.num_envs, self.n_videos)
        # An mmrl ``BatchedVecEnv`` exposes its simulator; other VecEnvs draw generic frames.
        sim = getattr(venv, "sim", None)
        self.source = FrameSource(sim)
        self._wrapper = _RecordingVecEnv(venv, slots, self.source)
        self.action_names = discrete_action_names(
            getattr(sim, "action_names", None), getattr(sim, "action_space", None)
        )
        return self._wrapper

    @property
    def recorded(self) -> list[list[_Step]]:
        """The finished recorded episodes in video order."""
        if self._wrapper is None:
            return []
        return self._wrapper.finished()

    def frame_count(self) -> int:
        """Frames the video will have (sum of recorded episode lengths)."""
        return sum(len(e) for e in self.recorded)

    def frame_lines(self, step: _Step, index: int, t: int, ret: float, total: int) -> list[str]:
        """The text lines drawn under one frame's panels: episode and step, action, reward
        and return, the reward's terms, and ``SUCCESS``/``COLLISION`` when the step had them
        (always four lines, so frames keep one height)."""
        action = format_action(step.action, self.action_names)
        return [
            f"episode {index + 1}/{total}   step {t}",
            f"action {action}   reward {step.reward:+.3f}   return {ret:+.3f}",
            *status_lines(step.terms, step.success, step.collision),
        ]

    def _frame(
        self, episode: list[_Step], index: int, t: int, ret: float, total: int
    ) -> np.ndarray:
        from mmrl.envs.visualize import compose_frame

        step = episode[t]
        lines = self.frame_lines(step, index, t, ret, total)
        panels = self.source.panels([s.scene for s in episode[: t + 1]])
        return compose_frame(step.obs, step.instruction, lines, self.source.spec, panels)

    def frames(self) -> Iterator[np.ndarray]:
        """Yields the video's frames, drawn and padded to one size, one at a time (what
        :meth:`write` encodes; training videos also send them to TensorBoard).

        Raises:
            ConfigError: Nothing was recorded.
        """
        episodes = self.recorded
        if not episodes:
            raise ConfigError(f"--video {self.path}: no episode was recorded")
        # Frame height depends on how many lines the instruction wraps to; one size per video
        # (the encoder pads it to even sizes).
        firsts = [self._frame(e, 0, 0, 0.0, len(episodes)) for e in episodes]
        height = max(f.shape[0] for f in firsts)
        width = max(f.shape[1] for f in firsts)
        for index, episode in enumerate(episodes):
            ret = 0.0
            for t, step in enumerate(episode):
                ret += step.reward
                frame = self._frame(episode, index, t, ret, len(episodes))
                canvas = np.empty((height, width, 3), dtype=np.uint8)
                canvas[:] = BG
                canvas[: frame.shape[0], : frame.shape[1]] = frame
                yield canvas

    def write(self, also: Sequence[VideoFileWriter] = ()) -> Path:
        """Writes the recorded episodes; returns the file written (a ``.webm`` beside an
        ``.mp4`` when this FFmpeg build has no H.264 encoder).

        Args:
            also: More open writers that get every frame too (one drawing pass).

        Raises:
            ConfigError: Nothing was recorded.
        """
        frames = self.frames()
        first = next(frames)  # raises ConfigError before the file is created
        with VideoFileWriter(self.path, self.fps, background=BG) as writer:
            for frame in itertools.chain([first], frames):
                writer.write(frame)
                for other in also:
                    other.write(frame)
        return writer.path


class _RecordingVecEnv(VecEnvWrapper):
    """Keeps each step of the chosen ``(copy, episode)`` slots: observation, action, reward,
    its terms and flags, and the copy's scene before the step (for extra panels)."""

    def __init__(
        self, venv: VecEnv, slots: list[tuple[int, int]], source: FrameSource | None = None
    ) -> None:
        super().__init__(venv)
        self.source = source or FrameSource()
        self._scenes: dict[int, Scene | None] = {}
        self.slots = list(slots)
        self._wanted = {c for c, _ in self.slots}
        self._episode_index = np.zeros(self.num_envs, dtype=np.int64)
        self._current: dict[tuple[int, int], list[_Step]] = {}
        self._done: dict[tuple[int, int], list[_Step]] = {}
        self._obs: dict[str, np.ndarray] | None = None
        self._actions: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        obs = self.venv.reset()
        self._episode_index[:] = 0
        self._current.clear()
        self._done.clear()
        self._obs = obs
        self._read_scenes()
        return obs

    def _read_scenes(self) -> None:
        """The scenes of the watched copies as of ``self._obs`` (read on their own, after the
        step: the next step's frame draws them)."""
        self._scenes = {c: self.source.scene(c) for c in self._wanted}

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        prev, actions = self._obs, self._actions
        assert prev is not None and actions is not None, "reset() before step()"
        for c in self._wanted:
            slot = (c, int(self._episode_index[c]))
            if slot not in self.slots:
                continue
            info = infos[c]
            step = _Step(
                obs={k: np.array(v[c]) for k, v in prev.items()},
                action=np.array(actions[c]),
                reward=float(rewards[c]),
                instruction=str(info.get("instruction", "")),
                terms={k: float(v) for k, v in dict(info.get("rewards", {})).items()},
                success=bool(info.get("is_success", False)),
                collision=bool(info.get("collision", False)),
                scene=self._scenes.get(c),
            )
            self._current.setdefault(slot, []).append(step)
            if dones[c]:
                self._done[slot] = self._current.pop(slot)
        self._episode_index += np.asarray(dones, dtype=np.int64)
        self._obs = obs
        self._read_scenes()
        return obs, rewards, dones, infos

    def finished(self) -> list[list[_Step]]:
        return [self._done[s] for s in self.slots if s in self._done]
