"""The ``mmrl`` command line: ``envs``, ``demo``, ``train`` and the rest of the workflow.

Bad input (unknown command or option, unknown preset, malformed value, missing file) exits
with status 2 and one line saying what is wrong and what is allowed; heavy imports (torch,
SB3) happen only inside the command that needs them so ``mmrl --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn


class UsageError(Exception):
    """Bad user input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors on one line (no usage dump) with exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


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


@command("demo", "roll out the expert and save an image of every sensor", "mmrl.cli:run_demo")
def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="driving", help="env preset name or Gymnasium id")
    p.add_argument("--steps", type=int, default=30, help="expert steps before the snapshot")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="demo.png", help="PNG file to write")


@command("train", "train PPO with a multimodal extractor from presets", "mmrl.cli:run_train")
def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="driving", help="env preset name or YAML path")
    p.add_argument("--agent", default="ppo-attention", help="agent recipe name or YAML path")
    p.add_argument("--steps", type=int, help="total environment steps")
    p.add_argument("--seed", type=int, help="run seed")
    p.add_argument("--n-envs", type=int, help="environment copies stepped together")
    p.add_argument("--device", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument("--out", help="run folder (default runs/<env>-<agent>-s<seed>-<time>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. agent.ppo.learning_rate=1e-4")  # fmt: skip
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite an existing run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def run_train(args: argparse.Namespace) -> int:
    """``mmrl train``."""
    from mmrl.train import train

    if args.resume and args.overrides:
        raise UsageError("--set cannot change a resumed run (its config.yaml is fixed)")
    for name in ("steps", "n_envs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    run_dir = train(
        env=args.env,
        agent=args.agent,
        steps=args.steps,
        seed=args.seed,
        n_envs=args.n_envs,
        device=args.device,
        out=args.out,
        overrides=args.overrides,
        resume=args.resume,
        force=args.force,
        progress_bar=not args.quiet and sys.stderr.isatty(),
        verbose=0 if args.quiet else 1,
    )
    if not args.quiet:
        print(f"tensorboard --logdir {run_dir / 'tb'}")
    return 0


def _describe_space(space: Any) -> str:
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return ", ".join(f"{k}: {_describe_space(v)}" for k, v in space.spaces.items())
    if isinstance(space, spaces.Box):
        return f"Box{tuple(space.shape)} {space.dtype}"
    if isinstance(space, spaces.Discrete):
        return f"Discrete({space.n})"
    return str(space)


def run_envs(args: argparse.Namespace) -> int:
    """``mmrl envs``: registered ids and presets with observation and action spaces."""
    import gymnasium as gym

    from mmrl.config import available_presets, load_env_preset
    from mmrl.registration import ENV_ENTRIES, register_envs

    register_envs()
    print("Registered environments:")
    for entry in ENV_ENTRIES:
        if entry.env_id not in gym.registry:
            continue
        print(f"  {entry.env_id:<28} {entry.description}")
        if not args.no_spaces:
            env = gym.make(entry.env_id)
            print(f"      observation: {_describe_space(env.observation_space)}")
            print(f"      action:      {_describe_space(env.action_space)}")
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
    """``mmrl demo``: expert rollout, then a PNG of camera, lidar polar plot and instruction."""
    from pathlib import Path

    import cv2

    from mmrl.envs.visualize import compose_frame
    from mmrl.make import make_env

    if args.steps < 0:
        raise UsageError(f"--steps must be >= 0, got {args.steps}")
    env = make_env(args.env)
    obs, info = env.reset(seed=args.seed)
    unwrapped = env.unwrapped
    if not hasattr(unwrapped, "expert_action"):
        raise UsageError(f"{args.env}: no scripted expert; demo needs an mmrl environment")
    total = 0.0
    for _ in range(args.steps):
        obs, reward, terminated, truncated, info = env.step(unwrapped.expert_action())
        total += reward
        if terminated or truncated:
            break
    frame = compose_frame(obs, info["instruction"], [f"return so far {total:+.2f}"])
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        raise UsageError(f"--out: folder {out.parent} does not exist")
    if not cv2.imwrite(str(out), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
        raise UsageError(f"--out: cannot write an image to {out} (use a .png name)")
    print(f"instruction: {info['instruction']}")
    print(f"wrote {out} ({frame.shape[1]}x{frame.shape[0]})")
    return 0


# ---------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    """The full ``mmrl`` argument parser."""
    from mmrl import __version__

    parser = _Parser(prog="mmrl", description="Multimodal reinforcement learning toolkit.")
    parser.add_argument("--version", action="version", version=f"mmrl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit status (0 ok, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module_name, func_name = COMMANDS[args.command][2].split(":")
    import importlib

    from mmrl.checkpoint import CheckpointError
    from mmrl.config import ConfigError

    handler = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(handler(args) or 0)
    except (UsageError, ConfigError, CheckpointError) as err:
        print(f"mmrl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"mmrl {args.command}: error: file not found: {err.filename or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mmrl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
