"""``mmrl pretrain``: train a recipe's extractor on a Minari dataset, write an encoder checkpoint.

Top to bottom: load the dataset into contiguous tensors; resolve the agent recipe for the
dataset's environment and refuse mismatched spaces before any training; build the SB3 policy
exactly as PPO would (so weights transfer one to one); split episodes into train/validation;
train the multi-task objectives with Adam, logging TensorBoard curves (and, with ``track``,
the same scalars to W&B or MLflow, :mod:`mmrl.tracking`); stop early when the validation
loss stops improving; save the best weights atomically.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch as th

from mmrl.agent import resolve_device
from mmrl.checkpoint import check_output_dir, check_output_file
from mmrl.commands.pretrain import PretrainOptions
from mmrl.config import ConfigError, to_dict
from mmrl.data.dataset import DatasetError, OfflineData
from mmrl.pretrain.checkpoint import build_policy, head_config, save_encoder_checkpoint
from mmrl.pretrain.objectives import (
    LabelSpec,
    PretrainModel,
    infer_label_specs,
    parse_objectives,
    random_shift,
    shift_pad,
)
from mmrl.pretrain.resolve import resolve_pretrain_config
from mmrl.progress import ProgressLines

if TYPE_CHECKING:
    from mmrl.config import RunConfig
    from mmrl.tracking import Tracker, Tracking

AUGMENTATIONS = ("none", "shift")


@dataclasses.dataclass
class PretrainResult:
    """Outcome of :func:`pretrain`.

    Attributes:
        out: Checkpoint written.
        log_dir: TensorBoard folder.
        epochs: Epochs run.
        updates: Gradient updates.
        best_epoch: Epoch whose weights were saved (1-based).
        best_loss: Its monitored loss (validation if any, else training; see ``monitor``).
        stopped_early: Whether early stopping ended training.
        samples_per_second: Training throughput (forward + backward + step), validation excluded.
        train_seconds: Wall time of the training updates.
        val_metrics: Validation losses and metrics of the saved weights.
        train_size: Training transitions.
        val_size: Validation transitions.
    """

    out: Path
    log_dir: Path | None
    epochs: int
    updates: int
    best_epoch: int
    best_loss: float
    stopped_early: bool
    samples_per_second: float
    train_seconds: float
    val_metrics: dict[str, float]
    train_size: int
    val_size: int


class _Averager:
    """Running sums of losses/metrics weighted by batch size."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, float] = defaultdict(float)

    def add(self, values: Mapping[str, float], weight: float) -> None:
        for key, value in values.items():
            self.sums[key] += float(value) * weight
            self.counts[key] += weight

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts[k]}


