"""First-person RGB camera by column ray casting (Wolfenstein-style), batched over copies.

One ray per image column; each ray finds the nearest wall or box face and the objects in
front of it. Heights are projected with a pinhole model (``row = horizon - f * (z - eye) /
depth``, ``depth`` measured along the optical axis so straight walls stay straight). Objects
keep their 3-D silhouettes across columns: a ball's vertical extent follows a circle, a cube
and a cylinder have flat tops (the cylinder is taller and shaded round), a cone narrows to
a tip. Rays and columns run as compiled loops (:mod:`mmrl.envs.navigation.kernels`, numba):
one pass per ray for the hits, one per column that shades the wall and the two nearest
objects and writes each pixel once, painter's algorithm (issue 20: bit-identical to the
array code they replaced, at a fraction of its cost).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmrl.envs.navigation.instructions import SHAPES
from mmrl.envs.navigation.kernels import cast_rays_kernel, shade_kernel

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
    # NumPy's float32 cos/sin (its own SIMD routines; the kernel leaves them to NumPy so the
    # last bits stay what they were), then compiled loops over each copy's rays (issue 20:
    # ~30 array operations over (objects, copies, rays) before).
    dx, dy = np.cos(angles), np.sin(angles)
    n, n_rays = dx.shape
    k_obj = objects.shape[1]
    t_solid = np.empty((n, n_rays), np.float32)
    x_face = np.empty((n, n_rays), bool)
    is_box = np.empty((n, n_rays), bool)
    t_obj = np.empty((k_obj, n, n_rays), np.float32)
    fwd = np.empty((k_obj, n, n_rays), np.float32)
    lat = np.empty((k_obj, n, n_rays), np.float32)
    t_nearest = np.empty((n, n_rays), np.float32)
    cast_rays_kernel(
        np.ascontiguousarray(pos, np.float32), dx, dy, np.ascontiguousarray(size, np.float32),
        np.ascontiguousarray(boxes, np.float32), np.ascontiguousarray(box_valid, bool),
        np.ascontiguousarray(objects, np.float32), np.ascontiguousarray(obj_valid, bool),
        np.float32(radius), t_solid, x_face, is_box, t_obj, fwd, lat, t_nearest,
    )  # fmt: skip
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

    def __setstate__(self, state: dict) -> None:
        # Caches of earlier versions (rebuilt per call now): the pre-issue-20 ``_scratch``,
        # ``rows`` and ``row_dtype``, and the remap buffers per batch shape, ``_buffers``.
        for key in ("_scratch", "rows", "row_dtype", "_buffers"):
            state.pop(key, None)
        self.__dict__.update(state)

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
        s = self.size
        lamp = self.lamp_range is not None
        out = np.empty((len(pos), s, s, 3), np.uint8)
        # Compiled loops over each copy's columns, then its image rows (issue 20: they
        # replaced ~40 array operations over the columns, 64-row bit masks and a cv2.remap
        # palette lookup, ~19 us per env-step).
        shade_kernel(
            s, hits.dx, hits.dy, hits.t_solid, hits.x_face, hits.is_box, hits.t_obj, hits.fwd,
            hits.lat, np.ascontiguousarray(pos, np.float32),
            np.ascontiguousarray(obj_rgb, np.float32), np.ascontiguousarray(obj_shape, np.int64),
            self.cos, self.focal, self.radius, lamp,
            self.lamp_range if lamp else np.float32(0.0), np.float32(1.0 / LAMP_FADE),
            self.focal * (WALL_HEIGHT - EYE_HEIGHT), self.focal * EYE_HEIGHT,
            np.float32(EYE_HEIGHT), np.float32(s / 2), SHAPE_HEIGHT, _TAPER, _ROUND_SHADE,
            _WALL_BOX_RGB, _BACKGROUND[self.floor[0, :, 0]], _BACKGROUND_RGB,
            np.empty((2, 3, 3 * s), np.uint8 if s < 255 else np.uint16), out.reshape(-1, s, 3 * s),
        )  # fmt: skip
        return out


_WALL_BOX_RGB = np.stack([WALL_RGB, BOX_RGB])
"""Colour of a room wall (row 0) and of a box obstacle (row 1)."""
_BACKGROUND = np.array([0, 1, 0, 0, 0, 2], dtype=np.uint8)
"""Background code (ceiling, floor, unlit) of each row label (0, 1, :data:`_DARK`)."""
_BACKGROUND_RGB = np.array([CEILING_RGB, FLOOR_RGB, (0, 0, 0)], np.uint8)
"""Colour of each background code: ceiling, floor, unlit (black)."""
