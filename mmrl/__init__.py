"""mmrl: multimodal reinforcement learning with Stable-Baselines3.

Importing the package registers its Gymnasium environments (``mmrl/Driving-v0``,
``mmrl/Navigation-v0`` and variants). Torch-based parts (the extractor, training) load on
first use so that ``import mmrl`` and ``gym.make`` stay light.
"""

from __future__ import annotations

from mmrl._lazy import lazy_getattr
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

__getattr__ = lazy_getattr(__name__, _LAZY)
