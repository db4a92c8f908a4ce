"""Scripted expert: carries out the instruction from privileged state, batched over copies.

It picks a goal lane and a goal speed for the task, changes lanes only into gaps that are
safe for itself and for the follower it cuts in front of (in the spirit of MOBIL's safety
criterion, Kesting, Treiber and Helbing 2007), and caps its speed to keep a one-second
headway to whatever is ahead. Used for demonstrations (``mmrl collect``), behaviour cloning
and as the reference success rate of the task.
"""

from __future__ import annotations

import numpy as np

from mmrl.envs.driving import tasks as T
from mmrl.envs.driving.dynamics import SPEED_LEVELS, accel_to, steer_to
from mmrl.envs.driving.road import LANE_WIDTH, exit_open, lane_center
from mmrl.envs.driving.state import DrivingState
from mmrl.envs.driving.traffic import CAR_LENGTH, CAR_WIDTH, CUT_IN_HEADWAY

LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER = range(5)
CRUISE = 22.0
HEADWAY = 0.7
"""Time headway (s) the expert keeps to the car ahead."""
AHEAD_GOAL = 18.0
"""Distance (m) ahead of the named car the expert holds after overtaking it (v1)."""
AHEAD_FAR = 27.0
"""Distance (m) ahead it moves to while a car in the lane to cross blocks the merge (v1)."""
MERGE_TIME = 0.5
"""Seconds (v1) the expert looks ahead when judging the gap behind in the lane to enter: the
car behind closes in for that long (its driver model brakes for the ego only later)."""
HEADWAY_MARGIN = 0.0
"""Seconds (v1) of time gap the expert keeps beyond ``CUT_IN_HEADWAY``."""


def _gaps(state: DrivingState, lane: np.ndarray) -> tuple[np.ndarray, ...]:
    """Bumper gaps and speeds of the nearest cars ahead of and behind the ego in ``lane``.

    Returns:
        ``(front_gap, front_v, rear_gap, rear_v, rear_v0)``, each ``(n,)`` (``rear_v0``: the
        rear car's desired speed); ``inf`` gaps when empty.
        A car alongside the ego gives negative gaps both ways.
    """
    t, ego = state.traffic, state.ego
    dx = t.x - ego.x[:, None]
    in_lane = t.valid & (t.lane == lane[:, None])
    front = np.where(in_lane & (dx >= -CAR_LENGTH), dx, np.inf)
    rear = np.where(in_lane & (dx < CAR_LENGTH), -dx, np.inf)
    jf = np.argmin(front, axis=1)
    jr = np.argmin(rear, axis=1)
    rows = np.arange(len(jf))
    return (
        front[rows, jf] - CAR_LENGTH,
        t.v[rows, jf],
        rear[rows, jr] - CAR_LENGTH,
        t.v[rows, jr],
        t.v0[rows, jr],
    )


def _lane_flow(state: DrivingState, lane: np.ndarray) -> np.ndarray:
    """Speed (m/s) traffic allows in ``lane``: the next car's speed within 80 m, else 30."""
    fg, fv = _gaps(state, lane)[:2]
    return np.where(fg < 80.0, fv, 30.0)


