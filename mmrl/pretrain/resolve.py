"""Which architecture ``mmrl pretrain`` trains, and whether the dataset fits it.

The pretrained extractor must be the one ``mmrl train`` will build: the agent recipe (with the
same ``--set`` overrides) resolved for the dataset's environment preset. Before any training
the dataset's spaces are compared with that environment's and the recipe's named keys with
the dataset's, so a mismatch fails fast naming what differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gymnasium import spaces

from mmrl.config import ConfigError, RunConfig
from mmrl.data.dataset import DatasetError, OfflineData, mmrl_metadata
from mmrl.spaces import check


def env_preset_for(env: str) -> str:
    """A preset name/path for ``env``; a Gymnasium id maps to the preset that uses it."""
    import gymnasium as gym

    import mmrl  # noqa: F401  (registers the environments)
    from mmrl.config import available_presets, find_preset, load_env_preset

    try:
        find_preset("envs", env)
        return env
    except ConfigError:
        if env not in gym.registry:
            raise
    for name in available_presets("envs"):
        if load_env_preset(name).env_id == env:
            return name
    raise ConfigError(f"--env {env}: no environment preset uses this id; pass a preset name")


def env_spaces(config: RunConfig) -> tuple[Any, Any]:
    """Observation and action spaces of the run's environment (one copy, no training)."""
    from mmrl.make import make_training_vec_env

    try:
        venv = make_training_vec_env(config.env, n_envs=1, seed=0, monitor=False)
    except ValueError as err:
        raise ConfigError(f"--env {config.env_name}: {err}") from None
    spaces_ = venv.observation_space, venv.action_space
    venv.close()
    return spaces_


def check_agent_keys(config: RunConfig, keys: Sequence[str], dataset_id: str) -> None:
    """Refuses a recipe that names observation keys the dataset does not have."""
    agent = config.agent
    named = {
        "extractor.encoders": list(agent.extractor.encoders),
        "extractor.encoder_kwargs": list(agent.extractor.encoder_kwargs),
        "normalize.obs_keys": list(agent.normalize.obs_keys),
    }
    problems = [
        f"agent.{field} names {sorted(set(k) - set(keys))}"
        for field, k in named.items()
        if set(k) - set(keys)
    ]
    if problems:
        raise DatasetError(
            f"agent {config.agent_name!r} does not fit dataset {dataset_id!r} (keys "
            f"{list(keys)}): " + "; ".join(problems)
        )


def resolve_pretrain_config(
    data: OfflineData,
    agent: str,
    env: str | None = None,
    overrides: Sequence[str] | None = None,
) -> RunConfig:
    """The run config whose extractor is pretrained; checks dataset, env and agent agree.

    Also puts ``data.observation_space`` (and ``dataset_observation_space``) in the
    environment's key order: Minari stores spaces with sorted keys, but PPO's extractor is
    built on the environment's order, and the fusion's input order must be the same in both.

    Raises:
        SpaceMismatchError: Dataset spaces differ from the environment's (a DatasetError,
            naming the keys).
        DatasetError: The recipe names keys the dataset lacks (naming them).
        ConfigError: Unknown preset/recipe, or no environment recorded and none given.
    """
    from mmrl.config import resolve_run_config

    if env is None:
        env = mmrl_metadata(data.metadata).get("env")
        if not env or env == "custom":
            raise ConfigError(
                f"dataset {data.dataset_id!r} does not record an mmrl environment preset; "
                "pass --env"
            )
    config = resolve_run_config(env_preset_for(env), agent, list(overrides or []))
    obs_space, action_space = env_spaces(config)
    check(
        obs_space,
        action_space,
        data.dataset_observation_space,
        data.action_space,
        f"dataset {data.dataset_id!r} vs environment {env!r}",
        names=("environment", "dataset"),
    )
    check_agent_keys(config, list(data.observation_space.spaces), data.dataset_id)
    data.observation_space = reorder_keys(data.observation_space, list(obs_space.spaces))
    data.dataset_observation_space = reorder_keys(
        data.dataset_observation_space, list(obs_space.spaces)
    )
    return config


def reorder_keys(space: spaces.Dict, order: Sequence[str]) -> spaces.Dict:
    """``space`` with its keys in ``order`` (pairs: Gymnasium would sort a dict's keys)."""
    return spaces.Dict([(key, space[key]) for key in order])
