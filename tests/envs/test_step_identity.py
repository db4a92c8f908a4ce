"""Faster stepping changes no observation (issue 20): the optimized code against frozen copies.

The functions below are verbatim copies of the stepping code as it was before the issue-20
optimizations (main at 8ff976d): Navigation's ray casting, camera shading and ``observe``,
and the per-copy ``info`` dicts of :class:`~mmrl.envs.base.BatchedSimulator`. A vec env
whose simulator uses them runs side by side with an unmodified one (same seeds, same
actions, auto-resets included) and every observation, reward, done flag and info must be
bit-identical. Driving's episodes are being redesigned, so only its info dicts are compared
over whole episodes.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

import mmrl
from mmrl.envs.navigation import camera as camera_module
from mmrl.envs.navigation.camera import (
    BOX_RGB,
    CEILING_RGB,
    EYE_HEIGHT,
    FLOOR_RGB,
    LAMP_FADE,
    SHAPE_HEIGHT,
    WALL_HEIGHT,
    WALL_RGB,
    ColumnCamera,
)
from mmrl.envs.navigation.room import OBJECT_RADIUS

# --------------------------------------------------------------------------- frozen copies
_FAR = np.float32(1e4)
_TAPER = np.array([0.0, 0.0, 1.0, 0.0], dtype=np.float32)
_ROUND_SHADE = np.array([1.0, 0.0, 1.0, 1.0], dtype=np.float32)
_N_LABELS, _DARK = 6, 5


def frozen_cast_rays(pos, angles, size, boxes, box_valid, objects, obj_valid, radius):
    dx, dy = np.cos(angles), np.sin(angles)
    ox, oy = pos[:, 0:1], pos[:, 1:2]
    inv_x = 1.0 / np.where(np.abs(dx) < 1e-6, np.float32(1e-6), dx)
    inv_y = 1.0 / np.where(np.abs(dy) < 1e-6, np.float32(1e-6), dy)
    tx = (np.where(inv_x > 0, size[:, 0:1], 0.0) - ox) * inv_x
    ty = (np.where(inv_y > 0, size[:, 1:2], 0.0) - oy) * inv_y
    x_face = tx < ty
    t_solid = np.minimum(tx, ty)
    is_box = np.zeros_like(x_face)
    if boxes.shape[1]:
        lo = (boxes[..., :2] - boxes[..., 2:] - pos[:, None, :])[:, None]
        hi = (boxes[..., :2] + boxes[..., 2:] - pos[:, None, :])[:, None]
        ix, iy = inv_x[..., None], inv_y[..., None]
        ax, bx = lo[..., 0] * ix, hi[..., 0] * ix
        ay, by = lo[..., 1] * iy, hi[..., 1] * iy
        tx_near, ty_near = np.minimum(ax, bx), np.minimum(ay, by)
        t_near = np.maximum(tx_near, ty_near)
        t_far = np.minimum(np.maximum(ax, bx), np.maximum(ay, by))
        hit = (t_near <= t_far) & (t_near > 0) & box_valid[:, None, :]
        t_box = np.where(hit, t_near, _FAR)
        m = t_box.shape[-1]
        flat = t_box.argmin(axis=-1) + m * np.arange(t_box.shape[0] * t_box.shape[1]).reshape(
            t_box.shape[:2]
        )
        tb = np.take(t_box, flat)
        is_box = tb < t_solid
        t_solid = np.where(is_box, tb, t_solid)
        x_face = np.where(is_box, np.take(tx_near, flat) > np.take(ty_near, flat), x_face)
    rel = (objects - pos[:, None, :])[:, None]
    dxk, dyk = dx[..., None], dy[..., None]
    fwd = rel[..., 0] * dxk + rel[..., 1] * dyk
    lat = rel[..., 1] * dxk - rel[..., 0] * dyk
    r = np.float32(radius)
    t_obj = fwd - np.sqrt(np.maximum(r * r - lat * lat, 0.0))
    seen = (np.abs(lat) < r) & (t_obj > 0) & (t_obj < t_solid[..., None]) & obj_valid[:, None]
    t_obj = np.where(seen, t_obj, _FAR)
    return {"dx": dx, "dy": dy, "t_solid": t_solid, "x_face": x_face, "is_box": is_box,
            "t_obj": t_obj, "fwd": fwd, "lat": lat}  # fmt: skip


def _frozen_lamp(cam, t):
    return np.clip((cam.lamp_range - t) * np.float32(1.0 / LAMP_FADE), 0.0, 1.0)


def frozen_shade(cam: ColumnCamera, hits: dict, pos, obj_rgb, obj_shape) -> np.ndarray:
    """``ColumnCamera.shade`` before issue 20 (its cached constants rebuilt here)."""
    n, s = len(pos), cam.size
    n_rays, k_obj = hits["t_obj"].shape[1:]
    row_dtype = np.uint8 if s < 255 else np.uint16
    rows_c = np.arange(s, dtype=row_dtype)[None, None, :, None]
    rows = np.arange(s)
    floor = (rows >= s / 2).astype(np.uint8)[None, :, None]
    if cam.lamp_range is not None:
        below = (rows + 0.5 - s / 2).astype(np.float32)
        height = np.where(below > 0, EYE_HEIGHT, WALL_HEIGHT - EYE_HEIGHT)
        distance = cam.focal * height / np.maximum(np.abs(below), 1e-6)
        floor = np.where(distance[None, :, None] > cam.lamp_range, _DARK, floor).astype(np.uint8)
    b = np.arange(n)[:, None, None]
    ray_base = (b * n_rays + np.arange(s)[None, :, None]) * k_obj
    obj_base = b * k_obj
    palette = np.full((n, s, _N_LABELS, 4), 255, np.uint8)
    palette[:, :, 0, :3] = CEILING_RGB
    palette[:, :, 1, :3] = FLOOR_RGB
    palette[:, :, _DARK, :3] = 0
    pixel_base = (_N_LABELS * np.arange(n * s, dtype=np.intp)).reshape(n, 1, s)

    dx, dy = hits["dx"][:, :s], hits["dy"][:, :s]
    t_solid, x_face = hits["t_solid"][:, :s], hits["x_face"][:, :s]
    is_box = hits["is_box"][:, :s]
    ox, oy = pos[:, 0:1], pos[:, 1:2]
    along = np.where(x_face, oy + t_solid * dy, ox + t_solid * dx)
    shade = np.where(x_face, np.float32(0.75), np.float32(1.0)) / (1.0 + 0.07 * t_solid)
    shade = np.where((along % 1.0) < 0.04, 0.6 * shade, shade)
    if cam.lamp_range is not None:
        shade = shade * _frozen_lamp(cam, t_solid)
    wall_rgb = np.where(is_box[..., None], BOX_RGB, WALL_RGB) * shade[..., None]
    depth = np.maximum(t_solid * cam.cos, 0.05)
    order = np.argsort(hits["t_obj"][:, :s], axis=-1)[..., 1::-1]
    flat = ray_base + order
    t2 = np.take(hits["t_obj"], flat)
    u = np.minimum(np.abs(np.take(hits["lat"], flat)) / cam.radius, 1.0)
    d_obj = np.maximum(np.take(hits["fwd"], flat) * cam.cos[:, None], 0.05)
    slot = obj_base + order
    shape = np.take(obj_shape, slot)
    roundness = np.sqrt(1.0 - u * u)
    r = cam.radius
    is_ball = shape == 0
    z_bot = np.where(is_ball, r * (1.0 - roundness), np.float32(0.0))
    z_top = np.where(is_ball, r * (1.0 + roundness), SHAPE_HEIGHT[shape] * (1 - _TAPER[shape] * u))
    rs = _ROUND_SHADE[shape]
    light = (0.9 * (1.0 - rs) + rs * (0.55 + 0.45 * roundness)) / (1.0 + 0.05 * t2)
    if cam.lamp_range is not None:
        light = light * _frozen_lamp(cam, t2)
    obj_col = np.take(obj_rgb.reshape(-1, 3), slot, axis=0) * light[..., None]
    horizon = np.float32(s / 2)
    spans = np.empty((2, 3, n, s), np.float32)
    spans[0, 0] = horizon - cam.focal * (WALL_HEIGHT - EYE_HEIGHT) / depth
    spans[1, 0] = horizon + cam.focal * EYE_HEIGHT / depth
    spans[0, 1:] = (horizon - cam.focal * (z_top - EYE_HEIGHT) / d_obj).transpose(2, 0, 1)
    spans[1, 1:] = (horizon - cam.focal * (z_bot - EYE_HEIGHT) / d_obj).transpose(2, 0, 1)
    spans[1, 1:] = np.where((t2 >= _FAR).transpose(2, 0, 1), spans[0, 1:], spans[1, 1:])
    rows_i = np.minimum(np.maximum(np.ceil(spans - 0.5), 0), s).astype(row_dtype)
    top_i = rows_i[0][:, :, None, :]
    height = np.maximum(rows_i[1], rows_i[0])[:, :, None, :] - top_i
    inside = (rows_c - top_i) < height
    label = np.where(inside[0], np.uint8(2), floor)
    for j in (1, 2):
        label = np.where(inside[j], np.uint8(2 + j), label)
    palette[:, :, 2, :3] = np.minimum(wall_rgb, 255.0)
    palette[:, :, 3:5, :3] = np.minimum(obj_col, 255.0)
    index = pixel_base + label
    rgba = np.take(palette.view(np.uint32), index)
    return rgba.view(np.uint8).reshape(n, s, s, 4)[..., :3].copy()


def frozen_navigation_observe(sim, idx=None) -> dict[str, np.ndarray]:
    """``NavigationSimulator.observe`` before issue 20, on the frozen sensors."""
    sel = slice(None) if idx is None else np.asarray(idx, dtype=np.int64)
    pos, heading = sim.pos[sel], sim.heading[sel]
    hits = frozen_cast_rays(
        pos, heading[:, None] + sim.ray_angles, sim.size[sel], sim.boxes[sel],
        sim.box_valid[sel], sim.objects[sel], sim.obj_valid[sel], OBJECT_RADIUS,
    )  # fmt: skip
    camera = frozen_shade(sim.camera, hits, pos, sim.obj_rgb[sel], sim.obj_shape[sel])
    cfg = sim.cfg
    w = cfg.camera_size
    nearest_obj = hits["t_obj"].min(axis=-1)
    t_target = hits["t_obj"][np.arange(len(pos)), :w, sim.target[sel]]
    shown = (t_target < 1e3) & (t_target <= nearest_obj[:, :w])
    sim.target_visible[sel] = shown.any(1)
    # The per-object lit mask (issue 19) postdates the frozen code: its definition, written
    # out.
    lamp = np.float32(cfg.lamp_range) if cfg.lamp_range > 0 else np.float32(np.inf)
    t_cam = hits["t_obj"][:, :w, :]  # (B', W, K)
    lit = (t_cam < 1e3) & (t_cam <= nearest_obj[:, :w, None]) & (t_cam < lamp)
    sim.lit_objects[sel] = lit.any(1)
    ranges = np.minimum(hits["t_solid"][:, w:], nearest_obj[:, w:])
    lidar = np.minimum(ranges / np.float32(cfg.lidar_range), 1.0)
    if cfg.lidar_noise > 0 or cfg.lidar_dropout > 0:
        lidar = sim._corrupt(lidar, sel)
    elapsed = sim.elapsed[sel].astype(np.float32) / sim.max_episode_steps
    state = np.concatenate(
        [sim.velocity[sel], sim.command[sel], sim.bumped[sel, None].astype(np.float32),
         np.minimum(elapsed, 1.0)[:, None]],
        axis=1,
    )  # fmt: skip
    return {
        "camera": camera,
        "lidar": lidar.astype(np.float32, copy=False),
        "text": sim.text[sel].copy(),
        "state": state.astype(np.float32, copy=False),
    }


def frozen_infos(sim, result, arrays=None) -> list[dict[str, Any]]:
    """``BatchedSimulator.infos`` before issue 20."""
    arrays = sim.info_arrays(result) if arrays is None else arrays
    instructions = arrays["instruction"]
    rewards = {k: v.tolist() for k, v in arrays["rewards"].items()}
    labels = {k: v.tolist() for k, v in arrays["labels"].items()}
    success = arrays["is_success"].tolist()
    collision = arrays["collision"].tolist()
    return [
        {
            "instruction": instructions[i],
            "is_success": success[i],
            "collision": collision[i],
            "rewards": {k: v[i] for k, v in rewards.items()},
            "labels": {k: v[i] for k, v in labels.items()},
        }
        for i in range(sim.num_envs)
    ]


def frozen_reset_infos(sim, idx=None) -> list[dict[str, Any]]:
    """``BatchedSimulator.reset_infos`` before issue 20."""
    idx = np.arange(sim.num_envs) if idx is None else idx
    instructions = sim.instructions()
    labels = {k: v.tolist() for k, v in sim.labels().items()}
    return [
        {
            "instruction": instructions[i],
            "is_success": False,
            "labels": {k: v[i] for k, v in labels.items()},
        }
        for i in idx
    ]


# --------------------------------------------------------------------------- comparisons
def _same_value(a: Any, b: Any) -> bool:
    """Equal values of equal types, recursively; arrays bitwise with dtype and shape."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and np.isnan(a):
        return np.isnan(b)
    return a == b


