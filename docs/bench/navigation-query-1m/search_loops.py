"""How does a Navigation-v1 agent search when it never finds the named object? (issue 19)

The README recipe's trained-pair failures are mostly time-outs in which the named object is
never lit in the camera's view (``scripts/navigation_outcomes.py``, column ``timeout, never
lit``). This script rolls a policy over the same episodes as that script (seed 30000, 200
copies) and sorts every episode by how it ended (success, time-out never lit, time-out with
the target lit at some point, wrong stop), and reports per class, averaged over its
episodes:

* ``other_objects`` / ``other_lit``: the room's other objects, and how many of them were lit
  in view at least once;
* ``other_lightings``: how many times another object came into the light (an unlit -> lit
  change of one object counts once: a robot that goes back to an object it has already
  inspected lights it again);
* ``other_lit_steps``: steps with some other object lit;
* ``target_visible_steps``: steps with the named object in the line of sight (lit or in the
  dark beyond the lamp: the env's ``target_visible`` label);
* ``closest_to_target``: the robot's smallest distance to the named object's centre (m);
* ``steps``: episode length.

A policy without memory that inspects the same objects again and again, while the named one
stays in the dark, shows many ``other_lightings`` per object in the never-lit class.

    python docs/bench/navigation-query-1m/search_loops.py RUN [--split train]
        [--episodes 1200] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from mmrl.evaluation.rollouts import make_eval_vec_env
from mmrl.make import resolve_env
from mmrl.policies import load_policy
from mmrl.rollout import collect_episodes

ENV_ID = "mmrl/Navigation-v1"
CLASSES = ("success", "timeout, never lit", "timeout, target lit", "wrong stop")
N_ENVS = 200
SEED = 30000


def roll(ref: str, split: str, episodes: int) -> list[dict[str, Any]]:
    """One record per finished episode (see the module docstring), in completion order."""
    policy = load_policy(ref)
    config = getattr(policy, "env_config", None) or resolve_env("navigation")
    if config.env_id != ENV_ID:
        raise SystemExit(f"error: {ref} acts in {config.env_id}, not {ENV_ID}")
    venv = make_eval_vec_env(config, split, N_ENVS, SEED)
    sim = venv.unwrapped.sim
    policy.attach(venv)
    n, k = sim.lit_objects.shape
    rows = np.arange(n)
    # Per copy, this episode so far. The room is read at the first step (after the
    # evaluation's reset) and, for copies that auto-reset, from the step that ended one
    # episode: by then the simulator already holds the next room.
    state: dict[str, np.ndarray] = {}
    finished: list[deque[dict[str, Any]]] = [deque() for _ in range(n)]

    def start(idx: np.ndarray) -> None:
        state["objects"][idx] = sim.objects[idx]  # objects do not move within an episode
        state["valid"][idx] = sim.obj_valid[idx]
        state["target"][idx] = sim.target[idx]
        for key in ("lit_before", "lightings", "lit_steps", "target_lit", "visible", "steps"):
            state[key][idx] = 0
        state["closest"][idx] = np.inf

    def on_step(obs: Any, actions: Any, rewards: Any, infos: list[dict]) -> None:
        if not state:
            state.update(
                objects=np.zeros_like(sim.objects), valid=np.zeros((n, k), bool),
                target=np.zeros(n, np.int64),
                lit_before=np.zeros((n, k), bool), lightings=np.zeros((n, k), np.int64),
                lit_steps=np.zeros((n, k), np.int64), target_lit=np.zeros(n, bool),
                visible=np.zeros(n, np.int64),
                closest=np.zeros(n), steps=np.zeros(n, np.int64),
            )  # fmt: skip
            start(rows)
        done = np.array(["terminal_observation" in info for info in infos])
        # The simulator's arrays already show the next episode for the copies that ended,
        # so this step's lighting is counted for the others only (the labels in the infos
        # are the ending step's own, for every copy).
        going = ~done
        lit = sim.lit_objects
        state["lightings"][going] += lit[going] & ~state["lit_before"][going]
        state["lit_steps"][going] += lit[going]
        state["lit_before"][going] = lit[going]
        labels = [info["labels"] for info in infos]
        position = np.array([[lab["x"], lab["y"]] for lab in labels])
        state["visible"] += [lab["target_visible"] for lab in labels]
        # as navigation_outcomes.py counts "never lit": the ending step's label included
        state["target_lit"] |= [bool(lab["target_lit"]) for lab in labels]
        state["steps"] += 1
        target_xy = state["objects"][rows, state["target"]]
        distance = np.linalg.norm(position - target_xy, axis=1)
        state["closest"] = np.minimum(state["closest"], distance)
        for i in np.flatnonzero(done):
            info, target = infos[i], int(state["target"][i])
            others = state["valid"][i].copy()
            others[target] = False
            if info["is_success"]:
                outcome = "success"
            elif info.get("TimeLimit.truncated", False):
                ever_lit = state["target_lit"][i]
                outcome = "timeout, target lit" if ever_lit else "timeout, never lit"
            else:
                outcome = "wrong stop"
            finished[i].append({
                "outcome": outcome,
                "other_objects": int(others.sum()),
                "other_lit": int((state["lightings"][i] > 0)[others].sum()),
                "other_lightings": int(state["lightings"][i][others].sum()),
                "other_lit_steps": int((state["lit_steps"][i][others]).sum()),
                "target_visible_steps": int(state["visible"][i]),
                "closest_to_target": round(float(state["closest"][i]), 3),
                "steps": int(state["steps"][i]),
            })  # fmt: skip
        if done.any():
            start(np.flatnonzero(done))

    rolled = collect_episodes(
        policy.predict, venv, episodes, on_step=on_step, subset_rows=not policy.whole_batch
    )
    venv.close()
    return [finished[ep.env_index].popleft() for ep in rolled]


def summarize(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per outcome class: its share of episodes and the mean of every count."""
    summary = {}
    for name in CLASSES:
        chosen = [r for r in records if r["outcome"] == name]
        row: dict[str, float] = {"share": round(len(chosen) / len(records), 3)}
        for key in chosen[0] if chosen else ():
            if key != "outcome":
                row[key] = round(float(np.mean([r[key] for r in chosen])), 2)
        summary[name] = row
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="policy (run folder, model.zip, ...)")
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--episodes", type=int, default=1200)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    summary = summarize(roll(args.run, args.split, args.episodes))
    keys = list(max(summary.values(), key=len))  # a class with episodes has every count
    print(f"## {args.run} ({args.split} split, {args.episodes} episodes)")
    print("| episodes | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, row in summary.items():
        print(f"| {name} | " + " | ".join(f"{row.get(key, float('nan')):g}" for key in keys) + " |")
    if args.json:
        args.json.write_text(json.dumps({"run": args.run, "split": args.split, **summary}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
