"""Pretraining multimodal encoders on offline data, and fine-tuning PPO from them.

``mmrl pretrain`` (:func:`pretrain`) trains a recipe's extractor with behaviour cloning,
privileged-label prediction, cross-modal contrastive and masked-modality objectives and writes
an encoder checkpoint; ``mmrl train --init-from`` loads it (:mod:`mmrl.pretrain.finetune`), and
:func:`load_bc_policy` rebuilds its BC policy to act on its own (:mod:`mmrl.pretrain.bc_policy`).
"""

from __future__ import annotations

from mmrl.pretrain.bc_policy import load_bc_policy
from mmrl.pretrain.checkpoint import load_encoder_checkpoint, save_encoder_checkpoint
from mmrl.pretrain.finetune import FreezeEncodersCallback, load_pretrained
from mmrl.pretrain.objectives import OBJECTIVES, PretrainModel
from mmrl.pretrain.trainer import PretrainResult, pretrain

__all__ = [
    "OBJECTIVES",
    "FreezeEncodersCallback",
    "PretrainModel",
    "PretrainResult",
    "load_bc_policy",
    "load_encoder_checkpoint",
    "load_pretrained",
    "pretrain",
    "save_encoder_checkpoint",
]
