"""What each instruction asks for: goal potentials, per-step conditions, success, labels.

Every function is batched over all copies. Per-copy task parameters are fixed at reset
(:class:`TaskBatch`), so a step only evaluates a few array expressions. The reward is dense
for every task: the potential is minus a normalized distance to the instructed goal state and
its change is paid every step (potential-based shaping, Ng, Harada and Russell 1999, which
leaves the optimal policy unchanged).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from mmrl.envs.driving.instructions import NO_ARG, TASKS
from mmrl.envs.driving.road import LANE_WIDTH, lane_center

if TYPE_CHECKING:
    from mmrl.envs.driving.simulator import DrivingSimulator

TAKE_EXIT, SKIP_EXIT, LANE, FOLLOW, OVERTAKE, SLOW, FAST = range(len(TASKS))
FOLLOW_GAP = (8.0, 30.0)
"""Centre-to-centre distance (m) behind the named car that counts as following it."""
OVERTAKE_MARGIN = 6.0
"""v0: how far (m) the ego must be ahead of the named car to have overtaken it."""
OVERTAKE_GAP = (6.0, 30.0)
"""v1: centre-to-centre distance (m) ahead of the named car, in its lane, that counts as
having overtaken it (passed and pulled in ahead of it)."""
SLOW_MAX, FAST_MIN = 15.5, 24.0
"""Speed bands (m/s) of "drive slowly" and "drive fast" (traffic drives 16-23 m/s, and
26-29 m/s in the leftmost, passing lane)."""
SPEED_FRACTION = 0.5
"""Fraction of the episode's steps a speed instruction must hold (besides at the end)."""
LANE_HOLD = 4
"""Steps the ego must have been in the named lane when the episode ends."""
NO_LEAD = 100.0
"""Distance label (m) when there is no lead vehicle."""

_FOLLOW_MID = 0.5 * (FOLLOW_GAP[0] + FOLLOW_GAP[1])
_FOLLOW_HALF = 0.5 * (FOLLOW_GAP[1] - FOLLOW_GAP[0])
_AHEAD_MID = 0.5 * (OVERTAKE_GAP[0] + OVERTAKE_GAP[1])
_AHEAD_HALF = 0.5 * (OVERTAKE_GAP[1] - OVERTAKE_GAP[0])


@dataclasses.dataclass
class TaskBatch:
    """Per-copy task parameters, fixed at reset (each ``(n,)``).

    Attributes:
        task: Task id (index in ``TASKS``).  arg: Lane index or colour id, or -1.
        onehot: ``(n, len(TASKS))`` bool, ``onehot[i, task[i]]``.
        goal_lane: Lane the task needs the ego in (exit lane = ``n_lanes``), or -1.
        goal_y: Centre (m) of ``goal_lane`` (0 when none).
        target: Slot of the named car (0 when none).  has_target: The task names a car.
        present: ``(len(TASKS),)`` bool, some copy has the task (refreshed by
        :meth:`refresh`).
    """

    task: np.ndarray
    arg: np.ndarray
    onehot: np.ndarray
    goal_lane: np.ndarray
    goal_y: np.ndarray
    target: np.ndarray
    has_target: np.ndarray
    present: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(len(TASKS), bool))

    @classmethod
    def empty(cls, n: int) -> TaskBatch:
        """Placeholder tasks for ``n`` copies (overwritten at reset)."""
        i = np.zeros(n, np.int64)
        return cls(i.copy(), i - 1, np.zeros((n, len(TASKS)), bool), i - 1, np.zeros(n),
                   i.copy(), np.zeros(n, bool))  # fmt: skip

    def set(
        self,
        i: int,
        task: int,
        arg: int,
        n_lanes: int,
        target: int,
        target_lane: int,
        version: int = 1,
    ) -> None:
        """Stores copy ``i``'s task (``version``: the scene version; from v1 on, overtaking
        ends in the named car's lane, which becomes the goal lane)."""
        self.task[i], self.arg[i] = task, arg
        self.onehot[i] = False
        self.onehot[i, task] = True
        lanes = {TAKE_EXIT: n_lanes, LANE: arg, FOLLOW: target_lane}
        if version >= 1:
            lanes[OVERTAKE] = target_lane
        goal = lanes.get(task, -1)
        self.goal_lane[i] = goal
        self.goal_y[i] = lane_center(goal) if goal >= 0 else 0.0
        self.target[i] = max(target, 0)
        self.has_target[i] = target >= 0

    def refresh(self) -> None:
        """Updates ``present`` after resets."""
        self.present = self.onehot.any(axis=0)


