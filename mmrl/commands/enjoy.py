"""Options of ``mmrl enjoy`` (:func:`mmrl.evaluation.enjoy.enjoy` takes its defaults)."""

from __future__ import annotations

import dataclasses

from mmrl.commands.options import option

__all__ = ["BASE_FPS", "EnjoyOptions"]

#: Frames per second at ``--speed 1``: the environments' ``metadata["render_fps"]`` (here, not in
#: :mod:`mmrl.evaluation.enjoy`, so the ``--speed`` help text and the player share it).
BASE_FPS = 15


@dataclasses.dataclass(kw_only=True)
class EnjoyOptions:
    """``mmrl enjoy``: watch a policy play, live in a window or into a video file.

    The bounds of ``episodes`` and ``speed`` are checked by :func:`~mmrl.evaluation.enjoy.enjoy`
    itself (its Python callers get the same errors), so they are not declared twice here.
    """

    policy: str = option(
        positional=True,
        metavar="RUN|MODEL.zip|ENCODER.pt|expert|random",
        help="what acts (as for mmrl evaluate)",
    )
    env: str | None = option(
        None,
        help="env preset or Gymnasium id (default: the run's own; required for a bare "
        "MODEL.zip, expert and random)",
    )
    episodes: int = option(3, help="episodes to play")
    speed: float = option(1.0, help=f"playback speed: 1 is {BASE_FPS} frames/s, 2 twice as fast")
    video: str | None = option(
        None,
        metavar="OUT.mp4",
        help="write a .mp4/.webm/.gif file instead of opening a window",
    )
    seed: int = option(0, help="environment seed")
    split: str = option(
        "train",
        choices=("train", "test"),
        help="instruction split (test: held-out combinations)",
    )
    device: str = option("cpu", help="torch device of a network policy")
