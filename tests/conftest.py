"""Fixtures shared across the test suite."""

import pytest
import torch as th


@pytest.fixture
def one_torch_thread():
    """Tiny models: one intra-op thread is faster and steadier on a shared 2-core CPU."""
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)
