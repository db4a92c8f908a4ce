"""Fixtures of the data tests: a private Minari datasets folder (the toy task: ../conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def datasets_path(tmp_path, monkeypatch) -> Path:
    """A fresh ``MINARI_DATASETS_PATH`` for the test."""
    path = tmp_path / "datasets"
    path.mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(path))
    return path
