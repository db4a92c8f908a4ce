"""Off-policy estimators on small MDPs whose true values are solved exactly.

The tabular MDP has 3 states and 2 actions, rewards ``R[s, a]``, transitions ``P[s, a, s']``
and a termination probability per state; the target policy's value is the solution of the
Bellman equations ``V = R_pi + gamma P_pi V`` (a 3x3 linear system). Tolerances are stated
in standard errors of the estimators over the logged episodes.
"""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from mmrl.densities import epsilon_mixture, point_mass_log_prob
from mmrl.evaluation.ope import (
    EpisodeMatrix,
    clip_weights,
    cumulative_weights,
    default_weight_clip,
    direct,
    doubly_robust,
    effective_sample_size,
    pdis,
    support_check,
    wpdis,
)

GAMMA = 0.9
R = np.array([[0.0, 1.0], [-2.0, -1.0], [3.0, 1.0]])
P = np.array(  # P[s, a, s'] among the three live states (rows sum to 1 - termination)
    [
        [[0.1, 0.6, 0.1], [0.2, 0.1, 0.5]],
        [[0.5, 0.1, 0.2], [0.1, 0.1, 0.6]],
        [[0.3, 0.3, 0.1], [0.6, 0.1, 0.1]],
    ]
)
START = np.array([1.0, 0.0, 0.0])
TARGET = np.array([[0.2, 0.8], [0.9, 0.1], [0.7, 0.3]])  # pi(a|s)
BEHAVIOUR = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])


def true_values(pi, p=P, r=R, gamma=GAMMA):
    """``(V, Q)`` of ``pi`` from the Bellman equations (termination = missing mass of P)."""
    r_pi = (pi * r).sum(1)
    p_pi = np.einsum("sa,sat->st", pi, p)
    v = np.linalg.solve(np.eye(len(r)) - gamma * p_pi, r_pi)
    q = r + gamma * p @ v
    return v, q


def simulate(mu, n, seed, p=P, r=R, max_steps=80):
    """``n`` episodes of behaviour ``mu``: per-step ``(episode, step, state, action, reward)``."""
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(n):
        s = rng.choice(3, p=START)
        for t in range(max_steps):
            a = rng.choice(2, p=mu[s])
            rows.append((e, t, s, a, r[s, a]))
            probs = np.append(p[s, a], 1.0 - p[s, a].sum())
            s = rng.choice(4, p=probs)
            if s == 3:
                break
    e, t, s, a, rew = (np.array(c) for c in zip(*rows))
    return e.astype(int), t.astype(int), s.astype(int), a.astype(int), rew.astype(float)


@pytest.fixture(scope="module")
def logged():
    return simulate(BEHAVIOUR, 4000, seed=0)


def _log_ratio(pi, mu, s, a):
    with np.errstate(divide="ignore"):
        return np.log(pi[s, a]) - np.log(mu[s, a])


def test_bellman_solution_matches_monte_carlo():
    v, _ = true_values(TARGET)
    e, _, _, _, rew = simulate(TARGET, 4000, seed=1)
    t = simulate(TARGET, 4000, seed=1)[1]
    returns = np.bincount(e, weights=rew * GAMMA**t)
    assert returns.mean() == pytest.approx(v @ START, abs=4 * returns.std() / np.sqrt(4000))


def test_importance_sampling_is_unbiased_and_weighted_is_consistent(logged):
    truth = true_values(TARGET)[0] @ START
    e, t, s, a, rew = logged
    layout = EpisodeMatrix.from_steps(e, t, e.max() + 1, GAMMA)
    lr = _log_ratio(TARGET, BEHAVIOUR, s, a)
    est = pdis(layout, rew, lr)
    w = cumulative_weights(layout.pad(lr))
    per_episode = (w * layout.pad(rew) * layout.discounts).sum(1)
    stderr = per_episode.std() / np.sqrt(len(per_episode))
    assert est.value == pytest.approx(truth, abs=3 * stderr)
    assert est.interval.low < truth < est.interval.high
    weighted = wpdis(layout, rew, lr)
    assert weighted.value == pytest.approx(truth, abs=3 * stderr)
    # The self-normalized form trades bias for variance: a narrower interval.
    assert weighted.interval.high - weighted.interval.low < est.interval.high - est.interval.low
    assert 1 < est.ess < layout.n_episodes and est.ess == weighted.ess
    assert not support_check(lr).mismatch


