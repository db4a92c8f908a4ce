"""``mmrl replay``: logged dataset episodes as a browser-playable video (issue 16)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium import spaces

from mmrl.cli import main
from mmrl.data import collect, open_dataset
from mmrl.envs.vec_env import BatchedVecEnv
from mmrl.errors import ConfigError
from mmrl.evaluation.encoding import decode_video
from mmrl.evaluation.replay import parse_episodes, replay_dataset

DATASET = "toy/replay-v0"


@pytest.fixture(scope="module")
def minari_root(tmp_path_factory, toy):
    """Five expert episodes of the toy task (camera, lidar, text, state) in a private folder."""
    root = tmp_path_factory.mktemp("minari")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root))
    collect(policy="expert", episodes=5, dataset_id=DATASET, epsilon=0.3, seed=0,
            venv=BatchedVecEnv(toy.ToySimulator(2)))  # fmt: skip
    yield root
    mp.undo()


@pytest.fixture
def datasets(minari_root, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_root))
    return minari_root


def _lengths() -> list[int]:
    return open_dataset(DATASET).lengths


def test_two_episodes_replay_to_h264_with_one_frame_per_step(datasets, tmp_path, capsys):
    out = tmp_path / "replay.mp4"
    assert main(["replay", DATASET, "--episodes", "0,2", "--video", str(out), "--fps", "10"]) == 0
    lengths = _lengths()
    codec, frames = decode_video(out)
    assert codec == "h264"
    # One frame per logged step; the final observation of an episode is not drawn.
    assert len(frames) == lengths[0] + lengths[2]
    assert f"{len(frames)} frames, episodes 0,2" in capsys.readouterr().out
    # The frames are drawn, not blank: camera and lidar panels side by side above the text.
    assert frames[0].shape[1] == 512 and frames[0].std() > 10


def test_first_n_episodes_and_the_instruction_drawn(datasets, tmp_path):
    result = replay_dataset(DATASET, tmp_path / "r.gif", episodes="3")
    assert result.episodes == [0, 1, 2]
    assert result.codec == "gif"
    assert result.frames == sum(_lengths()[:3])
    _, frames = decode_video(result.path)
    assert len(frames) == result.frames


def test_instruction_falls_back_to_decoding_the_text_tokens(datasets):
    from mmrl.evaluation.replay import _instructions

    episode = next(open_dataset(DATASET, 1).episodes())
    logged = _instructions(episode)
    assert set(logged) <= {"go left", "go right"} and len(logged) == len(episode) + 1
    episode.infos.pop("instruction")
    assert _instructions(episode) == logged


def test_parse_episodes():
    assert parse_episodes("2", 5) == [0, 1]
    assert parse_episodes("4,0", 5) == [4, 0]
    assert parse_episodes("3,", 5) == [3]
    for bad in ("0", "6", "1,5", "-1,", "a", ""):
        with pytest.raises(ConfigError, match="episodes"):
            parse_episodes(bad, 5)


def _write_state_only_dataset(dataset_id: str) -> None:
    import minari
    from minari.data_collector import EpisodeBuffer

    space = spaces.Dict({"state": spaces.Box(-1, 1, (2,), np.float32)})
    episode = EpisodeBuffer(
        id=0,
        observations={"state": np.zeros((3, 2), np.float32)},
        actions=np.zeros(2, np.int64),
        rewards=np.zeros(2),
        terminations=np.array([False, True]),
        truncations=np.array([False, False]),
        infos={},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers(
            dataset_id, [episode], observation_space=space, action_space=spaces.Discrete(2),
            algorithm_name="zeros",
        )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["toy/missing-v0", "--video", "{out}"], "toy/missing-v0"),
        ([DATASET, "--episodes", "0,9", "--video", "{out}"], "--episodes"),
        ([DATASET, "--episodes", "9", "--video", "{out}"], "--episodes"),
        ([DATASET, "--video", "{dir}/out.avi"], ".avi"),
        ([DATASET, "--video", "{out}", "--fps", "0"], "--fps"),
        (["toy/state-v0", "--video", "{out}"], "no camera"),
    ],
)
def test_bad_inputs_exit_2_with_one_line_and_write_nothing(datasets, tmp_path, capsys, args,
                                                          message):  # fmt: skip
    if "toy/state-v0" in args:
        _write_state_only_dataset("toy/state-v0")
    out = tmp_path / "out.mp4"
    argv = ["replay"] + [a.format(out=out, dir=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mmrl replay: error:") and message in err
    assert not any(p.suffix in (".mp4", ".webm", ".avi") for p in tmp_path.iterdir())
