"""NumPy ``Generator`` calls inside numba kernels, bit for bit (issue 20).

Driving's episode draws make ~16 generator calls per copy, and a NumPy ``Generator`` call
costs 0.3-6 us of Python-level overhead (``choice(replace=False)`` the most) around a few
nanoseconds of arithmetic; numba's own ``Generator`` support costs ~11 us per call just to
unbox the generator. This module lets a kernel draw from each copy's **own bit generator**
through the C functions NumPy's ``Generator`` itself calls (``bit_generator.ctypes``: the
state pointer and ``next_uint32``/``next_double``), so the kernel advances the very same
state, and a later NumPy call on the generator continues where the kernel stopped.

On top of those functions, the distributions Driving uses are NumPy's algorithms
transcribed (NumPy 2.x ``_generator.pyx`` and ``distributions.c``):

- :func:`random`: ``Generator.random()``, ``next_double``.
- :func:`integers`: ``Generator.integers(low, high)`` (int64, ``high - low <= 2**32``):
  Lemire's bounded rejection on ``next_uint32`` (``buffered_bounded_lemire_uint32``); a range
  of one value draws nothing. ``next_uint32`` of PCG64 hands out the two halves of one
  64-bit output in turn and keeps the spare half in the bit generator's state, which is
  why batching integer draws across calls is harmless here: the kernel calls the same
  ``next_uint32``.
- :func:`choice_floyd`: ``Generator.choice(n, size=k, replace=False)`` with ``n <= 10000``:
  Floyd's algorithm, then the shuffle of ``_shuffle_int``.

``tests/envs/test_streams.py`` checks each against the generator across seeds, sizes and
bit generators (PCG64, MT19937, Philox, SFC64), including the stream position afterwards.

The kernels bypass the bit generator's lock: the caller must own the generators (a vec env
steps its copies on one thread).

Editing this module: numba's on-disk cache of a kernel that calls these functions is keyed
on the kernel's own file only, so after changing anything here (the table's columns above
all) touch ``mmrl/envs/driving/scene_kernels.py`` or delete its ``__pycache__/*.nb[ic]``
files; a stale kernel reads the old layout (a crash, or wrong draws).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

STATE, NEXT_U32, NEXT_DOUBLE = range(3)
"""Columns of a stream table (:func:`stream_table`)."""
_U32_MAX = np.uint64(0xFFFFFFFF)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)


def _address(fn: object) -> int:
    return ctypes.cast(fn, ctypes.c_void_p).value or 0


_FUNCTIONS: dict[type, tuple[int, int]] = {}
"""Function addresses per NumPy bit generator class (C functions, the same for every
instance)."""
_NUMPY_BIT_GENERATORS = (
    np.random.PCG64,
    np.random.PCG64DXSM,
    np.random.MT19937,
    np.random.Philox,
    np.random.SFC64,
)


def stream_table(rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """The ``(m, 3)`` uint64 table the kernels draw through: per generator its state address
    and its bit generator's ``next_uint32`` and ``next_double`` functions.

    The addresses are valid while the generators live (the caller keeps them).
    """
    states, fns = [], []
    for rng in rngs:
        bg = rng.bit_generator
        states.append(bg.ctypes.state_address)
        fns.append(_FUNCTIONS.get(type(bg)) or _functions(bg))
    table = np.empty((len(states), 3), np.uint64)
    table[:, 0] = states
    # One bit generator class throughout (the usual case): one row of functions.
    if fns:
        table[:, 1:] = fns[0] if fns.count(fns[0]) == len(fns) else fns
    return table


def _functions(bg: np.random.BitGenerator) -> tuple[int, int]:
    """The addresses of ``bg``'s two C functions used here (remembered for NumPy's own
    classes)."""
    iface = bg.ctypes
    fns = (_address(iface.next_uint32), _address(iface.next_double))
    if type(bg) in _NUMPY_BIT_GENERATORS:
        _FUNCTIONS[type(bg)] = fns
    return fns


def _call(name: str, ret: ir.Type, sig_ret: types.Type) -> Any:
    """An intrinsic ``name(fn, state)`` calling the C function at address ``fn`` on
    ``state`` (a ``bitgen_t`` function of NumPy: ``ret f(void *state)``)."""

    def impl(typingctx, fn, state):
        def codegen(context, builder, signature, args):
            ptr = ir.IntType(8).as_pointer()
            fnty = ir.FunctionType(ret, [ptr])
            f = builder.inttoptr(args[0], fnty.as_pointer())
            return builder.call(f, [builder.inttoptr(args[1], ptr)])

        return sig_ret(types.uint64, types.uint64), codegen

    impl.__name__ = impl.__qualname__ = name
    return intrinsic(impl)


_next_uint32 = _call("_next_uint32", ir.IntType(32), types.uint32)
_next_double = _call("_next_double", ir.DoubleType(), types.float64)


@njit(cache=True, nogil=True)
def random(streams, j):
    """``rngs[j].random()``."""
    return _next_double(streams[j, NEXT_DOUBLE], streams[j, STATE])


@njit(cache=True, nogil=True)
def _bounded(streams, j, rng):
    """NumPy's ``random_bounded_uint64(bitgen, 0, rng, 0, False)`` for ``rng < 2**32``: a
    uniform integer in ``[0, rng]``."""
    if rng == 0:
        return _ZERO
    fn, state = streams[j, NEXT_U32], streams[j, STATE]
    if rng == _U32_MAX:
        return np.uint64(_next_uint32(fn, state))
    excl = rng + _ONE
    m = np.uint64(_next_uint32(fn, state)) * excl
    leftover = m & _U32_MAX
    if leftover < excl:
        threshold = (_U32_MAX - rng) % excl
        while leftover < threshold:
            m = np.uint64(_next_uint32(fn, state)) * excl
            leftover = m & _U32_MAX
    return m >> np.uint64(32)


@njit(cache=True, nogil=True)
def integers(streams, j, low, high):
    """``rngs[j].integers(low, high)`` (int64, ``0 < high - low <= 2**32``); one element of
    ``integers(low, high, size=k)`` too (NumPy draws those one after another)."""
    return low + np.int64(_bounded(streams, j, np.uint64(high - low - 1)))


@njit(cache=True, nogil=True)
def choice_floyd(streams, j, n, out):
    """``rngs[j].choice(n, size=len(out), replace=False)`` into ``out`` (int64, ``len(out)
    <= n <= 10000``; NumPy's Floyd branch, then its shuffle)."""
    k = len(out)
    for t in range(k):
        v = n - k + t
        val = np.int64(_bounded(streams, j, np.uint64(v)))
        seen = False
        for s in range(t):
            if out[s] == val:
                seen = True
        out[t] = v if seen else val
    for i in range(k - 1, 0, -1):
        s = np.int64(_bounded(streams, j, np.uint64(i)))
        out[s], out[i] = out[i], out[s]
