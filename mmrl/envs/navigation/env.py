"""Gymnasium env of the language-conditioned navigation task."""

from __future__ import annotations

from typing import ClassVar

from mmrl.envs.base import BatchedSimulator, MultimodalEnv
from mmrl.envs.gym_vector import MultimodalVectorEnv
from mmrl.envs.navigation.simulator import NavigationSimulator, NavigationSimulatorV0


class NavigationEnv(MultimodalEnv):
    """## Description

    A small mobile robot stands in a procedurally generated rectangular room (sides drawn in
    6-8 m) with up to three box obstacles and three to five objects. Each object has one of
    six colours (red, green, blue, yellow, purple, cyan) and one of four shapes (ball, cube,
    cone, cylinder) on a round 0.8 m footprint. An instruction such as *"go to the red
    ball"*, *"navigate to the cube that is blue"* or *"head towards the yellow cone"* names
    one object; the robot must drive to it and *stop* next to it without touching any other
    object. The room is dark: the robot's lamp lights only the nearest ``lamp_range`` (1.5 m),
    so at the start no object is lit and the robot has 100 steps to find the named one.

    The task needs every modality (see ``DESIGN.md``, "Why each modality matters"):

    * **text** is the only source of the goal;
    * **camera** is the only sensor that sees colour and shape: the scene is drawn first
      (each object shares the colour or the shape of another where the split allows) and the
      target is then drawn uniformly among the objects the split could name, so nothing but
      the instruction tells the target apart (a scene-only predictor in the test suite stays
      at chance), and all objects have the same round footprint, so the lidar cannot tell
      them apart;
    * **lidar** is the only sensor that sees beyond the lamp and behind and beside the robot,
      with precise range (the camera covers a 90 degree cone and goes black past 1.5 m):
      where the objects and walls of the room are has to be read from it, and a robot that
      searches the dark room without it runs out of time (100 steps; the expert needs at
      most 50);
    * the robot chooses an object by stopping next to it, so an agent that does not know the
      target (no text) or cannot tell objects apart (no camera) cannot win by visiting every
      object in turn;
    * **state** tells whether the last move was blocked and how fast the robot moves.

    ## Observation Space

    A ``Dict`` with:

    | Key | Space | Content |
    |-----|-------|---------|
    | ``camera`` | ``Box(0, 255, (S, S, 3k), uint8)`` | first-person RGB, ``S = camera_size`` |
    | ``lidar`` | ``Box(0, 1, (lidar_beams,), float32)`` | 360 degree ranges / ``lidar_range`` |
    | ``text`` | ``Box(0, V - 1, (max_text_len,), int64)`` | instruction token ids, 0-padded |
    | ``state`` | ``Box(-1, 1, (6,), float32)`` | proprioception (below) |

    * ``camera`` (64 x 64): column ray casting with perspective and a ``fov_deg`` (90 degree)
      field of view; walls grey, boxes brown, objects in their colour with shape
      silhouettes (ball round, cube flat-topped, cone pointed, cylinder tall and
      flat-topped); distance fog; lit by the robot's lamp only: walls, boxes, objects, floor
      and ceiling fade to black over the last 0.75 m before ``lamp_range`` (1.5 m).
      ``camera_frames=k`` (default 1) stacks the last ``k`` frames along the channels,
      oldest first (the current frame is ``camera[..., -3:]``; after a reset every slot
      holds the first frame); ``camera_frame_stride=s`` (default 1) spaces them ``s``
      steps apart.
    * ``lidar`` (64 beams, 8 m): beam 0 straight ahead, angles counter-clockwise; sees walls,
      boxes and objects; optional Gaussian noise (``lidar_noise``) and dropout
      (``lidar_dropout``, a dropped beam reads 1).
    * ``text``: ids of the shared :class:`~mmrl.envs.tokenizer.Tokenizer` (``V`` words);
      the raw string is ``info["instruction"]``.
    * ``state``: achieved linear and angular velocity (normalized by full speed), last
      commanded linear and angular action, bumped-on-last-step flag, elapsed fraction of
      the episode; named ``velocity``, ``turn_rate``, ``forward_cmd``, ``turn_cmd``,
      ``bumped``, ``elapsed`` (the simulator's ``state_names``, printed on frames).

    Frames (``render_mode="rgb_array"``, videos, ``mmrl demo``/``enjoy``) title the camera
    with its pixels and field of view (``camera 64x64, 90 deg FOV, lamp 1.5 m``; with
    stacked frames they show the newest, ``..., newest of 4 frames``) and the
    lidar with its beams and range (``lidar 64 beams, 8 m``), and add a top-down map: the
    room, boxes, every object in its colour and shape, the target ringed in white, the robot
    in orange with its heading, field of view and the path driven so far, so a failed
    episode shows where the target was. Text: instruction, step, the last reward's terms,
    success and collision, and the named state.

    The state holds no goal information.

    ## Action Space

    Default ``Discrete(4)``: ``0`` forward ``forward_speed`` (0.25 m), ``1`` turn left
    (counter-clockwise) ``turn_speed`` (22.5 degrees), ``2`` turn right, ``3`` stop (within
    reach of an object: choose it, which ends the episode; elsewhere: stand still).

    With ``continuous=True``: ``Box(-1, 1, (2,), float32)`` ``[linear, angular]``; the robot
    first turns by ``angular * turn_speed`` then drives ``linear * forward_speed`` (negative
    ``linear`` reverses at half speed); both commands below 0.1 in magnitude count as
    stopping. Out-of-range values are clipped; NaN, infinite or wrongly shaped actions raise
    ``ValueError``.

    ## Rewards

    The scalar reward is the sum of the named terms in ``info["rewards"]``. Each term is its
    weight in ``reward_weights`` (keyed by the same names; defaults in brackets) times its
    unweighted value:

    * ``progress`` (0.1): the decrease of the distance to the target this step, in metres
      (dense shaping, potential-based, Ng et al. 1999);
    * ``success`` (1): ``+1`` on stopping at the target;
    * ``wrong_object`` (0.1): ``-1`` on stopping at or touching another object (the lost
      success is the real cost; a large penalty taught PPO to avoid all objects);
    * ``collision`` (0.02): ``-1`` per step the robot bumps a wall or box;
    * ``time`` (0.001): ``-1`` per step.

    Returns lie in about ``[-0.3, 1.6]``, a scale PPO handles without reward normalization.

    ## Starting State

    Room size, obstacles, robot pose, objects, target and instruction template are drawn from
    the episode's seed, in that order: the target is drawn last, uniformly among the
    *candidates* (every object in the train split; the two held-out colour-shape pairs of the
    scene in the test split, whose other objects are train pairs sharing a candidate's colour
    or shape). Every blocker is at least 0.8 m from every other, so all rooms are solvable;
    every object is at least 2 m from the robot's start, which faces a random direction (the
    target is often out of view and has to be searched for).

    ## Episode End

    Termination:

    * success: the robot stops with its centre within 0.9 m of the target's centre (0.3 m
      gap), the target being the nearest object; ``info["is_success"]`` is ``True``;
    * failure: the robot stops within 0.9 m of another object (nearest), or touches one.

    Bumping into walls and boxes is penalized but not terminal (the move is refused).

    Truncation: after 100 steps (``max_episode_steps`` of the registration; v0: 200).

    ## Arguments

    ```python
    gym.make("mmrl/Navigation-v1", instruction_split="train", continuous=False,
             room_size=8.0, min_objects=3, max_objects=5, max_obstacles=3,
             forward_speed=0.25, turn_speed=22.5, fov_deg=90.0,
             reward_weights={"progress": 0.1, "success": 1.0, "wrong_object": 0.1,
                             "collision": 0.02, "time": 0.001},
             camera_size=64, camera_frames=1, camera_frame_stride=1, lidar_beams=64,
             lidar_range=8.0, lidar_noise=0.0, lidar_dropout=0.0, max_text_len=16,
             lamp_range=1.5, stop_to_choose=True)
    ```

    * ``instruction_split``: ``"train"`` targets 18 colour-shape pairs with six templates
      (the six held-out pairs never appear in its rooms); ``"test"`` targets the six held-out
      pairs (red cone, green cube, blue cylinder, yellow ball, purple cylinder, cyan cube)
      with the train templates plus three paraphrases.
    * ``mmrl/NavigationContinuous-v1`` is ``continuous=True``.
    * ``reward_weights`` may name only some terms (``{"time": 0.0}``); the others keep their
      defaults. The old names ``progress_weight``, ``success_reward``,
      ``wrong_object_penalty``, ``collision_penalty`` and ``time_penalty`` still work, with a
      ``DeprecationWarning``.
    * Unknown names and out-of-range values raise ``ValueError`` naming the parameter and
      what is allowed. Field documentation: :class:`~mmrl.envs.navigation.NavigationConfig`.

    Privileged labels in ``info["labels"]`` (one scalar each): ``target_index``,
    ``target_color``, ``target_shape``, ``target_distance`` (m), ``target_bearing`` (rad,
    counter-clockwise from the heading), ``target_in_view`` (inside the camera's field of
    view), ``target_visible`` (some camera column has it in its line of sight, unoccluded,
    as of the last observation; lit or in the dark), ``target_lit`` (the same, and within
    the lamp's light: what the camera can show), ``target_lit_bearing`` (``target_bearing``
    where ``target_lit``, 0 elsewhere: a bearing the camera can tell),
    ``target_color_lit`` / ``target_shape_lit`` (some object of the named colour / shape,
    the target or another, is lit in view: the instruction's two attributes matched apart),
    ``obstacle_distance`` (free gap to the nearest wall or box, m), ``obstacle_bearing``
    (rad), ``num_objects``, ``num_candidates`` (objects the split could name; the target is
    uniform among them), ``x``, ``y``, ``heading``. The scripted
    expert (``env.unwrapped.expert_action()``) plans with A* on the known map and follows
    the path with a pursuit controller.

    ## Version History

    * v1: The instruction decides the goal and every sensor counts. The robot chooses an
      object by stopping next to it (``stop_to_choose``; in v0 coming within reach of the
      target won, so an agent could visit objects until one counted: a PPO agent with the
      text masked still succeeded in 63 % of rooms). The room is dark beyond the robot's
      1.5 m lamp (``lamp_range``), so where objects and walls are must come from the lidar,
      and episodes end after 100 steps (v0: 200; the expert needs at most 50), so a search
      of the dark room without the lidar runs out of time. (A 3 m lamp with 200 steps, the
      first v1 draft, left the lidar unnecessary: a trained agent lost 14 points without it.)
      The scene no longer gives the target away. v0 always placed one distractor with
      the target's colour and one with its shape, so the target was the one object whose
      colour and shape both recurred (a rule ignoring the instruction found it in 84 % of
      episodes, chance 27 %), and only the target was kept 2 m from the start. v1 draws the
      scene first and the target uniformly among the candidates, keeps every object 2 m from
      the start, and shows no held-out pair in train-split rooms.
    * v0: Initial release (still registered, unchanged, for runs made with it).
    """

    simulator_cls: ClassVar[type[BatchedSimulator]] = NavigationSimulator


class NavigationEnvV0(NavigationEnv):
    """``mmrl/Navigation-v0``: :class:`NavigationEnv` with the v0 episode generator.

    Kept unchanged so runs and datasets made with it still evaluate; its scene reveals the
    target (see :class:`NavigationEnv`'s Version History). Use ``mmrl/Navigation-v1``.
    """

    simulator_cls: ClassVar[type[BatchedSimulator]] = NavigationSimulatorV0


class NavigationVectorEnv(MultimodalVectorEnv):
    """``mmrl/Navigation-v1`` as a Gymnasium ``VectorEnv``: ``num_envs`` copies stepped as one
    batch (``gym.make_vec("mmrl/Navigation-v1", num_envs=N)``; see
    :class:`~mmrl.envs.gym_vector.MultimodalVectorEnv` and :class:`NavigationEnv`)."""

    simulator_cls: ClassVar[type[BatchedSimulator]] = NavigationSimulator


class NavigationVectorEnvV0(NavigationVectorEnv):
    """``mmrl/Navigation-v0`` as a Gymnasium ``VectorEnv`` (see :class:`NavigationEnvV0`)."""

    simulator_cls: ClassVar[type[BatchedSimulator]] = NavigationSimulatorV0
