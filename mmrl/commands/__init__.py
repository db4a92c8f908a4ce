"""The options of each workflow command, declared once as typed dataclasses.

Each class is what one ``mmrl`` sub-command accepts: its ``--help`` flags are generated from
the fields (:func:`mmrl.commands.options.add_options`), its handler reads them back
(:func:`mmrl.commands.options.from_args`), and the library function behind it takes its
defaults from the same fields. Only ``dataclasses`` and the run config's defaults are
imported here, so building the parser stays fast (no torch, no SB3).
"""

from __future__ import annotations

from mmrl.commands.bench import BenchOptions
from mmrl.commands.collect import CollectOptions
from mmrl.commands.evaluate import EvaluateOfflineOptions, EvaluateOptions
from mmrl.commands.options import add_options, flag_of, from_args, option, option_fields
from mmrl.commands.pretrain import PretrainOptions
from mmrl.commands.track import TrackOptions
from mmrl.commands.train import TrainOptions

#: Command name -> its options class (the commands converted to typed options).
COMMAND_OPTIONS: dict[str, type] = {
    "train": TrainOptions,
    "collect": CollectOptions,
    "pretrain": PretrainOptions,
    "evaluate": EvaluateOptions,
    "evaluate-offline": EvaluateOfflineOptions,
    "bench": BenchOptions,
}

__all__ = [
    "COMMAND_OPTIONS",
    "BenchOptions",
    "CollectOptions",
    "EvaluateOfflineOptions",
    "EvaluateOptions",
    "PretrainOptions",
    "TrackOptions",
    "TrainOptions",
    "add_options",
    "flag_of",
    "from_args",
    "option",
    "option_fields",
]
