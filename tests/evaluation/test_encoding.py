"""Browser-playable video files: the codec a real decoder reports, frame counts, fallbacks."""

import numpy as np
import pytest

from mmrl.config import ConfigError
from mmrl.evaluation import encoding
from mmrl.evaluation.encoding import VideoFileWriter, check_video_path, decode_video


def _frames(n, height=37, width=50):
    """Frames with a bright square moving right, odd sizes on purpose."""
    out = []
    for i in range(n):
        frame = np.zeros((height, width, 3), dtype=np.uint8)
        frame[10:20, 2 + 3 * i : 12 + 3 * i] = (250, 40, 40)
        out.append(frame)
    return out


@pytest.mark.parametrize(("suffix", "codec"), [(".mp4", "h264"), (".webm", "vp9"), (".gif", "gif")])
def test_written_file_decodes_with_the_browser_codec(tmp_path, suffix, codec):
    path = tmp_path / f"clip{suffix}"
    with VideoFileWriter(path, fps=10) as writer:
        for frame in _frames(9):
            writer.write(frame)
    assert writer.path == path and writer.codec == codec and writer.frames == 9
    found, frames = decode_video(path)
    assert found == codec and len(frames) == 9
    assert frames[0].shape == (38, 50, 3)  # padded to even sizes for yuv420p
    # The content survives the lossy round trip: the square is where it was drawn.
    red = frames[4][:, :, 0].astype(int) - frames[4][:, :, 2].astype(int)
    assert red[15, 20] > 100 and red[30, 40] < 50


def test_mp4_is_yuv420p_with_faststart(tmp_path):
    import av

    path = tmp_path / "clip.mp4"
    with VideoFileWriter(path) as writer:
        for frame in _frames(3):
            writer.write(frame)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # playable while downloading


def test_mp4_falls_back_to_webm_without_an_h264_encoder(tmp_path, monkeypatch):
    real = encoding.encoder_available
    monkeypatch.setattr(
        encoding, "encoder_available", lambda name: "264" not in name and real(name)
    )
    with pytest.warns(UserWarning, match="VP9"):
        writer = VideoFileWriter(tmp_path / "clip.mp4")
    with writer:
        for frame in _frames(4):
            writer.write(frame)
    assert writer.path == tmp_path / "clip.webm"
    assert not (tmp_path / "clip.mp4").exists()
    codec, frames = decode_video(writer.path)
    assert codec == "vp9" and len(frames) == 4


def test_bad_paths_and_frames_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\.mp4 \(H\.264\), \.webm \(VP9\) or \.gif"):
        check_video_path(tmp_path / "x.avi")
    with pytest.raises(ConfigError, match="does not exist"):
        check_video_path(tmp_path / "missing" / "x.mp4")
    with VideoFileWriter(tmp_path / "y.mp4") as writer:
        with pytest.raises(ConfigError, match=r"\(H, W, 3\) uint8"):
            writer.write(np.zeros((8, 8), dtype=np.uint8))
        writer.write(_frames(1)[0])
        with pytest.raises(ConfigError, match="differs from the first"):
            writer.write(np.zeros((64, 64, 3), dtype=np.uint8))
    with pytest.raises(ConfigError, match="not a readable video"):
        (tmp_path / "junk.mp4").write_bytes(b"not a video")
        decode_video(tmp_path / "junk.mp4")
