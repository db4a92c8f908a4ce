"""Reference policies for evaluation tables: the scripted expert and uniform random actions.

A trained agent's numbers read better next to two anchors evaluated on the same seeds: the
scripted expert, a ceiling that acts from the simulator's privileged state (so masking or
corrupting observations cannot change what it does), and a uniformly random policy, a floor
that ignores observations altogether. Both have the part of SB3's model API that
:func:`~mmrl.evaluation.rollouts.evaluate_model` uses (``predict``, ``policy`` and the
spaces), plus ``attach``, through which the engine hands them each evaluation ``VecEnv``; so
they run through the same seeds, conditions and tables as a trained model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.config import ConfigError

REFERENCE_POLICIES = ("expert", "random")
"""Names accepted by :class:`ReferencePolicy`."""


def _batch_size(observation: Any) -> int:
    if isinstance(observation, dict):
        return len(next(iter(observation.values())))
    return len(observation)


class ReferencePolicy:
    """The scripted expert (``"expert"``) or uniform random actions (``"random"``).

    Before its rollouts, :func:`~mmrl.evaluation.rollouts.evaluate_model` calls
    :meth:`attach` with the raw evaluation ``VecEnv``: the expert reads its actions from that
    env's simulator, and the random policy restarts its generator from ``seed``, so every
    condition of an evaluation draws the same random actions. The expert answers for every
    copy at once (it does not look at the rows it is given), so ``whole_batch`` tells
    :func:`~mmrl.rollout.collect_episodes` to pass it whole batches.

    Attributes:
        name: ``"expert"`` or ``"random"``.
        seed: Seed of the random actions.
        policy: Always ``None``: there is no network, so modality ablations zero the
            observation keys (there is no extractor whose mask could be set).
        whole_batch: Whether ``predict`` needs the observations of every copy.
        observation_space: The attached env's space as a policy stores it (``None`` before
            :meth:`attach`).
        action_space: The attached env's action space (``None`` before :meth:`attach`).

    Args:
        name: ``"expert"`` or ``"random"``.
        seed: Seed of the random actions.

    Raises:
        ConfigError: An unknown name.
    """

    policy = None

    def __init__(self, name: str, seed: int = 0) -> None:
        if name not in REFERENCE_POLICIES:
            raise ConfigError(
                f"unknown reference policy {name!r}; allowed: {', '.join(REFERENCE_POLICIES)}"
            )
        self.name = name
        self.seed = seed
        self.whole_batch = name == "expert"
        self.observation_space: spaces.Space | None = None
        self.action_space: spaces.Space | None = None
        self._expert: Any = None
        self._rng = np.random.default_rng(seed)

    def attach(self, venv: Any) -> None:
        """Binds the policy to an evaluation ``VecEnv`` (the raw env, below normalization).

        Raises:
            ConfigError: ``expert`` on an environment without a batched scripted expert.
        """
        from mmrl.collect import find_expert
        from mmrl.evaluation.loading import policy_view

        if self.name == "expert":
            self._expert = find_expert(venv)
            if self._expert is None:
                raise ConfigError(
                    "expert: this environment has no batched scripted expert (mmrl environments "
                    "only); evaluate the random reference alone"
                )
        self._rng = np.random.default_rng(self.seed)
        self.observation_space = policy_view(venv.observation_space)
        self.action_space = venv.action_space

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Actions for a batch of observations, as SB3's ``model.predict`` returns them.

        Args:
            observation: Batched observation (only its batch size is used).
            state: Ignored (no recurrent state).
            episode_start: Ignored.
            deterministic: Ignored: the expert is deterministic, random actions are random.

        Returns:
            ``(actions, None)``.

        Raises:
            RuntimeError: Before :meth:`attach`, or the expert given a part of the batch.
        """
        if self.action_space is None:
            raise RuntimeError(f"{self.name}: call attach(venv) before predict")
        n = _batch_size(observation)
        if self.name == "random":
            from mmrl.collect import random_actions

            return random_actions(self.action_space, n, self._rng), None
        actions = np.asarray(self._expert())
        if len(actions) != n:
            raise RuntimeError(
                f"expert: acts for all {len(actions)} copies at once but was given {n} rows "
                "(collect_episodes(..., subset_rows=False))"
            )
        return actions, None
