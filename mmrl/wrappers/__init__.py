"""Observation wrappers for any flat Dict-observation environment.

- :class:`SensorNoise` corrupts camera, lidar and text (robustness evaluation).
- :class:`ModalityMask` zeros whole modalities (ablation, modality-dropout training).
- :class:`TextToTokens` turns string instructions into token ids.

:mod:`mmrl.wrappers.vec` holds the ``VecEnv`` versions (:class:`VecSensorNoise`,
:class:`VecModalityMask`) for batched envs such as those of ``mmrl.make_vec_env``.
"""

from __future__ import annotations

from mmrl.wrappers.mask import MASK_INFO_KEY, ModalityMask
from mmrl.wrappers.noise import (
    SYNONYMS,
    CameraNoise,
    LidarNoise,
    SensorNoise,
    TextNoise,
    parse_noise_spec,
)
from mmrl.wrappers.text import TextToTokens, build_vocab
from mmrl.wrappers.vec import VecModalityMask, VecSensorNoise

__all__ = [
    "MASK_INFO_KEY",
    "SYNONYMS",
    "CameraNoise",
    "LidarNoise",
    "ModalityMask",
    "SensorNoise",
    "TextNoise",
    "TextToTokens",
    "VecModalityMask",
    "VecSensorNoise",
    "build_vocab",
    "parse_noise_spec",
]
