"""``mmrl tune``: an Optuna study whose trials are ``mmrl train`` runs.

Each trial draws a configuration from the search space (:mod:`mmrl.tune.space`), trains it
with :func:`mmrl.train.train` into ``OUT/trials/trial-NNNN`` (an ordinary run folder), and
scores it by the final held-out evaluation. The periodic evaluations training makes anyway
are reported to Optuna as intermediate values, so the pruner (median by default, as in
rl-baselines3-zoo) stops a trial that trails the others at the same step.

The study lives in an RDB storage: by default ``sqlite:///OUT/study.db``, a file in the
study folder, so a killed study resumes by running the same command again and several
``mmrl tune`` processes (``--workers N`` starts them) share it; a server URL
(``postgresql://...``) does the same across machines. With ``--backend ray`` the ``N``
trial streams are Ray tasks (on a local Ray started with ``N`` CPUs, or on the cluster at
``--address``) against the same storage, so a study started by one backend is resumed by
either (on a cluster, use a server URL or a SQLite file on a filesystem every node shares).
``--trials`` is the total of finished (complete or pruned) trials the study should hold, not
the number this call adds. A trial still marked running after its process died is failed by
Optuna's heartbeat once it is :data:`GRACE_S` seconds stale.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import socket
import warnings
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrl.commands.tune import BACKENDS, METRICS, TuneOptions
from mmrl.config import resolve_run_config
from mmrl.errors import ConfigError, MissingDependencyError, MmrlError, one_line
from mmrl.tune.report import TuneResult, write_report
from mmrl.tune.space import ParamSpec, load_space, sample, space_to_dict

if TYPE_CHECKING:
    from mmrl.tracking import Tracking

__all__ = ["BACKENDS", "METRICS", "TuneResult", "tune"]

STUDY_DB = "study.db"
TRIALS_DIR = "trials"
HEARTBEAT_S = 30
GRACE_S = 120
_ATTR = "mmrl"
_INSTALL_HINT = 'pip install "mmrl[tune]"'


def _optuna():
    try:
        import optuna
    except ImportError:
        raise MissingDependencyError(f"mmrl tune needs Optuna: {_INSTALL_HINT}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def default_storage(out: Path) -> str:
    """``sqlite:///OUT/study.db`` (absolute, so workers in other folders find it)."""
    return f"sqlite:///{(out / STUDY_DB).resolve()}"


def _storage(url: str) -> Any:
    optuna = _optuna()
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    except Exception as err:  # SQLAlchemy raises its own ArgumentError/OperationalError.
        raise ConfigError(
            f"cannot open storage {url!r}: {one_line(err)}", field="storage"
        ) from None


@dataclasses.dataclass
class _Job:
    """Everything a worker needs (picklable: it crosses to spawned processes)."""

    env: str
    agent: str
    steps: int
    seed: int
    overrides: list[str]
    space: dict[str, ParamSpec]
    algo: str
    split: str
    metric: str
    trials: int
    study: str
    storage: str
    out: str
    device: str
    eval_freq: int
    pruner: Any
    sampler_seed: int
    verbose: int
    track: Tracking | None = None


def _objective(job: _Job, trial: Any) -> float:
    optuna = _optuna()
    from mmrl.runs import RunFolder
    from mmrl.train import train

    params = sample(job.space, trial, job.algo)
    run_dir = Path(job.out) / TRIALS_DIR / f"trial-{trial.number:04d}"
    trial.set_user_attr("run", str(run_dir))
    # Which machine and process ran it: on a Ray cluster, where its run folder lives.
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")

    def report(step: int, results: Mapping[str, Mapping[str, float]]) -> bool:
        trial.report(float(results[job.split][job.metric]), step)
        return not trial.should_prune()

    train(
        job.env,
        job.agent,
        steps=job.steps,
        seed=job.seed,
        device=job.device,
        out=run_dir,
        overrides=[f"eval_freq={job.eval_freq}", *job.overrides, *params],
        force=True,  # a folder left by a killed trial of the same number
        verbose=0,
        on_evaluation=report,
        track=job.track,
    )
    metrics = RunFolder(run_dir).metrics() or {}
    stopped = metrics.get("stopped_early_at")
    if stopped is not None and trial.should_prune():
        trial.set_user_attr("pruned_at", int(stopped))
        if job.verbose:
            print(f"trial {trial.number}: pruned at step {stopped}", flush=True)
        raise optuna.TrialPruned(f"pruned at step {stopped}")
    value = float(metrics["eval"][job.split][job.metric])
    if job.verbose:
        print(f"trial {trial.number}: {job.split}/{job.metric} {value:.4g}", flush=True)
    return value


