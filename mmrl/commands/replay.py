"""Options of ``mmrl replay`` (:func:`mmrl.evaluation.replay.replay_dataset` takes its
defaults)."""

from __future__ import annotations

import dataclasses

from mmrl.commands.options import option


@dataclasses.dataclass(kw_only=True)
class ReplayOptions:
    """``mmrl replay``: logged Minari dataset episodes rendered into a video."""

    dataset: str = option(
        positional=True, metavar="DATASET_ID", help="Minari id, e.g. mmrl/driving/expert-v0"
    )
    episodes: str = option("1", help="N (the first N episodes) or indices like 0,2,5 (5, for one)")
    video: str = option(help="output .mp4 (H.264), .webm (VP9) or .gif")
    # replay_dataset checks fps >= 1 itself (its Python callers get the same error).
    fps: int = option(15, help="frames per second")
