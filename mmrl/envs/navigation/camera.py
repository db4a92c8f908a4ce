"""First-person RGB camera by column ray casting (Wolfenstein-style), batched over copies.

One ray per image column; each ray finds the nearest wall or box face and the objects in
front of it. Heights are projected with a pinhole model (``row = horizon - f * (z - eye) /
depth``, ``depth`` measured along the optical axis so straight walls stay straight). Objects
keep their 3-D silhouettes across columns: a ball's vertical extent follows a circle, a cube
and a cylinder have flat tops (the cylinder is taller and shaded round), a cone narrows to
a tip. All work is array operations over ``(objects, copies, columns)``; each column's wall
and object spans become 64-row bit masks, painted over each other as whole words, expanded
8 rows at a time by a byte table, and one ``cv2.remap`` looks every pixel's colour up in a
per-column palette (issue 20: ~1.8x the throughput of per-pixel compares and selects, with
bit-identical images).
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np

from mmrl.envs.navigation.instructions import SHAPES

EYE_HEIGHT = 0.35
"""Camera height above the floor, metres."""
WALL_HEIGHT = 1.4
"""Height of walls and box obstacles, metres (taller than every object)."""
SHAPE_HEIGHT = np.array([0.8, 0.8, 1.0, 1.15], dtype=np.float32)
"""Height of each shape (ball, cube, cone, cylinder) in metres for the 0.4 m footprint
radius: ball and cube as tall as wide, the cone a little taller, the cylinder a pillar."""
assert len(SHAPE_HEIGHT) == len(SHAPES)

WALL_RGB = np.array([165, 165, 155], dtype=np.float32)
BOX_RGB = np.array([125, 90, 60], dtype=np.float32)
CEILING_RGB = (45, 50, 65)
FLOOR_RGB = (95, 85, 75)
# Per-shape silhouette parameters (ball, cube, cone, cylinder): a cone's top tapers linearly
# to its tip; rounded shapes are shaded by their surface normal, the cube is flat-shaded.
_TAPER = np.array([0.0, 0.0, 1.0, 0.0], dtype=np.float32)
_ROUND_SHADE = np.array([1.0, 0.0, 1.0, 1.0], dtype=np.float32)
_FAR = np.float32(1e4)
# Row labels of the background: ceiling 0, floor 1, and 5 for unlit floor or ceiling
# beyond the lamp. Wall, far object and near object are painted over it (by column).
_DARK = 5
LAMP_FADE = 0.75
"""Metres over which the lamp's light fades to black before ``lamp_range``."""


@dataclasses.dataclass
class RayHits:
    """What ``N`` rays per copy hit (camera columns and lidar beams are cast together).

    Attributes:
        dx, dy: ``(B, N)`` float32 ray direction components.
        t_solid: ``(B, N)`` float32 distance to the first wall or box face.
        x_face: ``(B, N)`` bool, that face has constant x (for shading).
        is_box: ``(B, N)`` bool, the face belongs to a box obstacle (not a room wall).
        t_obj: ``(K, B, N)`` float32 distance to each object's footprint when it is hit in
            front of ``t_solid``, else a large sentinel (1e4).
        fwd: ``(K, B, N)`` float32 distance along the ray to each object centre's foot point.
        lat: ``(K, B, N)`` float32 signed lateral offset of each object centre from the ray.
        t_nearest: ``(B, N)`` float32 ``t_obj`` of the nearest object (the sentinel if none).
    """

    dx: np.ndarray
    dy: np.ndarray
    t_solid: np.ndarray
    x_face: np.ndarray
    is_box: np.ndarray
    t_obj: np.ndarray
    fwd: np.ndarray
    lat: np.ndarray
    t_nearest: np.ndarray


