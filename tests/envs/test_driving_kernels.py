"""Driving's compiled lidar and camera (``mmrl/envs/driving/kernels.py``) give the observations
of the NumPy code they replaced (issue 20), bit for bit.

The functions below are verbatim copies of ``Lidar._beams``, ``Lidar.scan`` and
``Camera.render`` as they were before the kernels (main at 9d7356e). They run on the state of
real vec envs after random steps and on states random episodes rarely reach: turned egos,
an ego exactly on a kerb line (a zero distance, whose sign NumPy's minimum/maximum decide),
an ego inside a car (a crash), cars on one spot (ties in distance and overlapping stamps),
egos at the view's edges, lidars without kerbs, subsets of copies.
"""

from __future__ import annotations

import numpy as np
import pytest

import mmrl
from mmrl.envs.driving.camera import VIEW_WIDTH, Y_LO
from mmrl.envs.driving.lidar import _FAR, _HX, _HY, NEAREST

# --------------------------------------------------------------------------- frozen copies
_TINY = 1e-9


def _inverse(d):
    return 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)


def frozen_beams(lidar, heading):
    ang = lidar.angles - heading[:, None]
    dx, dy = np.cos(ang), -np.sin(ang)
    ix, iy = _inverse(dx), _inverse(dy)
    out = (dx, dy, ix, iy, _HX * np.abs(ix), _HY * np.abs(iy))
    return tuple(a.astype(np.float32) for a in out)


def frozen_scan(lidar, idx, ego_x, ego_y, heading, car_x, car_y, valid):
    r_max = np.float32(lidar.max_range)
    beams = frozen_beams(lidar, heading) if np.count_nonzero(heading) else lidar._beams0
    dx, dy, ix, iy, hx_ix, hy_iy = beams
    ox = ego_x.astype(np.float32)[:, None]
    oy = ego_y.astype(np.float32)[:, None]
    if lidar.kerbs:
        t = (lidar.h_c[:, idx] - oy) * iy
        xh = ox + t * dx
        hit = (t >= 0) & (xh >= lidar.h_lo[:, idx]) & (xh <= lidar.h_hi[:, idx])
        dist = np.where(hit, t, r_max).min(axis=0)
        v_c, v_lo, v_hi = lidar.v_c, lidar.v_lo, lidar.v_hi
        for row in range(v_c.shape[0]):
            t = (v_c[row, idx] - ox) * ix
            yh = oy + t * dy
            hit = (t >= 0) & (yh >= v_lo[row, idx]) & (yh <= v_hi[row, idx])
            dist = np.where(hit & (t < dist), t, dist)
    else:
        dist = r_max
    rel_x = car_x - ego_x[:, None]
    rel_y = car_y - ego_y[:, None]
    d2 = np.where(valid, rel_x * rel_x + rel_y * rel_y, np.inf)
    if d2.shape[1] > NEAREST:
        near = np.argpartition(d2, NEAREST - 1, axis=1)[:, :NEAREST]
        rows = np.arange(len(d2))[:, None]
        rel_x, rel_y, d2 = rel_x[rows, near], rel_y[rows, near], d2[rows, near]
    far = d2 == np.inf
    rel_x = np.where(far, _FAR, rel_x).astype(np.float32).T[:, :, None]
    rel_y = rel_y.astype(np.float32).T[:, :, None]
    cx = rel_x * ix
    cy = rel_y * iy
    t_near = np.maximum(cx - hx_ix, cy - hy_iy)
    t_far = np.minimum(cx + hx_ix, cy + hy_iy)
    hit = (t_near <= t_far) & (t_far >= 0)
    cars = np.where(hit, t_near, r_max).min(axis=0)
    return np.minimum(np.maximum(np.minimum(dist, cars), 0), r_max)


