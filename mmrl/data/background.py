"""Dataset writes that overlap the rollout, so that ``mmrl collect`` keeps stepping meanwhile.

Minari's HDF5 write of a chunk of episodes used to stop the rollout until it finished (issue
20: "the Minari write overlaps stepping instead of following it"). Two ways, each writing the
chunks in the order given, so the dataset is the one a sequential write makes:

- :class:`BackgroundWriter`: one writer thread in this process. No start-up cost and no
  copy of the episodes, but h5py holds the GIL while it writes, so the rollout waits for
  it whenever both want Python: on two busy cores it gained nothing (BENCHMARKS.md).
- :class:`WriterProcess`: the :class:`~mmrl.data.writer.AtomicDatasetWriter` lives in a
  child process and writes on another core. A chunk's arrays go through shared memory
  (pickle protocol 5's out-of-band buffers, copied once into a segment the child reads in
  place): through a pipe, 64 KiB at a time, moving ~100 MB of camera frames per chunk
  kept the child waiting longer than it wrote (measured: the process mode was then slower
  than writing inline). It costs a process start (~1 s, overlapping the rollout) and one
  copy of each chunk, and takes the write off the rollout's core.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing as mp
import os
import pickle
import queue
import shutil
import signal
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import wait
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any, Protocol

from mmrl.errors import DatasetError, portable_error

__all__ = ["WRITE_MODES", "BackgroundWriter", "WriterProcess"]

#: How ``mmrl collect`` writes its chunks of episodes (:func:`mmrl.collect.collect`'s
#: ``writes``): ``auto`` picks ``process`` for long collections, else ``inline``.
WRITE_MODES = ("auto", "process", "thread", "inline")


class ChunkWriter(Protocol):
    """What is written in the background (:class:`~mmrl.data.writer.AtomicDatasetWriter`)."""

    def write(self, episodes: list[Any]) -> None: ...


class BackgroundWriter:
    """Writes chunks of episodes with ``writer.write`` on one background thread.

    Args:
        writer: Whose ``write(episodes)`` runs on the thread (never two at once).
        max_pending: Chunks queued or being written before :meth:`write` waits for the
            oldest: bounds the memory held by episodes not yet on disk.

    Attributes:
        wait_seconds: Wall time callers spent blocked on the thread (in :meth:`write` when
            ``max_pending`` chunks were in flight, and in :meth:`finish`).
    """

    def __init__(self, writer: ChunkWriter, max_pending: int = 2) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.writer = writer
        self.max_pending = max_pending
        self.wait_seconds = 0.0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmrl-dataset-writer")
        self._futures: collections.deque[Future] = collections.deque()

    def write(self, episodes: list[Any]) -> None:
        """Queues ``episodes`` (they must not change afterwards) and returns.

        Raises:
            Exception: The error of an earlier chunk's write (e.g. ``DatasetError`` for a
                full disk), raised here, in the caller's thread, at the first call after it.
        """
        while self._futures and self._futures[0].done():
            self._futures.popleft().result()
        while len(self._futures) >= self.max_pending:
            self._wait_oldest()
        if episodes:
            self._futures.append(self._pool.submit(self.writer.write, episodes))

    def finish(self) -> None:
        """Waits until every queued chunk is written; raises the first write error."""
        while self._futures:
            self._wait_oldest()

    def close(self) -> None:
        """Drops the chunks not started and waits for the one being written (after an error
        or an interrupt, before the caller removes what was written)."""
        for future in self._futures:
            future.cancel()
        self._futures.clear()
        self._pool.shutdown(wait=True)

    def _wait_oldest(self) -> None:
        start = time.perf_counter()
        try:
            self._futures.popleft().result()
        finally:
            self.wait_seconds += time.perf_counter() - start


class WriterProcess:
    """An :class:`~mmrl.data.writer.AtomicDatasetWriter` in a child process.

    Has the writer's interface (:meth:`write`, :meth:`commit`, :meth:`discard`, ``seconds``,
    ``cpu_seconds``) and :class:`BackgroundWriter`'s (:meth:`finish`, :meth:`close`,
    ``wait_seconds``): :meth:`write` copies the chunk's arrays into shared memory, queues the
    rest (pickled by the queue's feeder thread) and returns; the child writes chunks one at a
    time, in order.

    The child starts with ``spawn`` (the parent has usually imported torch, whose threads do
    not survive ``fork``), ignores Ctrl-C (the parent discards on an interrupt), and exits,
    removing its temporary folder, when the parent process is gone. Every wait watches the
    child's sentinel, so a child that dies raises :class:`~mmrl.errors.DatasetError` instead
    of hanging.

    The constructor returns at once: an error building the writer in the child (e.g. a
    ``DatasetError`` for an unwritable datasets folder) is raised by the first call that
    waits for the child (:meth:`write` once ``max_pending`` are queued, :meth:`finish`,
    :meth:`commit`), as is :class:`~mmrl.errors.DatasetError` when the child died.

    Args:
        max_pending: Chunks queued or being written before :meth:`write` waits for the
            oldest: bounds the memory held by episodes not yet on disk.
        **writer_kwargs: ``AtomicDatasetWriter``'s arguments (picklable).
    """

    def __init__(self, max_pending: int = 2, **writer_kwargs: Any) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.dataset_id = writer_kwargs.get("dataset_id", "?")
        self.max_pending = max_pending
        self.seconds = self.cpu_seconds = self.wait_seconds = 0.0
        self.tmp_root: Path | None = None
        # One entry per request not yet answered, in order: the shared-memory segment
        # holding a write's arrays (unlinked once the child has written them), else None.
        self._inflight: collections.deque[SharedMemory | None] = collections.deque()
        self._closed = False
        ctx = mp.get_context("spawn")
        self._requests = ctx.Queue()
        self._replies, child_end = ctx.Pipe(duplex=False)
        self._cancel = ctx.Event()
        self._process = ctx.Process(
            target=_serve_writer,
            args=(writer_kwargs, os.environ.get("MINARI_DATASETS_PATH"), os.getpid(),
                  self._requests, child_end, self._cancel),
            name="mmrl-dataset-writer",
            daemon=True,
        )  # fmt: skip
        self._process.start()
        child_end.close()
        # The child's "ready" (or its error building the writer) is read with the first
        # replies, not awaited here: its start (~1 s) overlaps the rollout's.
        self._inflight.append(None)

    def write(self, episodes: list[Any]) -> None:
        """Queues ``episodes`` and returns (waits first while ``max_pending`` are in flight).

        Raises:
            Exception: The error of an earlier chunk's write (e.g. ``DatasetError`` for a
                full disk), raised here at the first call after it.
        """
        while self._inflight and self._replies.poll():
            self._reply()
        while len(self._inflight) >= self.max_pending:
            self._wait()
        if episodes:
            self._send("write", *_shared_chunk(episodes))

    def finish(self) -> None:
        """Waits until every queued chunk is written; raises the first write error."""
        while self._inflight:
            self._wait()

    def commit(self, extra_metadata: dict[str, Any], force: bool) -> Path:
        """Writes what is queued, then the metadata, and moves the dataset into place; ends
        the child. Returns the dataset's folder."""
        self.finish()
        self._send("commit", (extra_metadata, force))
        path = Path(self._wait())
        self.close()
        return path

    def discard(self) -> None:
        """Drops the chunks not written, ends the child and removes the temporary folder."""
        self.close()
        if self.tmp_root is not None:
            shutil.rmtree(self.tmp_root, ignore_errors=True)

    def close(self, timeout: float = 60.0) -> None:
        """Ends the child: the chunk being written finishes, queued ones are dropped. Safe to
        call twice; the temporary folder is left to :meth:`commit` or :meth:`discard`."""
        if self._closed:
            return
        self._closed = True
        self._cancel.set()
        # The temporary folder's name is the first reply: read it before the pipe closes,
        # so that discard() can remove the folder even when the child ends without it.
        with contextlib.suppress(Exception):
            while self.tmp_root is None and self._inflight:
                self._reply()
        if self._process.is_alive():
            with contextlib.suppress(OSError, ValueError):  # a queue already broken
                self._requests.put(("close", None))
            self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        # The queue's feeder thread may still hold chunks the child will never read.
        self._requests.cancel_join_thread()
        self._requests.close()
        self._replies.close()
        while self._inflight:
            _unlink(self._inflight.popleft())

    def _send(self, command: str, argument: Any, segment: SharedMemory | None = None) -> None:
        if self._closed:
            _unlink(segment)
            raise DatasetError(f"the writer of dataset {self.dataset_id!r} is closed")
        self._requests.put((command, argument))
        self._inflight.append(segment)

    def _wait(self) -> Any:
        start = time.perf_counter()
        try:
            return self._reply()
        finally:
            self.wait_seconds += time.perf_counter() - start

    def _died(self) -> DatasetError:
        self._process.join(5)
        return DatasetError(
            f"the process writing dataset {self.dataset_id!r} died (exit code "
            f"{self._process.exitcode}); nothing was committed"
        )

    def _reply(self) -> Any:
        """The child's next reply (blocks); raises its error, or one if it died."""
        while not self._replies.poll():
            wait([self._replies, self._process.sentinel], timeout=1.0)
            if not self._replies.poll() and not self._process.is_alive():
                raise self._died()
        try:
            status, payload, seconds, cpu_seconds = self._replies.recv()
        except (EOFError, OSError):  # the pipe closed: the child is gone
            raise self._died() from None
        _unlink(self._inflight.popleft() if self._inflight else None)
        self.seconds, self.cpu_seconds = seconds, cpu_seconds
        if status == "error":
            raise payload
        if status == "ready":
            self.tmp_root = Path(payload)
            return None
        return payload


