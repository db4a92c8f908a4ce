"""Result tables printed three ways: fitted to the terminal, as Markdown, or as CSV.

``mmrl evaluate`` and ``mmrl evaluate-offline`` build their tables once, as
:class:`TextTable` s, and ``--format`` picks the rendering (issue 16: the tables were 150
columns wide, unreadable in an 80-column terminal and hard to paste):

- ``table`` (default): rich tables sized to the terminal (80 columns when stdout is a file
  or a pipe, or ``$COLUMNS``): a number and its interval are stacked in one cell, so the
  standard tables fit 80 columns without breaking an interval in the middle.
- ``markdown``: GitHub pipe tables, one line per row (for READMEs, issues, notebooks).
- ``csv``: the command's flat rows (the same as its ``--csv`` file), for scripts.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from mmrl.commands.evaluate import FORMATS

__all__ = ["FORMATS", "Cell", "TextTable", "csv_text", "markdown", "print_tables"]

#: A cell: text, or ``(value, interval)`` shown stacked in a terminal and on one line in
#: Markdown (``"0.85 [0.80, 0.90]"``).
Cell = str | tuple[str, str]


@dataclasses.dataclass
class TextTable:
    """One table: a title, column names, rows of cells and notes printed after it.

    Attributes:
        title: One line above the table.
        columns: Column names.
        rows: One list of cells per row, as long as ``columns``.
        left: Columns aligned left (names, labels); the rest are numbers, aligned right.
        notes: Lines printed after the table (legends, warnings).
        group: In a terminal, show the first column as a heading row above the rows it
            labels instead of as a column (a table too wide for 80 columns otherwise).
    """

    title: str
    columns: list[str]
    rows: list[list[Cell]] = dataclasses.field(default_factory=list)
    left: int = 1
    notes: list[str] = dataclasses.field(default_factory=list)
    group: bool = False


def _one_line(cell: Cell) -> str:
    return cell if isinstance(cell, str) else f"{cell[0]} {cell[1]}"


def markdown(tables: Sequence[TextTable]) -> str:
    """The tables as GitHub pipe tables, each after a bold title line and before its notes."""
    blocks = []
    for table in tables:

        def row(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        rule = [":---" if i < table.left else "---:" for i in range(len(table.columns))]
        lines = [f"**{table.title}**", "", row(table.columns), "| " + " | ".join(rule) + " |"]
        lines += [row([_one_line(c) for c in cells]) for cells in table.rows]
        if table.notes:
            lines += ["", *table.notes]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as CSV; columns are the union of the rows' keys, in first-seen order."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def print_tables(
    tables: Sequence[TextTable],
    fmt: str = "table",
    csv_rows: Sequence[dict[str, Any]] = (),
    console: Any | None = None,
    stream: TextIO | None = None,
) -> None:
    """Prints ``tables`` in ``fmt`` (one of :data:`FORMATS`; ``csv`` prints ``csv_rows``).

    Args:
        tables: The tables of ``table`` and ``markdown``.
        fmt: ``table``, ``markdown`` or ``csv``.
        csv_rows: The flat rows of ``csv``.
        console: A rich console for ``table`` (default: stdout's, sized to the terminal).
        stream: Where ``markdown`` and ``csv`` go (default ``sys.stdout``).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt != "table":
        text = markdown(tables) if fmt == "markdown" else csv_text(csv_rows)
        (stream or sys.stdout).write(text)
        return
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # Not a terminal: rich's 80 columns (or $COLUMNS), the width the tables are built for.
    console = console or Console()
    for table in tables:
        columns, left = table.columns, table.left
        cells = [[c if isinstance(c, str) else "\n".join(c) for c in row] for row in table.rows]
        headings = [row[0] for row in cells] if table.group else []
        if table.group:
            columns, left, cells = columns[1:], left - 1, [row[1:] for row in cells]
        # The title on its own line: as rich's title it wraps to a narrow table's width.
        console.print(escape(table.title), overflow="fold")
        shown = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for i, name in enumerate(columns):
            # No min_width: rich then crops the last columns instead of wrapping the others.
            shown.add_column(escape(name), justify="left" if i < left else "right",
                             overflow="fold")  # fmt: skip
        for index, row in enumerate(cells):
            if headings and (index == 0 or headings[index] != headings[index - 1]):
                shown.add_row(f"[bold]{escape(headings[index])}[/bold]")
            shown.add_row(*map(escape, row))  # labels are file names: "[" is no markup
        console.print(shown)
        for note in table.notes:
            console.print(escape(note), overflow="fold")