def cast_rays(
    pos: np.ndarray,
    angles: np.ndarray,
    size: np.ndarray,
    boxes: np.ndarray,
    box_valid: np.ndarray,
    objects: np.ndarray,
    obj_valid: np.ndarray,
    radius: float,
) -> RayHits:
    """Casts ``N`` rays per copy against the room walls, boxes and object footprints.

    Specialized to this task's geometry (a rectangle seen from inside, axis-aligned boxes,
    equal circles), which takes about half the array operations of the general routines in
    :mod:`mmrl.envs.geometry` and returns what the camera needs besides the distance.

    Args:
        pos: ``(B, 2)`` float32 ray origins; angles: ``(B, N)`` float32 absolute ray angles.
        size: ``(B, 2)`` room width and height (the room is ``[0, w] x [0, h]``).
        boxes: ``(B, M, 4)`` ``[cx, cy, half_x, half_y]``; box_valid: ``(B, M)`` bool.
        objects: ``(B, K, 2)`` centres; obj_valid: ``(B, K)`` bool; radius: footprint radius.

    Returns:
        The :class:`RayHits`.
    """
    dx, dy = np.cos(angles), np.sin(angles)
    ox, oy = pos[:, 0:1], pos[:, 1:2]
    # Axis-parallel rays get a tiny positive component (not 0) so every division is finite
    # and the wall they exit through is chosen consistently with that sign.
    inv_x = 1.0 / np.where(np.abs(dx) < 1e-6, np.float32(1e-6), dx)
    inv_y = 1.0 / np.where(np.abs(dy) < 1e-6, np.float32(1e-6), dy)

    # Walls: exit distance from inside the room rectangle.
    tx = (np.where(inv_x > 0, size[:, 0:1], 0.0) - ox) * inv_x
    ty = (np.where(inv_y > 0, size[:, 1:2], 0.0) - oy) * inv_y
    x_face = tx < ty
    t_solid = np.minimum(tx, ty)
    is_box = np.zeros_like(x_face)

    # Axis-aligned boxes, slab method, one box at a time over (B, N): a copy has at most a
    # few boxes, and (B, N) passes avoid the slow arg-reduction over a short trailing axis
    # of (B, N, M) arrays (issue 20). Ties keep the first box, as argmin did.
    if boxes.shape[1]:
        t_box = x_box = None
        for m in range(boxes.shape[1]):
            lo = boxes[:, m, :2] - boxes[:, m, 2:] - pos  # (B, 2)
            hi = boxes[:, m, :2] + boxes[:, m, 2:] - pos
            ax, bx = lo[:, 0:1] * inv_x, hi[:, 0:1] * inv_x
            ay, by = lo[:, 1:2] * inv_y, hi[:, 1:2] * inv_y
            tx_near, ty_near = np.minimum(ax, bx), np.minimum(ay, by)
            t_near = np.maximum(tx_near, ty_near)
            t_far = np.minimum(np.maximum(ax, bx), np.maximum(ay, by))
            hit = (t_near <= t_far) & (t_near > 0) & box_valid[:, m : m + 1]
            t_m = np.where(hit, t_near, _FAR)
            x_m = tx_near > ty_near
            if t_box is None:
                t_box, x_box = t_m, x_m
            else:
                closer = t_m < t_box
                t_box = np.where(closer, t_m, t_box)
                x_box = np.where(closer, x_m, x_box)
        is_box = t_box < t_solid
        t_solid = np.where(is_box, t_box, t_solid)
        x_face = np.where(is_box, x_box, x_face)

    # Objects: ray / footprint-circle tests over (K, B, N): objects lead, so every operation
    # runs over long rows of rays (with objects last, numpy's inner loops were K long and
    # these lines cost 3x as much, issue 20).
    rel = objects - pos[:, None, :]  # (B, K, 2)
    rel_x, rel_y = rel[..., 0].T[:, :, None], rel[..., 1].T[:, :, None]  # (K, B, 1)
    fwd = rel_x * dx + rel_y * dy
    lat = rel_y * dx - rel_x * dy
    r = np.float32(radius)
    t_obj = fwd - np.sqrt(np.maximum(r * r - lat * lat, 0.0))
    seen = (np.abs(lat) < r) & (t_obj > 0) & (t_obj < t_solid) & obj_valid.T[:, :, None]
    t_obj = np.where(seen, t_obj, _FAR)
    t_nearest = functools.reduce(np.minimum, list(t_obj))
    return RayHits(dx, dy, t_solid, x_face, is_box, t_obj, fwd, lat, t_nearest)


