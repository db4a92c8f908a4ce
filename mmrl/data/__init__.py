"""Offline data in Minari format: one reader with two views, and the writer.

:mod:`mmrl.data.reader` opens a dataset and walks its episodes, refusing bad ones with one
:class:`DatasetError` line. Its transition view, ``load_offline_data`` (``load_offline_datasets``
for several as one), holds every step as contiguous tensors in the layout an SB3 policy sees
(images channel-first) for pretraining; its episode view, ``load_logged_data``, holds every
state of every episode for offline evaluation. :mod:`mmrl.data.writer` writes datasets
atomically.

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
from mmrl.data.episodes import LoggedData, concat_logged_data, load_logged_data
from mmrl.data.reader import DatasetReader, Episode, open_dataset

__all__ = [
    "CollectResult",
    "DatasetError",
    "DatasetReader",
    "Episode",
    "LoggedData",
    "OfflineData",
    "check_spaces",
    "collect",
    "concat_logged_data",
    "concat_offline_data",
    "dataset_root",
    "load_logged_data",
    "load_minari_dataset",
    "load_offline_data",
    "load_offline_datasets",
    "open_dataset",
    "policy_observation_space",
]

_LAZY = {"CollectResult": "mmrl.collect", "collect": "mmrl.collect"}
__getattr__ = lazy_getattr(__name__, _LAZY)
