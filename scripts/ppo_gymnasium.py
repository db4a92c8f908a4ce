"""PPO in plain PyTorch on mmrl's Gymnasium vector API: no Stable-Baselines3 algorithm.

A single readable file in the style of CleanRL's ``ppo.py`` (Huang et al. 2022, "The 37
Implementation Details of PPO"), to show that mmrl's environments and networks work in any
training loop: ``gym.make_vec`` gives one batched simulator behind Gymnasium's ``VectorEnv``,
and :class:`mmrl.MultimodalExtractor` (per-modality encoders + a fusion; a plain
``torch.nn.Module``) turns the ``camera``/``lidar``/``text``/``state`` observation into one
feature vector for the actor and critic heads defined here.

The vector env autoresets in the same step (``envs.metadata["autoreset_mode"]``): an
observation after ``terminated | truncated`` already belongs to the next episode, so a done
flag cuts the advantage recursion, and a truncated episode is bootstrapped from its last
observation in ``infos["final_obs"]`` (Pardo et al. 2018, "Time Limits in RL").

Usage::

    python scripts/ppo_gymnasium.py --env mmrl/Navigation-v1 --steps 200000 --fusion attention
    python scripts/ppo_gymnasium.py --env mmrl/DrivingContinuous-v1 --env-kwarg camera_size=48
"""

from __future__ import annotations

import argparse
import collections
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
import yaml
from gymnasium import spaces
from torch import nn
from torch.distributions import Categorical, Normal

import mmrl


