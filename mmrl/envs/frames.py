"""What a frame says about its environment: panel titles, state names, marks, extra panels.

Frames explain themselves (issue 16): each sensor panel has a title with its size and range
("camera 64x64, 80 m x 40 m", "lidar 64 beams, 50 m"), state entries are printed with their
names, an env may mark things on the camera (the Driving ego) and add panels of its own
(Navigation's top-down map). This module holds those words and the per-env hook; the drawing
is :mod:`mmrl.envs.visualize`'s. It imports no OpenCV, so simulators can name their
:class:`FramePainter` at import time without loading it.

A simulator's ``painter`` class attribute names its :class:`FramePainter`: a static
:class:`FrameSpec` (titles from the env's config, never literals) and, for envs with extra
panels, a per-step *scene* (a few small arrays of one copy) from which the panels are drawn.
Scenes are read only on the rendering path (``render()``, videos), never in ``step``.

OpenCV's Hershey fonts are ASCII only, so titles write ``x`` for the multiplication sign and
``deg`` for degrees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

BG = (24, 24, 28)
"""Background colour of frames and panels (callers pad frames to one size with it)."""

Scene = dict[str, np.ndarray]
"""One copy's state as an env's extra panels need it (small arrays, see
:meth:`FramePainter.scene`)."""


@dataclasses.dataclass(frozen=True)
class Mark:
    """A labelled box drawn on the camera panel.

    Attributes:
        label: Text drawn beside the box (``"ego"``).
        box: ``(x0, y0, x1, y1)`` as fractions of the camera image's width and height.
    """

    label: str
    box: tuple[float, float, float, float]


@dataclasses.dataclass(frozen=True)
class FrameSpec:
    """What an environment's frames say about its sensors (fixed for a simulator).

    Attributes:
        camera_title: Title of the camera panel; ``None``: ``"camera HxW"`` from the image.
        lidar_title: Title of the lidar panel; ``None``: ``"lidar N beams"`` from the scan.
        state_names: Name of each ``state`` entry (``()``: values are listed unnamed).
        camera_marks: Boxes marked on the camera (e.g. the ego car).
    """

    camera_title: str | None = None
    lidar_title: str | None = None
    state_names: tuple[str, ...] = ()
    camera_marks: tuple[Mark, ...] = ()


def camera_title(sensors: Any, *details: str) -> str:
    """The camera panel's title: ``"camera SxS"``, then ``details`` (the view, e.g.
    ``"80 m x 40 m"``), then ``"newest of k frames"`` when ``camera_frames`` stacks ``k > 1``
    (``"newest of k frames s steps apart"`` with a stride; the panel shows only the newest).

    Args:
        sensors: A :class:`~mmrl.envs.config.SensorConfig` (an env's config).
        details: More comma-separated parts, in order.
    """
    size = sensors.camera_size
    frames = getattr(sensors, "camera_frames", 1)  # a config pickled before stacking
    stride = getattr(sensors, "camera_frame_stride", 1)
    every = f" {stride} steps apart" if stride > 1 else ""
    stack = (f"newest of {frames} frames{every}",) if frames > 1 else ()
    return ", ".join((f"camera {size}x{size}", *details, *stack))


class FramePainter:
    """How a simulator's frames are drawn; this default suits any
    :class:`~mmrl.envs.base.BatchedSimulator` (titles from its ``sensors`` config, no extra
    panel). An env with more to show subclasses it and names the subclass in its simulator's
    ``painter`` attribute. Methods are static: a painter holds no state, so simulators
    pickle as before.
    """

    @staticmethod
    def spec(sim: Any) -> FrameSpec:
        """The frame spec of ``sim`` (a ``BatchedSimulator``)."""
        s = sim.sensors
        return FrameSpec(
            camera_title=camera_title(s),
            lidar_title=f"lidar {s.lidar_beams} beams, {s.lidar_range:g} m",
            state_names=tuple(getattr(sim, "state_names", ())),
        )

    @staticmethod
    def scene(sim: Any, i: int) -> Scene | None:
        """Copy ``i``'s state for :meth:`panels`, or ``None`` when there are no extra panels.

        Must copy what it returns (the simulator rewrites its arrays in place)."""
        return None

    @staticmethod
    def panels(scenes: Sequence[Scene]) -> list[tuple[str, np.ndarray]]:
        """Extra ``(title, (H, W, 3) uint8 image)`` panels drawn from one episode's scenes so
        far (oldest first; the last is the current step)."""
        return []


def wrap(text: str, width: int) -> list[str]:
    """Splits ``text`` at spaces into lines of at most ``width`` characters (a longer word
    keeps a line of its own)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if len(line) + len(word) + 1 > width and line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def state_lines(state: np.ndarray, names: Sequence[str] = (), width: int = 52) -> list[str]:
    """``state`` entries as text lines of at most ``width`` characters.

    Args:
        state: ``(D,)`` float values.
        names: Name of each entry (a simulator's ``state_names``); without a name for every
            entry, the values alone, the first 12 of them.

    Returns:
        ``["state  speed +0.60  steer +0.00 ...", ...]``.
    """
    values = np.asarray(state, dtype=np.float64).ravel()
    if len(names) == len(values):
        items = [f"{name} {v:+.2f}" for name, v in zip(names, values, strict=True)]
    else:
        items = [f"{v:+.2f}" for v in values[:12]]
        if len(values) > 12:
            items.append(f"... ({len(values)} entries)")
    # Wrapped between entries, never inside one (a name stays beside its value).
    lines: list[str] = []
    line = "state"
    for item in items:
        if len(line) + 2 + len(item) > width and line:
            lines.append(line)
            line = item
        else:
            line = f"{line}  {item}" if line else item
    return [*lines, line]


def status_lines(
    terms: Mapping[str, float] | None = None, success: bool = False, collision: bool = False
) -> list[str]:
    """The reward terms and outcome flags of a step, as frame text.

    Args:
        terms: ``info["rewards"]`` (name to value); ``None`` or empty: none yet.
        success: ``info["is_success"]``.
        collision: ``info["collision"]``.

    Returns:
        Always two lines (so frames keep one height): ``"terms  progress +0.012  time
        -0.010"`` (or ``"terms  -"``) and ``"SUCCESS"`` / ``"COLLISION"`` / both / ``""``.
    """
    listed = "  ".join(f"{k} {float(v):+.3f}" for k, v in (terms or {}).items())
    flags = [name for name, on in (("SUCCESS", success), ("COLLISION", collision)) if on]
    return [f"terms  {listed or '-'}", "  ".join(flags)]


class FrameSource:
    """The frame spec and extra panels of a simulator, or of none (generic frames).

    What the frame drawers above the simulator (videos, ``mmrl enjoy``, ``mmrl demo``) hold:
    they read :meth:`scene` after each reset and step of the copy they draw and pass the
    episode's scenes to :meth:`panels`.

    Args:
        sim: A ``BatchedSimulator`` (``venv.sim`` of an mmrl ``VecEnv``), or ``None`` for an
            environment that is not one (adapters, worker pools): titles then come from the
            observation's shapes and there is no extra panel.
    """

    def __init__(self, sim: Any | None = None) -> None:
        self.sim = sim
        self.painter: type[FramePainter] | None = getattr(sim, "painter", None)
        self.spec: FrameSpec | None = None if self.painter is None else self.painter.spec(sim)

    def scene(self, i: int) -> Scene | None:
        """Copy ``i``'s current scene (``None`` without a simulator or extra panels)."""
        return None if self.painter is None else self.painter.scene(self.sim, i)

    def panels(self, scenes: Sequence[Scene | None]) -> list[tuple[str, np.ndarray]]:
        """The extra panels of an episode's scenes so far (``None`` entries skipped)."""
        kept = [s for s in scenes if s is not None]
        return [] if self.painter is None or not kept else self.painter.panels(kept)
