"""``MultimodalExtractor``: one encoder per observation key, fused by a registered fusion.

Plugs into Stable-Baselines3 as a features extractor::

    PPO("MultiInputPolicy", env, policy_kwargs=dict(
        features_extractor_class=MultimodalExtractor,
        features_extractor_kwargs=dict(fusion="attention"),
    ))
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from mmrl.encoders import Encoder, get_encoder_class, make_encoder
from mmrl.fusion import Fusion, get_fusion_class
from mmrl.spaces import summary

_SUPPORTED = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def default_encoder_name(
    key: str,
    space: spaces.Space,
    lidar_keys: Sequence[str] = ("lidar",),
    text_keys: Sequence[str] = ("text",),
    normalized_image: bool = False,
) -> str:
    """Registry name of the encoder chosen for ``key`` when none is given.

    Images (SB3's ``is_image_space``) -> ``nature``; ``lidar_keys`` -> ``lidar``;
    ``text_keys`` or any 1-D integer Box with bounds in ``[0, finite]`` -> ``gru``;
    everything else -> ``mlp``.
    """
    if is_image_space(space, check_channels=False, normalized_image=normalized_image):
        return "nature"
    if key in lidar_keys:
        return "lidar"
    is_token_box = (
        isinstance(space, spaces.Box)
        and len(space.shape) == 1
        and np.issubdtype(space.dtype, np.integer)
        and np.all(space.low >= 0)
        and np.all(np.isfinite(space.high))
    )
    if key in text_keys or is_token_box:
        return "gru"
    return "mlp"


def check_observation_space(observation_space: spaces.Space) -> None:
    """Raise ``ValueError`` naming the offending key (and the fix) for unsupported spaces."""
    if not isinstance(observation_space, spaces.Dict):
        raise ValueError(
            f"MultimodalExtractor needs a spaces.Dict observation space (one key per sensor), "
            f"got {observation_space}; use SB3's default extractor for single-input envs"
        )
    if not observation_space.spaces:
        raise ValueError("MultimodalExtractor needs a non-empty spaces.Dict observation space")
    for key, space in observation_space.spaces.items():
        if not isinstance(key, str) or not key or "." in key:
            raise ValueError(
                f"observation key {key!r} cannot name a torch submodule (must be a non-empty "
                "str without '.'); rename it with a gymnasium ObservationWrapper"
            )
        if hasattr(nn.ModuleDict(), key) or hasattr(nn.ParameterDict(), key):
            # SB3's CombinedExtractor fails on these too (ModuleDict attribute clash).
            raise ValueError(
                f"observation key {key!r} clashes with a torch ModuleDict attribute; rename it "
                "with a gymnasium ObservationWrapper"
            )
        if isinstance(space, spaces.Dict | spaces.Tuple):
            raise ValueError(
                f"observation key {key!r} is a nested {type(space).__name__} space; SB3 and "
                "MultimodalExtractor need a flat Dict: flatten it into top-level keys (e.g. "
                f"'{key}_<subkey>') with an ObservationWrapper"
            )
        if isinstance(space, spaces.Text):
            raise ValueError(
                f"observation key {key!r} is a raw gymnasium.spaces.Text; wrap the env with "
                "mmrl.wrappers.TextToTokens to turn strings into a Box of token ids"
            )
        if not isinstance(space, _SUPPORTED):
            raise ValueError(
                f"observation key {key!r} has unsupported space {space}; SB3 supports Box, "
                "Discrete, MultiDiscrete and MultiBinary"
            )


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON (tuples -> lists, numpy scalars -> Python); ValueError if not."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        raise TypeError(f"{obj!r} is not JSON-serialisable")

    try:
        return json.loads(json.dumps(value, default=default))
    except TypeError as err:
        raise ValueError(f"encoder/fusion kwargs must be plain data for .config: {err}") from None


#: Plain-data summary of a subspace for ``.config`` (kept under its old name).
describe_space = summary


class MultimodalExtractor(BaseFeaturesExtractor):
    """SB3 features extractor: one encoder per observation key, then a fusion.

    Encoders are chosen from each subspace (see :func:`default_encoder_name`) unless named in
    ``encoders``. Inputs to :meth:`forward` are SB3-preprocessed observations (images scaled
    to ``[0, 1]``, discrete keys one-hot, everything float); use :meth:`preprocess` on raw
    observations outside a policy.

    Args:
        observation_space: Flat ``spaces.Dict`` of Box/Discrete/MultiDiscrete/MultiBinary.
        features_dim: Width of the fused output (the policy/value nets' input).
        fusion: Registered fusion name: ``concat``, ``mean``, ``gated``, ``film``,
            ``attention``, ``perceiver``, ``query`` or a user-registered one.
        encoders: Per-key encoder name overrides, e.g. ``{"camera": "impala"}``.
        modality_dropout: Probability of dropping each modality of each sample in training
            mode (replaced by a learned "missing" embedding/token; at least one modality is
            always kept). Note that SB3 puts the policy in eval mode for rollouts, so
            on-policy algorithms see dropout only in their updates.
        lidar_keys: Keys to encode as range scans.
        text_keys: Keys to encode as token ids (besides 1-D integer Boxes).
        fusion_kwargs: Keyword arguments of the fusion class.
        encoder_kwargs: Per-key keyword arguments of the encoder classes, e.g.
            ``{"camera": {"channels": [32, 64, 64]}}``.
        embed_dim: Width of every per-modality embedding (:meth:`encode` output).
        normalized_image: As in SB3: treat 3-D float Boxes as (already normalised) images.

    Attributes:
        modalities: Observation keys in fusion order (the columns of ``mask``).
        encoders: ``nn.ModuleDict`` key -> :class:`~mmrl.encoders.Encoder`.
        fusion: The :class:`~mmrl.fusion.Fusion` module.
        config: JSON-able description of the architecture (widths, fusion and its kwargs,
            per-key encoder, encoder kwargs and subspace), to check that pretrained weights
            fit: extractors with equal configs have identical parameter names and shapes.
            Training-only settings (``modality_dropout``) are not part of it.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        features_dim: int = 256,
        fusion: str = "attention",
        encoders: Mapping[str, str] | None = None,
        modality_dropout: float = 0.0,
        lidar_keys: Sequence[str] = ("lidar",),
        text_keys: Sequence[str] = ("text",),
        fusion_kwargs: Mapping[str, Any] | None = None,
        encoder_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        embed_dim: int = 64,
        normalized_image: bool = False,
    ) -> None:
        check_observation_space(observation_space)
        keys = list(observation_space.spaces)
        encoders = dict(encoders or {})
        encoder_kwargs = {k: dict(v) for k, v in (encoder_kwargs or {}).items()}
        fusion_kwargs = dict(fusion_kwargs or {})
        for arg, given in (("encoders", encoders), ("encoder_kwargs", encoder_kwargs)):
            unknown = sorted(set(given) - set(keys))
            if unknown:
                raise ValueError(f"{arg} has unknown keys {unknown}; observation keys: {keys}")
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        if features_dim < 1:
            raise ValueError(f"features_dim must be a positive int, got {features_dim}")
        fusion_cls = get_fusion_class(fusion)  # fail fast on an unknown name
        for name in encoders.values():
            get_encoder_class(name)

        super().__init__(observation_space, features_dim)
        self.modalities: tuple[str, ...] = tuple(keys)
        self.modality_dropout = float(modality_dropout)
        self._normalize_images = not normalized_image

        modules: dict[str, Encoder] = {}
        names: dict[str, str] = {}
        for key in keys:
            space = observation_space[key]
            names[key] = encoders.get(key) or default_encoder_name(
                key, space, lidar_keys, text_keys, normalized_image
            )
            try:
                modules[key] = make_encoder(
                    names[key], space, embed_dim, **encoder_kwargs.get(key, {})
                )
            except (ValueError, TypeError) as err:
                raise ValueError(
                    f"observation key {key!r}: cannot build encoder {names[key]!r}: {err}"
                ) from err
        self.encoders = nn.ModuleDict(modules)
        try:
            self.fusion: Fusion = fusion_cls(self.encoders, features_dim, **fusion_kwargs)
        except TypeError as err:  # e.g. a misspelt fusion_kwargs entry
            raise ValueError(f"cannot build fusion {fusion!r}: {err}") from err

        self._masked: tuple[str, ...] = ()
        self.register_buffer(
            "_inference_mask", th.zeros(len(keys), dtype=th.bool), persistent=False
        )
        self.config: dict[str, Any] = _jsonable(
            {
                "features_dim": int(features_dim),
                "embed_dim": int(embed_dim),
                "fusion": fusion,
                "fusion_kwargs": fusion_kwargs,
                "modalities": {
                    key: {
                        "encoder": names[key],
                        "encoder_kwargs": encoder_kwargs.get(key, {}),
                        "space": describe_space(observation_space[key]),
                    }
                    for key in keys
                },
            }
        )

    # ------------------------------------------------------------------ inputs
    def _select(self, observations: Mapping[str, th.Tensor]) -> dict[str, th.Tensor]:
        missing = [key for key in self.modalities if key not in observations]
        if missing:
            raise KeyError(
                f"observation batch is missing key(s) {missing}; this MultimodalExtractor "
                f"was built for keys {list(self.modalities)}"
            )
        return {key: observations[key] for key in self.modalities}

    def preprocess(self, observations: Mapping[str, Any]) -> dict[str, th.Tensor]:
        """Raw batched observations (numpy or tensors) -> what :meth:`forward` expects.

        Applies SB3's ``preprocess_obs`` (uint8 images / 255, one-hot discrete keys) on the
        extractor's device; use it for data outside a policy, e.g. pretraining datasets.
        """
        device = self._inference_mask.device
        raw = {
            k: th.as_tensor(v if isinstance(v, th.Tensor) else np.asarray(v), device=device)
            for k, v in observations.items()
        }
        selected = self._select(raw)
        return preprocess_obs(selected, self._observation_space, self._normalize_images)

    def _drop_mask(
        self, inputs: Mapping[str, th.Tensor], mask: th.Tensor | None
    ) -> th.Tensor | None:
        """Combine explicit, inference and dropout masks into bool ``(B, n)`` or ``None``."""
        first = next(iter(inputs.values()))
        batch, device, n = first.shape[0], first.device, len(self.modalities)
        drop = None
        if mask is not None:
            mask = th.as_tensor(mask, device=device)
            if mask.dtype != th.bool or tuple(mask.shape) != (batch, n):
                raise ValueError(
                    f"mask must be a bool tensor of shape (batch, n_modalities) = ({batch}, {n}) "
                    f"in the order {list(self.modalities)}, got {mask.dtype} {tuple(mask.shape)}"
                )
            drop = mask
        if self._masked:
            rows = self._inference_mask.unsqueeze(0).expand(batch, n)
            drop = rows if drop is None else drop | rows
        if self.training and self.modality_dropout > 0.0:
            sampled = th.rand(batch, n, device=device) < self.modality_dropout
            # Never drop everything: keep one random modality of all-dropped samples.
            keep = th.randint(n, (batch,), device=device)
            sampled &= ~(
                th.nn.functional.one_hot(keep, n).bool() & sampled.all(dim=1, keepdim=True)
            )
            drop = sampled if drop is None else drop | sampled
        return drop

    # ------------------------------------------------------------------ API
    def forward(
        self, observations: Mapping[str, th.Tensor], mask: th.Tensor | None = None
    ) -> th.Tensor:
        """Fuse a batch of preprocessed observations.

        Args:
            observations: Key -> float tensor ``(B, ...)`` as produced by SB3's
                ``preprocess_obs`` (extra keys are ignored).
            mask: Optional bool ``(B, n_modalities)`` in :attr:`modalities` order; True
                replaces that modality of that sample with its learned "missing"
                embedding/token (e.g. for masked-modality pretraining). Combined with
                :meth:`set_modality_mask` and training-time ``modality_dropout``.

        Returns:
            Float tensor ``(B, features_dim)``.
        """
        inputs = self._select(observations)
        return self.fusion(inputs, self.encoders, self._drop_mask(inputs, mask))

    def encode(self, observations: Mapping[str, th.Tensor]) -> dict[str, th.Tensor]:
        """Per-modality pooled embeddings (no fusion, no masking), e.g. for contrastive or
        masked-modality pretraining.

        Args:
            observations: Preprocessed observations, key -> ``(B, ...)`` float.

        Returns:
            Key -> float tensor ``(B, embed_dim)`` for every key in :attr:`modalities`.
        """
        inputs = self._select(observations)
        return {key: self.encoders[key](x) for key, x in inputs.items()}

    def set_modality_mask(self, keys: Iterable[str] | None) -> None:
        """Remove modalities from every following forward pass (evaluation ablations).

        Args:
            keys: Keys to replace with their learned "missing" embedding, or ``None`` /
                empty to use all modalities again.
        """
        keys = tuple(keys or ())
        unknown = [k for k in keys if k not in self.modalities]
        if unknown:
            raise ValueError(
                f"cannot mask unknown modalities {unknown}; modalities: {list(self.modalities)}"
            )
        self._masked = tuple(k for k in self.modalities if k in keys)
        flags = [k in keys for k in self.modalities]
        self._inference_mask.copy_(th.tensor(flags, dtype=th.bool))

    @property
    def masked_modalities(self) -> tuple[str, ...]:
        """Keys currently removed by :meth:`set_modality_mask`."""
        return self._masked

    def modality_weights(self) -> dict[str, float]:
        """Per-modality weights of the last forward pass (sum to 1): gate values, attention
        mass or contribution share, depending on the fusion. Cheap; for logging."""
        return self.fusion.modality_weights()


def multimodal_extractors(module: nn.Module) -> list[MultimodalExtractor]:
    """All :class:`MultimodalExtractor` modules inside ``module`` (e.g. an SB3 policy, which
    holds several when ``share_features_extractor=False`` or with target networks)."""
    return [m for m in module.modules() if isinstance(m, MultimodalExtractor)]


def set_policy_modality_mask(policy: nn.Module, keys: Iterable[str] | None) -> None:
    """Apply :meth:`MultimodalExtractor.set_modality_mask` to every extractor in ``policy``.

    Raises:
        ValueError: If ``policy`` contains no :class:`MultimodalExtractor`.
    """
    extractors = multimodal_extractors(policy)
    if not extractors:
        raise ValueError("no MultimodalExtractor found in this policy")
    keys = tuple(keys or ())
    for extractor in extractors:
        extractor.set_modality_mask(keys)
