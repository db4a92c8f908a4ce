"""make_highway: flattened spaces, camera/lidar/state contents, SB3 and the missing extra."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mmrl.adapters import make_highway, make_highway_vec_env

# A small camera keeps these tests fast; the default is 64x128.
pytestmark = pytest.mark.filterwarnings("ignore:The minimal resolution for an image")
SMALL = dict(camera_shape=(32, 64), lidar_beams=8, vehicles_count=3)


@pytest.fixture(autouse=True)
def _needs_highway(request):
    if "missing_extra" not in request.node.name:
        pytest.importorskip("highway_env")


def test_flat_dict_spaces_pass_sb3_check_env():
    from stable_baselines3.common.env_checker import check_env

    env = make_highway("highway-fast-v0", **SMALL)
    space = env.observation_space
    assert set(space.spaces) == {"camera", "lidar", "state"}
    assert space["camera"].shape == (32, 64, 3) and space["camera"].dtype == np.uint8
    assert space["lidar"].shape == (8,) and space["lidar"].dtype == np.float32
    assert space["state"].shape == (3 * 5,) and space["state"].dtype == np.float32
    check_env(env)


def test_camera_renders_even_with_dummy_sdl_driver(monkeypatch):
    # highway-env disables its viewer under SDL_VIDEODRIVER=dummy (black frames); the adapter
    # re-enables off-screen drawing.
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    env = make_highway("highway-fast-v0", camera_channels=1, **SMALL)
    obs, info = env.reset(seed=0)
    assert obs["camera"].shape == (32, 64, 1)
    assert obs["camera"].max() > 200 and obs["camera"].min() < 150  # lane marks on asphalt
    obs, *_ = env.step(1)
    assert obs["camera"].max() > 200
    assert info["is_success"] is False


def test_lidar_and_state_contents():
    env = make_highway("highway-fast-v0", **SMALL)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        assert env.observation_space.contains(obs)
        assert obs["lidar"].min() >= 0.0 and obs["lidar"].max() <= 1.0
        assert (obs["lidar"] < 1.0).any()  # traffic around the ego car
        np.testing.assert_array_equal(obs["camera"][..., 0], obs["camera"][..., 2])
        assert obs["state"][0] == 1.0  # ego "presence"
        obs, *_ = env.step(1)
    # Same seed, same observations.
    a, _ = make_highway("highway-fast-v0", **SMALL).reset(seed=3)
    b, _ = make_highway("highway-fast-v0", **SMALL).reset(seed=3)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_is_success_when_time_runs_out_without_crash():
    env = make_highway("highway-fast-v0", **SMALL, config={"duration": 2, "vehicles_count": 1})
    env.reset(seed=0)
    for _ in range(10):
        _, _, terminated, truncated, info = env.step(1)
        if terminated or truncated:
            break
    assert truncated and not terminated and not info["crashed"]
    assert info["is_success"] is True


def test_ppo_with_multimodal_extractor():
    from stable_baselines3 import PPO

    from mmrl.extractor import MultimodalExtractor

    # Light traffic: highway-env's own traffic simulation dominates the step time.
    venv = make_highway_vec_env(
        "highway-fast-v0", n_envs=1, seed=0, config={"vehicles_count": 5}, **SMALL
    )
    model = PPO(
        "MultiInputPolicy",
        venv,
        n_steps=64,
        batch_size=64,
        n_epochs=2,
        seed=0,
        device="cpu",
        policy_kwargs=dict(
            features_extractor_class=MultimodalExtractor,
            features_extractor_kwargs=dict(fusion="concat"),
        ),
    )
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=128)
    assert model.num_timesteps >= 128
    assert any(not b.equal(p) for b, p in zip(before, model.policy.parameters()))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(config={"lane_count": 3}), r"unknown config key\(s\) \['lane_count'\]; allowed"),
        (dict(config={"observation": {}}), "builds the 'observation' config itself"),
        (dict(env_id="CartPole-v1"), "needs a highway-env id"),
        (dict(camera_shape=(8, 64)), r"camera_shape\[0\] must be in \[16, 512\]"),
        (dict(camera_channels=2), r"camera_channels must be one of \[1, 3\]"),
        (dict(lidar_range=0.0), r"lidar_range must be in \(0.0, 10000.0\], got 0.0"),
        (dict(lidar_beams=2), r"lidar_beams must be in \[4, 4096\], got 2"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_highway(**kwargs)


def test_missing_extra_names_the_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "highway_env", None)
    with pytest.raises(ImportError, match=r"pip install 'mmrl\[highway\]'"):
        make_highway("highway-fast-v0")
    with pytest.raises(ImportError, match=r"pip install 'mmrl\[highway\]'"):
        make_highway_vec_env("highway-fast-v0", n_envs=2)


def test_headless_cli_error_is_one_line_without_sdl_noise(tmp_path):
    """On a machine without a display, pygame's SDL start-up printed "XDG_RUNTIME_DIR is
    invalid" next to mmrl's one-line error; headless runs now use SDL's dummy video driver."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER", "XDG_RUNTIME_DIR")
    }
    env["PYTHONPATH"] = str(repo)
    proc = subprocess.run(
        [sys.executable, "-m", "mmrl", "demo", "--env", "highway-fast", "--policy", "expert",
         "--out", str(tmp_path / "x.png")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "no batched scripted expert" in proc.stderr
