"""Files mmrl writes get the permissions the user's umask gives (issue 16), not mkstemp's 0600."""

from __future__ import annotations

import os
import stat

import pytest

from mmrl._umask import current_umask, share_like_umask
from mmrl.checkpoint import atomic_save_model, atomic_write_bytes, write_checkpoint


class _Model:
    """What the atomic writers need of an SB3 model: ``save(path)``."""

    def save(self, path):
        with open(path, "wb") as fh:
            fh.write(b"zip")


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing_it(umask):
    assert current_umask() == umask
    assert current_umask() == umask


def test_atomic_writes_and_checkpoints_follow_the_umask(umask, tmp_path):
    atomic_write_bytes(tmp_path / "metrics.json", b"{}")
    atomic_save_model(_Model(), tmp_path / "model.zip")
    checkpoint = write_checkpoint(tmp_path / "checkpoints", 64, _Model(), {"a": 1})
    for path in (tmp_path / "metrics.json", tmp_path / "model.zip",
                 tmp_path / "checkpoints" / "latest", checkpoint / "model.zip",
                 checkpoint / "state.pkl"):  # fmt: skip
        assert _mode(path) == 0o666 & ~umask, path
    assert _mode(checkpoint) == 0o777 & ~umask
    # What plain open() gives, for comparison: the same mode.
    with open(tmp_path / "plain", "w"):
        pass
    assert _mode(tmp_path / "plain") == _mode(tmp_path / "metrics.json")


def test_share_like_umask_on_a_folder_and_a_descriptor(umask, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir(mode=0o700)
    share_like_umask(folder)
    assert _mode(folder) == 0o777 & ~umask
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        share_like_umask(path, fd)
    finally:
        os.close(fd)
    assert _mode(path) == 0o666 & ~umask


def test_every_file_of_a_run_is_readable_by_the_group(toy_run):
    """A real run (written under the session's umask): nothing is left at mkstemp's 0600."""
    mask = current_umask()
    for path in toy_run.rglob("*"):
        expected = (0o777 if path.is_dir() else 0o666) & ~mask
        assert _mode(path) == expected, path
