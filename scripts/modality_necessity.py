"""Is every sensor necessary? A policy's success with each modality masked, per split and task.

Necessity is a measurement, not a docstring (DESIGN.md, "Why each modality matters"): this
script evaluates a policy with clean observations and with each modality masked in turn
(``camera``, ``lidar``, ``text``, ``state``), on both instruction splits, next to the scripted
expert and a uniformly random policy run on the same seeds, and reports each drop in success
(clean - masked) with a 95 % interval, per split and per instruction group.

The policy is anything ``mmrl evaluate`` accepts (a run folder, a ``model.zip`` with
``--env``, a pretraining checkpoint), loaded by the same code (``mmrl.policies.load_policy``),
or one trained here through ``mmrl.train`` (``--train-steps N --env PRESET --agent RECIPE
--seed S``, into ``OUT/run``; a rerun with the same training arguments reuses it).
``--references-only --env PRESET`` evaluates just the expert and the random policy. The
environment is the run's own unless ``--env`` names another preset.

Masking goes through the evaluation engine (``mmrl.evaluation.robustness``), in two kinds:

* ``extractor``: the policy's MultimodalExtractor replaces the modality by its learned
  "missing" embedding (what a model trained with modality dropout expects); only policies
  with that extractor have it;
* ``zero``: the observation key is zeroed before the policy sees it (a black image, zero
  ranges, an all-padding instruction, a zero state vector).

The references have no network, so only ``zero`` applies to them. The expert acts from the
simulator's privileged state and the random policy ignores observations, so their masked
rows must equal their clean ones: a check that every condition replays the same episodes.

Seeds: evaluation copy ``i`` is seeded with ``--eval-seed + i`` (10000, as ``mmrl evaluate``:
held out from training; a run whose training or periodic-evaluation seeds overlap them is
refused), the same for every policy and condition. There are as many copies as episodes (at
most 256) unless ``--n-envs`` says otherwise, so by default every condition starts every
episode from the same state: a paired comparison. Drops get Newcombe's interval for two
independent rates (``mmrl.evaluation.stats.newcombe_diff_interval``), which is conservative
for such positively correlated samples; ``*`` marks drops whose interval excludes zero.

Groups (``--group-by``, as in ``mmrl evaluate``): ``auto`` names Driving's episodes by their
task (``info["labels"]["instruction_type"]`` -> ``mmrl.envs.driving.instructions.TASKS``) and
Navigation's by the target's shape; ``label:target_color`` groups by colour instead.

    python scripts/modality_necessity.py runs/driving-s0 --out results/necessity/driving
    python scripts/modality_necessity.py --train-steps 300000 --env navigation \\
        --agent ppo-attention --seed 0 --out results/necessity/navigation
    python scripts/modality_necessity.py --references-only --env driving --episodes 50 \\
        --out /tmp/necessity

``--within-steps 50,75`` adds a table of each condition's success within that many steps of
the episode (read from the successful episodes' lengths, kept in ``success_lengths``): what a
shorter time limit would leave of each condition, e.g. whether a search without the lidar
needs the whole episode.

Writes ``necessity.json`` (``{"meta", "results": {policy: {split: {condition: {"success",
"ci", "episodes", "by_group", "success_lengths", ...}}}}, "drops": {policy: {split:
{condition: {"drop", "ci", "significant", "by_group"}}}}, "verdicts"}``), ``necessity.md``
and ``necessity.png`` into ``--out``, and prints the tables with the command to reproduce,
the date and the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

MODALITIES = ("camera", "lidar", "text", "state")
MASK_KINDS = ("extractor", "zero")
"""``--ablate-mode`` values of the evaluation engine that replace a modality."""
REFERENCES = ("expert", "random")
AGENT = "agent"
CLEAN = "clean"
MAX_COPIES = 256
"""Default copies: one per episode up to this many (each copy then runs one episode)."""
TRAIN_RECORD = "necessity_train.json"


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors become :class:`UsageError` (one line, exit status 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# ---------------------------------------------------------------------------- arguments
def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parses and checks the command line.

    Raises:
        UsageError: Unknown options, malformed or out-of-range values, or a missing policy.
    """
    p = _Parser(
        prog="modality_necessity.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "policy",
        nargs="?",
        metavar="RUN_DIR|MODEL.zip|ENCODER.pt",
        help="the policy to measure (anything mmrl evaluate accepts)",
    )
    p.add_argument("--env", help="env preset or Gymnasium id (default: the run's own)")
    p.add_argument("--train-steps", type=int, metavar="N", help="train a policy for N env steps")
    p.add_argument("--agent", default="ppo-attention", help="agent recipe for --train-steps")
    p.add_argument("--seed", type=int, default=0, help="training seed for --train-steps")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="run-config override for --train-steps (repeatable)",
    )
    p.add_argument(
        "--references-only",
        action="store_true",
        help="evaluate only the expert and random references (needs --env)",
    )
    p.add_argument("--episodes", type=int, default=200, help="episodes per condition")
    p.add_argument("--splits", default="train,test", help="instruction splits")
    p.add_argument("--modalities", default=",".join(MODALITIES), help="keys masked in turn")
    p.add_argument("--mask-kinds", default=",".join(MASK_KINDS), help="extractor and/or zero")
    p.add_argument(
        "--references",
        default=",".join(REFERENCES),
        help="reference policies on the same seeds: expert, random, both or none",
    )
    p.add_argument("--eval-seed", type=int, default=10_000, help="copy i is seeded eval-seed+i")
    p.add_argument("--n-envs", type=int, help=f"copies (default min(episodes, {MAX_COPIES}))")
    p.add_argument("--group-by", default="auto", help="auto, verb, instruction, none, label:KEY")
    p.add_argument("--stochastic", action="store_true", help="sample actions (default greedy)")
    p.add_argument("--device", default="cpu", help="policy device: cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument(
        "--within-steps",
        default="",
        metavar="T1,T2",
        help="also tabulate success within T steps of each episode (how much of each "
        "condition's success would survive a shorter time limit)",
    )
    p.add_argument("--out", default="results/necessity", help="output folder")
    args = p.parse_args(argv)

    for flag in ("episodes", "threads", "n_envs", "train_steps"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    try:
        args.within_steps = sorted({int(t) for t in args.within_steps.split(",") if t.strip()})
    except ValueError:
        raise UsageError(
            f"--within-steps takes whole step counts like 50,75, got {args.within_steps!r}"
        ) from None
    if any(t < 1 for t in args.within_steps):
        raise UsageError(f"--within-steps must be >= 1 each, got {args.within_steps}")
    args.splits = _items(args.splits, ("train", "test"), "--splits")
    args.modalities = _items(args.modalities, MODALITIES, "--modalities")
    args.mask_kinds = _items(args.mask_kinds, MASK_KINDS, "--mask-kinds")
    args.references = (
        [] if args.references == "none" else _items(args.references, REFERENCES, "--references")
    )
    sources = [args.policy is not None, args.train_steps is not None, args.references_only]
    if sum(sources) != 1:
        raise UsageError(
            "give exactly one of: a policy (RUN_DIR, MODEL.zip or ENCODER.pt), --train-steps N "
            "(with --env and --agent), or --references-only (with --env)"
        )
    if args.policy is not None and not Path(args.policy).exists():
        raise UsageError(f"policy {args.policy}: no such run folder or model file")
    if args.env is None and args.policy is None:
        raise UsageError("--train-steps and --references-only need --env PRESET")
    if args.references_only and not args.references:
        raise UsageError("--references-only with --references none leaves nothing to evaluate")
    if args.set and args.train_steps is None:
        raise UsageError("--set changes the run --train-steps trains; it needs --train-steps")
    return args


def _items(text: str, allowed: Sequence[str], flag: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if not items or bad:
        raise UsageError(
            f"{flag}: unknown {', '.join(map(repr, bad)) or 'empty list'}; "
            f"allowed: {', '.join(allowed)} (comma-separated)"
        )
    return list(dict.fromkeys(items))


# ---------------------------------------------------------------------------- the agent
def train_or_reuse(args: argparse.Namespace, out: Path) -> Path:
    """Trains the agent into ``OUT/run``, or reuses a run finished with the same arguments."""
    from mmrl.runs import RunFolder
    from mmrl.train import train

    run_dir = out / "run"
    wanted = {"env": args.env, "agent": args.agent, "steps": args.train_steps,
              "seed": args.seed, "set": list(args.set)}  # fmt: skip
    record = run_dir / TRAIN_RECORD
    finished = RunFolder(run_dir).model_path.is_file() and record.is_file()
    if finished and json.loads(record.read_text()) == wanted:
        print(f"reusing {run_dir} (trained with the same arguments)", flush=True)
        return run_dir
    print(f"training {args.agent} on {args.env}, {args.train_steps} steps, seed {args.seed}",
          flush=True)  # fmt: skip
    train(args.env, args.agent, steps=args.train_steps, seed=args.seed, out=run_dir,
          overrides=list(args.set), device=args.device, force=True, verbose=1)  # fmt: skip
    record.write_text(json.dumps(wanted, indent=2) + "\n")
    return run_dir


def check_held_out(config: Any, eval_seed: int, copies: int) -> None:
    """Refuses evaluation seeds that a run trained on or selected its best model with.

    Args:
        config: The run's :class:`~mmrl.config.RunConfig` (``None`` for a bare model file).
        eval_seed: First evaluation seed.
        copies: Evaluation copies (seeds ``eval_seed .. eval_seed + copies - 1``).

    Raises:
        UsageError: The ranges overlap.
    """
    if config is None:
        return
    used = {
        "training": (config.seed, config.env.n_envs),
        # At most eval_episodes copies: a bound of what mmrl train's evaluations used.
        "periodic evaluation": (config.eval_seed, config.eval_episodes),
    }
    for what, (start, count) in used.items():
        if eval_seed < start + count and start < eval_seed + copies:
            raise UsageError(
                f"--eval-seed {eval_seed}: seeds {eval_seed}..{eval_seed + copies - 1} overlap the "
                f"run's {what} seeds {start}..{start + count - 1}; choose seeds outside them"
            )


# ---------------------------------------------------------------------------- measurement
def condition_name(modality: str, kind: str) -> str:
    """Row name of ``modality`` masked with ``kind``: ``-camera:extractor``."""
    return f"-{modality}:{kind}"


def mask_kinds_for(model: Any, kinds: Sequence[str]) -> list[str]:
    """The mask kinds that apply to ``model`` (``extractor`` needs a MultimodalExtractor)."""
    from mmrl.evaluation.conditions import has_extractor_mask

    return [k for k in kinds if k != "extractor" or has_extractor_mask(model)]


def measure(
    model: Any,
    env_config: Any,
    settings: Any,
    modalities: Sequence[str],
    kinds: Sequence[str],
    splits: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Evaluates ``model`` clean and with each modality masked with each kind.

    Args:
        model: A :class:`~mmrl.policies.Policy` (see :func:`mmrl.policies.load_policy`).
        env_config: The environment preset.
        settings: :class:`~mmrl.evaluation.rollouts.EvalSettings` (episodes, seeds ...);
            ``ablate_mode`` is set per kind.
        modalities: Observation keys masked one at a time.
        kinds: Mask kinds that apply to ``model`` (see :func:`mask_kinds_for`).
        splits: Instruction splits.

    Returns:
        ``{split: {condition: EvalResult}}``, conditions ordered ``clean`` then per modality
        per kind.
    """
    from mmrl.evaluation.rollouts import Condition, evaluate_model

    by_split: dict[str, dict[str, Any]] = {split: {} for split in splits}
    for result in evaluate_model(model, env_config, settings, (Condition(),), splits):
        by_split[result.split][CLEAN] = result
    masked: dict[tuple[str, str], Any] = {}
    for kind in kinds:
        conditions = [Condition(condition_name(m, kind), ablate=(m,)) for m in modalities]
        kind_settings = dataclasses.replace(settings, ablate_mode=kind)
        for result in evaluate_model(model, env_config, kind_settings, conditions, splits):
            masked[result.split, result.condition.name] = result
    for split in splits:
        for m in modalities:
            for kind in kinds:
                by_split[split][condition_name(m, kind)] = masked[split, condition_name(m, kind)]
    return by_split


def _rate(successes: np.ndarray, confidence: float) -> dict[str, Any]:
    from mmrl.evaluation.stats import wilson_interval

    iv = wilson_interval(int(successes.sum()), len(successes), confidence)
    return {"success": iv.value, "ci": [iv.low, iv.high], "episodes": len(successes)}


def _drop(clean: np.ndarray, masked: np.ndarray, confidence: float) -> dict[str, Any]:
    from mmrl.evaluation.stats import newcombe_diff_interval

    iv = newcombe_diff_interval(
        int(clean.sum()), len(clean), int(masked.sum()), len(masked), confidence
    )
    return {"drop": iv.value, "ci": [iv.low, iv.high], "significant": bool(iv.low > 0)}


def _groups(result: Any) -> dict[str, np.ndarray]:
    names = np.array(result.groups, dtype=object)
    return {g: result.successes[names == g] for g in sorted(set(result.groups))}


def condition_record(result: Any) -> dict[str, Any]:
    """Success with its Wilson interval, overall and per instruction group (plain data)."""
    conf = result.settings.confidence
    masked = list(result.condition.ablate)
    return {
        **_rate(result.successes, conf),
        "masked": masked,
        "mask_kind": result.settings.ablate_mode if masked else None,
        "mean_return": result.mean_return.value,
        "by_group": {g: _rate(s, conf) for g, s in _groups(result).items()},
        # Kept so that success under a shorter time limit can be read later (--within-steps).
        "success_lengths": sorted(int(n) for n in result.lengths[result.successes]),
    }


def success_within(record: Mapping[str, Any], steps: int) -> float:
    """Fraction of a condition's episodes that succeeded within ``steps`` steps."""
    lengths = np.asarray(record["success_lengths"])
    return float(np.count_nonzero(lengths <= steps)) / record["episodes"]


def drop_record(clean: Any, masked: Any) -> dict[str, Any]:
    """Clean minus masked success with Newcombe's interval, overall and per shared group."""
    conf = clean.settings.confidence
    clean_groups, masked_groups = _groups(clean), _groups(masked)
    by_group = {
        g: {**_drop(clean_groups[g], masked_groups[g], conf), "episodes": len(clean_groups[g])}
        for g in clean_groups
        if g in masked_groups
    }
    return {**_drop(clean.successes, masked.successes, conf), "by_group": by_group}


def build_report(measured: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """``{"results", "drops"}`` of ``{policy: {split: {condition: EvalResult}}}``."""
    results: dict[str, Any] = {}
    drops: dict[str, Any] = {}
    for policy, splits in measured.items():
        results[policy], drops[policy] = {}, {}
        for split, conditions in splits.items():
            results[policy][split] = {c: condition_record(r) for c, r in conditions.items()}
            drops[policy][split] = {
                c: drop_record(conditions[CLEAN], r) for c, r in conditions.items() if c != CLEAN
            }
    return {"results": results, "drops": drops}


def verdicts(drops: Mapping[str, Any], modalities: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per modality: the (split, kind) pairs whose drop excludes zero, and a verdict.

    ``necessary``: a significant drop on every split under every mask kind measured;
    ``partly``: on some; ``not shown``: on none.
    """
    out = {}
    for m in modalities:
        cells = {
            (split, name.split(":", 1)[1]): d["significant"]
            for split, conditions in drops.items()
            for name, d in conditions.items()
            if name.startswith(f"-{m}:")
        }
        shown = [f"{split}/{kind}" for (split, kind), sig in cells.items() if sig]
        verdict = "not shown"
        if shown:
            verdict = "necessary" if all(cells.values()) else "partly"
        out[m] = {"verdict": verdict, "significant_on": shown, "measured_on": len(cells)}
    return out


# ---------------------------------------------------------------------------- tables, figure
def _pct(rec: Mapping[str, Any]) -> str:
    lo, hi = rec["ci"]
    return f"{rec['success'] * 100:.0f}% [{lo * 100:.0f}, {hi * 100:.0f}]"


def _pts(rec: Mapping[str, Any]) -> str:
    lo, hi = rec["ci"]
    star = "*" if rec["significant"] else ""
    return f"{rec['drop'] * 100:+.0f} [{lo * 100:+.0f}, {hi * 100:+.0f}]{star}"


def markdown(
    report: Mapping[str, Any], modalities: Sequence[str], within_steps: Sequence[int] = ()
) -> str:
    """The tables: success and drop per condition and split, groups, success within
    ``within_steps`` steps (when given) and verdicts."""
    results, drops = report["results"], report["drops"]
    policies = list(results)
    splits = list(results[policies[0]])
    lines: list[str] = []
    for split in splits:
        episodes = results[policies[0]][split][CLEAN]["episodes"]
        conditions = list(dict.fromkeys(c for p in policies for c in results[p].get(split, {})))
        lines += [
            f"### split `{split}`: success [95% Wilson] and drop = clean - masked in points "
            f"[95% Newcombe] ({episodes} episodes per condition; * = interval excludes 0)",
            "",
            "| condition | " + " | ".join(f"{p} | drop {p}" for p in policies) + " |",
            "|---|" + "---:|---:|" * len(policies),
        ]
        for c in conditions:
            cells = []
            for p in policies:
                rec = results[p][split].get(c)
                drop = drops[p][split].get(c)
                cells += [_pct(rec) if rec else "n/a", _pts(drop) if drop else ""]
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        lines.append("")
    first = policies[0]
    for split in splits:
        clean = results[first][split][CLEAN]
        masked = [c for c in results[first][split] if c != CLEAN]
        lines += [
            f"#### {first}, split `{split}`, per instruction group: clean success, then drop "
            "when masked in points [95% Newcombe]",
            "",
            "| group | episodes | clean | " + " | ".join(masked) + " |",
            "|---|---:|---:|" + "---:|" * len(masked),
        ]
        for g, rec in clean["by_group"].items():
            cells = [
                _pts(drops[first][split][c]["by_group"][g])
                if g in drops[first][split][c]["by_group"]
                else "n/a"
                for c in masked
            ]
            lines.append(f"| {g} | {rec['episodes']} | {_pct(rec)} | " + " | ".join(cells) + " |")
        lines.append("")
    if within_steps:
        lines += [
            f"#### {first}: success within T steps of the episode (the share of episodes that "
            "succeeded by then; the last column is the episode limit's)",
            "",
            "| split | condition | " + " | ".join(f"T={t}" for t in within_steps) + " | all |",
            "|---|---|" + "---:|" * (len(within_steps) + 1),
        ]
        for split in splits:
            for c, rec in results[first][split].items():
                cells = [f"{100 * success_within(rec, t):.0f}%" for t in within_steps]
                lines.append(
                    f"| {split} | {c} | " + " | ".join(cells) + f" | {100 * rec['success']:.0f}% |"
                )
        lines.append("")
    lines += [
        f"#### Necessity for {first}: a modality is *necessary* when masking it lowers success "
        "significantly on every split with every mask kind",
        "",
    ]
    for m, v in verdicts(drops[first], modalities).items():
        on = ", ".join(v["significant_on"]) or "none"
        lines.append(f"- {m}: {v['verdict']} (significant drop on {on})")
    return "\n".join(lines) + "\n"


def plot(report: Mapping[str, Any], path: Path, title: str) -> None:
    """Grouped bars: success per condition (x) and policy (bars), one panel per split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    policies = list(results)
    splits = list(results[policies[0]])
    conditions = list(
        dict.fromkeys(c for p in policies for s in splits for c in results[p].get(s, {}))
    )
    width = 0.8 / len(policies)
    x = np.arange(len(conditions))
    fig, axes = plt.subplots(
        len(splits), 1, figsize=(max(6.0, 1.0 * len(conditions) + 2), 3.2 * len(splits)),
        squeeze=False,
    )  # fmt: skip
    for ax, split in zip(axes[:, 0], splits):
        for i, p in enumerate(policies):
            rows = [(j, results[p][split][c]) for j, c in enumerate(conditions)
                    if c in results[p].get(split, {})]  # fmt: skip
            if not rows:
                continue
            xs = x[[j for j, _ in rows]] - 0.4 + width * (i + 0.5)
            values = np.array([r["success"] for _, r in rows])
            err = np.array([[v - r["ci"][0], r["ci"][1] - v] for v, (_, r) in zip(values, rows)])
            err = np.maximum(err, 0.0)  # a Wilson bound at 0 or 1 can round past the value
            ax.bar(xs, values, width, yerr=err.T, capsize=2, label=p)
        ax.set_xticks(x, conditions, rotation=30, ha="right", fontsize=8)
        ax.set(ylabel="success rate", ylim=(0, 1.2), title=f"{title} — split {split}")
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.legend(fontsize=8, loc="upper center", ncol=len(policies), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine() -> str:
    """Host, CPU, core count and library versions, for the header."""
    import torch as th

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} logical CPUs, torch {th.__version__} "
        f"({th.get_num_threads()} threads), Python {platform.python_version()}"
    )


# ---------------------------------------------------------------------------- main
def check_env(env_config: Any, splits: Sequence[str], modalities: Sequence[str]) -> None:
    """Refuses splits the environment cannot make and modalities it does not observe.

    Raises:
        ConfigError: The environment rejects a split.
        UsageError: A modality is not one of its observation keys.
    """
    from mmrl.evaluation.rollouts import make_eval_vec_env

    for split in splits:
        venv = make_eval_vec_env(env_config, split, 1, 0)
        keys = list(getattr(venv.observation_space, "spaces", {}) or {})
        venv.close()
        missing = [m for m in modalities if m not in keys]
        if missing:
            raise UsageError(
                f"--modalities: {', '.join(missing)} not observation keys of "
                f"{env_config.env_id}; it has {', '.join(keys) or 'no Dict keys'}"
            )


def load_policies(
    args: argparse.Namespace, settings: Any, out: Path
) -> tuple[dict[str, Any], Any, Any]:
    """The agent (loaded or trained) and the reference policies, with the environment.

    Everything that can be refused (environment, splits, modalities, seeds) is checked
    before anything is trained.

    Returns:
        ``({name: policy}, the agent's policy or None, env config)``.
    """
    from mmrl.make import resolve_env
    from mmrl.policies import load_policy

    target = None
    if args.policy is not None:
        target = load_policy(args.policy, env=args.env, device=args.device)
        env_config = target.require_env()
        check_held_out(target.config, settings.seed, settings.copies)
    else:
        env_config = resolve_env(args.env)
    check_env(env_config, args.splits, args.modalities)
    out.mkdir(parents=True, exist_ok=True)
    if args.train_steps is not None:
        target = load_policy(train_or_reuse(args, out), env=args.env, device=args.device)
        env_config = target.require_env()
        check_held_out(target.config, settings.seed, settings.copies)
    policies: dict[str, Any] = {}
    if target is not None:
        policies[AGENT] = target
    for name in args.references:
        policies[name] = load_policy(name, seed=settings.seed)
    return policies, target, env_config


def run(args: argparse.Namespace, command: str) -> int:
    """Loads or trains the agent, evaluates every policy and writes the outputs."""
    import torch as th

    from mmrl.evaluation.report import write_json
    from mmrl.evaluation.rollouts import EvalSettings

    th.set_num_threads(args.threads)
    t0 = time.perf_counter()
    out = Path(args.out)
    settings = EvalSettings(
        episodes=args.episodes,
        seed=args.eval_seed,
        n_envs=args.n_envs or min(args.episodes, MAX_COPIES),
        deterministic=not args.stochastic,
        group_by=args.group_by,
    )
    policies, target, env_config = load_policies(args, settings, out)
    measured, kinds_used = {}, {}
    for name, model in policies.items():
        kinds_used[name] = mask_kinds_for(model, args.mask_kinds)
        if name == AGENT and kinds_used[name] != args.mask_kinds:
            print(f"note: {model.label} has no MultimodalExtractor; mask kinds {kinds_used[name]}")
        print(f"evaluating {name}: {len(args.splits)} splits x "
              f"{1 + len(args.modalities) * len(kinds_used[name])} conditions x "
              f"{args.episodes} episodes", flush=True)  # fmt: skip
        measured[name] = measure(
            model, env_config, settings, args.modalities, kinds_used[name], args.splits
        )
    report = build_report(measured)
    first = next(iter(report["drops"]))
    date = time.strftime("%Y-%m-%d %H:%M:%S %z")
    host = machine()
    mode = "stochastic" if args.stochastic else "deterministic"
    header = (
        f"# modality necessity: {env_config.env_id}, {args.episodes} episodes per condition, "
        f"seeds {settings.seed}..{settings.seed + settings.copies - 1} ({settings.copies} "
        f"copies), {mode} actions\n\n- command: `{command}`\n- date: {date}\n- machine: {host}\n"
        "- policies: "
        + ", ".join(
            f"{name} ({policy.model_path if name == AGENT else 'reference'}; masks: "
            f"{', '.join(kinds_used[name]) or 'none'})"
            for name, policy in policies.items()
        )
        + "\n\n"
    )
    text = header + markdown(report, args.modalities, args.within_steps)
    agent = None
    if target is not None:
        agent = {"label": target.label, "model": str(target.model_path),
                 "run_dir": None if target.run is None else str(target.run.path),
                 "trained_here": args.train_steps is not None}  # fmt: skip
    meta = {
        "command": command, "date": date, "machine": host, "env_id": env_config.env_id,
        "env": args.env, "policy": agent, "episodes": args.episodes,
        "eval_seed": settings.seed, "n_envs": settings.copies,
        "deterministic": settings.deterministic, "confidence": settings.confidence,
        "group_by": settings.group_by, "splits": args.splits, "modalities": args.modalities,
        "mask_kinds": kinds_used, "within_steps": args.within_steps,
        "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    data = {"meta": meta, **report,
            "verdicts": {first: verdicts(report["drops"][first], args.modalities)}}  # fmt: skip
    write_json(out / "necessity.json", data, flag="--out")
    (out / "necessity.md").write_text(text)
    plot(report, out / "necessity.png", env_config.env_id)
    print(text)
    print(f"wrote {out / 'necessity.json'}, {out / 'necessity.md'}, {out / 'necessity.png'} "
          f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the script; returns 0, or 2 with one line on stderr for bad input."""
    from mmrl.checkpoint import CheckpointError
    from mmrl.config import ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = "python scripts/modality_necessity.py " + shlex.join(argv)
    try:
        return run(parse_args(argv), command)
    except (UsageError, ConfigError, CheckpointError) as err:
        print(f"modality_necessity.py: error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"modality_necessity.py: error: file not found: {err.filename or err}",
              file=sys.stderr)  # fmt: skip
        return 2


if __name__ == "__main__":
    sys.exit(main())
