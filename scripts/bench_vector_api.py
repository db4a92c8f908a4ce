"""Env-steps per second of mmrl's Gymnasium ``VectorEnv`` against the other ways to batch it.

For each env id and copy count it measures, in the same run and with the same pre-sampled
random actions (resets included, all four sensors at their defaults):

- ``vector_entry_point``: ``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``,
  mmrl's :class:`~mmrl.envs.gym_vector.MultimodalVectorEnv` (one batched simulator);
- ``make_vec_env``: ``mmrl.make_vec_env(id, n_envs=N)``, the SB3 ``VecEnv`` over the same
  simulator (with its default ``VecMonitor``, as training uses it);
- ``sync``: ``gym.make_vec(..., vectorization_mode="sync")``, Gymnasium's ``SyncVectorEnv``
  looping over ``N`` single envs;
- ``async``: ``gym.make_vec(..., vectorization_mode="async")``, Gymnasium's
  ``AsyncVectorEnv`` with one worker process per copy.

The cases run interleaved in ``--rounds`` rounds (``--seconds`` split between them) and each
rate is the median over rounds, so a burst of load on a shared machine hits every case
alike. Rates are wall-clock; the CPU-time rate of this process follows in brackets (for
``async`` it leaves out the workers' CPU). Ratios are ``vector_entry_point`` over each peer.

Usage::

    python scripts/bench_vector_api.py
    python scripts/bench_vector_api.py --envs mmrl/Driving-v1 --num-envs 4 16 --seconds 6
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

import mmrl

CASES = ("vector_entry_point", "make_vec_env", "sync", "async")


def build(case: str, env_id: str, num_envs: int) -> Any:
    """The batched env of one case (Gymnasium ``VectorEnv`` or SB3 ``VecEnv``)."""
    if case == "make_vec_env":
        return mmrl.make_vec_env(env_id, n_envs=num_envs, seed=0)
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=case)


def stepper(case: str, env: Any, actions: list[np.ndarray]) -> Callable[[int], None]:
    """Resets ``env`` and returns ``step(k)``, which takes ``k`` batched steps."""
    # SB3's VecEnv.reset takes no seed (make_vec_env seeded it); Gymnasium's does.
    env.reset() if case == "make_vec_env" else env.reset(seed=0)
    counter = [0]

    def step(k: int) -> None:
        for _ in range(k):
            env.step(actions[counter[0] % len(actions)])
            counter[0] += 1

    return step


def measure(step: Callable[[int], None], num_envs: int, seconds: float) -> tuple[float, float]:
    """Env-steps per wall-clock and per CPU second of ``step`` run for ``seconds``."""
    batches = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while True:
        step(8)
        batches += 8
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    cpu = max(time.process_time() - cpu_start, 1e-9)
    return batches * num_envs / elapsed, batches * num_envs / cpu


def bench(
    env_id: str, num_envs: int, seconds: float, rounds: int, cases: tuple[str, ...]
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) env-steps/s of every case over ``rounds`` interleaved rounds."""
    probe = gym.make(env_id)
    space = gym.vector.utils.batch_space(probe.action_space, num_envs)
    space.seed(0)
    actions = [space.sample() for _ in range(256)]
    envs = {case: build(case, env_id, num_envs) for case in cases}
    steps = {case: stepper(case, envs[case], actions) for case in cases}
    for step in steps.values():  # warm-up: caches, worker processes, allocator pools
        step(4)
    rates: dict[str, list[tuple[float, float]]] = {case: [] for case in cases}
    for r in range(rounds):
        order = cases if r % 2 == 0 else cases[::-1]
        for case in order:
            rates[case].append(measure(steps[case], num_envs, seconds / rounds))
    for env in envs.values():
        env.close()
    return {
        case: (statistics.median(w for w, _ in rs), statistics.median(c for _, c in rs))
        for case, rs in rates.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="+", default=["mmrl/Driving-v1", "mmrl/Navigation-v1"])
    parser.add_argument("--num-envs", nargs="+", type=int, default=[4, 16], help="copy counts")
    parser.add_argument("--seconds", type=float, default=4.0, help="time per case and size")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per case")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    args = parser.parse_args(argv)
    unknown = [i for i in args.envs if i not in gym.registry]
    if unknown:
        print(f"error: unknown env id(s) {unknown}", file=sys.stderr)
        return 2
    if any(n < 1 for n in args.num_envs) or args.rounds < 1 or args.seconds <= 0:
        print("error: --num-envs and --rounds must be >= 1, --seconds > 0", file=sys.stderr)
        return 2
    cases = tuple(args.cases)

    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs; python "
        f"{platform.python_version()}, numpy {np.__version__}, gymnasium {gym.__version__}"
    )
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    print("env-steps/s, wall clock [CPU time of this process]; ratio = vector_entry_point / case")
    for env_id in args.envs:
        for num_envs in args.num_envs:
            result = bench(env_id, num_envs, args.seconds, args.rounds, cases)
            ours = result.get("vector_entry_point")
            for case, (wall, cpu) in result.items():
                ratio = f"   ratio {ours[0] / wall:5.2f}x" if ours and case != CASES[0] else ""
                print(
                    f"{env_id:22s} N={num_envs:<3d} {case:18s} {wall:9.1f} [{cpu:9.1f}]{ratio}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
