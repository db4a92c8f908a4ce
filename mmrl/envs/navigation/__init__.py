"""Language-conditioned robot navigation (``mmrl/Navigation-v0``): go to the named object."""

from __future__ import annotations

from mmrl.envs.navigation.config import NavigationConfig
from mmrl.envs.navigation.env import NavigationEnv
from mmrl.envs.navigation.simulator import NavigationSimulator

__all__ = ["NavigationConfig", "NavigationEnv", "NavigationSimulator"]
