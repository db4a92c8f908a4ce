"""Stepping cost of ``camera_frames=k`` against one camera frame (issue 19, frame stacking).

For each env id it steps ``mmrl.make_vec_env(id, n_envs=N, camera_frames=k)`` with seeded
random actions (auto-resets included) for ``--seconds`` at ``k = 1`` and at each ``--frames``
value, interleaved over ``--rounds`` rounds so a change of load on a shared machine hits every
setting alike, and prints env-steps per wall-clock second (CPU-time rate in brackets, which
tells a slow setting from a busy machine) and each setting's cost ratio to ``k = 1``
(CPU seconds per env-step; the best round of each setting).

Usage::

    nice python scripts/bench_camera_frames.py                      # Driving-v1, Navigation-v1
    nice python scripts/bench_camera_frames.py --frames 2 4 8 --n-envs 64 --seconds 3
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import numpy as np

import mmrl


def bench(env_id: str, frames: int, n_envs: int, seconds: float, seed: int = 0):
    """``(wall, cpu)`` env-steps per second of one vec env with ``camera_frames=frames``."""
    venv = mmrl.make_vec_env(env_id, n_envs=n_envs, seed=seed, monitor=False, camera_frames=frames)
    space = venv.action_space
    space.seed(seed)
    actions = [np.stack([space.sample() for _ in range(n_envs)]) for _ in range(64)]
    venv.reset()
    for a in actions[:8]:  # warm-up: first-touch of the history and observation buffers
        venv.step(a)
    steps = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for a in actions:
            venv.step(a)
        steps += len(actions) * n_envs
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    venv.close()
    return steps / wall, steps / cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["mmrl/Driving-v1", "mmrl/Navigation-v1"])
    parser.add_argument("--frames", nargs="+", type=int, default=[4])
    parser.add_argument("--n-envs", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    settings = [1, *[k for k in args.frames if k != 1]]
    print(
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}, load {os.getloadavg()[0]:.1f}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"numpy {np.__version__}; {args.n_envs} copies, {args.seconds:g} s x {args.rounds} rounds"
    )
    for env_id in args.envs:
        best: dict[int, tuple[float, float]] = {}
        for _ in range(args.rounds):
            for k in settings:
                wall, cpu = bench(env_id, k, args.n_envs, args.seconds)
                if k not in best or cpu > best[k][1]:
                    best[k] = (wall, cpu)
        base_cpu = best[1][1]
        for k in settings:
            wall, cpu = best[k]
            print(
                f"{env_id:20s} camera_frames={k}: {wall:9,.0f} env-steps/s [{cpu:9,.0f} CPU]"
                f"  cost x{base_cpu / cpu:.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