class ColumnCamera:
    """Renders ``(B, S, S, 3)`` uint8 images of rooms with boxes and objects.

    Args:
        size: Image height and width ``S`` (one ray per column).
        fov_deg: Horizontal and vertical field of view in degrees.
        object_radius: Footprint radius of every object, metres.
        lamp_range: ``None``: the room is lit everywhere. A distance in metres: the robot's
            lamp is the only light, so walls, boxes, objects, floor and ceiling fade to black
            over the last :data:`LAMP_FADE` metres before it (by ray distance; the floor and
            ceiling by the distance of the surface each pixel row sees).
    """

    lamp_range: np.float32 | None = None  # class default: cameras pickled before the lamp

    def __init__(
        self, size: int, fov_deg: float, object_radius: float, lamp_range: float | None = None
    ) -> None:
        self.size = size
        self.lamp_range = None if lamp_range is None else np.float32(lamp_range)
        self.focal = np.float32((size / 2) / np.tan(np.radians(fov_deg) / 2))
        # Rays through pixel centres of a flat image plane; column 0 is the leftmost, i.e.
        # the most counter-clockwise ray.
        offsets = size / 2 - (np.arange(size, dtype=np.float32) + 0.5)
        self.angles = np.arctan(offsets / self.focal).astype(np.float32)  # (W,)
        self.cos = np.cos(self.angles)
        self.radius = np.float32(object_radius)
        # Rows below the horizon are floor (label 1), above it ceiling (label 0); in the dark,
        # rows whose floor or ceiling point lies beyond the lamp are unlit.
        rows = np.arange(size)
        self.floor = (rows >= size / 2).astype(np.uint8)[None, :, None]
        if self.lamp_range is not None:
            below = (rows + 0.5 - size / 2).astype(np.float32)
            height = np.where(below > 0, EYE_HEIGHT, WALL_HEIGHT - EYE_HEIGHT)
            distance = self.focal * height / np.maximum(np.abs(below), 1e-6)
            self.floor = np.where(distance[None, :, None] > self.lamp_range, _DARK, self.floor)
            self.floor = self.floor.astype(np.uint8)
        # Index offsets, palettes and output buffers per batch shape: a vec env alternates
        # between all copies and the few it just reset, so one cached shape would thrash.
        self._buffers: dict[tuple[int, int, int], _Scratch] = {}

    def __getstate__(self) -> dict:
        # The buffers are caches (megabytes per batch shape): rebuilt on first use.
        return {**self.__dict__, "_buffers": {}}

    def __setstate__(self, state: dict) -> None:
        state.pop("_scratch", None)  # the pre-issue-20 cache, of another layout
        state.pop("rows", None)
        state.pop("row_dtype", None)
        self.__dict__.update(state)
        self._buffers = {}

    def render(
        self,
        pos: np.ndarray,
        heading: np.ndarray,
        size: np.ndarray,
        boxes: np.ndarray,
        box_valid: np.ndarray,
        objects: np.ndarray,
        obj_rgb: np.ndarray,
        obj_shape: np.ndarray,
        obj_valid: np.ndarray,
    ) -> np.ndarray:
        """Renders one image per copy (casts its own rays; see :meth:`shade`).

        Args:
            pos: ``(B, 2)`` float32 camera positions; heading: ``(B,)`` float32 radians.
            size: ``(B, 2)`` float32 room width and height.
            boxes: ``(B, M, 4)`` float32 ``[cx, cy, half_x, half_y]``; box_valid ``(B, M)`` bool.
            objects: ``(B, K, 2)`` float32 centres; obj_rgb: ``(B, K, 3)`` float32 colours.
            obj_shape: ``(B, K)`` int64 shape ids; obj_valid: ``(B, K)`` bool.

        Returns:
            ``(B, S, S, 3)`` uint8 RGB images.
        """
        angles = heading[:, None] + self.angles
        hits = cast_rays(pos, angles, size, boxes, box_valid, objects, obj_valid, self.radius)
        return self.shade(hits, pos, obj_rgb, obj_shape)

    def shade(
        self, hits: RayHits, pos: np.ndarray, obj_rgb: np.ndarray, obj_shape: np.ndarray
    ) -> np.ndarray:
        """Turns ray hits into images.

        Args:
            hits: Hits of ``N >= S`` rays whose first ``S`` are the camera columns
                (``heading + self.angles``); further rays (e.g. lidar beams) are ignored.
            pos: ``(B, 2)`` camera positions.
            obj_rgb: ``(B, K, 3)`` float32 object colours; obj_shape: ``(B, K)`` shape ids.

        Returns:
            ``(B, S, S, 3)`` uint8 RGB images.
        """
        n, s = len(pos), self.size
        k_obj, _, n_rays = hits.t_obj.shape
        dx, dy = hits.dx[:, :s], hits.dy[:, :s]
        t_solid, x_face, is_box = hits.t_solid[:, :s], hits.x_face[:, :s], hits.is_box[:, :s]
        ox, oy = pos[:, 0:1], pos[:, 1:2]

        # Wall colour: material, face orientation (x faces darker), a dark seam every metre
        # (optic flow while turning) and distance fog.
        along = np.where(x_face, oy + t_solid * dy, ox + t_solid * dx)
        shade = np.where(x_face, np.float32(0.75), np.float32(1.0)) / (1.0 + 0.07 * t_solid)
        shade = np.where((along % 1.0) < 0.04, 0.6 * shade, shade)
        if self.lamp_range is not None:
            shade = shade * self._lamp(t_solid)
        depth = np.maximum(t_solid * self.cos, 0.05)

        # The two nearest objects per column (far one drawn first), so a low near object
        # does not hide the top of a taller one behind it; three in a column is very rare.
        # Gathers use flat indices into the contiguous (K, B, N) hit arrays.
        far_k, near_k, t2 = _two_nearest(hits.t_obj[:, :, :s])
        order = np.stack([far_k, near_k])  # (2, B, W)
        scratch = self._scratch_for(n, n_rays, k_obj)
        flat = order * (n * n_rays) + scratch.ray_base
        u = np.minimum(np.abs(np.take(hits.lat, flat)) / self.radius, 1.0)
        d_obj = np.maximum(np.take(hits.fwd, flat) * self.cos, 0.05)
        slot = scratch.obj_base + order
        shape = np.take(obj_shape, slot)
        roundness = np.sqrt(1.0 - u * u)
        r = self.radius
        is_ball = shape == 0
        # A ball is a circle of radius r centred at height r; other shapes stand on the floor.
        z_bot = np.where(is_ball, r * (1.0 - roundness), np.float32(0.0))
        z_top = np.where(
            is_ball, r * (1.0 + roundness), SHAPE_HEIGHT[shape] * (1 - _TAPER[shape] * u)
        )
        rs = _ROUND_SHADE[shape]
        light = (0.9 * (1.0 - rs) + rs * (0.55 + 0.45 * roundness)) / (1.0 + 0.05 * t2)
        if self.lamp_range is not None:
            light = light * self._lamp(t2)

        # --- rows covered by wall, far object and near object: (3, B, W) integer spans.
        horizon = np.float32(s / 2)
        spans = np.empty((2, 3, n, s), np.float32)  # [top/bottom, layer, copy, column]
        spans[0, 0] = horizon - self.focal * (WALL_HEIGHT - EYE_HEIGHT) / depth
        spans[1, 0] = horizon + self.focal * EYE_HEIGHT / depth
        spans[0, 1:] = horizon - self.focal * (z_top - EYE_HEIGHT) / d_obj
        spans[1, 1:] = horizon - self.focal * (z_bot - EYE_HEIGHT) / d_obj
        # A layer without an object gets an empty span.
        spans[1, 1:] = np.where(t2 >= _FAR, spans[0, 1:], spans[1, 1:])
        # Pixel row i (centre i + 0.5) is covered when top <= i + 0.5 < bottom.
        rows = np.ceil(spans - 0.5)
        rows_i = np.clip(rows, 0, s, out=rows).astype(np.intp)

        # --- each span as a bit mask over the column's rows (one uint64 per 64 rows), so the
        # painter's algorithm runs on (B, W) words instead of (B, H, W) pixels (issue 20: the
        # per-pixel compares and selects were ~45 % of a Navigation step). An inverted span
        # (bottom above top) gives an empty mask.
        words = scratch.word_rows  # (nw,) first row of each word
        # (2, 3, B, W, nw) span ends within each word; one word needs no clipping.
        within = rows_i[..., None] - words
        bounds = within if len(words) == 1 else np.clip(within, 0, 64)
        masks = _PREFIX[bounds[1]] & ~_PREFIX[bounds[0]]  # (3, B, W, nw)
        # Two bit planes of the visible layer (0 none, 1 wall, 2 far, 3 near): later layers
        # are painted over earlier ones.
        wall, far, near = masks[0], masks[1], masks[2]
        plane0 = ((wall & ~far) | near).astype("<u8", copy=False).view(np.uint8)
        plane1 = (far | near).astype("<u8", copy=False).view(np.uint8)
        # Little-endian bytes put rows 8j .. 8j + 7 in byte j; a table turns each byte into
        # its 8 per-row codes at once (one byte lane each, no carries), and the row's
        # background (4 x ceiling, floor or unlit) is added per lane: the palette column of
        # every pixel, as (copy, column, row) bytes.
        lanes = np.take(_SPREAD[0], plane0)
        lanes |= np.take(_SPREAD[1], plane1)
        lanes += scratch.background_lanes
        columns = lanes.view(np.uint8).reshape(n, s, -1)[:, :, :s]

        # --- a palette of colours per (copy, column) and (background, layer), then one
        # table lookup per pixel by cv2.remap with 16-bit coordinates (issue 20: half the
        # memory traffic of building an intp index for np.take, and RGB out directly).
        # Colours are below 256 by construction (base colours <= 255 times shade and light
        # <= 1), so the cast to uint8 needs no clipping.
        # Products are written straight into the uint8 buffer (the same float32 products,
        # cast as an assignment would).
        colours = scratch.colours  # (B, W, layer, RGB)
        wall_base = _WALL_BOX_RGB[is_box.view(np.uint8)]  # (B, W, 3)
        np.multiply(wall_base, shade[..., None], out=colours[:, :, 0], casting="unsafe")
        obj_base = np.take(obj_rgb.reshape(-1, 3), slot.transpose(1, 2, 0), axis=0)
        light = light.transpose(1, 2, 0)[..., None]  # (B, W, 2, 1): far, near
        np.multiply(obj_base, light, out=colours[:, :, 1:], casting="unsafe")
        scratch.palette.reshape(n, s, 3, 4, 3)[:, :, :, 1:] = colours[:, :, None]
        # The transpose to (copy, row, column) happens in this one strided copy.
        np.copyto(scratch.lookup_x, columns.transpose(0, 2, 1), casting="unsafe")
        images = [
            cv2.remap(scratch.palette[lo:hi], scratch.lookup[lo:hi], None, cv2.INTER_NEAREST)
            for lo, hi in scratch.chunks
        ]
        rgb = images[0] if len(images) == 1 else np.concatenate(images)
        return rgb.reshape(n, s, s, 3)

    def _lamp(self, t: np.ndarray) -> np.ndarray:
        """Light of the lamp at ray distance ``t``: 1 near, fading to 0 at ``lamp_range``."""
        return np.clip((self.lamp_range - t) * np.float32(1.0 / LAMP_FADE), 0.0, 1.0)

    def _scratch_for(self, n: int, n_rays: int, k_obj: int) -> _Scratch:
        """The reusable :class:`_Scratch` of a batch of ``n`` copies (built on first use)."""
        key = (n, n_rays, k_obj)
        scratch = self._buffers.pop(key, None)
        if scratch is None:
            # Least recently used out first: the full batch is used every step and stays,
            # while the sizes of auto-reset subsets come and go (clearing the whole cache
            # rebuilt the full batch's megabytes every few steps).
            while len(self._buffers) >= 8:
                del self._buffers[next(iter(self._buffers))]
            background = _BACKGROUND[self.floor[0, :, 0]]
            scratch = _Scratch.build(n, self.size, n_rays, k_obj, background)
        self._buffers[key] = scratch  # (re)inserted last: dicts keep insertion order
        return scratch


