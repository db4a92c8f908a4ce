"""highway-env environments with mmrl's flat multimodal observations.

highway-env can observe through several sensors at once only as a ``TupleObservation``, whose
``spaces.Tuple`` SB3 policies cannot take. :func:`make_highway` configures a
``TupleObservation`` of ``GrayscaleObservation``, ``LidarObservation`` and ``Kinematics`` and
flattens it into mmrl's contract:

==========  ====================================  ===========================================
key         space                                 content
==========  ====================================  ===========================================
``camera``  ``Box(0, 255, (H, W, C), uint8)``     top-down grayscale render around the ego car
                                                  (road along the width), replicated to
                                                  ``C = 3`` channels by default
``lidar``   ``Box(0, 1, (N,), float32)``          360-degree ranges / ``lidar_range``; beam
                                                  ``i`` at angle ``2 pi i / N`` from the world
                                                  x axis (down the road); 1 = nothing
``state``   ``Box(-inf, inf, (V * F,), float32)`` ``Kinematics`` of the ego car and the
                                                  ``V - 1`` nearest cars, ``F`` features each
                                                  (normalised by highway-env), flattened
==========  ====================================  ===========================================

highway-env's lidar also reports the relative speed per beam; it is dropped here because
``lidar`` holds ranges only (``state`` carries the speeds of the nearest cars).
``info["is_success"]`` is ``True`` on the step an episode is truncated (time is up) without a
crash. Needs the ``highway`` extra: ``pip install 'mmrl[highway]'``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.adapters._extras import adapter_vec_env, require_extra
from mmrl.envs.config import SensorConfig, check_choice, check_float, check_int

KINEMATIC_FEATURES = ("presence", "x", "y", "vx", "vy")
"""Default ``Kinematics`` features (highway-env's own default)."""

GRAYSCALE_WEIGHTS = (0.2989, 0.5870, 0.1140)  # ITU-R BT.601 luma, as highway-env's examples.


class HighwayToDict(gym.Wrapper):
    """Flattens the ``(grayscale, lidar, kinematics)`` Tuple observation into a Dict.

    Args:
        env: A highway-env env whose observation config is the ``TupleObservation`` built by
            :func:`make_highway` (grayscale with ``stack_size`` 1, lidar, kinematics).
        camera_channels: 1 for ``(H, W, 1)`` grayscale, 3 for the grey image replicated to
            ``(H, W, 3)`` (mmrl's camera contract).
    """

    def __init__(self, env: gym.Env, camera_channels: int = 3) -> None:
        super().__init__(env)
        gray, lidar, kin = env.observation_space.spaces
        _, width, height = gray.shape  # highway-env renders (stack, W, H)
        self.camera_channels = camera_channels
        self.observation_space = spaces.Dict(
            {
                "camera": spaces.Box(0, 255, (height, width, camera_channels), dtype=np.uint8),
                "lidar": spaces.Box(0.0, 1.0, (lidar.shape[0],), dtype=np.float32),
                "state": spaces.Box(-np.inf, np.inf, (int(np.prod(kin.shape)),), np.float32),
            }
        )

    def _grayscale(self) -> Any:
        return self.env.unwrapped.observation_type.observation_types[0]

    def _convert(self, obs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
        frame, scan, kinematics = obs
        image = np.ascontiguousarray(frame[-1].T)  # (W, H) -> (H, W): road along the width
        camera = np.repeat(image[:, :, None], self.camera_channels, axis=2)
        return {
            "camera": camera,
            # Ranges can dip just below 0 when a car overlaps the ego car (centre distance
            # minus half a width), hence the clip into the contract's [0, 1].
            "lidar": np.clip(scan[:, 0], 0.0, 1.0).astype(np.float32),
            "state": np.asarray(kinematics, dtype=np.float32).reshape(-1),
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        gray = self._grayscale()
        # highway-env builds a new viewer at every reset and disables it when
        # SDL_VIDEODRIVER=dummy (the usual headless setting), which leaves the camera black.
        # Off-screen drawing needs no display, so enable it and render the first frame again.
        if not gray.viewer.enabled:
            gray.viewer.enabled = True
            obs = (gray.observe(), *obs[1:])
        info["is_success"] = False
        return self._convert(obs), info

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["is_success"] = bool(truncated and not terminated and not info.get("crashed", False))
        return self._convert(obs), reward, terminated, truncated, info


def _check_config(env_id: str, config: Mapping[str, Any]) -> None:
    """Rejects keys the env's default config does not have (highway-env would ignore them)."""
    if "observation" in config:
        raise ValueError(
            "make_highway builds the 'observation' config itself; set camera_shape, "
            "lidar_beams, vehicles_count, ... instead of config['observation']"
        )
    env_cls = gym.envs.registration.load_env_creator(gym.spec(env_id).entry_point)
    defaults = env_cls.default_config() if hasattr(env_cls, "default_config") else None
    if defaults is None:
        raise ValueError(f"make_highway needs a highway-env id; {env_id!r} is not one")
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(
            f"{env_id}: unknown config key(s) {unknown}; allowed: {', '.join(sorted(defaults))}"
        )


def make_highway(
    env_id: str = "highway-fast-v0",
    camera_shape: tuple[int, int] = (64, 128),
    camera_channels: int = 3,
    scaling: float = 1.75,
    lidar_beams: int = 16,
    lidar_range: float = 60.0,
    vehicles_count: int = 5,
    features: Sequence[str] = KINEMATIC_FEATURES,
    config: Mapping[str, Any] | None = None,
    render_mode: str | None = None,
) -> gym.Env:
    """Builds a highway-env env with a flat ``{camera, lidar, state}`` Dict observation.

    Args:
        env_id: A highway-env id, e.g. ``"highway-fast-v0"``, ``"merge-v0"``,
            ``"roundabout-v0"``.
        camera_shape: Camera ``(height, width)`` in pixels, each in ``[16, 512]``.
        camera_channels: 3 (grey replicated to RGB, mmrl's camera contract) or 1.
        scaling: Camera pixels per metre (> 0); the default 1.75 shows about 73 m x 37 m.
        lidar_beams: Number of lidar beams, in ``[4, 4096]``.
        lidar_range: Lidar range in metres, in ``(0, 10000]``; ranges are divided by it.
        vehicles_count: Cars in ``state``, the ego car included (>= 1).
        features: ``Kinematics`` features per car (see highway-env's ``KinematicObservation``).
        config: Other highway-env config entries (e.g. ``{"lanes_count": 3, "duration": 20}``);
            keys are checked against the env's ``default_config`` because highway-env ignores
            misspelt keys silently. ``"observation"`` is set by this function.
        render_mode: Passed to ``gym.make`` (e.g. ``"rgb_array"``).

    Returns:
        The wrapped env (action space as configured, ``Discrete(5)`` meta-actions by default).

    Raises:
        ImportError: If ``highway-env`` is not installed (``pip install 'mmrl[highway]'``).
        ValueError: On an unknown config key, a non-highway-env id or an argument out of range.
    """
    # highway-env draws its camera with pygame; on a machine without a display SDL's video
    # start-up prints "XDG_RUNTIME_DIR is invalid" to stderr (a second line next to mmrl's
    # one-line errors). Off-screen drawing needs no display, so headless runs use SDL's dummy
    # driver (same pixels); with a display, or SDL_VIDEODRIVER set, nothing changes.
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    require_extra("highway_env", "highway", "make_highway")
    height, width = camera_shape
    check_int("camera_shape[0]", height, 16, 512)
    check_int("camera_shape[1]", width, 16, 512)
    check_choice("camera_channels", camera_channels, (1, 3))
    check_float("scaling", scaling, 0.0, low_inclusive=False)
    # The lidar settings every mmrl env shares, checked by their one definition.
    SensorConfig(lidar_beams=lidar_beams, lidar_range=lidar_range)
    check_int("vehicles_count", vehicles_count, 1, 1000)
    config = dict(config or {})
    _check_config(env_id, config)
    config["observation"] = {
        "type": "TupleObservation",
        "observation_configs": [
            {
                "type": "GrayscaleObservation",
                "observation_shape": (width, height),  # highway-env takes (W, H)
                "stack_size": 1,
                "weights": list(GRAYSCALE_WEIGHTS),
                "scaling": float(scaling),
            },
            {
                "type": "LidarObservation",
                "cells": lidar_beams,
                "maximum_range": float(lidar_range),
                "normalize": True,
            },
            {
                "type": "Kinematics",
                "vehicles_count": vehicles_count,
                "features": list(features),
                "normalize": True,
                "absolute": False,
            },
        ],
    }
    env = gym.make(env_id, config=config, render_mode=render_mode)
    return HighwayToDict(env, camera_channels=camera_channels)


def make_highway_vec_env(
    env_id: str = "highway-fast-v0",
    n_envs: int = 1,
    seed: int | None = None,
    vec_env_cls: type | None = None,
    **kwargs: Any,
):
    """``n_envs`` copies of :func:`make_highway` as an SB3 ``VecEnv`` (with ``Monitor``).

    Args:
        env_id: highway-env id.
        n_envs: Number of copies (>= 1).
        seed: Copy ``i`` is seeded with ``seed + i`` at the first reset; ``None`` for random.
        vec_env_cls: SB3 ``VecEnv`` class; ``None`` for ``DummyVecEnv``.
        **kwargs: Keyword arguments of :func:`make_highway`.

    Returns:
        A ``stable_baselines3`` ``VecEnv``.
    """
    return adapter_vec_env(make_highway, env_id, n_envs, seed, vec_env_cls, **kwargs)
