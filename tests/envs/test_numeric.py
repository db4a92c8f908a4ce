"""``floor_mod`` is ``np.mod`` bit for bit (issue 20), and the road painting that uses it
gives the row kinds ``np.mod`` gave, over many more roads than the golden hashes see."""

from __future__ import annotations

import numpy as np
import pytest

from mmrl.envs.driving import camera as driving_camera
from mmrl.envs.driving.camera import Camera
from mmrl.envs.driving.road import RAMP_END_RANGE
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


@pytest.mark.parametrize("view", [(60.0, 20.0), (76.0, 4.0)])  # v0's and v1's camera
def test_paint_roads_matches_np_mod(monkeypatch: pytest.MonkeyPatch, view: tuple) -> None:
    rng = np.random.default_rng(1)
    m = 400
    n_lanes = rng.integers(2, 5, m)
    ramp_end = rng.uniform(*RAMP_END_RANGE, m)
    ramp_start = ramp_end - rng.uniform(80.0, 200.0, m)
    onramp_end = rng.uniform(100.0, 160.0, m)
    idx = np.arange(m)
    kinds = []
    for fn in (floor_mod, np.mod):
        monkeypatch.setattr(driving_camera, "floor_mod", fn)
        camera = Camera(m, 64, *view)
        camera.paint_roads(idx, n_lanes, ramp_start, ramp_end, onramp_end)
        kinds.append(camera.kinds.copy())
    assert np.array_equal(kinds[0], kinds[1])
