"""The options of every ``mmrl`` command, declared once as typed dataclasses.

Each class is what one ``mmrl`` sub-command accepts: its ``--help`` flags are generated from
the fields (:func:`mmrl.commands.options.add_options`), its handler reads them back
(:func:`mmrl.commands.options.from_args`), and the library function behind it takes its
defaults from the same fields. Only ``dataclasses`` and the run config's defaults are
imported here, so building the parser stays fast (no torch, no SB3).
"""

from __future__ import annotations

from mmrl.commands.bench import BenchOptions
from mmrl.commands.collect import CollectOptions
from mmrl.commands.demo import DemoOptions
from mmrl.commands.enjoy import EnjoyOptions
from mmrl.commands.envs import EnvsOptions
from mmrl.commands.evaluate import EvaluateOfflineOptions, EvaluateOptions
from mmrl.commands.export import ExportOptions
from mmrl.commands.options import add_options, flag_of, from_args, option, option_fields
from mmrl.commands.plot import PlotOptions
from mmrl.commands.pretrain import PretrainOptions
from mmrl.commands.replay import ReplayOptions
from mmrl.commands.train import TrainOptions
from mmrl.commands.tune import TuneOptions

#: Command name -> its options class: every ``mmrl`` command (``mmrl.cli`` adds each one's
#: flags from here, and a test checks that no command is missing).
COMMAND_OPTIONS: dict[str, type] = {
    "envs": EnvsOptions,
    "demo": DemoOptions,
    "train": TrainOptions,
    "bench": BenchOptions,
    "tune": TuneOptions,
    "collect": CollectOptions,
    "pretrain": PretrainOptions,
    "enjoy": EnjoyOptions,
    "plot": PlotOptions,
    "export": ExportOptions,
    "replay": ReplayOptions,
    "evaluate": EvaluateOptions,
    "evaluate-offline": EvaluateOfflineOptions,
}

__all__ = [
    "COMMAND_OPTIONS",
    "BenchOptions",
    "CollectOptions",
    "DemoOptions",
    "EnjoyOptions",
    "EnvsOptions",
    "EvaluateOfflineOptions",
    "EvaluateOptions",
    "ExportOptions",
    "PlotOptions",
    "PretrainOptions",
    "ReplayOptions",
    "TrainOptions",
    "TuneOptions",
    "add_options",
    "flag_of",
    "from_args",
    "option",
    "option_fields",
]
