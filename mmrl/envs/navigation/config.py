"""Typed keyword arguments of ``mmrl/Navigation-v1`` (unknown names raise ``ValueError``)."""

from __future__ import annotations

import dataclasses

from mmrl.envs.config import SensorConfig, check_choice, check_float, check_int
from mmrl.envs.navigation.instructions import SPLITS


@dataclasses.dataclass
class NavigationConfig(SensorConfig):
    """Parameters of the navigation task; every field is a keyword argument of the env.

    The sensor settings (``camera_size``, ``lidar_beams``, ``lidar_range``, ``lidar_noise``,
    ``lidar_dropout``, ``max_text_len``) are inherited from
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
        progress_weight: Reward per metre the robot gets closer to the target.
        success_reward: Reward for reaching the named object.
        wrong_object_penalty: Penalty (subtracted) for touching another object.
        collision_penalty: Penalty (subtracted) per step that bumps into a wall or obstacle.
        time_penalty: Penalty (subtracted) per step.
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
    # Rewards on the scale of 1 (success): SB3's PPO shares the feature extractor between
    # policy and value and does not normalize rewards, so returns of ~10 let value-loss
    # gradients swamp the encoders. A small wrong-object penalty (the lost success is the
    # real cost) avoids the "touch nothing, time out" optimum that -5 produced in PPO runs.
    progress_weight: float = 0.1
    success_reward: float = 1.0
    wrong_object_penalty: float = 0.1
    collision_penalty: float = 0.02
    time_penalty: float = 0.001
    lidar_range: float = 8.0  # redeclared for its default only: validated by SensorConfig
    lamp_range: float = 0.0
    stop_to_choose: bool = False

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
        check_float("progress_weight", self.progress_weight, 0.0, 100.0)
        check_float("success_reward", self.success_reward, 0.0, 1000.0)
        check_float("wrong_object_penalty", self.wrong_object_penalty, 0.0, 1000.0)
        check_float("collision_penalty", self.collision_penalty, 0.0, 100.0)
        check_float("time_penalty", self.time_penalty, 0.0, 10.0)
        if self.lamp_range != 0:
            try:
                check_float("lamp_range", self.lamp_range, 1.0, 50.0)
            except ValueError as err:
                raise ValueError(f"{err} (or 0 for a lit room)") from None
        check_choice("stop_to_choose", self.stop_to_choose, [False, True])
        super().__post_init__()  # the sensor settings
