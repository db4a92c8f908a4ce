"""Does pretraining pay? PPO from pretrained encoders vs from scratch, and BC alone.

For each environment: collect an expert dataset (``mmrl collect``), pretrain the recipe's
extractor and BC head on it (``mmrl pretrain``), then for each seed train PPO twice with the
same budget — from scratch and from the checkpoint (``--init-from`` + BC head) — with
periodic held-out evaluations on the train and the held-out (test) instruction split. The
BC policy alone (the pretrained policy before any PPO update) is evaluated as well.

Reported per env and arm: env steps until the evaluation success rate first reaches the
threshold (80%), on each split; censored runs (never reached) count as their last
evaluated step, shown as ``>N``. The bar of issue 6: pretrained needs at most half the steps
of scratch. The offline data and pretraining cost are reported next to it, since the
pretrained arm used ``dataset_steps`` expert transitions that scratch did not.

``--scratch-runs DIR`` reuses finished from-scratch runs of ``scripts/learning_curves.py``
(``DIR/<env>-s<seed>``, same agent and evaluation schedule, checked) as the scratch arm
instead of training it (seeds whose run is not finished yet are left out until a rerun).
``--stop-at-threshold`` ends each PPO run trained here at its first evaluation reaching the
threshold on ``--stop-split`` (``stop_success``), since the steps to the threshold are the
measurement and later steps would only cost CPU time; rerunning with ``--stop-split test``
continues runs that stopped on the train split until the held-out instructions reach it too.

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
from pathlib import Path
from typing import Any

import numpy as np

from mmrl.runs import RunFolder

ARMS = ("scratch", "pretrained")


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def evaluate_bc(env: str, agent: str, checkpoint: Path, episodes: int, seed: int) -> dict:
    """Success of the pretrained policy alone (BC head, deterministic), per split."""
    from mmrl.pretrain.bc_policy import load_bc_policy
    from mmrl.rollout import collect_episodes, summarize
    from mmrl.train import build_vec_env

    _, policy, config = load_bc_policy(checkpoint, env)
    assert config.agent_name == agent, (config.agent_name, agent)
    results = {}
    for split in ("train", "test"):
        venv = build_vec_env(config, config.eval_seed, min(episodes, 16), split)
        venv.seed(config.eval_seed)
        results[split] = summarize(collect_episodes(policy.predict, venv, episodes))
    return results


def steps_to_threshold(history: list[dict], split: str, threshold: float) -> int | None:
    """First evaluated step whose success rate on ``split`` reaches ``threshold``."""
    for row in history:
        if split in row and row[split]["success_rate"] >= threshold:
            return int(row["step"])
    return None


def read_history(run_dir: Path) -> list[dict]:
    return RunFolder(run_dir).evaluations()


def reused_scratch_run(env: str, seed: int, args: argparse.Namespace) -> Path | None:
    """The finished learning-curve run for (env, seed) from ``--scratch-runs``, if usable.

    Raises:
        SystemExit: The run exists but used another agent or evaluation schedule, which
            would make the comparison unfair.
    """
    if not args.scratch_runs:
        return None
    run_dir = Path(args.scratch_runs) / f"{env}-s{seed}"
    run = RunFolder(run_dir)
    if not run.finished:
        return None
    config = run.config()
    expected = {"agent_name": args.agent, "eval_freq": args.eval_freq,
                "eval_episodes": args.eval_episodes, "seed": seed}  # fmt: skip
    differing = {k: (getattr(config, k), v) for k, v in expected.items() if getattr(config, k) != v}
    if differing:
        what = ", ".join(f"{k} (run {a!r}, here {b!r})" for k, (a, b) in differing.items())
        raise SystemExit(f"--scratch-runs {run_dir}: differs from this comparison in {what}")
    return run_dir


def run_record(run_dir: Path, arm: str, seed: int, threshold: float) -> dict[str, Any]:
    """One run's evaluation history and steps to ``threshold`` per split.

    ``last_step`` (the last evaluation) is where a split that never reached the threshold is
    censored: the budget for a full run, the stopping step for a run stopped early.
    """
    history = read_history(run_dir)
    metrics = RunFolder(run_dir).metrics() or {}
    return {
        "arm": arm,
        "seed": seed,
        "dir": str(run_dir),
        "last_step": int(history[-1]["step"]) if history else 0,
        "stopped_early_at": metrics.get("stopped_early_at"),
        "history": history,
        "steps_to_threshold": {
            split: steps_to_threshold(history, split, threshold) for split in ("train", "test")
        },
    }


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
                          augment=args.augment, monitor=args.pretrain_monitor,
                          patience=args.pretrain_patience, verbose=1)  # fmt: skip
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
    stop = args.threshold if args.stop_at_threshold else None
    for seed in args.seeds:
        for arm in ARMS:
            run_dir = out / "runs" / f"{env}-{arm}-s{seed}"
            reused = arm == "scratch" and args.scratch_runs
            if reused:
                run_dir = reused_scratch_run(env, seed, args) or run_dir
            done = RunFolder(run_dir).finished
            # With --scratch-runs the scratch arm is never trained here: an unfinished
            # learning-curve run is left out until a later rerun of this script finds it.
            if not done and not reused and time.time() < deadline:
                print(f"[{_stamp()}] {env}: PPO {arm} seed {seed}, {args.steps} steps", flush=True)
                train(env, args.agent, steps=args.steps, seed=seed, out=run_dir, force=True,
                      device=args.device, overrides=common + (init if arm == "pretrained" else []),
                      stop_success=stop, stop_split=args.stop_split, verbose=1)  # fmt: skip
                done = True
            elif done and not reused and stop is not None and time.time() < deadline:
                # A run stopped on another split (or with a smaller budget) continues from its
                # final checkpoint until this split reaches the threshold or --steps.
                rec = run_record(run_dir, arm, seed, args.threshold)
                if (
                    rec["steps_to_threshold"][args.stop_split] is None
                    and rec["last_step"] < args.steps
                ):
                    print(f"[{_stamp()}] {env}: PPO {arm} seed {seed} continues to "
                          f"{args.threshold:.0%} on {args.stop_split}, <= {args.steps} steps",
                          flush=True)  # fmt: skip
                    train(resume=run_dir, steps=args.steps, stop_success=stop,
                          stop_split=args.stop_split, verbose=1)  # fmt: skip
            if done:
                record["runs"][f"{arm}-s{seed}"] = run_record(run_dir, arm, seed, args.threshold)
    return record


def _fmt_steps(value: float | None, censored: bool) -> str:
    if value is None:
        return "n/a"
    return f">{value / 1000:.0f}k" if censored else f"{value / 1000:.0f}k"


def arm_steps(runs: list[dict], split: str) -> tuple[float | None, bool, str]:
    """Median steps to threshold over seeds (a censored run counts as its last evaluation).

    Returns:
        ``(median, censored, per_seed)``: ``censored`` when the median is only a lower bound
        (it falls on a run that never reached the threshold); ``per_seed`` lists each seed.
    """
    if not runs:
        return None, False, "n/a"
    runs = sorted(runs, key=lambda r: r["seed"])
    values = [(r["steps_to_threshold"][split], r["last_step"]) for r in runs]
    filled = [reached if reached is not None else budget for reached, budget in values]
    median = float(np.median(filled))
    censored_floor = min((b for reached, b in values if reached is None), default=None)
    censored = censored_floor is not None and median >= censored_floor
    per_seed = ", ".join(
        f"s{r['seed']} " + _fmt_steps(reached if reached is not None else budget, reached is None)
        for r, (reached, budget) in zip(runs, values)
    )
    return median, censored, per_seed


def summarize(records: list[dict], threshold: float) -> tuple[str, dict]:
    """Markdown summary and the headline numbers (median steps to threshold per arm)."""
    lines = [
        f"Environment steps for PPO to reach {threshold:.0%} evaluation success on held-out "
        "seeds (median over seeds; '>N' = not reached by the run's last evaluation at N steps, "
        "its budget or where it stopped). "
        "BC alone = the pretrained policy before any PPO update.",
        "",
        "| env | instruction split | scratch (median) | pretrained (median) "
        "| ratio pretrained / scratch (bar <= 0.5) | scratch per seed | pretrained per seed "
        "| BC alone success |",
        "|---|---|---|---|---|---|---|---|",
    ]
    headline: dict[str, Any] = {}
    for rec in records:
        for split in ("train", "test"):
            by_arm = {arm: [r for r in rec["runs"].values() if r["arm"] == arm] for arm in ARMS}
            s_med, s_cens, s_seeds = arm_steps(by_arm["scratch"], split)
            p_med, p_cens, p_seeds = arm_steps(by_arm["pretrained"], split)
            ratio = "n/a"
            if s_med and p_med is not None:
                # A censored arm only bounds the ratio: scratch censored -> the true ratio is
                # smaller; pretrained censored -> larger; both -> unknown.
                bound = {(False, False): "", (True, False): "<", (False, True): ">"}.get(
                    (s_cens, p_cens)
                )
                if bound is not None:
                    ratio = f"{bound}{p_med / s_med:.2f}"
            bc = rec.get("bc", {}).get(split, {}).get("success_rate")
            lines.append(
                f"| {rec['env']} | {split} | {_fmt_steps(s_med, s_cens)} | "
                f"{_fmt_steps(p_med, p_cens)} | {ratio} | {s_seeds} | {p_seeds} | "
                f"{'n/a' if bc is None else f'{bc:.2f}'} |"
            )
            headline[f"{rec['env']}/{split}"] = {
                "median_steps": {"scratch": s_med, "pretrained": p_med},
                "censored": {"scratch": s_cens, "pretrained": p_cens},
                "ratio": ratio,
                "bc_success": bc,
            }
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
        # One line per seed: runs stopped at the threshold end early, so a mean over seeds
        # would only cover the shortest run.
        for arm in ARMS:
            runs = [r for r in rec["runs"].values() if r["arm"] == arm and r["history"]]
            for split, style in (("train", "-"), ("test", "--")):
                for i, run in enumerate(runs):
                    steps = [row["step"] for row in run["history"]]
                    succ = [row[split]["success_rate"] for row in run["history"]]
                    label = f"{arm} ({split}, {len(runs)} seeds)" if i == 0 else None
                    ax.plot(steps, succ, style, color=colors[arm], alpha=0.7, label=label)
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
    parser.add_argument(
        "--pretrain-monitor",
        default="total",
        help="loss pretraining's early stopping follows (total or e.g. bc)",
    )
    parser.add_argument("--pretrain-patience", type=int, default=5)
    parser.add_argument("--augment", default="none", choices=["none", "shift"])
    parser.add_argument("--freeze-steps", type=int, default=0)
    parser.add_argument("--encoder-lr-scale", type=float, default=1.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scratch-runs", metavar="DIR",
                        help="reuse learning_curves.py runs DIR/<env>-s<seed>")  # fmt: skip
    parser.add_argument(
        "--stop-at-threshold",
        action="store_true",
        help="end each PPO run trained here at its first eval >= threshold",
    )
    parser.add_argument(
        "--stop-split",
        default="train",
        choices=["train", "test"],
        help="split --stop-at-threshold watches; 'test' continues runs stopped on train",
    )
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
    text, headline = summarize(records, args.threshold)
    header = (
        f"# pretrain vs scratch ({time.strftime('%Y-%m-%d')}, agent {args.agent}, "
        f"budget {args.steps} steps/run in this command — runs from earlier commands keep "
        f"theirs, '>N' shows each run's last evaluation; eval every {args.eval_freq} on "
        f"{args.eval_episodes} episodes)\n\n"
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
