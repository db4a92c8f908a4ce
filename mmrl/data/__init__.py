"""Offline data in Minari format: collect rollouts (``mmrl collect``) and load them for training.

``collect`` rolls a policy (scripted expert, random, a trained run or a pretraining checkpoint's
BC policy) through the batched ``VecEnv`` and writes a Minari dataset (HDF5) into Minari's
datasets folder; ``load_offline_data`` reads one back into contiguous tensors in the layout an SB3
policy sees (images channel-first), ``load_offline_datasets`` several as one.
"""

from __future__ import annotations

from mmrl.data.collect import CollectResult, collect
from mmrl.data.dataset import (
    DatasetError,
    OfflineData,
    check_spaces,
    concat_offline_data,
    dataset_root,
    load_minari_dataset,
    load_offline_data,
    load_offline_datasets,
    policy_observation_space,
)

__all__ = [
    "CollectResult",
    "DatasetError",
    "OfflineData",
    "check_spaces",
    "collect",
    "concat_offline_data",
    "dataset_root",
    "load_minari_dataset",
    "load_offline_data",
    "load_offline_datasets",
    "policy_observation_space",
]