class Pretrainer:
    """Holds data, model and optimizer; :meth:`step` is one update, :meth:`evaluate` one pass.

    Args:
        data: Offline data.
        model: The :class:`PretrainModel`.
        train_rows: Training row ids.
        val_rows: Validation row ids.
        batch_size: Minibatch size.
        lr: Adam learning rate.
        weights: Objective -> loss weight (default 1).
        augment: ``"none"`` or ``"shift"`` (DrQ random shift on image keys, training only).
        device: Torch device of the model.
        seed: Seed of batch order, masks and augmentation.
        max_grad_norm: Gradient clipping (SB3's PPO default 0.5 is for RL; 1.0 here).
    """

    def __init__(
        self,
        data: OfflineData,
        model: PretrainModel,
        train_rows: th.Tensor,
        val_rows: th.Tensor,
        *,
        batch_size: int = 256,
        lr: float = 3e-4,
        weights: Mapping[str, float] | None = None,
        augment: str = "none",
        device: th.device | str = "cpu",
        seed: int = 0,
        max_grad_norm: float = 1.0,
    ) -> None:
        self.data = data
        self.model = model
        self.train_rows = train_rows
        self.val_rows = val_rows
        self.batch_size = batch_size
        self.weights = {o: float((weights or {}).get(o, 1.0)) for o in model.objectives}
        self.augment = augment
        self.device = th.device(device)
        self.max_grad_norm = max_grad_norm
        self.optimizer = th.optim.Adam(model.parameters(), lr=lr)
        self.generator = th.Generator().manual_seed(seed)
        self.image_keys = [
            k for k, v in data.observations.items() if v.dim() == 4 and v.dtype == th.uint8
        ]

    def _batch(self, rows: th.Tensor, train: bool) -> tuple[dict, th.Tensor, dict, th.Tensor]:
        obs = self.data.batch(rows)
        if train and self.augment == "shift":
            for key in self.image_keys:
                obs[key] = random_shift(obs[key], shift_pad(obs[key].shape[-1]), self.generator)
        obs = {k: v.to(self.device, non_blocking=True) for k, v in obs.items()}
        actions = self.data.bc_actions.index_select(0, rows).to(self.device)
        labels = {
            spec.name: self.data.labels[spec.name].index_select(0, rows).to(self.device)
            for spec in self.model.label_specs
        }
        episode = self.data.episode.index_select(0, rows)
        starts = th.ones(len(rows), dtype=th.bool)
        starts[1:] = episode[1:] != episode[:-1]
        return obs, actions, labels, starts.to(self.device)

    def total(self, losses: Mapping[str, th.Tensor]) -> th.Tensor:
        """Weighted sum of the objectives' losses."""
        return sum(self.weights[k] * v for k, v in losses.items())  # type: ignore[return-value]

    def epoch_batches(self) -> list[th.Tensor]:
        """Shuffled training row ids, split into minibatches (the last partial one dropped
        when there are full ones, so contrastive batches keep their size). A recurrent
        policy gets whole episodes in shuffled order instead, each in time order, about
        ``batch_size`` rows per batch (:meth:`episode_batches`)."""
        if self.model.recurrent:
            return self.episode_batches(self.train_rows, self.generator)
        perm = self.train_rows[th.randperm(len(self.train_rows), generator=self.generator)]
        batches = list(perm.split(self.batch_size))
        if len(batches) > 1 and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def episode_batches(
        self, rows: th.Tensor, generator: th.Generator | None = None
    ) -> list[th.Tensor]:
        """``rows`` as batches of whole episodes, each in time order: episodes are added to a
        batch until it holds at least ``batch_size`` rows (a longer episode is a batch of its
        own). ``generator``: shuffle the episodes' order; ``None``: keep it."""
        rows = rows.sort().values
        _, counts = th.unique_consecutive(self.data.episode[rows], return_counts=True)
        episodes = list(rows.split(counts.tolist()))
        if generator is not None:
            episodes = [episodes[i] for i in th.randperm(len(episodes), generator=generator)]
        batches, current, size = [], [], 0
        for episode in episodes:
            current.append(episode)
            size += len(episode)
            if size >= self.batch_size:
                batches.append(th.cat(current))
                current, size = [], 0
        if current:
            batches.append(th.cat(current))
        return batches

    def _diverged(self, what: str) -> ConfigError:
        lr = self.optimizer.param_groups[0]["lr"]
        return ConfigError(
            f"pretraining diverged: {what}; lower --lr (now {lr:g}) or the --weight values"
        )

    def step(self, rows: th.Tensor) -> dict[str, float]:
        """One gradient update on ``rows``; returns losses and metrics as floats."""
        self.model.train()
        obs, actions, labels, starts = self._batch(rows, train=True)
        try:
            losses, metrics = self.model.losses(obs, actions, labels, self.generator, starts)
        except ValueError as err:
            # torch.distributions refuses NaN logits ("... found invalid values").
            if "invalid values" not in str(err):
                raise
            raise self._diverged("the policy's outputs became NaN") from None
        loss = self.total(losses)
        if not bool(th.isfinite(loss)):
            # Adam would spread the NaN into every weight: stop with what to change.
            shown = ", ".join(f"{k} {float(v.detach()):.3g}" for k, v in losses.items())
            raise self._diverged(f"the loss became {float(loss.detach())} ({shown})")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        th.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.optimizer.step()
        out = {f"loss/{k}": float(v.detach()) for k, v in losses.items()}
        out["loss/total"] = float(loss.detach())
        out.update(metrics)
        return out

    @th.no_grad()
    def evaluate(self, rows: th.Tensor, seed: int = 12345) -> dict[str, float]:
        """Mean losses and metrics over ``rows`` (eval mode, fixed masks for comparability)."""
        self.model.eval()
        generator = th.Generator().manual_seed(seed)
        avg = _Averager()
        chunks = self.episode_batches(rows) if self.model.recurrent else rows.split(self.batch_size)
        for chunk in chunks:
            obs, actions, labels, starts = self._batch(chunk, train=False)
            losses, metrics = self.model.losses(obs, actions, labels, generator, starts)
            values = {f"loss/{k}": float(v) for k, v in losses.items()}
            values["loss/total"] = float(self.total(losses))
            values.update(metrics)
            avg.add(values, len(chunk))
        return avg.means()


