"""Typed command options (:mod:`mmrl.commands`): the CLI's flags, its defaults and the library's
defaults come from one dataclass per command, so they cannot drift apart (issue 14)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from pathlib import Path

import pytest

from mmrl.cli import build_parser, main
from mmrl.commands import COMMAND_OPTIONS, EvaluateOptions, PretrainOptions
from mmrl.commands.options import (
    add_options,
    default_of,
    flag_of,
    flags_of,
    from_args,
    option,
    option_fields,
    options_table,
)
from mmrl.errors import ConfigError

#: What each command needs on its command line before it parses (required options).
REQUIRED = {
    "train": [],
    "collect": ["--dataset-id", "a/b-v0"],
    "pretrain": ["--dataset", "a/b-v0"],
    "evaluate": ["RUN"],
    "evaluate-offline": ["RUN", "--dataset", "a/b-v0"],
    "bench": [],
}


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_every_converted_command_is_listed_here():
    assert set(REQUIRED) == set(COMMAND_OPTIONS)


@pytest.mark.parametrize("name", sorted(COMMAND_OPTIONS))
def test_parser_defaults_are_the_dataclass_defaults(name):
    cls = COMMAND_OPTIONS[name]
    args = build_parser().parse_args([name, *REQUIRED[name]])
    for field in option_fields(cls):
        default = default_of(field)
        if default is dataclasses.MISSING:
            continue  # required: given in REQUIRED
        assert getattr(args, field.name) == default, (name, field.name)
    assert from_args(cls, args) == cls(
        **{f.name: getattr(args, f.name) for f in option_fields(cls)}
    )


@pytest.mark.parametrize("name", sorted(COMMAND_OPTIONS))
def test_every_field_has_a_flag_and_every_flag_a_field(name):
    cls = COMMAND_OPTIONS[name]
    fields = {f.name: f for f in option_fields(cls)}
    assert set(fields) == {f.name for f in dataclasses.fields(cls)}, "a field without option()"
    actions = {a.dest: a for a in _subparser(name)._actions if a.dest != "help"}
    assert set(actions) == set(fields)
    for dest, action in actions.items():
        flag = flag_of(fields[dest])
        assert (action.option_strings or [dest]) == [*flags_of(fields[dest])], (name, dest)
        assert action.help, f"{name} {flag} has no help"


@pytest.mark.parametrize("name", sorted(COMMAND_OPTIONS))
def test_help_shows_each_non_trivial_default(name, capsys):
    with pytest.raises(SystemExit):
        main([name, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for field in option_fields(COMMAND_OPTIONS[name]):
        default = default_of(field)
        if default in (None, False, [], dataclasses.MISSING):
            continue
        help_text = " ".join(field.metadata["mmrl_option"].help.split())
        shown = f"{help_text} (default: {default})"
        assert shown in text or ("default" in help_text and help_text in text), (name, field.name)


def test_library_functions_take_the_command_defaults():
    """Every library parameter named like an option defaults to that option's default."""
    from mmrl.bench.grid import BenchSpec
    from mmrl.collect import collect
    from mmrl.commands import BenchOptions, CollectOptions, EvaluateOfflineOptions
    from mmrl.evaluation.ranking import evaluate_policies
    from mmrl.evaluation.rollouts import EvalSettings
    from mmrl.pretrain.trainer import pretrain

    def defaults(func):
        return {
            k: p.default
            for k, p in inspect.signature(func).parameters.items()
            if p.default is not inspect.Parameter.empty
        }

    def field_defaults(cls):
        fields = dataclasses.fields(cls)
        return {f.name: default_of(f) for f in fields if default_of(f) is not dataclasses.MISSING}

    pairs = [
        (defaults(pretrain), PretrainOptions, {}),
        (defaults(collect), CollectOptions, {}),
        (defaults(evaluate_policies), EvaluateOfflineOptions,
         {"features": "fqe_features", "steps_per_iter": "fqe_steps", "n_resamples": "bootstrap"}),
        (field_defaults(EvalSettings), EvaluateOptions,
         {"n_resamples": "bootstrap"}),
        (field_defaults(BenchSpec), BenchOptions, {}),
    ]  # fmt: skip
    checked = 0
    for library, cls, renamed in pairs:
        options = {f.name: default_of(f) for f in option_fields(cls)}
        for param, value in library.items():
            name = renamed.get(param, param)
            if name == "log_interval":  # the library's None is "no lines": the CLI picks
                continue  # the interval only when stdout is not a terminal
            # None, [] or required on the command line: no default to share
            if name in options and options[name] not in (None, [], dataclasses.MISSING):
                assert value == options[name], (cls.__name__, param)
                checked += 1
    assert checked >= 20


