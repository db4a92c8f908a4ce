"""Benchmark: how far ``mmrl evaluate-offline``'s estimators can be trusted (issue 18).

A pool of policies of clearly different quality is evaluated twice: online (true discounted
returns from fresh episodes) and offline (every estimator on logged data it did not produce),
and the offline estimates are scored in the DOPE protocol (Fu et al., ICLR 2021):

* ``abs_error``: mean ``|estimate - true|`` over the pool, divided by the pool's true-return
  range (max - min);
* ``spearman``: rank correlation between estimates and true returns;
* ``regret_at_1``: ``(best true return - true return of the policy the estimator ranks
  first) / range``.

The pool (built by this script, nothing to download): the environment's scripted expert
mixed with uniform random actions at several noise levels ``epsilon`` (``expert-eps0.3``
acts randomly 30 % of the time; ``epsilon = 1`` is the random policy). Their action
probabilities are exact given the logged expert action, so the estimators' errors come from
the estimators and the data, not from a mis-specified target. The logged datasets are
``mmrl collect --policy expert --epsilon E``: a *broad* one (``E = 0.5``: every action well
covered) and a *narrow* one (``E = 0.05``: nearly the expert only, the hard case for
importance weights of the noisier policies). Both log the exact behaviour probabilities.

Not (yet) in the pool: PPO checkpoints, BC policies and modality-masked policies, which
the issue's full benchmark asks for; see BENCHMARKS.md.

Usage::

    python scripts/bench_ope.py --quick            # minutes: Navigation, small sizes
    python scripts/bench_ope.py --envs navigation,driving --online-episodes 200

Writes ``ope.json`` (``{env: {dataset: {estimator: {"spearman", "regret_at_1",
"abs_error"}}}}``), ``details.json`` (every estimate and true return), ``summary.md`` and
``ope.png`` (offline estimate vs online return) into ``--out``; datasets are cached in
``--out/datasets`` and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

ESTIMATORS = ("fqe", "pdis", "wpdis", "dr", "wdr")
POOL_EPSILONS = (0.0, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0)
DATASETS = {"broad": 0.5, "narrow": 0.05}


# ---------------------------------------------------------------------------- online truth
def online_returns(env: str, epsilon: float, episodes: int, gamma: float, seed: int) -> np.ndarray:
    """Discounted returns of the first ``episodes`` episodes of the noisy expert, online.

    Episodes are counted when they start (as ``mmrl collect`` counts them), so short
    episodes are not over-represented.
    """
    from mmrl.make import make_training_vec_env, resolve_env
    from mmrl.policies import find_expert, random_actions

    n = min(16, episodes)
    venv = make_training_vec_env(resolve_env(env), n_envs=n, seed=seed, monitor=False)
    expert = find_expert(venv)
    rng = np.random.default_rng(seed + 1)
    venv.reset()
    ret, disc = np.zeros(n), np.ones(n)
    active = np.arange(n) < episodes
    started, done_returns = n, []
    while len(done_returns) < episodes:
        actions = np.asarray(expert()).copy()
        noisy = rng.random(n) < epsilon
        if noisy.any():
            actions[noisy] = random_actions(venv.action_space, n, rng)[noisy]
        _, rewards, dones, _ = venv.step(actions)
        ret += disc * rewards
        disc *= gamma
        for i in np.flatnonzero(dones):
            if active[i]:
                done_returns.append(ret[i])
            active[i] = started < episodes
            started += int(active[i])
            ret[i], disc[i] = 0.0, 1.0
    venv.close()
    return np.asarray(done_returns[:episodes])


# ---------------------------------------------------------------------------- scores
def dope_scores(estimates: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Normalized absolute error, Spearman rank correlation and normalized regret@1."""
    from scipy.stats import spearmanr

    span = float(truth.max() - truth.min()) or 1.0
    ok = np.isfinite(estimates)
    rho = spearmanr(estimates[ok], truth[ok]).statistic if ok.sum() > 2 else float("nan")
    best = int(np.nanargmax(np.where(ok, estimates, -np.inf)))
    return {
        "spearman": float(rho),
        "regret_at_1": float((truth.max() - truth[best]) / span),
        "abs_error": float(np.mean(np.abs(estimates[ok] - truth[ok])) / span),
    }


