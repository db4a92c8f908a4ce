"""The scene alone must not reveal the instruction's referent (issue: "The scene must not give
the goal away").

For every instruction that names a referent, a predictor sees per-candidate scene features
(colours, shapes, their counts, positions, distances, gaps, speeds: anything but the text)
and is trained to pick the named candidate. On held-out episodes it must stay within
5 points of chance (the mean of ``1 / candidates``). The same predictor on the ``-v0``
generators, which do leak, must beat chance by far: that keeps the test able to fail.

Candidates are defined from the grammar, not read from the simulator under test:
Navigation's are the objects whose colour-shape pair the split can name; Driving's are the
cars whose colour no other car on the road has (a colour word names exactly one car only
then).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch as th

from mmrl.envs.driving import DrivingSimulator, DrivingSimulatorV0
from mmrl.envs.driving.instructions import COLORS as CAR_COLORS
from mmrl.envs.driving.road import LANE_WIDTH
from mmrl.envs.navigation import NavigationSimulator, NavigationSimulatorV0
from mmrl.envs.navigation.instructions import COLORS, SHAPES, target_combos

EPISODES = 3000
"""Episodes per check: 2/3 to fit the predictor, 1/3 to score it (SE of the score ~1.5 pts)."""


def _fit_and_score(feats: np.ndarray, mask: np.ndarray, target: np.ndarray) -> float:
    """Trains a per-candidate MLP scorer (softmax over each episode's candidates).

    Args:
        feats: ``(E, K, F)`` float32 candidate features; mask: ``(E, K)`` bool valid
            candidates; target: ``(E,)`` int64 index of the named candidate.

    Returns:
        Accuracy on the last third of the episodes.
    """
    th.manual_seed(0)
    # Keep only candidate columns (at most a handful per episode): the fit is on candidates.
    order = np.argsort(~mask, axis=1, kind="stable")[:, : int(mask.sum(1).max())]
    rows = np.arange(len(mask))[:, None]
    target = np.argmax(order == target[:, None], axis=1)
    feats, mask = feats[rows, order], mask[rows, order]
    x = th.as_tensor(feats)
    mu = x[th.as_tensor(mask)].mean(0)
    sd = x[th.as_tensor(mask)].std(0) + 1e-6
    x = (x - mu) / sd
    m = th.as_tensor(mask)
    y = th.as_tensor(target)
    n_fit = 2 * len(x) // 3
    net = th.nn.Sequential(
        th.nn.Linear(x.shape[-1], 64), th.nn.ReLU(), th.nn.Linear(64, 64), th.nn.ReLU(),
        th.nn.Linear(64, 1),
    )  # fmt: skip
    opt = th.optim.Adam(net.parameters(), lr=3e-3)

    def logits(sl: slice) -> th.Tensor:
        return net(x[sl]).squeeze(-1).masked_fill(~m[sl], -1e9)

    for _ in range(300):
        opt.zero_grad()
        loss = th.nn.functional.cross_entropy(logits(slice(0, n_fit)), y[:n_fit])
        loss.backward()
        opt.step()
    with th.no_grad():
        pred = logits(slice(n_fit, None)).argmax(-1)
    return float((pred == y[n_fit:]).float().mean())


def _chance(mask: np.ndarray) -> float:
    return float(np.mean(1.0 / mask[2 * len(mask) // 3 :].sum(axis=1)))


# ------------------------------------------------------------------------------ navigation
def _navigation_data(sim_cls, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nameable = set(target_combos(split))
    feats, masks, targets = [], [], []
    batch = 500
    for seed in range(EPISODES // batch):
        sim = sim_cls(batch, instruction_split=split)
        sim.seed([1000 * seed + 7 + i for i in range(batch)])
        sim.reset_envs()
        k = sim.objects.shape[1]
        valid = sim.obj_valid
        col, shp = sim.obj_color, sim.obj_shape
        cand = valid & np.array(
            [[(c, s) in nameable for c, s in zip(cr, sr)] for cr, sr in zip(col, shp)]
        )
        same_col = ((col[:, :, None] == col[:, None, :]) & valid[:, None, :]).sum(-1)
        same_shp = ((shp[:, :, None] == shp[:, None, :]) & valid[:, None, :]).sum(-1)
        rel = sim.objects - sim.pos[:, None, :]
        dist = np.hypot(rel[..., 0], rel[..., 1])
        bearing = np.arctan2(rel[..., 1], rel[..., 0]) - sim.heading[:, None]
        pair = np.linalg.norm(sim.objects[:, :, None] - sim.objects[:, None, :], axis=-1)
        pair = np.where(valid[:, None, :] & ~np.eye(k, dtype=bool), pair, 1e3)
        wall = np.minimum(sim.objects, sim.size[:, None, :] - sim.objects).min(-1)
        f = np.concatenate(
            [
                np.eye(len(COLORS))[col],
                np.eye(len(SHAPES))[shp],
                same_col[..., None],
                same_shp[..., None],
                ((same_col > 1) & (same_shp > 1))[..., None],
                dist[..., None],
                np.cos(bearing)[..., None],
                np.sin(bearing)[..., None],
                pair.min(-1)[..., None],
                wall[..., None],
                np.repeat(valid.sum(1, keepdims=True), k, 1)[..., None],
                np.repeat(cand.sum(1, keepdims=True), k, 1)[..., None],
            ],
            axis=-1,
        )
        assert cand[np.arange(batch), sim.target].all(), "the target must be a candidate"
        feats.append(f.astype(np.float32))
        masks.append(cand)
        targets.append(sim.target.copy())
    return np.concatenate(feats), np.concatenate(masks), np.concatenate(targets)


@pytest.mark.parametrize("split", ["train", "test"])
def test_navigation_scene_alone_is_at_chance(split):
    feats, mask, target = _navigation_data(NavigationSimulator, split)
    acc, chance = _fit_and_score(feats, mask, target), _chance(mask)
    assert acc <= chance + 0.05, f"scene-only predictor {acc:.3f} vs chance {chance:.3f}"


def test_navigation_v0_leak_is_detected():
    feats, mask, target = _navigation_data(NavigationSimulatorV0, "train")
    acc, chance = _fit_and_score(feats, mask, target), _chance(mask)
    assert acc >= chance + 0.3, f"v0 leak not found: {acc:.3f} vs chance {chance:.3f}"


# ------------------------------------------------------------------------------ driving
def _driving_data(sim_cls, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    feats, masks, targets = [], [], []
    batch = 500
    for seed in range(EPISODES // batch):
        sim = sim_cls(batch, instruction_split=split, tasks=("follow", "overtake"))
        sim.seed([1000 * seed + 11 + i for i in range(batch)])
        sim.reset_envs()
        t = sim.traffic
        valid = t.valid
        n, slots = valid.shape
        col = t.color
        same_col = ((col[:, :, None] == col[:, None, :]) & valid[:, None, :]).sum(-1)
        cand = valid & (same_col == 1)
        dx = t.x - sim.ego.x[:, None]
        same_lane = (t.lane[:, :, None] == t.lane[:, None, :]) & valid[:, None, :]
        ahead = t.x[:, None, :] - t.x[:, :, None]
        gap_front = np.where(same_lane & (ahead > 0), ahead, 300.0).min(-1)
        gap_back = np.where(same_lane & (ahead < 0), -ahead, 300.0).min(-1)
        ego_lane = (sim.ego.y // LANE_WIDTH).astype(np.int64)
        nl = sim.road.n_lanes
        f = np.concatenate(
            [
                np.eye(len(CAR_COLORS))[col],
                np.eye(5)[np.minimum(t.lane, 4)],
                (t.lane == ego_lane[:, None])[..., None],
                (t.lane == nl[:, None] - 1)[..., None],
                dx[..., None],
                t.v[..., None],
                t.v0[..., None],
                np.minimum(gap_front, 300.0)[..., None],
                np.minimum(gap_back, 300.0)[..., None],
                np.repeat(nl[:, None], slots, 1)[..., None],
                np.repeat(cand.sum(1, keepdims=True), slots, 1)[..., None],
            ],
            axis=-1,
        )
        rows = np.arange(n)
        assert cand[rows, sim.tasks.target].all(), "the named car must be a candidate"
        feats.append(f.astype(np.float32))
        masks.append(cand)
        targets.append(sim.tasks.target.copy())
    return np.concatenate(feats), np.concatenate(masks), np.concatenate(targets)


@pytest.mark.parametrize("split", ["train", "test"])
def test_driving_scene_alone_is_at_chance(split):
    feats, mask, target = _driving_data(DrivingSimulator, split)
    acc, chance = _fit_and_score(feats, mask, target), _chance(mask)
    assert acc <= chance + 0.05, f"scene-only predictor {acc:.3f} vs chance {chance:.3f}"


def test_driving_v0_leak_is_detected():
    feats, mask, target = _driving_data(DrivingSimulatorV0, "train")
    acc, chance = _fit_and_score(feats, mask, target), _chance(mask)
    assert acc >= chance + 0.3, f"v0 leak not found: {acc:.3f} vs chance {chance:.3f}"


def test_driving_lane_referent_is_uniform():
    """A lane instruction names each lane equally often, whatever the scene (v1)."""
    sim = DrivingSimulator(3000, tasks=("lane",))
    sim.seed(list(range(3000)))
    sim.reset_envs()
    for n_lanes in (3, 4):
        sel = sim.road.n_lanes == n_lanes
        counts = np.bincount(sim.tasks.arg[sel], minlength=n_lanes)
        expected = sel.sum() / n_lanes
        # Chi-square with n_lanes - 1 dof; 16.3 is the 99.9 % quantile for 3 dof.
        assert ((counts - expected) ** 2 / expected).sum() < 16.3, counts
