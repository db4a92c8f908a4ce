"""Benchmark: ``mmrl evaluate`` of 100 Driving-v0 episodes with a fresh default-recipe policy.

Target (issue 7): at most 60 s on a CPU machine. Builds a freshly initialized PPO with the
default recipe (``ppo-attention``), saves it as a bare ``model.zip``, then times the full
``mmrl evaluate MODEL.zip --env driving --episodes 100`` command in-process (model loading,
environment construction, rollouts and statistics; the table is not printed). A fresh policy
rarely finishes an instruction early, so most episodes run to the 300-step limit: close to the
worst case for this figure.

Usage::

    python scripts/bench_evaluate.py [--episodes 100] [--n-envs N] [--repeats 1]

Prints the figure with the command, date, machine and library versions.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def _machine() -> str:
    import torch as th

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch {th.__version__} "
        f"({th.get_num_threads()} threads), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--n-envs", type=int, help="copies (default: mmrl evaluate's)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs (best is reported)")
    parser.add_argument("--agent", default="ppo-attention")
    parser.add_argument("--env", default="driving")
    args = parser.parse_args()

    from mmrl.cli import main as mmrl_main
    from mmrl.config import resolve_run_config
    from mmrl.train import build_model, build_vec_env

    config = resolve_run_config(args.env, args.agent, seed=0, device="cpu")
    import torch as th

    venv = build_vec_env(config, seed=0, n_envs=2)
    model = build_model(config, venv, th.device("cpu"), None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.zip"
        model.save(path)
        out = Path(tmp) / "result.json"
        argv = [
            "evaluate",
            str(path),
            "--env",
            args.env,
            "--episodes",
            str(args.episodes),
            "--json",
            str(out),
            "--quiet",
        ]
        if args.n_envs:
            argv += ["--n-envs", str(args.n_envs)]
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                status = mmrl_main(argv)
            times.append(time.perf_counter() - t0)
            if status != 0:
                print(f"mmrl evaluate failed with status {status}", file=sys.stderr)
                return status
        result = json.loads(out.read_text())["results"][0]
    best = min(times)
    steps = result["steps"]
    print(
        f"figure: {best:.1f} s for {result['episodes']} episodes of {config.env.env_id} "
        f"({steps} env steps, {steps / best:.0f} steps/s, {result['n_envs']} copies, "
        f"rollouts {result['seconds']:.1f} s; target <= 60 s)"
    )
    print(f"runs: {', '.join(f'{t:.1f}' for t in times)} s")
    print(
        f"command: python scripts/bench_evaluate.py --episodes {args.episodes}"
        + (f" --n-envs {args.n_envs}" if args.n_envs else "")
        + f"  (= mmrl {' '.join(argv[:1])} MODEL.zip {' '.join(argv[2:6])})"
    )
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"machine: {_machine()}")
    length = result["mean_length"]["value"]
    print(f"agent: {args.agent} (fresh initialization), mean episode length {length:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
