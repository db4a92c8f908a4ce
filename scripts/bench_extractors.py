"""Forward+backward throughput of every fusion next to SB3's CombinedExtractor.

Builds Driving-v0's observation spaces directly (camera 64x64x3 uint8, 64-beam lidar,
16-token instruction with a ~200-word vocabulary, 8-D state) so the numbers do not depend on
the simulator, then times ``extractor(obs).sum().backward()`` at a fixed batch size and
prints samples/s, parameter counts and the ratio to ``CombinedExtractor`` measured in the
same run, plus the command, date and machine.

Usage::

    python scripts/bench_extractors.py                 # all fusions, batch 256, CPU
    python scripts/bench_extractors.py --fusions attention concat --seconds 5 --device cuda
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor

from mmrl.extractor import MultimodalExtractor
from mmrl.fusion import available_fusions

VOCAB_SIZE = 200


def driving_observation_space() -> spaces.Dict:
    """Driving-v0's observation space, built here so the benchmark needs no simulator."""
    return spaces.Dict(
        {
            "camera": spaces.Box(0, 255, (64, 64, 3), np.uint8),
            "lidar": spaces.Box(0.0, 1.0, (64,), np.float32),
            "text": spaces.Box(0, VOCAB_SIZE - 1, (16,), np.int64),
            "state": spaces.Box(-np.inf, np.inf, (8,), np.float32),
        }
    )


def channel_first(space: spaces.Dict) -> spaces.Dict:
    """What a policy sees: SB3 wraps channel-last image envs in VecTransposeImage."""
    out = dict(space.spaces)
    h, w, c = out["camera"].shape
    out["camera"] = spaces.Box(0, 255, (c, h, w), np.uint8)
    return spaces.Dict(out)


def make_batch(space: spaces.Dict, batch: int, device: th.device) -> dict[str, th.Tensor]:
    """A preprocessed random batch (uint8 images / 255, float everything else)."""
    rng = np.random.default_rng(0)
    c, h, w = space["camera"].shape
    lengths = rng.integers(3, 17, size=batch)
    text = rng.integers(1, VOCAB_SIZE, size=(batch, 16))
    text[np.arange(16)[None, :] >= lengths[:, None]] = 0  # right padding, as the tokenizer
    raw = {
        "camera": rng.integers(0, 256, size=(batch, c, h, w), dtype=np.uint8),
        "lidar": rng.random((batch, 64), dtype=np.float32),
        "text": text,
        "state": rng.standard_normal((batch, 8)).astype(np.float32),
    }
    tensors = {k: th.as_tensor(v, device=device) for k, v in raw.items()}
    return preprocess_obs(tensors, space)


def time_extractor(
    extractor: BaseFeaturesExtractor, batch: dict[str, th.Tensor], seconds: float, warmup: int
) -> tuple[float, float]:
    """Forward + backward (training mode): ``(samples per wall second, per CPU second)``.

    CPU time (all threads of this process) is much less sensitive than wall time to other
    processes competing for the cores, so both are reported.
    """
    extractor.train()
    n = next(iter(batch.values())).shape[0]
    device = next(extractor.parameters()).device

    def step() -> None:
        extractor.zero_grad(set_to_none=True)
        extractor(batch).sum().backward()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        th.cuda.synchronize(device)
    iters, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while True:
        step()
        iters += 1
        if device.type == "cuda":
            th.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and iters >= 3:
            cpu = max(time.process_time() - cpu_start, 1e-9)
            return iters * n / elapsed, iters * n / cpu


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fusions", nargs="+", default=available_fusions())
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="timing budget per model and round"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds; the best round counts (robust to other load on the machine)",
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)

    if args.threads:
        th.set_num_threads(args.threads)
    th.manual_seed(0)
    device = th.device(args.device)
    space = channel_first(driving_observation_space())
    batch = make_batch(space, args.batch_size, device)

    models: dict[str, BaseFeaturesExtractor] = {"CombinedExtractor (SB3)": CombinedExtractor(space)}
    for fusion in args.fusions:
        models[f"Multimodal {fusion}"] = MultimodalExtractor(space, fusion=fusion)

    for model in models.values():
        model.to(device)
    # Round-robin so slow drifts in machine load hit every model alike; keep each model's
    # best round (as timeit does), the closest estimate of its unloaded speed.
    best = dict.fromkeys(models, 0.0)
    best_cpu = dict.fromkeys(models, 0.0)
    for round_ in range(args.rounds):
        for name, model in models.items():
            rate, cpu_rate = time_extractor(
                model, batch, args.seconds, args.warmup if round_ == 0 else 1
            )
            best[name] = max(best[name], rate)
            best_cpu[name] = max(best_cpu[name], cpu_rate)
            print(f"  round {round_}: {name}: {rate:,.0f} samples/s", file=sys.stderr, flush=True)
    rows = [
        (name, m.features_dim, sum(p.numel() for p in m.parameters()), best[name], best_cpu[name])
        for name, m in models.items()
    ]

    baseline, baseline_cpu = rows[0][3], rows[0][4]
    print(f"command: python {' '.join([sys.argv[0], *(argv or sys.argv[1:])])}")
    print(f"date:    {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch {th.__version__}, "
        f"torch threads={th.get_num_threads()}, device {device}"
    )
    print(
        f"batch {args.batch_size}, forward+backward, Driving-v0 spaces (camera 3x64x64), "
        f"best of {args.rounds} interleaved rounds of {args.seconds:g} s"
    )
    print()
    header = (
        f"| {'extractor':<26} | {'features':>8} | {'params':>9} | {'samples/s':>9} | "
        f"{'ratio':>5} | {'samples/CPU-s':>13} | {'CPU ratio':>9} |"
    )
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for name, dim, params, rate, cpu_rate in rows:
        print(
            f"| {name:<26} | {dim:>8} | {params:>9,} | {rate:>9,.0f} | {rate / baseline:>5.2f} | "
            f"{cpu_rate:>13,.0f} | {cpu_rate / baseline_cpu:>9.2f} |"
        )


if __name__ == "__main__":
    main()
