"""Arguments and handlers of ``mmrl evaluate``, ``mmrl evaluate-offline`` and ``mmrl enjoy``.

``mmrl.cli`` registers the sub-commands and calls :func:`add_evaluate_arguments` /
:func:`add_offline_arguments` when it builds the parser (only ``argparse`` is imported here at
module level, so ``mmrl --help`` stays fast); the handlers import torch and SB3 when run.
"""

from __future__ import annotations

import argparse
import time

from mmrl.errors import UsageError


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``mmrl evaluate``."""
    p.add_argument(
        "targets",
        nargs="+",
        metavar="RUN_DIR|MODEL.zip|ENCODER.pt|expert|random",
        help="run folders, SB3 model files, pretraining checkpoints (their BC policy), or the "
        "scripted expert / random actions as references; several are compared side by side",
    )
    p.add_argument(
        "--env",
        help="env preset or Gymnasium id (required for a bare MODEL.zip, expert and random; "
        "default: each run's own)",
    )
    p.add_argument("--episodes", type=_positive, default=100, help="episodes per evaluation")
    p.add_argument(
        "--split",
        default="train",
        help="instruction split: train, test or train,test (default train)",
    )
    p.add_argument("--seed", type=int, default=10_000, help="base seed (copy i uses seed + i)")
    p.add_argument(
        "--n-envs",
        type=_positive,
        help="environment copies stepped together (default min(episodes, 100))",
    )
    p.add_argument("--stochastic", action="store_true", help="sample actions (default greedy)")
    p.add_argument(
        "--ablate",
        metavar="KEYS",
        help="remove each observation key in turn, e.g. camera,lidar,text",
    )
    p.add_argument(
        "--ablate-mode",
        choices=("auto", "extractor", "zero"),
        default="auto",
        help="auto: the extractor's modality mask when present, else zeroed keys",
    )
    p.add_argument(
        "--noise",
        action="append",
        default=[],
        metavar="SPEC",
        help="sensor noise condition, e.g. camera=0.1,lidar=0.05 (repeatable)",
    )
    p.add_argument(
        "--group-by",
        default="auto",
        help="instruction groups: auto, verb, instruction, none or label:KEY",
    )
    p.add_argument(
        "--video",
        metavar="OUT.mp4",
        help="video of the first episodes: .mp4 (H.264), .webm (VP9) or .gif",
    )
    p.add_argument("--video-episodes", type=_positive, default=3, help="episodes in the video")
    p.add_argument("--json", metavar="OUT.json", help="write results (with per-episode data)")
    p.add_argument("--csv", metavar="OUT.csv", help="write one row per evaluation")
    p.add_argument("--bootstrap", type=_positive, default=2000, help="bootstrap resamples")
    p.add_argument("--device", default="cpu", help="policy device: cpu, cuda or auto")
    p.add_argument("--quiet", action="store_true", help="no tables on the terminal")


def _splits(text: str) -> list[str]:
    from mmrl.evaluation.rollouts import SPLITS

    splits = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in splits if s not in SPLITS]
    if not splits or bad:
        raise UsageError(f"--split must be train, test or train,test; got {text!r}")
    return list(dict.fromkeys(splits))


def _unique_labels(targets: list) -> None:
    seen: dict[str, int] = {}
    for t in targets:
        n = seen.get(t.label, 0)
        seen[t.label] = n + 1
        if n:
            t.label = f"{t.label}#{n + 1}"


def _video_path(base: str, label: str, several: bool) -> str:
    if not several:
        return base
    from pathlib import Path

    path = Path(base)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)
    return str(path.with_name(f"{path.stem}-{safe}{path.suffix}"))


def run_evaluate(args: argparse.Namespace) -> int:
    """``mmrl evaluate``: tables on the terminal, optional JSON, CSV and video."""
    from mmrl.checkpoint import check_output_file
    from mmrl.evaluation.report import (
        csv_rows,
        print_report,
        report_dict,
        write_csv,
        write_json,
    )
    from mmrl.evaluation.robustness import comparisons, parse_conditions
    from mmrl.evaluation.rollouts import EvalSettings, evaluate_model
    from mmrl.evaluation.video import VideoRecorder
    from mmrl.policies import load_policy

    for field in ("json", "csv"):  # before the evaluation, not after it
        if getattr(args, field):
            check_output_file(getattr(args, field), field=field, parent_must_exist=True)
    splits = _splits(args.split)
    settings = EvalSettings(
        episodes=args.episodes,
        seed=args.seed,
        n_envs=args.n_envs,
        deterministic=not args.stochastic,
        group_by=args.group_by,
        ablate_mode=args.ablate_mode,
        n_resamples=args.bootstrap,
    )
    conditions = parse_conditions(args.ablate, args.noise)
    # Load every target before running anything: a typo in the third path should not
    # cost the first two evaluations.
    targets = [
        load_policy(path, env=args.env, device=args.device, seed=args.seed) for path in args.targets
    ]
    _unique_labels(targets)
    envs = [t.require_env() for t in targets]
    if args.video:
        VideoRecorder(args.video, args.video_episodes)  # validates the path up front
    results = []
    videos = []
    t0 = time.perf_counter()
    for target, env_config in zip(targets, envs):
        recorder = None
        if args.video:
            path = _video_path(args.video, target.label, len(targets) > 1)
            recorder = VideoRecorder(path, args.video_episodes)
        results += evaluate_model(target, env_config, settings, conditions, splits, recorder)
        if recorder is not None:
            videos.append(recorder.write())
    compared = comparisons(results)
    if not args.quiet:
        print_report(results, compared)
    meta = {
        "arguments": {k: v for k, v in vars(args).items() if k != "command"},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "targets": [str(t.model_path or t.label) for t in targets],
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if args.json:
        write_json(args.json, report_dict(results, compared, meta))
    if args.csv:
        write_csv(args.csv, csv_rows(results, compared))
    if not args.quiet:
        for path in videos:
            print(f"wrote {path}")
        for path in (args.json, args.csv):
            if path:
                print(f"wrote {path}")
    return 0


# ---------------------------------------------------------------------------- enjoy
def run_enjoy(args: argparse.Namespace) -> int:
    """``mmrl enjoy``: a line per finished episode, then what was shown or written."""
    from mmrl.evaluation.enjoy import enjoy

    result = enjoy(
        args.policy,
        args.env,
        episodes=args.episodes,
        speed=args.speed,
        video=args.video,
        seed=args.seed,
        split=args.split,
        device=args.device,
        on_episode=lambda episode: print(episode.line(args.episodes), flush=True),
    )
    if result.quit:
        print(f"quit after {len(result.episodes)} of {args.episodes} episodes")
    if result.video is not None:
        print(f"wrote {result.video} ({result.codec}, {result.frames} frames)")
    return 0


# ---------------------------------------------------------------------------- evaluate-offline
def add_offline_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``mmrl evaluate-offline``."""
    p.add_argument(
        "targets",
        nargs="+",
        metavar="RUN_DIR|MODEL.zip|ENCODER.pt|expert|random",
        help="run folders, SB3 model files, pretraining checkpoints (their BC policy), or the "
        "scripted expert (from the logged expert actions) / uniform random; several are "
        "estimated on the same data and ranked",
    )
    p.add_argument(
        "--dataset",
        required=True,
        help="Minari dataset id, e.g. mmrl/driving/expert-v0 (MINARI_DATASETS_PATH)",
    )
    p.add_argument(
        "--estimators",
        default="fqe,wis,dr",
        help="comma-separated: fqe, pdis (is), wpdis (wis), dr, wdr, value_head "
        "(default fqe,wis,dr); the table is ranked by the first",
    )
    p.add_argument("--rank-by", help="estimator to rank by (default: the first of --estimators)")
    p.add_argument(
        "--behaviour",
        choices=("auto", "logged", "estimated"),
        default="auto",
        help="behaviour probabilities for IS/DR: logged by mmrl collect, estimated by "
        "behaviour cloning, or auto (logged when present)",
    )
    p.add_argument("--gamma", type=float, default=0.99, help="discount of the estimates")
    p.add_argument(
        "--fqe-iters",
        type=_positive,
        help="FQE iterations (default ceil(3 / (1 - gamma)), at most 400)",
    )
    p.add_argument("--fqe-steps", type=_positive, default=25, help="Adam steps per iteration")
    p.add_argument(
        "--fqe-features",
        choices=("policy", "raw", "data"),
        default="policy",
        help="Q-network inputs: the policy's features, raw observations, or fixed data "
        "features shared by every policy",
    )
    p.add_argument("--max-episodes", type=_positive, help="use only the first N episodes")
    p.add_argument(
        "--stochastic", action="store_true", help="evaluate the stochastic policy (default: greedy)"
    )
    p.add_argument("--bootstrap", type=_positive, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="FQE, behaviour cloning and bootstrap")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda or auto")
    p.add_argument("--json", metavar="OUT.json", help="write the ranking as JSON")
    p.add_argument("--csv", metavar="OUT.csv", help="write one CSV row per policy")
    p.add_argument("--quiet", action="store_true", help="no table on the terminal")