# ---------------------------------------------------------------------------- one env
def run_env(env: str, args: argparse.Namespace, out: Path) -> tuple[dict, dict]:
    from mmrl.collect import collect
    from mmrl.evaluation.offline import load_logged_data
    from mmrl.evaluation.ranking import evaluate_policies
    from mmrl.policies import ReferencePolicy

    print(f"== {env}: true returns of {len(POOL_EPSILONS)} policies, "
          f"{args.online_episodes} online episodes each")  # fmt: skip
    t0 = time.perf_counter()
    truth = {}
    for k, eps in enumerate(POOL_EPSILONS):
        returns = online_returns(env, eps, args.online_episodes, args.gamma, 50_000 + 97 * k)
        truth[f"expert-eps{eps:g}"] = returns
        print(f"   expert-eps{eps:g}: {returns.mean():.3f} +- "
              f"{returns.std() / np.sqrt(len(returns)):.3f}")  # fmt: skip
    print(f"   ({time.perf_counter() - t0:.0f} s)")
    labels = list(truth)
    true = np.array([truth[label].mean() for label in labels])
    scores: dict[str, Any] = {}
    details: dict[str, Any] = {"true_returns": {k: float(v.mean()) for k, v in truth.items()}}
    for name, eps in DATASETS.items():
        dataset_id = f"bench/{env}/{name}-e{round(100 * eps)}-n{args.dataset_episodes}-v0"
        if not (out / "datasets" / dataset_id).exists():
            collect(env=env, policy="expert", episodes=args.dataset_episodes,
                    dataset_id=dataset_id, epsilon=eps, seed=args.seed)  # fmt: skip
        data = load_logged_data(dataset_id)
        policies = []
        for eps_pool in POOL_EPSILONS:
            policy = ReferencePolicy("expert")
            policy.epsilon = eps_pool  # evaluated as the epsilon-mixture (ranking docs)
            policy.label = f"expert-eps{eps_pool:g}"
            policies.append(policy)
        t1 = time.perf_counter()
        ranking = evaluate_policies(
            policies, data, ESTIMATORS, args.gamma, features="data",
            iterations=args.fqe_iters, steps_per_iter=args.fqe_steps,
            n_resamples=args.bootstrap, seed=args.seed,
        )  # fmt: skip
        seconds = time.perf_counter() - t1
        by_label = {r.label: r for r in ranking.reports}
        scores[name] = {}
        details[name] = {"dataset": dataset_id, "behaviour_epsilon": eps,
                         "episodes": data.n_episodes, "transitions": data.n_transitions,
                         "seconds": round(seconds, 1), "estimates": {}}  # fmt: skip
        for est in ESTIMATORS:
            values = np.array([
                by_label[label].estimates[est].value if est in by_label[label].estimates
                else np.nan for label in labels
            ])  # fmt: skip
            scores[name][est] = dope_scores(values, true)
            details[name]["estimates"][est] = {
                label: {**by_label[label].estimates[est].to_dict()}
                for label in labels if est in by_label[label].estimates
            }  # fmt: skip
        details[name]["support_coverage"] = {
            label: by_label[label].support.coverage for label in labels if by_label[label].support
        }
        print(f"   {name} (epsilon {eps}, {data.n_episodes} episodes, {seconds:.0f} s):")
        for est, s in scores[name].items():
            print(f"     {est:<6} spearman {s['spearman']:+.2f}  regret@1 "
                  f"{s['regret_at_1']:.2f}  abs_error {s['abs_error']:.2f}")  # fmt: skip
    return scores, details


