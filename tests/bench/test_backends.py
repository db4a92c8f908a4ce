"""Backends with the synthetic cell function: process pool, inline, Ray errors."""

from __future__ import annotations

import sys

import pytest

from mmrl.bench import InlineBackend, LocalBackend, MissingDependencyError, make_backend, run_bench
from mmrl.bench.backends import RayBackend, import_ray
from mmrl.bench.grid import CELL_RECORD, cell_dir
from mmrl.errors import UsageError


def test_process_pool_runs_cells_in_parallel_workers(fake, cell_fn, tmp_path):
    spec = fake.make_spec(fusions=["concat"], seeds=[0, fake.FAIL_SEED])
    result = run_bench(spec, tmp_path, LocalBackend(workers=2), cell_fn, check_envs=False,
                       progress=False, report=False)  # fmt: skip
    assert [c.cell_id for c in result.finished] == ["driving-concat-s0"]
    assert [c.cell_id for c in result.failed] == ["driving-concat-s100"]
    for cell in result.failed:
        text = (cell_dir(tmp_path, cell) / "error.txt").read_text()
        assert f"boom in {cell.cell_id}" in text  # the worker's traceback came back
    for cell in result.finished:
        assert (cell_dir(tmp_path, cell) / CELL_RECORD).is_file()
        assert fake.calls(tmp_path, cell) == 1


def test_ctrl_c_stops_running_cells_and_reports_the_finished(fake, cell_fn, tmp_path):
    """Ctrl-C (or a time limit's SIGINT) must not wait for running cells: the driver writes
    its report for the finished ones at once (it used to wait, and `timeout` killed it)."""
    import os
    import signal
    import threading
    import time

    spec = fake.make_spec(fusions=["concat"], seeds=[0, fake.SLOW_SEED])
    fast = next(c for c in spec.cells() if c.seed == 0)

    def interrupt_when_fast_cell_is_recorded() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (cell_dir(tmp_path, fast) / CELL_RECORD).is_file():
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # a real signal: it interrupts the blocked wait

    # A shell starts background jobs with SIGINT ignored, and Python then keeps it ignored:
    # install Python's own handler so the signal raises KeyboardInterrupt however we run.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt_when_fast_cell_is_recorded, daemon=True).start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_bench(spec, tmp_path, LocalBackend(workers=2), cell_fn, check_envs=False,
                      progress=False, report=True)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - t0 < 60  # the slow cell sleeps 120 s
    summary = (tmp_path / "summary.md").read_text()
    assert "finished cells: 1" in summary


def test_inline_backend_yields_every_outcome(fake, cell_fn, tmp_path):
    spec = fake.make_spec(fusions=["mean"])
    outcomes = list(InlineBackend().run(spec.cells(), cell_fn, spec, tmp_path))
    assert [o.cell for o in outcomes] == spec.cells()
    assert outcomes[1].record["eval"]["train"]["success_rate"] == pytest.approx(0.5)


def test_make_backend_validates_options():
    assert isinstance(make_backend("local", workers=3), LocalBackend)
    assert isinstance(make_backend("inline"), InlineBackend)
    with pytest.raises(UsageError, match="--backend must be one of local, ray, inline"):
        make_backend("slurm")
    with pytest.raises(UsageError, match="--workers must be >= 1"):
        make_backend("local", workers=0)
    with pytest.raises(UsageError, match="--address applies to --backend ray only"):
        make_backend("local", address="auto")
    with pytest.raises(UsageError, match="--gpus-per-task applies"):
        make_backend("local", gpus_per_task=1)
    with pytest.raises(UsageError, match="--cpus-per-task must be > 0"):
        make_backend("ray", cpus_per_task=0)


def test_missing_ray_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install "mmrl\[ray\]"') as info:
        import_ray()
    assert isinstance(info.value, ImportError) and isinstance(info.value, UsageError)
    with pytest.raises(ImportError, match="mmrl"):
        RayBackend(workers=1)


def test_ray_refuses_resources_the_cluster_lacks():
    class FakeRay:
        @staticmethod
        def cluster_resources():
            return {"CPU": 2.0}

    backend = make_backend("ray", workers=2, gpus_per_task=1)
    backend.ray = FakeRay()
    with pytest.raises(UsageError, match="--gpus-per-task 1: the Ray cluster has only 0 GPU"):
        backend._check_resources()
    backend.gpus_per_task, backend.cpus_per_task = 0, 4
    with pytest.raises(UsageError, match=r"--cpus-per-task 4: .* only 2 CPU"):
        backend._check_resources()
