"""Encoder base class, the encoder registry and helpers shared by the built-in encoders.

An encoder turns one observation key (already preprocessed by SB3's ``preprocess_obs``) into
either one pooled embedding per sample (``forward``) or a short sequence of tokens
(``tokens``) for the attention-based fusions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from torch import nn

#: FiLM parameters for one encoder: one ``(gamma, beta)`` pair per modulated layer, each
#: a float tensor of shape ``(B, channels_of_that_layer)``.
FiLMParams = Sequence[tuple[th.Tensor, th.Tensor]]


class Encoder(nn.Module):
    """Base class of the per-key encoders of :class:`~mmrl.extractor.MultimodalExtractor`.

    Subclasses build their layers in ``__init__(space, embed_dim, **kwargs)``, implement
    :meth:`forward` and :meth:`tokens`, and may set :attr:`film_dims` to accept FiLM
    conditioning. Inputs are what SB3's ``preprocess_obs`` returns for ``space``: float
    tensors, images scaled to ``[0, 1]``, Discrete/MultiDiscrete one-hot encoded.

    Args:
        space: The observation subspace of this key.
        embed_dim: Width of the pooled embedding returned by :meth:`forward`.

    Attributes:
        modality: Kind of data handled (``"image"``, ``"lidar"``, ``"text"`` or
            ``"vector"``); fusions use it, e.g. FiLM conditions ``image``/``lidar`` encoders
            on ``text`` encoders.
        embed_dim: Width of the pooled embedding.
        film_dims: Channels of each layer that FiLM modulates (empty: no FiLM support).
    """

    modality: ClassVar[str] = "vector"

    def __init__(self, space: spaces.Space, embed_dim: int) -> None:
        super().__init__()
        if embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive int, got {embed_dim}")
        self.observation_space = space
        self.embed_dim = int(embed_dim)
        self.film_dims: tuple[int, ...] = ()

    @classmethod
    def check_space(cls, space: spaces.Space) -> None:
        """Raise ``ValueError`` (saying why) if this encoder cannot handle ``space``."""

    def forward(self, x: th.Tensor, film: FiLMParams | None = None) -> th.Tensor:
        """Encode a batch into pooled embeddings.

        Args:
            x: Preprocessed observations, float tensor of shape ``(B, *preprocessed_shape)``.
            film: Optional FiLM parameters, one ``(gamma, beta)`` pair per entry of
                :attr:`film_dims`; ignored by encoders without FiLM support.

        Returns:
            Float tensor of shape ``(B, embed_dim)``.
        """
        raise NotImplementedError

    def tokens(self, x: th.Tensor) -> tuple[th.Tensor, th.Tensor | None]:
        """Encode a batch into a sequence of tokens.

        The default is one token: the pooled embedding.

        Args:
            x: Preprocessed observations, float tensor of shape ``(B, *preprocessed_shape)``.

        Returns:
            ``(tokens, padding)``: float tensor ``(B, T, token_dim)`` and either ``None`` or
            a bool tensor ``(B, T)`` that is True at padding positions to ignore.
        """
        return self.forward(x).unsqueeze(1), None

    def token_groups(self) -> tuple[int, ...]:
        """Widths of the kinds of feature each token's channels hold, in order (summing to
        ``token_dim``); one group unless an encoder keeps kinds apart (``factored``: shape,
        colour). The ``query`` fusion's ``word_queries`` routes each word to one group."""
        return (self.token_shape()[1],)

    def token_shape(self) -> tuple[int, int]:
        """``(T, token_dim)`` of :meth:`tokens`, from a no-grad dummy forward (SB3 style)."""
        param = next(self.parameters(), None)
        device = param.device if param is not None else th.device("cpu")
        with th.no_grad():
            toks, _ = self.tokens(dummy_input(self.observation_space, device))
        return int(toks.shape[1]), int(toks.shape[2])


def dummy_input(space: spaces.Space, device: th.device | str = "cpu") -> th.Tensor:
    """A zero batch of size 1 shaped like ``preprocess_obs`` output for ``space``.

    Zeros rather than ``space.sample()`` so building a model never advances the space's RNG
    (which would change a seeded environment's behaviour).
    """
    if isinstance(space, spaces.Box):
        shape: tuple[int, ...] = tuple(space.shape)
    elif isinstance(space, spaces.MultiBinary):
        shape = tuple(np.atleast_1d(space.n).tolist())
    else:
        shape = (get_flattened_obs_dim(space),)
    return th.zeros((1, *shape), dtype=th.float32, device=device)


def apply_film(x: th.Tensor, film: FiLMParams | None, layer: int) -> th.Tensor:
    """Feature-wise linear modulation of channel axis 1 (Perez et al. 2018, "FiLM").

    Args:
        x: Feature map ``(B, C, *spatial)``.
        film: FiLM parameters of the encoder, or ``None`` for no modulation.
        layer: Which ``(gamma, beta)`` pair of ``film`` to use.

    Returns:
        ``gamma * x + beta`` broadcast over the spatial axes, same shape as ``x``.
    """
    if film is None:
        return x
    gamma, beta = film[layer]
    extra = (1,) * (x.dim() - 2)
    return x * gamma.view(*gamma.shape, *extra) + beta.view(*beta.shape, *extra)


_ENCODERS: dict[str, type[Encoder]] = {}


def register_encoder(
    name: str, *, overwrite: bool = False
) -> Callable[[type[Encoder]], type[Encoder]]:
    """Class decorator registering an :class:`Encoder` subclass under ``name``.

    Registered names can be chosen per observation key, e.g.
    ``MultimodalExtractor(space, encoders={"camera": name})``.

    Args:
        name: Registry name.
        overwrite: Replace an existing registration instead of raising ``ValueError``.
    """

    def decorator(cls: type[Encoder]) -> type[Encoder]:
        if not (isinstance(cls, type) and issubclass(cls, Encoder)):
            raise TypeError(f"register_encoder({name!r}) expects an Encoder subclass, got {cls}")
        if name in _ENCODERS and not overwrite:
            raise ValueError(
                f"encoder {name!r} is already registered ({_ENCODERS[name].__name__}); "
                "pass overwrite=True to replace it"
            )
        _ENCODERS[name] = cls
        return cls

    return decorator


def available_encoders() -> list[str]:
    """Sorted names of all registered encoders."""
    return sorted(_ENCODERS)


def get_encoder_class(name: str) -> type[Encoder]:
    """Look up a registered encoder class; ``ValueError`` lists the choices if unknown."""
    try:
        return _ENCODERS[name]
    except KeyError:
        raise ValueError(
            f"unknown encoder {name!r}; available encoders: {available_encoders()} "
            "(add your own with mmrl.encoders.register_encoder)"
        ) from None


def make_encoder(name: str, space: spaces.Space, embed_dim: int, **kwargs) -> Encoder:
    """Build the registered encoder ``name`` for ``space`` after checking compatibility."""
    cls = get_encoder_class(name)
    cls.check_space(space)
    return cls(space, embed_dim, **kwargs)
