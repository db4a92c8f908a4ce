"""Pretraining objectives for a :class:`~mmrl.extractor.MultimodalExtractor` on offline data.

The model wraps an SB3 ``MultiInputActorCriticPolicy`` built exactly as PPO builds it (same
observation/action spaces, same ``policy_kwargs``), so the trained extractor, the policy MLP
(``mlp_extractor.policy_net``) and the ``action_net`` load into PPO unchanged. On top sit the
auxiliary heads, which are discarded after pretraining:

* ``bc`` — behaviour cloning through the policy's own head: the negative log-likelihood of
  the logged action under SB3's action distribution (categorical cross-entropy for
  ``Discrete``, diagonal-Gaussian NLL with a state-independent ``log_std`` for ``Box``).
* ``labels`` — predict the simulator's privileged labels from the fused features: integer
  labels with few values (lane index, target id) by cross-entropy, the rest by regression on
  standardised targets (auxiliary tasks as in UNREAL, Jaderberg et al. 2017).
* ``contrastive`` — cross-modal InfoNCE (van den Oord et al. 2018) between the per-modality
  embeddings of the same step, symmetric with a learned temperature as in CLIP (Radford et
  al. 2021). Rows whose instruction tokens are identical are not used as each other's
  negatives: many steps share an instruction, and treating them as negatives would push
  apart embeddings that should agree.
* ``masked`` — mask one modality of a sample (the extractor's learned "missing" token/
  embedding) and predict that modality's embedding from the fused features of the others,
  against a stop-gradient target (BYOL/SimSiam-style, Grill et al. 2020; Chen & He 2021),
  with the normalised-MSE loss ``2 - 2 cos``. Each masked row serves only this objective;
  ``bc`` and ``labels`` use the unmasked rows, so one fused forward pass serves all three.

For a ``recurrent-ppo`` recipe the wrapped policy is sb3-contrib's ``MultiInputLstmPolicy``
and ``bc`` and ``labels`` read the actor LSTM's output, as the policy head does when it acts:
batches are whole episodes in time order, each run through the LSTM from a zero state
(behaviour cloning with a recurrent policy, robomimic's BC-RNN, Mandlekar et al. 2021), so a
label the current observation no longer shows (the lane of a car passed a few steps ago) is
fitted from memory and the LSTM learns to keep it. ``contrastive`` and ``masked`` stay per
step, on the extractor's output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs
from torch import nn
from torch.nn import functional as F

OBJECTIVES = ("bc", "labels", "contrastive", "masked")

#: Integer labels with at most this many distinct values are classified, not regressed.
MAX_CLASSES = 64


def parse_objectives(text: str | Sequence[str]) -> list[str]:
    """``"bc,labels"`` or a list -> validated, de-duplicated objective names (in order).

    Raises:
        ValueError: Unknown or no objective, naming the allowed ones.
    """
    names = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in dict.fromkeys(names) if n]
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names:
        raise ValueError(
            f"unknown objective(s) {unknown or names}; choose from {', '.join(OBJECTIVES)} "
            "(comma-separated)"
        )
    return names


@dataclasses.dataclass
class LabelSpec:
    """How one privileged label is predicted.

    Attributes:
        name: Label key in ``info["labels"]``.
        kind: ``"class"`` (cross-entropy) or ``"regress"`` (MSE on standardised values).
        num_classes: Classes for ``"class"`` (values ``offset .. offset + num_classes - 1``).
        offset: Smallest class value (e.g. ``-1`` for a "none" id), subtracted before the CE.
        mean: Training-split mean for ``"regress"``.
        std: Training-split standard deviation for ``"regress"``.
    """

    name: str
    kind: str
    num_classes: int = 0
    offset: int = 0
    mean: float = 0.0
    std: float = 1.0

    @property
    def width(self) -> int:
        """Outputs of the label head for this label."""
        return self.num_classes if self.kind == "class" else 1


def infer_label_specs(labels: Mapping[str, th.Tensor], train_rows: th.Tensor) -> list[LabelSpec]:
    """Chooses classification or regression per label from the data (constants are skipped).

    Args:
        labels: Name -> ``(N,)`` tensor over the whole dataset.
        train_rows: Training row ids (statistics come from these only).
    """
    specs = []
    for name, values in labels.items():
        train = values[train_rows]
        if train.numel() == 0:
            continue
        if not values.dtype.is_floating_point:
            lo, hi = int(values.min()), int(values.max())
            if hi - lo < MAX_CLASSES:
                if len(th.unique(train)) > 1:
                    specs.append(LabelSpec(name, "class", num_classes=hi - lo + 1, offset=lo))
                continue
        train = train.double()
        std = float(train.std()) if train.numel() > 1 else 0.0
        if not math.isfinite(std) or std < 1e-8:
            continue
        specs.append(LabelSpec(name, "regress", mean=float(train.mean()), std=std))
    return specs


def label_head(features: int, specs: Sequence[LabelSpec], hidden: int = 256) -> nn.Module:
    """The MLP predicting every label of ``specs`` from ``(B, features)`` fused features:
    ``(B, sum of spec widths)`` outputs, in ``specs`` order."""
    width = sum(spec.width for spec in specs)
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, width))


def label_loss(
    specs: Sequence[LabelSpec], out: th.Tensor, labels: Mapping[str, th.Tensor]
) -> tuple[th.Tensor, dict[str, float]]:
    """Mean over labels of cross-entropy (``class``) or standardised MSE (``regress``).

    Args:
        specs: The labels, in the order of :func:`label_head`'s outputs.
        out: ``(B, sum of spec widths)`` head outputs.
        labels: Name -> ``(B,)`` label values.

    Returns:
        ``(loss, metrics)``: the scalar loss, and ``label_acc/<name>`` (accuracy) or
        ``label_nmse/<name>`` (standardised MSE, i.e. 1 - R^2 against the training mean).
    """
    terms = []
    metrics: dict[str, float] = {}
    start = 0
    for spec in specs:
        pred = out[:, start : start + spec.width]
        start += spec.width
        value = labels[spec.name]
        if spec.kind == "class":
            target = value.long() - spec.offset
            # A value outside the classes (online fitting, whose classes come from the first
            # rollout) is left out rather than failing the whole loss.
            valid = (target >= 0) & (target < spec.num_classes)
            if not bool(valid.any()):
                continue
            target = th.where(valid, target, th.full_like(target, -100))
            terms.append(F.cross_entropy(pred, target, ignore_index=-100))
            hits = (pred.argmax(-1) == target)[valid]
            metrics[f"label_acc/{spec.name}"] = float(hits.float().mean())
        else:
            target = (value.float() - spec.mean) / spec.std
            mse = F.mse_loss(pred.squeeze(-1), target)
            terms.append(mse)
            metrics[f"label_nmse/{spec.name}"] = float(mse.detach())
    if not terms:
        return out.sum() * 0.0, metrics
    return th.stack(terms).mean(), metrics


def random_shift(images: th.Tensor, pad: int, generator: th.Generator | None = None) -> th.Tensor:
    """DrQ random shift (Kostrikov et al. 2020): replicate-pad by ``pad``, crop back at random.

    One gather for the whole batch (integer shifts, as DrQ-v2's ``RandomShiftsAug`` with
    whole-pixel offsets), on any dtype (e.g. ``uint8`` before scaling).

    Args:
        images: ``(B, C, H, W)``.
        pad: Maximum shift in pixels.
        generator: Optional torch generator for reproducible shifts.

    Returns:
        ``(B, C, H, W)``, same dtype.
    """
    if pad <= 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="replicate").to(images.dtype)
    dy = th.randint(0, 2 * pad + 1, (b, 1, 1), generator=generator, device=images.device)
    dx = th.randint(0, 2 * pad + 1, (b, 1, 1), generator=generator, device=images.device)
    rows = th.arange(h, device=images.device).view(1, h, 1) + dy  # (B, H, 1)
    cols = th.arange(w, device=images.device).view(1, 1, w) + dx  # (B, 1, W)
    batch = th.arange(b, device=images.device).view(b, 1, 1)
    # Advanced indices (batch, rows, cols) around a slice put the broadcast dims first:
    # (B, H, W, C) -> back to (B, C, H, W).
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def shift_pad(size: int) -> int:
    """DrQ pads 84-pixel frames by 4; keep the same fraction for other sizes (>= 1 pixel)."""
    return max(1, round(4 * size / 84))


def _token_key(space: spaces.Space) -> bool:
    """Integer 1-D boxes (token ids): identical rows are true duplicates, not negatives."""
    return (
        isinstance(space, spaces.Box)
        and len(space.shape) == 1
        and np.issubdtype(space.dtype, np.integer)
    )


def _index_tree(value: Any, index: th.Tensor) -> Any:
    if isinstance(value, th.Tensor):
        return value[index]
    if isinstance(value, tuple):
        return tuple(_index_tree(v, index) for v in value)
    return value


@contextlib.contextmanager
def shared_encoder_pass(extractor: Any, token_keys: Iterable[str] = ()) -> Iterator[None]:
    """Within the block, each encoder computes its backbone once per input tensor.

    The fused forward pass (fusions call ``Encoder.tokens`` or ``Encoder.forward``) and the
    per-modality embeddings of ``contrastive``/``masked`` (``Encoder.forward``) share the
    encoders' convolutional feature maps (``feature_map``), so all objectives cost about one
    backbone pass instead of three. Token-id keys are also run once per *distinct* row
    (instructions repeat across a batch; the GRU is the costliest encoder on CPU). Outputs
    and gradients are unchanged: the same tensors enter the same graph. Calls with FiLM
    parameters or other extra arguments are never cached.

    Args:
        extractor: A :class:`~mmrl.extractor.MultimodalExtractor`.
        token_keys: Observation keys holding token ids.
    """
    cache: dict[tuple[int, str, int], tuple[th.Tensor, Any]] = {}
    patched: list[tuple[nn.Module, str]] = []

    def memoize(module: nn.Module, name: str, dedup: bool) -> None:
        original = getattr(module, name)

        def wrapper(x: th.Tensor, *args: Any, **kwargs: Any) -> Any:
            if any(v is not None for v in (*args, *kwargs.values())):
                return original(x, *args, **kwargs)
            key = (id(module), name, id(x))
            hit = cache.get(key)
            if hit is not None and hit[0] is x:
                return hit[1]
            if dedup and x.shape[0] > 1:
                unique, inverse = th.unique(x, dim=0, return_inverse=True)
                out = _index_tree(original(unique), inverse)
            else:
                out = original(x)
            cache[key] = (x, out)  # holding x keeps id(x) from being reused meanwhile
            return out

        setattr(module, name, wrapper)
        patched.append((module, name))

    token_keys = set(token_keys)
    for key, encoder in extractor.encoders.items():
        if key in token_keys:
            for name in ("forward", "tokens"):
                memoize(encoder, name, dedup=True)
        elif hasattr(encoder, "feature_map"):
            memoize(encoder, "feature_map", dedup=False)
    try:
        yield
    finally:
        for module, name in patched:
            delattr(module, name)  # the instance attribute; the class method shows again
        cache.clear()


class PretrainModel(nn.Module):
    """An SB3 actor-critic policy plus the auxiliary heads of the chosen objectives.

    Args:
        policy: A ``MultiInputActorCriticPolicy`` built as PPO builds it (``recurrent-ppo``:
            sb3-contrib's ``MultiInputLstmPolicy``, whose ``lstm_actor`` is trained too);
            its ``pi_features_extractor`` is what is pretrained.
        objectives: Subset of :data:`OBJECTIVES`.
        label_specs: Labels for the ``labels`` objective.
        proj_dim: Width of the contrastive projections.
        hidden: Width of the label and masked-prediction heads.
        mask_ratio: Fraction of rows that get one modality masked (``masked`` objective).
    """

    def __init__(
        self,
        policy: Any,
        objectives: Sequence[str],
        label_specs: Sequence[LabelSpec] = (),
        proj_dim: int = 64,
        hidden: int = 256,
        mask_ratio: float = 0.25,
    ) -> None:
        super().__init__()
        self.policy = policy
        self.extractor = policy.pi_features_extractor
        self.objectives = tuple(objectives)
        self.label_specs = list(label_specs)
        self.mask_ratio = float(mask_ratio)
        self.discrete = isinstance(policy.action_space, spaces.Discrete)
        self.modalities = tuple(self.extractor.modalities)
        self.observation_space = policy.observation_space
        self.token_keys = {k for k in self.modalities if _token_key(self.observation_space[k])}
        features = self.extractor.features_dim
        embed = {k: int(enc.embed_dim) for k, enc in self.extractor.encoders.items()}
        # recurrent-ppo: the policy head (and so bc and labels) reads the actor LSTM's output.
        self.lstm: nn.LSTM | None = getattr(policy, "lstm_actor", None)
        head_input = features
        if self.lstm is not None:
            from mmrl.recurrent import memory_width

            head_input = memory_width(self.lstm)
        if "labels" in self.objectives:
            if not self.label_specs:
                raise ValueError("objective 'labels' needs at least one non-constant label")
            self.label_head = label_head(head_input, self.label_specs, hidden)
        if "contrastive" in self.objectives:
            if len(self.modalities) < 2:
                raise ValueError("objective 'contrastive' needs at least two modalities")
            self.projections = nn.ModuleDict({k: nn.Linear(d, proj_dim) for k, d in embed.items()})
            # CLIP's initial temperature 0.07, learned in log space, capped at 100.
            self.logit_scale = nn.Parameter(th.tensor(math.log(1 / 0.07)))
        if "masked" in self.objectives:
            if len(self.modalities) < 2:
                raise ValueError("objective 'masked' needs at least two modalities")
            self.predictors = nn.ModuleDict(
                {
                    k: nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, d))
                    for k, d in embed.items()
                }
            )

    # ------------------------------------------------------------------ pieces
    def preprocess(self, obs: Mapping[str, th.Tensor]) -> dict[str, th.Tensor]:
        """SB3's ``preprocess_obs`` (uint8 images / 255, floats) for the policy's space."""
        return preprocess_obs(dict(obs), self.observation_space)  # type: ignore[return-value]

    def encode(self, pre: Mapping[str, th.Tensor]) -> dict[str, th.Tensor]:
        """Per-modality pooled embeddings ``key -> (B, d)`` (the extractor's ``encode``)."""
        return {key: self.extractor.encoders[key](pre[key]) for key in self.modalities}

    @property
    def recurrent(self) -> bool:
        """Whether the policy has an LSTM (batches must then be whole episodes in order)."""
        return self.lstm is not None

    def memory(self, features: th.Tensor, episode_starts: th.Tensor) -> th.Tensor:
        """The actor LSTM's outputs ``(B, H)`` for rows that are whole sequences in time
        order, each started from a zero state at its row with ``episode_starts`` true.

        Args:
            features: ``(B, F)`` fused features, sequences back to back.
            episode_starts: ``(B,)`` bool, true on each sequence's first row (row 0 always
                starts one).
        """
        assert self.lstm is not None
        starts = episode_starts.to(th.bool).clone()
        starts[0] = True
        sequence = th.cumsum(starts.long(), 0) - 1
        first = th.nonzero(starts).squeeze(1)
        position = th.arange(len(starts), device=features.device) - first[sequence]
        # One padded (time, sequence, feature) batch: the LSTM is unidirectional, so the
        # padding after a short sequence's end never reaches its outputs. Not sb3-contrib's
        # ``_process_sequence``: it needs equal-length sequences, and with episode starts
        # inside one it steps the LSTM a time step at a time in Python.
        padded = features.new_zeros(int(position.max()) + 1, len(first), features.shape[1])
        padded[position, sequence] = features
        out, _ = self.lstm(padded)
        return out[position, sequence]

    def action_distribution(self, latent: th.Tensor):
        """SB3 distribution of the policy head on its input ``(B, F)`` (the fused features;
        for a recurrent policy, the LSTM's output)."""
        latent = self.policy.mlp_extractor.forward_actor(latent)
        return self.policy._get_action_dist_from_latent(latent)

    # ------------------------------------------------------------------ losses
    def losses(
        self,
        obs: Mapping[str, th.Tensor],
        bc_actions: th.Tensor | None = None,
        labels: Mapping[str, th.Tensor] | None = None,
        generator: th.Generator | None = None,
        episode_starts: th.Tensor | None = None,
    ) -> tuple[dict[str, th.Tensor], dict[str, float]]:
        """Loss of every objective on one batch.

        Args:
            obs: Raw batch in the policy layout, key -> ``(B, ...)`` (images ``uint8``).
            bc_actions: ``(B,)`` int64 or ``(B, A)`` float targets (``bc``).
            labels: Name -> ``(B,)`` label values (``labels``).
            generator: Torch generator for the modality masks (reproducible validation).
            episode_starts: ``(B,)`` bool, true on the first row of each episode (recurrent
                policies: the rows are whole episodes in time order; ignored otherwise).

        Returns:
            ``(losses, metrics)``: objective -> scalar loss tensor; metric name -> float
            (BC accuracy or MSE, label accuracy/R^2 terms, contrastive top-1).
        """
        pre = self.preprocess(obs)
        if self.recurrent and episode_starts is None:
            raise ValueError("a recurrent policy needs episode_starts (whole episodes in order)")
        with shared_encoder_pass(self.extractor, self.token_keys):
            return self._losses(pre, bc_actions, labels, generator, episode_starts)

    def _losses(
        self,
        pre: dict[str, th.Tensor],
        bc_actions: th.Tensor | None,
        labels: Mapping[str, th.Tensor] | None,
        generator: th.Generator | None,
        episode_starts: th.Tensor | None = None,
    ) -> tuple[dict[str, th.Tensor], dict[str, float]]:
        batch = next(iter(pre.values())).shape[0]
        device = next(iter(pre.values())).device
        losses: dict[str, th.Tensor] = {}
        metrics: dict[str, float] = {}
        n_mod = len(self.modalities)

        mask = masked_rows = None
        if "masked" in self.objectives:
            masked_rows = th.rand(batch, generator=generator, device="cpu") < self.mask_ratio
            masked_rows[0] = True  # at least one masked row per batch ...
            if batch > 1:
                masked_rows[-1] = False  # ... and one row for the supervised objectives
            which = th.randint(n_mod, (batch,), generator=generator, device="cpu")
            mask = F.one_hot(which, n_mod).bool() & masked_rows.unsqueeze(1)
            masked_rows, mask, which = masked_rows.to(device), mask.to(device), which.to(device)
        needs_fused = any(o in self.objectives for o in ("bc", "labels", "masked"))
        features = self.extractor(pre, mask) if needs_fused else None
        keep = ~masked_rows if masked_rows is not None else None
        # What the policy head reads: the fused features, or the LSTM's memory of them (a
        # masked row stays in its sequence, as a step with a sensor dropped).
        latent = features
        if self.recurrent and features is not None:
            latent = self.memory(features, episode_starts)  # losses() checked it is given

        def supervised(x: th.Tensor) -> th.Tensor:
            return x if keep is None else x[keep]

        if "bc" in self.objectives:
            if bc_actions is None:
                raise ValueError("objective 'bc' needs bc_actions")
            target = supervised(bc_actions)
            dist = self.action_distribution(supervised(latent))
            if self.discrete:
                target = target.long().view(-1)
                losses["bc"] = -dist.log_prob(target).mean()
                metrics["bc_accuracy"] = float(
                    (dist.distribution.probs.argmax(-1) == target).float().mean()
                )
            else:
                target = target.float().view(target.shape[0], -1)
                losses["bc"] = -dist.log_prob(target).mean()
                metrics["bc_mse"] = float(((dist.distribution.mean.detach() - target) ** 2).mean())

        if "labels" in self.objectives:
            if labels is None:
                raise ValueError("objective 'labels' needs labels")
            out = self.label_head(supervised(latent))
            values = {spec.name: supervised(labels[spec.name]) for spec in self.label_specs}
            losses["labels"], label_metrics = label_loss(self.label_specs, out, values)
            metrics.update(label_metrics)

        embeddings = None
        if "contrastive" in self.objectives:
            embeddings = self.encode(pre)
            losses["contrastive"], metrics["contrastive_top1"] = self._infonce(pre, embeddings)

        if "masked" in self.objectives:
            if embeddings is None:
                with th.no_grad():
                    embeddings = self.encode(pre)
            terms = []
            for i, key in enumerate(self.modalities):
                rows = masked_rows & (which == i)
                if not bool(rows.any()):
                    continue
                pred = F.normalize(self.predictors[key](features[rows]), dim=-1)
                target = F.normalize(embeddings[key][rows].detach(), dim=-1)
                terms.append((2 - 2 * (pred * target).sum(-1)).sum())
            losses["masked"] = th.stack(terms).sum() / masked_rows.sum().clamp(min=1)
        return losses, metrics

    def _infonce(
        self, pre: Mapping[str, th.Tensor], embeddings: Mapping[str, th.Tensor]
    ) -> tuple[th.Tensor, float]:
        z = {k: F.normalize(self.projections[k](v), dim=-1) for k, v in embeddings.items()}
        batch = next(iter(z.values())).shape[0]
        eye = th.eye(batch, dtype=th.bool, device=next(iter(z.values())).device)
        same = {
            k: (pre[k].unsqueeze(1) == pre[k].unsqueeze(0)).all(-1) & ~eye
            for k in self.token_keys
            if k in z
        }
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        target = th.arange(batch, device=eye.device)
        losses, top1 = [], []
        for a, b in itertools.combinations(list(z), 2):
            logits = scale * z[a] @ z[b].T
            duplicate = None
            for k in (a, b):
                if k in same:
                    duplicate = same[k] if duplicate is None else duplicate | same[k]
            if duplicate is not None:
                logits = logits.masked_fill(duplicate, float("-inf"))
            losses.append((F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2)
            top1.append(float((logits.argmax(-1) == target).float().mean()))
        return th.stack(losses).mean(), float(np.mean(top1))

    def head_state(self) -> dict[str, Any]:
        """State of the policy head SB3's PPO uses (``policy_net``, ``action_net``, ``log_std``;
        for a recurrent policy also its actor LSTM, ``lstm``)."""
        state: dict[str, Any] = {
            "policy_net": self.policy.mlp_extractor.policy_net.state_dict(),
            "action_net": self.policy.action_net.state_dict(),
        }
        if self.lstm is not None:
            state["lstm"] = self.lstm.state_dict()
        log_std = getattr(self.policy, "log_std", None)
        if isinstance(log_std, th.Tensor):
            state["log_std"] = log_std.detach().clone()
        return state