def pretrain(
    dataset_id: str | Sequence[str],
    agent: str = PretrainOptions.agent,
    *,
    env: str | None = None,
    objectives: str | Sequence[str] = PretrainOptions.objectives,
    labels: str | Sequence[str] | None = PretrainOptions.labels,
    epochs: int = PretrainOptions.epochs,
    batch_size: int = PretrainOptions.batch_size,
    lr: float = PretrainOptions.lr,
    device: str = PretrainOptions.device,
    augment: str = PretrainOptions.augment,
    val_fraction: float = PretrainOptions.val_fraction,
    patience: int = PretrainOptions.patience,
    monitor: str = PretrainOptions.monitor,
    seed: int = PretrainOptions.seed,
    out: str | Path = PretrainOptions.out,
    force: bool = False,
    overrides: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
    mask_ratio: float = 0.25,
    log_dir: str | Path | None = None,
    max_episodes: int | None = None,
    max_updates: int | None = None,
    progress: bool = False,
    verbose: int = 1,
    log_interval: float | None = None,
    track: str | Tracking | None = None,
) -> PretrainResult:
    """Pretrains the recipe's extractor (and BC head) on a Minari dataset.

    Args:
        dataset_id: Minari id written by ``mmrl collect``, or several (comma-separated or a
            list) trained on as one, e.g. expert data plus relabelled states of a learner
            (``mmrl collect --policy enc.pt --expert-labels``: DAgger's aggregation).
        agent: Agent recipe name or YAML path (the architecture trained; the same default
            as :func:`mmrl.train.train`, so ``train --init-from`` takes it with defaults).
        env: Env preset (default: the one recorded in the dataset's metadata).
        objectives: Comma-separated or list, from ``bc``, ``labels``, ``contrastive``,
            ``masked``.
        labels: The ``info["labels"]`` keys the ``labels`` objective fits (comma-separated
            or a list; ``None``: every non-constant label). Why choose: the objective
            averages its labels' losses, so one hard label among fifteen (where the
            instruction's car is, ``target_lane_offset``) gets a fifteenth of the gradient.
        epochs: Maximum passes over the training split (early stopping usually ends sooner).
        batch_size: Minibatch size.
        lr: Adam learning rate. 1e-3: SB3's action head starts at gain 0.01, so the gradient
            reaching the encoders is small at first; at 3e-4 BC on Navigation-v0 stayed at the
            majority-class accuracy for 15 epochs, at 1e-3 it reached 0.76 in 33.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        augment: ``none`` or ``shift`` (DrQ random shift of images).
        val_fraction: Fraction of episodes held out for validation / early stopping.
        patience: Epochs without validation improvement before stopping.
        monitor: Loss that early stopping and the kept weights follow: ``total`` (the
            weighted sum) or one objective, e.g. ``bc`` when the checkpoint is meant to
            start a policy: the contrastive loss dominates the total and can keep falling
            while behaviour cloning already overfits.
        seed: Seed of initialization, split, batches, masks and augmentation.
        out: Checkpoint path (written atomically).
        force: Overwrite ``out`` if it exists (refused otherwise, as ``train`` and
            ``collect`` refuse to overwrite a run or a dataset).
        overrides: ``dotted.key=value`` run-config overrides, as for ``mmrl train`` (the
            pretrained architecture must match the one trained later).
        weights: Objective -> loss weight (default 1 each).
        mask_ratio: Fraction of rows with one modality masked (``masked``).
        log_dir: TensorBoard folder (default ``<out stem>_tb`` next to ``out``).
        max_episodes: Use only the first episodes of each dataset.
        max_updates: Stop after this many updates (a budget; ``None``: epochs decide).
        progress: tqdm bar over updates.
        verbose: 0 silent, 1 one line per epoch.
        log_interval: Print a progress line (epoch, batches, samples/s, ETA, the epoch's
            losses so far) every ``log_interval`` seconds, for logs that are not a terminal
            (:mod:`mmrl.progress`); ``None``: no lines.
        track: ``wandb``, ``mlflow`` or a :class:`mmrl.tracking.Tracking`: also send the
            options and architecture, the TensorBoard scalars (at the same update counts),
            the kept epoch's metrics (``final/*``) and the checkpoint (artifact
            ``encoder``) to that service; its local files go to ``log_dir``. ``None``:
            TensorBoard only.

    Returns:
        A :class:`PretrainResult`.

    Raises:
        DatasetError: Missing/empty/corrupt dataset, or spaces that differ from the
            environment or recipe.
        ConfigError: Bad arguments.
        MissingDependencyError: ``track`` names a library that is not installed.
        UsageError: The tracking service refused the run.
    """
    from mmrl.data.dataset import load_offline_datasets
    from mmrl.tracking import finishing, tracking_service

    names = _check_arguments(
        objectives, epochs, batch_size, lr, augment, val_fraction, patience, mask_ratio,
        max_updates, monitor, out, log_dir, force, weights,
    )  # fmt: skip
    chosen_labels = _label_names(labels, names)
    torch_device = resolve_device(device)
    track = tracking_service(track)  # a missing library fails before the data is read
    data = load_offline_datasets(dataset_id, max_episodes=max_episodes)
    dataset_id = data.dataset_id  # the ids joined by commas
    config = resolve_pretrain_config(data, agent, env, overrides)
    train_rows, val_rows = _split(data, val_fraction, seed, batch_size)
    specs = _label_specs(data, names, train_rows, chosen_labels)
    model = _pretrain_model(data, config, names, specs, mask_ratio, seed, torch_device)
    trainer = Pretrainer(
        data, model, train_rows, val_rows, batch_size=batch_size, lr=lr, weights=weights,
        augment=augment, device=torch_device, seed=seed,
    )  # fmt: skip
    out = Path(out)
    log_dir = Path(log_dir) if log_dir is not None else out.parent / f"{out.stem}_tb"
    tracker = None
    if track is not None:
        options = {"dataset_id": dataset_id, "objectives": names, "weights": trainer.weights,
                   "epochs": epochs, "batch_size": batch_size, "lr": lr, "augment": augment,
                   "val_fraction": val_fraction, "patience": patience, "monitor": monitor,
                   "mask_ratio": mask_ratio, "max_updates": max_updates,
                   "max_episodes": max_episodes, "seed": seed, "out": str(out)}  # fmt: skip
        tracker = _start_tracking(track, log_dir, out, config, options)
    with finishing(tracker):  # a failure below marks the tracked run failed
        fit = _fit(
            trainer, log_dir, f"dataset {dataset_id}, agent {agent}, objectives {names}",
            epochs=epochs, patience=patience, monitor=monitor, max_updates=max_updates,
            progress=progress, verbose=verbose, log_interval=log_interval, tracker=tracker,
        )  # fmt: skip
        assert fit.best_state is not None
        model.load_state_dict(fit.best_state)
        info = {
            "objectives": names,
            "weights": trainer.weights,
            "agent": config.agent_name,
            "env": config.env_name,
            "env_id": config.env.env_id,
            "dataset_id": dataset_id,
            "dataset_episodes": data.num_episodes,
            "train_size": len(train_rows),
            "val_size": len(val_rows),
            "augment": augment,
            "monitor": monitor,
            "epochs": fit.epoch,
            "best_epoch": fit.best_epoch,
            "updates": fit.updates,
            "metrics": fit.best_metrics,
            "label_specs": [dataclasses.asdict(s) for s in specs],
            "overrides": list(overrides or []),
            "seed": seed,
        }
        _save_checkpoint(out, model, config, data, "bc" in names, info)
        if tracker is not None:
            final = {"final/best_epoch": float(fit.best_epoch)}
            final.update({f"final/{k}": v for k, v in fit.best_metrics.items()})
            tracker.log_scalars(final, fit.updates)
            tracker.log_files([out], name="encoder")
    return PretrainResult(
        out=out,
        log_dir=log_dir,
        epochs=fit.epoch,
        updates=fit.updates,
        best_epoch=fit.best_epoch,
        best_loss=float(fit.best_loss),
        stopped_early=fit.stopped_early,
        samples_per_second=fit.samples / max(fit.train_seconds, 1e-9),
        train_seconds=fit.train_seconds,
        val_metrics=dict(fit.best_metrics),
        train_size=len(train_rows),
        val_size=len(val_rows),
    )