def _safe(state: DrivingState, lane: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whether moving into ``lane`` now leaves safe gaps.

    Returns:
        ``(safe, front_ok, front_v)``: both gaps are safe, the gap ahead is, and the speed
        of the car ahead in ``lane`` (m/s).
    """
    v = state.ego.v
    fg, fv, rg, rv, _ = _gaps(state, lane)
    is_exit = lane >= state.road.n_lanes  # nobody drives in the exit lane
    ok_front = is_exit | (fg >= 5.0 + 0.3 * v + 2.0 * np.maximum(v - fv, 0.0))
    if state.scene_version >= 1:
        # The simulator's cut-in rule with a margin: the time gap left to the car behind
        # after it has closed in for MERGE_TIME seconds.
        gap = rg - np.maximum(rv - v, 0.0) * MERGE_TIME
        ok_rear = is_exit | (gap >= (CUT_IN_HEADWAY + HEADWAY_MARGIN) * rv)
    else:
        ok_rear = is_exit | (rg >= 5.0 + 0.3 * rv + 2.5 * np.maximum(rv - v, 0.0))
    return ok_front & ok_rear, ok_front, fv


def plan(state: DrivingState) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The expert's decision for every copy.

    Returns:
        ``(lane_goal, change_ok, v_goal, v_cap)``: the lane to be in, whether a lane change
        toward it may start now, the speed the task asks for and the highest safe speed
        (m/s).
    """
    ego, road, task = state.ego, state.road, state.tasks.task
    n = road.n_lanes
    der = state.derived
    lane_now = der.lane
    base = ego.lane_target if not state.config.continuous else lane_now
    stay = np.minimum(base, n - 1)
    t_lane = state.traffic.lane[state.rows, state.tasks.target]
    tv, d = der.target_v, der.d

    # Lane goal.
    exit_ok = exit_open(ego.x, road) & (ego.x < road.ramp_end - 15.0)
    fg, fv = _gaps(state, stay)[:2]
    left, right = np.maximum(stay - 1, 0), np.minimum(stay + 1, n - 1)
    fg_l = np.where(left != stay, _gaps(state, left)[0], -np.inf)
    fg_r = np.where(right != stay, _gaps(state, right)[0], -np.inf)
    freer = np.where(fg_l >= fg_r, left, right)
    # v1: once past, pull in ahead of the named car (merge when the gap behind is safe).
    pull_in = state.scene_version >= 1
    not_passed = d > -(T.OVERTAKE_MARGIN + 4.0)
    # For "fast", a lane's worth is the speed its traffic allows over the next 80 m.
    flow = np.where(fg < 80.0, fv, 30.0)
    flow_l = np.where(left != stay, _lane_flow(state, left), -np.inf)
    flow_r = np.where(right != stay, _lane_flow(state, right), -np.inf)
    best = np.where(flow_l >= flow_r, left, right)
    blocked_fast = np.maximum(flow_l, flow_r) > flow + 1.0
    # For "overtake": pass in the adjacent lane (not the named car's) whose traffic allows
    # the most speed, when the own lane is the named car's or slower.
    pass_l = np.where(left == t_lane, -np.inf, flow_l)
    pass_r = np.where(right == t_lane, -np.inf, flow_r)
    pass_lane = np.where(pass_l >= pass_r, left, right)
    pass_lane = np.where(np.maximum(pass_l, pass_r) > -np.inf, pass_lane, freer)
    pass_better = np.maximum(pass_l, pass_r) > flow + 1.0
    lane_goal = np.choose(
        task,
        [
            # In the exit lane, stay; on the on-ramp (v1, the same lane index), merge.
            np.where(exit_ok | ((base == n) & exit_open(ego.x, road)), n, n - 1),
            stay,
            np.maximum(state.tasks.arg, 0),
            t_lane,
            # Through the passing lane when the named car is right of it: it never blocks a
            # pass there (an adjacent free lane may not exist, e.g. right lane, car beside).
            np.where(
                not_passed,
                np.where(t_lane > 0, 0, np.where((stay == t_lane) | pass_better, pass_lane, stay)),
                t_lane if pull_in else stay,
            ),
            stay,
            np.where(blocked_fast & (best < stay), best, np.where(stay > 0, stay - 1, stay)),
        ],
    )
    settled = np.abs(ego.y - lane_center(base)) < 0.6
    step_lane = base + np.sign(lane_goal - base)
    safe, front_ok, front_v = _safe(state, step_lane)
    change_ok = (lane_goal != base) & settled & safe
    # Blocked by a car beside or just ahead in the lane to enter: drop back behind it (a car
    # holding the same speed alongside would otherwise block the change for good).
    drop_back = (lane_goal != base) & ~front_ok

    # Speed goal.
    # v1 overtake, once past: hold the middle of the band ahead of the named car.
    # A car in the lane to cross (often another candidate, at a similar distance) blocks the
    # merge: move to the far end of the band to get clear of it.
    blocked = (lane_goal != base) & ~safe
    ahead_v = tv + 0.5 * (np.where(blocked, AHEAD_FAR, AHEAD_GOAL) + d)
    follow_v = np.where(
        lane_now == t_lane,
        tv + 0.5 * (d - 16.0),
        np.where(d < 12.0, tv - 4.0, np.where(d > 30.0, 30.0, tv + 2.0)),
    )
    v_goal = np.choose(
        task,
        [
            np.full_like(ego.v, CRUISE),
            np.full_like(ego.v, CRUISE),
            np.full_like(ego.v, CRUISE),
            np.clip(follow_v, 10.0, 30.0),
            np.where(not_passed, 30.0, np.clip(ahead_v, 10.0, 30.0) if pull_in else CRUISE),
            np.full_like(ego.v, 14.0),
            np.full_like(ego.v, 30.0),
        ],
    )
    # On the on-ramp (v1), keep up with traffic until merged, whatever the task asks.
    on_ramp = (lane_now == n) & ~exit_open(ego.x, road)
    v_goal = np.where(on_ramp, np.maximum(v_goal, CRUISE), v_goal)
    v_goal = np.where(drop_back, np.minimum(v_goal, front_v - 4.0), v_goal)
    # Keep a short headway to anything overlapping the ego's body laterally (both lanes while
    # changing lanes).
    t = state.traffic
    dx = t.x - ego.x[:, None]
    close = t.valid & (np.abs(t.y - ego.y[:, None]) < CAR_WIDTH + 1.2) & (dx > 0)
    gaps = np.where(close, dx - CAR_LENGTH, np.inf)
    j = np.argmin(gaps, axis=1)
    g = gaps[np.arange(len(j)), j]
    v_lead = t.v[np.arange(len(j)), j]
    v_cap = np.where(np.isfinite(g), v_lead + 0.6 * (g - (4.0 + HEADWAY * ego.v)), np.inf)
    v_cap = np.where(g < 4.0, v_lead - 4.0, v_cap)
    return lane_goal, change_ok, v_goal, v_cap


def act(state: DrivingState) -> np.ndarray:
    """Expert actions of all copies: ``(n,)`` int64 meta-actions or ``(n, 2)`` float32."""
    ego = state.ego
    lane_goal, change_ok, v_goal, v_cap = plan(state)
    if state.config.continuous:
        lane_now = state.derived.lane
        step = lane_now + np.sign(lane_goal - lane_now)
        # Mid-change (away from the lane centre) keep heading for the lane being entered.
        moving = np.abs(ego.y - lane_center(lane_now)) >= 0.6
        if state.scene_version >= 1:
            # v1: the lane being entered is the next lane centre toward the goal, so a change
            # ends in the first lane it reaches, and a second one needs its own safety check
            # (v0's rule kept steering one lane further once the ego crossed a lane line).
            half = 0.5 * LANE_WIDTH
            toward = np.where(
                lane_center(lane_goal) >= ego.y,
                np.ceil((ego.y - half) / LANE_WIDTH - 1e-9),
                np.floor((ego.y - half) / LANE_WIDTH + 1e-9),
            ).astype(np.int64)
            lane = np.where(change_ok, step, np.where(moving, toward, lane_now))
        else:
            lane = np.where(change_ok | (moving & (lane_goal != lane_now)), step, lane_now)
        steer = steer_to(ego, lane_center(lane))
        accel = accel_to(ego, np.clip(np.minimum(v_goal, v_cap), 0.0, 30.0))
        return np.stack([steer, accel], axis=1).astype(np.float32)
    levels = SPEED_LEVELS
    # The task's speed rounds to the nearest cruise level, the safety cap rounds down.
    nearest = np.abs(v_goal[:, None] - levels[None, :]).argmin(axis=1)
    floor = np.searchsorted(levels, v_cap + 1e-6, side="right") - 1
    level_goal = np.clip(np.minimum(nearest, floor), 0, len(levels) - 1)
    speed_act = np.where(
        level_goal > ego.level, FASTER, np.where(level_goal < ego.level, SLOWER, IDLE)
    )
    urgent = (level_goal < ego.level) & (v_cap < ego.v - 1.0)
    lane_act = np.where(lane_goal < ego.lane_target, LANE_LEFT, LANE_RIGHT)
    return np.where(urgent, SLOWER, np.where(change_ok, lane_act, speed_act)).astype(np.int64)
