"""``--format table|markdown|csv`` of ``mmrl evaluate`` / ``evaluate-offline`` and distinct row
labels (issue 16: tables fit an 80-column terminal; rows of different runs are told apart)."""

from __future__ import annotations

import csv
import io
import shutil

import pytest

from mmrl.cli import main
from mmrl.evaluation.labels import distinct_labels

TINY = ["agent.extractor.features_dim=16", "agent.policy.pi=[16]", "agent.policy.vf=[16]",
        "agent.ppo.n_steps=16", "agent.ppo.batch_size=16", "agent.ppo.n_epochs=1",
        "eval_freq=0", "checkpoint_freq=1000"]  # fmt: skip


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, corridor):
    """Two run folders both named ``run`` (``a/run``, ``b/run``): a sweep's usual layout."""
    from mmrl.train import train

    root = tmp_path_factory.mktemp("sweep")
    preset = root / "corridor.yaml"
    preset.write_text(f"env_id: {corridor.ENV_ID}\nn_envs: 2\n")
    run = train(str(preset), "ppo-concat", steps=32, seed=0, out=root / "a" / "run",
                overrides=TINY, device="cpu", verbose=0)  # fmt: skip
    shutil.copytree(run, root / "b" / "run")
    return [str(root / "a" / "run"), str(root / "b" / "run")]


def _argv(two_runs, expert_zip, *extra):
    return ["evaluate", *two_runs, str(expert_zip), "--env", "mmrl-test/Corridor-v0",
            "--episodes", "4", "--n-envs", "2",
            "--split", "train,test", "--ablate", "text,lidar", "--noise", "lidar=0.2",
            "--bootstrap", "50", *extra]  # fmt: skip


def test_the_default_table_fits_80_columns_with_distinct_labels(
    two_runs, expert_zip, monkeypatch, capsys
):
    monkeypatch.delenv("COLUMNS", raising=False)  # pytest's stdout is not a terminal: 80
    assert main(_argv(two_runs, expert_zip)) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    assert "a/run [train]" in out and "b/run [test]" in out and "robustness" in out
    assert "-lidar" in out and "lidar=0.2" in out  # "noise" may wrap above it
    # Nothing cropped: the last column's header and the models as heading rows are whole.
    assert "Δ length" in out and "expert0 [test]" in out
    assert lines[0].startswith("mmrl-test/Corridor-v0: 4 episodes")


def _pipe_tables(text: str) -> list[list[list[str]]]:
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if current is None:
                current = []
                tables.append(current)
            current.append(cells)
        else:
            current = None
    return tables


def test_markdown_and_csv_parse_back(two_runs, expert_zip, capsys):
    assert main(_argv(two_runs, expert_zip, "--format", "markdown")) == 0
    tables = _pipe_tables(capsys.readouterr().out)
    main_table, groups, robustness = tables
    for table in tables:
        assert len({len(row) for row in table}) == 1  # every row as wide as the header
        assert set(table[1]) <= {":---", "---:"}
    assert main_table[0][:2] == ["model", "return mean"]
    labels = [row[0] for row in main_table[2:]]
    models = ["a/run", "b/run", "expert0"]
    assert labels == [f"{m} [{s}]" for m in models for s in ("train", "test")]
    assert groups[0][0] == "model" and len(groups) == 2 + 6
    assert len(robustness) == 2 + 6 * 3  # 6 models x splits, 3 conditions
    assert all(" [" in cell for cell in main_table[2][1:3])  # value and interval on one line

    assert main(_argv(two_runs, expert_zip, "--format", "csv")) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert len(rows) == 3 * 2 * 4  # models x splits x (clean + 3 conditions)
    assert {r["label"] for r in rows} == set(models)
    assert {r["condition"] for r in rows} == {"clean", "-text", "-lidar", "noise lidar=0.2"}
    assert all(0.0 <= float(r["success_rate"]) <= 1.0 for r in rows)


def test_evaluate_offline_formats(expert_zip, random_zip, corridor, tmp_path, monkeypatch,
                                  capsys):  # fmt: skip
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    monkeypatch.delenv("COLUMNS", raising=False)
    corridor.write_dataset("test/corridor/fmt-v0",
                           corridor.collect(60, 0.3, seed=0, log_behaviour=True))  # fmt: skip
    argv = ["evaluate-offline", str(random_zip), str(expert_zip), "--dataset",
            "test/corridor/fmt-v0", "--estimators", "wis,dr,fqe", "--gamma", "0.9",
            "--fqe-iters", "5", "--fqe-steps", "5", "--bootstrap", "50"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    assert main([*argv, "--format", "markdown"]) == 0
    (table,) = _pipe_tables(capsys.readouterr().out)
    assert table[0][:3] == ["rank", "policy", "wpdis"] and len(table) == 2 + 2
    assert len({len(row) for row in table}) == 1
    assert main([*argv, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["rank"] for r in rows] == ["1", "2"] and "fqe_value" in rows[0]
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses it, in one line
        main([*argv, "--format", "html"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--format: invalid choice: 'html'" in err


def test_distinct_labels_use_the_shortest_distinguishing_parents(tmp_path):
    for path in ("x/a/run", "y/a/run", "b/run", "c/run/checkpoints/step_64",
                 "d/run/checkpoints/step_64"):  # fmt: skip
        (tmp_path / path).mkdir(parents=True)

    def refs(*paths):
        return [str(tmp_path / p) for p in paths]

    assert distinct_labels(["run"] * 3, refs("x/a/run", "y/a/run", "b/run")) == [
        "x/a/run", "y/a/run", "b/run"
    ]  # fmt: skip
    checkpoints = refs("c/run/checkpoints/step_64", "d/run/checkpoints/step_64")
    assert distinct_labels(["run/step_64"] * 2, checkpoints) == [
        "c/run/step_64", "d/run/step_64"
    ]  # fmt: skip
    assert distinct_labels(["run", "other"], refs("b/run", "x/a/run")) == ["run", "other"]
    # Nothing in the references tells them apart: numbered.
    assert distinct_labels(["expert", "expert"], ["expert", "expert"]) == ["expert", "expert#2"]
    assert distinct_labels(["run", "run"], refs("b/run", "b/run")) == ["run", "run#2"]
    with pytest.raises(ValueError, match="2 labels for 1 references"):
        distinct_labels(["a", "b"], ["a"])