def test_importance_sampling_mean_over_small_datasets_is_the_truth():
    """Unbiasedness proper: the mean of PDIS over many small, independent datasets."""
    truth = true_values(TARGET)[0] @ START
    values = []
    for seed in range(60):
        e, t, s, a, rew = simulate(BEHAVIOUR, 30, seed=100 + seed)
        layout = EpisodeMatrix.from_steps(e, t, e.max() + 1, GAMMA)
        values.append(pdis(layout, rew, _log_ratio(TARGET, BEHAVIOUR, s, a), n_resamples=10).value)
    values = np.array(values)
    assert values.mean() == pytest.approx(truth, abs=3 * values.std() / np.sqrt(len(values)))
    assert values.std() > 0.1  # high variance on 30 episodes: what the intervals must show


def test_doubly_robust_with_an_exact_model_is_exact_per_episode():
    """Deterministic dynamics (a chain 0 -> 1 -> 2 -> end whatever the action): with the
    exact Q and V, every episode's DR term equals V(s0), so DR is exact on any sample and
    its interval has zero width, while PDIS on the same 9 episodes is far off."""
    p_chain = np.zeros_like(P)
    p_chain[0, :, 1] = 1.0
    p_chain[1, :, 2] = 1.0
    v, q = true_values(TARGET, p_chain)
    e, t, s, a, rew = simulate(BEHAVIOUR, 9, seed=4, p=p_chain)
    layout = EpisodeMatrix.from_steps(e, t, e.max() + 1, GAMMA)
    lr = _log_ratio(TARGET, BEHAVIOUR, s, a)
    for weighted in (False, True):
        est = doubly_robust(layout, rew, lr, q[s, a], (TARGET * q).sum(1)[s], weighted=weighted)
        assert est.value == pytest.approx(v @ START, abs=1e-12)
        assert est.interval.high - est.interval.low == pytest.approx(0.0, abs=1e-12)
    assert abs(pdis(layout, rew, lr).value - v @ START) > 1e-3


def test_doubly_robust_with_a_biased_model_stays_unbiased(logged):
    truth = true_values(TARGET)[0] @ START
    e, t, s, a, rew = logged
    layout = EpisodeMatrix.from_steps(e, t, e.max() + 1, GAMMA)
    lr = _log_ratio(TARGET, BEHAVIOUR, s, a)
    _, q = true_values(TARGET)
    q_bad = q + 1.5  # a model off by a constant: the direct estimate is off by 1.5
    bad_direct = direct("fqe", (TARGET * q_bad).sum(1)[s[t == 0]])
    assert abs(bad_direct.value - truth) > 1.0
    for weighted in (False, True):
        est = doubly_robust(layout, rew, lr, q_bad[s, a], (TARGET * q_bad).sum(1)[s],
                            weighted=weighted)  # fmt: skip
        assert est.value == pytest.approx(truth, abs=0.15), (weighted, est.value, truth)


def tabular_data(logged, features=None):
    """The logged episodes as :class:`LoggedData`: each episode's steps then its final
    (terminal) state, as the reader stores them; ``features(state_of)`` -> ``(S, F)`` (default:
    one-hot states). Returns ``(data, state_of)``."""
    from mmrl.data.episodes import LoggedData

    e, t, s, a, rew = logged
    n_ep = e.max() + 1
    lengths = np.bincount(e, minlength=n_ep)
    offsets = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    state_idx = offsets[e] + t
    n_states = int((lengths + 1).sum())
    state_of = np.full(n_states, 3)  # 3: the terminal state after each episode
    state_of[state_idx] = s
    obs = (np.eye(4)[state_of] if features is None else features(state_of)).astype(np.float32)
    terminated = np.zeros(len(e), bool)
    terminated[np.cumsum(lengths) - 1] = True
    space = spaces.Dict({"obs": spaces.Box(-np.inf, np.inf, obs.shape[1:], np.float32)})
    data = LoggedData("tabular", space, spaces.Discrete(2), {"obs": obs}, a, rew,
                      terminated, state_idx, offsets, e, t)  # fmt: skip
    return data, state_of


