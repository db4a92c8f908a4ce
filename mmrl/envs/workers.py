"""SB3 ``VecEnv`` whose copies are stepped by ``K`` worker processes, one block each.

:class:`~mmrl.envs.vec_env.BatchedVecEnv` steps every copy in one process, so one core feeds
the learner however many the machine has. :class:`WorkerVecEnv` splits the ``n`` copies into
``K`` contiguous blocks; worker ``w`` runs a :class:`~mmrl.envs.base.BatchedSimulator` over
its block (the batched array step is kept, unlike SB3's ``SubprocVecEnv`` with one process
and one pickled observation per copy) and writes the observations into shared memory. A step
is one pipe message to each worker and one reply (rewards, dones, infos, the few finished
copies' terminal observations); the images never go through a pipe.

Results are those of ``BatchedVecEnv`` with the same seeds, value for value: copy ``i`` is
seeded ``s + i`` whichever worker holds it, and the worker runs the same step and auto-reset
sequence (see :mod:`mmrl.envs.worker_process`).

Processes start with ``spawn``: the parent has usually imported torch, whose OpenMP and
intra-op thread pools do not survive ``fork`` (a forked child can deadlock on a lock held by
a thread that was not copied), and a spawned worker imports numpy and the simulator only.

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

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from mmrl.envs.base import BatchedSimulator, check_actions, infos_from_arrays
from mmrl.envs.config import check_seed
from mmrl.envs.worker_process import SharedBuffer, StepReply, concat_info_arrays, run_worker
from mmrl.errors import ConfigError, WorkerError

__all__ = ["WorkerVecEnv", "check_n_workers"]


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


class WorkerVecEnv(VecEnv):
    """``num_envs`` copies of a simulator stepped by ``n_workers`` processes.

    Build it through :func:`mmrl.make_vec_env` with ``n_workers=K``. Observations are the
    batched single-copy ``Dict``: ``camera (n, S, S, 3)`` uint8, ``lidar (n, B)`` float32,
    ``text (n, L)`` int64, ``state (n, D)`` float32, each a fresh array per step. Rewards are
    ``(n,)`` float32, dones ``(n,)`` bool; infos, ``reset_infos``, ``step_info_arrays`` and
    the auto-reset (``terminal_observation``, ``TimeLimit.truncated``) are exactly
    :class:`~mmrl.envs.vec_env.BatchedVecEnv`'s.

    ``get_attr`` and ``env_method`` reach the simulator of the worker holding each requested
    copy (``env_method`` runs on every worker, as ``BatchedVecEnv`` runs it on its one
    simulator for all copies); an attribute that is the same for every copy (a name list,
    ``max_episode_steps``) reads as in ``BatchedVecEnv``, a per-copy array reads as the
    holding worker's block of it. ``set_attr`` applies to all copies only.

    Args:
        simulator_cls: The :class:`~mmrl.envs.base.BatchedSimulator` subclass to run.
        num_envs: Copies in all (>= ``n_workers``).
        n_workers: Worker processes; worker ``w`` holds a contiguous block of copies, the
            first ``num_envs % n_workers`` blocks one copy larger.
        kwargs: Simulator keyword arguments (checked here, in this process, first).
        render_mode: ``None`` or ``"rgb_array"``.
        timeout: Seconds a worker may take to answer one request (start-up included) before
            the pool is stopped and :class:`~mmrl.errors.WorkerError` raised.

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
        render_mode: str | None = None,
        timeout: float = 300.0,
    ) -> None:
        self._procs: list[Any] = []
        self._conns: list[Any] = []
        self._closed = True
        n_workers = check_n_workers(n_workers, num_envs)
        kwargs = dict(kwargs or {})
        # One copy here: bad kwargs fail in this process with the simulator's own message,
        # and the spaces are known before any worker starts.
        template = simulator_cls(1, **kwargs)
        self.env_id = template.env_id
        self.max_episode_steps = template.max_episode_steps
        self.render_mode = render_mode
        self.timeout = float(timeout)
        super().__init__(num_envs, template.observation_space, template.action_space)
        sizes = [num_envs // n_workers + (w < num_envs % n_workers) for w in range(n_workers)]
        stops = np.cumsum(sizes)
        self.blocks: list[tuple[int, int]] = [
            (int(stop - size), int(stop)) for size, stop in zip(sizes, stops)
        ]
        self._stops = stops
        self._obs: dict[str, np.ndarray] | None = None
        self._waiting = False
        self.step_info_arrays: dict[str, Any] = {}

        ctx = mp.get_context("spawn")
        buffers = {
            key: SharedBuffer(
                ctx.RawArray("B", int(np.prod((num_envs, *space.shape))) * space.dtype.itemsize),
                (num_envs, *space.shape),
                space.dtype,
            )
            for key, space in self.observation_space.spaces.items()
        }
        self._views = {key: buf.array() for key, buf in buffers.items()}
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._conns)
        self._closed = False
        try:
            for w, (start, stop) in enumerate(self.blocks):
                parent_end, child_end = ctx.Pipe()
                proc = ctx.Process(
                    target=run_worker,
                    args=(child_end, simulator_cls, kwargs, start, stop, buffers),
                    name=f"mmrl-worker-{w}",
                    daemon=True,  # multiprocessing's exit handler stops what close() missed
                )
                proc.start()
                child_end.close()  # the worker's end lives in the worker only: EOF on death
                self._procs.append(proc)
                self._conns.append(parent_end)
            self._gather(range(n_workers), "start", expect="ready")
        except BaseException:  # Ctrl-C, a worker that failed to start, an unpicklable kwarg
            self._abort()
            raise

    # ------------------------------------------------------------------ pool plumbing
    @property
    def n_workers(self) -> int:
        """Number of worker processes."""
        return len(self.blocks)

    @property
    def worker_pids(self) -> list[int | None]:
        """Process id of each worker (for monitoring and tests)."""
        return [proc.pid for proc in self._procs]

    def _worker_of(self, index: int) -> int:
        return int(np.searchsorted(self._stops, index, side="right"))

    def _check_open(self) -> None:
        if self._closed:
            raise WorkerError(f"{type(self).__name__} is closed; build a new environment")

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        """Ctrl-C while talking to the workers stops them all: the pipes may hold half a
        conversation, so the pool cannot be used afterwards anyway."""
        try:
            yield
        except KeyboardInterrupt:
            self._abort()
            raise

    def _abort(self) -> None:
        """Stops every worker at once (after a failure or Ctrl-C)."""
        self._closed = True
        self._obs = None
        if self._finalizer.detach() is not None:
            _shutdown(self._procs, self._conns, grace=0.2)

    def _fail(self, w: int, what: str, code: int | None) -> WorkerError:
        start, stop = self.blocks[w]
        self._abort()
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

    def _request(
        self, command: str, arguments: dict[int, Any] | None = None, workers: Sequence[int] = ()
    ) -> dict[int, Any]:
        """Sends ``command`` to ``workers`` (default all), then gathers their replies."""
        self._check_open()
        self._finish_step()
        targets = list(workers) or list(range(self.n_workers))
        with self._guarded():
            for w in targets:
                self._send(w, command, None if arguments is None else arguments[w])
            return self._gather(targets, command)

    def _finish_step(self) -> None:
        """Collects the replies of a step sent by ``step_async`` and never waited for."""
        if self._waiting:
            self._waiting = False
            with self._guarded():
                self._gather(range(self.n_workers), "step")

    def _observations(self) -> dict[str, np.ndarray]:
        # Copies out of shared memory: the next step overwrites the buffers, and callers
        # (rollout buffers, VecMonitor, user code) may keep the arrays they were given.
        return {key: view.copy() for key, view in self._views.items()}

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> VecEnvObs:
        for seed in self._seeds:
            check_seed("seed", seed)
        seeds = {w: self._seeds[start:stop] for w, (start, stop) in enumerate(self.blocks)}
        replies = self._request("reset", seeds)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [info for w in range(self.n_workers) for info in replies[w]]
        self._obs = self._observations()
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        self._check_open()
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        self._finish_step()
        actions = check_actions(actions, self.action_space, self.num_envs, self.env_id)
        with self._guarded():
            for w, (start, stop) in enumerate(self.blocks):
                self._send(w, "step", actions[start:stop])
        self._waiting = True

    def step_wait(self) -> VecEnvStepReturn:
        self._check_open()
        if not self._waiting:
            raise RuntimeError("call step_async() before step_wait()")
        self._waiting = False
        with self._guarded():
            replies: dict[int, StepReply] = self._gather(range(self.n_workers), "step")
        parts = [replies[w] for w in range(self.n_workers)]
        reward = np.concatenate([part.reward for part in parts])
        truncated = np.concatenate([part.truncated for part in parts])
        dones = np.concatenate([part.terminated for part in parts]) | truncated
        # Batched info contents, kept for consumers that want arrays (the dataset recorder).
        self.step_info_arrays = concat_info_arrays([part.info_arrays for part in parts])
        infos = infos_from_arrays(self.step_info_arrays)
        for (start, _), part in zip(self.blocks, parts):
            for j, local in enumerate(part.done_idx):
                i = start + int(local)
                infos[i]["terminal_observation"] = {
                    key: value[j].copy() for key, value in part.terminal_obs.items()
                }
                infos[i]["TimeLimit.truncated"] = bool(truncated[i])
                self.reset_infos[i] = part.reset_infos[j]
        self._obs = self._observations()
        return self._obs, reward, dones, infos

    def close(self) -> None:
        """Stops the workers (idempotent; also run when the env is garbage-collected)."""
        self._closed = True
        self._obs = None
        self._waiting = False
        self._finalizer()

    def get_images(self) -> Sequence[np.ndarray | None]:
        replies = self._request("render")
        return [frame for w in range(self.n_workers) for frame in replies[w]]

    def expert_action(self) -> np.ndarray:
        """Batched actions of the scripted expert for the current states."""
        replies = self._request("expert")
        return np.concatenate([replies[w] for w in range(self.n_workers)])

    # ------------------------------------------------------------------ checkpoints
    def get_state(self) -> dict[str, Any]:
        """Picklable state of every copy: each worker's simulator (block order), the last
        observations and the reset infos, for a run checkpoint that resumes exactly."""
        replies = self._request("get_state")
        return {
            "sims": [replies[w] for w in range(self.n_workers)],
            "obs": self._obs,
            "reset_infos": list(self.reset_infos),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores :meth:`get_state` into a pool with the same blocks.

        Raises:
            ConfigError: The state was taken from a pool with other blocks of copies.
        """
        sizes = [stop - start for start, stop in self.blocks]
        if [sim.num_envs for sim in state["sims"]] != sizes:
            raise ConfigError(
                f"the saved state holds blocks of {[s.num_envs for s in state['sims']]} "
                f"copies, this pool {sizes}",
                field="n_workers",
            )
        self._request("set_state", dict(enumerate(state["sims"])))
        self._obs, self.reset_infos = state["obs"], list(state["reset_infos"])

    # ------------------------------------------------------------------ attribute plumbing
    def _targets(self, indices: VecEnvIndices) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        targets = self._targets(indices)
        if attr_name in ("render_mode",):
            return [getattr(self, attr_name) for _ in targets]
        owners = [self._worker_of(i) for i in targets]
        names = {w: attr_name for w in set(owners)}
        replies = self._request("getattr", names, workers=sorted(names))
        return [replies[w] for w in owners]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if len(self._targets(indices)) != self.num_envs:
            raise ValueError(
                "WorkerVecEnv copies share one configuration: set_attr applies to all copies only"
            )
        self._request("setattr", dict.fromkeys(range(self.n_workers), (attr_name, value)))

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        targets = self._targets(indices)
        request = (method_name, method_args, method_kwargs)
        replies = self._request("call", dict.fromkeys(range(self.n_workers), request))
        return [replies[self._worker_of(i)] for i in targets]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [False for _ in self._targets(indices)]
