"""Evaluation tables on the terminal (rich), and the same numbers as JSON and CSV.

Terminal: a main table (one row per model and split: return mean and IQM with bootstrap
intervals, success with its Wilson interval, collision rate, episode length), a table of
success per instruction group, and, with ``--ablate``/``--noise``, a robustness table of each
metric's change against the clean evaluation.

JSON: ``{"meta": ..., "results": [EvalResult.to_dict()], "comparisons": [...]}`` with the
per-episode arrays, so other tools (rliable's aggregate plots, ``mmrl bench``) can recompute
anything. CSV: one flat row per evaluation (model x split x condition), intervals as
``<metric>``, ``<metric>_low``, ``<metric>_high`` columns, deltas as ``delta_<metric>...``,
groups as ``success[<group>]`` and ``episodes[<group>]``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmrl.checkpoint import atomic_write_bytes
from mmrl.config import ConfigError
from mmrl.evaluation.robustness import DELTA_METRICS, Comparison
from mmrl.evaluation.rollouts import EvalResult
from mmrl.evaluation.stats import Interval
from mmrl.evaluation.tables import Cell, TextTable, csv_text, print_tables

_INTERVAL_METRICS = ("mean_return", "iqm_return", "success_rate", "collision_rate", "mean_length")
_RATES = ("success_rate", "collision_rate")
#: Column names of the metrics in the robustness table (short: it has eight columns).
_SHORT = {"mean_return": "return", "iqm_return": "IQM", "success_rate": "success",
          "collision_rate": "collision", "mean_length": "length"}  # fmt: skip


def fmt_interval(iv: Interval, percent: bool = False, signed: bool = False) -> str:
    """``"0.85 [0.80, 0.90]"``, or ``"85% [78, 91]"`` with ``percent``."""
    return " ".join(_interval_cell(iv, percent, signed))


def _interval_cell(iv: Interval, percent: bool = False, signed: bool = False) -> tuple[str, str]:
    """``("0.85", "[0.80, 0.90]")``, or ``("85%", "[78, 91]")`` with ``percent``: a table
    stacks the two, so an interval never breaks in the middle."""
    sign = "+" if signed else ""
    if percent:
        low, high = iv.low * 100, iv.high * 100
        return f"{iv.value * 100:{sign}.0f}%", f"[{low:{sign}.0f}, {high:{sign}.0f}]"
    return f"{iv.value:{sign}.2f}", f"[{iv.low:{sign}.2f}, {iv.high:{sign}.2f}]"


def _console(console: Any | None) -> Any:
    if console is not None:
        return console
    from rich.console import Console

    probe = Console()
    # Piped output: rich would assume 80 columns and wrap every interval; tables are wide.
    return probe if probe.is_terminal else Console(width=200)


def _row_name(r: EvalResult, several_splits: bool) -> str:
    return f"{r.label} [{r.split}]" if several_splits else r.label


def evaluation_tables(
    results: Sequence[EvalResult], comparisons: Sequence[Comparison] = ()
) -> list[TextTable]:
    """The main, per-group and robustness tables of ``mmrl evaluate`` (see the module
    docstring); none when there is no result."""
    clean = [r for r in results if r.condition.is_clean] or list(results)
    if not clean:
        return []
    several_splits = len({r.split for r in clean}) > 1
    conf = clean[0].settings.confidence
    pct = f"{conf * 100:.0f}%"
    first = clean[0]
    mode = "deterministic" if first.settings.deterministic else "stochastic"
    title = (
        f"{first.env_id}: {first.episodes} episodes, {mode}, seeds {first.settings.seed}+, "
        f"{first.settings.copies} copies, split {', '.join(dict.fromkeys(r.split for r in clean))}"
    )
    main = TextTable(
        title,
        ["model", "return mean", "return IQM", "success", "collision", "length", "s"],
        notes=[f"intervals: {pct} bootstrap CI for returns, {pct} Wilson for rates"],
    )
    for r in clean:
        main.rows.append(
            [
                _row_name(r, several_splits),
                _interval_cell(r.mean_return),
                _interval_cell(r.iqm_return),
                _interval_cell(r.success_rate, percent=True),
                _interval_cell(r.collision_rate, percent=True),
                f"{r.mean_length.value:.1f}",
                f"{r.seconds:.1f}",
            ]
        )
    tables = [main]

    groups = sorted({g for r in clean for g in r.by_group})
    if len(groups) > 1 or (groups and groups != ["all"]):
        by_group = TextTable("success per instruction group (episodes)", ["model", *groups])
        for r in clean:
            cells: list[Cell] = [_row_name(r, several_splits)]
            for g in groups:
                stats = r.by_group.get(g)
                cells.append(
                    "-"
                    if stats is None
                    else (f"{stats.success_rate.value * 100:.0f}%", f"({stats.episodes})")
                )
            by_group.rows.append(cells)
        tables.append(by_group)

    if comparisons:
        robustness = TextTable(
            f"robustness: change against clean observations [{pct} bootstrap CI]",
            ["model", "condition", "success"]
            + [f"Δ {_SHORT[name]}" for name, _, _ in DELTA_METRICS],
            left=2,
            group=True,  # eight columns: the model as a heading row keeps it in 80
        )
        for c in comparisons:
            robustness.rows.append(
                [
                    _row_name(c.result, several_splits),
                    c.result.condition.name,
                    f"{c.result.success_rate.value * 100:.0f}%",
                    *[
                        _interval_cell(c.deltas[name], percent=name in _RATES, signed=True)
                        for name, _, _ in DELTA_METRICS
                    ],
                ]
            )
        tables.append(robustness)
    return tables


def print_report(
    results: Sequence[EvalResult],
    comparisons: Sequence[Comparison] = (),
    console: Any | None = None,
    fmt: str = "table",
) -> None:
    """Prints the main, per-group and robustness tables in ``fmt`` (``table``,
    ``markdown``, or ``csv``: :func:`csv_rows`; see :mod:`mmrl.evaluation.tables`)."""
    tables = evaluation_tables(results, comparisons)
    rows = csv_rows(results, comparisons) if fmt == "csv" else ()
    print_tables(tables, fmt, rows, console)


def report_dict(
    results: Sequence[EvalResult],
    comparisons: Sequence[Comparison] = (),
    meta: dict[str, Any] | None = None,
    per_episode: bool = True,
) -> dict[str, Any]:
    """Everything in the tables as plain data (see the module docstring)."""
    return {
        "meta": dict(meta or {}),
        "results": [r.to_dict(per_episode=per_episode) for r in results],
        "comparisons": [c.to_dict() for c in comparisons],
    }


def csv_rows(
    results: Sequence[EvalResult], comparisons: Sequence[Comparison] = ()
) -> list[dict[str, Any]]:
    """One flat row per evaluation (see the module docstring)."""
    deltas = {(c.result.label, c.result.split, c.result.condition.name): c for c in comparisons}
    rows = []
    for r in results:
        row: dict[str, Any] = {
            "label": r.label,
            "env_id": r.env_id,
            "split": r.split,
            "condition": r.condition.name,
            "episodes": r.episodes,
            "steps": r.steps,
            "seconds": round(r.seconds, 3),
            "seed": r.settings.seed,
            "n_envs": r.settings.copies,
            "deterministic": r.settings.deterministic,
        }
        for name in _INTERVAL_METRICS:
            iv: Interval = getattr(r, name)
            row.update({name: iv.value, f"{name}_low": iv.low, f"{name}_high": iv.high})
        comparison = deltas.get((r.label, r.split, r.condition.name))
        for name, _, _ in DELTA_METRICS:
            d = comparison.deltas[name] if comparison is not None else None
            row[f"delta_{name}"] = d.value if d else ""
            row[f"delta_{name}_low"] = d.low if d else ""
            row[f"delta_{name}_high"] = d.high if d else ""
        for g, stats in r.by_group.items():
            row[f"success[{g}]"] = stats.success_rate.value
            row[f"episodes[{g}]"] = stats.episodes
        rows.append(row)
    return rows


def _check_parent(path: Path, flag: str) -> None:
    if not path.parent.is_dir():
        raise ConfigError(f"{flag} {path}: folder {path.parent} does not exist")


def write_json(path: str | Path, data: dict[str, Any], flag: str = "--json") -> Path:
    """Writes ``data`` as indented JSON (atomically)."""
    path = Path(path)
    _check_parent(path, flag)
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())
    return path


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]], flag: str = "--csv") -> Path:
    """Writes rows as CSV; columns are the union of the rows' keys, in first-seen order."""
    path = Path(path)
    _check_parent(path, flag)
    atomic_write_bytes(path, csv_text(rows).encode())
    return path