def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _run_worker(job: _Job, index: int, n_trials: int) -> None:
    """One process's share of the study: ``n_trials`` trials, fewer if the study as a whole
    reaches ``job.trials`` first."""
    optuna = _optuna()
    from optuna.trial import TrialState

    study = optuna.load_study(
        study_name=job.study,
        storage=_storage(job.storage),
        sampler=optuna.samplers.TPESampler(seed=job.sampler_seed + index),
        pruner=job.pruner,
    )
    study.optimize(
        lambda trial: _objective(job, trial),
        n_trials=n_trials,
        # Shared with other processes: stop once the study as a whole holds enough.
        callbacks=[
            optuna.study.MaxTrialsCallback(
                job.trials, states=(TrialState.COMPLETE, TrialState.PRUNED)
            )
        ],
        catch=(MmrlError,),  # a sampled configuration SB3 refuses fails its trial only
    )


def _run_on_ray(job: _Job, shares: list[int], address: str | None) -> None:
    """Each share as a Ray task (one CPU; one GPU when trials train on CUDA)."""
    from mmrl.bench.backends import RayBackend

    gpus = 1.0 if job.device.startswith("cuda") else 0.0
    with RayBackend(len(shares), address, 1.0, gpus).session() as ray:
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_run_worker)
        pending = [task.remote(job, i, n) for i, n in enumerate(shares)]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                ray.get(done)  # a worker's error (not a failed trial) ends the study here
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)


def _fingerprint(job: _Job) -> dict[str, Any]:
    """What must not change when a study resumes."""
    return {
        "env": job.env,
        "agent": job.agent,
        "steps": job.steps,
        "seed": job.seed,
        "metric": job.metric,
        "split": job.split,
        "overrides": list(job.overrides),
        "space": space_to_dict(job.space),
    }


