"""Progress as plain log lines, for runs whose output is not a terminal (nohup, Slurm, CI).

SB3's progress bar redraws one terminal line with carriage returns; written to a file it is
noise, and without it a redirected ``mmrl train`` printed nothing until it finished (issue
16). :class:`ProgressLinesCallback` prints instead, every ``interval_s`` seconds::

    [train] 12,288/200,000 steps (6%)  1,234 steps/s  ETA 2m32s  success 0.42  return 3.10

(success and return over SB3's last 100 finished training episodes) and one line after each
periodic held-out evaluation, read back from the run's ``evaluations.jsonl``::

    [train] eval at 16,384 steps: train success 0.45 return 3.20 | test success 0.30 ...

Lines are flushed as they are written, so ``tail -f`` shows them at once.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from mmrl.runs import parse_evaluations

__all__ = ["ProgressLinesCallback", "format_duration", "format_evaluation"]


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
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.total_steps = int(total_steps)
        self.interval_s = float(interval_s)
        self.eval_freq = int(eval_freq)
        self.evaluations_path = evaluations_path
        self.prefix = prefix
        self.stream = stream
        self.lines = 0
        self._t0 = self._last = time.monotonic()
        self._steps0 = 0
        self._next_eval = 0
        self._evaluations_seen = 0

    def _print(self, text: str) -> None:
        print(f"{self.prefix} {text}", file=self.stream or sys.stdout, flush=True)
        self.lines += 1

    def _on_training_start(self) -> None:
        self._t0 = self._last = time.monotonic()
        self._steps0 = self.num_timesteps
        if self.eval_freq > 0:
            self._next_eval = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq
        self._evaluations_seen = len(self._records())
        self._print(f"training from {self.num_timesteps:,} to {self.total_steps:,} steps")

    def _records(self) -> list[dict[str, Any]]:
        path = self.evaluations_path
        if path is None or not path.is_file():
            return []
        return parse_evaluations(path.read_text(), str(path))

    def progress_line(self) -> str:
        """The current progress line (without the prefix)."""
        done = self.num_timesteps
        elapsed = time.monotonic() - self._t0
        rate = (done - self._steps0) / elapsed if elapsed > 0 else float("nan")
        left = max(self.total_steps - done, 0)
        eta = left / rate if rate > 0 else float("inf")
        fraction = done / self.total_steps if self.total_steps else 1.0
        text = (
            f"{done:,}/{self.total_steps:,} steps ({fraction:.0%})  {rate:,.0f} steps/s  "
            f"ETA {format_duration(eta)}"
        )
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
                self._print(f"eval at {record['step']:,} steps: {format_evaluation(record)}")
            self._evaluations_seen = len(records)
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self._print(self.progress_line())
        return True

    def _on_training_end(self) -> None:
        self._print(self.progress_line())
