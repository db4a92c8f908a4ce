"""A run folder written by ``mmrl train``, as one object: :class:`RunFolder`.

Layout (every file name is defined here once; the checkpoint's own files, ``model.zip`` and
``state.pkl`` inside ``checkpoints/step_*/``, are :mod:`mmrl.checkpoint`'s)::

    RUN_DIR/config.yaml        fully resolved configuration (RunConfig)
    RUN_DIR/model.zip          final SB3 model
    RUN_DIR/best_model.zip     best model on held-out seeds
    RUN_DIR/metrics.json       final evaluation (held-out seeds, every instruction split)
    RUN_DIR/evaluations.jsonl  every periodic evaluation, one JSON object per line
    RUN_DIR/tb/run_1/          TensorBoard event files
    RUN_DIR/checkpoints/       atomic checkpoints + ``latest`` pointer
    RUN_DIR/tracking.json      the W&B / MLflow run this run is tracked in (``--track``)
    RUN_DIR/videos/            ``mmrl train --video-every``: ``step_<steps>.mp4``, one episode
    RUN_DIR/vec_normalize.pkl  SB3 ``VecNormalize`` (statistics only; written by ``mmrl export``
                               for a folder without checkpoints, huggingface_sb3's name)

``mmrl train`` writes these files, and everything that reads a run (evaluation, collection,
bench, the scripts) reads them through :class:`RunFolder`: the resolved config, the model to
act with, the latest complete checkpoint, the ``VecNormalize`` observation statistics and the
evaluation curve. This module sits beside :mod:`mmrl.checkpoint` (below ``train``) so that
the writer and the readers share the names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmrl.checkpoint import MODEL_FILE, latest_checkpoint, read_state
from mmrl.config import RunConfig, from_dict, read_yaml
from mmrl.errors import CheckpointError, ConfigError

__all__ = [
    "BEST_MODEL_FILE",
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "EVALUATIONS_FILE",
    "METRICS_FILE",
    "MODEL_FILE",
    "TB_DIR",
    "TRACKING_FILE",
    "VEC_NORMALIZE_FILE",
    "VIDEOS_DIR",
    "RunFolder",
    "load_run_config",
    "parse_evaluations",
]

CONFIG_FILE = "config.yaml"
BEST_MODEL_FILE = "best_model.zip"
METRICS_FILE = "metrics.json"
EVALUATIONS_FILE = "evaluations.jsonl"
CHECKPOINTS_DIR = "checkpoints"
TB_DIR = "tb"
TRACKING_FILE = "tracking.json"
VIDEOS_DIR = "videos"
VEC_NORMALIZE_FILE = "vec_normalize.pkl"


def load_run_config(run_dir: str | Path) -> RunConfig:
    """Reads and validates ``RUN_DIR/config.yaml``.

    Raises:
        ConfigError: No ``config.yaml`` there, invalid YAML, or an invalid configuration.
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no {CONFIG_FILE} there (not an mmrl run folder)")
    # read_yaml refuses an empty, non-UTF-8 or unreadable file (an empty config.yaml used to
    # become the default config silently, issue 15).
    return from_dict(RunConfig, read_yaml(path), where=str(path))


def parse_evaluations(text: str, where: str = EVALUATIONS_FILE) -> list[dict[str, Any]]:
    """The records of an ``evaluations.jsonl`` text, oldest first.

    Each line is ``{"step": int, "<split>": {"success_rate": ..., "mean_return": ...}, ...}``.
    A last line without its newline that does not parse is a write cut short (a run killed
    while appending with a tool that does not write atomically) and is dropped; any other
    line that does not parse is corruption and refused.

    Args:
        text: The file's contents.
        where: The file, for error messages.

    Raises:
        CheckpointError: A line other than an unterminated last one is not a JSON object.
    """
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # no newline after it: the write was cut short
                break
            raise CheckpointError(f"{where}: line {number} is not JSON: {line[:80]!r}") from None
        if not isinstance(record, dict) or "step" not in record:
            raise CheckpointError(f"{where}: line {number} is not an evaluation record")
        records.append(record)
    return records


