"""``mmrl pretrain``: train a recipe's extractor on a Minari dataset, write an encoder checkpoint.

Top to bottom: load the dataset into contiguous tensors; resolve the agent recipe for the
dataset's environment and refuse mismatched spaces before any training; build the SB3 policy
exactly as PPO would (so weights transfer one to one); split episodes into train/validation;
train the multi-task objectives with Adam, logging TensorBoard curves; stop early when the
validation loss stops improving; save the best weights atomically.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch as th

from mmrl.agent import resolve_device
from mmrl.checkpoint import check_output_dir, check_output_file
from mmrl.commands.pretrain import PretrainOptions
from mmrl.config import ConfigError
from mmrl.data.dataset import DatasetError, OfflineData
from mmrl.pretrain.checkpoint import build_policy, head_config, save_encoder_checkpoint
from mmrl.pretrain.objectives import (
    PretrainModel,
    infer_label_specs,
    parse_objectives,
    random_shift,
    shift_pad,
)
from mmrl.pretrain.resolve import resolve_pretrain_config
from mmrl.progress import ProgressLines

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

    def _batch(self, rows: th.Tensor, train: bool) -> tuple[dict, th.Tensor, dict]:
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
        return obs, actions, labels

    def total(self, losses: Mapping[str, th.Tensor]) -> th.Tensor:
        """Weighted sum of the objectives' losses."""
        return sum(self.weights[k] * v for k, v in losses.items())  # type: ignore[return-value]

    def epoch_batches(self) -> list[th.Tensor]:
        """Shuffled training row ids, split into minibatches (the last partial one dropped
        when there are full ones, so contrastive batches keep their size)."""
        perm = self.train_rows[th.randperm(len(self.train_rows), generator=self.generator)]
        batches = list(perm.split(self.batch_size))
        if len(batches) > 1 and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def _diverged(self, what: str) -> ConfigError:
        lr = self.optimizer.param_groups[0]["lr"]
        return ConfigError(
            f"pretraining diverged: {what}; lower --lr (now {lr:g}) or the --weight values"
        )

    def step(self, rows: th.Tensor) -> dict[str, float]:
        """One gradient update on ``rows``; returns losses and metrics as floats."""
        self.model.train()
        obs, actions, labels = self._batch(rows, train=True)
        try:
            losses, metrics = self.model.losses(obs, actions, labels, self.generator)
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
        for chunk in rows.split(self.batch_size):
            obs, actions, labels = self._batch(chunk, train=False)
            losses, metrics = self.model.losses(obs, actions, labels, generator)
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

    Returns:
        A :class:`PretrainResult`.

    Raises:
        DatasetError: Missing/empty/corrupt dataset, or spaces that differ from the
            environment or recipe.
        ConfigError: Bad arguments.
    """
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from mmrl.data.dataset import load_offline_datasets

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
    torch_device = resolve_device(device)

    data = load_offline_datasets(dataset_id, max_episodes=max_episodes)
    dataset_id = data.dataset_id  # the ids joined by commas
    config = resolve_pretrain_config(data, agent, env, overrides)
    train_rows, val_rows = data.split(val_fraction, seed)
    if len(train_rows) < batch_size:
        raise DatasetError(
            f"dataset {dataset_id!r}: {len(train_rows)} training transitions, fewer than one "
            f"batch ({batch_size}); collect more episodes or lower --batch-size"
        )
    specs = []
    if "labels" in names:
        if not data.labels:
            raise DatasetError(f"dataset {dataset_id!r} has no info['labels']; drop 'labels'")
        specs = infer_label_specs(data.labels, train_rows)

    th.manual_seed(seed)
    policy = build_policy(data.observation_space, data.action_space, config)
    try:
        model = PretrainModel(policy, names, specs, mask_ratio=mask_ratio).to(torch_device)
    except ValueError as err:
        raise ConfigError(f"--objectives: {err}") from None
    trainer = Pretrainer(
        data, model, train_rows, val_rows, batch_size=batch_size, lr=lr, weights=weights,
        augment=augment, device=torch_device, seed=seed,
    )  # fmt: skip

    out = Path(out)
    log_dir = Path(log_dir) if log_dir is not None else out.parent / f"{out.stem}_tb"
    writer = SummaryWriter(str(log_dir))
    writer.add_text("pretrain/config", f"dataset {dataset_id}, agent {agent}, objectives {names}")
    has_val = len(val_rows) > 0
    best_loss, best_epoch, best_state, best_metrics = math.inf, 0, None, {}
    stale = updates = 0
    stopped_early = False
    train_seconds = 0.0
    samples = 0
    history = []
    batches_per_epoch = len(trainer.epoch_batches())
    total_updates = min(epochs * batches_per_epoch, max_updates or math.inf)
    bar = tqdm(total=int(total_updates), unit="upd", disable=not progress, desc="pretrain")
    # Early stopping may end sooner than the epochs' batches: the ETA is an upper bound.
    lines = None
    if log_interval is not None:
        lines = ProgressLines(total_updates, "batches", log_interval, "[pretrain]", bound=True)
        lines.say(
            f"{len(train_rows):,} training transitions, {len(val_rows):,} validation; up to "
            f"{epochs} epochs of {batches_per_epoch:,} batches of {batch_size}"
        )
    epoch = 0
    avg = _Averager()
    try:
        for epoch in range(1, epochs + 1):
            avg = _Averager()
            for rows in trainer.epoch_batches():
                t0 = time.perf_counter()
                values = trainer.step(rows)
                train_seconds += time.perf_counter() - t0
                samples += len(rows)
                updates += 1
                avg.add(values, len(rows))
                if updates % 20 == 0:
                    for key, value in values.items():
                        writer.add_scalar(f"pretrain/train/{key}", value, updates)
                bar.update(1)
                if lines is not None and lines.due():
                    lines.say(_progress_line(lines, epoch, epochs, updates, samples, avg))
                if max_updates is not None and updates >= max_updates:
                    break
            train_metrics = avg.means()
            val_metrics = trainer.evaluate(val_rows) if has_val else {}
            for key, value in val_metrics.items():
                writer.add_scalar(f"pretrain/val/{key}", value, updates)
            writer.add_scalar("pretrain/samples_per_second", samples / train_seconds, updates)
            monitored = (val_metrics if has_val else train_metrics)[f"loss/{monitor}"]
            history.append({"epoch": epoch, "train": train_metrics, "val": val_metrics})
            improved = not math.isfinite(best_loss) or monitored < best_loss - 1e-4 * abs(best_loss)
            if improved:
                best_loss, best_epoch = monitored, epoch
                best_state = copy.deepcopy(model.state_dict())
                best_metrics = val_metrics or train_metrics
                stale = 0
            else:
                stale += 1
            if verbose:
                shown = ", ".join(
                    f"{k.removeprefix('loss/')} {v:.3f}"
                    for k, v in (val_metrics or train_metrics).items()
                    if k.startswith("loss/") or k in ("bc_accuracy", "contrastive_top1")
                )
                print(
                    f"epoch {epoch}: {'val' if has_val else 'train'} {shown}"
                    f"{'' if improved else ' (no improvement)'}"
                    f" [{samples / max(train_seconds, 1e-9):.0f} samples/s]"
                )
            if stale >= patience:
                stopped_early = True
                break
            if max_updates is not None and updates >= max_updates:
                break
    finally:
        bar.close()
        if lines is not None:
            lines.say(_progress_line(lines, epoch, epochs, updates, samples, avg))
        writer.flush()
        writer.close()

    assert best_state is not None
    model.load_state_dict(best_state)
    aux = {
        k: v for k, v in model.state_dict().items() if not k.startswith(("policy.", "extractor."))
    }
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
        "epochs": epoch,
        "best_epoch": best_epoch,
        "updates": updates,
        "metrics": best_metrics,
        "label_specs": [dataclasses.asdict(s) for s in specs],
        "overrides": list(overrides or []),
        "seed": seed,
    }
    save_encoder_checkpoint(
        out,
        extractor=model.extractor,
        head=model.head_state() if "bc" in names else {},  # an untrained head is no BC head
        head_layout=head_config(config),
        action_space=data.action_space,
        aux_heads=aux,
        info=info,
    )
    return PretrainResult(
        out=out,
        log_dir=log_dir,
        epochs=epoch,
        updates=updates,
        best_epoch=best_epoch,
        best_loss=float(best_loss),
        stopped_early=stopped_early,
        samples_per_second=samples / max(train_seconds, 1e-9),
        train_seconds=train_seconds,
        val_metrics=dict(best_metrics),
        train_size=len(train_rows),
        val_size=len(val_rows),
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
