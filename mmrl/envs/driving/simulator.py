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
from mmrl.envs.driving.instructions import COLOR_RGB, COLORS, TASKS
from mmrl.envs.driving.lidar import Lidar
from mmrl.envs.driving.road import (
    LANE_WIDTH,
    MAX_LANES,
    RAMP_END_RANGE,
    RoadBatch,
    extra_lane_open,
)
from mmrl.envs.driving.scenes import draw_scenes
from mmrl.envs.driving.state import TaskBatch
from mmrl.envs.driving.traffic import (
    CAR_LENGTH,
    CAR_WIDTH,
    CUT_IN_HEADWAY,
    PER_LANE,
    TrafficBatch,
    behind_ego,
    step_traffic,
)
from mmrl.envs.frames import FramePainter

# Discrete meta-action ids (documented in DrivingEnv).
LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER = range(5)

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
        # Per-copy generator calls, everything else over all copies (see scenes).
        new = draw_scenes(self, idx)
        road = self.road
        road.n_lanes[idx], road.ramp_start[idx], road.ramp_end[idx] = (
            new.n_lanes,
            new.ramp_start,
            new.ramp_end,
        )
        if new.onramp_end is not None:
            road.onramp_end[idx] = new.onramp_end
        self.ego.reset_rows(idx, new.ego_y, new.level)
        for i, text in zip(idx.tolist(), new.texts):
            self._instructions[i] = text
        self.text[idx] = self.tokenizer.encode_batch(new.texts)
        slot_of = self.traffic.load(idx, new.cars)
        named = new.target >= 0
        rows, column = np.arange(len(idx)), np.maximum(new.target, 0)
        slot = np.where(named, slot_of[rows, column], -1)
        lane = np.where(named, new.cars.lane[rows, column], -1).astype(np.int64)
        self.tasks.set_rows(idx, new.task, new.arg, new.n_lanes, slot, lane, self.scene_version)
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
