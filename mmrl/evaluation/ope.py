"""Off-policy estimators on logged episodes: importance sampling, doubly robust, direct.

Every estimator is a small function of per-step arrays laid out as ``(E, T)`` matrices
(:func:`pad_episodes`: episode ``e``'s step ``t``; steps after an episode's end are padding
with reward 0 and importance ratio 1, the absorbing state of Thomas & Brunskill 2016) and
returns an :class:`Estimate`: the value, a percentile bootstrap interval over episodes
(resampled episodes enter as a ``(B, E)`` count matrix, so every estimator, the
self-normalized ones included, is a few matrix products per resample batch), and the
effective sample size of its weights where it has weights.

* :func:`pdis`: per-decision importance sampling (Precup, Sutton & Singh 2000),
  ``mean_e sum_t gamma^t w_{e,t} r_{e,t}`` with ``w_{e,t} = prod_{k<=t} pi/mu``. Unbiased
  when ``mu > 0`` wherever ``pi > 0``; variance grows with the horizon.
* :func:`wpdis`: its weighted (self-normalized) form, ``sum_t gamma^t sum_e w_{e,t} r_{e,t}
  / sum_e w_{e,t}``: biased, consistent, far lower variance.
* :func:`doubly_robust`: step-wise doubly robust (Jiang & Li 2016, eq. 11; Thomas & Brunskill
  2016): ``mean_e sum_t gamma^t (w_t (r_t - Q(s_t, a_t)) + w_{t-1} V(s_t))`` with a model
  ``Q``/``V`` (FQE). Unbiased like PDIS; exact per episode when the model is exact and the
  dynamics deterministic. ``weighted=True`` gives weighted DR (Thomas & Brunskill 2016).
* :func:`direct`: a model's value of the logged initial states (FQE, a value head).

**Weight clipping** (``clip=c`` on the weighted estimators; the ``c``-prefixed names
``cpdis``, ``cwpdis``, ``cdr``, ``cwdr``): every cumulative per-decision weight is truncated,
``min(w_{e,t}, c)``, trading a bias towards smaller values for bounded variance (Ionides 2008,
"Truncated Importance Sampling"). The default threshold, :func:`default_weight_clip`, is
Ionides' ``sqrt(n) * mean weight`` with the mean known exactly: ``E_mu[w_t] = 1`` for every
``t`` when ``mu`` is the behaviour policy, so ``c = sqrt(E)`` for ``E`` episodes. The report
(:class:`WeightClip`) gives the threshold, how many episodes it cut and the effective sample
size before and after. The unclipped estimators keep their names.

:func:`support_check` estimates how much of the evaluation policy's mass lies where the
behaviour policy acts: ``E_mu[pi/mu] = pi(supp mu)``, so a mean per-step ratio clearly below 1
means the policy takes actions the data never shows, and no estimator here can see them.

The horizon is the data's: episodes end where the logged ones ended (time limits included),
so these estimate the discounted return of episodes as the environment runs them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mmrl.errors import ConfigError
from mmrl.evaluation.stats import Interval, percentile_bounds

__all__ = [
    "CLIPPED",
    "ESTIMATORS",
    "EpisodeMatrix",
    "Estimate",
    "SupportCheck",
    "WeightClip",
    "clip_weights",
    "cumulative_weights",
    "default_weight_clip",
    "direct",
    "doubly_robust",
    "effective_sample_size",
    "pad_episodes",
    "pdis",
    "support_check",
    "wpdis",
]

ESTIMATORS = ("fqe", "pdis", "wpdis", "dr", "wdr", "cpdis", "cwpdis", "cdr", "cwdr", "value_head")
"""Estimator names ``mmrl evaluate-offline --estimators`` accepts."""
CLIPPED = {"cpdis": "pdis", "cwpdis": "wpdis", "cdr": "dr", "cwdr": "wdr"}
"""The clipped-weight estimators and the estimator each clips."""

_MAX_LOG_WEIGHT = 700.0  # exp(709) overflows float64; a weight this large is degenerate anyway


@dataclasses.dataclass
class WeightClip:
    """What clipping the cumulative per-decision weights did.

    Attributes:
        threshold: The clip ``c``: every weight ``w_{e,t}`` became ``min(w_{e,t}, c)``.
        clipped_episodes: Episodes with at least one clipped weight.
        ess_unclipped: Effective sample size of the trajectory weights before clipping (the
            estimate's ``ess`` is the one after).
    """

    threshold: float
    clipped_episodes: int
    ess_unclipped: float

    def to_dict(self) -> dict[str, float]:
        """Plain data (JSON)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Estimate:
    """One estimator's answer for one policy.

    Attributes:
        estimator: Its name (one of :data:`ESTIMATORS`).
        value: The estimated discounted return.
        interval: Percentile bootstrap interval over episodes (``value`` is its point).
        ess: Effective sample size ``(sum w)^2 / sum w^2`` of the trajectory weights, in
            episodes, or ``None`` for estimators without weights.
        notes: Warnings and caveats (support mismatch, degenerate weights, fallbacks).
        clip: What weight clipping did (clipped estimators only), else ``None``.
    """

    estimator: str
    value: float
    interval: Interval
    ess: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    clip: WeightClip | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        return {
            "estimator": self.estimator,
            **self.interval.to_dict(),
            "ess": self.ess,
            "clip": self.clip.to_dict() if self.clip is not None else None,
            "notes": list(self.notes),
        }


@dataclasses.dataclass
class EpisodeMatrix:
    """Per-step arrays of ``E`` episodes padded to the longest, ``T`` steps.

    Attributes:
        mask: ``(E, T)`` bool, real steps.
        discounts: ``(T,)`` float64 ``gamma^t``.
    """

    mask: np.ndarray
    discounts: np.ndarray
    episode_of: np.ndarray
    step_of: np.ndarray

    @classmethod
    def from_steps(
        cls, episode_of: np.ndarray, step_of: np.ndarray, n_episodes: int, gamma: float
    ) -> EpisodeMatrix:
        """Layout of ``N`` steps: ``episode_of`` and ``step_of`` are ``(N,)`` int."""
        if not 0.0 < gamma <= 1.0:
            raise ConfigError(f"must be in (0, 1], got {gamma}", field="gamma")
        horizon = int(step_of.max()) + 1 if len(step_of) else 1
        mask = np.zeros((n_episodes, horizon), bool)
        mask[episode_of, step_of] = True
        return cls(mask, gamma ** np.arange(horizon, dtype=np.float64), episode_of, step_of)

    @property
    def n_episodes(self) -> int:
        return self.mask.shape[0]

    def pad(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """``(N,)`` per-step values to ``(E, T)`` float64, ``fill`` after each episode's end."""
        out = np.full(self.mask.shape, fill, dtype=np.float64)
        out[self.episode_of, self.step_of] = values
        return out


def pad_episodes(
    episode_of: np.ndarray, step_of: np.ndarray, n_episodes: int, gamma: float
) -> EpisodeMatrix:
    """:meth:`EpisodeMatrix.from_steps`."""
    return EpisodeMatrix.from_steps(episode_of, step_of, n_episodes, gamma)


# ---------------------------------------------------------------------------- weights
def cumulative_weights(log_ratio: np.ndarray) -> np.ndarray:
    """``(E, T)`` per-decision weights ``w_t = prod_{k<=t} pi/mu`` from ``(E, T)`` log-ratios
    (padding must be 0; ``-inf`` gives weight 0 from that step on)."""
    if np.isnan(log_ratio).any():
        raise ConfigError("importance log-ratios contain NaN (missing probabilities)")
    if np.isposinf(log_ratio).any():
        raise ConfigError(
            "infinite importance ratio: the evaluation policy is a point mass where the "
            "behaviour policy has a density (a deterministic continuous policy); evaluate "
            "its stochastic form"
        )
    with np.errstate(invalid="ignore"):
        logs = np.cumsum(log_ratio, axis=1)
    return np.exp(np.minimum(np.nan_to_num(logs, nan=-np.inf), _MAX_LOG_WEIGHT))


def default_weight_clip(n_episodes: int) -> float:
    """``sqrt(E)``: Ionides' (2008) truncation point ``sqrt(n) * E[w]`` with ``E_mu[w_t] = 1``.

    A cumulative per-decision ratio is a product of ratios each of mean 1 under the behaviour
    policy, so its mean is 1 at every step; the threshold then depends on the data's size
    only, not on the policy pool (no tuning). Ionides shows this choice keeps the truncation
    bias and the variance of the same order as ``n`` grows.
    """
    if n_episodes < 1:
        raise ConfigError(f"needs at least one episode, got {n_episodes}", field="weight_clip")
    return float(np.sqrt(n_episodes))


def clip_weights(weights: np.ndarray, clip: float | None) -> tuple[np.ndarray, WeightClip | None]:
    """``(E, T)`` cumulative weights truncated at ``clip`` (``None``: unchanged).

    Returns:
        The clipped ``(E, T)`` weights and the :class:`WeightClip` report (``None`` when
        ``clip`` is ``None``).

    Raises:
        ConfigError: ``clip`` not positive (or NaN).
    """
    if clip is None:
        return weights, None
    if not clip > 0:
        raise ConfigError(f"must be > 0, got {clip}", field="weight_clip")
    clipped = np.minimum(weights, clip)
    report = WeightClip(
        threshold=float(clip),
        clipped_episodes=int((weights > clip).any(axis=1).sum()),
        ess_unclipped=effective_sample_size(weights[:, -1]),
    )
    return clipped, report


def effective_sample_size(weights: np.ndarray) -> float:
    """``(sum w)^2 / sum w^2`` of ``(E,)`` nonnegative weights (Kong 1992); 0 if all are 0."""
    w = np.asarray(weights, dtype=np.float64)
    total = float((w * w).sum())
    return float(w.sum() ** 2 / total) if total > 0 else 0.0


def _counts(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(B, n)`` times each episode is drawn in each bootstrap resample."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(np.float64)


def _interval(value: float, samples: np.ndarray, confidence: float, n: int) -> Interval:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return Interval(value, float("nan"), float("nan"), n)
    low, high = percentile_bounds(finite, confidence)
    return Interval(value, low, high, n)


def _mean_estimate(
    name: str,
    per_episode: np.ndarray,
    n_resamples: int,
    confidence: float,
    rng: np.random.Generator | int | None,
    ess: float | None = None,
) -> Estimate:
    """An estimator that is a mean of per-episode contributions ``(E,)``."""
    rng = np.random.default_rng(rng)
    per_episode = np.asarray(per_episode, dtype=np.float64)
    n = len(per_episode)
    samples = _counts(n, n_resamples, rng) @ per_episode / n
    value = float(per_episode.mean())
    return Estimate(name, value, _interval(value, samples, confidence, n), ess)


def _ratio_sum(numerators: np.ndarray, denominators: np.ndarray) -> float:
    """``sum_t num_t / den_t`` over steps with ``den_t > 0`` (``(T,)`` each)."""
    ok = denominators > 0
    return float(np.sum(numerators[ok] / denominators[ok]))


def _ratio_samples(counts: np.ndarray, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``(B,)`` values of :func:`_ratio_sum` on resamples: ``num``/``den`` are ``(E, T)``."""
    top, bottom = counts @ num, counts @ den
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), 0.0).sum(axis=1)


# ---------------------------------------------------------------------------- estimators
def _name(base: str, clip: float | None) -> str:
    """``pdis`` -> ``cpdis`` when the weights are clipped (:data:`CLIPPED`)."""
    return base if clip is None else f"c{base}"


def pdis(
    layout: EpisodeMatrix,
    rewards: np.ndarray,
    log_ratio: np.ndarray,
    *,
    clip: float | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
) -> Estimate:
    """Per-decision importance sampling (``cpdis`` with ``clip``).

    Args:
        layout: The episodes' layout and discounts.
        rewards: ``(N,)`` logged rewards.
        log_ratio: ``(N,)`` ``log pi(a_t|s_t) - log mu(a_t|s_t)`` (``-inf``: ``pi = 0``).
        clip: Truncate every cumulative weight at this value (:func:`clip_weights`;
            :func:`default_weight_clip` is the usual choice); ``None``: unclipped, unbiased.
        n_resamples: Bootstrap resamples.
        confidence: Interval coverage.
        rng: Generator or seed of the bootstrap.
    """
    w, report = clip_weights(cumulative_weights(layout.pad(log_ratio)), clip)
    per_episode = (w * layout.pad(rewards) * layout.discounts).sum(axis=1)
    ess = effective_sample_size(w[:, -1])
    est = _mean_estimate(_name("pdis", clip), per_episode, n_resamples, confidence, rng, ess)
    est.clip = report
    return est


def wpdis(
    layout: EpisodeMatrix,
    rewards: np.ndarray,
    log_ratio: np.ndarray,
    *,
    clip: float | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
) -> Estimate:
    """Weighted (self-normalized) per-decision importance sampling (``cwpdis`` with
    ``clip``); arguments as :func:`pdis`."""
    w, report = clip_weights(cumulative_weights(layout.pad(log_ratio)), clip)
    name = _name("wpdis", clip)
    num = w * layout.pad(rewards) * layout.discounts
    if not w[:, -1].any():  # no episode consistent with the policy: 0 / 0, no estimate
        nan = float("nan")
        note = "every trajectory weight is 0: no logged episode follows the policy"
        interval = Interval(nan, nan, nan, layout.n_episodes)
        return Estimate(name, nan, interval, 0.0, [note], report)
    value = _ratio_sum(num.sum(axis=0), w.sum(axis=0))
    rng = np.random.default_rng(rng)
    samples = _ratio_samples(_counts(layout.n_episodes, n_resamples, rng), num, w)
    interval = _interval(value, samples, confidence, layout.n_episodes)
    return Estimate(name, value, interval, effective_sample_size(w[:, -1]), clip=report)


def doubly_robust(
    layout: EpisodeMatrix,
    rewards: np.ndarray,
    log_ratio: np.ndarray,
    q_taken: np.ndarray,
    v_state: np.ndarray,
    *,
    weighted: bool = False,
    clip: float | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
) -> Estimate:
    """Step-wise doubly robust estimate with a model of ``Q`` and ``V`` of the policy
    (``cdr`` / ``cwdr`` with ``clip``).

    Args:
        layout, rewards, log_ratio: As :func:`pdis`.
        q_taken: ``(N,)`` model ``Q(s_t, a_t)`` of each logged step.
        v_state: ``(N,)`` model ``V(s_t) = E_pi Q(s_t, .)`` of each logged step's state.
        weighted: Self-normalize the weights per step (weighted DR).
        clip, n_resamples, confidence, rng: As :func:`pdis`.
    """
    w, report = clip_weights(cumulative_weights(layout.pad(log_ratio)), clip)
    w_prev = np.concatenate([np.ones((layout.n_episodes, 1)), w[:, :-1]], axis=1)
    # Padding carries V = Q = 0 (the absorbing state), so w_prev * V vanishes after the end.
    mask = layout.mask.astype(np.float64)
    w_prev = w_prev * mask
    correction = w * (layout.pad(rewards) - layout.pad(q_taken)) * layout.discounts
    baseline = w_prev * layout.pad(v_state) * layout.discounts
    ess = effective_sample_size(w[:, -1])
    name = _name("wdr" if weighted else "dr", clip)
    if not weighted:
        est = _mean_estimate(
            name, (correction + baseline).sum(1), n_resamples, confidence, rng, ess
        )
        est.clip = report
        return est
    # Normalizers over all episodes (ended ones keep their last weight, the absorbing state).
    w_prev_all = np.concatenate([np.ones((layout.n_episodes, 1)), w[:, :-1]], axis=1)
    value = _ratio_sum(correction.sum(0), w.sum(0)) + _ratio_sum(baseline.sum(0), w_prev_all.sum(0))
    rng = np.random.default_rng(rng)
    counts = _counts(layout.n_episodes, n_resamples, rng)
    samples = _ratio_samples(counts, correction, w) + _ratio_samples(counts, baseline, w_prev_all)
    interval = _interval(value, samples, confidence, layout.n_episodes)
    return Estimate(name, value, interval, ess, clip=report)


def direct(
    name: str,
    initial_values: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
) -> Estimate:
    """A model's value of every logged initial state ``(E,)``, averaged (FQE, value head).

    The interval resamples episodes with the model held fixed: it reflects which initial
    states were logged, not the model's own fitting error.
    """
    return _mean_estimate(name, initial_values, n_resamples, confidence, rng)


# ---------------------------------------------------------------------------- diagnostics
@dataclasses.dataclass
class SupportCheck:
    """How much of the policy's action mass the behaviour policy covers.

    Attributes:
        coverage: Mean per-step ratio ``pi/mu``, an unbiased estimate of
            ``E_s pi(supp mu | s)`` (1 when the behaviour policy covers every action the
            policy takes).
        stderr: Its standard error (steps treated as independent).
        mismatch: Whether ``coverage`` is clearly below 1 (below ``1 - tolerance`` and
            more than two standard errors below 1).
    """

    coverage: float
    stderr: float
    mismatch: bool

    def note(self) -> str | None:
        """The warning line, or ``None`` without a mismatch."""
        if not self.mismatch:
            return None
        return (
            f"support mismatch: the policy puts about {100 * (1 - self.coverage):.0f}% of its "
            "action mass where the behaviour policy has (almost) none; the data cannot show "
            "what those actions lead to"
        )


def support_check(log_ratio: np.ndarray, tolerance: float = 0.1) -> SupportCheck:
    """:class:`SupportCheck` from the ``(N,)`` per-step log-ratios of the logged actions."""
    ratios = np.exp(np.minimum(np.asarray(log_ratio, dtype=np.float64), _MAX_LOG_WEIGHT))
    coverage = float(ratios.mean())
    stderr = float(ratios.std(ddof=1) / np.sqrt(len(ratios))) if len(ratios) > 1 else 0.0
    mismatch = coverage < 1.0 - tolerance and coverage + 2.0 * stderr < 1.0
    return SupportCheck(coverage, stderr, bool(mismatch))
