"""What Driving frames say: camera footprint and lidar range from the config, the ego marked.

The camera is a road-aligned bird's-eye view centred across on the ego, so the ego's box on
the image is fixed: rows from ``view_ahead`` metres ahead (top) to ``view_behind`` behind,
columns ``VIEW_WIDTH`` metres across.
"""

from __future__ import annotations

from typing import Any

from mmrl.envs.driving.camera import VIEW_WIDTH
from mmrl.envs.driving.traffic import CAR_LENGTH, CAR_WIDTH
from mmrl.envs.frames import FramePainter, FrameSpec, Mark, camera_title


class DrivingPainter(FramePainter):
    """Titles ``camera 64x64, 80 m x 40 m`` and ``lidar 64 beams, 50 m``; the ego boxed."""

    @staticmethod
    def spec(sim: Any) -> FrameSpec:
        """The spec of a ``DrivingSimulator`` (its camera's view and its config)."""
        camera, cfg = sim.camera, sim.config
        # Rows: fraction of the image's length from the top (far ahead) to the ego's centre.
        along = camera.view_ahead / camera.length
        half_l = 0.5 * CAR_LENGTH / camera.length
        half_w = 0.5 * CAR_WIDTH / VIEW_WIDTH
        ego = Mark("ego", (0.5 - half_w, along - half_l, 0.5 + half_w, along + half_l))
        return FrameSpec(
            camera_title=camera_title(cfg, f"{camera.length:g} m x {VIEW_WIDTH:g} m"),
            lidar_title=f"lidar {cfg.lidar_beams} beams, {cfg.lidar_range:g} m",
            state_names=tuple(sim.state_names),
            camera_marks=(ego,),
        )
