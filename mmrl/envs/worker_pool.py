"""``K`` worker processes stepping the copies of one simulator, one contiguous block each.

One process steps every copy of :class:`~mmrl.envs.vec_env.BatchedVecEnv` and
:class:`~mmrl.envs.gym_vector.MultimodalVectorEnv`, so one core feeds the learner however
many the machine has. :class:`WorkerPool` splits the ``n`` copies into ``K`` contiguous
blocks; worker ``w`` runs a :class:`~mmrl.envs.base.BatchedSimulator` over its block (the
batched array step is kept, unlike SB3's ``SubprocVecEnv`` with one process and one pickled
observation per copy) and writes the observations into shared memory. A step is one pipe
message to each worker and one reply (a :class:`~mmrl.envs.block.StepReply`: rewards,
dones, infos, the few finished copies' terminal observations); the images never go through
a pipe. The pool is API-neutral: the SB3 :class:`~mmrl.envs.workers.WorkerVecEnv` and the
Gymnasium ``MultimodalVectorEnv`` (``n_workers=K``) are front ends over it, and both get the
results of their one-process twin, value for value: copy ``i`` is seeded ``s + i`` whichever
worker holds it, and each worker steps with :func:`~mmrl.envs.block.step_block`.

Processes start with ``spawn``: the parent has usually imported torch, whose OpenMP and
intra-op thread pools do not survive ``fork`` (a forked child can deadlock on a lock held by
a thread that was not copied), and a spawned worker imports numpy and the simulator only.
This module imports neither Stable-Baselines3 nor torch.

Failure handling: every wait watches the worker's process sentinel and a deadline, so a
worker that dies (or hangs) raises :class:`~mmrl.errors.WorkerError` naming it and its exit
code instead of blocking; ``close()``, Ctrl-C in the parent and any such error stop every
worker (close, then terminate, then kill), and a worker whose parent is gone exits when its
pipe closes. Workers ignore SIGINT so that Ctrl-C is handled once, by the parent.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import time
import weakref
from collections.abc import Iterator, Sequence
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from mmrl.envs.base import BatchedSimulator, check_actions
from mmrl.envs.block import StepReply, concat_info_arrays, merge_replies
from mmrl.envs.config import check_seed
from mmrl.envs.worker_process import SharedBuffer, run_worker
from mmrl.errors import ConfigError, WorkerError

__all__ = ["WorkerPool", "check_n_workers"]


def check_n_workers(n_workers: Any, num_envs: int) -> int:
    """``n_workers`` as an int, or a :class:`~mmrl.errors.ConfigError` naming it.

    Raises:
        ConfigError: Not an integer, below 1, or more workers than copies.
    """
    if isinstance(n_workers, bool) or not isinstance(n_workers, int | np.integer):
        raise ConfigError(f"must be an integer, got {n_workers!r}", field="n_workers")
    if not 1 <= n_workers <= num_envs:
        raise ConfigError(
            f"must be between 1 and the number of copies ({num_envs}), got {n_workers}",
            field="n_workers",
        )
    return int(n_workers)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "is still running but stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} (exit code {code})"
    return f"exited with code {code}"


def _shutdown(procs: list[Any], conns: list[Any], grace: float = 2.0) -> None:
    """Stops every worker: a close request, then terminate, then kill; closes the pipes.

    Module-level (not a method) so that ``weakref.finalize`` can run it for a pool that is
    garbage-collected without ``close()``.
    """
    for conn, proc in zip(conns, procs):
        if proc.is_alive():
            with contextlib.suppress(OSError, ValueError):
                conn.send(("close", None))
    deadline = time.monotonic() + grace
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
            proc.join(1.0)
        if proc.is_alive():
            proc.kill()
            proc.join()
    for conn in conns:
        conn.close()


class WorkerPool:
    """``num_envs`` copies of a simulator stepped by ``n_workers`` processes.

    Observations live in shared memory, one ``(num_envs, ...)`` buffer per key;
    :meth:`observations` copies them out. The finished copies' last observations do too
    (:meth:`step_wait` copies out their rows). Everything else a step reports comes back as
    one :class:`~mmrl.envs.block.StepReply` for all copies.

    Args:
        simulator_cls: The :class:`~mmrl.envs.base.BatchedSimulator` subclass to run.
        num_envs: Copies in all (>= ``n_workers``).
        n_workers: Worker processes; worker ``w`` holds a contiguous block of copies, the
            first ``num_envs % n_workers`` blocks one copy larger.
        kwargs: Simulator keyword arguments (checked here, in this process, first).
        timeout: Seconds a worker may take to answer one request (start-up included) before
            the pool is stopped and :class:`~mmrl.errors.WorkerError` raised.
        time_limit: Every step also truncates at this many steps, terminated or not (see
            :func:`~mmrl.envs.block.step_block`); ``None``: the simulator's own limit only.

    Attributes:
        env_id, observation_space, action_space, max_episode_steps: One copy's, as the
            simulator has them.
        blocks: ``(start, stop)`` copies of each worker.

    Raises:
        ConfigError: Bad ``n_workers``; the simulator's own errors for bad ``kwargs``.
        WorkerError: A worker failed to start.
    """

    def __init__(
        self,
        simulator_cls: type[BatchedSimulator],
        num_envs: int,
        n_workers: int,
        kwargs: dict[str, Any] | None = None,
        timeout: float = 300.0,
        time_limit: int | None = None,
    ) -> None:
        self._procs: list[Any] = []
        self._conns: list[Any] = []
        self.closed = True
        n_workers = check_n_workers(n_workers, num_envs)
        kwargs = dict(kwargs or {})
        # One copy here: bad kwargs fail in this process with the simulator's own message,
        # and the spaces are known before any worker starts.
        template = simulator_cls(1, **kwargs)
        self.env_id = template.env_id
        self.max_episode_steps = template.max_episode_steps
        self.observation_space = template.observation_space
        self.action_space = template.action_space
        self.num_envs = num_envs
        self.timeout = float(timeout)
        sizes = [num_envs // n_workers + (w < num_envs % n_workers) for w in range(n_workers)]
        stops = np.cumsum(sizes)
        self.blocks: list[tuple[int, int]] = [
            (int(stop - size), int(stop)) for size, stop in zip(sizes, stops)
        ]
        self._stops = stops
        self._waiting = False

        ctx = mp.get_context("spawn")

        def shared() -> dict[str, SharedBuffer]:
            return {
                key: SharedBuffer(
                    ctx.RawArray("B", int(np.prod(space.shape)) * num_envs * space.dtype.itemsize),
                    (num_envs, *space.shape),
                    space.dtype,
                )
                for key, space in self.observation_space.spaces.items()
            }

        buffers, terminal_buffers = shared(), shared()
        self._views = {key: buf.array() for key, buf in buffers.items()}
        self._terminal_views = {key: buf.array() for key, buf in terminal_buffers.items()}
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._conns)
        self.closed = False
        try:
            for w, (start, stop) in enumerate(self.blocks):
                parent_end, child_end = ctx.Pipe()
                proc = ctx.Process(
                    target=run_worker,
                    args=(
                        child_end,
                        simulator_cls,
                        kwargs,
                        start,
                        stop,
                        buffers,
                        terminal_buffers,
                        time_limit,
                    ),
                    name=f"mmrl-worker-{w}",
                    daemon=True,  # multiprocessing's exit handler stops what close() missed
                )
                proc.start()
                child_end.close()  # the worker's end lives in the worker only: EOF on death
                self._procs.append(proc)
                self._conns.append(parent_end)
            self._gather(range(n_workers), "start", expect="ready")
        except BaseException:  # Ctrl-C, a worker that failed to start, an unpicklable kwarg
            self.abort()
            raise

    # ------------------------------------------------------------------ plumbing
    @property
    def n_workers(self) -> int:
        """Number of worker processes."""
        return len(self.blocks)

    @property
    def worker_pids(self) -> list[int | None]:
        """Process id of each worker (for monitoring and tests)."""
        return [proc.pid for proc in self._procs]

    def worker_of(self, index: int) -> int:
        """The worker holding copy ``index``."""
        return int(np.searchsorted(self._stops, index, side="right"))

    def check_open(self) -> None:
        """Raises :class:`~mmrl.errors.WorkerError` once the pool is closed or failed."""
        if self.closed:
            raise WorkerError("the worker pool is closed; build a new environment")

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        """Ctrl-C while talking to the workers stops them all: the pipes may hold half a
        conversation, so the pool cannot be used afterwards anyway."""
        try:
            yield
        except KeyboardInterrupt:
            self.abort()
            raise

    def abort(self) -> None:
        """Stops every worker at once (after a failure or Ctrl-C)."""
        self.closed = True
        self._waiting = False
        if self._finalizer.detach() is not None:
            _shutdown(self._procs, self._conns, grace=0.2)

    def close(self) -> None:
        """Stops the workers (idempotent; also run when the pool is garbage-collected)."""
        self.closed = True
        self._waiting = False
        self._finalizer()

    def _fail(self, w: int, what: str, code: int | None) -> WorkerError:
        start, stop = self.blocks[w]
        self.abort()
        hint = (
            " (its error is printed above; a script that builds workers must do so under "
            "`if __name__ == '__main__':`, as spawned processes import it)"
            if what == "start"
            else ""
        )
        return WorkerError(
            f"worker {w} of {self.n_workers} (pid {self._procs[w].pid}, copies "
            f"{start}..{stop - 1}) {_exit_text(code)} during {what}; all workers were "
            f"stopped{hint}"
        )

    def _send(self, w: int, command: str, argument: Any = None) -> None:
        try:
            self._conns[w].send((command, argument))
        except OSError:  # its end of the pipe is closed: the worker is gone
            proc = self._procs[w]
            proc.join(1.0)
            raise self._fail(w, command, proc.exitcode) from None

    def _recv(self, w: int, what: str) -> tuple[str, Any]:
        conn, proc = self._conns[w], self._procs[w]
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail(w, f"{what} (no answer within {self.timeout:g} s)", None)
            ready = wait([conn, proc.sentinel], timeout=remaining)
            if conn in ready:
                try:
                    return conn.recv()
                except (EOFError, OSError):
                    break
            elif proc.sentinel in ready:
                break
        proc.join(1.0)
        raise self._fail(w, what, proc.exitcode)

    def _gather(self, workers: Sequence[int], what: str, expect: str = "ok") -> dict[int, Any]:
        """Every listed worker's reply payload; the first worker error is raised after all
        replies are in, so the pipes stay in step."""
        replies: dict[int, Any] = {}
        error: BaseException | None = None
        for w in workers:
            status, payload = self._recv(w, what)
            if status == expect:
                replies[w] = payload
            elif error is None:
                error = payload
        if error is not None:
            raise error
        return replies

    def request(
        self, command: str, arguments: dict[int, Any] | None = None, workers: Sequence[int] = ()
    ) -> dict[int, Any]:
        """Sends ``command`` (a :func:`~mmrl.envs.worker_process.run_worker` request) to
        ``workers`` (default all) with ``arguments[w]`` each, then gathers their replies.

        Raises:
            WorkerError: The pool is closed, or a worker died or stopped answering.
        """
        self.check_open()
        self._finish_step()
        targets = list(workers) or list(range(self.n_workers))
        with self._guarded():
            for w in targets:
                self._send(w, command, None if arguments is None else arguments[w])
            return self._gather(targets, command)

    def _finish_step(self) -> None:
        """Collects the replies of a step sent by :meth:`step_async` and never waited for."""
        if self._waiting:
            self._waiting = False
            with self._guarded():
                self._gather(range(self.n_workers), "step")

    # ------------------------------------------------------------------ stepping
    def observations(self) -> dict[str, np.ndarray]:
        """Every copy's current observation, key to ``(num_envs, ...)`` (new arrays).

        Copies out of shared memory: the next step overwrites the buffers, and callers
        (rollout buffers, user code) may keep the arrays they were given.
        """
        return {key: view.copy() for key, view in self._views.items()}

    def reset(self, seeds: Sequence[int | None], idx: np.ndarray | None = None) -> dict[str, Any]:
        """Re-seeds copy ``i`` with ``seeds[i]`` (``None``: keeps its generator) and starts
        new episodes in copies ``idx`` (all when ``None``; the others keep theirs).

        Returns:
            The reset info contents of **every** copy
            (:meth:`~mmrl.envs.base.BatchedSimulator.reset_info_arrays`).
        """
        for seed in seeds:
            check_seed("seed", seed)
        requests = {}
        for w, (start, stop) in enumerate(self.blocks):
            local = None if idx is None else idx[(idx >= start) & (idx < stop)] - start
            requests[w] = (list(seeds[start:stop]), local)
        replies = self.request("reset", requests)
        return concat_info_arrays([replies[w] for w in range(self.n_workers)])

    def step_async(self, actions: Any) -> None:
        """Validates a batch of ``num_envs`` actions and sends each worker its block's."""
        self.check_open()
        self._finish_step()
        actions = check_actions(actions, self.action_space, self.num_envs, self.env_id)
        with self._guarded():
            for w, (start, stop) in enumerate(self.blocks):
                self._send(w, "step", actions[start:stop])
        self._waiting = True

    def step_wait(self) -> StepReply:
        """The step's reply for all copies (``done_idx`` in pool copy indices)."""
        self.check_open()
        if not self._waiting:
            raise RuntimeError("call step_async() before step_wait()")
        self._waiting = False
        with self._guarded():
            replies: dict[int, StepReply] = self._gather(range(self.n_workers), "step")
        parts = [replies[w] for w in range(self.n_workers)]
        reply = merge_replies(parts, [start for start, _ in self.blocks])
        # The workers left the finished copies' last observations in the terminal buffers.
        if reply.done_idx.size:
            reply.terminal_obs = {
                key: view[reply.done_idx] for key, view in self._terminal_views.items()
            }
        return reply

    def render_frames(self) -> list[np.ndarray]:
        """Every copy's frame (``render_frames`` of each worker's simulator, in order)."""
        replies = self.request("render")
        return [frame for w in range(self.n_workers) for frame in replies[w]]

    def expert_action(self) -> np.ndarray:
        """Batched actions of the scripted expert for the current states."""
        replies = self.request("expert")
        return np.concatenate([replies[w] for w in range(self.n_workers)])

    def labels(self) -> dict[str, np.ndarray]:
        """Every copy's privileged labels (each worker's simulator's, in block order)."""
        request = dict.fromkeys(range(self.n_workers), ("labels", (), {}))
        replies = self.request("call", request)
        parts = [replies[w] for w in range(self.n_workers)]
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    # ------------------------------------------------------------------ checkpoints
    def get_sims(self) -> list[BatchedSimulator]:
        """Each worker's simulator (pickled snapshots, block order)."""
        replies = self.request("get_state")
        return [replies[w] for w in range(self.n_workers)]

    def set_sims(self, sims: Sequence[BatchedSimulator]) -> None:
        """Restores :meth:`get_sims` into a pool with the same blocks.

        Raises:
            ConfigError: The simulators hold other blocks of copies than this pool.
        """
        sizes = [stop - start for start, stop in self.blocks]
        if [sim.num_envs for sim in sims] != sizes:
            raise ConfigError(
                f"the saved state holds blocks of {[s.num_envs for s in sims]} "
                f"copies, this pool {sizes}",
                field="n_workers",
            )
        self.request("set_state", dict(enumerate(sims)))
