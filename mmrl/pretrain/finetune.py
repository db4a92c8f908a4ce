"""Fine-tuning PPO from an encoder checkpoint (``mmrl train --init-from enc.pt``).

* :func:`check_init` refuses an incompatible checkpoint before the run folder is touched,
  naming what differs (fusion, widths, an encoder, a key's space, the action space...).
* :func:`load_pretrained` copies the weights into the policy's features extractor(s) — the
  actor's and the critic's when ``share_features_extractor=False`` — and, with
  ``init_policy_head``, the BC head into ``mlp_extractor.policy_net`` and ``action_net``
  (``recurrent-ppo``: and the actor LSTM, pretrained on whole episodes, into ``lstm_actor``;
  a feed-forward head into a skip policy's feature columns, :mod:`mmrl.recurrent`)
  (``log_std`` keeps PPO's initial value: BC's is fitted to a near-deterministic expert and
  would collapse exploration).
* :class:`FreezeEncodersCallback` keeps the extractor(s) frozen for the first env steps (the
  heads adapt to the pretrained features before the features move, as in "linear probing
  then fine-tuning", Kumar et al. 2022) and afterwards scales the extractor's learning rate.

The learning-rate scale is applied around the optimizer step (step pre/post hooks) rather
than as a second parameter group: SB3 resets every group's ``lr`` from its schedule before
each update, and a second group would change the optimizer state layout that ``--resume``
reloads. Adam's (and SGD's) update is linear in the learning rate for given moment
estimates, so scaling the extractor's parameter change by ``s`` after the step is exactly
an update with learning rate ``s * lr``.
"""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from mmrl.checkpoint import CheckpointError
from mmrl.config import ConfigError, InitConfig, RunConfig
from mmrl.errors import one_line
from mmrl.pretrain.checkpoint import (
    build_policy,
    extractor_differences,
    head_config,
    head_differences,
    load_encoder_checkpoint,
)


def validate_init(init: InitConfig) -> None:
    """Range checks of ``agent.init`` (raises :class:`ConfigError`)."""
    if init.freeze_encoders_steps < 0:
        raise ConfigError(f"--freeze-encoders must be >= 0, got {init.freeze_encoders_steps}")
    if init.critic_warmup_steps < 0:
        raise ConfigError(f"--critic-warmup must be >= 0, got {init.critic_warmup_steps}")
    if init.critic_warmup_steps > 0 and init.path is not None and not init.init_policy_head:
        raise ConfigError(
            "--critic-warmup keeps the loaded policy fixed while the critic learns: it needs "
            "--init-policy-head (a fresh policy has nothing to keep)"
        )
    if not init.encoder_lr_scale > 0:
        raise ConfigError(
            f"--encoder-lr-scale must be > 0, got {init.encoder_lr_scale} (to keep the "
            "encoders fixed use --freeze-encoders STEPS)"
        )
    if init.path is None:
        used = [
            flag
            for flag, on in (
                ("--freeze-encoders", init.freeze_encoders_steps > 0),
                ("--encoder-lr-scale", init.encoder_lr_scale != 1.0),
                ("--init-policy-head", init.init_policy_head),
                ("--critic-warmup", init.critic_warmup_steps > 0),
            )
            if on
        ]
        if used:
            raise ConfigError(f"{', '.join(used)} need(s) --init-from ENCODER.pt")


def policy_extractors(policy: Any) -> list[Any]:
    """The distinct features extractors of an SB3 actor-critic policy (1 shared, or 2)."""
    found: list[Any] = []
    for name in ("pi_features_extractor", "vf_features_extractor", "features_extractor"):
        module = getattr(policy, name, None)
        if module is not None and all(module is not m for m in found):
            found.append(module)
    return found


def _fail(option: str, path: str, what: str, diffs: list[str]) -> CheckpointError:
    shown = "; ".join(diffs[:8]) + (f"; ... ({len(diffs) - 8} more)" if len(diffs) > 8 else "")
    return CheckpointError(f"{option} {path}: {what}: {shown}")


