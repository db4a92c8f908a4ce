"""Options of ``mmrl pretrain`` (:func:`mmrl.pretrain.trainer.pretrain` takes its defaults)."""

from __future__ import annotations

import dataclasses

from mmrl.commands.options import option
from mmrl.commands.progress import log_interval_option
from mmrl.commands.track import track_option, track_project_option
from mmrl.config import RunConfig


@dataclasses.dataclass(kw_only=True)
class PretrainOptions:
    """``mmrl pretrain``: a recipe's encoders trained on a Minari dataset."""

    dataset: str = option(
        help="Minari dataset id (see mmrl collect), or several comma-separated ids trained "
        "on together"
    )
    # The same default as mmrl train, so `train --init-from` takes the checkpoint with
    # defaults (issue 14, defect 2: pretrain defaulted to another recipe).
    agent: str = option(
        RunConfig.agent_name, help="agent recipe whose extractor to train (as mmrl train)"
    )
    env: str | None = option(None, help="env preset (default: the one recorded in the dataset)")
    objectives: str = option(
        "bc,labels,contrastive,masked", help="comma-separated: bc, labels, contrastive, masked"
    )
    labels: str | None = option(
        None,
        help="comma-separated info['labels'] keys the labels objective fits, e.g. "
        "target_lane_offset (default: all)",
    )
    epochs: int = option(30, help="maximum passes over the data")
    batch_size: int = option(256, help="minibatch size (transitions)")
    lr: float = option(1e-3, help="Adam learning rate")
    device: str = option("auto", help="auto (CUDA when present), cpu or cuda[:N]")
    augment: str = option(
        "none", choices=("none", "shift"), help="shift: DrQ random shift of camera images"
    )
    val_fraction: float = option(0.1, help="episodes held out for early stopping")
    patience: int = option(5, help="epochs without improvement to stop")
    monitor: str = option(
        "total", help="loss early stopping follows: total or an objective, e.g. bc"
    )
    max_updates: int | None = option(None, help="stop after this many updates")
    weight: list[str] = option(
        [],
        metavar="OBJ=W",
        help="loss weight of an objective, e.g. bc=2 (default 1 each)",
    )
    seed: int = option(0, help="initialization, split, batches, masks and augmentation")
    overrides: list[str] = option(
        [], flag="--set", metavar="KEY=VALUE", help="run-config override as for mmrl train"
    )
    out: str = option("encoder.pt", help="checkpoint file to write")
    force: bool = option(False, help="overwrite an existing --out file")
    tb: str | None = option(None, help="TensorBoard folder (default <out stem>_tb next to --out)")
    threads: int | None = option(
        None, help="torch CPU threads (1 is faster on a busy machine)", minimum=1
    )
    quiet: bool = option(False, help="no progress bar, progress lines or per-epoch lines")
    log_interval: float = log_interval_option("one per epoch")
    track: str | None = track_option()
    track_project: str = track_project_option()
