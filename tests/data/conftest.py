"""Fixtures of the data tests: the toy task and a private Minari datasets folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


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


@pytest.fixture
def datasets_path(tmp_path, monkeypatch) -> Path:
    """A fresh ``MINARI_DATASETS_PATH`` for the test."""
    path = tmp_path / "datasets"
    path.mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(path))
    return path


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
