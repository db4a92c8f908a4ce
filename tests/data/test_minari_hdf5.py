"""The direct HDF5 writer (:mod:`mmrl.data.minari_hdf5`) against Minari's own, the reference."""

from __future__ import annotations

import json

import h5py
import minari
import numpy as np
import pytest
import torch as th
from minari.data_collector import EpisodeBuffer

from mmrl.data import collect, load_logged_data, load_offline_data
from mmrl.data.minari_hdf5 import append_episodes, episode_nodes
from mmrl.data.writer import AtomicDatasetWriter
from mmrl.envs.vec_env import BatchedVecEnv


def _tree(path) -> dict[str, tuple]:
    """Every group and dataset of a dataset's HDF5 file: attributes, HDF5 type, shape, values."""
    out: dict[str, tuple] = {}
    with h5py.File(path / "data" / "main_data.hdf5", "r") as file:
        out["/"] = ("root", list(file), dict(file.attrs))

        def visit(name, obj):
            attrs = {k: (np.asarray(v).dtype, np.asarray(v).tolist()) for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Group):
                out[name] = ("group", list(obj), attrs)
            else:
                out[name] = ("dataset", attrs, obj.id.get_type(), obj.dtype, obj.shape, obj[()],
                             obj.chunks)  # fmt: skip

        file.visititems(visit)
    return out


def _assert_same_files(reference, direct) -> None:
    """The direct writer's file holds what Minari's holds: names (episode order included),
    attributes, HDF5 types, shapes and values; only the storage layout differs (contiguous,
    which also shows that the direct writer, not a fallback to Minari, wrote it)."""
    ref, new = _tree(reference), _tree(direct)
    assert list(ref) == list(new)
    for name, expected in ref.items():
        got = new[name]
        if expected[0] != "dataset":
            assert got == expected, name
            continue
        assert got[1] == expected[1], f"{name}: attributes"
        assert got[2] == expected[2], f"{name}: HDF5 type"  # H5Tequal
        assert (got[3], got[4]) == (expected[3], expected[4]), name
        np.testing.assert_array_equal(got[5], expected[5], err_msg=name)
        assert expected[6] is not None and got[6] is None, f"{name}: chunks"
    meta = [json.loads((p / "data" / "metadata.json").read_text()) for p in (reference, direct)]
    for m in meta:  # its own id; the direct file is smaller (no chunk padding)
        m.pop("dataset_id"), m.pop("dataset_size")
    assert meta[0] == meta[1]


def _episodes(dataset_id: str) -> list[dict]:
    """Every field of every episode as Minari reads it (``path -> array``), ids and seeds."""
    dataset = minari.load_dataset(dataset_id)

    def flat(prefix, value, out):
        if isinstance(value, dict):
            for key, item in value.items():
                flat(f"{prefix}/{key}", item, out)
        else:
            out[prefix] = np.asarray(value)

    meta = dataset.storage.get_episode_metadata(range(dataset.total_episodes))
    episodes = []
    for ep, m in zip(dataset.iterate_episodes(), meta, strict=True):
        out = {"id": np.asarray(ep.id), "seed": np.asarray(m.get("seed", -1))}
        for name in ("observations", "actions", "rewards", "terminations", "truncations"):
            flat(name, getattr(ep, name), out)
        flat("infos", ep.infos, out)
        episodes.append(out)
    return episodes


@pytest.mark.parametrize("continuous", [False, True])
def test_collect_writes_the_dataset_minari_writes(toy, datasets_path, continuous):
    """Same episodes, both writers, several chunks: equal files and equal episodes through
    Minari and through mmrl's reader (every observation key, actions, rewards, ends, and the
    infos: instruction, labels, reward terms, expert action, behaviour log-probability)."""
    args = {"policy": "expert", "episodes": 8, "epsilon": 0.3, "seed": 5, "flush_every": 3}
    paths = {}
    for writer in ("minari", "direct"):
        venv = BatchedVecEnv(toy.ToySimulator(3, continuous=continuous))
        result = collect(dataset_id=f"toy/{writer}-v0", venv=venv, hdf5_writer=writer, **args)
        paths[writer] = result.path
    _assert_same_files(paths["minari"], paths["direct"])

    reference, direct = _episodes("toy/minari-v0"), _episodes("toy/direct-v0")
    assert len(direct) == 8
    keys = {"observations/camera", "observations/lidar", "observations/text",
            "observations/state", "infos/instruction", "infos/expert_action",
            "infos/behaviour_log_prob", "infos/labels/goal_index",
            "infos/rewards/goal"}  # fmt: skip
    assert keys <= set(direct[0])
    for ep_ref, ep_new in zip(reference, direct, strict=True):
        assert list(ep_ref) == list(ep_new)
        for key, value in ep_ref.items():
            np.testing.assert_array_equal(ep_new[key], value, err_msg=key)
    assert minari.load_dataset("toy/direct-v0").total_steps == sum(
        len(ep["rewards"]) for ep in reference
    )

    offline = [load_offline_data(f"toy/{w}-v0") for w in ("minari", "direct")]
    for name in ("actions", "bc_actions", "rewards", "terminations", "labels", "instruction_ids"):
        a, b = getattr(offline[0], name), getattr(offline[1], name)
        for key in a if isinstance(a, dict) else [None]:
            assert th.equal(a[key] if key else a, b[key] if key else b), name
    for key, value in offline[0].observations.items():
        assert th.equal(value, offline[1].observations[key]), key
    assert offline[0].instructions == offline[1].instructions
    logged = [load_logged_data(f"toy/{w}-v0") for w in ("minari", "direct")]
    np.testing.assert_array_equal(logged[0].behaviour_log_prob, logged[1].behaviour_log_prob)
    np.testing.assert_array_equal(logged[0].expert_actions, logged[1].expert_actions)


