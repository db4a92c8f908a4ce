"""FQE model selection by held-out Bellman error (``--fqe-select``).

A Q-network that fits the logged episodes it saw and not the states next to them gives FQE
estimates that are biased towards the data's value; its Bellman residual on episodes left out
of the fit is the symptom (:func:`mmrl.evaluation.offline.fitted_q_evaluation` reports it).
:func:`select_fqe` fits one FQE per setting of a small, fixed grid of regularizers on the same
fitted / held-out episode split and keeps the fit with the lowest held-out Bellman RMSE
(earlier settings win ties, so the grid is ordered from the default to the most
regularized). Nothing about the policies' true values enters the choice: only the logged
data, as in the model selection of Voloshin et al. 2021 ("Empirical Study of Off-Policy
Policy Evaluation for Reinforcement Learning") and Paine et al. 2020 ("Hyperparameter
Selection for Offline Reinforcement Learning"), which use held-out TD error as one signal.

The residual is measured against each fit's own targets, so it is a proxy: a Q-function
that is smooth where the data has no next state can have a low residual and a biased value.
The report gives every setting's held-out RMSE so the choice can be checked.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from mmrl.config import ConfigError
from mmrl.data.episodes import LoggedData
from mmrl.evaluation.offline import FQEResult, PolicyOutputs, fitted_q_evaluation

__all__ = ["FQE_GRID", "FQESetting", "select_fqe"]


@dataclasses.dataclass(frozen=True)
class FQESetting:
    """One regularization setting of the FQE Q-network.

    Attributes:
        name: Its name in reports.
        hidden: Hidden width of the Q head.
        weight_decay: Decoupled weight decay (AdamW); 0 is plain Adam.
        dropout: Dropout after each hidden layer.
    """

    name: str
    hidden: int = 128
    weight_decay: float = 0.0
    dropout: float = 0.0

    def kwargs(self) -> dict[str, Any]:
        """The :func:`fitted_q_evaluation` arguments of this setting."""
        return {"hidden": self.hidden, "weight_decay": self.weight_decay, "dropout": self.dropout}


#: The default grid, from the unregularized default to the most regularized: a narrower
#: head, decoupled weight decay, dropout. Small on purpose: each setting is one more FQE fit.
FQE_GRID: tuple[FQESetting, ...] = (
    FQESetting("h128"),
    FQESetting("h32", hidden=32),
    FQESetting("h128-wd0.1", weight_decay=0.1),
    FQESetting("h128-drop0.2", dropout=0.2),
)


def select_fqe(
    data: LoggedData,
    outputs: PolicyOutputs,
    gamma: float,
    *,
    grid: Sequence[FQESetting] = FQE_GRID,
    holdout: float = 0.1,
    **kwargs: Any,
) -> FQEResult:
    """FQE with the grid setting of lowest held-out Bellman RMSE.

    Selection rule: every setting is fitted with the same ``seed`` (so the same held-out
    episodes, :func:`mmrl.evaluation.offline._heldout_episodes`); the one with the lowest
    ``heldout_td_error`` is returned, the first in grid order on ties. ``result.setting``
    names it and ``result.selection`` maps every setting to its held-out RMSE;
    ``result.seconds`` covers all the fits.

    Args:
        data: Logged transitions.
        outputs: The policy on every logged state.
        gamma: Discount factor.
        grid: The settings to choose from (at least one; names unique).
        holdout: Fraction of held-out episodes, in ``(0, 1)``: the selection needs some.
        **kwargs: Passed to :func:`fitted_q_evaluation` for every setting (not ``hidden``,
            ``weight_decay`` or ``dropout``, which the grid sets).

    Returns:
        The selected :class:`FQEResult`.

    Raises:
        ConfigError: An empty grid, duplicate names, ``holdout`` 0, or a dataset with one
            episode (nothing to hold out).
    """
    if not grid:
        raise ConfigError("the FQE selection grid is empty")
    names = [s.name for s in grid]
    if len(set(names)) != len(names):
        raise ConfigError(f"FQE grid setting names must be unique, got {names}")
    if not 0.0 < holdout < 1.0:
        raise ConfigError(f"--fqe-select needs --fqe-holdout in (0, 1), got {holdout}")
    if data.n_episodes < 2:
        raise ConfigError("--fqe-select needs at least 2 episodes (one held out)")
    clash = {"hidden", "weight_decay", "dropout"} & set(kwargs)
    if clash:
        raise ConfigError(f"select_fqe sets {sorted(clash)} from the grid; do not pass them")
    t0 = time.perf_counter()
    best: FQEResult | None = None
    selection: dict[str, float] = {}
    for setting in grid:
        fit = fitted_q_evaluation(
            data, outputs, gamma, holdout=holdout, **setting.kwargs(), **kwargs
        )
        selection[setting.name] = float(fit.heldout_td_error)
        fit.setting = setting.name
        if best is None or fit.heldout_td_error < best.heldout_td_error:
            best = fit
    assert best is not None
    best.selection = selection
    best.seconds = time.perf_counter() - t0
    return best
