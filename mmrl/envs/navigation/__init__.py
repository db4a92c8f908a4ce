"""Language-conditioned robot navigation (``mmrl/Navigation-v1``): go to the named object."""

from __future__ import annotations

from mmrl.envs.navigation.config import NavigationConfig
from mmrl.envs.navigation.env import (
    NavigationEnv,
    NavigationEnvV0,
    NavigationVectorEnv,
    NavigationVectorEnvV0,
)
from mmrl.envs.navigation.simulator import NavigationSimulator, NavigationSimulatorV0

__all__ = [
    "NavigationConfig",
    "NavigationEnv",
    "NavigationEnvV0",
    "NavigationSimulator",
    "NavigationSimulatorV0",
    "NavigationVectorEnv",
    "NavigationVectorEnvV0",
]
