"""``mmrl bench``: run a grid of cells on a backend, record each, then write the report.

The driver owns the bench folder: workers (processes or Ray tasks) only return records,
and the driver writes every ``cell.json`` as results arrive, so a grid spread over a
cluster still gathers into one ``--out`` and an interrupted grid keeps every finished cell.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from mmrl.bench.backends import Backend, CellFn, InlineBackend
from mmrl.bench.grid import (
    BenchSpec,
    Cell,
    describe,
    prepare_out,
    split_done,
    validate_spec,
    write_error,
    write_record,
)
from mmrl.errors import ConfigError, UsageError
from mmrl.progress import ProgressLines


@dataclasses.dataclass
class BenchResult:
    """What a :func:`run_bench` call did.

    Attributes:
        out: The bench folder.
        skipped: Cells already finished before this call.
        finished: Cells finished by this call.
        failed: Cells that raised (their traceback is in ``cells/<id>/error.txt``).
        report: Files of the report (``None`` when the report was not written).
        seconds: Wall-clock time of the call.
    """

    out: Path
    skipped: list[Cell]
    finished: list[Cell]
    failed: list[Cell]
    report: dict[str, Path | None] | None
    seconds: float


def preflight(envs: list[str]) -> None:
    """Builds each environment once so a missing extra or a broken preset fails now, with
    one clear line, rather than once per cell inside the workers.

    Raises:
        ConfigError: Naming the env and the underlying error.
    """
    from mmrl.make import make_env

    for env_name in envs:
        try:
            env = make_env(env_name)
            env.reset(seed=0)
            env.close()
        except ConfigError:
            raise
        except Exception as err:
            raise ConfigError(
                f"--envs {env_name}: cannot build the environment ({type(err).__name__}: {err})"
            ) from None


def cell_line(record: dict[str, Any]) -> str:
    """One progress line for a finished cell."""
    from mmrl.bench.aggregate import final_summaries

    ev, _ = final_summaries(record)
    parts = []
    for split in ("train", "test"):
        if split in ev and "success_rate" in ev[split]:
            parts.append(f"{split} success {ev[split]['success_rate']:.2f}")
    if "train" in ev and "mean_return" in ev["train"]:
        parts.append(f"return {ev['train']['mean_return']:.2f}")
    rate = record.get("steps_per_second")
    if rate:
        parts.append(f"{rate:,.0f} steps/s")
    seconds = record.get("cell_seconds")
    if seconds is not None:
        parts.append(f"{seconds:.0f} s")
    return f"{record.get('cell_id', '?')}: " + ", ".join(parts)


def run_bench(
    spec: BenchSpec,
    out: str | Path,
    backend: Backend | None = None,
    cell_fn: CellFn | None = None,
    *,
    report: bool = True,
    check_envs: bool = True,
    progress: bool = True,
    command: str | None = None,
    log_interval: float | None = None,
    adopt_encoders: bool = False,
) -> BenchResult:
    """Runs every unfinished cell of ``spec`` and writes the report.

    Args:
        spec: The grid and protocol.
        out: The bench folder (created; reopened to resume).
        backend: Where cells run (default: in this process).
        cell_fn: ``fn(cell, spec, out) -> record`` (default
            :func:`mmrl.bench.runner.run_cell`); injectable for tests and custom cells.
        report: Write ``results.csv``, ``summary.md`` and figures at the end.
        check_envs: Build each environment once before scheduling (see :func:`preflight`).
        progress: Show a progress bar and one line per finished cell.
        command: The command line, recorded in ``summary.md``.
        log_interval: Also print a progress line (cells done, running, ETA, the last
            cell's result) every ``log_interval`` seconds, for logs that are not a terminal
            (:mod:`mmrl.progress`); ``None``: no lines.
        adopt_encoders: Continue a folder whose encoder checkpoints were rebuilt with the
            same commands but differ in their bytes (see :func:`~mmrl.bench.grid.prepare_out`).

    Raises:
        ConfigError: An invalid grid or a folder holding another protocol.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    validate_spec(spec)
    out = Path(out)
    prepare_out(out, spec, adopt_encoders=adopt_encoders)
    backend = backend or InlineBackend()
    if cell_fn is None:
        from mmrl.bench.runner import run_cell

        cell_fn = run_cell
    done, todo = split_done(out, spec)
    if todo and check_envs:
        preflight(list(dict.fromkeys(c.env for c in todo)))
    total = len(done) + len(todo)
    say = tqdm.write if progress else (lambda _msg: None)
    say(
        f"mmrl bench: {describe(spec.cells())} = {total} cells in {out}; "
        f"{len(done)} already finished, {len(todo)} to run on {backend.describe()}"
    )
    finished: list[Cell] = []
    failed: list[Cell] = []
    last_cell: list[str] = []  # the newest finished cell's line, for the progress lines
    # A bar redrawn with carriage returns is noise in a log file: progress lines say it there.
    bar = tqdm(total=total, initial=len(done), unit="cell", file=sys.stderr,
               disable=not progress or not sys.stderr.isatty())  # fmt: skip
    lines = ProgressLines(total, "cells", log_interval or 1.0, "[bench]")
    lines.start(len(done))

    def progress_line() -> str:
        finished_now = len(done) + len(finished) + len(failed)
        slots = backend.slots()
        left = total - finished_now
        running = f"{min(slots, left)} running" if slots is not None else f"{left} to go"
        text = f"{lines.count(finished_now)}  {running}  {lines.eta(finished_now)}"
        if failed:
            text += f"  {len(failed)} failed"
        return text + (f"  last {last_cell[-1]}" if last_cell else "")

    ticking: Any = nullcontext()
    if log_interval is not None:
        ticking = lines.ticking(progress_line)
        if progress:  # through the lines' lock: a cell's line and a progress line never mix
            say = partial(lines.say, bare=True)
    try:
        # Absolute: worker processes and Ray tasks may run in another working directory.
        with ticking:
            for outcome in backend.run(todo, cell_fn, spec, out.resolve()):
                if outcome.record is not None:
                    write_record(out, outcome.record)
                    finished.append(outcome.cell)
                    last_cell.append(cell_line(outcome.record))
                    say(f"[{len(done) + len(finished)}/{total}] {last_cell[-1]}")
                else:
                    path = write_error(out, outcome.cell, outcome.error or "unknown error")
                    failed.append(outcome.cell)
                    last = (outcome.error or "").strip().splitlines()[-1:] or ["?"]
                    say(f"[failed] {outcome.cell.cell_id}: {last[0]} (full traceback: {path})")
                bar.update(1)
    finally:
        bar.close()
        if log_interval is not None:
            lines.say(progress_line())
        if report:
            # Written even after Ctrl-C: the finished cells' numbers are still valid.
            from mmrl.bench.report import write_report

            files = write_report(out, command=command)
        else:
            files = None
    if progress and files:
        say(f"wrote {files['summary']} and {files['results']}")
    return BenchResult(out, [c for c, _ in done], finished, failed, files, time.perf_counter() - t0)


def reevaluate(out: str | Path, progress: bool = True) -> tuple[list[str], list[str]]:
    """``mmrl bench --reevaluate``: every finished cell of ``out`` evaluated again from its
    run folder (:func:`mmrl.bench.runner.reevaluate_cell`), its record rewritten, then the
    report.

    Returns:
        The ids of the cells evaluated again and of those whose run folder is not in
        ``out`` (left as they were).

    Raises:
        UsageError: ``out`` is not a bench folder.
    """
    from mmrl.bench.grid import MANIFEST, all_records, read_json
    from mmrl.bench.report import write_report
    from mmrl.bench.runner import reevaluate_cell

    out = Path(out)
    manifest = read_json(out / MANIFEST)
    if manifest is None:
        raise UsageError(f"--reevaluate: {out} is not a bench folder (no {MANIFEST})")
    protocol = manifest.get("protocol") or {}
    evaluated: list[str] = []
    absent: list[str] = []
    for record in all_records(out):
        if reevaluate_cell(record, out, protocol):
            write_record(out, record)
            evaluated.append(record["cell_id"])
            if progress:
                print(f"[{len(evaluated)}] {cell_line(record)}", flush=True)
        else:
            absent.append(record["cell_id"])
    write_report(out)
    return evaluated, absent


def spec_from_args(args: Any) -> BenchSpec:
    """A :class:`BenchSpec` from ``mmrl bench`` arguments.

    Raises:
        UsageError / ConfigError: Bad values, with what is allowed.
    """
    from mmrl.bench.grid import available_fusions, parse_list, seeds_from_count

    envs = parse_list(args.envs, "envs")
    fusions = available_fusions() if args.fusions == "all" else parse_list(args.fusions, "fusions")
    pretrained_dir = args.pretrained_dir
    if args.pretrained and pretrained_dir is None:
        pretrained_dir = "pretrained"
    track = None
    if args.track:
        from mmrl.tracking import Tracking, require

        track = Tracking(args.track, args.track_project, group=Path(args.out).name)
        require(track.kind)  # before any cell starts
    return BenchSpec(
        envs=envs,
        fusions=fusions,
        seeds=seeds_from_count(args.seeds, args.seed_start),
        steps=args.steps,
        overrides=list(args.overrides),
        device=args.device,
        pretrained_dir=str(Path(pretrained_dir).resolve()) if pretrained_dir else None,
        ablate=not args.no_ablation,
        ablation_episodes=args.ablation_episodes,
        threads=max(1, int(args.cpus_per_task)),
        track=track,
    )


def command_line(args: Any) -> str:
    """The ``mmrl bench`` command that reproduces ``args`` (for ``summary.md``)."""
    parts = ["mmrl", "bench", "--envs", args.envs, "--fusions", args.fusions]
    parts += ["--seeds", str(args.seeds), "--steps", str(args.steps), "--out", str(args.out)]
    if args.seed_start:
        parts += ["--seed-start", str(args.seed_start)]
    if args.pretrained_dir:
        parts += ["--pretrained-dir", str(args.pretrained_dir)]
    elif args.pretrained:
        parts.append("--pretrained")
    if args.adopt_encoders:
        parts.append("--adopt-encoders")
    if args.device != "cpu":
        parts += ["--device", args.device]
    if args.no_ablation:
        parts.append("--no-ablation")
    if args.ablation_episodes:
        parts += ["--ablation-episodes", str(args.ablation_episodes)]
    parts += ["--backend", args.backend, "--workers", str(args.workers)]
    if args.backend == "ray":
        if args.address:
            parts += ["--address", args.address]
        parts += ["--cpus-per-task", f"{args.cpus_per_task:g}",
                  "--gpus-per-task", f"{args.gpus_per_task:g}"]  # fmt: skip
    if args.track:
        parts += ["--track", args.track, "--track-project", args.track_project]
    for item in args.overrides:
        parts += ["--set", item]
    return " ".join(shlex.quote(p) for p in parts)


def run_bench_command(args: Any) -> int:
    """``mmrl bench``: exit 0 when every cell finished, 1 when some failed, 2 on bad input."""
    from mmrl.bench.backends import make_backend
    from mmrl.bench.grid import MANIFEST

    out = Path(args.out)
    command = command_line(args)
    if args.report_only and args.reevaluate:
        raise UsageError("--report-only and --reevaluate: pick one (--reevaluate also "
                         "rewrites the report)")  # fmt: skip
    if args.reevaluate:
        evaluated, absent = reevaluate(out, progress=not args.quiet)
        note = f"; {len(absent)} without their run folder here, kept as they were" if absent else ""
        print(f"mmrl bench: evaluated {len(evaluated)} cell(s) again in {out}{note}")
        return 0
    if args.report_only:
        from mmrl.bench.report import write_report

        if not (out / MANIFEST).is_file():
            raise UsageError(f"--report-only: {out} is not a bench folder (no {MANIFEST})")
        files = write_report(out)
        print(f"wrote {files['summary']} and {files['results']}")
        return 0
    spec = spec_from_args(args)
    if args.gpus_per_task > 0 and spec.device == "cpu":
        raise UsageError("--gpus-per-task reserves GPUs that --device cpu would not use; "
                         "add --device auto (or cuda)")  # fmt: skip
    backend = make_backend(
        args.backend,
        workers=args.workers,
        address=args.address,
        cpus_per_task=args.cpus_per_task,
        gpus_per_task=args.gpus_per_task,
    )
    from mmrl.commands.progress import progress_interval

    log_interval = progress_interval(args.log_interval, args.quiet)
    result = run_bench(
        spec,
        out,
        backend,
        progress=not args.quiet,
        command=command,
        log_interval=log_interval,
        adopt_encoders=args.adopt_encoders,
    )
    if result.failed:
        print(
            f"mmrl bench: {len(result.failed)} cell(s) failed "
            f"({', '.join(c.cell_id for c in result.failed)}); see cells/<id>/error.txt, "
            f"then rerun the same command to retry them",
            file=sys.stderr,
        )
        return 1
    return 0
