"""How do a Driving agent's named-car episodes end? (issue 19: ``overtake`` and ``follow``)

Rolls each policy on ``mmrl/Driving-v1`` episodes of one named-car task (the env preset its
run records, e.g. stacked camera frames, with ``tasks`` set to that task; its held-out
instructions with ``--split test``) and sorts every
finished episode by how it ended, read from the privileged labels of its last step:

* ``overtake``: ``success``; ``collision before passing`` / ``collision after passing``
  (passing = the ego has been at least 6 m ahead of the named car); ``off road or exit``;
  ``never passed``; ``passed, wrong lane`` (not in the named car's lane at the decision
  point: the lane to pull into is out of the camera's sight by then); ``passed, outside
  the band`` (its lane, but not 6-30 m ahead of it).
* ``follow``: ``success``; ``collision``; ``off road or exit``; ``wrong lane``;
  ``outside the band`` (its lane, but not 8-30 m behind it).

A policy that fails for want of memory fails as ``passed, wrong lane``; one that cannot pass
as ``never passed`` or ``collision before passing``.

    python scripts/car_task_outcomes.py RUN [RUN ...] [--task overtake] [--episodes 200]
        [--split train] [--envs 32] [--seed 20000] [--json OUT]

RUN is anything ``mmrl.policies.load_policy`` reads (run folder, model.zip, checkpoint,
``expert``, ``random``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from mmrl.config import EnvConfig
from mmrl.envs.driving.tasks import OVERTAKE_GAP
from mmrl.evaluation.rollouts import make_eval_vec_env
from mmrl.make import resolve_env
from mmrl.policies import load_policy
from mmrl.rollout import collect_episodes

TASKS = ("overtake", "follow")
OUTCOMES = {
    "overtake": (
        "success",
        "collision before passing",
        "collision after passing",
        "off road or exit",
        "never passed",
        "passed, wrong lane",
        "passed, outside the band",
    ),
    "follow": ("success", "collision", "off road or exit", "wrong lane", "outside the band"),
}


def outcome(task: str, success: bool, collision: bool, off_road: bool, passed: bool, labels):
    """The outcome class of one finished episode (see the module docstring).

    Args:
        task: ``"overtake"`` or ``"follow"``.
        success: ``info["is_success"]`` of the last step.
        collision: ``info["collision"]`` of the last step.
        off_road: The ego left the road or took the exit.
        passed: The ego was at least ``OVERTAKE_GAP[0]`` ahead of the named car at some step.
        labels: ``info["labels"]`` of the last step (``target_lane_offset``,
            ``target_distance``: the named car's distance ahead, negative once passed).
    """
    if success:
        return "success"
    if task == "overtake":
        if collision:
            return "collision after passing" if passed else "collision before passing"
        if off_road:
            return "off road or exit"
        if not passed:
            return "never passed"
        wrong = labels["target_lane_offset"] != 0
        return "passed, wrong lane" if wrong else "passed, outside the band"
    if collision:
        return "collision"
    if off_road:
        return "off road or exit"
    return "wrong lane" if labels["target_lane_offset"] != 0 else "outside the band"


def task_env_config(policy: Any, task: str, ref: str = "the policy") -> EnvConfig:
    """The policy's recorded env preset (sensor sizes, stacked frames; the ``driving``
    preset for policies that record none, e.g. ``expert``) with only ``task`` drawn."""
    config = getattr(policy, "env_config", None) or resolve_env("driving")
    if config.env_id != "mmrl/Driving-v1":
        raise SystemExit(f"error: {ref} acts in {config.env_id}, not mmrl/Driving-v1")
    return config.with_kwargs(tasks=[task])


def roll(ref: str, task: str, episodes: int, split: str, n_envs: int, seed: int) -> dict[str, Any]:
    """Outcome counts of ``episodes`` episodes of one policy, spread evenly over the copies
    (:func:`mmrl.rollout.collect_episodes`, so short episodes do not crowd out long ones)."""
    policy = load_policy(ref)
    venv = make_eval_vec_env(task_env_config(policy, task, ref), split, n_envs, seed)
    policy.attach(venv)
    # Whether each copy's running episode has passed the named car, and per copy the flags
    # of its finished episodes in order (collect_episodes keeps each copy's first ones).
    passing = np.zeros(n_envs, dtype=bool)
    finished: list[deque[bool]] = [deque() for _ in range(n_envs)]

    def on_step(obs: Any, actions: Any, rewards: Any, infos: list[dict]) -> None:
        for i, info in enumerate(infos):
            passing[i] |= info["labels"]["target_distance"] <= -OVERTAKE_GAP[0]
            if "terminal_observation" in info:
                finished[i].append(bool(passing[i]))
                passing[i] = False

    rolled = collect_episodes(
        policy.predict, venv, episodes, on_step=on_step, subset_rows=not policy.whole_batch
    )
    venv.close()
    counts: Counter[str] = Counter()
    for ep in rolled:
        passed = finished[ep.env_index].popleft()
        off_road = ep.reward_terms.get("off_road", 0.0) < 0 or (
            ep.labels["lane_index"] == ep.labels["n_lanes"]
        )
        counts[outcome(task, ep.success, ep.collision, off_road, passed, ep.labels)] += 1
    return {
        "policy": ref,
        "task": task,
        "split": split,
        "episodes": episodes,
        "counts": {name: counts[name] for name in OUTCOMES[task]},
        "fractions": {name: round(counts[name] / episodes, 3) for name in OUTCOMES[task]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="policies (run folder, model.zip, expert, ...)")
    parser.add_argument("--task", choices=TASKS, default="overtake")
    parser.add_argument("--episodes", type=int, default=200, help="episodes per policy")
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--envs", type=int, default=32, help="copies rolled at once")
    parser.add_argument("--seed", type=int, default=20000)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.envs < 1:
        parser.error("--episodes and --envs must be >= 1")
    th.set_num_threads(1)
    print(
        f"# car_task_outcomes {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC "
        f"{platform.node()} ({platform.machine()}): {args.task}, {args.split} split, "
        f"{args.episodes} episodes, seed {args.seed}"
    )
    rows = []
    for ref in args.runs:
        row = roll(ref, args.task, args.episodes, args.split, args.envs, args.seed)
        rows.append(row)
        parts = ", ".join(f"{k} {v:.2f}" for k, v in row["fractions"].items())
        print(f"{ref}: {parts}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
