"""The ``mmrl`` command line: ``envs``, ``demo``, ``train`` and the rest of the workflow.

Bad input (unknown command or option, unknown preset, malformed value, missing file) exits
with status 2 and one line saying what is wrong and what is allowed; heavy imports (torch,
SB3) happen only inside the command that needs them so ``mmrl --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
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


#: Command name -> (one-line help, handler as ``module:function``, imported only when the
#: command runs). Its flags come from its options class in
#: :data:`mmrl.commands.COMMAND_OPTIONS` (a test checks that every command has one).
COMMANDS: dict[str, tuple[str, str]] = {
    "envs": ("list registered environments and presets with their spaces", "mmrl.cli:run_envs"),
    "demo": ("roll out a policy and save an image of every sensor", "mmrl.cli:run_demo"),
    "train": ("train PPO with a multimodal extractor from presets", "mmrl.cli:run_train"),
    "bench": ("train and evaluate a grid of envs x fusions x seeds", "mmrl.cli:run_bench"),
    "tune": ("Optuna hyperparameter search over training runs", "mmrl.cli:run_tune"),
    "collect": ("roll out a policy into a Minari dataset", "mmrl.cli:run_collect"),
    "pretrain": ("pretrain a recipe's encoders on a Minari dataset", "mmrl.cli:run_pretrain"),
    "enjoy": (
        "watch a policy play: live in a window, or into a video file",
        "mmrl.evaluation.cli:run_enjoy",
    ),
    "plot": (
        "learning curves of run or bench folders: IQM over seeds, bootstrap bands",
        "mmrl.cli:run_plot",
    ),
    "export": (
        "a run as a self-contained folder: model, presets, model card",
        "mmrl.cli:run_export",
    ),
    "replay": ("render logged Minari dataset episodes into a video", "mmrl.cli:run_replay"),
    "evaluate": (
        "evaluate runs or models: returns, success, robustness, video",
        "mmrl.evaluation.cli:run_evaluate",
    ),
    "evaluate-offline": (
        "off-policy evaluation of a model on a logged Minari dataset",
        "mmrl.evaluation.cli:run_evaluate_offline",
    ),
}


# ---------------------------------------------------------------------------- handlers
def _tracking(opts: Any, group: str | None = None) -> Any:
    """``--track`` (of a command's options holding the :mod:`mmrl.commands.track` fields) as
    a :class:`mmrl.tracking.Tracking`; ``None`` when not given."""
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
        ("critic_warmup_steps", opts.critic_warmup),
    ]
    overrides = [
        f"agent.init.{key}={json.dumps(value)}" for key, value in pairs if value is not None
    ]
    if overrides and opts.resume:
        raise UsageError("--init-from/--freeze-encoders/... cannot change a resumed run")
    if opts.init_from is None and overrides:
        raise UsageError(
            "--freeze-encoders, --encoder-lr-scale, --init-policy-head and --critic-warmup need "
            "--init-from"
        )
    return overrides


def _guidance_overrides(opts: TrainOptions) -> list[str]:
    """``--expert-guidance``/``--guidance-decay``/``--label-guidance`` as
    ``agent.guidance.*`` overrides."""
    pairs = [
        ("weight", opts.expert_guidance),
        ("decay_steps", opts.guidance_decay),
        ("label_weight", opts.label_guidance),
    ]
    overrides = [f"agent.guidance.{key}={value}" for key, value in pairs if value is not None]
    if overrides and opts.resume:
        raise UsageError(
            "--expert-guidance/--guidance-decay/--label-guidance cannot change a resumed run"
        )
    return overrides


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
        overrides=opts.overrides + _init_overrides(opts) + _guidance_overrides(opts),
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


def run_bench(args: argparse.Namespace) -> int:
    """``mmrl bench``."""
    import dataclasses

    from mmrl.agent import resolve_device
    from mmrl.bench.driver import run_bench_command
    from mmrl.checkpoint import check_output_dir
    from mmrl.commands import BenchOptions, from_args
    from mmrl.commands.progress import progress_interval

    opts = from_args(BenchOptions, args)
    progress_interval(opts.log_interval, opts.quiet)  # a bad value fails before any cell
    check_output_dir(opts.out, field="out")
    resolve_device(opts.device)  # a bad --device fails here, not in every cell
    if opts.workers is None:
        import os

        workers = max(1, int((os.cpu_count() or 1) // max(opts.cpus_per_task, 1)))
        opts = dataclasses.replace(opts, workers=workers)
    return run_bench_command(opts)


def run_tune(args: argparse.Namespace) -> int:
    """``mmrl tune``."""
    from mmrl.commands import TuneOptions, from_args

    opts = from_args(TuneOptions, args)
    if opts.show_space:
        import yaml

        from mmrl.tune.space import load_space, space_to_dict

        print(yaml.safe_dump(space_to_dict(load_space(opts.space)), sort_keys=False), end="")
        return 0
    if not opts.study:
        raise UsageError("--study NAME is required (an existing study of that name resumes)")
    from mmrl.tune import tune

    result = tune(
        opts.env,
        opts.agent,
        trials=opts.trials,
        steps=opts.steps,
        study=opts.study,
        storage=opts.storage,
        workers=opts.workers,
        backend=opts.backend,
        address=opts.address,
        space=opts.space,
        out=opts.out,
        overrides=opts.overrides,
        seed=opts.seed,
        metric=opts.metric,
        evaluations=opts.evaluations,
        device=opts.device,
        verbose=0 if opts.quiet else 1,
        track=_tracking(opts, group=opts.study),
    )
    if not opts.quiet:
        print(
            f"study {opts.study}: {result.complete} complete, {result.pruned} pruned, "
            f"{result.failed} failed; report {result.files['summary']}"
        )
        if result.best_recipe is not None:
            print(f"best {result.best_value:.4g}: mmrl train --agent {result.best_recipe}")
    return 0


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
        writes=opts.writes,
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
        labels=opts.labels,
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
        track=_tracking(opts),
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

    from mmrl.commands import EnvsOptions, from_args
    from mmrl.config import available_presets, load_env_preset
    from mmrl.registration import ENV_ENTRIES, register_envs
    from mmrl.spaces import describe

    opts = from_args(EnvsOptions, args)
    register_envs()
    print("Registered environments:")
    for entry in ENV_ENTRIES:
        if entry.env_id not in gym.registry:
            continue
        print(f"  {entry.env_id:<28} {entry.description}")
        if not opts.no_spaces:
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
    from mmrl.commands import DemoOptions, from_args
    from mmrl.evaluation.demo import demo_snapshot

    opts = from_args(DemoOptions, args)
    out = Path(opts.out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
        raise UsageError(f"--out {out}: an image name is needed (.png, .jpg or .bmp)")
    check_output_file(out, field="out", parent_must_exist=True)
    shot = demo_snapshot(opts.env, opts.policy, opts.steps, opts.seed)
    frame = shot.frame
    if not cv2.imwrite(str(out), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
        raise UsageError(f"--out: cannot write an image to {out} (use a .png name)")
    print(f"policy: {shot.policy}, {shot.steps} steps, return {shot.total_reward:+.2f}")
    print(f"instruction: {shot.instruction}")
    print(f"wrote {out} ({frame.shape[1]}x{frame.shape[0]})")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    """``mmrl plot``."""
    from mmrl.commands import PlotOptions, from_args
    from mmrl.evaluation.plots import plot_runs

    opts = from_args(PlotOptions, args)
    path = plot_runs(opts.runs, opts.out, opts.group_by, opts.metric, opts.bootstrap)
    print(f"wrote {path}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``mmrl export``."""
    from mmrl.commands import ExportOptions, from_args
    from mmrl.export import export_run

    opts = from_args(ExportOptions, args)
    result = export_run(opts.run, opts.out, opts.best, opts.preview_episodes, opts.force)
    print(f"wrote {result.path}: {', '.join(result.files)}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    """``mmrl replay``."""
    from mmrl.commands import ReplayOptions, from_args
    from mmrl.evaluation.replay import replay_dataset

    opts = from_args(ReplayOptions, args)
    result = replay_dataset(opts.dataset, opts.video, opts.episodes, opts.fps)
    shown = ",".join(str(i) for i in result.episodes)
    print(f"wrote {result.path} ({result.codec}, {result.frames} frames, episodes {shown})")
    return 0


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
    from mmrl.commands import COMMAND_OPTIONS, add_options

    parser = _Parser(prog="mmrl", description="Multimodal reinforcement learning toolkit.")
    parser.add_argument("--version", action="version", version=f"mmrl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, _) in COMMANDS.items():
        example = EXAMPLES.get(name)
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=_HelpFormatter,
            epilog=f"example:\n  {example}" if example else None,
        )
        add_options(p, COMMAND_OPTIONS[name])
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
    module_name, func_name = COMMANDS[args.command][1].split(":")
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
