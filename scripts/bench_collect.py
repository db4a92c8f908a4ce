"""End-to-end speed of ``mmrl collect``: Minari's HDF5 writer against mmrl's direct one.

For each number of worker processes and each write mode (``inline``: the rollout stops while
a chunk is written; ``thread``: a writer thread overlaps the rollout; ``process``: a writer
process does, the default of long collections), it runs
``mmrl.data.collect`` with the scripted expert twice, once per HDF5 writer, back to back
(``hdf5_writer="minari"``: Minari's ``update_episodes``, the reference; ``"direct"``:
:mod:`mmrl.data.minari_hdf5`), and prints env-steps/s end to end, the rollout's rate, the
write's wall and CPU seconds, the steps written per CPU-second of the write, the write's wall
time as a share of the total (overlapped with the rollout unless inline), and the
end-to-end ratios direct / Minari and, per writer, of each overlapped mode to the inline
one. On a shared, noisy machine compare the ratios (the two
writers of a pair run back to back, seconds apart) more than the absolute rates. Each run
writes into a temporary ``MINARI_DATASETS_PATH`` that is deleted afterwards.

Usage::

    python scripts/bench_collect.py                          # Driving, 512 episodes, 128 copies
    python scripts/bench_collect.py --workers 1 2 --rounds 2 --modes inline process
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

WRITERS = ("minari", "direct")
MODES = ("inline", "thread", "process")


def run(env: str, episodes: int, n_envs: int, workers: int, writer: str, mode: str) -> dict:
    """One collect into a fresh temporary datasets folder; what it measured."""
    from mmrl.data import collect

    root = Path(tempfile.mkdtemp(prefix="mmrl-bench-collect-"))
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        result = collect(env, "expert", episodes, "bench/collect-v0", n_envs=n_envs,
                         n_workers=workers, writes=mode,
                         hdf5_writer=writer)  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "env_steps": result.env_steps,
        "steps": result.steps,
        "end_to_end": result.end_to_end_steps_per_second,
        "rollout": result.steps_per_second,
        "write_s": result.write_seconds,
        "write_cpu_s": result.write_cpu_seconds,
        "total_s": result.total_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="driving", help="env preset (default: driving)")
    parser.add_argument("--episodes", type=int, default=512, help="episodes per run")
    parser.add_argument("--n-envs", type=int, default=128, help="copies stepped together")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="processes")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--rounds", type=int, default=1, help="repetitions of every pair")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.n_envs < 1 or args.rounds < 1:
        print("error: --episodes, --n-envs and --rounds must be >= 1", file=sys.stderr)
        return 2

    import numpy as np

    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}")
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; python {platform.python_version()}, numpy {np.__version__}"
    )
    print(f"load average (1, 5, 15 min) before: {os.getloadavg()}", flush=True)
    # Warm-up: imports, numba's compiled kernels, the page cache of the env's assets.
    run(args.env, 8, 8, 1, "direct", "inline")
    header = (
        f"{'workers':>7} {'writes':>10} {'writer':>6} {'env-steps':>9} {'end-to-end/s':>12} "
        f"{'rollout/s':>9} {'write s':>7} {'write cpu s':>11} {'written/cpu s':>13} {'total s':>7} "
        f"{'write share':>11}"
    )
    print(header)
    ratios: dict[tuple[int, str], list[float]] = {}
    overlap: dict[tuple[int, str, str], list[float]] = {}
    for _ in range(args.rounds):
        for workers in args.workers:
            inline: dict[str, float] = {}
            for mode in args.modes:
                rates = {}
                for writer in WRITERS:
                    r = run(args.env, args.episodes, args.n_envs, workers, writer, mode)
                    rates[writer] = r["end_to_end"]
                    print(
                        f"{workers:>7} {mode:>10} {writer:>6} {r['env_steps']:>9,} "
                        f"{r['end_to_end']:>12,.0f} {r['rollout']:>9,.0f} {r['write_s']:>7.2f} "
                        f"{r['write_cpu_s']:>11.2f} {r['steps'] / r['write_cpu_s']:>13,.0f} "
                        f"{r['total_s']:>7.2f} "
                        f"{r['write_s'] / r['total_s']:>11.2f}",
                        flush=True,
                    )
                ratios.setdefault((workers, mode), []).append(rates["direct"] / rates["minari"])
                if mode == "inline":
                    inline = rates
                elif inline:
                    for writer, rate in rates.items():
                        key = (workers, mode, writer)
                        overlap.setdefault(key, []).append(rate / inline[writer])
    print("end-to-end ratio direct / minari (per round):")
    for (workers, mode), values in ratios.items():
        print(f"  workers {workers}, {mode} writes: " + ", ".join(f"{v:.2f}x" for v in values))
    if overlap:
        print("end-to-end ratio overlapped / inline writes (per round):")
    for (workers, mode, writer), values in overlap.items():
        line = ", ".join(f"{v:.2f}x" for v in values)
        print(f"  workers {workers}, {writer} writer, {mode}: {line}")
    print(f"load average (1, 5, 15 min) after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
