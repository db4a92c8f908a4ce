"""The ``mmrl`` command line: ``envs``, ``demo``, ``train`` and the rest of the workflow.

Bad input (unknown command or option, unknown preset, malformed value, missing file) exits
with status 2 and one line saying what is wrong and what is allowed; heavy imports (torch,
SB3) happen only inside the command that needs them so ``mmrl --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from mmrl.errors import MmrlError, UsageError, one_line

if TYPE_CHECKING:
    from mmrl.commands import TrainOptions

__all__ = ["MmrlError", "UsageError", "build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors on one line (no usage dump) with exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows every option's default, like ``ArgumentDefaultsHelpFormatter``, except where the
    help already says it or there is none to show (``None``: the preset decides), and keeps
    the example epilog's line breaks (issue 16: ``--help`` shows defaults and an example)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            default is None
            or default is argparse.SUPPRESS
            or default == []
            or "default" in text
            or (not action.option_strings and action.nargs not in ("?", "*"))
        ):
            return text
        return f"{text} (default: %(default)s)"


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], str]] = {}


def command(name: str, help_text: str, handler_path: str):
    """Registers a sub-command whose handler is imported lazily from ``module:function``."""

    def decorator(add_arguments: Callable[[argparse.ArgumentParser], None]):
        COMMANDS[name] = (help_text, add_arguments, handler_path)
        return add_arguments

    return decorator


# ---------------------------------------------------------------------------- sub-commands
@command("envs", "list registered environments and presets with their spaces", "mmrl.cli:run_envs")
def _envs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-spaces", action="store_true", help="names only (no env construction)")


@command("demo", "roll out a policy and save an image of every sensor", "mmrl.cli:run_demo")
def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="driving", help="env preset name or Gymnasium id")
    p.add_argument("--policy", metavar="expert|random|RUN|MODEL.zip|ENCODER.pt",
                   help="what acts (default: expert if the env has one, else random)")  # fmt: skip
    p.add_argument("--steps", type=int, default=30, help="policy steps before the snapshot")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="demo.png", help="PNG file to write")


@command("train", "train PPO with a multimodal extractor from presets", "mmrl.cli:run_train")
def _train_args(p: argparse.ArgumentParser) -> None:
    from mmrl.commands import TrainOptions, add_options

    add_options(p, TrainOptions)


def _tracking(opts: Any, group: str | None = None) -> Any:
    """``--track`` (of :class:`mmrl.commands.TrackOptions` or a command's options holding its
    fields) as a :class:`mmrl.tracking.Tracking`; ``None`` when not given."""
    if opts.track is None:
        return None
    from mmrl.tracking import Tracking

    return Tracking(opts.track, opts.track_project, group)


def _init_overrides(opts: TrainOptions) -> list[str]:
    """``--init-from`` & co. as ``agent.init.*`` overrides (values JSON-quoted, so any path
    stays a string when the override is parsed as YAML)."""
    import json

    pairs = [
        ("path", opts.init_from),
        ("freeze_encoders_steps", opts.freeze_encoders),
        ("encoder_lr_scale", opts.encoder_lr_scale),
        ("init_policy_head", True if opts.init_policy_head else None),
    ]
    overrides = [
        f"agent.init.{key}={json.dumps(value)}" for key, value in pairs if value is not None
    ]
    if overrides and opts.resume:
        raise UsageError("--init-from/--freeze-encoders/... cannot change a resumed run")
    if opts.init_from is None and overrides:
        raise UsageError(
            "--freeze-encoders, --encoder-lr-scale and --init-policy-head need --init-from"
        )
    return overrides


def _require_positive(args: argparse.Namespace, *names: str) -> None:
    """Raises :class:`UsageError` when an integer option given as ``--name`` is below 1 (for
    the commands whose options are not yet a typed class: those declare ``minimum``)."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def run_train(args: argparse.Namespace) -> int:
    """``mmrl train``."""
    from mmrl.commands import TrainOptions, from_args
    from mmrl.commands.progress import progress_interval
    from mmrl.train import train

    opts = from_args(TrainOptions, args)
    if opts.resume and opts.overrides:
        raise UsageError("--set cannot change a resumed run (its config.yaml is fixed)")
    log_interval = progress_interval(opts.log_interval, opts.quiet)
    run_dir = train(
        env=opts.env,
        agent=opts.agent,
        steps=opts.steps,
        seed=opts.seed,
        n_envs=opts.n_envs,
        n_workers=opts.n_workers,
        device=opts.device,
        out=opts.out,
        overrides=opts.overrides + _init_overrides(opts),
        resume=opts.resume,
        stop_success=opts.stop_success,
        stop_split=opts.stop_split,
        force=opts.force,
        progress_bar=not opts.quiet and sys.stderr.isatty(),
        verbose=0 if opts.quiet else 1,
        log_interval=log_interval,
        video_every=opts.video_every,
        track=_tracking(opts),
    )
    if not opts.quiet:
        print(f"tensorboard --logdir {run_dir / 'tb'}")
    return 0


