"""Hostile inputs to every ``mmrl`` command: exit status 2, one line, nothing written (issue 15).

Each case runs the CLI in-process (``mmrl.cli.main``) with an output folder under
``tmp_path`` and asserts that the command exits with status 2, prints exactly one line on
stderr (no ``Traceback``) and leaves nothing in the output folder. The run-config cases are
generated from the typed config (:class:`mmrl.config.RunConfig`): every numeric field given a
negative, a non-numeric and a NaN value, so a field added later is covered automatically.
"""

from __future__ import annotations

import dataclasses
import os
import typing
import zipfile
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
    ("workers beyond copies", ["--set", "env.n_workers=3"]),  # TRAIN has --n-envs 2
]


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def _assert_one_line_error(capsys, argv: list[str], root: Path) -> str:
    """Runs ``mmrl argv``: status 2, one stderr line, no new file under ``root``."""
    before = _files(root)
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, (argv, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("mmrl "), err
    assert _files(root) == before, sorted(_files(root) - before)
    return lines[0]


@pytest.fixture
def work(tmp_path, monkeypatch):
    """The working folder (relative outputs land here) with a file, folders and bad YAML."""
    monkeypatch.chdir(tmp_path)
    # Minari creates its datasets root on first use; what collect writes inside is watched.
    (tmp_path / "datasets").mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "pic.png").mkdir()
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "latin.yaml").write_bytes("n_envs: 2  # caf\xe9".encode("latin-1"))
    (tmp_path / "dir.yaml").mkdir()
    for run, text in (("emptyrun", b""), ("latinrun", b"\xff\xfe: 1")):
        (tmp_path / run).mkdir()
        (tmp_path / run / "config.yaml").write_bytes(text)
        with zipfile.ZipFile(tmp_path / run / "model.zip", "w") as zf:  # what SB3 files hold
            zf.writestr("data", "{}")
            zf.writestr("policy.pth", b"")
    return tmp_path


@pytest.mark.parametrize(("name", "extra"), TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_refuses_bad_config_before_writing(work, capsys, name, extra):
    _assert_one_line_error(capsys, [*TRAIN, *extra, "--out", "run"], work)


#: Other commands and output paths, each with the text its one line must hold. Paths are
#: relative to the working folder of the ``work`` fixture.
COMMAND_CASES = [
    ("train out is a file", [*TRAIN, "--out", "a_file"], "--out a_file is a file"),
    ("train out below a file", [*TRAIN, "--out", "a_file/run"], "below the file a_file"),
    ("pretrain out is a folder", ["pretrain", "--dataset", "x/y-v0", "--out", "a_dir"],
     "--out a_dir is a folder"),
    ("pretrain out below a file", ["pretrain", "--dataset", "x/y-v0", "--out", "a_file/e.pt"],
     "below the file"),
    ("evaluate json is a folder", ["evaluate", "nowhere", "--json", "a_dir"],
     "--json a_dir is a folder"),
    ("evaluate csv missing folder", ["evaluate", "nowhere", "--csv", "missing/r.csv"],
     "folder missing does not exist"),
    ("evaluate-offline json folder",
     ["evaluate-offline", "nowhere", "--dataset", "x/y-v0", "--json", "a_dir"],
     "--json a_dir is a folder"),
    ("demo out txt", ["demo", "--out", "x.txt"], "an image name is needed"),
    ("demo out missing folder", ["demo", "--out", "missing/x.png"], "does not exist"),
    ("demo out is a folder", ["demo", "--out", "pic.png"], "--out pic.png is a folder"),
    ("demo seed negative", ["demo", "--seed", "-1", "--out", "d.png"], "--seed must be"),
    ("bench out is a file", ["bench", "--out", "a_file", "--steps", "8"], "--out a_file is"),
    ("bench seed-start negative", ["bench", "--out", "b", "--seed-start", "-5"],
     "--seed-start must be"),
    ("collect seed negative",
     ["collect", "--dataset-id", "tests/dummy-v0", "--seed", "-1", "--episodes", "1"],
     "--seed must be"),
    ("pretrain seed negative", ["pretrain", "--dataset", "x/y-v0", "--seed", "-2"],
     "--seed must be"),
    ("env preset empty", [*TRAIN, "--env", "empty.yaml", "--out", "r"], "the file is empty"),
    ("agent preset not UTF-8", [*TRAIN, "--agent", "latin.yaml", "--out", "r"], "not a UTF-8"),
    ("env preset a folder", [*TRAIN, "--env", "dir.yaml", "--out", "r"], "dir.yaml"),
    ("resume empty config", ["train", "--resume", "emptyrun"], "the file is empty"),
    ("resume config not UTF-8", ["train", "--resume", "latinrun"], "not a UTF-8"),
    ("evaluate run with empty config", ["evaluate", "emptyrun"], "the file is empty"),
    ("collect from run with empty config",
     ["collect", "--policy", "emptyrun", "--dataset-id", "tests/dummy-v0", "--episodes", "1"],
     "the file is empty"),
    ("train env empty", [*TRAIN, "--env", "", "--out", "r"], "empty env preset name; available: "),
    ("bench device bad", ["bench", "--out", "b", "--device", "nope"], "--device nope"),
    ("bench cpus-per-task nan", ["bench", "--out", "b", "--cpus-per-task", "nan"],
     "--cpus-per-task must be in (0, 1024]"),
    ("bench cpus-per-task 0", ["bench", "--out", "b", "--cpus-per-task", "0"],
     "--cpus-per-task must be in (0, 1024]"),
    ("pretrain lr inf", ["pretrain", "--dataset", "x/y-v0", "--lr", "inf"], "--lr must be in"),
    ("pretrain lr huge", ["pretrain", "--dataset", "x/y-v0", "--lr", "1e300"], "--lr must be in"),
    ("pretrain weight inf", ["pretrain", "--dataset", "x/y-v0", "--weight", "bc=inf"],
     "--weight values must be finite numbers >= 0"),
    ("pretrain weight negative", ["pretrain", "--dataset", "x/y-v0", "--weight", "bc=-1"],
     "--weight values must be finite numbers >= 0"),
    ("train learning_rate huge", [*TRAIN, "--set", "agent.ppo.learning_rate=1e300"],
     "learning_rate must be in (0, 1]"),
    ("evaluate seed negative", ["evaluate", "nowhere", "--seed", "-3"], "--seed must be"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "argv", "says"), COMMAND_CASES, ids=[c[0] for c in COMMAND_CASES])
def test_commands_refuse_bad_input_before_writing(work, capsys, name, argv, says):
    line = _assert_one_line_error(capsys, argv, work)
    assert says in line, line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_folder_is_refused_before_training(work, capsys):
    (work / "ro").mkdir()
    (work / "ro").chmod(0o555)
    try:
        line = _assert_one_line_error(capsys, [*TRAIN, "--out", "ro/run"], work)
    finally:
        (work / "ro").chmod(0o755)
    assert "cannot write in ro" in line, line


def test_read_only_out_folder_is_refused_as_root_too(work, capsys, monkeypatch):
    """The writability probe creates a file: simulate the refusal a read-only mount gives."""
    import errno
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    line = _assert_one_line_error(capsys, [*TRAIN, "--out", "run"], work)
    assert "--out run: cannot write in . (Read-only file system)" in line, line


def test_config_cases_cover_every_numeric_field():
    paths = {path for path, _ in _numeric_fields(RunConfig)}
    assert {"agent.ppo.gamma", "torch_threads", "agent.init.encoder_lr_scale"} <= paths
    assert "agent.policy.pi" not in paths  # lists have their own cases
