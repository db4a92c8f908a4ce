"""Speed of the offline-data pipeline: expert collection and pretraining throughput.

Measures, on this machine:

* **collection**: env steps/s of ``mmrl collect --policy expert`` through the batched
  ``VecEnv`` (stepping + recording into episode buffers; HDF5 writing reported separately),
  next to its peer, the same env stepped with expert actions and nothing recorded;
* **pretraining**: samples/s of ``mmrl pretrain`` updates (forward + backward + Adam step)
  with the attention recipe at batch 256, all four objectives, next to behaviour cloning
  alone (the floor: one extractor pass), for 1 and 2 torch threads.

Targets (issue 6): collection >= 5,000 steps/s, pretraining >= 2,000 samples/s.

Usage::

    python scripts/bench_pretrain.py                       # both envs, defaults
    python scripts/bench_pretrain.py --envs navigation --n-envs 64 --updates 20 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch as th


def env_only_rate(env: str, n_envs: int, steps: int, seed: int = 0) -> float:
    """Env steps/s stepping the batched VecEnv with expert actions, nothing recorded."""
    from mmrl.make import make_training_vec_env, resolve_env

    venv = make_training_vec_env(resolve_env(env), n_envs=n_envs, seed=seed, monitor=False)
    venv.reset()
    for _ in range(5):
        venv.step(venv.expert_action())
    t0 = time.perf_counter()
    for _ in range(steps):
        venv.step(venv.expert_action())
    return steps * n_envs / (time.perf_counter() - t0)


def bench_collect(env: str, n_envs: int, episodes: int) -> dict:
    from mmrl.data import collect

    result = collect(env, "expert", episodes, f"bench/{env}/expert-v0", n_envs=n_envs,
                     epsilon=0.1, force=True)  # fmt: skip
    peer = env_only_rate(env, n_envs, steps=max(20, result.env_steps // n_envs // 2))
    return {
        "env": env,
        "n_envs": n_envs,
        "episodes": result.episodes,
        "steps": result.steps,
        "collect_steps_per_s": round(result.steps_per_second),
        "collect_steps_per_cpu_s": round(result.steps_per_cpu_second),
        "end_to_end_steps_per_s": round(result.end_to_end_steps_per_second),
        "env_only_steps_per_s": round(peer),
        "ratio_to_env_only": round(result.steps_per_second / peer, 3),
        "write_seconds": round(result.write_seconds, 2),
    }


def bench_pretrain(
    env: str, agent: str, batch: int, updates: int, threads: int, device: str = "cpu"
) -> dict:
    from mmrl.data.dataset import load_offline_data
    from mmrl.pretrain.checkpoint import build_policy
    from mmrl.pretrain.objectives import OBJECTIVES, PretrainModel, infer_label_specs
    from mmrl.pretrain.resolve import resolve_pretrain_config
    from mmrl.pretrain.trainer import Pretrainer

    th.set_num_threads(threads)
    data = load_offline_data(f"bench/{env}/expert-v0")
    config = resolve_pretrain_config(data, agent)
    rows = th.arange(len(data))
    specs = infer_label_specs(data.labels, rows)
    out = {"env": env, "agent": agent, "batch": batch, "threads": threads, "device": device}

    def sync() -> None:
        if device.startswith("cuda"):
            th.cuda.synchronize()

    for name, objectives in (("bc_only", ("bc",)), ("all_objectives", OBJECTIVES)):
        th.manual_seed(0)
        policy = build_policy(data.observation_space, data.action_space, config)
        model = PretrainModel(policy, objectives, specs).to(device)
        trainer = Pretrainer(data, model, rows, rows[:0], batch_size=batch, device=device)
        gen = th.Generator().manual_seed(0)
        batches = [rows[th.randint(len(rows), (batch,), generator=gen)] for _ in range(updates + 2)]
        for b in batches[:2]:  # warm-up (allocator, oneDNN kernels)
            trainer.step(b)
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        for b in batches[2:]:
            trainer.step(b)
        sync()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out[f"{name}_samples_per_s"] = round(updates * batch / wall)
        # Samples per CPU-second of this process: what one uncontended core would deliver
        # (with 1 thread), robust to other jobs sharing the machine.
        out[f"{name}_samples_per_cpu_s"] = round(updates * batch / cpu)
    out["ratio_all_to_bc"] = round(
        out["all_objectives_samples_per_s"] / out["bc_only_samples_per_s"], 3
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", default="driving,navigation")
    parser.add_argument("--agent", default="ppo-attention")
    parser.add_argument("--n-envs", default="16,64", help="comma-separated copies to try")
    parser.add_argument("--episodes", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--threads", default="1,2", help="torch threads to try")
    parser.add_argument("--devices", default="cpu", help="pretraining devices, e.g. cpu,cuda")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="mmrl-bench-")
    os.environ["MINARI_DATASETS_PATH"] = tmp.name
    envs = args.envs.split(",")
    collect_rows = [
        bench_collect(env, int(n), args.episodes) for env in envs for n in args.n_envs.split(",")
    ]
    pretrain_rows = [
        bench_pretrain(env, args.agent, args.batch_size, args.updates, int(t), device)
        for env in envs
        for device in args.devices.split(",")
        for t in args.threads.split(",")
    ]
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {os.cpu_count()} CPUs, torch {th.__version__}"
    print(
        f"# bench_pretrain ({time.strftime('%Y-%m-%d')}, {machine}, load {os.getloadavg()[0]:.1f})"
    )
    print(f"command: python {' '.join(sys.argv)}\n")
    print("| env | n_envs | collect steps/s (rollout) | per CPU-second | env-only steps/s | ratio "
          "| end-to-end steps/s (with HDF5) | HDF5 write s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in collect_rows:
        keys = ("env", "n_envs", "collect_steps_per_s", "collect_steps_per_cpu_s",
                "env_only_steps_per_s",
                "ratio_to_env_only", "end_to_end_steps_per_s", "write_seconds")  # fmt: skip
        cells = [r[k] for k in keys]
        print("| " + " | ".join(map(str, cells)) + " |")
    print("\n| env | device | threads | all objectives samples/s | per CPU-second "
          "| BC-only samples/s | per CPU-second | ratio all/BC |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in pretrain_rows:
        cells = [r[k] for k in ("env", "device", "threads", "all_objectives_samples_per_s",
                                "all_objectives_samples_per_cpu_s", "bc_only_samples_per_s",
                                "bc_only_samples_per_cpu_s", "ratio_all_to_bc")]  # fmt: skip
        print("| " + " | ".join(map(str, cells)) + " |")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"collect": collect_rows, "pretrain": pretrain_rows, "machine": machine}, indent=2
            )
        )
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