@command("bench", "train and evaluate a grid of envs x fusions x seeds", "mmrl.cli:run_bench")
def _bench_args(p: argparse.ArgumentParser) -> None:
    from mmrl.commands import BenchOptions, add_options

    add_options(p, BenchOptions)


def run_bench(args: argparse.Namespace) -> int:
    """``mmrl bench``."""
    import dataclasses
    import math

    from mmrl.agent import resolve_device
    from mmrl.bench.driver import run_bench_command
    from mmrl.checkpoint import check_output_dir
    from mmrl.commands import BenchOptions, from_args
    from mmrl.commands.progress import progress_interval

    opts = from_args(BenchOptions, args)
    progress_interval(opts.log_interval, opts.quiet)  # a bad value fails before any cell
    check_output_dir(opts.out, field="out")
    resolve_device(opts.device)  # a bad --device fails here, not in every cell
    if not (math.isfinite(opts.cpus_per_task) and 0 < opts.cpus_per_task <= 1024):
        raise UsageError(f"--cpus-per-task must be in (0, 1024], got {opts.cpus_per_task}")
    if not (math.isfinite(opts.gpus_per_task) and 0 <= opts.gpus_per_task <= 64):
        raise UsageError(f"--gpus-per-task must be in [0, 64], got {opts.gpus_per_task}")
    if opts.workers is None:
        import os

        workers = max(1, int((os.cpu_count() or 1) // max(opts.cpus_per_task, 1)))
        opts = dataclasses.replace(opts, workers=workers)
    return run_bench_command(opts)


@command("tune", "Optuna hyperparameter search over training runs", "mmrl.cli:run_tune")
def _tune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="driving", help="env preset name or YAML path")
    p.add_argument("--agent", default="ppo-concat", help="base agent recipe name or YAML path")
    p.add_argument("--trials", type=int, default=50, help="finished trials the study should hold")
    p.add_argument("--steps", type=int, default=200_000, help="environment steps per trial")
    p.add_argument("--study", help="study name, required (an existing study resumes)")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///OUT/study.db)")
    p.add_argument("--workers", type=int, default=1,
                   help="trials side by side: processes, or CPUs of a local Ray")  # fmt: skip
    p.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local processes or Ray tasks (either resumes a study)")  # fmt: skip
    p.add_argument("--address", help="existing Ray cluster (auto, ray://host:10001)")
    p.add_argument("--space", metavar="FILE.yaml", help="search-space entries over the default")
    p.add_argument("--show-space", action="store_true", help="print the search space and exit")
    p.add_argument("--out", help="study folder (default tune/<study>)")
    p.add_argument("--metric", default="mean_return", choices=["mean_return", "success_rate"],
                   help="held-out objective (test split when the env has one)")  # fmt: skip
    p.add_argument("--evaluations", type=int, default=4,
                   help="periodic evaluations per trial, reported to the pruner")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="training seed of every trial")
    p.add_argument("--device", default="cpu", help="cpu, auto or cuda[:N] for every trial")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override every trial's run config, e.g. env.n_envs=8")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no line per trial")
    from mmrl.commands import TrackOptions, add_options

    add_options(p, TrackOptions)  # the same --track flags as train and bench


