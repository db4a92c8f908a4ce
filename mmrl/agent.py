"""The agent: a run config turned into SB3 objects (device, VecEnv, policy kwargs, model).

Training (:mod:`mmrl.train`), pretraining (:mod:`mmrl.pretrain`) and every script that builds a
model from a recipe share these builders, so they sit below both (issue 14: ``train`` ->
``pretrain.finetune`` -> ``pretrain.checkpoint`` -> ``train`` was an import cycle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch as th

from mmrl.config import RunConfig
from mmrl.errors import ConfigError, MmrlError, one_line

__all__ = ["build_model", "build_vec_env", "policy_kwargs", "resolve_device"]


def resolve_device(device: str) -> th.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is a clear error."""
    if device == "auto":
        return th.device("cuda" if th.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not th.cuda.is_available():
        raise ConfigError(
            f"--device {device}: CUDA is not available (torch {th.__version__}, "
            f"built with CUDA: {th.version.cuda or 'no'}); use --device cpu or auto"
        )
    try:
        resolved = th.device(device)
    except RuntimeError as err:
        raise ConfigError(f"--device {device}: {err}") from None
    count = th.cuda.device_count() if resolved.type == "cuda" else 0
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= count:
        raise ConfigError(f"--device {device}: this machine has {count} CUDA device(s)")
    return resolved


def build_vec_env(
    config: RunConfig, seed: int, n_envs: int | None = None, split: str | None = None
):
    """The training (``split=None``) or evaluation VecEnv of a run, normalization included.

    Args:
        config: The run configuration.
        seed: Base seed.
        n_envs: Copies (default: the preset's).
        split: ``None`` for training; ``"train"``/``"test"`` for evaluation envs (``"test"``
            applies the preset's ``eval_kwargs``).
    """
    from stable_baselines3.common.vec_env import VecNormalize

    from mmrl.make import make_training_vec_env

    overrides = dict(config.env.eval_kwargs) if split == "test" else {}
    venv = make_training_vec_env(config.env, n_envs=n_envs, seed=seed, **overrides)
    norm = config.agent.normalize
    if norm.obs_keys:
        try:
            _check_normalized_keys(venv.observation_space, norm.obs_keys)
        except ConfigError:
            venv.close()
            raise
    if norm.obs_keys or norm.reward:
        venv = VecNormalize(
            venv,
            norm_obs=bool(norm.obs_keys),
            norm_obs_keys=list(norm.obs_keys) or None,
            norm_reward=norm.reward and split is None,
            training=split is None,
            gamma=config.agent.ppo.gamma,
        )
    return venv


def _check_normalized_keys(space: Any, keys: list[str]) -> None:
    """``VecNormalize`` needs existing float keys: a missing key was a ``KeyError`` traceback,
    and an integer key (``text`` token ids) was silently turned into nonsense floats."""
    import numpy as np
    from gymnasium import spaces

    subspaces = getattr(space, "spaces", None)
    if not isinstance(space, spaces.Dict) or subspaces is None:
        raise ConfigError(f"agent.normalize.obs_keys needs a Dict observation space, got {space}")
    floats = [
        k
        for k, s in subspaces.items()
        if isinstance(s, spaces.Box) and np.issubdtype(s.dtype, np.floating)
    ]
    for key in keys:
        if key not in floats:
            what = "is not an observation key" if key not in subspaces else "is not a float key"
            raise ConfigError(
                f"agent.normalize.obs_keys: {key!r} {what}; float keys of this env: "
                f"{', '.join(floats) or '(none)'}"
            )


def policy_kwargs(config: RunConfig) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` for the recipe's extractor and heads."""
    from mmrl.extractor import MultimodalExtractor

    ext = config.agent.extractor
    pol = config.agent.policy
    return {
        "features_extractor_class": MultimodalExtractor,
        "features_extractor_kwargs": {
            "fusion": ext.fusion,
            "features_dim": ext.features_dim,
            "encoders": dict(ext.encoders) or None,
            "modality_dropout": ext.modality_dropout,
            "fusion_kwargs": dict(ext.fusion_kwargs) or None,
            "encoder_kwargs": dict(ext.encoder_kwargs) or None,
        },
        "net_arch": {"pi": list(pol.pi), "vf": list(pol.vf)},
        "activation_fn": {"tanh": th.nn.Tanh, "relu": th.nn.ReLU}[pol.activation],
        "share_features_extractor": pol.share_features_extractor,
        "ortho_init": pol.ortho_init,
    }


def build_model(config: RunConfig, venv: Any, device: th.device, tensorboard_log: Path | None):
    """A fresh SB3 PPO model for the recipe.

    Raises:
        ConfigError: The recipe cannot be built (unknown fusion or encoder, bad keyword
            arguments, PPO settings SB3 refuses), named on one line.
    """
    ppo = config.agent.ppo
    lr: Any = ppo.learning_rate
    if ppo.lr_schedule == "linear":
        base = ppo.learning_rate

        def lr(progress_remaining: float) -> float:
            return base * progress_remaining

    try:
        return _ppo(config, venv, device, tensorboard_log, lr)
    except MmrlError:
        raise
    except (ValueError, KeyError, TypeError) as err:
        # Unknown fusion/encoder names and keyword arguments surface here, from the
        # extractor's constructor: one line naming the recipe instead of a traceback.
        raise ConfigError(
            f"agent {config.agent_name!r}: cannot build its model: {one_line(err)}"
        ) from None


def _ppo(config: RunConfig, venv: Any, device: th.device, tensorboard_log: Path | None, lr: Any):
    from stable_baselines3 import PPO

    ppo = config.agent.ppo
    return PPO(
        "MultiInputPolicy",
        venv,
        learning_rate=lr,
        n_steps=ppo.n_steps,
        batch_size=ppo.batch_size,
        n_epochs=ppo.n_epochs,
        gamma=ppo.gamma,
        gae_lambda=ppo.gae_lambda,
        clip_range=ppo.clip_range,
        ent_coef=ppo.ent_coef,
        vf_coef=ppo.vf_coef,
        max_grad_norm=ppo.max_grad_norm,
        target_kl=ppo.target_kl,
        policy_kwargs=policy_kwargs(config),
        tensorboard_log=str(tensorboard_log) if tensorboard_log else None,
        seed=config.seed,
        device=device,
        verbose=0,
    )