def test_fqe_is_biased_where_importance_sampling_is_not(logged):
    """FQE with features that alias states 1 and 2 cannot represent Q: it is biased, while
    PDIS on the same data is not. Both behaviours are pinned."""
    from mmrl.evaluation.offline import PolicyOutputs, fitted_q_evaluation

    truth = true_values(TARGET)[0] @ START
    e, t, s, a, rew = logged
    n_ep = e.max() + 1

    def alias(state_of):  # states 0 and 1 merged (the terminal state with them: never read)
        return np.stack([state_of != 2, state_of == 2], 1)

    data, state_of = tabular_data(logged, alias)
    n_states = data.n_states
    aliased = data.observations["obs"]
    probs = TARGET[np.minimum(state_of, 2)]
    outputs = PolicyOutputs(probs.argmax(1), np.log(probs), None, aliased)
    fqe = fitted_q_evaluation(data, outputs, GAMMA, iterations=40, steps_per_iter=30,
                              stochastic=True, seed=0)  # fmt: skip
    layout = EpisodeMatrix.from_steps(e, t, n_ep, GAMMA)
    est = pdis(layout, rew, _log_ratio(TARGET, BEHAVIOUR, s, a))
    assert abs(fqe.value - truth) > 0.3, (fqe.value, truth)  # biased
    assert est.interval.low < truth < est.interval.high  # unbiased, its interval covers
    assert fqe.q_taken.shape == (len(e),) and fqe.state_values.shape == (n_states,)


def test_support_mismatch_is_flagged():
    mu = np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])  # never action 1 in state 0
    _, _, s, a, _ = simulate(mu, 500, seed=5)
    lr = _log_ratio(TARGET, mu, s, a)
    check = support_check(lr)
    assert check.mismatch and "support mismatch" in check.note()
    # About the target's mass on action 1 in state 0, weighted by time spent there.
    assert 0.2 < 1 - check.coverage < 0.8
    _, _, s, a, _ = simulate(BEHAVIOUR, 500, seed=5)
    assert not support_check(_log_ratio(TARGET, BEHAVIOUR, s, a)).mismatch


def test_effective_sample_size():
    assert effective_sample_size(np.ones(10)) == pytest.approx(10)
    assert effective_sample_size(np.array([1e6, 1, 1, 1])) == pytest.approx(1.0, abs=1e-4)
    assert effective_sample_size(np.zeros(3)) == 0.0


def test_continuous_actions_with_gaussian_policies():
    """Two-step episodes, action in R, reward -(a - c_s)^2: the value is analytic."""
    rng = np.random.default_rng(0)
    n, centres = 8000, np.array([0.5, -0.3])
    m_pi, s_pi, m_mu, s_mu = 0.2, 0.5, 0.0, 1.0

    def log_normal(x, m, sd):
        return -0.5 * ((x - m) / sd) ** 2 - np.log(sd * np.sqrt(2 * np.pi))

    a = rng.normal(m_mu, s_mu, size=(n, 2))
    rew = -((a - centres) ** 2)
    truth = sum(-(((m_pi - c) ** 2) + s_pi**2) * GAMMA**k for k, c in enumerate(centres))
    e, t = np.repeat(np.arange(n), 2), np.tile([0, 1], n)
    layout = EpisodeMatrix.from_steps(e, t, n, GAMMA)
    lr = (log_normal(a, m_pi, s_pi) - log_normal(a, m_mu, s_mu)).reshape(-1)
    for fn in (pdis, wpdis):
        est = fn(layout, rew.reshape(-1), lr, n_resamples=300)
        assert est.interval.low - 0.02 < truth < est.interval.high + 0.02, (fn, est, truth)


