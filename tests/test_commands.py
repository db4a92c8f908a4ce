"""Typed command options (:mod:`mmrl.commands`): the CLI's flags, its defaults and the library's
defaults come from one dataclass per command, so they cannot drift apart (issue 14)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from pathlib import Path

import pytest

from mmrl.cli import COMMANDS, build_parser, main
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
    "envs": [],
    "demo": [],
    "train": [],
    "bench": [],
    "tune": [],
    "collect": ["--dataset-id", "a/b-v0"],
    "pretrain": ["--dataset", "a/b-v0"],
    "enjoy": ["RUN"],
    "plot": ["RUN"],
    "export": ["RUN", "--out", "share"],
    "replay": ["a/b-v0", "--video", "v.mp4"],
    "evaluate": ["RUN"],
    "evaluate-offline": ["RUN", "--dataset", "a/b-v0"],
}


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_every_registered_command_has_an_options_class():
    """No command declares flags by hand: each one in ``mmrl.cli.COMMANDS`` has its typed
    options class, and the parser is built from it."""
    assert list(COMMAND_OPTIONS) == list(COMMANDS)
    assert set(REQUIRED) == set(COMMANDS)
    for name, cls in COMMAND_OPTIONS.items():
        assert dataclasses.is_dataclass(cls) and option_fields(cls), name


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
def test_help_shows_each_non_trivial_default(name, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no line break inside a value ("ppo-" / "concat")
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
    from mmrl.commands import (
        BenchOptions,
        CollectOptions,
        DemoOptions,
        EnjoyOptions,
        EvaluateOfflineOptions,
        ExportOptions,
        PlotOptions,
        ReplayOptions,
        TuneOptions,
    )
    from mmrl.evaluation.demo import demo_snapshot
    from mmrl.evaluation.enjoy import enjoy
    from mmrl.evaluation.plots import plot_runs
    from mmrl.evaluation.ranking import evaluate_policies
    from mmrl.evaluation.replay import replay_dataset
    from mmrl.evaluation.rollouts import EvalSettings
    from mmrl.export import export_run
    from mmrl.pretrain.trainer import pretrain
    from mmrl.tune import tune

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
        (defaults(tune), TuneOptions, {}),
        (defaults(enjoy), EnjoyOptions, {}),
        (defaults(plot_runs), PlotOptions, {"n_resamples": "bootstrap"}),
        (defaults(export_run), ExportOptions, {}),
        (defaults(replay_dataset), ReplayOptions, {}),
        (defaults(demo_snapshot), DemoOptions, {}),
    ]  # fmt: skip
    checked = {}
    for library, cls, renamed in pairs:
        options = {f.name: default_of(f) for f in option_fields(cls)}
        for param, value in library.items():
            name = renamed.get(param, param)
            if name == "log_interval":  # the library's None is "no lines": the CLI picks
                continue  # the interval only when stdout is not a terminal
            # None, [] or required on the command line: no default to share
            if name in options and options[name] not in (None, [], dataclasses.MISSING):
                assert value == options[name], (cls.__name__, param)
                checked[cls.__name__] = checked.get(cls.__name__, 0) + 1
    assert sum(checked.values()) >= 40
    # tune: the env, recipe, counts and choices; plot: grouping, metric and resamples
    assert checked["TuneOptions"] >= 10 and checked["PlotOptions"] == 3, checked
    assert checked["EnjoyOptions"] == 5 and checked["ReplayOptions"] == 2, checked


def test_tune_takes_its_choices_and_the_train_defaults_from_its_options():
    from mmrl.commands.tune import BACKENDS, METRICS, TuneOptions
    from mmrl.config import RunConfig
    from mmrl.tune import study

    assert (study.BACKENDS, study.METRICS) == (BACKENDS, METRICS)
    fields = {f.name: f for f in option_fields(TuneOptions)}
    assert fields["backend"].metadata["mmrl_option"].choices == BACKENDS
    assert fields["metric"].metadata["mmrl_option"].choices == METRICS
    assert (TuneOptions.env, TuneOptions.agent) == (RunConfig.env_name, RunConfig.agent_name)


def test_enjoy_help_states_the_frame_rate_the_player_uses():
    from mmrl.commands.enjoy import BASE_FPS
    from mmrl.evaluation import enjoy

    assert enjoy.BASE_FPS is BASE_FPS
    assert f"1 is {BASE_FPS} frames/s" in _subparser("enjoy").format_help()


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
        (["train", "--log-interval", "0"], "--log-interval must be > 0, got 0.0"),
        (["train", "--log-interval", "inf"], "--log-interval must be a finite number > 0, got inf"),
        (["bench", "--cpus-per-task", "0"], "--cpus-per-task must be in (0, 1024], got 0.0"),
        (["bench", "--cpus-per-task", "2000"], "--cpus-per-task must be in (0, 1024], got 2000.0"),
        (["bench", "--cpus-per-task", "nan"], "--cpus-per-task must be in (0, 1024], got nan"),
        (["bench", "--gpus-per-task", "-1"], "--gpus-per-task must be in [0, 64], got -1.0"),
        (["bench", "--gpus-per-task", "65"], "--gpus-per-task must be in [0, 64], got 65.0"),
        (["evaluate-offline", "RUN", "--dataset", "a/b-v0", "--gamma", "0"],
         "--gamma must be in (0, 1], got 0.0"),
        (["evaluate-offline", "RUN", "--dataset", "a/b-v0", "--gamma", "1.5"],
         "--gamma must be in (0, 1], got 1.5"),
        (["demo", "--steps", "-1"], "--steps must be >= 0, got -1"),
        (["plot", "RUN", "--bootstrap", "0"], "--bootstrap must be >= 1, got 0"),
    ],
)  # fmt: skip
def test_a_value_outside_its_declared_bounds_is_one_line_naming_the_flag(argv, says, capsys):
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


@dataclasses.dataclass(kw_only=True)
class _Bounded:
    rate: float = option(0.5, help="a rate", exclusive_minimum=0, maximum=1)
    share: float = option(0.0, help="a share", minimum=0, maximum=2)
    cap: int = option(3, help="a cap", maximum=5)
    wait: float = option(1.0, help="a wait", exclusive_minimum=0)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--rate", "0"], "--rate must be in (0, 1], got 0.0"),
        (["--rate", "1.01"], "--rate must be in (0, 1], got 1.01"),
        (["--rate", "nan"], "--rate must be in (0, 1], got nan"),
        (["--share", "-0.5"], "--share must be in [0, 2], got -0.5"),
        (["--share", "inf"], "--share must be in [0, 2], got inf"),
        (["--cap", "6"], "--cap must be <= 5, got 6"),
        (["--wait", "0"], "--wait must be > 0, got 0.0"),
        (["--wait=-inf"], "--wait must be a finite number > 0, got -inf"),
    ],
)
def test_exclusive_minimum_and_maximum_are_checked_and_named_by_the_flag(argv, says):
    parser = argparse.ArgumentParser()
    add_options(parser, _Bounded)
    with pytest.raises(ConfigError) as err:
        from_args(_Bounded, parser.parse_args(argv))
    assert err.value.cli_message() == says


def test_the_bounds_themselves_are_allowed():
    parser = argparse.ArgumentParser()
    add_options(parser, _Bounded)
    argv = ["--rate", "1", "--share", "0", "--cap", "5", "--wait", "1e-9"]
    assert from_args(_Bounded, parser.parse_args(argv)) == _Bounded(
        rate=1.0, share=0.0, cap=5, wait=1e-9
    )
    table = options_table(_Bounded)
    for row in ("a rate; in (0, 1]", "a share; in [0, 2]", "a cap; &lt;= 5", "a wait; > 0"):
        assert row in table


def test_a_single_positional_is_one_string():
    @dataclasses.dataclass(kw_only=True)
    class One:
        path: str = option(positional=True, metavar="PATH", help="one input")

    parser = argparse.ArgumentParser()
    add_options(parser, One)
    assert from_args(One, parser.parse_args(["a"])) == One(path="a")
    with pytest.raises(SystemExit):
        parser.parse_args(["a", "b"])


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: option(1, help="x", minimum=0, exclusive_minimum=0), "not both"),
    ],
)
def test_contradictory_bounds_are_refused(make, says):
    with pytest.raises(TypeError, match=says):
        make()


def test_bounds_on_a_field_that_is_not_a_number_are_refused():
    @dataclasses.dataclass(kw_only=True)
    class Bad:
        name: str = option("a", help="a name", minimum=1)

    with pytest.raises(TypeError, match="has bounds but is not an int or float"):
        add_options(argparse.ArgumentParser(), Bad)


def test_a_positional_that_is_not_a_string_is_refused():
    @dataclasses.dataclass(kw_only=True)
    class Bad:
        count: int = option(positional=True, help="a number")

    with pytest.raises(TypeError, match="must be a str or list"):
        add_options(argparse.ArgumentParser(), Bad)


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
