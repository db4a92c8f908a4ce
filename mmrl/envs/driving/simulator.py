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
from mmrl.envs.driving.config import DrivingConfig
from mmrl.envs.driving.dynamics import (
    DT,
    PSI_MAX,
    SPEED_LEVELS,
    EgoBatch,
    step_continuous,
    step_discrete,
)
from mmrl.envs.driving.instructions import COLOR_RGB, TASKS, sample_instruction
from mmrl.envs.driving.lidar import Lidar
from mmrl.envs.driving.road import (
    LANE_WIDTH,
    MAX_LANES,
    RoadBatch,
    exit_open,
    lane_center,
    sample_road,
)
from mmrl.envs.driving.traffic import (
    CAR_LENGTH,
    CAR_WIDTH,
    PER_LANE,
    TrafficBatch,
    spawn,
    step_traffic,
)

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

    Args:
        num_envs: Number of copies.
        **kwargs: Fields of :class:`~mmrl.envs.driving.config.DrivingConfig`.
    """

    env_id: ClassVar[str] = "mmrl/Driving-v0"
    reward_terms: ClassVar[tuple[str, ...]] = (
        "progress",
        "instruction",
        "collision",
        "off_road",
        "comfort",
    )

    def __init__(self, num_envs: int, **kwargs: Any) -> None:
        self.config = build_config(DrivingConfig, kwargs, self.env_id)
        super().__init__(num_envs, self.config.sensors())
        cfg = self.config
        n = self.num_envs
        self.max_episode_steps = cfg.max_episode_steps
        self.observation_space = self.contract_observation_space(STATE_DIM, 2.0)
        if cfg.continuous:
            self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        else:
            self.action_space = spaces.Discrete(5)
        self.slots = PER_LANE * MAX_LANES
        self.rows = np.arange(n)
        self._rows2 = self.rows[:, None]
        self.road = RoadBatch.empty(n)
        self.traffic = TrafficBatch.empty(n, self.slots)
        self.ego = EgoBatch.empty(n)
        self.tasks = task_mod.TaskBatch.empty(n)
        self.camera = Camera(n, cfg.camera_size)
        self.lidar = Lidar(n, cfg.lidar_beams, cfg.lidar_range)
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
        self.derived = task_mod.derive(self)

    # ------------------------------------------------------------------ episodes
    def _reset_envs(self, idx: np.ndarray) -> None:
        cfg = self.config
        for i in idx:
            rng = self.rngs[i]
            n_lanes, ramp_start, ramp_end = sample_road(rng, cfg.min_lanes, cfg.max_lanes)
            self.road.n_lanes[i] = n_lanes
            self.road.ramp_start[i] = ramp_start
            self.road.ramp_end[i] = ramp_end
            task, arg, text = sample_instruction(rng, cfg.instruction_split, cfg.tasks, n_lanes)
            self._instructions[i] = text
            self.text[i] = self.tokenizer.encode(text)
            ego_lane = int(rng.integers(n_lanes))
            level = int(rng.integers(2, 4))
            self.ego.reset_one(i, lane_center(ego_lane), level)
            density = cfg.traffic_density * float(rng.uniform(0.6, 1.4))
            cars = spawn(rng, n_lanes, ego_lane, density, self.slots)
            target = -1
            if TASKS[task] in ("follow", "overtake"):
                cars, target = self._place_target(rng, cars, n_lanes, TASKS[task], arg)
            slot_of = self.traffic.load(i, cars)
            target_lane = int(cars["lane"][target]) if target >= 0 else -1
            slot = int(slot_of[target]) if target >= 0 else -1
            self.tasks.set(i, task, arg, n_lanes, slot, target_lane)
        self.tasks.refresh()
        road = self.road
        args = (idx, road.n_lanes[idx], road.ramp_start[idx], road.ramp_end[idx])
        self.camera.paint_roads(*args)
        self.lidar.set_roads(*args)
        self._cam_rgb[idx, :-1] = COLOR_RGB[self.traffic.color[idx]]
        self._cam_vis[idx, :-1] = self.traffic.valid[idx]
        self.sat_steps[idx] = 0
        self.sat_streak[idx] = 0
        self.steps[idx] = 0
        self._draw_noise(idx)
        self.derived = task_mod.derive(self)
        self.phi[idx] = task_mod.potential(self, self.derived)[idx]

    def _place_target(
        self,
        rng: np.random.Generator,
        cars: dict[str, np.ndarray],
        n_lanes: int,
        task: str,
        color: int,
    ) -> tuple[dict[str, np.ndarray], int]:
        """Adds the named car ahead of the ego, the only car of its colour."""
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
            # The exit lane is a valid "lane right" target only while it is open.
            lane_t = ego.lane_target + (actions == LANE_RIGHT) - (actions == LANE_LEFT)
            lane_t = np.minimum(np.maximum(lane_t, 0), road.n_lanes - 1 + exit_open(ego.x, road))
            level = ego.level + (actions == FASTER) - (actions == SLOWER)
            level = np.minimum(np.maximum(level, 0), len(SPEED_LEVELS) - 1)
            comfort = ((lane_t != ego.lane_target) | (level != ego.level)).astype(np.float64)
            ego.lane_target = lane_t
            ego.level = level
            step_discrete(ego)
        step_traffic(t, ego.x, ego.y, ego.v, DT, self._rows2)
        self.steps += 1
        self._draw_noise(self.rows)

        crash = (
            (np.abs(t.x - ego.x[:, None]) < CAR_LENGTH)
            & (np.abs(t.y - ego.y[:, None]) < CAR_WIDTH)
            & t.valid
        ).max(axis=1)
        # Reaching the decision point wins over "off road": the exit lane ends exactly there.
        at_end = ego.x >= road.ramp_end
        right = road.n_lanes * LANE_WIDTH + LANE_WIDTH * (ego.x >= road.ramp_start)
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
        """Named reward terms of this step (highway-env style), each ``(n,)`` float32."""
        cfg = self.config
        instruction = cfg.shaping_weight * ev.shaping + cfg.on_task_reward * ev.satisfied
        instruction += ev.reached * np.where(ev.success, cfg.success_reward, -cfg.failure_penalty)
        f32 = np.float32
        return {
            "progress": (cfg.progress_weight * ev.progress).astype(f32),
            "instruction": instruction.astype(f32),
            "collision": (-cfg.collision_penalty * ev.crash).astype(f32),
            "off_road": (-cfg.off_road_penalty * ev.offroad).astype(f32),
            "comfort": (-cfg.comfort_weight * ev.effort).astype(f32),
        }

    # ------------------------------------------------------------------ sensing
    def observe(self, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
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
