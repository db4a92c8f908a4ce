"""The generator calls of Driving's episode draws as compiled loops over the copies (issue 20).

:func:`~mmrl.envs.driving.scenes.draw_scenes` runs in phases: per-copy generator calls, then
array operations over all copies that compute the next phase's sizes. Each phase's calls were
a Python loop making ~5 NumPy ``Generator`` calls per copy, ~1-6 us each, mostly call
overhead: 11-12 us per env-step under random actions. Each kernel here makes the same calls
in the same order on each copy's own bit generator (NumPy's algorithms on the bit
generator's C functions, below), so every copy's stream, and every episode, is unchanged
(``tests/envs/test_reset_identity.py``'s hashes; ``tests/envs/test_streams.py`` for the
calls themselves).

Arithmetic on the draws is what the NumPy code did in the same double-precision order
(``low + (high - low) * u`` for ``uniform``, Python's ``min``/``max`` on floats); where the
NumPy code raised (an empty palette or instruction set, a sample larger than its
population) the kernels raise ``ValueError`` too.

## NumPy ``Generator`` calls inside the kernels, bit for bit

Driving's episode draws make ~16 generator calls per copy, and a NumPy ``Generator`` call
costs 0.3-6 us of Python-level overhead (``choice(replace=False)`` the most) around a few
nanoseconds of arithmetic; numba's own ``Generator`` support costs ~11 us per call just to
unbox the generator. The functions below let a kernel draw from each copy's **own bit generator**
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

Why they live in this file: numba keys a function's on-disk cache on its own source file
only, so a kernel calling a compiled function from another file would keep running the old
callee after that file changed (a crash, or wrong draws, until its cache is cleared).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from mmrl.envs.kernels import np_maximum

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


_FOLLOW, _OVERTAKE, _LANE = 3, 4, 2
"""Task ids (:data:`mmrl.envs.driving.instructions.TASKS`; a test keeps them in step)."""


@njit(cache=True, nogil=True)
def _uniform(streams, j, low, high):
    """``rngs[j].uniform(low, high)``: ``low + (high - low) * u``, as NumPy computes it."""
    return low + (high - low) * random(streams, j)


@njit(cache=True, nogil=True)
def phase1_kernel(
    streams, v1, min_lanes, max_lanes, ramp_range, length_range, onramp_range, onramp_start,
    start_levels, density_scale, passing_density, mean_gap, min_gap, spawn_span, task_ids,
    pal_len, pal, n_combos, n_colors,
    n_lanes, ramp_start, ramp_end, onramp_end, task, combo, colours, n_cand, lane0, on_ramp,
    level, density, draws, u_spawn,
):  # fmt: skip
    """Phase 1 of every copy: road, instruction (v0) or task and candidate colours (v1), ego
    start, traffic density and the spawn's gap draws.

    Args:
        streams: :func:`stream_table` of the copies' generators.
        v1: Scene version 1 (else 0).
        ramp_range, length_range, onramp_range, start_levels: ``(2,)`` bounds
            (``onramp_range`` empty: no on-ramps).
        task_ids: ``(len(config.tasks),)`` task ids of the config's tasks.
        pal_len, pal: ``(tasks, lanes + 1)`` palette sizes (-1: no palette) and ``(tasks,
            lanes + 1, colours)`` palettes of v1's colour tasks.
        n_combos: ``(tasks, lanes + 1)`` v0's instruction counts.
        n_colors: Colour ids a candidate may take without a palette.
        n_lanes ... u_spawn: The outputs, ``(m,)`` each but ``colours`` ``(m, CANDIDATES)``
            and ``u_spawn`` ``(m, MAX_LANES, MAX_DRAWS)`` (zeros where not drawn).
    """
    has_onramp = len(onramp_range) == 2
    buf = np.empty(colours.shape[1], np.int64)
    for j in range(streams.shape[0]):
        # The road: the lane count, then the ramp's end and length (two uniform draws).
        nl = integers(streams, j, min_lanes, max_lanes + 1)
        u0 = random(streams, j)
        u1 = random(streams, j)
        re = ramp_range[0] + (ramp_range[1] - ramp_range[0]) * u0
        n_lanes[j] = nl
        ramp_end[j] = re
        ramp_start[j] = re - (length_range[0] + (length_range[1] - length_range[0]) * u1)
        if has_onramp:
            onramp_end[j] = _uniform(streams, j, onramp_range[0], onramp_range[1])
        t = task_ids[integers(streams, j, 0, len(task_ids))]
        if v1:
            k = min(colours.shape[1], nl - 1)
            size = pal_len[t, nl]
            pop = size if size > 0 else n_colors  # ``palette or n_colors``
            if k > pop:
                raise ValueError("Cannot take a larger sample than population")
            choice_floyd(streams, j, pop, buf[:k])
            for c in range(k):
                colours[j, c] = pal[t, nl, buf[c]] if size > 0 else buf[c]
            n_cand[j] = k
        else:
            if n_combos[t, nl] <= 0:
                raise ValueError("high <= 0")
            combo[j] = integers(streams, j, 0, n_combos[t, nl])
        task[j] = t
        lane0[j] = integers(streams, j, 0, nl)
        on_ramp[j] = has_onramp and random(streams, j) < onramp_start
        level[j] = integers(streams, j, start_levels[0], start_levels[1])
        d = density_scale * (0.6 + (1.4 - 0.6) * random(streams, j))
        density[j] = d
        if d > 0:
            a = mean_gap / d
            a = a if a >= min_gap else min_gap  # Python's max(a, min_gap)
            b = mean_gap / (d * passing_density)
            b = b if b >= min_gap else min_gap
            gap_min = b if b < a else a  # Python's min(a, b)
            n = np.int64(np.ceil(spawn_span / (0.5 * gap_min))) + 1
            draws[j] = n
            for lane in range(nl):
                for c in range(n):
                    u_spawn[j, lane, c] = random(streams, j)


@njit(cache=True, nogil=True)
def phase2_kernel(
    streams, v1, count, n_colors, n_lanes, n_cand, task, follow_window, overtake_window,
    follow_speed, overtake_speed,
    u_speed, colour, cand_lanes, u_cand, named, x_t, lane_t, v_t,
):  # fmt: skip
    """Phase 2 of every copy: the spawned cars' speeds and colours (``count[j]`` cars), then
    v1's candidate lanes and raw candidate/trailer draws or v0's named car.

    Args:
        n_colors: Colour ids of ordinary cars.
        follow_window ... overtake_speed: v0's ``(2,)`` bounds of the named car.
        u_speed ... v_t: The outputs (``u_cand`` ``(m, CANDIDATE_TRIES + 4, CANDIDATES)``).
    """
    buf = np.empty(cand_lanes.shape[1], np.int64)
    for j in range(streams.shape[0]):
        k = count[j]
        for c in range(k):
            u_speed[j, c] = random(streams, j)
        for c in range(k):
            colour[j, c] = integers(streams, j, 0, n_colors)
        if v1:
            k = n_cand[j]
            choice_floyd(streams, j, n_lanes[j] - 1, buf[:k])
            for c in range(k):
                cand_lanes[j, c] = 1 + buf[c]
            for r in range(u_cand.shape[1]):
                for c in range(k):
                    u_cand[j, r, c] = random(streams, j)
        elif task[j] == _FOLLOW or task[j] == _OVERTAKE:
            window = follow_window if task[j] == _FOLLOW else overtake_window
            speed = follow_speed if task[j] == _FOLLOW else overtake_speed
            named[j] = True
            x_t[j] = _uniform(streams, j, window[0], window[1])
            lane_t[j] = integers(streams, j, 0, n_lanes[j])
            v_t[j] = _uniform(streams, j, speed[0], speed[1])


@njit(cache=True, nogil=True)
def shift_kernel(streams, rows, count, n_colors, shift):
    """v0's last phase: ``count[j]`` colour shifts in ``[1, n_colors)`` for each copy ``j``
    in ``rows``."""
    for j in rows:
        for c in range(count[j]):
            shift[j, c] = integers(streams, j, 1, n_colors)


@njit(cache=True, nogil=True)
def finish1_kernel(
    streams, count, free_n, task, n_lanes, n_cand, colours, pal_len, lane_args, n_lane_args,
    n_texts, text_start, draw, pick, arg, text_index,
):  # fmt: skip
    """v1's last phase: each background car's draw among its copy's free colours, the
    referent (a candidate, or a lane) and the phrase's index.

    Args:
        lane_args, n_lane_args: ``(lanes + 1, lanes)`` lanes the "lane" task may name and
            their counts.
        n_texts, text_start: ``(tasks, lanes + 1, args + 1)`` phrases per task, lanes and
            argument (index ``arg + 1``), and where they start in the phrase table.
        draw, pick, arg, text_index: The outputs (``pick`` -1 and ``arg`` ``NO_ARG`` where
            not drawn; ``text_index`` in the phrase table, -1 where no phrase names the
            argument).
    """
    for j in range(streams.shape[0]):
        for c in range(count[j]):
            draw[j, c] = integers(streams, j, 0, free_n[j])
        t, nl = task[j], n_lanes[j]
        if pal_len[t, nl] >= 0:
            if n_cand[j] <= 0:
                raise ValueError("high <= 0")
            pick[j] = integers(streams, j, 0, n_cand[j])
            arg[j] = colours[j, pick[j]]
        elif t == _LANE:
            if n_lane_args[nl] <= 0:
                raise ValueError("high <= 0")
            arg[j] = lane_args[nl, integers(streams, j, 0, n_lane_args[nl])]
        n = n_texts[t, nl, arg[j] + 1]
        if n <= 0:
            text_index[j] = -1  # no phrase names the argument: the caller raises
            return
        text_index[j] = text_start[t, nl, arg[j] + 1] + integers(streams, j, 0, n)


@njit(cache=True, nogil=True)
def candidate_positions_kernel(xs, n_cand, separation, out):
    """v1: per copy, the first of the position sets ``xs[j]`` (``(tries, CANDIDATES)``, its
    first ``n_cand[j]`` columns valid, the others 0) whose sorted candidates are all
    ``separation`` apart, else the first set sorted; into ``out[j]`` (``(CANDIDATES,)``, 0
    past the valid columns).

    The NumPy version sorted every set with the missing candidates padded far apart and
    took the smallest difference of neighbours; the padding never decides, so testing the
    valid neighbours alone is the same comparison on the same differences.
    """
    kc = xs.shape[2]
    buf = np.empty(kc)
    for j in range(xs.shape[0]):
        k = n_cand[j]
        chosen = -1
        for r in range(xs.shape[1]):
            _sorted_into(xs[j, r], k, buf)
            ok = True
            for c in range(k - 1):
                if not buf[c + 1] - buf[c] >= separation:
                    ok = False
            if ok:
                chosen = r
                break
        if chosen >= 0:
            out[j] = xs[j, chosen]
        else:
            _sorted_into(xs[j, 0], k, buf)
            out[j, :k] = buf[:k]
            out[j, k:] = 0.0


@njit(cache=True, nogil=True)
def _sorted_into(values, k, buf):
    """``buf[:k]`` = the first ``k`` of ``values``, ascending (insertion sort: k <= 3)."""
    for c in range(k):
        v = values[c]
        i = c
        while i > 0 and buf[i - 1] > v:
            buf[i] = buf[i - 1]
            i -= 1
        buf[i] = v


@njit(cache=True, nogil=True)
def spawn_kernel(
    u, draws, n_lanes, clear_lane, density, passing_density, mean_gap, min_gap, behind, ahead,
    out_x, out_lane, count,
):  # fmt: skip
    """Spawned cars' positions and lanes from the gap draws ``u`` (``(m, lanes, draws)``,
    copy ``j``'s in ``[:n_lanes[j], :draws[j]]``), what ``_spawn_positions`` computed with
    arrays before.

    Each lane: a first car within one gap of the window's start (``-behind``), then gaps of
    0.5-1.5 mean gaps (the passing lane's at ``passing_density``), summed left to right as
    ``np.cumsum`` does; the cars within the window and clear of the ego (25 m in
    ``clear_lane``, else 12 m) are kept, lane by lane, front to back, into ``out_x[j]`` and
    ``out_lane[j]`` (``(m, lanes * draws)``), ``count[j]`` of them.
    """
    for j in range(u.shape[0]):
        d = density[j]
        n = 0
        if d > 0:
            gap = np_maximum(mean_gap / d, min_gap)
            gap_passing = np_maximum(mean_gap / (d * passing_density), min_gap)
            for lane in range(n_lanes[j]):
                g = gap_passing if lane == 0 else gap
                clear = 25.0 if lane == clear_lane[j] else 12.0
                total = 0.0
                for c in range(draws[j]):
                    step = u[j, lane, c] * g if c == 0 else (u[j, lane, c] + 0.5) * g
                    total = step if c == 0 else total + step
                    x = total - behind
                    if x < ahead and abs(x) > clear:
                        out_x[j, n] = x
                        out_lane[j, n] = lane
                        n += 1
        count[j] = n


@njit(cache=True, nogil=True)
def background_colours_kernel(draw, reserved, n_reserved, count, color, n_colors, out):
    """v1: background car colours, what ``_background_colours`` computed with arrays before.

    Per copy ``j``: car ``c < count[j]`` takes free colour number ``draw[j, c]`` (the colours
    not in ``reserved[j, :n_reserved[j]]``, ascending); then, if the copy has two cars or
    more and some colour is held by exactly one car, every such lone car takes the most
    common colour (the smallest of equals, as ``np.argmax``). Padding columns keep
    ``color`` (as int64).
    """
    usable = np.empty(n_colors, np.bool_)
    free = np.empty(n_colors, np.int64)
    counts = np.empty(n_colors, np.int64)
    for j in range(draw.shape[0]):
        usable[:] = True
        for r in range(n_reserved[j]):
            usable[reserved[j, r]] = False
        f = 0
        for c in range(n_colors):  # free colours first, then the reserved ones
            if usable[c]:
                free[f] = c
                f += 1
        for c in range(n_colors):
            if not usable[c]:
                free[f] = c
                f += 1
        counts[:] = 0
        k = count[j]
        for c in range(k):
            col = free[draw[j, c]]
            out[j, c] = col
            counts[col] += 1
        for c in range(k, draw.shape[1]):
            out[j, c] = np.int64(color[j, c])
        lone = False
        best = 0
        for c in range(n_colors):
            lone = lone or counts[c] == 1
            if counts[c] > counts[best]:
                best = c
        if k > 1 and lone:
            for c in range(k):
                if counts[out[j, c]] == 1:
                    out[j, c] = best
