"""Does a Driving agent ground the colour word of "follow the red car"? (issues 13 and 19)

Rolls the policy on ``follow`` episodes of ``mmrl/Driving-v1``. At every ``--every``-th
step, for each copy that is already in the named car's lane and 10-28 m behind it (where the
expert keeps its lane), it asks the policy for its greedy action three times, with only the
instruction's colour word changed:

* ``named``: the instruction as drawn;
* ``other candidate``: the colour of another candidate car (a car with a colour of its own,
  in another lane) — an agent that grounds the word should now leave the lane;
* ``absent``: a colour no car on the road has.

It prints how often each variant asks for a lane change, how often the other-candidate
variant's lateral decision differs from the named one (the *flip rate*; an agent that ignores
the colour word has about 0), and the success rate of the follow episodes. The same states
are used for every variant, so the differences come from the word alone.

    python scripts/colour_grounding.py RUN [RUN ...] [--envs 64] [--steps 200] [--json OUT]

RUN is anything ``mmrl.policies.load_policy`` reads (run folder, model.zip, checkpoint).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import numpy as np
import torch as th

from mmrl.envs.driving.instructions import COLORS
from mmrl.envs.driving.tasks import FOLLOW_GAP
from mmrl.envs.tokenizer import Tokenizer
from mmrl.envs.vec_env import vec_env_layers
from mmrl.evaluation.rollouts import make_eval_vec_env
from mmrl.make import resolve_env
from mmrl.policies import load_policy

LANE_CHANGES = (0, 2)  # LANE_LEFT, LANE_RIGHT of the discrete meta-actions
BAND = (10.0, 28.0)  # inside FOLLOW_GAP (8-30 m) with a margin, where the expert stays
assert FOLLOW_GAP[0] < BAND[0] < BAND[1] < FOLLOW_GAP[1]


def _variants(
    text: np.ndarray, named: int, colors: np.ndarray, word_ids: dict[int, int]
) -> dict[str, np.ndarray]:
    """The instruction tokens with the colour word swapped (``named``: unchanged)."""
    values, counts = np.unique(colors, return_counts=True)
    own = [int(c) for c in values[counts == 1] if c != named]  # other candidates' colours
    absent = [c for c in range(len(COLORS)) if c not in set(values.tolist())]
    out = {"named": text}
    for name, pool in (("other candidate", own), ("absent", absent)):
        if pool:
            swapped = text.copy()
            swapped[text == word_ids[named]] = word_ids[pool[0]]
            out[name] = swapped
    return out


def probe(ref: str, n_envs: int, steps: int, every: int, seed: int) -> dict[str, object]:
    """Counts for one policy (see the module docstring)."""
    policy = load_policy(ref)
    # The policy's own preset (sensor sizes, stacked frames), follow episodes only.
    config = getattr(policy, "env_config", None) or resolve_env("driving")
    venv = make_eval_vec_env(config.with_kwargs(tasks=["follow"]), "train", n_envs, seed)
    sim = next(layer.sim for layer in vec_env_layers(venv) if hasattr(layer, "sim"))
    tokenizer = Tokenizer()
    word_ids = {i: tokenizer.encode(c)[0] for i, c in enumerate(COLORS)}
    actions: dict[str, list[int]] = {"named": [], "other candidate": [], "absent": []}
    flips: list[bool] = []
    successes: list[bool] = []
    obs = venv.reset()
    # A recurrent policy carries its LSTM state; each variant below starts from the copy's
    # state of this step, so only the word differs (feed-forward policies: state stays None).
    state, starts = None, np.ones(n_envs, dtype=bool)
    for t in range(steps):
        chosen, next_state = policy.predict(
            obs, state=state, episode_start=starts, deterministic=True
        )
        der, tasks, traffic = sim.derived, sim.tasks, sim.traffic
        if t % every == 0:
            d = der.d
            rows = np.flatnonzero((der.lane == tasks.goal_lane) & (d >= BAND[0]) & (d <= BAND[1]))
            for i in rows:
                colors = traffic.color[i][traffic.valid[i]].astype(np.int64)
                variants = _variants(obs["text"][i], int(tasks.arg[i]), colors, word_ids)
                single = {k: v[i : i + 1] for k, v in obs.items()}
                own = None if state is None else tuple(s[:, i : i + 1] for s in state)
                greedy = {}
                for name, text in variants.items():
                    single["text"] = text[None]
                    action = policy.predict(
                        single, state=own, episode_start=starts[i : i + 1], deterministic=True
                    )[0]
                    greedy[name] = int(action[0])
                    actions[name].append(greedy[name])
                if "other candidate" in greedy:
                    lateral = {k: v if v in LANE_CHANGES else 1 for k, v in greedy.items()}
                    flips.append(lateral["named"] != lateral["other candidate"])
        obs, _, dones, infos = venv.step(chosen)
        state, starts = next_state, np.asarray(dones, dtype=bool)
        successes += [bool(infos[i]["is_success"]) for i in np.flatnonzero(dones)]
    venv.close()
    return {
        "policy": ref,
        "states": len(actions["named"]),
        "lane_change": {
            k: round(float(np.isin(v, LANE_CHANGES).mean()), 3) if v else None
            for k, v in actions.items()
        },
        "flip_rate": round(float(np.mean(flips)), 3) if flips else None,
        "follow_episodes": len(successes),
        "follow_success": round(float(np.mean(successes)), 3) if successes else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="policies (run folder, model.zip, checkpoint)")
    parser.add_argument("--envs", type=int, default=64, help="copies rolled at once")
    parser.add_argument("--steps", type=int, default=200, help="steps rolled")
    parser.add_argument("--every", type=int, default=5, help="probe every k-th step")
    parser.add_argument("--seed", type=int, default=9100)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if args.envs < 1 or args.steps < 1 or args.every < 1:
        parser.error("--envs, --steps and --every must be >= 1")
    th.set_num_threads(1)
    print(f"# colour_grounding {datetime.date.today()} {platform.node()} ({platform.machine()})")
    rows = []
    for ref in args.runs:
        row = probe(ref, args.envs, args.steps, args.every, args.seed)
        rows.append(row)
        lc = row["lane_change"]
        print(
            f"{ref}: {row['states']} in-lane states; lane change named {lc['named']}, "
            f"other candidate {lc['other candidate']}, absent {lc['absent']}; "
            f"flip rate {row['flip_rate']}; follow success {row['follow_success']} "
            f"({row['follow_episodes']} episodes)"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