def frozen_render(cam, idx, ego_x, ego_y, car_x, car_y, car_rgb, visible):
    s = cam.size
    windows = cam._windows
    k = ego_x.shape[0]
    rows_k = np.arange(len(cam.kinds))
    arange = np.arange(s)
    dr, dc = np.meshgrid(np.arange(cam._h), np.arange(cam._w), indexing="ij")
    dr, dc = dr.ravel(), dc.ravel()
    q0 = ((cam.x_top - cam.view_ahead - ego_x) * (1.0 / cam.res_x)).astype(np.int64)
    q0 = np.minimum(np.maximum(q0, 0), cam.n_q - s)
    kind = cam.kinds[idx][rows_k[:k, None], q0[:, None] + arange]
    c0 = ((ego_y - (0.5 * VIEW_WIDTH + Y_LO)) * (1.0 / cam.res_y)).astype(np.int64)
    c0 = np.minimum(np.maximum(c0, 0), windows.shape[1] - 1)
    img = windows[kind, c0[:, None]].reshape(k, s, s, 3)
    top = (cam.x_top - q0 * cam.res_x - 0.5 * (cam._h * cam.res_x))[:, None]
    left = (Y_LO + c0 * cam.res_y + 0.5 * (cam._w * cam.res_y))[:, None]
    xs = np.concatenate([car_x, ego_x[:, None]], axis=1)
    ys = np.concatenate([car_y, ego_y[:, None]], axis=1)
    r0 = np.floor((top - xs) * (1.0 / cam.res_x) + 0.5).astype(np.int64)
    c1 = np.floor((ys - left) * (1.0 / cam.res_y) + 0.5).astype(np.int64)
    vis = visible & (r0 > -cam._h) & (r0 < s) & (c1 > -cam._w) & (c1 < s)
    b, j = np.nonzero(vis)
    rr = r0[b, j][:, None] + dr
    cc = c1[b, j][:, None] + dc
    inside = (rr >= 0) & (rr < s) & (cc >= 0) & (cc < s)
    flat = (b[:, None] * s + rr) * s + cc
    rgb = car_rgb[b, j]
    m, p = np.nonzero(inside)
    img.reshape(-1, 3)[flat[m, p]] = rgb[m]
    return img


# --------------------------------------------------------------------------- comparisons
def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _edge_cases(sim, rng: np.random.Generator) -> None:
    """Moves some copies into rare states (in place)."""
    ego, t = sim.ego, sim.traffic
    ego.y[0] = 0.0  # exactly on the left kerb line: a zero distance
    ego.y[1] = sim.road.n_lanes[1] * 4.0  # on the right kerb (the lane width is 4 m)
    t.x[2, :3], t.y[2, :3], t.valid[2, :3] = ego.x[2], ego.y[2], True  # inside cars
    t.x[3, :12] = ego.x[3] + 10.0  # twelve cars on two spots: ties in distance
    t.y[3, :12] = ego.y[3] + np.where(np.arange(12) % 2, 3.0, -3.0)
    t.valid[3, :12] = True
    t.valid[4] = False  # no car at all
    ego.y[5] += 25.0  # off the view's right edge of the table
    ego.y[6] -= 40.0
    ego.x[7] = sim.road.ramp_end[7] + 200.0  # far past the strip's end
    sim._cam_vis[3, :12] = True


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("mmrl/Driving-v1", {}),  # v1 lidars see no kerbs by default
        ("mmrl/Driving-v0", {"lidar_kerbs": True}),
        ("mmrl/DrivingContinuous-v1", {"traffic_density": 2.0, "camera_size": 37}),
        ("mmrl/Driving-v1", {"lidar_kerbs": True, "lidar_beams": 37, "camera_size": 128}),
    ],
)
def test_lidar_and_camera_match_frozen_code(env_id: str, kwargs: dict) -> None:
    venv = mmrl.make_vec_env(env_id, n_envs=24, seed=6, monitor=False, **kwargs)
    sim = venv.sim
    venv.reset()
    venv.action_space.seed(6)
    rng = np.random.default_rng(6)
    for step in range(12):
        venv.step(np.stack([venv.action_space.sample() for _ in range(24)]))
        if step == 6:
            _edge_cases(sim, rng)
        ego, t = sim.ego, sim.traffic
        headings = {"state": ego.psi, "turned": rng.uniform(-0.6, 0.6, 24), "straight": 0 * ego.psi}
        headings["axis"] = np.pi / 2 * rng.integers(-2, 3, 24)
        for name, psi in headings.items():
            for idx in (slice(None), np.array([0, 3, 3, 17, 2])):
                sel = slice(None) if isinstance(idx, slice) else idx
                args = (idx, ego.x[sel], ego.y[sel], psi[sel], t.x[sel], t.y[sel], t.valid[sel])
                assert _same(sim.lidar.scan(*args), frozen_scan(sim.lidar, *args)), (step, name)
            got = sim.lidar._beams(psi)
            assert all(_same(a, b) for a, b in zip(got, frozen_beams(sim.lidar, psi)))
        for idx in (slice(None), np.array([0, 3, 3, 17, 2, 5, 6, 7])):
            sel = slice(None) if isinstance(idx, slice) else idx
            args = (idx, ego.x[sel], ego.y[sel], t.x[sel], t.y[sel], sim._cam_rgb[sel])
            args += (sim._cam_vis[sel],)
            assert _same(sim.camera.render(*args), frozen_render(sim.camera, *args)), step
