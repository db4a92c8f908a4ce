"""``mmrl evaluate-offline A B C``: several policies estimated on one corridor dataset, ranked.

The corridor is deterministic, so the expert's discounted return from the logged starts is
known exactly (``corridor.expert_mean_value``); the dataset is the epsilon-greedy (0.3)
expert, logged with and without the behaviour probabilities ``mmrl collect`` records.
"""

import dataclasses
import json

import numpy as np
import pytest

from mmrl.cli import main
from mmrl.errors import ConfigError, DatasetError
from mmrl.evaluation.offline import load_logged_data
from mmrl.evaluation.ope import Estimate
from mmrl.evaluation.ranking import PolicyReport, evaluate_policies, parse_estimators, rank_reports
from mmrl.evaluation.stats import Interval
from mmrl.policies import load_policy

GAMMA = 0.9
LOGGED = "test/corridor/logged-v0"
PLAIN = "test/corridor/plain-v0"
CONTINUOUS = "test/corridor/cont-mix-v0"
NOISY = "test/corridor/noisy-v0"  # a second behaviour policy: the expert at epsilon 0.6


@pytest.fixture(scope="module")
def root(tmp_path_factory, corridor):
    root = tmp_path_factory.mktemp("minari")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root))
    corridor.write_dataset(LOGGED, corridor.collect(200, 0.3, seed=0, log_behaviour=True))
    corridor.write_dataset(PLAIN, corridor.collect(200, 0.3, seed=0))
    corridor.write_dataset("test/corridor/one-v0", corridor.collect(1, 0.3, seed=0))
    corridor.write_dataset(NOISY, corridor.collect(150, 0.6, seed=5000, log_behaviour=True))
    continuous = corridor.collect(3, 0.5, seed=0, continuous=True)
    corridor.write_dataset(CONTINUOUS, continuous, corridor.ContinuousSimulator(1))
    yield root
    mp.undo()