def test_continuous_point_mass_behaviour_with_noise_is_still_unbiased():
    """The atom convention of mmrl.densities: steps where a deterministic expert acted get
    weight 0 under a Gaussian policy, the uniform-noise steps carry the estimate."""
    rng = np.random.default_rng(1)
    n, eps, space = 10000, 0.5, spaces.Box(-2.0, 2.0, (1,), np.float32)
    expert = np.full((n, 1), 1.5)
    noisy = rng.random(n) < eps
    a = np.where(noisy[:, None], rng.uniform(-2, 2, size=(n, 1)), expert)
    log_mu = epsilon_mixture(point_mass_log_prob(space, a, expert), space, eps)
    assert np.isinf(log_mu[~noisy]).all() and np.isfinite(log_mu[noisy]).all()
    m, sd = 0.0, 0.4  # target N(0, 0.4), well inside the bounds
    log_pi = -0.5 * ((a[:, 0] - m) / sd) ** 2 - np.log(sd * np.sqrt(2 * np.pi))
    rew = -(a[:, 0] ** 2)
    layout = EpisodeMatrix.from_steps(np.arange(n), np.zeros(n, int), n, GAMMA)
    est = pdis(layout, rew, log_pi - log_mu, n_resamples=300)
    assert est.interval.low - 0.01 < -(sd**2) < est.interval.high + 0.01
    assert not support_check(log_pi - log_mu).mismatch


def test_deterministic_continuous_target_is_refused():
    layout = EpisodeMatrix.from_steps(np.array([0]), np.array([0]), 1, GAMMA)
    with pytest.raises(ValueError, match="point mass"):
        pdis(layout, np.array([1.0]), np.array([np.inf]))


def test_weighted_is_without_any_consistent_episode_is_nan():
    layout = EpisodeMatrix.from_steps(np.array([0, 1]), np.array([0, 0]), 2, GAMMA)
    est = wpdis(layout, np.array([1.0, 2.0]), np.array([-np.inf, -np.inf]), n_resamples=10)
    assert np.isnan(est.value) and est.ess == 0.0 and "weight is 0" in est.notes[0]


# ---------------------------------------------------------------------------- FQE's guards
def _fqe(data, probs, **kwargs):
    """FQE of the stochastic policy ``probs`` (``(S, 2)``) on ``data``'s own features."""
    from mmrl.evaluation.offline import PolicyOutputs, fitted_q_evaluation

    feats = data.observations["obs"]
    outputs = PolicyOutputs(probs.argmax(1), np.log(probs), None, feats)
    settings = {"iterations": 40, "steps_per_iter": 30, "stochastic": True, "seed": 0}
    return fitted_q_evaluation(data, outputs, GAMMA, **{**settings, **kwargs})


def test_fqe_uses_the_action_to_tell_apart_policies_on_the_same_states(logged):
    """'Always action 0' and 'always action 1' visit the logged states alike; only Q's
    dependence on the action separates them. A Q-function of the state alone (the behaviour
    policy's value, the pull FQE showed on the benchmark) gives both the same number."""
    data, state_of = tabular_data(logged)
    values = {}
    for action in (0, 1):
        pi = np.full((3, 2), 1e-6)
        pi[:, action] = 1.0 - 1e-6
        truth = true_values(pi)[0] @ START
        fqe = _fqe(data, pi[np.minimum(state_of, 2)])
        assert fqe.value == pytest.approx(truth, abs=0.15), (action, fqe.value, truth)
        assert fqe.action_sensitivity > 0.3  # |Q(s, a_logged) - V(s)|, R differs by >= 1
        values[action] = fqe.value
    gap = abs(true_values(np.eye(2)[[0, 0, 0]])[0] - true_values(np.eye(2)[[1, 1, 1]])[0]) @ START
    assert gap > 1.0 and abs(values[0] - values[1]) > 0.8 * gap
    # The action-insensitive baseline: V of the behaviour policy for both.
    behaviour = true_values(BEHAVIOUR)[0] @ START
    assert min(abs(values[0] - behaviour), abs(values[1] - behaviour)) > 0.4


def test_fqe_reports_the_held_out_bellman_error(logged):
    """Fitted on 90 % of the episodes, the residual on the other 10 % is reported: about the
    fitted one where the features generalize (one-hot states), far above it where they
    cannot (a random vector per logged state: the fit memorizes its own episodes)."""
    small = tuple(x[logged[0] < 300] for x in logged)
    data, state_of = tabular_data(small)
    probs = TARGET[np.minimum(state_of, 2)]
    fqe = _fqe(data, probs)
    assert fqe.heldout_episodes == 30 and fqe.heldout_td_error is not None
    assert fqe.heldout_td_error < 1.3 * fqe.td_error, (fqe.heldout_td_error, fqe.td_error)
    rng = np.random.default_rng(0)
    noise, _ = tabular_data(small, lambda states: rng.normal(size=(len(states), 64)))
    memorized = _fqe(noise, probs, steps_per_iter=100)
    assert memorized.heldout_td_error > 1.5 * memorized.td_error
    assert memorized.diagnostics()["heldout_td_rmse"] == memorized.heldout_td_error
    whole = _fqe(data, probs, holdout=0.0)
    assert whole.heldout_td_error is None and whole.heldout_episodes == 0
    with pytest.raises(ValueError, match="holdout"):
        _fqe(data, probs, holdout=1.0)


