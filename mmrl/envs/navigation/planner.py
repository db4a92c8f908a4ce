"""The scripted expert: A* on an occupancy grid of the known map, then a pursuit controller.

Planning happens once per episode (lazily, on the first expert query, so plain stepping never
pays for it) and again after a bump. A* runs on a 0.1 m grid whose cells are blocked within
a margin of walls, boxes and the *other* objects; a clearance cost keeps paths away from
blockers. The cell path is shortened by line-of-sight string pulling and followed waypoint
by waypoint: the controller turns toward the next waypoint and drives when roughly facing it.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from mmrl.envs.navigation.room import OBJECT_RADIUS, ROBOT_RADIUS

RESOLUTION = 0.1
"""Grid cell size in metres."""
MARGIN = 0.1
"""Extra clearance (beyond touching) that the planner keeps from blockers, metres."""
PATH_SPACING = 0.1
"""Spacing of the resampled path points the controller tracks, metres."""
LOOKAHEAD = 5
"""Pure-pursuit lookahead in path points (0.5 m): short, so the robot stays near the path
although discrete turns leave up to half a turn step of heading error."""
LINE_CLEARANCE = 0.15
"""Gap a shortcut segment must keep from every blocker, metres (covers tracking error)."""

_SQRT2 = math.sqrt(2.0)
_NEIGHBOURS = [(-1, 0, 1.0), (1, 0, 1.0), (0, -1, 1.0), (0, 1, 1.0),
               (-1, -1, _SQRT2), (-1, 1, _SQRT2), (1, -1, _SQRT2), (1, 1, _SQRT2)]  # fmt: skip


def clearance(
    points: np.ndarray, size: np.ndarray, boxes: np.ndarray, others: np.ndarray
) -> np.ndarray:
    """Free distance between a robot centred at each point and the nearest blocker.

    Args:
        points: ``(N, 2)`` robot centres.
        size: ``(2,)`` room width and height.
        boxes: ``(M, 4)`` valid boxes ``[cx, cy, half_x, half_y]``.
        others: ``(J, 2)`` centres of objects the robot must not touch.

    Returns:
        ``(N,)`` float64 gap in metres (negative when the robot would overlap a blocker).
    """
    x, y = points[:, 0], points[:, 1]
    gap = np.minimum.reduce([x, size[0] - x, y, size[1] - y])
    if len(boxes):
        dx = np.maximum(np.abs(x[:, None] - boxes[:, 0]) - boxes[:, 2], 0.0)
        dy = np.maximum(np.abs(y[:, None] - boxes[:, 1]) - boxes[:, 3], 0.0)
        # One square root per point after the minimum, instead of one per (point, blocker).
        gap = np.minimum(gap, np.sqrt((dx * dx + dy * dy).min(axis=1)))
    if len(others):
        ox, oy = x[:, None] - others[:, 0], y[:, None] - others[:, 1]
        gap = np.minimum(gap, np.sqrt((ox * ox + oy * oy).min(axis=1)) - OBJECT_RADIUS)
    return gap - ROBOT_RADIUS


def grid_clearance(
    xs: np.ndarray, ys: np.ndarray, size: np.ndarray, boxes: np.ndarray, others: np.ndarray
) -> np.ndarray:
    """:func:`clearance` at every grid point ``(xs[i], ys[j])``, the same values.

    Separable: wall and box offsets along x depend only on ``xs`` and those along y only on
    ``ys``, so they are computed per axis and broadcast (a third of the array work of
    flattening the grid into points).

    Args:
        xs: ``(X,)`` and ys: ``(Y,)`` coordinates of cell centres; other arguments as for
            :func:`clearance`.

    Returns:
        ``(X, Y)`` float64 gap in metres.
    """
    x, y = xs[:, None], ys[None, :]
    gap = np.minimum(np.minimum(x, size[0] - x), np.minimum(y, size[1] - y))
    if len(boxes):
        dx = np.maximum(np.abs(x[..., None] - boxes[:, 0]) - boxes[:, 2], 0.0)  # (X, 1, M)
        dy = np.maximum(np.abs(y[..., None] - boxes[:, 1]) - boxes[:, 3], 0.0)  # (1, Y, M)
        gap = np.minimum(gap, np.sqrt((dx * dx + dy * dy).min(axis=2)))
    if len(others):
        ox, oy = x[..., None] - others[:, 0], y[..., None] - others[:, 1]
        gap = np.minimum(gap, np.sqrt((ox * ox + oy * oy).min(axis=2)) - OBJECT_RADIUS)
    return gap - ROBOT_RADIUS


def astar(
    free: np.ndarray,
    cost: np.ndarray,
    start: tuple[int, int],
    goal: np.ndarray,
    goal_xy: tuple[float, float],
    goal_radius: float,
) -> list[tuple[int, int]] | None:
    """A* over an 8-connected grid.

    Args:
        free: ``(X, Y)`` bool traversable cells.
        cost: ``(X, Y)`` float extra cost factor (>= 1) of entering each cell.
        start: Start cell ``(i, j)``.
        goal: ``(X, Y)`` bool goal cells (any of them ends the search).
        goal_xy: Goal centre in cell units, for the heuristic.
        goal_radius: Radius of the goal region in cell units (keeps the heuristic admissible).

    Returns:
        The cell path from start to a goal cell, or ``None`` when no goal is reachable.
    """
    nx, ny = free.shape
    gx, gy = goal_xy
    # Flat cell indices (i * ny + j order like the (i, j) tuples, so heap ties break the same
    # way), a padded border instead of bounds checks and a vectorized heuristic: this loop is
    # the expert's hot spot during data collection and Python sets/dicts of tuples cost ~3x.
    w = ny + 2
    di = (np.arange(nx + 2) - 1.0 - gx)[:, None]
    dj = (np.arange(w) - 1.0 - gy)[None, :]
    heuristic = np.maximum(np.hypot(di, dj) - goal_radius, 0.0).ravel().tolist()
    # Padding by slice assignment (np.pad costs ~20 us a call, a tenth of the search).
    padded = np.ones((nx + 2, w))
    padded[1:-1, 1:-1] = cost
    cost_l = padded.ravel().tolist()
    flags = np.zeros((2, nx + 2, w), bool)
    flags[0, 1:-1, 1:-1] = goal
    flags[1, 1:-1, 1:-1] = free
    goal_l = flags[0].ravel().tolist()
    open_l = flags[1].ravel().tolist()  # passable and not yet closed
    neighbours = [(di * w + dj, step) for di, dj, step in _NEIGHBOURS]
    origin = (start[0] + 1) * w + start[1] + 1
    best = [math.inf] * len(open_l)
    best[origin] = 0.0
    parent = [-1] * len(open_l)
    heap = [(0.0, 0.0, origin)]
    while heap:
        _, g, node = heapq.heappop(heap)
        if not open_l[node]:
            continue
        open_l[node] = False
        if goal_l[node]:
            path = [node]
            while parent[node] >= 0:
                node = parent[node]
                path.append(node)
            return [(n // w - 1, n % w - 1) for n in reversed(path)]
        for offset, step in neighbours:
            nb = node + offset
            if open_l[nb]:
                ng = g + step * cost_l[nb]
                if ng < best[nb]:
                    best[nb] = ng
                    parent[nb] = node
                    heapq.heappush(heap, (ng + heuristic[nb], ng, nb))
    return None


def plan_path(
    start: np.ndarray,
    size: np.ndarray,
    boxes: np.ndarray,
    others: np.ndarray,
    target: np.ndarray,
    goal_radius: float,
) -> np.ndarray:
    """Plans a collision-free polyline from ``start`` to the target object.

    Args:
        start: ``(2,)`` robot position; size: ``(2,)`` room size.
        boxes: ``(M, 4)`` valid boxes; others: ``(J, 2)`` non-target object centres.
        target: ``(2,)`` target centre; goal_radius: success distance to it, metres.

    Returns:
        ``(P, 2)`` float32 points every :data:`PATH_SPACING` along a shortened path, ending at
        the target centre. Falls back to the straight line when no grid path exists (does
        not happen for generated rooms).
    """
    start = np.asarray(start, np.float64)
    target = np.asarray(target, np.float64)
    if _final_leg_clear(start, target, size, boxes, others, goal_radius):
        # What string pulling makes of any grid path when the straight leg is clear (its
        # first test), so the grid search is skipped: about half the plans of generated rooms.
        return _resample(np.stack([start, target]), PATH_SPACING).astype(np.float32)
    nx = math.ceil(size[0] / RESOLUTION)
    ny = math.ceil(size[1] / RESOLUTION)
    xs = (np.arange(nx) + 0.5) * RESOLUTION
    ys = (np.arange(ny) + 0.5) * RESOLUTION
    gap = grid_clearance(xs, ys, size, boxes, others)
    to_start = np.hypot((xs - start[0])[:, None], (ys - start[1])[None, :])
    to_target = np.hypot((xs - target[0])[:, None], (ys - target[1])[None, :])
    si = min(max(int(start[0] / RESOLUTION), 0), nx - 1)
    sj = min(max(int(start[1] / RESOLUTION), 0), ny - 1)
    # Paths prefer cells with at least 0.4 m clearance: discrete headings drift sideways.
    cost = 1.0 + 2.0 * np.clip(0.4 - gap, 0.0, None)
    goal_r = 0.7 * goal_radius
    for margin in (MARGIN, 0.03):
        # Cells near the start stay usable when the robot begins (or ends up) close to a wall.
        free = (gap >= margin) | ((to_start < 0.25) & (gap > 0.0))
        free[si, sj] = True
        goal = free & (to_target < goal_r)
        cells = astar(
            free, cost, (si, sj), goal,
            (target[0] / RESOLUTION - 0.5, target[1] / RESOLUTION - 0.5), goal_r / RESOLUTION,
        )  # fmt: skip
        if cells is not None:
            break
    else:
        cells = [(si, sj)]
    pts = (np.array(cells, dtype=np.float64) + 0.5) * RESOLUTION
    pts[0] = start
    pts = np.concatenate([pts, target[None]], axis=0)
    corners = _string_pull(pts, size, boxes, others, goal_radius)
    return _resample(corners, PATH_SPACING).astype(np.float32)


def _resample(corners: np.ndarray, spacing: float) -> np.ndarray:
    """Points every ``spacing`` metres along a polyline ``(C, 2)`` (its end included)."""
    seg = np.diff(corners, axis=0)
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
    stations = np.append(np.arange(0.0, cum[-1], spacing), cum[-1])
    return np.stack([np.interp(stations, cum, corners[:, 0]),
                     np.interp(stations, cum, corners[:, 1])], axis=1)  # fmt: skip


def _clear(
    a: np.ndarray,
    b: np.ndarray,
    size: np.ndarray,
    boxes: np.ndarray,
    others: np.ndarray,
    need: float,
) -> bool:
    """Whether a robot driving from ``a`` to ``b`` keeps ``need`` metres from every blocker."""
    n = max(int(math.hypot(*(b - a)) / 0.05), 1) + 1
    # np.linspace(0, 1, n) computed the way it does, without its ~10 us of overhead.
    t = np.arange(n) * (1.0 / (n - 1))
    t[-1] = 1.0
    t = t[:, None]
    return bool((clearance(a + t * (b - a), size, boxes, others) >= need).all())


def _final_leg_clear(
    a: np.ndarray,
    target: np.ndarray,
    size: np.ndarray,
    boxes: np.ndarray,
    others: np.ndarray,
    goal_radius: float,
) -> bool:
    """Whether the straight leg from ``a`` toward the target is clear: it only has to be
    clear until the success radius (the target itself is not a blocker)."""
    d = math.hypot(*(target - a))
    if d <= goal_radius:
        return True
    end = a + (target - a) * (1.0 - 0.8 * goal_radius / d)
    return _clear(a, end, size, boxes, others, LINE_CLEARANCE)


def _string_pull(
    pts: np.ndarray, size: np.ndarray, boxes: np.ndarray, others: np.ndarray, goal_radius: float
) -> np.ndarray:
    """Greedy line-of-sight shortcutting of a dense cell path ``(P, 2)`` into corners."""
    out = [pts[0]]
    i, last = 0, len(pts) - 1
    need = LINE_CLEARANCE
    while i < last:
        for j in range(last, i, -1):
            if j == i + 1:
                break
            if j == last:
                if _final_leg_clear(pts[i], pts[j], size, boxes, others, goal_radius):
                    break
            elif _clear(pts[i], pts[j], size, boxes, others, need):
                break
        out.append(pts[j])
        i = j
    return np.array(out)


def pursuit(
    pos: np.ndarray,
    heading: np.ndarray,
    paths: np.ndarray,
    lengths: np.ndarray,
    progress: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Pure pursuit on padded paths, batched over copies.

    Args:
        pos: ``(B, 2)`` positions; heading: ``(B,)`` radians.
        paths: ``(B, P, 2)`` path points (rows past ``lengths`` repeat the last point).
        lengths: ``(B,)`` number of valid points per path.
        progress: ``(B,)`` index of the path point the robot was last nearest to.

    Returns:
        ``(heading error (B,) in [-pi, pi), new progress (B,))``; the error is the signed angle
        from the heading to the carrot :data:`LOOKAHEAD` points past the nearest point.
    """
    rows = np.arange(len(pos))[:, None]
    # Progress only moves forward, searching a short window (paths do not self-intersect).
    window = np.minimum(progress[:, None] + np.arange(2 * LOOKAHEAD), lengths[:, None] - 1)
    d = np.hypot(*(paths[rows, window] - pos[:, None, :]).transpose(2, 0, 1))
    progress = window[rows[:, 0], d.argmin(axis=1)]
    carrot = paths[rows[:, 0], np.minimum(progress + LOOKAHEAD, lengths - 1)]
    delta = carrot - pos
    desired = np.arctan2(delta[:, 1], delta[:, 0])
    return (desired - heading + np.pi) % (2 * np.pi) - np.pi, progress