def _two_nearest(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two nearest of ``K`` objects per ray, as a stable sort of ``t`` would order them.

    Args:
        t: ``(K, B, W)`` float32 distances.

    Returns:
        ``(far_k, near_k, t2)``: ``(B, W)`` int64 indices of the second nearest and nearest
        object and ``(2, B, W)`` float32 their distances (second nearest first). Elementwise
        passes over (B, W) instead of an argsort over the short trailing axis (issue 20).
    """
    near_t, near_k = t[0], np.zeros(t.shape[1:], np.int64)
    for k in range(1, len(t)):
        closer = t[k] < near_t
        near_t = np.where(closer, t[k], near_t)
        near_k = np.where(closer, k, near_k)
    far_t, far_k = np.full(t.shape[1:], np.inf, np.float32), np.zeros(t.shape[1:], np.int64)
    for k in range(len(t)):
        closer = (t[k] < far_t) & (near_k != k)
        far_t = np.where(closer, t[k], far_t)
        far_k = np.where(closer, k, far_k)
    return far_k, near_k, np.stack([far_t, near_t])


_WALL_BOX_RGB = np.stack([WALL_RGB, BOX_RGB])
"""Colour of a room wall (row 0) and of a box obstacle (row 1)."""
_PREFIX = np.array([(1 << k) - 1 for k in range(65)], dtype=np.uint64)
"""``_PREFIX[k]`` has the low ``k`` bits set: rows ``[t, b)`` of a word are
``_PREFIX[b] & ~_PREFIX[t]``."""
_SPREAD = (
    ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(np.uint8)[None]
    * np.array([[[1]], [[2]]], np.uint8)
).view(np.uint64)[..., 0]
"""``_SPREAD[p][byte]``: 8 bytes, byte ``k`` is bit ``k`` of ``byte`` times ``1 << p`` (the
code bit of plane ``p`` for 8 rows at once, in memory order whatever the byte order)."""
_BACKGROUND = np.array([0, 1, 0, 0, 0, 2], dtype=np.uint8)
"""Background slot in the palette (ceiling, floor, unlit) of each row label (0, 1, 5)."""
_REMAP_ROWS = 32000
"""Most palette rows per ``cv2.remap`` call (its coordinates are int16)."""


@dataclasses.dataclass
class _Scratch:
    """Per-batch-shape constants and buffers of :meth:`ColumnCamera.shade`.

    Attributes:
        ray_base: ``(n, S)`` flat offset of each (copy, column) into ``(K, n, N)`` hits.
        obj_base: ``(n, 1)`` flat offset of each copy into ``(n, K)`` object arrays.
        word_rows: ``(ceil(S / 64),)`` int64 first row of each 64-row mask word.
        palette: ``(n * S, 12, 3)`` uint8 RGB per (copy, column) row and ``4 * background
            + layer`` column: layer 0 is the background (ceiling, floor, unlit; preset),
            layers 1-3 wall, far and near object (rewritten each call).
        colours: ``(n, S, 3, 3)`` uint8 RGB of wall, far and near object per (copy, column)
            (output buffer).
        background_lanes: ``(ceil(S / 64) * 8,)`` uint64: byte ``k`` of entry ``j`` is
            ``4 * background`` of row ``8 j + k`` (0 past the last row).
        lookup: ``(n * S, S, 2)`` int16 remap coordinates ``(palette column, palette row)``
            of every pixel; the rows are static (restarting at every chunk).
        lookup_x: ``(n, S, S)`` view of the palette columns of ``lookup`` (written per call).
        chunks: ``(lo, hi)`` row ranges of one ``cv2.remap`` call each.
    """

    ray_base: np.ndarray
    obj_base: np.ndarray
    word_rows: np.ndarray
    palette: np.ndarray
    colours: np.ndarray
    background_lanes: np.ndarray
    lookup: np.ndarray
    lookup_x: np.ndarray
    chunks: list[tuple[int, int]]

    @classmethod
    def build(cls, n: int, s: int, n_rays: int, k_obj: int, background: np.ndarray) -> _Scratch:
        b = np.arange(n)[:, None]
        palette = np.zeros((n * s, 3, 4, 3), np.uint8)
        palette[:, 0, 0], palette[:, 1, 0] = CEILING_RGB, FLOOR_RGB  # unlit stays black
        words = (s + 63) // 64
        lanes = np.zeros(64 * words, np.uint8)
        lanes[:s] = 4 * background
        per_chunk = max(_REMAP_ROWS // s, 1)  # copies per remap call
        lookup = np.empty((n, s, s, 2), np.int16)
        lookup[..., 1] = (b % per_chunk)[:, :, None] * s + np.arange(s)  # (copy, row, column)
        return cls(
            ray_base=b * n_rays + np.arange(s),
            obj_base=b * k_obj,
            word_rows=64 * np.arange(words),
            palette=palette.reshape(n * s, 12, 3),
            colours=np.empty((n, s, 3, 3), np.uint8),
            background_lanes=lanes.view(np.uint64),
            lookup=lookup.reshape(n * s, s, 2),
            lookup_x=lookup[..., 0],
            chunks=[(lo * s, min(lo + per_chunk, n) * s) for lo in range(0, n, per_chunk)],
        )
