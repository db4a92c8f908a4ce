"""Fusion modules and their registry.

Built-in names: ``concat``, ``mean``, ``gated``, ``film``, ``attention``, ``perceiver``,
``query``.
Register more with :func:`register_fusion`.
"""

from mmrl.fusion.attention import (
    AttentionFusion,
    MultiHeadAttention,
    PerceiverFusion,
    TokenFusion,
    TransformerBlock,
)
from mmrl.fusion.base import (
    Fusion,
    PooledFusion,
    available_fusions,
    get_fusion_class,
    make_fusion,
    register_fusion,
)
from mmrl.fusion.pooled import BlockLinear, ConcatFusion, FiLMFusion, GatedFusion, MeanFusion
from mmrl.fusion.query import QueryFusion

__all__ = [
    "AttentionFusion",
    "BlockLinear",
    "ConcatFusion",
    "FiLMFusion",
    "Fusion",
    "GatedFusion",
    "MeanFusion",
    "MultiHeadAttention",
    "PerceiverFusion",
    "PooledFusion",
    "QueryFusion",
    "TokenFusion",
    "TransformerBlock",
    "available_fusions",
    "get_fusion_class",
    "make_fusion",
    "register_fusion",
]
