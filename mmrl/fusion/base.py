"""Fusion base classes and the fusion registry.

A fusion owns everything after the per-key encoders: the learned "missing" embeddings that
replace dropped modalities, the mixing layers, and the per-modality weights it reports for
logging. It receives the extractor's encoders at call time (they are not its submodules), so
it can decide how to run them (pooled embeddings, tokens, or FiLM-conditioned).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch as th
from torch import nn

from mmrl.encoders import Encoder


class Fusion(nn.Module):
    """Base class: combines the encoders' outputs of all modalities into one feature vector.

    Subclasses implement :meth:`forward` and call :meth:`_record_weights` with one weight per
    modality so :meth:`modality_weights` can report it.

    Args:
        encoders: The extractor's encoders, key -> :class:`~mmrl.encoders.Encoder`, in
            modality order. Only their metadata is read here; they are not registered.
        features_dim: Width of the fused output.
    """

    def __init__(self, encoders: Mapping[str, Encoder], features_dim: int) -> None:
        super().__init__()
        if not encoders:
            raise ValueError("a fusion needs at least one modality")
        self.modalities: tuple[str, ...] = tuple(encoders)
        self.features_dim = int(features_dim)
        n = len(self.modalities)
        # Non-persistent: a logging statistic, not state; still follows .to(device).
        self.register_buffer("last_weights", th.full((n,), 1.0 / n), persistent=False)

    def forward(
        self,
        inputs: Mapping[str, th.Tensor],
        encoders: Mapping[str, Encoder],
        drop: th.Tensor | None = None,
    ) -> th.Tensor:
        """Fuse a batch.

        Args:
            inputs: Preprocessed observations per key, each ``(B, ...)`` float.
            encoders: The extractor's encoders (same keys).
            drop: Optional bool ``(B, n_modalities)``, True = treat that modality of that
                sample as missing (in :attr:`modalities` order).

        Returns:
            Float tensor ``(B, features_dim)``.
        """
        raise NotImplementedError

    def modality_weights(self) -> dict[str, float]:
        """Per-modality weights of the last forward pass (sum to 1; uniform before any)."""
        return dict(zip(self.modalities, self.last_weights.tolist()))

    def _record_weights(self, weights: th.Tensor) -> None:
        """Store ``(n_modalities,)`` non-negative weights, normalised to sum to 1."""
        with th.no_grad():
            weights = weights.detach().float()
            self.last_weights = weights / weights.sum().clamp(min=1e-12)


class PooledFusion(Fusion):
    """Fusion of one pooled embedding per modality; subclasses implement :meth:`fuse`.

    Dropped modalities are replaced by a learned per-modality "missing" embedding
    (initialised at zero, i.e. "no signal"), as in modality-dropout training
    (Neverova et al. 2016, "ModDrop").
    """

    def __init__(self, encoders: Mapping[str, Encoder], features_dim: int) -> None:
        super().__init__(encoders, features_dim)
        self.embed_dims = {key: int(enc.embed_dim) for key, enc in encoders.items()}
        self._column = {key: i for i, key in enumerate(self.modalities)}
        self.missing = nn.ParameterDict(
            {key: nn.Parameter(th.zeros(dim)) for key, dim in self.embed_dims.items()}
        )

    def fill_missing(
        self, feats: dict[str, th.Tensor], drop: th.Tensor | None
    ) -> dict[str, th.Tensor]:
        """Replace dropped rows of each ``(B, d_k)`` embedding with the missing embedding."""
        if drop is None:
            return feats
        return {
            key: th.where(
                drop[:, self._column[key]].unsqueeze(1), self.missing[key].to(feat.dtype), feat
            )
            for key, feat in feats.items()
        }

    def forward(
        self,
        inputs: Mapping[str, th.Tensor],
        encoders: Mapping[str, Encoder],
        drop: th.Tensor | None = None,
    ) -> th.Tensor:
        feats = {key: encoders[key](inputs[key]) for key in self.modalities}
        return self.fuse(self.fill_missing(feats, drop))

    def fuse(self, feats: dict[str, th.Tensor]) -> th.Tensor:
        """Embeddings ``key -> (B, d_k)`` (missing ones already filled) -> ``(B, features_dim)``."""
        raise NotImplementedError


_FUSIONS: dict[str, type[Fusion]] = {}


def register_fusion(
    name: str, *, overwrite: bool = False
) -> Callable[[type[Fusion]], type[Fusion]]:
    """Class decorator registering a :class:`Fusion` subclass under ``name``.

    The class is built as ``cls(encoders, features_dim, **fusion_kwargs)``. The simplest
    custom fusion subclasses :class:`PooledFusion` and implements ``fuse``::

        @register_fusion("max")
        class MaxFusion(PooledFusion):
            def __init__(self, encoders, features_dim):
                super().__init__(encoders, features_dim)
                self.proj = nn.ModuleDict(
                    {k: nn.Linear(e.embed_dim, features_dim) for k, e in encoders.items()}
                )

            def fuse(self, feats):
                return th.stack([self.proj[k](v) for k, v in feats.items()]).amax(0)

    Args:
        name: Registry name, passed as ``MultimodalExtractor(fusion=name)``.
        overwrite: Replace an existing registration instead of raising ``ValueError``.
    """

    def decorator(cls: type[Fusion]) -> type[Fusion]:
        if not (isinstance(cls, type) and issubclass(cls, Fusion)):
            raise TypeError(f"register_fusion({name!r}) expects a Fusion subclass, got {cls}")
        if name in _FUSIONS and not overwrite:
            raise ValueError(
                f"fusion {name!r} is already registered ({_FUSIONS[name].__name__}); "
                "pass overwrite=True to replace it"
            )
        _FUSIONS[name] = cls
        return cls

    return decorator


def available_fusions() -> list[str]:
    """Sorted names of all registered fusions."""
    return sorted(_FUSIONS)


def get_fusion_class(name: str) -> type[Fusion]:
    """Look up a registered fusion class; ``ValueError`` lists the choices if unknown."""
    try:
        return _FUSIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown fusion {name!r}; available fusions: {available_fusions()} "
            "(add your own with mmrl.fusion.register_fusion)"
        ) from None


def make_fusion(name: str, encoders: Mapping[str, Encoder], features_dim: int, **kwargs) -> Fusion:
    """Build the registered fusion ``name``."""
    return get_fusion_class(name)(encoders, features_dim, **kwargs)
