"""Scene-only predictor accuracy vs chance, per env version and instruction split (issue 13).

Prints, for each simulator and split, the held-out accuracy of a predictor that picks the
instruction's referent from per-candidate scene features alone (no text), next to chance.
See :mod:`mmrl.envs.shortcuts`; the test suite asserts the current versions stay within
5 points of chance.

    python scripts/scene_shortcuts.py [--episodes 9000] [--envs mmrl/Driving-v1,...]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

from mmrl.envs.driving import DrivingSimulator, DrivingSimulatorV0
from mmrl.envs.navigation import NavigationSimulator, NavigationSimulatorV0
from mmrl.envs.shortcuts import fit_and_score, scene_candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=9000, help="episodes per row")
    sims = (NavigationSimulator, NavigationSimulatorV0, DrivingSimulator, DrivingSimulatorV0)
    ids = [sim.env_id for sim in sims]
    parser.add_argument(
        "--envs", default=",".join(ids), help=f"comma-separated env ids (default: {','.join(ids)})"
    )
    args = parser.parse_args()
    wanted = [e.strip() for e in args.envs.split(",") if e.strip()]
    if not wanted or any(e not in ids for e in wanted):
        parser.error(f"--envs must name some of {ids}, got {args.envs!r}")
    sims = tuple(sim for sim in sims if sim.env_id in wanted)
    if args.episodes < 30:
        parser.error("--episodes must be >= 30")
    print(f"# scene_shortcuts {datetime.date.today()} {platform.node()} ({platform.machine()})")
    print(
        f"command: python scripts/scene_shortcuts.py --episodes {args.episodes} "
        f"--envs {','.join(wanted)}\n"
    )
    print("| simulator | split | held-out episodes | accuracy | chance | accuracy - chance |")
    print("|---|---|---:|---:|---:|---:|")
    for sim_cls in sims:
        for split in ("train", "test"):
            t0 = time.perf_counter()
            r = fit_and_score(*scene_candidates(sim_cls, split, args.episodes, seed=1))
            print(
                f"| {sim_cls.env_id} | {split} | {r['episodes']} | {r['accuracy']:.3f} | "
                f"{r['chance']:.3f} | {r['accuracy'] - r['chance']:+.3f} |"
                f"  <!-- {time.perf_counter() - t0:.0f} s -->"
            )


if __name__ == "__main__":
    main()
