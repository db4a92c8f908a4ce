"""Cost of Driving's episode resets, and stepping with episodes ending, at many copies.

For each Driving id (default ``mmrl/Driving-v0`` and ``mmrl/Driving-v1``, all four sensors
at their defaults) it measures, with ``--n-envs`` copies (default 256):

- **reset**: ``sim.reset_envs()`` of every copy, repeated, in microseconds per copy (CPU
  time of this process, ``time.process_time``; the wall-clock figure follows in brackets);
- **step**: env-steps per second of the batched SB3 vec env (``mmrl.make_vec_env``, no
  monitor) under random actions, auto-resets included (random episodes are short, so resets
  weigh as much as they ever do), by CPU time with wall-clock in brackets, and the
  auto-resets per 1,000 env-steps.

CPU time is the figure to compare on a machine shared with other jobs; the load average is
printed before and after.

Usage::

    python scripts/bench_reset.py                       # 256 copies, v0 and v1
    python scripts/bench_reset.py --n-envs 64 --seconds 3 --envs mmrl/Driving-v1
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np

import mmrl
from mmrl.registration import entry_for


def _load(path: str) -> type:
    import importlib

    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def bench_reset(env_id: str, n_envs: int, seconds: float) -> tuple[float, float]:
    """Microseconds per copy of ``reset_envs()`` over all copies: (CPU, wall)."""
    entry = entry_for(env_id)
    sim = _load(entry.simulator)(n_envs, **entry.kwargs)
    sim.seed(list(range(n_envs)))
    sim.reset_envs()  # warm-up (caches, first-call costs)
    rounds = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        sim.reset_envs()
        rounds += 1
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - start
    return cpu / (rounds * n_envs) * 1e6, wall / (rounds * n_envs) * 1e6


def bench_step(env_id: str, n_envs: int, seconds: float) -> tuple[float, float, float]:
    """Env-steps per second (CPU, wall) of the vec env with random actions, and auto-resets
    per 1,000 env-steps."""
    venv = mmrl.make_vec_env(env_id, n_envs, seed=0, monitor=False)
    rng = np.random.default_rng(0)
    actions = rng.integers(venv.action_space.n, size=(64, n_envs))
    venv.reset()
    for k in range(5):  # warm-up
        venv.step(actions[k])
    steps = resets = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        _, _, dones, _ = venv.step(actions[steps % len(actions)])
        resets += int(dones.sum())
        steps += 1
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - start
    venv.close()
    total = steps * n_envs
    return total / cpu, total / wall, resets / total * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--envs", nargs="+", default=["mmrl/Driving-v0", "mmrl/Driving-v1"], help="Driving ids"
    )
    parser.add_argument("--n-envs", type=int, default=256, help="copies")
    parser.add_argument("--seconds", type=float, default=4.0, help="time per measurement")
    args = parser.parse_args(argv)
    if args.n_envs < 1 or args.seconds <= 0:
        parser.error("--n-envs must be >= 1 and --seconds > 0")
    print(
        f"# {datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, "
        f"{os.cpu_count()} cores, numpy {np.__version__}, load {os.getloadavg()[0]:.1f}"
    )
    print(f"# python {' '.join(sys.argv)}")
    for env_id in args.envs:
        if entry_for(env_id) is None or "driving" not in entry_for(env_id).simulator:
            parser.error(f"--envs takes Driving ids, got {env_id!r}")
        cpu_us, wall_us = bench_reset(env_id, args.n_envs, args.seconds)
        print(f"{env_id} reset_envs x{args.n_envs}: {cpu_us:.1f} us/copy CPU [{wall_us:.1f} wall]")
        cpu_rate, wall_rate, per_k = bench_step(env_id, args.n_envs, args.seconds)
        print(
            f"{env_id} vec{args.n_envs} step: {cpu_rate:,.0f} env-steps/s CPU "
            f"[{wall_rate:,.0f} wall], {per_k:.1f} auto-resets per 1000 env-steps"
        )
    print(f"# load after {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
