"""Does the scene alone reveal the instruction's referent? A scene-only predictor.

For every instruction that names a referent, :func:`scene_candidates` gathers per-candidate
scene features (colours, shapes, their counts, positions, distances, gaps, speeds: anything
but the text) from freshly reset simulators, and :func:`fit_and_score` trains a small scorer to
pick the named candidate and scores it on held-out episodes against chance (the mean of
``1 / candidates``). The test suite asserts the current envs stay within 5 points of chance
and that the ``-v0`` generators, which leak, do not (``tests/envs/test_scene_shortcuts.py``);
``scripts/scene_shortcuts.py`` prints the figures.

Candidates come from the grammar, not from the simulator under test: Navigation's are the
objects whose colour-shape pair the split can name; Driving's are the cars whose colour no
other car on the road has (a colour word names exactly one car only then), in episodes whose
task names a car.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmrl.envs.driving.instructions import COLORS as CAR_COLORS
from mmrl.envs.driving.road import LANE_WIDTH
from mmrl.envs.navigation.instructions import COLORS, SHAPES, target_combos

BATCH = 500
"""Copies reset at once while gathering episodes."""


def scene_candidates(
    sim_cls: type, split: str, episodes: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-candidate scene features of ``episodes`` fresh episodes of a simulator class.

    Args:
        sim_cls: A Navigation or Driving simulator class (any version).
        split: ``"train"`` or ``"test"``.
        episodes: Episodes to gather (a multiple of :data:`BATCH` is fastest).
        seed: Base seed of the episodes.

    Returns:
        ``(features (E, K, F) float32, candidates (E, K) bool, target (E,) int64)``: the
        named candidate's slot per episode.
    """
    from mmrl.envs.navigation.simulator import NavigationSimulator

    gather = _navigation if issubclass(sim_cls, NavigationSimulator) else _driving
    parts = []
    for start in range(0, episodes, BATCH):
        n = min(BATCH, episodes - start)
        parts.append(gather(sim_cls, split, n, [seed + start + i for i in range(n)]))
    return tuple(np.concatenate(p) for p in zip(*parts))  # type: ignore[return-value]


