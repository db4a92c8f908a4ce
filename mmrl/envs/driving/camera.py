"""Batched ego-centred top-down RGB camera.

The road is straight and its paint repeats, so every image row is one of a few dozen *row
kinds* (plain road with or without a lane dash, exit lane with its dash states, a row through
an exit chevron, row ``j`` past the decision point where the ramp diverges ...). Each kind
is painted once per process (per image size and lane count) into a small table. A reset
computes, with a handful of array operations, the kind of every row along the copy's road;
a step reads the rows in view and gathers them, already cropped around the ego, in one
indexing operation, then stamps all cars with one flat scatter. There is no per-copy Python
work per step and no per-copy image kept in memory.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mmrl.envs.driving.kernels import render_kernel, road_kinds_kernel
from mmrl.envs.driving.road import (
    ARROW_LEAD,
    ARROW_LENGTH,
    ARROW_SPACING,
    DASH_LENGTH,
    DASH_PERIOD,
    EXIT_DASH_LENGTH,
    EXIT_DASH_PERIOD,
    LANE_WIDTH,
    MAX_LANES,
    RAMP_END_RANGE,
    paint_row,
)
from mmrl.envs.driving.traffic import CAR_LENGTH, CAR_WIDTH

VIEW_AHEAD, VIEW_BEHIND, VIEW_WIDTH = 60.0, 20.0, 40.0
"""Default camera footprint (m, Driving-v0's): the image spans ``VIEW_AHEAD + VIEW_BEHIND``
(80 m) along the road and 40 m across it, centred across on the ego; rows go from far ahead
(top) to behind (bottom). :class:`Camera` takes the split ahead/behind as arguments
(Driving-v1 looks 76 m ahead and 4 m behind)."""
EGO_RGB = np.array((20, 20, 24), np.uint8)
"""The ego car is drawn near-black, a colour no other car has."""
AFTER_LENGTH = 120.0
"""Metres past the decision point with their own row kinds: the view never looks further (at
most ``view_ahead`` (<= 100 m) past the ego, which is at most one step, < 20 m, past the
decision point)."""
MAX_VIEW_AHEAD = AFTER_LENGTH - 20.0
"""Largest ``view_ahead`` (m) the row kinds past the decision point cover."""
Y_LO = -0.5 * VIEW_WIDTH - 4.0
"""Lateral position (m) of the table's left edge."""


@functools.lru_cache(maxsize=16)
def row_table(size: int, length: float) -> tuple[np.ndarray, dict[str, int]]:
    """Painted row kinds for an image side of ``size`` pixels spanning ``length`` metres along
    the road, for every lane count.

    Returns:
        ``(table, layout)``: ``table`` is ``(n_kinds, cols * 3)`` uint8 (rows flattened RGB);
        ``layout`` gives the number of kinds per lane count (``"per_lanes"``), the first
        chevron kind, the first after-ramp kind and the numbers of both.
    """
    res_x = length / size
    res_y = VIEW_WIDTH / size
    y_hi = (MAX_LANES + 1) * LANE_WIDTH + 0.5 * VIEW_WIDTH + 4.0
    cols = math.ceil((y_hi - Y_LO) / res_y)
    ys = Y_LO + (np.arange(cols) + 0.5) * res_y
    n_chev = math.ceil(ARROW_LENGTH / res_x)
    n_after = math.ceil(AFTER_LENGTH / res_x)
    chev0 = 6
    after0 = chev0 + 2 * n_chev
    per_lanes = after0 + n_after
    table = np.zeros((MAX_LANES + 1, per_lanes, cols, 3), np.uint8)
    for n in range(2, MAX_LANES + 1):
        rows = table[n]
        for dash in (0, 1):
            paint_row(rows[dash], ys, n, lane_dash=bool(dash))
            for exd in (0, 1):
                paint_row(
                    rows[2 + 2 * dash + exd], ys, n, lane_dash=bool(dash), exit_lane=True,
                    exit_dash=bool(exd),
                )  # fmt: skip
            for sub in range(n_chev):
                paint_row(
                    rows[chev0 + 2 * sub + dash], ys, n, lane_dash=bool(dash),
                    chevron=min((sub + 0.5) * res_x, ARROW_LENGTH),
                )  # fmt: skip
        for j in range(n_after):
            rel = (j + 0.5) * res_x
            dash = np.mod(rel, DASH_PERIOD) < max(DASH_LENGTH, res_x)
            paint_row(rows[after0 + j], ys, n, lane_dash=bool(dash), after=rel)
    layout = {"per_lanes": per_lanes, "chev0": chev0, "n_chev": n_chev, "after0": after0,
              "n_after": n_after, "cols": cols}  # fmt: skip
    return table.reshape(-1, cols * 3), layout


class Camera:
    """Renders the camera images of a batch of copies.

    Args:
        num_envs: Number of copies.
        size: Image side in pixels.
        view_ahead: Metres of road shown ahead of the ego's centre (at most
            ``MAX_VIEW_AHEAD``).
        view_behind: Metres shown behind it (``view_ahead + view_behind`` is the image's
            length along the road).
    """

    # Class defaults: cameras pickled (in run checkpoints) before the view became an argument
    # had the v0 view.
    view_ahead: float = VIEW_AHEAD
    view_behind: float = VIEW_BEHIND
    length: float = VIEW_AHEAD + VIEW_BEHIND

    def __init__(
        self,
        num_envs: int,
        size: int,
        view_ahead: float = VIEW_AHEAD,
        view_behind: float = VIEW_BEHIND,
        max_ramp_end: float = RAMP_END_RANGE[1],
    ) -> None:
        if not (0.0 < view_ahead <= MAX_VIEW_AHEAD and view_behind >= 0.0):
            raise ValueError(
                f"view_ahead must be in (0, {MAX_VIEW_AHEAD}] and view_behind >= 0 m, got "
                f"{view_ahead} and {view_behind}"
            )
        self.size = size
        self.view_ahead = float(view_ahead)
        self.view_behind = float(view_behind)
        self.length = self.view_ahead + self.view_behind
        self.res_x = self.length / size
        self.res_y = VIEW_WIDTH / size
        # Row kinds are precomputed per episode along a strip of rows at the image's
        # longitudinal resolution (row q lies at x = X_TOP - (q + 0.5) * res_x); a step reads
        # the S consecutive entries in view. Cars are drawn on the same grid.
        self.x_top = float(max_ramp_end) + 20.0 + self.view_ahead
        x_bottom = -self.view_behind - 20.0
        self.n_q = math.ceil((self.x_top - x_bottom) / self.res_x)
        self._q_x = self.x_top - (np.arange(self.n_q) + 0.5) * self.res_x
        self.kinds = np.zeros((num_envs, self.n_q), np.int64)
        # A car covers the pixels whose centres lie on it (at least one pixel).
        self._h = max(round(CAR_LENGTH / self.res_x), 1)
        self._w = max(round(CAR_WIDTH / self.res_y), 1)
        self._windows_cache: np.ndarray | None = None

    def __getstate__(self) -> dict:
        # The window view aliases a shared cached table; rebuild it instead of pickling a copy.
        return {**self.__dict__, "_windows_cache": None}

    @property
    def _windows(self) -> np.ndarray:
        if self._windows_cache is None:
            table, layout = row_table(self.size, self.length)
            # (kinds, cols - S + 1, 3 S): window c holds pixel columns c .. c + S - 1 of a row,
            # so fancy indexing with (kind, first column) returns rows already cropped.
            self._windows_cache = sliding_window_view(table, 3 * self.size, axis=1)[:, ::3]
            self._layout = layout
        return self._windows_cache

    def paint_roads(
        self,
        idx: np.ndarray,
        n_lanes: np.ndarray,
        ramp_start: np.ndarray,
        ramp_end: np.ndarray,
        onramp_end: np.ndarray | None = None,
    ) -> None:
        """Computes the row kinds of copies ``idx`` (``(k,)``) for new episodes on the given
        ``(k,)`` roads (``onramp_end``: where each road's on-ramp ends, v1; ``None``: none).
        The on-ramp is drawn like the exit lane: a lane right of the rightmost one, behind
        short dense dashes."""
        self._windows  # noqa: B018  (makes sure the table and layout exist)
        lay = self._layout
        # One compiled loop per copy and strip row (issue 20: the ~25 array operations
        # over (copies, strip rows) cost ~490 us per reset call whatever its size).
        f64 = np.float64
        road_kinds_kernel(
            self._q_x, np.arange(len(self.kinds))[idx], np.asarray(n_lanes, np.int64),
            np.ascontiguousarray(ramp_start, f64), np.ascontiguousarray(ramp_end, f64),
            np.ascontiguousarray(ramp_end if onramp_end is None else onramp_end, f64),
            onramp_end is not None, DASH_PERIOD, max(DASH_LENGTH, self.res_x),
            EXIT_DASH_PERIOD, max(EXIT_DASH_LENGTH, self.res_x), ARROW_LEAD, ARROW_SPACING,
            ARROW_LENGTH, self.res_x, lay["chev0"], lay["n_chev"], lay["after0"],
            lay["n_after"], lay["per_lanes"], self.kinds,
        )  # fmt: skip

    def render(
        self,
        idx: np.ndarray | slice,
        ego_x: np.ndarray,
        ego_y: np.ndarray,
        car_x: np.ndarray,
        car_y: np.ndarray,
        car_rgb: np.ndarray,
        visible: np.ndarray,
    ) -> np.ndarray:
        """Images of ``k`` copies.

        Args:
            idx: The copies (indices or a slice), for their precomputed row kinds.
            ego_x, ego_y: ``(k,)`` ego positions (m).
            car_x, car_y: ``(k, N)`` other cars' positions (m).
            car_rgb: ``(k, N + 1, 3)`` uint8 colours, the ego's (``EGO_RGB``) last.
            visible: ``(k, N + 1)`` bool, slot holds a car (the ego's slot: true).

        Returns:
            ``(k, S, S, 3)`` uint8 RGB images.
        """
        s = self.size
        windows = self._windows
        k = ego_x.shape[0]
        # First strip row in view (the ego sits view_behind above the bottom edge) and first
        # table column (the ego is centred); both are exact integers on the pixel grid.
        q0 = ((self.x_top - self.view_ahead - ego_x) * (1.0 / self.res_x)).astype(np.int64)
        q0 = np.minimum(np.maximum(q0, 0), self.n_q - s)  # never past the strip's ends
        c0 = ((ego_y - (0.5 * VIEW_WIDTH + Y_LO)) * (1.0 / self.res_y)).astype(np.int64)
        c0 = np.minimum(np.maximum(c0, 0), windows.shape[1] - 1)
        # Rows copied from the table and cars stamped (the ego last, so it stays on top) in
        # one compiled loop per copy (issue 20: the gather through every copy's whole strip
        # of row kinds and the ~20 array operations of the car scatter were ~5 us per
        # env-step). A car covers the pixels whose centres lie on it: its stamp starts at
        # the pixel whose centre is nearest its front/left edge.
        img = np.empty((k, s, s, 3), np.uint8)
        render_kernel(
            np.arange(len(self.kinds))[idx], self.kinds, q0, c0,
            row_table(self.size, self.length)[0], self.x_top, Y_LO,
            0.5 * (self._h * self.res_x), 0.5 * (self._w * self.res_y), 1.0 / self.res_x,
            1.0 / self.res_y, self.res_x, self.res_y, np.ascontiguousarray(car_x, np.float64),
            np.ascontiguousarray(car_y, np.float64), np.ascontiguousarray(ego_x, np.float64),
            np.ascontiguousarray(ego_y, np.float64), car_rgb, visible, self._h, self._w,
            img.reshape(k, s, 3 * s),
        )  # fmt: skip
        return img
