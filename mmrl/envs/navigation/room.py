"""Procedural rooms of the navigation task and the batched distance queries on them.

A room is the rectangle ``[0, width] x [0, height]`` with axis-aligned box obstacles and
round-footprint objects. Every pair of blockers (walls, boxes, objects) is at least
:data:`GAP` apart, more than the robot's diameter, so the inflated blockers are disjoint
convex islands and the free space is connected: every layout is solvable without a search.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmrl.envs.navigation.instructions import sample_objects, sample_scene

ROBOT_RADIUS = 0.2
"""Radius of the robot's disc footprint, metres."""
OBJECT_RADIUS = 0.4
"""Radius of every object's footprint (all shapes; the lidar cannot tell them apart). Objects
this big span ~10 camera columns at 3 m: with 0.3 m objects a PPO agent (NatureCNN on
64 x 64) plateaued near 30% success at 240k steps; with 0.4 m it passed 70% by 140k."""
GAP = 0.8
"""Smallest free gap between two blockers (wall, box, object), metres; > 2 * ROBOT_RADIUS."""
MIN_START_DISTANCE = 2.0
"""Smallest start distance between the robot and the target's centre (v0), or every
object's centre (v1: the same rule for all candidates, so distance does not single one out),
metres."""


_MAX_ATTEMPTS = 2000
"""Layout redraws before giving up (the smallest allowed room needs about 40 on average)."""


@dataclasses.dataclass
class Layout:
    """One episode's room.

    Attributes:
        size: ``(2,)`` float32 room width and height.
        boxes: ``(M, 4)`` float32 obstacle boxes ``[cx, cy, half_x, half_y]``.
        objects: ``(n, 2)`` float32 object centres.
        colors: ``(n,)`` int64 colour ids; shapes: ``(n,)`` int64 shape ids.
        candidates: ``(n,)`` bool, objects an instruction of the split could name (the
            target was drawn uniformly among them; v0: the target alone).
        target: Index of the named object.
        robot: ``(2,)`` float32 start position; heading: start heading in radians.
    """

    size: np.ndarray
    boxes: np.ndarray
    objects: np.ndarray
    colors: np.ndarray
    shapes: np.ndarray
    candidates: np.ndarray
    target: int
    robot: np.ndarray
    heading: float


