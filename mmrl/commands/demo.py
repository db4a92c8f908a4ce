"""Options of ``mmrl demo`` (:func:`mmrl.evaluation.demo.demo_snapshot` takes its defaults)."""

from __future__ import annotations

import dataclasses

from mmrl.commands.options import option
from mmrl.config import RunConfig


@dataclasses.dataclass(kw_only=True)
class DemoOptions:
    """``mmrl demo``: roll a policy out and save an image of every sensor."""

    # The env mmrl train defaults to, so the first demo shows what the first run learns.
    env: str = option(RunConfig.env_name, help="env preset name or Gymnasium id")
    policy: str | None = option(
        None,
        metavar="expert|random|RUN|MODEL.zip|ENCODER.pt",
        help="what acts (default: expert if the env has one, else random)",
    )
    steps: int = option(30, help="policy steps before the snapshot", minimum=0)
    seed: int = option(0, help="seed of the environment and of the random actions")
    out: str = option("demo.png", help="PNG file to write")
