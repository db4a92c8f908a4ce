"""Retrace targets for Fitted Q Evaluation (``--fqe-lambda``).

One-step FQE regresses ``Q(s_t, a_t)`` on ``r_t + gamma V(s_{t+1})``: every iteration
bootstraps from the previous Q-network, so its per-step error on states it generalizes to
badly enters every target, compounded over the horizon. Retrace (Munos, Stepleton,
Harutyunyan & Bellemare 2016, "Safe and Efficient Off-Policy Reinforcement Learning", eq. 3)
replaces the one-step target by a multi-step one that follows the logged episode for as long
as the evaluated policy ``pi`` would plausibly have taken the same actions::

    G_t = r_t + gamma (1 - done_t) [ V(s_{t+1}) + c_{t+1} (G_{t+1} - Q(s_{t+1}, a_{t+1})) ]
    c_u = lambda * min(1, pi(a_u | s_u) / mu(a_u | s_u))

with ``mu`` the behaviour policy (its logged probabilities) and ``V(s) = E_pi Q(s, .)``. With
``c = 0`` it is FQE's target; with ``c = 1`` along the whole episode (``pi = mu``,
``lambda = 1``) it is the logged discounted return. For any traces in ``[0, pi / mu]`` the
operator's fixed point is still ``Q^pi`` (Munos et al., Theorem 1), so it trades no bias for
the faster propagation; truncating the ratio at 1 bounds the variance a product of ratios
would have (as in clipped PDIS). The recursion runs backwards over each episode, on all
episodes at once.
"""

from __future__ import annotations

import numpy as np
import torch as th

from mmrl.config import ConfigError

__all__ = ["check_trace_lambda", "retrace_targets", "trace_coefficients"]


def check_trace_lambda(trace_lambda: float) -> None:
    """Refuses a trace decay outside ``[0, 1]`` (``--fqe-lambda``).

    Raises:
        ConfigError: ``trace_lambda`` outside ``[0, 1]`` or not a number.
    """
    if not 0.0 <= trace_lambda <= 1.0:  # NaN fails too
        raise ConfigError(
            f"must be in [0, 1] (0: one-step FQE, 1: full Retrace traces), got {trace_lambda}",
            field="fqe_lambda",
        )


def trace_coefficients(
    target_prob: np.ndarray, behaviour_log_prob: np.ndarray, trace_lambda: float
) -> np.ndarray:
    """Retrace's ``c_t = lambda * min(1, pi(a_t|s_t) / mu(a_t|s_t))`` of every logged step.

    Args:
        target_prob: ``(N,)`` probability of each logged action under the evaluated policy
            (0 or 1 for a greedy policy).
        behaviour_log_prob: ``(N,)`` ``log mu(a_t|s_t)`` of each logged action.
        trace_lambda: Trace decay in ``[0, 1]``.

    Returns:
        ``(N,)`` float64 coefficients in ``[0, lambda]``.

    Raises:
        ConfigError: A bad ``trace_lambda``, or behaviour probabilities that are NaN or
            ``-inf`` (a logged action the behaviour policy could not take).
    """
    check_trace_lambda(trace_lambda)
    log_mu = np.asarray(behaviour_log_prob, dtype=np.float64)
    if np.isnan(log_mu).any() or np.isneginf(log_mu).any():
        raise ConfigError(
            "behaviour log-probabilities contain NaN or -inf (a logged action with "
            "probability 0): Retrace traces need mu(a|s) > 0 for every logged action"
        )
    with np.errstate(over="ignore"):
        ratio = np.asarray(target_prob, dtype=np.float64) * np.exp(-log_mu)
    return trace_lambda * np.minimum(1.0, ratio)


def retrace_targets(
    rewards: th.Tensor,
    continues: th.Tensor,
    next_values: th.Tensor,
    q_taken: th.Tensor,
    traces: th.Tensor,
    gamma: float,
    mask: th.Tensor,
) -> th.Tensor:
    """Retrace targets ``G_t`` of every logged step, all episodes at once.

    All inputs are padded per episode to ``(E, T)`` (steps after an episode's end are
    ignored; ``mask`` marks the real ones).

    Args:
        rewards: ``r_t``.
        continues: ``1 - terminated_t`` (a truncated last step bootstraps from ``V``).
        next_values: ``V(s_{t+1}) = E_pi Q(s_{t+1}, .)`` of the previous Q-network.
        q_taken: ``Q(s_t, a_t)`` of the previous Q-network.
        traces: ``c_t`` (:func:`trace_coefficients`).
        gamma: Discount.
        mask: ``(E, T)`` bool, real steps.

    Returns:
        ``(E, T)`` targets (0 at padded steps).
    """
    n_episodes, horizon = mask.shape
    out = th.zeros_like(rewards)
    # (G_{t+1} - Q_{t+1}) * c_{t+1}: 0 after an episode's last step, so that step's target
    # is the one-step FQE target.
    correction = th.zeros(n_episodes, dtype=rewards.dtype, device=rewards.device)
    for t in range(horizon - 1, -1, -1):
        target = rewards[:, t] + gamma * continues[:, t] * (next_values[:, t] + correction)
        out[:, t] = th.where(mask[:, t], target, th.zeros_like(target))
        correction = th.where(
            mask[:, t], traces[:, t] * (target - q_taken[:, t]), th.zeros_like(target)
        )
    return out
