"""Options of ``mmrl train`` (:func:`mmrl.train.train`)."""

from __future__ import annotations

import dataclasses

from mmrl.commands.options import option
from mmrl.commands.progress import log_interval_option
from mmrl.commands.track import track_option, track_project_option
from mmrl.config import RunConfig

_INIT = "initialization from mmrl pretrain"
_GUIDE = "expert guidance (an imitation loss on the agent's own states, mmrl's envs)"


@dataclasses.dataclass(kw_only=True)
class TrainOptions:
    """``mmrl train``: PPO with a multimodal extractor from an env preset and a recipe.

    ``None`` means the run config decides (the preset's, the recipe's or
    :class:`~mmrl.config.RunConfig`'s default; a resumed run's ``config.yaml``).
    """

    env: str | None = option(
        None, help=f"env preset name or YAML path (default {RunConfig.env_name})"
    )
    agent: str | None = option(
        None, help=f"agent recipe name or YAML path (default {RunConfig.agent_name})"
    )
    steps: int | None = option(None, help="total environment steps", minimum=1)
    seed: int | None = option(None, help="run seed")
    n_envs: int | None = option(None, help="environment copies stepped together", minimum=1)
    n_workers: int | None = option(
        None,
        flag="--workers",
        aliases=("--n-workers",),
        metavar="K",
        help="processes stepping the copies, same results (default: the preset's, 1)",
        minimum=1,
    )
    device: str | None = option(None, help="auto (CUDA when present), cpu or cuda[:N]")
    out: str | None = option(None, help="run folder (default runs/<env>-<agent>-s<seed>-<time>)")
    overrides: list[str] = option(
        [],
        flag="--set",
        metavar="KEY=VALUE",
        help="override a config value, e.g. agent.ppo.learning_rate=1e-4",
    )
    resume: str | None = option(
        None, metavar="RUN_DIR", help="continue a run from its last checkpoint"
    )
    stop_success: float | None = option(
        None, metavar="RATE", help="stop at the first evaluation reaching this success rate"
    )
    stop_split: str | None = option(
        None,
        choices=("train", "test"),
        help="instruction split --stop-success watches (default train)",
    )
    force: bool = option(False, help="overwrite an existing run folder")
    quiet: bool = option(False, help="no progress bar or summary")
    log_interval: float = log_interval_option("one per evaluation")
    video_every: int | None = option(
        None,
        metavar="STEPS",
        minimum=1,
        help="record one episode of the current policy every STEPS steps to RUN/videos/ and "
        "TensorBoard",
    )
    track: str | None = track_option()
    track_project: str = track_project_option()
    init_from: str | None = option(
        None,
        group=_INIT,
        metavar="ENCODER.pt",
        help="load a pretrained extractor (agent.init.path)",
    )
    freeze_encoders: int | None = option(
        None,
        group=_INIT,
        metavar="STEPS",
        help="keep the loaded extractor (and a loaded LSTM) frozen for STEPS env steps",
    )
    encoder_lr_scale: float | None = option(
        None,
        group=_INIT,
        metavar="X",
        help="extractor (and loaded LSTM) lr multiplier after unfreezing, e.g. 0.1",
    )
    init_policy_head: bool = option(
        False, group=_INIT, help="also load the behaviour-cloning action head"
    )
    critic_warmup: int | None = option(
        None,
        group=_INIT,
        metavar="STEPS",
        help="with --init-policy-head: only the critic learns for the first STEPS env steps",
    )
    expert_guidance: float | None = option(
        None,
        group=_GUIDE,
        metavar="W",
        minimum=0.0,
        help="weight of the loss towards the scripted expert's actions (agent.guidance.weight)",
    )
    guidance_decay: int | None = option(
        None,
        group=_GUIDE,
        metavar="STEPS",
        minimum=0,
        help="env steps over which that weight falls to 0 (agent.guidance.decay_steps)",
    )
    label_guidance: float | None = option(
        None,
        group=_GUIDE,
        metavar="W",
        minimum=0.0,
        help="weight of an auxiliary loss predicting the env's privileged labels "
        "(agent.guidance.label_weight)",
    )