def run_tune(args: argparse.Namespace) -> int:
    """``mmrl tune``."""
    if args.show_space:
        import yaml

        from mmrl.tune.space import load_space, space_to_dict

        print(yaml.safe_dump(space_to_dict(load_space(args.space)), sort_keys=False), end="")
        return 0
    if not args.study:
        raise UsageError("--study NAME is required (an existing study of that name resumes)")
    from mmrl.commands import TrackOptions, from_args
    from mmrl.tune import tune

    result = tune(
        args.env,
        args.agent,
        trials=args.trials,
        steps=args.steps,
        study=args.study,
        storage=args.storage,
        workers=args.workers,
        backend=args.backend,
        address=args.address,
        space=args.space,
        out=args.out,
        overrides=args.overrides,
        seed=args.seed,
        metric=args.metric,
        evaluations=args.evaluations,
        device=args.device,
        verbose=0 if args.quiet else 1,
        track=_tracking(from_args(TrackOptions, args), group=args.study),
    )
    if not args.quiet:
        print(
            f"study {args.study}: {result.complete} complete, {result.pruned} pruned, "
            f"{result.failed} failed; report {result.files['summary']}"
        )
        if result.best_recipe is not None:
            print(f"best {result.best_value:.4g}: mmrl train --agent {result.best_recipe}")
    return 0


@command("collect", "roll out a policy into a Minari dataset", "mmrl.cli:run_collect")
def _collect_args(p: argparse.ArgumentParser) -> None:
    from mmrl.commands import CollectOptions, add_options

    add_options(p, CollectOptions)


def run_collect(args: argparse.Namespace) -> int:
    """``mmrl collect``."""
    from mmrl.collect import collect
    from mmrl.commands import CollectOptions, from_args
    from mmrl.commands.progress import progress_interval

    opts = from_args(CollectOptions, args)
    log_interval = progress_interval(opts.log_interval, opts.quiet)
    result = collect(
        env=opts.env,
        policy=opts.policy,
        episodes=opts.episodes,
        dataset_id=opts.dataset_id,
        epsilon=opts.epsilon,
        seed=opts.seed,
        n_envs=opts.n_envs,
        n_workers=opts.n_workers,
        force=opts.force,
        progress=not opts.quiet and sys.stderr.isatty(),
        jpeg=opts.jpeg,
        expert_labels=opts.expert_labels,
        stochastic=opts.stochastic,
        log_interval=log_interval,
    )
    if not opts.quiet:
        print(
            f"wrote {result.dataset_id} ({result.episodes} episodes, {result.steps} steps) to "
            f"{result.path}: return {result.mean_return:.2f}, success {result.success_rate:.2f}, "
            f"{result.steps_per_second:.0f} env steps/s"
        )
    return 0


@command("pretrain", "pretrain a recipe's encoders on a Minari dataset", "mmrl.cli:run_pretrain")
def _pretrain_args(p: argparse.ArgumentParser) -> None:
    from mmrl.commands import PretrainOptions, add_options

    add_options(p, PretrainOptions)


