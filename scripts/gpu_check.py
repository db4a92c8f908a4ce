"""Short CUDA check: PPO steps/s on GPU vs CPU with the default recipe, GPU memory.

Run on a machine with a GPU (``scripts/gpu_check.sh``). Prints steps/s on each device, the
speed-up, peak GPU memory, and the extractor's forward+backward samples/s at batch 256.
``--cpu-only`` measures the CPU side alone (a smoke test of the script without a GPU).

    python scripts/gpu_check.py [--steps 16384] [--agent ppo-concat] [--cpu-only]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import torch as th

from mmrl.config import resolve_run_config
from mmrl.train import build_model, build_vec_env


def ppo_rate(config, device: str, steps: int) -> float:
    venv = build_vec_env(config, seed=0)
    model = build_model(config, venv, th.device(device), None)
    model.learn(model.n_steps * model.n_envs)  # warm-up (cuDNN autotune, allocator)
    if device.startswith("cuda"):
        th.cuda.synchronize()
    t0 = time.perf_counter()
    model.learn(steps)
    if device.startswith("cuda"):
        th.cuda.synchronize()
    venv.close()
    return steps / (time.perf_counter() - t0)


def extractor_rate(config, device: str, batch: int = 256, iters: int = 20) -> float:
    from stable_baselines3.common.preprocessing import preprocess_obs

    from mmrl.extractor import MultimodalExtractor

    venv = build_vec_env(config, seed=0)
    space = venv.observation_space
    ext = MultimodalExtractor(space, fusion=config.agent.extractor.fusion).to(device)
    space.seed(0)
    samples = [space.sample() for _ in range(batch)]
    obs = {k: th.as_tensor(__import__("numpy").stack([s[k] for s in samples])).to(device)
           for k in samples[0]}  # fmt: skip
    obs = preprocess_obs(obs, space)
    for _ in range(3):
        ext(obs).sum().backward()
    if device.startswith("cuda"):
        th.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        ext(obs).sum().backward()
    if device.startswith("cuda"):
        th.cuda.synchronize()
    venv.close()
    return batch * iters / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=16384)
    parser.add_argument("--agent", default="ppo-concat", help="agent recipe (default recipe)")
    parser.add_argument("--env", default="driving")
    parser.add_argument("--cpu-only", action="store_true", help="measure the CPU side only")
    args = parser.parse_args(argv)
    if args.cpu_only:
        config = resolve_run_config(args.env, args.agent)
        cpu = ppo_rate(config, "cpu", args.steps)
        print(f"PPO {args.agent} on {args.env}: cpu {cpu:.0f} steps/s")
        print(f"extractor fwd+bwd batch 256: cpu {extractor_rate(config, 'cpu'):.0f} samples/s")
        return
    if not th.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device visible to torch; nothing to measure")
    config = resolve_run_config(args.env, args.agent)
    print(f"# gpu_check {datetime.date.today()} {platform.node()} {th.cuda.get_device_name(0)} "
          f"torch={th.__version__}")  # fmt: skip
    th.cuda.reset_peak_memory_stats()
    gpu = ppo_rate(config, "cuda", args.steps)
    mem = th.cuda.max_memory_allocated() / 2**20
    cpu = ppo_rate(config, "cpu", max(args.steps // 4, 4096))
    print(f"PPO {args.agent} on {args.env}: cuda {gpu:.0f} steps/s, cpu {cpu:.0f} steps/s, "
          f"speed-up {gpu / cpu:.2f}x, peak GPU memory {mem:.0f} MiB")  # fmt: skip
    print(f"extractor fwd+bwd batch 256: cuda {extractor_rate(config, 'cuda'):.0f} samples/s, "
          f"cpu {extractor_rate(config, 'cpu'):.0f} samples/s")  # fmt: skip


if __name__ == "__main__":
    main()
