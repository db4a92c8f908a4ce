"""Other cars: procedural spawning and batched Intelligent Driver Model (IDM) following.

Traffic keeps its lane (no lane changes, no exits) and follows the nearest vehicle ahead in
that lane, the ego included whenever it overlaps the lane, with IDM (Treiber, Hennecke and
Helbing 2000). IDM is collision-free among followers, so traffic is "not suicidal": a crash
involves an ego manoeuvre (cutting in too close, braking in front of a close follower, or
driving into a slower car).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmrl.envs.driving.instructions import COLORS
from mmrl.envs.driving.road import LANE_WIDTH

CAR_LENGTH = 4.6
CAR_WIDTH = 1.9
PER_LANE = 7
"""Most cars per lane (fixes the array width; the spawn window rarely holds more)."""
SPAWN_BEHIND, SPAWN_AHEAD = 60.0, 230.0
"""Spawn window around the ego's start (m)."""
MEAN_GAP = 80.0
"""Mean distance between spawned cars of one lane at ``traffic_density = 1`` (m)."""
SPEED_RANGE = (16.0, 23.0)
"""Desired speeds of ordinary traffic (m/s) outside the leftmost lane."""
PASSING_SPEED_RANGE = (26.0, 29.0)
"""Desired speeds in the leftmost (passing) lane: as on real highways, the way to drive fast
is to move left, which gives "drive fast" a clear strategy."""

# IDM parameters: desired gap s0 (m), time headway T (s), max acceleration a (m/s^2),
# comfortable deceleration b (m/s^2), the hard braking limit and the exponent.
IDM_S0, IDM_T, IDM_A, IDM_B, IDM_BRAKE = 2.0, 1.2, 2.0, 3.0, 8.0
_IDM_K = 1.0 / (2.0 * np.sqrt(IDM_A * IDM_B))
CUT_IN_HEADWAY = 0.6
"""Shortest time gap (s) the ego may leave to a car it has just moved in front of (v1): less
is a cut-in, which ends the episode like a collision (see the env's description)."""


@dataclasses.dataclass
class TrafficBatch:
    """Cars of ``n`` copies in fixed-width ``(n, N)`` arrays; unused slots have ``valid`` off.

    Slots are sorted by lane, then position, at reset. Traffic keeps its lane and IDM never
    lets a car pass its leader, so that order holds all episode and each car's leader is a
    fixed slot (``leader``, with ``has_leader``): no per-step search for the car ahead.

    Attributes:
        x: Longitudinal positions (m).  y: Lateral positions (m).  lane: Lane indices.
        v: Speeds (m/s).  v0: Desired speeds (m/s).  color: Colour ids.
        valid: Slot holds a car.  leader: Slot of the next car ahead in the lane.
        has_leader: ``leader`` is meaningful.
    """

    x: np.ndarray
    y: np.ndarray
    lane: np.ndarray
    v: np.ndarray
    v0: np.ndarray
    color: np.ndarray
    valid: np.ndarray
    leader: np.ndarray
    has_leader: np.ndarray

    @classmethod
    def empty(cls, n: int, slots: int) -> TrafficBatch:
        """``n`` copies with ``slots`` empty car slots each."""
        return cls(
            np.full((n, slots), -1e4),
            np.zeros((n, slots)),
            np.zeros((n, slots), np.int64),
            np.zeros((n, slots)),
            np.full((n, slots), 20.0),
            np.zeros((n, slots), np.int64),
            np.zeros((n, slots), bool),
            np.zeros((n, slots), np.int64),
            np.zeros((n, slots), bool),
        )

    def load(self, i: int, cars: dict[str, np.ndarray]) -> np.ndarray:
        """Fills copy ``i`` from spawned ``cars``; returns each car's slot (sorted order)."""
        k = len(cars["x"])
        order = np.lexsort((cars["x"], cars["lane"]))
        slot_of = np.empty(k, np.int64)
        slot_of[order] = np.arange(k)
        self.valid[i] = False
        self.valid[i, :k] = True
        self.x[i] = -1e4  # parked far behind: never seen, never anybody's leader
        self.x[i, :k] = cars["x"][order]
        self.lane[i] = 0
        self.lane[i, :k] = cars["lane"][order]
        self.y[i] = 0.0
        self.y[i, :k] = (cars["lane"][order] + 0.5) * LANE_WIDTH
        self.v[i] = 0.0
        self.v[i, :k] = cars["v"][order]
        self.v0[i] = 20.0
        self.v0[i, :k] = cars["v0"][order]
        self.color[i] = 0
        self.color[i, :k] = cars["color"][order]
        nxt = np.arange(1, self.x.shape[1] + 1) % self.x.shape[1]
        self.leader[i] = nxt
        self.has_leader[i] = False
        if k > 1:
            self.has_leader[i, : k - 1] = self.lane[i, 1:k] == self.lane[i, : k - 1]
        return slot_of