@pytest.fixture
def datasets(root, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def test_logged_behaviour_ranks_expert_above_random_with_sound_estimates(
    expert_zip, random_zip, datasets, corridor
):
    data = load_logged_data(LOGGED)
    assert data.behaviour_log_prob is not None and data.expert_actions is not None
    policies = [load_policy(p) for p in (random_zip, expert_zip, "expert", "random")]
    ranking = evaluate_policies(
        policies, data, ["wis", "fqe", "pdis", "dr", "value_head"], GAMMA, n_resamples=300
    )
    assert ranking.behaviour.source == "logged" and ranking.rank_by == "wpdis"
    by_label = {r.label: r for r in ranking.reports}
    truth = corridor.expert_mean_value(GAMMA)
    expert = by_label["expert"]
    for name in ("pdis", "wpdis", "dr", "fqe"):
        est = expert.estimates[name]
        assert est.value == pytest.approx(truth, abs=0.1), (name, est.value, truth)
    assert expert.estimates["wpdis"].interval.low < truth < expert.estimates["wpdis"].interval.high
    assert 10 < expert.estimates["pdis"].ess < data.n_episodes
    assert not expert.support.mismatch
    # The two experts lead, the two random policies trail; labels are unique.
    top = {r.label for r in ranking.reports[:2]}
    assert "expert" in top and "random" not in top
    assert ranking.reports[-1].estimates["wpdis"].value < truth - 0.3
    # The value head of the (untrained-critic) clone is reported, with its caveat.
    model_report = next(r for r in ranking.reports if r.offline is not None)
    assert "value_head" in model_report.estimates
    assert "value_head" in by_label["expert"].skipped
    assert (ranking.reports[0].label, ranking.reports[1].label) in ranking.overlaps or any(
        ranking.reports[0].label in pair for pair in ranking.overlaps
    )


def test_missing_behaviour_probabilities_fall_back_to_an_estimate(expert_zip, datasets, corridor):
    data = load_logged_data(PLAIN)
    assert data.behaviour_log_prob is None
    ranking = evaluate_policies([load_policy(expert_zip)], data, ["wis", "dr"], GAMMA,
                                n_resamples=200)  # fmt: skip
    assert ranking.behaviour.source == "estimated"
    assert "estimated by behaviour cloning" in ranking.behaviour.description
    est = ranking.reports[0].estimates["wpdis"]
    assert any("estimated by behaviour cloning" in n for n in est.notes)
    assert est.value == pytest.approx(corridor.expert_mean_value(GAMMA), abs=0.15)
    with pytest.raises(DatasetError, match="no logged behaviour probabilities"):
        evaluate_policies([load_policy(expert_zip)], data, ["wis"], GAMMA, behaviour="logged")


def test_cli_ranks_writes_json_and_csv(expert_zip, random_zip, datasets, tmp_path, capsys):
    out, table = tmp_path / "rank.json", tmp_path / "rank.csv"
    args = ["evaluate-offline", str(random_zip), str(expert_zip), "--dataset", LOGGED,
            "--estimators", "wis,fqe", "--gamma", "0.9", "--fqe-iters", "10", "--fqe-steps",
            "10", "--bootstrap", "200", "--json", str(out), "--csv", str(table)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "ranked by wpdis" in text and "behaviour policy: logged by mmrl collect" in text
    report = json.loads(out.read_text())
    assert report["ranking"][0] == load_policy(expert_zip).label
    assert report["rank_by"] == "wpdis"
    first = report["results"][0]
    assert set(first["estimates"]) == {"wpdis", "fqe"} and first["seconds"] > 0
    assert {"value", "low", "high", "ess", "notes"} <= set(first["estimates"]["wpdis"])
    rows = table.read_text().splitlines()
    assert rows[0].startswith("rank,label,wpdis_value,wpdis_low,wpdis_high,wpdis_ess,fqe_value")
    assert len(rows) == 3


def test_clipped_weights_and_fqe_diagnostics_are_reported(expert_zip, datasets, tmp_path):
    """The clipped estimators sit next to the unclipped ones with their threshold and ESS
    before and after; every policy's FQE fit reports its held-out Bellman error and bounds."""
    out, table = tmp_path / "rank.json", tmp_path / "rank.csv"
    args = ["evaluate-offline", str(expert_zip), "random", "--dataset", LOGGED, "--estimators",
            "pdis,cpdis,fqe,cdr", "--gamma", "0.9", "--fqe-iters", "10", "--fqe-steps", "10",
            "--bootstrap", "50", "--weight-clip", "3", "--json", str(out),
            "--csv", str(table)]  # fmt: skip
    assert main(args) == 0
    report = json.loads(out.read_text())
    for result in report["results"]:
        plain, cut = result["estimates"]["pdis"], result["estimates"]["cpdis"]
        assert cut["clip"]["threshold"] == 3.0 and plain["clip"] is None
        assert cut["clip"]["ess_unclipped"] == pytest.approx(plain["ess"])
        assert cut["ess"] >= plain["ess"] - 1e-9
        assert result["estimates"]["cdr"]["clip"]["threshold"] == 3.0
        fqe = result["fqe"]  # the model's full report, or the fit alone for "random"
        assert fqe["heldout_episodes"] == 20 and fqe["heldout_td_rmse"] > 0
        assert fqe["return_bounds"][0] <= fqe["value"] <= fqe["return_bounds"][1]
        assert {"clipped_targets", "bounds_hit", "action_sensitivity"} <= set(fqe)
    header = table.read_text().splitlines()[0].split(",")
    assert {"cpdis_ess_unclipped", "fqe_heldout_td_rmse", "fqe_clipped_targets"} <= set(header)


def test_fqe_select_reports_the_chosen_setting_and_every_held_out_error(
    expert_zip, datasets, tmp_path
):
    """``--fqe-select`` fits every setting of the grid and keeps the lowest held-out Bellman
    RMSE; the JSON names the setting and lists every setting's error, the CSV the setting."""
    from mmrl.evaluation.fqe_selection import FQE_GRID

    out, table = tmp_path / "rank.json", tmp_path / "rank.csv"
    args = ["evaluate-offline", str(expert_zip), "--dataset", LOGGED, "--estimators", "fqe",
            "--gamma", "0.9", "--fqe-iters", "5", "--fqe-steps", "5", "--bootstrap", "20",
            "--fqe-select", "--json", str(out), "--csv", str(table)]  # fmt: skip
    assert main(args) == 0
    fqe = json.loads(out.read_text())["results"][0]["fqe"]
    assert set(fqe["selection"]) == {s.name for s in FQE_GRID}
    assert fqe["heldout_td_rmse"] == min(fqe["selection"].values())
    assert fqe["selection"][fqe["setting"]] == fqe["heldout_td_rmse"]
    header, row = table.read_text().splitlines()[:2]
    assert row.split(",")[header.split(",").index("fqe_setting")] == fqe["setting"]


def test_privileged_labels_join_the_shared_fqe_features(expert_zip, random_zip, datasets, corridor):
    """``data+labels``: the labels mmrl collect logs per state are read with the data and
    added to every policy's FQE inputs; a dataset without them is refused by name."""
    data = load_logged_data(LOGGED)
    assert set(data.labels) == {"instruction_type", "position"}
    assert all(v.shape == (data.n_states,) for v in data.labels.values())
    # One label per state, episodes back to back: positions move by at most one cell a step.
    steps = np.diff(data.labels["position"].astype(np.int64))
    inside = np.setdiff1d(np.arange(data.n_states - 1), data.first_idx[1:] - 1)
    assert np.abs(steps[inside]).max() <= 1 and data.labels["position"].std() > 0
    policies = [load_policy(p) for p in (expert_zip, random_zip)]
    ranking = evaluate_policies(policies, data, ["fqe"], GAMMA, features="data+labels",
                                n_resamples=50)  # fmt: skip
    by_label = {r.label: r for r in ranking.reports}
    truth = corridor.expert_mean_value(GAMMA)
    expert = by_label[policies[0].label]
    assert expert.estimates["fqe"].value == pytest.approx(truth, abs=0.15)
    assert expert.estimates["fqe"].value > by_label[policies[1].label].estimates["fqe"].value
    assert load_logged_data(PLAIN).labels is None
    with pytest.raises(DatasetError, match="data\\+labels needs the privileged labels"):
        evaluate_policies(policies, load_logged_data(PLAIN), ["fqe"], GAMMA,
                          features="data+labels")  # fmt: skip


def test_fqe_ensemble_is_reported(expert_zip, datasets, tmp_path):
    """``--fqe-ensemble 3`` fits three Q-heads per policy; the JSON says so."""
    out = tmp_path / "rank.json"
    args = ["evaluate-offline", str(expert_zip), "--dataset", LOGGED, "--estimators", "fqe",
            "--gamma", "0.9", "--fqe-iters", "5", "--fqe-steps", "5", "--bootstrap", "20",
            "--fqe-ensemble", "3", "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["results"][0]["fqe"]["ensemble"] == 3
    assert report["meta"]["arguments"]["fqe_ensemble"] == 3


def test_fqe_horizon_is_the_datasets_time_limit_or_the_one_given(
    expert_zip, datasets, corridor, tmp_path
):
    """``--fqe-horizon auto`` takes the dataset's time limit (these corridor datasets record no
    env spec: none); a number cuts FQE's returns there, and the JSON and table say so."""
    out = tmp_path / "rank.json"
    base = ["evaluate-offline", str(expert_zip), "--dataset", LOGGED, "--estimators", "fqe",
            "--gamma", "0.9", "--fqe-iters", "5", "--fqe-steps", "5", "--bootstrap", "20",
            "--json", str(out)]  # fmt: skip
    assert main(base) == 0
    report = json.loads(out.read_text())
    assert report["horizon"] is None and report["results"][0]["fqe"]["horizon"] is None
    assert main([*base, "--fqe-horizon", str(corridor.MAX_STEPS)]) == 0
    report = json.loads(out.read_text())
    assert report["horizon"] == corridor.MAX_STEPS
    assert report["results"][0]["fqe"]["horizon"] == corridor.MAX_STEPS


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--dataset", LOGGED, "--fqe-horizon", "soon"], "--fqe-horizon"),
        (["--dataset", LOGGED, "--fqe-horizon", "1"], "longest logged episode"),
        (["--dataset", LOGGED, "--fqe-ensemble", "0"], "--fqe-ensemble"),
        (["--dataset", LOGGED, "--weight-clip", "0"], "--weight-clip"),
        (["--dataset", LOGGED, "--fqe-holdout", "0.9"], "--fqe-holdout"),
        (["--dataset", LOGGED, "--fqe-select", "--fqe-holdout", "0"], "--fqe-holdout"),
        (["--dataset", "test/corridor/one-v0"], "has 1 episode"),
        (["--dataset", LOGGED, "--estimators", "wis,magic"], "--estimators"),
        (["--dataset", PLAIN, "--behaviour", "logged"], "no logged behaviour probabilities"),
        (["--dataset", PLAIN, "--estimators", "fqe", "--rank-by", "dr"], "--rank-by"),
    ],
)
def test_bad_input_is_one_line(args, needle, expert_zip, datasets, capsys):
    assert main(["evaluate-offline", str(expert_zip), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and needle in err, err


def test_expert_without_logged_expert_actions_is_one_line(datasets, capsys):
    assert main(["evaluate-offline", "expert", "--dataset", PLAIN, "--estimators", "fqe"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no logged expert actions" in err


def test_missing_rewards_and_space_mismatch_are_refused(expert_zip, datasets, corridor):
    data = load_logged_data(PLAIN)
    data.rewards = data.rewards.copy()
    data.rewards[3] = np.nan
    with pytest.raises(DatasetError, match="no reward in 1 of"):
        evaluate_policies([load_policy(expert_zip)], data, ["fqe"], GAMMA)
    data = load_logged_data(PLAIN)
    data.observation_space.spaces.pop("lidar")
    with pytest.raises(DatasetError, match="lidar"):
        evaluate_policies([load_policy(expert_zip)], data, ["fqe"], GAMMA)


def test_estimator_names():
    assert parse_estimators("fqe, wis,is,dr") == ["fqe", "wpdis", "pdis", "dr"]
    with pytest.raises(ConfigError, match="allowed: fqe, pdis"):
        parse_estimators("fqe,xx")


def test_continuous_actions_stochastic_policy_and_estimated_gaussian_behaviour(
    datasets, corridor, tmp_path
):
    from stable_baselines3 import PPO

    from mmrl.envs.vec_env import BatchedVecEnv

    sim = corridor.ContinuousSimulator(1)
    corridor.write_dataset("test/corridor/cont-rank-v0",
                           corridor.collect(30, 0.5, seed=3, continuous=True), sim)  # fmt: skip
    data = load_logged_data("test/corridor/cont-rank-v0")
    venv = BatchedVecEnv(corridor.ContinuousSimulator(2))
    model = PPO("MultiInputPolicy", venv, policy_kwargs=corridor.policy_kwargs(), device="cpu")
    model.save(tmp_path / "cont.zip")
    policy = load_policy(tmp_path / "cont.zip")
    kwargs = {"iterations": 3, "steps_per_iter": 3, "n_resamples": 50}
    greedy = evaluate_policies([policy], data, ["fqe", "wis", "dr"], GAMMA, **kwargs)
    report = greedy.reports[0]
    assert "fqe" in report.estimates and set(report.skipped) == {"wpdis", "dr"}
    assert "no density" in report.skipped["wpdis"]
    sampled = evaluate_policies([policy], data, ["fqe", "wis", "dr"], GAMMA, stochastic=True,
                                **kwargs)  # fmt: skip
    assert sampled.behaviour.source == "estimated" and "Gaussian" in sampled.behaviour.description
    estimates = sampled.reports[0].estimates
    assert set(estimates) == {"fqe", "wpdis", "dr"}
    assert all(np.isfinite(e.value) and e.ess > 0 for e in (estimates["wpdis"], estimates["dr"]))
    # Self-normalized: each step's term is a weighted mean of that step's logged rewards.
    largest = np.zeros(int(data.step_of.max()) + 1)
    np.maximum.at(largest, data.step_of, np.abs(data.rewards))
    assert abs(estimates["wpdis"].value) <= (largest * GAMMA ** np.arange(len(largest))).sum()


# ---------------------------------------------------------------------------- several datasets
def test_several_datasets_are_one_log_whose_episodes_keep_their_own_behaviour(datasets):
    """``load_logged_data("a,b")``: episodes back to back, each transition still indexing its
    own states, each episode's logged probabilities those of the policy that acted in it."""
    a, b = load_logged_data(LOGGED), load_logged_data(NOISY)
    mix = load_logged_data(f"{LOGGED},{NOISY}")
    assert mix.dataset_id == f"{LOGGED},{NOISY}"
    assert (mix.n_episodes, mix.n_transitions, mix.n_states) == (
        a.n_episodes + b.n_episodes, a.n_transitions + b.n_transitions, a.n_states + b.n_states
    )  # fmt: skip
    both = np.concatenate([a.behaviour_log_prob, b.behaviour_log_prob])
    np.testing.assert_array_equal(mix.behaviour_log_prob, both)
    tail = slice(a.n_transitions, None)
    for key in mix.observations:  # the second part's transitions read the second part's states
        np.testing.assert_array_equal(mix.observations[key][mix.state_idx[tail]],
                                      b.observations[key][b.state_idx])  # fmt: skip
        np.testing.assert_array_equal(mix.observations[key][mix.state_idx[tail] + 1],
                                      b.observations[key][b.state_idx + 1])  # fmt: skip
    np.testing.assert_array_equal(mix.episode_of[tail], b.episode_of + a.n_episodes)
    np.testing.assert_array_equal(mix.first_idx[a.n_episodes :], b.first_idx + a.n_states)
    returns = np.concatenate([a.episode_returns(GAMMA), b.episode_returns(GAMMA)])
    np.testing.assert_array_equal(mix.episode_returns(GAMMA), returns)
    assert set(mix.labels) == set(a.labels) and len(mix.expert_actions) == mix.n_states
    assert [s["dataset_id"] for s in mix.metadata["sources"]] == [LOGGED, NOISY]
    assert mix.metadata["behaviour"]["mixture"]
    # Only what every part has is kept: PLAIN logged no probabilities, expert actions, labels.
    partial = load_logged_data([LOGGED, PLAIN])
    assert partial.behaviour_log_prob is None and partial.labels is None
    assert partial.expert_actions is None


def test_importance_weights_on_a_mixture_use_each_episodes_own_behaviour(datasets, corridor):
    """On one log from two behaviour policies (the expert at epsilon 0.3 and 0.6), PDIS of the
    expert is unbiased only if each episode is weighted by its own policy's probabilities:
    weighting the noisier part as if the 0.3-expert had acted sends the estimate off."""
    mix = load_logged_data(f"{LOGGED},{NOISY}")
    truth = corridor.expert_mean_value(GAMMA)
    ranking = evaluate_policies([load_policy("expert")], mix, ["pdis", "wpdis"], GAMMA,
                                n_resamples=300)  # fmt: skip
    assert ranking.behaviour.source == "logged"
    assert "each episode by its own policy" in ranking.behaviour.description
    assert "(epsilon 0.3," not in ranking.behaviour.description  # bare minari: no settings
    est = ranking.reports[0].estimates
    assert est["pdis"].value == pytest.approx(truth, abs=0.1), (est["pdis"].value, truth)
    assert est["wpdis"].interval.low < truth < est["wpdis"].interval.high
    # The same data with one behaviour policy (epsilon 0.3) assumed for every episode.
    e = mix.expert_actions[mix.state_idx]
    wrong = np.log((1 - 0.3) * (mix.actions == e) + 0.3 / 3)
    wrong_mix = dataclasses.replace(mix, behaviour_log_prob=wrong)
    bad = evaluate_policies([load_policy("expert")], wrong_mix, ["pdis"], GAMMA, n_resamples=50)
    wrong_estimate = bad.reports[0].estimates["pdis"]
    assert wrong_estimate.value < truth - 0.1 and wrong_estimate.interval.high < truth


def test_several_datasets_refusals(datasets, capsys):
    with pytest.raises(DatasetError, match="more than once"):
        load_logged_data(f"{LOGGED},{LOGGED}")
    with pytest.raises(DatasetError, match=CONTINUOUS):
        load_logged_data(f"{LOGGED},test/corridor/cont-mix-v0")
    args = ["evaluate-offline", "expert", "--dataset", f"{LOGGED},test/corridor/nothing-v0"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "test/corridor/nothing-v0" in err[0]


def test_cli_estimates_on_several_datasets(datasets, tmp_path, capsys):
    out = tmp_path / "rank.json"
    args = ["evaluate-offline", "expert", "random", "--dataset", f"{LOGGED},{NOISY}",
            "--estimators", "wis", "--gamma", "0.9", "--bootstrap", "50",
            "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "each episode by its own policy" in text
    assert json.loads(out.read_text())["ranking"] == ["expert", "random"]


def test_rank_reports_puts_unknown_values_last():
    """A policy whose ranking estimate is undefined (NaN: every weight 0) or missing is
    ranked after every policy with a value, never first."""

    def report(label: str, value: float | None) -> PolicyReport:
        estimates = (
            {}
            if value is None
            else {"cwpdis": Estimate("cwpdis", value, Interval(value, value - 1, value + 1))}
        )
        return PolicyReport(label, estimates, {}, None, None, 0.0)

    reports = [
        report("nan", float("nan")),
        report("low", -1.0),
        report("none", None),
        report("high", 2.0),
        report("inf", float("-inf")),
    ]
    assert [r.label for r in rank_reports(reports, "cwpdis")] == [
        "high",
        "low",
        "nan",
        "none",
        "inf",
    ]