class RunFolder:
    """A run folder: where its files are and what they hold.

    Constructing one checks nothing (``mmrl train`` builds one for a folder it is about to
    fill); :meth:`open` is for reading an existing run and refuses anything else.

    Args:
        path: The run folder.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # ------------------------------------------------------------------ finding runs
    @staticmethod
    def is_run(path: str | Path) -> bool:
        """Whether ``path`` is a folder holding a run's ``config.yaml``."""
        return (Path(path) / CONFIG_FILE).is_file()

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """An existing run folder.

        Raises:
            CheckpointError: ``path`` does not exist or has no ``config.yaml``.
        """
        path = Path(path)
        if not path.exists():
            raise CheckpointError(f"{path}: no such run folder")
        if not cls.is_run(path):
            raise CheckpointError(f"{path}: not an mmrl run folder (no {CONFIG_FILE})")
        return cls(path)

    @classmethod
    def containing(cls, model_path: str | Path) -> RunFolder | None:
        """The run folder a model file lies in (``RUN/x.zip`` or ``RUN/checkpoints/s/x.zip``).

        Returns:
            ``None`` for a model file that is not inside a run folder.
        """
        parent = Path(model_path).parent
        if cls.is_run(parent):
            return cls(parent)
        if parent.parent.name == CHECKPOINTS_DIR and cls.is_run(parent.parent.parent):
            return cls(parent.parent.parent)
        return None

    # ------------------------------------------------------------------ file names
    @property
    def config_path(self) -> Path:
        """``config.yaml``: the resolved :class:`~mmrl.config.RunConfig`."""
        return self.path / CONFIG_FILE

    @property
    def model_path(self) -> Path:
        """``model.zip``: the final model (present once training finished)."""
        return self.path / MODEL_FILE

    @property
    def best_model_path(self) -> Path:
        """``best_model.zip``: the best model on the held-out evaluation."""
        return self.path / BEST_MODEL_FILE

    @property
    def metrics_path(self) -> Path:
        """``metrics.json``: the final evaluation (present once training finished)."""
        return self.path / METRICS_FILE

    @property
    def evaluations_path(self) -> Path:
        """``evaluations.jsonl``: every periodic evaluation."""
        return self.path / EVALUATIONS_FILE

    @property
    def checkpoints_dir(self) -> Path:
        """``checkpoints/``: atomic checkpoints (see :mod:`mmrl.checkpoint`)."""
        return self.path / CHECKPOINTS_DIR

    @property
    def tb_dir(self) -> Path:
        """``tb/``: TensorBoard event files."""
        return self.path / TB_DIR

    @property
    def tracking_path(self) -> Path:
        """``tracking.json``: the tracked run's service and id (:mod:`mmrl.tracking`)."""
        return self.path / TRACKING_FILE

    def tracking(self) -> dict[str, Any]:
        """``tracking.json``'s content; empty when the run was never tracked."""
        if not self.tracking_path.is_file():
            return {}
        try:
            data = json.loads(self.tracking_path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{self.tracking_path} is corrupt ({err}); delete it") from None
        return data if isinstance(data, dict) else {}

    @property
    def videos_dir(self) -> Path:
        """``videos/``: the training-time videos of ``mmrl train --video-every``."""
        return self.path / VIDEOS_DIR

    @property
    def vec_normalize_path(self) -> Path:
        """``vec_normalize.pkl``: a pickled ``VecNormalize`` (exported folders)."""
        return self.path / VEC_NORMALIZE_FILE

    # ------------------------------------------------------------------ contents
    @property
    def finished(self) -> bool:
        """Whether training finished (``metrics.json`` is written last)."""
        return self.metrics_path.is_file()

    def config(self) -> RunConfig:
        """The run's resolved configuration (see :func:`load_run_config`)."""
        return load_run_config(self.path)

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint folder, or ``None``."""
        return latest_checkpoint(self.checkpoints_dir)

    def checkpoint_steps(self) -> int | None:
        """Environment steps in the newest complete checkpoint (``None``: no checkpoint)."""
        checkpoint = self.latest_checkpoint()
        return None if checkpoint is None else int(read_state(checkpoint)["num_timesteps"])

    def policy_model_path(self) -> Path:
        """The model to act with: ``model.zip``, else the newest checkpoint's (an unfinished
        or killed run).

        Raises:
            CheckpointError: Neither exists.
        """
        if self.model_path.is_file():
            return self.model_path
        checkpoint = self.latest_checkpoint()
        if checkpoint is None:
            raise CheckpointError(
                f"{self.path}: no {MODEL_FILE} and no complete checkpoint to load"
            )
        return checkpoint / MODEL_FILE

    def normalization_stats(self, checkpoint: Path | None = None) -> Any | None:
        """The ``VecNormalize`` observation statistics (``obs_rms``) the run trained with.

        ``model.zip`` does not hold them; every checkpoint does (the run saves one after its
        last update, so the newest matches ``model.zip``).

        Args:
            checkpoint: Read this checkpoint folder (default: the newest complete one).

        Returns:
            ``None`` when the run does not normalize observations; otherwise a
            ``RunningMeanStd`` per normalized key (``{key: RunningMeanStd}``), or one
            ``RunningMeanStd`` for a non-Dict observation space. A folder without checkpoints
            (``mmrl export``) reads them from ``vec_normalize.pkl``.

        Raises:
            CheckpointError: The run normalizes observations but no checkpoint (nor
                ``vec_normalize.pkl``) holds the statistics.
        """
        keys = self.config().agent.normalize.obs_keys
        if not keys:
            return None
        checkpoint = checkpoint or self.latest_checkpoint()
        if checkpoint is None and self.vec_normalize_path.is_file():
            return self._pickled_normalization()
        if checkpoint is None:
            raise CheckpointError(
                f"{self.path}: the run normalizes observations {keys} but has no checkpoint "
                f"with the VecNormalize statistics ({CHECKPOINTS_DIR}/ is missing or empty)"
            )
        for layer in read_state(checkpoint).get("env", []):
            if layer.get("kind") == "VecNormalize":
                return layer["obs_rms"]
        raise CheckpointError(
            f"{checkpoint}: state.pkl holds no VecNormalize statistics although the run "
            f"normalizes {keys}"
        )

    def _pickled_normalization(self) -> Any:
        import pickle

        try:
            with self.vec_normalize_path.open("rb") as f:
                return pickle.load(f).obs_rms
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as err:
            raise CheckpointError(
                f"{self.vec_normalize_path}: not a pickled VecNormalize ({err})"
            ) from None

    def metrics(self) -> dict[str, Any] | None:
        """``metrics.json`` (``None`` until training finished).

        Raises:
            CheckpointError: The file exists but is not JSON.
        """
        if not self.metrics_path.is_file():
            return None
        try:
            return json.loads(self.metrics_path.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{self.metrics_path}: not JSON ({err})") from None

    def evaluations(self) -> list[dict[str, Any]]:
        """The periodic evaluations, oldest first (empty before the first one); see
        :func:`parse_evaluations`."""
        if not self.evaluations_path.is_file():
            return []
        return parse_evaluations(self.evaluations_path.read_text(), str(self.evaluations_path))

    def curve(self, split: str, metric: str = "success_rate") -> tuple[list[int], list[float]]:
        """``(steps, values)`` of one metric of one split over the periodic evaluations."""
        rows = [r for r in self.evaluations() if split in r]
        return [int(r["step"]) for r in rows], [float(r[split][metric]) for r in rows]
