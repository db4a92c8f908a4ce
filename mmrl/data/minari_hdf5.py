"""Minari's HDF5 episode layout, written directly: one file open per chunk of episodes.

Why not Minari's own ``HDF5Storage.update_episodes``: it walks every episode's nested dict in
Python and builds each array with h5py's high-level ``create_dataset(..., chunks=True,
maxshape=(None, ...))``. ``mmrl collect`` writes ~34 datasets per episode, and that path was
measured at ~4k env-steps/s on Driving-v1 (3.8 s for 256 episodes), three quarters of a
collection's time, CPU-bound and holding the GIL (issue 20, BENCHMARKS.md "Collection"). This
module writes the same groups, datasets, dtypes, shapes and attributes through h5py's
low-level API with the property lists and datatypes prepared once, so a chunk costs one file
open plus what HDF5 itself spends per dataset. Minari's writer stays the reference: the test
``tests/data/test_minari_hdf5.py`` writes the same episodes both ways and compares them, and
:func:`append_episodes` declines (returns ``False``) whatever it does not write exactly as
Minari would, leaving it to Minari.

The layout (minari 0.5, ``minari/dataset/_storages/hdf5_storage.py``): ``main_data.hdf5`` holds
one group ``episode_<id>`` per episode, in order, with attributes ``id``, ``seed`` (when
known), ``options/...`` (flattened, when given) and ``total_steps`` (``len(rewards)``); inside
it, in the buffer's order, ``observations``, ``actions``, ``rewards``, ``terminations``,
``truncations`` and ``infos``: a dict becomes a group, an array a dataset of its dtype (bool as
h5py's enum), a list of ``str`` a dataset of variable-length UTF-8 strings. The dataset
metadata (``metadata.json``: ``total_steps``, ``total_episodes``, ``dataset_size``, spaces,
authors) is written by Minari's own ``MinariStorage.update_metadata`` with the values
``update_episodes`` would give it.

One deliberate difference: the datasets are stored contiguously, not chunked and resizable.
Minari chunks them only so that ``update_episodes`` can append steps to an episode that is
still running (a buffer that names an existing episode id), which ``mmrl collect`` never does:
it writes finished episodes. Contiguous storage has no chunk index and no chunk padding: it
measured about half the CPU time of the same low-level write with Minari's chunks, and a
third less disk for Driving-v1's camera frames. Readers see no difference: h5py reads both
layouts the same (``dataset[()]``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MAIN_FILE", "append_episodes", "episode_nodes", "supports_storage"]

#: Minari's HDF5 file inside a dataset's ``data`` folder.
MAIN_FILE = "main_data.hdf5"

#: The members of an episode group, in the order Minari writes them.
_FIELDS = ("observations", "actions", "rewards", "terminations", "truncations", "infos")

#: One member of an episode group: its path below the group and its array (``None``: a group).
Node = tuple[tuple[str, ...], "np.ndarray | None"]


def supports_storage(storage: Any) -> bool:
    """Whether :func:`append_episodes` writes into ``storage`` (a ``MinariStorage``) exactly as
    Minari would: its HDF5 format without JPEG-encoded images (encoding, not HDF5, is what
    costs there, and Minari's encoder stays the one place for it)."""
    # A Minari without the jpeg_encoding option always encodes.
    return getattr(storage, "FORMAT", None) == "hdf5" and not getattr(
        storage, "jpeg_encoding", True
    )


def _leaf(value: Any) -> np.ndarray | None:
    """The array Minari's ``_add_episode_to_group`` stores for ``value``, or ``None`` when this
    module does not write it (Minari then does, or fails as it would have): non-empty numeric
    or bool arrays of at least one dimension keep their dtype; non-empty lists (or object
    arrays) of ``str`` become variable-length UTF-8 strings. Scalars, tuples, lists of numbers
    or dicts, empty arrays and NumPy ``str`` arrays (which h5py refuses) are left to Minari."""
    import h5py

    if isinstance(value, np.ndarray) and value.dtype != object:
        if value.ndim == 0 or len(value) == 0 or value.dtype.kind not in "biuf":
            return None
        return np.ascontiguousarray(value)
    # Minari's test: every element a str -> h5py.string_dtype("utf-8").
    if (
        isinstance(value, list | np.ndarray)
        and len(value) > 0
        and all(isinstance(item, str) for item in value)
    ):
        return np.array(list(value), dtype=h5py.string_dtype(encoding="utf-8"))
    return None


def episode_nodes(episode: Any) -> list[Node] | None:
    """The groups and datasets of a Minari ``EpisodeBuffer``'s group, in Minari's order, or
    ``None`` when some field is one this module leaves to Minari (see :func:`_leaf`).

    Args:
        episode: An ``EpisodeBuffer`` without an ``id`` (a new episode).
    """
    if getattr(episode, "id", None) is not None:
        return None  # Minari appends to an existing episode: resizable datasets
    nodes: list[Node] = []

    def walk(path: tuple[str, ...], value: Any) -> bool:
        if isinstance(value, dict):  # Minari's test: a dict, not any Mapping
            nodes.append((path, None))
            return all(walk((*path, str(key)), item) for key, item in value.items())
        if value is None:  # Minari skips a missing leaf (e.g. no infos)
            return True
        array = _leaf(value)
        if array is None:
            return False
        nodes.append((path, array))
        return True

    for field in _FIELDS:
        if not walk((field,), getattr(episode, field)):
            return None
    return nodes


def _encode(name: str) -> tuple[bytes, int]:
    """A link name and its character set, as h5py's ``Group._e`` encodes it."""
    from h5py import h5t

    try:
        return name.encode("ascii"), h5t.CSET_ASCII
    except UnicodeEncodeError:
        return name.encode("utf-8"), h5t.CSET_UTF8


class _PropertyLists:
    """h5py's creation property lists for groups and datasets, made once per chunk (h5py
    makes them again for every object): ``Group.create_group`` and ``make_new_dset`` with
    their defaults (no timestamps; attribute order tracked as ``h5py``'s config says)."""

    def __init__(self) -> None:
        from h5py import h5, h5p, h5t

        track_order = h5.get_config().track_order
        order = h5p.CRT_ORDER_TRACKED | h5p.CRT_ORDER_INDEXED
        self.gcpl = h5p.create(h5p.GROUP_CREATE)
        if track_order:
            self.gcpl.set_link_creation_order(order)
            self.gcpl.set_attr_creation_order(order)
        self.gcpl.set_obj_track_times(False)
        self.dcpl = h5p.create(h5p.DATASET_CREATE)
        self.dcpl.set_obj_track_times(False)
        self.dcpl.set_attr_creation_order(order if track_order else 0)
        # Group.create_group's link list: h5py's default one with the name's character set.
        self.lcpl = {}
        for cset in (h5t.CSET_ASCII, h5t.CSET_UTF8):
            lcpl = h5p.create(h5p.LINK_CREATE)
            lcpl.set_create_intermediate_group(True)
            lcpl.set_char_encoding(cset)
            self.lcpl[cset] = lcpl


def _file_type(dtype: np.dtype) -> Any:
    """The HDF5 type h5py stores ``dtype`` as (``make_new_dset``: ``py_create(dtype,
    logical=1)``), built once per numeric dtype. Not cached for object dtypes: NumPy
    compares and hashes them equal whatever h5py's metadata says (UTF-8 or ASCII strings)."""
    from h5py import h5t

    if dtype.kind == "O":
        return h5t.py_create(dtype, logical=1)
    return _numeric_file_type(dtype)


@functools.lru_cache(maxsize=64)
def _numeric_file_type(dtype: np.dtype) -> Any:
    from h5py import h5t

    return h5t.py_create(dtype, logical=1)


def _write_episode(file: Any, name: str, nodes: Sequence[Node], plists: _PropertyLists) -> Any:
    """Creates group ``name`` and its members; returns the group."""
    import h5py
    from h5py import h5d, h5g, h5s

    groups: dict[tuple[str, ...], Any] = {}
    key, cset = _encode(name)
    groups[()] = h5g.create(file.id, key, lcpl=plists.lcpl[cset], gcpl=plists.gcpl)
    for path, array in nodes:
        parent = groups[path[:-1]]
        key, cset = _encode(path[-1])
        if array is None:
            groups[path] = h5g.create(parent, key, lcpl=plists.lcpl[cset], gcpl=plists.gcpl)
            continue
        # h5py's Group.create_dataset passes no link property list: the default one.
        space = h5s.create_simple(array.shape)
        dataset = h5d.create(parent, key, _file_type(array.dtype), space, dcpl=plists.dcpl)
        dataset.write(h5s.ALL, h5s.ALL, array)
    return h5py.Group(groups[()])


def append_episodes(storage: Any, episodes: Sequence[Any]) -> bool:
    """Appends ``episodes`` to a Minari HDF5 storage as ``storage.update_episodes`` would.

    Writes nothing and returns ``False`` when Minari must write them itself: a storage that is
    not HDF5 or JPEG-encodes images (:func:`supports_storage`), an episode that names an
    existing id, or a field :func:`episode_nodes` does not take. Otherwise every episode's
    group is written in one open of the file, then the dataset metadata is updated by
    Minari's ``update_metadata`` with what ``update_episodes`` computes.

    Args:
        storage: The dataset's ``MinariStorage`` (``minari.MinariDataset.storage``).
        episodes: Minari ``EpisodeBuffer``s of finished episodes.

    Returns:
        Whether the episodes were written.
    """
    if not supports_storage(storage):
        return False
    prepared = []
    for episode in episodes:
        nodes = episode_nodes(episode)
        if nodes is None:
            return False
        prepared.append((episode, nodes))
    if not prepared:
        return True
    import h5py
    from minari.dataset._storages.hdf5_storage import flatten_dict

    plists = _PropertyLists()
    steps = 0
    with h5py.File(Path(storage.data_path) / MAIN_FILE, "a", track_order=True) as file:
        total = len(file)  # Minari's next id: the number of episode groups
        for episode, nodes in prepared:
            attrs = _write_episode(file, f"episode_{total}", nodes, plists).attrs
            attrs["id"] = total
            if episode.seed is not None:
                attrs["seed"] = episode.seed
            if episode.options is not None:
                attrs.update(flatten_dict(episode.options, "options"))
            episode_steps = len(episode.rewards)
            attrs["total_steps"] = episode_steps
            steps += episode_steps
            total += 1
    storage.update_metadata(
        {
            "total_steps": storage.total_steps + steps,
            "total_episodes": total,
            "dataset_size": storage.get_size(),
        }
    )
    return True
