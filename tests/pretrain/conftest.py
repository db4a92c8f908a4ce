"""Fixtures of the pretraining tests: a toy dataset and one pretrained checkpoint per module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from mmrl.envs.vec_env import BatchedVecEnv


def load_toy_module():
    """Imports ``tests/data/toy_env.py`` once (tests run with ``--import-mode=importlib``)."""
    name = "mmrl_tests_toy_env"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "data" / "toy_env.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    module = sys.modules[name]
    module.register_toy()
    return module


@pytest.fixture(scope="session")
def toy():
    """The toy-task module (``ToySimulator``, ``ToyEnv``, ``write_presets`` ...)."""
    return load_toy_module()


@pytest.fixture(scope="module")
def setup(toy, tmp_path_factory, _one_torch_thread):
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


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread: on a shared 2-core machine, OpenMP threads spin-waiting on each
    other under oversubscription make small ops orders of magnitude slower, and one thread
    keeps CPU convolution backward passes bit-for-bit deterministic."""
    import torch as th

    previous = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(previous)
