"""Ego vehicle: kinematic model in road coordinates and the meta-action controllers.

One step is ``DT`` seconds. Both action modes end in the same ``[steer, accel]`` command:
continuous actions give it directly; discrete meta-actions move a target lane and a cruise
speed level (as highway-env's ``DiscreteMetaAction``), which a lateral P-controller and a
speed controller turn into the command.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmrl.envs.driving.road import LANE_WIDTH

DT = 0.5
"""Seconds per step. Short episodes help learning: the decision point is 300-450 m ahead, so
an episode lasts about 30 (fast) to 65 (slow) steps."""
SPEED_LEVELS = np.array([10.0, 14.0, 18.0, 22.0, 26.0, 30.0])
"""Cruise speeds (m/s) the discrete ``faster``/``slower`` actions step through."""
V_MAX = 34.0
ACCEL_MAX, BRAKE_MAX = 3.0, 6.0
"""Acceleration at ``accel = +1`` and deceleration at ``accel = -1`` (m/s^2)."""
PSI_RATE, PSI_MAX = 0.5, 0.3
"""Heading rate at ``steer = +-1`` (rad/s) and the largest heading to the road (rad)."""
K_LAT = 1.4
"""Lateral gain (1/s) of the lane-keeping controller: a lane change takes about 3 steps."""


@dataclasses.dataclass
class EgoBatch:
    """Ego state of ``n`` copies, each ``(n,)``.

    Attributes:
        x, y: Position (m).  psi: Heading to the road, positive to the right (rad).
        v: Speed (m/s).  steer, accel: Last normalized command in ``[-1, 1]``.
        lane_target: Lane the discrete controller steers to.  level: Cruise speed level.
    """

    x: np.ndarray
    y: np.ndarray
    psi: np.ndarray
    v: np.ndarray
    steer: np.ndarray
    accel: np.ndarray
    lane_target: np.ndarray
    level: np.ndarray

    @classmethod
    def empty(cls, n: int) -> EgoBatch:
        """Placeholder egos for ``n`` copies (overwritten at reset)."""
        z = np.zeros(n)
        return cls(z.copy(), z.copy(), z.copy(), z.copy(), z.copy(), z.copy(),
                   np.zeros(n, np.int64), np.zeros(n, np.int64))  # fmt: skip

    def reset_rows(self, idx: np.ndarray, y: np.ndarray, level: np.ndarray) -> None:
        """Puts the egos of copies ``idx`` at ``x = 0``, lateral ``y`` (m), cruising at
        ``level`` (all ``(m,)``)."""
        self.x[idx], self.y[idx], self.psi[idx] = 0.0, y, 0.0
        self.v[idx] = SPEED_LEVELS[level]
        self.steer[idx] = self.accel[idx] = 0.0
        self.lane_target[idx] = np.floor(y / LANE_WIDTH).astype(np.int64)
        self.level[idx] = level

    @property
    def setpoint(self) -> np.ndarray:
        """Cruise speed (m/s) of the discrete speed controller."""
        return SPEED_LEVELS[self.level]


def _clip(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    # Two ufunc calls: np.clip's Python-level dispatch costs more than the work on (n,) arrays.
    return np.minimum(np.maximum(a, lo), hi)


def heading_change_to(ego: EgoBatch, y_target: np.ndarray) -> np.ndarray:
    """Heading change (rad, rate-limited) of the lane-keeping controller towards ``y_target``."""
    psi_ref = _clip(
        np.arctan(K_LAT * (y_target - ego.y) / np.maximum(ego.v, 5.0)), -PSI_MAX, PSI_MAX
    )
    return _clip(psi_ref - ego.psi, -PSI_RATE * DT, PSI_RATE * DT)


def steer_to(ego: EgoBatch, y_target: np.ndarray) -> np.ndarray:
    """Normalized steering of the lane-keeping controller towards ``y_target``."""
    return heading_change_to(ego, y_target) * (1.0 / (PSI_RATE * DT))


def accel_to(ego: EgoBatch, v_target: np.ndarray) -> np.ndarray:
    """Normalized acceleration that reaches ``v_target`` as fast as the limits allow."""
    a = _clip((v_target - ego.v) * (1.0 / DT), -BRAKE_MAX, ACCEL_MAX)
    return a * np.where(a >= 0, 1.0 / ACCEL_MAX, 1.0 / BRAKE_MAX)


def step_discrete(ego: EgoBatch) -> None:
    """Advances the ego by ``DT`` under the meta-action controllers (target lane, cruise)."""
    dpsi = heading_change_to(ego, (ego.lane_target + 0.5) * LANE_WIDTH)
    a = _clip((ego.setpoint - ego.v) * (1.0 / DT), -BRAKE_MAX, ACCEL_MAX)
    _integrate(ego, dpsi, a, dpsi * (1.0 / (PSI_RATE * DT)))


def step_continuous(ego: EgoBatch, steer: np.ndarray, accel: np.ndarray) -> None:
    """Advances the ego by ``DT`` with normalized commands in ``[-1, 1]``."""
    a = accel * np.where(accel >= 0, ACCEL_MAX, BRAKE_MAX)
    _integrate(ego, steer * (PSI_RATE * DT), a, steer)


def _integrate(ego: EgoBatch, dpsi: np.ndarray, a: np.ndarray, steer: np.ndarray) -> None:
    ego.psi = _clip(ego.psi + dpsi, -PSI_MAX, PSI_MAX)
    v_new = _clip(ego.v + a * DT, 0.0, V_MAX)
    dist = (ego.v + v_new) * (0.5 * DT)
    ego.x = ego.x + dist * np.cos(ego.psi)
    ego.y = ego.y + dist * np.sin(ego.psi)
    ego.accel = (v_new - ego.v) * (1.0 / DT)
    ego.v = v_new
    ego.steer = steer
