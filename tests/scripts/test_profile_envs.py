"""``scripts/profile_envs.py``: the per-component breakdown of a batched step (issue 20)."""

from __future__ import annotations

import cv2


def test_timers_nest_by_call_path(load_script) -> None:
    timers = load_script("profile_envs").Timers(clock=iter(range(100)).__next__)
    inner = timers.wrap("inner", lambda: None)
    outer = timers.wrap("outer", lambda: inner())
    outer()
    outer()
    assert timers.calls == {("outer",): 2, ("outer", "inner"): 2}
    # The fake clock ticks once per reading: inner spans 1 tick, outer 3 (its two readings
    # around inner's two).
    assert timers.total == {("outer",): 6, ("outer", "inner"): 2}


def test_profile_prints_every_component_and_leaves_the_envs_as_they_were(
    capsys, load_script
) -> None:
    import mmrl.envs.navigation.simulator as navigation

    script = load_script("profile_envs")
    cast_rays, threads = navigation.cast_rays, cv2.getNumThreads()
    argv = ["--envs", "mmrl/Navigation-v1", "mmrl/Driving-v1", "--n-envs", "3"]
    assert script.main([*argv, "--steps", "4", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("ray casting (camera + lidar)", "camera shading + compositing", "lidar",
                "camera", "per-copy info dicts", "sim.step", "clock: cpu"):  # fmt: skip
        assert row in out, row
    assert "mmrl/Navigation-v1, 3 copies, 4 batched steps" in out
    assert navigation.cast_rays is cast_rays  # module globals restored
    assert cv2.getNumThreads() == threads
