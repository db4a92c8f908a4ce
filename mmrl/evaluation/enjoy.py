"""``mmrl enjoy``: watch a policy play, live in a window or into a video file.

rl-baselines3-zoo's ``enjoy`` for mmrl: any :func:`mmrl.policies.load_policy` reference (a
run folder, ``model.zip``, a pretraining checkpoint's BC policy, the scripted expert or random
actions) plays whole episodes in one environment copy. Each frame is
:func:`mmrl.envs.visualize.compose_frame`'s titled sensors (and the env's extra panels, such as
Navigation's map) plus the episode, step, action, reward, return and the reward's terms; an
episode's last frame names its outcome and is held for half a second. Live, the
window is :class:`mmrl.envs.viewer.Viewer` (space pauses, right arrow or ``n`` steps while
paused, ``q``/Escape quits); with ``video`` the same frames go to a browser-playable file
(:mod:`mmrl.evaluation.encoding`) and no window opens.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmrl.commands.enjoy import BASE_FPS, EnjoyOptions
from mmrl.envs.frames import BG, FrameSource, Scene, status_lines
from mmrl.errors import ConfigError

__all__ = ["BASE_FPS", "EnjoyEpisode", "EnjoyResult", "enjoy"]

_HEADROOM = 60  # px: three more text lines than the first frame (longer instructions)


@dataclasses.dataclass(frozen=True)
class EnjoyEpisode:
    """One finished episode, as ``mmrl enjoy`` prints it.

    Attributes:
        index: 0-based position among the episodes played.
        ret: Undiscounted return.
        length: Steps.
        success: ``info["is_success"]`` at the end.
        collision: Whether any step reported a collision.
        instruction: The episode's instruction (``""`` where the env has none).
    """

    index: int
    ret: float
    length: int
    success: bool
    collision: bool
    instruction: str

    @property
    def outcome(self) -> str:
        """``success`` or ``failure``, with `` (collision)`` when one happened."""
        outcome = "success" if self.success else "failure"
        return f"{outcome} (collision)" if self.collision else outcome

    def line(self, total: int) -> str:
        """``episode 2/3: success, return +1.20, 41 steps, "go to the red ball"``."""
        said = f', "{self.instruction}"' if self.instruction else ""
        return (
            f"episode {self.index + 1}/{total}: {self.outcome}, return {self.ret:+.2f}, "
            f"{self.length} steps{said}"
        )


@dataclasses.dataclass(frozen=True)
class EnjoyResult:
    """What :func:`enjoy` played.

    Attributes:
        episodes: The finished episodes (fewer than asked when the viewer quit early).
        policy: The policy's label.
        env_id: The environment's id.
        quit: Whether the viewer's quit key ended the play early.
        frames: Frames shown or written.
        video: The file written (``None`` live); a ``.webm`` beside an ``.mp4`` when the
            FFmpeg build has no H.264 encoder.
        codec: The video's codec (``h264``, ``vp9``, ``gif``), or ``None`` live.
    """

    episodes: list[EnjoyEpisode]
    policy: str
    env_id: str
    quit: bool
    frames: int
    video: Path | None = None
    codec: str | None = None


def _check(episodes: int, speed: float, split: str) -> None:
    from mmrl.evaluation.rollouts import SPLITS

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ConfigError(f"must be an integer >= 1, got {episodes!r}", field="episodes")
    if not (isinstance(speed, (int, float)) and math.isfinite(speed) and 0 < speed <= 100):
        raise ConfigError(
            f"must be in (0, 100] (1: the env's {BASE_FPS} frames/s), got {speed}", field="speed"
        )
    if split not in SPLITS:
        raise ConfigError(f"must be train or test, got {split!r}", field="split")


class _Canvas:
    """Pads frames to one size (a window that does not jump, a video of one size): the
    first frame's plus room for longer instructions; a taller frame is shrunk to fit,
    never cropped, so no text line is lost."""

    def __init__(self) -> None:
        self.size: tuple[int, int] | None = None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if self.size is None:
            self.size = (frame.shape[0] + _HEADROOM, frame.shape[1])
        height, width = self.size
        if frame.shape[0] > height or frame.shape[1] > width:
            import cv2

            scale = min(height / frame.shape[0], width / frame.shape[1])
            new = (max(1, int(frame.shape[1] * scale)), max(1, int(frame.shape[0] * scale)))
            frame = cv2.resize(frame, new, interpolation=cv2.INTER_AREA)
        canvas = np.empty((height, width, 3), dtype=np.uint8)
        canvas[:] = BG
        canvas[: frame.shape[0], : frame.shape[1]] = frame
        return canvas


def _single(observation: Any) -> dict[str, np.ndarray]:
    """Copy 0 of a batched observation, as ``compose_frame`` takes it (a plain Gymnasium
    id's one array is listed as ``state``)."""
    if not isinstance(observation, dict):
        observation = {"state": observation}
    return {k: np.asarray(v)[0] for k, v in observation.items()}


def _reset_instruction(venv: Any) -> str:
    """The instruction of the episode a reset started: the ``reset_infos`` of the layer that
    has them (``VecMonitor`` and other wrappers keep empty ones of their own)."""
    from mmrl.policies import vec_env_layers

    for layer in vec_env_layers(venv):
        infos = getattr(layer, "reset_infos", None)
        if infos and infos[0]:
            return str(infos[0].get("instruction", ""))
    return ""


def _terminal(info: dict[str, Any]) -> Any:
    """The finished episode's last observation, batched like ``step``'s (the ``VecEnv``
    already reset the copy, so ``step`` returned the next episode's first)."""
    last = info["terminal_observation"]
    if isinstance(last, dict):
        return {k: np.asarray(v)[None] for k, v in last.items()}
    return np.asarray(last)[None]


class _LiveSink:
    """Frames to the window, with the keyboard's pause, step and quit."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.paused = False
        self.quit = False
        self.frames = 0

    def __call__(self, frame: np.ndarray) -> None:
        self.viewer.show(frame)
        self.frames += 1
        keys = self.viewer.poll()
        self.quit |= keys.quit
        self.paused ^= keys.toggle_pause
        if keys.steps and self.paused:
            return  # a step key pressed while paused: this frame was that step
        while self.paused and not self.quit:
            time.sleep(0.02)
            keys = self.viewer.poll()
            self.quit |= keys.quit
            self.paused ^= keys.toggle_pause
            if keys.steps:
                return  # advance one step, still paused


def enjoy(
    policy: str | Path,
    env: str | None = None,
    *,
    episodes: int = EnjoyOptions.episodes,
    speed: float = EnjoyOptions.speed,
    video: str | Path | None = None,
    seed: int = EnjoyOptions.seed,
    split: str = EnjoyOptions.split,
    device: str = EnjoyOptions.device,
    viewer: Any = None,
    on_episode: Callable[[EnjoyEpisode], None] | None = None,
) -> EnjoyResult:
    """Plays ``episodes`` episodes of ``policy`` live in a window, or into ``video``.

    Args:
        policy: A :func:`~mmrl.policies.load_policy` reference: run folder, ``model.zip``,
            pretraining ``.pt``, ``expert`` or ``random``.
        env: Env preset name/path or Gymnasium id (default: the one the run or checkpoint
            records; required for a bare model, ``expert`` and ``random``).
        episodes: Episodes to play (>= 1).
        speed: Playback speed: frames per second are ``15 * speed`` (the video's too).
        video: Write the frames to this ``.mp4``/``.webm``/``.gif`` file instead of a window.
        seed: Seed of the environment (episode ``k`` follows from it) and of random actions.
        split: Instruction split, ``train`` or ``test`` (held-out combinations).
        device: Torch device of a network policy.
        viewer: The :class:`~mmrl.envs.viewer.Viewer` to show frames in (default: a new
            window, closed at the end; one passed in stays open). Ignored with ``video``.
        on_episode: Called with each finished episode (``mmrl enjoy`` prints its line).

    Returns:
        The episodes played and where they went.

    Raises:
        ConfigError: A bad count, speed, split, video path or environment.
        UsageError: No display for the window (use ``video``), or no pygame-ce
            (``MissingDependencyError``, the ``viewer`` extra).
        CheckpointError: A policy that cannot be loaded.
        SpaceMismatchError: A policy that does not fit the environment.
    """
    from mmrl.envs.visualize import compose_frame
    from mmrl.evaluation.encoding import VideoFileWriter, check_video_path
    from mmrl.evaluation.rollouts import make_eval_vec_env
    from mmrl.evaluation.video import discrete_action_names, format_action
    from mmrl.policies import load_policy

    _check(episodes, speed, split)
    fps = BASE_FPS * speed
    # Everything that can be refused is, before a window opens or a policy loads.
    writer = None
    own_viewer = False
    if video is not None:
        check_video_path(video)
    elif viewer is None:
        from mmrl.envs.viewer import Viewer

        viewer = Viewer("mmrl enjoy", fps=fps, require_display=True)
        own_viewer = True
    actor = load_policy(policy, env=env, device=device, seed=seed)
    env_config = actor.require_env()

    def attach(venv: Any) -> Any:
        actor.attach(venv, f"environment {env_config.env_id}")
        return venv

    venv = make_eval_vec_env(env_config, split, 1, seed, attach)
    sim = getattr(venv, "sim", None)  # an mmrl env names its actions; others draw numbers
    names = discrete_action_names(
        getattr(sim, "action_names", None), getattr(sim, "action_space", None)
    )
    source = FrameSource(sim)
    scenes: list[Scene | None] = []

    def frame(observation: Any, instruction: str, lines: list[str]) -> np.ndarray:
        image = compose_frame(
            _single(observation), instruction, lines, source.spec, source.panels(scenes)
        )
        return canvas(image)

    canvas = _Canvas()
    played: list[EnjoyEpisode] = []
    sink: Any
    if video is not None:
        writer = VideoFileWriter(video, fps=max(1, round(fps)), background=BG)
        sink = writer.write
    else:
        sink = _LiveSink(viewer)
    hold = max(1, round(fps / 2))  # the outcome frame stays half a second
    try:
        obs = venv.reset()
        for index in range(episodes):
            instruction = _reset_instruction(venv)
            ret, t, collided = 0.0, 0, False
            head = f"{actor.label}   episode {index + 1}/{episodes}   {split} split"
            scenes[:] = [source.scene(0)]
            sink(frame(obs, instruction, [f"{head}   step 0", "", "", *status_lines()]))
            episode_start = np.ones(1, dtype=bool)
            while not getattr(sink, "quit", False):
                action = actor.act(obs, episode_start)
                obs, rewards, dones, infos = venv.step(action)
                info = infos[0]
                instruction = str(info.get("instruction", instruction))
                t += 1
                ret += float(rewards[0])
                collided |= bool(info.get("collision", False))
                episode_start = np.asarray(dones, dtype=bool)
                success = bool(info.get("is_success", False))
                lines = [
                    f"{head}   step {t}",
                    f"action {format_action(np.asarray(action)[0], names)}   reward "
                    f"{float(rewards[0]):+.3f}   return {ret:+.3f}",
                    "",
                    *status_lines(info.get("rewards"), success, bool(info.get("collision", False))),
                ]
                if not dones[0]:
                    scenes.append(source.scene(0))
                    sink(frame(obs, instruction, lines))
                    continue
                episode = EnjoyEpisode(index, ret, t, success, collided, instruction)
                lines[2] = episode.outcome.upper()
                # The copy was already reset: its last scene (one step before the end) is
                # the latest the map can show.
                last = frame(_terminal(info), instruction, lines)
                for _ in range(hold):
                    sink(last)
                played.append(episode)
                if on_episode is not None:
                    on_episode(episode)
                break
            if getattr(sink, "quit", False):
                break
    except BaseException:
        if writer is not None:
            writer.close()
            writer.path.unlink(missing_ok=True)  # no half-written video left behind
        raise
    finally:
        venv.close()
        if writer is not None:
            writer.close()
        if own_viewer:
            viewer.close()
    quit_early = bool(getattr(sink, "quit", False))
    return EnjoyResult(
        episodes=played,
        policy=actor.label,
        env_id=env_config.env_id,
        quit=quit_early,
        frames=writer.frames if writer is not None else sink.frames,
        video=writer.path if writer is not None else None,
        codec=writer.codec if writer is not None else None,
    )
