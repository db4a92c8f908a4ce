"""Options of ``mmrl export`` (:func:`mmrl.export.export_run` takes its defaults)."""

from __future__ import annotations

import dataclasses

from mmrl.commands.options import option


@dataclasses.dataclass(kw_only=True)
class ExportOptions:
    """``mmrl export``: a run as a self-contained folder (model, presets, model card)."""

    run: str = option(positional=True, metavar="RUN", help="run folder (mmrl train --out)")
    out: str = option(help="export folder (absent or empty)")
    best: bool = option(False, help="export best_model.zip, not model.zip")
    # export_run checks >= 0 itself (its Python callers get the same error).
    preview_episodes: int = option(1, help="held-out episodes in replay.mp4 (0: no video)")
    force: bool = option(False, help="write into a non-empty --out")