def _figure(details: dict, out: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [(env, name) for env, d in details.items() for name in DATASETS if name in d]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, (env, name) in zip(axes[0], panels):
        true = details[env]["true_returns"]
        for est, values in details[env][name]["estimates"].items():
            xs = [true[label] for label in values]
            ax.plot(xs, [v["value"] for v in values.values()], "o", label=est, alpha=0.7)
        lo, hi = min(true.values()), max(true.values())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(title=f"{env} / {name}", xlabel="online return", ylabel="offline estimate")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path = out / "ope.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _summary(scores: dict, details: dict, args: argparse.Namespace, command: str) -> str:
    lines = [
        "# Off-policy evaluation benchmark (scripts/bench_ope.py)", "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d')}, machine: {platform.machine()} "
        f"{os.cpu_count()} CPUs, gamma {args.gamma}, {args.online_episodes} online episodes "
        f"per policy, {args.dataset_episodes} logged episodes per dataset.", "",
        f"Pool: the scripted expert at epsilon {', '.join(f'{e:g}' for e in POOL_EPSILONS)}. "
        "Scores as in DOPE: abs_error and regret@1 normalized by the pool's return range.", "",
    ]  # fmt: skip
    for env, per_dataset in scores.items():
        lines += [f"## {env}", "", "| dataset | estimator | spearman | regret@1 | abs error |",
                  "|---|---|---:|---:|---:|"]  # fmt: skip
        for name, per_est in per_dataset.items():
            for est, s in per_est.items():
                lines.append(f"| {name} | {est} | {s['spearman']:+.2f} | "
                             f"{s['regret_at_1']:.2f} | {s['abs_error']:.2f} |")  # fmt: skip
        lines.append("")
        true = details[env]["true_returns"]
        lines.append("True returns: " + ", ".join(f"{k} {v:.3f}" for k, v in true.items()))
        for name in per_dataset:
            cov = details[env][name]["support_coverage"]
            ess = {k: v["ess"] for k, v in details[env][name]["estimates"]["pdis"].items()}
            lines.append(f"\n{name}: support coverage " + ", ".join(
                f"{k} {v:.2f}" for k, v in cov.items()) + "; PDIS ESS " + ", ".join(
                f"{k} {v:.0f}" for k, v in ess.items()))  # fmt: skip
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test in minutes")
    p.add_argument("--envs", default=None, help="comma-separated presets (default navigation,"
                   "driving; --quick: navigation)")  # fmt: skip
    p.add_argument("--online-episodes", type=int, default=None)
    p.add_argument("--dataset-episodes", type=int, default=None)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--fqe-iters", type=int, default=None)
    p.add_argument("--fqe-steps", type=int, default=None)
    p.add_argument("--bootstrap", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench_ope", help="results folder (git-ignored)")
    args = p.parse_args(argv)
    quick = {"envs": "navigation", "online_episodes": 50, "dataset_episodes": 100,
             "fqe_iters": 60, "fqe_steps": 10, "bootstrap": 200}  # fmt: skip
    full = {"envs": "navigation,driving", "online_episodes": 200, "dataset_episodes": 300,
            "fqe_iters": None, "fqe_steps": 25, "bootstrap": 1000}  # fmt: skip
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    import torch as th

    # The Q-networks and behaviour models are small MLPs: one thread is ~4x faster than
    # several fighting over 2 cores (measured on the benchmark machine).
    th.set_num_threads(1)
    out = Path(args.out)
    (out / "datasets").mkdir(parents=True, exist_ok=True)
    os.environ["MINARI_DATASETS_PATH"] = str((out / "datasets").resolve())
    command = "python scripts/bench_ope.py " + " ".join(argv if argv is not None else [])
    t0 = time.perf_counter()
    scores, details = {}, {}
    for env in [e.strip() for e in args.envs.split(",") if e.strip()]:
        scores[env], details[env] = run_env(env, args, out)
    (out / "ope.json").write_text(json.dumps(scores, indent=2) + "\n")
    (out / "details.json").write_text(json.dumps(details, indent=2) + "\n")
    (out / "summary.md").write_text(_summary(scores, details, args, command.strip()))
    figure = _figure(details, out)
    wrote = [out / "ope.json", out / "summary.md", *([figure] if figure else [])]
    print(f"wrote {', '.join(map(str, wrote))} in {time.perf_counter() - t0:.0f} s")
    return scores


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
