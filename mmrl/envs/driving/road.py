"""Procedural road: a straight multi-lane highway with an off-ramp on the right.

Coordinates are road-aligned metres: ``x`` along the road (the ego starts at ``x = 0``),
``y`` across it, growing to the right; main lane ``k`` (0 = leftmost) spans
``[k * LANE_WIDTH, (k + 1) * LANE_WIDTH]``. The exit lane (index ``n_lanes``) is a
deceleration lane right of the rightmost lane for ``x`` in ``[ramp_start, ramp_end]``; at
``ramp_end`` (the *decision point*) it diverges to the right and every episode ends there.
Driving-v1 roads also start with an on-ramp: the same lane index, an acceleration lane for
``x <= onramp_end``, which ends there (the ego on it must merge before).
"""

from __future__ import annotations

import dataclasses

import numpy as np

LANE_WIDTH = 4.0
"""Lane width in metres."""
RAMP_END_RANGE = (300.0, 450.0)
"""Range of the decision point (``ramp_end``) ahead of the ego's start, metres (v0; each
simulator version names its own, see ``DrivingSimulator.ramp_end_range``)."""
RAMP_LENGTH_RANGE = (100.0, 150.0)
"""Range of the exit lane's length, metres."""
DIVERGE_SLOPE = 0.3
"""Lateral metres per longitudinal metre by which the ramp leaves after ``ramp_end``."""
MAX_LANES = 4


@dataclasses.dataclass
class RoadBatch:
    """Road parameters of ``n`` copies (each ``(n,)``)."""

    n_lanes: np.ndarray  # int64
    ramp_start: np.ndarray  # float64
    ramp_end: np.ndarray  # float64
    onramp_end: np.ndarray | None = None
    """End (m) of the on-ramp (v1), ``(n,)`` float64; ``None``: no on-ramp (v0, and roads
    pickled before on-ramps)."""

    @classmethod
    def empty(cls, n: int) -> RoadBatch:
        """Placeholder roads for ``n`` copies (overwritten at reset)."""
        return cls(np.full(n, 2, np.int64), np.full(n, 200.0), np.full(n, 300.0))


def lane_center(lane: np.ndarray) -> np.ndarray:
    """Lateral centre (m) of lane index ``lane`` (the exit lane is ``n_lanes``)."""
    return (np.asarray(lane) + 0.5) * LANE_WIDTH


def extra_lane_open(x: np.ndarray, road: RoadBatch) -> np.ndarray:
    """Whether lane ``n_lanes`` exists at ``x``: the exit lane, or the on-ramp before its end."""
    open_ = exit_open(x, road)
    if road.onramp_end is not None:
        open_ = open_ | (x <= road.onramp_end)
    return open_


def exit_open(x: np.ndarray, road: RoadBatch) -> np.ndarray:
    """Whether the exit lane exists at longitudinal position ``x``."""
    return (x >= road.ramp_start) & (x <= road.ramp_end)


# ---------------------------------------------------------------------------- rendering
GRASS = np.array((58, 118, 52), np.uint8)
ASPHALT = np.array((92, 92, 96), np.uint8)
PAINT = np.array((235, 235, 235), np.uint8)
KERB_PAINT = np.array((240, 200, 40), np.uint8)  # yellow outer edge lines
GORE = np.array((200, 200, 200), np.uint8)

DASH_PERIOD, DASH_LENGTH = 12.0, 4.0
"""Lane divider dashes (m): the camera shows lanes only through these markings."""
EXIT_DASH_PERIOD, EXIT_DASH_LENGTH = 5.0, 2.5
"""Shorter, denser dashes separate the exit lane from the rightmost lane."""
ARROW_LEAD, ARROW_SPACING, ARROW_LENGTH = 150.0, 30.0, 4.0
"""Exit chevrons painted in the rightmost lane over the ``ARROW_LEAD`` m before the ramp."""


def paint_row(
    out: np.ndarray,
    ys: np.ndarray,
    n_lanes: int,
    *,
    lane_dash: bool,
    exit_lane: bool = False,
    exit_dash: bool = False,
    chevron: float | None = None,
    after: float | None = None,
) -> None:
    """Paints one image row of the road seen from above.

    Args:
        out: ``(W, 3)`` uint8 row written in place.
        ys: ``(W,)`` lateral position (m) of each pixel centre.
        n_lanes: Main-road lanes.
        lane_dash: The row crosses a lane-divider dash.
        exit_lane: The row lies along the open exit lane.
        exit_dash: The row crosses a dash of the exit lane's divider.
        chevron: Position (m, 0..4) within an exit chevron, or ``None``.
        after: Distance (m) past the decision point, where the ramp diverges, or ``None``.
    """
    w = LANE_WIDTH
    main = n_lanes * w
    res = float(ys[1] - ys[0])

    def col(y: float) -> int:
        return int(np.clip(np.round((y - ys[0]) / res), 0, len(ys) - 1))

    out[:] = GRASS
    out[(ys >= 0) & (ys <= main)] = ASPHALT
    if exit_lane:
        out[(ys > main) & (ys <= main + w)] = ASPHALT
    if after is not None:
        shift = after * DIVERGE_SLOPE
        out[(ys >= main + shift) & (ys <= main + w + shift)] = ASPHALT
        gore = (ys > main + 0.5) & (ys < main + shift - 0.5) & (np.mod(after + ys, 4.0) < 1.5)
        out[gore] = GORE
        out[col(main + shift)] = KERB_PAINT
        out[col(main + w + shift)] = KERB_PAINT
    if lane_dash:
        for k in range(1, n_lanes):
            out[col(k * w)] = PAINT
    out[col(0.5 * res)] = KERB_PAINT
    if exit_lane:
        if exit_dash:
            out[col(main - 0.5 * res)] = PAINT
        out[col(main + w - 0.5 * res)] = KERB_PAINT
    else:
        out[col(main - 0.5 * res)] = KERB_PAINT
    if chevron is not None:
        # Chevrons pointing ahead-right announce the exit: only the camera can tell how far
        # away the ramp is before the exit lane opens.
        lane_c = main - 0.5 * w
        for side in (-1.0, 1.0):
            out[col(lane_c + side * (1.2 - 0.3 * chevron) + 0.3 * chevron)] = PAINT