def _navigation(sim_cls: type, split: str, n: int, seeds: list[int]) -> tuple[np.ndarray, ...]:
    sim = sim_cls(n, instruction_split=split)
    sim.seed(seeds)
    sim.reset_envs()
    nameable = set(target_combos(split))
    k = sim.objects.shape[1]
    valid = sim.obj_valid
    col, shp = sim.obj_color, sim.obj_shape
    pairs = col * len(SHAPES) + shp
    nameable_ids = np.array([c * len(SHAPES) + s for c, s in nameable])
    cand = valid & np.isin(pairs, nameable_ids)
    same_col = ((col[:, :, None] == col[:, None, :]) & valid[:, None, :]).sum(-1)
    same_shp = ((shp[:, :, None] == shp[:, None, :]) & valid[:, None, :]).sum(-1)
    rel = sim.objects - sim.pos[:, None, :]
    dist = np.hypot(rel[..., 0], rel[..., 1])
    bearing = np.arctan2(rel[..., 1], rel[..., 0]) - sim.heading[:, None]
    pair = np.linalg.norm(sim.objects[:, :, None] - sim.objects[:, None, :], axis=-1)
    pair = np.where(valid[:, None, :] & ~np.eye(k, dtype=bool), pair, 1e3)
    wall = np.minimum(sim.objects, sim.size[:, None, :] - sim.objects).min(-1)
    feats = np.concatenate(
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
    return feats.astype(np.float32), cand, sim.target.copy()


def _driving(sim_cls: type, split: str, n: int, seeds: list[int]) -> tuple[np.ndarray, ...]:
    sim = sim_cls(n, instruction_split=split, tasks=("follow", "overtake"))
    sim.seed(seeds)
    sim.reset_envs()
    t = sim.traffic
    valid = t.valid
    slots = valid.shape[1]
    col = t.color
    same_col = ((col[:, :, None] == col[:, None, :]) & valid[:, None, :]).sum(-1)
    cand = valid & (same_col == 1)
    dx = t.x - sim.ego.x[:, None]
    same_lane = (t.lane[:, :, None] == t.lane[:, None, :]) & valid[:, None, :]
    ahead = t.x[:, None, :] - t.x[:, :, None]
    gap_front = np.where(same_lane & (ahead > 0), ahead, 300.0).min(-1)
    gap_back = np.where(same_lane & (ahead < 0), -ahead, 300.0).min(-1)
    ego_lane = (sim.ego.y // LANE_WIDTH).astype(np.int64)
    lanes = sim.road.n_lanes
    feats = np.concatenate(
        [
            np.eye(len(CAR_COLORS))[col],
            np.eye(5)[np.minimum(t.lane, 4)],
            (t.lane == ego_lane[:, None])[..., None],
            (t.lane == lanes[:, None] - 1)[..., None],
            dx[..., None],
            t.v[..., None],
            t.v0[..., None],
            gap_front[..., None],
            gap_back[..., None],
            np.repeat(lanes[:, None], slots, 1)[..., None],
            np.repeat(cand.sum(1, keepdims=True), slots, 1)[..., None],
        ],
        axis=-1,
    )
    return feats.astype(np.float32), cand, sim.tasks.target.copy()


def fit_and_score(
    feats: np.ndarray, candidates: np.ndarray, target: np.ndarray, iterations: int = 300
) -> dict[str, Any]:
    """Trains a per-candidate MLP scorer (softmax over each episode's candidates).

    The first two thirds of the episodes fit it, the last third scores it.

    Args:
        feats: ``(E, K, F)`` float32 candidate features; candidates: ``(E, K)`` bool;
            target: ``(E,)`` int64 slot of the named candidate (must be a candidate).
        iterations: Full-batch Adam steps.

    Returns:
        ``{"accuracy", "chance", "episodes"}`` on the held-out third.

    Raises:
        ValueError: A target that is not among its episode's candidates (the generator
            named something no instruction of the split could name).
    """
    import torch as th

    rows = np.arange(len(candidates))
    if not candidates[rows, target].all():
        raise ValueError("some episode names a referent outside its candidate set")
    # Keep only candidate columns (a handful per episode): the fit is over candidates.
    order = np.argsort(~candidates, axis=1, kind="stable")[:, : int(candidates.sum(1).max())]
    target = np.argmax(order == target[:, None], axis=1)
    feats, candidates = feats[rows[:, None], order], candidates[rows[:, None], order]
    th.manual_seed(0)
    x = th.as_tensor(feats)
    m = th.as_tensor(candidates)
    x = (x - x[m].mean(0)) / (x[m].std(0) + 1e-6)
    y = th.as_tensor(target)
    n_fit = 2 * len(x) // 3
    net = th.nn.Sequential(
        th.nn.Linear(x.shape[-1], 64), th.nn.ReLU(), th.nn.Linear(64, 64), th.nn.ReLU(),
        th.nn.Linear(64, 1),
    )  # fmt: skip
    opt = th.optim.Adam(net.parameters(), lr=3e-3)

    def logits(sl: slice) -> th.Tensor:
        return net(x[sl]).squeeze(-1).masked_fill(~m[sl], -1e9)

    for _ in range(iterations):
        opt.zero_grad()
        th.nn.functional.cross_entropy(logits(slice(0, n_fit)), y[:n_fit]).backward()
        opt.step()
    with th.no_grad():
        pred = logits(slice(n_fit, None)).argmax(-1)
    held = candidates[n_fit:]
    return {
        "accuracy": float((pred == y[n_fit:]).float().mean()),
        "chance": float(np.mean(1.0 / held.sum(axis=1))),
        "episodes": len(held),
    }
