"""A window that shows RGB frames and reads pause/step/quit keys: ``render_mode="human"``.

Drawn with pygame-ce (the optional ``viewer`` extra: ``pip install 'mmrl[viewer]'``). Why
pygame rather than OpenCV's ``imshow``: mmrl depends on ``opencv-python-headless``, which is
built without any GUI backend (and installing ``opencv-python`` beside it breaks both), while
pygame ships SDL in its wheels, reads the keyboard, and has a ``dummy`` video driver, so the
window is tested headless (``SDL_VIDEODRIVER=dummy``) with the frame read back from its
surface. Gymnasium's own classic-control envs use pygame for the same reasons.

Keys (:meth:`Viewer.poll`): space pauses and resumes, right arrow or ``n`` advances one
step while paused, ``q`` or Escape (or closing the window) quits.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from types import ModuleType

import numpy as np

from mmrl.errors import MissingDependencyError, UsageError

__all__ = ["Viewer", "ViewerInput", "require_pygame"]


def require_pygame() -> ModuleType:
    """Imports pygame (pygame-ce) without its start-up banner.

    Raises:
        MissingDependencyError: It is not installed; the message names the extra.
    """
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError:
        raise MissingDependencyError(
            "render_mode='human' (a window) needs pygame-ce, which is not installed; install "
            "it with: pip install 'mmrl[viewer]' (or write a file: rgb_array, --video)"
        ) from None
    return pygame


def _has_display() -> bool:
    """Whether SDL can open a visible window: on Linux an X11 or Wayland display, or an
    SDL driver the user chose (``dummy`` for tests); other systems always have one."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"))


@dataclasses.dataclass
class ViewerInput:
    """What the keyboard asked for since the last :meth:`Viewer.poll`.

    Attributes:
        toggle_pause: Space was pressed (once per press).
        steps: Single steps asked for while paused (right arrow or ``n``).
        quit: ``q``, Escape, or the window was closed.
    """

    toggle_pause: bool = False
    steps: int = 0
    quit: bool = False


class Viewer:
    """One window showing RGB frames at up to ``fps`` frames per second.

    The window opens on the first :meth:`show` and takes each frame's size.

    Without a display (Linux with neither ``DISPLAY`` nor ``WAYLAND_DISPLAY`` and no
    ``SDL_VIDEODRIVER`` chosen), SDL would fall back to an invisible off-screen surface and
    print "XDG_RUNTIME_DIR is invalid" to stderr. A viewer that must be seen (``mmrl enjoy``)
    refuses that; an environment's ``render_mode="human"`` draws into SDL's ``dummy`` driver
    instead, as Gymnasium's own pygame envs do headless, so ``check_env`` (which makes the env
    in every declared render mode) passes on a server and in CI.

    Args:
        title: Window caption.
        fps: Frames per second :meth:`show` waits for (``None`` or ``0``: no waiting).
        require_display: Raise rather than draw into an invisible window.

    Raises:
        MissingDependencyError: pygame-ce is not installed (the ``viewer`` extra).
        UsageError: ``require_display`` and no display to show a window on.
    """

    def __init__(
        self, title: str = "mmrl", fps: float | None = 15.0, require_display: bool = False
    ) -> None:
        if fps is not None and not (np.isfinite(fps) and fps >= 0):
            raise UsageError(f"fps must be a number >= 0, got {fps}")
        self._pg = require_pygame()
        if not _has_display():
            if require_display:
                raise UsageError(
                    "no display to open a window on (DISPLAY and WAYLAND_DISPLAY are unset): "
                    "write a video file instead (--video out.mp4), or set "
                    "SDL_VIDEODRIVER=dummy for a headless window"
                )
            os.environ["SDL_VIDEODRIVER"] = "dummy"
        self.title = title
        self.fps = fps or None
        self._screen = None
        self._last = 0.0
        self.frames = 0

    @property
    def is_open(self) -> bool:
        """Whether the window is open (after the first frame, before :meth:`close`)."""
        return self._screen is not None

    def show(self, frame: np.ndarray) -> None:
        """Draws one ``(H, W, 3)`` uint8 RGB frame, waiting to keep to ``fps``.

        Raises:
            UsageError: Not an ``(H, W, 3)`` uint8 array, or SDL cannot open a window.
        """
        pg = self._pg
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise UsageError(f"frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        height, width = frame.shape[:2]
        if self._screen is None or self._screen.get_size() != (width, height):
            try:
                if not pg.display.get_init():
                    pg.display.init()
                self._screen = pg.display.set_mode((width, height))
            except pg.error as err:
                raise UsageError(f"cannot open a window: {err}") from None
            pg.display.set_caption(self.title)
        # pygame surfaces are indexed (x, y): hand it the frame transposed.
        pg.surfarray.blit_array(self._screen, np.ascontiguousarray(frame.transpose(1, 0, 2)))
        pg.display.flip()
        self.frames += 1
        if self.fps:
            wait = self._last + 1.0 / self.fps - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        self._last = time.perf_counter()

    def capture(self) -> np.ndarray:
        """The window's pixels now, ``(H, W, 3)`` uint8 RGB (what a screenshot shows).

        Raises:
            UsageError: The window is not open.
        """
        if self._screen is None:
            raise UsageError("the window is not open: show() a frame first")
        return np.ascontiguousarray(self._pg.surfarray.array3d(self._screen).transpose(1, 0, 2))

    def poll(self) -> ViewerInput:
        """Reads the keyboard and window events since the last call (keeps the window
        responsive; call it at least once per frame)."""
        pg = self._pg
        result = ViewerInput()
        if self._screen is None:
            return result
        for event in pg.event.get():
            if event.type == pg.QUIT:
                result.quit = True
            elif event.type == pg.KEYDOWN:
                if event.key in (pg.K_q, pg.K_ESCAPE):
                    result.quit = True
                elif event.key == pg.K_SPACE:
                    result.toggle_pause = not result.toggle_pause
                elif event.key in (pg.K_RIGHT, pg.K_n):
                    result.steps += 1
        return result

    def close(self) -> None:
        """Closes the window (a viewer that never showed a frame has none)."""
        if self._screen is not None:
            self._pg.display.quit()
            self._screen = None
