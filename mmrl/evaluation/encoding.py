"""Video files every browser plays: H.264 MP4, VP9 WebM or GIF, through PyAV.

OpenCV's ``mp4v`` (MPEG-4 Part 2) plays in desktop players only: Chrome, Firefox, VS Code,
Jupyter, GitHub and TensorBoard refuse it (issue 16). PyAV's wheels ship FFmpeg with
``libx264`` and ``libvpx``, so :class:`VideoFileWriter` encodes what the file name asks for:

========  ================  =========================================================
suffix    codec             notes
========  ================  =========================================================
``.mp4``  H.264 (libx264)   ``yuv420p``, ``+faststart``; the default and what browsers
                            expect. Without an H.264 encoder in the FFmpeg build, the
                            writer falls back to VP9 WebM next to it (``x.webm``).
``.webm`` VP9 (libvpx-vp9)  ``yuv420p``
``.gif``  GIF               256 colours per frame; large, but plays in every Markdown
                            viewer (model cards)
========  ================  =========================================================

``yuv420p`` halves the chroma resolution, so frames must have even sizes: the writer pads
odd sizes with one row/column of the background colour.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from mmrl.errors import ConfigError

__all__ = [
    "VIDEO_SUFFIXES",
    "VideoFileWriter",
    "check_video_path",
    "decode_video",
    "encoder_available",
]

#: suffix -> (encoders to try, in order; pixel format; codec name a decoder reports)
_FORMATS: dict[str, tuple[tuple[str, ...], str, str]] = {
    ".mp4": (("libx264", "libopenh264", "h264"), "yuv420p", "h264"),
    ".webm": (("libvpx-vp9", "libvpx"), "yuv420p", "vp9"),
    ".gif": (("gif",), "rgb8", "gif"),
}
VIDEO_SUFFIXES: tuple[str, ...] = tuple(_FORMATS)


def encoder_available(name: str) -> bool:
    """Whether PyAV's FFmpeg build can encode with ``name`` (e.g. ``"libx264"``)."""
    import av

    try:
        av.codec.Codec(name, "w")
    except ValueError:  # av's UnknownCodecError
        return False
    return True


def check_video_path(path: str | Path, option: str = "--video") -> Path:
    """Validates an output video path before any work is done.

    Raises:
        ConfigError: Unknown suffix or missing folder (named as ``option``).
    """
    path = Path(path)
    if path.suffix.lower() not in _FORMATS:
        raise ConfigError(
            f"{option} {path}: use a .mp4 (H.264), .webm (VP9) or .gif file name, "
            f"got {path.suffix or 'no suffix'!r}"
        )
    if not path.parent.is_dir():
        raise ConfigError(f"{option} {path}: folder {path.parent} does not exist")
    return path


class VideoFileWriter:
    """Writes RGB frames to a browser-playable video file, one frame at a time.

    Use as a context manager; the file is complete when the ``with`` block ends. Every frame
    must have the size of the first (after padding to even sizes).

    Args:
        path: Output file; its suffix picks the format (see the module table).
        fps: Frames per second (>= 1).
        background: RGB colour of the padding added to odd frame sizes.

    Attributes:
        path: The file actually written (``.webm`` when an ``.mp4`` had to fall back).
        codec: The codec name a decoder reports for it (``h264``, ``vp9`` or ``gif``).
        frames: Frames written so far.
    """

    def __init__(
        self, path: str | Path, fps: int = 15, background: tuple[int, int, int] = (0, 0, 0)
    ) -> None:
        if fps < 1:
            raise ConfigError(f"fps must be >= 1, got {fps}")
        self.path = check_video_path(path)
        self.fps = int(fps)
        self.background = background
        self.frames = 0
        suffix = self.path.suffix.lower()
        encoders, self._pix_fmt, self.codec = _FORMATS[suffix]
        self._encoder = next((e for e in encoders if encoder_available(e)), None)
        if self._encoder is None and suffix == ".mp4":
            # An FFmpeg built without an H.264 encoder (licensing): VP9 WebM plays in the
            # same browsers, so write that rather than an mp4v file nothing can show.
            webm = self.path.with_suffix(".webm")
            warnings.warn(
                f"no H.264 encoder in this FFmpeg build; writing VP9 {webm} instead",
                stacklevel=2,
            )
            self.path = webm
            encoders, self._pix_fmt, self.codec = _FORMATS[".webm"]
            self._encoder = next((e for e in encoders if encoder_available(e)), None)
        if self._encoder is None:
            raise ConfigError(f"--video {self.path}: this FFmpeg build has no {self.codec} encoder")
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None  # (height, width) after padding

    def __enter__(self) -> VideoFileWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self, height: int, width: int) -> None:
        import av

        options = {"movflags": "+faststart"} if self.path.suffix.lower() == ".mp4" else {}
        self._container = av.open(str(self.path), mode="w", options=options)
        stream = self._container.add_stream(self._encoder, rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = width, height, self._pix_fmt
        if self._encoder == "libx264":
            stream.options = {"crf": "23", "preset": "veryfast"}
        self._stream = stream
        self._size = (height, width)

    def write(self, frame: np.ndarray) -> None:
        """Appends one frame.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB; odd ``H``/``W`` are padded by one.

        Raises:
            ConfigError: Not an ``(H, W, 3)`` uint8 array, or a size other than the first
                frame's.
        """
        import av

        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ConfigError(
                f"video frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}"
            )
        height, width = frame.shape[0] + frame.shape[0] % 2, frame.shape[1] + frame.shape[1] % 2
        if self._size is None:
            self._open(height, width)
        elif (height, width) != self._size:
            raise ConfigError(
                f"video frame {frame.shape[:2]} differs from the first frame's {self._size}"
            )
        if (height, width) != frame.shape[:2]:
            canvas = np.empty((height, width, 3), dtype=np.uint8)
            canvas[:] = self.background
            canvas[: frame.shape[0], : frame.shape[1]] = frame
            frame = canvas
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flushes the encoder and closes the file (a writer that got no frame writes none)."""
        if self._container is None:
            return
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = None


def decode_video(path: str | Path) -> tuple[str, list[np.ndarray]]:
    """Decodes a video file with FFmpeg (what a browser would do, give or take).

    Returns:
        The codec name (``"h264"``, ``"vp9"``, ``"gif"`` ...) and every frame as an
        ``(H, W, 3)`` uint8 RGB array.

    Raises:
        ConfigError: The file does not exist or FFmpeg cannot read it.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such video file")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except (av.FFmpegError, IndexError) as err:
        raise ConfigError(f"{path}: not a readable video ({err})") from None
    return codec, frames
