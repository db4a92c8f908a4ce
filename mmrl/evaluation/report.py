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

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmrl.checkpoint import atomic_write_bytes
from mmrl.config import ConfigError
from mmrl.evaluation.robustness import DELTA_METRICS, Comparison
from mmrl.evaluation.rollouts import EvalResult
from mmrl.evaluation.stats import Interval

_INTERVAL_METRICS = ("mean_return", "iqm_return", "success_rate", "collision_rate", "mean_length")
_RATES = ("success_rate", "collision_rate")


def fmt_interval(iv: Interval, percent: bool = False, signed: bool = False) -> str:
    """``"0.85 [0.80, 0.90]"``, or ``"85% [78, 91]"`` with ``percent``."""
    sign = "+" if signed else ""
    if percent:
        return f"{iv.value * 100:{sign}.0f}% [{iv.low * 100:{sign}.0f}, {iv.high * 100:{sign}.0f}]"
    return f"{iv.value:{sign}.2f} [{iv.low:{sign}.2f}, {iv.high:{sign}.2f}]"


def _console(console: Any | None) -> Any:
    if console is not None:
        return console
    from rich.console import Console

    probe = Console()
    # Piped output: rich would assume 80 columns and wrap every interval; tables are wide.
    return probe if probe.is_terminal else Console(width=200)


def _row_name(r: EvalResult, several_splits: bool) -> str:
    from rich.markup import escape

    # Labels are file names: "[" must not start rich markup.
    return escape(f"{r.label} [{r.split}]" if several_splits else r.label)


def print_report(
    results: Sequence[EvalResult],
    comparisons: Sequence[Comparison] = (),
    console: Any | None = None,
) -> None:
    """Prints the main, per-group and robustness tables."""
    from rich.table import Table

    console = _console(console)
    clean = [r for r in results if r.condition.is_clean] or list(results)
    if not clean:
        return
    several_splits = len({r.split for r in clean}) > 1
    conf = clean[0].settings.confidence
    pct = f"{conf * 100:.0f}%"
    first = clean[0]
    mode = "deterministic" if first.settings.deterministic else "stochastic"
    title = (
        f"{first.env_id}: {first.episodes} episodes, {mode}, seeds {first.settings.seed}+, "
        f"{first.settings.copies} copies, split {', '.join(dict.fromkeys(r.split for r in clean))}"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("model")
    columns = (
        f"return mean [{pct} CI]",
        f"return IQM [{pct} CI]",
        f"success [{pct} Wilson]",
        f"collision [{pct} Wilson]",
        "length",
        "s",
    )
    for name in columns:
        table.add_column(name, justify="right")
    for r in clean:
        table.add_row(
            _row_name(r, several_splits),
            fmt_interval(r.mean_return),
            fmt_interval(r.iqm_return),
            fmt_interval(r.success_rate, percent=True),
            fmt_interval(r.collision_rate, percent=True),
            f"{r.mean_length.value:.1f}",
            f"{r.seconds:.1f}",
        )
    console.print(table)

    groups = sorted({g for r in clean for g in r.by_group})
    if len(groups) > 1 or (groups and groups != ["all"]):
        gtable = Table(title="success per instruction group (episodes)", title_justify="left")
        gtable.add_column("model")
        for g in groups:
            gtable.add_column(g, justify="right")
        for r in clean:
            cells = []
            for g in groups:
                stats = r.by_group.get(g)
                cells.append(
                    "-"
                    if stats is None
                    else f"{stats.success_rate.value * 100:.0f}% ({stats.episodes})"
                )
            gtable.add_row(_row_name(r, several_splits), *cells)
        console.print(gtable)

    if comparisons:
        from rich.markup import escape

        rtable = Table(
            title=f"robustness: change against clean observations [{pct} bootstrap CI]",
            title_justify="left",
        )
        rtable.add_column("model")
        rtable.add_column("condition")
        rtable.add_column("success", justify="right")
        for name, _, _ in DELTA_METRICS:
            rtable.add_column(f"Δ {name.replace('_', ' ')}", justify="right")
        for c in comparisons:
            cells = [
                fmt_interval(c.deltas[name], percent=name in _RATES, signed=True)
                for name, _, _ in DELTA_METRICS
            ]
            rtable.add_row(
                _row_name(c.result, several_splits),
                escape(c.result.condition.name),
                f"{c.result.success_rate.value * 100:.0f}%",
                *cells,
            )
        console.print(rtable)


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
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())
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
