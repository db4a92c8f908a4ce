"""Finding and loading what ``mmrl evaluate`` evaluates: run folders and bare ``model.zip`` files.

A *target* is a run folder written by ``mmrl train`` (``config.yaml`` + ``model.zip``), a model
file inside one (``RUN/best_model.zip``, ``RUN/checkpoints/step_*/model.zip``), or a bare SB3
``model.zip`` with no run around it, which then needs an environment preset (``--env``), or a
pretraining checkpoint ``.pt`` whose BC policy is evaluated on its own (in the environment it
was pretrained for unless ``--env`` says otherwise). Run folders also provide the
``VecNormalize`` statistics saved with their checkpoints, so the policy sees observations
normalized exactly as in training.

Every refusal raises :class:`~mmrl.checkpoint.CheckpointError` or
:class:`~mmrl.config.ConfigError` with one line naming the file and what to do; the CLI turns
them into exit status 2.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from gymnasium import spaces

from mmrl.checkpoint import check_model_file, latest_checkpoint, read_state
from mmrl.config import EnvConfig, NormalizeConfig, RunConfig
from mmrl.errors import CheckpointError, ConfigError, SpaceMismatchError
from mmrl.policies import algorithm_class, load_sb3_model, one_line
from mmrl.spaces import check as spaces_check
from mmrl.spaces import differences as space_differences
from mmrl.spaces import policy_view

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.zip"

__all__ = [
    "CONFIG_FILE",
    "MODEL_FILE",
    "BCModel",
    "SpaceMismatchError",
    "Target",
    "algorithm_class",
    "check_spaces",
    "load_model",
    "normalization_stats",
    "one_line",
    "policy_view",
    "resolve_env_config",
    "resolve_target",
    "space_differences",
]


@dataclasses.dataclass
class Target:
    """A model to evaluate, with what its run folder knows about it.

    Attributes:
        label: Short name for tables (the run folder's or the file's name).
        model_path: The SB3 ``.zip`` file.
        run_dir: The run folder, or ``None`` for a bare model file.
        config: The run's resolved configuration (``None`` for a bare model file).
        checkpoint: Checkpoint folder whose ``state.pkl`` holds the normalization statistics.
        bc_env: For a pretraining checkpoint (``model_path`` a ``.pt``): the environment
            preset it was pretrained for; ``None`` for SB3 models.
    """

    label: str
    model_path: Path
    run_dir: Path | None = None
    config: RunConfig | None = None
    checkpoint: Path | None = None
    bc_env: str | None = None

    @property
    def normalize(self) -> NormalizeConfig:
        """The run's observation normalization (none for bare model files)."""
        return self.config.agent.normalize if self.config is not None else NormalizeConfig()

    @property
    def gamma(self) -> float:
        """The run's discount factor (0.99 for bare model files)."""
        return self.config.agent.ppo.gamma if self.config is not None else 0.99


def _run_dir_of(model_path: Path) -> Path | None:
    """The run folder holding ``model_path`` (``RUN/x.zip`` or ``RUN/checkpoints/s/x.zip``)."""
    parent = model_path.parent
    if (parent / CONFIG_FILE).is_file():
        return parent
    if parent.parent.name == "checkpoints" and (parent.parent.parent / CONFIG_FILE).is_file():
        return parent.parent.parent
    return None


def resolve_target(path: str | Path) -> Target:
    """Finds the model file and run folder of a command-line target.

    Args:
        path: A run folder or a model ``.zip`` (inside a run folder or not).

    Returns:
        The :class:`Target`; its model file has passed :func:`check_model_file`.

    Raises:
        CheckpointError: Missing path, a folder that is not a run folder, a run without any
            model, or a file that is not an SB3 model archive.
        ConfigError: A run folder whose ``config.yaml`` is invalid.
    """
    from mmrl.pretrain.bc_policy import is_encoder_checkpoint
    from mmrl.train import load_run_config

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder or model file")
    if path.is_file() and is_encoder_checkpoint(path):
        from mmrl.pretrain import load_encoder_checkpoint

        info = load_encoder_checkpoint(path, "evaluate").get("info", {})
        return Target(path.stem, path, bc_env=info.get("env") or "")
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise CheckpointError(
                f"{path}: not an mmrl run folder (no {CONFIG_FILE}); pass a model .zip with --env"
            )
        run_dir = path
        checkpoint = latest_checkpoint(run_dir / "checkpoints")
        model_path = run_dir / MODEL_FILE
        if not model_path.is_file():
            # An unfinished (or killed) run: evaluate its newest complete checkpoint.
            if checkpoint is None:
                raise CheckpointError(
                    f"{run_dir}: no {MODEL_FILE} and no complete checkpoint to evaluate"
                )
            model_path = checkpoint / MODEL_FILE
        label = run_dir.name
    else:
        model_path = path
        run_dir = _run_dir_of(path)
        if run_dir is None:
            checkpoint = None
            label = path.stem if path.stem != "model" else path.parent.name or path.stem
        elif path.parent.parent.name == "checkpoints":
            checkpoint = path.parent
            label = f"{run_dir.name}/{path.parent.name}"
        else:
            checkpoint = latest_checkpoint(run_dir / "checkpoints")
            label = run_dir.name if path.name == MODEL_FILE else f"{run_dir.name}/{path.stem}"
    check_model_file(model_path)
    config = load_run_config(run_dir) if run_dir is not None else None
    return Target(label, model_path, run_dir, config, checkpoint)