def check_compatible(
    checkpoint: dict[str, Any], policy: Any, config: RunConfig, option: str = "--init-from"
) -> None:
    """Raises :class:`CheckpointError` naming what differs between checkpoint and policy
    (``option``: the command-line option that named the checkpoint, for the message)."""
    path = str(config.agent.init.path)
    for extractor in policy_extractors(policy):
        diffs = extractor_differences(checkpoint, extractor)
        if diffs:
            raise _fail(option, path, "the checkpoint's extractor does not fit this policy", diffs)
    if config.agent.init.init_policy_head:
        diffs = head_differences(checkpoint, head_config(config), policy.action_space)
        if diffs:
            what = "the BC head does not fit this policy (--init-policy-head)"
            raise _fail(option, path, what, diffs)


def check_init(config: RunConfig) -> dict[str, Any] | None:
    """Validates ``agent.init`` against the run's env and recipe before anything is written.

    Builds one environment copy for its spaces and the policy PPO would build, then compares.

    Returns:
        The loaded checkpoint, or ``None`` without ``agent.init.path``.
    """
    init = config.agent.init
    validate_init(init)
    if init.path is None:
        return None
    checkpoint = load_encoder_checkpoint(init.path)
    # Load it into the policy PPO would build: a checkpoint whose layout matches but whose
    # tensors do not fails here, before the run folder exists (issue 15).
    load_pretrained_policy(env_policy(config), config, checkpoint=checkpoint)
    return checkpoint


def env_policy(config: RunConfig) -> Any:
    """The (untrained) policy PPO would build for the run's environment and recipe."""
    from mmrl.data.dataset import policy_observation_space
    from mmrl.pretrain.resolve import env_spaces

    obs_space, action_space = env_spaces(config)
    return build_policy(policy_observation_space(obs_space), action_space, config)


def load_pretrained(model: Any, config: RunConfig, verbose: int = 0) -> dict[str, Any] | None:
    """Loads ``config.agent.init.path`` into a fresh SB3 model's policy.

    Args:
        model: An SB3 on-policy model (``model.policy`` an actor-critic policy).
        config: The run config (``agent.init`` and the head layout).
        verbose: 1 prints one line saying what was loaded.

    Returns:
        The checkpoint's ``info`` (objectives, dataset...), or ``None`` without a path.

    Raises:
        CheckpointError: Unreadable or incompatible checkpoint, naming what differs.
    """
    return load_pretrained_policy(model.policy, config, verbose)