def run_pretrain(args: argparse.Namespace) -> int:
    """``mmrl pretrain``."""
    import torch as th

    from mmrl.commands import PretrainOptions, from_args
    from mmrl.commands.progress import progress_interval
    from mmrl.pretrain.trainer import pretrain, summarize_metrics

    opts = from_args(PretrainOptions, args)
    log_interval = progress_interval(opts.log_interval, opts.quiet)
    if opts.threads is not None:
        th.set_num_threads(opts.threads)
    weights = {}
    for item in opts.weight:
        name, _, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--weight {item!r}: expected OBJECTIVE=NUMBER, e.g. bc=2") from None
    result = pretrain(
        opts.dataset,
        opts.agent,
        env=opts.env,
        objectives=opts.objectives,
        epochs=opts.epochs,
        batch_size=opts.batch_size,
        lr=opts.lr,
        device=opts.device,
        augment=opts.augment,
        val_fraction=opts.val_fraction,
        patience=opts.patience,
        monitor=opts.monitor,
        seed=opts.seed,
        out=opts.out,
        force=opts.force,
        overrides=opts.overrides,
        weights=weights,
        log_dir=opts.tb,
        max_updates=opts.max_updates,
        progress=not opts.quiet and sys.stderr.isatty(),
        verbose=0 if opts.quiet else 1,
        log_interval=log_interval,
    )
    if not opts.quiet:
        print(
            f"wrote {result.out} (best epoch {result.best_epoch}/{result.epochs}, "
            f"{result.samples_per_second:.0f} samples/s): {summarize_metrics(result.val_metrics)}"
        )
        print(f"tensorboard --logdir {result.log_dir}")
    return 0


def run_envs(args: argparse.Namespace) -> int:
    """``mmrl envs``: registered ids and presets with observation and action spaces."""
    import gymnasium as gym

    from mmrl.config import available_presets, load_env_preset
    from mmrl.registration import ENV_ENTRIES, register_envs
    from mmrl.spaces import describe

    register_envs()
    print("Registered environments:")
    for entry in ENV_ENTRIES:
        if entry.env_id not in gym.registry:
            continue
        print(f"  {entry.env_id:<28} {entry.description}")
        if not args.no_spaces:
            with warnings.catch_warnings():
                # Gymnasium's "a newer version exists" notice for -v0: the listing says so.
                warnings.filterwarnings("ignore", message=".*is out of date.*")
                env = gym.make(entry.env_id)
            print(f"      observation: {describe(env.observation_space)}")
            print(f"      action:      {describe(env.action_space)}")
            env.close()
    print("\nEnvironment presets (--env):")
    for name in available_presets("envs"):
        preset = load_env_preset(name)
        suite = f" [{preset.adapter}]" if preset.adapter else ""
        print(f"  {name:<28} {preset.env_id}{suite}  n_envs={preset.n_envs}  {preset.description}")
    print("\nAgent recipes (--agent):")
    from mmrl.config import load_agent_preset

    for name in available_presets("agents"):
        agent = load_agent_preset(name)
        print(f"  {name:<28} fusion={agent.extractor.fusion:<10} {agent.description}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """``mmrl demo``: a policy's rollout, then a PNG of camera, lidar plot and instruction."""
    from pathlib import Path

    import cv2

    from mmrl.checkpoint import check_output_file
    from mmrl.evaluation.demo import demo_snapshot

    if args.steps < 0:
        raise UsageError(f"--steps must be >= 0, got {args.steps}")
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
        raise UsageError(f"--out {out}: an image name is needed (.png, .jpg or .bmp)")
    check_output_file(out, field="out", parent_must_exist=True)
    shot = demo_snapshot(args.env, args.policy, args.steps, args.seed)
    frame = shot.frame
    if not cv2.imwrite(str(out), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
        raise UsageError(f"--out: cannot write an image to {out} (use a .png name)")
    print(f"policy: {shot.policy}, {shot.steps} steps, return {shot.total_reward:+.2f}")
    print(f"instruction: {shot.instruction}")
    print(f"wrote {out} ({frame.shape[1]}x{frame.shape[0]})")
    return 0


@command("enjoy", "watch a policy play: live in a window, or into a video file",
         "mmrl.evaluation.cli:run_enjoy")  # fmt: skip
def _enjoy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("policy", metavar="RUN|MODEL.zip|ENCODER.pt|expert|random",
                   help="what acts (as for mmrl evaluate)")  # fmt: skip
    p.add_argument("--env", help="env preset or Gymnasium id (default: the run's own; "
                   "required for a bare MODEL.zip, expert and random)")  # fmt: skip
    p.add_argument("--episodes", type=int, default=3, help="episodes to play")
    p.add_argument("--speed", type=float, default=1.0,
                   help="playback speed: 1 is 15 frames/s, 2 twice as fast")  # fmt: skip
    p.add_argument("--video", metavar="OUT.mp4",
                   help="write a .mp4/.webm/.gif file instead of opening a window")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="environment seed")
    p.add_argument("--split", default="train", choices=["train", "test"],
                   help="instruction split (test: held-out combinations)")  # fmt: skip
    p.add_argument("--device", default="cpu", help="torch device of a network policy")


@command("plot", "learning curves of run or bench folders: IQM over seeds, bootstrap bands",
         "mmrl.cli:run_plot")  # fmt: skip
def _plot_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders or bench folders")
    p.add_argument("--group-by", default="agent",
                   help="a line per: agent (a panel per env), env, or seed")  # fmt: skip
    p.add_argument("--metric", default="success", help="success (rate) or return")
    p.add_argument("--out", default="curves.png", help="figure file: .png or .svg")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples per point")


def run_plot(args: argparse.Namespace) -> int:
    """``mmrl plot``."""
    from mmrl.evaluation.plots import plot_runs

    _require_positive(args, "bootstrap")
    path = plot_runs(args.runs, args.out, args.group_by, args.metric, args.bootstrap)
    print(f"wrote {path}")
    return 0


@command("export", "a run as a self-contained folder: model, presets, model card",
         "mmrl.cli:run_export")  # fmt: skip
def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="run folder (mmrl train --out)")
    p.add_argument("--out", required=True, help="export folder (absent or empty)")
    p.add_argument("--best", action="store_true", help="export best_model.zip, not model.zip")
    p.add_argument("--preview-episodes", type=int, default=1,
                   help="held-out episodes in replay.mp4 (0: no video)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")


