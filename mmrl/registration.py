"""Registers mmrl's environments with Gymnasium (idempotent).

``import mmrl`` calls :func:`register_envs`. The ``gymnasium.envs`` entry point in
``pyproject.toml`` names it too, for Gymnasium releases that load plugins (< 1.0); with
Gymnasium >= 1.0, which dropped plugin loading, ``gym.make("mmrl:mmrl/Driving-v1")``
imports and registers in one go without a separate ``import mmrl``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym


@dataclasses.dataclass(frozen=True)
class EnvEntry:
    """One registered id: the Gymnasium env class, its vector twin, the simulator, defaults."""

    env_id: str
    entry_point: str
    simulator: str
    max_episode_steps: int
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""
    vector_entry_point: str | None = None
    """A :class:`~mmrl.envs.gym_vector.MultimodalVectorEnv` class over the same simulator:
    ``gym.make_vec(env_id, num_envs=N)`` then steps all copies in one array step."""


ENV_ENTRIES: tuple[EnvEntry, ...] = (
    EnvEntry(
        "mmrl/Driving-v1",
        "mmrl.envs.driving:DrivingEnv",
        "mmrl.envs.driving:DrivingSimulator",
        300,
        {},
        "Multi-lane highway with traffic and an off-ramp; discrete meta-actions.",
        vector_entry_point="mmrl.envs.driving:DrivingVectorEnv",
    ),
    EnvEntry(
        "mmrl/DrivingContinuous-v1",
        "mmrl.envs.driving:DrivingEnv",
        "mmrl.envs.driving:DrivingSimulator",
        300,
        {"continuous": True},
        "Driving-v1 with continuous [steer, accel] actions.",
        vector_entry_point="mmrl.envs.driving:DrivingVectorEnv",
    ),
    EnvEntry(
        "mmrl/Navigation-v1",
        "mmrl.envs.navigation:NavigationEnv",
        "mmrl.envs.navigation:NavigationSimulator",
        100,
        {},
        "Language-conditioned robot navigation to a named object; discrete actions.",
        vector_entry_point="mmrl.envs.navigation:NavigationVectorEnv",
    ),
    EnvEntry(
        "mmrl/NavigationContinuous-v1",
        "mmrl.envs.navigation:NavigationEnv",
        "mmrl.envs.navigation:NavigationSimulator",
        100,
        {"continuous": True},
        "Navigation-v1 with continuous [linear, angular] actions.",
        vector_entry_point="mmrl.envs.navigation:NavigationVectorEnv",
    ),
    # v0: the original generators, whose scenes reveal the instruction's referent; kept
    # unchanged so runs and datasets made with them still load and evaluate.
    EnvEntry(
        "mmrl/Driving-v0",
        "mmrl.envs.driving:DrivingEnvV0",
        "mmrl.envs.driving:DrivingSimulatorV0",
        300,
        {},
        "Driving-v0 (superseded by v1: its scene reveals the named car).",
        vector_entry_point="mmrl.envs.driving:DrivingVectorEnvV0",
    ),
    EnvEntry(
        "mmrl/DrivingContinuous-v0",
        "mmrl.envs.driving:DrivingEnvV0",
        "mmrl.envs.driving:DrivingSimulatorV0",
        300,
        {"continuous": True},
        "Driving-v0 with continuous actions (superseded by v1).",
        vector_entry_point="mmrl.envs.driving:DrivingVectorEnvV0",
    ),
    EnvEntry(
        "mmrl/Navigation-v0",
        "mmrl.envs.navigation:NavigationEnvV0",
        "mmrl.envs.navigation:NavigationSimulatorV0",
        200,
        {},
        "Navigation-v0 (superseded by v1: its scene reveals the named object).",
        vector_entry_point="mmrl.envs.navigation:NavigationVectorEnvV0",
    ),
    EnvEntry(
        "mmrl/NavigationContinuous-v0",
        "mmrl.envs.navigation:NavigationEnvV0",
        "mmrl.envs.navigation:NavigationSimulatorV0",
        200,
        {"continuous": True},
        "Navigation-v0 with continuous actions (superseded by v1).",
        vector_entry_point="mmrl.envs.navigation:NavigationVectorEnvV0",
    ),
)


def _importable(entry_point: str) -> bool:
    import importlib.util

    module = entry_point.split(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def register_envs() -> None:
    """Registers every mmrl environment id with Gymnasium; safe to call repeatedly."""
    for entry in ENV_ENTRIES:
        if entry.env_id in gym.registry or not _importable(entry.entry_point):
            continue
        gym.register(
            id=entry.env_id,
            entry_point=entry.entry_point,
            max_episode_steps=entry.max_episode_steps,
            kwargs=dict(entry.kwargs),
            vector_entry_point=entry.vector_entry_point,
        )


def entry_for(env_id: str) -> EnvEntry | None:
    """The :class:`EnvEntry` of an mmrl id, or ``None`` for other ids."""
    for entry in ENV_ENTRIES:
        if entry.env_id == env_id:
            return entry
    return None
