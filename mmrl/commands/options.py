"""Command options declared once, as typed dataclass fields; argparse flags generated from them.

A command's options are one ``@dataclasses.dataclass(kw_only=True)`` class whose fields are
made with :func:`option`: the field's name, type annotation and default, plus the help text,
allowed values and bounds in the field's metadata. :func:`add_options` turns the class
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
    exclusive_minimum: float | None
    maximum: float | None
    group: str | None
    positional: bool

    def bounded(self) -> bool:
        return (self.minimum, self.exclusive_minimum, self.maximum) != (None, None, None)

    def range_text(self) -> str:
        """The allowed range as the errors and the options table say it: ``>= 1``,
        ``> 0``, ``<= 64``, ``in [0, 64]`` or ``in (0, 1]``."""
        low, high = self.minimum, self.maximum
        open_low = self.exclusive_minimum is not None
        if open_low:
            low = self.exclusive_minimum
        if low is not None and high is not None:
            return f"in {'(' if open_low else '['}{low:g}, {high:g}]"
        if high is not None:
            return f"<= {high:g}"
        return f"{'>' if open_low else '>='} {low:g}"


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    flag: str | None = None,
    aliases: Sequence[str] = (),
    metavar: str | None = None,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    exclusive_minimum: float | None = None,
    maximum: float | None = None,
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
        exclusive_minimum: A bound the number must exceed (``0``: positive seconds, rates);
            not together with ``minimum``.
        maximum: The largest allowed number (inclusive).
        group: Title of the ``--help`` section the flag is listed in.
        positional: A positional argument: one value (a ``str`` field) or one or more (a
            ``list[str]`` field).

    Raises:
        TypeError: Both ``minimum`` and ``exclusive_minimum`` (a declaration bug).
    """
    if minimum is not None and exclusive_minimum is not None:
        raise TypeError("declare minimum or exclusive_minimum, not both")
    spec = _Spec(help, flag, tuple(aliases), metavar, tuple(choices) if choices else None,
                 minimum, exclusive_minimum, maximum, group, positional)  # fmt: skip
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

    Raises:
        TypeError: A declaration argparse cannot express: a switch defaulting to on, a
            bound on a field that is not a number, a positional that is not ``str`` or
            ``list[str]``.
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
        if spec.bounded() and kind not in (int, float):
            raise TypeError(f"option {field.name!r} has bounds but is not an int or float")
        kwargs: dict[str, Any] = {"help": spec.help}
        if spec.metavar is not None:
            kwargs["metavar"] = spec.metavar
        if spec.positional:
            if typing.get_origin(kind) is list:
                kwargs["nargs"] = "+"
            elif kind is not str:
                raise TypeError(f"positional option {field.name!r} must be a str or list[str]")
            target.add_argument(field.name, **kwargs)
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


def _check_range(field: dataclasses.Field, value: Any) -> None:
    spec = _spec(field)
    if not spec.bounded() or value is None:
        return
    flag = flag_of(field).lstrip("-").replace("-", "_")
    allowed = spec.range_text()
    if isinstance(value, float) and not math.isfinite(value):
        # An interval says "finite" already; ">= 1" alone would let a reader think inf passes.
        what = allowed if allowed.startswith("in ") else f"a finite number {allowed}"
        raise ConfigError(f"must be {what}, got {value}", field=flag)
    too_low = (spec.minimum is not None and value < spec.minimum) or (
        spec.exclusive_minimum is not None and value <= spec.exclusive_minimum
    )
    if too_low or (spec.maximum is not None and value > spec.maximum):
        raise ConfigError(f"must be {allowed}, got {value}", field=flag)


def from_args(cls: type[T], args: argparse.Namespace) -> T:
    """The options of ``cls`` read from a parsed namespace, every declared bound checked.

    Raises:
        ConfigError: A value outside its declared bounds, named by its flag's field
            (``--n-envs must be >= 1, got 0``, ``--gamma must be in (0, 1], got 2`` on the
            command line).
    """
    values = {f.name: getattr(args, f.name) for f in option_fields(cls)}
    for field in option_fields(cls):
        _check_range(field, values[field.name])
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
        if spec.bounded():
            text += f"; {spec.range_text()}"
        kind = _value_type(hints[field.name])
        name = flag_of(field)
        if spec.positional:  # RUN (one value) or TARGETS... (one or more)
            name = field.name.upper() + ("..." if typing.get_origin(kind) is list else "")
        kind = "switch" if kind is bool else _type_name(hints[field.name])
        text = text.replace("|", "&#124;").replace("<", "&lt;")  # Markdown, not HTML
        rows.append(f"| `{name}` | {kind} | {shown} | {text} |")
    return "\n".join(rows) + "\n"