def _frozen_venv(env_id: str, n_envs: int, seed: int, navigation: bool, **kwargs: Any):
    venv = mmrl.make_vec_env(env_id, n_envs=n_envs, seed=seed, monitor=False, **kwargs)
    sim = venv.sim
    sim.infos = functools.partial(frozen_infos, sim)
    sim.reset_infos = functools.partial(frozen_reset_infos, sim)
    if navigation:
        sim.observe = functools.partial(frozen_navigation_observe, sim)
    return venv


def _run_side_by_side(env_id: str, n_envs: int, seed: int, steps: int, **kwargs: Any) -> int:
    """Steps the current and the frozen vec env together; returns the auto-resets seen."""
    navigation = "Navigation" in env_id
    new = mmrl.make_vec_env(env_id, n_envs=n_envs, seed=seed, monitor=False, **kwargs)
    old = _frozen_venv(env_id, n_envs, seed, navigation, **kwargs)
    obs_new, obs_old = new.reset(), old.reset()
    assert _same_value(obs_new, obs_old)
    assert _same_value(new.reset_infos, old.reset_infos)
    space = new.action_space
    space.seed(seed)
    resets = 0
    for step in range(steps):
        actions = np.stack([space.sample() for _ in range(n_envs)])
        if step % 3 == 0 and navigation:
            actions = new.expert_action()  # reach goals too, not only random walks
        out_new, out_old = new.step(actions), old.step(actions)
        for name, a, b in zip(("obs", "reward", "done", "info"), out_new, out_old):
            assert _same_value(a, b), f"{env_id} n={n_envs}: {name} differs at step {step}"
        assert _same_value(new.reset_infos, old.reset_infos)
        resets += int(out_new[2].sum())
    return resets


