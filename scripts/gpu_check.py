"""Short CUDA check: end-to-end PPO env-steps/s on GPU vs CPU with the default recipe.

Run on a machine with a GPU (``scripts/gpu_check.sh``). The training env runs in ``--workers``
processes (default: the machine's cores - 1, as issue 20 asks, so one core is left to the
learner), with ``--n-envs`` copies (default: the recipe's). Prints, per device: end-to-end
env-steps/s, the learner's share of wall time (the rest is collecting rollouts), and on CUDA
the peak GPU memory and mean GPU utilization (sampled with ``nvidia-smi`` when present); the
speed-up over CPU; and the extractor's forward+backward samples/s at batch 256 (pretraining's
inner loop). ``--cpu-only`` measures the CPU side alone (a smoke test without a GPU).

    python scripts/gpu_check.py [--steps 16384] [--agent ppo-concat] [--workers K]
                                [--n-envs N] [--cpu-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shutil
import subprocess
import threading
import time

import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from mmrl.config import resolve_run_config
from mmrl.train import build_model, build_vec_env


class RolloutTimer(BaseCallback):
    """Sums the wall time SB3 spends collecting rollouts; the rest of ``learn`` is the
    learner's (the PPO update, with its host-device copies)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0
        self._start = 0.0

    def _on_rollout_start(self) -> None:
        self._start = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.seconds += time.perf_counter() - self._start

    def _on_step(self) -> bool:
        return True


class GpuUtilization:
    """Mean GPU utilization (%) over a block, sampled every 0.2 s from ``nvidia-smi``; ``None``
    where the tool is missing (torch alone does not report utilization without pynvml)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
               "--id=0"]  # fmt: skip
        while not self._stop.wait(0.2):
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=2).stdout
                self.samples.append(float(out.strip().splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return

    def __enter__(self) -> GpuUtilization:
        if shutil.which("nvidia-smi"):
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


@dataclasses.dataclass
class Rate:
    """One device's measurement: env-steps/s end to end and the learner's share of wall time."""

    steps_per_s: float
    learner_share: float
    gpu_util: float | None = None


def ppo_rate(config, device: str, steps: int) -> Rate:
    venv = build_vec_env(config, seed=0)
    try:
        model = build_model(config, venv, th.device(device), None)
        model.learn(model.n_steps * model.n_envs)  # warm-up (cuDNN autotune, allocator)
        if device.startswith("cuda"):
            th.cuda.synchronize()
        timer = RolloutTimer()
        with GpuUtilization() if device.startswith("cuda") else _Nothing() as util:
            t0 = time.perf_counter()
            model.learn(steps, callback=timer, reset_num_timesteps=False)
            if device.startswith("cuda"):
                th.cuda.synchronize()
            wall = time.perf_counter() - t0
    finally:
        venv.close()
    return Rate(steps / wall, 1.0 - timer.seconds / wall, getattr(util, "mean", None))


class _Nothing:
    def __enter__(self) -> _Nothing:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _describe(device: str, rate: Rate) -> str:
    text = f"{device} {rate.steps_per_s:.0f} env-steps/s (learner {rate.learner_share:.0%} of wall"
    if rate.gpu_util is not None:
        text += f", GPU utilization {rate.gpu_util:.0f} %"
    return text + ")"


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
    parser.add_argument("--n-envs", type=int, help="env copies (default: the recipe's)")
    parser.add_argument(
        "--workers", type=int, help="env worker processes (default: cores - 1, <= --n-envs)"
    )
    args = parser.parse_args(argv)
    overrides = [f"env.n_envs={args.n_envs}"] if args.n_envs else []
    config = resolve_run_config(args.env, args.agent, overrides)
    workers = args.workers or max(1, min((os.cpu_count() or 2) - 1, config.env.n_envs))
    config = resolve_run_config(args.env, args.agent, [*overrides, f"env.n_workers={workers}"])
    setup = f"{config.env.n_envs} copies in {workers} worker process(es)"
    if args.cpu_only:
        cpu = ppo_rate(config, "cpu", args.steps)
        print(f"PPO {args.agent} on {args.env}, {setup}: {_describe('cpu', cpu)}")
        print(f"extractor fwd+bwd batch 256: cpu {extractor_rate(config, 'cpu'):.0f} samples/s")
        return
    if not th.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device visible to torch; nothing to measure")
    print(f"# gpu_check {datetime.date.today()} {platform.node()} {th.cuda.get_device_name(0)} "
          f"torch={th.__version__}")  # fmt: skip
    th.cuda.reset_peak_memory_stats()
    gpu = ppo_rate(config, "cuda", args.steps)
    mem = th.cuda.max_memory_allocated() / 2**20
    cpu = ppo_rate(config, "cpu", max(args.steps // 4, 4096))
    print(f"PPO {args.agent} on {args.env}, {setup}: {_describe('cuda', gpu)}, "
          f"{_describe('cpu', cpu)}, speed-up {gpu.steps_per_s / cpu.steps_per_s:.2f}x, "
          f"peak GPU memory {mem:.0f} MiB")  # fmt: skip
    print(f"extractor fwd+bwd batch 256: cuda {extractor_rate(config, 'cuda'):.0f} samples/s, "
          f"cpu {extractor_rate(config, 'cpu'):.0f} samples/s")  # fmt: skip


if __name__ == "__main__":
    main()
