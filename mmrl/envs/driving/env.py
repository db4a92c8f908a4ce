"""``mmrl/Driving-v1``: language-conditioned highway driving with an off-ramp."""

from __future__ import annotations

from typing import ClassVar

from mmrl.envs.base import MultimodalEnv
from mmrl.envs.driving.simulator import DrivingSimulator, DrivingSimulatorV0
from mmrl.envs.gym_vector import MultimodalVectorEnv


class DrivingEnv(MultimodalEnv):
    """An ego car on a multi-lane highway with traffic and an off-ramp, told what to do.

    ## Description

    The ego drives along a straight highway of 2-4 lanes with other cars (IDM car-following,
    no lane changes; 16-23 m/s, and 26-29 m/s in the leftmost, passing lane) towards an
    off-ramp on the right: a deceleration lane that opens 100-150 m before the *decision
    point*, 400-550 m ahead (v0: 300-450 m), where it diverges. Each episode
    draws the lane count, ramp position, traffic density, car colours and speeds, the
    ego's lane and speed, and an instruction, which decides what success means:

    | task | example | success at the decision point |
    |---|---|---|
    | ``take_exit`` | "take the next exit" | in the exit lane |
    | ``skip_exit`` | "stay on the highway" | on the main road |
    | ``lane`` | "keep to the second lane from the left" | in that lane for 4+ steps |
    | ``follow`` | "follow the red car" | same lane, 8-30 m behind it |
    | ``overtake`` | "pass the cyan vehicle" | in its lane, 6-30 m ahead of it (v0: 6+ m ahead) |
    | ``slow`` | "drive slowly" | speed <= 15.5 m/s (*) |
    | ``fast`` | "go quickly" | speed >= 24 m/s (*) |

    (*) at the end and on at least 40 % of the episode's steps (v0: half).

    All tasks except ``take_exit`` also require not taking the exit, and every task requires
    no collision. A *cut-in* counts as a collision (v1): for 3 s after the ego moves in
    front of a car, that car's time gap to the ego must stay at least 0.6 s, so a lane
    change needs room behind in the lane entered. A lane change off the road's edge
    (discrete "lane left" in the leftmost lane, "lane right" in the rightmost one while no
    exit lane is open) leaves the road (v1; v0 ignores it). Every episode, whatever its
    task, has ``min(3, lanes)`` *candidate* cars placed by one rule (distinct lanes, 15-40 m
    ahead, 14-19 m/s, their lane cleared from behind the ego up to them); they are the only
    cars whose colour no other car has, and ``follow``/``overtake`` name one of them drawn
    uniformly, so only the instruction tells which (a scene-only predictor in the test suite
    stays at chance). ``instruction_split="test"`` draws only held-out task-colour pairs,
    template-lane pairs and paraphrases (see :mod:`mmrl.envs.driving.instructions`).

    What each modality is for: the **text** alone names the goal (the same scene asks for
    different behaviour under different instructions); only the **camera** sees car colours,
    lane markings and road edges (hence which lane is which: the road's edges are paint, so
    the lidar cannot tell) and the painted exit chevrons that announce the ramp; only the
    **lidar** sees all around with precise range: the camera looks forward (76 m ahead, 4 m
    behind the ego's centre), so cars behind and alongside-behind, which safe lane changes
    need (a trailer just behind in the lane to enter, the faster traffic closing in from
    behind, the named car once the ego has passed it and must pull in ahead of it with a
    safe gap), are seen by the lidar alone; the **state** gives the ego's own motion, which
    neither image shows precisely.

    ## Observation Space

    A flat ``spaces.Dict`` (sizes from the sensor arguments, defaults shown):

    | key | space | content |
    |---|---|---|
    | ``camera`` | ``Box(0, 255, (64, 64, 3k), uint8)`` | top-down RGB view ahead, ``k`` frames |
    | ``lidar`` | ``Box(0, 1, (64,), float32)`` | 360-degree ranges / ``lidar_range`` |
    | ``text`` | ``Box(0, V - 1, (16,), int64)`` | instruction token ids, 0 = padding |
    | ``state`` | ``Box(-2, 2, (6,), float32)`` | ego proprioception |

    - ``camera``: road-aligned bird's-eye view (the road runs up the image; cars, the ego
      included, are drawn as road-aligned boxes), 76 m ahead, 4 m behind and 40 m across
      (the ego near the bottom edge, centred across; v0: 60 m ahead and 20 m behind):
      grass, asphalt, white dashed lane lines, yellow edge lines, short dense dashes between
      the rightmost and the exit lane, white chevrons in the rightmost lane over the 150 m
      before the exit lane opens, cars in their colours, the ego near-black.
      ``camera_frames=k`` (default 1) stacks the last ``k`` frames along the channels,
      oldest first (the current frame is ``camera[..., -3:]``; after a reset every slot
      holds the first frame): the camera sees little behind, so a memoryless agent has lost
      sight of the car it passed by the time ``overtake`` asks it to pull in ahead of it.
      ``camera_frame_stride=s`` (default 1) spaces the stacked frames ``s`` steps apart, so
      ``k`` frames reach ``(k - 1) s`` steps back.
    - ``lidar``: ranges to cars from the ego's centre (v0, or ``lidar_kerbs=True``: also to
      the road's kerbs, which tell the ego's place across the road); beam 0 points along the
      ego's heading, angles grow counter-clockwise; optional Gaussian noise
      (``lidar_noise``) and dropout (a dropped beam reads 1).
    - ``text``: :class:`mmrl.envs.Tokenizer` ids of the instruction (``V`` = vocabulary
      size).
    - ``state``: speed / 30 m/s, last steer command, heading / 0.3 rad, offset from the
      lane centre / 2 m, acceleration / 6 m/s^2, cruise speed / 30 m/s (continuous: speed);
      named ``speed``, ``steer``, ``heading``, ``lane_offset``, ``accel``, ``cruise_speed``
      (the simulator's ``state_names``, printed beside the values on frames).

    Frames (``render_mode="rgb_array"``, videos, ``mmrl demo``/``enjoy``) title the camera
    with its pixels and footprint (``camera 64x64, 80 m x 40 m``; with stacked frames they
    show the newest, ``..., newest of 4 frames``) and the lidar with its beams
    and range (``lidar 64 beams, 50 m``), box the ego in magenta, and print the instruction,
    step, the last reward's terms, success and collision, and the named state.

    The raw instruction is in ``info["instruction"]``.

    ## Action Space

    ``Discrete(5)`` meta-actions (default), as highway-env's ``DiscreteMetaAction``:
    ``0`` lane left, ``1`` idle, ``2`` lane right, ``3`` faster, ``4`` slower. Lane changes
    move a target lane (ignored at the road edge; the exit lane is reachable only while it
    is open) that a lateral controller steers to in about 3 steps; faster/slower step a
    cruise speed through 10, 14, 18, 22, 26, 30 m/s. With ``continuous=True``:
    ``Box(-1, 1, (2,), float32)`` ``[steer, accel]``: steer turns the heading by up to
    0.25 rad per step (positive = right, heading limited to +-0.3 rad), accel is +-3 m/s^2
    (accelerating) or -6 m/s^2 (braking) at full scale. Out-of-range continuous actions are
    clipped; NaN/inf or wrongly shaped actions raise ``ValueError``. One step is 0.5 s.

    ## Rewards

    The scalar reward is the sum of named terms, each also in ``info["rewards"]``. Each term
    is its weight in ``reward_weights`` (keyed by the same names; defaults in brackets) times
    its unweighted value:

    - ``progress`` (1): distance driven divided by the route length (sums to 1 at the
      decision point, whatever the speed, so it never fights a "drive slowly" instruction).
    - ``instruction`` (1): change of a potential (minus the normalized distance to the
      instructed goal state: lateral distance to the goal lane (for ``overtake`` the named
      car's lane, counted once past it), distance to the following window or to the window
      ahead of the named car, distance to the speed band), times ``instruction_shaping``
      (1), + ``instruction_on_task`` (0.02) per step while the instruction's condition holds
      + ``instruction_success`` (1) on success / ``-instruction_failure`` (-0.5) on failure
      at the decision point.
    - ``collision`` (1): ``-1`` when the ego hits a car.
    - ``off_road`` (1): ``-1`` when the ego's centre leaves the road.
    - ``comfort`` (0.01): ``-1`` per lane or speed change (continuous: minus the mean
      absolute command).

    E.g. ``gym.make("mmrl/Driving-v1", reward_weights={"comfort": 0.0})`` drops the comfort
    term and keeps the other weights.

    ## Starting State

    The road starts with an on-ramp (v1): an acceleration lane right of the rightmost lane
    (drawn like the exit lane, with the exit lane's index ``lanes``) that ends 100-160 m
    ahead; staying on it past its end leaves the road. The ego starts at ``x = 0``, centred,
    heading along the road, at 18 or 22 m/s, on the on-ramp in 3 of 4 episodes (v1) and
    otherwise in a random main lane (v0: always a main lane). Cars occupy 60 m behind to 230
    m ahead, none within 25 m in the ego's lane or 12 m in other lanes. The ``min(3, lanes -
    1)`` candidate cars start 15-40 m ahead, at least 10 m apart, one per lane right of the
    passing lane, at 14-19 m/s, with their lane cleared from 60 m behind the ego up to them;
    a car instruction names one of them. Each candidate lane other than the ego's gets, with
    probability 0.6, a *trailer*: a car 8-22 m behind the ego at 1-3 m/s below its
    candidate's speed, out of the camera's view and in the lidar's (so it never catches up
    with the candidate, and no car slips in between). (v0: the named car starts 20-60 m,
    20-50 m for ``overtake``, ahead in a random lane at 17-21 m/s, 13-17 m/s for
    ``overtake``.)

    ## Episode End

    Termination: the ego hits a car, leaves the road (its centre crosses the road edge), or
    reaches the decision point (taking or skipping the exit, which settles every task);
    ``info["is_success"]`` is true iff the episode ended at the decision point with the
    instruction carried out (a crash or leaving the road is a failure). Truncation: after
    ``max_episode_steps`` (300) steps, only reachable by crawling (continuous control can
    stop the car); episodes normally end at the decision point after 25-70 steps.

    The scripted expert (``env.unwrapped.expert_action()``, privileged state; it changes
    lanes only where it leaves the car behind at least the cut-in gap, and keeps up with
    traffic on the on-ramp until it has merged) succeeds in 96.0 % of episodes discrete
    (95.5-96.6 % over three sets of 1,000 seeded episodes, either split) and 97.0 %
    continuous (96.4-97.5 %), with no collision or cut-in; its weakest tasks are
    ``overtake`` and ``fast`` (85-91 %), every other task 96-100 %.

    ## Arguments

    See :class:`mmrl.envs.driving.config.DrivingConfig` for every argument (unknown names
    or out-of-range values raise ``ValueError``)::

        gym.make("mmrl/Driving-v1", continuous=False, instruction_split="train",
                 tasks=TASKS, min_lanes=3, max_lanes=4, traffic_density=1.0,
                 reward_weights={"progress": 1.0, "instruction": 1.0, "collision": 1.0,
                                 "off_road": 1.0, "comfort": 0.01},
                 instruction_shaping=1.0, instruction_on_task=0.02,
                 instruction_success=1.0, instruction_failure=0.5, lidar_kerbs=False,
                 camera_size=64, camera_frames=1, camera_frame_stride=1,
                 lidar_beams=64, lidar_range=50.0,
                 lidar_noise=0.0, lidar_dropout=0.0, max_text_len=16, render_mode=None)

    (v0's defaults differ in ``min_lanes=2`` and ``lidar_kerbs=True``.) The reward
    parameters' old names (``progress_weight``, ``shaping_weight``, ``on_task_reward``,
    ``success_reward``, ``failure_penalty``, ``collision_penalty``, ``off_road_penalty``,
    ``comfort_weight``) still work, with a ``DeprecationWarning``.

    ``info["labels"]`` holds privileged per-step labels for probing and auxiliary losses:
    ``lane_index`` (exit lane = ``n_lanes``), ``target_lane`` (-1 when none),
    ``target_lane_offset`` (``target_lane - lane_index`` clipped to [-3, 3], -4 when the
    instruction names no lane), ``n_lanes``,
    ``instruction_type`` (index in ``TASKS``), ``target_color`` (index in ``COLORS``, -1
    when none), ``speed``, ``lateral_offset``, ``heading``, ``lead_distance`` /
    ``lead_bearing`` (nearest car ahead in the ego's lane; 100 m / 0 when none),
    ``ramp_distance`` / ``ramp_bearing`` (start of the exit lane), ``decision_distance``,
    ``target_distance`` / ``target_bearing`` (named car; 0 when none). Bearings are radians,
    counter-clockwise from the heading.

    ## Version History

    - v1: The scene no longer gives the named car away. In v0 the named car was the only car
      of its colour and the only one with its lane cleared behind it, so a predictor over
      the scene alone (no instruction) picked it in 96 % of episodes (chance 21 %). v1
      places ``min(3, lanes)`` candidate cars in every episode, whatever the task, by one
      rule (distinct lanes, 15-40 m ahead, 14-19 m/s, lane cleared behind), gives them the
      only unique colours on the road, and draws the named car uniformly among them; a lane
      instruction names a lane drawn uniformly. The camera looks forward: 76 m ahead and
      4 m behind (v0: 60 m and 20 m; same 80 m x 40 m image and resolution), so only the
      lidar sees the traffic behind that lane changes must leave room for. ``overtake``
      means pass and pull in ahead: success needs the named car's lane and 6-30 m (centre
      to centre) ahead of it (v0: 6+ m ahead in any lane, which passing every candidate
      satisfied whichever was named); the shaping potential adds the lateral distance to its
      lane once past it, and the ``target_lane`` label is that lane. The road's edges are
      paint (``lidar_kerbs=False``): the lidar sees only cars, so which lane the ego is in
      comes from the camera (with kerbs, a trained agent lost only 15-17 points of success
      without its camera; without, 30-33). Lane changes need the lidar and the camera:
      moving in front of a car with less than a 0.6 s gap is a cut-in and ends the episode
      as a collision; candidate lanes may hold a trailer just behind the ego, which only the
      lidar sees; and a lane change off the road's edge leaves the road instead of being
      ignored, so where the road ends is the camera's to see (a trained agent had lost only
      12-13 points without its lidar and 0-4 on the exit tasks without its camera). Roads
      are 400-550 m to the decision point (v0: 300-450 m), room to pass a car and pull in
      ahead of it with that gap. Most episodes start on an on-ramp, so they begin with a
      merge into the rightmost lane past its trailer (the speed instructions hold on 40 %
      of the steps, not half, for the time the merge takes).
    - v0: Initial release (still registered, unchanged, for runs made with it).
    """

    simulator_cls: ClassVar[type[DrivingSimulator]] = DrivingSimulator


class DrivingEnvV0(DrivingEnv):
    """``mmrl/Driving-v0``: :class:`DrivingEnv` with the v0 episode generator.

    Kept unchanged so runs and datasets made with it still evaluate; its scene reveals the
    named car (see :class:`DrivingEnv`'s Version History). Use ``mmrl/Driving-v1``.
    """

    simulator_cls: ClassVar[type[DrivingSimulator]] = DrivingSimulatorV0


class DrivingVectorEnv(MultimodalVectorEnv):
    """``mmrl/Driving-v1`` as a Gymnasium ``VectorEnv``: ``num_envs`` copies stepped as one
    batch (``gym.make_vec("mmrl/Driving-v1", num_envs=N)``; see
    :class:`~mmrl.envs.gym_vector.MultimodalVectorEnv` and :class:`DrivingEnv`)."""

    simulator_cls: ClassVar[type[DrivingSimulator]] = DrivingSimulator


class DrivingVectorEnvV0(DrivingVectorEnv):
    """``mmrl/Driving-v0`` as a Gymnasium ``VectorEnv`` (see :class:`DrivingEnvV0`)."""

    simulator_cls: ClassVar[type[DrivingSimulator]] = DrivingSimulatorV0
