"""Expert guidance: an imitation loss on the states the agent itself visits.

mmrl's simulators have a scripted expert that acts from every copy's true state, so the
expert's action is known for each state a training rollout visits — including the states
behaviour cloning never saw, which is DAgger's remedy for compounding errors (Ross, Gordon
and Bagnell 2011). :class:`ExpertGuidanceCallback` records the expert's action for every
observation of a rollout and, after the algorithm's own update on that rollout, makes
``agent.guidance.epochs`` minibatch passes minimizing

* discrete actions: ``weight * -log pi(a_expert | s)`` (cross-entropy to the expert),
* continuous actions: ``weight * |mean(s) - a_expert|^2`` (the policy's mean; its log-std
  stays the algorithm's, as fitting it to a deterministic expert would end exploration),

with the weight falling linearly to 0 over ``decay_steps`` env steps (0: constant), as in
kickstarting (Schmitt et al. 2018). The RL objective then improves on the expert where its
rewards say so, while the guidance keeps the policy near the expert's behaviour.

Why a separate pass instead of a term inside PPO's loss: SB3's ``PPO.train`` computes its
loss inside one long method, so adding a term would mean copying it; a pass after the update
leaves SB3's algorithms untouched, works for PPO and A2C alike, and keeps the next rollout
fully on-policy (it is collected after both updates). It shares the policy's optimizer (and
so its learning rate, gradient clipping and the encoder learning-rate hooks of
``mmrl.pretrain.finetune``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback

from mmrl.config import GuidanceConfig
from mmrl.envs.vec_env import find_expert
from mmrl.errors import ConfigError


class ExpertGuidanceCallback(BaseCallback):
    """Adds the expert-imitation pass of :mod:`mmrl.guidance` to an on-policy algorithm.

    Args:
        guidance: The weight, its decay and the passes per rollout.
        batch_size: Minibatch size of the pass (the algorithm's).
        max_grad_norm: Gradient-norm clip of the pass (the algorithm's).

    Logs ``guidance/weight``, ``guidance/loss`` (the unweighted loss) and
    ``guidance/agreement`` (discrete: the fraction of states where the policy's greedy action
    is the expert's; continuous: minus the mean squared distance of the mean to it), averaged
    over the first pass, whose minibatches meet the policy the algorithm has just updated.

    Raises:
        ConfigError: At the start of training, when the training env has no scripted expert
            (:func:`check_guidance` says so earlier, before a run folder is written).
    """

    def __init__(self, guidance: GuidanceConfig, batch_size: int, max_grad_norm: float) -> None:
        super().__init__()
        self.guidance = guidance
        self.batch_size = batch_size
        self.max_grad_norm = max_grad_norm
        self._expert: Any = None
        self._labels: list[np.ndarray] = []
        self._carried: np.ndarray | None = None  # the label of the next rollout's first state
        self._pending: tuple[dict[str, np.ndarray] | np.ndarray, np.ndarray] | None = None

    def weight(self, step: int) -> float:
        """The guidance weight after ``step`` env steps."""
        g = self.guidance
        if g.decay_steps <= 0:
            return g.weight
        return g.weight * max(0.0, 1.0 - step / g.decay_steps)

    def _init_callback(self) -> None:
        self._expert = _expert_of(self.training_env)

    def _on_rollout_start(self) -> None:
        self._fit_pending()
        # The env's state is that of the rollout's first observation (the model's _last_obs):
        # labelled by the previous rollout's last step, or asked for on the first rollout.
        first = self._carried if self._carried is not None else self._expert()
        self._labels, self._carried = [first], None

    def _on_step(self) -> bool:
        # After each step the env holds the next observation's state (reset copies included).
        self._labels.append(self._expert())
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        n = buffer.buffer_size  # steps per copy; the last label belongs to the next rollout
        labels = np.stack(self._labels[:n])
        self._carried = self._labels[n] if len(self._labels) > n else None
        obs = buffer.observations
        # Copied: the buffer is refilled (and flattened in place by some SB3 versions) before
        # the pass runs, after the algorithm's update.
        kept = {k: v.copy() for k, v in obs.items()} if isinstance(obs, dict) else obs.copy()
        self._pending = (kept, labels)

    def _on_training_end(self) -> None:
        self._fit_pending()

    def _fit_pending(self) -> None:
        if self._pending is None:
            return
        obs, labels = self._pending
        self._pending = None
        weight = self.weight(self.num_timesteps)
        self.logger.record("guidance/weight", weight)
        if weight <= 0:
            return
        loss, agreement = self._fit(obs, labels, weight)
        self.logger.record("guidance/loss", loss)
        self.logger.record("guidance/agreement", agreement)

    def _fit(
        self, obs: dict[str, np.ndarray] | np.ndarray, labels: np.ndarray, weight: float
    ) -> tuple[float, float]:
        """The minibatch passes; returns the first pass's mean loss and agreement."""
        policy = self.model.policy
        discrete = isinstance(policy.action_space, spaces.Discrete)
        flat_obs = (
            {k: v.reshape(-1, *v.shape[2:]) for k, v in obs.items()}
            if isinstance(obs, dict)
            else obs.reshape(-1, *obs.shape[2:])
        )
        flat_labels = labels.reshape(-1, *labels.shape[2:])
        total = len(flat_labels)
        policy.set_training_mode(True)
        losses: list[float] = []
        agreements: list[float] = []
        for epoch in range(self.guidance.epochs):
            order = th.randperm(total).numpy()
            for start in range(0, total, self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = (
                    {k: th.as_tensor(v[idx], device=policy.device) for k, v in flat_obs.items()}
                    if isinstance(flat_obs, dict)
                    else th.as_tensor(flat_obs[idx], device=policy.device)
                )
                target = th.as_tensor(flat_labels[idx], device=policy.device)
                dist = policy.get_distribution(batch)
                if discrete:
                    target = target.long()
                    loss = -dist.log_prob(target).mean()
                    agree = (dist.mode() == target).float().mean()
                else:
                    mean = dist.distribution.mean
                    loss = (mean - target.float()).pow(2).sum(-1).mean()
                    agree = -loss.detach()
                policy.optimizer.zero_grad()
                (weight * loss).backward()
                th.nn.utils.clip_grad_norm_(policy.parameters(), self.max_grad_norm)
                policy.optimizer.step()
                if epoch == 0:
                    losses.append(float(loss.detach()))
                    agreements.append(float(agree))
        policy.set_training_mode(False)
        return float(np.mean(losses)), float(np.mean(agreements))


def _expert_of(venv: Any) -> Any:
    expert = find_expert(venv)
    if expert is None:
        raise ConfigError(
            "agent.guidance.weight > 0 needs an environment with a scripted expert (mmrl's "
            "own Driving and Navigation envs); this one has none"
        )
    return expert


def check_guidance(config: Any, venv: Any) -> None:
    """Raises :class:`~mmrl.errors.ConfigError` when the run asks for guidance and its
    training env ``venv`` has no scripted expert."""
    if config.agent.guidance.weight > 0:
        _expert_of(venv)


def guidance_callbacks(config: Any) -> list[BaseCallback]:
    """The run's :class:`ExpertGuidanceCallback` (a list of one), or ``[]`` when
    ``agent.guidance.weight`` is 0. Its minibatches are ``agent.ppo.batch_size`` (A2C too)."""
    agent = config.agent
    if agent.guidance.weight <= 0:
        return []
    return [ExpertGuidanceCallback(agent.guidance, agent.ppo.batch_size, agent.ppo.max_grad_norm)]
