"""One error hierarchy (issue 14): every mmrl error is an ``MmrlError``, at its old import path."""

from __future__ import annotations

import pytest

from mmrl import cli, errors


def test_every_error_class_derives_from_mmrl_error():
    classes = [getattr(errors, name) for name in errors.__all__ if name[0].isupper()]
    assert len(classes) == 8
    for cls in classes:
        assert issubclass(cls, errors.MmrlError), cls
    # Kept from before so ``except ValueError`` / ``except ImportError`` callers still work.
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.CheckpointError, ValueError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.DatasetError, errors.ConfigError)
    assert issubclass(errors.SpaceMismatchError, errors.CheckpointError)
    assert issubclass(errors.WorkerError, RuntimeError)


def test_old_import_locations_are_the_same_classes():
    from mmrl.bench import MissingDependencyError
    from mmrl.checkpoint import CheckpointError
    from mmrl.cli import UsageError
    from mmrl.config import ConfigError
    from mmrl.data import DatasetError
    from mmrl.evaluation.loading import SpaceMismatchError

    assert UsageError is errors.UsageError
    assert ConfigError is errors.ConfigError
    assert CheckpointError is errors.CheckpointError
    assert DatasetError is errors.DatasetError
    assert SpaceMismatchError is errors.SpaceMismatchError
    assert MissingDependencyError is errors.MissingDependencyError


@pytest.mark.parametrize("error", [errors.MmrlError, errors.SpaceMismatchError])
def test_cli_reports_any_mmrl_error_on_one_line_with_status_2(monkeypatch, capsys, error):
    def handler(args):
        raise error("what is wrong; what is allowed")

    monkeypatch.setitem(cli.COMMANDS, "envs", (cli.COMMANDS["envs"][0], "mmrl.cli:_boom"))
    monkeypatch.setattr(cli, "_boom", handler, raising=False)
    assert cli.main(["envs"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "mmrl envs: error: what is wrong; what is allowed"


def test_one_line_names_the_tensors_of_a_state_dict_mismatch():
    """Issue 15: torch's state-dict errors were cut after their first line."""
    import torch as th

    from mmrl.errors import one_line

    saved = th.nn.Sequential(th.nn.Linear(2, 3), th.nn.Linear(3, 4)).state_dict()
    model = th.nn.Sequential(th.nn.Linear(2, 5), th.nn.Linear(5, 4), th.nn.Linear(4, 1))
    try:
        model.load_state_dict(saved)
    except RuntimeError as err:
        text = one_line(err)
    assert "\n" not in text
    assert "missing tensors: 2.weight, 2.bias" in text
    assert "size mismatch for 0.weight: [3, 2] in the file, [5, 2] in the model" in text
    assert "size mismatch for 1.weight: [4, 3] in the file, [4, 5] in the model" in text
