"""The driving environment: highway, traffic, off-ramp and driving instructions."""

from __future__ import annotations

from mmrl.envs.driving.config import DrivingConfig
from mmrl.envs.driving.env import (
    DrivingEnv,
    DrivingEnvV0,
    DrivingVectorEnv,
    DrivingVectorEnvV0,
)
from mmrl.envs.driving.instructions import COLORS, TASKS
from mmrl.envs.driving.simulator import DrivingSimulator, DrivingSimulatorV0

__all__ = [
    "COLORS",
    "TASKS",
    "DrivingConfig",
    "DrivingEnv",
    "DrivingEnvV0",
    "DrivingSimulator",
    "DrivingSimulatorV0",
    "DrivingVectorEnv",
    "DrivingVectorEnvV0",
]
