"""The agent: a run config turned into SB3 objects (device, VecEnv, policy kwargs, model).

Training (:mod:`mmrl.train`), pretraining (:mod:`mmrl.pretrain`) and every script that builds a
model from a recipe share these builders, so they sit below both (issue 14: ``train`` ->
``pretrain.finetune`` -> ``pretrain.checkpoint`` -> ``train`` was an import cycle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch as th

from mmrl.config import EnvConfig, RunConfig
from mmrl.errors import ConfigError, MmrlError, one_line

__all__ = ["build_model", "build_vec_env", "heldout_env_kwargs", "policy_kwargs", "resolve_device"]

#: Instruction splits of the held-out evaluation.
SPLITS = ("train", "test")


def heldout_env_kwargs(env_config: EnvConfig, split: str) -> dict[str, Any]:
    """Environment kwargs of an instruction split: the one rule for the held-out split.

    ``test`` applies the preset's ``eval_kwargs``, or ``instruction_split="test"`` when the
    preset has none (every mmrl environment takes it); ``train`` keeps the preset's own
    kwargs (the training distribution). Used by ``mmrl train``'s periodic evaluation and by
    ``mmrl evaluate`` alike (issue 14: they used to differ).

    Raises:
        ConfigError: ``split`` is not ``train`` or ``test``.
    """
    if split not in SPLITS:
        raise ConfigError(f"must be train or test, got {split!r}", field="split")
    if split == "test":
        return dict(env_config.eval_kwargs) or {"instruction_split": "test"}
    return {}


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
        return th.device(device)
    except RuntimeError as err:
        raise ConfigError(f"--device {device}: {err}") from None


def build_vec_env(
    config: RunConfig, seed: int, n_envs: int | None = None, split: str | None = None
):
    """The training (``split=None``) or evaluation VecEnv of a run, normalization included.

    Args:
        config: The run configuration.
        seed: Base seed.
        n_envs: Copies (default: the preset's).
        split: ``None`` for training; ``"train"``/``"test"`` for evaluation envs (``"test"``
            applies :func:`heldout_env_kwargs`).
    """
    from stable_baselines3.common.vec_env import VecNormalize

    from mmrl.make import make_training_vec_env

    overrides = heldout_env_kwargs(config.env, split) if split is not None else {}
    venv = make_training_vec_env(config.env, n_envs=n_envs, seed=seed, **overrides)
    norm = config.agent.normalize
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