@dataclasses.dataclass
class Derived:
    """Quantities of the current state that rewards, labels and the expert share (``(n,)``).

    Attributes:
        lane: Ego lane (exit lane = ``n_lanes``).  target_x, target_v: Named car position and
        speed (0 when none).  d: ``target_x - ego x``.
    """

    lane: np.ndarray
    target_x: np.ndarray
    target_v: np.ndarray
    d: np.ndarray


def derive(sim: DrivingSimulator) -> Derived:
    """Computes :class:`Derived` for the simulator's current state."""
    ego, tk = sim.ego, sim.tasks
    lane = np.minimum((ego.y * (1.0 / LANE_WIDTH)).astype(np.int64), sim.road.n_lanes)
    np.maximum(lane, 0, out=lane)
    tx = sim.traffic.x[sim.rows, tk.target]
    tv = sim.traffic.v[sim.rows, tk.target]
    return Derived(lane, tx, tv, tx - ego.x)


def _clip(a: np.ndarray, hi: float) -> np.ndarray:
    return np.minimum(np.maximum(a, 0.0), hi)


def potential(sim: DrivingSimulator, der: Derived) -> np.ndarray:
    """Minus the normalized distance to the instructed goal state, ``(n,)`` in about [-1, 0].

    Terms of tasks no copy has are skipped (adding their zeros would not change a bit), which
    matters for the single env.
    """
    ego, tk = sim.ego, sim.tasks
    oh, present = tk.onehot, tk.present
    width = sim.road.n_lanes * LANE_WIDTH
    v1_overtake = sim.scene_version >= 1 and present[OVERTAKE]
    if v1_overtake:
        # Overtaking (v1) needs the named car's lane only once past it: the lateral term
        # fades in over the first OVERTAKE_GAP[0] metres ahead of it, and stands in for one
        # lane change until then, so passing in the next lane costs nothing.
        w = _clip(-der.d * (1.0 / OVERTAKE_GAP[0]), 1.0)
        lateral = np.abs(ego.y - tk.goal_y) * w + LANE_WIDTH * (1.0 - w)
        lateral = np.where(oh[:, OVERTAKE], lateral, np.abs(ego.y - tk.goal_y))
        total = lateral / width * (tk.goal_lane >= 0)
    else:
        total = np.abs(ego.y - tk.goal_y) / width * (tk.goal_lane >= 0)
    if present[SKIP_EXIT]:
        total += _clip(ego.y - width, LANE_WIDTH) * (1.0 / LANE_WIDTH) * oh[:, SKIP_EXIT]
    if present[FOLLOW]:
        gap = np.abs(der.d - _FOLLOW_MID) - _FOLLOW_HALF
        total += _clip(gap, 100.0) * 0.01 * oh[:, FOLLOW]
    if v1_overtake:
        gap = np.abs(-der.d - _AHEAD_MID) - _AHEAD_HALF
        total += _clip(gap, 100.0) * 0.01 * oh[:, OVERTAKE]
    elif present[OVERTAKE]:
        total += _clip(der.d + OVERTAKE_MARGIN, 100.0) * 0.01 * oh[:, OVERTAKE]
    if present[SLOW]:
        total += _clip(ego.v - SLOW_MAX, 15.0) * (1.0 / 15.0) * oh[:, SLOW]
    if present[FAST]:
        total += _clip(FAST_MIN - ego.v, 15.0) * (1.0 / 15.0) * oh[:, FAST]
    return -total


