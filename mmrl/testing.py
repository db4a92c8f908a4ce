"""Tiny fake multimodal environments for tests and quick experiments.

:class:`RoutingEnv` has the four mmrl keys (``camera``, ``lidar``, ``text``, ``state``) at
small sizes. The reward-relevant class is drawn fresh every step and shown in exactly one
modality (``signal_key``); every other modality shows the same kind of pattern for an
independent random class, so it is pure distraction. A fusion "routes" correctly when it
learns the task, and masking the signal modality must then drop accuracy to chance.

:class:`RandomDictEnv` emits random samples of any flat Dict space, to check that an
extractor accepts every space SB3 supports.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space_channels_first

ROUTING_KEYS = ("camera", "lidar", "text", "state")
#: The fusions mmrl ships (``mmrl.fusion``), for parametrizing tests over all of them.
BUILTIN_FUSIONS = ("concat", "mean", "gated", "film", "attention", "perceiver", "query")


def routing_observation_space(
    image_size: int = 12,
    num_beams: int = 16,
    text_length: int = 6,
    vocab_size: int = 12,
    state_dim: int = 4,
    channels_first: bool = False,
) -> spaces.Dict:
    """The observation space of :class:`RoutingEnv` (mmrl's keys and dtypes, small sizes)."""
    image_shape = (3, image_size, image_size) if channels_first else (image_size, image_size, 3)
    return spaces.Dict(
        {
            "camera": spaces.Box(0, 255, image_shape, np.uint8),
            "lidar": spaces.Box(0.0, 1.0, (num_beams,), np.float32),
            "text": spaces.Box(0, vocab_size - 1, (text_length,), np.int64),
            "state": spaces.Box(-np.inf, np.inf, (state_dim,), np.float32),
        }
    )


def _render(
    key: str, classes: np.ndarray, space: spaces.Box, n_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """A batch of observations of ``key`` showing ``classes`` (one int per sample)."""
    n = len(classes)
    rows = np.arange(n)
    if key == "camera":
        channels_first = is_image_space_channels_first(space)
        h, w = space.shape[1:] if channels_first else space.shape[:2]
        img = rng.integers(0, 96, size=(n, h, w, 3), dtype=np.uint8)
        # A bright square somewhere in the vertical stripe of its class.
        stripe = w // n_classes
        side = max(2, min(h, stripe) // 2)
        x0 = classes * stripe + rng.integers(0, stripe - side + 1, size=n)
        y0 = rng.integers(0, h - side + 1, size=n)
        ys = y0[:, None] + np.arange(side)[None, :]
        xs = x0[:, None] + np.arange(side)[None, :]
        img[rows[:, None, None], ys[:, :, None], xs[:, None, :]] = 255
        return np.ascontiguousarray(img.transpose(0, 3, 1, 2)) if channels_first else img
    if key == "lidar":
        beams = space.shape[0]
        scan = rng.uniform(0.4, 1.0, size=(n, beams)).astype(np.float32)
        # A close obstacle (short ranges) in the angular sector of its class.
        sector = beams // n_classes
        width = max(2, sector // 2)
        start = classes * sector + rng.integers(0, sector - width + 1, size=n)
        idx = start[:, None] + np.arange(width)[None, :]
        scan[rows[:, None], idx] = rng.uniform(0.0, 0.1, size=(n, width))
        return scan
    if key == "text":
        length, vocab = space.shape[0], int(space.high.max()) + 1
        # Ids 1..n_classes are class words; the rest fill the sentence; 0 pads on the right.
        words = rng.integers(n_classes + 1, vocab, size=(n, length))
        lengths = rng.integers(2, length + 1, size=n)
        words[np.arange(length)[None, :] >= lengths[:, None]] = 0
        pos = (rng.random(n) * lengths).astype(np.int64)
        words[rows, pos] = classes + 1
        return words.astype(np.int64)
    if key == "state":
        state = rng.standard_normal((n, space.shape[0])).astype(np.float32)
        levels = np.linspace(-1.5, 1.5, n_classes)
        state[:, 0] = levels[classes] + 0.2 * rng.standard_normal(n)
        return state
    raise ValueError(f"unknown routing key {key!r}; keys: {ROUTING_KEYS}")


def sample_routing_batch(
    observation_space: spaces.Dict,
    signal_key: str,
    batch_size: int,
    rng: np.random.Generator,
    n_classes: int = 2,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Draw a batch of routing observations and their labels.

    Args:
        observation_space: From :func:`routing_observation_space`.
        signal_key: The one key whose pattern shows the label.
        batch_size: Number of samples.
        rng: Numpy generator.
        n_classes: Number of classes (2 to 4).

    Returns:
        ``(observations, labels)``: key -> array ``(batch_size, *space.shape)``, and int64
        labels ``(batch_size,)``.
    """
    if signal_key not in ROUTING_KEYS:
        raise ValueError(f"signal_key must be one of {ROUTING_KEYS}, got {signal_key!r}")
    labels = rng.integers(0, n_classes, size=batch_size)
    obs = {}
    for key in ROUTING_KEYS:
        shown = labels if key == signal_key else rng.integers(0, n_classes, size=batch_size)
        obs[key] = _render(key, shown, observation_space[key], n_classes, rng)
    return obs, labels


class RoutingEnv(gym.Env):
    """Contextual bandit whose answer lives in one modality; the others are distractors.

    Every step shows a fresh observation; the agent is rewarded for naming its class.

    Args:
        signal_key: ``camera``, ``lidar``, ``text`` or ``state``.
        n_classes: Number of classes (2 to 4).
        continuous: Box actions (for SAC/TD3): the action's first entry should be at the
            class level in ``linspace(-1, 1, n_classes)``; reward ``1 - |a - level|``.
            Otherwise ``Discrete(n_classes)`` with reward 1 for the right class.
        episode_length: Steps until truncation.
        channels_first: Camera layout (C, H, W) instead of (H, W, C).
        **space_kwargs: Sizes passed to :func:`routing_observation_space`.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        signal_key: str = "lidar",
        n_classes: int = 2,
        continuous: bool = False,
        episode_length: int = 16,
        channels_first: bool = False,
        **space_kwargs: Any,
    ) -> None:
        if signal_key not in ROUTING_KEYS:
            raise ValueError(f"signal_key must be one of {ROUTING_KEYS}, got {signal_key!r}")
        if not 2 <= n_classes <= 4:
            raise ValueError(f"n_classes must be in 2..4, got {n_classes}")
        self.signal_key = signal_key
        self.n_classes = n_classes
        self.continuous = continuous
        self.episode_length = episode_length
        self.observation_space = routing_observation_space(
            channels_first=channels_first, **space_kwargs
        )
        self.action_space: spaces.Space = (
            spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous else spaces.Discrete(n_classes)
        )
        self._levels = np.linspace(-1.0, 1.0, n_classes)
        self._label = 0
        self._t = 0

    def _observe(self) -> dict[str, np.ndarray]:
        obs, labels = sample_routing_batch(
            self.observation_space, self.signal_key, 1, self.np_random, self.n_classes
        )
        self._label = int(labels[0])
        return {k: v[0] for k, v in obs.items()}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        return self._observe(), {}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        if self.continuous:
            value = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
            reward = 1.0 - abs(value - self._levels[self._label])
            correct = int(np.argmin(np.abs(self._levels - value))) == self._label
        else:
            correct = int(action) == self._label
            reward = float(correct)
        info = {"label": self._label, "is_success": correct}
        self._t += 1
        return self._observe(), float(reward), False, self._t >= self.episode_length, info


def make_routing_env(signal_key: str = "lidar", **kwargs: Any) -> RoutingEnv:
    """A :class:`RoutingEnv` whose label is shown only by ``signal_key``."""
    return RoutingEnv(signal_key=signal_key, **kwargs)


class RandomDictEnv(gym.Env):
    """Random observations from any (flat) Dict space, random rewards.

    Args:
        observation_space: The space to sample from (seeded by ``reset(seed=...)``).
        action_space: Action space (default ``Discrete(2)``).
        episode_length: Steps until truncation.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Space | None = None,
        episode_length: int = 8,
    ) -> None:
        self.observation_space = observation_space
        self.action_space = action_space if action_space is not None else spaces.Discrete(2)
        self.episode_length = episode_length
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self.observation_space.seed(seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict]:
        self._t += 1
        reward = float(self.np_random.standard_normal())
        return self.observation_space.sample(), reward, False, self._t >= self.episode_length, {}


def fit_routing(
    fusion: str,
    signal_key: str,
    steps: int = 150,
    batch_size: int = 64,
    seed: int = 0,
    lr: float = 3e-3,
    eval_size: int = 512,
    **extractor_kwargs: Any,
) -> tuple[float, float]:
    """Supervised routing check: train extractor + linear head on routing batches.

    A fast stand-in for RL on :class:`RoutingEnv`: same observations, cross-entropy on the
    label instead of reward.

    Args:
        fusion: Fusion name.
        signal_key: Modality that shows the label.
        steps: Adam steps.
        batch_size: Training batch size.
        seed: Seeds torch and numpy.
        lr: Adam learning rate.
        eval_size: Held-out samples for the accuracies.
        **extractor_kwargs: Passed to :class:`~mmrl.extractor.MultimodalExtractor`.

    Returns:
        ``(accuracy, accuracy with signal_key masked)`` on fresh samples.
    """
    import torch as th

    from mmrl.extractor import MultimodalExtractor

    th.manual_seed(seed)
    rng = np.random.default_rng(seed)
    space = routing_observation_space()
    extractor_kwargs.setdefault("features_dim", 64)
    extractor_kwargs.setdefault("embed_dim", 32)
    extractor = MultimodalExtractor(space, fusion=fusion, **extractor_kwargs)
    head = th.nn.Linear(extractor.features_dim, 2)
    params = [*extractor.parameters(), *head.parameters()]
    optimizer = th.optim.Adam(params, lr=lr)
    for _ in range(steps):
        obs, labels = sample_routing_batch(space, signal_key, batch_size, rng)
        logits = head(extractor(extractor.preprocess(obs)))
        loss = th.nn.functional.cross_entropy(logits, th.as_tensor(labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    extractor.eval()
    obs, labels = sample_routing_batch(space, signal_key, eval_size, rng)
    x, y = extractor.preprocess(obs), th.as_tensor(labels)
    with th.no_grad():
        accuracy = (head(extractor(x)).argmax(1) == y).float().mean().item()
        extractor.set_modality_mask([signal_key])
        masked = (head(extractor(x)).argmax(1) == y).float().mean().item()
        extractor.set_modality_mask(None)
    return accuracy, masked
