"""Measures what one ``mmrl bench`` cell costs and extrapolates whole protocols.

For each (env, fusion) it trains a short run with the default recipe on one torch thread
(what a bench worker uses), then times evaluation episodes, and reports CPU seconds per
1000 training steps and per evaluation episode. CPU time (not wall time) is measured so
the numbers hold on a machine shared with other jobs; on an idle machine one cell per core
runs at about that speed. It then prints the expected wall time of the quick and full
protocols (``scripts/bench_quick.sh``) on ``--cores`` cores.

    python scripts/bench_cost.py                       # driving+navigation x concat,perceiver
    python scripts/bench_cost.py --fusions all --steps 8192
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import torch as th


@dataclasses.dataclass
class Protocol:
    name: str
    envs: int
    fusions: int
    seeds: int
    steps: int
    eval_freq: int
    eval_episodes: int
    modalities: int = 4

    def cell_cpu(self, step_s: float, episode_s: float) -> float:
        """CPU seconds of one cell: training, periodic + final evaluation (train and test
        instruction splits) and the ablations (unablated + one per modality)."""
        evals = (self.steps // self.eval_freq if self.eval_freq else 0) + 1
        episodes = evals * 2 * self.eval_episodes + (1 + self.modalities) * self.eval_episodes
        return self.steps * step_s + episodes * episode_s

    @property
    def cells(self) -> int:
        return self.envs * self.fusions * self.seeds


QUICK = Protocol("quick", 2, 6, 3, 49_152, 12_288, 16)
FULL = Protocol("full", 2, 6, 3, 300_000, 50_000, 32)


def measure(env: str, fusion: str, steps: int, episodes: int) -> dict[str, float]:
    """CPU seconds per training step and per evaluation episode of one (env, fusion)."""
    from mmrl.bench.runner import ablate_modalities
    from mmrl.policies import load_policy
    from mmrl.runs import load_run_config
    from mmrl.train import train

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        overrides = [f"eval_freq={steps * 10}", f"eval_episodes={episodes}"]
        t0 = time.process_time()
        train(env, f"ppo-{fusion}", steps=steps, seed=0, device="cpu", out=run_dir,
              overrides=overrides, verbose=0)  # fmt: skip
        total = time.process_time() - t0
        config = load_run_config(run_dir)
        model = load_policy(run_dir)
        t1 = time.process_time()
        ablation = ablate_modalities(model, config, episodes)
        eval_cpu = time.process_time() - t1
    n_episodes = episodes * len(ablation)
    episode_s = eval_cpu / n_episodes
    # train() also ran the final evaluation (2 splits x episodes): take it out.
    step_s = max(total - 2 * episodes * episode_s, 0.0) / steps
    length = sum(s["mean_length"] for s in ablation.values()) / len(ablation)
    return {"step_s": step_s, "episode_s": episode_s, "episode_length": length}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="driving,navigation")
    parser.add_argument("--fusions", default="concat,perceiver", help="comma list or 'all'")
    parser.add_argument("--steps", type=int, default=4096, help="training steps measured")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per evaluation")
    parser.add_argument("--cores", type=int, default=2, help="cores of the target machine")
    parser.add_argument("--json", help="also write the measurements here")
    args = parser.parse_args()
    th.set_num_threads(1)
    from mmrl.bench.grid import available_fusions

    fusions = available_fusions() if args.fusions == "all" else args.fusions.split(",")
    rows = {}
    machine = f"{platform.node()} ({platform.processor() or platform.machine()})"
    print(f"# bench cell cost on {machine}, torch {th.__version__}, 1 thread, "
          f"{args.steps} training steps per measurement")  # fmt: skip
    print(f"{'env':<12} {'fusion':<10} {'CPU s/1k steps':>15} {'CPU s/episode':>14} {'ep len':>7}")
    for env in args.envs.split(","):
        for fusion in fusions:
            r = measure(env, fusion, args.steps, args.episodes)
            rows[f"{env}/{fusion}"] = r
            print(f"{env:<12} {fusion:<10} {1000 * r['step_s']:>15.2f} {r['episode_s']:>14.3f}"
                  f" {r['episode_length']:>7.0f}")  # fmt: skip
    step_s = sum(r["step_s"] for r in rows.values()) / len(rows)
    episode_s = sum(r["episode_s"] for r in rows.values()) / len(rows)
    print(f"\nmean: {1000 * step_s:.2f} CPU s per 1k steps, {episode_s:.3f} CPU s per episode")
    for proto in (QUICK, FULL):
        cell = proto.cell_cpu(step_s, episode_s)
        # Cells are whole units of work: the grid takes ceil(cells / cores) rounds.
        wall = math.ceil(proto.cells / args.cores) * cell
        print(f"{proto.name}: {proto.cells} cells x {proto.steps} steps: ~{cell / 60:.1f} min "
              f"per cell, ~{wall / 3600:.1f} h on {args.cores} cores "
              f"({proto.cells * cell / 3600:.1f} CPU-hours)")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "cores": args.cores}, indent=2))


if __name__ == "__main__":
    main()