def _buffer(t: int, rng: np.random.Generator, **fields) -> EpisodeBuffer:
    obs = {"camera": rng.integers(0, 255, (t + 1, 4, 4, 3), dtype=np.uint8),
           "text": rng.integers(0, 9, (t + 1, 5))}  # fmt: skip
    infos = {
        "instruction": [f"go {i}" for i in range(t + 1)],
        "names": np.array(["ä"] * (t + 1), dtype=object),  # non-ASCII, an object array
        "größe": {"x": rng.random(t + 1).astype(np.float32)},  # a non-ASCII group name
        "empty": {},
        "flag": np.zeros(t + 1, bool),
    }
    return EpisodeBuffer(
        observations=obs,
        actions=rng.random((t, 2)).astype(np.float32),
        rewards=rng.random(t),
        terminations=np.eye(1, t, t - 1, dtype=bool)[0],
        truncations=np.zeros(t, bool),
        infos=infos,
        **fields,
    )


def test_seeds_options_and_odd_names_as_minari_writes_them(datasets_path):
    """Hand-made buffers (seeds, nested options, non-ASCII and empty groups, object strings)
    written by both writers in two chunks: the same file."""
    from gymnasium import spaces

    obs_space = spaces.Dict({"camera": spaces.Box(0, 255, (4, 4, 3), np.uint8),
                             "text": spaces.Box(0, 9, (5,), np.int64)})  # fmt: skip
    act_space = spaces.Box(0, 1, (2,), np.float32)
    paths = {}
    for writer in ("minari", "direct"):
        rng = np.random.default_rng(0)
        chunks = [
            [_buffer(3, rng, seed=7), _buffer(1, rng, options={"a": 1, "b": {"c": 2.5}})],
            [_buffer(5, rng, seed=8, options={"mode": "x"}), _buffer(2, rng)],
        ]
        out = AtomicDatasetWriter(f"hand/{writer}-v0", None, obs_space, act_space,
                                  hdf5_writer=writer, author="t", jpeg_encoding=False)  # fmt: skip
        for chunk in chunks:
            out.write(chunk)
        paths[writer] = out.commit({"mmrl": {}}, force=False)
    _assert_same_files(paths["minari"], paths["direct"])
    dataset = minari.load_dataset("hand/direct-v0")
    assert dataset.total_episodes == 4 and dataset.total_steps == 11
    meta = list(dataset.storage.get_episode_metadata(range(4)))
    assert [m.get("seed") for m in meta] == [7, None, 8, None]
    assert meta[1]["options"] == {"a": 1, "b": {"c": 2.5}}


def test_what_the_direct_writer_leaves_to_minari(datasets_path):
    """Fields it does not write as Minari would are declined, before anything is written;
    JPEG-encoded datasets go through Minari's encoder, and collect still makes one dataset."""
    rng = np.random.default_rng(0)
    assert episode_nodes(_buffer(2, rng)) is not None
    assert episode_nodes(_buffer(2, rng, id=0)) is None  # appends to an existing episode
    odd_fields = ((np.zeros(3), np.ones(3)), np.float32(1.0), [1, 2, 3], np.zeros((0, 2)),
                  np.array(["a", "b"]))  # fmt: skip
    for odd in odd_fields:
        ep = _buffer(2, rng)
        ep.infos["odd"] = odd
        assert episode_nodes(ep) is None, odd

    class JpegStorage:
        FORMAT, jpeg_encoding = "hdf5", True

    assert append_episodes(JpegStorage(), [_buffer(2, rng)]) is False


def test_jpeg_datasets_fall_back_to_minari(toy, datasets_path):
    for writer in ("minari", "direct"):
        collect(policy="expert", episodes=3, dataset_id=f"toy/jpeg-{writer}-v0", jpeg=True,
                venv=BatchedVecEnv(toy.ToySimulator(2)), hdf5_writer=writer)  # fmt: skip
    a, b = (_episodes(f"toy/jpeg-{w}-v0") for w in ("minari", "direct"))
    for ea, eb in zip(a, b, strict=True):
        for path, values in ea.items():
            np.testing.assert_array_equal(values, eb[path], err_msg=path)


def test_unknown_writer_is_refused(toy, datasets_path):
    from mmrl.config import ConfigError

    with pytest.raises(ConfigError, match="hdf5_writer must be one of direct, minari"):
        collect(policy="expert", episodes=1, dataset_id="toy/x-v0", hdf5_writer="fast",
                venv=BatchedVecEnv(toy.ToySimulator(1)))  # fmt: skip
