"""Does a Navigation agent go to an object in front of it when it is the one named? (issue 19)

A probe of one decision of a Navigation-v1 policy, outside of any search: in ``--rooms``
rooms of the train split the robot stands ``--distance`` (default 1.0-1.4 m) from one object
(lit by the lamp, inside the camera's view, the room's other objects removed; the state says
it is driving straight ahead, a third of the episode gone), and that object is given every
(colour, shape) pair in turn while the instruction ("go to the {colour} {shape}", a train
template) names every pair in turn. For each (shown, named) combination the policy's
probability of ``--action`` (default FORWARD: driving on to the object) is averaged over the
rooms, and how often it is the greedy action.

An agent that reads the instruction drives on when the shown pair is the named one (the
*hit* rate) and turns away otherwise (the *false-alarm* rates, split by what the two pairs
share). A held-out pair whose hit rate is low while the train pairs' are high is not taken
for the named object even when the robot is in front of it. (``--action STOP`` with
``--distance 0.55,0.85`` asks the same of the stop that ends an episode, but agents decide
earlier: they stop next to almost any object they drove up to.)

    python docs/bench/navigation-red-cone/approach_probe.py RUN [RUN ...] [--rooms 200]
        [--json OUT]

Run from the repository root. RUN is anything ``mmrl.policies.load_policy`` reads.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import numpy as np

from mmrl.envs.navigation.instructions import COLOR_RGB, COLORS, HELD_OUT, SHAPES
from mmrl.envs.navigation.simulator import NavigationSimulator
from mmrl.policies import load_policy

PAIRS = [(c, s) for c in range(len(COLORS)) for s in range(len(SHAPES))]


def name(pair: tuple[int, int]) -> str:
    return f"{COLORS[pair[0]]} {SHAPES[pair[1]]}"


def stage(rooms: int, seed: int, near: float, far: float) -> tuple[NavigationSimulator, np.ndarray]:
    """A simulator whose copies show one object in front of the robot, and the ``rooms``
    copies (indices) where it is lit, in view and the nearest thing there."""
    sim = NavigationSimulator(rooms * 2, instruction_split="train")
    n = sim.num_envs
    sim.seed(list(range(seed, seed + n)))
    sim.reset_envs()
    rng = np.random.default_rng(seed)
    distance = rng.uniform(near, far, n).astype(np.float32)
    bearing = np.radians(rng.uniform(-12.0, 12.0, n)).astype(np.float32)
    angle = sim.heading + bearing
    sim.objects[:, 0] = sim.pos + distance[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
    sim.objects[:, 1:] = -100.0
    sim.obj_valid[:] = False
    sim.obj_valid[:, 0] = True
    sim.target[:] = 0
    # As when arriving: driving straight ahead, a third of the episode gone.
    sim.velocity[:] = (1.0, 0.0)
    sim.command[:] = (1.0, 0.0)
    sim.elapsed[:] = sim.max_episode_steps // 3
    inside = np.all((sim.objects[:, 0] > 0.45) & (sim.objects[:, 0] < sim.size - 0.45), axis=1)
    sim.observe()
    keep = np.flatnonzero(inside & sim.target_visible)[:rooms]
    if len(keep) < rooms:
        raise SystemExit(f"error: only {len(keep)} of {n} staged rooms show the object")
    return sim, keep


def probe(ref: str, rooms: int, seed: int, near: float, far: float, action: int) -> dict:
    """``{"prob": (24, 24) mean P(action), "greedy": (24, 24) share of greedy action}``,
    rows the shown pair, columns the named one (:data:`PAIRS` order)."""
    policy = load_policy(ref)
    sim, keep = stage(rooms, seed, near, far)
    prob = np.zeros((len(PAIRS), len(PAIRS)))
    greedy = np.zeros_like(prob)
    tokens = {
        named: sim.tokenizer.encode(f"go to the {COLORS[named[0]]} {SHAPES[named[1]]}")
        for named in PAIRS
    }
    chosen = np.full(sim.num_envs, action)
    for i, shown in enumerate(PAIRS):
        sim.obj_color[:, 0], sim.obj_shape[:, 0] = shown
        sim.obj_rgb[:, 0] = COLOR_RGB[shown[0]]
        obs = sim.observe()  # rendered once per shown pair; only the instruction changes
        for j, named in enumerate(PAIRS):
            obs["text"][:] = tokens[named]
            prob[i, j] = np.exp(policy.log_prob(obs, chosen))[keep].mean()
            greedy[i, j] = (policy.act(obs) == action)[keep].mean()
    return {"prob": prob, "greedy": greedy}


def summarize(matrix: np.ndarray) -> list[dict]:
    """Per shown pair: the hit rate and the false-alarm rates by what the named pair shares."""
    rows = []
    for i, shown in enumerate(PAIRS):
        share = {"same colour": [], "same shape": [], "neither": []}
        for j, named in enumerate(PAIRS):
            if i == j:
                continue
            if named[0] == shown[0]:
                kind = "same colour"
            elif named[1] == shown[1]:
                kind = "same shape"
            else:
                kind = "neither"
            share[kind].append(matrix[i, j])
        rows.append(
            {
                "shown": name(shown),
                "held_out": shown in HELD_OUT,
                "hit": float(matrix[i, i]),
                **{k: float(np.mean(v)) for k, v in share.items()},
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="policies (run folder, model.zip, ...)")
    parser.add_argument("--rooms", type=int, default=200, help="staged rooms per combination")
    parser.add_argument("--seed", type=int, default=50000)
    parser.add_argument(
        "--distance", default="1.0,1.4", help="NEAR,FAR: object centre distance range, m"
    )
    parser.add_argument("--action", default="FORWARD", choices=NavigationSimulator.action_names)
    parser.add_argument("--json", type=Path, help="also write the matrices and rows here")
    args = parser.parse_args(argv)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    near, far = (float(x) for x in args.distance.split(","))
    action = NavigationSimulator.action_names.index(args.action)
    print(
        f"# approach_probe {stamp} {platform.node()}: {args.rooms} rooms, seed {args.seed}, "
        f"object {near}-{far} m ahead, P({args.action})"
    )
    out = {}
    for ref in args.runs:
        result = probe(ref, args.rooms, args.seed, near, far, action)
        out[ref] = {k: v.round(4).tolist() for k, v in result.items()}
        for kind, matrix in result.items():
            rows = summarize(matrix)
            out[ref][f"rows_{kind}"] = rows
            label = f"mean P({args.action})" if kind == "prob" else f"share of greedy {args.action}"
            print(f"\n## {ref}: {label}, shown pair x named pair")
            print("| shown | held out | named itself | named: same colour | same shape | neither |")
            print("|---|---|---:|---:|---:|---:|")
            for row in sorted(rows, key=lambda r: (not r["held_out"], r["shown"])):
                print(
                    f"| {row['shown']} | {'yes' if row['held_out'] else ''} | {row['hit']:.2f} "
                    f"| {row['same colour']:.2f} | {row['same shape']:.2f} "
                    f"| {row['neither']:.2f} |"
                )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
