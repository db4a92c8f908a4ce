"""Fixtures of the pretraining tests: a toy dataset and one pretrained checkpoint per module."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mmrl.envs.vec_env import BatchedVecEnv


@pytest.fixture(scope="module")
def setup(toy, tmp_path_factory):
    """A datasets folder with an expert toy dataset, toy presets and a pretrained checkpoint.

    ``MINARI_DATASETS_PATH`` points at the folder for the whole module.
    """
    from mmrl.data import collect
    from mmrl.pretrain import pretrain

    root = tmp_path_factory.mktemp("pretrain")
    env, agent = toy.write_presets(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root / "datasets"))
        collect(policy="expert", episodes=40, dataset_id="toy/expert-v0", epsilon=0.2, seed=0,
                venv=BatchedVecEnv(toy.ToySimulator(8)))  # fmt: skip
        result = pretrain(
            "toy/expert-v0", agent, env=env, epochs=2, batch_size=64, out=root / "enc.pt",
            val_fraction=0.2, verbose=0,
        )  # fmt: skip
        yield SimpleNamespace(root=root, env=env, agent=agent, dataset="toy/expert-v0",
                              checkpoint=result.out, result=result)  # fmt: skip
