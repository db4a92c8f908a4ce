"""The compiled generator calls of :mod:`mmrl.envs.driving.scene_kernels` draw what NumPy's
``Generator`` draws, bit for bit, and leave the stream where NumPy leaves it (issue 20)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from mmrl.envs.driving import instructions, scene_kernels
from mmrl.envs.driving import scene_kernels as streams

BIT_GENERATORS = [
    np.random.PCG64,
    np.random.PCG64DXSM,
    np.random.MT19937,
    np.random.Philox,
    np.random.SFC64,
]


@njit
def _randoms(table, j, out):
    for i in range(len(out)):
        out[i] = streams.random(table, j)


@njit
def _integers(table, j, low, high, out):
    for i in range(len(out)):
        out[i] = streams.integers(table, j, low, high)


@njit
def _choice(table, j, n, out):
    streams.choice_floyd(table, j, n, out)


def _call_pair(
    op: int, numpy_rng: np.random.Generator, table: np.ndarray, plan: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One random call, made by NumPy and by the kernels (on copy 1 of ``table``)."""
    if op == 0:  # random(), random(n)
        n = int(plan.integers(0, 5))
        got = np.empty(max(n, 1))
        _randoms(table, 1, got)
        want = numpy_rng.random() if n == 0 else numpy_rng.random(n)
        return np.atleast_1d(want), got
    if op in (1, 2):  # integers(low, high) scalar, or with a size
        low = int(plan.integers(-5, 5))
        high = low + int(plan.integers(1, 40) if op == 1 else plan.integers(1, 2**32 + 1))
        n = 1 if plan.random() < 0.5 else int(plan.integers(0, 6))
        got = np.empty(n, np.int64)
        _integers(table, 1, low, high, got)
        want = numpy_rng.integers(low, high) if n == 1 else numpy_rng.integers(low, high, size=n)
        return np.atleast_1d(want), got
    pop = int(plan.integers(0, 12))  # choice(pop, size=k, replace=False)
    k = int(plan.integers(0, pop + 1))
    got = np.empty(k, np.int64)
    _choice(table, 1, pop, got)
    return numpy_rng.choice(pop, size=k, replace=False), got


@pytest.mark.parametrize("bit_generator", BIT_GENERATORS, ids=lambda c: c.__name__)
def test_kernel_calls_match_numpy_and_share_the_stream(bit_generator: type) -> None:
    for seed in range(60):
        plan = np.random.default_rng(1000 + seed)
        numpy_rng = np.random.Generator(bit_generator(seed))
        kernel_rng = np.random.Generator(bit_generator(seed))
        other = np.random.default_rng(7)  # copy 0 of the table: must stay untouched
        table = streams.stream_table([other, kernel_rng])
        for _ in range(40):
            op = int(plan.integers(4))
            want, got = _call_pair(op, numpy_rng, table, plan)
            assert np.array_equal(want, got), (seed, op, want, got)
            # NumPy calls on the kernel's generator continue its stream (the spare 32-bit
            # half of PCG64's next_uint32 included).
            if plan.random() < 0.3:
                assert kernel_rng.integers(1000) == numpy_rng.integers(1000)
        assert kernel_rng.random() == numpy_rng.random()
        assert other.random() == np.random.default_rng(7).random()


def test_rejection_draws_match() -> None:
    """Ranges just above 2**31 reject about half of the 32-bit draws (Lemire's loop)."""
    numpy_rng, kernel_rng = np.random.default_rng(3), np.random.default_rng(3)
    got = np.empty(2000, np.int64)
    _integers(streams.stream_table([kernel_rng]), 0, 0, 2**31 + 1, got)
    assert np.array_equal(numpy_rng.integers(0, 2**31 + 1, size=2000), got)
    assert kernel_rng.random() == numpy_rng.random()


def test_task_ids_of_the_kernels() -> None:
    assert (scene_kernels._LANE, scene_kernels._FOLLOW, scene_kernels._OVERTAKE) == (
        instructions.LANE,
        instructions.FOLLOW,
        instructions.OVERTAKE,
    )
