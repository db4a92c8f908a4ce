"""The worker side of :class:`~mmrl.envs.worker_pool.WorkerPool`: one process, one block of copies.

A worker owns a :class:`~mmrl.envs.base.BatchedSimulator` over a contiguous block
``[start, stop)`` of the pool's copies. It writes that block's observations straight into
the pool's shared observation buffers (one per key, ``(num_envs, ...)``), and the last
observations of the copies that finished into the shared terminal buffers (same shapes, row
``i`` for copy ``i``), and answers every request with one pipe message, so a pool step costs
one message each way per worker, not per copy, and no image goes through a pipe. A step is
:func:`~mmrl.envs.block.step_block`, as in the one-process envs (step, observe, info
snapshot, auto-reset of finished copies), so a copy's trajectory does not depend on the
process it runs in.

This module imports numpy and the simulator only: the spawned worker never loads torch or
Stable-Baselines3, which keeps its start-up short and its memory small.
"""

from __future__ import annotations

import dataclasses
import signal
from typing import Any

import numpy as np

from mmrl.envs.base import BatchedSimulator
from mmrl.envs.block import StepReply, step_block
from mmrl.errors import portable_error

__all__ = ["SharedBuffer", "run_worker"]


@dataclasses.dataclass
class SharedBuffer:
    """One observation key's ``(num_envs, *shape)`` array in shared memory.

    Attributes:
        raw: A ``multiprocessing`` ``RawArray`` of bytes (inherited by spawned workers; its
            memory is an unlinked file, so no name can outlive a killed process).
        shape: ``(num_envs, *shape)`` of the whole pool.
        dtype: The key's dtype (``uint8`` camera, ``float32`` lidar/state, ``int64`` text).
    """

    raw: Any
    shape: tuple[int, ...]
    dtype: np.dtype

    def array(self) -> np.ndarray:
        """A numpy view of the whole buffer (no copy)."""
        return np.frombuffer(self.raw, dtype=self.dtype).reshape(self.shape)


class _Worker:
    """The requests one worker serves; each method's return value is the reply payload."""

    def __init__(
        self,
        sim: BatchedSimulator,
        views: dict[str, np.ndarray],
        terminal_views: dict[str, np.ndarray],
        time_limit: int | None,
    ) -> None:
        self.sim = sim
        self.views = views  # this block's rows of the shared buffers
        self.terminal_views = terminal_views  # this block's rows of the terminal buffers
        self.time_limit = time_limit

    def reset(self, request: tuple[list[int | None], np.ndarray | None]) -> dict[str, Any]:
        """Seeds (``None``: keeps a generator) and resets the block's copies ``idx`` (all
        when ``None``), publishes their observations; replies with the reset info contents
        of every copy of the block."""
        seeds, idx = request
        self.sim.seed(seeds)
        self.sim.reset_envs(idx)
        if idx is None:
            self._publish(self.sim.observe())
        elif len(idx):
            for key, value in self.sim.observe(idx).items():
                self.views[key][idx] = value
        return self.sim.reset_info_arrays()

    def _publish(self, obs: dict[str, np.ndarray]) -> None:
        for key, view in self.views.items():
            view[...] = obs[key]

    def step(self, actions: np.ndarray) -> StepReply:
        # The same sequence as every other stepper, so every generator draws the same numbers.
        obs, reply = step_block(self.sim, actions, self.time_limit)
        self._publish(obs)
        # The finished copies' last observations go through shared memory too: under a
        # policy that ends many episodes (random actions on Driving) they were most of a
        # pickled reply's bytes (~250 KB per 128 copies), paid by the worker and the parent.
        for key, value in reply.terminal_obs.items():
            self.terminal_views[key][reply.done_idx] = value
        reply.terminal_obs = {}
        return reply

    def get_state(self, _: Any) -> BatchedSimulator:
        return self.sim  # pickled by the reply: a snapshot

    def set_state(self, sim: BatchedSimulator) -> None:
        self.sim = sim

    def render(self, _: Any) -> list[np.ndarray]:
        return self.sim.render_frames()

    def expert(self, _: Any) -> np.ndarray:
        return self.sim.expert_action()

    def getattr(self, name: str) -> Any:
        return getattr(self.sim, name)

    def setattr(self, name_value: tuple[str, Any]) -> None:
        setattr(self.sim, *name_value)

    def call(self, request: tuple[str, tuple, dict]) -> Any:
        name, args, kwargs = request
        return getattr(self.sim, name)(*args, **kwargs)


def run_worker(
    conn: Any,
    simulator_cls: type[BatchedSimulator],
    kwargs: dict[str, Any],
    start: int,
    stop: int,
    buffers: dict[str, SharedBuffer],
    terminal_buffers: dict[str, SharedBuffer],
    time_limit: int | None = None,
) -> None:
    """Main function of a worker process: builds its simulator, then serves requests.

    Protocol: the worker sends ``("ready", None)`` (or ``("error", exc)``) once built, then
    answers every ``(command, argument)`` it receives with ``("ok", payload)`` or
    ``("error", exception)``; ``("close", None)`` ends it. A closed pipe (the parent is gone)
    ends it too, so a worker never outlives its parent's end of the pipe.

    Args:
        conn: This worker's end of its ``multiprocessing`` pipe.
        simulator_cls: The simulator class (pickled by reference).
        kwargs: Simulator keyword arguments.
        start: First copy of this block in the pool.
        stop: One past the last copy of this block.
        buffers: The pool's shared observation buffers by key.
        terminal_buffers: The pool's shared buffers of the finished copies' last
            observations by key (a step's reply then holds no ``terminal_obs``).
        time_limit: Steps after which every step truncates, terminated or not (the
            Gymnasium vector env's ``max_episode_steps``); ``None``: the simulator's own.
    """
    # Ctrl-C reaches the whole process group; the parent owns the shutdown (it stops the
    # workers in order), so a worker must not die half-way through a reply on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sim = simulator_cls(stop - start, **kwargs)
        views = {key: buf.array()[start:stop] for key, buf in buffers.items()}
        terminal_views = {key: buf.array()[start:stop] for key, buf in terminal_buffers.items()}
        worker = _Worker(sim, views, terminal_views, time_limit)
        conn.send(("ready", None))
    except Exception as err:
        conn.send(("error", portable_error(err, "the worker process")))
        return
    handlers = {
        "reset": worker.reset,
        "step": worker.step,
        "get_state": worker.get_state,
        "set_state": worker.set_state,
        "render": worker.render,
        "expert": worker.expert,
        "getattr": worker.getattr,
        "setattr": worker.setattr,
        "call": worker.call,
    }
    while True:
        try:
            command, argument = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if command == "close":
            conn.send(("ok", None))
            return
        try:
            reply = ("ok", handlers[command](argument))
        except Exception as err:
            reply = ("error", portable_error(err, "the worker process"))
        try:
            conn.send(reply)  # pickles first, so a failure here writes nothing
        except OSError:
            return  # the parent is gone
        except Exception as err:  # a payload that cannot be pickled
            conn.send(("error", portable_error(err, "the worker process")))