class Agent(nn.Module):
    """Actor-critic over :class:`mmrl.MultimodalExtractor` features.

    Args:
        observation_space: One copy's ``spaces.Dict`` (``envs.single_observation_space``).
        action_space: One copy's ``Discrete`` or 1-D ``Box`` action space.
        fusion: A registered fusion name (``concat``, ``attention``, ...).
        features_dim: Width of the fused features the heads read.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        fusion: str,
        features_dim: int = 128,
    ) -> None:
        super().__init__()
        self.extractor = mmrl.MultimodalExtractor(
            observation_space, features_dim=features_dim, fusion=fusion
        )
        self.discrete = isinstance(action_space, spaces.Discrete)
        n_out = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.actor = nn.Sequential(nn.Linear(features_dim, 64), nn.Tanh(), nn.Linear(64, n_out))
        self.critic = nn.Sequential(nn.Linear(features_dim, 64), nn.Tanh(), nn.Linear(64, 1))
        # Small last layers: a near-uniform first policy and near-zero first values (CleanRL).
        nn.init.orthogonal_(self.actor[-1].weight, 0.01)
        nn.init.orthogonal_(self.critic[-1].weight, 1.0)
        if not self.discrete:
            self.log_std = nn.Parameter(th.zeros(n_out))

    def features(self, obs: dict[str, Any]) -> th.Tensor:
        """Raw batched observations (numpy or uint8/int tensors) -> ``(B, features_dim)``."""
        return self.extractor(self.extractor.preprocess(obs))

    def value(self, obs: dict[str, Any]) -> th.Tensor:
        """State values ``(B,)``."""
        return self.critic(self.features(obs)).squeeze(-1)

    def act(
        self, obs: dict[str, Any], action: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        """Samples (or scores the given) actions: ``(action, log_prob, entropy, value)``."""
        feats = self.features(obs)
        logits = self.actor(feats)
        if self.discrete:
            dist = Categorical(logits=logits)
            action = dist.sample() if action is None else action
            return action, dist.log_prob(action), dist.entropy(), self.critic(feats).squeeze(-1)
        dist = Normal(logits, self.log_std.exp().expand_as(logits))
        action = dist.sample() if action is None else action
        # The env clips continuous actions to its bounds; the log-prob is of the unclipped one.
        return (
            action,
            dist.log_prob(action).sum(-1),
            dist.entropy().sum(-1),
            self.critic(feats).squeeze(-1),
        )


def parse_env_kwargs(pairs: list[str]) -> dict[str, Any]:
    """``["camera_size=32", "continuous=true"]`` -> ``{"camera_size": 32, "continuous": True}``."""
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --env-kwarg takes KEY=VALUE, got {pair!r}")
        kwargs[key] = yaml.safe_load(value)
    return kwargs


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="mmrl/Navigation-v1", help="a registered mmrl id")
    parser.add_argument("--env-kwarg", action="append", default=[], help="KEY=VALUE, repeatable")
    parser.add_argument("--num-envs", type=int, default=16, help="copies in the vector env")
    parser.add_argument("--steps", type=int, default=200_000, help="total env steps")
    parser.add_argument("--num-steps", type=int, default=128, help="rollout length per copy")
    parser.add_argument("--fusion", default="concat", help="MultimodalExtractor fusion")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--gae-lambda", type=float, default=0.95)
    parser.add_argument("--clip", type=float, default=0.2)
    parser.add_argument("--ent-coef", type=float, default=0.01)
    parser.add_argument("--vf-coef", type=float, default=0.5)
    parser.add_argument("--max-grad-norm", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device of the networks")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)

    # --- seeding and the environment ------------------------------------------------------
    th.manual_seed(args.seed)
    th.set_num_threads(args.threads)
    device = th.device(args.device)
    envs = gym.make_vec(args.env, num_envs=args.num_envs, **parse_env_kwargs(args.env_kwarg))
    envs.action_space.seed(args.seed)
    agent = Agent(envs.single_observation_space, envs.single_action_space, args.fusion).to(device)
    optimizer = th.optim.Adam(agent.parameters(), lr=args.lr, eps=1e-5)

    # --- rollout storage: raw observations (uint8 camera, int64 tokens) -------------------
    T, N = args.num_steps, args.num_envs  # the time and copy axes of every buffer
    obs_buf = {
        key: np.zeros((T, N, *space.shape), dtype=space.dtype)
        for key, space in envs.single_observation_space.spaces.items()
    }
    act_shape = () if agent.discrete else envs.single_action_space.shape
    actions = th.zeros((T, N, *act_shape), dtype=th.long if agent.discrete else th.float32)
    logprobs, rewards, dones, values = (th.zeros((T, N)) for _ in range(4))

    obs, _ = envs.reset(seed=args.seed)
    returns_now = np.zeros(N)
    recent = collections.deque(maxlen=50)  # (return, success) of the last finished episodes
    updates = max(1, args.steps // (T * N))
    batch, minibatch = T * N, max(1, (T * N) // args.minibatches)
    start, stats = time.perf_counter(), {}
    for update in range(1, updates + 1):
        # --- collect T steps of N copies ----------------------------------------------------
        agent.eval()
        for t in range(T):
            for key in obs_buf:
                obs_buf[key][t] = obs[key]
            with th.no_grad():
                action, logprob, _, value = agent.act(obs)
            actions[t], logprobs[t], values[t] = action.cpu(), logprob.cpu(), value.cpu()
            obs, reward, terminated, truncated, infos = envs.step(action.cpu().numpy())
            done = terminated | truncated
            returns_now += reward
            if truncated.any():  # bootstrap time-limit ends from the episode's last observation
                idx = np.flatnonzero(truncated)
                final = {k: np.stack([infos["final_obs"][i][k] for i in idx]) for k in obs}
                with th.no_grad():
                    reward[idx] += args.gamma * agent.value(final).cpu().numpy()
            for i in np.flatnonzero(done):
                recent.append((returns_now[i], float(infos["final_info"]["is_success"][i])))
                returns_now[i] = 0.0
            rewards[t], dones[t] = th.as_tensor(reward), th.as_tensor(done, dtype=th.float32)

        # --- generalized advantage estimation (same-step autoreset: done cuts at t) ----------
        with th.no_grad():
            next_value = agent.value(obs).cpu()
        advantages, last = th.zeros((T, N)), th.zeros(N)
        for t in reversed(range(T)):
            following = next_value if t == T - 1 else values[t + 1]
            alive = 1.0 - dones[t]
            delta = rewards[t] + args.gamma * following * alive - values[t]
            last = delta + args.gamma * args.gae_lambda * alive * last
            advantages[t] = last
        returns = advantages + values

        # --- PPO update: clipped surrogate, value loss, entropy bonus -------------------------
        agent.train()
        flat_obs = {k: v.reshape(batch, *v.shape[2:]) for k, v in obs_buf.items()}  # numpy
        flat = [x.reshape(batch, *x.shape[2:]) for x in (actions, logprobs, advantages, returns)]
        b_actions, b_logprobs, b_adv, b_returns = flat
        for _ in range(args.epochs):
            for mb in th.randperm(batch).split(minibatch):
                mb_obs = {k: v[mb.numpy()] for k, v in flat_obs.items()}
                _, logprob, entropy, value = agent.act(mb_obs, b_actions[mb].to(device))
                adv = b_adv[mb].to(device)
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                ratio = (logprob - b_logprobs[mb].to(device)).exp()
                clipped = ratio.clamp(1 - args.clip, 1 + args.clip)
                policy_loss = -th.min(ratio * adv, clipped * adv).mean()
                value_loss = 0.5 * (value - b_returns[mb].to(device)).pow(2).mean()
                loss = policy_loss + args.vf_coef * value_loss - args.ent_coef * entropy.mean()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

        steps = update * batch
        stats = {
            "global_step": float(steps),
            "steps_per_second": steps / (time.perf_counter() - start),
            "train/policy_loss": policy_loss.item(),
            "train/value_loss": value_loss.item(),
            "train/entropy": entropy.mean().item(),
            "rollout/episodes": float(len(recent)),
            "rollout/ep_return": float(np.mean([r for r, _ in recent])) if recent else np.nan,
            "rollout/success": float(np.mean([s for _, s in recent])) if recent else np.nan,
        }
        print(
            f"step {steps:8d}  return {stats['rollout/ep_return']:7.3f}  success "
            f"{stats['rollout/success']:5.2f}  value loss {stats['train/value_loss']:.4f}  "
            f"entropy {stats['train/entropy']:.3f}  {stats['steps_per_second']:6.0f} steps/s",
            flush=True,
        )
    envs.close()
    return stats


if __name__ == "__main__":
    main()
