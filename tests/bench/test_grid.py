"""Grid validation, protocol guard and resume, with the synthetic cell function."""

from __future__ import annotations

import json

import pytest

from mmrl.bench import BenchSpec, Cell, InlineBackend, run_bench, validate_spec
from mmrl.bench.grid import (
    CELL_ERROR,
    CELL_RECORD,
    available_fusions,
    cell_dir,
    parse_list,
    prepare_out,
    seeds_from_count,
    split_done,
)
from mmrl.config import ConfigError

ALL_FUSIONS = ["attention", "concat", "film", "gated", "mean", "perceiver"]


def test_cells_enumerate_the_grid_in_order():
    spec = BenchSpec(envs=["driving", "navigation"], fusions=["concat", "mean"], seeds=[0, 1],
                     steps=10)  # fmt: skip
    cells = spec.cells()
    assert len(cells) == 8
    assert cells[0] == Cell("driving", "concat", 0)
    assert cells[-1] == Cell("navigation", "mean", 1)
    assert cells[0].cell_id == "driving-concat-s0" and cells[0].agent == "ppo-concat"
    assert Cell("envs/driving.yaml", "mean", 2).cell_id == "driving-mean-s2"


def test_every_documented_fusion_has_a_recipe():
    assert set(ALL_FUSIONS) <= set(available_fusions())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"envs": ["driving", "drivng"]}, "unknown environment preset 'drivng'; available: "),
        ({"fusions": ["concat", "lstm"]}, "unknown fusion 'lstm'; available: attention, concat"),
        ({"seeds": []}, "--seeds must be >= 1"),
        ({"steps": 0}, "--steps must be >= 1, got 0"),
        ({"envs": []}, "--envs: give at least one"),
        ({"fusions": []}, "--fusions: give at least one"),
        ({"seeds": [1, 1]}, "seeds must be distinct"),
        ({"overrides": ["agent.ppo.nsteps=3"]}, "unknown key 'nsteps'"),
        ({"ablation_episodes": 0}, "ablation episodes must be >= 1"),
    ],
)
def test_bad_grids_are_refused_with_a_clear_message(fake, change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_spec(fake.make_spec(**change))


def test_unknown_names_list_the_available_ones(fake):
    with pytest.raises(ConfigError) as info:
        validate_spec(fake.make_spec(fusions=["nope"]))
    for name in ALL_FUSIONS:
        assert name in str(info.value)
    with pytest.raises(ConfigError) as info:
        validate_spec(fake.make_spec(envs=["nope"]))
    assert "driving" in str(info.value) and "navigation" in str(info.value)


def test_list_and_seed_parsing():
    assert parse_list("driving, navigation,", "envs") == ["driving", "navigation"]
    with pytest.raises(ConfigError, match="more than once"):
        parse_list("concat,concat", "fusions")
    with pytest.raises(ConfigError, match="at least one"):
        parse_list(" , ", "fusions")
    assert seeds_from_count(3) == [0, 1, 2]
    assert seeds_from_count(2, start=5) == [5, 6]
    with pytest.raises(ConfigError, match="--seeds must be >= 1"):
        seeds_from_count(0)


def test_pretrained_checkpoints_must_exist(fake, tmp_path):
    folder = tmp_path / "pre"
    folder.mkdir()
    (folder / "driving-concat.pt").write_bytes(b"x")
    spec = fake.make_spec(pretrained_dir=str(folder))
    with pytest.raises(ConfigError, match=r"lacks encoder checkpoint\(s\) driving-attention\.pt"):
        validate_spec(spec)
    (folder / "driving-attention.pt").write_bytes(b"x")
    validate_spec(spec)
    assert f'agent.init.path="{folder}/driving-concat.pt"' in spec.cell_overrides(
        Cell("driving", "concat", 0)
    )
    with pytest.raises(ConfigError, match="no such folder"):
        validate_spec(fake.make_spec(pretrained_dir=str(tmp_path / "missing")))


def test_the_protocol_records_the_encoders_content_not_their_folder(fake, tmp_path):
    """A grid resumes from another folder (a fresh clone, the GPU machine's copy) holding the
    same encoders, and refuses encoders whose weights changed."""
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
        for fusion in ("concat", "attention"):
            (folder / f"driving-{fusion}.pt").write_bytes(fusion.encode())
    first, second = (fake.make_spec(pretrained_dir=str(f)) for f in folders)
    assert set(first.protocol()["pretrained"]) == {"driving-concat.pt", "driving-attention.pt"}
    assert first.protocol() == second.protocol()
    out = tmp_path / "out"
    prepare_out(out, first)
    prepare_out(out, second)  # same content elsewhere: the same protocol
    (folders[1] / "driving-concat.pt").write_bytes(b"retrained")
    with pytest.raises(ConfigError, match=r"other encoder checkpoints .*driving-concat\.pt.*"
                       r"--adopt-encoders"):  # fmt: skip
        prepare_out(out, fake.make_spec(pretrained_dir=str(folders[1])))
    with pytest.raises(ConfigError, match=r"different protocol .*pretrained"):
        prepare_out(out, fake.make_spec())  # from scratch into a pretrained grid
    assert fake.make_spec().protocol()["pretrained"] is None


def test_rebuilt_encoders_are_adopted_only_when_asked(fake, cell_fn, tmp_path):
    """Encoders rebuilt on another machine (same commands, other bytes): --adopt-encoders
    keeps the finished cells, fine-tunes the rest from the new checkpoints, and the report
    names the checkpoint each cell used; a cell depends on its own fusion's encoder only."""
    old, new = tmp_path / "old", tmp_path / "new"
    for folder, tag in ((old, b"intel"), (new, b"amd")):
        folder.mkdir()
        for fusion in ("concat", "attention"):
            (folder / f"driving-{fusion}.pt").write_bytes(fusion.encode() + tag)
    (new / "driving-attention.pt").write_bytes(b"attentionintel")  # this one rebuilt alike
    out = tmp_path / "out"
    run = {"check_envs": False, "progress": False}
    first = run_bench(fake.make_spec(pretrained_dir=str(old), seeds=[0]), out, InlineBackend(),
                      cell_fn, report=False, **run)  # fmt: skip
    assert len(first.finished) == 2
    grown = fake.make_spec(pretrained_dir=str(new), seeds=[0, 1])
    with pytest.raises(ConfigError, match="--adopt-encoders"):
        run_bench(grown, out, InlineBackend(), cell_fn, report=False, **run)
    assert all(fake.calls(out, c) == 0 for c in grown.cells() if c.seed == 1)
    second = run_bench(grown, out, InlineBackend(), cell_fn, report=True, adopt_encoders=True,
                       **run)  # fmt: skip
    assert sorted(c.cell_id for c in second.skipped) == ["driving-attention-s0",
                                                         "driving-concat-s0"]  # fmt: skip
    assert sorted(c.cell_id for c in second.finished) == ["driving-attention-s1",
                                                          "driving-concat-s1"]  # fmt: skip
    manifest = json.loads((out / "bench.json").read_text())
    digests = grown.protocol()["pretrained"]
    assert manifest["protocol"]["pretrained"] == digests
    old_digests = fake.make_spec(pretrained_dir=str(old)).protocol()["pretrained"]
    assert manifest["adopted_encoders"] == {"driving-concat.pt": [old_digests["driving-concat.pt"]]}
    summary = (out / "summary.md").read_text()
    assert (f"driving-concat.pt: {old_digests['driving-concat.pt']} (driving-concat-s0), "
            f"{digests['driving-concat.pt']} (driving-concat-s1)") in summary  # fmt: skip
    assert "driving-attention.pt:" not in summary  # one checkpoint for all its cells
    # Adopted once, remembered: a plain rerun counts every cell as finished.
    again = run_bench(grown, out, InlineBackend(), cell_fn, report=False, **run)
    assert len(again.skipped) == 4 and not again.finished
    # A digest never adopted still makes its cell run again.
    record_path = cell_dir(out, Cell("driving", "concat", 1)) / CELL_RECORD
    record = json.loads(record_path.read_text())
    record["protocol"]["pretrained"]["driving-concat.pt"] = "0" * 16
    record_path.write_text(json.dumps(record))
    _, todo = split_done(out, grown)
    assert todo == [Cell("driving", "concat", 1)]


def test_records_from_before_a_protocol_entry_existed_still_count(fake, tmp_path):
    """Committed grids recorded ``pretrained_dir: null``; the digests that replaced it must
    not make their finished cells run again."""
    from mmrl.bench.grid import protocol_differences

    new = fake.make_spec().protocol()
    old = {k: v for k, v in new.items() if k != "pretrained"} | {"pretrained_dir": None}
    assert protocol_differences(old, new) == []
    assert protocol_differences(old | {"steps": 1}, new) == ["steps"]


def test_a_folder_keeps_one_protocol_but_the_grid_may_grow(fake, tmp_path):
    prepare_out(tmp_path, fake.make_spec())
    prepare_out(tmp_path, fake.make_spec(seeds=[0, 1, 2]))  # more seeds: fine
    manifest = json.loads((tmp_path / "bench.json").read_text())
    assert len(manifest["cells"]) == 6
    with pytest.raises(ConfigError, match=r"different protocol .*steps: 300 there, 301 now"):
        prepare_out(tmp_path, fake.make_spec(steps=301))
    with pytest.raises(ConfigError, match="overrides"):
        prepare_out(tmp_path, fake.make_spec(overrides=["eval_episodes=3"]))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("hi")
    with pytest.raises(ConfigError, match="not a bench folder"):
        prepare_out(other, fake.make_spec())


def test_resume_skips_finished_cells(fake, cell_fn, tmp_path):
    spec = fake.make_spec()
    first = run_bench(spec, tmp_path, InlineBackend(), cell_fn, check_envs=False,
                      progress=False, report=False)  # fmt: skip
    assert len(first.finished) == 4 and not first.skipped and not first.failed
    for cell in spec.cells():
        assert (cell_dir(tmp_path, cell) / CELL_RECORD).is_file()
        assert fake.calls(tmp_path, cell) == 1
    again = run_bench(spec, tmp_path, InlineBackend(), cell_fn, check_envs=False,
                      progress=False, report=False)  # fmt: skip
    assert len(again.skipped) == 4 and not again.finished
    assert all(fake.calls(tmp_path, c) == 1 for c in spec.cells())
    # A grown grid runs only the new cells; a deleted record reruns just that cell.
    (cell_dir(tmp_path, spec.cells()[0]) / CELL_RECORD).unlink()
    grown = fake.make_spec(seeds=[0, 1, 2])
    third = run_bench(grown, tmp_path, InlineBackend(), cell_fn, check_envs=False,
                      progress=False, report=False)  # fmt: skip
    assert sorted(c.cell_id for c in third.finished) == [
        "driving-attention-s2", "driving-concat-s0", "driving-concat-s2"]  # fmt: skip
    assert fake.calls(tmp_path, spec.cells()[0]) == 2
    assert fake.calls(tmp_path, spec.cells()[1]) == 1


def test_unreadable_or_foreign_records_count_as_unfinished(fake, cell_fn, tmp_path):
    spec = fake.make_spec(fusions=["concat"])
    run_bench(spec, tmp_path, InlineBackend(), cell_fn, check_envs=False, progress=False,
              report=False)  # fmt: skip
    a, b = spec.cells()
    (cell_dir(tmp_path, a) / CELL_RECORD).write_text("{ truncated")
    record = json.loads((cell_dir(tmp_path, b) / CELL_RECORD).read_text())
    record["protocol"]["steps"] = 999
    (cell_dir(tmp_path, b) / CELL_RECORD).write_text(json.dumps(record))
    done, todo = split_done(tmp_path, spec)
    assert not done and todo == [a, b]


def test_a_failing_cell_is_recorded_and_retried(fake, cell_fn, tmp_path):
    spec = fake.make_spec(fusions=["concat"], seeds=[0, fake.FAIL_SEED])
    result = run_bench(spec, tmp_path, InlineBackend(), cell_fn, check_envs=False,
                       progress=False, report=True)  # fmt: skip
    bad = Cell("driving", "concat", fake.FAIL_SEED)
    assert result.failed == [bad] and len(result.finished) == 1
    error = (cell_dir(tmp_path, bad) / CELL_ERROR).read_text()
    assert "RuntimeError: boom in driving-concat-s100" in error and "Traceback" in error
    assert not (cell_dir(tmp_path, bad) / CELL_RECORD).exists()
    summary = (tmp_path / "summary.md").read_text()
    assert "driving-concat-s100 (failed: see cells/driving-concat-s100/error.txt)" in summary
    rerun = run_bench(spec, tmp_path, InlineBackend(), cell_fn, check_envs=False,
                      progress=False, report=False)  # fmt: skip
    assert rerun.failed == [bad] and fake.calls(tmp_path, bad) == 2
