"""``floor_mod`` is ``np.mod`` bit for bit (issue 20), and the road painting (now a compiled
loop using the same identity) gives the row kinds ``np.mod`` gave, over many more roads than
the golden hashes see."""

from __future__ import annotations

import numpy as np
import pytest

from mmrl.envs.driving.camera import Camera
from mmrl.envs.driving.road import (
    ARROW_LEAD,
    ARROW_LENGTH,
    ARROW_SPACING,
    DASH_LENGTH,
    DASH_PERIOD,
    EXIT_DASH_LENGTH,
    EXIT_DASH_PERIOD,
    RAMP_END_RANGE,
)
from mmrl.envs.numeric import floor_mod


def _near(values: np.ndarray) -> np.ndarray:
    """``values`` and their neighbouring floats on both sides (where rounding bites)."""
    up = np.nextafter(values, values.dtype.type(np.inf))
    down = np.nextafter(values, values.dtype.type(-np.inf))
    return np.concatenate([values, up, down])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("period", [1.0, 5.0, 12.0, 30.0])
def test_floor_mod_is_np_mod_bit_for_bit(dtype: type, period: float) -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.uniform(-2000.0, 2000.0, 50_000),
            rng.uniform(-1.0, 1.0, 20_000),
            np.arange(-300, 300) * period,  # exact multiples, and their neighbours below
            [0.0, -0.0, 1e-30, -1e-30, 1e-45, -1e-45],
        ]
    ).astype(dtype)
    a = _near(values)
    got, want = floor_mod(a, period), np.mod(a, period)
    assert got.dtype == want.dtype == dtype
    bits = np.uint32 if dtype == np.float32 else np.uint64
    assert np.array_equal(got.view(bits), want.view(bits))  # -0.0 against +0.0 too


def test_floor_mod_leaves_its_input_alone() -> None:
    a = np.array([-1.5, 2.5, 13.0])
    floor_mod(a, 12.0)
    assert a.tolist() == [-1.5, 2.5, 13.0]


def frozen_paint_roads(camera, idx, n_lanes, ramp_start, ramp_end, onramp_end=None):
    """``Camera.paint_roads`` before issue 20 (with ``np.mod``), verbatim."""
    camera._windows  # noqa: B018
    lay = camera._layout
    x = camera._q_x[None, :]
    rs = ramp_start[:, None]
    rel = x - ramp_end[:, None]
    dash = (np.mod(rel, DASH_PERIOD) < max(DASH_LENGTH, camera.res_x)).astype(np.int64)
    in_exit = (x >= rs) & (rel <= 0)
    if onramp_end is not None:
        in_exit |= x <= onramp_end[:, None]
    exd = np.mod(rel, EXIT_DASH_PERIOD) < max(EXIT_DASH_LENGTH, camera.res_x)
    kind = np.where(in_exit, 2 + 2 * dash + exd, dash)
    u = x - (rs - ARROW_LEAD)
    um = np.mod(u, ARROW_SPACING)
    chev = (u >= 0) & (x < rs) & (um < ARROW_LENGTH)
    sub = np.minimum((um / camera.res_x).astype(np.int64), lay["n_chev"] - 1)
    kind = np.where(chev, lay["chev0"] + 2 * sub + dash, kind)
    after = np.minimum(np.maximum(rel / camera.res_x, 0).astype(np.int64), lay["n_after"] - 1)
    kind = np.where(rel > 0, lay["after0"] + after, kind)
    camera.kinds[idx] = kind + (n_lanes * lay["per_lanes"])[:, None]


@pytest.mark.parametrize("onramp", [True, False])
@pytest.mark.parametrize("view", [(60.0, 20.0), (76.0, 4.0)])  # v0's and v1's camera
def test_paint_roads_matches_np_mod(view: tuple, onramp: bool) -> None:
    """The compiled road rows (``road_kinds_kernel``) against the array code with np.mod,
    on many random roads, ramps ending on dash and chevron boundaries among them."""
    rng = np.random.default_rng(1)
    m = 400
    new, old = Camera(m, 64, *view), Camera(m, 64, *view)
    n_lanes = rng.integers(2, 5, m)
    ramp_end = rng.uniform(*RAMP_END_RANGE, m)
    ramp_start = ramp_end - rng.uniform(80.0, 200.0, m)
    # Roads where some strip row x falls exactly on a lane-dash, exit-dash or chevron edge
    # (x - ramp_end = 4 or 2.5, (x - ramp_start + 150) mod 30 = 4; exact in float64).
    grid = new._q_x[(new._q_x > RAMP_END_RANGE[0]) & (new._q_x < RAMP_END_RANGE[1])]
    rows = rng.choice(grid, 120)
    ramp_end[:40] = rows[:40] - DASH_LENGTH
    ramp_end[40:80] = rows[40:80] - EXIT_DASH_LENGTH
    ramp_start[80:120] = rows[80:120] + ARROW_SPACING - ARROW_LENGTH
    ramp_end[80:120] = ramp_start[80:120] + 100.0
    onramp_end = rng.uniform(100.0, 160.0, m) if onramp else None
    idx = rng.permutation(m)
    new.paint_roads(idx, n_lanes, ramp_start, ramp_end, onramp_end)
    frozen_paint_roads(old, idx, n_lanes, ramp_start, ramp_end, onramp_end)
    assert new.kinds.dtype == old.kinds.dtype and np.array_equal(new.kinds, old.kinds)
