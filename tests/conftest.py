"""Fixtures shared across the test suite."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch as th


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread for every test module: the models are tiny, OpenMP threads
    spin-waiting on each other on a shared 2-core machine make small ops orders of magnitude
    slower, and one thread keeps CPU convolution backward passes bit-for-bit deterministic."""
    previous = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(previous)


def load_toy_module():
    """Imports ``tests/data/toy_env.py`` once (tests run with ``--import-mode=importlib``)."""
    name = "mmrl_tests_toy_env"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent / "data" / "toy_env.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    module = sys.modules[name]
    module.register_toy()
    return module


@pytest.fixture(scope="session")
def toy():
    """The toy-task module of ``tests/data/toy_env.py`` (``ToySimulator``, ``ToyEnv``,
    ``write_presets`` ...), registered with Gymnasium."""
    return load_toy_module()


@pytest.fixture(scope="session")
def toy_run(toy, tmp_path_factory):
    """A tiny finished ``mmrl train`` run folder on the toy task (64 steps, two periodic
    evaluations, two checkpoints) whose run normalizes the ``state`` observation."""
    from mmrl.train import train

    root = tmp_path_factory.mktemp("toy-run")
    env, agent = toy.write_presets(root)
    overrides = ["eval_freq=32", "eval_episodes=2", "checkpoint_freq=32",
                 "agent.normalize.obs_keys=[state]", "agent.extractor.features_dim=16"]  # fmt: skip
    return train(env, agent, steps=64, seed=0, out=root / "run", verbose=0, device="cpu",
                 overrides=overrides)  # fmt: skip
