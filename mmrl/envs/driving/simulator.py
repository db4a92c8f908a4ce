"""Batched simulator of the driving task (see :class:`mmrl.envs.driving.env.DrivingEnv`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from mmrl.envs.base import BatchedSimulator, StepResult
from mmrl.envs.config import build_config
from mmrl.envs.driving import expert as expert_mod
from mmrl.envs.driving import tasks as task_mod
from mmrl.envs.driving.camera import EGO_RGB, Camera
from mmrl.envs.driving.config import REWARD_WEIGHTS, DrivingConfig
from mmrl.envs.driving.dynamics import (
    DT,
    PSI_MAX,
    SPEED_LEVELS,
    EgoBatch,
    step_continuous,
    step_discrete,
)
from mmrl.envs.driving.frames import DrivingPainter
from mmrl.envs.driving.instructions import (
    COLOR_RGB,
    COLORS,
    NO_ARG,
    TASKS,
    allowed_args,
    phrase,
    sample_instruction,
)
from mmrl.envs.driving.lidar import Lidar
from mmrl.envs.driving.road import (
    LANE_WIDTH,
    MAX_LANES,
    RAMP_END_RANGE,
    RoadBatch,
    extra_lane_open,
    lane_center,
    sample_road,
)
from mmrl.envs.driving.state import TaskBatch
from mmrl.envs.driving.traffic import (
    CAR_LENGTH,
    CAR_WIDTH,
    CUT_IN_HEADWAY,
    PER_LANE,
    TrafficBatch,
    behind_ego,
    spawn,
    step_traffic,
)
from mmrl.envs.frames import FramePainter

# Discrete meta-action ids (documented in DrivingEnv).
LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER = range(5)

FOLLOW_WINDOW = (20.0, 60.0)
"""Start distance ahead of the ego (m) of the car to follow."""
OVERTAKE_WINDOW = (20.0, 50.0)
"""Start distance ahead of the ego (m) of the car to overtake."""
FOLLOW_SPEED = (17.0, 21.0)
"""Speed (m/s) of the car to follow: slower than the ego can drive, so it can catch up."""
OVERTAKE_SPEED = (13.0, 17.0)
"""Speed (m/s) of the car to overtake: slower than traffic, so passing it is feasible."""
CANDIDATES = 3
"""v1: cars an instruction could name, one per lane right of the passing lane (fewer on
narrower roads): the passing lane stays free of them, so "drive fast" and "overtake" always
have a way past."""
CANDIDATE_WINDOW = (15.0, 40.0)
"""v1: start distance ahead of the ego (m) of every candidate car."""
CANDIDATE_SPEED = (14.0, 19.0)
"""v1: speed (m/s) of every candidate car: slower than traffic and than the ego can drive,
so each can be caught up with, followed and passed."""
CANDIDATE_SEPARATION = 10.0
"""v1: smallest distance (m) along the road between two candidates."""
TRAILER_WINDOW = (-22.0, -8.0)
"""v1: start position (m, relative to the ego) of a candidate lane's *trailer*: a car behind
the ego, where the camera (4 m behind) cannot see it and only the lidar does, driving a
little slower than the candidate (so it never closes in on it and no car slips in
between)."""
TRAILER_SLOWER = (1.0, 3.0)
"""v1: a trailer drives this much (m/s) slower than its candidate, so the gap between them
opens and the ego can always get in behind the candidate."""
TRAILER_PROBABILITY = 0.6
"""v1: chance that a candidate lane other than the ego's gets a trailer. Entering that lane
before the ego has pulled clear of it is a cut-in (see :data:`CUT_IN_STEPS`), so lane changes
need to know what is behind, and only the lidar tells."""
CUT_IN_STEPS = 6
"""v1: for this many steps (3 s) after the ego moves in front of a car, the car's time gap to
the ego must stay at least ``CUT_IN_HEADWAY`` (0.6 s); less is a cut-in and ends the episode
as a collision. Cars already following the ego at the start do not count, and later the car's
own driver model keeps its distance."""
STATE_DIM = 6
"""Length of the ``state`` vector (see the env docstring)."""


@dataclasses.dataclass
class StepEvents:
    """What happened in one step, per copy (``(n,)``), for :meth:`DrivingSimulator._rewards`.

    Attributes:
        progress: Fraction of the route driven this step.
        shaping: Change of the instruction potential (0 on the terminal step).
        satisfied: The instruction's condition holds.
        reached: The decision point was reached (without a crash).
        success: The instruction was carried out (only at the decision point).
        crash: The ego hit a car.  offroad: The ego left the road.
        effort: Lane/speed changes (discrete) or mean absolute command (continuous).
    """

    progress: np.ndarray
    shaping: np.ndarray
    satisfied: np.ndarray
    reached: np.ndarray
    success: np.ndarray
    crash: np.ndarray
    offroad: np.ndarray
    effort: np.ndarray


class DrivingSimulator(BatchedSimulator):
    """``n`` copies of the driving task advanced with array operations.

    It owns the state that tasks and the expert read, and satisfies
    :class:`~mmrl.envs.driving.state.DrivingState` structurally (they never import it).

    Args:
        num_envs: Number of copies.
        **kwargs: Fields of :class:`~mmrl.envs.driving.config.DrivingConfig`.
    """

    env_id: ClassVar[str] = "mmrl/Driving-v1"
    scene_version: int = 1
    """Episode generator: 1 draws the named car among equally placed candidates."""
    config_defaults: ClassVar[dict[str, Any]] = {"min_lanes": 3, "lidar_kerbs": False}
    """Defaults of this version that differ from :class:`DrivingConfig`'s (v1: three lanes
    or more, so at least two candidate cars share the road beside the passing lane; road
    edges of paint, so the lidar sees only cars and lane identity comes from the camera)."""
    ramp_end_range: ClassVar[tuple[float, float]] = (400.0, 550.0)
    """Range (m) of the decision point ahead of the ego's start (v1: 400-550 m, room to pass a
    car and pull in ahead of it with a safe gap; v0: 300-450 m)."""
    start_levels: ClassVar[tuple[int, int]] = (2, 4)
    """The ego starts at a cruise level drawn from ``range(*start_levels)`` (of
    ``SPEED_LEVELS``: 2, 3 = 18, 22 m/s)."""
    onramp_length: ClassVar[tuple[float, float] | None] = (100.0, 160.0)
    """v1: range (m) of the on-ramp's end ahead of the ego's start (``None``: no on-ramp, v0).
    An ego on it must merge into the rightmost lane before it ends, where the trailers and
    the traffic behind are only the lidar's to see."""
    onramp_start: ClassVar[float] = 0.75
    """v1: chance that the ego starts on the on-ramp (else in a random main lane)."""
    passing_density: ClassVar[float] = 1.0
    """Factor on the passing lane's traffic density (v0: 1)."""
    camera_view: ClassVar[tuple[float, float]] = (76.0, 4.0)
    """Metres the camera shows ahead of and behind the ego (v1: looking forward, so only the
    lidar sees traffic behind; v0: 60 and 20)."""
    reward_terms: ClassVar[tuple[str, ...]] = tuple(REWARD_WEIGHTS)
    """The config's ``reward_weights`` keys: ``info["rewards"]`` and the weights share names."""
    label_names: ClassVar[dict[str, tuple[str, ...]]] = {
        "instruction_type": TASKS,
        "target_color": COLORS,
    }
    action_names: ClassVar[tuple[str, ...]] = (
        "LANE_LEFT",
        "IDLE",
        "LANE_RIGHT",
        "FASTER",
        "SLOWER",
    )
    """Discrete meta-actions in id order (the expert's ``LANE_LEFT, ... = range(5)``)."""
    state_names: ClassVar[tuple[str, ...]] = (
        "speed", "steer", "heading", "lane_offset", "accel", "cruise_speed",
    )  # fmt: skip
    """``state`` entries in order (see ``_state`` and the env docstring)."""
    painter: ClassVar[type[FramePainter]] = DrivingPainter

    def __init__(self, num_envs: int, **kwargs: Any) -> None:
        self.config = build_config(DrivingConfig, {**self.config_defaults, **kwargs}, self.env_id)
        super().__init__(num_envs, self.config)
        # Copied into the instance so pickles record it (see __setstate__).
        self.scene_version = type(self).scene_version
        cfg = self.config
        n = self.num_envs
        self.max_episode_steps = cfg.max_episode_steps
        self.observation_space = self.contract_observation_space(STATE_DIM, 2.0)
        if cfg.continuous:
            self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        else:
            self.action_space = spaces.Discrete(len(self.action_names))
        self.slots = PER_LANE * MAX_LANES
        self.rows = np.arange(n)
        self._rows2 = self.rows[:, None]
        self.road = RoadBatch.empty(n)
        if self.onramp_length is not None:
            self.road.onramp_end = np.full(n, -1e4)
        self.traffic = TrafficBatch.empty(n, self.slots)
        self.ego = EgoBatch.empty(n)
        self.tasks = TaskBatch.empty(n)
        self.camera = Camera(
            n, cfg.camera_size, *self.camera_view, max_ramp_end=self.ramp_end_range[1]
        )
        self.lidar = Lidar(
            n,
            cfg.lidar_beams,
            cfg.lidar_range,
            cfg.lidar_kerbs,
            onramp=self.onramp_length is not None,
        )
        self.text = np.zeros((n, cfg.max_text_len), np.int64)
        self._instructions = [""] * n
        self.phi = np.zeros(n)
        self.sat_steps = np.zeros(n, np.int64)
        self.sat_streak = np.zeros(n, np.int64)
        self.steps = np.zeros(n, np.int64)  # steps of the episode including the current one
        # Camera colours and visibility with the ego appended as the last slot (static per
        # episode, so set at reset instead of concatenated every step).
        self._cam_rgb = np.zeros((n, self.slots + 1, 3), np.uint8)
        self._cam_rgb[:, -1] = EGO_RGB
        self._cam_vis = np.ones((n, self.slots + 1), bool)
        self._noisy = cfg.lidar_noise > 0 or cfg.lidar_dropout > 0
        self._noise = np.zeros((n, cfg.lidar_beams), np.float32)
        self._drop = np.zeros((n, cfg.lidar_beams), bool)
        # Steps each car has followed the ego (v1's cut-in rule).
        self.behind_steps = np.zeros((n, self.slots), np.int64)
        self.derived = task_mod.derive(self)

    # ------------------------------------------------------------------ episodes
    def _reset_envs(self, idx: np.ndarray) -> None:
        cfg = self.config
        for i in idx:
            rng = self.rngs[i]
            n_lanes, ramp_start, ramp_end = sample_road(
                rng, cfg.min_lanes, cfg.max_lanes, self.ramp_end_range
            )
            self.road.n_lanes[i] = n_lanes
            self.road.ramp_start[i] = ramp_start
            self.road.ramp_end[i] = ramp_end
            if self.onramp_length is not None:
                self.road.onramp_end[i] = rng.uniform(*self.onramp_length)
            draw = self._draw_v0 if self.scene_version == 0 else self._draw_v1
            task, arg, text, cars, target = draw(i, rng, n_lanes)
            self._instructions[i] = text
            self.text[i] = self.tokenizer.encode(text)
            slot_of = self.traffic.load(i, cars)
            target_lane = int(cars["lane"][target]) if target >= 0 else -1
            slot = int(slot_of[target]) if target >= 0 else -1
            self.tasks.set(i, task, arg, n_lanes, slot, target_lane, self.scene_version)
        self.tasks.refresh()
        road = self.road
        args = (idx, road.n_lanes[idx], road.ramp_start[idx], road.ramp_end[idx])
        onramp = None if road.onramp_end is None else road.onramp_end[idx]
        self.camera.paint_roads(*args, onramp_end=onramp)
        self.lidar.set_roads(*args, onramp_end=onramp)
        self._cam_rgb[idx, :-1] = COLOR_RGB[self.traffic.color[idx]]
        self._cam_vis[idx, :-1] = self.traffic.valid[idx]
        self.sat_steps[idx] = 0
        self.sat_streak[idx] = 0
        self.steps[idx] = 0
        # Cars already behind the ego in its lane at the start follow it: only later cut-ins
        # count.
        t, ego = self.traffic, self.ego
        following = behind_ego(t.x[idx], t.y[idx], ego.x[idx], ego.y[idx])[0] & t.valid[idx]
        self.behind_steps[idx] = np.where(following, CUT_IN_STEPS + 1, 0)
        self._draw_noise(idx)
        self.derived = task_mod.derive(self)
        self.phi[idx] = task_mod.potential(self, self.derived)[idx]

    def _start(self, i: int, rng: np.random.Generator, n_lanes: int) -> dict[str, np.ndarray]:
        """Places copy ``i``'s ego and spawns its traffic (before any named car)."""
        ego_lane = int(rng.integers(n_lanes))
        on_ramp = self.onramp_length is not None and rng.random() < self.onramp_start
        level = int(rng.integers(*self.start_levels))
        self.ego.reset_one(i, lane_center(n_lanes if on_ramp else ego_lane), level)
        density = self.config.traffic_density * float(rng.uniform(0.6, 1.4))
        # On the ramp, traffic keeps the rightmost lane's clearance (25 m) around the ego.
        lane = n_lanes - 1 if on_ramp else ego_lane
        return spawn(rng, n_lanes, lane, density, self.slots, self.passing_density)

    def _draw_v0(
        self, i: int, rng: np.random.Generator, n_lanes: int
    ) -> tuple[int, int, str, dict[str, np.ndarray], int]:
        """Driving-v0's episode: instruction first, then the named car made unique."""
        cfg = self.config
        task, arg, text = sample_instruction(rng, cfg.instruction_split, cfg.tasks, n_lanes)
        cars = self._start(i, rng, n_lanes)
        target = -1
        if TASKS[task] in ("follow", "overtake"):
            cars, target = self._place_target(rng, cars, n_lanes, TASKS[task], arg)
        return task, arg, text, cars, target

    def _draw_v1(
        self, i: int, rng: np.random.Generator, n_lanes: int
    ) -> tuple[int, int, str, dict[str, np.ndarray], int]:
        """Driving-v1's episode: the scene first, then the referent uniformly from it.

        Every episode, whatever its task, gets ``min(CANDIDATES, n_lanes - 1)`` candidate
        cars placed by one rule (distinct lanes right of the passing lane, the same window,
        speeds and cleared stretch behind each) with colours no other car has; background
        colours always occur at least twice, so exactly the candidates can be named by
        colour. A car task then names a candidate drawn uniformly; a lane task names a lane
        drawn uniformly among those its split can phrase. Only the candidates' palette
        depends on the task
        (the colours the split pairs with it), never which candidate is named.
        """
        cfg = self.config
        split = cfg.instruction_split
        task = TASKS.index(cfg.tasks[int(rng.integers(len(cfg.tasks)))])
        name = TASKS[task]
        palette = allowed_args(split, name, n_lanes) if name in ("follow", "overtake") else None
        k = min(CANDIDATES, n_lanes - 1)
        colours = rng.choice(palette or len(COLOR_RGB), size=k, replace=False)
        cars = self._start(i, rng, n_lanes)
        ego_lane = int(self.ego.y[i] // LANE_WIDTH)
        cars, slots = self._place_candidates(rng, cars, n_lanes, colours.astype(np.int64), ego_lane)
        target, arg = -1, NO_ARG
        if palette is not None:
            pick = int(rng.integers(k))
            target, arg = int(slots[pick]), int(colours[pick])
        elif name == "lane":
            lanes = allowed_args(split, name, n_lanes)
            arg = int(lanes[int(rng.integers(len(lanes)))])
        return task, arg, phrase(rng, split, name, n_lanes, arg), cars, target

    def _place_candidates(
        self,
        rng: np.random.Generator,
        cars: dict[str, np.ndarray],
        n_lanes: int,
        colours: np.ndarray,
        ego_lane: int,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Adds one candidate car per colour, all placed by the same rule (v1).

        Each candidate lane other than the ego's may also get a trailer behind the ego (see
        :data:`TRAILER_WINDOW`), drawn the same way for every candidate.

        Returns:
            The cars with the candidates appended, and the candidates' indices in them.
        """
        k = len(colours)
        lanes = 1 + rng.choice(n_lanes - 1, size=k, replace=False)
        # Rejection sampling of the positions; the windows are wide enough that a few
        # batched draws almost always give a separated set.
        xs = rng.uniform(*CANDIDATE_WINDOW, size=(32, k))
        gaps = np.abs(xs[:, :, None] - xs[:, None, :]) + np.eye(k) * 1e9
        ok = np.flatnonzero(gaps.min(axis=(1, 2)) >= CANDIDATE_SEPARATION)
        x_c = xs[ok[0]] if ok.size else np.sort(xs[0])  # sorted: never overlapping lanes
        v_c = rng.uniform(*CANDIDATE_SPEED, size=k)
        # Clear each candidate's lane from behind the ego to just ahead of the candidate, so
        # every candidate can be followed without a car slipping in between (traffic never
        # changes lanes, so it stays clear).
        x = cars["x"][:, None]
        hit = ((cars["lane"][:, None] == lanes) & (x > -60.0) & (x < x_c + 15.0)).any(axis=1)
        cars = {key: v[~hit] for key, v in cars.items()}
        trailer = (rng.random(k) < TRAILER_PROBABILITY) & (lanes != ego_lane)
        x_tr = rng.uniform(*TRAILER_WINDOW, size=k)[trailer]
        v_tr = (v_c - rng.uniform(*TRAILER_SLOWER, size=k))[trailer]
        trailers = {
            "x": x_tr,
            "lane": lanes[trailer],
            "v": v_tr,
            "v0": v_tr.copy(),
            "color": np.zeros(len(x_tr), np.int64),
        }
        cars = {
            key: np.concatenate([cars[key], trailers[key]]).astype(v.dtype)
            for key, v in cars.items()
        }
        cars["color"] = _background_colours(rng, cars["color"], colours)
        room = self.slots - k
        if len(cars["x"]) > room:  # make room by dropping the farthest cars
            keep = np.sort(np.argsort(np.abs(cars["x"]), kind="stable")[:room])
            cars = {key: v[keep] for key, v in cars.items()}
        new = {"x": x_c, "lane": lanes, "v": v_c, "v0": v_c, "color": colours}
        n_before = len(cars["x"])
        cars = {key: np.concatenate([cars[key], new[key]]).astype(cars[key].dtype) for key in cars}
        return cars, np.arange(n_before, n_before + k)

    def _place_target(
        self,
        rng: np.random.Generator,
        cars: dict[str, np.ndarray],
        n_lanes: int,
        task: str,
        color: int,
    ) -> tuple[dict[str, np.ndarray], int]:
        """Adds the named car ahead of the ego, the only car of its colour (v0).

        Only the named car is unique in colour and has its lane cleared, which is how the
        scene gives it away; v1 uses :meth:`_place_candidates`.
        """
        window = FOLLOW_WINDOW if task == "follow" else OVERTAKE_WINDOW
        speed = FOLLOW_SPEED if task == "follow" else OVERTAKE_SPEED
        x_t = float(rng.uniform(*window))
        lane_t = int(rng.integers(n_lanes))
        v_t = float(rng.uniform(*speed))
        # Clear the target's surroundings in its lane; for "follow" also the stretch behind
        # it, so no car can slip in between (traffic never changes lanes, so it stays clear).
        behind = 25.0 if task == "overtake" else x_t + 60.0
        keep = ~((cars["lane"] == lane_t) & (cars["x"] > x_t - behind) & (cars["x"] < x_t + 15))
        cars = {k: v[keep] for k, v in cars.items()}
        # Other cars never share the target's colour: shift clashing colours by 1..7.
        clash = cars["color"] == color
        shift = rng.integers(1, len(COLOR_RGB), size=len(clash))
        cars["color"] = np.where(clash, (cars["color"] + shift) % len(COLOR_RGB), cars["color"])
        if len(cars["x"]) >= self.slots:  # make room by dropping the farthest car
            drop = int(np.argmax(np.abs(cars["x"])))
            cars = {k: np.delete(v, drop) for k, v in cars.items()}
        new = {"x": x_t, "lane": lane_t, "v": v_t, "v0": v_t, "color": color}
        cars = {k: np.append(cars[k], new[k]).astype(cars[k].dtype) for k in cars}
        return cars, len(cars["x"]) - 1

    # ------------------------------------------------------------------ stepping
    def _step(self, actions: np.ndarray) -> StepResult:
        cfg = self.config
        ego, road, t = self.ego, self.road, self.traffic
        x_before = ego.x
        if cfg.continuous:
            steer = actions[:, 0].astype(np.float64)
            accel = actions[:, 1].astype(np.float64)
            comfort = 0.5 * (np.abs(steer) + np.abs(accel))
            step_continuous(ego, steer, accel)
        else:
            lane_t = ego.lane_target + (actions == LANE_RIGHT) - (actions == LANE_LEFT)
            # The exit lane is a valid "lane right" target only while it is open. v0 ignores
            # a lane change off the road; v1 carries it out (the ego leaves the road), so
            # where the road ends is the camera's to see, not the action model's to enforce.
            edge = 0 if self.scene_version == 0 else 1
            lane_t = np.minimum(
                np.maximum(lane_t, -edge),
                road.n_lanes - 1 + extra_lane_open(ego.x, road) + edge,
            )
            level = ego.level + (actions == FASTER) - (actions == SLOWER)
            level = np.minimum(np.maximum(level, 0), len(SPEED_LEVELS) - 1)
            comfort = ((lane_t != ego.lane_target) | (level != ego.level)).astype(np.float64)
            ego.lane_target = lane_t
            ego.level = level
            step_discrete(ego)
        behind = step_traffic(t, ego.x, ego.y, ego.v, DT, self._rows2)
        self.steps += 1
        self._draw_noise(self.rows)

        crash = (
            (np.abs(t.x - ego.x[:, None]) < CAR_LENGTH)
            & (np.abs(t.y - ego.y[:, None]) < CAR_WIDTH)
            & t.valid
        ).max(axis=1)
        if self.scene_version >= 1:
            behind &= t.valid
            self.behind_steps = np.where(behind, self.behind_steps + 1, 0)
            gap = ego.x[:, None] - t.x - CAR_LENGTH
            close = gap < CUT_IN_HEADWAY * t.v
            cut_off = behind & close & (self.behind_steps <= CUT_IN_STEPS)
            crash |= cut_off.any(axis=1)
        # Reaching the decision point wins over "off road": the exit lane ends exactly there.
        at_end = ego.x >= road.ramp_end
        # Past the decision point the episode ends (at_end), so the exit lane's end is moot.
        right = road.n_lanes * LANE_WIDTH + LANE_WIDTH * extra_lane_open(ego.x, road)
        offroad = ((ego.y < 0.0) | (ego.y > right)) & ~crash & ~at_end
        reached = at_end & ~crash
        terminated = crash | offroad | reached

        der = self.derived = task_mod.derive(self)
        satisfied = task_mod.satisfied(self, der)
        self.sat_steps += satisfied
        self.sat_streak = (self.sat_streak + 1) * satisfied
        success = reached & task_mod.succeeded(self, der, satisfied)
        phi = task_mod.potential(self, der)
        events = StepEvents(
            progress=(np.minimum(ego.x, road.ramp_end) - x_before) / road.ramp_end,
            shaping=(phi - self.phi) * ~terminated,
            satisfied=satisfied,
            reached=reached,
            success=success,
            crash=crash,
            offroad=offroad,
            effort=comfort,
        )
        self.phi = phi
        return StepResult(
            rewards=self._rewards(events),
            terminated=terminated,
            success=success,
            collision=crash,
        )

    def _rewards(self, ev: StepEvents) -> dict[str, np.ndarray]:
        """Named reward terms of this step (highway-env style), each ``(n,)`` float32: the
        term's ``reward_weights`` entry times its unweighted value."""
        cfg = self.config
        w = cfg.reward_weights
        instruction = cfg.instruction_shaping * ev.shaping + cfg.instruction_on_task * ev.satisfied
        instruction += ev.reached * np.where(
            ev.success, cfg.instruction_success, -cfg.instruction_failure
        )
        f32 = np.float32
        return {
            "progress": (w["progress"] * ev.progress).astype(f32),
            "instruction": (w["instruction"] * instruction).astype(f32),
            "collision": (-w["collision"] * ev.crash).astype(f32),
            "off_road": (-w["off_road"] * ev.offroad).astype(f32),
            "comfort": (-w["comfort"] * ev.effort).astype(f32),
        }

    # ------------------------------------------------------------------ sensing
    def _observe(self, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        cfg = self.config
        ego, t = self.ego, self.traffic
        if idx is None:
            idx = slice(None)
            ex, ey, psi = ego.x, ego.y, ego.psi
            cx, cy, valid = t.x, t.y, t.valid
            rgb, vis = self._cam_rgb, self._cam_vis
            text = self.text.copy()
        else:
            idx = np.asarray(idx, dtype=np.int64)
            ex, ey, psi = ego.x[idx], ego.y[idx], ego.psi[idx]
            cx, cy, valid = t.x[idx], t.y[idx], t.valid[idx]
            rgb, vis = self._cam_rgb[idx], self._cam_vis[idx]
            text = self.text[idx]
        camera = self.camera.render(idx, ex, ey, cx, cy, rgb, vis)
        ranges = self.lidar.scan(idx, ex, ey, psi, cx, cy, valid)
        lidar = ranges * np.float32(1.0 / cfg.lidar_range)
        if self._noisy:
            lidar = np.minimum(np.maximum(lidar + self._noise[idx], 0.0), 1.0)
            lidar[self._drop[idx]] = 1.0
        return {
            "camera": camera,
            "lidar": lidar.astype(np.float32, copy=False),
            "text": text,
            "state": self._state(idx),
        }

    def _draw_noise(self, idx: np.ndarray) -> None:
        """Draws the lidar noise of copies ``idx`` for their new state.

        Drawing when the state changes (not in ``observe``) keeps ``observe`` a pure function,
        so rendering never shifts a copy's random stream. Each copy draws from its own
        generator, which keeps copy i of a vec env identical to a single env seeded s + i.
        """
        if not self._noisy:
            return
        cfg = self.config
        beams = cfg.lidar_beams
        for i in idx:
            rng = self.rngs[i]
            self._noise[i] = cfg.lidar_noise * rng.standard_normal(beams)
            self._drop[i] = rng.random(beams) < cfg.lidar_dropout

    def _state(self, sel: np.ndarray | slice) -> np.ndarray:
        ego = self.ego
        y = ego.y[sel]
        v = ego.v[sel]
        out = np.empty((len(y), STATE_DIM), np.float32)
        out[:, 0] = v * (1.0 / 30.0)
        out[:, 1] = ego.steer[sel]
        out[:, 2] = ego.psi[sel] * (1.0 / PSI_MAX)
        out[:, 3] = (np.mod(y, LANE_WIDTH) - 0.5 * LANE_WIDTH) * (2.0 / LANE_WIDTH)
        out[:, 4] = ego.accel[sel] * (1.0 / 6.0)
        out[:, 5] = (v if self.config.continuous else ego.setpoint[sel]) * (1.0 / 30.0)
        np.maximum(out, -2.0, out=out)
        return np.minimum(out, 2.0, out=out)

    def instructions(self) -> list[str]:
        return list(self._instructions)

    def labels(self) -> dict[str, np.ndarray]:
        return task_mod.labels(self, self.derived)

    def expert_action(self) -> np.ndarray:
        return expert_mod.act(self)


def _background_colours(
    rng: np.random.Generator, colour: np.ndarray, reserved: np.ndarray
) -> np.ndarray:
    """Recolours background cars so none has a reserved colour and none is alone in its colour.

    A colour word can name a car only if exactly one car has that colour; keeping every
    background colour at zero or two-plus cars leaves the reserved candidates as the only
    cars an instruction could name. (A lone background car, possible on empty roads, keeps
    its colour.)
    """
    usable = np.ones(len(COLOR_RGB), bool)
    usable[reserved] = False
    free = np.flatnonzero(usable)
    colour = free[rng.integers(len(free), size=len(colour))] if len(colour) else colour
    counts = np.bincount(colour, minlength=len(COLOR_RGB))
    if len(colour) > 1 and (counts == 1).any():
        # Lone cars take the most common colour (itself shared, or then shared by them).
        colour = np.where(counts[colour] == 1, np.argmax(counts), colour)
    return colour.astype(np.int64)


class DrivingSimulatorV0(DrivingSimulator):
    """``mmrl/Driving-v0``: the original generator, kept unchanged for old runs.

    Its named car is the only one of its colour, with its lane cleared, so the scene gives
    it away (see the env's Version History); use v1.
    """

    env_id: ClassVar[str] = "mmrl/Driving-v0"
    scene_version: int = 0
    config_defaults: ClassVar[dict[str, Any]] = {}
    ramp_end_range: ClassVar[tuple[float, float]] = RAMP_END_RANGE
    onramp_length: ClassVar[tuple[float, float] | None] = None
    camera_view: ClassVar[tuple[float, float]] = (60.0, 20.0)


DrivingSimulator.unversioned_class = DrivingSimulatorV0
