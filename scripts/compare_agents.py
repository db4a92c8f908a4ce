"""Compare agents trained by ``scripts/learning_curves.py`` at equal steps (issue 17).

Each ``NAME=DIR`` is one ``learning_curves.py --out DIR`` folder (runs ``DIR/<env>-s<seed>``).
For every agent it reads the periodic held-out evaluations (``evaluations.jsonl``) and the
final evaluation (``final_eval.json``, written by ``--final-episodes``), then

* prints, per instruction split, each seed's final success, the pooled success over all
  seeds' episodes with its 95 % Wilson interval, and the difference to the first agent with
  Newcombe's 95 % interval (episodes pooled over seeds: the interval does not include the
  spread between seeds, which the per-seed column shows);
* draws the mean learning curve of each agent with a min-max band over seeds, one panel per
  split.

    python scripts/compare_agents.py ppo-concat=runs/rec/ppo-concat \\
        recurrent-ppo-concat=runs/rec/recurrent-ppo-concat --env navigation --out cmp.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mmrl.evaluation.stats import newcombe_diff_interval, wilson_interval
from mmrl.runs import RunFolder

SPLITS = ("train", "test")


def seed_runs(folder: Path, env: str) -> list[Path]:
    """The finished ``<env>-s<seed>`` runs of one agent, by seed."""
    runs = sorted(folder.glob(f"{env}-s*"), key=lambda p: int(p.name.rsplit("-s", 1)[1]))
    return [run for run in runs if RunFolder(run).finished]


def final_counts(run: Path) -> dict[str, tuple[int, int]]:
    """Split -> (successes, episodes) of the run's ``final_eval.json``."""
    results = json.loads((run / "final_eval.json").read_text())["results"]
    counts = {}
    for row in results:
        if row.get("condition", "clean") != "clean":
            continue
        episodes = int(row["episodes"])
        counts[row["split"]] = (round(row["success_rate"]["value"] * episodes), episodes)
    return counts


def compare(agents: dict[str, list[Path]]) -> list[dict]:
    """One row per agent and split: per-seed rates, pooled rate and the difference to the
    first agent (both with 95 % intervals)."""
    rows = []
    first = next(iter(agents))
    pooled: dict[tuple[str, str], tuple[int, int]] = {}
    for name, runs in agents.items():
        counts = [final_counts(run) for run in runs]
        for split in SPLITS:
            seeds = [c[split] for c in counts if split in c]
            if not seeds:
                continue
            wins, n = sum(s for s, _ in seeds), sum(e for _, e in seeds)
            pooled[name, split] = (wins, n)
            row = {"agent": name, "split": split, "seeds": [s / e for s, e in seeds],
                   "pooled": wilson_interval(wins, n).to_dict(), "episodes": n}  # fmt: skip
            if name != first and (first, split) in pooled:
                base_wins, base_n = pooled[first, split]
                row["diff"] = newcombe_diff_interval(wins, n, base_wins, base_n).to_dict()
            rows.append(row)
    return rows


def plot(agents: dict[str, list[Path]], out: Path, env: str) -> None:
    fig, axes = plt.subplots(1, len(SPLITS), figsize=(10, 3.6), squeeze=False)
    for ax, split in zip(axes[0], SPLITS):
        for name, runs in agents.items():
            curves = [RunFolder(run).curve(split) for run in runs]
            curves = [c for c in curves if c[0]]
            if not curves:
                continue
            n = min(len(steps) for steps, _ in curves)
            steps = np.array(curves[0][0][:n])
            ys = np.array([values[:n] for _, values in curves])
            (line,) = ax.plot(steps, ys.mean(0), label=f"{name} ({len(curves)} seeds)")
            ax.fill_between(steps, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.2)
        ax.set_title(f"{env}, {split} instructions")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("success rate (held-out seeds)")
        ax.set_ylim(0, 1)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agents", nargs="+", metavar="NAME=DIR", help="learning_curves folders")
    parser.add_argument("--env", default="navigation", help="env preset the runs trained on")
    parser.add_argument("--out", type=Path, help="figure (PNG) to write")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    agents: dict[str, list[Path]] = {}
    for item in args.agents:
        name, sep, folder = item.partition("=")
        runs = seed_runs(Path(folder), args.env) if sep else []
        if not runs:
            print(f"compare_agents: {item!r}: expected NAME=DIR with finished "
                  f"{args.env}-s<seed> runs in DIR", file=sys.stderr)  # fmt: skip
            return 2
        missing = [run.name for run in runs if not (run / "final_eval.json").is_file()]
        if missing:
            print(f"compare_agents: {name}: no final_eval.json in {missing}; rerun "
                  "learning_curves.py with --final-episodes N", file=sys.stderr)  # fmt: skip
            return 2
        agents[name] = runs
    rows = compare(agents)
    print("| agent | split | per seed | pooled [95 % CI] | minus first agent [95 % CI] |")
    print("|---|---|---|---|---|")
    for row in rows:
        seeds = ", ".join(f"{s:.2f}" for s in row["seeds"])
        p = row["pooled"]
        diff = row.get("diff")
        shown = f"{diff['value']:+.2f} [{diff['low']:+.2f}, {diff['high']:+.2f}]" if diff else ""
        print(
            f"| {row['agent']} | {row['split']} | {seeds} | {p['value']:.2f} "
            f"[{p['low']:.2f}, {p['high']:.2f}] ({row['episodes']} episodes) | {shown} |"
        )
    if args.out:
        plot(agents, args.out, args.env)
        print(f"wrote {args.out}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
