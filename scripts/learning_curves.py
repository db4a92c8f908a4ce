"""Learning curves of the default recipe: PPO success on held-out seeds vs environment steps.

Trains ``--seeds`` runs per environment with ``mmrl.train.train`` (periodic held-out
evaluation on both instruction splits), then plots mean success with a min-max band over
seeds and prints the first step at which every seed reached ``--bar`` success.

The periodic evaluations are small (32 episodes) and pick the best model, so
``--final-episodes N`` also evaluates each finished run's final ``model.zip`` with
``mmrl evaluate`` on ``N`` fresh held-out episodes per instruction split (seeds from
2,000,000, never seen in training or in the periodic evaluations) and prints success with
95 % Wilson intervals per seed (saved as ``<run>/final_eval.json``).

    python scripts/learning_curves.py --envs driving,navigation --seeds 3 --steps 1000000 \
        --out runs/curves [--agent ppo-attention] [--set key=value ...]

Interrupting is safe: rerunning resumes unfinished runs from their checkpoints.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mmrl.runs import RunFolder
from mmrl.train import train


def run_or_resume(env: str, agent: str, seed: int, steps: int, out: Path, overrides: list[str]):
    run = RunFolder(out)
    if run.finished or (ONLY_SEEDS is not None and seed not in ONLY_SEEDS):
        return out
    if out.exists() and run.latest_checkpoint() is not None:
        return train(resume=out, verbose=0)
    return train(env, agent, steps=steps, seed=seed, out=out, overrides=overrides, force=True,
                 verbose=0)  # fmt: skip


ONLY_SEEDS: set[int] | None = None


FINAL_EVAL_SEED = 2_000_000


def final_evaluation(run_dir: Path, episodes: int) -> dict[str, dict]:
    """Success of the run's final model on fresh held-out episodes, per split (cached)."""
    from mmrl.cli import main as mmrl_main

    path = run_dir / "final_eval.json"
    if not path.is_file() or json.loads(path.read_text())["results"][0]["episodes"] != episodes:
        code = mmrl_main(["evaluate", str(run_dir), "--episodes", str(episodes), "--split",
                          "train,test", "--seed", str(FINAL_EVAL_SEED), "--json", str(path),
                          "--quiet"])  # fmt: skip
        if code != 0:
            raise SystemExit(f"mmrl evaluate {run_dir} failed with status {code}")
    return {r["split"]: r["success_rate"] for r in json.loads(path.read_text())["results"]}


def curve(run_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    steps, success = RunFolder(run_dir).curve(split)
    return np.array(steps), np.array(success)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", default="driving,navigation")
    parser.add_argument("--agent", default="ppo-attention")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--only-seeds", help="train only these seeds (e.g. 1,2), to run seeds in parallel processes"
    )
    parser.add_argument("--plot-only", action="store_true", help="no training; plot finished runs")
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--bar", type=float, default=0.8)
    parser.add_argument("--final-episodes", type=int, default=0,
                        help="evaluate each final model.zip on N fresh episodes")  # fmt: skip
    parser.add_argument("--out", default="runs/curves")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    global ONLY_SEEDS
    if args.plot_only:
        ONLY_SEEDS = set()
    elif args.only_seeds:
        ONLY_SEEDS = {int(s) for s in args.only_seeds.split(",")}
    out = Path(args.out)
    envs = args.envs.split(",")
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 3.6), squeeze=False)
    print(f"# learning_curves {datetime.date.today()} {platform.node()} cpus={os.cpu_count()}")
    print(f"# command: python scripts/learning_curves.py --envs {args.envs} --agent {args.agent} "
          f"--seeds {args.seeds} --steps {args.steps} --out {args.out}"
          + "".join(f" --set {o}" for o in args.overrides))  # fmt: skip
    for ax, env in zip(axes[0], envs):
        for split, colour in (("train", "tab:blue"), ("test", "tab:orange")):
            curves = []
            for seed in range(args.seeds):
                run = run_or_resume(env, args.agent, seed, args.steps,
                                    out / f"{env}-s{seed}", args.overrides)  # fmt: skip
                if RunFolder(run).evaluations_path.exists():
                    curves.append(curve(run, split))
            if ONLY_SEEDS:
                continue
            if not curves or not all(len(c[0]) for c in curves):
                continue
            n = min(len(c[0]) for c in curves)
            steps = curves[0][0][:n]
            ys = np.stack([c[1][:n] for c in curves])
            ax.plot(steps, ys.mean(0), color=colour, label=f"{split} instructions")
            ax.fill_between(steps, ys.min(0), ys.max(0), color=colour, alpha=0.2)
            reached = [int(s[np.argmax(y >= args.bar)]) if (y >= args.bar).any() else None
                       for s, y in curves]  # fmt: skip
            finals = [float(y[-1]) for _, y in curves]
            print(f"{env:<12} {split:<5} final success per seed {finals}  "
                  f"first step >= {args.bar}: {reached}")  # fmt: skip
        ax.axhline(args.bar, color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(f"{env} ({args.agent})")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("success rate (held-out seeds)")
        ax.set_ylim(0, 1)
        ax.legend(loc="lower right")
    if args.final_episodes:
        print(f"\nfinal model.zip, {args.final_episodes} held-out episodes per split "
              f"(seeds from {FINAL_EVAL_SEED}): success [95 % Wilson interval]")  # fmt: skip
        for env in envs:
            runs = [out / f"{env}-s{seed}" for seed in range(args.seeds)]
            finals = [final_evaluation(r, args.final_episodes) for r in runs
                      if RunFolder(r).finished]  # fmt: skip
            for split in ("train", "test"):
                cells = [f"{f[split]['value']:.3f} [{f[split]['low']:.2f}, {f[split]['high']:.2f}]"
                         for f in finals if split in f]  # fmt: skip
                mean = np.mean([f[split]["value"] for f in finals if split in f])
                print(f"{env:<12} {split:<5} per seed {'; '.join(cells)}  mean {mean:.3f}")
    fig.tight_layout()
    png = out / "learning_curves.png"
    fig.savefig(png, dpi=120)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
