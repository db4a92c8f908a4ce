"""The scene alone must not reveal the instruction's referent (issue 13).

A scene-only predictor (:mod:`mmrl.envs.shortcuts`) is trained per env and split; on
held-out episodes it must stay within 5 points of chance. The same predictor on the ``-v0``
generators, which leak, must beat chance by far: that keeps the test able to fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmrl.envs.driving import DrivingSimulator, DrivingSimulatorV0
from mmrl.envs.navigation import NavigationSimulator, NavigationSimulatorV0
from mmrl.envs.shortcuts import fit_and_score, scene_candidates

EPISODES = 3000
"""Episodes per check: 2/3 fit the predictor, 1/3 score it (SE of the score ~1.5 points)."""


def _score(sim_cls, split: str) -> dict:
    return fit_and_score(*scene_candidates(sim_cls, split, EPISODES, seed=7))


@pytest.mark.parametrize("sim_cls", [NavigationSimulator, DrivingSimulator])
@pytest.mark.parametrize("split", ["train", "test"])
def test_scene_alone_is_at_chance(sim_cls, split):
    r = _score(sim_cls, split)
    assert r["accuracy"] <= r["chance"] + 0.05, r


@pytest.mark.parametrize("sim_cls", [NavigationSimulatorV0, DrivingSimulatorV0])
def test_v0_leak_is_detected(sim_cls):
    r = _score(sim_cls, "train")
    assert r["accuracy"] >= r["chance"] + 0.3, r


def test_a_target_outside_the_candidates_is_refused():
    feats, cand, target = scene_candidates(NavigationSimulator, "train", 10)
    cand[0, target[0]] = False
    with pytest.raises(ValueError, match="outside its candidate set"):
        fit_and_score(feats, cand, target)


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
