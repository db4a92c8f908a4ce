"""results.csv, summary.md and figures from synthetic cells with known numbers."""

from __future__ import annotations

import pandas as pd
import pytest

from mmrl.bench import InlineBackend, run_bench
from mmrl.bench.report import FIGURES, write_report


@pytest.fixture
def bench_dir(fake, cell_fn, tmp_path):
    spec = fake.make_spec(envs=["driving", "navigation"], seeds=[0, 1, 2])
    run_bench(spec, tmp_path, InlineBackend(), cell_fn, check_envs=False, progress=False,
              command="mmrl bench --test")  # fmt: skip
    return tmp_path


def test_results_csv_has_one_row_per_cell(bench_dir, fake):
    frame = pd.read_csv(bench_dir / "results.csv")
    assert len(frame) == 2 * 2 * 3
    assert list(frame.columns[:5]) == ["env", "fusion", "seed", "steps", "success"]
    row = frame[(frame.env == "navigation") & (frame.fusion == "attention") & (frame.seed == 2)]
    assert row["success"].item() == pytest.approx(0.8)
    assert row["test_success"].item() == pytest.approx(0.4)
    assert row["generalization_gap"].item() == pytest.approx(0.4)
    assert row["delta_success_without_camera"].item() == pytest.approx(-0.3)
    assert row["params"].item() == 1000 + len("attention")


def test_summary_table_holds_the_hand_computed_iqm(bench_dir):
    text = (bench_dir / "summary.md").read_text()
    # concat: seeds 0, 1, 2 -> success 0.2, 0.3, 0.4 (IQM of 3 = mean 0.30), test = half.
    assert "| driving | concat | 3 | 0.30 [0.20, 0.40] | 0.15 [0.10, 0.20] |" in text
    # every seed loses exactly 0.3 without the camera: a degenerate interval
    assert "| driving | attention | -0.30 [-0.30, -0.30] | -0.10 [-0.10, -0.10] |" in text
    assert "- command: `mmrl bench --test`" in text
    # attention (0.6-0.8) and concat (0.2-0.4) are apart on both splits of both envs; every
    # fusion loses the same without each sensor, so no robustness difference is listed
    assert "## Significant differences" in text
    assert ("- driving, success: **attention** 0.70 [0.60, 0.80] > **concat** 0.30 [0.20, "
            "0.40]") in text  # fmt: skip
    assert "- navigation, test success: **attention** 0.35 [0.30, 0.40] > **concat**" in text
    assert "change without" not in text
    # per instruction group, over the seeds that recorded it (1 and 2; seed 0 did not):
    # concat follow = (0.3 / 2, 0.4 / 2) -> IQM 0.175
    assert "## Success by instruction group" in text
    assert "| driving | concat | 2 | 0.17 [0.15, 0.20] | 1.00 [1.00, 1.00] |" in text
    # per fusion over both envs: 6 runs, stratified by env
    assert "| attention | 6 | 0.70 [" in text
    for name in FIGURES.values():
        assert f"]({name})" in text
        assert (bench_dir / name).stat().st_size > 5000


def test_report_can_be_regenerated(bench_dir):
    (bench_dir / "summary.md").unlink()
    (bench_dir / "robustness.png").unlink()
    files = write_report(bench_dir)
    assert files["summary"].is_file() and files["robustness"].is_file()


def test_a_rewritten_report_keeps_the_command_the_grid_ran_with(bench_dir):
    files = write_report(bench_dir)  # what --report-only does
    assert "- command: `mmrl bench --test`" in files["summary"].read_text()


def test_the_summary_says_how_many_episodes_each_success_column_rests_on(bench_dir):
    # The synthetic records have no final evaluation of their own: both splits fall back to
    # their 4-episode summaries.
    text = (bench_dir / "summary.md").read_text()
    assert "held-out seeds (4 episodes per cell on each split)" in text
    import json

    from mmrl.bench.grid import CELL_RECORD

    path = next(bench_dir.glob(f"cells/*/{CELL_RECORD}"))
    record = json.loads(path.read_text())
    summary = {"episodes": 200, "success_rate": 0.5, "mean_return": 1.0,
               "by_group": {"cone": {"episodes": 200, "success_rate": 0.5}}}  # fmt: skip
    record["final"] = {"train": summary, "test": {**summary, "episodes": 100}}
    path.write_text(json.dumps(record))
    text = write_report(bench_dir)["summary"].read_text()
    assert "(train split: 4 or 200 episodes per cell; test split: 4 or 100 episodes" in text
    assert "## Success by instruction group, held-out instructions" in text
    # The table row of that cell's env and fusion lists both counts; the others one each.
    assert text.count("| 4, 200 / 4, 100 |") == 1 and text.count("| 4 / 4 |") == 3
    # Success figures on other episodes are not set against each other; the change without
    # a sensor (the ablation pass, same episodes everywhere) still is.
    env = record["env_name"]
    apart = [line for line in text.splitlines() if line.startswith(f"- {env}, not compared")]
    assert len(apart) == 1
    assert "success: concat; attention" in apart[0] or "success: attention; concat" in apart[0]
    assert f"- {env}, success: **" not in text
