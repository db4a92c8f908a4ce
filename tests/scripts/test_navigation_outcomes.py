"""``scripts/navigation_outcomes.py``: every finished episode gets exactly one outcome, read
from the object the robot chose, per target pair."""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def outcomes(load_script):
    return load_script("navigation_outcomes")


ROOM = {  # target 0: the red cone; 1: the other candidate; 2: red ball; 3: blue cone; 4: green cube
    "xy": np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [3.0, 3.0], [-3.0, 0.0], [-100, -100]]),
    "color": np.array([0, 1, 0, 2, 1, 0]),
    "shape": np.array([2, 1, 0, 2, 1, 0]),
    "valid": np.array([True, True, True, True, True, False]),
    "candidate": np.array([True, True, False, False, False, False]),
    "target": np.int64(0),
}


@pytest.mark.parametrize(
    ("flags", "position", "expected"),
    [
        ((True, False), (0.5, 0.0), "success"),
        ((False, True), (1.5, 1.5), "timeout"),
        ((False, False), (2.4, 0.0), "other candidate"),
        ((False, False), (0.0, 2.4), "same colour"),
        ((False, False), (2.5, 2.6), "same shape"),
        ((False, False), (-2.4, 0.0), "neither"),
        # nearer the target than the object it touched: the target never counts as a choice
        ((False, False), (-1.4, 0.0), "neither"),
    ],
)
def test_each_ending_gets_its_class(outcomes, flags, position, expected):
    success, timeout = flags
    result = outcomes.chosen_outcome(success, timeout, np.array(position), ROOM)
    assert result == expected and result in outcomes.OUTCOMES


def test_on_the_train_split_a_wrong_choice_is_told_by_colour_and_shape(outcomes):
    room = {**ROOM, "candidate": ROOM["valid"].copy()}  # every object could be named
    assert outcomes.chosen_outcome(False, False, np.array((2.4, 0.0)), room) == "neither"
    assert outcomes.chosen_outcome(False, False, np.array((0.0, 2.4)), room) == "same colour"


def test_expert_succeeds_and_random_actions_fail(outcomes, tmp_path, capsys):
    out = tmp_path / "rows.json"
    argv = ["expert", "random", "--episodes", "24", "--envs", "12", "--seed", "5"]
    assert outcomes.main([*argv, "--json", str(out)]) == 0
    expert, random = json.loads(out.read_text())
    for row in (expert, random):
        groups = row["groups"]
        assert groups["all"]["episodes"] == 24
        assert sum(g["episodes"] for pair, g in groups.items() if pair != "all") == 24
        for group in groups.values():
            assert sum(group["fractions"].values()) == pytest.approx(1.0, abs=0.01)
            # part of the time-outs
            assert 0 <= group[outcomes.NEVER_LIT] <= group["fractions"]["timeout"]
        templates = row["templates"]
        assert sum(g["episodes"] for g in templates.values()) == 24
        assert set(templates) <= {"train templates", "paraphrase templates"}
        # the test split names only held-out pairs
        assert set(groups) - {"all"} <= {"red cone", "green cube", "blue cylinder",
                                         "yellow ball", "purple cylinder", "cyan cube"}  # fmt: skip
    assert expert["groups"]["all"]["fractions"]["success"] == 1.0
    assert random["groups"]["all"]["fractions"]["success"] < 0.5
    # random actions mostly time out without ever lighting the named object; the expert
    # never times out
    assert random["groups"]["all"][outcomes.NEVER_LIT] > 0.3
    assert expert["groups"]["all"][outcomes.NEVER_LIT] == 0.0
    printed = capsys.readouterr().out
    assert "| red cone |" in printed or "red cone" not in expert["groups"]
    assert "| train templates |" in printed


def test_template_kinds(outcomes):
    assert outcomes.template_kind("go to the red cone") == "train templates"
    assert outcomes.template_kind("navigate to the pillar that is cyan") == "train templates"
    assert outcomes.template_kind("please walk over to the red cone") == "paraphrase templates"
    assert outcomes.template_kind("drive to the box which is green") == "paraphrase templates"


@pytest.mark.parametrize(
    ("flag", "deterministic", "actions"),
    [([], True, "greedy"), (["--stochastic"], False, "sampled")],
)
def test_stochastic_samples_the_actions(
    outcomes, monkeypatch, tmp_path, flag, deterministic, actions
):
    seen = []
    real = outcomes.collect_episodes

    def spy(*args, **kwargs):
        seen.append(kwargs["deterministic"])
        return real(*args, **kwargs)

    monkeypatch.setattr(outcomes, "collect_episodes", spy)
    out = tmp_path / "rows.json"
    argv = ["expert", "--episodes", "4", "--envs", "4", "--seed", "5", *flag]
    assert outcomes.main([*argv, "--json", str(out)]) == 0
    assert seen == [deterministic]
    assert json.loads(out.read_text())[0]["actions"] == actions


def test_no_memory_drops_a_skip_policys_memory(outcomes, monkeypatch, tmp_path):
    pytest.importorskip("sb3_contrib")
    from sb3_contrib import RecurrentPPO

    import mmrl.recurrent
    from mmrl import MultimodalExtractor, make_vec_env

    venv = make_vec_env("mmrl/Navigation-v1", n_envs=2, seed=0)
    model = RecurrentPPO(
        mmrl.recurrent.SkipLstmPolicy, venv, n_steps=8, batch_size=16, seed=0,
        policy_kwargs={"features_extractor_class": MultimodalExtractor,
                       "features_extractor_kwargs": {"features_dim": 16},
                       "lstm_hidden_size": 8},
    )  # fmt: skip
    model.save(tmp_path / "model.zip")
    dropped = []
    real = mmrl.recurrent.drop_memory
    monkeypatch.setattr(mmrl.recurrent, "drop_memory", lambda p: dropped.append(p) or real(p))
    out = tmp_path / "rows.json"
    argv = [str(tmp_path / "model.zip"), "--episodes", "2", "--envs", "2", "--no-memory"]
    assert outcomes.main([*argv, "--json", str(out)]) == 0
    (policy,) = dropped
    assert bool((policy.mlp_extractor.policy_net[0].weight[:, 16:] == 0).all())
    assert json.loads(out.read_text())[0]["memory"] == "dropped"


def test_no_memory_refuses_a_policy_without_a_skip_lstm(outcomes, capsys):
    with pytest.raises(SystemExit) as exit_:
        outcomes.main(["expert", "--episodes", "2", "--envs", "2", "--no-memory"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --no-memory: expert: only a policy with the LSTM beside")
    assert err.endswith("got a policy with no network") and "\n" not in err
