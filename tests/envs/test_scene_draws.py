"""Driving's merged draws take the numbers the separate uniform draws took (issue 20): the
same stream, scaled the way ``Generator.uniform`` scales it (v1's five candidate draws per
copy, the road's two, the traffic density's scalar)."""

from __future__ import annotations

import numpy as np
import pytest

from mmrl.envs.driving.road import RAMP_END_RANGE, RAMP_LENGTH_RANGE
from mmrl.envs.driving.scenes import (
    CANDIDATE_SPEED,
    CANDIDATE_TRIES,
    CANDIDATE_WINDOW,
    CANDIDATES,
    TRAILER_SLOWER,
    TRAILER_WINDOW,
    _candidate_draws,
)
from mmrl.envs.driving.simulator import DrivingSimulator
from mmrl.envs.numeric import scale_uniform

# Both versions' ramp ends (v1's from its class) and the ramp lengths.
ROAD_BOUNDS = [RAMP_END_RANGE, DrivingSimulator.ramp_end_range, RAMP_LENGTH_RANGE]


@pytest.mark.parametrize(
    "bounds",
    [CANDIDATE_WINDOW, CANDIDATE_SPEED, TRAILER_WINDOW, TRAILER_SLOWER, (0.6, 1.4), *ROAD_BOUNDS],
)
def test_scaling_is_generator_uniform_bit_for_bit(bounds: tuple[float, float]) -> None:
    want = np.random.default_rng(3).uniform(*bounds, size=100_000)
    got = scale_uniform(np.random.default_rng(3).random(100_000), *bounds)
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))


def test_scalar_scaling_is_generator_uniform_bit_for_bit() -> None:
    old, new = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(2000):
        assert scale_uniform(new.random(), 0.6, 1.4) == old.uniform(0.6, 1.4)


def test_merged_draw_matches_five_draws_per_copy() -> None:
    counts = np.array([0, 1, 2, 3, 3, 2, 1, 0])
    m, kc = len(counts), CANDIDATES
    valid = np.arange(kc) < counts[:, None]
    # The per-copy draws as Driving-v1 made them before issue 20 (padded with 0, chance 1).
    want = [np.zeros((m, CANDIDATE_TRIES, kc)), *(np.zeros((m, kc)) for _ in range(4))]
    want[2][:] = 1.0
    u = np.zeros((m, CANDIDATE_TRIES + 4, kc))
    for j, k in enumerate(counts):
        old, new = np.random.default_rng(j), np.random.default_rng(j)
        want[0][j, :, :k] = old.uniform(*CANDIDATE_WINDOW, size=(CANDIDATE_TRIES, k))
        want[1][j, :k] = old.uniform(*CANDIDATE_SPEED, size=k)
        want[2][j, :k] = old.random(k)
        want[3][j, :k] = old.uniform(*TRAILER_WINDOW, size=k)
        want[4][j, :k] = old.uniform(*TRAILER_SLOWER, size=k)
        u[j, :, :k] = new.random((CANDIDATE_TRIES + 4, k))
        assert old.random() == new.random()  # both streams end in the same place
    for got, expected in zip(_candidate_draws(u, valid), want, strict=True):
        assert got.shape == expected.shape
        assert np.array_equal(got.view(np.uint64), expected.view(np.uint64))
