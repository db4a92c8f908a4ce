"""Log-probabilities of actions under the behaviour policies ``mmrl collect`` runs.

Off-policy estimators reweight logged steps by ``pi(a|s) / mu(a|s)``, so ``mmrl collect``
logs ``log mu(a|s)`` of the action it executed (issue 18). Its behaviour policies are
mixtures: with probability ``epsilon`` a uniform random action, otherwise the base policy's
(the scripted expert, a greedy network, or a network's sampled action). One convention covers
discrete and continuous actions:

* **discrete**: ``log mu(a|s)`` is a log-probability (``<= 0``);
* **continuous**: ``log mu(a|s)`` is a log-density with respect to Lebesgue measure plus an
  atom at each deterministic policy's choice. An action the deterministic base policy chose
  (a point mass) is logged as ``+inf``; any density-bearing evaluation policy gives it weight
  ``exp(log pi - inf) = 0``, which is the exact Radon-Nikodym ratio (a density puts no mass
  on one point). Noisy steps carry ``log(epsilon) + log uniform density``, so
  ``E_mu[pi / mu] = 1`` still holds whenever ``epsilon > 0``.

Pure NumPy; sits in the bottom layer with :mod:`mmrl.spaces`.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from mmrl.errors import ConfigError

__all__ = ["epsilon_mixture", "finite_box", "point_mass_log_prob", "uniform_log_prob"]


def finite_box(space: spaces.Box) -> tuple[np.ndarray, np.ndarray]:
    """The bounds uniform random actions are drawn from: infinite bounds become ``[-1, 1]``."""
    low = np.where(np.isfinite(space.low), space.low, -1.0).astype(np.float64)
    high = np.where(np.isfinite(space.high), space.high, 1.0).astype(np.float64)
    return low, high


def uniform_log_prob(space: spaces.Space) -> float:
    """``log`` of the uniform distribution's probability (Discrete) or density (Box).

    Raises:
        ConfigError: A space other than Discrete or Box.
    """
    if isinstance(space, spaces.Discrete):
        return -float(np.log(space.n))
    if isinstance(space, spaces.Box):
        low, high = finite_box(space)
        return -float(np.sum(np.log(high - low)))
    raise ConfigError(f"uniform actions over {space} are not supported (Discrete or Box only)")


def point_mass_log_prob(
    space: spaces.Space, actions: np.ndarray, chosen: np.ndarray, atol: float = 1e-6
) -> np.ndarray:
    """``log mu(a|s)`` of a deterministic policy that chose ``chosen``.

    Args:
        space: The action space.
        actions: ``(n,)`` int or ``(n, d)`` float executed actions.
        chosen: The deterministic policy's actions, same shape.
        atol: Continuous actions within this distance count as the chosen one.

    Returns:
        ``(n,)`` float64: discrete ``0`` / ``-inf``; continuous ``+inf`` (the atom) / ``-inf``.
    """
    if isinstance(space, spaces.Discrete):
        same = np.asarray(actions).reshape(-1) == np.asarray(chosen).reshape(-1)
        return np.where(same, 0.0, -np.inf)
    n = len(actions)
    diff = np.abs(np.asarray(actions, np.float64).reshape(n, -1) - np.reshape(chosen, (n, -1)))
    return np.where(np.all(diff <= atol, axis=1), np.inf, -np.inf)


def epsilon_mixture(base_log_prob: np.ndarray, space: spaces.Space, epsilon: float) -> np.ndarray:
    """``log((1 - epsilon) mu_base(a|s) + epsilon * uniform(a))``, elementwise and stable.

    Args:
        base_log_prob: ``(n,)`` log-probabilities (or densities, ``+-inf`` allowed) of the
            executed actions under the base policy.
        space: The action space (for the uniform part).
        epsilon: Probability of a uniform random action, in ``[0, 1]``.

    Returns:
        ``(n,)`` float64.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ConfigError(f"must be in [0, 1], got {epsilon}", field="epsilon")
    base = np.asarray(base_log_prob, dtype=np.float64)
    if epsilon == 0.0:
        return base.copy()
    noise = np.log(epsilon) + uniform_log_prob(space)
    if epsilon == 1.0:
        return np.full_like(base, noise)
    with np.errstate(invalid="ignore"):  # logaddexp(+inf, x) = inf; only -inf - -inf warns
        return np.logaddexp(np.log1p(-epsilon) + base, noise)
