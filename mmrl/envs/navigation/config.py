"""Typed keyword arguments of ``mmrl/Navigation-v1`` (unknown names raise ``ValueError``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from mmrl.envs.config import SensorConfig, check_choice, check_float, check_int, check_weights
from mmrl.envs.navigation.instructions import SPLITS

# Rewards on the scale of 1 (success): SB3's PPO shares the feature extractor between policy
# and value and does not normalize rewards, so returns of ~10 let value-loss gradients swamp
# the encoders. A small wrong-object weight (the lost success is the real cost) avoids the
# "touch nothing, time out" optimum that -5 produced in PPO runs.
REWARD_WEIGHTS: dict[str, float] = {
    "progress": 0.1,
    "success": 1.0,
    "wrong_object": 0.1,
    "collision": 0.02,
    "time": 0.001,
}
"""Default weight of each reward term, keyed by the term's name in ``info["rewards"]``
(the simulator's ``reward_terms`` are these keys, in this order)."""


@dataclasses.dataclass
class NavigationConfig(SensorConfig):
    """Parameters of the navigation task; every field is a keyword argument of the env.

    The sensor settings (``camera_size``, ``camera_frames``, ``lidar_beams``, ``lidar_range``,
    ``lidar_noise``, ``lidar_dropout``, ``max_text_len``) are inherited from
    :class:`~mmrl.envs.config.SensorConfig`, with its defaults except ``lidar_range``.

    Attributes:
        continuous: ``False``: Discrete(4) actions (forward, left, right, stop); ``True``:
            Box ``[linear, angular]`` in ``[-1, 1]`` (out-of-range values are clipped).
        instruction_split: ``"train"`` or ``"test"`` (held-out colour-shape targets and
            paraphrase templates).
        room_size: Largest room side in metres, in ``[7, 20]``; each episode draws both sides
            uniformly in ``[0.75 * room_size, room_size]``.
        min_objects: Fewest objects in the room (>= 3 so both distractor kinds exist).
        max_objects: Most objects in the room (observation shapes do not depend on it).
        max_obstacles: Most box obstacles; each episode draws ``0..max_obstacles``.
        forward_speed: Metres driven per step at full linear command.
        turn_speed: Degrees turned per step at full angular command.
        fov_deg: Horizontal (and vertical) field of view of the camera in degrees.
        reward_weights: Weight of each reward term, keyed by its name in
            ``info["rewards"]`` (``progress``, ``success``, ``wrong_object``, ``collision``,
            ``time``; see :data:`REWARD_WEIGHTS` for the defaults): each term is its weight
            times the unweighted term. A mapping may name only some terms (the others keep
            their defaults); weights are finite numbers in ``[0, 1000]``. Unweighted terms:
            ``progress`` the metres the robot got closer to the target this step;
            ``success`` 1 for choosing (v0: reaching) the target; ``wrong_object`` -1 for
            choosing or touching another object; ``collision`` -1 per step that bumps into a
            wall or obstacle; ``time`` -1 per step.
        lidar_range: The inherited sensor setting, with the navigation default of 8 m.
        lamp_range: ``0``: the room is lit. Otherwise the robot's lamp is the only light: the
            camera sees nothing beyond this many metres (the lidar still does). Navigation-v1
            default 1.5 m; v0 default 0.
        stop_to_choose: ``True``: the robot chooses an object by stopping (discrete action 3;
            continuous: both commands below 0.1 in magnitude) within reach of it, and the
            episode ends with success only if it chose the target; coming near the target is
            not enough. ``False`` (v0): coming within reach of the target succeeds.
    """

    continuous: bool = False
    instruction_split: str = "train"
    room_size: float = 8.0
    min_objects: int = 3
    max_objects: int = 5
    max_obstacles: int = 3
    forward_speed: float = 0.25
    turn_speed: float = 22.5
    fov_deg: float = 90.0
    reward_weights: dict[str, float] = dataclasses.field(
        default_factory=lambda: dict(REWARD_WEIGHTS)
    )
    lidar_range: float = 8.0  # redeclared for its default only: validated by SensorConfig
    lamp_range: float = 0.0
    stop_to_choose: bool = False

    renamed: ClassVar[dict[str, str]] = {
        "progress_weight": "reward_weights.progress",
        "success_reward": "reward_weights.success",
        "wrong_object_penalty": "reward_weights.wrong_object",
        "collision_penalty": "reward_weights.collision",
        "time_penalty": "reward_weights.time",
    }
    """The reward parameters' names before they were keyed by term (issue 13)."""

    def __post_init__(self) -> None:
        check_choice("continuous", self.continuous, [False, True])
        check_choice("instruction_split", self.instruction_split, SPLITS)
        # Below 7 m, six 0.8 m objects kept 0.8 m apart no longer fit the smallest draw.
        check_float("room_size", self.room_size, 7.0, 20.0)
        check_int("min_objects", self.min_objects, 3, 6)
        check_int("max_objects", self.max_objects, 3, 6)
        if self.max_objects < self.min_objects:
            raise ValueError(
                f"max_objects must be >= min_objects ({self.min_objects}), got {self.max_objects}"
            )
        check_int("max_obstacles", self.max_obstacles, 0, 4)
        check_float("forward_speed", self.forward_speed, 0.05, 0.5)
        check_float("turn_speed", self.turn_speed, 5.0, 90.0)
        check_float("fov_deg", self.fov_deg, 30.0, 150.0)
        self.reward_weights = check_weights("reward_weights", self.reward_weights, REWARD_WEIGHTS)
        if self.lamp_range != 0:
            try:
                check_float("lamp_range", self.lamp_range, 1.0, 50.0)
            except ValueError as err:
                raise ValueError(f"{err} (or 0 for a lit room)") from None
        check_choice("stop_to_choose", self.stop_to_choose, [False, True])
        super().__post_init__()  # the sensor settings
