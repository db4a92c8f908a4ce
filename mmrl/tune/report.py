"""What ``mmrl tune`` writes into its study folder after the trials.

``trials.csv`` and ``trials.md`` (every trial: state, value, parameters, run folder,
pruning step), ``importances.json`` (the importance of each parameter by Optuna's default
evaluator, once two trials are complete), ``history.png`` and ``parallel.png``
(optimization history and parallel coordinates, drawn with matplotlib: no plotly needed),
``best.yaml`` (the best trial's agent recipe, which ``mmrl train --agent OUT/best.yaml``
runs directly) and ``summary.md`` tying them together. Everything is rebuilt from the
storage, so a resumed study's report covers all of its trials.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import yaml

from mmrl.config import to_dict
from mmrl.errors import one_line

__all__ = ["BEST_RECIPE", "TuneResult", "trial_rows", "write_report"]

BEST_RECIPE = "best.yaml"


@dataclasses.dataclass
class TuneResult:
    """What a :func:`tune` call left behind.

    Attributes:
        out: The study folder.
        storage: The storage URL.
        complete: Trials that finished training.
        pruned: Trials the pruner stopped.
        failed: Trials that raised (a configuration SB3 refused).
        best_value: The best trial's objective (``None`` without a complete trial).
        best_recipe: ``best.yaml`` (``None`` without a complete trial).
        files: The report files by kind (:func:`mmrl.tune.report.write_report`).
    """

    out: Path
    storage: str
    complete: int
    pruned: int
    failed: int
    best_value: float | None
    best_recipe: Path | None
    files: dict[str, Path]


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One flat row per trial: number, state, value, each parameter, run, pruned_at."""
    names = sorted({p for t in study.trials for p in t.params})
    rows = []
    for t in study.trials:
        row: dict[str, Any] = {"number": t.number, "state": t.state.name.lower(),
                               "value": t.value}  # fmt: skip
        row.update({name: t.params.get(name) for name in names})
        row["seconds"] = round(t.duration.total_seconds(), 1) if t.duration else None
        row["pruned_at"] = t.user_attrs.get("pruned_at")
        row["run"] = t.user_attrs.get("run")
        rows.append(row)
    return rows


def _markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no trials)\n"
    cols = list(rows[0])

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _importances(study: Any, complete: int) -> tuple[dict[str, float], str]:
    import optuna

    if complete < 2:
        return {}, f"needs at least 2 complete trials (have {complete})"
    try:
        with warnings.catch_warnings():  # "importances will be equal" on tiny studies
            warnings.simplefilter("ignore")
            values = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as err:  # e.g. every trial drew the same values
        return {}, one_line(err)
    return {k: float(v) for k, v in values.items()}, ""


def _figures(study: Any, out: Path, complete: int) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import (
        plot_optimization_history,
        plot_parallel_coordinate,
    )

    files = {}
    plots = [("history", plot_optimization_history)]
    if complete >= 2:
        plots.append(("parallel", plot_parallel_coordinate))
    for name, plot in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ax = plot(study)
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(8, 4.5)
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files[name] = path
    return files


def _best_recipe(study: Any, out: Path, split: str, metric: str) -> Path | None:
    """The best complete trial's resolved agent recipe as ``best.yaml``."""
    from optuna.trial import TrialState

    from mmrl.runs import RunFolder

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    best = study.best_trial
    agent = to_dict(RunFolder(best.user_attrs["run"]).config().agent)
    # env_overrides were applied when the trial resolved its config; kept, they would be
    # merged again on top of the tuned values when best.yaml is trained on that env.
    agent["env_overrides"] = {}
    agent["description"] = (
        f"tuned by mmrl tune: study {study.study_name}, trial {best.number}, "
        f"{split}/{metric} {best.value:.4g}"
    )
    path = out / BEST_RECIPE
    header = (
        f"# Best trial ({best.number}) of study {study.study_name!r}: {split}/{metric} "
        f"{best.value:.4g}.\n# Train it: mmrl train --agent {path}\n"
    )
    path.write_text(header + yaml.safe_dump(agent, sort_keys=False))
    return path


def write_report(study: Any, out: Path, storage: str, split: str, metric: str) -> TuneResult:
    """Writes every report file of ``study`` into ``out``; returns what the study holds."""
    from optuna.trial import TrialState

    rows = trial_rows(study)
    states = [t.state for t in study.trials]
    complete = states.count(TrialState.COMPLETE)
    files: dict[str, Path] = {"trials_csv": out / "trials.csv", "trials_md": out / "trials.md"}
    with files["trials_csv"].open("w", newline="") as fh:
        if rows:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    files["trials_md"].write_text(_markdown(rows))
    importances, why_not = _importances(study, complete)
    files["importances"] = out / "importances.json"
    files["importances"].write_text(json.dumps(importances, indent=2))
    files.update(_figures(study, out, complete))
    best = _best_recipe(study, out, split, metric)
    if best is not None:
        files["best"] = best

    lines = [f"# mmrl tune: study {study.study_name}", "", f"Storage: `{storage}`", "",
             f"Objective: held-out `{split}/{metric}` (maximized).", ""]  # fmt: skip
    if best is not None:
        lines += [f"Best trial {study.best_trial.number}: **{study.best_value:.4g}**; "
                  f"train it with `mmrl train --agent {best}`.", ""]  # fmt: skip
    lines += ["## Parameter importance (Optuna's default evaluator)", ""]
    if importances:
        lines += ["| parameter | importance |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in importances.items()]
    else:
        lines.append(f"not computed: {why_not}")
    lines += ["", "## Trials", "", _markdown(rows)]
    files["summary"] = out / "summary.md"
    files["summary"].write_text("\n".join(lines))
    best_value = study.best_value if best is not None else None
    return TuneResult(
        out=out,
        storage=storage,
        complete=complete,
        pruned=states.count(TrialState.PRUNED),
        failed=states.count(TrialState.FAIL),
        best_value=best_value,
        best_recipe=best,
        files=files,
    )