def satisfied(sim: DrivingSimulator, der: Derived) -> np.ndarray:
    """Whether the instruction's condition holds right now, ``(n,)`` bool."""
    ego, tk = sim.ego, sim.tasks
    oh = tk.onehot
    ok = (der.lane == tk.goal_lane) | (tk.goal_lane < 0)
    ok &= ~oh[:, FOLLOW] | ((der.d >= FOLLOW_GAP[0]) & (der.d <= FOLLOW_GAP[1]))
    if sim.scene_version >= 1:  # in the named car's lane (the goal lane), in the band ahead
        ahead = (-der.d >= OVERTAKE_GAP[0]) & (-der.d <= OVERTAKE_GAP[1])
        ok &= ~oh[:, OVERTAKE] | ahead
    else:
        ok &= ~oh[:, OVERTAKE] | (der.d <= -OVERTAKE_MARGIN)
    ok &= ~oh[:, SLOW] | (ego.v <= SLOW_MAX)
    ok &= ~oh[:, FAST] | (ego.v >= FAST_MIN)
    # "skip the exit" has nothing to hold before the decision point.
    return ok & ~oh[:, SKIP_EXIT]


def succeeded(sim: DrivingSimulator, der: Derived, now: np.ndarray) -> np.ndarray:
    """Whether the instruction is carried out, read when the decision point is reached.

    Args:
        sim: The simulator.
        der: Derived state of this step.
        now: ``satisfied`` on this step.
    """
    oh = sim.tasks.onehot
    exit_taken = der.lane == sim.road.n_lanes
    ok = now & (~oh[:, LANE] | (sim.sat_streak >= LANE_HOLD))
    held = sim.sat_steps >= SPEED_FRACTION * sim.steps
    ok &= ~(oh[:, SLOW] | oh[:, FAST]) | held
    ok |= oh[:, SKIP_EXIT]
    return ok & (oh[:, TAKE_EXIT] | ~exit_taken)


def _bearing(dx: np.ndarray, dy: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Angle (rad) of offset ``(dx, dy)`` from the ego's heading, counter-clockwise > 0."""
    ang = np.arctan2(-dy, dx) + psi
    return (ang + np.pi) % (2.0 * np.pi) - np.pi


def lead_vehicle(sim: DrivingSimulator, lane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest car ahead in the ego's lane: ``(slot, centre distance or inf)``, each ``(n,)``."""
    t = sim.traffic
    dx = t.x - sim.ego.x[:, None]
    dx = np.where(t.valid & (t.lane == lane[:, None]) & (dx > 0), dx, np.inf)
    j = np.argmin(dx, axis=1)
    return j, dx[sim.rows, j]


_FLOAT_LABELS = (
    "speed",
    "lateral_offset",
    "heading",
    "lead_distance",
    "lead_bearing",
    "ramp_distance",
    "ramp_bearing",
    "decision_distance",
    "target_distance",
    "target_bearing",
)


def labels(sim: DrivingSimulator, der: Derived) -> dict[str, np.ndarray]:
    """Privileged per-copy labels (see the env docstring), each ``(n,)``."""
    ego, road, t, tk = sim.ego, sim.road, sim.traffic, sim.tasks
    rows = sim.rows
    j, lead = lead_vehicle(sim, der.lane)
    found = lead < np.inf
    # The three bearings (lead car, ramp start, named car) in one arctan2 call.
    # (np.stack costs more than filling preallocated rows on these (n,) arrays.)
    dx = np.empty((3, len(rows)))
    dy = np.empty((3, len(rows)))
    dx[0] = np.where(found, lead, 1.0)
    dx[1] = road.ramp_start - ego.x
    dx[2] = der.d
    dy[0] = t.y[rows, j]
    dy[1] = lane_center(road.n_lanes)
    dy[2] = t.y[rows, tk.target]
    dy -= ego.y
    bearing = _bearing(dx, dy, ego.psi)
    out = np.empty((len(_FLOAT_LABELS), len(rows)), np.float32)
    out[0] = ego.v
    out[1] = ego.y - lane_center(der.lane)
    out[2] = ego.psi
    out[3] = np.where(found, lead, NO_LEAD)
    out[4] = bearing[0] * found
    out[5] = dx[1]
    out[6] = bearing[1]
    out[7] = road.ramp_end - ego.x
    out[8] = der.d * tk.has_target
    out[9] = bearing[2] * tk.has_target
    result = {
        "lane_index": der.lane,
        "target_lane": tk.goal_lane.copy(),
        "n_lanes": road.n_lanes.copy(),
        "instruction_type": tk.task.copy(),
        "target_color": np.where(tk.has_target, tk.arg, NO_ARG),
    }
    result.update(zip(_FLOAT_LABELS, out))
    return result
