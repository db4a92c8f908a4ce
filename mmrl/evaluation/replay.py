"""``mmrl replay``: logged Minari episodes as a browser-playable video (robomimic's playback).

Episodes are read through the one dataset reader (:func:`mmrl.data.reader.open_dataset`, so a
missing or damaged dataset gets the same one-line :class:`~mmrl.errors.DatasetError` as
``mmrl pretrain``), drawn with :func:`mmrl.envs.visualize.compose_frame` (camera, lidar polar
plot, instruction, state; for a dataset of an mmrl env, its panel titles and state names, from
a simulator built with the logged env arguments) and written through
:class:`~mmrl.evaluation.encoding.VideoFileWriter`.

Like the evaluation videos (:mod:`mmrl.evaluation.video`), frame ``t`` shows observation ``t``,
the action logged there and the reward it earned, so an episode of ``T`` steps gives ``T``
frames; the final observation (which has no action) is not drawn.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from mmrl.commands.replay import ReplayOptions
from mmrl.data.reader import DatasetReader, Episode, open_dataset
from mmrl.envs.frames import BG, FrameSpec
from mmrl.errors import ConfigError, DatasetError
from mmrl.evaluation.encoding import VideoFileWriter, check_video_path
from mmrl.evaluation.video import discrete_action_names, format_action

__all__ = ["ReplayResult", "frame_lines", "parse_episodes", "replay_dataset"]


@dataclasses.dataclass
class ReplayResult:
    """What :func:`replay_dataset` wrote.

    Attributes:
        path: The video file (a ``.webm`` beside an ``.mp4`` without an H.264 encoder).
        codec: The codec a decoder reports (``h264``, ``vp9`` or ``gif``).
        episodes: The dataset episode indices drawn, in video order.
        frames: Frames written (the sum of those episodes' step counts).
    """

    path: Path
    codec: str
    episodes: list[int]
    frames: int


def parse_episodes(spec: str, n_episodes: int) -> list[int]:
    """Which episodes ``--episodes`` names.

    Args:
        spec: ``"N"``: the first ``N`` episodes; ``"0,2,5"`` (any comma, ``"5,"`` for one):
            those indices, in that order.
        n_episodes: Episodes in the dataset.

    Raises:
        ConfigError: Not integers, ``N < 1``, or an index outside ``0 .. n_episodes - 1``.
    """
    text = str(spec).strip()
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if not numbers:
        raise ConfigError(
            f"expected N (the first N) or comma-separated indices like 0,2,5, got {spec!r}",
            field="episodes",
        )
    if "," not in text:
        count = numbers[0]
        if not 1 <= count <= n_episodes:
            raise ConfigError(
                f"{count}: the dataset has {n_episodes} episodes (ask for 1 to {n_episodes})",
                field="episodes",
            )
        return list(range(count))
    bad = [i for i in numbers if not 0 <= i < n_episodes]
    if bad:
        raise ConfigError(
            f"index {bad[0]} is out of range: the dataset has episodes 0 to {n_episodes - 1}",
            field="episodes",
        )
    return numbers


def _instructions(episode: Episode) -> list[str]:
    """Instruction of each of the ``T + 1`` observations: ``infos["instruction"]`` as
    ``mmrl collect`` logs it, else the ``text`` token ids decoded, else empty strings."""
    rows = len(episode) + 1
    logged = episode.infos.get("instruction")
    if logged is not None and len(logged) == rows:
        return [s.decode() if isinstance(s, bytes) else str(s) for s in logged]
    text = episode.observations.get("text")
    if text is not None and np.issubdtype(text.dtype, np.integer) and text.ndim == 2:
        from mmrl.envs.tokenizer import Tokenizer

        tokenizer = Tokenizer(max_len=text.shape[1])
        return [tokenizer.decode(ids) for ids in text]
    return [""] * rows


def _simulator_class(reader: DatasetReader) -> type | None:
    """The simulator class of the env id ``mmrl collect`` logged in ``metadata["mmrl"]``
    (``None`` for datasets of other or unknown envs)."""
    import importlib

    from mmrl.data.dataset import mmrl_metadata
    from mmrl.registration import entry_for

    entry = entry_for(str(mmrl_metadata(reader.metadata).get("env_id", "")))
    if entry is None:
        return None
    module, name = entry.simulator.split(":")
    return getattr(importlib.import_module(module), name)


def _action_names(reader: DatasetReader) -> tuple[str, ...] | None:
    """Names of the dataset's discrete actions: the ``action_names`` of the logged env's
    simulator; ``None`` (numbers) for datasets of other or unknown envs and continuous
    actions."""
    simulator = _simulator_class(reader)
    return discrete_action_names(getattr(simulator, "action_names", None), reader.action_space)


def _frame_spec(reader: DatasetReader) -> FrameSpec | None:
    """Panel titles and state names of the logged env: its painter's spec of one simulator
    copy built with the logged ``env_kwargs``; ``None`` (generic titles) for other envs, or
    when that simulator's spaces are not the dataset's (arguments not logged)."""
    from mmrl.data.dataset import mmrl_metadata

    simulator = _simulator_class(reader)
    if simulator is None:
        return None
    kwargs = mmrl_metadata(reader.metadata).get("env_kwargs") or {}
    try:
        sim = simulator(1, **dict(kwargs))
    except (TypeError, ValueError):
        return None
    if sim.observation_space != reader.observation_space:
        return None  # titles would state sizes and ranges the data do not have
    return sim.painter.spec(sim)


def _flag(infos: dict[str, Any], key: str, row: int) -> bool:
    values = infos.get(key)
    return values is not None and len(values) > row and bool(values[row])


def _frames(
    episode: Episode,
    position: int,
    total: int,
    names: tuple[str, ...] | None = None,
    spec: FrameSpec | None = None,
):
    """Yields the ``T`` frames of one episode (``(H, W, 3)`` uint8, heights may differ)."""
    from mmrl.envs.visualize import compose_frame

    instructions = _instructions(episode)
    t_max = len(episode)
    ret = 0.0
    for t in range(t_max):
        obs = {k: v[t] for k, v in episode.observations.items()}
        ret += float(episode.rewards[t])
        yield compose_frame(
            obs, instructions[t], frame_lines(episode, position, total, t, ret, names), spec
        )


def frame_lines(
    episode: Episode,
    position: int,
    total: int,
    t: int,
    ret: float,
    names: tuple[str, ...] | None = None,
) -> list[str]:
    """The text lines drawn under frame ``t`` of an episode (``ret``: the return through
    step ``t``; ``names``: discrete action names, else actions are numbers)."""
    t_max = len(episode)
    reward = float(episode.rewards[t])
    lines = [
        f"episode {episode.index} ({position + 1}/{total})   step {t + 1}/{t_max}",
        f"action {format_action(episode.actions[t], names)}   reward {reward:+.3f}   "
        f"return {ret:+.3f}",
    ]
    if t == t_max - 1:  # the outcome, from the info of the observation the step led to
        outcome = [
            name
            for name, key in (("success", "is_success"), ("collision", "collision"))
            if _flag(episode.infos, key, t + 1)
        ]
        ended = "terminated" if episode.terminations[t] else "truncated"
        lines.append(f"{ended}" + (f": {', '.join(outcome)}" if outcome else ""))
    return lines


def replay_dataset(
    dataset_id: str,
    video: str | Path,
    episodes: str = ReplayOptions.episodes,
    fps: int = ReplayOptions.fps,
) -> ReplayResult:
    """Renders logged episodes of a Minari dataset into one video.

    Every input is checked before the file is opened, and a failure while writing removes
    the partial file, so a bad call writes nothing.

    Args:
        dataset_id: Minari id (under ``MINARI_DATASETS_PATH``) with a ``camera`` image key.
        video: Output ``.mp4`` (H.264), ``.webm`` (VP9) or ``.gif``; its folder must exist.
        episodes: ``"N"`` (the first ``N``) or comma-separated indices (see
            :func:`parse_episodes`).
        fps: Frames per second (>= 1).

    Raises:
        DatasetError: Missing, damaged or non-image dataset (as the reader raises).
        ConfigError: Bad ``episodes``, ``video`` suffix or folder, or ``fps``.
    """
    path = check_video_path(video)
    if fps < 1:
        raise ConfigError(f"must be >= 1, got {fps}", field="fps")
    reader = open_dataset(dataset_id)
    camera = reader.observation_space.spaces.get("camera")
    if camera is None or len(camera.shape or ()) != 3:
        raise DatasetError(
            f"dataset {dataset_id!r} has no camera images (keys "
            f"{sorted(reader.observation_space.spaces)}); replay draws the camera of every step"
        )
    chosen = parse_episodes(episodes, reader.n_episodes)
    # Read only up to the last episode asked for; keep just the chosen ones (a few episodes
    # of small observations) so frames come out in the order asked.
    wanted, last = set(chosen), max(chosen)
    by_index: dict[int, Episode] = {}
    for episode in reader.episodes():
        if episode.index in wanted:
            by_index[episode.index] = episode
        if episode.index == last:
            break
    ordered = [by_index[i] for i in chosen]
    spec = _frame_spec(reader)
    height, width = _frame_size(ordered, spec)
    names = _action_names(reader)
    writer = VideoFileWriter(path, fps, background=BG)
    try:
        with writer:
            for position, episode in enumerate(ordered):
                for frame in _frames(episode, position, len(ordered), names, spec):
                    canvas = np.empty((height, width, 3), dtype=np.uint8)
                    canvas[:] = BG
                    canvas[: frame.shape[0], : frame.shape[1]] = frame
                    writer.write(canvas)
    except BaseException:
        writer.path.unlink(missing_ok=True)
        raise
    return ReplayResult(path=writer.path, codec=writer.codec, episodes=chosen, frames=writer.frames)


def _frame_size(episodes: list[Episode], spec: FrameSpec | None = None) -> tuple[int, int]:
    """One size for the whole video: the frame of the longest instruction (the text area
    grows with the lines it wraps to) and the outcome line of a last step."""
    from mmrl.envs.visualize import compose_frame

    height = width = 0
    for episode in episodes:
        obs = {k: v[0] for k, v in episode.observations.items()}
        for instruction in set(_instructions(episode)):
            frame = compose_frame(obs, instruction, ["", "", ""], spec)
            height, width = max(height, frame.shape[0]), max(width, frame.shape[1])
    return height, width
