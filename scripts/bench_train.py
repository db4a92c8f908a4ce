"""End-to-end PPO training throughput of mmrl's default recipe against two SB3 baselines.

Measured in one run (the machine is shared, so the ratios are what matters):
  mmrl   - `mmrl.train.build_model` with the default recipe (ppo-attention) on Driving-v0,
           batched vec env, 16 copies;
  ceiling - SB3 PPO with its CombinedExtractor on a zero-cost VecEnv with identical
           observation/action spaces and the same PPO settings: the learner's own limit;
  highway - SB3 PPO with CombinedExtractor on highway-env's highway-fast-v0 through mmrl's
           Dict adapter: what a user would otherwise run.
Bars: mmrl >= 0.7x ceiling, >= 10x highway.

    python scripts/bench_train.py [--steps 8192] [--highway-steps 1024] [--agent ppo-attention]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import numpy as np
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv

from mmrl.config import resolve_run_config
from mmrl.train import build_model, build_vec_env


class ZeroCostVecEnv(VecEnv):
    """Returns one pre-sampled observation batch forever: no simulation cost at all."""

    def __init__(self, observation_space, action_space, n_envs: int, horizon: int = 300):
        super().__init__(n_envs, observation_space, action_space)
        rng = np.random.default_rng(0)
        observation_space.seed(0)
        samples = [observation_space.sample() for _ in range(n_envs)]
        self._obs = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
        self._t = np.zeros(n_envs, dtype=np.int64)
        self._rewards = rng.normal(size=n_envs).astype(np.float32)
        self.horizon = horizon

    def reset(self):
        self._t[:] = 0
        return {k: v.copy() for k, v in self._obs.items()}

    def step_async(self, actions):
        pass

    def step_wait(self):
        self._t += 1
        dones = self._t >= self.horizon
        infos = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = {k: v[i] for k, v in self._obs.items()}
            infos[i]["TimeLimit.truncated"] = True
        self._t[dones] = 0
        return {k: v.copy() for k, v in self._obs.items()}, self._rewards, dones, infos

    def close(self):
        pass

    def get_attr(self, attr_name, indices=None):
        return [None] * self.num_envs

    def set_attr(self, attr_name, value, indices=None):
        pass

    def env_method(self, method_name, *args, indices=None, **kwargs):
        return [None] * self.num_envs

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * self.num_envs


def sb3_ppo(venv, config, seed: int) -> PPO:
    """SB3 PPO with the same settings as the recipe but SB3's default CombinedExtractor."""
    ppo = config.agent.ppo
    pol = config.agent.policy
    return PPO(
        "MultiInputPolicy",
        venv,
        learning_rate=ppo.learning_rate,
        n_steps=ppo.n_steps,
        batch_size=ppo.batch_size,
        n_epochs=ppo.n_epochs,
        gamma=ppo.gamma,
        gae_lambda=ppo.gae_lambda,
        clip_range=ppo.clip_range,
        ent_coef=ppo.ent_coef,
        policy_kwargs={"net_arch": {"pi": pol.pi, "vf": pol.vf}},
        seed=seed,
        device="cpu",
    )


def timed_learn(model, steps: int) -> float:
    model.learn(min(steps, model.n_steps * model.n_envs))  # warm-up: one rollout + update
    t0 = time.perf_counter()
    model.learn(steps, reset_num_timesteps=True)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8192)
    parser.add_argument("--highway-steps", type=int, default=1024)
    parser.add_argument("--agent", default="ppo-attention")
    parser.add_argument("--env", default="driving")
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--skip-highway", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (all learners)")
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    config = resolve_run_config(args.env, args.agent, steps=args.steps)
    config.env.n_envs = args.n_envs
    results: dict[str, float] = {}

    venv = build_vec_env(config, seed=0)
    results["mmrl"] = timed_learn(build_model(config, venv, th.device("cpu"), None), args.steps)
    ceiling_env = ZeroCostVecEnv(venv.observation_space, venv.action_space, args.n_envs)
    results["ceiling"] = timed_learn(sb3_ppo(ceiling_env, config, 0), args.steps)
    venv.close()

    if not args.skip_highway:
        from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

        from mmrl.adapters import make_highway

        hw = sb3_make_vec_env(lambda: make_highway("highway-fast-v0"), n_envs=args.n_envs)
        results["highway"] = timed_learn(sb3_ppo(hw, config, 0), args.highway_steps)

    print(f"# bench_train  {datetime.date.today()}  {platform.node()}  "
          f"{platform.machine()} cpus={os.cpu_count()} torch={th.__version__} threads="
          f"{th.get_num_threads()}")  # fmt: skip
    print(
        f"# command: python scripts/bench_train.py --steps {args.steps} --highway-steps "
        f"{args.highway_steps} --agent {args.agent} --env {args.env} --n-envs {args.n_envs} "
        f"--threads {args.threads}"
    )
    for name, rate in results.items():
        print(f"{name:<10} {rate:10.1f} env-steps/s")
    print(f"ratio mmrl/ceiling = {results['mmrl'] / results['ceiling']:.2f}  (bar >= 0.7)")
    if "highway" in results:
        print(f"ratio mmrl/highway = {results['mmrl'] / results['highway']:.1f}  (bar >= 10)")


if __name__ == "__main__":
    main()
