"""Simulators declare the names of their integer labels; evaluation reads them through the env."""

from __future__ import annotations

import numpy as np
import pytest

import mmrl
from mmrl.evaluation.rollouts import env_label_names

IDS = ["mmrl/Driving-v1", "mmrl/Driving-v0", "mmrl/Navigation-v1", "mmrl/Navigation-v0"]


@pytest.mark.parametrize("env_id", IDS)
def test_declared_label_names_name_the_labels_the_env_reports(env_id):
    venv = mmrl.make_vec_env(env_id, 4, seed=0)
    try:
        names = env_label_names(venv)
        assert names, f"{env_id} declares no label names"
        assert names == venv.get_attr("label_names", indices=[0])[0]
        venv.reset()
        seen: dict[str, set[int]] = {key: set() for key in names}
        for _ in range(3):
            actions = np.array([venv.action_space.sample() for _ in range(venv.num_envs)])
            _, _, _, infos = venv.step(actions)
            for info in infos:
                for key in names:
                    seen[key].add(int(info["labels"][key]))
        for key, values in seen.items():
            # -1: the label does not apply to this episode (Driving's NO_ARG).
            assert values and all(-1 <= v < len(names[key]) for v in values), (key, values)
    finally:
        venv.close()


def test_names_come_from_the_simulator_not_the_env_id(toy):
    """A simulator with a Driving id but its own labels gets its own names only."""
    from mmrl.envs.vec_env import BatchedVecEnv

    class Named(toy.ToySimulator):
        env_id = "mmrl/Driving-v1"
        label_names = {"goal_index": ("left", "right")}

    assert env_label_names(BatchedVecEnv(Named(1))) == {"goal_index": ("left", "right")}
