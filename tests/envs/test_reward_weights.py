"""Reward weights keyed by the reward terms' own names (issue 13): ``info["rewards"]`` keys
are the ``reward_weights`` keys, each term is its weight times the unweighted term, the
defaults are the numbers the envs had before, and the old keyword names still work."""

from __future__ import annotations

import math
import pickle
import re
import warnings
from typing import Any

import numpy as np
import pytest

from mmrl.envs.config import build_config
from mmrl.envs.driving import DrivingConfig, DrivingSimulator
from mmrl.envs.driving.simulator import DrivingSimulatorV0, StepEvents
from mmrl.envs.navigation import NavigationConfig, NavigationSimulator
from mmrl.envs.navigation.simulator import NavigationSimulatorV0

# The reward parameters as they were before issue 13, with their defaults then.
OLD_DRIVING = {
    "progress_weight": 1.0,
    "shaping_weight": 1.0,
    "on_task_reward": 0.02,
    "success_reward": 1.0,
    "failure_penalty": 0.5,
    "collision_penalty": 1.0,
    "off_road_penalty": 1.0,
    "comfort_weight": 0.01,
}
OLD_NAVIGATION = {
    "progress_weight": 0.1,
    "success_reward": 1.0,
    "wrong_object_penalty": 0.1,
    "collision_penalty": 0.02,
    "time_penalty": 0.001,
}
# Non-default values under the old names and the same values under the new ones.
CUSTOM = {
    "driving": (
        {"progress_weight": 0.7, "shaping_weight": 0.3, "on_task_reward": 0.05,
         "success_reward": 2.0, "failure_penalty": 0.25, "collision_penalty": 3.0,
         "off_road_penalty": 2.5, "comfort_weight": 0.2},
        {"reward_weights": {"progress": 0.7, "collision": 3.0, "off_road": 2.5, "comfort": 0.2},
         "instruction_shaping": 0.3, "instruction_on_task": 0.05, "instruction_success": 2.0,
         "instruction_failure": 0.25},
    ),
    "navigation": (
        {"progress_weight": 0.3, "success_reward": 2.0, "wrong_object_penalty": 0.7,
         "collision_penalty": 0.05, "time_penalty": 0.01},
        {"reward_weights": {"progress": 0.3, "success": 2.0, "wrong_object": 0.7,
                            "collision": 0.05, "time": 0.01}},
    ),
}  # fmt: skip
SIMULATORS = {
    "driving": (DrivingSimulator, DrivingSimulatorV0, DrivingConfig),
    "navigation": (NavigationSimulator, NavigationSimulatorV0, NavigationConfig),
}


