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

__all__ = [
    "ALGORITHM_CLASSES",
    "algorithm_class",
    "build_model",
    "build_vec_env",
    "evaluation_splits",
    "heldout_env_kwargs",
    "policy_kwargs",
    "resolve_device",
]

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


def evaluation_splits(env_config: EnvConfig) -> tuple[str, ...]:
    """The instruction splits a run is evaluated on: ``train``, and ``test`` where the env
    preset has held-out instructions (``eval_kwargs``). The one rule for ``mmrl train``'s
    periodic evaluation, ``mmrl bench``'s final one and ``mmrl tune``'s objective."""
    return SPLITS if env_config.eval_kwargs else ("train",)


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
            applies :func:`heldout_env_kwargs`).

    The preset's ``n_workers`` applies to the training env at the preset's size only;
    evaluation envs and other sizes step in this process.
    """
    from stable_baselines3.common.vec_env import VecNormalize

    from mmrl.make import make_training_vec_env

    overrides = heldout_env_kwargs(config.env, split) if split is not None else {}
    n_workers = config.env.n_workers if split is None and n_envs is None else 1
    venv = make_training_vec_env(
        config.env, n_envs=n_envs, seed=seed, n_workers=n_workers, **overrides
    )
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


#: ``algo`` -> (module, class, SB3 policy name). One table: building, resuming and loading
#: a run all find the class here.
ALGORITHM_CLASSES: dict[str, tuple[str, str, str]] = {
    "ppo": ("stable_baselines3", "PPO", "MultiInputPolicy"),
    "a2c": ("stable_baselines3", "A2C", "MultiInputPolicy"),
    "dqn": ("stable_baselines3", "DQN", "MultiInputPolicy"),
    "sac": ("stable_baselines3", "SAC", "MultiInputPolicy"),
    "recurrent-ppo": ("sb3_contrib", "RecurrentPPO", "MultiInputLstmPolicy"),
}
_EXTRA = {"sb3_contrib": 'pip install "mmrl[contrib]"'}


def algorithm_class(algo: str) -> type:
    """The SB3 (or sb3-contrib) class of a recipe's ``algo``.

    Raises:
        ConfigError: An unknown name, listing the known ones.
        MissingDependencyError: ``recurrent-ppo`` without sb3-contrib installed.
    """
    from mmrl.errors import MissingDependencyError

    if algo not in ALGORITHM_CLASSES:
        raise ConfigError(
            f"must be one of {', '.join(ALGORITHM_CLASSES)}, got {algo!r}", field="agent.algo"
        )
    module, name, _ = ALGORITHM_CLASSES[algo]
    try:
        if module == "sb3_contrib":
            import sb3_contrib as package
        else:
            import stable_baselines3 as package
        return getattr(package, name)
    except ImportError:
        raise MissingDependencyError(
            f"agent.algo {algo} needs {module.replace('_', '-')}: {_EXTRA.get(module)}"
        ) from None


def policy_class(config: RunConfig) -> type:
    """The policy class of the recipe's algorithm: the one SB3's alias table names
    (``MultiInputPolicy``, ``MultiInputLstmPolicy``), or for ``recurrent-ppo`` with
    ``agent.recurrent.skip_connection`` mmrl's :class:`~mmrl.recurrent.SkipLstmPolicy`.

    Raises:
        ConfigError, MissingDependencyError: As :func:`algorithm_class`.
    """
    algo = config.agent.algo
    cls = algorithm_class(algo)  # sb3-contrib is installed, or one line saying how to get it
    if algo == "recurrent-ppo" and config.agent.recurrent.skip_connection:
        from mmrl.recurrent import SkipLstmPolicy

        return SkipLstmPolicy
    return cls.policy_aliases[ALGORITHM_CLASSES[algo][2]]


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
    """SB3 ``policy_kwargs`` for the recipe's extractor and heads (per algorithm: DQN has one
    Q-network, SAC an actor and Q-networks, the others an actor and a critic)."""
    from mmrl.extractor import MultimodalExtractor

    ext = config.agent.extractor
    pol = config.agent.policy
    algo = config.agent.algo
    kwargs: dict[str, Any] = {
        "features_extractor_class": MultimodalExtractor,
        "features_extractor_kwargs": {
            "fusion": ext.fusion,
            "features_dim": ext.features_dim,
            "encoders": dict(ext.encoders) or None,
            "modality_dropout": ext.modality_dropout,
            "fusion_kwargs": dict(ext.fusion_kwargs) or None,
            "encoder_kwargs": dict(ext.encoder_kwargs) or None,
        },
        "activation_fn": {"tanh": th.nn.Tanh, "relu": th.nn.ReLU}[pol.activation],
    }
    if algo == "dqn":
        kwargs["net_arch"] = list(pol.pi)
        return kwargs
    if algo == "sac":
        kwargs["net_arch"] = {"pi": list(pol.pi), "qf": list(pol.vf)}
        kwargs["share_features_extractor"] = pol.share_features_extractor
        return kwargs
    kwargs["net_arch"] = {"pi": list(pol.pi), "vf": list(pol.vf)}
    kwargs["share_features_extractor"] = pol.share_features_extractor
    kwargs["ortho_init"] = pol.ortho_init
    if algo == "recurrent-ppo":
        rec = config.agent.recurrent
        kwargs.update(
            lstm_hidden_size=rec.lstm_hidden_size,
            n_lstm_layers=rec.n_lstm_layers,
            shared_lstm=rec.shared_lstm,
            enable_critic_lstm=rec.enable_critic_lstm and not rec.shared_lstm,
        )
    return kwargs


def build_model(config: RunConfig, venv: Any, device: th.device, tensorboard_log: Path | None):
    """A fresh SB3 model of the recipe's algorithm (``agent.algo``).

    Raises:
        ConfigError: The recipe cannot be built (unknown fusion or encoder, bad keyword
            arguments, settings SB3 refuses, an algorithm that does not fit the action
            space), named on one line.
        MissingDependencyError: ``recurrent-ppo`` without sb3-contrib.
    """
    from gymnasium import spaces

    algo = config.agent.algo
    cls = algorithm_class(algo)
    needs = {"dqn": spaces.Discrete, "sac": spaces.Box}.get(algo)
    if needs is not None and not isinstance(venv.action_space, needs):
        other = "sac (continuous)" if algo == "dqn" else "dqn (discrete)"
        raise ConfigError(
            f"agent {config.agent_name!r}: {algo} needs a {needs.__name__} action space, but "
            f"{config.env.env_id} has {venv.action_space}; use ppo, a2c, recurrent-ppo or "
            f"{other}"
        )
    ppo = config.agent.ppo
    lr: Any = ppo.learning_rate
    if ppo.lr_schedule == "linear":
        base = ppo.learning_rate

        def lr(progress_remaining: float) -> float:
            return base * progress_remaining

    try:
        return cls(
            policy_class(config),
            venv,
            learning_rate=lr,
            gamma=ppo.gamma,
            policy_kwargs=policy_kwargs(config),
            tensorboard_log=str(tensorboard_log) if tensorboard_log else None,
            seed=config.seed,
            device=device,
            verbose=0,
            **_algorithm_kwargs(config),
        )
    except MmrlError:
        raise
    except (ValueError, KeyError, TypeError, AssertionError) as err:
        # Unknown fusion/encoder names and keyword arguments surface here, from the
        # extractor's constructor: one line naming the recipe instead of a traceback.
        raise ConfigError(
            f"agent {config.agent_name!r}: cannot build its model: {one_line(err)}"
        ) from None


def _algorithm_kwargs(config: RunConfig) -> dict[str, Any]:
    """The hyperparameters ``agent.algo``'s constructor takes besides the shared ones."""
    ppo, off, algo = config.agent.ppo, config.agent.off_policy, config.agent.algo
    if algo in ("ppo", "recurrent-ppo", "a2c"):
        kwargs: dict[str, Any] = {
            "n_steps": ppo.n_steps,
            "gae_lambda": ppo.gae_lambda,
            "ent_coef": ppo.ent_coef,
            "vf_coef": ppo.vf_coef,
            "max_grad_norm": ppo.max_grad_norm,
        }
        if algo != "a2c":
            kwargs.update(
                batch_size=ppo.batch_size,
                n_epochs=ppo.n_epochs,
                clip_range=ppo.clip_range,
                target_kl=ppo.target_kl,
            )
        return kwargs
    kwargs = {
        "buffer_size": off.buffer_size,
        "learning_starts": off.learning_starts,
        "batch_size": off.batch_size,
        "gradient_steps": off.gradient_steps,
    }
    # Unset: the algorithm's own default (DQN: hard target copies every 4 steps; SAC: Polyak
    # averaging with tau 0.005 after every step).
    kwargs.update({k: v for k, v in (("tau", off.tau), ("train_freq", off.train_freq)) if v})
    if algo == "dqn":
        kwargs.update(
            target_update_interval=off.target_update_interval,
            exploration_fraction=off.exploration_fraction,
            exploration_final_eps=off.exploration_final_eps,
        )
    else:
        kwargs["ent_coef"] = off.ent_coef
    return kwargs
