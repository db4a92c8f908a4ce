"""What each instruction asks for: goal potentials, per-step conditions, success, labels.

Every function is batched over all copies. Per-copy task parameters are fixed at reset
(:class:`TaskBatch`), so a step only evaluates a few array expressions. The reward is dense
for every task: the potential is minus a normalized distance to the instructed goal state and
its change is paid every step (potential-based shaping, Ng, Harada and Russell 1999, which
leaves the optimal policy unchanged).
"""

from __future__ import annotations

import numpy as np

from mmrl.envs.driving.instructions import (
    FAST,
    FOLLOW,
    LANE,
    NO_ARG,
    OVERTAKE,
    SKIP_EXIT,
    SLOW,
    TAKE_EXIT,
)
from mmrl.envs.driving.road import LANE_WIDTH, lane_center
from mmrl.envs.driving.state import Derived, DrivingState
from mmrl.envs.driving.state import TaskBatch as TaskBatch  # run checkpoints pickled it here

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
SPEED_FRACTION_V1 = 0.4
"""v1's fraction: most v1 episodes start with a merge from the on-ramp, which the speed
instructions cannot hurry."""
LANE_HOLD = 4
"""Steps the ego must have been in the named lane when the episode ends."""
NO_LEAD = 100.0
"""Distance label (m) when there is no lead vehicle."""
NO_LANE_GOAL = -4
"""``target_lane_offset`` label when the instruction names no lane (below every offset)."""

_FOLLOW_MID = 0.5 * (FOLLOW_GAP[0] + FOLLOW_GAP[1])
_FOLLOW_HALF = 0.5 * (FOLLOW_GAP[1] - FOLLOW_GAP[0])
_AHEAD_MID = 0.5 * (OVERTAKE_GAP[0] + OVERTAKE_GAP[1])
_AHEAD_HALF = 0.5 * (OVERTAKE_GAP[1] - OVERTAKE_GAP[0])


def derive(state: DrivingState) -> Derived:
    """Computes :class:`~mmrl.envs.driving.state.Derived` for the current state."""
    ego, tk = state.ego, state.tasks
    lane = np.minimum((ego.y * (1.0 / LANE_WIDTH)).astype(np.int64), state.road.n_lanes)
    np.maximum(lane, 0, out=lane)
    tx = state.traffic.x[state.rows, tk.target]
    tv = state.traffic.v[state.rows, tk.target]
    return Derived(lane, tx, tv, tx - ego.x)


def _clip(a: np.ndarray, hi: float) -> np.ndarray:
    return np.minimum(np.maximum(a, 0.0), hi)


def potential(state: DrivingState, der: Derived) -> np.ndarray:
    """Minus the normalized distance to the instructed goal state, ``(n,)`` in about [-1, 0].

    Terms of tasks no copy has are skipped (adding their zeros would not change a bit), which
    matters for the single env.
    """
    ego, tk = state.ego, state.tasks
    oh, present = tk.onehot, tk.present
    width = state.road.n_lanes * LANE_WIDTH
    v1_overtake = state.scene_version >= 1 and present[OVERTAKE]
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


def satisfied(state: DrivingState, der: Derived) -> np.ndarray:
    """Whether the instruction's condition holds right now, ``(n,)`` bool."""
    ego, tk = state.ego, state.tasks
    oh = tk.onehot
    ok = (der.lane == tk.goal_lane) | (tk.goal_lane < 0)
    ok &= ~oh[:, FOLLOW] | ((der.d >= FOLLOW_GAP[0]) & (der.d <= FOLLOW_GAP[1]))
    if state.scene_version >= 1:  # in the named car's lane (the goal lane), in the band ahead
        ahead = (-der.d >= OVERTAKE_GAP[0]) & (-der.d <= OVERTAKE_GAP[1])
        ok &= ~oh[:, OVERTAKE] | ahead
    else:
        ok &= ~oh[:, OVERTAKE] | (der.d <= -OVERTAKE_MARGIN)
    ok &= ~oh[:, SLOW] | (ego.v <= SLOW_MAX)
    ok &= ~oh[:, FAST] | (ego.v >= FAST_MIN)
    # "skip the exit" has nothing to hold before the decision point.
    return ok & ~oh[:, SKIP_EXIT]


def succeeded(state: DrivingState, der: Derived, now: np.ndarray) -> np.ndarray:
    """Whether the instruction is carried out, read when the decision point is reached.

    Args:
        state: The driving state.
        der: Derived state of this step.
        now: ``satisfied`` on this step.
    """
    oh = state.tasks.onehot
    exit_taken = der.lane == state.road.n_lanes
    ok = now & (~oh[:, LANE] | (state.sat_streak >= LANE_HOLD))
    fraction = SPEED_FRACTION if state.scene_version == 0 else SPEED_FRACTION_V1
    held = state.sat_steps >= fraction * state.steps
    ok &= ~(oh[:, SLOW] | oh[:, FAST]) | held
    ok |= oh[:, SKIP_EXIT]
    return ok & (oh[:, TAKE_EXIT] | ~exit_taken)


def _bearing(dx: np.ndarray, dy: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Angle (rad) of offset ``(dx, dy)`` from the ego's heading, counter-clockwise > 0."""
    ang = np.arctan2(-dy, dx) + psi
    return (ang + np.pi) % (2.0 * np.pi) - np.pi


def lead_vehicle(state: DrivingState, lane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest car ahead in the ego's lane: ``(slot, centre distance or inf)``, each ``(n,)``."""
    t = state.traffic
    dx = t.x - state.ego.x[:, None]
    dx = np.where(t.valid & (t.lane == lane[:, None]) & (dx > 0), dx, np.inf)
    j = np.argmin(dx, axis=1)
    return j, dx[state.rows, j]


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


def labels(state: DrivingState, der: Derived) -> dict[str, np.ndarray]:
    """Privileged per-copy labels (see the env docstring), each ``(n,)``."""
    ego, road, t, tk = state.ego, state.road, state.traffic, state.tasks
    rows = state.rows
    j, lead = lead_vehicle(state, der.lane)
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
        # Where the goal lane is from the ego (clipped to +-3 lanes; + = right): the
        # grounding target of "follow the red car" in the ego's own frame, as the camera
        # (centred on the ego) shows it.
        "target_lane_offset": np.where(
            tk.goal_lane >= 0, np.clip(tk.goal_lane - der.lane, -3, 3), NO_LANE_GOAL
        ),
        "n_lanes": road.n_lanes.copy(),
        "instruction_type": tk.task.copy(),
        "target_color": np.where(tk.has_target, tk.arg, NO_ARG),
    }
    result.update(zip(_FLOAT_LABELS, out))
    return result
