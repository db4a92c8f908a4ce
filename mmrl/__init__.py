"""mmrl: multimodal reinforcement learning with Stable-Baselines3.

Importing the package registers its Gymnasium environments (``mmrl/Driving-v0``,
``mmrl/Navigation-v0`` and variants). Torch-based parts (the extractor, training) load on
first use so that ``import mmrl`` and ``gym.make`` stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

from mmrl.envs import make_vec_env
from mmrl.registration import register_envs

__version__ = "0.1.0"

register_envs()

_LAZY = {
    "MultimodalExtractor": "mmrl.extractor",
    "register_fusion": "mmrl.fusion",
    "available_fusions": "mmrl.fusion",
    "register_encoder": "mmrl.encoders",
    "available_encoders": "mmrl.encoders",
    "train": "mmrl.train",
}

__all__ = ["__version__", "make_vec_env", "register_envs", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mmrl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
