"""Does pretraining pay? PPO from pretrained encoders vs from scratch, and BC alone.

For each environment: collect an expert dataset (``mmrl collect``), pretrain the recipe's
extractor and BC head on it (``mmrl pretrain``), then for each seed train PPO twice with the
same budget — from scratch and from the checkpoint (``--init-from`` + BC head) — with
periodic held-out evaluations on the train and the held-out (test) instruction split. The
BC policy alone (the pretrained policy before any PPO update) is evaluated as well.

Reported per env and arm: env steps until the evaluation success rate first reaches the
threshold (80%), on each split; censored runs (never reached) count as the budget, shown as
``>budget``. The bar of issue 6: pretrained needs at most half the steps of scratch. The
offline data and pretraining cost are reported next to it, since the pretrained arm used
``dataset_steps`` expert transitions that scratch did not.

Everything lands in ``--out`` and finished pieces are reused, so the script can run in the
background with a budget and be resumed or extended (more seeds, more steps)::

    nohup python scripts/pretrain_vs_scratch.py --steps 300000 --seeds 0,1,2 \\
        --out results/pretrain_vs_scratch > pvs.log 2>&1 &
    python scripts/pretrain_vs_scratch.py --out results/pretrain_vs_scratch --report-only

Outputs: ``results.json``, ``summary.md``, ``pretrain_vs_scratch.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ARMS = ("scratch", "pretrained")


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def evaluate_bc(env: str, agent: str, checkpoint: Path, episodes: int, seed: int) -> dict:
    """Success of the pretrained policy alone (BC head, deterministic), per split."""
    import torch as th

    from mmrl.config import resolve_run_config
    from mmrl.pretrain.finetune import load_pretrained
    from mmrl.rollout import collect_episodes, summarize
    from mmrl.train import build_model, build_vec_env

    items = [f"agent.init.path={json.dumps(str(checkpoint))}", "agent.init.init_policy_head=true"]
    config = resolve_run_config(env, agent, items, seed=seed)
    with warnings.catch_warnings():  # SB3 warns that batch_size exceeds a 1-copy rollout
        warnings.simplefilter("ignore", UserWarning)
        venv = build_vec_env(config, seed=seed, n_envs=1)
        model = build_model(config, venv, th.device("cpu"), None)
    load_pretrained(model, config)
    results = {}
    for split in ("train", "test"):
        venv = build_vec_env(config, config.eval_seed, min(episodes, 16), split)
        venv.seed(config.eval_seed)
        results[split] = summarize(collect_episodes(model.predict, venv, episodes))
    return results


def steps_to_threshold(history: list[dict], split: str, threshold: float) -> int | None:
    """First evaluated step whose success rate on ``split`` reaches ``threshold``."""
    for row in history:
        if split in row and row[split]["success_rate"] >= threshold:
            return int(row["step"])
    return None


def read_history(run_dir: Path) -> list[dict]:
    path = run_dir / "evaluations.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_env(env: str, args: argparse.Namespace, out: Path, deadline: float) -> dict[str, Any]:
    """Collect, pretrain, BC-evaluate and train both arms for one env (reusing finished parts)."""
    import minari

    from mmrl.data import collect
    from mmrl.pretrain import load_encoder_checkpoint, pretrain
    from mmrl.train import train

    record: dict[str, Any] = {"env": env, "runs": {}}
    dataset_id = f"mmrl/{env}/pvs-expert-v0"
    checkpoint = out / f"{env}-{Path(args.agent).stem}.pt"
    if args.report_only and not (out / f"{env}-bc.json").is_file():
        return record  # nothing finished for this env yet
    try:
        dataset = minari.load_dataset(dataset_id)
    except FileNotFoundError:
        print(f"[{_stamp()}] {env}: collecting {args.episodes} expert episodes", flush=True)
        collect(env, "expert", args.episodes, dataset_id, epsilon=args.epsilon, seed=12345)
        dataset = minari.load_dataset(dataset_id)
    record["dataset_steps"] = int(dataset.total_steps)
    record["dataset_episodes"] = int(dataset.total_episodes)

    if not checkpoint.is_file():
        print(f"[{_stamp()}] {env}: pretraining {args.objectives}", flush=True)
        t0 = time.perf_counter()
        result = pretrain(dataset_id, args.agent, env=env, objectives=args.objectives,
                          epochs=args.pretrain_epochs, lr=args.pretrain_lr, out=checkpoint,
                          augment=args.augment, verbose=1)  # fmt: skip
        (out / f"{checkpoint.stem}.json").write_text(
            json.dumps(
                {
                    "wall_seconds": time.perf_counter() - t0,
                    "updates": result.updates,
                    "samples_per_second": result.samples_per_second,
                    "val": result.val_metrics,
                },
                indent=2,
            )
        )
    record["pretrain"] = json.loads((out / f"{checkpoint.stem}.json").read_text())
    record["pretrain"]["objectives"] = load_encoder_checkpoint(checkpoint)["info"]["objectives"]

    bc_file = out / f"{env}-bc.json"
    if not bc_file.is_file():
        print(f"[{_stamp()}] {env}: evaluating the BC policy alone", flush=True)
        bc_file.write_text(json.dumps(evaluate_bc(env, args.agent, checkpoint,
                                                  args.eval_episodes, 0), indent=2))  # fmt: skip
    record["bc"] = json.loads(bc_file.read_text())

    common = [f"eval_freq={args.eval_freq}", f"eval_episodes={args.eval_episodes}",
              f"checkpoint_freq={max(args.steps, 1)}", *args.set]  # fmt: skip
    init = [f"agent.init.path={json.dumps(str(checkpoint.resolve()))}",
            "agent.init.init_policy_head=true",
            f"agent.init.freeze_encoders_steps={args.freeze_steps}",
            f"agent.init.encoder_lr_scale={args.encoder_lr_scale}"]  # fmt: skip
    for seed in args.seeds:
        for arm in ARMS:
            run_dir = out / "runs" / f"{env}-{arm}-s{seed}"
            done = (run_dir / "metrics.json").is_file()
            if not done and time.time() < deadline:
                print(f"[{_stamp()}] {env}: PPO {arm} seed {seed}, {args.steps} steps", flush=True)
                train(env, args.agent, steps=args.steps, seed=seed, out=run_dir, force=True,
                      device=args.device, overrides=common + (init if arm == "pretrained" else []),
                      verbose=1)  # fmt: skip
                done = True
            if done:
                history = read_history(run_dir)
                record["runs"][f"{arm}-s{seed}"] = {
                    "arm": arm,
                    "seed": seed,
                    "history": history,
                    "steps_to_threshold": {
                        split: steps_to_threshold(history, split, args.threshold)
                        for split in ("train", "test")
                    },
                }
    return record


def summarize(records: list[dict], threshold: float, budget: int) -> tuple[str, dict]:
    """Markdown summary and the headline numbers (median steps to threshold per arm)."""
    lines = [
        f"Steps for PPO to reach {threshold:.0%} evaluation success (median over seeds; "
        f"'>{budget}' = not reached within the budget). BC = pretrained policy alone.",
        "",
        "| env | split | scratch | pretrained | ratio (pre/scratch) | BC alone success "
        "| final success scratch / pretrained | mean success over evals scratch / pretrained "
        "| seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    headline: dict[str, Any] = {}
    for rec in records:
        for split in ("train", "test"):
            per_arm = {}
            for arm in ARMS:
                vals = [r["steps_to_threshold"][split] for r in rec["runs"].values()
                        if r["arm"] == arm]  # fmt: skip
                per_arm[arm] = vals
            med = {
                arm: (float(np.median([v if v is not None else budget for v in vals]))
                      if vals else None)
                for arm, vals in per_arm.items()
            }  # fmt: skip
            censored = {arm: any(v is None for v in vals) for arm, vals in per_arm.items()}

            def show(arm: str, med=med, censored=censored) -> str:
                if med[arm] is None:
                    return "n/a"
                return f">{budget}" if censored[arm] and med[arm] >= budget else f"{med[arm]:.0f}"

            ratio = "n/a"
            if med["scratch"] and med["pretrained"] is not None:
                value = med["pretrained"] / med["scratch"]
                # A censored arm only bounds the ratio: scratch censored -> the true ratio is
                # smaller; pretrained censored -> larger; both -> unknown.
                bound = {(False, False): "", (True, False): "<", (False, True): ">"}.get(
                    (censored["scratch"], censored["pretrained"])
                )
                if bound is not None:
                    ratio = f"{bound}{value:.2f}"
            bc = rec.get("bc", {}).get(split, {}).get("success_rate")
            seeds = min(len(v) for v in per_arm.values())
            # Below the threshold, the curves still compare: last and mean evaluated success.
            final, mean = {}, {}
            for arm in ARMS:
                runs = [r for r in rec["runs"].values() if r["arm"] == arm and r["history"]]
                curves = [[row[split]["success_rate"] for row in r["history"]] for r in runs]
                final[arm] = float(np.mean([c[-1] for c in curves])) if curves else None
                mean[arm] = float(np.mean([np.mean(c) for c in curves])) if curves else None

            def pair(d: dict) -> str:
                return " / ".join("n/a" if d[a] is None else f"{d[a]:.2f}" for a in ARMS)

            lines.append(
                f"| {rec['env']} | {split} | {show('scratch')} | {show('pretrained')} | {ratio} | "
                f"{bc if bc is None else f'{bc:.2f}'} | {pair(final)} | {pair(mean)} | {seeds} |"
            )
            headline[f"{rec['env']}/{split}"] = {"median_steps": med, "censored": censored,
                                                 "bc_success": bc, "final_success": final,
                                                 "mean_success": mean, "seeds": seeds}  # fmt: skip
    lines += ["", "Offline cost of the pretrained arm:", ""]
    for rec in records:
        p = rec.get("pretrain", {})
        lines.append(
            f"- {rec['env']}: {rec.get('dataset_episodes')} expert episodes "
            f"({rec.get('dataset_steps')} env steps), pretraining {p.get('updates')} updates in "
            f"{p.get('wall_seconds', 0):.0f} s ({p.get('samples_per_second', 0):.0f} samples/s), "
            f"objectives {p.get('objectives')}"
        )
    return "\n".join(lines), headline


def plot(records: list[dict], path: Path, threshold: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, max(1, len(records)), figsize=(6 * max(1, len(records)), 4),
                             squeeze=False)  # fmt: skip
    colors = {"scratch": "tab:gray", "pretrained": "tab:blue"}
    for ax, rec in zip(axes[0], records):
        for arm in ARMS:
            for split, style in (("train", "-"), ("test", "--")):
                curves = [r["history"] for r in rec["runs"].values() if r["arm"] == arm]
                curves = [c for c in curves if c]
                if not curves:
                    continue
                n = min(len(c) for c in curves)
                steps = [c["step"] for c in curves[0][:n]]
                succ = np.array([[row[split]["success_rate"] for row in c[:n]] for c in curves])
                ax.plot(steps, succ.mean(0), style, color=colors[arm],
                        label=f"{arm} ({split}, {len(curves)} seeds)")  # fmt: skip
                ax.fill_between(steps, succ.min(0), succ.max(0), color=colors[arm], alpha=0.12)
        for split, style in (("train", "-"), ("test", "--")):
            bc = rec.get("bc", {}).get(split, {}).get("success_rate")
            if bc is not None:
                ax.axhline(bc, linestyle=style, color="tab:orange", alpha=0.7,
                           label=f"BC alone ({split})")  # fmt: skip
        ax.axhline(threshold, color="k", linewidth=0.5)
        ax.set(title=rec["env"], xlabel="env steps", ylabel="eval success rate", ylim=(-0.02, 1.02))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", default="driving,navigation")
    parser.add_argument("--agent", default="ppo-attention")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=300_000, help="PPO env steps per run")
    parser.add_argument("--eval-freq", type=int, help="env steps between evals (default steps/10)")
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--episodes", type=int, default=500, help="expert episodes collected")
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--objectives", default="bc,labels,contrastive,masked")
    parser.add_argument("--pretrain-epochs", type=int, default=30)
    parser.add_argument("--pretrain-lr", type=float, default=1e-3)
    parser.add_argument("--augment", default="none", choices=["none", "shift"])
    parser.add_argument("--freeze-steps", type=int, default=0)
    parser.add_argument("--encoder-lr-scale", type=float, default=1.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: no OpenMP spinning on a busy CPU)")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="run-config override of every PPO run, e.g. env.n_envs=8")  # fmt: skip
    parser.add_argument("--max-minutes", type=float, default=float("inf"),
                        help="start no new PPO run after this much wall time")  # fmt: skip
    parser.add_argument("--datasets", help="MINARI_DATASETS_PATH (default <out>/datasets)")
    parser.add_argument("--out", default="results/pretrain_vs_scratch")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    import torch as th

    th.set_num_threads(args.threads)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.eval_freq = args.eval_freq or max(1, args.steps // 10)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["MINARI_DATASETS_PATH"] = str(Path(args.datasets or out / "datasets").resolve())
    deadline = -1.0 if args.report_only else time.time() + 60 * args.max_minutes

    t0 = time.perf_counter()
    records = [run_env(env, args, out, deadline) for env in args.envs.split(",")]
    text, headline = summarize(records, args.threshold, args.steps)
    header = (
        f"# pretrain vs scratch ({time.strftime('%Y-%m-%d')}, agent {args.agent}, "
        f"{args.steps} steps/run, eval every {args.eval_freq} on {args.eval_episodes} episodes)\n\n"
        f"command: python {' '.join(sys.argv)}\n\n"
    )
    (out / "summary.md").write_text(header + text + "\n")
    (out / "results.json").write_text(json.dumps({"args": {k: v for k, v in vars(args).items()},
                                                   "headline": headline, "records": records},
                                                  indent=2, default=str))  # fmt: skip
    plot(records, out / "pretrain_vs_scratch.png", args.threshold)
    print(header + text)
    print(f"\nwrote {out / 'summary.md'}, {out / 'pretrain_vs_scratch.png'} "
          f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
