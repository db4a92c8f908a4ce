"""The Navigation expert's planner: grid clearance, A* and the planned paths."""

from __future__ import annotations

import numpy as np
import pytest

from mmrl.envs.navigation.planner import (
    LINE_CLEARANCE,
    RESOLUTION,
    astar,
    clearance,
    grid_clearance,
    plan_path,
)
from mmrl.envs.navigation.simulator import SUCCESS_RADIUS, NavigationSimulator


@pytest.mark.parametrize(("n_boxes", "n_others"), [(0, 0), (2, 0), (0, 3), (3, 4)])
def test_grid_clearance_equals_pointwise_clearance(n_boxes: int, n_others: int) -> None:
    rng = np.random.default_rng(n_boxes * 10 + n_others)
    size = np.array([6.3, 5.1])
    boxes = np.column_stack([rng.uniform(1, 5, (n_boxes, 2)), rng.uniform(0.2, 0.8, (n_boxes, 2))])
    others = rng.uniform(0.5, 5.0, (n_others, 2))
    xs, ys = (np.arange(63) + 0.5) * RESOLUTION, (np.arange(51) + 0.5) * RESOLUTION
    points = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1).reshape(-1, 2)
    expected = clearance(points, size, boxes.reshape(-1, 4), others).reshape(63, 51)
    np.testing.assert_array_equal(grid_clearance(xs, ys, size, boxes.reshape(-1, 4), others),
                                  expected)  # fmt: skip


def test_astar_goes_around_a_wall_and_reports_unreachable_goals() -> None:
    free = np.ones((7, 7), bool)
    free[3, :6] = False  # a wall with a gap at j = 6
    goal = np.zeros_like(free)
    goal[6, 0] = True
    path = astar(free, np.ones((7, 7)), (0, 0), goal, (6.0, 0.0), 0.0)
    assert path is not None and path[0] == (0, 0) and path[-1] == (6, 0)
    assert all(free[c] for c in path)
    steps = np.abs(np.diff(np.array(path), axis=0))
    assert steps.max() == 1 and (steps.sum(axis=1) >= 1).all()  # 8-connected moves
    assert (3, 6) in path  # through the gap
    free[3, 6] = False
    assert astar(free, np.ones((7, 7)), (0, 0), goal, (6.0, 0.0), 0.0) is None


def test_astar_prefers_cheap_cells() -> None:
    free = np.ones((5, 9), bool)
    cost = np.ones((5, 9))
    cost[1:4, 4] = 50.0  # an expensive band in the middle rows of column 4
    goal = np.zeros_like(free)
    goal[2, 8] = True
    path = astar(free, cost, (2, 0), goal, (2.0, 8.0), 0.0)
    assert path is not None and all(cost[c] == 1.0 for c in path)


def test_planned_paths_stay_clear_of_blockers() -> None:
    sim = NavigationSimulator(24, max_obstacles=4)
    sim.seed(list(range(24)))
    sim.reset_envs()
    for i in range(sim.num_envs):
        others = sim.obj_valid[i].copy()
        others[sim.target[i]] = False
        boxes = sim.boxes[i][sim.box_valid[i]].astype(np.float64)
        objects = sim.objects[i][others].astype(np.float64)
        target = sim.objects[i, sim.target[i]].astype(np.float64)
        size = sim.size[i].astype(np.float64)
        path = plan_path(sim.pos[i].astype(np.float64), size, boxes, objects, target,
                         SUCCESS_RADIUS)  # fmt: skip
        np.testing.assert_allclose(path[0], sim.pos[i], atol=1e-6)
        np.testing.assert_allclose(path[-1], target, atol=1e-6)
        # Until the success radius the robot keeps the shortcut clearance (minus the
        # sampling tolerance of the line checks).
        far = np.hypot(*(path - target).T) > SUCCESS_RADIUS
        start_zone = np.hypot(*(path - sim.pos[i]).T) < 0.25
        gap = clearance(path[far & ~start_zone].astype(np.float64), size, boxes, objects)
        assert (gap >= LINE_CLEARANCE - 0.02).all(), (i, gap.min())


def test_clear_straight_leg_skips_the_search_with_the_same_path(monkeypatch) -> None:
    import mmrl.envs.navigation.planner as planner

    sim = NavigationSimulator(24, max_obstacles=4)
    sim.seed(list(range(100, 124)))
    sim.reset_envs()
    real = planner._final_leg_clear
    shortcuts = 0
    for i in range(sim.num_envs):
        others = sim.obj_valid[i].copy()
        others[sim.target[i]] = False
        args = (sim.pos[i].astype(np.float64), sim.size[i].astype(np.float64),
                sim.boxes[i][sim.box_valid[i]].astype(np.float64),
                sim.objects[i][others].astype(np.float64),
                sim.objects[i, sim.target[i]].astype(np.float64), SUCCESS_RADIUS)  # fmt: skip
        fast = plan_path(*args)

        def first_call_says_blocked(*a, calls=[], **k):  # noqa: B006 (fresh list per room)
            calls.append(1)
            return False if len(calls) == 1 else real(*a, **k)

        monkeypatch.setattr(planner, "_final_leg_clear", first_call_says_blocked)
        searched = plan_path(*args)  # grid search and string pulling
        monkeypatch.setattr(planner, "_final_leg_clear", real)
        start, size, boxes, objects, target, radius = args
        shortcuts += real(start, target, size, boxes, objects, radius)
        np.testing.assert_array_equal(fast, searched)
    assert 0 < shortcuts < sim.num_envs  # both kinds of rooms occurred