def load_pretrained_policy(
    policy: Any,
    config: RunConfig,
    verbose: int = 0,
    option: str = "--init-from",
    checkpoint: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """:func:`load_pretrained` for an SB3 actor-critic policy without its algorithm
    (``option``: the command-line option that named the checkpoint, for error messages;
    ``checkpoint``: ``agent.init.path`` already read with :func:`load_encoder_checkpoint`)."""
    init = config.agent.init
    validate_init(init)
    if init.path is None:
        return None
    if checkpoint is None:
        checkpoint = load_encoder_checkpoint(init.path, option)
    check_compatible(checkpoint, policy, config, option)
    device = policy.device
    state = {k: v.to(device) for k, v in checkpoint["extractor"].items()}
    try:
        extractors = policy_extractors(policy)
        for extractor in extractors:
            extractor.load_state_dict(state)
        if init.init_policy_head:
            head = checkpoint["head"]
            if "lstm" not in head and _is_skip(policy):
                # A feed-forward head into a skip policy: memory columns start at zero.
                from mmrl.recurrent import load_feedforward_head

                load_feedforward_head(policy, head)
            else:
                policy.mlp_extractor.policy_net.load_state_dict(head["policy_net"])
                policy.action_net.load_state_dict(head["action_net"])
            if "lstm" in head:  # recurrent-ppo, pretrained on whole episodes
                policy.lstm_actor.load_state_dict(head["lstm"])
                if getattr(policy, "lstm_critic", None) is not None:
                    # A separate critic LSTM starts from the actor's: the same memory (of the
                    # named car, say) is what the value needs, and random weights forget it.
                    policy.lstm_critic.load_state_dict(head["lstm"])
    except (RuntimeError, KeyError, TypeError) as err:  # torch's shape / key mismatches
        raise CheckpointError(f"{option} {init.path}: {one_line(err)}") from None
    if verbose:
        info = checkpoint.get("info", {})
        print(
            f"loaded pretrained extractor into {len(extractors)} extractor(s) from {init.path} "
            f"(objectives {info.get('objectives')}, dataset {info.get('dataset_id')})"
            + ("; BC policy head loaded" if init.init_policy_head else "")
            + (" with its LSTM" if init.init_policy_head and "lstm" in checkpoint["head"] else "")
        )
    return checkpoint.get("info", {})


def _is_skip(policy: Any) -> bool:
    """Whether ``policy`` is mmrl's :class:`~mmrl.recurrent.SkipLstmPolicy` (sb3-contrib is
    imported only for recurrent policies)."""
    if getattr(policy, "lstm_actor", None) is None:
        return False
    from mmrl.recurrent import SkipLstmPolicy

    return isinstance(policy, SkipLstmPolicy)


class FreezeEncodersCallback(BaseCallback):
    """Freezes the policy's extractor(s) for ``freeze_steps`` env steps, then scales their lr.

    The check runs at the end of each rollout, right before PPO's update: the update after a
    rollout that brings ``num_timesteps`` to at least ``freeze_steps`` is the first to change
    the extractor (so the freeze is rounded up to whole rollouts).

    A recurrent policy started from a recurrent checkpoint's head (``--init-policy-head``) has
    its pretrained LSTM(s) treated as encoders too (``memory=True``): what the LSTM learned to
    keep from whole episodes is a representation like the extractor's, and full-rate PPO
    updates wore it down (BENCHMARKS.md, "Memory", E12).

    Args:
        freeze_steps: Env steps during which the extractor receives no updates.
        lr_scale: Learning-rate multiplier of the extractor once unfrozen.
        verbose: 1 prints when the extractor is unfrozen.
        memory: Also freeze and scale the policy's LSTM(s) (``lstm_actor``, ``lstm_critic``).
    """

    def __init__(
        self, freeze_steps: int = 0, lr_scale: float = 1.0, verbose: int = 0, memory: bool = False
    ) -> None:
        super().__init__(verbose)
        self.freeze_steps = int(freeze_steps)
        self.lr_scale = float(lr_scale)
        self.memory = bool(memory)
        self.frozen = False
        self.unfrozen_at: int | None = None
        self._handles: list[Any] = []
        self._snapshot: list[tuple[th.nn.Parameter, th.Tensor]] = []

    def _params(self) -> list[th.nn.Parameter]:
        policy = self.model.policy
        modules = list(policy_extractors(policy))
        if self.memory:
            lstms = (getattr(policy, "lstm_actor", None), getattr(policy, "lstm_critic", None))
            modules += [m for m in lstms if m is not None]
        seen: dict[int, th.nn.Parameter] = {}
        for module in modules:
            for p in module.parameters():
                seen.setdefault(id(p), p)
        return list(seen.values())

    def _set_frozen(self, frozen: bool) -> None:
        for p in self._params():
            p.requires_grad_(not frozen)
        self.frozen = frozen

    def _on_training_start(self) -> None:
        if self.num_timesteps < self.freeze_steps:
            self._set_frozen(True)
        if self.lr_scale != 1.0 and not self._handles:
            optimizer = self.model.policy.optimizer
            params = self._params()

            def snapshot(*_: Any) -> None:
                self._snapshot = [(p, p.detach().clone()) for p in params if p.grad is not None]

            @th.no_grad()
            def rescale(*_: Any) -> None:
                for p, before in self._snapshot:
                    p.sub_(before).mul_(self.lr_scale).add_(before)
                self._snapshot = []

            self._handles = [
                optimizer.register_step_pre_hook(snapshot),
                optimizer.register_step_post_hook(rescale),
            ]

    def _on_rollout_end(self) -> None:
        if self.frozen and self.num_timesteps >= self.freeze_steps:
            self._set_frozen(False)
            self.unfrozen_at = self.num_timesteps
            if self.verbose:
                print(f"encoders unfrozen at {self.num_timesteps} steps")
        self.logger.record("train/encoders_frozen", float(self.frozen))

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def critic_parameters(policy: Any) -> list[th.nn.Parameter]:
    """Parameters only the critic uses: the value head, the critic's half of the MLP, and a
    features extractor or LSTM of its own (``share_features_extractor=False``, sb3-contrib's
    ``lstm_critic`` / ``critic``); shared modules are the actor's too and are not listed."""
    mlp = getattr(policy, "mlp_extractor", None)
    names = ("value_net", "vf_features_extractor", "lstm_critic", "critic")
    modules = [getattr(policy, name, None) for name in names]
    modules.append(getattr(mlp, "value_net", None))
    if getattr(policy, "share_features_extractor", True):
        modules[1] = None  # the same module as the actor's extractor
    seen: dict[int, th.nn.Parameter] = {}
    for module in modules:
        if isinstance(module, th.nn.Module):
            for p in module.parameters():
                seen.setdefault(id(p), p)
    return list(seen.values())


class CriticWarmupCallback(BaseCallback):
    """Only the critic learns during the first ``steps`` env steps of fine-tuning.

    PPO's first updates after ``--init-policy-head`` use advantages from a randomly
    initialized value head: noise that can move a good pretrained policy a long way (a
    Navigation-v1 run fell from 44 % success at its first evaluation to 6-19 % by 200k steps
    and ended at 26 %; with a 50k warm-up the same run ended at 70 %, BENCHMARKS.md).
    During the warm-up every update's gradients of the other parameters are dropped before
    the optimizer step (so Adam keeps no state for them either); the rollouts still come
    from the loaded policy, which the critic learns to value. ``requires_grad`` is left
    alone, so :class:`FreezeEncodersCallback` composes.

    Args:
        steps: Env steps of warm-up (updates after rollouts that end at or before it).
        verbose: 1 prints when the warm-up ends.
    """

    def __init__(self, steps: int, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.steps = int(steps)
        self.active = False
        self.ended_at: int | None = None
        self._warmed = False  # some update of this process was the critic's only
        self._handle: Any = None
        self._others: list[th.nn.Parameter] = []

    def _on_training_start(self) -> None:
        policy = self.model.policy
        critic = {id(p) for p in critic_parameters(policy)}
        self._others = [p for p in policy.parameters() if id(p) not in critic]
        self.active = self.num_timesteps < self.steps
        if self._handle is None:

            def drop_policy_gradients(*_: Any) -> None:
                if self.active:
                    for p in self._others:
                        p.grad = None

            self._handle = policy.optimizer.register_step_pre_hook(drop_policy_gradients)

    def _on_rollout_end(self) -> None:
        # Called after the rollout, before the update that learns from it.
        self.active = self.num_timesteps <= self.steps
        if self.active:
            self._warmed = True
        elif self._warmed and self.ended_at is None:
            self.ended_at = self.num_timesteps
            if self.verbose:
                print(f"critic warm-up ended at {self.num_timesteps} steps")
        self.logger.record("train/critic_warmup", float(self.active))

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def init_callbacks(init: InitConfig, algo: str = "ppo") -> list[BaseCallback]:
    """Callbacks ``mmrl train`` adds for ``agent.init`` (empty when nothing to do); for a
    ``recurrent-ppo`` policy whose head (and so LSTM) is loaded, the LSTM counts as an encoder."""
    if init.path is None:
        return []
    callbacks: list[BaseCallback] = []
    if init.freeze_encoders_steps > 0 or init.encoder_lr_scale != 1.0:
        memory = algo == "recurrent-ppo" and init.init_policy_head
        steps, scale = init.freeze_encoders_steps, init.encoder_lr_scale
        callbacks.append(FreezeEncodersCallback(steps, scale, memory=memory))
    if init.critic_warmup_steps > 0:
        callbacks.append(CriticWarmupCallback(init.critic_warmup_steps))
    return callbacks
