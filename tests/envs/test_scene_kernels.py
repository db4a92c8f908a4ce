"""Driving's compiled scene loops (``mmrl/envs/driving/scene_kernels.py``) place what the
NumPy code they replaced placed (issue 20), bit for bit.

The ``frozen_*`` functions are verbatim copies (docstrings left out) of ``_spawn_positions``,
``_candidate_positions`` and ``_background_colours`` of ``mmrl/envs/driving/scenes.py`` as
they were before the kernels (main at 0d1a573). They run on random inputs including the rare
cases: empty roads, a density of zero, the candidates' fallback (no separated set), one or
no candidate, ties in colour counts, single cars. Padding columns are not compared (every
consumer masks them with ``count``).
"""

from __future__ import annotations

import numpy as np
import pytest

from mmrl.envs.driving.road import MAX_LANES
from mmrl.envs.driving.scene_kernels import candidate_positions_kernel
from mmrl.envs.driving.scenes import (
    _N_COLORS,
    CANDIDATE_SEPARATION,
    CANDIDATE_TRIES,
    CANDIDATE_WINDOW,
    CANDIDATES,
    MAX_DRAWS,
    MEAN_GAP,
    MIN_GAP,
    SPAWN_AHEAD,
    SPAWN_BEHIND,
    _background_colours,
    _spawn_positions,
)
from mmrl.envs.driving.traffic import CarLists


# --------------------------------------------------------------------------- frozen copies
def frozen_spawn_positions(u, draws, n_lanes, clear_lane, density, passing_density):
    m = u.shape[0]
    some = density > 0
    safe = np.where(some, density, 1.0)
    gap = np.maximum(MEAN_GAP / safe, MIN_GAP)
    gap_passing = np.maximum(MEAN_GAP / (safe * passing_density), MIN_GAP)
    lanes = np.arange(MAX_LANES)
    gaps = np.where(lanes == 0, gap_passing[:, None], gap[:, None])[:, :, None]
    steps = (u + 0.5) * gaps
    steps[:, :, 0] = u[:, :, 0] * gaps[:, :, 0]
    # Cumulative sums run left to right, so each copy's first draws[j] positions are exactly
    # its per-copy ones whatever the padding after them.
    xs = np.cumsum(steps, axis=2) - SPAWN_BEHIND
    clear = np.where(lanes == clear_lane[:, None], 25.0, 12.0)[:, :, None]
    keep = (
        (xs < SPAWN_AHEAD)
        & (np.abs(xs) > clear)
        & (lanes < n_lanes[:, None])[:, :, None]
        & (np.arange(u.shape[2]) < draws[:, None, None])
        & some[:, None, None]
    )
    flat = keep.reshape(m, -1)
    data = np.zeros((5, *flat.shape))
    data[0] = xs.reshape(m, -1)
    data[1] = np.repeat(lanes, xs.shape[2])  # lane of each flattened (lane, draw)
    return CarLists(data, np.full(m, flat.shape[1])).select(flat)


