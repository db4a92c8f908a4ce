"""Steps per second of mmrl environments against highway-env's ``highway-fast-v0``.

For every mmrl id (default: each registered id whose module imports) it measures the single
Gymnasium env (``gym.make``, random actions, resets included) and the batched vec env
(``mmrl.make_vec_env(id, n_envs=16)``, env-steps/s), with all four sensors at their defaults,
and in the same run ``highway-fast-v0`` (default observation, random actions), then prints
the ratios. Rates are wall-clock; the CPU-time rate (``time.process_time``) follows in
brackets, which tells a slow env from a busy machine when other processes share the cores.
``--memory`` also reports the resident-set growth over 200k vec env-steps (read
from ``/proc/self/status``, no psutil).

Usage::

    python scripts/bench_envs.py                      # all mmrl ids + highway-fast-v0
    python scripts/bench_envs.py --envs mmrl/Driving-v0 --seconds 10 --memory
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import gymnasium as gym
import numpy as np

import mmrl
from mmrl.registration import ENV_ENTRIES

PEER_ID = "highway-fast-v0"


def default_ids() -> list[str]:
    """Registered mmrl ids whose modules import."""
    import importlib

    ids = []
    for entry in ENV_ENTRIES:
        try:
            importlib.import_module(entry.entry_point.split(":")[0])
        except Exception:  # a module under construction must not stop the benchmark
            continue
        if entry.env_id in gym.registry:
            ids.append(entry.env_id)
    return ids


def bench_single(env_id: str, seconds: float, seed: int = 0) -> tuple[float, float]:
    """Steps per wall-clock and per CPU second of one Gymnasium env with random actions
    (resets included)."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    actions = [env.action_space.sample() for _ in range(4096)]
    steps = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while True:
        for _ in range(64):
            _, _, terminated, truncated, _ = env.step(actions[steps % len(actions)])
            steps += 1
            if terminated or truncated:
                env.reset()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    cpu = time.process_time() - cpu_start
    env.close()
    return steps / elapsed, steps / cpu


def _vec_actions(venv, n: int, seed: int) -> list[np.ndarray]:
    space = venv.action_space
    space.seed(seed)
    return [np.stack([space.sample() for _ in range(venv.num_envs)]) for _ in range(n)]


def bench_vec(env_id: str, n_envs: int, seconds: float, seed: int = 0) -> tuple[float, float]:
    """Env-steps per wall-clock and per CPU second of ``mmrl.make_vec_env(env_id, n_envs)``
    with random actions."""
    venv = mmrl.make_vec_env(env_id, n_envs=n_envs, seed=seed)
    venv.reset()
    actions = _vec_actions(venv, 512, seed)
    batches = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while True:
        for _ in range(16):
            venv.step(actions[batches % len(actions)])
            batches += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    cpu = time.process_time() - cpu_start
    venv.close()
    return batches * n_envs / elapsed, batches * n_envs / cpu


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux ``/proc/self/status``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("VmRSS not found in /proc/self/status")


def bench_memory(env_id: str, n_envs: int, env_steps: int, seed: int = 0) -> tuple[float, float]:
    """RSS (MB) after a warm-up and its growth over ``env_steps`` vec env-steps."""
    venv = mmrl.make_vec_env(env_id, n_envs=n_envs, seed=seed)
    venv.reset()
    actions = _vec_actions(venv, 512, seed)
    for i in range(2000 // n_envs + 1):  # warm-up: caches, allocator pools
        venv.step(actions[i % len(actions)])
    before = rss_mb()
    for i in range(env_steps // n_envs):
        venv.step(actions[i % len(actions)])
    return before, rss_mb() - before


def bench_peer(seconds: float) -> tuple[float, float] | None:
    """Wall and CPU steps per second of highway-fast-v0 (``None`` without highway-env)."""
    try:
        import highway_env  # noqa: F401  (registers the ids)
    except ImportError:
        return None
    return bench_single(PEER_ID, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="+", default=None, help="mmrl ids (default: all)")
    parser.add_argument("--n-envs", type=int, default=16, help="copies in the vec env")
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    parser.add_argument("--memory", action="store_true", help="RSS growth over many steps")
    parser.add_argument("--memory-steps", type=int, default=200_000, help="vec env-steps")
    parser.add_argument("--no-peer", action="store_true", help="skip highway-fast-v0")
    args = parser.parse_args(argv)
    ids = args.envs or default_ids()
    unknown = [i for i in ids if i not in gym.registry]
    if unknown:
        print(f"error: unknown env id(s) {unknown}; registered: {default_ids()}", file=sys.stderr)
        return 2

    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; python {platform.python_version()}, numpy {np.__version__}, "
        f"gymnasium {gym.__version__}"
    )
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    peer = None if args.no_peer else bench_peer(args.seconds)
    if peer is not None:
        print(f"{PEER_ID:26s} single: {peer[0]:9.1f} [{peer[1]:9.1f}] steps/s")
    for env_id in ids:
        single = bench_single(env_id, args.seconds)
        vec = bench_vec(env_id, args.n_envs, args.seconds)
        print(
            f"{env_id:26s} single: {single[0]:9.1f} [{single[1]:9.1f}] steps/s   "
            f"vec{args.n_envs}: {vec[0]:9.1f} [{vec[1]:9.1f}] env-steps/s",
            flush=True,
        )
        if peer:
            print(
                f"{'':26s} ratio to {PEER_ID}: single {single[0] / peer[0]:.1f}x "
                f"[{single[1] / peer[1]:.1f}x], vec{args.n_envs} {vec[0] / peer[0]:.1f}x "
                f"[{vec[1] / peer[1]:.1f}x]",
                flush=True,
            )
        if args.memory:
            base, growth = bench_memory(env_id, args.n_envs, args.memory_steps)
            print(
                f"{env_id:26s} RSS {base:.1f} MB after warm-up, growth over "
                f"{args.memory_steps} vec env-steps: {growth:+.1f} MB",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
