"""Does a Navigation agent's camera encoder see an unseen pair's colour and shape? (issue 19)

Linear probes on the frozen camera embedding of a trained agent (the image encoder's pooled
output, what the ``concat`` fusion reads). The robot stands 1.0-1.4 m from one object, staged
as in ``approach_probe.py``, and the object is shown as each of the 24 (colour, shape) pairs. A
softmax regression for the colour and one for the shape are fitted on the 18 train pairs
(the first 75 % of the rooms) and scored on the remaining rooms, train pairs and held-out
pairs apart. If the held-out pairs' colour and shape are read as well as the train pairs',
the image features compose and a failure to choose a held-out pair lies after them (the
fusion or the policy); if one attribute is misread on a held-out pair, it lies in the image
encoder.

    python docs/bench/navigation-red-cone/attribute_probe.py RUN [RUN ...] [--rooms 400]

Run from the repository root.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import numpy as np
import torch as th
from stable_baselines3.common.preprocessing import preprocess_obs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from approach_probe import PAIRS, name, stage

from mmrl.envs.navigation.instructions import COLOR_RGB, COLORS, HELD_OUT, SHAPES
from mmrl.policies import load_policy


def embeddings(ref: str, rooms: int, seed: int, untrained: bool = False) -> np.ndarray:
    """``(24, rooms, d)`` camera embeddings, one row per shown pair (:data:`PAIRS` order);
    ``untrained``: of the same camera encoder re-initialized (torch's default init, seed 0)."""
    policy = load_policy(ref)
    net = policy.policy
    extractor = net.features_extractor
    if untrained:
        th.manual_seed(0)
        for module in extractor.encoders["camera"].modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    sim, keep = stage(rooms, seed, 1.0, 1.4)
    out = []
    for shown in PAIRS:
        sim.obj_color[:, 0], sim.obj_shape[:, 0] = shown
        sim.obj_rgb[:, 0] = COLOR_RGB[shown[0]]
        obs, _ = net.obs_to_tensor(policy.normalize(sim.observe()))
        with th.no_grad():
            # As the policy's own extract_features: SB3's preprocessing, then the encoder.
            x = preprocess_obs(obs, net.observation_space, net.normalize_images)
            out.append(extractor.encoders["camera"](x["camera"])[keep].numpy())
    return np.stack(out)


def fit_softmax(x: np.ndarray, y: np.ndarray, classes: int, epochs: int = 500) -> th.nn.Linear:
    """Multinomial logistic regression (Adam, light L2) on standardized features."""
    th.manual_seed(0)
    model = th.nn.Linear(x.shape[1], classes)
    opt = th.optim.Adam(model.parameters(), lr=0.05, weight_decay=1e-4)
    xt, yt = th.as_tensor(x, dtype=th.float32), th.as_tensor(y)
    for _ in range(epochs):
        loss = th.nn.functional.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def probe(feats: np.ndarray) -> dict[str, dict[str, float]]:
    """Per shown pair: accuracy of the colour and of the shape probe on the held-out rooms."""
    n_rooms = feats.shape[1]
    fit_rooms = int(0.75 * n_rooms)
    mean = feats.reshape(-1, feats.shape[2]).mean(0)
    std = feats.reshape(-1, feats.shape[2]).std(0) + 1e-6
    z = (feats - mean) / std
    train = [i for i, pair in enumerate(PAIRS) if pair not in HELD_OUT]
    x = np.concatenate([z[i, :fit_rooms] for i in train])
    result: dict[str, dict[str, float]] = {name(pair): {} for pair in PAIRS}
    for attribute, column, classes in (("colour", 0, len(COLORS)), ("shape", 1, len(SHAPES))):
        y = np.concatenate([np.full(fit_rooms, PAIRS[i][column]) for i in train])
        model = fit_softmax(x, y, classes)
        with th.no_grad():
            for i, pair in enumerate(PAIRS):
                logits = model(th.as_tensor(z[i, fit_rooms:], dtype=th.float32))
                right = (logits.argmax(1) == pair[column]).float().mean()
                result[name(pair)][attribute] = float(right)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="policies (run folder, model.zip, ...)")
    parser.add_argument("--rooms", type=int, default=400, help="staged rooms per pair")
    parser.add_argument("--seed", type=int, default=50000)
    parser.add_argument(
        "--untrained", action="store_true", help="re-initialize the camera encoder (a control)"
    )
    args = parser.parse_args(argv)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# attribute_probe {stamp} {platform.node()}: {args.rooms} rooms, seed {args.seed}")
    for ref in args.runs:
        result = probe(embeddings(ref, args.rooms, args.seed, args.untrained))
        what = "its camera encoder re-initialized" if args.untrained else "its camera encoder"
        print(f"\n## {ref}, {what}: probe accuracy on unseen rooms (colour / shape)")
        print("| shown | held out | colour | shape |")
        print("|---|---|---:|---:|")
        for pair in sorted(PAIRS, key=lambda p: (p not in HELD_OUT, name(p))):
            row = result[name(pair)]
            held = "yes" if pair in HELD_OUT else ""
            print(f"| {name(pair)} | {held} | {row['colour']:.2f} | {row['shape']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
