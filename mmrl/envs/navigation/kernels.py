"""Compiled per-ray and per-column loops of Navigation's ray casting and camera (issue 20).

Why numba: the NumPy versions ran ~30 array operations over ``(objects, copies, rays)`` for
the rays and ~40 over ``(copies, columns)`` plus a per-pixel palette lookup (``cv2.remap``)
for the image; each operation is a pass over memory, and the camera's per-pixel work has no
cheaper NumPy primitive ("paint three spans per column"). One compiled loop per ray and per
column does the same arithmetic in registers and writes every pixel once.

Bit-identical to the NumPy code they replace (``tests/envs/test_step_identity.py`` compares
whole episodes against frozen copies of the pre-issue-20 code): every operation is the same
IEEE float32 operation in the same order. Constants are float32 module globals (a Python
float in a numba expression would promote it to float64), no ``fastmath`` (which would allow
reassociation and fused multiply-adds), and the trigonometry stays in NumPy (its float32
``sin``/``cos`` are NumPy's own SIMD routines, which can differ from the C library's in the
last bit): the kernels take the ray directions as arguments.

``cache=True`` keeps the compiled code next to this file (or in numba's user cache when that
is not writable), so only the first import on a machine pays the compilation (a few seconds).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mmrl.envs.kernels import np_maximum, np_minimum

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_HALF = np.float32(0.5)
_EPS = np.float32(1e-6)
_FAR = np.float32(1e4)
_INF = np.float32(np.inf)
_F0_04 = np.float32(0.04)
_F0_05 = np.float32(0.05)
_F0_07 = np.float32(0.07)
_F0_45 = np.float32(0.45)
_F0_55 = np.float32(0.55)
_F0_6 = np.float32(0.6)
_F0_75 = np.float32(0.75)
_F0_9 = np.float32(0.9)


@njit(cache=True, nogil=True)
def cast_rays_kernel(
    pos, dx, dy, size, boxes, box_valid, objects, obj_valid, radius,
    t_solid, x_face, is_box, t_obj, fwd, lat, t_nearest,
):  # fmt: skip
    """Casts ``N`` rays per copy against the room walls, boxes and object footprints.

    Same arithmetic as :func:`mmrl.envs.navigation.camera.cast_rays`' former array code,
    per ray (see that function for the geometry).

    Args:
        pos: ``(B, 2)`` float32 ray origins.
        dx, dy: ``(B, N)`` float32 ray directions (NumPy's ``cos``/``sin`` of the angles).
        size: ``(B, 2)`` float32 room width and height.
        boxes: ``(B, M, 4)`` float32 ``[cx, cy, half_x, half_y]``; box_valid: ``(B, M)`` bool.
        objects: ``(B, K, 2)`` float32 centres; obj_valid: ``(B, K)`` bool.
        radius: float32 footprint radius of every object.
        t_solid, x_face, is_box: ``(B, N)`` float32 / bool / bool outputs.
        t_obj, fwd, lat: ``(K, B, N)`` float32 outputs.
        t_nearest: ``(B, N)`` float32 output.
    """
    n_copies, n_rays = dx.shape
    n_boxes, n_obj = boxes.shape[1], objects.shape[1]
    r2 = radius * radius
    inv_x = np.empty(n_rays, np.float32)
    inv_y = np.empty(n_rays, np.float32)
    t_box = np.empty(n_rays, np.float32)
    x_box = np.empty(n_rays, np.bool_)
    # np_minimum/np_maximum: np.minimum/np.maximum's operand on ties (the sign of a zero).
    # Each phase is a branch-free loop over the copy's rays (selects, no early exits), which
    # LLVM compiles to SIMD over 16 rays at a time.
    for b in range(n_copies):
        ox, oy = pos[b, 0], pos[b, 1]
        w, h = size[b, 0], size[b, 1]
        # Room walls: exit distance from inside the rectangle. Axis-parallel rays get a tiny
        # positive component (see cast_rays).
        for i in range(n_rays):
            ddx, ddy = dx[b, i], dy[b, i]
            ix = _F1 / (_EPS if abs(ddx) < _EPS else ddx)
            iy = _F1 / (_EPS if abs(ddy) < _EPS else ddy)
            tx = ((w if ix > _F0 else _F0) - ox) * ix
            ty = ((h if iy > _F0 else _F0) - oy) * iy
            inv_x[i], inv_y[i] = ix, iy
            x_face[b, i] = tx < ty
            t_solid[b, i] = np_minimum(tx, ty)
        # Boxes, slab method, one box at a time; ties keep the first box.
        for m in range(n_boxes):
            cx, cy, hx, hy = boxes[b, m, 0], boxes[b, m, 1], boxes[b, m, 2], boxes[b, m, 3]
            lo_x, hi_x = (cx - hx) - ox, (cx + hx) - ox
            lo_y, hi_y = (cy - hy) - oy, (cy + hy) - oy
            valid = box_valid[b, m]
            for i in range(n_rays):
                ax, bx = lo_x * inv_x[i], hi_x * inv_x[i]
                ay, by = lo_y * inv_y[i], hi_y * inv_y[i]
                tx_near, tx_far = np_minimum(ax, bx), np_maximum(ax, bx)
                ty_near, ty_far = np_minimum(ay, by), np_maximum(ay, by)
                t_near = np_maximum(tx_near, ty_near)
                t_far = np_minimum(tx_far, ty_far)
                hit = (t_near <= t_far) & (t_near > _F0) & valid
                t_m = t_near if hit else _FAR
                closer = (m == 0) | (t_m < t_box[i])
                t_box[i] = t_m if closer else t_box[i]
                x_box[i] = (tx_near > ty_near) if closer else x_box[i]
        for i in range(n_rays):
            box = (n_boxes > 0) & (t_box[i] < t_solid[b, i])
            is_box[b, i] = box
            t_solid[b, i] = t_box[i] if box else t_solid[b, i]
            x_face[b, i] = x_box[i] if box else x_face[b, i]
        # Objects: ray / footprint-circle tests.
        for k in range(n_obj):
            rel_x = objects[b, k, 0] - ox
            rel_y = objects[b, k, 1] - oy
            valid = obj_valid[b, k]
            for i in range(n_rays):
                ddx, ddy = dx[b, i], dy[b, i]
                f = rel_x * ddx + rel_y * ddy
                la = rel_y * ddx - rel_x * ddy
                q = r2 - la * la
                t = f - np.sqrt(np_maximum(q, _F0))
                seen = (abs(la) < radius) & (t > _F0) & (t < t_solid[b, i]) & valid
                t = t if seen else _FAR
                fwd[k, b, i] = f
                lat[k, b, i] = la
                t_obj[k, b, i] = t
                acc = t_nearest[b, i]
                t_nearest[b, i] = t if k == 0 else np_minimum(acc, t)


@njit(cache=True, nogil=True)
def _lamp(lamp_range, fade, t):
    """Lamp light at ray distance ``t`` (float32): ``clip((lamp_range - t) * fade, 0, 1)``."""
    v = (lamp_range - t) * fade
    return np_minimum(np_maximum(v, _F0), _F1)


@njit(cache=True, nogil=True)
def shade_kernel(
    s, dx, dy, t_solid, x_face, is_box, t_obj, fwd, lat, pos, obj_rgb, obj_shape,
    cos, focal, radius, lamp, lamp_range, fade, wall_top, wall_bottom, eye, horizon,
    shape_height, taper, round_shade, wall_rgb, background_code, background_palette, bounds, out,
):  # fmt: skip
    """Paints the camera image of every copy from its rays' hits.

    Same arithmetic as :meth:`mmrl.envs.navigation.camera.ColumnCamera.shade`'s former array
    code: per column the wall's shade and depth, the two nearest objects (the far one painted
    first), their silhouettes and light and the three row spans; then the painter's algorithm
    writes every pixel once, row by row (background, wall, far object, near object).

    Args:
        s: Image side ``S`` (the first ``S`` rays are the columns).
        dx, dy, t_solid: ``(B, N)`` float32; x_face, is_box: ``(B, N)`` bool.
        t_obj, fwd, lat: ``(K, B, N)`` float32 hits (see ``RayHits``).
        pos: ``(B, 2)`` float32; obj_rgb: ``(B, K, 3)`` float32; obj_shape: ``(B, K)`` int64.
        cos: ``(S,)`` float32 cosine of each column's angle to the optical axis.
        focal, radius, lamp_range, fade, eye, horizon: float32 scalars; lamp: bool, the room
            is dark (lit by the lamp).
        wall_top, wall_bottom: float32 ``focal * (WALL_HEIGHT - EYE_HEIGHT)`` and
            ``focal * EYE_HEIGHT``, computed by the caller as the NumPy code did.
        shape_height, taper, round_shade: ``(shapes,)`` float32 silhouette parameters.
        wall_rgb: ``(2, 3)`` float32 colour of a room wall and of a box.
        background_code: ``(S,)`` uint8 background of each row: 0 ceiling, 1 floor, 2 unlit.
        background_palette: ``(3, 3)`` uint8 colour of each background code.
        bounds: ``(2, 3, 3 S)`` scratch of an unsigned integer type that holds ``S`` (uint8
            for ``S < 255``, else uint16).
        out: ``(B, S, 3 S)`` uint8 output images (rows of RGB bytes).
    """
    n_copies = dx.shape[0]
    n_obj = t_obj.shape[0]
    smax = np.float32(s)
    # Per column of the current copy, repeated for its 3 bytes (index 3 c + channel): first
    # and end row of the wall, far and near object spans (in ``bounds``' dtype: uint8 up to
    # 254-pixel images, so the row compares below run on 32 bytes at a time), and colours.
    top, bottom = bounds[0], bounds[1]
    row_of = np.empty(1, bounds.dtype)
    colour = np.empty((3, 3 * s), np.uint8)
    # Row colours of the background (ceiling, floor, unlit) as whole image rows.
    background = np.empty((3, 3 * s), np.uint8)
    for g in range(3):
        for j in range(3 * s):
            background[g, j] = background_palette[g, j % 3]
    near_t = np.empty(s, np.float32)
    near_k = np.empty(s, np.int64)
    far_t = np.empty(s, np.float32)
    far_k = np.empty(s, np.int64)
    # The phases below are branch-free loops over the columns (selects, both sides computed
    # as np.where did), which LLVM compiles to SIMD; only the pixel writes run per pixel.
    for b in range(n_copies):
        ox, oy = pos[b, 0], pos[b, 1]
        # Wall colour: material, face orientation (x faces darker), a dark seam every metre,
        # distance fog and the lamp; its span from the depth along the optical axis.
        for c in range(s):
            ts = t_solid[b, c]
            xf = x_face[b, c]
            along = oy + ts * dy[b, c] if xf else ox + ts * dx[b, c]
            sh = (_F0_75 if xf else _F1) / (_F1 + _F0_07 * ts)
            # along - floor(along) is np.mod(along, 1.0) bit for bit (see numeric.floor_mod).
            sh = _F0_6 * sh if along - np.floor(along) < _F0_04 else sh
            if lamp:
                sh = sh * _lamp(lamp_range, fade, ts)
            box = 1 if is_box[b, c] else 0
            depth = ts * cos[c]
            depth = np_maximum(depth, _F0_05)
            wall_first = _clip_row(horizon - wall_top / depth, smax)
            wall_end = _clip_row(horizon + wall_bottom / depth, smax)
            for ch in range(3):
                colour[0, 3 * c + ch] = np.uint8(wall_rgb[box, ch] * sh)
                top[0, 3 * c + ch] = wall_first
                bottom[0, 3 * c + ch] = wall_end
        # The two nearest objects per column, as a stable sort would order them (ties keep
        # the lower index); the far one is painted first.
        for c in range(s):
            near_t[c] = t_obj[0, b, c]
            near_k[c] = 0
            far_t[c] = _INF
            far_k[c] = 0
        for k in range(1, n_obj):
            for c in range(s):
                closer = t_obj[k, b, c] < near_t[c]
                near_t[c] = t_obj[k, b, c] if closer else near_t[c]
                near_k[c] = k if closer else near_k[c]
        for k in range(n_obj):
            for c in range(s):
                closer = (t_obj[k, b, c] < far_t[c]) & (near_k[c] != k)
                far_t[c] = t_obj[k, b, c] if closer else far_t[c]
                far_k[c] = k if closer else far_k[c]
        # Each object's silhouette (a ball is a circle of radius r centred at height r, the
        # other shapes stand on the floor, a cone tapers), light and span.
        for layer in range(1, 3):
            ks = far_k if layer == 1 else near_k
            ts2 = far_t if layer == 1 else near_t
            for c in range(s):
                k, t2 = ks[c], ts2[c]
                u = abs(lat[k, b, c]) / radius
                u = np_minimum(u, _F1)
                d_obj = fwd[k, b, c] * cos[c]
                d_obj = np_maximum(d_obj, _F0_05)
                shape = obj_shape[b, k]
                roundness = np.sqrt(_F1 - u * u)
                ball = shape == 0
                z_bot = radius * (_F1 - roundness) if ball else _F0
                z_top = (
                    radius * (_F1 + roundness)
                    if ball
                    else shape_height[shape] * (_F1 - taper[shape] * u)
                )
                rs = round_shade[shape]
                light = (_F0_9 * (_F1 - rs) + rs * (_F0_55 + _F0_45 * roundness)) / (
                    _F1 + _F0_05 * t2
                )
                if lamp:
                    light = light * _lamp(lamp_range, fade, t2)
                span_top = horizon - focal * (z_top - eye) / d_obj
                span_bottom = horizon - focal * (z_bot - eye) / d_obj
                # No object: an empty span.
                span_bottom = span_top if t2 >= _FAR else span_bottom
                first = _clip_row(span_top, smax)
                end = _clip_row(span_bottom, smax)
                for ch in range(3):
                    colour[layer, 3 * c + ch] = np.uint8(obj_rgb[b, k, ch] * light)
                    top[layer, 3 * c + ch] = first
                    bottom[layer, 3 * c + ch] = end
        # Painter's algorithm, row by row over the row's bytes (pixel row i, centre
        # i + 0.5, is covered by a span when top <= i < bottom): the background, then wall,
        # far and near object over it. Whole rows of bytes with selects compile to SIMD
        # (per-pixel 3-byte writes down each column cost ~3x as much).
        top0, top1, top2 = top[0], top[1], top[2]
        end0, end1, end2 = bottom[0], bottom[1], bottom[2]
        col0, col1, col2 = colour[0], colour[1], colour[2]
        image = out[b]
        for i in range(s):
            row_of[0] = i
            row = row_of[0]
            back = background[background_code[i]]
            line = image[i]
            for j in range(3 * s):
                # Unconditional loads: a load under a condition keeps LLVM from vectorizing.
                v, c0, c1, c2 = back[j], col0[j], col1[j], col2[j]
                v = c0 if (top0[j] <= row) & (row < end0[j]) else v
                v = c1 if (top1[j] <= row) & (row < end1[j]) else v
                v = c2 if (top2[j] <= row) & (row < end2[j]) else v
                line[j] = v


@njit(cache=True, nogil=True)
def _clip_row(x, smax):
    """``clip(ceil(x - 0.5), 0, S)`` of a float32 span end (a whole number), as the NumPy code
    did before its cast to an integer."""
    r = np.ceil(x - _HALF)
    return np_minimum(np_maximum(r, _F0), smax)