def tune(
    env: str = TuneOptions.env,
    agent: str = TuneOptions.agent,
    *,
    trials: int = TuneOptions.trials,
    steps: int = TuneOptions.steps,
    study: str,
    storage: str | None = None,
    workers: int = TuneOptions.workers,
    backend: str = TuneOptions.backend,
    address: str | None = None,
    space: str | Path | None = None,
    out: str | Path | None = None,
    overrides: list[str] | None = None,
    seed: int = TuneOptions.seed,
    metric: str = TuneOptions.metric,
    evaluations: int = TuneOptions.evaluations,
    device: str = TuneOptions.device,
    pruner: Any = None,
    verbose: int = 1,
    track: str | Tracking | None = None,
) -> TuneResult:
    """Runs (or resumes) an Optuna study of ``agent`` on ``env``; writes the report.

    Args:
        env: Environment preset name or YAML path (default: ``mmrl train``'s).
        agent: Agent recipe name or YAML path, the base every trial modifies (default:
            ``mmrl train``'s). Every default here is :class:`~mmrl.commands.TuneOptions`'.
        trials: Total finished (complete or pruned) trials the study should hold.
        steps: Environment steps per trial.
        study: Study name (in the storage).
        storage: Optuna storage URL (default ``sqlite:///OUT/study.db``).
        workers: Trials running side by side: processes on this machine (``local``) or
            Ray tasks (``ray``; a local Ray is started with this many CPUs).
        backend: ``local`` (this process, or a process pool for ``workers > 1``) or
            ``ray`` (Ray tasks, sharing the storage: either backend resumes a study).
        address: An existing Ray cluster (``auto``, ``ray://host:10001``); ``ray`` only.
        space: A YAML file merged over the default search space.
        out: Study folder (default ``tune/<study>``).
        overrides: ``dotted.key=value`` overrides applied to every trial's run config.
        seed: Training seed of every trial (one seed: trials differ by hyperparameters);
            the TPE sampler of worker ``i`` is seeded ``seed + i``.
        metric: Objective on the held-out evaluation: ``mean_return`` or ``success_rate``
            (maximized), on the ``test`` instruction split when the preset has one.
        evaluations: Periodic evaluations per trial (the pruner's intermediate values).
        device: Training device of every trial.
        pruner: An Optuna pruner (default: ``MedianPruner(n_startup_trials=5,
            n_warmup_steps=steps // 3)``).
        verbose: 0 silent, 1 a line per trial (local backend; Ray keeps workers' output).
        track: ``wandb``, ``mlflow`` or a :class:`mmrl.tracking.Tracking`: every trial is a
            tracked run, grouped by the study name (:mod:`mmrl.tracking`).

    Returns:
        A :class:`TuneResult`.

    Raises:
        ConfigError: Bad presets, overrides, space file, storage or numbers, or a study of
            that name in the storage made for another env/agent/steps/space.
        MissingDependencyError: Optuna (or Ray, or the tracking library) is not installed.
    """
    for name, value in (("trials", trials), ("steps", steps), ("workers", workers),
                        ("evaluations", evaluations)):  # fmt: skip
        if value < 1:
            raise ConfigError(f"must be >= 1, got {value}", field=name)
    if metric not in METRICS:
        raise ConfigError(f"must be one of {', '.join(METRICS)}, got {metric!r}", field="metric")
    if not study or "/" in study:
        raise ConfigError(f"must be a non-empty name without '/', got {study!r}", field="study")
    if backend not in BACKENDS:
        raise ConfigError(f"must be one of {', '.join(BACKENDS)}, got {backend!r}", field="backend")
    if address and backend != "ray":
        raise ConfigError("applies to --backend ray only", field="address")
    if backend == "ray":
        from mmrl.bench.backends import import_ray

        import_ray()  # a missing Ray fails before the study is opened
    if track is not None:
        from mmrl.tracking import Tracking, require

        track = Tracking(track, group=study) if isinstance(track, str) else track
        require(track.kind)
    from mmrl.agent import evaluation_splits

    optuna = _optuna()
    search = load_space(space)
    base = resolve_run_config(env, agent, overrides, steps=steps, seed=seed, device=device)
    out_dir = Path(out) if out is not None else Path("tune") / study
    out_dir.mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(out_dir)
    job = _Job(
        env=env,
        agent=agent,
        steps=steps,
        seed=seed,
        overrides=list(overrides or []),
        space=search,
        algo=base.agent.algo,
        split=evaluation_splits(base.env)[-1],  # held-out instructions where the env has them
        metric=metric,
        trials=trials,
        study=study,
        storage=url,
        out=str(out_dir.resolve()),
        device=device,
        eval_freq=max(1, steps // evaluations),
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=steps // 3),
        sampler_seed=seed,
        verbose=verbose,
        track=track,
    )
    handle = optuna.create_study(
        study_name=study, storage=_storage(url), direction="maximize", load_if_exists=True
    )
    recorded = handle.user_attrs.get(_ATTR)
    mine = json.loads(json.dumps(_fingerprint(job)))
    if recorded is None:
        handle.set_user_attr(_ATTR, mine)
    elif recorded != mine:
        changed = sorted(k for k in mine if recorded.get(k) != mine.get(k))
        raise ConfigError(
            f"study {study!r} in {url} was made with other settings ({', '.join(changed)} "
            "differ); use a new --study name or the original settings",
            field="study",
        )
    remaining = trials - _finished(handle)
    # Each process gets its share, so the study ends with exactly ``trials`` finished ones
    # (a failed trial leaves one fewer: run the command again to top it up).
    shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
    shares = [n for n in shares if n > 0]
    if backend == "ray" and shares:
        _run_on_ray(job, shares, address)
    elif len(shares) == 1:
        _run_worker(job, 0, shares[0])
    elif shares:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(len(shares), mp_context=context) as pool:
            futures = [pool.submit(_run_worker, job, i, n) for i, n in enumerate(shares)]
            for future in futures:
                future.result()

    return write_report(handle, out_dir, url, job.split, job.metric)
