"""One benchmark cell: train, evaluate on held-out seeds and instructions, ablate modalities.

:func:`run_cell` is a plain top-level function of ``(cell, spec)`` returning a JSON-able
record, so the same code runs in-process, in a spawned worker process or as a Ray task on
another machine. The record is self-contained (final metrics, the learning curve, the
ablations, timings, parameter counts): the report never needs the run folder, which on a
Ray cluster lives on whichever node ran the task. The driver, not the worker, writes
``cell.json`` (see :func:`mmrl.bench.grid.write_record`), so there is one writer per file.

A cell interrupted mid-way resumes where it stopped: training continues from the run's
last checkpoint, and a run that finished training goes straight to the ablations.
"""

from __future__ import annotations

import datetime
import platform
import time
from pathlib import Path
from typing import Any

from mmrl.bench.grid import RUN_SUBDIR, BenchSpec, Cell, cell_dir, read_json, write_json

SESSION_FILE = "bench_session.json"


def train_cell(cell: Cell, spec: BenchSpec, run_dir: Path) -> dict[str, Any]:
    """Trains (or finishes training) a cell's run; returns this session's timing.

    Args:
        cell: The cell.
        spec: The benchmark (steps, overrides, device, pretraining).
        run_dir: The run folder (``mmrl train`` layout).

    Returns:
        ``{"steps_at_start", "steps", "train_seconds"}`` of the last training session,
        also saved next to the run so a cell resumed after training still reports it.
    """
    from mmrl.runs import RunFolder
    from mmrl.train import train

    run = RunFolder(run_dir)
    session_path = run_dir.parent / SESSION_FILE
    if run.finished:
        previous = read_json(session_path)
        if previous is not None:
            return previous
    start = run.checkpoint_steps() if run_dir.is_dir() else None
    common = {"steps": spec.steps, "device": spec.device, "verbose": 0, "track": spec.track}
    if start is not None and start < spec.steps and RunFolder.is_run(run_dir):
        # A killed cell: continue its run exactly instead of paying for the steps again.
        # (A run killed after its last checkpoint but before metrics.json is retrained:
        # ``train(resume=...)`` with no steps left cannot run its final evaluation.)
        train(resume=run_dir, **common)
    else:
        start = 0
        train(
            cell.env,
            cell.agent,
            seed=cell.seed,
            out=run_dir,
            overrides=spec.cell_overrides(cell),
            force=True,
            **common,
        )
    metrics = run.metrics() or {}
    session = {
        "steps_at_start": start,
        "steps": int(metrics.get("steps", spec.steps)),
        "train_seconds": float(metrics.get("train_seconds_this_session", 0.0)),
    }
    write_json(session_path, session)
    return session


def _summary_with_groups(result: Any) -> dict[str, Any]:
    """An :class:`~mmrl.evaluation.rollouts.EvalResult` as a record entry: the plain means
    (:func:`mmrl.rollout.summarize`) plus ``by_group``."""
    return {
        **result.summary(),
        "by_group": {
            group: {"episodes": stats.episodes, "success_rate": stats.success_rate.value}
            for group, stats in result.by_group.items()
        },
    }


