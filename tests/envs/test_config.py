"""Env configs: the sensor settings are declared once and inherited by every env config."""

from __future__ import annotations

import dataclasses

import pytest

from mmrl.envs.config import SensorConfig, build_config
from mmrl.envs.driving import DrivingConfig
from mmrl.envs.navigation import NavigationConfig

SENSOR_FIELDS = [f.name for f in dataclasses.fields(SensorConfig)]


@pytest.mark.parametrize(
    ("config_cls", "lidar_range"), [(DrivingConfig, 50.0), (NavigationConfig, 8.0)]
)
def test_env_configs_inherit_the_sensor_settings(config_cls, lidar_range):
    cfg = config_cls()
    assert isinstance(cfg, SensorConfig)
    assert cfg.lidar_range == lidar_range
    assert (cfg.camera_size, cfg.lidar_beams, cfg.max_text_len) == (64, 64, 16)
    assert (cfg.lidar_noise, cfg.lidar_dropout) == (0.0, 0.0)
    # Declared once: the env config's own annotations hold no sensor field but the
    # defaults it changes (Navigation's lidar_range).
    own = set(config_cls.__annotations__) & set(SENSOR_FIELDS)
    assert own == ({"lidar_range"} if lidar_range != 50.0 else set())


@pytest.mark.parametrize("config_cls", [DrivingConfig, NavigationConfig])
def test_unknown_parameter_lists_every_allowed_one_own_first(config_cls):
    with pytest.raises(ValueError, match="unknown parameter") as err:
        build_config(config_cls, {"colour": 1}, "owner")
    listed = str(err.value).split("allowed parameters: ")[1].split(", ")
    names = [f.name for f in dataclasses.fields(config_cls)]
    assert sorted(listed) == sorted(names)
    assert listed[-len(SENSOR_FIELDS) :] == SENSOR_FIELDS  # the env's own parameters first


@pytest.mark.parametrize("config_cls", [SensorConfig, DrivingConfig, NavigationConfig])
def test_bad_sensor_settings_raise_at_construction(config_cls):
    with pytest.raises(ValueError, match=r"lidar_beams must be in \[4, 4096\], got 2"):
        config_cls(lidar_beams=2)


@pytest.mark.parametrize("env_id", ["mmrl/Driving-v1", "mmrl/Navigation-v1"])
def test_numbers_given_as_strings_fail_at_make(env_id):
    """Issue 15: ``traffic_density="0.5"`` passed validation (``float("0.5")`` works) and
    failed at the first reset, inside the simulator's arithmetic."""
    import gymnasium as gym

    import mmrl  # noqa: F401  (registers the ids)

    name = "traffic_density" if "Driving" in env_id else "lidar_range"
    with pytest.raises(ValueError, match=rf"{name} must be a number, got the string '0.5'"):
        gym.make(env_id, **{name: "0.5"})


@pytest.mark.parametrize("env", ["driving", "navigation"])
def test_documented_arguments_are_the_defaults(env):
    """The ``gym.make(...)`` call in each env docstring's Arguments section shows the v1
    defaults, sensor settings included: a copy in prose that the configs would outgrow."""
    import ast
    import inspect

    from mmrl.envs.driving import DrivingEnv
    from mmrl.envs.navigation import NavigationEnv

    env_cls = DrivingEnv if env == "driving" else NavigationEnv
    doc = inspect.getdoc(env_cls)
    section = doc[doc.index("## Arguments") :]
    start = section.index("gym.make(")
    depth, end = 0, start
    for end, char in enumerate(section[start:], start):  # noqa: B007 (end is read after)
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ")" and depth == 0:
            break
    call = ast.parse(section[start : end + 1].replace("\n", " ")).body[0].value
    config = env_cls().sim.sensors
    documented = {
        kw.arg: ast.literal_eval(kw.value)
        for kw in call.keywords
        if kw.arg != "render_mode" and not isinstance(kw.value, ast.Name)  # tasks=TASKS
    }
    assert documented, "no documented arguments found"
    assert call.args[0].value == env_cls.simulator_cls.env_id
    for name, value in documented.items():
        assert getattr(config, name) == value, name
    # gym.make takes max_episode_steps= for its own TimeLimit, so the call cannot show it.
    fields = {f.name for f in dataclasses.fields(config)} - {"max_episode_steps"}
    named = {kw.arg for kw in call.keywords} - {"render_mode"}
    assert named == fields, f"undocumented: {fields - named}, unknown: {named - fields}"