def test_return_bounds():
    from mmrl.evaluation.offline import return_bounds

    rewards = np.array([-0.5, 0.2, 2.0])
    assert return_bounds(rewards, 0.5, 1) == (-0.5, 2.0)  # the first iterate: one reward
    assert return_bounds(rewards, 0.5, 3) == pytest.approx((-0.875, 3.5))
    assert return_bounds(rewards, 1.0, 4) == (-2.0, 8.0)
    # Positive rewards only: an episode can still end at once, so 0 is the floor.
    assert return_bounds(np.array([1.0, 3.0]), 0.9, 10**6) == pytest.approx((0.0, 30.0))


def test_fqe_divergence_guard_keeps_values_in_the_achievable_range(logged):
    """A fit that runs away (here a far too large step size) leaves the range of returns
    the logged rewards allow: the guard clips targets and values to it and says so."""
    small = tuple(x[logged[0] < 200] for x in logged)
    data, state_of = tabular_data(small)
    probs = TARGET[np.minimum(state_of, 2)]
    wild = _fqe(data, probs, iterations=20, steps_per_iter=10, lr=1.0, clip_returns=False)
    low, high = wild.return_bounds
    assert wild.state_values.min() < low or wild.state_values.max() > high
    assert wild.bounds_hit and "not clipped" in wild.notes()[0]
    guarded = _fqe(data, probs, iterations=20, steps_per_iter=10, lr=1.0)
    assert low <= guarded.state_values.min() and guarded.state_values.max() <= high
    assert low <= guarded.q_taken.min() and guarded.q_taken.max() <= high
    assert guarded.clipped_targets > 0 and "were clipped" in guarded.notes()[0]
    # A sound fit stays inside: here the bounds are tight (action 0 in state 2 earns the
    # largest reward and may repeat), so regression noise grazes them in a few targets only.
    sound = _fqe(data, probs)
    assert sound.clipped_values == 0.0 and sound.clipped_targets < 1e-3


# ---------------------------------------------------------------------------- weight clipping
def test_weight_clipping_bounds_the_weights_and_raises_the_ess(logged):
    e, t, s, a, rew = logged
    layout = EpisodeMatrix.from_steps(e, t, e.max() + 1, GAMMA)
    lr = _log_ratio(TARGET, BEHAVIOUR, s, a)
    w = cumulative_weights(layout.pad(lr))
    clip = default_weight_clip(layout.n_episodes)
    assert clip == pytest.approx(np.sqrt(4000)) and w.max() > clip
    clipped, report = clip_weights(w, clip)
    assert clipped.max() == clip and np.array_equal(clipped[w <= clip], w[w <= clip])
    assert report.clipped_episodes == int((w > clip).any(axis=1).sum()) > 0
    for fn, name in ((pdis, "cpdis"), (wpdis, "cwpdis")):
        plain, cut = fn(layout, rew, lr), fn(layout, rew, lr, clip=clip)
        assert cut.estimator == name and plain.clip is None
        assert cut.clip.ess_unclipped == pytest.approx(plain.ess)
        assert cut.ess > plain.ess
        assert cut.to_dict()["clip"]["threshold"] == clip
    for weighted, name in ((False, "cdr"), (True, "cwdr")):
        _, q = true_values(TARGET)
        est = doubly_robust(layout, rew, lr, q[s, a], (TARGET * q).sum(1)[s], weighted=weighted,
                            clip=clip)  # fmt: skip
        assert est.estimator == name and est.clip.clipped_episodes == report.clipped_episodes
    # Clipping above every weight changes nothing: the unclipped estimator is the limit.
    unclipped = pdis(layout, rew, lr).value
    assert pdis(layout, rew, lr, clip=w.max() + 1).value == pytest.approx(unclipped)
    assert clip_weights(w, None) == (w, None)
    with pytest.raises(ValueError, match="weight_clip"):
        pdis(layout, rew, lr, clip=0.0)