def test_pretrain_and_train_default_to_the_same_recipe():
    from mmrl.config import RunConfig

    assert PretrainOptions.agent == RunConfig.agent_name


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["collect", "--dataset-id", "a/b-v0", "--episodes", "0"],
            "--episodes must be >= 1, got 0",
        ),
        (["evaluate", "RUN", "--video-episodes", "0"], "--video-episodes must be >= 1, got 0"),
        (["bench", "--ablation-episodes", "-2"], "--ablation-episodes must be >= 1, got -2"),
        (["train", "--n-envs", "0"], "--n-envs must be >= 1, got 0"),
        (["pretrain", "--dataset", "a/b-v0", "--threads", "0"], "--threads must be >= 1, got 0"),
    ],
)
def test_a_value_below_its_declared_minimum_is_one_line_naming_the_flag(argv, says, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"mmrl {argv[0]}: error: {says}", err


# ---------------------------------------------------------------------------- the machinery
@dataclasses.dataclass(kw_only=True)
class _Toy:
    paths: list[str] = option(positional=True, metavar="PATH", help="inputs")
    name: str = option(help="required name")
    count: int | None = option(None, help="how many", minimum=1)
    rate: float = option(0.5, help="a rate", group="tuning")
    mode: str = option("a", choices=("a", "b"), help="a mode")
    tags: list[str] = option([], flag="--tag", metavar="T", help="repeatable")
    dry_run: bool = option(False, help="a switch")


def _toy_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toy")
    add_options(parser, _Toy)
    return parser


def test_fields_become_typed_flags():
    parser = _toy_parser()
    args = parser.parse_args(["x", "y", "--name", "n", "--count", "3", "--rate", "2",
                              "--tag", "p", "--tag", "q", "--dry-run", "--mode", "b"])  # fmt: skip
    toy = from_args(_Toy, args)
    assert toy == _Toy(paths=["x", "y"], name="n", count=3, rate=2.0, mode="b", tags=["p", "q"],
                       dry_run=True)  # fmt: skip
    assert isinstance(toy.rate, float)
    titles = [g.title for g in parser._action_groups]
    assert "tuning" in titles
    # List defaults are fresh per parse and per instance (argparse appends to a copy).
    again = from_args(_Toy, parser.parse_args(["x", "--name", "n"]))
    assert again.tags == [] and _Toy(paths=[], name="n").tags is not _Toy(paths=[], name="m").tags


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["x"], "the following arguments are required: --name"),
        (["x", "--name", "n", "--mode", "c"], "invalid choice: 'c'"),
        (["x", "--name", "n", "--count", "two"], "invalid int value: 'two'"),
    ],
)
def test_argparse_refuses_what_the_field_types_refuse(argv, says, capsys):
    with pytest.raises(SystemExit):
        _toy_parser().parse_args(argv)
    assert says in capsys.readouterr().err


def test_minimum_is_checked_and_named_by_the_flag():
    args = _toy_parser().parse_args(["x", "--name", "n", "--count", "0"])
    with pytest.raises(ConfigError) as err:
        from_args(_Toy, args)
    assert err.value.cli_message() == "--count must be >= 1, got 0"


def test_a_switch_that_defaults_to_on_is_refused():
    @dataclasses.dataclass(kw_only=True)
    class Bad:
        good: int = option(1, help="fine")
        switch: bool = option(True, help="a switch cannot default to on")

    with pytest.raises(TypeError, match="switch 'switch' must default to False"):
        add_options(argparse.ArgumentParser(), Bad)


def test_the_options_table_lists_every_flag_with_default_and_choices():
    table = options_table(EvaluateOptions)
    for field in option_fields(EvaluateOptions):
        assert f"`{flag_of(field)}`" in table or field.name.upper() in table
    assert "| `--episodes` | int | `100` |" in table
    assert "one of `auto`, `extractor`, `zero`" in table


def test_the_docs_hook_builds_the_command_options_page():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs"))
    try:
        import hooks
    finally:
        sys.path.pop(0)
    page = hooks.commands_page()
    for name in COMMAND_OPTIONS:
        assert f"## mmrl {name}\n" in page
    assert "`--dataset-id` | str | required |" in page