def run_export(args: argparse.Namespace) -> int:
    """``mmrl export``."""
    from mmrl.export import export_run

    result = export_run(args.run, args.out, args.best, args.preview_episodes, args.force)
    print(f"wrote {result.path}: {', '.join(result.files)}")
    return 0


@command("replay", "render logged Minari dataset episodes into a video", "mmrl.cli:run_replay")
def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET_ID", help="Minari id, e.g. mmrl/driving/expert-v0")
    p.add_argument("--episodes", default="1",
                   help="N (the first N episodes) or indices like 0,2,5 (5, for one)")  # fmt: skip
    p.add_argument("--video", required=True, help="output .mp4 (H.264), .webm (VP9) or .gif")
    p.add_argument("--fps", type=int, default=15, help="frames per second")


def run_replay(args: argparse.Namespace) -> int:
    """``mmrl replay``."""
    from mmrl.evaluation.replay import replay_dataset

    result = replay_dataset(args.dataset, args.video, args.episodes, args.fps)
    shown = ",".join(str(i) for i in result.episodes)
    print(f"wrote {result.path} ({result.codec}, {result.frames} frames, episodes {shown})")
    return 0


@command("evaluate", "evaluate runs or models: returns, success, robustness, video",
         "mmrl.evaluation.cli:run_evaluate")  # fmt: skip
def _evaluate_args(p: argparse.ArgumentParser) -> None:
    from mmrl.evaluation.cli import add_evaluate_arguments

    add_evaluate_arguments(p)


@command("evaluate-offline", "off-policy evaluation of a model on a logged Minari dataset",
         "mmrl.evaluation.cli:run_evaluate_offline")  # fmt: skip
def _evaluate_offline_args(p: argparse.ArgumentParser) -> None:
    from mmrl.evaluation.cli import add_offline_arguments

    add_offline_arguments(p)


