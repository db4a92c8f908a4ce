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
    cumulative_weights,
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


def test_fqe_is_biased_where_importance_sampling_is_not(logged):
    """FQE with features that alias states 1 and 2 cannot represent Q: it is biased, while
    PDIS on the same data is not. Both behaviours are pinned."""
    from mmrl.data.episodes import LoggedData
    from mmrl.evaluation.offline import PolicyOutputs, fitted_q_evaluation

    truth = true_values(TARGET)[0] @ START
    e, t, s, a, rew = logged
    n_ep = e.max() + 1
    # States: each episode's steps then its final (terminal) state, as LoggedData stores them.
    lengths = np.bincount(e, minlength=n_ep)
    offsets = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    state_idx = offsets[e] + t
    n_states = int((lengths + 1).sum())
    state_of = np.zeros(n_states, int)
    state_of[state_idx] = s
    aliased = np.stack([state_of != 2, state_of == 2], 1).astype(np.float32)  # 0 and 1 merged
    terminated = np.zeros(len(e), bool)
    terminated[np.cumsum(lengths) - 1] = True
    space = spaces.Dict({"obs": spaces.Box(0, 1, (2,), np.float32)})
    data = LoggedData("tabular", space, spaces.Discrete(2), {"obs": aliased}, a, rew,
                      terminated, state_idx, offsets, e, t)  # fmt: skip
    probs = TARGET[state_of]
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