def frozen_candidate_positions(xs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    # Smallest distance between valid candidates: sorted, the nearest pair is adjacent, and
    # the rounded differences keep their order, so this is the per-copy minimum over all
    # pairs exactly. Missing candidates sit far apart, out of every pair's way.
    far = 1e6 * np.arange(1, xs.shape[2] + 1)
    srt = np.sort(np.where(valid[:, None, :], xs, far), axis=2)
    ok = np.diff(srt, axis=2).min(axis=2, initial=np.inf) >= CANDIDATE_SEPARATION
    chosen = xs[np.arange(len(xs)), np.argmax(ok, axis=1)]
    fallback = np.where(valid, srt[:, 0], 0.0)  # the first set, sorted
    return np.where(ok.any(axis=1)[:, None], chosen, fallback)


def frozen_background_colours(
    cars: CarLists, draw: np.ndarray, reserved: np.ndarray, reserved_valid: np.ndarray
) -> np.ndarray:
    m = len(draw)
    usable = np.ones((m, _N_COLORS), bool)
    rows = np.broadcast_to(np.arange(m)[:, None], reserved.shape)
    usable[rows[reserved_valid], reserved[reserved_valid]] = False
    free = np.argsort(~usable, axis=1, kind="stable")  # free colours first, ascending
    valid = cars.valid
    by_row = np.arange(m)[:, None]
    colour = np.where(valid, free[by_row, draw], cars.color.astype(np.int64))
    flat = (by_row * _N_COLORS + colour)[valid]
    counts = np.bincount(flat, minlength=m * _N_COLORS).reshape(m, _N_COLORS)
    lone = counts == 1
    fix = (cars.count > 1) & lone.any(axis=1)
    # Lone cars take the most common colour (itself shared, or then shared by them).
    alone = lone[by_row, colour] & valid & fix[:, None]
    return np.where(alone, np.argmax(counts, axis=1)[:, None], colour)


# --------------------------------------------------------------------------- tests
def _same_cars(a: CarLists, b: CarLists) -> None:
    assert np.array_equal(a.count, b.count)
    valid = a.valid
    for field in ("x", "lane"):
        got, want = getattr(b, field)[:, : a.x.shape[1]], getattr(a, field)
        assert np.array_equal(got[valid].view(np.uint64), want[valid].view(np.uint64))


@pytest.mark.parametrize("passing_density", [1.0, 0.5, 1.7])
def test_spawn_positions(passing_density: float) -> None:
    rng = np.random.default_rng(11)
    m = 400
    density = rng.choice([0.0, 0.01, 0.3, 1.0, 2.0, 2.8], size=m) * rng.uniform(0.6, 1.4, m)
    density[:5] = 0.0
    n_lanes = rng.integers(2, MAX_LANES + 1, size=m)
    clear_lane = rng.integers(0, n_lanes)
    draws = np.zeros(m, np.int64)
    some = density > 0
    gap_min = np.minimum(
        np.maximum(MEAN_GAP / np.where(some, density, 1.0), MIN_GAP),
        np.maximum(MEAN_GAP / (np.where(some, density, 1.0) * passing_density), MIN_GAP),
    )
    draws[some] = np.ceil((SPAWN_AHEAD + SPAWN_BEHIND) / (0.5 * gap_min[some])).astype(int) + 1
    draws = np.minimum(draws, MAX_DRAWS)
    u = np.zeros((m, MAX_LANES, MAX_DRAWS))
    for j in range(m):
        u[j, : n_lanes[j], : draws[j]] = rng.random((n_lanes[j], draws[j]))
    u = u[:, :, : max(int(draws.max()), 1)]
    args = (u, draws, n_lanes, clear_lane, density, passing_density)
    old = frozen_spawn_positions(*args)
    assert old.count.max() > 10 and (old.count == 0).any()
    _same_cars(old, _spawn_positions(*args))


def test_candidate_positions() -> None:
    rng = np.random.default_rng(12)
    m = 3000
    n_cand = rng.integers(0, CANDIDATES + 1, size=m)
    valid = np.arange(CANDIDATES) < n_cand[:, None]
    # Wide windows (a separated set early), narrow ones (often none: the fallback) and
    # repeated values (ties in the sort).
    hi = np.where(rng.random(m) < 0.5, CANDIDATE_WINDOW[1], CANDIDATE_WINDOW[0] + 12.0)
    xs = CANDIDATE_WINDOW[0] + (hi - CANDIDATE_WINDOW[0])[:, None, None] * rng.random(
        (m, CANDIDATE_TRIES, CANDIDATES)
    )
    xs[::7, :, 1] = xs[::7, :, 0]
    xs = np.where(valid[:, None, :], xs, 0.0)
    want = frozen_candidate_positions(xs, valid)
    got = np.zeros((m, CANDIDATES))
    candidate_positions_kernel(xs, n_cand, CANDIDATE_SEPARATION, got)
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
    separated = np.diff(np.sort(np.where(valid[:, None], xs, 1e6 * np.arange(1, 4)), axis=2))
    none_ok = ~(separated.min(axis=2) >= CANDIDATE_SEPARATION).any(axis=1)
    assert 50 < none_ok.sum() < m - 50  # both branches ran


def test_background_colours() -> None:
    rng = np.random.default_rng(13)
    m, width = 2000, 14
    count = rng.choice([0, 1, 2, 3, 5, 8, 14], size=m)
    n_res = rng.integers(0, CANDIDATES + 1, size=m)
    reserved = np.zeros((m, CANDIDATES), np.int64)
    for j in range(m):
        reserved[j, : n_res[j]] = rng.choice(_N_COLORS, size=n_res[j], replace=False)
    reserved_valid = np.arange(CANDIDATES) < n_res[:, None]
    draw = rng.integers(0, (_N_COLORS - n_res)[:, None], size=(m, width))
    draw[::5] = 0  # one colour for all: no lone car
    data = np.zeros((5, m, width))
    data[4] = rng.integers(0, _N_COLORS, size=(m, width))
    cars = CarLists(data, count)
    want = frozen_background_colours(cars, draw, reserved, reserved_valid)
    got = _background_colours(cars, draw, reserved, reserved_valid)
    valid = cars.valid
    assert np.array_equal(got[valid], want[valid])