def test_weight_clipping_lowers_the_variance_over_datasets():
    """Over many small datasets a long-horizon target (far from the behaviour policy) makes
    PDIS swing; clipped PDIS swings less, at the price of a bias the test also bounds."""
    target = np.array([[0.05, 0.95], [0.95, 0.05], [0.9, 0.1]])
    truth = true_values(target)[0] @ START
    plain, cut = [], []
    for seed in range(60):
        e, t, s, a, rew = simulate(BEHAVIOUR, 40, seed=300 + seed)
        layout = EpisodeMatrix.from_steps(e, t, e.max() + 1, GAMMA)
        lr = _log_ratio(target, BEHAVIOUR, s, a)
        plain.append(pdis(layout, rew, lr, n_resamples=10).value)
        cut.append(pdis(layout, rew, lr, clip=default_weight_clip(40), n_resamples=10).value)
    plain, cut = np.array(plain), np.array(cut)
    assert cut.std() < 0.7 * plain.std(), (cut.std(), plain.std())
    assert np.sqrt(np.mean((cut - truth) ** 2)) < np.sqrt(np.mean((plain - truth) ** 2))


def test_fqe_selection_keeps_the_setting_of_lowest_held_out_bellman_error(logged):
    """On features that invite memorizing (one-hot states plus a random vector per logged
    state), the wide unregularized Q-network fits its own episodes (fitted Bellman RMSE far
    below the held-out one); with dropout it cannot memorize. Selection must keep the fit of
    lowest held-out RMSE, that one, and report every setting it tried. (The held-out
    residual is a proxy: the test pins the rule, not that the chosen value is closer.)"""
    from mmrl.evaluation.fqe_selection import FQESetting, select_fqe
    from mmrl.evaluation.offline import PolicyOutputs

    small = tuple(x[logged[0] < 300] for x in logged)
    rng = np.random.default_rng(0)
    data, state_of = tabular_data(
        small, lambda st: np.concatenate([np.eye(4)[st], rng.normal(size=(len(st), 16))], 1)
    )
    probs = TARGET[np.minimum(state_of, 2)]
    outputs = PolicyOutputs(probs.argmax(1), np.log(probs), None, data.observations["obs"])
    grid = (FQESetting("wide", hidden=256), FQESetting("wide-drop", hidden=256, dropout=0.5))
    kwargs = {"iterations": 40, "steps_per_iter": 100, "stochastic": True, "seed": 0}
    chosen = select_fqe(data, outputs, GAMMA, grid=grid, **kwargs)
    wide = _fqe(data, probs, hidden=256, steps_per_iter=100)
    assert wide.heldout_td_error > 3 * wide.td_error  # the case overfits as built
    assert set(chosen.selection) == {"wide", "wide-drop"}
    assert chosen.selection["wide"] == pytest.approx(wide.heldout_td_error)
    assert chosen.setting == "wide-drop", chosen.selection
    assert chosen.heldout_td_error == min(chosen.selection.values())
    assert chosen.diagnostics()["setting"] == "wide-drop"
    assert "setting" not in wide.diagnostics()  # no selection, no entry
    with pytest.raises(ValueError, match="--fqe-holdout"):
        select_fqe(data, outputs, GAMMA, grid=grid, holdout=0.0, **kwargs)
    with pytest.raises(ValueError, match="unique"):
        select_fqe(data, outputs, GAMMA, grid=grid[:1] * 2, **kwargs)


# ---------------------------------------------------------------------------- Q ensembles
def test_ensemble_head_members_are_independent():
    import torch as th

    from mmrl.evaluation.qnetwork import EnsembleHead

    th.manual_seed(0)
    head = EnsembleHead(3, 5, 8, 2)
    out = head(th.randn(4, 5))
    assert out.shape == (3, 4, 2)
    assert not th.allclose(out[0], out[1])  # independent initializations
    out[0].sum().backward()  # member 0's output depends on member 0's parameters only
    assert all(w.grad[1:].abs().sum() == 0 and w.grad[0].abs().sum() > 0 for w in head.weights)


