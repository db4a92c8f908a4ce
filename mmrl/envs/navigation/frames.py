"""What Navigation frames say: the camera's field of view, the lidar's range, and a top-down
map beside the first-person camera.

The map shows what the robot cannot see: the room, its boxes, every object in its colour and
shape, the target ringed in white, the robot with its heading and field of view, and the path
driven so far, so a failed episode shows where the target was. It is drawn from *scenes*
(:meth:`NavigationPainter.scene`: one copy's few small arrays, read on the rendering path
only) with a handful of OpenCV calls, nothing per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmrl.envs.frames import BG, FramePainter, FrameSpec, Scene, camera_title
from mmrl.envs.navigation.room import OBJECT_RADIUS, ROBOT_RADIUS

MAP_SIZE = 256
"""Side of the square map panel in pixels (the sensor panels' height)."""
MAP_MARGIN = 10
"""Pixels between the room's longer side and the panel's edge."""
TARGET_RGB = (255, 255, 255)
"""The target's ring: white, a colour no object, wall or path has."""
ROBOT_RGB = (255, 140, 0)
"""The robot, its heading and its path (orange: no object colour)."""
_FLOOR, _WALL, _BOX, _FOV = (52, 48, 44), (150, 150, 150), (120, 85, 50), (110, 110, 130)


def map_projection(room: np.ndarray, size: int = MAP_SIZE) -> tuple[float, np.ndarray]:
    """World metres to map pixels: ``pixel = origin + scale * (x, -y)`` (``y`` points up).

    Args:
        room: ``(2,)`` room sides in metres (the room spans ``[0, sx] x [0, sy]``).
        size: Side of the map panel in pixels.

    Returns:
        ``(scale, origin)``: pixels per metre and the ``(2,)`` pixel of the world origin; the
        room is centred with at least ``MAP_MARGIN`` pixels around it.
    """
    sx, sy = float(room[0]), float(room[1])
    scale = (size - 2 * MAP_MARGIN) / max(sx, sy)
    origin = np.array([(size - sx * scale) / 2, size - (size - sy * scale) / 2])
    return scale, origin


def _px(points: np.ndarray, scale: float, origin: np.ndarray) -> np.ndarray:
    """``(..., 2)`` world points to int32 pixels."""
    pts = np.asarray(points, dtype=np.float64)
    return np.round(origin + scale * pts * np.array([1.0, -1.0])).astype(np.int32)


def map_panel(scenes: Sequence[Scene], size: int = MAP_SIZE) -> np.ndarray:
    """The top-down map of one episode so far.

    Args:
        scenes: :meth:`NavigationPainter.scene` of each rendered step, oldest first; the last
            is drawn, the robot positions of all make the path.
        size: Side of the panel in pixels.

    Returns:
        ``(size, size, 3)`` uint8 RGB. Objects: ball a disc, cube a square, cone a triangle,
        cylinder a disc with a dark core; the target ringed in :data:`TARGET_RGB`; the robot
        an :data:`ROBOT_RGB` disc with its heading, its field of view in grey lines.
    """
    import cv2

    s = scenes[-1]
    scale, origin = map_projection(s["size"], size)
    panel = np.full((size, size, 3), BG, np.uint8)
    corners = _px(np.array([[0.0, 0.0], s["size"]]), scale, origin)
    cv2.rectangle(panel, tuple(corners[0]), tuple(corners[1]), _FLOOR, -1)
    cv2.rectangle(panel, tuple(corners[0]), tuple(corners[1]), _WALL, 2)
    for cx, cy, hx, hy in s["boxes"]:
        lo, hi = _px(np.array([[cx - hx, cy - hy], [cx + hx, cy + hy]]), scale, origin)
        cv2.rectangle(panel, tuple(lo), tuple(hi), _BOX, -1)
    r_obj = max(3, round(OBJECT_RADIUS * scale))
    for (x, y), rgb, shape in zip(_px(s["objects"], scale, origin), s["rgb"], s["shape"]):
        colour = tuple(int(c) for c in rgb)
        if shape == 1:  # cube
            cv2.rectangle(panel, (x - r_obj, y - r_obj), (x + r_obj, y + r_obj), colour, -1)
        elif shape == 2:  # cone
            tri = np.array([[x, y - r_obj], [x - r_obj, y + r_obj], [x + r_obj, y + r_obj]])
            cv2.fillPoly(panel, [tri.astype(np.int32)], colour)
        else:  # ball, cylinder
            cv2.circle(panel, (x, y), r_obj, colour, -1, cv2.LINE_AA)
            if shape == 3:
                cv2.circle(panel, (x, y), max(1, r_obj // 3), (30, 30, 30), -1)
    tx, ty = _px(s["objects"][int(s["target"])], scale, origin)
    cv2.circle(panel, (int(tx), int(ty)), r_obj + 5, TARGET_RGB, 2, cv2.LINE_AA)
    path = _px(np.stack([scene["pos"] for scene in scenes]), scale, origin)
    if len(path) > 1:
        cv2.polylines(panel, [path.reshape(-1, 1, 2)], False, ROBOT_RGB, 1, cv2.LINE_AA)
    pos, heading, half_fov = s["pos"], float(s["heading"]), float(s["half_fov"])
    centre = tuple(int(v) for v in path[-1])
    reach = float(s["size"].min()) / 4  # metres of the drawn field-of-view lines
    for angle in (heading - half_fov, heading + half_fov):
        end = _px(pos + reach * np.array([np.cos(angle), np.sin(angle)]), scale, origin)
        cv2.line(panel, centre, tuple(int(v) for v in end), _FOV, 1, cv2.LINE_AA)
    cv2.circle(panel, centre, max(4, round(ROBOT_RADIUS * scale)), ROBOT_RGB, -1, cv2.LINE_AA)
    tip = _px(
        pos + 2.5 * ROBOT_RADIUS * np.array([np.cos(heading), np.sin(heading)]), scale, origin
    )
    cv2.line(panel, centre, tuple(int(v) for v in tip), ROBOT_RGB, 2, cv2.LINE_AA)
    return panel


class NavigationPainter(FramePainter):
    """Titles ``camera 64x64, 90 deg FOV, lamp 1.5 m`` (first person) and ``lidar 64 beams,
    8 m``, and the map panel (:func:`map_panel`)."""

    @staticmethod
    def spec(sim: Any) -> FrameSpec:
        """The spec of a ``NavigationSimulator`` (from its config)."""
        cfg = sim.cfg
        lamp = f", lamp {cfg.lamp_range:g} m" if cfg.lamp_range else ""
        return FrameSpec(
            camera_title=camera_title(cfg, f"{cfg.fov_deg:g} deg FOV{lamp}"),
            lidar_title=f"lidar {cfg.lidar_beams} beams, {cfg.lidar_range:g} m",
            state_names=tuple(sim.state_names),
        )

    @staticmethod
    def scene(sim: Any, i: int) -> Scene:
        """Copy ``i``'s room, boxes, objects, target and robot pose (copies; a few hundred
        bytes)."""
        objects = sim.obj_valid[i]
        return {
            "size": sim.size[i].copy(),
            "boxes": sim.boxes[i][sim.box_valid[i]].copy(),
            "objects": sim.objects[i][objects].copy(),
            "rgb": sim.obj_rgb[i][objects].astype(np.uint8),
            "shape": sim.obj_shape[i][objects].copy(),
            # Valid object slots are a prefix, so the target's slot is its index among them.
            "target": np.asarray(sim.target[i]).copy(),
            "pos": sim.pos[i].copy(),
            "heading": np.asarray(sim.heading[i]).copy(),
            "half_fov": np.asarray(np.radians(sim.cfg.fov_deg) / 2),
        }

    @staticmethod
    def panels(scenes: Sequence[Scene]) -> list[tuple[str, np.ndarray]]:
        """The map, titled with the room's size (none before the first scene)."""
        if not scenes:
            return []
        sx, sy = (float(v) for v in scenes[-1]["size"])
        return [(f"map {sx:.1f} m x {sy:.1f} m, target ringed", map_panel(scenes))]
