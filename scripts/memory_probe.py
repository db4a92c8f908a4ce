"""Can the named car's lane be carried in memory once the camera has lost it? (issue 19)

A supervised probe, no RL, on ``overtake`` episodes of ``mmrl/Driving-v1``: the scripted expert
drives (``--noise`` of its actions replaced by random ones), a frozen policy's extractor (an
``mmrl pretrain`` checkpoint's, a run's) turns every observation into features, and three small
heads learn
``target_lane_offset`` (the named car's lane relative to the ego, the label the pull-in needs)
from them on the copies of ``--train-share`` and are scored on the others:

- ``now``: an MLP on the current step's features (a feed-forward policy's view);
- ``gru``: a GRU over the episode's features, its state reset at every episode start (a
  recurrent policy's view), trained by backpropagation through ``--bptt`` steps;
- ``majority``: the most common offset of the scored steps (no input).

Accuracy is reported on all scored steps, on those where the named car is in the camera's view,
and on those where it is *behind* it (its centre more than ``--behind`` m behind the ego's:
passed, out of the image) and the ego is not in its lane yet: the steps where the pull-in lane
can only come from memory. A GRU well above ``now`` there says the lane is recoverable from the
episode's features, so what a recurrent agent lacks is the training signal, not the
information.

With ``--lstm`` the features are a recurrent policy's actor LSTM outputs, its state carried
through each episode as when it acts: ``now`` then scores what the policy's memory holds
(e.g. before and after RL fine-tuning).

    python scripts/memory_probe.py POLICY [--lstm] [--envs 128] [--steps 400] [--epochs 40]
        [--json OUT.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from torch import nn

from mmrl import make_vec_env
from mmrl.envs.vec_env import find_labels, vec_env_layers

LABEL = "target_lane_offset"
#: Offsets -3..3 as classes 0..6.
N_CLASSES = 7


def policy_features(
    ref: str, lstm: bool = False
) -> Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]:
    """What a policy's head reads, frozen: ``features(obs, start)`` maps a batch of
    observations (channel last, as the vectorized env returns them) and ``(n,)`` bool episode
    starts to ``(n, F)`` float32 features.

    Args:
        ref: Anything :func:`mmrl.policies.load_policy` reads (an ``mmrl pretrain`` checkpoint,
            a run folder, a model).
        lstm: Read the actor LSTM's output of a recurrent policy (stepped through the
            episode, reset at its starts) instead of the extractor's: what its memory holds.
    """
    from stable_baselines3.common.policies import BasePolicy

    from mmrl.policies import load_policy

    policy = load_policy(ref)
    net = policy.policy
    if lstm and not hasattr(net, "lstm_actor"):
        raise SystemExit(f"error: {ref} is not a recurrent policy (no LSTM to read)")
    carried: dict[str, Any] = {"state": None}

    def features(obs: dict[str, np.ndarray], start: np.ndarray) -> np.ndarray:
        with th.no_grad():
            tensors, _ = net.obs_to_tensor(policy.normalize(obs))
            out = BasePolicy.extract_features(net, tensors, net.pi_features_extractor)
            if not lstm:
                return out.cpu().numpy()
            if carried["state"] is None:
                shape = (net.lstm_actor.num_layers, len(start), net.lstm_actor.hidden_size)
                carried["state"] = (th.zeros(shape), th.zeros(shape))
            starts = th.as_tensor(start, dtype=th.float32)
            out, carried["state"] = net._process_sequence(
                out, carried["state"], starts, net.lstm_actor
            )
            return out.cpu().numpy()

    return features


def collect(
    features: Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray],
    n_envs: int,
    steps: int,
    noise: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """Expert ``overtake`` rollouts, each observation turned into ``features(obs, start)``.

    Returns:
        ``features (T, n, F) float32``, ``label (T, n) int64`` (offset + 3),
        ``distance (T, n) float32`` (named car ahead of the ego, m), ``start (T, n) bool``
        (first step of an episode).
    """
    venv = make_vec_env("mmrl/Driving-v1", n_envs=n_envs, seed=seed, tasks=("overtake",))
    sim = next(layer.sim for layer in vec_env_layers(venv) if hasattr(layer, "sim"))
    read = find_labels(venv)
    rng = np.random.default_rng(seed)
    obs = venv.reset()
    start = np.ones(n_envs, bool)
    out: dict[str, list[np.ndarray]] = {"features": [], "label": [], "distance": [], "start": []}
    for _ in range(steps):
        labels = read()
        out["features"].append(np.asarray(features(obs, start), np.float32))
        out["label"].append(labels[LABEL].astype(np.int64) + 3)
        out["distance"].append(labels["target_distance"].astype(np.float32))
        out["start"].append(start.copy())
        action = sim.expert_action()
        random = rng.random(n_envs) < noise
        action = np.where(random, rng.integers(0, 5, n_envs), action)
        obs, _, done, _ = venv.step(action)
        start = done.astype(bool)
    venv.close()
    return {k: np.stack(v) for k, v in out.items()}


class Head(nn.Module):
    """MLP (``recurrent=False``) or GRU + linear head over a ``(T, n, F)`` feature sequence."""

    def __init__(self, n_features: int, hidden: int, recurrent: bool) -> None:
        super().__init__()
        self.recurrent = recurrent
        self.cell = nn.GRUCell(n_features, hidden) if recurrent else None
        self.mlp = nn.Sequential(
            nn.Linear(hidden if recurrent else n_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, N_CLASSES),
        )

    def forward(self, x: th.Tensor, start: th.Tensor, h: th.Tensor | None) -> tuple:
        if not self.recurrent:
            return self.mlp(x), None
        outs = []
        for t in range(x.shape[0]):
            h = self.cell(x[t], h * (~start[t]).float()[:, None])
            outs.append(h)
        return self.mlp(th.stack(outs)), h


def fit(data: dict, train: np.ndarray, recurrent: bool, epochs: int, bptt: int, seed: int):
    """Trains one head on the copies ``train``; returns its ``(T, n)`` predictions."""
    th.manual_seed(seed)
    x = th.as_tensor(data["features"])
    y = th.as_tensor(data["label"])
    start = th.as_tensor(data["start"])
    head = Head(x.shape[-1], 128, recurrent)
    opt = th.optim.Adam(head.parameters(), lr=1e-3)
    T = x.shape[0]
    idx = th.as_tensor(np.flatnonzero(train))
    for _ in range(epochs):
        h = th.zeros(len(idx), 128)
        for t0 in range(0, T, bptt):
            sl = slice(t0, t0 + bptt)
            logits, h = head(x[sl][:, idx], start[sl][:, idx], h)
            loss = nn.functional.cross_entropy(
                logits.reshape(-1, N_CLASSES), y[sl][:, idx].reshape(-1)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            if h is not None:
                h = h.detach()
    with th.no_grad():
        logits, _ = head(x, start, th.zeros(x.shape[1], 128))
    return logits.argmax(-1).numpy()


def scores(pred: np.ndarray, data: dict, test: np.ndarray, behind: float) -> dict[str, float]:
    """Accuracy on the test copies' steps: all, named car in view, and passed-not-in-lane."""
    y = data["label"][:, test]
    p = pred[:, test]
    out_of_view = data["distance"][:, test] < -behind
    groups = {
        "all": np.ones_like(y, bool),
        "in_view": ~out_of_view,
        "passed_not_in_lane": out_of_view & (y != 3),
    }
    return {
        name: float((p[m] == y[m]).mean()) if m.any() else float("nan")
        for name, m in groups.items()
    } | {f"n_{name}": int(m.sum()) for name, m in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="an mmrl pretrain checkpoint with a BC head, a run, a model")
    parser.add_argument(
        "--lstm", action="store_true", help="probe a recurrent policy's LSTM output (its memory)"
    )
    parser.add_argument("--envs", type=int, default=128)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--bptt", type=int, default=50)
    parser.add_argument("--behind", type=float, default=6.5, help="m behind the ego: out of view")
    parser.add_argument("--train-share", type=float, default=0.75)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    th.set_num_threads(1)
    t0 = time.time()
    features = policy_features(args.policy, args.lstm)
    data = collect(features, args.envs, args.steps, args.noise, args.seed)
    t_collect = time.time() - t0
    train = np.arange(args.envs) < int(args.train_share * args.envs)
    test = ~train
    result: dict = {}
    y = data["label"]
    out_of_view = data["distance"] < -args.behind
    for name in ("majority", "now", "gru"):
        if name == "majority":
            pred = np.full_like(
                y, np.bincount(y[:, train][out_of_view[:, train] & (y[:, train] != 3)]).argmax()
            )
        else:
            pred = fit(data, train, name == "gru", args.epochs, args.bptt, args.seed)
        result[name] = scores(pred, data, test, args.behind)
        r = result[name]
        print(
            f"{name:9s} all {r['all']:.3f}  in view {r['in_view']:.3f}  "
            f"passed, not in lane {r['passed_not_in_lane']:.3f} (n={r['n_passed_not_in_lane']})",
            flush=True,
        )
    record = {
        "policy": str(args.policy),
        "args": {k: v for k, v in vars(args).items() if k not in ("policy", "json")},
        "steps_collected": int(y.size),
        "collect_seconds": round(t_collect, 1),
        "seconds": round(time.time() - t0, 1),
        "result": result,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
        "machine": platform.node(),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
