"""Compiled per-beam loops of Driving's lidar and the pixel copies of its camera (issue 20).

Why numba: the lidar's NumPy version broadcast every test over ``(kerbs or cars, copies,
beams)`` arrays, ~40 passes over memory per step; the camera gathered its rows through a
fancy index over the copies' whole row-kind strips (a copy of every strip per step) and
stamped cars with a flat scatter built from ~20 small array operations. One compiled loop per
copy does the same work in registers and writes each output once.

Bit-identical to the NumPy code they replace (``tests/envs/test_reset_identity.py``'s
observation hashes and ``tests/envs/test_driving_kernels.py``'s frozen copies): the same IEEE
operations in the same order and precision (float32 constants, no ``fastmath``), and ties of
``np.minimum``/``np.maximum`` resolved as NumPy does (the second operand, which decides the
sign of a zero). The beam directions (``cos``/``sin``) stay in NumPy.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mmrl.envs.kernels import np_maximum, np_minimum

_F0 = np.float32(0.0)
_TINY = 1e-9
"""Beam components below this magnitude are inverted as this (float64)."""


@njit(cache=True, nogil=True)
def scan_kernel(
    copies, ego_x, ego_y, dx, dy, ix, iy, hx_ix, hy_iy, kerbs, h_c, h_lo, h_hi, v_c, v_lo,
    v_hi, car_x, car_y, valid, near, far, r_max, out,
):  # fmt: skip
    """Lidar ranges of ``k`` egos: kerb crossings and slab tests of the nearest cars.

    Same arithmetic as :meth:`mmrl.envs.driving.lidar.Lidar.scan`'s former array code (see
    there for the geometry), per beam.

    Args:
        copies: ``(k,)`` int64 row of each ego in the kerb arrays.
        ego_x, ego_y: ``(k,)`` float64 ego positions.
        dx, dy, ix, iy, hx_ix, hy_iy: ``(k, R)`` or ``(1, R)`` (every ego straight ahead)
            float32 beam constants of ``Lidar._beams``.
        kerbs: bool, the kerbs are seen.
        h_c, h_lo, h_hi: ``(rows, n, 1)`` float32 along-road kerbs ``y = c`` for
            ``x in [lo, hi]``; v_c, v_lo, v_hi: ``(steps, n, 1)`` across-road ones.
        car_x, car_y, valid: ``(k, N)`` float64 / float64 / bool other cars.
        near: ``(k, K)`` int64 the cars tested per ego (its ``K`` nearest).
        far: float64 offset given to missing cars (beyond any range, instead of a mask).
        r_max: float32 range when nothing is hit.
        out: ``(k, R)`` float32 output ranges.
    """
    k, n_beams = out.shape
    n_cars = near.shape[1]
    per_ego = dx.shape[0] > 1
    dist = np.empty(n_beams, np.float32)
    cars = np.empty(n_beams, np.float32)
    # Each phase is a branch-free loop over the beams (selects), which LLVM compiles to SIMD.
    for q in range(k):
        e = copies[q]
        bq = q if per_ego else 0
        x0, y0 = np.float32(ego_x[q]), np.float32(ego_y[q])
        if kerbs:
            # Along-road kerbs, nearest crossing over the rows (a reduction over rows).
            for row in range(h_c.shape[0]):
                c, lo, hi = h_c[row, e, 0], h_lo[row, e, 0], h_hi[row, e, 0]
                for j in range(n_beams):
                    t = (c - y0) * iy[bq, j]
                    xh = x0 + t * dx[bq, j]
                    hit = (t >= _F0) & (xh >= lo) & (xh <= hi)
                    v = t if hit else r_max
                    dist[j] = v if row == 0 else np_minimum(dist[j], v)
            # Across-road steps.
            for row in range(v_c.shape[0]):
                c, lo, hi = v_c[row, e, 0], v_lo[row, e, 0], v_hi[row, e, 0]
                for j in range(n_beams):
                    t = (c - x0) * ix[bq, j]
                    yh = y0 + t * dy[bq, j]
                    hit = (t >= _F0) & (yh >= lo) & (yh <= hi)
                    dist[j] = t if hit & (t < dist[j]) else dist[j]
        else:
            for j in range(n_beams):
                dist[j] = r_max
        # Cars: entry/exit times along x are rel_x / dx -+ HX / |dx| (likewise y).
        for j in range(n_beams):
            cars[j] = r_max
        for i in range(n_cars):
            # Offsets in float64, rounded once to float32; a missing car is moved far away.
            car = near[q, i]
            rx = car_x[q, car] - ego_x[q]
            ry = car_y[q, car] - ego_y[q]
            if not (valid[q, car] and rx * rx + ry * ry != np.inf):
                rx = far
            rx, ry = np.float32(rx), np.float32(ry)
            for j in range(n_beams):
                cx = rx * ix[bq, j]
                cy = ry * iy[bq, j]
                t_near = np_maximum(cx - hx_ix[bq, j], cy - hy_iy[bq, j])
                t_far = np_minimum(cx + hx_ix[bq, j], cy + hy_iy[bq, j])
                hit = (t_near <= t_far) & (t_far >= _F0)
                v = t_near if hit else r_max
                cars[j] = v if i == 0 else np_minimum(cars[j], v)
        # t_near < 0 only when the ego is inside a box (a crash): range 0 then.
        for j in range(n_beams):
            out[q, j] = np_minimum(np_maximum(np_minimum(dist[j], cars[j]), _F0), r_max)


@njit(cache=True, nogil=True)
def beam_constants(cos, sin, hx, hy, out):
    """The float32 beam constants of ``Lidar._beams`` from float64 ``cos``/``sin``.

    Args:
        cos, sin: ``(k, R)`` float64 cosine and sine of each beam's road-frame angle (NumPy's,
            whose last bits are its own).
        hx, hy: float64 half length and half width of a car.
        out: ``(6, k, R)`` float32: ``dx, dy, 1/dx, 1/dy, hx/|dx|, hy/|dy|`` (``dy = -sin``;
            components below 1e-9 in magnitude inverted as 1e-9), each computed in float64
            and rounded once, as the NumPy code did.
    """
    k, n_beams = cos.shape
    for q in range(k):
        for j in range(n_beams):
            dx = cos[q, j]
            dy = -sin[q, j]
            ix = 1.0 / (_TINY if abs(dx) < _TINY else dx)
            iy = 1.0 / (_TINY if abs(dy) < _TINY else dy)
            out[0, q, j] = np.float32(dx)
            out[1, q, j] = np.float32(dy)
            out[2, q, j] = np.float32(ix)
            out[3, q, j] = np.float32(iy)
            out[4, q, j] = np.float32(hx * abs(ix))
            out[5, q, j] = np.float32(hy * abs(iy))


@njit(cache=True, nogil=True)
def render_kernel(
    copies, kinds, q0, c0, table, top, left, half_h, half_w, inv_res_x, inv_res_y, res_x,
    res_y, car_x, car_y, ego_x, ego_y, car_rgb, visible, h, w, out,
):  # fmt: skip
    """Camera images of ``k`` copies: road rows copied from the row-kind table, then cars.

    Same result as :meth:`mmrl.envs.driving.camera.Camera.render`'s former array code: row
    ``i`` of copy ``q`` is table row ``kinds[copies[q], q0[q] + i]`` from byte ``3 c0[q]``
    on; every visible car (the ego last, so it stays on top) is stamped as an ``h x w``
    block at the pixel nearest its front-left corner, clipped to the image, in the order
    the NumPy scatter wrote (later stamps over earlier ones).

    Args:
        copies: ``(k,)`` int64 row of each copy in ``kinds``.
        kinds: ``(n, n_q)`` int64 row kind of each strip row of each copy.
        q0, c0: ``(k,)`` int64 first strip row and first table column in view.
        table: ``(n_kinds, cols * 3)`` uint8 painted row kinds.
        top, left: float64 ``x_top`` and ``Y_LO`` (m): the strip's top and the table's left.
        half_h, half_w: float64 half a stamp's extent (m) along and across the road.
        inv_res_x, inv_res_y, res_x, res_y: float64 pixels per metre and metres per pixel.
        car_x, car_y: ``(k, N)`` float64 car positions; ego_x, ego_y: ``(k,)`` float64.
        car_rgb: ``(k, N + 1, 3)`` uint8 colours (the ego's last); visible: ``(k, N + 1)``
            bool.
        h, w: int64 stamp size in pixels.
        out: ``(k, S, 3 S)`` uint8 output images (rows of RGB bytes).
    """
    k, s = out.shape[0], out.shape[1]
    n_cars = car_x.shape[1]
    for q in range(k):
        e = copies[q]
        first = 3 * c0[q]
        for i in range(s):
            # A view from the first byte: indexing it by the loop counter alone (no offset
            # that could be negative) lets LLVM compile the copy to SIMD.
            source = table[kinds[e, q0[q] + i], first:]
            line = out[q, i]
            for j in range(3 * s):
                line[j] = source[j]
        # The pixel whose centre is nearest the car's front/left edge starts its stamp.
        stamp_top = top - q0[q] * res_x - half_h
        stamp_left = left + c0[q] * res_y + half_w
        for j in range(n_cars + 1):
            if not visible[q, j]:
                continue
            x = car_x[q, j] if j < n_cars else ego_x[q]
            y = car_y[q, j] if j < n_cars else ego_y[q]
            r0 = np.int64(np.floor((stamp_top - x) * inv_res_x + 0.5))
            c1 = np.int64(np.floor((y - stamp_left) * inv_res_y + 0.5))
            if r0 <= -h or r0 >= s or c1 <= -w or c1 >= s:
                continue
            for r in range(max(r0, 0), min(r0 + h, s)):
                for c in range(max(c1, 0), min(c1 + w, s)):
                    out[q, r, 3 * c] = car_rgb[q, j, 0]
                    out[q, r, 3 * c + 1] = car_rgb[q, j, 1]
                    out[q, r, 3 * c + 2] = car_rgb[q, j, 2]


@njit(cache=True, nogil=True)
def _floor_mod(a, period):
    """:func:`mmrl.envs.numeric.floor_mod` of one float64 (``np.mod`` bit for bit for a
    whole-number period; the proof is there)."""
    r = a - np.floor(a / period) * period
    return r + period if r < 0.0 else r


@njit(cache=True, nogil=True)
def road_kinds_kernel(
    q_x, copies, n_lanes, ramp_start, ramp_end, onramp_end, has_onramp, dash_period,
    dash_cut, exit_period, exit_cut, arrow_lead, arrow_spacing, arrow_length, res_x, chev0,
    n_chev, after0, n_after, per_lanes, kinds,
):  # fmt: skip
    """Row kind of every strip row of copies ``copies`` for new episodes on their roads.

    Same arithmetic as :meth:`mmrl.envs.driving.camera.Camera.paint_roads`' former array
    code (see there for what the kinds are), per strip row, in float64.

    Args:
        q_x: ``(n_q,)`` float64 road position of each strip row.
        copies: ``(k,)`` int64 row of each copy in ``kinds``.
        n_lanes: ``(k,)`` int64; ramp_start, ramp_end, onramp_end: ``(k,)`` float64 (the
            last read only when ``has_onramp``).
        dash_period, dash_cut, exit_period, exit_cut: float64 lane and exit-lane dash
            periods and the positions within a period below which a row shows the dash.
        arrow_lead, arrow_spacing, arrow_length: float64 chevron geometry; res_x: float64
            metres per row.
        chev0, n_chev, after0, n_after, per_lanes: int64 table layout (``row_table``).
        kinds: ``(n, n_q)`` int64 output rows.
    """
    n_q = q_x.shape[0]
    for q in range(copies.shape[0]):
        rs, re = ramp_start[q], ramp_end[q]
        base = n_lanes[q] * per_lanes
        row = kinds[copies[q]]
        for i in range(n_q):
            x = q_x[i]
            rel = x - re
            dash = 1 if _floor_mod(rel, dash_period) < dash_cut else 0
            in_exit = (x >= rs) & (rel <= 0.0)
            if has_onramp:
                in_exit |= x <= onramp_end[q]
            exd = 1 if _floor_mod(rel, exit_period) < exit_cut else 0
            kind = 2 + 2 * dash + exd if in_exit else dash
            u = x - (rs - arrow_lead)
            um = _floor_mod(u, arrow_spacing)
            if (u >= 0.0) & (x < rs) & (um < arrow_length):
                kind = chev0 + 2 * min(np.int64(um / res_x), n_chev - 1) + dash
            if rel > 0.0:
                after = rel / res_x
                kind = after0 + min(np.int64(after if after > 0.0 else 0.0), n_after - 1)
            row[i] = kind + base
