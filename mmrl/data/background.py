"""Dataset writes on a background thread, so that ``mmrl collect`` keeps stepping meanwhile.

Minari's HDF5 write of a chunk of episodes used to stop the rollout until it finished (issue
20: "the Minari write overlaps stepping instead of following it"). :class:`BackgroundWriter`
hands each chunk to one writer thread and returns at once; chunks are written in the order
given (one thread, first in first out), so the dataset is the one a sequential write makes.
A thread rather than a process: the episodes are already in this process's memory (a
process would pickle every image once more), and the rollout mostly waits on numpy or on
the worker processes' pipes, which release the GIL that h5py's writes need.
"""

from __future__ import annotations

import collections
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

__all__ = ["BackgroundWriter"]


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
