"""The writer process behind ``mmrl collect --writes process`` (:mod:`mmrl.data.background`):
errors, a dead child, a parent that is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from gymnasium import spaces

from mmrl.data.background import WriterProcess
from mmrl.errors import DatasetError

OBS = spaces.Dict({"state": spaces.Box(-1, 1, (2,), np.float32)})
ACT = spaces.Discrete(3)


def _writer(**kwargs) -> WriterProcess:
    return WriterProcess(dataset_id="toy/bg-v0", env_spec=None, obs_space=OBS, action_space=ACT,
                         **kwargs)  # fmt: skip


def _episodes(n: int, length: int = 5) -> list:
    from minari.data_collector import EpisodeBuffer

    rng = np.random.default_rng(0)
    return [
        EpisodeBuffer(
            seed=None,
            observations={"state": rng.uniform(-1, 1, (length + 1, 2)).astype(np.float32)},
            actions=rng.integers(0, 3, length),
            rewards=rng.normal(size=length).astype(np.float32),
            terminations=np.eye(1, length, length - 1, dtype=bool)[0],
            truncations=np.zeros(length, bool),
            infos={"is_success": np.zeros(length + 1, bool)},
        )
        for _ in range(n)
    ]


def _temporaries(root) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".mmrl-"))


def test_chunks_are_written_in_a_child_and_committed(datasets_path):
    import minari

    writer = _writer()
    for _ in range(3):
        writer.write(_episodes(4))
    writer.finish()
    assert writer.tmp_root is not None and writer.tmp_root.parent == datasets_path
    path = writer.commit({"mmrl": {"policy": "test"}}, force=False)
    assert path == datasets_path / "toy" / "bg-v0"
    dataset = minari.load_dataset("toy/bg-v0")
    assert dataset.total_episodes == 12 and dataset.total_steps == 60
    assert writer.seconds > 0 and writer.cpu_seconds > 0
    assert _temporaries(datasets_path) == []
    assert not writer._process.is_alive()


def test_a_failed_write_is_raised_in_the_parent_and_discard_leaves_nothing(datasets_path):
    writer = _writer()
    writer.write(_episodes(2))
    writer.write([object()])  # not an episode: the child's write fails
    with pytest.raises(AttributeError) as info:
        writer.finish()
    assert "in the dataset writer process" in "".join(info.value.__notes__)
    writer.discard()
    assert list(datasets_path.iterdir()) == []


def test_a_child_that_dies_is_an_error_not_a_hang(datasets_path):
    writer = _writer()
    os.kill(writer._process.pid, signal.SIGKILL)
    writer._process.join(10)
    start = time.perf_counter()
    with pytest.raises(
        DatasetError, match=r"process writing dataset 'toy/bg-v0' died \(exit code -9\)"
    ):
        writer.write(_episodes(1))
        writer.commit({}, force=False)
    assert time.perf_counter() - start < 10
    writer.discard()
    assert list(datasets_path.iterdir()) == []


def test_an_error_building_the_writer_is_raised_by_the_first_wait(datasets_path):
    writer = _writer(hdf5_writer="bogus")
    with pytest.raises(ValueError, match="hdf5_writer must be one of") as info:
        writer.finish()
    assert "in the dataset writer process" in "".join(info.value.__notes__)
    writer.discard()
    assert list(datasets_path.iterdir()) == []


def test_the_child_removes_its_folder_when_the_parent_is_gone(datasets_path):
    """A parent killed without cleaning up (SIGKILL, os._exit): the child notices within a
    few seconds, removes its temporary folder and exits, so nothing is orphaned."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path[:0] = {sys.path!r}
        import numpy as np
        from gymnasium import spaces
        from mmrl.data.background import WriterProcess
        w = WriterProcess(dataset_id="toy/orphan-v0", env_spec=None,
                          obs_space=spaces.Dict({{"state": spaces.Box(-1, 1, (2,), np.float32)}}),
                          action_space=spaces.Discrete(3))
        w.finish()  # the child made its folder
        print(w._process.pid, flush=True)
        os._exit(0)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "MINARI_DATASETS_PATH": str(datasets_path)},
                         timeout=120, check=True)  # fmt: skip
    child = int(out.stdout.split()[0])
    deadline = time.time() + 30
    while time.time() < deadline and (_temporaries(datasets_path) or _alive(child)):
        time.sleep(0.2)
    assert _temporaries(datasets_path) == []
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_the_writer_process_imports_no_torch():
    """The child imports ``mmrl.data``: with torch among its imports its start took ~1.2 s,
    longer than the rollout of a 512-episode Driving collection (BENCHMARKS.md)."""
    code = "import sys, mmrl.data.background, mmrl.data.writer; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _read_back(dataset_id: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    import minari

    return [(ep.observations["state"], ep.actions, ep.rewards)
            for ep in minari.load_dataset(dataset_id).iterate_episodes()]  # fmt: skip


def test_arrays_go_through_shared_memory_and_every_segment_is_unlinked(datasets_path, monkeypatch):
    from mmrl.data import background

    monkeypatch.setattr(background, "SHARED_FROM_BYTES", 0)  # toy chunks are tiny
    names = []
    original = background._shared_chunk

    def spy(episodes):
        argument, segment = original(episodes)
        names.append(argument[1])
        return argument, segment

    monkeypatch.setattr(background, "_shared_chunk", spy)
    chunks = [_episodes(3, length) for length in (4, 7, 5)]
    writer = _writer()
    for chunk in chunks:
        writer.write(chunk)
    writer.commit({}, force=False)
    assert len(names) == 3 and None not in names
    assert not [n for n in names if os.path.exists(f"/dev/shm/{n.lstrip('/')}")]
    expected = [(ep.observations["state"], ep.actions, ep.rewards) for c in chunks for ep in c]
    for got, want in zip(_read_back("toy/bg-v0"), expected, strict=True):
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


def test_without_shared_memory_chunks_go_through_the_pipe(datasets_path, monkeypatch):
    from mmrl.data import background

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(background, "SHARED_FROM_BYTES", 0)
    monkeypatch.setattr(background, "SharedMemory", refused)
    writer = _writer()
    writer.write(_episodes(2))
    writer.commit({}, force=False)
    assert len(_read_back("toy/bg-v0")) == 2