@pytest.mark.parametrize("n_envs", [1, 7, 64])
@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("mmrl/Navigation-v1", {}),
        ("mmrl/Navigation-v0", {}),  # lit room: the camera's lamp-less path
        ("mmrl/NavigationContinuous-v1", {"camera_size": 48, "lidar_beams": 32}),
        ("mmrl/Navigation-v1", {"camera_size": 37, "lidar_noise": 0.05, "lidar_dropout": 0.1}),
    ],
)
def test_navigation_episodes_match_frozen_code(env_id: str, kwargs: dict, n_envs: int) -> None:
    resets = _run_side_by_side(env_id, n_envs, seed=11, steps=110, **kwargs)
    if n_envs > 1:
        assert resets > 0, "the run must cover auto-resets"


@pytest.mark.parametrize("env_id", ["mmrl/Driving-v1", "mmrl/DrivingContinuous-v1"])
def test_driving_infos_match_frozen_code(env_id: str) -> None:
    # Only the info dicts are frozen here (observations: the sensor tests below).
    resets = _run_side_by_side(env_id, 16, seed=5, steps=60)
    assert resets > 0


@pytest.mark.parametrize("camera_size", [256, 255, 254, 48])
def test_navigation_camera_render_matches_frozen_shade(camera_size: int) -> None:
    """Large cameras (uint16 span rows from 255 pixels on, in the frozen code and in the
    kernel's scratch) and an odd small one, on random rooms."""
    sim = mmrl.make_vec_env("mmrl/Navigation-v1", n_envs=7, seed=3, camera_size=camera_size).sim
    sim.reset_envs()
    hits = frozen_cast_rays(
        sim.pos, sim.heading[:, None] + sim.camera.angles, sim.size, sim.boxes, sim.box_valid,
        sim.objects, sim.obj_valid, OBJECT_RADIUS,
    )  # fmt: skip
    expected = frozen_shade(sim.camera, hits, sim.pos, sim.obj_rgb, sim.obj_shape)
    got = sim.camera.render(
        sim.pos, sim.heading, sim.size, sim.boxes, sim.box_valid, sim.objects, sim.obj_rgb,
        sim.obj_shape, sim.obj_valid,
    )  # fmt: skip
    assert got.dtype == np.uint8 and np.array_equal(got, expected)


