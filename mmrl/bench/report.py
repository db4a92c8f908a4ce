"""The report of a bench folder: ``results.csv``, ``summary.md`` and the figures.

Built only from the cell records (``cells/*/cell.json``), so it can be regenerated at any
time (``mmrl bench --report-only --out DIR``), including while a grid is still running and
after cells were gathered from Ray workers on other machines.
"""

from __future__ import annotations

import datetime
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmrl.bench import figures
from mmrl.bench.aggregate import (
    DEFAULT_REPS,
    GROUP_PREFIX,
    NAN_ESTIMATE,
    TEST_GROUP_PREFIX,
    cell_row,
    groups_of,
    modalities_of,
    separated_pairs,
    summarize_fusion_over_envs,
    summarize_group,
)
from mmrl.bench.grid import CELL_ERROR, MANIFEST, Cell, all_records, cell_dir, read_json
from mmrl.checkpoint import atomic_write_bytes

RESULTS_CSV = "results.csv"
SUMMARY_MD = "summary.md"
FIGURES = {
    "curves": "learning_curves.png",
    "final": "final_performance.png",
    "robustness": "robustness.png",
}
#: Leading columns of results.csv; per-modality ablation columns follow.
LEADING_COLUMNS = [
    "env", "fusion", "seed", "steps", "success", "return", "collision", "length",
    "test_success", "test_return", "generalization_gap", "success_episodes",
    "test_success_episodes", "eval_episodes",
    "steps_per_second", "train_seconds", "cell_seconds", "params", "extractor_params",
]  # fmt: skip


def results_frame(records: Sequence[Mapping[str, Any]]) -> Any:
    """One ``pandas.DataFrame`` row per cell, sorted by env, fusion, seed."""
    import pandas as pd

    rows = [cell_row(r) for r in records]
    extra = sorted({c for r in rows for c in r} - set(LEADING_COLUMNS))
    frame = pd.DataFrame(rows, columns=LEADING_COLUMNS + extra)
    if not frame.empty:
        frame = frame.sort_values(["env", "fusion", "seed"], kind="stable")
    return frame.reset_index(drop=True)


