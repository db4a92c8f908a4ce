"""Several policies estimated on the same logged data and ranked (``mmrl evaluate-offline A B C``).

For every policy: its view of every logged state (greedy action, action probabilities or the
log-density of the logged action, features), one FQE fit, then the chosen estimators of
:mod:`mmrl.evaluation.ope` with bootstrap intervals over episodes, the effective sample size
of the importance weights and the support check. The behaviour probabilities the weighted
estimators need are read from the data when ``mmrl collect`` logged them, and otherwise
estimated once by behaviour cloning (:mod:`mmrl.evaluation.behaviour`), which the report says.
Policies are ranked by one estimator; pairs whose intervals overlap are flagged, since their
order is not established by the data.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmrl.commands.evaluate import EvaluateOfflineOptions
from mmrl.data.episodes import LoggedData
from mmrl.errors import ConfigError, DatasetError
from mmrl.evaluation import ope
from mmrl.evaluation.behaviour import (
    BehaviourModel,
    data_features,
    estimate_behaviour,
    label_features,
    logged_behaviour,
)
from mmrl.evaluation.fqe_selection import select_fqe
from mmrl.evaluation.offline import (
    FEATURE_MODES,
    FQEResult,
    OfflineResult,
    PolicyOutputs,
    fitted_q_evaluation,
    offline_result,
    policy_outputs,
    resolve_horizon,
)
from mmrl.evaluation.tables import Cell, TextTable, print_tables
from mmrl.policies import Policy, check_spaces

#: FQE input modes whose features are the same for every policy (built once per dataset).
SHARED_FEATURES = ("data", "data+labels")

__all__ = [
    "ALIASES",
    "PolicyReport",
    "Ranking",
    "check_logged_data",
    "evaluate_policies",
    "parse_estimators",
    "print_ranking",
    "rank_reports",
    "ranking_table",
]

ALIASES = {"is": "pdis", "wis": "wpdis", "value": "value_head"}
"""Other names ``--estimators`` accepts (the issue's ``wis``, the literature's ``is``)."""
_WEIGHTED = ("pdis", "wpdis", "dr", "wdr", *ope.CLIPPED)
_MODEL_BASED = ("fqe", "dr", "wdr", "cdr", "cwdr")  # the estimators that use the FQE fit


def parse_estimators(text: str) -> list[str]:
    """``"fqe,wis,dr"`` -> ``["fqe", "wpdis", "dr"]``.

    Raises:
        ConfigError: An unknown name (naming the allowed ones) or an empty list.
    """
    names = [ALIASES.get(n.strip(), n.strip()) for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in ope.ESTIMATORS]
    if not names or bad:
        allowed = ", ".join([*ope.ESTIMATORS, *ALIASES])
        raise ConfigError(f"unknown estimator(s) {bad or text!r}; allowed: {allowed}",
                          field="estimators")  # fmt: skip
    return list(dict.fromkeys(names))


def check_logged_data(data: LoggedData) -> None:
    """Refuses data the estimators cannot use, in one line.

    Raises:
        DatasetError: Fewer than two episodes (no interval over episodes), or rewards that
            are missing (NaN).
    """
    if data.n_episodes < 2:
        raise DatasetError(
            f"dataset {data.dataset_id!r} has {data.n_episodes} episode; off-policy "
            "estimates and their intervals over episodes need at least 2"
        )
    missing = int(np.isnan(data.rewards).sum())
    if missing:
        raise DatasetError(
            f"dataset {data.dataset_id!r} has no reward in {missing} of {data.n_transitions} "
            "steps (NaN); every estimator needs the logged rewards"
        )


@dataclasses.dataclass
class PolicyReport:
    """One policy's estimates.

    Attributes:
        label: The policy's name.
        estimates: Estimator name -> :class:`~mmrl.evaluation.ope.Estimate` (those that apply).
        skipped: Estimator name -> why it does not apply to this policy.
        support: The support check (``None`` without behaviour probabilities).
        offline: Agreement, log-likelihood and FQE diagnostics (``None`` for policies without
            a network).
        seconds: Wall time spent on this policy.
        fqe: The FQE fit (reference policies included), or ``None`` when no estimator
            needed one.
    """

    label: str
    estimates: dict[str, ope.Estimate]
    skipped: dict[str, str]
    support: ope.SupportCheck | None
    offline: OfflineResult | None
    seconds: float
    fqe: FQEResult | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = self.offline.to_dict() if self.offline is not None else {}
        if self.offline is None and self.fqe is not None:  # reference policies: the fit only
            out["fqe"] = {"value": self.fqe.value, **self.fqe.diagnostics()}
        out.update(
            {
                "label": self.label,
                "estimates": {k: v.to_dict() for k, v in self.estimates.items()},
                "skipped": dict(self.skipped),
                "support": dataclasses.asdict(self.support) if self.support else None,
                "seconds": round(self.seconds, 3),
            }
        )
        return out


@dataclasses.dataclass
class Ranking:
    """Every policy's report, ranked by one estimator.

    Attributes:
        reports: Best first by ``rank_by`` (policies without that estimate last).
        overlaps: Label pairs whose ``rank_by`` intervals overlap (order not established).
        horizon: The time limit FQE cut returns at (``None``: bootstrapped through
            truncations).
    """

    dataset_id: str
    gamma: float
    episodes: int
    transitions: int
    estimators: list[str]
    rank_by: str
    behaviour: BehaviourModel | None
    reports: list[PolicyReport]
    overlaps: list[tuple[str, str]]
    horizon: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset_id,
            "gamma": self.gamma,
            "horizon": self.horizon,
            "episodes": self.episodes,
            "transitions": self.transitions,
            "estimators": self.estimators,
            "rank_by": self.rank_by,
            "behaviour": self.behaviour.to_dict() if self.behaviour else None,
            "ranking": [r.label for r in self.reports],
            "overlapping_pairs": [list(p) for p in self.overlaps],
            "results": [r.to_dict() for r in self.reports],
        }

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per policy: rank, label, each estimator's value / low / high / ESS."""
        rows = []
        for rank, report in enumerate(self.reports, 1):
            row: dict[str, Any] = {"rank": rank, "label": report.label}
            for name in self.estimators:
                est = report.estimates.get(name)
                row[f"{name}_value"] = est.value if est else ""
                row[f"{name}_low"] = est.interval.low if est else ""
                row[f"{name}_high"] = est.interval.high if est else ""
                row[f"{name}_ess"] = est.ess if est and est.ess is not None else ""
                if name in ope.CLIPPED:
                    row[f"{name}_ess_unclipped"] = est.clip.ess_unclipped if est else ""
            row["support_coverage"] = report.support.coverage if report.support else ""
            row["support_mismatch"] = report.support.mismatch if report.support else ""
            if report.offline is not None:
                row["agreement"] = report.offline.agreement
                fqe = report.offline.fqe
                row["fqe_td_rmse"] = fqe.td_error
                heldout = fqe.heldout_td_error
                row["fqe_heldout_td_rmse"] = heldout if heldout is not None else ""
                row["fqe_clipped_targets"] = fqe.clipped_targets
                if fqe.setting is not None:
                    row["fqe_setting"] = fqe.setting
            row["seconds"] = round(report.seconds, 3)
            rows.append(row)
        return rows


