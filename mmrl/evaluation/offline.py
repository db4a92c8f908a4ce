"""Off-policy evaluation from logged data (``mmrl evaluate-offline``), no environment needed.

Given a model and a Minari dataset of logged episodes (e.g. ``mmrl collect``'s expert data):

* **agreement** with the logged actions: accuracy of the policy's greedy action (discrete) or
  mean absolute error of its deterministic action (continuous);
* **log-likelihood** of the logged actions under the policy (``policy.get_distribution``),
  mean per step: how plausible the behaviour data is under the policy;
* **Fitted Q Evaluation** (FQE, Le, Voloshin & Yue 2019, "Batch Policy Learning under
  Constraints", sec. 4): the policy's discounted return estimated from logged transitions
  alone, by iterating ``Q_k(s, a) <- r + gamma (1 - terminated) V_{k-1}(s')`` as a supervised
  regression, with ``V(s') = sum_a pi(a|s') Q(s', a)`` (discrete; ``Q(s', pi(s'))`` for
  continuous actions) and the estimate ``mean_episodes V_K(s_0)``;
* the **behaviour return** of the dataset itself (mean episode return, undiscounted and
  discounted with the same ``gamma``), the number FQE should be compared with.

The Q-network reads either the policy's own features (``features="policy"``, default: the
frozen extractor output, computed once for every logged state, so FQE trains a small MLP and
costs seconds) or the raw observations (``features="raw"``: a small CNN per image key, a
mean-pooled embedding per token key and the flattened remaining keys, trained end to end).
Training is batched torch (minibatches of transition indices), with no per-sample Python loop.

Each FQE iteration takes ``steps_per_iter`` Adam steps warm-started from the previous Q (a
fresh regression per iteration as in the paper is equivalent when each fit converges and much
slower); targets use a frozen copy of the previous iteration's Q (the target network). Values
propagate one step per iteration, so the iteration count must exceed the effective horizon:
the default is ``ceil(3 / (1 - gamma))`` capped at 400 and at ``3 x`` the longest logged
episode.

The Q-network must use the action: discrete actions get one output per action over the state
features (the DQN head), continuous actions are concatenated to them; targets are the
expectation over the evaluated policy, ``E_{a'~pi(.|s')} Q(s', a')``. Two guards, both reported:

* **held-out Bellman error**: the fit uses ``1 - holdout`` of the episodes (90 % by default);
  the root mean squared Bellman residual ``Q(s, a) - r - gamma V(s')`` of the final Q is
  reported on the fitted and on the held-out episodes. A held-out residual well above the
  fitted one says the Q-function does not generalize to states it was not fitted on, which
  is what the evaluated policy's own states are.
* **return bounds**: after ``k`` iterations from ``V_0 = 0`` the exact iterate is a ``k``-step
  discounted return, so it lies in ``[min(0, r_min), max(0, r_max)] * sum_{t<k} gamma^t``
  with ``r_min``/``r_max`` the logged rewards' range (``[r_min, r_max] / (1 - gamma)`` in the
  limit). Targets outside the range are clipped to it, which stops a diverging fit (function
  approximation can extrapolate without bound off the data); the fraction clipped is
  reported, and any clipping is a warning that the fit was leaving the achievable range.
  The final values are clipped to the same range (and counted).

``ensemble=K`` (``--fqe-ensemble``) trains ``K`` Q-heads side by side from independent
initializations (:class:`mmrl.evaluation.qnetwork.EnsembleHead`, one batched product) on
the same minibatches; the Q-function is their mean, so each iteration's targets bootstrap
from the mean and the part of a head's generalization error that depends on its
initialization is averaged out before it propagates (Lakshminarayanan et al. 2017 for
deep ensembles; issue 18 for the measured effect).

A third diagnostic, ``action_sensitivity``, is the mean ``|Q(s_t, a_t) - V(s_t)|`` over the
logged steps: how much the value of the logged action differs from the policy's value at the
same state. Near 0 means the fit barely depends on the action, so every policy gets about the
data's value.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces

from mmrl.config import ConfigError
from mmrl.data.episodes import LoggedData
from mmrl.data.episodes import load_logged_data as load_logged_data  # re-exported
from mmrl.evaluation.qnetwork import QNetwork, RawEncoder  # re-exported
from mmrl.policies import Policy, check_spaces

FEATURE_MODES = ("policy", "raw")
_CHUNK = 1024  # states per forward pass when sweeping the whole dataset


# ---------------------------------------------------------------------------- logged data
# The episode view of a dataset (LoggedData, load_logged_data) lives in mmrl.data.episodes,
# read by the one Minari reader; both names stay importable from here.


# ---------------------------------------------------------------------------- the policy's view
@dataclasses.dataclass
class PolicyOutputs:
    """The policy evaluated on every logged state.

    Attributes:
        actions: ``(S,)`` int64 or ``(S, d)`` float32 deterministic (greedy) actions.
        log_probs: ``(S, A)`` float32 action log-probabilities (discrete actor-critic
            policies), else ``None``.
        logged_log_prob: ``(N,)`` float64 log-likelihood of each logged action, or ``None``
            for policies without a distribution (DQN).
        features: ``(S, F)`` float32 policy features, when requested.
    """

    actions: np.ndarray
    log_probs: np.ndarray | None
    logged_log_prob: np.ndarray | None
    features: np.ndarray | None


def _features(policy: Any, obs_t: Any) -> th.Tensor:
    """The features the policy's value estimate is built on (its critic's extractor)."""
    extractor = getattr(policy, "vf_features_extractor", None) or getattr(
        policy, "features_extractor", None
    )
    if extractor is None and hasattr(policy, "q_net"):  # DQN
        extractor = policy.q_net.features_extractor
    if extractor is None:
        raise ConfigError(
            f"--fqe-features policy: {type(policy).__name__} has no features extractor; "
            "use --fqe-features raw"
        )
    return policy.extract_features(obs_t, extractor)


@th.no_grad()
def policy_outputs(
    policy: Any, data: LoggedData, observations: Mapping[str, np.ndarray], with_features: bool
) -> PolicyOutputs:
    """Runs the policy over every logged state in chunks of :data:`_CHUNK`.

    Args:
        policy: An SB3 policy (in eval mode).
        data: The logged data.
        observations: ``data.observations``, normalized as the policy expects.
        with_features: Also return the policy's features (for ``--fqe-features policy``).
    """
    policy.set_training_mode(False)
    has_dist = hasattr(policy, "get_distribution")
    actions, log_probs, feats = [], [], []
    for start in range(0, data.n_states, _CHUNK):
        idx = np.arange(start, min(start + _CHUNK, data.n_states))
        batch = {k: v[idx] for k, v in observations.items()}
        act, _ = policy.predict(batch, deterministic=True)
        actions.append(np.asarray(act))
        obs_t, _ = policy.obs_to_tensor(batch)
        if has_dist and data.discrete:
            dist = policy.get_distribution(obs_t).distribution
            log_probs.append(th.log_softmax(dist.logits, dim=-1).cpu().numpy())
        if with_features:
            feats.append(_features(policy, obs_t).float().cpu().numpy())
    lp = np.concatenate(log_probs) if log_probs else None
    if lp is not None:
        logged = lp[data.state_idx, data.actions].astype(np.float64)
    elif has_dist:
        logged = np.empty(data.n_transitions, dtype=np.float64)
        for start in range(0, data.n_transitions, _CHUNK):
            rows = slice(start, min(start + _CHUNK, data.n_transitions))
            obs_t, _ = policy.obs_to_tensor(
                {k: v[data.state_idx[rows]] for k, v in observations.items()}
            )
            act_t = th.as_tensor(data.actions[rows], device=policy.device)
            if getattr(policy, "squash_output", False):
                act_t = policy.scale_action(act_t)  # the distribution lives in [-1, 1]
            dist = policy.get_distribution(obs_t)
            logged[rows] = dist.log_prob(act_t).double().cpu().numpy()
    else:
        logged = None
    return PolicyOutputs(
        actions=np.concatenate(actions),
        log_probs=lp,
        logged_log_prob=logged,
        features=np.concatenate(feats) if feats else None,
    )


def agreement(outputs: PolicyOutputs, data: LoggedData) -> float:
    """Accuracy of the greedy actions (discrete) or their mean absolute error (continuous)
    against the logged actions."""
    greedy = outputs.actions[data.state_idx]
    if data.discrete:
        return float(np.mean(greedy.reshape(-1) == data.actions))
    return float(np.mean(np.abs(greedy.reshape(data.actions.shape) - data.actions)))


# ---------------------------------------------------------------------------- FQE
@dataclasses.dataclass
class FQEResult:
    """Outcome of Fitted Q Evaluation.

    Attributes:
        value: Estimated discounted return of the policy from the logged initial states.
        initial_values: ``(E,)`` estimated value of every logged initial state.
        iterations: FQE iterations run.
        td_error: Root mean squared Bellman residual of the final Q on the logged data.
        history: Estimate after every iteration (convergence diagnostics).
        seconds: Wall-clock time.
        q_taken: ``(N,)`` final ``Q(s_t, a_t)`` of every logged step (doubly robust's model).
        state_values: ``(S,)`` final ``V(s) = E_pi Q(s, .)`` of every logged state.
        heldout_td_error: Root mean squared Bellman residual on the held-out episodes
            (``td_error`` is on the fitted ones), or ``None`` without a held-out split.
        heldout_episodes: Episodes left out of the fit.
        return_bounds: ``(low, high)`` range of the final values (see the module notes).
        clipped_targets: Fraction of the regression targets, over all iterations, that
            fell outside the return bounds (and were clipped, with ``bounds_enforced``).
        clipped_values: Fraction of the final state values outside the bounds.
        action_sensitivity: Mean ``|Q(s_t, a_t) - V(s_t)|`` over the logged steps.
        bounds_enforced: Whether targets and values were clipped to the bounds (else only
            counted).
        setting: Name of the regularization setting chosen by
            :func:`mmrl.evaluation.fqe_selection.select_fqe`, or ``None`` (no selection).
        selection: Held-out Bellman RMSE of every setting that selection tried, or ``None``.
        ensemble: Q-heads whose mean is the Q-function (1: a single network).
        horizon: The time limit the returns were cut at, or ``None`` (bootstrapped through
            truncations).
    """

    value: float
    initial_values: np.ndarray
    iterations: int
    td_error: float
    history: list[float]
    seconds: float
    q_taken: np.ndarray | None = None
    state_values: np.ndarray | None = None
    heldout_td_error: float | None = None
    heldout_episodes: int = 0
    return_bounds: tuple[float, float] = (-math.inf, math.inf)
    clipped_targets: float = 0.0
    clipped_values: float = 0.0
    action_sensitivity: float = float("nan")
    bounds_enforced: bool = True
    setting: str | None = None
    selection: dict[str, float] | None = None
    ensemble: int = 1
    horizon: int | None = None

    @property
    def bounds_hit(self) -> bool:
        """Whether any target or final value left the return bounds."""
        return self.clipped_targets > 0.0 or self.clipped_values > 0.0

    def notes(self) -> list[str]:
        """Warnings for the report: the fit left the achievable return range."""
        if not self.bounds_hit:
            return []
        low, high = self.return_bounds
        what = "were clipped to it" if self.bounds_enforced else "lie outside it (not clipped)"
        return [
            f"FQE left the achievable return range [{low:.3g}, {high:.3g}]: "
            f"{100 * self.clipped_targets:.2g}% of targets and {100 * self.clipped_values:.2g}% "
            f"of final values {what}; the fit extrapolates off the data"
        ]

    def diagnostics(self) -> dict[str, Any]:
        """The fit's diagnostics as plain data (JSON)."""
        return {
            "td_rmse": self.td_error,
            "heldout_td_rmse": self.heldout_td_error,
            "heldout_episodes": self.heldout_episodes,
            "return_bounds": list(self.return_bounds),
            "clipped_targets": self.clipped_targets,
            "clipped_values": self.clipped_values,
            "bounds_hit": self.bounds_hit,
            "action_sensitivity": self.action_sensitivity,
            **({"setting": self.setting, "selection": self.selection} if self.selection else {}),
            **({"ensemble": self.ensemble} if self.ensemble > 1 else {}),
            "horizon": self.horizon,
        }


def default_iterations(gamma: float, max_episode_length: int) -> int:
    """``ceil(3 / (1 - gamma))`` (``gamma^k`` below 5 %), at most 400 and 3x the longest episode.

    Values travel one step per FQE iteration, so fewer iterations truncate the horizon;
    beyond the longest logged episode (x3 for the fit to settle) nothing new propagates.
    """
    horizon = 400 if gamma >= 1.0 else math.ceil(3.0 / (1.0 - gamma))
    return int(max(1, min(400, horizon, 3 * max_episode_length)))


def return_bounds(rewards: np.ndarray, gamma: float, steps: int) -> tuple[float, float]:
    """``(low, high)`` of any ``steps``-step discounted return with rewards in the logged range.

    ``[min(0, r_min), max(0, r_max)] * sum_{t<steps} gamma^t``: 0 is included because an
    episode can end (terminal states are worth 0). This bounds the ``steps``-th FQE iterate
    exactly (``V_0 = 0``) and tends to ``[r_min, r_max] / (1 - gamma)``.

    Args:
        rewards: ``(N,)`` logged rewards.
        gamma: Discount in ``(0, 1]``.
        steps: Horizon (FQE iterations so far), at least 0.
    """
    horizon = steps if gamma >= 1.0 else (1.0 - gamma**steps) / (1.0 - gamma)
    low = min(0.0, float(np.nanmin(rewards))) if len(rewards) else 0.0
    high = max(0.0, float(np.nanmax(rewards))) if len(rewards) else 0.0
    return low * horizon, high * horizon


def _heldout_episodes(n_episodes: int, holdout: float, seed: int) -> np.ndarray:
    """``(E,)`` bool: the episodes left out of the fit (``round(holdout * E)``, at least one
    when ``holdout > 0``, never all; none for a single episode)."""
    if not 0.0 <= holdout < 1.0:
        raise ConfigError(f"--fqe-holdout must be in [0, 1), got {holdout}")
    held = np.zeros(n_episodes, bool)
    if holdout > 0.0 and n_episodes >= 2:
        n_held = min(n_episodes - 1, max(1, round(holdout * n_episodes)))
        held[np.random.default_rng(seed).permutation(n_episodes)[:n_held]] = True
    return held


#: The extra flat input of ``raw`` FQE under a time limit (not a key any env emits).
_REMAINING_KEY = "_fqe_steps_remaining"


def resolve_horizon(horizon: str | int | None, data: LoggedData) -> int | None:
    """``--fqe-horizon`` for ``data``: ``auto`` is the dataset's time limit (``None`` when the
    dataset does not record one), ``none`` (or ``None``) bootstraps through truncations, a
    whole number is that limit (:func:`check_horizon`).

    Raises:
        ConfigError: Anything else, or a limit shorter than a logged episode.
    """
    if horizon is None or horizon == "none":
        return None
    if horizon == "auto":
        horizon = data.time_limit
    elif isinstance(horizon, str) and horizon.isdigit():
        horizon = int(horizon)
    check_horizon(data, horizon)
    return horizon


def check_horizon(data: LoggedData, horizon: Any) -> None:
    """The one check of a time limit: ``None``, or a whole number of steps no shorter than
    any logged episode (else the data was not collected under it).

    Raises:
        ConfigError: Naming what is wrong and what is allowed.
    """
    if horizon is None:
        return
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ConfigError(f"must be auto, none or a whole number of steps >= 1, got {horizon!r}",
                          field="fqe_horizon")  # fmt: skip
    longest = int(data.episode_lengths().max())
    if longest > horizon:
        raise ConfigError(
            f"{horizon} steps is shorter than the longest logged episode ({longest} steps) "
            f"of {data.dataset_id!r}: give the time limit the data was collected under",
            field="fqe_horizon",
        )


def time_limited_inputs(
    data: LoggedData, horizon: int | None
) -> tuple[np.ndarray | None, np.ndarray]:
    """What FQE needs to estimate returns cut at a time limit.

    An environment that truncates episodes after ``horizon`` steps makes the value of a
    state depend on the steps left, which no observation shows; bootstrapping through the
    truncation instead estimates the return of an episode that could go on. With ``gamma``
    0.99 and Navigation's 100 steps the difference is up to ``gamma^100 = 0.37`` of what the
    policy would earn after the limit: large for a policy that is slow or wanders until the
    limit, nothing for one that ends early. So, as in finite-horizon FQE, the Q-function
    reads the fraction of steps left and the step that reaches the limit does not bootstrap.

    Args:
        data: The logged episodes.
        horizon: Time limit in steps, or ``None`` (no limit: bootstrap through truncations).

    Returns:
        ``(remaining, bootstraps)``: ``(S,)`` float32 ``(horizon - t) / horizon`` of every
        state (``None`` without a limit) and ``(N,)`` bool, whether each transition's target
        adds ``gamma V(s')`` (not at a termination nor at the limit).

    Raises:
        ConfigError: As :func:`check_horizon`.
    """
    check_horizon(data, horizon)
    bootstraps = ~data.terminated
    if horizon is None:
        return None, bootstraps
    remaining = ((horizon - data.state_steps()) / horizon).astype(np.float32)
    return remaining, bootstraps & (data.step_of + 1 < horizon)


def fitted_q_evaluation(
    data: LoggedData,
    outputs: PolicyOutputs,
    gamma: float,
    *,
    features: str = "policy",
    observations: Mapping[str, np.ndarray] | None = None,
    iterations: int | None = None,
    steps_per_iter: int = 25,
    batch_size: int = 256,
    lr: float = 1e-3,
    hidden: int = 128,
    weight_decay: float = 0.0,
    dropout: float = 0.0,
    ensemble: int = 1,
    stochastic: bool = False,
    holdout: float = 0.1,
    clip_returns: bool = True,
    horizon: int | None = None,
    seed: int = 0,
    device: str | th.device = "cpu",
) -> FQEResult:
    """Fitted Q Evaluation of the policy behind ``outputs`` on ``data``.

    Args:
        data: Logged transitions.
        outputs: The policy on every logged state (:func:`policy_outputs`).
        gamma: Discount factor in ``(0, 1]``.
        features: ``policy`` (``outputs.features`` as inputs) or ``raw`` (observations).
        observations: Raw observations for ``raw`` (default ``data.observations``).
        iterations: FQE iterations (default :func:`default_iterations`).
        steps_per_iter: Adam steps per iteration.
        batch_size: Transitions per step.
        lr: Adam step size.
        hidden: Hidden width of the Q head.
        weight_decay: Decoupled weight decay (AdamW, Loshchilov & Hutter 2019) of the
            Q-network; 0 is plain Adam.
        dropout: Dropout probability after each hidden layer of the Q head.
        ensemble: Q-heads trained side by side from independent initializations (1: one);
            the Q-function, its targets and every reported number use their mean, so each
            iteration bootstraps from the ensemble mean rather than one network's errors.
        stochastic: Evaluate the stochastic policy (discrete: expectation over
            ``outputs.log_probs``) rather than the greedy one.
        holdout: Fraction of the episodes left out of the fit for the held-out Bellman
            error (0: fit on all, no held-out diagnostic).
        clip_returns: Clip targets and final values to :func:`return_bounds` (the
            divergence guard); ``False`` only reports how often they leave it.
        horizon: The environment's time limit (``data.time_limit``): estimate the return
            of episodes cut after ``horizon`` steps, as the environment runs them
            (:func:`time_limited_inputs`). ``None`` bootstraps through truncations: the
            value of a policy that could run on forever.
        seed: Seeds the network initialization, minibatch sampling and the held-out split.
        device: Torch device.

    Returns:
        The :class:`FQEResult`.

    Raises:
        ConfigError: ``gamma`` outside ``(0, 1]``, ``holdout`` outside ``[0, 1)``, an
            unknown feature mode, ``stochastic`` without action probabilities, or
            ``ensemble`` below 1.
    """
    if not 0.0 < gamma <= 1.0:
        raise ConfigError(f"--gamma must be in (0, 1], got {gamma}")
    if features not in FEATURE_MODES:
        raise ConfigError(f"--fqe-features must be one of {FEATURE_MODES}, got {features!r}")
    if stochastic and data.discrete and outputs.log_probs is None:
        raise ConfigError("--stochastic FQE needs a policy with an action distribution")
    if isinstance(ensemble, bool) or not isinstance(ensemble, int) or ensemble < 1:
        raise ConfigError(f"must be an integer >= 1 (Q-heads), got {ensemble!r}",
                          field="fqe_ensemble")  # fmt: skip
    remaining, bootstraps = time_limited_inputs(data, horizon)
    held_episodes = _heldout_episodes(data.n_episodes, holdout, seed)
    t0 = time.perf_counter()
    device = th.device(device)
    gen = th.Generator().manual_seed(seed)
    th.manual_seed(seed)
    iterations = iterations or default_iterations(gamma, int(data.episode_lengths().max()))

    # ---- inputs: precomputed features, or raw observations fed to a trainable encoder
    if features == "policy":
        if outputs.features is None:
            raise ValueError("policy_outputs(..., with_features=True) is needed for 'policy'")
        # Standardized per dimension: extractor outputs can sit far from zero with very
        # different scales (e.g. post-ReLU means of ~20), which slows the regression a lot.
        raw_feats = outputs.features.astype(np.float32)
        scale = raw_feats.std(axis=0) + 1e-6
        raw_feats = (raw_feats - raw_feats.mean(axis=0)) / scale
        if remaining is not None:
            raw_feats = np.concatenate([raw_feats, remaining[:, None]], axis=1)
        feats = th.as_tensor(raw_feats, device=device)
        net = QNetwork(feats.shape[1], data.action_space, hidden, dropout=dropout,
                       members=ensemble).to(device)  # fmt: skip

        def states(idx: th.Tensor) -> Any:
            return feats[idx]
    else:
        raw = dict(observations if observations is not None else data.observations)
        space = data.observation_space
        if remaining is not None:  # one more flat input beside the observation's keys
            raw[_REMAINING_KEY] = remaining[:, None]
            space = spaces.Dict({**space.spaces, _REMAINING_KEY: spaces.Box(0, 1, (1,))})
        tensors = {k: th.as_tensor(v, device=device) for k, v in raw.items()}
        encoder = RawEncoder(space)
        net = QNetwork(encoder.output_dim, data.action_space, hidden, encoder, dropout=dropout,
                       members=ensemble)  # fmt: skip
        net = net.to(device)

        def states(idx: th.Tensor) -> Any:
            return {k: v[idx] for k, v in tensors.items()}

    # ---- the evaluated policy at every state: weights over actions or the action itself
    if data.discrete:
        n_actions = int(data.action_space.n)
        if stochastic:
            pi = th.as_tensor(np.exp(outputs.log_probs), device=device)
        else:
            pi = th.nn.functional.one_hot(
                th.as_tensor(outputs.actions, device=device).long(), n_actions
            ).float()
    else:
        pi = th.as_tensor(outputs.actions, dtype=th.float32, device=device)
    actions = th.as_tensor(data.actions, device=device)
    rewards = th.as_tensor(data.rewards, dtype=th.float32, device=device)
    cont = th.as_tensor(bootstraps, dtype=th.float32, device=device)
    s_idx = th.as_tensor(data.state_idx, device=device)
    n_idx = s_idx + 1
    first = th.as_tensor(data.first_idx, device=device)
    all_steps = th.arange(data.n_transitions, device=device)

    @th.no_grad()
    def values(model: QNetwork, idx: th.Tensor) -> th.Tensor:
        """``V(s) = E_pi Q(s, a)`` for states ``idx`` in chunks."""
        out = []
        for chunk in th.split(idx, 4096):
            if data.discrete:
                out.append((model(states(chunk)) * pi[chunk]).sum(-1))
            else:
                out.append(model(states(chunk), pi[chunk]))
        return th.cat(out)

    def q_taken(model: QNetwork, idx: th.Tensor, per_member: bool = False) -> th.Tensor:
        """``Q(s_i, a_i)`` for transitions ``idx`` (``(members, B)`` with ``per_member``)."""
        if data.discrete:
            q = model(states(s_idx[idx]), per_member=True)
            taken = actions[idx].long()[None, :, None].expand(len(q), -1, 1)
            q = q.gather(2, taken).squeeze(2)
        else:
            q = model(states(s_idx[idx]), actions[idx], per_member=True)
        return q if per_member else q.mean(0)

    held = th.as_tensor(held_episodes[data.episode_of])
    fit_idx = th.nonzero(~held).squeeze(1).to(device)
    held_idx = th.nonzero(held).squeeze(1).to(device)

    def bounded(x: th.Tensor, steps: int) -> tuple[th.Tensor, int]:
        """``x`` clipped to the ``steps``-step return range, and how many entries were."""
        low, high = return_bounds(data.rewards, gamma, steps)
        outside = int(((x < low) | (x > high)).sum())
        return (x.clamp(low, high) if clip_returns else x), outside

    optimizer = (
        th.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        if weight_decay > 0
        else th.optim.Adam(net.parameters(), lr=lr)
    )
    n = data.n_transitions
    history = []
    clipped = 0
    next_v = th.zeros(n, device=device)  # V_0 = 0: the first fit regresses on rewards
    for k in range(1, iterations + 1):
        # The k-th iterate is a k-step return: targets outside that range can only come from
        # extrapolation of the previous Q, so they are clipped before they compound.
        targets, outside = bounded(rewards + gamma * cont * next_v, k)
        clipped += outside
        net.train()
        for _ in range(steps_per_iter):
            pick = th.randint(len(fit_idx), (min(batch_size, len(fit_idx)),), generator=gen)
            idx = fit_idx[pick.to(device)]
            # Every member regresses the same (ensemble-mean) targets.
            q = q_taken(net, idx, per_member=True)
            loss = th.nn.functional.mse_loss(q, targets[idx].expand_as(q))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        frozen = copy.deepcopy(net)
        next_v = values(frozen, n_idx)
        history.append(float(values(frozen, first).mean()))
    with th.no_grad():
        target, _ = bounded(rewards + gamma * cont * values(net, n_idx), iterations + 1)
        taken = th.cat([q_taken(net, c) for c in th.split(all_steps, 4096)])
        residual = (taken - target).pow(2)
    td = float(residual[fit_idx].mean().sqrt())
    heldout_td = float(residual[held_idx].mean().sqrt()) if len(held_idx) else None
    all_values, outside = bounded(values(net, th.arange(data.n_states, device=device)), iterations)
    taken, _ = bounded(taken, iterations)
    all_values = all_values.cpu().numpy().astype(np.float64)
    q_logged = taken.cpu().numpy().astype(np.float64)
    initial = all_values[data.first_idx]
    return FQEResult(
        value=float(initial.mean()),
        initial_values=initial,
        iterations=iterations,
        td_error=td,
        history=history,
        seconds=time.perf_counter() - t0,
        q_taken=q_logged,
        state_values=all_values,
        heldout_td_error=heldout_td,
        heldout_episodes=int(held_episodes.sum()),
        return_bounds=return_bounds(data.rewards, gamma, iterations),
        clipped_targets=clipped / (n * iterations),
        clipped_values=outside / data.n_states,
        action_sensitivity=float(np.mean(np.abs(q_logged - all_values[data.state_idx]))),
        bounds_enforced=clip_returns,
        ensemble=ensemble,
        horizon=horizon,
    )


# ---------------------------------------------------------------------------- the whole report
@dataclasses.dataclass
class OfflineResult:
    """Everything ``mmrl evaluate-offline`` reports for one model.

    Attributes:
        label: The model's name.
        dataset_id: The dataset.
        gamma: Discount factor.
        episodes: Logged episodes used.
        transitions: Logged transitions used.
        discrete: Whether actions are discrete.
        agreement: Accuracy of greedy actions (discrete) or mean absolute error
            (continuous) against the logged actions.
        log_likelihood: Mean log-likelihood per step of the logged actions (``None`` for
            policies without a distribution).
        fqe: The FQE estimate and diagnostics.
        behaviour_return: Mean undiscounted episode return in the data.
        behaviour_discounted_return: Mean discounted (``gamma``) episode return in the data.
        features: FQE input mode.
        seconds: Total wall-clock time.
    """

    label: str
    dataset_id: str
    gamma: float
    episodes: int
    transitions: int
    discrete: bool
    agreement: float
    log_likelihood: float | None
    fqe: FQEResult
    behaviour_return: float
    behaviour_discounted_return: float
    features: str
    seconds: float

    @property
    def agreement_name(self) -> str:
        """``accuracy`` or ``mean_abs_error``."""
        return "accuracy" if self.discrete else "mean_abs_error"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        return {
            "label": self.label,
            "dataset": self.dataset_id,
            "gamma": self.gamma,
            "episodes": self.episodes,
            "transitions": self.transitions,
            "action_agreement": {"metric": self.agreement_name, "value": self.agreement},
            "log_likelihood_per_step": self.log_likelihood,
            "fqe": {
                "value": self.fqe.value,
                "initial_value_std": float(self.fqe.initial_values.std()),
                "iterations": self.fqe.iterations,
                **self.fqe.diagnostics(),
                "features": self.features,
                "history": self.fqe.history,
                "seconds": round(self.fqe.seconds, 3),
            },
            "behaviour_return": self.behaviour_return,
            "behaviour_discounted_return": self.behaviour_discounted_return,
            "seconds": round(self.seconds, 3),
        }


def evaluate_offline(
    policy: Policy,
    data: LoggedData,
    gamma: float = 0.99,
    *,
    features: str = "policy",
    iterations: int | None = None,
    steps_per_iter: int = 25,
    stochastic: bool = False,
    horizon: str | int | None = "auto",
    seed: int = 0,
) -> OfflineResult:
    """Agreement, log-likelihood, FQE and behaviour return of a policy on logged data.

    ``policy`` is what :func:`mmrl.policies.load_policy` returns: the logged (raw)
    observations are normalized by it, as in training, before its network sees them.
    ``horizon``: FQE's time limit (:func:`resolve_horizon`; ``auto``, the dataset's).

    Raises:
        SpaceMismatchError: The model's spaces differ from the dataset's.
        ConfigError: Bad ``gamma`` or FQE settings.
    """
    t0 = time.perf_counter()
    check_spaces(policy, data.observation_space, data.action_space, f"dataset {data.dataset_id}")
    if features not in FEATURE_MODES:
        raise ConfigError(f"--fqe-features must be one of {FEATURE_MODES}, got {features!r}")
    observations = policy.normalize(data.observations)
    network = policy.policy
    if network is None:
        raise ConfigError(f"{policy.label}: has no network to evaluate offline (expert/random)")
    outputs = policy_outputs(network, data, observations, with_features=features == "policy")
    fqe = fitted_q_evaluation(
        data,
        outputs,
        gamma,
        features=features,
        observations=observations,
        iterations=iterations,
        steps_per_iter=steps_per_iter,
        stochastic=stochastic,
        horizon=resolve_horizon(horizon, data),
        seed=seed,
        device=network.device,
    )
    return offline_result(policy.label, data, outputs, fqe, gamma, features, t0)


def offline_result(
    label: str,
    data: LoggedData,
    outputs: PolicyOutputs,
    fqe: Any,
    gamma: float,
    features: str,
    t0: float,
) -> OfflineResult:
    """The :class:`OfflineResult` of a policy's outputs and FQE fit on ``data`` (``t0``: the
    :func:`time.perf_counter` when its evaluation started)."""
    ll = outputs.logged_log_prob
    return OfflineResult(
        label=label,
        dataset_id=data.dataset_id,
        gamma=gamma,
        episodes=data.n_episodes,
        transitions=data.n_transitions,
        discrete=data.discrete,
        agreement=agreement(outputs, data),
        log_likelihood=float(ll.mean()) if ll is not None else None,
        fqe=fqe,
        behaviour_return=float(data.episode_returns(1.0).mean()),
        behaviour_discounted_return=float(data.episode_returns(gamma).mean()),
        features=features,
        seconds=time.perf_counter() - t0,
    )
