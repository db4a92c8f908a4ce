"""Batched Driving resets draw the same episodes as the per-copy loop they replaced (issue 20).

The hashes below were recorded with the per-copy reset of main at 27cc62f (before
:mod:`mmrl.envs.driving.scenes`), by this module's own functions. Each copy draws from its
own generator, so a copy seeded ``s`` must start exactly the episode a single env seeded
``s`` starts whichever copies are reset with it; the batched reset keeps every generator
call, its order and its size, and these hashes pin the outcome.

- :func:`reset_digest` hashes the whole state every reset writes (road, ego, every car slot,
  task, text, instruction, potential, camera colours, ...) over rounds of resets of random
  subsets of copies with steps in between, for Driving-v0 and v1 under several configs
  (dense traffic with more cars than slots, named cars in full roads, empty roads, the test
  split, continuous actions). It involves only random draws and exact arithmetic, so it is
  the same on every machine.
- :func:`observation_digest` hashes every observation, reward, done flag, terminal
  observation and instruction of whole vec-env runs with episodes ending (auto-resets),
  lidar noise included. Stepping goes through NumPy's float64 ``sin``/``cos``/``arctan``,
  whose last bits depend on the CPU's SIMD path (NumPy uses SVML on AVX-512 machines), so
  these hashes are checked only where they were recorded: on AVX-512 CPUs.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import mmrl
from mmrl.envs.driving.simulator import DrivingSimulator, DrivingSimulatorV0

CONFIGS = {
    "default": {},
    "test_dense": {"instruction_split": "test", "traffic_density": 2.0},
    "empty_two": {"traffic_density": 0.0, "min_lanes": 2, "max_lanes": 2},
    "named_dense": {"traffic_density": 2.0, "tasks": ("follow", "overtake"), "min_lanes": 4},
    "cont_sparse": {
        "continuous": True,
        "traffic_density": 0.4,
        "tasks": ("follow", "overtake", "lane"),
    },
}

RESET_DIGESTS = {
    ("v0", "default"): "d00136ac50c752bd",
    ("v0", "test_dense"): "392dc90d18068286",
    ("v0", "empty_two"): "ae62efded9a0c868",
    ("v0", "named_dense"): "f35a50194f2c6558",
    ("v0", "cont_sparse"): "254b3181cde75300",
    ("v1", "default"): "74391512185d4e51",
    ("v1", "test_dense"): "306b8de76103dc9a",
    ("v1", "empty_two"): "ceb85e73d8db7220",
    ("v1", "named_dense"): "5b3d3a2dc853fbea",
    ("v1", "cont_sparse"): "ecc9f4994cfe6e0e",
}

NOISY = {"instruction_split": "test", "lidar_noise": 0.05, "lidar_dropout": 0.1}
OBSERVATION_DIGESTS = {
    # (env id, config): (digest, episodes ended in the run)
    ("mmrl/Driving-v0", "default"): ("ad106ced6380ddfb", 144),
    ("mmrl/Driving-v0", "noisy_test"): ("f5d1ec4b8c3bdf00", 144),
    ("mmrl/Driving-v0", "cont_sparse"): ("7424ca4706872cd6", 565),
    ("mmrl/Driving-v1", "default"): ("edcf655a7fbfb69a", 719),
    ("mmrl/Driving-v1", "noisy_test"): ("fa5b79acf2f39c70", 694),
    ("mmrl/Driving-v1", "cont_sparse"): ("1ca5c484bcc0804e", 481),
}


def _state_digest(sim: DrivingSimulator, idx: np.ndarray) -> bytes:
    """Hash of everything a reset of copies ``idx`` writes."""
    r, t, e, k, d = sim.road, sim.traffic, sim.ego, sim.tasks, sim.derived
    parts = [r.n_lanes[idx], r.ramp_start[idx], r.ramp_end[idx]]
    if r.onramp_end is not None:
        parts.append(r.onramp_end[idx])
    fields = ("x", "y", "lane", "v", "v0", "color", "valid", "leader", "has_leader")
    parts += [getattr(t, f)[idx] for f in fields]
    fields = ("x", "y", "psi", "v", "steer", "accel", "lane_target", "level")
    parts += [getattr(e, f)[idx] for f in fields]
    fields = ("task", "arg", "onehot", "goal_lane", "goal_y", "target", "has_target")
    parts += [getattr(k, f)[idx] for f in fields]
    parts += [
        k.present,
        sim.text[idx],
        sim.phi[idx],
        sim.behind_steps[idx],
        sim._cam_rgb[idx],
        sim._cam_vis[idx],
        sim.sat_steps[idx],
        sim.sat_streak[idx],
        sim.steps[idx],
        sim.elapsed[idx],
        d.lane[idx],
        d.target_x[idx],
        d.target_v[idx],
        d.d[idx],
    ]
    h = hashlib.sha256()
    for p in parts:
        a = np.ascontiguousarray(p)
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    for i in idx:
        h.update(sim._instructions[i].encode())
    return h.digest()


def reset_digest(cls: type[DrivingSimulator], cfg: dict, n: int = 24, rounds: int = 40) -> str:
    """Digest of a full reset and ``rounds`` resets of random subsets, steps in between."""
    sim = cls(n, **cfg)
    sim.seed(list(range(100, 100 + n)))
    pick = np.random.default_rng(7)
    total = hashlib.sha256()
    sim.reset_envs()
    total.update(_state_digest(sim, np.arange(n)))
    for _ in range(rounds):
        for _ in range(2):  # steps draw nothing without lidar noise: resets see the same streams
            sim.step(sim.expert_action())
        idx = np.flatnonzero(pick.random(n) < 0.4)
        sim.reset_envs(idx)
        total.update(_state_digest(sim, idx))
    return total.hexdigest()[:16]


def observation_digest(env_id: str, cfg: dict, n: int = 16, steps: int = 300) -> tuple[str, int]:
    """Digest of a seeded vec-env run with random actions, and the episodes it ended."""
    venv = mmrl.make_vec_env(env_id, n, seed=5, monitor=False, **cfg)
    act = np.random.default_rng(3)
    h = hashlib.sha256()

    def add(obs: dict) -> None:
        for key in sorted(obs):
            h.update(np.ascontiguousarray(obs[key]).tobytes())

    add(venv.reset())
    ends = 0
    for _ in range(steps):
        if cfg.get("continuous"):
            actions = act.uniform(-1, 1, (n, 2)).astype(np.float32)
        else:
            actions = act.integers(5, size=n)
        obs, reward, done, infos = venv.step(actions)
        add(obs)
        h.update(reward.tobytes())
        h.update(done.tobytes())
        ends += int(done.sum())
        for i in np.flatnonzero(done):
            add(infos[i]["terminal_observation"])
            h.update(infos[i]["instruction"].encode())
    venv.close()
    return h.hexdigest()[:16], ends


@pytest.mark.parametrize("key", sorted(RESET_DIGESTS), ids="-".join)
def test_reset_state_matches_the_per_copy_reset(key):
    version, config = key
    cls = DrivingSimulatorV0 if version == "v0" else DrivingSimulator
    assert reset_digest(cls, CONFIGS[config]) == RESET_DIGESTS[key]


def _has_avx512() -> bool:
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy < 2
        from numpy.core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get("AVX512_SKX"))


@pytest.mark.skipif(
    not _has_avx512(),
    reason="observation hashes were recorded with NumPy's AVX-512 trigonometry; the reset "
    "state hashes above check the reset on every CPU",
)
@pytest.mark.parametrize("key", sorted(OBSERVATION_DIGESTS), ids="-".join)
def test_observations_match_the_per_copy_reset(key):
    env_id, config = key
    cfg = NOISY if config == "noisy_test" else CONFIGS[config]
    assert observation_digest(env_id, cfg) == OBSERVATION_DIGESTS[key]


def test_digests_see_a_changed_draw(monkeypatch):
    """The state digest changes when a single drawn value does (the check can fail)."""
    from mmrl.envs.driving import scenes

    before = reset_digest(DrivingSimulator, {}, n=4, rounds=2)
    monkeypatch.setattr(scenes, "TRAILER_PROBABILITY", 0.59)  # a few trailers fewer or more
    monkeypatch.setattr(scenes, "CANDIDATE_SEPARATION", 10.5)
    assert reset_digest(DrivingSimulator, {}, n=4, rounds=2) != before
