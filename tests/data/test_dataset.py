"""Loading datasets into contiguous tensors, and refusing bad ones with clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from mmrl.data import (
    DatasetError,
    check_spaces,
    collect,
    load_offline_data,
    policy_observation_space,
)
from mmrl.envs.vec_env import BatchedVecEnv
from mmrl.errors import SpaceMismatchError


@pytest.fixture
def toy_dataset(toy, datasets_path) -> str:
    collect(policy="expert", episodes=8, dataset_id="toy/data-v0", epsilon=0.5, seed=1,
            venv=BatchedVecEnv(toy.ToySimulator(3)))  # fmt: skip
    return "toy/data-v0"


def test_offline_data_is_contiguous_in_the_policy_layout(toy_dataset):
    import minari

    data = load_offline_data(toy_dataset)
    dataset = minari.load_dataset(toy_dataset)
    assert len(data) == dataset.total_steps
    assert data.num_episodes == 8
    camera = data.observations["camera"]
    assert camera.dtype == th.uint8 and camera.shape == (len(data), 3, 16, 16)
    assert camera.is_contiguous()
    assert data.observation_space["camera"].shape == (3, 16, 16)  # as VecTransposeImage
    assert data.dataset_observation_space["camera"].shape == (16, 16, 3)
    # Row order: episode by episode, observation t of each (never the final one).
    first = dataset[0]
    t = len(first)
    np.testing.assert_array_equal(
        camera[:t].numpy(), np.moveaxis(first.observations["camera"][:t], -1, 1)
    )
    np.testing.assert_array_equal(data.actions[:t].numpy(), first.actions)
    np.testing.assert_array_equal(data.labels["distance"][:t].numpy(),
                                  first.infos["labels"]["distance"][:t])  # fmt: skip
    assert data.labels["goal_index"].dtype == th.int64
    # BC targets are the expert's choices even where epsilon noise acted instead.
    np.testing.assert_array_equal(data.bc_actions[:t].numpy(), first.infos["expert_action"][:t])
    assert set(data.instructions) == {"go left", "go right"}
    assert data.instructions[int(data.instruction_ids[0])] == first.infos["instruction"][0].decode()


def test_split_is_by_episode(toy_dataset):
    data = load_offline_data(toy_dataset)
    train, val = data.split(0.25, seed=0)
    assert len(train) + len(val) == len(data)
    train_eps = set(data.episode[train].tolist())
    val_eps = set(data.episode[val].tolist())
    assert not train_eps & val_eps and len(val_eps) == 2
    assert len(data.split(0.0)[1]) == 0


def test_batch_gathers_rows(toy_dataset):
    data = load_offline_data(toy_dataset)
    rows = th.tensor([5, 0, 3])
    batch = data.batch(rows)
    for key, value in batch.items():
        assert th.equal(value, data.observations[key][rows])


def test_missing_and_malformed_ids(datasets_path):
    with pytest.raises(DatasetError, match=r"'toy/none-v0' not found in .*mmrl collect"):
        load_offline_data("toy/none-v0")
    with pytest.raises(DatasetError, match="malformed dataset id"):
        load_offline_data("toy/no-version")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_empty_dataset(datasets_path):
    import minari

    space = spaces.Dict(x=spaces.Box(0, 1, (2,), np.float32))
    minari.create_dataset_from_buffers(
        "toy/empty-v0", [], observation_space=space, action_space=spaces.Discrete(2)
    )
    with pytest.raises(DatasetError, match="has no episodes"):
        load_offline_data("toy/empty-v0")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_truncated_or_corrupt_file(toy_dataset, datasets_path, damage):
    path = datasets_path / toy_dataset / "data" / "main_data.hdf5"
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    else:
        path.write_bytes(raw[:512] + bytes(len(raw) - 512))
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        load_offline_data(toy_dataset)


def test_corrupt_metadata(toy_dataset, datasets_path):
    (datasets_path / toy_dataset / "data" / "metadata.json").write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable"):
        load_offline_data(toy_dataset)


def test_space_check_names_the_differing_keys():
    """The old names (check_spaces) are mmrl.spaces.check: one SpaceMismatchError."""
    box = spaces.Box(0, 255, (16, 16, 3), np.uint8)
    env = spaces.Dict(camera=box, lidar=spaces.Box(0, 1, (8,), np.float32))
    data = spaces.Dict(camera=spaces.Box(0, 255, (8, 8, 3), np.uint8),
                       text=spaces.Box(0, 9, (4,), np.int64))  # fmt: skip
    with pytest.raises(DatasetError) as err:
        check_spaces(env, spaces.Discrete(3), data, spaces.Discrete(4), "dataset d vs env e")
    assert isinstance(err.value, SpaceMismatchError)
    message = str(err.value)
    assert message.startswith("dataset d vs env e: spaces differ: ")
    assert "keys only in the expected: ['lidar']" in message
    assert "keys only in the actual: ['text']" in message
    assert "key 'camera': expected Box(16, 16, 3)" in message and "Box(8, 8, 3)" in message
    assert "action space: expected Discrete(3) vs actual Discrete(4)" in message
    check_spaces(env, spaces.Discrete(3), env, spaces.Discrete(3), "same")  # no error


def test_policy_observation_space_matches_sb3_transpose(toy):
    from stable_baselines3.common.vec_env import VecTransposeImage

    venv = BatchedVecEnv(toy.ToySimulator(1))
    assert (
        policy_observation_space(venv.observation_space)
        == VecTransposeImage(venv).observation_space
    )