def resolve_env_config(target: Target, env: str | None) -> EnvConfig:
    """The environment a target is evaluated on: ``--env`` if given, else its run's.

    Raises:
        ConfigError: A bare model file without ``env``, or an unknown preset.
    """
    from mmrl.make import resolve_env

    if env is not None:
        return resolve_env(env)
    if target.bc_env:
        from mmrl.pretrain.resolve import env_preset_for

        return resolve_env(env_preset_for(target.bc_env))
    if target.config is None:
        from mmrl.config import available_presets

        raise ConfigError(
            f"{target.model_path} is a bare model file (no run folder with {CONFIG_FILE}): pass "
            f"--env with an env preset ({', '.join(available_presets('envs'))}) or a Gymnasium id"
        )
    return target.config.env


def normalization_stats(target: Target) -> Any | None:
    """The ``VecNormalize`` observation statistics (``obs_rms``) saved with a run's checkpoint.

    Returns:
        ``None`` when the run does not normalize observations; otherwise the
        ``RunningMeanStd`` (or dict of them per key) that training used.

    Raises:
        CheckpointError: The run normalizes observations but no checkpoint holds the statistics.
    """
    if not target.normalize.obs_keys:
        return None
    if target.checkpoint is None:
        raise CheckpointError(
            f"{target.label}: the run normalizes observations {target.normalize.obs_keys} but has "
            "no checkpoint with the VecNormalize statistics (checkpoints/ is missing or empty)"
        )
    for layer in read_state(target.checkpoint).get("env", []):
        if layer.get("kind") == "VecNormalize":
            return layer["obs_rms"]
    raise CheckpointError(
        f"{target.checkpoint}: state.pkl holds no VecNormalize statistics although the run "
        f"normalizes {target.normalize.obs_keys}"
    )


def load_model(target: Target, device: str = "auto") -> Any:
    """Loads the SB3 model of a target (no environment attached).

    Raises:
        CheckpointError: When SB3 cannot load the archive.
    """
    from mmrl.agent import resolve_device

    if target.bc_env is not None:
        return _bc_model(target, resolve_device(device))
    return load_sb3_model(target.model_path, resolve_device(device))


@dataclasses.dataclass
class BCModel:
    """The BC policy of a pretraining checkpoint with the part of SB3's model API that
    evaluation uses (``predict``, ``policy`` and the spaces)."""

    policy: Any

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        return self.policy.predict(*args, **kwargs)

    @property
    def observation_space(self) -> spaces.Space:
        return self.policy.observation_space

    @property
    def action_space(self) -> spaces.Space:
        return self.policy.action_space


def _bc_model(target: Target, device: Any) -> BCModel:
    from mmrl.pretrain.bc_policy import load_bc_policy

    _, policy, _ = load_bc_policy(target.model_path, target.bc_env or None, "evaluate")
    return BCModel(policy.to(device))


# ---------------------------------------------------------------------------- space checks
def check_spaces(
    model: Any,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    other: str,
) -> None:
    """Refuses a model whose spaces differ from an environment's or a dataset's.

    Args:
        model: The SB3 model.
        observation_space: The environment's (or dataset's) observation space, channel-last
            images as environments report them.
        action_space: Its action space.
        other: What it is, for the message (``"environment mmrl/Driving-v0"``).

    Raises:
        SpaceMismatchError: Naming every differing key and both spaces.
    """
    spaces_check(
        model.observation_space,
        model.action_space,
        policy_view(observation_space),
        action_space,
        f"the model does not fit the {other}",
        names=("model", other),
    )
