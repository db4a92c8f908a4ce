"""``mmrl tune`` end to end on the toy task: real SQLite storage, resume, pruning, best recipe."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import sys

import pytest
import yaml

optuna = pytest.importorskip("optuna")

from mmrl.cli import main  # noqa: E402
from mmrl.config import AgentConfig, from_dict, resolve_run_config  # noqa: E402
from mmrl.errors import ConfigError  # noqa: E402
from mmrl.tune import load_space, tune  # noqa: E402
from mmrl.tune.space import default_space, sample  # noqa: E402

#: Every trial: 64 steps on 2 copies, evaluated at step 32 and at the end on 2 episodes.
FAST = ["eval_episodes=2", "checkpoint_freq=64"]
SPACE = """\
extends: none
learning_rate: {path: agent.ppo.learning_rate, kind: float, low: 1.0e-4, high: 1.0e-2, log: true}
n_steps: {path: agent.ppo.n_steps, kind: categorical, choices: [8, 16]}
width: {path: [agent.policy.pi, agent.policy.vf], kind: categorical, choices: [[8], [16, 16]]}
"""


@pytest.fixture
def presets(toy, tmp_path):
    env, agent = toy.write_presets(tmp_path, camera_size=8)
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    return env, agent, str(space)


def _tune(presets, out, trials, **kwargs):
    env, agent, space = presets
    kwargs.setdefault("pruner", optuna.pruners.NopPruner())
    return tune(env, agent, trials=trials, steps=64, study="toy", out=out, space=space,
                overrides=FAST, evaluations=2, verbose=0, **kwargs)  # fmt: skip


def _rows(out):
    with (out / "trials.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_two_trials_resume_and_best_recipe_trains(presets, tmp_path):
    out = tmp_path / "study"
    first = _tune(presets, out, trials=1)
    assert first.complete == 1 and first.pruned == 0
    db = out / "study.db"
    assert db.is_file()
    assert first.storage == f"sqlite:///{db.resolve()}"
    (row,) = _rows(out)

    # An interrupted trial left "running" in the storage does not count toward --trials.
    optuna.load_study(study_name="toy", storage=first.storage).ask()
    second = _tune(presets, out, trials=2)
    assert second.complete == 2
    rows = _rows(out)
    complete = [r for r in rows if r["state"] == "complete"]
    assert len(complete) == 2
    assert complete[0] == row, "resuming must keep the first trial as it was"
    with sqlite3.connect(db) as con:  # the real SQLite file holds the trials
        (n,) = con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()
    assert n == 2
    for r in complete:
        assert r["n_steps"] in ("8", "16") and r["width"] in ("[8]", "[16, 16]")
        metrics = json.loads((out / "trials" / f"trial-{int(r['number']):04d}" /
                              "metrics.json").read_text())  # fmt: skip
        assert metrics["steps"] == 64
        assert float(r["value"]) == pytest.approx(metrics["eval"]["train"]["mean_return"])

    # Asking for the same total again runs nothing.
    again = _tune(presets, out, trials=2)
    assert again.complete == 2 and len(_rows(out)) == len(rows)

    for name in ("trials.md", "summary.md", "importances.json", "history.png", "parallel.png"):
        assert (out / name).stat().st_size > 0, name
    assert set(json.loads((out / "importances.json").read_text())) == {
        "learning_rate", "n_steps", "width"}  # fmt: skip

    best = second.best_recipe
    assert best == out / "best.yaml"
    recipe = from_dict(AgentConfig, yaml.safe_load(best.read_text()))
    best_row = max(complete, key=lambda r: float(r["value"]))
    assert recipe.ppo.learning_rate == pytest.approx(float(best_row["learning_rate"]))
    assert recipe.ppo.n_steps == int(best_row["n_steps"])
    assert recipe.policy.pi == recipe.policy.vf == json.loads(best_row["width"])
    assert recipe.extractor.fusion == "attention"  # untouched fields keep the base recipe's

    env, _, _ = presets
    run = tmp_path / "best-run"
    args = ["train", "--env", env, "--agent", str(best), "--steps", "32", "--device", "cpu",
            "--out", str(run), "--quiet", "--set", "eval_freq=0",
            "--set", "eval_episodes=1"]  # fmt: skip
    assert main(args) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["agent"]["ppo"]["n_steps"] == recipe.ppo.n_steps


def test_a_trial_behind_the_pruner_stops_early_and_is_pruned(presets, tmp_path):
    out = tmp_path / "study"
    # Every intermediate value is below the threshold: the trial is pruned at its first
    # periodic evaluation (step 32 of 64), not trained to the end.
    result = _tune(presets, out, trials=1, pruner=optuna.pruners.ThresholdPruner(lower=1e9))
    assert (result.complete, result.pruned) == (0, 1)
    assert result.best_recipe is None and not (out / "best.yaml").exists()
    (row,) = _rows(out)
    assert row["state"] == "pruned" and row["pruned_at"] == "32"
    metrics = json.loads((out / "trials" / "trial-0000" / "metrics.json").read_text())
    assert metrics["steps"] == 32 and metrics["stopped_early_at"] == 32
    study = optuna.load_study(study_name="toy", storage=result.storage)
    assert study.trials[0].intermediate_values.keys() == {32}


def test_the_default_space_resolves_for_the_presets():
    space = default_space()
    assert {"learning_rate", "n_steps", "batch_size", "n_epochs", "ent_coef", "clip_range",
            "gamma", "gae_lambda", "net_width", "fusion", "features_dim",
            "modality_dropout"} <= set(space)  # fmt: skip
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        overrides = sample(space, study.ask(), "ppo")
        config = resolve_run_config("driving", "ppo-concat", overrides)
        assert config.agent.ppo.n_steps in (64, 128, 256, 512)
        assert config.agent.policy.pi == config.agent.policy.vf


def test_a_space_file_merges_over_the_default(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("fusion: null\nn_epochs: {path: agent.ppo.n_epochs, kind: int, low: 2, "
                    "high: 3}\n")  # fmt: skip
    space = load_space(path)
    assert "fusion" not in space and (space["n_epochs"].low, space["n_epochs"].high) == (2, 3)
    assert "learning_rate" in space


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: {path: env.n_envs, kind: int, low: 1, high: 2}", "must be a path under agent."),
        ("lr: {path: agent.ppo.lr, kind: float, low: 0.1, high: 1}", "'agent.ppo.lr' is not"),
        ("lr: {path: agent.ppo.gamma, kind: normal}", "kind must be one of"),
        ("lr: {path: agent.ppo.gamma, kind: float, low: 1, high: 0}", "needs low <= high"),
        ("lr: {path: agent.ppo.gamma, kind: categorical}", "needs choices"),
        ("lr: {path: agent.ppo.gamma, kind: float, low: 0, high: 1, log: true}", "log scale"),
        ("lr: {path: agent.ppo.gamma, knd: float}", "unknown key 'knd'"),
        ("nothing: null", "there is none of that name"),
        ("extends: none", "the search space is empty"),
    ],
)
def test_bad_space_files_are_refused(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_space(path)


def test_show_space_prints_the_default_space(capsys):
    assert main(["tune", "--show-space"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["learning_rate"]["path"] == "agent.ppo.learning_rate"


def test_bad_inputs_exit_2_with_one_line(presets, tmp_path, capsys):
    env, agent, space = presets
    out = tmp_path / "study"
    base = ["tune", "--env", env, "--agent", agent, "--steps", "64", "--out", str(out),
            "--space", space, "--quiet", "--set", "eval_episodes=2"]  # fmt: skip
    cases = [
        ([*base, "--study", "a", "--trials", "0"], "--trials must be >= 1"),
        ([*base, "--study", "a", "--workers", "0"], "--workers must be >= 1"),
        (base, "--study NAME is required"),
        ([*base, "--study", "a", "--env", "nowhere"], "unknown env preset 'nowhere'"),
        ([*base, "--study", "a", "--space", str(tmp_path / "none.yaml")], "--space search"),
        ([*base, "--study", "a", "--storage", "nosuchdb://x"], "--storage cannot open"),
        ([*base, "--study", "a", "--set", "agent.ppo.nope=1"], "unknown key 'nope'"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (args, err)
    assert not list(out.glob("trials/*")), "no trial may run on bad input"


def test_a_study_resumed_with_other_settings_is_refused(presets, tmp_path):
    out = tmp_path / "study"
    result = _tune(presets, out, trials=1)
    assert result.complete == 1
    env, agent, space = presets
    with pytest.raises(ConfigError, match=r"study 'toy' .* other settings \(steps differ\)"):
        tune(env, agent, trials=2, steps=32, study="toy", out=out, space=space,
             overrides=FAST, evaluations=2, verbose=0)  # fmt: skip


@pytest.mark.slow
def test_two_worker_processes_share_one_study(tmp_path):
    """``--workers 2``: spawned processes share the SQLite study and stop at the total."""
    space = tmp_path / "space.yaml"
    space.write_text("extends: none\nlearning_rate: {path: agent.ppo.learning_rate, "
                     "kind: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")  # fmt: skip
    small = ["env.n_envs=2", "agent.ppo.n_steps=16", "agent.ppo.batch_size=32",
             "agent.ppo.n_epochs=1", "agent.extractor.features_dim=32", *FAST]  # fmt: skip
    result = tune("driving", "ppo-concat", trials=3, steps=64, study="w", workers=2,
                  out=tmp_path / "w", space=space, overrides=small, evaluations=2,
                  verbose=0)  # fmt: skip
    assert (result.complete, result.pruned, result.failed) == (3, 0, 0)
    runs = {r["run"] for r in _rows(tmp_path / "w")}
    assert len(runs) == 3 and all((tmp_path / "w" / "trials").iterdir())


def test_backend_options_are_checked_before_the_study(presets, tmp_path, capsys, monkeypatch):
    env, agent, space = presets
    out = tmp_path / "study"
    base = ["tune", "--env", env, "--agent", agent, "--steps", "64", "--out", str(out),
            "--space", space, "--quiet", "--study", "a"]  # fmt: skip
    assert main([*base, "--address", "auto"]) == 2
    assert "--address applies to --backend ray only" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main([*base, "--backend", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "mmrl[ray]"' in err, err
    assert not (out / "study.db").exists(), "nothing may be opened on bad input"


def test_tracked_trials_are_grouped_by_study(presets, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    result = _tune(presets, tmp_path / "study", trials=1, track="mlflow")
    assert result.complete == 1
    (run,) = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("mmrl").experiment_id]
    )
    assert run.data.tags["mmrl.group"] == "toy" and run.info.run_name == "trial-0000"
    assert "eval/train/mean_return" in run.data.metrics


@pytest.mark.slow
def test_ray_backend_resumes_a_study_the_local_backend_began(tmp_path):
    """Two tiny trials: one in this process, the second as a Ray task on a local Ray with
    one CPU, against the same SQLite study (and so either backend resumes the other's)."""
    pytest.importorskip("ray")
    space = tmp_path / "space.yaml"
    space.write_text("extends: none\nlearning_rate: {path: agent.ppo.learning_rate, "
                     "kind: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")  # fmt: skip
    small = ["env.n_envs=2", "agent.ppo.n_steps=16", "agent.ppo.batch_size=32",
             "agent.ppo.n_epochs=1", "agent.extractor.features_dim=32", *FAST]  # fmt: skip
    common = dict(steps=64, study="r", out=tmp_path / "r", space=space, overrides=small,
                  evaluations=2, verbose=0, pruner=optuna.pruners.NopPruner())  # fmt: skip
    first = tune("driving", "ppo-concat", trials=1, **common)
    assert first.complete == 1
    second = tune("driving", "ppo-concat", trials=2, backend="ray", workers=1, **common)
    assert (second.complete, second.pruned, second.failed) == (2, 0, 0)
    rows = _rows(tmp_path / "r")
    assert [r["number"] for r in rows] == ["0", "1"]
    trials = optuna.load_study(study_name="r", storage=second.storage).trials
    pids = [int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in trials]
    assert pids[0] == os.getpid() != pids[1], "the second trial must run in a Ray worker"
    for r in rows:
        metrics = json.loads((tmp_path / "r" / "trials" / f"trial-{int(r['number']):04d}" /
                              "metrics.json").read_text())  # fmt: skip
        assert metrics["steps"] == 64
        assert float(r["value"]) == pytest.approx(metrics["eval"]["test"]["mean_return"])