def _rollout(
    sim_cls: type, steps: int = 100, explore: float = 0.3, **kwargs: Any
) -> dict[str, np.ndarray]:
    """Per-term rewards ``(steps, 4)`` of 4 seeded copies: the expert with a fraction
    ``explore`` of random actions mixed in (so episodes end in success, failure and crashes),
    resetting finished copies."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sim = sim_cls(4, **kwargs)
    sim.seed([0, 1, 2, 3])
    sim.reset_envs()
    sim.action_space.seed(5)
    rng = np.random.default_rng(123)
    terms: dict[str, list[np.ndarray]] = {t: [] for t in sim.reward_terms}
    for _ in range(steps):
        actions = sim.expert_action()
        random = np.stack([sim.action_space.sample() for _ in range(4)])
        mix = (rng.random(4) < explore).reshape((4,) + (1,) * (actions.ndim - 1))
        _, terminated, truncated, result = sim.step(np.where(mix, random, actions))
        assert tuple(result.rewards) == sim.reward_terms
        for t in terms:
            terms[t].append(result.rewards[t].copy())
        sim.reset_envs(np.flatnonzero(terminated | truncated))
    return {t: np.array(v) for t, v in terms.items()}


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for t in a:
        assert a[t].dtype == b[t].dtype == np.float32
        np.testing.assert_array_equal(a[t], b[t], err_msg=t)


@pytest.mark.parametrize("env", ["driving", "navigation"])
def test_reward_terms_are_the_config_keys(env):
    sim_cls, v0_cls, config_cls = SIMULATORS[env]
    assert tuple(config_cls().reward_weights) == sim_cls.reward_terms == v0_cls.reward_terms
    sim = sim_cls(2)
    sim.seed([0, 1])
    sim.reset_envs()
    *_, result = sim.step(sim.expert_action())
    assert tuple(result.rewards) == tuple(sim.sensors.reward_weights)


def test_default_weights_are_the_numbers_of_before():
    cfg = DrivingConfig()
    assert cfg.reward_weights == {
        "progress": 1.0, "instruction": 1.0, "collision": 1.0, "off_road": 1.0, "comfort": 0.01,
    }  # fmt: skip
    inner = (
        cfg.instruction_shaping,
        cfg.instruction_on_task,
        cfg.instruction_success,
        cfg.instruction_failure,
    )
    assert inner == (1.0, 0.02, 1.0, 0.5)
    assert NavigationConfig().reward_weights == {
        "progress": 0.1, "success": 1.0, "wrong_object": 0.1, "collision": 0.02, "time": 0.001,
    }  # fmt: skip


def test_driving_rewards_match_the_formula_of_before_bit_for_bit():
    """The pre-issue-13 ``_rewards`` with its default numbers, on random step events (so the
    check does not depend on how episodes are generated)."""
    rng = np.random.default_rng(0)
    n = 4096
    reached = rng.random(n) < 0.3
    ev = StepEvents(
        progress=rng.uniform(0.0, 0.05, n),
        shaping=rng.normal(0.0, 0.1, n),
        satisfied=rng.random(n) < 0.5,
        reached=reached,
        success=reached & (rng.random(n) < 0.5),
        crash=rng.random(n) < 0.1,
        offroad=rng.random(n) < 0.1,
        effort=rng.uniform(0.0, 1.0, n),
    )
    sim = DrivingSimulator(1)
    instruction = 1.0 * ev.shaping + 0.02 * ev.satisfied
    instruction += ev.reached * np.where(ev.success, 1.0, -0.5)
    f32 = np.float32
    before = {
        "progress": (1.0 * ev.progress).astype(f32),
        "instruction": instruction.astype(f32),
        "collision": (-1.0 * ev.crash).astype(f32),
        "off_road": (-1.0 * ev.offroad).astype(f32),
        "comfort": (-0.01 * ev.effort).astype(f32),
    }
    _assert_same(sim._rewards(ev), before)


@pytest.mark.parametrize("env", ["driving", "navigation"])
@pytest.mark.parametrize("version", [1, 0])
def test_defaults_and_old_names_give_the_same_rewards(env, version):
    """Defaults equal the old names at their old defaults; non-default values under the old
    names equal the same values under the new names, term by term, over 100 steps."""
    sim_cls = SIMULATORS[env][1 - version]
    old_defaults = OLD_DRIVING if env == "driving" else OLD_NAVIGATION
    _assert_same(_rollout(sim_cls), _rollout(sim_cls, **old_defaults))
    old, new = CUSTOM[env]
    custom = _rollout(sim_cls, **new)
    _assert_same(custom, _rollout(sim_cls, **old))
    assert any((custom[t] != _rollout(sim_cls)[t]).any() for t in custom)


@pytest.mark.parametrize("env", ["driving", "navigation"])
def test_each_term_is_its_weight_times_the_unweighted_term(env):
    sim_cls = SIMULATORS[env][0]
    terms = sim_cls.reward_terms
    # Powers of two scale float32 exactly, so the check is exact.
    weights = {t: 2.0 ** (i - 2) for i, t in enumerate(terms)}
    fired: set[str] = set()
    # Only continuous control can leave the road; more random actions bump into walls.
    for kwargs in ({"continuous": False}, {"continuous": True}):
        unweighted = _rollout(
            sim_cls, explore=0.7, reward_weights=dict.fromkeys(terms, 1.0), **kwargs
        )
        weighted = _rollout(sim_cls, explore=0.7, reward_weights=weights, **kwargs)
        for t in terms:
            fired |= {t} if (unweighted[t] != 0).any() else set()
            np.testing.assert_array_equal(weighted[t], np.float32(weights[t]) * unweighted[t])
    assert fired == set(terms), "a term never fired, so its check was empty"
    # A partial mapping changes only the terms it names.
    dropped = _rollout(sim_cls, reward_weights={terms[-1]: 0.0})
    default = _rollout(sim_cls)
    assert not dropped[terms[-1]].any()
    _assert_same({t: dropped[t] for t in terms[:-1]}, {t: default[t] for t in terms[:-1]})


@pytest.mark.parametrize(
    ("config_cls", "old", "new"),
    [
        (DrivingConfig, "comfort_weight", "reward_weights={'comfort': ...}"),
        (DrivingConfig, "failure_penalty", "instruction_failure"),
        (NavigationConfig, "time_penalty", "reward_weights={'time': ...}"),
    ],
)
def test_old_names_warn_naming_the_new_one(config_cls, old, new):
    with pytest.warns(DeprecationWarning, match=rf"'{old}' is deprecated; use {re.escape(new)}"):
        cfg = build_config(config_cls, {old: 0.25}, "owner")
    if new.startswith("reward_weights"):
        assert cfg.reward_weights[new.split("'")[1]] == 0.25
    else:
        assert getattr(cfg, new) == 0.25


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reward_weights": {"speed": 1.0}}, r"reward_weights: unknown key\(s\) 'speed'; "
         r"allowed keys: progress, instruction, collision, off_road, comfort"),
        ({"reward_weights": {"comfort": -0.1}}, r"reward_weights\['comfort'\] must be in "
         r"\[0.0, 1000.0\], got -0.1"),
        ({"reward_weights": {"progress": math.nan}}, r"reward_weights\['progress'\] must be "
         "finite"),
        ({"reward_weights": {"collision": "1"}}, r"reward_weights\['collision'\] must be a "
         "number, got the string '1'"),
        ({"reward_weights": [1.0, 2.0]}, "reward_weights must be a mapping of progress, "
         "instruction, collision, off_road, comfort to weights"),
        ({"instruction_failure": -1.0}, r"instruction_failure must be in \[0.0, 1000.0\]"),
        ({"comfort_weight": 0.1, "reward_weights": {"comfort": 0.2}},
         r"give reward_weights\['comfort'\] or its old name comfort_weight, not both"),
        ({"failure_penalty": 0.1, "instruction_failure": 0.2},
         "give instruction_failure or its old name failure_penalty, not both"),
    ],
)  # fmt: skip
def test_bad_reward_settings_name_the_field_and_what_is_allowed(kwargs, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError, match=match):
            DrivingSimulator(1, **kwargs)


def test_navigation_lists_its_own_terms():
    with pytest.raises(ValueError, match="allowed keys: progress, success, wrong_object, "):
        NavigationSimulator(1, reward_weights={"instruction": 1.0})


class _PickledBefore:
    """Pickles as a config object pickled before issue 13 would: its class and the
    attributes it had then (old reward names, no ``reward_weights``)."""

    def __init__(self, config_cls: type, state: dict[str, Any]) -> None:
        self.config_cls, self.state = config_cls, state

    def __reduce__(self):
        # As NEWOBJ + BUILD in a real pickle: a bare instance, then __setstate__(state).
        return object.__new__, (self.config_cls,), self.state


@pytest.mark.parametrize("env", ["driving", "navigation"])
def test_simulators_pickled_with_the_old_names_load_and_step_alike(env):
    sim_cls, _, config_cls = SIMULATORS[env]
    old, new = CUSTOM[env]
    sim = sim_cls(2)
    sim.seed([3, 4])
    sim.reset_envs()
    current = sim.sensors
    # The attributes before: the new reward fields absent, the old names in their place.
    state = {k: v for k, v in vars(current).items() if k not in new}
    state.update(old)
    attr = "config" if env == "driving" else "cfg"
    # The config is shared by the simulator and its base class, as in a real pickle.
    setattr(sim, attr, _PickledBefore(config_cls, state))
    sim.sensors = getattr(sim, attr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading an old pickle is not the user's doing
        restored = pickle.loads(pickle.dumps(sim))
    cfg = getattr(restored, attr)
    assert cfg is restored.sensors and isinstance(cfg, config_cls)
    expected = build_config(config_cls, {**vars(current), **new}, "owner")
    assert cfg == expected
    restored.step(restored.expert_action())  # the step reads the new names


def test_run_config_override_reaches_one_weight(tmp_path):
    """``--set env.kwargs.reward_weights.comfort=0`` changes that weight only, and a saved
    run config with an old name still builds its env."""
    from mmrl.config import resolve_run_config
    from mmrl.make import make_env

    cfg = resolve_run_config("driving", "ppo-concat", ["env.kwargs.reward_weights.comfort=0"])
    assert cfg.env.kwargs["reward_weights"] == {"comfort": 0.0}
    env = make_env(cfg.env)
    assert env.unwrapped.sim.config.reward_weights["comfort"] == 0.0
    assert env.unwrapped.sim.config.reward_weights["progress"] == 1.0
    old = resolve_run_config("driving", "ppo-concat", ["env.kwargs.comfort_weight=0"])
    with pytest.warns(DeprecationWarning, match="comfort_weight"):
        env = make_env(old.env)
    assert env.unwrapped.sim.config.reward_weights["comfort"] == 0.0
