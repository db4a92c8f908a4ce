"""Batched simulator of the language-conditioned navigation task (``mmrl/Navigation-v1``).

See :class:`mmrl.envs.navigation.env.NavigationEnv` for the task description. Episode
generation (:mod:`~mmrl.envs.navigation.room`) and expert planning
(:mod:`~mmrl.envs.navigation.planner`) loop over copies; ``_step`` and ``observe`` are array
operations over all copies, objects, camera columns and lidar beams.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.envs.base import BatchedSimulator, StepResult
from mmrl.envs.config import build_config
from mmrl.envs.navigation.camera import ColumnCamera, cast_rays
from mmrl.envs.navigation.config import REWARD_WEIGHTS, NavigationConfig
from mmrl.envs.navigation.frames import NavigationPainter
from mmrl.envs.navigation.instructions import COLOR_RGB, COLORS, SHAPES, make_instruction
from mmrl.envs.navigation.planner import plan_path, pursuit
from mmrl.envs.navigation.room import OBJECT_RADIUS, ROBOT_RADIUS, generate_layout, nearest_static

SUCCESS_RADIUS = ROBOT_RADIUS + OBJECT_RADIUS + 0.3
"""Centre distance to the target that counts as reaching it (a 0.3 m gap), metres."""
CONTACT_RADIUS = ROBOT_RADIUS + OBJECT_RADIUS
"""Centre distance at which the robot touches an object, metres."""
HALT = 0.1
"""With ``stop_to_choose``: both commands below this magnitude count as stopping (discrete
action 3 is exactly 0, 0)."""
REVERSE_SCALE = 0.5
"""Continuous actions: a negative linear command reverses at this fraction of full speed."""

# Discrete action id -> (linear, angular) command: forward, turn left, turn right, stop.
_DISCRETE_LINEAR = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
_DISCRETE_ANGULAR = np.array([0.0, 1.0, -1.0, 0.0], dtype=np.float32)
STATE_SIZE = 6


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Counter-based hash (SplitMix64, Steele et al. 2014): uint64 -> well-mixed uint64."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniform(keys: np.ndarray) -> np.ndarray:
    """Hashes uint64 keys to floats in ``(0, 1)``."""
    return ((_splitmix64(keys) >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


class NavigationSimulator(BatchedSimulator):
    """``num_envs`` copies of the navigation task; see ``NavigationEnv`` for the task.

    Args:
        num_envs: Number of copies.
        **kwargs: Fields of :class:`~mmrl.envs.navigation.config.NavigationConfig`.
    """

    env_id = "mmrl/Navigation-v1"
    scene_version = 1
    """Episode generator (see :func:`~mmrl.envs.navigation.room.generate_layout`)."""
    config_defaults: dict[str, Any] = {"lamp_range": 1.5, "stop_to_choose": True}
    """Defaults of this version that differ from :class:`NavigationConfig`'s (v1: a dark room
    lit by the robot's lamp, and the robot chooses an object by stopping at it)."""
    reward_terms = tuple(REWARD_WEIGHTS)
    """The config's ``reward_weights`` keys: ``info["rewards"]`` and the weights share names."""
    label_names = {"target_shape": SHAPES, "target_color": COLORS}
    action_names = ("FORWARD", "LEFT", "RIGHT", "STOP")
    """Discrete actions in id order (``_DISCRETE_LINEAR`` / ``_DISCRETE_ANGULAR``)."""
    state_names = ("velocity", "turn_rate", "forward_cmd", "turn_cmd", "bumped", "elapsed")
    """``state`` entries in order (see ``observe`` and the env docstring)."""
    painter = NavigationPainter

    def __init__(self, num_envs: int, **kwargs: Any) -> None:
        from mmrl.registration import entry_for

        cfg = build_config(NavigationConfig, {**self.config_defaults, **kwargs}, self.env_id)
        super().__init__(num_envs, cfg)
        # Copied into the instance so pickles record it (see __setstate__).
        self.scene_version = type(self).scene_version
        self.cfg = cfg
        entry = entry_for(self.env_id)
        self.max_episode_steps = entry.max_episode_steps if entry else 200
        n, k, m = self.num_envs, cfg.max_objects, max(cfg.max_obstacles, 1)
        self.observation_space = self.contract_observation_space(STATE_SIZE, 1.0)
        if cfg.continuous:
            self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        else:
            self.action_space = spaces.Discrete(len(self.action_names))
        self.turn_rad = np.float32(np.radians(cfg.turn_speed))
        self.camera = ColumnCamera(
            cfg.camera_size, cfg.fov_deg, OBJECT_RADIUS, cfg.lamp_range or None
        )
        # Beam 0 points ahead, angles grow counter-clockwise (mmrl lidar convention).
        beams = np.linspace(0.0, 2 * np.pi, cfg.lidar_beams, endpoint=False, dtype=np.float32)
        self.ray_angles = np.concatenate([self.camera.angles, beams])
        self.beam_ids = np.arange(cfg.lidar_beams, dtype=np.uint64)

        f32 = np.float32
        self.pos = np.zeros((n, 2), f32)
        self.heading = np.zeros(n, f32)
        self.size = np.full((n, 2), cfg.room_size, f32)
        self.boxes = np.zeros((n, m, 4), f32)
        self.box_valid = np.zeros((n, m), bool)
        self.objects = np.zeros((n, k, 2), f32)
        self.obj_color = np.zeros((n, k), np.int64)
        self.obj_shape = np.zeros((n, k), np.int64)
        self.obj_rgb = np.zeros((n, k, 3), f32)
        self.obj_valid = np.zeros((n, k), bool)
        self.obj_candidate = np.zeros((n, k), bool)  # could be named in this split
        self.target = np.zeros(n, np.int64)
        self.velocity = np.zeros((n, 2), f32)  # achieved [linear, angular], normalized
        self.command = np.zeros((n, 2), f32)  # last commanded [linear, angular]
        self.bumped = np.zeros(n, bool)
        self.target_visible = np.zeros(n, bool)  # as of the last observe()
        # Per object: visible and within the lamp's light, as of the last observe().
        self.lit_objects = np.zeros((n, k), bool)
        self.prev_distance = np.zeros(n, f32)
        self.noise_key = np.zeros(n, np.uint64)
        self.text = np.zeros((n, cfg.max_text_len), np.int64)
        self._instructions = [""] * n
        # Expert state: padded paths (planned lazily), their lengths and the tracked index.
        self._needs_plan = np.ones(n, bool)
        self._paths = np.zeros((n, 1, 2), f32)
        self._path_len = np.ones(n, np.int64)
        self._progress = np.zeros(n, np.int64)

    def _upgrade_unversioned(self, state: dict[str, Any]) -> dict[str, Any]:
        # v0 named the target alone.
        state["obj_candidate"] = np.arange(state["obj_valid"].shape[1]) == state["target"][:, None]
        return super()._upgrade_unversioned(state)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickled before the lit labels (or with the target's alone): recomputed by the next
        # observe().
        state.pop("target_lit", None)
        state.setdefault("lit_objects", np.zeros_like(state["obj_valid"]))
        super().__setstate__(state)

    # ------------------------------------------------------------------ episodes
    def _reset_envs(self, idx: np.ndarray) -> None:
        cfg = self.cfg
        for i in idx:
            rng = self.rngs[i]
            lay = generate_layout(
                rng,
                cfg.instruction_split,
                cfg.room_size,
                (cfg.min_objects, cfg.max_objects),
                cfg.max_obstacles,
                self.scene_version,
            )
            n_obj, n_box = len(lay.objects), len(lay.boxes)
            self.size[i] = lay.size
            self.boxes[i] = 0.0
            self.boxes[i, :n_box] = lay.boxes
            self.box_valid[i] = np.arange(self.boxes.shape[1]) < n_box
            # Unused object slots sit far outside the room and are masked everywhere.
            self.objects[i] = -100.0
            self.objects[i, :n_obj] = lay.objects
            self.obj_color[i] = 0
            self.obj_color[i, :n_obj] = lay.colors
            self.obj_shape[i] = 0
            self.obj_shape[i, :n_obj] = lay.shapes
            self.obj_valid[i] = np.arange(self.objects.shape[1]) < n_obj
            self.obj_candidate[i] = False
            self.obj_candidate[i, :n_obj] = lay.candidates
            self.target[i] = lay.target
            self.pos[i] = lay.robot
            self.heading[i] = lay.heading
            text = make_instruction(
                rng, cfg.instruction_split, int(lay.colors[lay.target]), int(lay.shapes[lay.target])
            )
            self._instructions[i] = text
            self.text[i] = self.tokenizer.encode(text)
            self.noise_key[i] = np.uint64(rng.integers(0, 2**63 - 1))
        self.obj_rgb[idx] = COLOR_RGB[self.obj_color[idx]]
        self._needs_plan[idx] = True
        self.velocity[idx] = 0.0
        self.command[idx] = 0.0
        self.bumped[idx] = False
        self.prev_distance[idx] = self._target_distance()[idx]

    def _object_distances(self) -> np.ndarray:
        """``(n, K)`` centre distances robot-object (``inf`` for empty slots)."""
        d = np.hypot(
            self.objects[..., 0] - self.pos[:, None, 0], self.objects[..., 1] - self.pos[:, None, 1]
        )
        return np.where(self.obj_valid, d, np.inf).astype(np.float32)

    def _target_distance(self) -> np.ndarray:
        rows = np.arange(self.num_envs)
        t = self.objects[rows, self.target] - self.pos
        return np.hypot(t[:, 0], t[:, 1]).astype(np.float32)

    # ------------------------------------------------------------------ dynamics
    def _step(self, actions: np.ndarray) -> StepResult:
        cfg = self.cfg
        if cfg.continuous:
            linear = np.where(actions[:, 0] < 0, REVERSE_SCALE * actions[:, 0], actions[:, 0])
            angular = actions[:, 1]
        else:
            linear, angular = _DISCRETE_LINEAR[actions], _DISCRETE_ANGULAR[actions]
        # Rotate first, then drive along the new heading (a unicycle step).
        heading = self.heading + angular * self.turn_rad
        self.heading = ((heading + np.pi) % (2 * np.pi) - np.pi).astype(np.float32)
        dist = linear * np.float32(cfg.forward_speed)
        x = self.pos[:, 0] + dist * np.cos(self.heading)
        y = self.pos[:, 1] + dist * np.sin(self.heading)
        # A move that would overlap a wall or box is refused (the robot bumps and stays).
        gap = np.minimum(np.minimum(x, self.size[:, 0] - x), np.minimum(y, self.size[:, 1] - y))
        bdx = np.maximum(np.abs(x[:, None] - self.boxes[..., 0]) - self.boxes[..., 2], 0.0)
        bdy = np.maximum(np.abs(y[:, None] - self.boxes[..., 1]) - self.boxes[..., 3], 0.0)
        box_gap = np.where(self.box_valid, np.hypot(bdx, bdy), np.inf).min(axis=1)
        blocked = (np.minimum(gap, box_gap) < ROBOT_RADIUS) & (dist != 0)
        moved = ~blocked
        self.pos[moved, 0] = x[moved]
        self.pos[moved, 1] = y[moved]
        self.bumped = blocked
        self.velocity[:, 0] = np.where(blocked, np.float32(0), linear)
        self.velocity[:, 1] = angular
        self.command[:, 0] = linear
        self.command[:, 1] = angular

        d = self._object_distances()
        rows = np.arange(self.num_envs)
        d_target = d[rows, self.target]
        if cfg.stop_to_choose:
            # Stopping within reach of an object chooses the nearest one (objects are 1.6 m
            # apart, so two can be within reach); coming near the target is not enough, so an
            # agent that does not know the target cannot win by visiting every object.
            halt = (np.abs(linear) < HALT) & (np.abs(angular) < HALT)
            nearest = d.argmin(axis=1)
            chose = halt & (d[rows, nearest] < SUCCESS_RADIUS)
            chose_target = chose & (nearest == self.target)
            chose_wrong = chose & ~chose_target
        d[rows, self.target] = np.inf
        wrong = (d < CONTACT_RADIUS).any(axis=1)
        if cfg.stop_to_choose:
            success = chose_target & ~wrong
            wrong |= chose_wrong
        else:
            success = (d_target < SUCCESS_RADIUS) & ~wrong
        n = self.num_envs
        w = cfg.reward_weights  # each term is its weight times the unweighted term
        rewards = {
            "progress": (w["progress"] * (self.prev_distance - d_target)).astype(np.float32),
            "success": np.where(success, np.float32(w["success"]), np.float32(0)),
            "wrong_object": np.where(wrong, -np.float32(w["wrong_object"]), np.float32(0)),
            "collision": np.where(blocked, -np.float32(w["collision"]), np.float32(0)),
            "time": np.full(n, -w["time"], np.float32),
        }
        self.prev_distance = d_target
        return StepResult(rewards, success | wrong, success, blocked)

    # ------------------------------------------------------------------ sensors
    def _observe(self, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        sel = slice(None) if idx is None else np.asarray(idx, dtype=np.int64)
        pos, heading = self.pos[sel], self.heading[sel]
        boxes, box_valid = self.boxes[sel], self.box_valid[sel]
        objects, obj_valid = self.objects[sel], self.obj_valid[sel]
        # Camera columns and lidar beams are cast in one batch (fewer array operations).
        hits = cast_rays(
            pos, heading[:, None] + self.ray_angles, self.size[sel], boxes, box_valid, objects,
            obj_valid, OBJECT_RADIUS,
        )  # fmt: skip
        camera = self.camera.shade(hits, pos, self.obj_rgb[sel], self.obj_shape[sel])
        cfg = self.cfg
        w = cfg.camera_size
        # Labels: some camera column shows the object in front of everything else (visible);
        # some of those columns fall within the lamp's light (lit). Beyond it the camera shows
        # black, so only "lit" is one the camera can tell (issue 19).
        nearest_obj = hits.t_nearest  # (B', W + beams)
        in_front = nearest_obj[:, :w]
        rows = np.arange(len(pos))
        t_target = hits.t_obj[self.target[sel], rows, :w]  # (B', W); no hit: >= 1e3
        self.target_visible[sel] = ((t_target < 1e3) & (t_target <= in_front)).any(1)
        reach = np.float32(cfg.lamp_range if cfg.lamp_range > 0 else 1e3)
        t_cam = hits.t_obj[:, :, :w]  # (K, B', W)
        self.lit_objects[sel] = ((t_cam < reach) & (t_cam <= in_front)).any(2).T  # (B', K)
        ranges = np.minimum(hits.t_solid[:, w:], nearest_obj[:, w:])
        lidar = np.minimum(ranges / np.float32(cfg.lidar_range), 1.0)
        if cfg.lidar_noise > 0 or cfg.lidar_dropout > 0:
            lidar = self._corrupt(lidar, sel)
        elapsed = self.elapsed[sel].astype(np.float32) / self.max_episode_steps
        state = np.concatenate(
            [
                self.velocity[sel],
                self.command[sel],
                self.bumped[sel, None].astype(np.float32),
                np.minimum(elapsed, 1.0)[:, None],
            ],
            axis=1,
        )
        return {
            "camera": camera,
            "lidar": lidar.astype(np.float32, copy=False),
            "text": self.text[sel].copy(),
            "state": state.astype(np.float32, copy=False),
        }

    def _corrupt(self, lidar: np.ndarray, sel: slice | np.ndarray) -> np.ndarray:
        """Adds noise and dropout from a hash of (episode key, step, beam).

        A counter-based hash instead of ``rngs[i]`` keeps ``observe`` a pure function of the
        state (calling it twice gives the same scan) and avoids a per-copy loop.
        """
        cfg = self.cfg
        beams = len(self.beam_ids)
        counter = self.elapsed[sel].astype(np.uint64)[:, None] * np.uint64(beams) + self.beam_ids
        with np.errstate(over="ignore"):
            keys = self.noise_key[sel][:, None] + counter * np.uint64(3)
        if cfg.lidar_noise > 0:
            u1, u2 = _uniform(keys), _uniform(keys + np.uint64(1))
            normal = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
            lidar = lidar + cfg.lidar_noise * normal.astype(np.float32)
        if cfg.lidar_dropout > 0:
            lidar = np.where(_uniform(keys + np.uint64(2)) < cfg.lidar_dropout, 1.0, lidar)
        return np.clip(lidar, 0.0, 1.0).astype(np.float32)

    # ------------------------------------------------------------------ language and labels
    def instructions(self) -> list[str]:
        return list(self._instructions)

    def labels(self) -> dict[str, np.ndarray]:
        rows = np.arange(self.num_envs)
        rel = self.objects[rows, self.target] - self.pos
        bearing = np.arctan2(rel[:, 1], rel[:, 0]) - self.heading
        bearing = (bearing + np.pi) % (2 * np.pi) - np.pi
        obs_dist, obs_off = nearest_static(self.pos, self.size, self.boxes, self.box_valid)
        obs_bearing = np.arctan2(obs_off[:, 1], obs_off[:, 0]) - self.heading
        obs_bearing = (obs_bearing + np.pi) % (2 * np.pi) - np.pi
        half_fov = np.radians(self.cfg.fov_deg) / 2
        target_lit = self.lit_objects[rows, self.target]
        return {
            "target_index": self.target.copy(),
            "target_color": self.obj_color[rows, self.target],
            "target_shape": self.obj_shape[rows, self.target],
            "target_distance": np.hypot(rel[:, 0], rel[:, 1]).astype(np.float32),
            "target_bearing": bearing.astype(np.float32),
            "target_in_view": (np.abs(bearing) < half_fov).astype(np.int64),
            "target_visible": self.target_visible.astype(np.int64),
            "target_lit": target_lit.astype(np.int64),
            "target_lit_bearing": np.where(target_lit, bearing, 0).astype(np.float32),
            "target_color_lit": self._attribute_lit(self.obj_color),
            "target_shape_lit": self._attribute_lit(self.obj_shape),
            "obstacle_distance": (obs_dist - ROBOT_RADIUS).astype(np.float32),
            "obstacle_bearing": obs_bearing.astype(np.float32),
            "num_objects": self.obj_valid.sum(axis=1).astype(np.int64),
            "num_candidates": self.obj_candidate.sum(axis=1).astype(np.int64),
            "x": self.pos[:, 0].copy(),
            "y": self.pos[:, 1].copy(),
            "heading": self.heading.copy(),
        }

    def _attribute_lit(self, attribute: np.ndarray) -> np.ndarray:
        """``(n,)`` int64: some object sharing the target's ``attribute`` (``(n, K)``
        colour or shape ids), the target included, is lit in view."""
        named = attribute[np.arange(self.num_envs), self.target]
        return (self.lit_objects & (attribute == named[:, None])).any(1).astype(np.int64)

    # ------------------------------------------------------------------ expert
    def _plan(self, i: int) -> None:
        others = self.obj_valid[i].copy()
        others[self.target[i]] = False
        path = plan_path(
            self.pos[i].astype(np.float64),
            self.size[i].astype(np.float64),
            self.boxes[i][self.box_valid[i]].astype(np.float64),
            self.objects[i][others].astype(np.float64),
            self.objects[i, self.target[i]].astype(np.float64),
            SUCCESS_RADIUS,
        )
        if len(path) > self._paths.shape[1]:
            grown = np.empty((self.num_envs, len(path), 2), np.float32)
            grown[:, : self._paths.shape[1]] = self._paths
            grown[:, self._paths.shape[1] :] = self._paths[:, -1:]
            self._paths = grown
        self._paths[i, : len(path)] = path
        self._paths[i, len(path) :] = path[-1]
        self._path_len[i] = len(path)
        self._progress[i] = 0
        self._needs_plan[i] = False

    def expert_action(self) -> np.ndarray:
        """A* path + pure pursuit for every copy: ``(n,)`` int64 or ``(n, 2)`` float32 actions."""
        # Plan on the first query of an episode; replan after a bump (drifted off the path).
        for i in np.flatnonzero(self._needs_plan | self.bumped):
            self._plan(int(i))
        err, self._progress = pursuit(
            self.pos, self.heading, self._paths, self._path_len, self._progress
        )
        # With stop_to_choose, stop once within reach of the target (a margin inside the
        # success radius, so a step of drift cannot matter).
        arrived = self.cfg.stop_to_choose & (self._target_distance() < SUCCESS_RADIUS - 0.05)
        if self.cfg.continuous:
            angular = np.clip(err / self.turn_rad, -1.0, 1.0)
            linear = np.where(np.abs(err) < 0.4, np.cos(err), 0.0)
            action = np.stack([linear, angular], 1).astype(np.float32)
            action[arrived] = 0.0
            return action
        # Drive when the carrot is within half a turn step of straight ahead, else turn.
        tol = self.turn_rad / 2 + 0.01
        action = np.where(err > tol, 1, np.where(err < -tol, 2, 0)).astype(np.int64)
        return np.where(arrived, 3, action)


class NavigationSimulatorV0(NavigationSimulator):
    """``mmrl/Navigation-v0``: the original generator, kept unchanged for old runs.

    Its scene gives the target away (see the env's Version History); use v1.
    """

    env_id = "mmrl/Navigation-v0"
    scene_version = 0
    config_defaults: dict[str, Any] = {}


NavigationSimulator.unversioned_class = NavigationSimulatorV0
