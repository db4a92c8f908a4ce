"""MiniGrid and BabyAI environments with mmrl's flat multimodal observations.

``make_minigrid("BabyAI-GoToLocal-v0")`` returns a Gymnasium env whose observations follow the
mmrl contract, so fusion extractors can be benchmarked on a suite the field knows:

==========  ===========================================  ==========================================
key         space                                        content
==========  ===========================================  ==========================================
``camera``  ``Box(0, 255, (7*t, 7*t, 3), uint8)``        RGB render of the agent's partial view
                                                         (``agent_view_size`` 7, tile size ``t``)
``text``    ``Box(0, V - 1, (max_len,), int64)``         mission token ids (0 = padding, 1 = UNK)
``state``   ``Box(0, 1, (4,), float32)`` (one-hot) or    agent direction (0 = right, 1 = down,
            ``Box(0, 1, (1,), float32)`` (scalar)        2 = left, 3 = up)
==========  ===========================================  ==========================================

The vocabulary ``V`` is mmrl's shared vocabulary extended with the words the env's mission
grammar can produce (BabyAI's instruction grammar for ``BabyAI-*`` levels), see
:class:`~mmrl.wrappers.TextToTokens`. ``info["instruction"]`` holds the mission string and
``info["is_success"]`` is ``True`` on the step that completes the mission (MiniGrid gives a
positive reward exactly then).

Needs the ``minigrid`` extra: ``pip install 'mmrl[minigrid]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.adapters._extras import adapter_vec_env, require_extra
from mmrl.envs.config import check_int
from mmrl.wrappers.text import TextToTokens

DIRECTION_ENCODINGS = ("onehot", "scalar")


class MiniGridToDict(gym.Wrapper):
    """Renames MiniGrid's ``image``/``direction`` to ``camera``/``state`` and adds success info.

    Expects the observation of ``RGBImgPartialObsWrapper`` (``image`` an RGB array); the
    ``mission`` string is kept for :class:`~mmrl.wrappers.TextToTokens`.

    Args:
        env: A MiniGrid env wrapped in ``minigrid.wrappers.RGBImgPartialObsWrapper``.
        direction: ``"onehot"`` (4 floats) or ``"scalar"`` (``direction / 3``, one float).
    """

    def __init__(self, env: gym.Env, direction: Literal["onehot", "scalar"] = "onehot") -> None:
        super().__init__(env)
        if direction not in DIRECTION_ENCODINGS:
            raise ValueError(
                f"direction must be one of {list(DIRECTION_ENCODINGS)}, got {direction!r}"
            )
        self.direction = direction
        size = 4 if direction == "onehot" else 1
        self.observation_space = spaces.Dict(
            {
                "camera": env.observation_space["image"],
                "mission": env.observation_space["mission"],
                "state": spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32),
            }
        )

    def _convert(self, obs: dict[str, Any]) -> dict[str, Any]:
        d = int(obs["direction"])
        if self.direction == "onehot":
            state = np.zeros(4, dtype=np.float32)
            state[d] = 1.0
        else:
            state = np.array([d / 3.0], dtype=np.float32)
        return {"camera": obs["image"], "mission": obs["mission"], "state": state}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        info["is_success"] = False
        return self._convert(obs), info

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        # MiniGrid rewards only success (1 - 0.9 * steps / max_steps > 0); failures such as
        # lava or BabyAI's wrong-object termination give 0.
        info["is_success"] = bool(terminated and reward > 0)
        return self._convert(obs), reward, terminated, truncated, info


def make_minigrid(
    env_id: str,
    tile_size: int = 4,
    max_len: int = 48,
    direction: Literal["onehot", "scalar"] = "onehot",
    vocab: Sequence[str] | None = None,
    render_mode: str | None = None,
    **env_kwargs: Any,
) -> gym.Env:
    """Builds a MiniGrid/BabyAI env with a flat ``{camera, text, state}`` Dict observation.

    Args:
        env_id: A registered MiniGrid or BabyAI id, e.g. ``"MiniGrid-Empty-5x5-v0"``,
            ``"BabyAI-GoToRedBallGrey-v0"``, ``"BabyAI-GoToLocal-v0"``.
        tile_size: Pixels per grid cell of the camera (>= 1): the 7x7 partial view becomes a
            ``(7 * tile_size, 7 * tile_size, 3)`` uint8 image (28x28 by default).
        max_len: Length of the ``text`` token-id vector (>= 1). The default 48 holds every
            mission seen in 800 resets of ``BabyAI-BossLevel-v0``/``MiniBossLevel-v0`` (at most
            37 words); longer missions are truncated.
        direction: ``state`` encoding of the agent's direction: ``"onehot"`` (4 floats) or
            ``"scalar"`` (``direction / 3`` in ``[0, 1]``).
        vocab: Word list for the tokenizer; ``None`` reads it from the env's mission grammar.
        render_mode: Passed to ``gym.make`` (e.g. ``"rgb_array"``).
        **env_kwargs: Other ``gym.make`` keyword arguments (e.g. ``max_steps``).

    Returns:
        The wrapped env; ``env.get_wrapper_attr("vocab")`` is its vocabulary.

    Raises:
        ImportError: If ``minigrid`` is not installed (``pip install 'mmrl[minigrid]'``).
        ValueError: If ``env_id`` is not a MiniGrid env or an argument is out of range.
    """
    require_extra("minigrid", "minigrid", "make_minigrid")
    from minigrid.minigrid_env import MiniGridEnv
    from minigrid.wrappers import RGBImgPartialObsWrapper

    check_int("tile_size", tile_size, 1, 64)
    check_int("max_len", max_len, 1)
    if direction not in DIRECTION_ENCODINGS:
        raise ValueError(f"direction must be one of {list(DIRECTION_ENCODINGS)}, got {direction!r}")
    env = gym.make(env_id, render_mode=render_mode, **env_kwargs)
    if not isinstance(env.unwrapped, MiniGridEnv):
        env.close()
        raise ValueError(
            f"make_minigrid needs a MiniGrid or BabyAI env id (MiniGrid-*, BabyAI-*); "
            f"{env_id!r} is {type(env.unwrapped).__name__}"
        )
    env = RGBImgPartialObsWrapper(env, tile_size=tile_size)
    env = MiniGridToDict(env, direction=direction)
    return TextToTokens(env, key="mission", vocab=vocab, max_len=max_len)


def make_minigrid_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    vec_env_cls: type | None = None,
    **kwargs: Any,
):
    """``n_envs`` copies of :func:`make_minigrid` as an SB3 ``VecEnv`` (with ``Monitor``).

    Args:
        env_id: MiniGrid/BabyAI id.
        n_envs: Number of copies (>= 1).
        seed: Copy ``i`` is seeded with ``seed + i`` at the first reset; ``None`` for random.
        vec_env_cls: SB3 ``VecEnv`` class; ``None`` for ``DummyVecEnv``.
        **kwargs: Keyword arguments of :func:`make_minigrid`.

    Returns:
        A ``stable_baselines3`` ``VecEnv``.
    """
    return adapter_vec_env(make_minigrid, env_id, n_envs, seed, vec_env_cls, **kwargs)
