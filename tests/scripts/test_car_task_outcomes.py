"""``scripts/car_task_outcomes.py``: every named-car episode gets exactly one outcome, and the
outcomes tell the expert from a policy that cannot pass."""

import json

import pytest


@pytest.fixture(scope="module")
def outcomes(load_script):
    return load_script("car_task_outcomes")


@pytest.mark.parametrize(
    ("task", "flags", "offset", "expected"),
    [
        ("overtake", (True, False, False, True), 0, "success"),
        ("overtake", (False, True, False, False), 1, "collision before passing"),
        ("overtake", (False, True, False, True), 0, "collision after passing"),
        ("overtake", (False, False, True, True), 0, "off road or exit"),
        ("overtake", (False, False, False, False), 2, "never passed"),
        ("overtake", (False, False, False, True), -1, "passed, wrong lane"),
        ("overtake", (False, False, False, True), 0, "passed, outside the band"),
        ("follow", (True, False, False, False), 0, "success"),
        ("follow", (False, True, False, False), 0, "collision"),
        ("follow", (False, False, True, False), 0, "off road or exit"),
        ("follow", (False, False, False, False), 1, "wrong lane"),
        ("follow", (False, False, False, False), 0, "outside the band"),
    ],
)
def test_each_ending_gets_its_class(outcomes, task, flags, offset, expected):
    success, collision, off_road, passed = flags
    labels = {"target_lane_offset": offset}
    assert outcomes.outcome(task, success, collision, off_road, passed, labels) == expected
    assert expected in outcomes.OUTCOMES[task]


def test_expert_succeeds_and_random_actions_fail(outcomes, tmp_path, capsys):
    out = tmp_path / "rows.json"
    argv = ["expert", "random", "--episodes", "12", "--envs", "12", "--seed", "3"]
    assert outcomes.main([*argv, "--json", str(out)]) == 0
    expert, random = json.loads(out.read_text())
    for row in (expert, random):
        assert sum(row["counts"].values()) == 12
        assert list(row["counts"]) == list(outcomes.OUTCOMES["overtake"])
    assert expert["fractions"]["success"] >= 0.6
    assert random["fractions"]["success"] <= 0.2
    assert "expert: success" in capsys.readouterr().out


def test_follow_task_and_bad_counts(outcomes, tmp_path):
    out = tmp_path / "rows.json"
    argv = ["expert", "--task", "follow", "--episodes", "6", "--envs", "6", "--json", str(out)]
    assert outcomes.main(argv) == 0
    (row,) = json.loads(out.read_text())
    assert row["task"] == "follow" and sum(row["counts"].values()) == 6
    with pytest.raises(SystemExit) as exc:
        outcomes.main(["expert", "--episodes", "0"])
    assert exc.value.code == 2
