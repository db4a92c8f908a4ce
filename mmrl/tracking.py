"""Experiment tracking: ``mmrl train|pretrain|bench|tune --track wandb|mlflow``.

A tracked training run sends four things to Weights & Biases or MLflow:

- the resolved run config (W&B ``config``; MLflow parameters, flattened to dotted keys);
- every scalar SB3 logs, under the same tag as in TensorBoard and at the same step
  (``rollout/success_rate``, ``eval/test/mean_return``, ``time/env_steps_per_s`` ...),
  plus the final evaluation as ``final/<split>/<metric>``;
- the training videos of ``--video-every`` (:mod:`mmrl.train_video`) as they are written
  (W&B: a ``wandb.Video`` under ``eval/video``; MLflow: artifacts under ``videos/``);
- the run folder's files (``model.zip``, ``best_model.zip``, ``config.yaml``,
  ``metrics.json``, ``evaluations.jsonl``) as an artifact once training ends.

The scalars and videos travel through SB3's own logger: :class:`TrackerOutput` is an SB3
``KVWriter`` appended to the model's logger beside the TensorBoard writer (by
:class:`TrackingCallback`), so there is no second metrics path to keep in step with
TensorBoard's (SB3's ``exclude`` for ``tensorboard`` applies here too).

A tracked pretraining run (``mmrl pretrain --track``, :mod:`mmrl.pretrain.trainer`) sends
its options and architecture, every scalar it writes to TensorBoard (``pretrain/train/*``,
``pretrain/val/*``, ``pretrain/samples_per_second``, at the same update count), the saved
weights' metrics as ``final/*`` and the encoder checkpoint as an artifact (``encoder``).

Where the data goes is each library's own business, configured as usual: W&B honours
``WANDB_MODE=offline`` (run files under ``RUN_DIR/wandb/``, uploaded later with ``wandb
sync``), ``WANDB_PROJECT``/``WANDB_ENTITY`` and ``wandb login``; MLflow honours
``MLFLOW_TRACKING_URI`` and otherwise uses its embedded default, a SQLite file
``mlflow.db`` (artifacts under ``mlruns/``) in the working directory. The tracked run's id is
kept in ``RUN_DIR/tracking.json`` so that ``mmrl train --resume RUN --track ...`` continues
the same tracked run (offline, W&B writes the resumed session as a second
``offline-run-*`` folder with the same id; ``wandb sync`` both). Both libraries are
optional extras (``mmrl[track-wandb]``, ``mmrl[track-mlflow]``).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter

from mmrl.commands.track import DEFAULT_PROJECT, TRACKERS
from mmrl.errors import ConfigError, MissingDependencyError, UsageError, one_line
from mmrl.runs import RunFolder
from mmrl.train_video import VideoFile

__all__ = [
    "TRACKERS",
    "VIDEOS_ARTIFACT",
    "Tracker",
    "TrackerOutput",
    "Tracking",
    "TrackingCallback",
    "final_scalars",
    "finishing",
    "flatten",
    "open_tracker",
    "require",
    "run_files",
    "start_tracker",
    "tracked",
]

_INSTALL = {
    "wandb": ("wandb", 'pip install "mmrl[track-wandb]"'),
    "mlflow": ("mlflow", 'pip install "mmrl[track-mlflow]"'),
}
#: MLflow refuses more than 100 parameters in one ``log_batch`` call.
_MLFLOW_PARAM_BATCH = 100
#: The MLflow artifact folder of the training videos.
VIDEOS_ARTIFACT = "videos"


@dataclasses.dataclass
class Tracking:
    """Where a run is tracked.

    Attributes:
        kind: ``wandb`` or ``mlflow``.
        project: The W&B project / MLflow experiment (W&B: ``WANDB_PROJECT`` wins when set).
        group: Runs that belong together (a tune study, a bench): W&B ``group``, MLflow tag
            ``mmrl.group``.
    """

    kind: str
    project: str = DEFAULT_PROJECT
    group: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in TRACKERS:
            raise ConfigError(
                f"must be one of {', '.join(TRACKERS)}, got {self.kind!r}", field="track"
            )
        if not self.project:
            raise ConfigError("must be a non-empty name", field="track_project")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys (``agent.ppo.learning_rate``)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


class Tracker(abc.ABC):
    """One tracked run in an experiment-tracking service.

    Args:
        spec: Where to track.
        path: The folder of the run's local files (W&B's ``dir``; created when started).
        name: The tracked run's display name.
        tags: MLflow run tags (where the run's files are).
    """

    def __init__(
        self, spec: Tracking, path: Path, name: str, tags: Mapping[str, str] | None = None
    ) -> None:
        self.spec = spec
        self.path = Path(path)
        self.name = name
        self.tags = dict(tags or {})
        self.run_id: str | None = None

    @abc.abstractmethod
    def start(self, config: Mapping[str, Any], resume_id: str | None) -> str:
        """Opens the tracked run (continuing ``resume_id`` when given); returns its id."""

    @abc.abstractmethod
    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Logs scalars at an environment step."""

    @abc.abstractmethod
    def log_files(self, files: Iterable[Path], name: str = "run") -> None:
        """Uploads files as one artifact of the run (W&B: ``<name>-<run id>``; MLflow: the
        artifact folder ``<name>/``)."""

    @abc.abstractmethod
    def log_video(self, path: Path, key: str, step: int) -> None:
        """Uploads a video file (MP4) logged at an environment step under ``key``."""

    @abc.abstractmethod
    def finish(self, failed: bool = False) -> None:
        """Closes the tracked run."""


class WandbTracker(Tracker):
    """Weights & Biases: ``wandb.init`` with the run folder as its ``dir``."""

    def start(self, config: Mapping[str, Any], resume_id: str | None) -> str:
        import wandb

        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self.run = wandb.init(
                project=os.environ.get("WANDB_PROJECT") or self.spec.project,
                group=self.spec.group,
                name=self.name,
                dir=str(self.path),
                config=dict(config),
                id=resume_id,
                resume="allow" if resume_id else None,
                # console capture would wrap sys.stdout (progress lines, pytest); SB3's
                # scalars are what the run needs, not a copy of the terminal.
                settings=wandb.Settings(console="off", save_code=False, x_disable_stats=True),
            )
        except Exception as err:  # wandb.errors.UsageError, CommError, ...
            raise UsageError(
                f"--track wandb: cannot start a W&B run ({one_line(err)}); run `wandb login` "
                "or set WANDB_MODE=offline"
            ) from None
        # SB3's steps are environment steps; W&B's own step only counts log calls, which
        # would refuse a resumed run's steps that go back to its last checkpoint.
        self.run.define_metric("global_step")
        self.run.define_metric("*", step_metric="global_step")
        self.run_id = str(self.run.id)
        return self.run_id

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        self.run.log({**values, "global_step": step})

    def log_files(self, files: Iterable[Path], name: str = "run") -> None:
        import wandb

        artifact = wandb.Artifact(f"{name}-{self.run_id}", type="model")
        for path in files:
            artifact.add_file(str(path), name=path.name)
        self.run.log_artifact(artifact)

    def log_video(self, path: Path, key: str, step: int) -> None:
        import wandb

        # From the file: W&B copies the MP4 as written (no re-encoding, no moviepy).
        self.run.log({key: wandb.Video(str(path), format="mp4"), "global_step": step})

    def finish(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


class MlflowTracker(Tracker):
    """MLflow through ``MlflowClient`` (no global active run to leak into the caller's)."""

    def start(self, config: Mapping[str, Any], resume_id: str | None) -> str:
        import mlflow
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = mlflow.get_tracking_uri()
        # Table creation and migration notices are MLflow's start-up chatter, not the run's.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            self.client = MlflowClient(uri)
            if resume_id is not None:
                self.run_id = self._reopen(resume_id)
            if self.run_id is None:
                experiment = self.client.get_experiment_by_name(self.spec.project)
                experiment_id = (
                    experiment.experiment_id
                    if experiment is not None
                    else self.client.create_experiment(self.spec.project)
                )
                tags = dict(self.tags)
                if self.spec.group:
                    tags["mmrl.group"] = self.spec.group
                run = self.client.create_run(experiment_id, run_name=self.name, tags=tags)
                self.run_id = run.info.run_id
                params = [Param(k, str(v)) for k, v in flatten(config).items()]
                for i in range(0, len(params), _MLFLOW_PARAM_BATCH):
                    self.client.log_batch(self.run_id, params=params[i : i + _MLFLOW_PARAM_BATCH])
        except Exception as err:  # MlflowException, SQLAlchemy errors
            raise UsageError(
                f"--track mlflow: cannot start an MLflow run at {uri} ({one_line(err)}); set "
                "MLFLOW_TRACKING_URI (e.g. sqlite:///mlflow.db)"
            ) from None
        return self.run_id

    def _reopen(self, run_id: str) -> str | None:
        """The resumed run's id, or ``None`` when this tracking store does not hold it."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
        except MlflowException:
            return None
        self.client.update_run(run_id, status="RUNNING")
        return run_id

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(k, float(v), stamp, int(step)) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_files(self, files: Iterable[Path], name: str = "run") -> None:
        for path in files:
            self.client.log_artifact(self.run_id, str(path), artifact_path=name)

    def log_video(self, path: Path, key: str, step: int) -> None:
        # MLflow has no media type: the file is an artifact, named by its step already
        # (``step_<steps>.mp4``); ``key`` is W&B's panel name.
        self.client.log_artifact(self.run_id, str(path), artifact_path=VIDEOS_ARTIFACT)

    def finish(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


def require(kind: str) -> None:
    """Raises :class:`MissingDependencyError` naming the extra when ``kind``'s library is
    missing."""
    module, hint = _INSTALL[kind]
    try:
        __import__(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"--track {kind} needs {module} ({one_line(err)}): {hint}"
        ) from None


def tracking_service(track: str | Tracking | None) -> Tracking | None:
    """``track`` (a service name or a :class:`Tracking`) as a :class:`Tracking` whose library
    is installed, so that a missing one fails before a run touches any file; ``None`` stays
    ``None``.

    Raises:
        MissingDependencyError: The service's library is not installed (naming the extra).
    """
    if track is None:
        return None
    track = Tracking(track) if isinstance(track, str) else track
    require(track.kind)
    return track


def start_tracker(
    spec: Tracking,
    path: Path,
    name: str,
    config: Mapping[str, Any],
    *,
    resume_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Tracker:
    """Starts a tracked run (a new one, or ``resume_id`` continued).

    Args:
        spec: Where to track.
        path: The folder of the run's local files (W&B writes ``wandb/`` there).
        name: The tracked run's display name.
        config: The run's configuration as plain data.
        resume_id: The tracked run to continue, if any.
        tags: MLflow run tags.

    Raises:
        MissingDependencyError: The library is not installed (names the extra).
        UsageError: The service refused the run (not logged in, unreachable store).
    """
    require(spec.kind)
    cls = WandbTracker if spec.kind == "wandb" else MlflowTracker
    tracker: Tracker = cls(spec, Path(path), name, tags)
    tracker.start(config, resume_id)
    return tracker


def open_tracker(spec: Tracking, folder: RunFolder, config: Mapping[str, Any]) -> Tracker:
    """Starts the tracked run of ``folder`` (continuing the one ``tracking.json`` names).

    Args:
        spec: Where to track.
        folder: The run folder (created if needed; ``tracking.json`` is written there).
        config: The resolved run config as plain data.

    Raises:
        MissingDependencyError: The library is not installed (names the extra).
        UsageError: The service refused the run (not logged in, unreachable store).
    """
    require(spec.kind)
    previous = folder.tracking()
    resume_id = previous.get("id") if previous.get("kind") == spec.kind else None
    tags = {"mmrl.run_dir": str(folder.path.resolve())}
    tracker = start_tracker(
        spec, folder.path, folder.path.name, config, resume_id=resume_id, tags=tags
    )
    record = {"kind": spec.kind, "id": tracker.run_id, "project": spec.project}
    folder.tracking_path.write_text(json.dumps(record, indent=2) + "\n")
    return tracker


def _scalar(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and np.isfinite(value)


class TrackerOutput(KVWriter):
    """An SB3 logger output format that forwards scalars and video files to a
    :class:`Tracker`.

    Keys SB3 excludes from ``tensorboard`` are excluded here too, so the tracker and
    TensorBoard show the same scalars. A :class:`~mmrl.train_video.VideoFile` is uploaded
    at its own step (TensorBoard gets those frames from the video callback itself); other
    non-scalars (strings, SB3 videos, figures) are skipped.
    """

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def write(
        self,
        key_values: dict[str, Any],
        key_excluded: dict[str, tuple[str, ...] | None],
        step: int = 0,
    ) -> None:
        shown = {
            key: value
            for key, value in key_values.items()
            if "tensorboard" not in (key_excluded.get(key) or ())
        }
        scalars = {key: float(value) for key, value in shown.items() if _scalar(value)}
        if scalars:
            self.tracker.log_scalars(scalars, step)
        for key, value in shown.items():
            if isinstance(value, VideoFile):
                self.tracker.log_video(value.path, key, value.step)

    def close(self) -> None:
        """Nothing to close: the run is finished by whoever opened it (training may go on)."""


class TrackingCallback(BaseCallback):
    """Adds a :class:`TrackerOutput` to the model's logger when training starts.

    SB3 builds a new logger inside every ``learn()`` call, so the writer is attached there
    and not when the model is made.
    """

    def __init__(self, tracker: Tracker, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.output = TrackerOutput(tracker)

    def _on_training_start(self) -> None:
        if self.output not in self.logger.output_formats:
            self.logger.output_formats.append(self.output)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        # A video recorded after the last dump (an off-policy run logs every few episodes)
        # would never reach the writer; its file is already written, so upload it now.
        pending = self.logger.name_to_value
        for key in [k for k, v in pending.items() if isinstance(v, VideoFile)]:
            video = pending.pop(key)
            self.logger.name_to_excluded.pop(key, None)
            self.output.tracker.log_video(video.path, key, video.step)


def final_scalars(final: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The final evaluation (``metrics.json``'s ``eval``) as ``final/<split>/<metric>``."""
    return {
        f"final/{split}/{key}": float(value)
        for split, summary in final.items()
        for key, value in summary.items()
        if _scalar(value)
    }


@contextlib.contextmanager
def finishing(tracker: Tracker | None) -> Iterator[Tracker | None]:
    """Finishes ``tracker`` on exit, as failed on an exception (nothing when ``None``)."""
    if tracker is None:
        yield None
        return
    try:
        yield tracker
    except BaseException:
        tracker.finish(failed=True)
        raise
    tracker.finish()


@contextlib.contextmanager
def tracked(
    spec: Tracking | None, folder: RunFolder, config: Mapping[str, Any]
) -> Iterator[Tracker | None]:
    """The tracked run of a training session, finished (as failed on an exception) on exit.

    Yields ``None`` when ``spec`` is ``None`` (an untracked run).
    """
    tracker = None if spec is None else open_tracker(spec, folder, config)
    with finishing(tracker):
        yield tracker


def run_files(folder: RunFolder) -> list[Path]:
    """The run-folder files a tracked run uploads at its end (those that exist)."""
    paths = (folder.model_path, folder.best_model_path, folder.config_path,
             folder.metrics_path, folder.evaluations_path)  # fmt: skip
    return [path for path in paths if path.is_file()]
