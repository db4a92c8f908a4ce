"""Where a batched step of the mmrl environments spends its time, component by component.

Builds ``mmrl.make_vec_env(id, n_envs)`` (default 256 copies, all four sensors at their
defaults), wraps the simulator's components (dynamics, traffic, rewards/tasks, camera, lidar,
noise, labels, info building, resets, ...) with ``time.perf_counter`` timers, steps it with
random actions (auto-resets included) and prints a tree: inclusive milliseconds per batched
step, microseconds per env-step and share of the step. A component's "(self)" row is its time
outside the wrapped children (e.g. the vec env's terminal-observation copies and the merge of
reset observations). Timers cost ~1 us per wrapped call, a few percent at 256 copies.

The default clock is this thread's CPU time (``time.thread_time``), with OpenCV limited to one
thread so that all work runs on it: on a shared machine the wall clock also counts the time
other processes hold the core. ``--clock wall`` uses ``time.perf_counter`` instead.

Components that a module does not have (the simulators are being redesigned) are skipped, so
the script runs on any version; wrapping never changes what is computed.

Usage::

    OMP_NUM_THREADS=1 python scripts/profile_envs.py                 # both envs, 256 copies
    OMP_NUM_THREADS=1 python scripts/profile_envs.py --envs mmrl/Navigation-v1 --steps 400
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

import mmrl

# (owner path, attribute, label): the owner is "sim" (the simulator instance), "sim.camera",
# "sim.lidar", "venv" or a module name whose global the simulator calls through.
COMPONENTS: dict[str, list[tuple[str, str, str]]] = {
    "common": [
        ("venv", "step_wait", "vec env step"),
        ("sim", "step", "sim.step"),
        ("sim", "check_actions", "check actions"),
        ("sim", "_step", "dynamics + rewards (_step)"),
        ("sim", "observe", "observe"),
        ("sim", "info_arrays", "info arrays"),
        ("sim", "instructions", "instructions"),
        ("sim", "labels", "labels"),
        # The vec env builds its per-copy info dicts through this module global (block.py's
        # step reply), not through the simulator's ``infos`` method.
        ("mmrl.envs.vec_env", "infos_from_arrays", "per-copy info dicts"),
        ("sim", "reset_envs", "resets"),
        ("sim", "reset_infos", "reset infos"),
    ],
    "mmrl.envs.navigation.simulator": [
        ("sim", "_object_distances", "object distances"),
        ("sim", "_corrupt", "lidar noise"),
        ("mmrl.envs.navigation.simulator", "cast_rays", "ray casting (camera + lidar)"),
        ("sim.camera", "shade", "camera shading + compositing"),
        ("mmrl.envs.navigation.simulator", "generate_layout", "layout generation"),
        ("mmrl.envs.navigation.simulator", "make_instruction", "instruction text"),
        ("mmrl.envs.navigation.simulator", "nearest_static", "nearest obstacle (labels)"),
    ],
    "mmrl.envs.driving.simulator": [
        ("mmrl.envs.driving.simulator", "step_discrete", "ego dynamics"),
        ("mmrl.envs.driving.simulator", "step_continuous", "ego dynamics"),
        ("mmrl.envs.driving.simulator", "step_traffic", "traffic"),
        ("sim", "_draw_noise", "lidar noise draw"),
        ("sim", "_rewards", "reward terms"),
        ("mmrl.envs.driving.tasks", "derive", "tasks: derive"),
        ("mmrl.envs.driving.tasks", "satisfied", "tasks: satisfied"),
        ("mmrl.envs.driving.tasks", "succeeded", "tasks: succeeded"),
        ("mmrl.envs.driving.tasks", "potential", "tasks: potential"),
        ("mmrl.envs.driving.tasks", "labels", "tasks: labels"),
        ("sim.camera", "render", "camera"),
        ("sim.lidar", "scan", "lidar"),
        ("sim", "_state", "state vector"),
        ("mmrl.envs.driving.simulator", "draw_scenes", "episode draw (scenes)"),
        ("sim.traffic", "load", "cars into slots"),
        ("sim.camera", "paint_roads", "camera road rows"),
    ],
}


class Timers:
    """Inclusive wall time per call path (``parent/child``), from a stack of open timers."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.total: dict[tuple[str, ...], float] = defaultdict(float)
        self.calls: dict[tuple[str, ...], int] = defaultdict(int)
        self.stack: list[str] = []

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.stack.append(label)
            path = tuple(self.stack)
            start = self.clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[path] += self.clock() - start
                self.calls[path] += 1
                self.stack.pop()

        return timed

    def reset(self) -> None:
        self.total.clear()
        self.calls.clear()