def _box_gap(p: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Distance from points ``(N, 2)`` to the nearest box ``(M, 4)``, ``(N,)`` (inf if none)."""
    if len(boxes) == 0:
        return np.full(len(p), np.inf)
    dx = np.maximum(np.abs(p[:, None, 0] - boxes[:, 0]) - boxes[:, 2], 0.0)
    dy = np.maximum(np.abs(p[:, None, 1] - boxes[:, 1]) - boxes[:, 3], 0.0)
    return np.hypot(dx, dy).min(axis=1)


def _point_gap(p: np.ndarray, points: list[np.ndarray]) -> np.ndarray:
    """Distance from points ``(N, 2)`` to the nearest of ``points``, ``(N,)`` (inf if none)."""
    if not points:
        return np.full(len(p), np.inf)
    q = np.array(points)
    return np.hypot(p[:, None, 0] - q[:, 0], p[:, None, 1] - q[:, 1]).min(axis=1)


def _first(valid: np.ndarray) -> int | None:
    hits = np.flatnonzero(valid)
    return int(hits[0]) if hits.size else None


def generate_layout(
    rng: np.random.Generator,
    split: str,
    room_size: float,
    n_objects_range: tuple[int, int],
    max_obstacles: int,
    version: int = 1,
) -> Layout:
    """Draws a room, its obstacles and objects, the target and the robot's start.

    Rejection sampling keeps every blocker :data:`GAP` from the others. Candidates are drawn
    in batches and the first valid one is kept (one generator call and one array test per
    placement instead of a Python loop over tries); a layout that does not fit is redrawn
    from scratch. All draws come from ``rng``, so the layout is a deterministic function of
    the generator state.

    ``version=1`` (Navigation-v1) draws the scene with :func:`sample_scene` and places the
    robot first, then every object at least :data:`MIN_START_DISTANCE` from it: no
    placement rule tells the target apart. ``version=0`` keeps Navigation-v0's draw (the
    start distance constrains the target alone).
    """
    for _attempt in range(_MAX_ATTEMPTS):
        size = rng.uniform(0.75 * room_size, room_size, size=2)
        boxes: list[np.ndarray] = []
        for _ in range(int(rng.integers(0, max_obstacles + 1))):
            half = rng.uniform(0.2, 0.8, size=(16, 2))
            centre = rng.uniform(GAP + half, size - GAP - half)
            ok = np.ones(16, bool)
            for b in boxes:
                # Axis-aligned boxes: the larger per-axis gap bounds the Euclidean gap.
                gap_x = np.abs(centre[:, 0] - b[0]) - half[:, 0] - b[2]
                gap_y = np.abs(centre[:, 1] - b[1]) - half[:, 1] - b[3]
                ok &= np.maximum(gap_x, gap_y) >= GAP
            k = _first(ok)
            if k is not None:
                boxes.append(np.concatenate([centre[k], half[k]]))
        box_arr = np.array(boxes, dtype=np.float64).reshape(-1, 4)
        n_objects = int(rng.integers(n_objects_range[0], n_objects_range[1] + 1))
        wall_margin = ROBOT_RADIUS + 0.3
        if version == 0:
            colors, shapes, target = sample_objects(rng, split, n_objects)
            candidates = np.arange(n_objects) == target
            robot = None
        else:
            colors, shapes, candidates, target = sample_scene(rng, split, n_objects)
            p = rng.uniform((wall_margin, wall_margin), size - wall_margin, size=(64, 2))
            k = _first(_box_gap(p, box_arr) >= wall_margin)
            if k is None:
                continue
            robot = p[k]
        objects: list[np.ndarray] = []
        margin = GAP + OBJECT_RADIUS
        for _ in range(n_objects):
            p = rng.uniform((margin, margin), size - margin, size=(32, 2))
            ok = (_box_gap(p, box_arr) >= margin) & (
                _point_gap(p, objects) >= 2 * OBJECT_RADIUS + GAP
            )
            if robot is not None:
                ok &= _point_gap(p, [robot]) >= MIN_START_DISTANCE
            k = _first(ok)
            if k is None:
                break
            objects.append(p[k])
        if len(objects) < n_objects:
            continue
        obj_arr = np.array(objects)
        if robot is None:
            p = rng.uniform((wall_margin, wall_margin), size - wall_margin, size=(64, 2))
            ok = (
                (_box_gap(p, box_arr) >= wall_margin)
                & (_point_gap(p, objects) >= OBJECT_RADIUS + ROBOT_RADIUS + 0.5)
                & (_point_gap(p, [obj_arr[target]]) >= MIN_START_DISTANCE)
            )
            k = _first(ok)
            if k is None:
                continue
            robot = p[k]
        return Layout(
            size=size.astype(np.float32),
            boxes=box_arr.astype(np.float32),
            objects=obj_arr.astype(np.float32),
            colors=colors,
            shapes=shapes,
            candidates=candidates,
            target=target,
            robot=robot.astype(np.float32),
            heading=float(rng.uniform(-np.pi, np.pi)),
        )
    raise RuntimeError(
        f"could not fit {n_objects_range[1]} objects into a {room_size} m room in "
        f"{_MAX_ATTEMPTS} attempts; use a larger room_size or fewer max_objects"
    )


_WALL_DIRS = np.array([[-1, 0], [0, -1], [1, 0], [0, 1]], dtype=np.float32)


def nearest_static(
    pos: np.ndarray, size: np.ndarray, boxes: np.ndarray, box_valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest wall or box point to each robot (batched, no Python loop).

    Args:
        pos: ``(B, 2)`` positions; size: ``(B, 2)`` room sizes.
        boxes: ``(B, M, 4)`` boxes ``[cx, cy, half_x, half_y]``; box_valid: ``(B, M)`` bool.

    Returns:
        ``(distance (B,), offset (B, 2))``: distance to the nearest wall/box surface and the
        vector from ``pos`` to that surface point.
    """
    rows = np.arange(len(pos))
    # Walls: the nearest is the smallest of the four axis distances.
    wall_dist = np.concatenate([pos, size - pos], axis=1)  # (B, 4): left, bottom, right, top
    k = wall_dist.argmin(axis=1)
    dist = wall_dist[rows, k]
    offset = _WALL_DIRS[k] * dist[:, None]
    # Boxes: the nearest point of an axis-aligned box is the clamped position.
    lo = boxes[..., :2] - boxes[..., 2:]
    box_off = np.minimum(np.maximum(pos[:, None, :], lo), lo + 2 * boxes[..., 2:]) - pos[:, None]
    box_dist = np.where(box_valid, np.hypot(box_off[..., 0], box_off[..., 1]), np.inf)
    kb = box_dist.argmin(axis=1)
    nearer = box_dist[rows, kb] < dist
    dist = np.where(nearer, box_dist[rows, kb], dist)
    offset = np.where(nearer[:, None], box_off[rows, kb], offset)
    return dist, offset
