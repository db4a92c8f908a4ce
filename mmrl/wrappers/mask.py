"""Whole-modality masking for modality-ablation evaluation and modality-dropout training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.wrappers._checks import check_probability, make_rng, require_dict_space, require_keys

MASK_INFO_KEY = "masked_modalities"
"""``info`` key listing the observation keys that were zeroed in the returned observation."""

PER_CHOICES = ("episode", "step")

_SALT = 0x3A5C  # Separates ModalityMask's random stream from the env's (see make_rng).


class MaskModel:
    """Validated masking settings shared by :class:`ModalityMask` and its ``VecEnv`` version.

    Args:
        observation_space: Space of one observation (a flat ``spaces.Dict``).
        keys: Observation keys that may be masked (a single key may be given as a string).
        p: Probability, in ``[0, 1]``, that each key is masked, drawn independently per key.
        per: ``"episode"`` draws the mask at reset and keeps it for the whole episode;
            ``"step"`` draws a fresh mask for every observation.
        owner: Name used in error messages.

    Raises:
        ValueError: On a non-Dict space, an unknown key, a key whose space is not a Box
            containing zero, ``p`` outside ``[0, 1]`` or an unknown ``per``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        keys: str | Sequence[str],
        p: float = 1.0,
        per: Literal["episode", "step"] = "episode",
        owner: str = "ModalityMask",
    ) -> None:
        space = require_dict_space(observation_space, owner)
        keys = [keys] if isinstance(keys, str) else list(keys)
        if not keys:
            raise ValueError(f"{owner}: keys must name at least one observation key; got []")
        if len(set(keys)) != len(keys):
            raise ValueError(f"{owner}: keys contains duplicates: {keys}")
        require_keys(space, keys, owner)
        for key in keys:
            sub = space[key]
            # Zeros must be a valid observation, otherwise a masked observation would leave the
            # space that the policy (and SB3's checks) rely on.
            if not isinstance(sub, spaces.Box) or not sub.contains(
                np.zeros(sub.shape, dtype=sub.dtype)
            ):
                raise ValueError(
                    f"{owner}: key {key!r} cannot be masked: only Box spaces whose bounds "
                    f"contain zero can be replaced by zeros; got {sub!r}"
                )
        self.p = check_probability(f"{owner} p", p)
        if per not in PER_CHOICES:
            raise ValueError(f"{owner}: per must be one of {list(PER_CHOICES)}, got {per!r}")
        self.keys: tuple[str, ...] = tuple(keys)
        self.per = per

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draws ``(n, len(keys))`` booleans: ``True`` where a key is masked."""
        return rng.random((n, len(self.keys))) < self.p

    def apply(self, obs: Mapping[str, Any], mask: np.ndarray) -> dict[str, Any]:
        """Zeros the masked keys of a batched observation (each key ``(n, ...)``).

        Args:
            obs: Batched observation.
            mask: ``(n, len(keys))`` booleans from :meth:`draw`.

        Returns:
            A new dict; masked keys are new arrays, other keys are passed through.
        """
        out = dict(obs)
        for j, key in enumerate(self.keys):
            rows = mask[:, j]
            if rows.any():
                values = np.array(obs[key], copy=True)
                values[rows] = 0
                out[key] = values
        return out

    def masked(self, row: np.ndarray) -> list[str]:
        """Keys masked by one row of a mask."""
        return [key for key, m in zip(self.keys, row) if m]


def merge_mask_info(info: dict[str, Any], masked: list[str]) -> dict[str, Any]:
    """Sets ``info["masked_modalities"]``, keeping keys masked by an inner wrapper."""
    inner = info.get(MASK_INFO_KEY, [])
    info[MASK_INFO_KEY] = [*inner, *(k for k in masked if k not in inner)]
    return info


class ModalityMask(gym.Wrapper):
    """Replaces whole modalities by zeros, for robustness evaluation and modality dropout.

    Each of ``keys`` is masked independently with probability ``p``; ``p=1`` masks all of them
    always (a deterministic ablation, e.g. "no camera"). With ``per="episode"`` (default) the
    mask is drawn at ``reset`` and held for the episode, as a sensor that is missing for a whole
    run; with ``per="step"`` it is redrawn at every step, as an intermittent sensor. Zeroed token
    ids read as all padding, i.e. an empty instruction.

    Every ``reset`` and ``step`` info carries ``info["masked_modalities"]``: the list of keys
    zeroed in the returned observation (empty when none; keys masked by an inner
    ``ModalityMask`` are kept). Randomness comes from the wrapper's own generator, re-seeded
    from ``reset(seed=s)``.

    Args:
        env: Environment with a flat ``spaces.Dict`` observation space.
        keys: Observation keys to mask (a string for one key), e.g. ``["camera", "lidar"]``.
        p: Masking probability per key, in ``[0, 1]``.
        per: ``"episode"`` or ``"step"``: how often the mask is redrawn.

    Raises:
        ValueError: On a non-Dict observation space, a key not in it or whose space cannot hold
            zeros, ``p`` outside ``[0, 1]`` or an unknown ``per``.
    """

    def __init__(
        self,
        env: gym.Env,
        keys: str | Sequence[str],
        p: float = 1.0,
        per: Literal["episode", "step"] = "episode",
    ) -> None:
        super().__init__(env)
        self.model = MaskModel(env.observation_space, keys, p, per)
        self._rng = make_rng(None, _SALT)
        self._mask = np.zeros((1, len(self.model.keys)), dtype=bool)

    @property
    def masked_keys(self) -> list[str]:
        """Keys masked in the latest observation."""
        return self.model.masked(self._mask[0])

    def _observe(self, obs: dict[str, Any], info: dict[str, Any]) -> tuple[dict, dict]:
        batched = {k: np.asarray(obs[k])[None] for k in self.model.keys}
        masked = self.model.apply(batched, self._mask)
        out = dict(obs)
        for key in self.model.keys:
            if masked[key] is not batched[key]:
                out[key] = masked[key][0]
        return out, merge_mask_info(info, self.masked_keys)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if seed is not None:
            self._rng = make_rng(seed, _SALT)
        obs, info = self.env.reset(seed=seed, options=options)
        self._mask = self.model.draw(self._rng, 1)
        return self._observe(obs, info)

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.model.per == "step":
            self._mask = self.model.draw(self._rng, 1)
        obs, info = self._observe(obs, info)
        return obs, reward, terminated, truncated, info
