"""Per-modality encoders and their registry.

Built-in names: ``nature``, ``impala`` and ``factored`` (images; ``factored`` reads shape
and colour apart), ``lidar`` (range scans), ``gru``, ``bow`` and ``transformer`` (token ids),
``mlp`` (everything else). Register more with :func:`register_encoder`.
"""

from mmrl.encoders.base import (
    Encoder,
    FiLMParams,
    available_encoders,
    dummy_input,
    get_encoder_class,
    make_encoder,
    register_encoder,
)
from mmrl.encoders.image import (
    FactoredImageEncoder,
    ImpalaEncoder,
    NatureCNNEncoder,
    conv_plan,
)
from mmrl.encoders.lidar import LidarEncoder
from mmrl.encoders.text import BagOfWordsEncoder, GRUTextEncoder, TransformerTextEncoder
from mmrl.encoders.vector import MlpEncoder

__all__ = [
    "BagOfWordsEncoder",
    "Encoder",
    "FactoredImageEncoder",
    "FiLMParams",
    "GRUTextEncoder",
    "ImpalaEncoder",
    "LidarEncoder",
    "MlpEncoder",
    "NatureCNNEncoder",
    "TransformerTextEncoder",
    "available_encoders",
    "conv_plan",
    "dummy_input",
    "get_encoder_class",
    "make_encoder",
    "register_encoder",
]
