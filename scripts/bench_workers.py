"""Env-steps per second of ``mmrl.make_vec_env(..., n_workers=K)`` against one process.

For each env (default ``mmrl/Driving-v1`` and ``mmrl/Navigation-v1``, all four sensors at
their defaults) it measures the one-process batched env and the worker pool with ``K``
processes at the same number of copies (default 256), random actions, auto-resets
included, and prints the speed-up (pool / one process) and the scaling efficiency
(speed-up / K; the issue's bar is 0.8 on K idle cores). In the same run it measures
highway-env's ``highway-fast-v0`` (one env, as ``scripts/bench_envs.py`` does) when
highway-env is installed, for a ratio to a peer. Rates are wall-clock: the workers' CPU time
is not this process's. Beside them it prints the CPU milliseconds per batched step of this
process and of each worker (``/proc/<pid>/stat``), and from them the speed-up the pool would
reach on ``K`` idle cores (one process's CPU per step over the parent's plus the slowest
worker's): a figure that a machine shared with other jobs does not distort. The load average
is printed before and after, which tells a busy machine from a slow pool.

Both front ends over the pool are measured (``--api``): SB3's ``VecEnv`` returns one info dict
per copy, which the parent builds every step (a serial cost the workers cannot share), and
Gymnasium's vector env returns a dict of info arrays.

Usage::

    python scripts/bench_workers.py                          # 256 copies, K = 2
    python scripts/bench_workers.py --workers 2 4 --seconds 10 --envs mmrl/Driving-v1
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np

import mmrl

DEFAULT_ENVS = ["mmrl/Driving-v1", "mmrl/Navigation-v1"]
PEER_ID = "highway-fast-v0"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Rate:
    """One measurement.

    Attributes:
        steps_per_s: Env-steps per wall-clock second.
        parent_ms: CPU milliseconds of this process per batched step.
        worker_ms: CPU milliseconds per batched step of each worker (empty: no workers).
    """

    steps_per_s: float
    parent_ms: float
    worker_ms: list[float]

    def critical_ms(self) -> float:
        """CPU time on the critical path of one step: the parent's part (it waits for the
        workers, then assembles the results) plus the slowest worker's."""
        return self.parent_ms + max(self.worker_ms, default=0.0)


def _make(env_id: str, n_envs: int, n_workers: int, seed: int, api: str) -> tuple[Any, list[int]]:
    """The vec env of ``api`` (``"sb3"``: ``mmrl.make_vec_env``; ``"gymnasium"``:
    ``gym.make_vec``) and its worker pids (none in one process)."""
    if api == "sb3":
        venv = mmrl.make_vec_env(
            env_id, n_envs=n_envs, seed=seed, n_workers=n_workers, monitor=False
        )
        return venv, list(getattr(venv, "worker_pids", []))
    venv = gym.make_vec(env_id, num_envs=n_envs, n_workers=n_workers)
    pool = getattr(venv, "pool", None)
    return venv, list(pool.worker_pids) if pool is not None else []


def bench(
    env_id: str, n_envs: int, n_workers: int, seconds: float, seed: int = 0, api: str = "sb3"
) -> Rate:
    """Wall-clock rate and CPU cost of ``make_vec_env(env_id, n_envs, n_workers)`` (or of
    ``gym.make_vec`` with ``api="gymnasium"``; start-up excluded: timed after a warm-up)."""
    venv, pids = _make(env_id, n_envs, n_workers, seed, api)
    try:
        if api == "sb3":
            venv.reset()
        else:
            venv.reset(seed=seed)
        space = venv.action_space if api == "sb3" else venv.single_action_space
        space.seed(seed)
        actions = [np.stack([space.sample() for _ in range(n_envs)]) for _ in range(64)]
        for i in range(5):  # warm-up: caches, allocator pools, the workers' first replies
            venv.step(actions[i])
        batches = 0
        cpu = time.process_time()
        workers = [_cpu_seconds(pid) for pid in pids]
        start = time.perf_counter()
        while True:
            for _ in range(4):
                venv.step(actions[batches % len(actions)])
                batches += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        parent = time.process_time() - cpu
        worker_ms = [
            1000 * (_cpu_seconds(pid) - before) / batches for pid, before in zip(pids, workers)
        ]
        return Rate(batches * n_envs / elapsed, 1000 * parent / batches, worker_ms)
    finally:
        venv.close()


def bench_peer(seconds: float, seed: int = 0) -> float | None:
    """Steps per wall-clock second of one ``highway-fast-v0`` (``None`` without highway-env)."""
    try:
        import highway_env  # noqa: F401  (registers the ids)
    except ImportError:
        return None
    env = gym.make(PEER_ID)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="+", default=DEFAULT_ENVS, help="mmrl ids")
    parser.add_argument("--n-envs", type=int, default=256, help="copies in every env")
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="values of K")
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    parser.add_argument("--no-peer", action="store_true", help=f"skip {PEER_ID}")
    parser.add_argument(
        "--api",
        nargs="+",
        choices=["sb3", "gymnasium"],
        default=["sb3", "gymnasium"],
        help="front ends to measure: SB3's VecEnv (per-copy info dicts, built in the parent) "
        "and Gymnasium's vector env (a dict of info arrays)",
    )
    args = parser.parse_args(argv)
    unknown = [i for i in args.envs if i not in gym.registry]
    if unknown:
        print(f"error: unknown env id(s) {unknown}", file=sys.stderr)
        return 2
    bad = [k for k in args.workers if not 2 <= k <= args.n_envs]
    if bad or args.n_envs < 2:
        print(
            f"error: --workers must be in 2..--n-envs ({args.n_envs}), got {bad}", file=sys.stderr
        )
        return 2

    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; python {platform.python_version()}, numpy {np.__version__}"
    )
    print(f"load average (1, 5, 15 min) before: {os.getloadavg()}")
    peer = None if args.no_peer else bench_peer(args.seconds)
    if peer is not None:
        print(f"{PEER_ID:22s} one env: {peer:10.1f} steps/s")
    for env_id, api in [(env_id, api) for env_id in args.envs for api in args.api]:
        one = bench(env_id, args.n_envs, 1, args.seconds, api=api)
        line = (
            f"{env_id:22s} {api:9s} n={args.n_envs} one process: {one.steps_per_s:10.1f} "
            f"env-steps/s, CPU {one.parent_ms:.2f} ms/step"
        )
        if peer is not None:
            line += f" ({one.steps_per_s / peer:.1f}x {PEER_ID})"
        print(line, flush=True)
        for k in args.workers:
            rate = bench(env_id, args.n_envs, k, args.seconds, api=api)
            speedup = rate.steps_per_s / one.steps_per_s
            # On K idle cores a step takes the critical path's CPU time: its projection
            # does not depend on what else the machine runs (the wall-clock figure does).
            projected = one.parent_ms / rate.critical_ms()
            workers_ms = ", ".join(f"{ms:.2f}" for ms in rate.worker_ms)
            print(
                f"{'':32s} n={args.n_envs} K={k} workers: {rate.steps_per_s:10.1f} env-steps/s, "
                f"speed-up {speedup:.2f}x (efficiency {speedup / k:.2f}); CPU ms/step: parent "
                f"{rate.parent_ms:.2f}, workers [{workers_ms}]; projected speed-up on {k} idle "
                f"cores {projected:.2f}x (efficiency {projected / k:.2f})",
                flush=True,
            )
    print(f"load average (1, 5, 15 min) after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