def _serve_writer(
    writer_kwargs: dict[str, Any],
    root: str | None,
    parent_pid: int,
    requests: Any,
    replies: Any,
    cancel: Any,
) -> None:
    """Main function of :class:`WriterProcess`'s child: builds the writer, sends
    ``("ready", its temporary folder, 0, 0)`` (or the error), then serves ``("write",
    episodes)``, ``("commit", (metadata, force))`` and ``("close", None)``, replying
    ``(status, payload, seconds, cpu_seconds)`` to each write and commit."""
    from mmrl.data.writer import AtomicDatasetWriter

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns the shutdown
    if root is not None:  # as the parent's when it was spawned (it may have changed since)
        os.environ["MINARI_DATASETS_PATH"] = root
    try:
        writer = AtomicDatasetWriter(**writer_kwargs)
    except BaseException as err:
        replies.send(("error", portable_error(err, "the dataset writer process"), 0.0, 0.0))
        return
    replies.send(("ready", str(writer.tmp_root), 0.0, 0.0))
    import minari  # noqa: F401  (imported by the first write otherwise: ~0.5 s of it)

    failed = False
    while True:
        try:
            command, argument = requests.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:  # the parent is gone: leave nothing behind
                writer.discard()
                return
            continue
        if command == "close":
            return
        payload: Any = None
        try:
            if command == "write" and not (failed or cancel.is_set()):
                writer.write(_read_chunk(argument))
            elif command == "commit":
                payload = str(writer.commit(*argument))
        except BaseException as err:
            failed = True  # later chunks are not written: the parent discards
            reply = ("error", portable_error(err, "the dataset writer process"))
        else:
            reply = ("ok", payload)
        try:
            replies.send((*reply, writer.seconds, writer.cpu_seconds))
        except OSError:
            writer.discard()  # the parent is gone
            return


