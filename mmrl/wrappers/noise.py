"""Sensor corruption for robustness evaluation: camera, lidar and text noise.

:class:`SensorNoise` corrupts the observations of any flat Dict-observation environment. The
corruption of each modality is a small typed config from :mod:`mmrl.wrappers.corruptions`
(:class:`CameraNoise`, :class:`LidarNoise`, :class:`TextNoise`); :class:`NoiseModel` applies
them to *batches* so the Gymnasium wrapper here and the ``VecEnv`` wrapper in
:mod:`mmrl.wrappers.vec` share one implementation.

Compact form (for command lines): ``"camera=0.1,lidar=0.05"`` gives one noise *level* per
modality, expanded as follows (see :func:`parse_noise_spec`):

============  =====================================================
modality      level ``x`` means
============  =====================================================
``camera``    ``CameraNoise(noise_std=x)``
``lidar``     ``LidarNoise(noise_std=x, dropout=x)``
``text``      ``TextNoise(word_dropout=x, synonym_swap=x)``
============  =====================================================

Single parameters are set with ``modality.param=value`` (``"camera=0.1,camera.blur=3"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.wrappers._checks import make_rng, require_dict_space, require_keys
from mmrl.wrappers.corruptions import (
    MODALITIES,
    SYNONYMS,
    CameraNoise,
    LidarNoise,
    NoiseArg,
    TextNoise,
    build_noise_config,
    level_to_params,
    parse_noise_spec,
)

__all__ = [
    "MODALITIES",
    "SYNONYMS",
    "CameraNoise",
    "LidarNoise",
    "NoiseArg",
    "NoiseModel",
    "SensorNoise",
    "TextNoise",
    "build_noise_config",
    "level_to_params",
    "parse_noise_spec",
    "with_stack_vocab",
]

_SALT = 0x5E05  # Separates SensorNoise's random stream from the env's (see make_rng).


class NoiseModel:
    """Applies per-modality corruption to batched observations of a Dict space.

    Args:
        observation_space: Space of *one* observation (a flat ``spaces.Dict``).
        camera: Camera noise: a level, a parameter mapping, a :class:`CameraNoise` or ``None``.
        lidar: Lidar noise: a level, a parameter mapping, a :class:`LidarNoise` or ``None``.
        text: Text noise: a level, a parameter mapping, a :class:`TextNoise` or ``None``.
        keys: Observation key of each modality; defaults to the modality's name
            (``{"camera": "camera", "lidar": "lidar", "text": "text"}``).
        owner: Name used in error messages.

    Raises:
        ValueError: If the space is not a Dict, a configured modality's key is missing or has
            the wrong kind of space, or a parameter is invalid.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        camera: NoiseArg = None,
        lidar: NoiseArg = None,
        text: NoiseArg = None,
        keys: Mapping[str, str] | None = None,
        owner: str = "SensorNoise",
    ) -> None:
        space = require_dict_space(observation_space, owner)
        keys = dict(keys or {})
        unknown = sorted(set(keys) - set(MODALITIES))
        if unknown:
            raise ValueError(
                f"{owner}: keys names unknown modality {unknown}; allowed: {', '.join(MODALITIES)}"
            )
        self.keys = {m: keys.get(m, m) for m in MODALITIES}
        self.camera: CameraNoise | None = build_noise_config("camera", camera)
        self.lidar: LidarNoise | None = build_noise_config("lidar", lidar)
        self.text: TextNoise | None = build_noise_config("text", text)
        configured = [m for m in MODALITIES if getattr(self, m) is not None]
        require_keys(space, [self.keys[m] for m in configured], owner, what="noise key")
        self._text_is_string = False
        for modality in configured:
            key = self.keys[modality]
            self._check_space(modality, key, space[key], owner)
        self.space = space

    def _check_space(self, modality: str, key: str, sub: spaces.Space, owner: str) -> None:
        if modality == "camera":
            ok = isinstance(sub, spaces.Box) and sub.dtype == np.uint8 and len(sub.shape) == 3
            allowed = "a (H, W, C) uint8 Box"
        elif modality == "lidar":
            ok = isinstance(sub, spaces.Box) and np.issubdtype(sub.dtype, np.floating)
            allowed = "a float Box"
        else:
            self._text_is_string = isinstance(sub, spaces.Text)
            ok = self._text_is_string or (
                isinstance(sub, spaces.Box)
                and np.issubdtype(sub.dtype, np.integer)
                and len(sub.shape) == 1
            )
            allowed = "a 1-D integer token-id Box or a Text space"
        if not ok:
            raise ValueError(f"{owner}: {modality} key {key!r} must be {allowed}; got {sub!r}")

    def apply(self, obs: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """Returns a corrupted copy of a batched observation (each key ``(n, ...)``).

        Keys without noise are passed through unchanged (not copied).
        """
        out = dict(obs)
        if self.camera is not None and self.camera.active:
            key = self.keys["camera"]
            out[key] = self.camera.apply(obs[key], rng)
        if self.lidar is not None and self.lidar.active:
            key = self.keys["lidar"]
            sub = self.space[key]
            out[key] = self.lidar.apply(obs[key], rng, float(sub.low.min()), float(sub.high.max()))
        if self.text is not None and self.text.active:
            key = self.keys["text"]
            if self._text_is_string:
                out[key] = self.text.apply_strings(list(obs[key]), rng)
            else:
                out[key] = self.text.apply_tokens(np.asarray(obs[key]), rng)
        return out


class SensorNoise(gym.ObservationWrapper):
    """Corrupts camera, lidar and text observations of any flat Dict-observation env.

    Randomness comes from the wrapper's own generator, re-seeded on every ``reset(seed=s)``
    (from ``s`` mixed with a constant, so it is independent of the env's own stream): the same
    seeds give the same corrupted observations. Other keys (e.g. ``state``) pass through.

    Example:
        >>> env = SensorNoise(env, camera=dict(noise_std=0.1, blur=3),
        ...                   lidar=dict(noise_std=0.05, dropout=0.1), text=dict(word_dropout=0.1))
        >>> env = SensorNoise.from_spec(env, "camera=0.1,lidar=0.05")  # compact CLI form

    Args:
        env: Environment with a flat ``spaces.Dict`` observation space.
        camera: ``None`` (untouched), a noise level (``CameraNoise(noise_std=level)``), a mapping
            of :class:`CameraNoise` parameters or a :class:`CameraNoise`. The key must be a
            ``(H, W, C)`` uint8 Box.
        lidar: Likewise for :class:`LidarNoise` (level ``x``: ``noise_std=x, dropout=x``); the key
            must be a float Box, values are clipped to its bounds.
        text: Likewise for :class:`TextNoise` (level ``x``: ``word_dropout=x,
            synonym_swap=x``); the key must be a 1-D integer token-id Box (padding ``0``) or a
            Gymnasium ``Text`` space.
        keys: Observation key per modality, e.g. ``{"text": "mission"}``; defaults to
            ``camera``, ``lidar`` and ``text``.

    Raises:
        ValueError: If the observation space is not a Dict, a configured key is missing or of
            the wrong kind, or a parameter is unknown or out of range.
    """

    def __init__(
        self,
        env: gym.Env,
        camera: NoiseArg = None,
        lidar: NoiseArg = None,
        text: NoiseArg = None,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(env)
        text_key = (keys or {}).get("text", "text")
        text = with_stack_vocab(build_noise_config("text", text), env, text_key)
        self.model = NoiseModel(env.observation_space, camera, lidar, text, keys)
        self._rng = make_rng(None, _SALT)

    @classmethod
    def from_spec(
        cls, env: gym.Env, spec: str, keys: Mapping[str, str] | None = None
    ) -> SensorNoise:
        """Builds the wrapper from the compact form parsed by :func:`parse_noise_spec`."""
        return cls(env, keys=keys, **parse_noise_spec(spec))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if seed is not None:
            self._rng = make_rng(seed, _SALT)
        return super().reset(seed=seed, options=options)

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        batched = {k: _batch_one(v) for k, v in observation.items()}
        noisy = self.model.apply(batched, self._rng)
        return {
            k: (noisy[k][0] if noisy[k] is not batched[k] else v) for k, v in observation.items()
        }


def with_stack_vocab(config: TextNoise | None, env: Any, key: str) -> TextNoise | None:
    """Fills in ``config.vocab`` from a :class:`~mmrl.wrappers.TextToTokens` producing ``key``.

    Token ids from ``TextToTokens`` index *its* vocabulary, not the shared one, so synonym
    swaps must look words up there. An explicit ``vocab`` is kept.
    """
    from mmrl.wrappers.text import TextToTokens

    if config is None or config.vocab is not None:
        return config
    inner = env
    while inner is not None:
        if isinstance(inner, TextToTokens) and inner.output_key == key:
            return dataclasses.replace(config, vocab=inner.vocab)
        inner = getattr(inner, "env", None)  # a gym.Wrapper's wrapped env; None at the base
    return config


def _batch_one(value: Any) -> Any:
    """Adds a batch axis of size 1 (a list for strings, an array view otherwise)."""
    if isinstance(value, str):
        return [value]
    return np.asarray(value)[None]
