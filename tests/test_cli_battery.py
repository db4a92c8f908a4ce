"""Hostile inputs to every ``mmrl`` command: exit status 2, one line, nothing written (issue 15).

Each case runs the CLI in-process (``mmrl.cli.main``) with an output folder under
``tmp_path`` and asserts that the command exits with status 2, prints exactly one line on
stderr (no ``Traceback``) and leaves nothing in the output folder. The run-config cases are
generated from the typed config (:class:`mmrl.config.RunConfig`): every numeric field given a
negative, a non-numeric and a NaN value, so a field added later is covered automatically.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from mmrl.cli import main
from mmrl.config import RunConfig

#: Fast settings: every case fails before training, these only keep a wrongly accepted
#: case short.
TRAIN = ["train", "--steps", "8", "--n-envs", "2", "--quiet",
         "--set", "agent.ppo.n_steps=4", "--set", "agent.ppo.batch_size=8"]  # fmt: skip

#: Numeric run-config fields where a negative value is meaningful (none today).
NEGATIVE_ALLOWED: set[str] = set()


def _numeric_fields(cls: type, prefix: str = "") -> list[tuple[str, type]]:
    """Dotted paths of every int/float field of a config dataclass tree."""
    found = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        if typing.get_origin(tp) in (list, dict):
            continue
        args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        path = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(args[0]):
            found += _numeric_fields(args[0], f"{path}.")
        elif args[0] in (int, float):
            found.append((path, args[0]))
    return found


def _config_cases() -> list[tuple[str, list[str]]]:
    cases = []
    for path, tp in _numeric_fields(RunConfig):
        if path not in NEGATIVE_ALLOWED:
            cases.append((f"{path}=-1", ["--set", f"{path}=-1"]))
        cases.append((f"{path}=abc", ["--set", f"{path}=abc"]))
        if tp is float:
            cases.append((f"{path}=nan", ["--set", f"{path}=.nan"]))
    return cases


TRAIN_CASES = [
    *_config_cases(),
    ("env kwarg out of range", ["--set", "env.kwargs.traffic_density=5"]),
    ("env kwarg unknown", ["--set", "env.kwargs.bogus=1"]),
    ("env kwarg wrong type", ["--set", "env.kwargs.traffic_density=abc"]),
    ("eval kwarg bad", ["--set", "env.eval_kwargs.instruction_split=nope"]),
    ("unknown fusion", ["--set", "agent.extractor.fusion=nope"]),
    ("unknown encoder", ["--set", "agent.extractor.encoders={camera: nope}"]),
    ("bad fusion kwargs", ["--set", "agent.extractor.fusion_kwargs={bogus: 1}"]),
    ("features_dim 0", ["--set", "agent.extractor.features_dim=0"]),
    ("modality_dropout 1", ["--set", "agent.extractor.modality_dropout=1"]),
    ("n_epochs 0", ["--set", "agent.ppo.n_epochs=0"]),
    ("gamma 5", ["--set", "agent.ppo.gamma=5"]),
    ("clip_range 0", ["--set", "agent.ppo.clip_range=0"]),
    ("target_kl 0", ["--set", "agent.ppo.target_kl=0"]),
    ("policy pi [0]", ["--set", "agent.policy.pi=[0]"]),
    ("policy vf [-3]", ["--set", "agent.policy.vf=[-3]"]),
    ("normalize missing key", ["--set", "agent.normalize.obs_keys=[nope]"]),
    ("normalize int key", ["--set", "agent.normalize.obs_keys=[text]"]),
    ("torch_threads huge", ["--set", "torch_threads=99999"]),
    ("seed negative", ["--seed", "-1"]),
    ("seed too big", ["--seed", str(2**32)]),
    ("learning_rate inf", ["--set", "agent.ppo.learning_rate=.inf"]),
]


def _assert_one_line_error(capsys, argv: list[str], out: Path) -> None:
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, (argv, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("mmrl "), err
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


@pytest.mark.parametrize(("name", "extra"), TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_refuses_bad_config_before_writing(tmp_path, capsys, name, extra):
    out = tmp_path / "run"
    _assert_one_line_error(capsys, [*TRAIN, *extra, "--out", str(out)], out)


def test_config_cases_cover_every_numeric_field():
    paths = {path for path, _ in _numeric_fields(RunConfig)}
    assert {"agent.ppo.gamma", "torch_threads", "agent.init.encoder_lr_scale"} <= paths
