"""Offline data in Minari format: the reader and the writer.

``load_offline_data`` reads a Minari dataset (HDF5) back into contiguous tensors in the layout an
SB3 policy sees (images channel-first), ``load_offline_datasets`` several as one;
:mod:`mmrl.data.writer` writes them atomically.

``collect`` (``mmrl collect``: roll a policy out into a dataset) lives in :mod:`mmrl.collect`,
above training, since it loads trained policies; it is still importable from here, loaded on
first use so that this package imports nothing above it (issue 14).
"""

from __future__ import annotations

from mmrl._lazy import lazy_getattr
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

_LAZY = {"CollectResult": "mmrl.collect", "collect": "mmrl.collect"}
__getattr__ = lazy_getattr(__name__, _LAZY)
