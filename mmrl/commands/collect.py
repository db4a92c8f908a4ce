"""Options of ``mmrl collect`` (:func:`mmrl.collect.collect`)."""

from __future__ import annotations

import dataclasses

from mmrl.commands.options import option
from mmrl.commands.progress import log_interval_option
from mmrl.config import RunConfig
from mmrl.data.background import WRITE_MODES


@dataclasses.dataclass(kw_only=True)
class CollectOptions:
    """``mmrl collect``: roll a policy out into a Minari dataset."""

    env: str | None = option(
        None, help=f"env preset or Gymnasium id (default: {RunConfig.env_name}, or the run's)"
    )
    policy: str = option(
        "expert",
        help="expert, random, a training run folder / model.zip, or a pretraining "
        "checkpoint .pt (its BC policy)",
    )
    episodes: int = option(100, help="episodes to write", minimum=1)
    dataset_id: str = option(help="Minari id, e.g. mmrl/driving/expert-v0")
    epsilon: float = option(0.0, help="probability of a random action per step (state coverage)")
    stochastic: bool = option(
        False,
        help="sample a trained policy's actions from its distribution (default greedy); "
        "their probability is logged for off-policy evaluation",
    )
    expert_labels: bool = option(
        False,
        help="also log the scripted expert's action in the visited states (DAgger-style BC "
        "targets for a run's or random states)",
    )
    seed: int = option(0, help="seeds the environment copies (copy i: seed + i) and the noise")
    n_envs: int | None = option(
        None, help="copies stepped together (default: the preset's)", minimum=1
    )
    n_workers: int = option(
        1,
        flag="--workers",
        aliases=("--n-workers",),
        metavar="K",
        help="processes stepping the copies, same dataset (default 1: this one)",
        minimum=1,
    )
    writes: str = option(
        "auto",
        choices=WRITE_MODES,
        help="how chunks of episodes are written: in a writer process beside the rollout, on a "
        "thread, or inline between steps; auto: a process for long collections",
    )
    jpeg: bool = option(False, help="JPEG-encode images (smaller, lossy)")
    force: bool = option(False, help="replace an existing dataset")
    quiet: bool = option(False, help="no progress bar, progress lines or summary")
    log_interval: float = log_interval_option("a last one when done")