# ---------------------------------------------------------------------------- one policy
def _reference_outputs(policy: Policy, data: LoggedData) -> PolicyOutputs:
    """The ``expert`` (from the logged expert actions) or ``random`` policy's view of the data.

    A reference policy with an ``epsilon`` attribute is the epsilon-mixture of it with
    uniform random actions (discrete actions), as ``mmrl collect --epsilon`` runs it.

    Raises:
        ConfigError: ``expert`` on data without logged expert actions.
    """
    from mmrl.densities import uniform_log_prob

    space = data.action_space
    epsilon = float(getattr(policy, "epsilon", 0.0))
    if policy.kind == "random":
        if data.discrete:
            n = int(space.n)
            lp = np.full((data.n_states, n), -np.log(n), np.float32)
            return PolicyOutputs(np.zeros(data.n_states, np.int64), lp, None, None)
        centre = ((space.low + space.high) / 2.0).astype(np.float32)
        logged = np.full(data.n_transitions, uniform_log_prob(space))
        return PolicyOutputs(np.tile(centre, (data.n_states, 1)), None, logged, None)
    if data.expert_actions is None:
        raise ConfigError(
            f"expert: dataset {data.dataset_id!r} has no logged expert actions "
            "(infos['expert_action']) to evaluate the scripted expert from"
        )
    expert = data.expert_actions.copy()
    if data.discrete:
        expert[expert < 0] = 0  # final states have no decision; their value is not used
        n = int(space.n)
        probs = (1.0 - epsilon) * np.eye(n)[expert] + epsilon / n
        with np.errstate(divide="ignore"):
            return PolicyOutputs(expert, np.log(probs).astype(np.float32), None, None)
    if epsilon > 0.0:
        raise ConfigError("a noisy expert is evaluated offline for discrete actions only")
    return PolicyOutputs(np.nan_to_num(expert), None, None, None)


