"""``mmrl demo``: roll a policy out in one environment copy and draw its last observation.

Any env preset acts here, the adapter suites (MiniGrid/BabyAI, highway-env) included: the
policy comes from :func:`mmrl.policies.load_policy`, so it is the scripted expert where the
environment has one, uniform random actions, or a trained run, model or pretraining
checkpoint (issue 16: adapter presets used to be refused for lack of an expert).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmrl.commands.demo import DemoOptions
from mmrl.envs.frames import FrameSource, Scene, status_lines
from mmrl.make import make_training_vec_env, resolve_env
from mmrl.policies import find_expert, load_policy

__all__ = ["DemoSnapshot", "demo_snapshot"]


@dataclasses.dataclass(frozen=True)
class DemoSnapshot:
    """What :func:`demo_snapshot` drew.

    Attributes:
        frame: ``(H, W, 3)`` uint8 RGB image of the last observation: titled sensor panels
            (and the env's extra panels, e.g. Navigation's map with the path driven), the
            instruction, the last step's reward terms and outcome, the named state.
        instruction: The episode's instruction (``""`` where the environment has none).
        policy: The policy's label (``expert``, ``random``, a run folder's name, ...).
        steps: Steps taken (fewer than asked when the episode ended first).
        total_reward: Reward summed over those steps.
    """

    frame: np.ndarray
    instruction: str
    policy: str
    steps: int
    total_reward: float


def demo_snapshot(
    env: str,
    policy: str | None = None,
    steps: int = DemoOptions.steps,
    seed: int = DemoOptions.seed,
) -> DemoSnapshot:
    """Rolls ``policy`` out for up to ``steps`` steps and draws the last observation.

    Args:
        env: Env preset name/path or Gymnasium id.
        policy: A :func:`~mmrl.policies.load_policy` reference (``expert``, ``random``, a
            run folder, ``model.zip`` or ``encoder.pt``); ``None``: the expert where the
            environment has one, else ``random``.
        steps: Steps before the snapshot (the episode's end stops earlier); ``>= 0``.
        seed: Seed of the environment and of the random actions.

    Returns:
        The frame and what it shows.

    Raises:
        ConfigError: An unknown env, or ``expert`` asked of an env without one.
        CheckpointError: A policy file that cannot be loaded.
        SpaceMismatchError: A trained policy that does not fit the environment.
    """
    from mmrl.envs.visualize import compose_frame

    config = resolve_env(env)
    venv = make_training_vec_env(config, n_envs=1, seed=seed, monitor=False)
    try:
        if policy is None:
            policy = "expert" if find_expert(venv) is not None else "random"
        actor = load_policy(policy, env=config, seed=seed)
        actor.attach(venv, f"environment {config.env_id}")
        source = FrameSource(getattr(venv, "sim", None))
        obs = venv.reset()
        scenes: list[Scene | None] = [source.scene(0)]
        info = dict(venv.reset_infos[0]) if getattr(venv, "reset_infos", None) else {}
        total, taken = 0.0, 0
        episode_start = np.ones(1, dtype=bool)
        for _ in range(steps):
            action = actor.act(obs, episode_start)
            obs, rewards, dones, infos = venv.step(action)
            info = {**info, **infos[0]}
            total += float(rewards[0])
            taken += 1
            episode_start = np.asarray(dones, dtype=bool)
            if dones[0]:
                # The VecEnv already reset this copy: draw the episode's final observation
                # (its map shows the scene one step before, the last one read).
                obs = {k: np.asarray(v)[None] for k, v in info["terminal_observation"].items()}
                break
            scenes.append(source.scene(0))
    finally:
        venv.close()
    if not isinstance(obs, dict):  # a plain Gymnasium id: its one array, listed as state
        obs = {"state": obs}
    single = {key: np.asarray(value)[0] for key, value in obs.items()}
    instruction = str(info.get("instruction", ""))
    lines = [
        f"{actor.label}: {taken} steps, return so far {total:+.2f}",
        *status_lines(
            info.get("rewards"), bool(info.get("is_success")), bool(info.get("collision"))
        ),
    ]
    frame = compose_frame(single, instruction, lines, source.spec, source.panels(scenes))
    return DemoSnapshot(frame, instruction, actor.label, taken, total)
