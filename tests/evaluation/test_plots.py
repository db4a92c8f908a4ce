"""``mmrl plot``: learning curves of run and bench folders, IQM over seeds with bands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from mmrl.cli import main
from mmrl.errors import ConfigError
from mmrl.evaluation.plots import (
    aggregate_curves,
    find_labelled_runs,
    find_runs,
    load_curves,
    plot_runs,
    split_label,
)


def _fake_run(toy_run, folder, agent, seed, success):
    """A run folder with ``toy_run``'s config and a given success curve on both splits."""
    folder.mkdir(parents=True)
    config = yaml.safe_load((toy_run / "config.yaml").read_text())
    config.update(agent_name=agent, seed=seed)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    lines = [
        {"step": 100 * (k + 1), "train": {"success_rate": s, "mean_return": 10 * s},
         "test": {"success_rate": s / 2, "mean_return": 5 * s}}
        for k, s in enumerate(success)
    ]  # fmt: skip
    (folder / "evaluations.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder


@pytest.fixture
def bench(toy_run, tmp_path):
    """A bench-like folder: four seeds of agent ``a``, one of agent ``b``."""
    root = tmp_path / "bench"
    for seed, final in enumerate([0.0, 0.5, 0.5, 1.0]):
        _fake_run(toy_run, root / "cells" / f"a-s{seed}" / "run", "a", seed, [0.0, final])
    _fake_run(toy_run, root / "cells" / "b-s0" / "run", "b", 0, [0.2, 0.4, 0.6])
    return root


def test_seeds_aggregate_to_the_iqm_with_a_band(bench):
    runs = find_runs([bench])
    assert len(runs) == 5
    curves = {(c.label, c.split): c for c in aggregate_curves(load_curves(runs), "agent", 500)}
    a = curves[("a", "train")]
    assert a.n_runs == 4 and list(a.steps) == [100, 200]
    # IQM of [0, .5, .5, 1] cuts one value from each end: mean(.5, .5) = .5.
    assert a.points[1].value == pytest.approx(0.5)
    assert a.points[1].low < 0.5 < a.points[1].high
    assert a.points[0].value == a.points[0].low == a.points[0].high == 0.0
    assert curves[("a", "test")].points[1].value == pytest.approx(0.25)
    b = curves[("b", "train")]
    assert b.n_runs == 1 and [p.value for p in b.points] == pytest.approx([0.2, 0.4, 0.6])
    returns = {(c.label, c.split): c for c in aggregate_curves(load_curves(runs, "return"))}
    assert returns[("b", "train")].points[2].value == pytest.approx(6.0)
    by_seed = aggregate_curves(load_curves(runs), "seed", 100)
    assert {c.label for c in by_seed} == {
        "a seed 0",
        "a seed 1",
        "a seed 2",
        "a seed 3",
        "b seed 0",
    }


def test_cli_writes_a_png_of_the_right_size(bench, toy_run, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert main(["plot", str(bench), str(toy_run), "--out", str(out), "--bootstrap", "200"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    image = cv2.imread(str(out))
    # One env preset (a facet row) x two instruction splits, 4.2 x 3.2 inches at 100 dpi.
    assert image is not None and image.shape == (320, 840, 3)
    assert image.std() > 10  # something is drawn


def test_svg_and_group_by_env(toy_run, tmp_path):
    out = plot_runs([toy_run], tmp_path / "c.svg", group_by="env", metric="return")
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["{missing}"], ["no such run or bench folder"]),
        (["{empty}"], ["not a run folder and holds none"]),
        (["{run}", "--out", "{tmp}/x.jpg"], ["--out", ".png or .svg"]),
        (["{run}", "--out", "{tmp}/nope/x.png"], ["--out", "does not exist"]),
        (["{run}", "--group-by", "colour"], ["--group-by must be one of agent, env, seed, path"]),
        (["{run}", "--metric", "reward"], ["--metric must be one of success, return"]),
        (["{noeval}"], ["no periodic evaluation", "eval_freq > 0"]),
        (["{run}", "--bootstrap", "0"], ["--bootstrap must be >= 1"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(toy_run, tmp_path, capsys, args, needles):
    (tmp_path / "empty").mkdir()
    noeval = tmp_path / "noeval"
    shutil.copytree(toy_run, noeval, ignore=shutil.ignore_patterns("evaluations.jsonl"))
    names = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "run": toy_run,
             "noeval": noeval, "tmp": tmp_path}  # fmt: skip
    argv = ["plot"] + [a.format(**names) for a in args]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "ok.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("mmrl plot: error:"), err
    for needle in needles:
        assert needle in err, err
    assert not (tmp_path / "ok.png").exists()


def test_library_errors_name_their_field(toy_run):
    with pytest.raises(ConfigError, match="group_by must be one of"):
        aggregate_curves(load_curves([find_runs([toy_run])[0]]), group_by="fusion")
    assert np.isfinite(load_curves(find_runs([toy_run]))[0].splits["train"][1]).all()


def test_group_by_path_makes_a_line_per_argument_or_label(toy_run, tmp_path):
    """Two variants of one recipe (same agent name) stay apart, labelled by the user."""
    for seed, final in enumerate([0.2, 0.4]):
        _fake_run(toy_run, tmp_path / "base" / f"s{seed}", "a", seed, [0.0, final])
        _fake_run(toy_run, tmp_path / "new" / f"s{seed}", "a", seed, [0.0, final + 0.4])
    args = [f"base={tmp_path / 'base' / 's0'}", f"base={tmp_path / 'base' / 's1'}",
            str(tmp_path / "new")]  # fmt: skip
    curves = aggregate_curves(load_curves(find_labelled_runs(args)), "path", 200)
    by = {(c.label, c.split): c for c in curves}
    new = str(tmp_path / "new")
    assert set(by) == {("base", "train"), ("base", "test"), (new, "train"), (new, "test")}
    assert by[("base", "train")].n_runs == 2
    assert by[("base", "train")].points[1].value == pytest.approx(0.3)
    assert by[(new, "train")].points[1].value == pytest.approx(0.7)
    # by agent the same runs are one line: the grouping is what keeps them apart
    assert {c.label for c in aggregate_curves(load_curves(find_runs(args)), "agent", 50)} == {"a"}
    out = plot_runs(args, tmp_path / "p.png", group_by="path", n_resamples=50)
    assert cv2.imread(str(out)).std() > 10


def test_a_path_with_an_equals_sign_is_still_a_path(toy_run, tmp_path):
    odd = tmp_path / "lr=3e-4"
    shutil.copytree(toy_run, odd)
    assert split_label(odd) == (str(odd), odd)
    assert split_label("x=runs/a") == ("x", Path("runs/a"))
    with pytest.raises(ConfigError, match="no such run"):
        find_labelled_runs(["x=" + str(tmp_path / "missing")])
