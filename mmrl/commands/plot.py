"""Options of ``mmrl plot`` (:func:`mmrl.evaluation.plots.plot_runs` takes its defaults)."""

from __future__ import annotations

import dataclasses

from mmrl.commands.options import option


@dataclasses.dataclass(kw_only=True)
class PlotOptions:
    """``mmrl plot``: learning curves of run or bench folders, IQM over seeds."""

    runs: list[str] = option(
        positional=True,
        metavar="RUN",
        help="run folders or bench folders, each optionally LABEL=PATH (see --group-by path)",
    )
    # No choices: plot_runs refuses another grouping or metric itself, naming the allowed ones.
    group_by: str = option(
        "agent",
        help="a line per: agent (a panel per env), env, seed, or path (a line per RUN argument "
        "or LABEL; arguments sharing a LABEL make one line)",
    )
    metric: str = option("success", help="success (rate) or return")
    out: str = option("curves.png", help="figure file: .png or .svg")
    bootstrap: int = option(2000, help="bootstrap resamples per point", minimum=1)