@pytest.mark.parametrize("env_id", ["mmrl/Navigation-v1", "mmrl/Navigation-v0"])
def test_navigation_kernels_match_frozen_code_on_edge_cases(env_id: str) -> None:
    """The compiled ray casting and shading (``mmrl/envs/navigation/kernels.py``) on states
    random episodes rarely reach: axis-parallel rays, objects at equal distances (ties
    between objects), objects stacked on one spot, the robot against a wall or a box."""
    sim = mmrl.make_vec_env(env_id, n_envs=32, seed=8).sim
    sim.reset_envs()
    rng = np.random.default_rng(8)
    quarter = np.float32(np.pi / 2)
    sim.heading[:8] = quarter * np.arange(-2, 6, dtype=np.float32) % np.float32(2 * np.pi)
    # Copies 8-15: object 1 mirrors object 0 about the robot's heading (equal distances).
    mirror = slice(8, 16)
    sim.heading[mirror] = 0.0
    sim.objects[mirror, 1, 0] = sim.objects[mirror, 0, 0]
    sim.objects[mirror, 1, 1] = 2 * sim.pos[mirror, 1] - sim.objects[mirror, 0, 1]
    sim.objects[16:20, 1:] = sim.objects[16:20, :1]  # all objects on one spot
    sim.pos[20:24, 0] = np.float32(0.25)  # against the left wall
    valid = sim.box_valid[24:28, 0]
    box = sim.boxes[24:28, 0]
    sim.pos[24:28, 0] = np.where(valid, box[:, 0] - box[:, 2] - np.float32(0.25), sim.pos[24:28, 0])
    sim.pos[24:28, 1] = np.where(valid, box[:, 1], sim.pos[24:28, 1])
    sim.heading[28:] = rng.uniform(-np.pi, np.pi, 4).astype(np.float32)
    angles = sim.heading[:, None] + sim.ray_angles
    args = (sim.pos, angles, sim.size, sim.boxes, sim.box_valid, sim.objects, sim.obj_valid)
    hits = camera_module.cast_rays(*args, OBJECT_RADIUS)
    frozen = frozen_cast_rays(*args, OBJECT_RADIUS)
    for name in ("dx", "dy", "t_solid", "x_face", "is_box"):
        assert _same_value(getattr(hits, name), frozen[name]), name
    for name in ("t_obj", "fwd", "lat"):
        assert _same_value(getattr(hits, name), frozen[name].transpose(2, 0, 1).copy()), name
    assert _same_value(hits.t_nearest, frozen["t_obj"].min(axis=-1))
    got = sim.camera.shade(hits, sim.pos, sim.obj_rgb, sim.obj_shape)
    expected = frozen_shade(sim.camera, frozen, sim.pos, sim.obj_rgb, sim.obj_shape)
    assert _same_value(got, expected)


def test_camera_pickled_before_issue_20_renders_the_same() -> None:
    """A camera from an old checkpoint (its ``_scratch`` cache of another layout, ``rows``,
    ``row_dtype``; the remap buffers ``_buffers`` of issue 20's first rounds) restores
    without them and renders like a new one."""
    sim = mmrl.make_vec_env("mmrl/Navigation-v1", n_envs=3, seed=4).sim
    sim.reset_envs()
    old_state = dict(vars(sim.camera))
    old_state.update(_scratch={(3, 128, 5): object()}, rows=np.arange(64), row_dtype=np.uint8)
    old_state.update(_buffers={(3, 128, 5): object()})
    restored = ColumnCamera.__new__(ColumnCamera)
    restored.__setstate__(old_state)
    args = (
        sim.pos, sim.heading, sim.size, sim.boxes, sim.box_valid, sim.objects, sim.obj_rgb,
        sim.obj_shape, sim.obj_valid,
    )  # fmt: skip
    assert not {"_scratch", "rows", "row_dtype", "_buffers"} & set(vars(restored))
    assert np.array_equal(restored.render(*args), sim.camera.render(*args))
