"""mmrl: multimodal reinforcement learning with Stable-Baselines3.

Importing the package registers its Gymnasium environments (``mmrl/Driving-v0``,
``mmrl/Navigation-v0`` and variants).
"""

from __future__ import annotations

from mmrl.envs import make_vec_env
from mmrl.registration import register_envs

__version__ = "0.1.0"

register_envs()

__all__ = ["__version__", "make_vec_env", "register_envs"]