# ---------------------------------------------------------------------------- its steps
def _check_arguments(
    objectives: str | Sequence[str],
    epochs: int,
    batch_size: int,
    lr: float,
    augment: str,
    val_fraction: float,
    patience: int,
    mask_ratio: float,
    max_updates: int | None,
    monitor: str,
    out: str | Path,
    log_dir: str | Path | None,
    force: bool,
    weights: Mapping[str, float] | None,
) -> list[str]:
    """Refuses bad arguments and outputs before any data is read; returns the objectives."""
    try:
        names = parse_objectives(objectives)
    except ValueError as err:
        raise ConfigError(f"--objectives: {err}") from None
    checks = [
        (epochs >= 1, f"--epochs must be >= 1, got {epochs}"),
        (batch_size >= 2, f"--batch-size must be >= 2, got {batch_size}"),
        (0 < lr <= 1, f"--lr must be in (0, 1], got {lr}"),  # NaN and inf fail too
        (augment in AUGMENTATIONS, f"--augment must be one of {AUGMENTATIONS}, got {augment!r}"),
        (0 <= val_fraction < 1, f"--val-fraction must be in [0, 1), got {val_fraction}"),
        (patience >= 1, f"--patience must be >= 1, got {patience}"),
        (0 < mask_ratio < 1, f"mask_ratio must be in (0, 1), got {mask_ratio}"),
        (max_updates is None or max_updates >= 1, "--max-updates must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if monitor not in ("total", *names):
        raise ConfigError(
            f"--monitor must be 'total' or a trained objective {names}, got {monitor!r}"
        )
    check_output_file(out, field="out")  # a folder or a read-only place: before training
    if log_dir is not None:
        check_output_dir(log_dir, field="tb")
    if Path(out).exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite it", field="out")
    bad_weights = {k: w for k, w in (weights or {}).items() if not (math.isfinite(w) and w >= 0)}
    if bad_weights:
        raise ConfigError(f"--weight values must be finite numbers >= 0, got {bad_weights}")
    unknown = sorted(set(weights or {}) - set(names))
    if unknown:
        raise ConfigError(f"--weight names objectives not trained: {unknown}; objectives: {names}")
    return names


def _split(
    data: OfflineData, val_fraction: float, seed: int, batch_size: int
) -> tuple[th.Tensor, th.Tensor]:
    """Training and validation row ids (whole episodes each); at least one training batch."""
    train_rows, val_rows = data.split(val_fraction, seed)
    if len(train_rows) < batch_size:
        raise DatasetError(
            f"dataset {data.dataset_id!r}: {len(train_rows)} training transitions, fewer than "
            f"one batch ({batch_size}); collect more episodes or lower --batch-size"
        )
    return train_rows, val_rows


def _label_names(labels: str | Sequence[str] | None, objectives: list[str]) -> list[str]:
    """The ``labels`` argument as a list (empty: all); refused without the objective."""
    if labels is None:
        return []
    chosen = labels.split(",") if isinstance(labels, str) else list(labels)
    chosen = [name.strip() for name in chosen if name.strip()]
    if not chosen:
        raise ConfigError("--labels is empty; name info['labels'] keys or leave it out (all)")
    if "labels" not in objectives:
        raise ConfigError(
            f"--labels {','.join(chosen)} needs the 'labels' objective; objectives: {objectives}"
        )
    return list(dict.fromkeys(chosen))


def _label_specs(
    data: OfflineData, names: list[str], train_rows: th.Tensor, chosen: Sequence[str] = ()
) -> list[LabelSpec]:
    """The privileged labels the ``labels`` objective predicts (none without it); ``chosen``:
    only these (empty: all)."""
    if "labels" not in names:
        return []
    if not data.labels:
        raise DatasetError(f"dataset {data.dataset_id!r} has no info['labels']; drop 'labels'")
    unknown = [name for name in chosen if name not in data.labels]
    if unknown:
        raise ConfigError(
            f"--labels {unknown} not in dataset {data.dataset_id!r}; its labels: "
            f"{sorted(data.labels)}"
        )
    picked = {k: v for k, v in data.labels.items() if not chosen or k in chosen}
    specs = infer_label_specs(picked, train_rows)
    if chosen and not specs:
        raise DatasetError(
            f"--labels {list(chosen)}: constant in dataset {data.dataset_id!r}'s training "
            "split, nothing to fit"
        )
    return specs


def _pretrain_model(
    data: OfflineData,
    config: RunConfig,
    names: list[str],
    specs: list[LabelSpec],
    mask_ratio: float,
    seed: int,
    device: th.device,
) -> PretrainModel:
    """The recipe's SB3 policy, built exactly as PPO would, with the objectives' heads."""
    th.manual_seed(seed)
    policy = build_policy(data.observation_space, data.action_space, config)
    try:
        return PretrainModel(policy, names, specs, mask_ratio=mask_ratio).to(device)
    except ValueError as err:
        raise ConfigError(f"--objectives: {err}") from None


@dataclasses.dataclass
class _Fit:
    """The epoch loop's record: counts, time, and the best weights so far."""

    epoch: int = 0
    updates: int = 0
    samples: int = 0
    train_seconds: float = 0.0
    best_loss: float = math.inf
    best_epoch: int = 0
    best_state: dict[str, th.Tensor] | None = None
    best_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    stale: int = 0
    stopped_early: bool = False
    avg: _Averager = dataclasses.field(default_factory=_Averager)  # the epoch's batches


def _fit(
    trainer: Pretrainer,
    log_dir: Path,
    description: str,
    *,
    epochs: int,
    patience: int,
    monitor: str,
    max_updates: int | None,
    progress: bool,
    verbose: int,
    log_interval: float | None,
    tracker: Tracker | None = None,
) -> _Fit:
    """Trains epoch after epoch until ``patience`` epochs bring no improvement of the
    monitored loss, ``epochs`` or ``max_updates`` run out; logs to TensorBoard in ``log_dir``
    (and the same scalars to ``tracker``)."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    writer = SummaryWriter(str(log_dir))
    writer.add_text("pretrain/config", description)

    def log(values: Mapping[str, float], step: int) -> None:
        """Scalars to TensorBoard and, when tracked, the same tags to the tracked run."""
        for key, value in values.items():
            writer.add_scalar(key, value, step)
        if tracker is not None:
            tracker.log_scalars(values, step)

    has_val = len(trainer.val_rows) > 0
    fit = _Fit()
    batches_per_epoch = len(trainer.epoch_batches())
    total_updates = min(epochs * batches_per_epoch, max_updates or math.inf)
    bar = tqdm(total=int(total_updates), unit="upd", disable=not progress, desc="pretrain")
    # Early stopping may end sooner than the epochs' batches: the ETA is an upper bound.
    lines = None
    if log_interval is not None:
        lines = ProgressLines(total_updates, "batches", log_interval, "[pretrain]", bound=True)
        lines.say(
            f"{len(trainer.train_rows):,} training transitions, {len(trainer.val_rows):,} "
            f"validation; up to {epochs} epochs of {batches_per_epoch:,} batches of "
            f"{trainer.batch_size}"
        )
    try:
        for epoch in range(1, epochs + 1):
            fit.epoch = epoch
            _train_epoch(trainer, fit, log, bar, lines, epochs, max_updates)
            train_metrics = fit.avg.means()
            val_metrics = trainer.evaluate(trainer.val_rows) if has_val else {}
            scalars = {f"pretrain/val/{k}": v for k, v in val_metrics.items()}
            scalars["pretrain/samples_per_second"] = fit.samples / fit.train_seconds
            log(scalars, fit.updates)
            monitored = (val_metrics if has_val else train_metrics)[f"loss/{monitor}"]
            improved = _keep_if_best(fit, trainer.model, monitored, val_metrics or train_metrics)
            if verbose:
                _print_epoch(fit, val_metrics or train_metrics, has_val, improved)
            if fit.stale >= patience:
                fit.stopped_early = True
                break
            if max_updates is not None and fit.updates >= max_updates:
                break
    finally:
        bar.close()
        if lines is not None:
            lines.say(_progress_line(lines, fit.epoch, epochs, fit.updates, fit.samples, fit.avg))
        writer.flush()
        writer.close()
    return fit


def _train_epoch(
    trainer: Pretrainer,
    fit: _Fit,
    log: Callable[[Mapping[str, float], int], None],
    bar: Any,
    lines: ProgressLines | None,
    epochs: int,
    max_updates: int | None,
) -> None:
    """One pass over the shuffled training batches (fewer when ``max_updates`` is reached)."""
    fit.avg = _Averager()
    for rows in trainer.epoch_batches():
        t0 = time.perf_counter()
        values = trainer.step(rows)
        fit.train_seconds += time.perf_counter() - t0
        fit.samples += len(rows)
        fit.updates += 1
        fit.avg.add(values, len(rows))
        if fit.updates % 20 == 0:
            log({f"pretrain/train/{k}": v for k, v in values.items()}, fit.updates)
        bar.update(1)
        if lines is not None and lines.due():
            lines.say(_progress_line(lines, fit.epoch, epochs, fit.updates, fit.samples, fit.avg))
        if max_updates is not None and fit.updates >= max_updates:
            break


def _keep_if_best(
    fit: _Fit, model: PretrainModel, monitored: float, metrics: dict[str, float]
) -> bool:
    """Keeps a copy of the weights when the monitored loss improved (by more than a 1e-4
    fraction); returns whether it did."""
    best = fit.best_loss
    improved = not math.isfinite(best) or monitored < best - 1e-4 * abs(best)
    if improved:
        fit.best_loss, fit.best_epoch = monitored, fit.epoch
        fit.best_state = copy.deepcopy(model.state_dict())
        fit.best_metrics = metrics
        fit.stale = 0
    else:
        fit.stale += 1
    return improved


def _print_epoch(fit: _Fit, metrics: dict[str, float], has_val: bool, improved: bool) -> None:
    shown = ", ".join(
        f"{k.removeprefix('loss/')} {v:.3f}"
        for k, v in metrics.items()
        if k.startswith("loss/") or k in ("bc_accuracy", "contrastive_top1")
    )
    print(
        f"epoch {fit.epoch}: {'val' if has_val else 'train'} {shown}"
        f"{'' if improved else ' (no improvement)'}"
        f" [{fit.samples / max(fit.train_seconds, 1e-9):.0f} samples/s]"
    )


def _start_tracking(
    track: Tracking, log_dir: Path, out: Path, config: RunConfig, options: Mapping[str, Any]
) -> Tracker:
    """The tracked run of a pretraining, named after the checkpoint, its local files in
    ``log_dir``. Its config: the architecture trained (env and agent of the resolved run
    config; the training-run fields do not apply) and the options under ``pretrain``."""
    from mmrl.tracking import start_tracker

    resolved = to_dict(config)
    tracked = {key: resolved[key] for key in ("env_name", "agent_name", "env", "agent")}
    return start_tracker(
        track, log_dir, out.stem, {**tracked, "pretrain": dict(options)},
        tags={"mmrl.checkpoint": str(out.resolve())},
    )  # fmt: skip


def _save_checkpoint(
    out: Path,
    model: PretrainModel,
    config: RunConfig,
    data: OfflineData,
    with_head: bool,
    info: dict[str, Any],
) -> None:
    """The encoder checkpoint: extractor, BC head (``with_head``), auxiliary heads, ``info``."""
    aux = {
        k: v for k, v in model.state_dict().items() if not k.startswith(("policy.", "extractor."))
    }
    save_encoder_checkpoint(
        out,
        extractor=model.extractor,
        head=model.head_state() if with_head else {},  # an untrained head is no BC head
        head_layout=head_config(config),
        action_space=data.action_space,
        aux_heads=aux,
        info=info,
    )


def _progress_line(
    lines: ProgressLines, epoch: int, epochs: int, updates: int, samples: int, avg: _Averager
) -> str:
    """``"epoch 3/30  1,200/12,000 batches (10%)  5,120 samples/s  ETA ≤1m10s  loss total
    0.531, bc 0.210"``: the running epoch's mean losses so far (training batches)."""
    losses = {k.removeprefix("loss/"): v for k, v in avg.means().items() if k.startswith("loss/")}
    shown = ", ".join(f"{k} {v:.3f}" for k, v in losses.items())
    return (
        f"epoch {epoch}/{epochs}  {lines.count(updates)}  {lines.rate(samples, 'samples')}  "
        f"{lines.eta(updates)}" + (f"  loss {shown}" if shown else "")
    )


def summarize_metrics(metrics: Mapping[str, float]) -> str:
    """One line of the headline metrics."""
    keys = [k for k in metrics if k.startswith("loss/")] + [
        k for k in ("bc_accuracy", "bc_mse", "contrastive_top1") if k in metrics
    ]
    return ", ".join(f"{k.removeprefix('loss/')} {metrics[k]:.3f}" for k in keys)


__all__ = ["AUGMENTATIONS", "PretrainResult", "Pretrainer", "pretrain", "summarize_metrics"]