def group_summaries(
    rows: Sequence[Mapping[str, Any]], reps: int = DEFAULT_REPS
) -> dict[tuple[str, str], dict[str, Any]]:
    """``(env, fusion) -> summarize_group(...)`` in first-seen order."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((str(r["env"]), str(r["fusion"])), []).append(r)
    return {key: summarize_group(group, reps=reps) for key, group in groups.items()}


def _fmt_number(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return out


def _missing_cells(out: Path, done: set[str]) -> list[tuple[str, bool]]:
    manifest = read_json(out / MANIFEST) or {}
    missing = []
    for item in manifest.get("cells", []):
        cell = Cell(str(item["env"]), str(item["fusion"]), int(item["seed"]))
        if cell.cell_id not in done:
            missing.append((cell.cell_id, (cell_dir(out, cell) / CELL_ERROR).is_file()))
    return missing


def _episodes_note(rows: Sequence[Mapping[str, Any]]) -> str:
    """How many episodes per cell the success columns rest on, e.g. ``200 episodes per cell
    on each split`` or, in a folder with records older than the cells' own final evaluation,
    ``train split: 200 episodes per cell; test split: 32 or 200 episodes per cell``."""
    counts = {
        split: sorted({int(r[column]) for r in rows if r.get(column) is not None})
        for split, column in (("train", "success_episodes"), ("test", "test_success_episodes"))
    }
    counts = {split: values for split, values in counts.items() if values}
    if not counts:
        return "episodes not recorded"
    words = {split: " or ".join(str(v) for v in values) for split, values in counts.items()}
    if len(set(words.values())) == 1:
        each = "each split" if len(words) > 1 else f"the {next(iter(words))} split"
        return f"{next(iter(words.values()))} episodes per cell on {each}"
    return "; ".join(f"{split} split: {w} episodes per cell" for split, w in words.items())


def _episode_counts(rows: Sequence[Mapping[str, Any]]) -> str:
    """The episodes per cell behind one table row's success columns, ``train / test``; a
    split whose seeds rest on different counts lists them (``200 / 32, 200``)."""

    def counts(column: str) -> str:
        values = sorted({int(r[column]) for r in rows if r.get(column) is not None})
        return ", ".join(str(v) for v in values) or "-"

    return f"{counts('success_episodes')} / {counts('test_success_episodes')}"


def summary_markdown(
    out: Path,
    records: Sequence[Mapping[str, Any]],
    summaries: Mapping[tuple[str, str], Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    figure_paths: Mapping[str, Path | None],
    command: str | None = None,
) -> str:
    """The Markdown summary: protocol, main table, robustness, per-fusion totals."""
    manifest = read_json(Path(out) / MANIFEST) or {}
    protocol = manifest.get("protocol", {})
    hosts = sorted({str(r.get("host", "?")) for r in records})
    lines = [
        "# mmrl bench results",
        "",
        f"- generated: {datetime.datetime.now().isoformat(timespec='seconds')} on "
        f"{platform.node()} ({platform.machine()}); cells ran on: {', '.join(hosts) or '-'}",
        f"- protocol: {protocol.get('steps')} env steps per cell; "
        f"overrides: {' '.join(protocol.get('overrides') or []) or 'none'}; "
        f"device: {protocol.get('device')}; "
        f"pretrained encoders: {_pretrained(protocol)}",
        f"- finished cells: {len(records)}",
    ]
    if manifest.get("adopted_encoders"):
        lines.append(
            "- encoders rebuilt and adopted (`--adopt-encoders`; same mmrl pretrain commands, "
            f"other bytes), cells by the encoder they used: {_encoder_provenance(records)}"
        )
    if command:
        lines.append(f"- command: `{command}`")
    lines += [
        "",
        "Success and return: the last model's deterministic evaluation on held-out seeds "
        f"({_episodes_note(rows)}); "
        "**IQM over seeds with 95% stratified bootstrap CI** (Agarwal et al. 2021). "
        "Test success: held-out instruction combinations. Gap: train minus test success. "
        "Steps/s: training wall clock including periodic evaluation. Params: policy "
        "(extractor + heads).",
        "",
        "## Final performance",
        "",
    ]
    body = []
    for (env, fusion), s in summaries.items():
        have = [r for r in rows if r["env"] == env and r["fusion"] == fusion]
        body.append([
            env, fusion, str(s["seeds"]), s["success"].fmt(), s["test_success"].fmt(),
            s["generalization_gap"].fmt(), s["return"].fmt(), _episode_counts(have),
            _fmt_number(s["steps_per_second"]), _fmt_number(s["params"]),
        ])  # fmt: skip
    lines += _table(
        ["env", "fusion", "seeds", "success", "test success", "gap", "return",
         "episodes (train / test)", "steps/s", "params"],
        body,
    )  # fmt: skip
    keys = modalities_of(rows)
    if keys:
        lines += [
            "",
            "## Robustness: change in success with a modality removed",
            "",
            "Each modality replaced by the extractor's learned missing-modality embedding, "
            "same held-out episodes as the unablated policy; IQM over seeds [95% CI]. "
            "Strongly negative = the policy relies on that sensor.",
            "",
        ]
        body = []
        for (env, fusion), s in summaries.items():
            cells = []
            for key in keys:
                est = s.get(f"delta_success_without_{key}")
                cells.append(est.fmt() if est is not None else "-")
            body.append([env, fusion, *cells])
        lines += _table(["env", "fusion", *[f"without {k}" for k in keys]], body)
    lines += _group_lines(summaries, rows)
    lines += _significance_lines(summaries, keys, rows)
    fusions = list(dict.fromkeys(str(r["fusion"]) for r in rows))
    envs = list(dict.fromkeys(str(r["env"]) for r in rows))
    if len(envs) > 1:
        lines += [
            "",
            "## Per fusion over all environments",
            "",
            "IQM over every env x seed run, CI stratified by environment.",
            "",
        ]
        body = []
        for fusion in fusions:
            mine = [r for r in rows if r["fusion"] == fusion]
            body.append([
                fusion, str(len(mine)), summarize_fusion_over_envs(mine, "success").fmt(),
                summarize_fusion_over_envs(mine, "test_success").fmt(),
            ])  # fmt: skip
        lines += _table(["fusion", "runs", "success", "test success"], body)
    shown = {k: p for k, p in figure_paths.items() if p is not None}
    if shown:
        lines += ["", "## Figures", ""]
        lines += [f"![{k}]({Path(p).name})" for k, p in shown.items()]
    missing = _missing_cells(Path(out), {str(r["cell_id"]) for r in records})
    if missing:
        lines += ["", f"## Unfinished cells ({len(missing)})", ""]
        lines += [
            f"- {cid}" + (f" (failed: see cells/{cid}/{CELL_ERROR})" if failed else "")
            for cid, failed in missing
        ]
        lines.append("")
        lines.append("Run the same command again to finish them (finished cells are skipped).")
    return "\n".join(lines) + "\n"


def write_report(
    out: str | Path, command: str | None = None, reps: int = DEFAULT_REPS
) -> dict[str, Path | None]:
    """Writes ``results.csv``, ``summary.md`` and the PNG figures into a bench folder.

    Args:
        out: The bench folder.
        command: The command line that produced it (shown in the summary); ``None`` keeps
            the one the folder's last summary shows (``--report-only``).
        reps: Bootstrap resamples per interval.

    Returns:
        Name -> path of every file written (``None`` for a figure with no data).
    """
    out = Path(out)
    if command is None:
        command = _previous_command(out / SUMMARY_MD)
    records = all_records(out)
    frame = results_frame(records)
    atomic_write_bytes(out / RESULTS_CSV, frame.to_csv(index=False).encode())
    rows = [cell_row(r) for r in records]
    summaries = group_summaries(rows, reps=reps)
    paths: dict[str, Path | None] = {
        "curves": figures.learning_curves(records, out / FIGURES["curves"]) if records else None,
        "final": figures.final_performance(summaries, out / FIGURES["final"]),
        "robustness": figures.robustness_heatmap(summaries, rows, out / FIGURES["robustness"]),
    }
    for name, written in paths.items():
        if written is None:  # no data for it any more: do not leave an old figure behind
            (out / FIGURES[name]).unlink(missing_ok=True)
    text = summary_markdown(out, records, summaries, rows, paths, command)
    atomic_write_bytes(out / SUMMARY_MD, text.encode())
    return {"results": out / RESULTS_CSV, "summary": out / SUMMARY_MD, **paths}


def _previous_command(summary: Path) -> str | None:
    """The ``- command: `...``` line of an earlier ``summary.md``, so that rewriting the
    report (``--report-only``) does not lose how the grid was run."""
    try:
        text = summary.read_text()
    except OSError:
        return None
    match = re.search(r"^- command: `(.+)`$", text, flags=re.MULTILINE)
    return match.group(1) if match else None


def _group_lines(
    summaries: Mapping[tuple[str, str], Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The "Success by instruction group" sections, train and held-out instructions (cells
    that recorded them), or nothing."""
    lines: list[str] = []
    for prefix, split in ((GROUP_PREFIX, "train"), (TEST_GROUP_PREFIX, "held-out")):
        if not groups_of(rows, prefix):
            continue
        title = "" if split == "train" else ", held-out instructions"
        lines += [
            "",
            f"## Success by instruction group{title}",
            "",
            f"The unablated policy on the {split} instruction split's final episodes, per task "
            "or instruction group; IQM over the seeds that recorded it [95% CI].",
        ]
        # One table per env: each env has its own groups (Driving's tasks, Navigation's
        # shapes).
        for env in dict.fromkeys(str(r["env"]) for r in rows):
            groups = groups_of([r for r in rows if r["env"] == env], prefix)
            body = []
            for (env_name, fusion), s in summaries.items():
                have = [r for r in rows if r["env"] == env_name == env and r["fusion"] == fusion]
                seeds = sum(any(c.startswith(prefix) for c in r) for r in have)
                if seeds:
                    cells = [s.get(f"{prefix}{g}", NAN_ESTIMATE).fmt() for g in groups]
                    cells = [c if c != "n/a" else "-" for c in cells]
                    body.append([env, fusion, str(seeds), *cells])
            if body:
                lines += ["", *_table(["env", "fusion", "seeds", *groups], body)]
    return lines