def _target_log_ratio(
    outputs: PolicyOutputs, data: LoggedData, stochastic: bool, reference: bool
) -> np.ndarray | str:
    """``log pi(a_t|s_t)`` of the logged actions, or why importance weights do not exist."""
    if data.discrete:
        if stochastic or reference:
            if outputs.log_probs is None:
                return "the policy has no action distribution (DQN): use the greedy policy"
            return outputs.log_probs[data.state_idx, data.actions].astype(np.float64)
        greedy = outputs.actions.reshape(-1)[data.state_idx]
        return np.where(greedy == data.actions, 0.0, -np.inf)
    if (stochastic or reference) and outputs.logged_log_prob is not None:
        return outputs.logged_log_prob.astype(np.float64)
    return (
        "a deterministic policy with continuous actions has no density, so importance "
        "weights are 0 almost surely; evaluate its stochastic form (--stochastic)"
    )


def _value_head(policy: Policy, data: LoggedData, observations: Any) -> np.ndarray | str:
    """The policy's own value estimate of every logged initial state, or why there is none."""
    import torch as th

    net = policy.policy
    first = {k: v[data.first_idx] for k, v in observations.items()}
    with th.no_grad():
        obs_t, _ = net.obs_to_tensor(first)
        if hasattr(net, "predict_values"):
            return net.predict_values(obs_t).reshape(-1).double().cpu().numpy()
        if hasattr(net, "q_net"):  # DQN: V(s) = max_a Q(s, a) of its greedy policy
            return net.q_net(obs_t).max(dim=1).values.double().cpu().numpy()
    return f"{type(net).__name__} has no value head"


