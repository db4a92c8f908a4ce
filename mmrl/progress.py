"""Progress as plain log lines, for runs whose output is not a terminal (nohup, Slurm, CI).

SB3's and tqdm's progress bars redraw one terminal line with carriage returns; written to a
file they are noise, and without them a redirected ``mmrl train`` printed nothing until it
finished (issue 16). :class:`ProgressLines` is the one implementation of the lines that
``mmrl train``, ``pretrain``, ``collect`` and ``bench`` print instead, at most one every
``interval_s`` seconds::

    [train] 12,288/200,000 steps (6%)  1,234 steps/s  ETA 2m32s  success 0.42  return 3.10
    [pretrain] epoch 3/30  1,200/12,000 batches (10%)  5,120 samples/s  ETA ≤1m10s  loss ...
    [collect] 40/100 episodes (40%)  6,180 steps  1,234 steps/s  ETA 10s  success 0.95 ...
    [bench] 3/12 cells (25%)  4 running  ETA 12m05s  last driving-concat-s0: ...

:class:`ProgressLinesCallback` drives it from SB3's training loop (success and return over
SB3's last 100 finished training episodes) and adds one line after each periodic held-out
evaluation, read back from the run's ``evaluations.jsonl``::

    [train] eval at 16,384 steps: train success 0.45 return 3.20 | test success 0.30 ...

Lines are flushed as they are written, so ``tail -f`` shows them at once.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from mmrl.runs import parse_evaluations

__all__ = ["ProgressLines", "ProgressLinesCallback", "format_duration", "format_evaluation"]


def format_duration(seconds: float) -> str:
    """``"45s"``, ``"2m32s"``, ``"3h05m"`` (``"?"`` for an unknown or infinite time)."""
    if not np.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_evaluation(record: dict[str, Any]) -> str:
    """``"train success 0.45 return 3.20 | test success 0.30 return 2.10"`` of one
    ``evaluations.jsonl`` record."""
    parts = [
        f"{split} success {s['success_rate']:.2f} return {s['mean_return']:.2f}"
        for split, s in record.items()
        if split != "step" and isinstance(s, dict)
    ]
    return " | ".join(parts)


class ProgressLines:
    """Progress of a job of ``total`` units, printed as plain lines.

    The caller composes a line from :meth:`count`, :meth:`rate` and :meth:`eta` (and its own
    numbers) and prints it with :meth:`say`; :meth:`due` tells a loop when the next
    interval has passed, and :meth:`ticking` prints from a background thread for a job
    whose loop blocks (a bench waiting for its cells). Rates and the ETA count from
    :meth:`start` (a resumed job's earlier units do not inflate them).

    Args:
        total: Units of the whole job (for the fraction and the ETA).
        unit: Their name, plural (``"steps"``, ``"episodes"``, ``"cells"``).
        interval_s: Seconds between progress lines (> 0).
        prefix: Start of every line (``"[collect]"``).
        stream: Where to print (default ``sys.stdout``, looked up when printing, so
            pytest's capture and redirections made later are honoured).
        bound: ``total`` is an upper bound (early stopping may end the job sooner): the
            ETA reads ``≤2m32s``.
    """

    def __init__(
        self,
        total: int,
        unit: str,
        interval_s: float = 30.0,
        prefix: str = "",
        stream: TextIO | None = None,
        bound: bool = False,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.total = int(total)
        self.unit = unit
        self.interval_s = float(interval_s)
        self.prefix = prefix
        self.stream = stream
        self.bound = bound
        self.lines = 0
        self._lock = threading.Lock()  # lines from a ticker thread never interleave
        self._t0 = self._last = time.monotonic()
        self._done0 = 0

    def start(self, done: int = 0) -> None:
        """Starts the clock; ``done`` units were finished before (a resumed job)."""
        self._t0 = self._last = time.monotonic()
        self._done0 = int(done)

    @property
    def elapsed(self) -> float:
        """Seconds since :meth:`start`."""
        return time.monotonic() - self._t0

    def say(self, text: str, bare: bool = False) -> None:
        """Prints one line (with the prefix, unless ``bare``) and flushes it."""
        line = f"{self.prefix} {text}" if self.prefix and not bare else text
        with self._lock:
            stream = self.stream or sys.stdout
            stream.write(line + "\n")  # one write: a line is never split by another thread's
            stream.flush()
            self.lines += 1

    def due(self) -> bool:
        """Whether ``interval_s`` passed since the last due line (and restarts the wait)."""
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return False
        self._last = now
        return True

    def count(self, done: int) -> str:
        """``"12,288/200,000 steps (6%)"``."""
        fraction = done / self.total if self.total else 1.0
        return f"{done:,}/{self.total:,} {self.unit} ({fraction:.0%})"

    def rate(self, amount: float, unit: str | None = None) -> str:
        """``"1,234 steps/s"``: ``amount`` done since :meth:`start`, per second, in ``unit``
        (default the job's)."""
        elapsed = self.elapsed
        return f"{amount / elapsed if elapsed > 0 else 0.0:,.0f} {unit or self.unit}/s"

    def eta(self, done: int) -> str:
        """``"ETA 2m32s"`` from the units done since :meth:`start` and the time they took."""
        elapsed = self.elapsed
        rate = (done - self._done0) / elapsed if elapsed > 0 else 0.0
        left = max(self.total - done, 0)
        seconds = 0.0 if left == 0 else (left / rate if rate > 0 else float("inf"))
        return f"ETA {'≤' if self.bound and left else ''}{format_duration(seconds)}"

    @contextlib.contextmanager
    def ticking(self, line: Callable[[], str]) -> Iterator[None]:
        """Prints ``line()`` every ``interval_s`` seconds from a daemon thread while the
        ``with`` block runs (for loops that block: the first line comes one interval in)."""
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(self.interval_s):
                self.say(line())

        thread = threading.Thread(target=tick, name="mmrl-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


class ProgressLinesCallback(BaseCallback):
    """Prints a progress line every ``interval_s`` seconds and one line per evaluation.

    Place it after the evaluation callback in a ``CallbackList``, so that on an evaluation
    step the evaluation's record is already written.

    Args:
        total_steps: The run's total environment steps (for the fraction and ETA).
        interval_s: Seconds between progress lines (> 0).
        eval_freq: Environment steps between periodic evaluations (0: none).
        evaluations_path: The run's ``evaluations.jsonl`` (``None``: no evaluation lines).
        prefix: Start of every line.
        stream: Where to print (default ``sys.stdout``, looked up when printing).
    """

    def __init__(
        self,
        total_steps: int,
        interval_s: float = 30.0,
        eval_freq: int = 0,
        evaluations_path: Path | None = None,
        prefix: str = "[train]",
        stream: TextIO | None = None,
    ) -> None:
        super().__init__(verbose=0)
        self.progress = ProgressLines(total_steps, "steps", interval_s, prefix, stream)
        self.total_steps = int(total_steps)
        self.eval_freq = int(eval_freq)
        self.evaluations_path = evaluations_path
        self._steps0 = 0
        self._next_eval = 0
        self._evaluations_seen = 0

    @property
    def lines(self) -> int:
        """Lines printed so far."""
        return self.progress.lines

    def _on_training_start(self) -> None:
        self._steps0 = self.num_timesteps
        self.progress.start(self.num_timesteps)
        if self.eval_freq > 0:
            self._next_eval = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq
        self._evaluations_seen = len(self._records())
        self.progress.say(f"training from {self.num_timesteps:,} to {self.total_steps:,} steps")

    def _records(self) -> list[dict[str, Any]]:
        path = self.evaluations_path
        if path is None or not path.is_file():
            return []
        return parse_evaluations(path.read_text(), str(path))

    def progress_line(self) -> str:
        """The current progress line (without the prefix)."""
        done = self.num_timesteps
        p = self.progress
        text = f"{p.count(done)}  {p.rate(done - self._steps0)}  {p.eta(done)}"
        episodes = list(getattr(self.model, "ep_info_buffer", None) or [])
        successes = list(getattr(self.model, "ep_success_buffer", None) or [])
        if successes:
            text += f"  success {np.mean(successes):.2f}"
        if episodes:
            text += f"  return {np.mean([e['r'] for e in episodes]):.2f}"
        if not episodes and not successes:
            text += "  (no finished episode yet)"
        return text

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.num_timesteps >= self._next_eval:
            self._next_eval += self.eval_freq
            records = self._records()
            for record in records[self._evaluations_seen :]:
                step = record["step"]
                self.progress.say(f"eval at {step:,} steps: {format_evaluation(record)}")
            self._evaluations_seen = len(records)
        if self.progress.due():
            self.progress.say(self.progress_line())
        return True

    def _on_training_end(self) -> None:
        self.progress.say(self.progress_line())