def print_offline(results: Sequence[Any], console: Any | None = None) -> None:
    """Prints ``mmrl evaluate-offline`` results (``OfflineResult`` s of :mod:`.offline`)."""
    from rich.table import Table

    console = _console(console)
    if not results:
        return
    first = results[0]
    table = Table(
        title=f"off-policy evaluation on {first.dataset_id} ({first.episodes} episodes, "
        f"{first.transitions} transitions, gamma {first.gamma:g})",
        title_justify="left",
    )
    columns = (
        "model",
        "agreement",
        "log-lik/step",
        f"FQE value (gamma={first.gamma:g})",
        "behaviour return (gamma)",
        "behaviour return",
        "FQE iters",
        "FQE TD rmse",
    )
    for name in columns:
        table.add_column(name, justify="left" if name == "model" else "right")
    from rich.markup import escape

    for r in results:
        agreement = f"{r.agreement * 100:.1f}% acc" if r.discrete else f"{r.agreement:.3f} MAE"
        table.add_row(
            escape(r.label),
            agreement,
            "-" if r.log_likelihood is None else f"{r.log_likelihood:.3f}",
            f"{r.fqe.value:.3f}",
            f"{r.behaviour_discounted_return:.3f}",
            f"{r.behaviour_return:.3f}",
            str(r.fqe.iterations),
            f"{r.fqe.td_error:.3f}",
        )
    console.print(table)
