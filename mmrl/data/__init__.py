"""Offline data in Minari format: collect rollouts (``mmrl collect``) and load them for training.

``collect`` rolls a policy (scripted expert, random, or a trained run) through the batched
``VecEnv`` and writes a Minari dataset (HDF5) into Minari's datasets folder; ``load_offline_data``
reads one back into contiguous tensors in the layout an SB3 policy sees (images channel-first).
"""

from __future__ import annotations

from mmrl.data.collect import CollectResult, collect
from mmrl.data.dataset import (
    DatasetError,
    OfflineData,
    check_spaces,
    dataset_root,
    load_minari_dataset,
    load_offline_data,
    policy_observation_space,
)

__all__ = [
    "CollectResult",
    "DatasetError",
    "OfflineData",
    "check_spaces",
    "collect",
    "dataset_root",
    "load_minari_dataset",
    "load_offline_data",
    "policy_observation_space",
]
