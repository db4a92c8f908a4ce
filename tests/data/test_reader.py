"""The one Minari reader: both views of a dataset refuse the same damage with the same line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmrl.data import DatasetError, collect, load_logged_data, load_offline_data, open_dataset
from mmrl.envs.vec_env import BatchedVecEnv

VIEWS = {"transitions": load_offline_data, "episodes": load_logged_data}


@pytest.fixture
def toy_dataset(toy, datasets_path) -> str:
    collect(policy="expert", episodes=4, dataset_id="toy/reader-v0", epsilon=0.5, seed=2,
            venv=BatchedVecEnv(toy.ToySimulator(2)))  # fmt: skip
    return "toy/reader-v0"


def _errors(dataset_id: str) -> dict[str, DatasetError]:
    """The error each view raises on ``dataset_id``."""
    found = {}
    for name, view in VIEWS.items():
        with pytest.raises(DatasetError) as err:
            view(dataset_id)
        found[name] = err.value
    return found


def _same_one_line_error(dataset_id: str, match: str) -> str:
    errors = _errors(dataset_id)
    transitions, episodes = errors["transitions"], errors["episodes"]
    assert type(transitions) is type(episodes) is DatasetError
    assert str(transitions) == str(episodes)
    message = str(transitions)
    assert "\n" not in message and dataset_id in message
    assert match in message, message
    return message


def test_missing_dataset(datasets_path):
    message = _same_one_line_error("toy/none-v0", "not found in")
    assert "mmrl collect --dataset-id toy/none-v0" in message
    _same_one_line_error("toy/no-version", "malformed dataset id")


def _hdf5(datasets_path, dataset_id):
    return datasets_path / dataset_id / "data" / "main_data.hdf5"


def test_truncated_hdf5_file(toy_dataset, datasets_path):
    path = _hdf5(datasets_path, toy_dataset)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    _same_one_line_error(toy_dataset, "is truncated or corrupt")


def test_corrupt_hdf5_file(toy_dataset, datasets_path):
    path = _hdf5(datasets_path, toy_dataset)
    raw = path.read_bytes()
    path.write_bytes(raw[:512] + bytes(len(raw) - 512))
    message = _same_one_line_error(toy_dataset, "is truncated or corrupt")
    assert "lists 4 episodes" not in message  # damage, not a short index


def test_index_claiming_more_episodes_than_stored(toy_dataset, datasets_path):
    meta_path = datasets_path / toy_dataset / "data" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    assert meta["total_episodes"] == 4
    meta["total_episodes"] = 6
    meta_path.write_text(json.dumps(meta))
    message = _same_one_line_error(toy_dataset, "is truncated or corrupt")
    assert "lists 6 episodes" in message
    # The first episodes are intact: reading only those works in both views.
    assert load_offline_data(toy_dataset, max_episodes=4).num_episodes == 4
    assert load_logged_data(toy_dataset, max_episodes=4).n_episodes == 4


def test_unreadable_metadata(toy_dataset, datasets_path):
    (datasets_path / toy_dataset / "data" / "metadata.json").write_text("{not json")
    _same_one_line_error(toy_dataset, "is unreadable")


def test_unreadable_file(toy_dataset, datasets_path):
    path = _hdf5(datasets_path, toy_dataset)
    path.unlink()
    path.mkdir()  # a folder where the file should be: h5py cannot open it
    message = _same_one_line_error(toy_dataset, "is unreadable")
    assert message.endswith("IsADirectoryError: Is a directory")


def test_both_views_read_the_same_steps(toy_dataset):
    transitions = load_offline_data(toy_dataset)
    episodes = load_logged_data(toy_dataset)
    reader = open_dataset(toy_dataset)
    assert len(transitions) == episodes.n_transitions == reader.total_steps
    assert transitions.num_episodes == episodes.n_episodes == reader.n_episodes == 4
    np.testing.assert_array_equal(transitions.actions.numpy(), episodes.actions)
    np.testing.assert_array_equal(transitions.rewards.numpy(), episodes.rewards)
    # The episode view keeps final observations: state_idx picks the transitions' states.
    lidar = episodes.observations["lidar"][episodes.state_idx]
    np.testing.assert_array_equal(transitions.observations["lidar"].numpy(), lidar)
    camera = np.moveaxis(episodes.observations["camera"][episodes.state_idx], -1, 1)
    np.testing.assert_array_equal(transitions.observations["camera"].numpy(), camera)


def test_max_episodes_must_be_positive(toy_dataset):
    with pytest.raises(DatasetError, match="max_episodes must be >= 1, got 0"):
        open_dataset(toy_dataset, max_episodes=0)


def test_the_episode_view_knows_the_time_limit_the_data_was_collected_under(datasets_path):
    """FQE cuts returns at ``time_limit`` (``--fqe-horizon auto``): the env spec Minari
    records gives it, the env's own ``max_episode_steps`` kwarg first (Driving's simulator
    truncates there), and data without a spec has none."""
    from mmrl.config import load_env_preset
    from mmrl.data.episodes import _time_limit

    collect("navigation", "expert", episodes=2, dataset_id="toy/nav-limit-v0", n_envs=2)
    assert load_logged_data("toy/nav-limit-v0").time_limit == 100
    env = load_env_preset("driving")
    env.kwargs = {**env.kwargs, "max_episode_steps": 40}
    collect(env, "expert", episodes=2, dataset_id="toy/driving-limit-v0", n_envs=2)
    data = load_logged_data("toy/driving-limit-v0")
    assert data.time_limit == 40 and data.episode_lengths().max() <= 40
    assert _time_limit('{"max_episode_steps": 7, "kwargs": {}}') == 7
    for spec in (None, "not json", "[]", '{"max_episode_steps": null}', '{"max_episode_steps": 0}'):
        assert _time_limit(spec) is None


def test_the_time_limit_of_several_datasets_is_theirs_only_when_they_share_it(
    toy_dataset, datasets_path
):
    from mmrl.data.episodes import concat_logged_data

    a, b = load_logged_data(toy_dataset), load_logged_data(toy_dataset)
    a.time_limit = b.time_limit = 50
    assert concat_logged_data([a, b]).time_limit == 50
    b.time_limit = 60
    assert concat_logged_data([a, b]).time_limit is None
