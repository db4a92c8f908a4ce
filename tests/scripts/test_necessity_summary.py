"""scripts/necessity_summary.py: one row per split, drops marked against the bar."""

from __future__ import annotations

import json


def _necessity(tmp_path, camera_drop, camera_ci):
    def cond(s):
        return {"success": s, "ci": [s - 0.05, s + 0.05], "episodes": 200}

    data = {
        "meta": {"splits": ["train"], "modalities": ["camera"],
                 "mask_kinds": {"agent": ["extractor"], "expert": ["zero"]}},
        "results": {"agent": {"train": {"clean": cond(0.9)}},
                    "expert": {"train": {"clean": cond(1.0)}}},
        "drops": {"agent": {"train": {"-camera:extractor": {"drop": camera_drop,
                                                            "ci": camera_ci}}}},
    }  # fmt: skip
    path = tmp_path / f"n{camera_drop}.json"
    path.write_text(json.dumps(data))
    return path


def test_rows_mark_drops_whose_interval_clears_the_bar(load_script, tmp_path, capsys):
    script = load_script("necessity_summary")
    above = _necessity(tmp_path, 0.5, [0.4, 0.6])
    below = _necessity(tmp_path, 0.35, [0.25, 0.45])  # drop above 30, interval not
    assert script.main([f"A={above}", f"B={below}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| run | split | agent clean %")
    assert lines[2] == "| A | train | 90 | 100 | n/a | **50 [40, 60]** |"
    assert lines[3] == "| B | train | 90 | 100 | n/a | 35 [25, 45] |"


def test_unreadable_file_is_one_line_and_status_2(load_script, tmp_path, capsys):
    script = load_script("necessity_summary")
    assert script.main([f"A={tmp_path / 'missing.json'}"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_necessity_workflow_script_refuses_missing_arguments():
    """scripts/necessity_workflow.sh (the workflow behind BENCHMARKS' necessity rows) says how
    to call it and exits 2 instead of running with half its arguments."""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "necessity_workflow.sh"
    proc = subprocess.run(["bash", str(script), "navigation", "1000"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage:") and "ENV_PRESET STEPS SEED OUT" in proc.stderr
