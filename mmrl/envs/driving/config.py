"""Typed keyword arguments of ``mmrl/Driving-v0`` (unknown names raise ``ValueError``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from mmrl.envs.config import SensorConfig, check_choice, check_float, check_int, check_weights
from mmrl.envs.driving.instructions import SPLITS, TASKS

REWARD_WEIGHTS: dict[str, float] = {
    "progress": 1.0,
    "instruction": 1.0,
    "collision": 1.0,
    "off_road": 1.0,
    "comfort": 0.01,
}
"""Default weight of each reward term, keyed by the term's name in ``info["rewards"]``
(the simulator's ``reward_terms`` are these keys, in this order)."""


@dataclasses.dataclass
class DrivingConfig(SensorConfig):
    """Parameters of the driving task; every field is a keyword argument of the env.

    The sensor settings (``camera_size``, ``camera_frames``, ``lidar_beams``, ``lidar_range``
    (50 m), ``lidar_noise``, ``lidar_dropout``, ``max_text_len``) are inherited from
    :class:`~mmrl.envs.config.SensorConfig`, with its defaults.

    Attributes:
        continuous: ``False``: Discrete(5) meta-actions (0 lane left, 1 idle, 2 lane right,
            3 faster, 4 slower); ``True``: Box ``[steer, accel]`` in ``[-1, 1]`` (positive
            steer turns right; out-of-range values are clipped).
        instruction_split: ``"train"`` or ``"test"`` (held-out task-argument pairs and
            paraphrase templates, see :mod:`mmrl.envs.driving.instructions`).
        tasks: Task types an episode may draw (a subset of
            :data:`~mmrl.envs.driving.instructions.TASKS`, e.g. for a curriculum).
        min_lanes: Fewest main-road lanes an episode may draw (2..4).
        max_lanes: Most main-road lanes an episode may draw (2..4, >= ``min_lanes``).
        traffic_density: Scale of the number of other cars (0 = empty road); each episode
            further draws a factor in ``[0.6, 1.4]``.
        max_episode_steps: Steps (0.5 s each) after which the simulator truncates an
            episode (``make_vec_env`` uses it; ``gym.make`` adds its own ``TimeLimit`` from
            the registration, also 300, and takes ``max_episode_steps=`` for that one).
        reward_weights: Weight of each reward term, keyed by its name in
            ``info["rewards"]`` (``progress``, ``instruction``, ``collision``, ``off_road``,
            ``comfort``; see :data:`REWARD_WEIGHTS` for the defaults): each term is its weight
            times the unweighted term. A mapping may name only some terms (the others keep
            their defaults); weights are finite numbers in ``[0, 1000]``. Unweighted terms:
            ``progress`` the fraction of the route to the exit's decision point driven this
            step; ``instruction`` below; ``collision`` -1 on hitting a car; ``off_road`` -1
            on leaving the road (both end the episode); ``comfort`` minus the lane/speed
            changes (discrete) or the mean absolute command (continuous).
        instruction_shaping: Scale, inside the ``instruction`` term, of the potential-based
            shaping (change in the normalized distance to the instructed goal state).
        instruction_on_task: Added to the ``instruction`` term per step while the
            instruction's condition currently holds.
        instruction_success: Added to the ``instruction`` term when the decision point is
            reached with the instruction carried out.
        instruction_failure: Subtracted from the ``instruction`` term when the decision point
            is reached without the instruction carried out.
        lidar_kerbs: ``True``: the road is bounded by kerbs the lidar sees (their ranges
            tell the ego's lateral position on the road). ``False``: the road's edges are
            paint, like its lane lines, so the lidar sees only cars and where the ego is on
            the road (which lane, the exit lane opening) comes from the camera alone.
            Driving-v1 default ``False``; v0 ``True``.
    """

    continuous: bool = False
    instruction_split: str = "train"
    tasks: tuple[str, ...] = TASKS
    min_lanes: int = 2
    max_lanes: int = 4
    traffic_density: float = 1.0
    max_episode_steps: int = 300
    reward_weights: dict[str, float] = dataclasses.field(
        default_factory=lambda: dict(REWARD_WEIGHTS)
    )
    instruction_shaping: float = 1.0
    instruction_on_task: float = 0.02
    instruction_success: float = 1.0
    instruction_failure: float = 0.5
    lidar_kerbs: bool = True

    renamed: ClassVar[dict[str, str]] = {
        "progress_weight": "reward_weights.progress",
        "collision_penalty": "reward_weights.collision",
        "off_road_penalty": "reward_weights.off_road",
        "comfort_weight": "reward_weights.comfort",
        "shaping_weight": "instruction_shaping",
        "on_task_reward": "instruction_on_task",
        "success_reward": "instruction_success",
        "failure_penalty": "instruction_failure",
    }
    """The reward parameters' names before they were keyed by term (issue 13)."""

    def __post_init__(self) -> None:
        check_choice("continuous", self.continuous, [False, True])
        check_choice("instruction_split", self.instruction_split, SPLITS)
        if isinstance(self.tasks, str):
            self.tasks = (self.tasks,)
        try:
            self.tasks = tuple(self.tasks)
        except TypeError:
            raise ValueError(
                f"tasks must be a non-empty sequence of {list(TASKS)}, got {self.tasks!r}"
            ) from None
        if not self.tasks or any(t not in TASKS for t in self.tasks):
            raise ValueError(
                f"tasks must be a non-empty sequence of {list(TASKS)}, got {self.tasks!r}"
            )
        check_int("min_lanes", self.min_lanes, 2, 4)
        check_int("max_lanes", self.max_lanes, 2, 4)
        if self.max_lanes < self.min_lanes:
            raise ValueError(
                f"max_lanes must be >= min_lanes ({self.min_lanes}), got {self.max_lanes}"
            )
        check_float("traffic_density", self.traffic_density, 0.0, 2.0)
        check_int("max_episode_steps", self.max_episode_steps, 10, 100_000)
        check_choice("lidar_kerbs", self.lidar_kerbs, [False, True])
        self.reward_weights = check_weights("reward_weights", self.reward_weights, REWARD_WEIGHTS)
        for name in (
            "instruction_shaping",
            "instruction_on_task",
            "instruction_success",
            "instruction_failure",
        ):
            check_float(name, getattr(self, name), 0.0, 1000.0)
        super().__post_init__()  # the sensor settings
