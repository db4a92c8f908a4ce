"""Command options declared once, as typed dataclass fields; argparse flags generated from them.

A command's options are one ``@dataclasses.dataclass(kw_only=True)`` class whose fields are
made with :func:`option`: the field's name, type annotation and default, plus the help text,
allowed values and lower bound in the field's metadata. :func:`add_options` turns the class
into argparse flags (``n_envs`` -> ``--n-envs``, ``bool`` -> a switch, ``list[str]`` -> a
repeatable option), and :func:`from_args` reads the parsed namespace back into the class,
checking every declared bound. Library functions take their defaults from the same class,
so a default, a type or a help text cannot differ between ``--help``, the handler and the
Python API (issue 14: each option was written three or four times before).

Adding a flag to a command is one field (and its use in the handler).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

from mmrl.errors import ConfigError

__all__ = [
    "add_options",
    "default_of",
    "flag_of",
    "flags_of",
    "from_args",
    "option",
    "option_fields",
    "options_table",
]

T = TypeVar("T")

#: What :func:`option` records in a field's metadata (the one key this module reads).
_KEY = "mmrl_option"


@dataclasses.dataclass(frozen=True)
class _Spec:
    """A field's command-line side (see :func:`option`)."""

    help: str
    flag: str | None
    aliases: tuple[str, ...]
    metavar: str | None
    choices: tuple[Any, ...] | None
    minimum: float | None
    group: str | None
    positional: bool


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    flag: str | None = None,
    aliases: Sequence[str] = (),
    metavar: str | None = None,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    group: str | None = None,
    positional: bool = False,
) -> Any:
    """A command option: a dataclass field with its command-line side in the metadata.

    Args:
        default: The default; a ``list`` default is copied per instance. Without one the flag
            is required (or, with ``positional``, a positional argument).
        help: The ``--help`` text (``(default: X)`` is appended by the CLI's formatter).
        flag: The flag when it is not ``--`` plus the field name with dashes (``--set`` for
            ``overrides``).
        aliases: More flags for the same option (``--n-workers`` beside ``--workers``: the
            library names the field ``n_workers`` in its errors).
        metavar: argparse's name of the value in ``--help``.
        choices: The allowed values (argparse refuses others in one line).
        minimum: The smallest allowed number (inclusive); :func:`from_args` checks it.
        group: Title of the ``--help`` section the flag is listed in.
        positional: A positional argument taking one or more values (a ``list[str]`` field).
    """
    spec = _Spec(help, flag, tuple(aliases), metavar, tuple(choices) if choices else None,
                 minimum, group, positional)  # fmt: skip
    metadata = {_KEY: spec}
    if isinstance(default, list):
        items = list(default)
        return dataclasses.field(default_factory=lambda: list(items), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _spec(field: dataclasses.Field) -> _Spec:
    spec = field.metadata.get(_KEY)
    if spec is None:
        raise TypeError(f"field {field.name!r} is not an option(); declare it with option()")
    return spec


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The option fields of a command-options class, in declaration order."""
    return [f for f in dataclasses.fields(cls) if _KEY in f.metadata]


def flag_of(field: dataclasses.Field) -> str:
    """The command-line flag of a field (``--n-envs``), or its name for a positional one."""
    spec = _spec(field)
    if spec.positional:
        return field.name
    return spec.flag or "--" + field.name.replace("_", "-")


def flags_of(field: dataclasses.Field) -> list[str]:
    """Every flag of a field: :func:`flag_of`'s, then its ``aliases``."""
    return [flag_of(field), *_spec(field).aliases]


def default_of(field: dataclasses.Field) -> Any:
    """A field's default value (a fresh list for list fields; ``MISSING`` when required)."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _value_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``; ``list[str]`` stays ``list[str]``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if len(args) != 1:
            raise TypeError(f"an option is one type or that type | None, got {annotation}")
        return args[0]
    return annotation


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Adds one argparse argument per option field of ``cls``.

    ``bool`` fields (default ``False``) become switches, ``list[str]`` fields repeatable
    options (or, positional, ``nargs="+"``), ``int`` and ``float`` fields typed options.
    """
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    for field in option_fields(cls):
        spec = _spec(field)
        target: Any = parser
        if spec.group is not None:
            if spec.group not in groups:
                groups[spec.group] = parser.add_argument_group(spec.group)
            target = groups[spec.group]
        kind = _value_type(hints[field.name])
        default = default_of(field)
        kwargs: dict[str, Any] = {"help": spec.help}
        if spec.metavar is not None:
            kwargs["metavar"] = spec.metavar
        if spec.positional:
            if typing.get_origin(kind) is not list:
                raise TypeError(f"positional option {field.name!r} must be a list[str]")
            target.add_argument(field.name, nargs="+", **kwargs)
            continue
        kwargs["dest"] = field.name
        if kind is bool:
            if default is not False:
                raise TypeError(f"switch {field.name!r} must default to False")
            kwargs["action"] = "store_true"
        else:
            if typing.get_origin(kind) is list:
                kwargs["action"] = "append"
            elif kind in (int, float):
                kwargs["type"] = kind
            if spec.choices is not None:
                kwargs["choices"] = list(spec.choices)
            if default is dataclasses.MISSING:
                kwargs["required"] = True
            else:
                kwargs["default"] = default
        target.add_argument(*flags_of(field), **kwargs)


def _check_minimum(field: dataclasses.Field, value: Any) -> None:
    minimum = _spec(field).minimum
    if minimum is None or value is None:
        return
    flag = flag_of(field).lstrip("-").replace("-", "_")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"must be a finite number >= {minimum:g}, got {value}", field=flag)
    if value < minimum:
        raise ConfigError(f"must be >= {minimum:g}, got {value}", field=flag)


def from_args(cls: type[T], args: argparse.Namespace) -> T:
    """The options of ``cls`` read from a parsed namespace, every declared bound checked.

    Raises:
        ConfigError: A value below its ``minimum``, named by its flag's field
            (``--n-envs must be >= 1, got 0`` on the command line).
    """
    values = {f.name: getattr(args, f.name) for f in option_fields(cls)}
    for field in option_fields(cls):
        _check_minimum(field, values[field.name])
    return cls(**values)


def _type_name(annotation: Any) -> str:
    kind = _value_type(annotation)
    if typing.get_origin(kind) is list:
        return f"list of {typing.get_args(kind)[0].__name__}"
    return getattr(kind, "__name__", str(kind))


def options_table(cls: type) -> str:
    """A Markdown table of a command's options (flag, type, default, allowed values, help),
    for the configuration reference (``docs/hooks.py`` builds it from the same fields)."""
    hints = typing.get_type_hints(cls)
    rows = ["| option | type | default | help |", "| --- | --- | --- | --- |"]
    for field in option_fields(cls):
        spec = _spec(field)
        default = default_of(field)
        if default is dataclasses.MISSING:
            shown = "required"
        elif default is None or default is False or default == []:
            shown = ""
        else:
            shown = f"`{default}`"
        text = spec.help
        if spec.choices:
            text += "; one of " + ", ".join(f"`{c}`" for c in spec.choices)
        if spec.minimum is not None:
            text += f"; at least {spec.minimum:g}"
        name = flag_of(field) if not spec.positional else f"{field.name.upper()}..."
        kind = "switch" if _value_type(hints[field.name]) is bool else _type_name(hints[field.name])
        text = text.replace("|", "&#124;").replace("<", "&lt;")  # Markdown, not HTML
        rows.append(f"| `{name}` | {kind} | {shown} | {text} |")
    return "\n".join(rows) + "\n"