def test_fqe_ensemble_is_the_mean_of_its_members_and_converges(logged):
    """``ensemble=1`` is the single network, bit for bit; five heads converge to the truth
    on one-hot states as one does, and their disagreement is averaged out of the targets."""
    data, state_of = tabular_data(tuple(x[logged[0] < 1000] for x in logged))
    probs = TARGET[np.minimum(state_of, 2)]
    truth = true_values(TARGET)[0] @ START
    single = _fqe(data, probs)
    assert _fqe(data, probs, ensemble=1).value == single.value
    five = _fqe(data, probs, ensemble=5)
    assert five.value == pytest.approx(truth, abs=0.2), (five.value, truth)
    assert five.value != single.value
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=r"fqe_ensemble.*integer >= 1"):
            _fqe(data, probs, iterations=2, ensemble=bad)


def finite_horizon_value(pi, horizon, p=P, r=R, gamma=GAMMA):
    """``V_0 @ START`` of ``pi`` when episodes are cut after ``horizon`` steps (backward
    induction from ``V_horizon = 0``)."""
    r_pi, p_pi = (pi * r).sum(1), np.einsum("sa,sat->st", pi, p)
    v = np.zeros(len(r))
    for _ in range(horizon):
        v = r_pi + gamma * p_pi @ v
    return float(v @ START)


def time_limited_data(horizon, n=3000, seed=1):
    """Behaviour episodes cut after ``horizon`` steps, as :class:`LoggedData` whose
    ``terminated`` marks only true terminations (a truncated episode's final state is a live
    one) and ``time_limit`` is ``horizon``. Returns ``(data, state_of)``."""
    e, t, s, a, rew = simulate(BEHAVIOUR, n, seed=seed, max_steps=horizon)
    data, state_of = tabular_data((e, t, s, a, rew))
    rng = np.random.default_rng(seed + 1)
    last = np.cumsum(np.bincount(e)) - 1
    cut = t[last] == horizon - 1
    # ``simulate`` stops at the limit without drawing the next state: draw it, so truncated
    # episodes end in a live state (terminating instead with its probability).
    for i in np.flatnonzero(cut):
        probs = np.append(P[s[last[i]], a[last[i]]], 1.0 - P[s[last[i]], a[last[i]]].sum())
        nxt = rng.choice(4, p=probs)
        data.terminated[last[i]] = nxt == 3
        state_of[data.state_idx[last[i]] + 1] = nxt
    data.observations["obs"] = np.eye(4, dtype=np.float32)[state_of]
    data.time_limit = horizon
    return data, state_of


@pytest.mark.parametrize("features", ["policy", "raw"])
def test_fqe_under_a_time_limit_estimates_the_cut_return(features):
    """Episodes cut after 3 steps are worth 1.76 to the target policy, which could earn 2.57
    if they went on. Bootstrapping through the truncations estimates the 2.57 (the bias the
    time limit puts on FQE); with ``horizon`` FQE reads the steps left, does not bootstrap at
    the limit, and finds the 1.76. Bad horizons are refused, naming the longest episode."""
    from mmrl.config import ConfigError
    from mmrl.evaluation.offline import time_limited_inputs

    horizon = 3
    data, state_of = time_limited_data(horizon)
    probs = TARGET[np.minimum(state_of, 2)]
    cut, endless = finite_horizon_value(TARGET, horizon), true_values(TARGET)[0] @ START
    assert endless - cut > 0.8
    bootstrapped = _fqe(data, probs, features=features)
    limited = _fqe(data, probs, features=features, horizon=horizon)
    assert bootstrapped.value == pytest.approx(endless, abs=0.25), (bootstrapped.value, endless)
    assert limited.value == pytest.approx(cut, abs=0.15), (limited.value, cut)
    assert limited.horizon == horizon and limited.diagnostics()["horizon"] == horizon

    remaining, bootstraps = time_limited_inputs(data, horizon)
    steps = data.state_steps()
    assert remaining[data.first_idx].tolist() == [1.0] * data.n_episodes
    assert np.allclose(remaining, (horizon - steps) / horizon)
    assert not bootstraps[data.step_of == horizon - 1].any()
    assert (
        bootstraps[data.step_of < horizon - 1] == ~data.terminated[data.step_of < horizon - 1]
    ).all()
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="fqe_horizon"):
            time_limited_inputs(data, bad)
    with pytest.raises(ConfigError, match=r"longest logged episode \(3 steps\)"):
        time_limited_inputs(data, 2)
