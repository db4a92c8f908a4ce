"""Where cells run: in this process, in a local process pool, or as Ray tasks.

Every backend takes the same cell function ``fn(cell, spec, out) -> record`` and yields an
:class:`Outcome` per cell as soon as it finishes (not in submission order), so the driver
can write ``cell.json`` and update the progress display while the rest still run.
Exceptions inside a cell are caught where they happen and come back as a traceback
string: one broken cell never takes the grid down, and its error text survives the trip
across processes or machines (pickled exceptions lose their traceback).

The cell function travels with ``cloudpickle`` (a dependency of Stable-Baselines3, and what
Ray itself uses), so a function defined in a test or a notebook works in both the process
pool and Ray, not only importable top-level functions.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import logging
import multiprocessing
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from mmrl.bench.grid import BenchSpec, Cell
from mmrl.errors import MissingDependencyError, UsageError

log = logging.getLogger(__name__)

CellFn = Callable[[Cell, BenchSpec, str], dict[str, Any]]
BACKENDS = ("local", "ray", "inline")
RAY_INSTALL_HINT = 'pip install "mmrl[ray]"'


@dataclasses.dataclass
class Outcome:
    """The result of one cell.

    Attributes:
        cell: The cell.
        record: Its record when it succeeded.
        error: The traceback text when it failed.
    """

    cell: Cell
    record: dict[str, Any] | None = None
    error: str | None = None


def _guarded(fn: CellFn, cell: Cell, spec: BenchSpec, out: str) -> tuple[str, Any]:
    try:
        return "ok", fn(cell, spec, out)
    except Exception:
        return "error", traceback.format_exc()


def _invoke_pickled(payload: bytes, cell: Cell, spec: BenchSpec, out: str) -> tuple[str, Any]:
    """Worker-side entry point: unpickle the cell function, run it, never raise."""
    import cloudpickle

    try:
        fn = cloudpickle.loads(payload)
    except Exception:
        return "error", traceback.format_exc()
    return _guarded(fn, cell, spec, out)


def _outcome(cell: Cell, result: tuple[str, Any]) -> Outcome:
    status, value = result
    if status == "ok":
        return Outcome(cell, record=value)
    return Outcome(cell, error=str(value))


class Backend(abc.ABC):
    """Runs cells and yields their outcomes as they finish."""

    name = "backend"

    @abc.abstractmethod
    def run(
        self, cells: Sequence[Cell], fn: CellFn, spec: BenchSpec, out: Path
    ) -> Iterator[Outcome]:
        """Runs ``fn(cell, spec, str(out))`` for every cell.

        Args:
            cells: Cells to run.
            fn: The cell function (e.g. :func:`mmrl.bench.runner.run_cell`).
            spec: The benchmark, passed to every call.
            out: The bench folder.

        Yields:
            One :class:`Outcome` per cell, in completion order.
        """

    def describe(self) -> str:
        """One line for the progress header."""
        return self.name

    def slots(self) -> int | None:
        """Cells that run at the same time (``None``: unknown, a Ray cluster schedules)."""
        return None


class InlineBackend(Backend):
    """Runs cells one after another in this process (debuggers and profilers work)."""

    name = "inline"

    def run(
        self, cells: Sequence[Cell], fn: CellFn, spec: BenchSpec, out: Path
    ) -> Iterator[Outcome]:
        for cell in cells:
            yield _outcome(cell, _guarded(fn, cell, spec, str(out)))

    def slots(self) -> int | None:
        return 1


class LocalBackend(Backend):
    """A pool of worker processes on this machine.

    Workers are started with ``spawn`` (a forked child of a process that already holds
    torch threads or CUDA state can deadlock) and each runs a single cell before it is
    replaced, so memory and global state (torch threads, registries) never leak between
    cells.

    Args:
        workers: Cells run at the same time.
    """

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise UsageError(f"--workers must be >= 1, got {workers}")
        self.workers = workers

    def describe(self) -> str:
        return f"local process pool, {self.workers} worker(s)"

    def slots(self) -> int | None:
        return self.workers

    def run(
        self, cells: Sequence[Cell], fn: CellFn, spec: BenchSpec, out: Path
    ) -> Iterator[Outcome]:
        if not cells:
            return
        import cloudpickle

        payload = cloudpickle.dumps(fn)
        options: dict[str, Any] = {}
        if sys.version_info >= (3, 11):  # a fresh process per cell (option new in 3.11)
            options["max_tasks_per_child"] = 1
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(cells)),
            mp_context=multiprocessing.get_context("spawn"),
            **options,
        )
        futures: dict[Future, Cell] = {}
        completed = False
        try:
            for cell in cells:
                futures[pool.submit(_invoke_pickled, payload, cell, spec, str(out))] = cell
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    cell = futures[future]
                    try:
                        yield _outcome(cell, future.result())
                    except BrokenProcessPool as err:
                        # A worker died without returning (killed, out of memory): every
                        # cell still in the pool is lost with it, but finished ones stay.
                        yield Outcome(cell, error=f"worker process died: {err}")
            completed = True
        finally:
            if not completed:
                # Ctrl-C, a time limit's SIGINT or the driver giving up: running cells may
                # need minutes, so stop their workers now and let the driver write its report
                # for the finished cells (waiting got the driver killed by `timeout`).
                # ProcessPoolExecutor has no public way to stop busy workers before 3.14.
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.terminate()
            pool.shutdown(wait=completed, cancel_futures=True)


def import_ray() -> Any:
    """Imports Ray or raises :class:`MissingDependencyError` naming the extra to install."""
    try:
        import ray
    except ImportError as err:
        raise MissingDependencyError(
            f"--backend ray needs Ray ({err}); install it with: {RAY_INSTALL_HINT}"
        ) from None
    return ray


class RayBackend(Backend):
    """Every cell is a Ray task with its own CPU/GPU reservation.

    Ray schedules tasks onto whichever node has the resources, so the same command scales
    from a laptop to a cluster. Records come back as task results and the driver writes
    them into its own ``--out``; run folders stay where each task ran (share the
    filesystem, e.g. NFS, to keep them together). Cluster nodes need mmrl installed.

    Args:
        workers: CPUs of a local Ray instance started here (ignored with ``address``).
        address: An existing cluster (``auto``, ``ray://host:10001`` or ``host:6379``);
            ``None`` starts a private local instance that shuts down afterwards.
        cpus_per_task: CPUs reserved per cell.
        gpus_per_task: GPUs (fractions allowed) reserved per cell.
    """

    name = "ray"

    def __init__(
        self,
        workers: int = 1,
        address: str | None = None,
        cpus_per_task: float = 1.0,
        gpus_per_task: float = 0.0,
    ) -> None:
        if workers < 1:
            raise UsageError(f"--workers must be >= 1, got {workers}")
        if cpus_per_task <= 0:
            raise UsageError(f"--cpus-per-task must be > 0, got {cpus_per_task}")
        if gpus_per_task < 0:
            raise UsageError(f"--gpus-per-task must be >= 0, got {gpus_per_task}")
        self.ray = import_ray()
        self.workers = workers
        self.address = address
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task

    def describe(self) -> str:
        where = f"cluster {self.address}" if self.address else f"local Ray, {self.workers} CPU(s)"
        return f"Ray tasks on {where} ({self.cpus_per_task:g} CPU, {self.gpus_per_task:g} GPU each)"

    def _init(self) -> bool:
        """Connects or starts Ray; returns whether this backend owns (must shut) it."""
        ray = self.ray
        if ray.is_initialized():
            return False
        if self.address:
            try:
                ray.init(address=self.address, logging_level=logging.WARNING)
            except ConnectionError as err:
                raise UsageError(f"--address {self.address}: cannot connect ({err})") from None
        else:
            ray.init(
                num_cpus=self.workers,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
        return True

    def _check_resources(self) -> None:
        """Refuses requests the cluster can never satisfy (Ray would wait forever)."""
        total = self.ray.cluster_resources()
        for what, need in (("CPU", self.cpus_per_task), ("GPU", self.gpus_per_task)):
            have = float(total.get(what, 0.0))
            if need > have:
                flag = f"--{what.lower()}s-per-task"
                raise UsageError(
                    f"{flag} {need:g}: the Ray cluster has only {have:g} {what}(s) in total"
                )

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """Ray connected (or started) with the requested resources checked; yields the
        ``ray`` module and shuts a local instance started here down on exit. ``mmrl tune
        --backend ray`` runs its trials inside one too."""
        owned = self._init()
        try:
            self._check_resources()
            yield self.ray
        finally:
            if owned:
                self.ray.shutdown()

    def run(
        self, cells: Sequence[Cell], fn: CellFn, spec: BenchSpec, out: Path
    ) -> Iterator[Outcome]:
        if not cells:
            return
        with self.session() as ray:
            task = ray.remote(
                num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_retries=0
            )(_guarded)
            fn_ref = ray.put(fn)
            spec_ref = ray.put(spec)
            refs = {task.remote(fn_ref, cell, spec_ref, str(out)): cell for cell in cells}
            pending = list(refs)
            try:
                while pending:
                    finished, pending = ray.wait(pending, num_returns=1)
                    for ref in finished:
                        cell = refs[ref]
                        try:
                            result = ray.get(ref)
                        except Exception as err:  # worker crash, node loss
                            yield Outcome(cell, error=f"Ray task failed: {err}")
                            continue
                        yield _outcome(cell, result)
            finally:
                for ref in pending:
                    ray.cancel(ref, force=True)


def make_backend(
    name: str,
    workers: int = 1,
    address: str | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float = 0.0,
) -> Backend:
    """A backend by name (``local``, ``ray`` or ``inline``).

    Raises:
        UsageError: Unknown name, bad worker or resource counts, or options that do not
            apply to the backend.
        MissingDependencyError: ``ray`` without Ray installed.
    """
    if name not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name != "ray" and address:
        raise UsageError("--address applies to --backend ray only")
    if name != "ray" and gpus_per_task:
        raise UsageError("--gpus-per-task applies to --backend ray only (use --device cuda)")
    if name == "ray":
        return RayBackend(workers, address, cpus_per_task, gpus_per_task)
    if name == "local":
        return LocalBackend(workers)
    return InlineBackend()