# ---------------------------------------------------------------------------- entry point
#: One example per command, shown at the end of its ``--help``.
EXAMPLES: dict[str, str] = {
    "envs": "mmrl envs --no-spaces",
    "demo": "mmrl demo --env navigation --steps 20 --out nav.png",
    "train": "mmrl train --env driving --agent ppo-attention --steps 200000 --out runs/driving",
    "bench": "mmrl bench --envs driving --fusions concat,attention --seeds 3 --out bench/small",
    "tune": "mmrl tune --env driving --study drive --trials 20 --steps 100000 --workers 2",
    "collect": "mmrl collect --env driving --episodes 200 --dataset-id mmrl/driving/expert-v0",
    "pretrain": "mmrl pretrain --dataset mmrl/driving/expert-v0 --out encoder.pt",
    "enjoy": "mmrl enjoy runs/driving --episodes 3 --speed 2",
    "plot": "mmrl plot runs/a runs/b --group-by agent --out curves.png",
    "export": "mmrl export runs/driving --out share/driving",
    "replay": "mmrl replay mmrl/driving/expert-v0 --episodes 0,2 --video episodes.mp4",
    "evaluate": "mmrl evaluate runs/driving --episodes 100 --split train,test --video drive.mp4",
    "evaluate-offline": "mmrl evaluate-offline runs/driving --dataset mmrl/driving/expert-v0",
}


def build_parser() -> argparse.ArgumentParser:
    """The full ``mmrl`` argument parser."""
    from mmrl import __version__

    parser = _Parser(prog="mmrl", description="Multimodal reinforcement learning toolkit.")
    parser.add_argument("--version", action="version", version=f"mmrl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        example = EXAMPLES.get(name)
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=_HelpFormatter,
            epilog=f"example:\n  {example}" if example else None,
        )
        add_arguments(p)
    return parser


def _check_seeds(args: argparse.Namespace) -> None:
    """Every seed option of every command (``--seed``, ``--seed-start`` ...) in NumPy's range:
    a negative seed failed deep inside NumPy or SB3 with a traceback (issue 15)."""
    for name, value in vars(args).items():
        is_seed = name == "seed" or name.startswith("seed_") or name.endswith("_seed")
        if is_seed and isinstance(value, int) and not 0 <= value <= 2**32 - 1:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be in [0, 2**32 - 1], got {value}")


def _terminated(signum: int, frame: Any) -> NoReturn:
    raise SystemExit(128 + signum)


def _exit_on_sigterm() -> tuple[bool, Any]:
    """SIGTERM (``kill``, a scheduler's time limit) exits through Python, so ``finally``
    blocks run: ``collect`` removes its temporary dataset folder (issue 15). Returns whether
    the handler was installed (not off the main thread, where handlers cannot be set) and
    the previous one."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return False, None
    return True, signal.signal(signal.SIGTERM, _terminated)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit status (0 ok, 2 bad input, 1 a bug, 130 interrupted).

    Bad input is one line (``MmrlError``, ``OSError``); so is an unexpected exception, unless
    the environment sets ``MMRL_DEBUG`` (then it propagates with its traceback).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module_name, func_name = COMMANDS[args.command][2].split(":")
    import importlib

    handler = getattr(importlib.import_module(module_name), func_name)
    installed, previous = _exit_on_sigterm()
    try:
        _check_seeds(args)
        return int(handler(args) or 0)
    except MmrlError as err:  # ConfigError, CheckpointError, DatasetError, UsageError, ...
        print(f"mmrl {args.command}: error: {err.cli_message()}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"mmrl {args.command}: error: file not found: {err.filename or err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only folder: the system's words, one line
        where = f": {err.filename}" if err.filename else ""
        reason = err.strerror or one_line(err)
        print(f"mmrl {args.command}: error: {reason}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mmrl {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not bad input: one line, status 1
        import os

        if os.environ.get("MMRL_DEBUG"):
            raise
        print(
            f"mmrl {args.command}: unexpected error, probably a bug ({type(err).__name__}: "
            f"{one_line(err, 200)}); MMRL_DEBUG=1 shows the traceback",
            file=sys.stderr,
        )
        return 1
    finally:
        if installed:
            import signal

            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
