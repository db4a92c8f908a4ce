"""What is changed about the observations in one evaluation: a *condition*.

A condition is clean, a set of removed observation keys (an ablation), or sensor noise.
:func:`condition_wrapper` applies noise and zeroing ablations to a ``VecEnv``;
:func:`ablation_context` masks keys inside the policy's :class:`~mmrl.extractor.MultimodalExtractor`
instead. Both the rollout engine (:mod:`mmrl.evaluation.rollouts`) and the robustness comparisons
(:mod:`mmrl.evaluation.robustness`) use these, so they live below both (issue 14: no import
cycle between rollouts and robustness).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from mmrl.errors import ConfigError


class _AblationSettings(Protocol):
    """The part of :class:`~mmrl.evaluation.rollouts.EvalSettings` a condition needs."""

    seed: int
    ablate_mode: str


@dataclasses.dataclass(frozen=True)
class Condition:
    """What is changed about the observations in one evaluation.

    Attributes:
        name: Row name in tables (``clean``, ``-camera``, ``noise camera=0.1``).
        ablate: Observation keys removed.
        noise: Compact noise spec for :class:`~mmrl.wrappers.VecSensorNoise`
            (``"camera=0.1,lidar=0.05"``), or ``None``.
    """

    name: str = "clean"
    ablate: tuple[str, ...] = ()
    noise: str | None = None

    @property
    def is_clean(self) -> bool:
        """Whether observations are unchanged."""
        return not self.ablate and not self.noise


CLEAN = Condition()


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


def _uses_extractor_mask(model: Any, settings: _AblationSettings) -> bool:
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


def condition_wrapper(
    venv: Any, condition: Condition, model: Any, settings: _AblationSettings
) -> Any:
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
def ablation_context(
    model: Any, condition: Condition, settings: _AblationSettings
) -> Iterator[None]:
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
