"""Frames of a multimodal observation for humans: titled sensor panels, labelled text.

Drawn with OpenCV so no display or pygame is needed; used by ``render()``, ``mmrl demo``,
``mmrl enjoy``, ``mmrl replay``, the evaluation and training videos and the exported preview.
What a frame says about its environment (titles, state names, marks, extra panels such as
Navigation's map) comes from :mod:`mmrl.envs.frames`; this module lays it out and draws it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from mmrl.envs.frames import BG, FrameSpec, Mark, state_lines, wrap

PANEL = 256
"""Height (and, for square sensors, width) of a sensor panel in pixels."""
MAX_PANEL_WIDTH = 2 * PANEL
"""Widest a panel may get (a wide camera is scaled down to this, keeping its aspect)."""
TITLE_HEIGHT = 20
"""Pixels of the title bar above each panel."""
LINE_HEIGHT = 20
"""Pixels per text line under the panels."""
_FG = (235, 235, 235)
_TITLE_FG = (170, 200, 255)
_MARK = (255, 80, 200)  # camera marks: a magenta no car, road or object colour has
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TEXT_SCALE = 0.5
_TITLE_SCALE = 0.45


@dataclasses.dataclass(frozen=True)
class FrameLayout:
    """The words of a frame, before drawing (what tests check instead of reading pixels).

    Attributes:
        titles: Panel titles, left to right.
        lines: Text lines under the panels, top to bottom.
    """

    titles: list[str]
    lines: list[str]


def fit_panel(
    image: np.ndarray, height: int = PANEL, max_width: int = MAX_PANEL_WIDTH
) -> np.ndarray:
    """Scales an image to ``height`` rows keeping its aspect ratio (never distorted).

    Args:
        image: ``(h, w, 3)`` uint8.
        height: Rows of the result.
        max_width: Widest result; a wider image is scaled to this width instead (fewer rows).

    Returns:
        ``(H, W, 3)`` uint8 with ``W / H == w / h`` up to rounding. Upscaling keeps pixels
        sharp (nearest neighbour: a sensor's pixels are what the agent sees).
    """
    h, w = image.shape[:2]
    scale = min(height / h, max_width / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_AREA
    return cv2.resize(image, size, interpolation=interpolation)


def lidar_panel(ranges: np.ndarray, size: int = PANEL) -> np.ndarray:
    """Polar plot of a 360-degree scan, ``(size, size, 3)`` uint8; beam 0 points up (ahead).

    Args:
        ranges: ``(N,)`` normalized ranges in ``[0, 1]``; the outer circle is ``1`` (the
            lidar's range, which the panel title states).
        size: Side of the square panel in pixels.
    """
    panel = np.full((size, size, 3), BG, dtype=np.uint8)
    centre = np.array([size / 2, size / 2])
    radius = size / 2 - 8
    cv2.circle(panel, (size // 2, size // 2), int(radius), (70, 70, 80), 1, cv2.LINE_AA)
    angles = np.linspace(0.0, 2 * np.pi, len(ranges), endpoint=False)
    r = np.clip(np.asarray(ranges, dtype=np.float64), 0, 1) * radius
    # Beam angles grow counter-clockwise from the heading; draw the heading upward.
    pts = np.stack([centre[0] - r * np.sin(angles), centre[1] - r * np.cos(angles)], axis=1)
    poly = np.round(pts).astype(np.int32)
    cv2.fillPoly(panel, [poly], (40, 90, 60))
    cv2.polylines(panel, [poly], True, (90, 230, 130), 1, cv2.LINE_AA)
    tri = np.array([[size // 2, size // 2 - 7], [size // 2 - 5, size // 2 + 5],
                    [size // 2 + 5, size // 2 + 5]], dtype=np.int32)  # fmt: skip
    cv2.fillPoly(panel, [tri], (240, 200, 60))
    return panel


def put_text(
    image: np.ndarray,
    text: str,
    origin: tuple[int, int],
    scale: float = _TEXT_SCALE,
    colour: tuple[int, int, int] = _FG,
    max_width: int | None = None,
) -> None:
    """Draws one line of text in place, shrinking the font so it fits ``max_width`` pixels
    (a line never wraps, so a frame's height does not depend on its numbers)."""
    width = image.shape[1] - origin[0] - 4 if max_width is None else max_width
    (w, _), _ = cv2.getTextSize(text, _FONT, scale, 1)
    if w > width > 0:
        scale *= 0.97 * width / w  # a margin: anti-aliased glyphs overhang their box
    cv2.putText(image, text, origin, _FONT, scale, colour, 1, cv2.LINE_AA)


def _chars(width: int) -> int:
    """Characters of ``_TEXT_SCALE`` text that fit ``width`` pixels (about 9.5 px each)."""
    return max(20, (width - 16) * 10 // 95)


def _camera_image(camera: np.ndarray) -> np.ndarray:
    """A camera observation as one ``(H, W, 3)`` uint8 image: channels-first is transposed
    (SB3's rule: the channels are the smallest axis), grey is repeated, and a stack of
    ``camera_frames`` RGB frames (``3k`` channels, oldest first) shows its newest frame."""
    cam = np.asarray(camera)
    if cam.ndim == 3 and cam.shape[0] < min(cam.shape[1:]):
        cam = np.transpose(cam, (1, 2, 0))
    if cam.ndim == 2:
        cam = cam[:, :, None]
    if cam.shape[-1] == 1:
        cam = np.repeat(cam, 3, axis=-1)
    elif cam.shape[-1] > 3 and cam.shape[-1] % 3 == 0:
        cam = cam[..., -3:]
    return np.ascontiguousarray(cam.astype(np.uint8))


def _marked(panel: np.ndarray, marks: Sequence[Mark]) -> np.ndarray:
    h, w = panel.shape[:2]
    for mark in marks:
        x0, y0, x1, y1 = mark.box
        p0 = (int(x0 * w) - 2, int(y0 * h) - 2)
        p1 = (int(np.ceil(x1 * w)) + 1, int(np.ceil(y1 * h)) + 1)
        cv2.rectangle(panel, p0, p1, _MARK, 2, cv2.LINE_AA)
        put_text(panel, mark.label, (p1[0] + 3, min(h - 4, p1[1])), 0.45, _MARK, w // 3)
    return panel


def _titled(panel: np.ndarray, title: str, height: int) -> np.ndarray:
    out = np.full((TITLE_HEIGHT + height, panel.shape[1], 3), BG, dtype=np.uint8)
    out[TITLE_HEIGHT : TITLE_HEIGHT + panel.shape[0]] = panel
    put_text(out, title, (4, TITLE_HEIGHT - 6), _TITLE_SCALE, _TITLE_FG)
    return out


def frame_layout(
    obs: Mapping[str, np.ndarray],
    instruction: str = "",
    extra_lines: Sequence[str] = (),
    spec: FrameSpec | None = None,
    panels: Sequence[tuple[str, np.ndarray]] = (),
) -> FrameLayout:
    """The titles and text lines :func:`compose_frame` draws (same arguments)."""
    spec = spec or FrameSpec()
    titles: list[str] = []
    width = 0
    if obs.get("camera") is not None:
        cam = _camera_image(obs["camera"])
        titles.append(spec.camera_title or f"camera {cam.shape[0]}x{cam.shape[1]}")
        width += fit_panel(cam).shape[1]
    if obs.get("lidar") is not None:
        beams = np.asarray(obs["lidar"]).size
        titles.append(spec.lidar_title or f"lidar {beams} beams")
        width += PANEL
    for title, image in panels:
        titles.append(title)
        width += image.shape[1]
    chars = _chars(max(width, PANEL))
    lines = wrap(f"> {instruction}", chars) if instruction else []
    lines += list(extra_lines)
    if "state" in obs:
        lines += state_lines(np.asarray(obs["state"]), spec.state_names, chars)
    return FrameLayout(titles=titles, lines=lines)


def compose_frame(
    obs: Mapping[str, np.ndarray],
    instruction: str = "",
    extra_lines: Sequence[str] = (),
    spec: FrameSpec | None = None,
    panels: Sequence[tuple[str, np.ndarray]] = (),
) -> np.ndarray:
    """One RGB frame showing every sensor of a single observation, each panel titled.

    Args:
        obs: A single (unbatched) observation with any of ``camera`` (H, W, 3) uint8 (or
            ``(H, W, 3k)``, ``k`` stacked frames: the newest is shown) and ``lidar`` (N,)
            float32; ``state`` is listed as text (named by the spec).
        instruction: The instruction string to print.
        extra_lines: More text lines (e.g. step, action, reward terms in videos).
        spec: The env's titles, state names and camera marks (default: titles from the
            observation's shapes, numbered state entries).
        panels: More ``(title, image)`` panels right of the lidar (e.g. Navigation's map).

    Returns:
        ``(H, W, 3)`` uint8 RGB image: panels ``256`` px high under a title bar (a camera
        keeps its aspect ratio, ``W`` = sum of panel widths, ``512`` for a square camera and
        a lidar), then the text area (``20`` px a line). For one environment and one
        instruction length the size is the same every step.
    """
    spec = spec or FrameSpec()
    layout = frame_layout(obs, instruction, extra_lines, spec, panels)
    images = []
    if obs.get("camera") is not None:
        images.append(_marked(fit_panel(_camera_image(obs["camera"])), spec.camera_marks))
    if obs.get("lidar") is not None:
        images.append(lidar_panel(np.asarray(obs["lidar"])))
    images += [image for _, image in panels]
    if not images:
        images.append(np.full((PANEL, PANEL, 3), BG, dtype=np.uint8))
    height = max(image.shape[0] for image in images)
    titles = layout.titles or [""]
    top = np.concatenate(
        [_titled(image, title, height) for image, title in zip(images, titles, strict=True)],
        axis=1,
    )
    lines = layout.lines
    text = np.full((10 + LINE_HEIGHT * max(len(lines), 1), top.shape[1], 3), BG, np.uint8)
    for i, line in enumerate(lines):
        put_text(text, line, (8, 22 + LINE_HEIGHT * i))
    return np.concatenate([top, text], axis=0)
