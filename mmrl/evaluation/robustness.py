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

import dataclasses
from collections.abc import Sequence
from typing import Any

from mmrl.evaluation.conditions import (
    CLEAN,
    Condition,
    ablation_context,
    condition_wrapper,
    parse_conditions,
)
from mmrl.evaluation.rollouts import EvalResult
from mmrl.evaluation.stats import Interval, bootstrap_diff_ci

__all__ = [
    "CLEAN",
    "DELTA_METRICS",
    "Comparison",
    "Condition",
    "ablation_context",
    "compare",
    "comparisons",
    "condition_wrapper",
    "parse_conditions",
]

DELTA_METRICS: tuple[tuple[str, str, str], ...] = (
    ("mean_return", "returns", "mean"),
    ("iqm_return", "returns", "iqm"),
    ("success_rate", "successes", "mean"),
    ("collision_rate", "collisions", "mean"),
    ("mean_length", "lengths", "mean"),
)
"""``(metric name, EvalResult array attribute, statistic)`` of every reported difference."""


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