def _significance_lines(
    summaries: Mapping[tuple[str, str], Mapping[str, Any]],
    keys: Sequence[str],
    rows: Sequence[Mapping[str, Any]] = (),
) -> list[str]:
    """The report's "Significant differences" section: per env and metric, the fusion
    pairs whose 95 % intervals do not overlap (:func:`~mmrl.bench.aggregate.separated_pairs`).

    Success figures are compared only between fusions whose cells rest on the same
    evaluation episodes (the same episode counts: the same seeds replayed): a fusion whose
    older cells kept a smaller periodic evaluation is compared with its like only, and the
    section says so.
    """
    episodes = {"success": "success_episodes", "test_success": "test_success_episodes"}
    metrics = [("success", "success"), ("test_success", "test success")]
    metrics += [(f"delta_success_without_{k}", f"change without {k}") for k in keys]
    lines = [
        "",
        "## Significant differences",
        "",
        "Fusion pairs whose 95% intervals above do not overlap (touching intervals "
        "overlap; fusions with one seed are left out). A conservative rule: a difference "
        "whose intervals overlap may still be real.",
        "",
    ]
    for env in dict.fromkeys(env for env, _ in summaries):
        found, apart = [], []
        for column, label in metrics:
            estimates = {
                fusion: s[column]
                for (e, fusion), s in summaries.items()
                if e == env and s.get(column) is not None
            }
            by_counts: dict[str, dict[str, Any]] = {}
            for fusion, est in estimates.items():
                have = [r for r in rows if r["env"] == env and r["fusion"] == fusion]
                counts = sorted({r.get(episodes.get(column, ""), -1) for r in have} - {None})
                by_counts.setdefault(str(counts), {})[fusion] = est
            if len(by_counts) > 1:
                groups = ["/".join(sorted(g)) for g in by_counts.values()]
                apart.append(f"{label}: {'; '.join(groups)}")
            for group in by_counts.values():
                for high, low in separated_pairs(group):
                    found.append(
                        f"- {env}, {label}: **{high}** {group[high].fmt()} > "
                        f"**{low}** {group[low].fmt()}"
                    )
        lines += found or [f"- {env}: none"]
        if apart:
            lines.append(
                f"- {env}, not compared across these groups (their cells rest on different "
                f"evaluation episodes, see the table's episodes column): {' | '.join(apart)}"
            )
    return lines


def _encoder_provenance(records: list[dict[str, Any]]) -> str:
    """``name: digest (cell ids), digest (cell ids)`` for each encoder whose cells used
    more than one checkpoint."""
    used: dict[str, dict[str, list[str]]] = {}
    for record in records:
        cell = Cell(**record["cell"])
        digest = ((record.get("protocol") or {}).get("pretrained") or {}).get(cell.encoder_name)
        used.setdefault(cell.encoder_name, {}).setdefault(str(digest), []).append(cell.cell_id)
    parts = [
        f"{name}: " + ", ".join(f"{d} ({', '.join(sorted(ids))})" for d, ids in digests.items())
        for name, digests in sorted(used.items())
        if len(digests) > 1
    ]
    return "; ".join(parts) or "every fusion's cells used one checkpoint"


def _pretrained(protocol: dict[str, Any]) -> str:
    """The protocol's encoder checkpoints as ``name (sha256 prefix)``; older bench folders
    recorded the folder's path."""
    digests = protocol.get("pretrained")
    if digests:
        return ", ".join(f"{name} ({digest})" for name, digest in digests.items())
    return protocol.get("pretrained_dir") or "no (from scratch)"
