"""The behaviour-cloning policy inside an encoder checkpoint, as a batched actor.

``mmrl pretrain`` with the ``bc`` objective saves the extractor and SB3's policy head. This
rebuilds the exact policy PPO would start from (same recipe, same ``--set`` overrides) so it
can act on its own: evaluated, or driven through states that the expert then relabels
(``mmrl collect --policy enc.pt --expert-labels``, one DAgger iteration).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmrl.checkpoint import CheckpointError
from mmrl.config import ConfigError, RunConfig

BCActor = Callable[..., np.ndarray]
"""``act(obs, episode_start=None)``: batched observations (env layout, channel-last images)
-> deterministic actions. A recurrent (``recurrent-ppo``) policy keeps its LSTM state from
call to call; ``episode_start`` (``(n,)`` bool, true where a copy's episode has just begun)
resets it per copy, as in SB3's ``predict``."""


def is_encoder_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` names a pretraining checkpoint (a ``.pt`` file) rather than a run."""
    return Path(path).suffix == ".pt"


def load_bc_policy(
    path: str | Path, env: str | None = None, option: str = "--policy"
) -> tuple[BCActor, Any, RunConfig]:
    """Rebuilds the BC policy of an encoder checkpoint.

    Args:
        path: Checkpoint written by ``mmrl pretrain`` with the ``bc`` objective.
        env: Env preset to act in (default: the one the checkpoint was pretrained for).
        option: The command-line option that named ``path``, for error messages.

    Returns:
        ``(act, policy, config)``: ``act`` maps a batch of observations (a dict of arrays,
        first axis the copies) to deterministic actions; ``policy`` is the SB3
        ``MultiInputActorCriticPolicy`` (on CPU, eval mode); ``config`` the run config it was
        built from.

    Raises:
        CheckpointError: Unreadable checkpoint, no BC head, or weights that do not fit the
            recipe any more (naming what differs).
        ConfigError: No environment recorded and none given, or an unknown preset/recipe.
    """
    from mmrl.config import resolve_run_config
    from mmrl.pretrain.checkpoint import load_encoder_checkpoint
    from mmrl.pretrain.finetune import env_policy, load_pretrained_policy
    from mmrl.pretrain.resolve import env_preset_for

    checkpoint = load_encoder_checkpoint(path, option)
    if not checkpoint.get("head"):
        raise CheckpointError(
            f"{option} {path}: the checkpoint has no BC policy head (pretrained without the "
            "'bc' objective); pretrain with --objectives bc,... to act with it"
        )
    info = checkpoint.get("info", {})
    env_name = env or info.get("env")
    if not env_name:
        raise ConfigError(f"{option} {path}: the checkpoint records no environment; pass --env")
    items = [
        *info.get("overrides", []),
        f"agent.init.path={json.dumps(str(path))}",
        "agent.init.init_policy_head=true",
    ]
    config = resolve_run_config(env_preset_for(env_name), info.get("agent", ""), items)
    policy = env_policy(config)
    load_pretrained_policy(policy, config, option=option, checkpoint=checkpoint)
    policy.set_training_mode(False)

    memory: dict[str, Any] = {"state": None}  # a recurrent policy's LSTM state between calls

    def act(obs: dict[str, np.ndarray], episode_start: np.ndarray | None = None) -> np.ndarray:
        # SB3's predict transposes channel-last images to the policy's layout itself.
        action, memory["state"] = policy.predict(
            obs, memory["state"], episode_start, deterministic=True
        )
        return np.asarray(action)

    return act, policy, config
