"""``VecEnv`` versions of the wrappers, for batched envs such as ``mmrl.make_vec_env``'s.

mmrl's own environments step all copies in one :class:`~mmrl.envs.vec_env.BatchedVecEnv`,
which Gymnasium wrappers cannot wrap; these SB3 ``VecEnvWrapper`` s corrupt or mask the batched
observations directly, with the same settings and code as the Gymnasium wrappers. Episode
ends follow SB3: ``infos[i]["terminal_observation"]`` is corrupted/masked like the observation
it stands for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from mmrl.wrappers._checks import make_rng
from mmrl.wrappers.mask import _SALT as _MASK_SALT
from mmrl.wrappers.mask import MaskModel, merge_mask_info
from mmrl.wrappers.noise import _SALT as _NOISE_SALT
from mmrl.wrappers.noise import NoiseArg, NoiseModel, build_noise_config, with_stack_vocab


def _one(obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[None] for k, v in obs.items()}


class VecSensorNoise(VecEnvWrapper):
    """Batched :class:`~mmrl.wrappers.SensorNoise`: corrupts camera, lidar and text.

    Args:
        venv: Vectorized env with a flat ``spaces.Dict`` observation space.
        camera: Camera noise: level, parameter mapping or ``CameraNoise`` (see ``SensorNoise``).
        lidar: Lidar noise: level, parameter mapping or ``LidarNoise``.
        text: Text noise: level, parameter mapping or ``TextNoise`` (token-id Box only: VecEnvs
            cannot batch strings).
        keys: Observation key per modality; defaults to ``camera``, ``lidar`` and ``text``.
        seed: Seed of the noise generator; ``venv.seed(s)`` (which SB3 algorithms call)
            re-seeds it from ``s``.

    Raises:
        ValueError: As :class:`~mmrl.wrappers.SensorNoise`.
    """

    def __init__(
        self,
        venv: VecEnv,
        camera: NoiseArg = None,
        lidar: NoiseArg = None,
        text: NoiseArg = None,
        keys: Mapping[str, str] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(venv)
        text_cfg = build_noise_config("text", text)
        envs = getattr(venv, "envs", None)  # DummyVecEnv: find a TextToTokens vocabulary
        if envs:
            text_cfg = with_stack_vocab(text_cfg, envs[0], (keys or {}).get("text", "text"))
        self.model = NoiseModel(
            venv.observation_space, camera, lidar, text_cfg, keys, owner="VecSensorNoise"
        )
        self._rng = make_rng(seed, _NOISE_SALT)

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        if seed is not None:
            self._rng = make_rng(seed, _NOISE_SALT)
        return self.venv.seed(seed)

    def reset(self) -> VecEnvObs:
        return self.model.apply(self.venv.reset(), self._rng)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        obs = self.model.apply(obs, self._rng)
        for i in np.flatnonzero(dones):
            terminal = infos[i].get("terminal_observation")
            if terminal is not None:
                noisy = self.model.apply(_one(terminal), self._rng)
                infos[i]["terminal_observation"] = {k: v[0] for k, v in noisy.items()}
        return obs, rewards, dones, infos


class VecModalityMask(VecEnvWrapper):
    """Batched :class:`~mmrl.wrappers.ModalityMask`: zeros whole modalities per copy.

    Each copy draws its own mask (independently per key with probability ``p``): at its episode
    start with ``per="episode"``, at every step with ``per="step"``. ``infos[i]`` and
    ``reset_infos[i]`` carry ``"masked_modalities"`` for the returned observation; when copy
    ``i`` ends an episode that is the new episode's first observation, while
    ``infos[i]["terminal_observation"]`` keeps the mask of the episode that ended.

    Args:
        venv: Vectorized env with a flat ``spaces.Dict`` observation space.
        keys: Observation keys to mask (a string for one key).
        p: Masking probability per key, in ``[0, 1]``.
        per: ``"episode"`` or ``"step"``.
        seed: Seed of the mask generator; ``venv.seed(s)`` re-seeds it from ``s``.

    Raises:
        ValueError: As :class:`~mmrl.wrappers.ModalityMask`.
    """

    def __init__(
        self,
        venv: VecEnv,
        keys: str | Sequence[str],
        p: float = 1.0,
        per: Literal["episode", "step"] = "episode",
        seed: int | None = None,
    ) -> None:
        super().__init__(venv)
        self.model = MaskModel(venv.observation_space, keys, p, per, owner="VecModalityMask")
        self._rng = make_rng(seed, _MASK_SALT)
        self._mask = np.zeros((self.num_envs, len(self.model.keys)), dtype=bool)

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        if seed is not None:
            self._rng = make_rng(seed, _MASK_SALT)
        return self.venv.seed(seed)

    @property
    def mask(self) -> np.ndarray:
        """``(num_envs, len(keys))`` booleans: which keys are masked in the latest observation."""
        return self._mask.copy()

    def reset(self) -> VecEnvObs:
        obs = self.venv.reset()
        self._mask = self.model.draw(self._rng, self.num_envs)
        inner = getattr(self.venv, "reset_infos", None) or [{} for _ in range(self.num_envs)]
        self.reset_infos = [
            merge_mask_info(dict(info), self.model.masked(row))
            for info, row in zip(inner, self._mask)
        ]
        return self.model.apply(obs, self._mask)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        if self.model.per == "step":
            self._mask = self.model.draw(self._rng, self.num_envs)
        done_idx = np.flatnonzero(dones)
        for i in done_idx:
            terminal = infos[i].get("terminal_observation")
            if terminal is not None:
                masked = self.model.apply(_one(terminal), self._mask[i : i + 1])
                infos[i]["terminal_observation"] = {k: v[0] for k, v in masked.items()}
        if self.model.per == "episode" and done_idx.size:
            self._mask[done_idx] = self.model.draw(self._rng, done_idx.size)
        for info, row in zip(infos, self._mask):
            merge_mask_info(info, self.model.masked(row))
        return self.model.apply(obs, self._mask), rewards, dones, infos