def _owner(name: str, venv: Any) -> Any:
    if name == "venv":
        return venv
    if name == "sim" or name.startswith("sim."):
        obj = venv.sim
        for part in name.split(".")[1:]:
            obj = getattr(obj, part, None)
        return obj
    return sys.modules.get(name)


def instrument(venv: Any, timers: Timers) -> Callable[[], None]:
    """Wraps every component the env has; returns a function that undoes it."""
    undo: list[Callable[[], None]] = []
    sim_module = type(venv.sim).__module__
    specs = COMPONENTS["common"] + COMPONENTS.get(sim_module, [])
    for owner_name, attr, label in specs:
        owner = _owner(owner_name, venv)
        fn = getattr(owner, attr, None) if owner is not None else None
        if fn is None:
            continue
        setattr(owner, attr, timers.wrap(label, fn))
        if isinstance(owner, type(sys)):  # a module global: restore it afterwards
            undo.append(functools.partial(setattr, owner, attr, fn))
    return lambda: [u() for u in undo]


def profile(
    env_id: str, n_envs: int, steps: int, warmup: int, clock: str = "cpu", seed: int = 0
) -> None:
    """Prints the per-component breakdown of ``steps`` batched steps (after ``warmup``)."""
    venv = mmrl.make_vec_env(env_id, n_envs=n_envs, seed=seed)
    timers = Timers(time.thread_time if clock == "cpu" else time.perf_counter)
    restore = instrument(venv, timers)
    try:
        venv.reset()
        space = venv.action_space
        space.seed(seed)
        actions = [np.stack([space.sample() for _ in range(n_envs)]) for _ in range(64)]
        for i in range(warmup):
            venv.step(actions[i % len(actions)])
        timers.reset()
        resets = 0
        start = timers.clock()
        for i in range(steps):
            _, _, dones, _ = venv.step(actions[i % len(actions)])
            resets += int(dones.sum())
        wall = timers.clock() - start
    finally:
        restore()
        venv.close()
    root = ("vec env step",)
    total = timers.total[root]
    print(
        f"\n{env_id}, {n_envs} copies, {steps} batched steps: {steps * n_envs / wall:,.0f} "
        f"env-steps/s by {clock} time ({wall / steps * 1e3:.2f} ms per batched step, "
        f"{resets} auto-resets, {resets / (steps * n_envs) * 1e3:.1f} per 1000 env-steps)"
    )
    print(f"  {'component':46s} {'ms/step':>8s} {'us/env-step':>12s} {'share':>6s} {'calls':>6s}")
    paths = sorted(timers.total)
    for path in paths:
        t = timers.total[path]
        children = sum(timers.total[p] for p in paths if len(p) == len(path) + 1 and p[:-1] == path)
        rows = [(path[-1], t, timers.calls[path])]
        if children and t - children > 0.02 * total:
            rows.append(("(self)", t - children, None))
        for j, (name, value, calls) in enumerate(rows):
            indent = "  " * (len(path) - 1 + j)
            calls_s = f"{calls / steps:6.2f}" if calls is not None else ""
            print(
                f"  {indent + name:46s} {value / steps * 1e3:8.3f} "
                f"{value / (steps * n_envs) * 1e6:12.2f} {value / total:6.1%} {calls_s}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--envs", nargs="+", default=["mmrl/Driving-v1", "mmrl/Navigation-v1"], help="mmrl ids"
    )
    parser.add_argument("--n-envs", type=int, default=256, help="copies in the vec env")
    parser.add_argument("--steps", type=int, default=300, help="batched steps measured")
    parser.add_argument("--warmup", type=int, default=30, help="batched steps not measured")
    parser.add_argument(
        "--clock", choices=["cpu", "wall"], default="cpu", help="thread CPU time or wall clock"
    )
    args = parser.parse_args(argv)
    import cv2

    threads = cv2.getNumThreads()
    if args.clock == "cpu":
        cv2.setNumThreads(1)  # OpenCV's workers would escape this thread's CPU clock
    try:
        import torch

        torch.set_num_threads(1)  # the envs do not use torch; keep any import single-threaded
    except ImportError:
        pass
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs; python "
        f"{platform.python_version()}, numpy {np.__version__}; OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    print(f"load average (1, 5, 15 min): {os.getloadavg()}; clock: {args.clock}")
    try:
        for env_id in args.envs:
            profile(env_id, args.n_envs, args.steps, args.warmup, args.clock)
    finally:
        cv2.setNumThreads(threads)
    print("(shares are of the vec env step; '(self)' rows only where above 2 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