def run_evaluate_offline(args: argparse.Namespace) -> int:
    """``mmrl evaluate-offline``: every policy estimated on the same data, ranked."""
    from mmrl.checkpoint import check_output_file
    from mmrl.evaluation.offline import load_logged_data
    from mmrl.evaluation.ranking import evaluate_policies, parse_estimators, print_ranking
    from mmrl.evaluation.report import write_csv, write_json
    from mmrl.policies import load_policy

    if not 0.0 < args.gamma <= 1.0:
        raise UsageError(f"--gamma must be in (0, 1], got {args.gamma}")
    for field in ("json", "csv"):
        if getattr(args, field):
            check_output_file(getattr(args, field), field=field, parent_must_exist=True)
    estimators = parse_estimators(args.estimators)
    policies = [load_policy(ref, device=args.device, seed=args.seed) for ref in args.targets]
    _unique_labels(policies)
    data = load_logged_data(args.dataset, args.max_episodes)
    t0 = time.perf_counter()
    ranking = evaluate_policies(
        policies,
        data,
        estimators,
        args.gamma,
        rank_by=args.rank_by,
        behaviour=args.behaviour,
        features=args.fqe_features,
        stochastic=args.stochastic,
        iterations=args.fqe_iters,
        steps_per_iter=args.fqe_steps,
        n_resamples=args.bootstrap,
        seed=args.seed,
    )
    if not args.quiet:
        print_ranking(ranking)
    if args.json:
        meta = {
            "arguments": {k: v for k, v in vars(args).items() if k != "command"},
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        write_json(args.json, {"meta": meta, **ranking.to_dict()})
    if args.csv:
        write_csv(args.csv, ranking.csv_rows())
    return 0
