"""How do a Navigation agent's episodes end, per instruction group? (issue 19: held-out pairs)

Rolls each policy on ``mmrl/Navigation-v1`` episodes of one instruction split and sorts
every finished episode by how it ended, per target (colour, shape) pair:

* ``success``: stopped next to the named object;
* ``other candidate``: chose (stopped next to, or touched) another object the split could
  name, where not every object could be named: on the test split, the room's other
  held-out pair (on the train split every object is a candidate, so this never occurs);
* ``same colour`` / ``same shape``: chose another object sharing the target's colour /
  shape (and not a candidate);
* ``neither``: chose an object sharing neither;
* ``timeout``: chose nothing within the step limit.

The chosen object is the one nearest the robot's final position other than the target (the
env ends an episode without success only when the robot stops within reach of another
object, the nearest, or touches one).
A policy that cannot bind a colour word to a shape word fails as ``same colour`` or
``same shape``; one that does not find objects in the dark, as ``timeout``. The column
``timeout, never lit`` (part of ``timeout``) counts the time-outs in which the named object
was never lit in the camera's view (the env's ``target_lit`` label): a failed search, not a
failure to recognize the object once seen. The same counts follow per template kind (the
test split also phrases instructions with paraphrase templates the train split never uses,
whose words, such as "please" and "colored", training never showed the agent).

    python scripts/navigation_outcomes.py RUN [RUN ...] [--split test] [--episodes 300]
        [--envs 32] [--seed 30000] [--stochastic] [--no-memory] [--json OUT]

``--no-memory`` (a policy with ``agent.recurrent.skip_connection`` only) zeroes the weights
through which the actor reads its LSTM, so it acts from the features alone: what the memory
adds to each outcome (:func:`mmrl.recurrent.drop_memory`).

RUN is anything ``mmrl.policies.load_policy`` reads (run folder, model.zip, checkpoint,
``expert``, ``random``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import sys
from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from mmrl.envs.navigation.instructions import COLORS, SHAPES, TRAIN_TEMPLATES
from mmrl.evaluation.rollouts import make_eval_vec_env
from mmrl.make import resolve_env
from mmrl.policies import load_policy
from mmrl.rollout import collect_episodes

ENV_ID = "mmrl/Navigation-v1"
OUTCOMES = ("success", "other candidate", "same colour", "same shape", "neither", "timeout")
NEVER_LIT = "timeout, never lit"  # part of "timeout": the named object never lit in view
TRAIN_PHRASES = [
    re.compile(template.format(color=r"\w+", shape=r"\w+")) for template in TRAIN_TEMPLATES
]


def template_kind(instruction: str) -> str:
    """``"train templates"`` if a train-split template phrases ``instruction``, else
    ``"paraphrase templates"`` (the test split's own)."""
    if any(phrase.fullmatch(instruction) for phrase in TRAIN_PHRASES):
        return "train templates"
    return "paraphrase templates"


def summarize(counts: dict[str, Counter[str]], never_lit: Counter[str]) -> dict[str, Any]:
    """Outcome fractions (and the never-lit share) per group, from counts per group."""
    return {
        group: {
            "episodes": c.total(),
            "fractions": {k: round(c[k] / c.total(), 3) for k in OUTCOMES},
            NEVER_LIT: round(never_lit[group] / c.total(), 3),
        }
        for group, c in counts.items()
    }


def chosen_outcome(
    success: bool, timeout: bool, position: np.ndarray, room: dict[str, np.ndarray]
) -> str:
    """The outcome class of one finished episode (see the module docstring).

    Args:
        success: ``info["is_success"]`` of the last step.
        timeout: The episode was truncated at the step limit without a choice.
        position: ``(2,)`` the robot's final ``(x, y)`` (m).
        room: The episode's objects: ``xy (K, 2)`` float, ``color (K,)``, ``shape (K,)``
            int, ``valid (K,)``, ``candidate (K,)`` bool, and ``target`` (an index).
    """
    if success:
        return "success"
    if timeout:
        return "timeout"
    # An episode ends without success only at another object (stopped next to it, or
    # touched it): the nearest object other than the target.
    target = int(room["target"])
    distance = np.linalg.norm(room["xy"] - position, axis=1)
    distance[~room["valid"]] = np.inf
    distance[target] = np.inf
    chosen = int(distance.argmin())
    # On the test split only the held-out pairs are candidates; on the train split every
    # object is one, and a wrong choice is told apart by colour and shape alone.
    if room["candidate"][chosen] and not room["candidate"][room["valid"]].all():
        return "other candidate"
    if room["color"][chosen] == room["color"][target]:
        return "same colour"
    if room["shape"][chosen] == room["shape"][target]:
        return "same shape"
    return "neither"


def fail(message: str) -> SystemExit:
    """One line on stderr; the caller raises the returned exit (status 2)."""
    print(f"error: {message}", file=sys.stderr)
    return SystemExit(2)


def roll(
    ref: str,
    episodes: int,
    split: str,
    n_envs: int,
    seed: int,
    stochastic: bool = False,
    memory: bool = True,
) -> dict[str, Any]:
    """Outcome counts per target pair of ``episodes`` episodes of one policy
    (:func:`mmrl.rollout.collect_episodes`, spread evenly over the copies), greedy unless
    ``stochastic`` (actions sampled from the policy's distribution); ``memory=False``: a
    skip policy with its memory dropped (:func:`mmrl.recurrent.drop_memory`)."""
    policy = load_policy(ref)
    config = getattr(policy, "env_config", None) or resolve_env("navigation")
    if config.env_id != ENV_ID:
        raise fail(f"{ref} acts in {config.env_id}, not {ENV_ID}")
    if not memory:
        from mmrl.recurrent import drop_memory

        try:
            drop_memory(getattr(policy, "policy", None))
        except TypeError as err:
            raise fail(f"--no-memory: {ref}: {err}") from None
    venv = make_eval_vec_env(config, split, n_envs, seed)
    sim = venv.unwrapped.sim
    policy.attach(venv)

    def room_arrays() -> dict[str, np.ndarray]:
        """The simulator's per-copy room arrays (views, not copies)."""
        return {
            "xy": sim.objects, "color": sim.obj_color, "shape": sim.obj_shape,
            "valid": sim.obj_valid, "candidate": sim.obj_candidate, "target": sim.target,
        }  # fmt: skip

    # Objects do not move within an episode, so a copy's room is read once per episode:
    # kept from the step before it ended (the auto-reset has already replaced it in the
    # simulator by the time the step reports the end), refreshed for the copies that reset.
    rooms: dict[str, np.ndarray] = {}
    instructions: list[str] = []
    finished: list[deque[tuple[str, str, str, bool]]] = [deque() for _ in range(n_envs)]
    # Whether the named object has been lit in view so far this episode, per copy (an
    # episode's first observation never shows it lit: every object starts at least 2 m
    # away, beyond the 1.5 m lamp).
    lit = np.zeros(n_envs, dtype=bool)

    def on_step(obs: Any, actions: Any, rewards: Any, infos: list[dict]) -> None:
        if not rooms:  # first step: every copy is still in its first room
            rooms.update({key: value.copy() for key, value in room_arrays().items()})
            instructions.extend(sim.instructions())
        lit[:] |= [bool(info["labels"]["target_lit"]) for info in infos]
        done = [i for i, info in enumerate(infos) if "terminal_observation" in info]
        for i in done:
            info, room = infos[i], {key: value[i] for key, value in rooms.items()}
            labels = info["labels"]
            target = room["target"]
            pair = f"{COLORS[room['color'][target]]} {SHAPES[room['shape'][target]]}"
            timeout = bool(info.get("TimeLimit.truncated", False))
            position = np.array([labels["x"], labels["y"]], dtype=np.float64)
            outcome = chosen_outcome(info["is_success"], timeout, position, room)
            kind = template_kind(instructions[i])
            finished[i].append((pair, kind, outcome, outcome == "timeout" and not lit[i]))
        lit[done] = False
        for key, value in room_arrays().items():
            rooms[key][done] = value[done]
        if done:
            fresh = sim.instructions()
            for i in done:
                instructions[i] = fresh[i]

    rolled = collect_episodes(
        policy.predict,
        venv,
        episodes,
        deterministic=not stochastic,
        on_step=on_step,
        subset_rows=not policy.whole_batch,
    )
    venv.close()
    counts: dict[str, Counter[str]] = {}
    by_template: dict[str, Counter[str]] = {}
    never_lit_counts: Counter[str] = Counter()
    for ep in rolled:
        pair, kind, outcome, never_lit = finished[ep.env_index].popleft()
        for group in (pair, "all"):
            counts.setdefault(group, Counter())[outcome] += 1
            never_lit_counts[group] += never_lit
        by_template.setdefault(kind, Counter())[outcome] += 1
        never_lit_counts[kind] += never_lit
    ordered = dict(sorted(counts.items(), key=lambda kv: (kv[0] != "all", kv[0])))
    return {
        "policy": ref,
        "split": split,
        "episodes": episodes,
        "actions": "sampled" if stochastic else "greedy",
        "memory": "kept" if memory else "dropped",
        "groups": summarize(ordered, never_lit_counts),
        "templates": summarize(dict(sorted(by_template.items(), reverse=True)), never_lit_counts),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="policies (run folder, model.zip, expert, ...)")
    parser.add_argument("--episodes", type=int, default=300, help="episodes per policy")
    parser.add_argument("--split", choices=("train", "test"), default="test")
    parser.add_argument("--envs", type=int, default=32, help="copies rolled at once")
    parser.add_argument("--seed", type=int, default=30000)
    parser.add_argument("--stochastic", action="store_true", help="sample actions (default greedy)")
    parser.add_argument(
        "--no-memory", action="store_true", help="a skip policy acting without its LSTM"
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.envs < 1:
        parser.error("--episodes and --envs must be >= 1")
    th.set_num_threads(1)
    th.manual_seed(args.seed)  # sampled actions repeat run to run
    print(
        f"# navigation_outcomes {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC "
        f"{platform.node()} ({platform.machine()}): {args.split} split, {args.episodes} "
        f"episodes, seed {args.seed}, "
        f"{'sampled' if args.stochastic else 'greedy'} actions"
        + (", memory dropped" if args.no_memory else "")
    )
    rows = []
    for ref in args.runs:
        row = roll(
            ref, args.episodes, args.split, args.envs, args.seed, args.stochastic,
            memory=not args.no_memory,
        )  # fmt: skip
        rows.append(row)
        print(f"## {ref}")
        print("| target | episodes | " + " | ".join((*OUTCOMES, NEVER_LIT)) + " |")
        print("|---|---:|" + "---:|" * (len(OUTCOMES) + 1))
        for pair, group in (*row["groups"].items(), *row["templates"].items()):
            cells = " | ".join(f"{group['fractions'][k]:.2f}" for k in OUTCOMES)
            print(f"| {pair} | {group['episodes']} | {cells} | {group[NEVER_LIT]:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
