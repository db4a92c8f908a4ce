"""The driving state that tasks and the expert read, owned by the simulator.

:mod:`~mmrl.envs.driving.tasks` (rewards, success, labels) and
:mod:`~mmrl.envs.driving.expert` take any object with the attributes of :class:`DrivingState`
(as Navigation's planner takes arrays), so neither imports the simulator;
:class:`~mmrl.envs.driving.simulator.DrivingSimulator` satisfies the protocol structurally.
The per-copy task parameters (:class:`TaskBatch`) and the quantities derived from the state
each step (:class:`Derived`) live here with it. Every array has one entry (or row) per copy:
``n`` is the number of copies.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from mmrl.envs.driving.config import DrivingConfig
from mmrl.envs.driving.dynamics import EgoBatch
from mmrl.envs.driving.instructions import FOLLOW, LANE, OVERTAKE, TAKE_EXIT, TASKS
from mmrl.envs.driving.road import RoadBatch, lane_center
from mmrl.envs.driving.traffic import TrafficBatch


@dataclasses.dataclass
class TaskBatch:
    """Per-copy task parameters, fixed at reset (each ``(n,)``).

    Attributes:
        task: Task id (index in ``TASKS``).  arg: Lane index or colour id, or -1.
        onehot: ``(n, len(TASKS))`` bool, ``onehot[i, task[i]]``.
        goal_lane: Lane the task needs the ego in (exit lane = ``n_lanes``), or -1.
        goal_y: Centre (m) of ``goal_lane`` (0 when none).
        target: Slot of the named car (0 when none).  has_target: The task names a car.
        present: ``(len(TASKS),)`` bool, some copy has the task (refreshed by
        :meth:`refresh`).
    """

    task: np.ndarray
    arg: np.ndarray
    onehot: np.ndarray
    goal_lane: np.ndarray
    goal_y: np.ndarray
    target: np.ndarray
    has_target: np.ndarray
    present: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(len(TASKS), bool))

    @classmethod
    def empty(cls, n: int) -> TaskBatch:
        """Placeholder tasks for ``n`` copies (overwritten at reset)."""
        i = np.zeros(n, np.int64)
        return cls(i.copy(), i - 1, np.zeros((n, len(TASKS)), bool), i - 1, np.zeros(n),
                   i.copy(), np.zeros(n, bool))  # fmt: skip

    def set_rows(
        self,
        idx: np.ndarray,
        task: np.ndarray,
        arg: np.ndarray,
        n_lanes: np.ndarray,
        target: np.ndarray,
        target_lane: np.ndarray,
        version: int = 1,
    ) -> None:
        """Stores the tasks of copies ``idx`` (all ``(m,)`` int64; ``target`` and
        ``target_lane`` -1 where no car is named). ``version``: the scene version; from v1
        on, overtaking ends in the named car's lane, which becomes the goal lane."""
        self.task[idx], self.arg[idx] = task, arg
        onehot = np.zeros((len(idx), len(TASKS)), bool)
        onehot[np.arange(len(idx)), task] = True
        self.onehot[idx] = onehot
        goal = np.full(len(idx), -1, np.int64)
        goal = np.where(task == TAKE_EXIT, n_lanes, goal)
        goal = np.where(task == LANE, arg, goal)
        goal = np.where(task == FOLLOW, target_lane, goal)
        if version >= 1:
            goal = np.where(task == OVERTAKE, target_lane, goal)
        self.goal_lane[idx] = goal
        self.goal_y[idx] = np.where(goal >= 0, lane_center(goal), 0.0)
        self.target[idx] = np.maximum(target, 0)
        self.has_target[idx] = target >= 0

    def refresh(self) -> None:
        """Updates ``present`` after resets."""
        self.present = self.onehot.any(axis=0)


@dataclasses.dataclass
class Derived:
    """Quantities of the current state that rewards, labels and the expert share (``(n,)``).

    Attributes:
        lane: Ego lane (exit lane = ``n_lanes``).  target_x, target_v: Named car position and
        speed (0 when none).  d: ``target_x - ego x``.
    """

    lane: np.ndarray
    target_x: np.ndarray
    target_v: np.ndarray
    d: np.ndarray


class DrivingState(Protocol):
    """What tasks and the expert read of the driving simulator's ``n`` copies.

    Read-only: neither tasks nor the expert change the state.
    """

    @property
    def config(self) -> DrivingConfig:
        """The env's parameters (the expert reads ``continuous``)."""

    @property
    def scene_version(self) -> int:
        """Episode generator (0: Driving-v0, 1: v1), which changes what overtaking means."""

    @property
    def rows(self) -> np.ndarray:
        """``(n,)`` int64 ``arange(n)``, for per-copy fancy indexing."""

    @property
    def ego(self) -> EgoBatch:
        """The ego cars, each field ``(n,)`` (float64 kinematics, int64 lane and level)."""

    @property
    def road(self) -> RoadBatch:
        """Each copy's road: ``n_lanes`` int64, ``ramp_start``/``ramp_end`` float64 (m)."""

    @property
    def traffic(self) -> TrafficBatch:
        """Other cars, each field ``(n, slots)`` (float64 ``x``, ``y``, ``v``; int64 ``lane``;
        bool ``valid``)."""

    @property
    def tasks(self) -> TaskBatch:
        """Each copy's task parameters, fixed at reset."""

    @property
    def derived(self) -> Derived:
        """Quantities derived from the current state by
        :func:`~mmrl.envs.driving.tasks.derive` (refreshed every reset and step)."""

    @property
    def steps(self) -> np.ndarray:
        """``(n,)`` int64 steps of the episode, including the current one."""

    @property
    def sat_steps(self) -> np.ndarray:
        """``(n,)`` int64 steps of the episode on which the instruction's condition held."""

    @property
    def sat_streak(self) -> np.ndarray:
        """``(n,)`` int64 consecutive steps up to now on which the condition held."""
