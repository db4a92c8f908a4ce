"""Human-readable frames of a multimodal observation (camera, lidar polar plot, text).

Drawn with OpenCV so no display or pygame is needed; used by ``render()``, the README demo
and the evaluation videos.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

_PANEL = 256
_BG = (24, 24, 28)
_FG = (235, 235, 235)


def lidar_panel(ranges: np.ndarray, size: int = _PANEL) -> np.ndarray:
    """Polar plot of a 360-degree scan, ``(size, size, 3)`` uint8; beam 0 points up (ahead).

    Args:
        ranges: ``(N,)`` normalized ranges in ``[0, 1]``.
        size: Side of the square panel in pixels.
    """
    panel = np.full((size, size, 3), _BG, dtype=np.uint8)
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


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if len(line) + len(word) + 1 > width and line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def compose_frame(
    obs: Mapping[str, np.ndarray],
    instruction: str = "",
    extra_lines: Sequence[str] = (),
) -> np.ndarray:
    """One RGB frame showing every sensor of a single observation.

    Args:
        obs: A single (unbatched) observation with any of ``camera`` (H, W, 3) uint8 and
            ``lidar`` (N,) float32; other keys are listed as text.
        instruction: The instruction string to print.
        extra_lines: More text lines (e.g. action and reward in videos).

    Returns:
        ``(H, W, 3)`` uint8 RGB image, ``W = 2 * 256`` and ``H = 256 + text area``.
    """
    panels = []
    camera = obs.get("camera")
    if camera is not None:
        cam = np.asarray(camera)
        if cam.ndim == 3 and cam.shape[0] in (1, 3) and cam.shape[-1] not in (1, 3):
            cam = np.transpose(cam, (1, 2, 0))
        if cam.shape[-1] == 1:
            cam = np.repeat(cam, 3, axis=-1)
        panels.append(
            cv2.resize(cam.astype(np.uint8), (_PANEL, _PANEL), interpolation=cv2.INTER_NEAREST)
        )
    lidar = obs.get("lidar")
    if lidar is not None:
        panels.append(lidar_panel(np.asarray(lidar)))
    if not panels:
        panels.append(np.full((_PANEL, _PANEL, 3), _BG, dtype=np.uint8))
    top = np.concatenate(panels, axis=1)
    lines = _wrap(f"> {instruction}", 52) if instruction else []
    lines += list(extra_lines)
    if "state" in obs:
        state = np.asarray(obs["state"]).ravel()
        lines.append("state: " + " ".join(f"{v:+.2f}" for v in state[:8]))
    text_h = 10 + 20 * max(len(lines), 1)
    text = np.full((text_h, top.shape[1], 3), _BG, dtype=np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(
            text, line, (8, 22 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _FG, 1, cv2.LINE_AA
        )
    return np.concatenate([top, text], axis=0)
