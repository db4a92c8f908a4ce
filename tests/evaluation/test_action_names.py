"""Discrete actions drawn by name on evaluation videos and replays (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from mmrl.data.reader import DatasetReader, Episode
from mmrl.envs.driving import DrivingSimulator, DrivingSimulatorV0
from mmrl.envs.driving.simulator import FASTER, IDLE, LANE_LEFT, LANE_RIGHT, SLOWER
from mmrl.envs.navigation import NavigationSimulator, NavigationSimulatorV0
from mmrl.envs.vec_env import BatchedVecEnv
from mmrl.evaluation import replay
from mmrl.evaluation.video import VideoRecorder, _Step, discrete_action_names, format_action

SIMULATORS = [DrivingSimulator, DrivingSimulatorV0, NavigationSimulator, NavigationSimulatorV0]


def test_format_action_with_names():
    names = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")
    assert format_action(np.int64(3), names) == "3 FASTER"
    assert format_action(np.array(0), names) == "0 LANE_LEFT"
    assert format_action(np.int64(7), names) == "7"  # outside the names: the number alone
    assert format_action(np.int64(3)) == "3"
    # Continuous actions stay numbers whatever names are given.
    assert format_action(np.array([0.2, -0.5], np.float32), names) == "[0.20, -0.50]"


@pytest.mark.parametrize("simulator", SIMULATORS, ids=lambda c: c.__name__)
def test_discrete_simulators_name_every_action(simulator):
    sim = simulator(1)
    assert isinstance(sim.action_space, spaces.Discrete)
    assert len(simulator.action_names) == sim.action_space.n
    assert discrete_action_names(sim.action_names, sim.action_space) == simulator.action_names
    continuous = simulator(1, continuous=True)
    assert discrete_action_names(continuous.action_names, continuous.action_space) is None


def test_names_follow_the_action_ids():
    names = DrivingSimulator.action_names
    ids = {"LANE_LEFT": LANE_LEFT, "IDLE": IDLE, "LANE_RIGHT": LANE_RIGHT, "FASTER": FASTER}
    ids["SLOWER"] = SLOWER
    assert all(names[i] == name for name, i in ids.items())
    assert NavigationSimulator.action_names == ("FORWARD", "LEFT", "RIGHT", "STOP")


def test_video_frame_text_names_the_driving_action():
    recorder = VideoRecorder("eval.mp4", n_videos=1)
    recorder.wrap(BatchedVecEnv(DrivingSimulator(1)))
    step = _Step(obs={}, action=np.int64(FASTER), reward=0.1, instruction="")
    assert "action 3 FASTER" in recorder.frame_lines(step, 0, 0, 0.1, 1)[1]
    recorder.wrap(BatchedVecEnv(DrivingSimulator(1, continuous=True)))
    step = _Step(obs={}, action=np.array([0.2, -0.5], np.float32), reward=0.1, instruction="")
    assert "action [0.20, -0.50]" in recorder.frame_lines(step, 0, 0, 0.1, 1)[1]


def _reader(env_id: str, action_space: spaces.Space) -> DatasetReader:
    return DatasetReader(
        dataset_id="x/y-v0",
        path=None,  # type: ignore[arg-type]
        observation_space=spaces.Dict({}),
        action_space=action_space,
        lengths=[1],
        metadata={"mmrl": {"env_id": env_id}},
        _dataset=None,
    )


def test_replay_names_actions_from_the_logged_env_id():
    assert replay._action_names(_reader("mmrl/Driving-v1", spaces.Discrete(5)))[3] == "FASTER"
    assert replay._action_names(_reader("mmrl/Navigation-v0", spaces.Discrete(4)))[0] == "FORWARD"
    box = spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert replay._action_names(_reader("mmrl/DrivingContinuous-v1", box)) is None
    assert replay._action_names(_reader("custom", spaces.Discrete(5))) is None
    episode = Episode(
        index=0,
        observations={},
        actions=np.array([FASTER]),
        rewards=np.array([0.5]),
        terminations=np.array([True]),
        truncations=np.array([False]),
        infos={},
    )
    lines = replay.frame_lines(episode, 0, 1, 0, 0.5, DrivingSimulator.action_names)
    assert "action 3 FASTER" in lines[1] and lines[-1] == "terminated"
    assert "action 3 " in replay.frame_lines(episode, 0, 1, 0, 0.5)[1]