def estimate_policy(
    policy: Policy,
    data: LoggedData,
    estimators: Sequence[str],
    gamma: float,
    behaviour: BehaviourModel | None,
    layout: ope.EpisodeMatrix,
    *,
    features: str = "policy",
    shared_features: np.ndarray | None = None,
    stochastic: bool = False,
    iterations: int | None = None,
    steps_per_iter: int = 25,
    fqe_holdout: float = 0.1,
    fqe_select: bool = False,
    fqe_ensemble: int = 1,
    fqe_horizon: int | None = None,
    weight_clip: float | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> PolicyReport:
    """Every requested estimate of one policy on ``data`` (see :func:`evaluate_policies`)."""
    t0 = time.perf_counter()
    reference = policy.policy is None
    skipped: dict[str, str] = {}
    offline = None
    if reference:
        outputs = _reference_outputs(policy, data)
        observations = data.observations
        fqe_features = "data"
    else:
        check_spaces(
            policy, data.observation_space, data.action_space, f"dataset {data.dataset_id}"
        )
        observations = policy.normalize(data.observations)
        outputs = policy_outputs(
            policy.policy, data, observations, with_features=features == "policy"
        )
        fqe_features = features
    if fqe_features in SHARED_FEATURES:
        fqe_features = "data"
        outputs.features = shared_features
    boot = {"n_resamples": n_resamples, "rng": seed}
    estimates: dict[str, ope.Estimate] = {}
    fqe = None
    needs_model = set(_MODEL_BASED) & set(estimators)
    if needs_model:
        fit = select_fqe if fqe_select else fitted_q_evaluation
        fqe = fit(
            data,
            outputs,
            gamma,
            features="policy" if fqe_features == "data" else fqe_features,
            observations=observations,
            iterations=iterations,
            steps_per_iter=steps_per_iter,
            stochastic=(stochastic or reference) and data.discrete,
            holdout=fqe_holdout,
            ensemble=fqe_ensemble,
            horizon=fqe_horizon,
            seed=seed,
            device=policy.policy.device if not reference else "cpu",
        )
        if "fqe" in estimators:
            estimates["fqe"] = ope.direct("fqe", fqe.initial_values, **boot)
            if reference and not data.discrete and policy.kind == "random":
                estimates["fqe"].notes.append(
                    "FQE evaluates the centre action for uniform continuous actions "
                    "(V(s) = Q(s, centre)), an approximation"
                )
    log_pi = _target_log_ratio(outputs, data, stochastic, reference)
    support = None
    weighted = [n for n in estimators if n in _WEIGHTED]
    if weighted and isinstance(log_pi, str):
        skipped.update({n: log_pi for n in weighted})
    elif weighted and behaviour is not None:
        log_ratio = log_pi - behaviour.log_prob
        support = ope.support_check(log_ratio)
        clip_at = (
            weight_clip if weight_clip is not None else ope.default_weight_clip(data.n_episodes)
        )
        for name in weighted:
            base = ope.CLIPPED.get(name, name)
            clip = clip_at if name in ope.CLIPPED else None
            if base == "pdis":
                est = ope.pdis(layout, data.rewards, log_ratio, clip=clip, **boot)
            elif base == "wpdis":
                est = ope.wpdis(layout, data.rewards, log_ratio, clip=clip, **boot)
            else:
                v_state = fqe.state_values[data.state_idx]
                est = ope.doubly_robust(
                    layout, data.rewards, log_ratio, fqe.q_taken, v_state,
                    weighted=base == "wdr", clip=clip, **boot,
                )  # fmt: skip
            if est.clip is not None and est.clip.clipped_episodes:
                est.notes.append(
                    f"{name}: weights clipped at {est.clip.threshold:.3g} in "
                    f"{est.clip.clipped_episodes} of {data.n_episodes} episodes, ESS "
                    f"{est.clip.ess_unclipped:.1f} -> {est.ess:.1f}"
                )
            if behaviour.source == "estimated":
                est.notes.append("behaviour policy estimated by behaviour cloning")
            # Below a tenth of the episodes, a handful of trajectories decide the estimate.
            if est.ess is not None and est.ess < max(2.0, 0.1 * data.n_episodes):
                est.notes.append(
                    f"{name}: ESS {est.ess:.1f} of {data.n_episodes} episodes: a few episodes "
                    "carry most of the weight, the estimate is unreliable"
                )
            estimates[name] = est
    if "value_head" in estimators:
        values = "no network (expert / random)" if reference else None
        if values is None:
            values = _value_head(policy, data, observations)
        if isinstance(values, str):
            skipped["value_head"] = values
        else:
            est = ope.direct("value_head", values, **boot)
            gamma_trained = policy.gamma
            est.notes.append(
                f"the value head predicts returns at its training discount ({gamma_trained:g}) "
                "and reward scale, not necessarily --gamma's"
            )
            estimates["value_head"] = est
    note = support.note() if support is not None else None
    if note:
        for est in estimates.values():
            est.notes.append(note)
    if fqe is not None:
        for name in _MODEL_BASED:
            if name in estimates:
                estimates[name].notes.extend(fqe.notes())
    if fqe is not None and not reference:
        offline = offline_result(policy.label, data, outputs, fqe, gamma, fqe_features, t0)
    return PolicyReport(
        policy.label, estimates, skipped, support, offline, time.perf_counter() - t0, fqe
    )


# ---------------------------------------------------------------------------- many policies
def rank_reports(reports: Sequence[PolicyReport], by: str) -> list[PolicyReport]:
    """``reports`` from the highest ``by`` estimate to the lowest.

    Reports without a finite ``by`` estimate (the estimator does not apply, or it is
    undefined, e.g. every importance weight is 0) come last, in their given order: an
    unknown value must not outrank a known one.
    """

    def key(report: PolicyReport) -> tuple[int, float]:
        est = report.estimates.get(by)
        known = est is not None and bool(np.isfinite(est.value))
        return (0, -est.value) if known else (1, 0.0)

    return sorted(reports, key=key)


def _overlapping(reports: list[PolicyReport], by: str) -> list[tuple[str, str]]:
    pairs = []
    for i, a in enumerate(reports):
        for b in reports[i + 1 :]:
            ea, eb = a.estimates.get(by), b.estimates.get(by)
            if (
                ea
                and eb
                and ea.interval.low <= eb.interval.high
                and eb.interval.low <= ea.interval.high
            ):
                pairs.append((a.label, b.label))
    return pairs


def evaluate_policies(
    policies: Sequence[Policy],
    data: LoggedData,
    estimators: str | Sequence[str] = EvaluateOfflineOptions.estimators,
    gamma: float = EvaluateOfflineOptions.gamma,
    *,
    rank_by: str | None = None,
    behaviour: str = EvaluateOfflineOptions.behaviour,
    features: str = EvaluateOfflineOptions.fqe_features,
    stochastic: bool = False,
    iterations: int | None = None,
    steps_per_iter: int = EvaluateOfflineOptions.fqe_steps,
    fqe_holdout: float = EvaluateOfflineOptions.fqe_holdout,
    fqe_select: bool = EvaluateOfflineOptions.fqe_select,
    fqe_ensemble: int = EvaluateOfflineOptions.fqe_ensemble,
    fqe_horizon: str | int | None = EvaluateOfflineOptions.fqe_horizon,
    weight_clip: float | None = EvaluateOfflineOptions.weight_clip,
    n_resamples: int = EvaluateOfflineOptions.bootstrap,
    seed: int = EvaluateOfflineOptions.seed,
) -> Ranking:
    """Estimates every policy on the same logged data and ranks them.

    Args:
        policies: What :func:`mmrl.policies.load_policy` returns (``expert`` is evaluated
            from the logged expert actions, ``random`` exactly).
        data: The logged data.
        estimators: Names from :data:`mmrl.evaluation.ope.ESTIMATORS` (or their aliases),
            as a list or comma-separated.
        gamma: Discount in ``(0, 1]``.
        rank_by: Estimator to rank by (default the first of ``estimators``).
        behaviour: ``auto`` (logged probabilities if present, else estimated), ``logged``
            (refuse data without them) or ``estimated`` (always behaviour cloning).
        features: FQE inputs: ``policy`` (each policy's features), ``raw``, ``data``
            (the same fixed features for every policy, :func:`data_features`) or
            ``data+labels`` (those and the dataset's privileged labels,
            :func:`label_features`: an evaluator may read what the simulator logged about
            each state even though no policy sees it).
        stochastic: Evaluate the policies' stochastic forms (default greedy).
        iterations, steps_per_iter: FQE settings.
        fqe_holdout: Fraction of the episodes FQE leaves out of its fit to report the
            held-out Bellman error (0: none).
        fqe_select: Fit FQE once per setting of
            :data:`~mmrl.evaluation.fqe_selection.FQE_GRID` and keep, per policy, the fit of
            lowest held-out Bellman RMSE (:func:`~mmrl.evaluation.fqe_selection.select_fqe`;
            needs ``fqe_holdout > 0``, costs one fit per setting).
        fqe_ensemble: Q-heads of every FQE fit, trained side by side; their mean is the
            Q-function and bootstraps the targets (1: a single network).
        fqe_horizon: The time limit FQE cuts returns at
            (:func:`~mmrl.evaluation.offline.resolve_horizon`): ``auto``, the dataset's
            ``max_episode_steps``, so FQE estimates what online evaluation measures.
        weight_clip: Threshold of the clipped estimators (``cpdis``, ``cwpdis``, ``cdr``,
            ``cwdr``); ``None``: :func:`~mmrl.evaluation.ope.default_weight_clip`,
            ``sqrt(episodes)``.
        n_resamples: Bootstrap resamples over episodes.
        seed: FQE, behaviour cloning and bootstrap seed.

    Raises:
        SpaceMismatchError: A policy whose spaces differ from the dataset's, naming the keys.
        DatasetError: Fewer than 2 episodes, missing rewards, or ``behaviour="logged"``
            on data without behaviour probabilities.
        ConfigError: Unknown estimator, feature mode or behaviour mode.
    """
    text = estimators if isinstance(estimators, str) else ",".join(estimators)
    estimators = parse_estimators(text)
    rank_by = ALIASES.get(rank_by, rank_by) if rank_by else estimators[0]
    if rank_by not in estimators:
        raise ConfigError(f"must be one of the estimators {estimators}, got {rank_by!r}",
                          field="rank_by")  # fmt: skip
    if features not in (*FEATURE_MODES, *SHARED_FEATURES):
        raise ConfigError(f"must be one of {(*FEATURE_MODES, *SHARED_FEATURES)}, got "
                          f"{features!r}", field="fqe_features")  # fmt: skip
    if features == "data+labels" and data.labels is None:
        raise DatasetError(
            f"--fqe-features data+labels needs the privileged labels mmrl collect records "
            f"(infos['labels']); dataset {data.dataset_id!r} has none in some episode"
        )
    if behaviour not in ("auto", "logged", "estimated"):
        raise ConfigError(f"must be auto, logged or estimated, got {behaviour!r}",
                          field="behaviour")  # fmt: skip
    if not 0.0 < gamma <= 1.0:
        raise ConfigError(f"must be in (0, 1], got {gamma}", field="gamma")
    if weight_clip is not None and not weight_clip > 0:
        raise ConfigError(f"must be > 0, got {weight_clip}", field="weight_clip")
    if not 0.0 <= fqe_holdout < 1.0:
        raise ConfigError(f"must be in [0, 1), got {fqe_holdout}", field="fqe_holdout")
    if isinstance(fqe_ensemble, bool) or not isinstance(fqe_ensemble, int) or fqe_ensemble < 1:
        raise ConfigError(f"must be an integer >= 1 (Q-heads), got {fqe_ensemble!r}",
                          field="fqe_ensemble")  # fmt: skip
    if fqe_select and fqe_holdout == 0.0:
        raise ConfigError("--fqe-select chooses by held-out Bellman error: it needs "
                          "--fqe-holdout > 0", field="fqe_holdout")  # fmt: skip
    check_logged_data(data)
    horizon = resolve_horizon(fqe_horizon, data)  # a bad limit fails before any fit
    for policy in policies:  # refuse a misfit before any fitting
        if policy.policy is not None:
            check_spaces(
                policy, data.observation_space, data.action_space, f"dataset {data.dataset_id}"
            )
    layout = ope.EpisodeMatrix.from_steps(data.episode_of, data.step_of, data.n_episodes, gamma)
    shared = None
    reference = any(p.policy is None for p in policies)
    if features in SHARED_FEATURES or reference:
        shared = data_features(data.observation_space, data.observations)
        if features == "data+labels":
            shared = np.concatenate([shared, label_features(data.labels)], axis=1)
    model = None
    if any(n in _WEIGHTED for n in estimators):
        model = None if behaviour == "estimated" else logged_behaviour(data)
        if model is None and behaviour == "logged":
            raise DatasetError(
                f"dataset {data.dataset_id!r} has no logged behaviour probabilities "
                "(infos['behaviour_log_prob'], written by mmrl collect); use --behaviour "
                "estimated or auto"
            )
        if model is None:
            if shared is None:
                shared = data_features(data.observation_space, data.observations)
            model = estimate_behaviour(data, shared, seed=seed)
    reports = [
        estimate_policy(
            policy,
            data,
            estimators,
            gamma,
            model,
            layout,
            features=features,
            shared_features=shared,
            stochastic=stochastic,
            iterations=iterations,
            steps_per_iter=steps_per_iter,
            fqe_holdout=fqe_holdout,
            fqe_select=fqe_select,
            fqe_ensemble=fqe_ensemble,
            fqe_horizon=horizon,
            weight_clip=weight_clip,
            n_resamples=n_resamples,
            seed=seed,
        )
        for policy in policies
    ]

    reports = rank_reports(reports, rank_by)
    return Ranking(
        dataset_id=data.dataset_id,
        gamma=gamma,
        episodes=data.n_episodes,
        transitions=data.n_transitions,
        estimators=estimators,
        rank_by=rank_by,
        behaviour=model,
        reports=reports,
        overlaps=_overlapping(reports, rank_by),
        horizon=horizon,
    )


def _estimate_cell(est: ope.Estimate | None) -> Cell:
    """``("0.812", "[0.790, 0.830]")``: value and interval, stacked in a terminal table."""
    if est is None or np.isnan(est.interval.value):
        return "n/a"
    iv = est.interval
    return f"{iv.value:.3f}", f"[{iv.low:.3f}, {iv.high:.3f}]"


def ranking_table(ranking: Ranking) -> TextTable:
    """The ranked table, with the behaviour policy, overlaps and warnings as its notes."""
    columns = ["rank", "policy"]
    for name in ranking.estimators:
        columns.append(name)
        if name in _WEIGHTED:
            columns.append(f"{name} ESS")
    table = TextTable(
        f"off-policy evaluation on {ranking.dataset_id} ({ranking.episodes} episodes, "
        f"{ranking.transitions} transitions, gamma {ranking.gamma:g}"
        f"{f', returns cut at {ranking.horizon} steps' if ranking.horizon else ''}), ranked by "
        f"{ranking.rank_by}",
        [*columns, "support", "s"],
        left=2,
        notes=["intervals: 95% bootstrap CI of each estimate"],
    )
    overlapped = {label for pair in ranking.overlaps for label in pair}
    for rank, report in enumerate(ranking.reports, 1):
        cells: list[Cell] = [f"{rank}{'~' if report.label in overlapped else ''}", report.label]
        for name in ranking.estimators:
            est = report.estimates.get(name)
            cells.append(_estimate_cell(est))
            if name in _WEIGHTED:
                cells.append(f"{est.ess:.1f}" if est and est.ess is not None else "-")
        sup = report.support
        cells.append("-" if sup is None else f"{sup.coverage:.2f}{' !' if sup.mismatch else ''}")
        cells.append(f"{report.seconds:.1f}")
        table.rows.append(cells)
    if ranking.behaviour is not None:
        table.notes.append(f"behaviour policy: {ranking.behaviour.description}")
    offline = next((r.offline for r in ranking.reports if r.offline is not None), None)
    if offline is not None:
        table.notes.append(
            f"behaviour return of the logged episodes: {offline.behaviour_discounted_return:.3f} "
            f"(gamma {ranking.gamma:g}), {offline.behaviour_return:.3f} undiscounted"
        )
    if ranking.overlaps:
        pairs = ", ".join(f"{a} / {b}" for a, b in ranking.overlaps)
        table.notes.append(
            f"~ intervals of {ranking.rank_by} overlap (order not established): {pairs}"
        )
    for report in ranking.reports:
        notes = {n for est in report.estimates.values() for n in est.notes}
        notes |= {f"{k}: {v}" for k, v in report.skipped.items()}
        table.notes.extend(f"  {report.label}: {note}" for note in sorted(notes))
    return table


def print_ranking(ranking: Ranking, console: Any | None = None, fmt: str = "table") -> None:
    """The ranked table and its notes in ``fmt`` (``table``, ``markdown``, or ``csv``:
    :meth:`Ranking.csv_rows`; see :mod:`mmrl.evaluation.tables`)."""
    rows = ranking.csv_rows() if fmt == "csv" else ()
    print_tables([ranking_table(ranking)], fmt, rows, console)
