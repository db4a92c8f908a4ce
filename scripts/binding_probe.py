"""How fast can an extractor learn where the named car is? (issue 19, colour grounding)

A supervised probe, no RL: ``follow`` states of ``mmrl/Driving-v1`` (the scripted expert
driving, with ``--noise`` of its actions replaced by random ones so that the ego is found in
every lane), labelled with ``target_lane_offset`` (the named car's lane relative to the ego,
the label ``mmrl train --label-guidance`` also fits). For each fusion, a fresh
:class:`~mmrl.extractor.MultimodalExtractor` over ``camera`` and ``text`` only, plus a linear
head, is trained with Adam on 85 % of the states and scored on the rest after every epoch.
Ignoring the colour word scores about the share of the most common offset (0: the ego is
already in the named car's lane); reading it means binding the word to the right car in
the image.

    python scripts/binding_probe.py [--fusions concat,film] [--epochs 30] [--steps 500]

Prints one line per fusion and epoch, and the held-out accuracy of the majority class.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import numpy as np
import torch as th
from gymnasium import spaces

from mmrl import MultimodalExtractor, make_vec_env
from mmrl.envs.vec_env import find_labels, vec_env_layers

KEYS = ("camera", "text")
LABEL = "target_lane_offset"


def collect(n_envs: int, steps: int, every: int, noise: float, seed: int) -> tuple:
    """``(observations {key: (N, ...)}, labels (N,) int64, observation space)``."""
    venv = make_vec_env("mmrl/Driving-v1", n_envs=n_envs, seed=seed, tasks=("follow",))
    sim = next(layer.sim for layer in vec_env_layers(venv) if hasattr(layer, "sim"))
    read = find_labels(venv)
    rng = np.random.default_rng(seed)
    obs = venv.reset()
    kept: dict[str, list[np.ndarray]] = {k: [] for k in KEYS}
    labels: list[np.ndarray] = []
    for t in range(steps):
        if t % every == 0:
            for k in KEYS:
                kept[k].append(obs[k].copy())
            labels.append(read()[LABEL].astype(np.int64))
        action = sim.expert_action()
        random = rng.random(n_envs) < noise
        action = np.where(random, rng.integers(0, 5, n_envs), action)
        obs = venv.step(action)[0]
    space = spaces.Dict({k: venv.observation_space[k] for k in KEYS})
    venv.close()
    return {k: np.concatenate(v) for k, v in kept.items()}, np.concatenate(labels), space


def train_probe(
    fusion: str, obs: dict, labels: np.ndarray, space: spaces.Dict, epochs: int, seed: int
) -> list[float]:
    """Held-out accuracy after each epoch."""
    th.manual_seed(seed)
    rng = np.random.default_rng(seed)
    classes = labels - labels.min()
    extractor = MultimodalExtractor(space, fusion=fusion)
    head = th.nn.Linear(extractor.features_dim, int(classes.max()) + 1)
    params = list(extractor.parameters()) + list(head.parameters())
    optimizer = th.optim.Adam(params, lr=1e-3)
    order = rng.permutation(len(classes))
    split = int(0.85 * len(order))
    train, test = order[:split], order[split:]

    def logits(rows: np.ndarray) -> th.Tensor:
        return head(extractor(extractor.preprocess({k: obs[k][rows] for k in KEYS})))

    scores = []
    for _ in range(epochs):
        extractor.train()
        shuffled = rng.permutation(train)
        for start in range(0, len(shuffled), 256):
            rows = shuffled[start : start + 256]
            target = th.as_tensor(classes[rows])
            loss = th.nn.functional.cross_entropy(logits(rows), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        extractor.eval()
        with th.no_grad():
            hits = [
                (logits(test[s : s + 1024]).argmax(1).numpy() == classes[test[s : s + 1024]])
                for s in range(0, len(test), 1024)
            ]
        scores.append(float(np.concatenate(hits).mean()))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fusions", default="concat,film", help="comma-separated fusions")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--envs", type=int, default=64, help="copies driven at once")
    parser.add_argument("--steps", type=int, default=500, help="steps driven")
    parser.add_argument("--every", type=int, default=2, help="keep every k-th step's states")
    parser.add_argument("--noise", type=float, default=0.3, help="share of random actions")
    parser.add_argument("--seed", type=int, default=9300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    fusions = [f.strip() for f in args.fusions.split(",") if f.strip()]
    if not fusions or min(args.epochs, args.envs, args.steps, args.every) < 1:
        parser.error("--fusions must name a fusion; --epochs/--envs/--steps/--every >= 1")
    if not 0.0 <= args.noise <= 1.0:
        parser.error("--noise must be in [0, 1]")
    th.set_num_threads(args.threads)
    print(f"# binding_probe {datetime.date.today()} {platform.node()} ({platform.machine()})")
    obs, labels, space = collect(args.envs, args.steps, args.every, args.noise, args.seed)
    _, counts = np.unique(labels, return_counts=True)
    print(f"{len(labels)} states; majority-class share {counts.max() / len(labels):.3f}")
    for fusion in fusions:
        t0 = time.perf_counter()
        scores = train_probe(fusion, obs, labels, space, args.epochs, args.seed)
        shown = ", ".join(f"{e + 1}: {s:.3f}" for e, s in enumerate(scores) if (e + 1) % 5 == 0)
        print(
            f"{fusion}: held-out accuracy by epoch {shown}; best {max(scores):.3f} "
            f"({time.perf_counter() - t0:.0f} s)"
        )


if __name__ == "__main__":
    main()