def evaluate_cell(
    policy: Any,
    config: Any,
    episodes: int,
    ablate: bool,
    splits: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """A cell's final evaluation: the last model, clean, ``episodes`` per instruction split,
    and (with ``ablate``) each modality removed in turn on the train split.

    The bench's success figures come from here rather than from the run's last periodic
    evaluation, whose ``eval_episodes`` (often 32, to keep the periodic evaluations cheap)
    are the same few seeds in every cell: measured on the grounded Driving grid, those 32
    episodes put every one of the 18 cells 4-15 points above the same policy on 200 episodes
    (film 0.94-0.97 against 0.84), a bias common to all cells that the intervals over seeds
    cannot show. Seeds and copies are the periodic evaluation's (``eval_seed``,
    ``min(episodes, n_envs)`` copies), so the first ``eval_episodes`` episodes replay it.

    Args:
        policy: The run's :class:`~mmrl.policies.Policy` (:func:`mmrl.policies.load_policy`).
        config: The run's :class:`~mmrl.config.RunConfig`.
        episodes: Episodes per split and per ablation.
        ablate: Also evaluate with each modality masked.
        splits: Instruction splits (default: :func:`mmrl.agent.evaluation_splits`, the run's).

    Returns:
        ``{"final": {split: summary}, "final_episodes": episodes}`` and, with ``ablate``,
        ``"ablation"`` (see :func:`ablate_modalities`; its ``"none"`` entry is
        ``final["train"]``). ``summary`` is :func:`mmrl.rollout.summarize`'s plus
        ``by_group``: per instruction group (the task of Driving, the named shape of
        Navigation: ``mmrl evaluate --group-by auto``) its ``episodes`` and ``success_rate``.

    Raises:
        RuntimeError: ``ablate`` and the policy has no MultimodalExtractor (nothing to mask).
    """
    from mmrl.agent import evaluation_splits
    from mmrl.evaluation.conditions import CLEAN, Condition
    from mmrl.evaluation.rollouts import EvalSettings, evaluate_model
    from mmrl.extractor import multimodal_extractors

    modalities: list[str] = []
    if ablate:
        extractors = multimodal_extractors(policy.policy)
        if not extractors:
            raise RuntimeError(f"{policy.label}: the policy has no MultimodalExtractor to ablate")
        modalities = list(extractors[0].modalities)
    settings = EvalSettings(
        episodes=episodes,
        seed=config.eval_seed,
        n_envs=max(1, min(episodes, config.env.n_envs)),
        group_by="auto",  # per task / instruction group, beside the plain means
        ablate_mode="extractor",
    )
    final: dict[str, Any] = {}
    record: dict[str, Any] = {"final": final, "final_episodes": episodes}
    for split in splits or evaluation_splits(config.env):
        conditions = [CLEAN]
        if split == "train":  # ablations on the train split only: what the report compares
            conditions += [Condition(name=f"-{key}", ablate=(key,)) for key in modalities]
        results = evaluate_model(policy, config.env, settings, conditions, (split,))
        final[split] = _summary_with_groups(results[0])
        if split == "train" and ablate:
            record["ablation"] = {
                "none": final["train"],
                **{key: _summary_with_groups(r) for key, r in zip(modalities, results[1:])},
            }
    return record


def ablate_modalities(policy: Any, config: Any, episodes: int) -> dict[str, Any]:
    """Success and return with each modality removed in turn, on the held-out seeds.

    One call of :func:`mmrl.evaluation.rollouts.evaluate_model` (the engine of ``mmrl
    evaluate --ablate``) with one :class:`~mmrl.evaluation.conditions.Condition` per
    modality, so a bench figure and ``mmrl evaluate``'s for the same seeds are the same
    number (issue 14: one evaluation loop). The removed modality is replaced by the
    extractor's learned "missing" embedding (``ablate_mode="extractor"``: the same mechanism
    as training-time modality dropout), so the ablation measures reliance on that sensor
    rather than the policy's reaction to out-of-distribution zeros. Seeds and copies are the
    run's periodic evaluation's (``eval_seed``, ``min(episodes, n_envs)`` copies).

    Args:
        policy: The run's :class:`~mmrl.policies.Policy` (:func:`mmrl.policies.load_policy`:
            it applies the run's normalization statistics itself).
        config: The run's :class:`~mmrl.config.RunConfig`.
        episodes: Episodes per ablation.

    Returns:
        ``{"none": summary, "<key>": summary, ...}`` with ``summary`` as in
        :func:`evaluate_cell`. ``"none"`` is the unablated policy on the same episodes, the
        baseline the deltas are taken against.

    Raises:
        RuntimeError: The policy has no MultimodalExtractor (nothing to mask).
    """
    return evaluate_cell(policy, config, episodes, ablate=True, splits=("train",))["ablation"]


def count_parameters(model: Any) -> dict[str, int]:
    """Trainable parameters of the policy (actor-critic) and of its extractor(s)."""
    from mmrl.extractor import multimodal_extractors

    policy = sum(p.numel() for p in model.policy.parameters() if p.requires_grad)
    seen: set[int] = set()
    extractor = 0
    for module in multimodal_extractors(model.policy):
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                extractor += p.numel()
    return {"policy": int(policy), "extractor": int(extractor)}


def run_cell(cell: Cell, spec: BenchSpec, out: str | Path) -> dict[str, Any]:
    """Runs one cell end to end and returns its record (the caller writes ``cell.json``).

    Args:
        cell: The (env, fusion, seed) to run.
        spec: The benchmark protocol.
        out: The bench folder; the run goes to ``out/cells/<cell_id>/run``. On a Ray
            cluster without a shared filesystem it lands on the worker's disk.

    Returns:
        The JSON-able cell record.
    """
    import torch as th

    # Parallel cells each get a slice of the cores; torch's default (all cores per
    # process) makes N workers fight over the same cores and run slower than one.
    threads = th.get_num_threads()
    th.set_num_threads(spec.threads)
    try:
        return _run_cell(cell, spec, Path(out))
    finally:
        th.set_num_threads(threads)  # the inline backend shares the caller's process


def _run_cell(cell: Cell, spec: BenchSpec, out: Path) -> dict[str, Any]:
    from mmrl import __version__
    from mmrl.policies import load_policy
    from mmrl.runs import RunFolder

    t0 = time.perf_counter()
    run_dir = cell_dir(out, cell) / RUN_SUBDIR
    session = train_cell(cell, spec, run_dir)
    run = RunFolder(run_dir)
    metrics = run.metrics() or {}
    config = run.config()
    model = load_policy(run_dir, device=spec.device)  # the run's model and normalization
    trained = session["steps"] - session["steps_at_start"]
    seconds = session["train_seconds"]
    record: dict[str, Any] = {
        "cell": cell.to_dict(),
        "cell_id": cell.cell_id,
        "env_name": cell.env_name,
        "agent": cell.agent,
        "protocol": spec.protocol(),
        "run_dir": str(run_dir),
        "steps": session["steps"],
        "train_seconds": seconds,
        "steps_per_second": trained / seconds if seconds > 0 else None,
        "params": count_parameters(model),
        "eval": metrics.get("eval", {}),
        "eval_episodes": config.eval_episodes,
        "curve": run.evaluations(),
        "pretrained": str(spec.pretrained_path(cell)) if spec.pretrained_dir else None,
    }
    _record_final_evaluation(record, model, config, spec.ablation_episodes, spec.ablate)
    record["cell_seconds"] = time.perf_counter() - t0
    record["host"] = platform.node()
    record["mmrl_version"] = __version__
    record["finished_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    return record


def _record_final_evaluation(
    record: dict[str, Any], model: Any, config: Any, episodes: int | None, ablate: bool
) -> None:
    """:func:`evaluate_cell` into a cell's record, on the protocol's ``ablation_episodes``
    (the run's ``eval_episodes`` when unset)."""
    episodes = int(episodes or config.eval_episodes)
    record.update(evaluate_cell(model, config, episodes, ablate))
    if ablate:
        record["ablation_episodes"] = episodes


def reevaluate_cell(record: dict[str, Any], out: Path, protocol: dict[str, Any]) -> bool:
    """Evaluates a finished cell again from its run folder (``mmrl bench --reevaluate``).

    The record's final evaluation and ablations are replaced by :func:`evaluate_cell`'s
    with the protocol's episodes; training figures, the learning curve and timings stay.
    For folders recorded before the cells had their own final evaluation, or after a fix
    in the evaluation code: no step is trained again.

    Args:
        record: The cell's record (updated in place).
        out: The bench folder.
        protocol: The folder's protocol (``bench.json``): its ``ablate``,
            ``ablation_episodes`` and ``device``.

    Returns:
        ``False`` when the cell's finished run folder is not in ``out`` (a cell that ran on
        another machine or whose run was deleted); the record is then left as it was.
    """
    from mmrl.policies import load_policy
    from mmrl.runs import RunFolder

    cell = Cell(**record["cell"])
    run_dir = cell_dir(out, cell) / RUN_SUBDIR
    run = RunFolder(run_dir)
    if not (run_dir.is_dir() and run.finished):
        return False
    config = run.config()
    model = load_policy(run_dir, device=str(protocol.get("device") or "cpu"))
    for key in ("final", "final_episodes", "ablation", "ablation_episodes"):
        record.pop(key, None)
    _record_final_evaluation(
        record, model, config, protocol.get("ablation_episodes"), bool(protocol.get("ablate", True))
    )
    record["run_dir"] = str(run_dir)
    record["reevaluated_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    return True
