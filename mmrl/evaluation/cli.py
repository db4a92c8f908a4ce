"""Handlers of ``mmrl evaluate``, ``mmrl evaluate-offline`` and ``mmrl enjoy``.

``mmrl.cli`` registers the sub-commands, their flags come from
:class:`~mmrl.commands.EvaluateOptions`, :class:`~mmrl.commands.EvaluateOfflineOptions` and
:class:`~mmrl.commands.EnjoyOptions`; the handlers import torch and SB3 when run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from mmrl.errors import UsageError


def _splits(text: str) -> list[str]:
    from mmrl.evaluation.rollouts import SPLITS

    splits = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in splits if s not in SPLITS]
    if not splits or bad:
        raise UsageError(f"--split must be train, test or train,test; got {text!r}")
    return list(dict.fromkeys(splits))


def _unique_labels(targets: list, refs: list[str]) -> None:
    """Distinct row labels (:func:`mmrl.evaluation.labels.distinct_labels`)."""
    from mmrl.evaluation.labels import distinct_labels

    for target, label in zip(targets, distinct_labels([t.label for t in targets], refs)):
        target.label = label


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
    from mmrl.commands import EvaluateOptions, from_args
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

    opts = from_args(EvaluateOptions, args)
    for field in ("json", "csv"):  # before the evaluation, not after it
        if getattr(opts, field):
            check_output_file(getattr(opts, field), field=field, parent_must_exist=True)
    splits = _splits(opts.split)
    settings = EvalSettings(
        episodes=opts.episodes,
        seed=opts.seed,
        n_envs=opts.n_envs,
        deterministic=not opts.stochastic,
        group_by=opts.group_by,
        ablate_mode=opts.ablate_mode,
        n_resamples=opts.bootstrap,
    )
    conditions = parse_conditions(opts.ablate, opts.noise)
    # Load every target before running anything: a typo in the third path should not
    # cost the first two evaluations.
    targets = [
        load_policy(path, env=opts.env, device=opts.device, seed=opts.seed) for path in opts.targets
    ]
    _unique_labels(targets, opts.targets)
    envs = [t.require_env() for t in targets]
    if opts.video:
        VideoRecorder(opts.video, opts.video_episodes)  # validates the path up front
    results = []
    videos = []
    t0 = time.perf_counter()
    for target, env_config in zip(targets, envs):
        recorder = None
        if opts.video:
            path = _video_path(opts.video, target.label, len(targets) > 1)
            recorder = VideoRecorder(path, opts.video_episodes)
        results += evaluate_model(target, env_config, settings, conditions, splits, recorder)
        if recorder is not None:
            videos.append(recorder.write())
    compared = comparisons(results)
    if not opts.quiet:
        print_report(results, compared, fmt=opts.format)
    meta = {
        "arguments": dataclasses.asdict(opts),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "targets": [str(t.model_path or t.label) for t in targets],
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if opts.json:
        write_json(opts.json, report_dict(results, compared, meta))
    if opts.csv:
        write_csv(opts.csv, csv_rows(results, compared))
    if not opts.quiet:
        # Markdown and CSV on stdout are for a file or a script: the rest goes to stderr.
        where = sys.stdout if opts.format == "table" else sys.stderr
        for path in videos:
            print(f"wrote {path}", file=where)
        for path in (opts.json, opts.csv):
            if path:
                print(f"wrote {path}", file=where)
    return 0


# ---------------------------------------------------------------------------- enjoy
def run_enjoy(args: argparse.Namespace) -> int:
    """``mmrl enjoy``: a line per finished episode, then what was shown or written."""
    from mmrl.commands import EnjoyOptions, from_args
    from mmrl.evaluation.enjoy import enjoy

    opts = from_args(EnjoyOptions, args)
    result = enjoy(
        opts.policy,
        opts.env,
        episodes=opts.episodes,
        speed=opts.speed,
        video=opts.video,
        seed=opts.seed,
        split=opts.split,
        device=opts.device,
        on_episode=lambda episode: print(episode.line(opts.episodes), flush=True),
    )
    if result.quit:
        print(f"quit after {len(result.episodes)} of {opts.episodes} episodes")
    if result.video is not None:
        print(f"wrote {result.video} ({result.codec}, {result.frames} frames)")
    return 0


# ---------------------------------------------------------------------------- evaluate-offline
def run_evaluate_offline(args: argparse.Namespace) -> int:
    """``mmrl evaluate-offline``: every policy estimated on the same data, ranked."""
    from mmrl.checkpoint import check_output_file
    from mmrl.commands import EvaluateOfflineOptions, from_args
    from mmrl.evaluation.offline import load_logged_data
    from mmrl.evaluation.ranking import evaluate_policies, parse_estimators, print_ranking
    from mmrl.evaluation.report import write_csv, write_json
    from mmrl.policies import load_policy

    opts = from_args(EvaluateOfflineOptions, args)
    for field in ("json", "csv"):
        if getattr(opts, field):
            check_output_file(getattr(opts, field), field=field, parent_must_exist=True)
    estimators = parse_estimators(opts.estimators)
    policies = [load_policy(ref, device=opts.device, seed=opts.seed) for ref in opts.targets]
    _unique_labels(policies, opts.targets)
    data = load_logged_data(opts.dataset, opts.max_episodes)
    t0 = time.perf_counter()
    ranking = evaluate_policies(
        policies,
        data,
        estimators,
        opts.gamma,
        rank_by=opts.rank_by,
        behaviour=opts.behaviour,
        features=opts.fqe_features,
        stochastic=opts.stochastic,
        iterations=opts.fqe_iters,
        steps_per_iter=opts.fqe_steps,
        fqe_holdout=opts.fqe_holdout,
        fqe_select=opts.fqe_select,
        fqe_ensemble=opts.fqe_ensemble,
        fqe_horizon=opts.fqe_horizon,
        weight_clip=opts.weight_clip,
        n_resamples=opts.bootstrap,
        seed=opts.seed,
    )
    if not opts.quiet:
        print_ranking(ranking, fmt=opts.format)
    if opts.json:
        meta = {
            "arguments": dataclasses.asdict(opts),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        write_json(opts.json, {"meta": meta, **ranking.to_dict()})
    if opts.csv:
        write_csv(opts.csv, ranking.csv_rows())
    return 0