def spawn(
    rng: np.random.Generator,
    n_lanes: int,
    ego_lane: int,
    density: float,
    slots: int,
    passing_density: float = 1.0,
) -> dict[str, np.ndarray]:
    """Draws one copy's traffic around an ego at ``x = 0`` in ``ego_lane``.

    Args:
        passing_density: Factor on the leftmost (passing) lane's density.

    Returns:
        Arrays ``x, lane, v, v0, color`` of length ``k <= slots`` (before any target car).
    """
    if density > 0:
        # Each lane: a first car within one gap of the window's start, then gaps of 0.5-1.5
        # mean gaps, all drawn in one call (enough draws to always cross the window's end).
        gap = np.full((n_lanes, 1), max(MEAN_GAP / density, 12.0))
        gap[0] = max(MEAN_GAP / (density * passing_density), 12.0)
        draws = int(np.ceil((SPAWN_AHEAD + SPAWN_BEHIND) / (0.5 * gap.min()))) + 1
        u = rng.random((n_lanes, draws))
        steps = (u + 0.5) * gap
        steps[:, 0] = u[:, 0] * gap[:, 0]
        xs_all = np.cumsum(steps, axis=1) - SPAWN_BEHIND
        # Keep the ego's surroundings clear so no episode starts in a crash.
        clear = np.full((n_lanes, 1), 12.0)
        clear[ego_lane] = 25.0
        keep = (xs_all < SPAWN_AHEAD) & (np.abs(xs_all) > clear)
        lane_arr, col = np.nonzero(keep)
        xs = xs_all[lane_arr, col]
    else:
        xs, lane_arr = np.zeros(0), np.zeros(0, np.int64)
    k = len(xs)
    # Desired speeds: the leftmost lane is the passing lane. Colours: any of the palette.
    u = rng.random(k)
    fast = lane_arr == 0
    lo = np.where(fast, PASSING_SPEED_RANGE[0], SPEED_RANGE[0])
    hi = np.where(fast, PASSING_SPEED_RANGE[1], SPEED_RANGE[1])
    v0 = lo + u * (hi - lo)
    color = rng.integers(0, len(COLORS), size=k)
    x_arr = xs
    if k > slots:  # keep the cars nearest the ego
        keep = np.sort(np.argsort(np.abs(x_arr), kind="stable")[:slots])
        x_arr, lane_arr, v0, color = x_arr[keep], lane_arr[keep], v0[keep], color[keep]
    return {"x": x_arr, "lane": lane_arr, "v": v0.copy(), "v0": v0, "color": color}


def idm_accel(v: np.ndarray, v0: np.ndarray, gap: np.ndarray, v_lead: np.ndarray) -> np.ndarray:
    """IDM acceleration (m/s^2, exponent 4) from own speed, desired speed, bumper gap and
    leader speed; at most ``IDM_A`` (the free-road term is <= 1) and at least -``IDM_BRAKE``."""
    s_star = IDM_S0 + np.maximum(v * (IDM_T + (v - v_lead) * _IDM_K), 0.0)
    ratio = v / v0
    ratio *= ratio
    inter = s_star / np.maximum(gap, 0.1)
    acc = IDM_A * (1.0 - ratio * ratio - inter * inter)
    return np.maximum(acc, -IDM_BRAKE)


def behind_ego(
    car_x: np.ndarray, car_y: np.ndarray, ego_x: np.ndarray, ego_y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Which cars have the ego ahead of them in their lane (it overlaps the lane laterally).

    Args:
        car_x, car_y: ``(n, N)`` car positions (m).
        ego_x, ego_y: ``(n,)`` ego positions (m).

    Returns:
        ``(behind, ego_dx)``: ``(n, N)`` bool, and the ego's distance ahead of each car (m).
    """
    ego_dx = ego_x[:, None] - car_x
    overlap = np.abs(ego_y[:, None] - car_y) < 0.5 * (LANE_WIDTH + CAR_WIDTH)
    return overlap & (ego_dx > 0), ego_dx


def step_traffic(
    traffic: TrafficBatch,
    ego_x: np.ndarray,
    ego_y: np.ndarray,
    ego_v: np.ndarray,
    dt: float,
    rows: np.ndarray,
) -> np.ndarray:
    """Advances every car of every copy by ``dt`` seconds (in place, ballistic update).

    A car's leader is the next car in its lane or the ego, whichever is closer, the ego
    counting whenever it is ahead and overlaps the car's lane laterally.

    Args:
        traffic: The cars.
        ego_x, ego_y, ego_v: ``(n,)`` ego state.
        dt: Step length (s).
        rows: ``(n, 1)`` copy indices (``arange(n)[:, None]``), reused to save work.

    Returns:
        ``(n, N)`` bool: the ego was the car each car followed this step (the cut-in check).
    """
    t = traffic
    lead = t.leader
    gap = np.where(t.has_leader, t.x[rows, lead] - t.x - CAR_LENGTH, np.inf)
    v_lead = t.v[rows, lead]
    ahead, ego_dx = behind_ego(t.x, t.y, ego_x, ego_y)
    ego_gap = np.where(ahead, ego_dx - CAR_LENGTH, np.inf)
    use_ego = ego_gap < gap
    gap = np.where(use_ego, ego_gap, gap)
    v_lead = np.where(use_ego, ego_v[:, None], v_lead)
    acc = idm_accel(t.v, t.v0, gap, v_lead)
    v_new = np.maximum(t.v + acc * dt, 0.0)
    t.x += 0.5 * (t.v + v_new) * dt
    t.v = v_new
    return use_ego