#: The smallest chunk whose arrays go through shared memory (smaller ones are pickled
#: through the queue: a segment per chunk costs two system calls and a file).
SHARED_FROM_BYTES = 1 << 20


def _shared_chunk(episodes: list[Any]) -> tuple[Any, SharedMemory | None]:
    """``episodes`` as a ``write`` request's argument, and the segment holding its arrays.

    The pickle (protocol 5) holds everything but the arrays' data. The argument is
    ``(pickle, segment name, [(offset, size), ...])`` with that data copied once into the
    segment; small chunks, and chunks that would not fit in ``/dev/shm`` (a container's is
    often 64 MB, and writing past it kills the process with SIGBUS), send the data through
    the queue instead: ``(pickle, None, [bytes, ...])``.
    """
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(episodes, protocol=5, buffer_callback=buffers.append)
    raws = [buffer.raw() for buffer in buffers]
    size = sum(raw.nbytes for raw in raws)
    segment = None
    if size >= SHARED_FROM_BYTES and _shm_has_room(2 * size):
        # No shared memory here (permissions, limits): the pipe still works.
        with contextlib.suppress(OSError):
            segment = SharedMemory(create=True, size=size)
    if segment is None:
        return (data, None, [bytes(raw) for raw in raws]), None
    offsets, position = [], 0
    for raw in raws:
        segment.buf[position : position + raw.nbytes] = raw
        offsets.append((position, raw.nbytes))
        position += raw.nbytes
    return (data, segment.name, offsets), segment


def _read_chunk(argument: tuple[bytes, str | None, Sequence[Any]]) -> list[Any]:
    """The episodes of a ``write`` request (in the child). Their arrays are copies: the
    segment is closed here, and the parent unlinks it when the write is answered."""
    data, name, offsets = argument
    if name is None:  # the arrays' data came with the request
        return pickle.loads(data, buffers=offsets)
    segment = SharedMemory(name=name)
    try:
        views = [segment.buf[offset : offset + size] for offset, size in offsets]
        episodes = pickle.loads(data, buffers=[bytes(view) for view in views])
        for view in views:
            view.release()
    finally:
        segment.close()
    return episodes


def _shm_has_room(size: int) -> bool:
    try:
        return shutil.disk_usage("/dev/shm").free >= size
    except OSError:  # no /dev/shm (not Linux): SharedMemory uses what the system has
        return True


def _unlink(segment: SharedMemory | None) -> None:
    if segment is None:
        return
    segment.close()
    with contextlib.suppress(FileNotFoundError):
        segment.unlink()
