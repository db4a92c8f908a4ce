"""Robustness evaluation: modality ablations and sensor noise, compared against clean runs.

``--ablate camera,lidar,text`` evaluates once per named modality with that modality removed.
When the policy uses :class:`~mmrl.extractor.MultimodalExtractor`, removal goes through
``set_modality_mask``: the extractor substitutes its learned "missing modality" embedding,
which is what a model trained with modality dropout expects. Other policies (SB3's
``CombinedExtractor``, say) have no such notion, so the observation key is zeroed instead
(:class:`~mmrl.wrappers.VecModalityMask`), the usual sensor-failure ablation; zeros read as
black images, zero ranges and an all-padding instruction. ``--ablate-mode zero`` forces
zeroing for every policy, to compare the two. Policies without a network (the reference
policies of :mod:`mmrl.evaluation.reference`) are ablated by zeroing as well.

``--noise camera=0.1,lidar=0.05`` corrupts observations with
:class:`~mmrl.wrappers.VecSensorNoise` (level forms documented in :mod:`mmrl.wrappers.noise`).

Each changed condition is reported as its difference to the clean evaluation of the same model
and split, with a percentile-bootstrap interval of the difference.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from mmrl.config import ConfigError
from mmrl.evaluation.rollouts import CLEAN, Condition, EvalResult, EvalSettings
from mmrl.evaluation.stats import Interval, bootstrap_diff_ci

DELTA_METRICS: tuple[tuple[str, str, str], ...] = (
    ("mean_return", "returns", "mean"),
    ("iqm_return", "returns", "iqm"),
    ("success_rate", "successes", "mean"),
    ("collision_rate", "collisions", "mean"),
    ("mean_length", "lengths", "mean"),
)
"""``(metric name, EvalResult array attribute, statistic)`` of every reported difference."""


def parse_conditions(ablate: str | None, noise: Sequence[str] = ()) -> list[Condition]:
    """The clean condition followed by one per ablated key and one per noise spec.

    Args:
        ablate: Comma-separated observation keys (``"camera,lidar,text"``), each removed in
            turn; ``key1+key2`` removes both together.
        noise: Compact noise specs (``"camera=0.1,lidar=0.05"``), one condition each.

    Raises:
        ConfigError: Empty items or a malformed noise spec.
    """
    from mmrl.wrappers.noise import parse_noise_spec

    conditions = [CLEAN]
    for item in (ablate or "").split(","):
        item = item.strip()
        if not item:
            continue
        keys = tuple(k.strip() for k in item.split("+"))
        if not all(keys):
            raise ConfigError(f"--ablate item {item!r}: empty key; use e.g. camera,lidar+text")
        conditions.append(Condition(name=f"-{'-'.join(keys)}", ablate=keys))
    if ablate is not None and len(conditions) == 1:
        raise ConfigError("--ablate needs at least one observation key, e.g. camera,lidar,text")
    for spec in noise:
        try:
            parse_noise_spec(spec)
        except ValueError as err:
            raise ConfigError(f"--noise: {err}") from None
        if not spec.strip():
            raise ConfigError("--noise needs a spec such as camera=0.1,lidar=0.05")
        conditions.append(Condition(name=f"noise {spec.strip()}", noise=spec.strip()))
    return conditions


def has_extractor_mask(model: Any) -> bool:
    """Whether ``model``'s policy has a MultimodalExtractor, i.e. a learned missing-modality
    embedding that ``--ablate-mode extractor`` can switch on (reference policies have none)."""
    from mmrl.extractor import multimodal_extractors

    policy = getattr(model, "policy", None)  # None: no network (a reference policy)
    return policy is not None and bool(multimodal_extractors(policy))


def _uses_extractor_mask(model: Any, settings: EvalSettings) -> bool:
    has = has_extractor_mask(model)
    if settings.ablate_mode == "extractor" and not has:
        raise ConfigError(
            "--ablate-mode extractor: the policy has no MultimodalExtractor; use --ablate-mode "
            "zero (or auto) to zero the observation keys instead"
        )
    return has and settings.ablate_mode != "zero"


def _check_keys(keys: Sequence[str], observation_space: Any) -> None:
    available = list(getattr(observation_space, "spaces", {}) or {})
    unknown = [k for k in keys if k not in available]
    if unknown:
        raise ConfigError(
            f"--ablate: unknown observation key(s) {unknown}; this environment has {available}"
        )


def condition_wrapper(venv: Any, condition: Condition, model: Any, settings: EvalSettings) -> Any:
    """Wraps a raw ``VecEnv`` with the noise and (zeroing) ablation of ``condition``.

    Raises:
        ConfigError: Unknown ablation keys, or a noise spec the environment cannot take.
    """
    from mmrl.wrappers import VecModalityMask, VecSensorNoise
    from mmrl.wrappers.noise import parse_noise_spec

    if condition.ablate:
        _check_keys(condition.ablate, venv.observation_space)
    if condition.noise:
        try:
            venv = VecSensorNoise(venv, seed=settings.seed, **parse_noise_spec(condition.noise))
        except ValueError as err:
            raise ConfigError(f"--noise {condition.noise}: {err}") from None
    if condition.ablate and not _uses_extractor_mask(model, settings):
        venv = VecModalityMask(venv, list(condition.ablate), p=1.0, seed=settings.seed)
    return venv


@contextlib.contextmanager
def ablation_context(model: Any, condition: Condition, settings: EvalSettings) -> Iterator[None]:
    """Masks ``condition.ablate`` inside the policy's extractors for the ``with`` block."""
    if not condition.ablate or not _uses_extractor_mask(model, settings):
        yield
        return
    from mmrl.extractor import set_policy_modality_mask

    try:
        set_policy_modality_mask(model.policy, condition.ablate)
    except ValueError as err:
        raise ConfigError(f"--ablate: {err}") from None
    try:
        yield
    finally:
        set_policy_modality_mask(model.policy, None)


@dataclasses.dataclass
class Comparison:
    """A changed condition against the clean evaluation of the same model and split.

    Attributes:
        baseline: The clean result.
        result: The changed result.
        deltas: Per metric (see :data:`DELTA_METRICS`), ``changed - clean`` with a bootstrap
            interval.
    """

    baseline: EvalResult
    result: EvalResult
    deltas: dict[str, Interval]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        return {
            "label": self.result.label,
            "split": self.result.split,
            "condition": self.result.condition.name,
            "deltas": {k: v.to_dict() for k, v in self.deltas.items()},
        }


def compare(baseline: EvalResult, result: EvalResult) -> Comparison:
    """Differences of every metric of ``result`` against ``baseline`` with bootstrap intervals."""
    settings = baseline.settings
    deltas = {}
    for i, (name, attr, stat) in enumerate(DELTA_METRICS):
        deltas[name] = bootstrap_diff_ci(
            getattr(baseline, attr),
            getattr(result, attr),
            stat,
            settings.confidence,
            settings.n_resamples,
            rng=settings.seed + i,
        )
    return Comparison(baseline, result, deltas)


def comparisons(results: Sequence[EvalResult]) -> list[Comparison]:
    """Every non-clean result compared against the clean result of its model and split."""
    clean = {(r.label, r.split): r for r in results if r.condition.is_clean}
    out = []
    for r in results:
        base = clean.get((r.label, r.split))
        if not r.condition.is_clean and base is not None:
            out.append(compare(base, r))
    return out
