"""Other cars: their batch, spawn densities and batched Intelligent Driver Model (IDM) following.

The cars of new episodes are drawn in :mod:`mmrl.envs.driving.scenes`.

Traffic keeps its lane (no lane changes, no exits) and follows the nearest vehicle ahead in
that lane, the ego included whenever it overlaps the lane, with IDM (Treiber, Hennecke and
Helbing 2000). IDM is collision-free among followers, so traffic is "not suicidal": a crash
involves an ego manoeuvre (cutting in too close, braking in front of a close follower, or
driving into a slower car).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmrl.envs.driving.road import LANE_WIDTH, MAX_LANES

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


def _field(i: int, doc: str) -> property:
    def get(self: CarLists) -> np.ndarray:
        return self.data[i]

    def put(self: CarLists, value: np.ndarray) -> None:
        self.data[i] = value

    return property(get, put, doc=doc)


@dataclasses.dataclass
class CarLists:
    """Padded car lists of ``m`` copies: row ``j``'s cars are its first ``count[j]`` columns.

    The five fields share one float64 array (lane and colour ids are small integers, exact in
    float64), so selecting, appending and sorting cars is one indexing operation for all of
    them: at a few copies a reset is bound by the number of NumPy calls, not their size.

    Attributes:
        data: ``(5, m, C)`` float64: ``x, lane, v, v0, color`` (the properties' rows).
        count: ``(m,)`` int64 cars per copy.
    """

    data: np.ndarray
    count: np.ndarray

    x = _field(0, "``(m, C)`` positions (m).")
    lane = _field(1, "``(m, C)`` lane ids.")
    v = _field(2, "``(m, C)`` speeds (m/s).")
    v0 = _field(3, "``(m, C)`` desired speeds (m/s).")
    color = _field(4, "``(m, C)`` colour ids.")

    @staticmethod
    def stack(x: np.ndarray, lane: np.ndarray, v: np.ndarray, v0: np.ndarray,
              color: np.ndarray) -> np.ndarray:  # fmt: skip
        """The ``(5, m, K)`` ``data`` of cars given field by field (each ``(m, K)``)."""
        return np.stack([x, lane, v, v0, color]).astype(np.float64, copy=False)

    @property
    def valid(self) -> np.ndarray:
        """``(m, C)`` bool: the column holds a car."""
        return np.arange(self.data.shape[2]) < self.count[:, None]

    def select(self, keep: np.ndarray) -> CarLists:
        """The cars in ``keep`` (``(m, C)`` bool, within ``valid``), in their order."""
        count = keep.sum(axis=1)
        width = max(int(count.max(initial=0)), 1)  # one padding column at least: no (m, 0)
        # A stable sort of "dropped" moves the kept cars to the front, in their order.
        order = np.argsort(~keep, axis=1, kind="stable")[:, :width]
        return CarLists(self.data[:, np.arange(len(keep))[:, None], order], count)

    def nearest(self, room: np.ndarray | int) -> CarLists:
        """Each copy's ``room`` cars nearest ``x = 0`` (ties: the earlier car), in order: the
        per-copy ``np.sort(np.argsort(np.abs(x), kind="stable")[:room])``."""
        room = np.reshape(room, (-1, 1))
        if not (self.count[:, None] > room).any():
            return self  # nobody over (the usual case): skip the sorts
        valid = self.valid
        order = np.argsort(np.where(valid, np.abs(self.x), np.inf), axis=1, kind="stable")
        rank = np.empty_like(order)
        rank[np.arange(len(order))[:, None], order] = np.arange(order.shape[1])
        return self.select(valid & (rank < room))

    def append(
        self, new: np.ndarray, valid: np.ndarray, keep: np.ndarray | None = None
    ) -> CarLists:
        """The cars in ``keep`` (default: all), then the cars ``new`` (``(5, m, K)``, see
        :meth:`stack`) where ``valid`` (``(m, K)`` bool), each in order."""
        if keep is None and bool((valid[:, :-1] >= valid[:, 1:]).all()):
            # Each row's new cars lead its row of new: write them after the row's cars.
            count = self.count + valid.sum(axis=1)
            width = max(int(count.max()), 1)
            c = min(width, self.data.shape[2])
            data = np.zeros((5, len(count), width))
            data[:, :, :c] = self.data[:, :, :c]
            rows, cols = np.nonzero(valid)
            data[:, rows, self.count[rows] + cols] = new[:, rows, cols]
            return CarLists(data, count)
        both = CarLists(np.concatenate([self.data, new], axis=2), self.count)
        return both.select(np.concatenate([self.valid if keep is None else keep, valid], axis=1))


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

    def load(self, idx: np.ndarray, cars: CarLists) -> np.ndarray:
        """Fills copies ``idx`` (``(m,)``) from their padded car lists (at most ``slots`` cars
        each), sorted by lane, then position.

        Returns:
            ``(m, C)`` int64: the slot of each car of ``cars`` (meaningful where it is valid).
        """
        m, width = cars.x.shape
        slots = self.x.shape[1]
        rows = np.arange(m)[:, None]
        # Padding sorts last (lane beyond every real one); lexsort is stable, as it was per copy.
        order = np.lexsort((cars.x, np.where(cars.valid, cars.lane, MAX_LANES + 1)), axis=1)
        slot_of = np.empty((m, width), np.int64)
        slot_of[rows, order] = np.arange(width)
        ok = np.arange(slots) < cars.count[:, None]  # the cars fill the first slots
        # Empty slots: parked far behind (never seen, never a leader), standing, colour 0.
        fill = np.array([-1e4, 0.0, 0.0, 20.0, 0.0])[:, None, None]
        out = np.repeat(fill, m, axis=1).repeat(slots, axis=2)
        out[:, :, :width] = np.where(ok[:, :width], cars.data[:, rows, order], fill)
        x, lane, v, v0, color = out
        self.valid[idx] = ok
        self.x[idx] = x
        self.lane[idx] = lane
        self.y[idx] = np.where(ok, (lane + 0.5) * LANE_WIDTH, 0.0)
        self.v[idx] = v
        self.v0[idx] = v0
        self.color[idx] = color
        self.leader[idx] = np.arange(1, slots + 1) % slots
        has = np.zeros((m, slots), bool)
        has[:, :-1] = ok[:, 1:] & (lane[:, 1:] == lane[:, :-1])
        self.has_leader[idx] = has
        return slot_of


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
