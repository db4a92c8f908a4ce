"""``scripts/modality_necessity.py``: its outputs, paired conditions and drops that are real."""

import json
import types

import numpy as np
import pytest

from mmrl.envs.driving.instructions import TASKS
from mmrl.envs.navigation.instructions import SHAPES
from mmrl.evaluation.rollouts import EvalSettings, make_eval_vec_env
from mmrl.make import resolve_env
from mmrl.policies import ReferencePolicy, policy_view

TURN_LEFT = 1  # Navigation's discrete action 1 turns in place: it never reaches a target.


@pytest.fixture(scope="module")
def nec(load_script):
    return load_script("modality_necessity")


def test_references_only_write_every_output_and_masks_leave_them_unchanged(nec, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--references-only", "--env", "navigation", "--episodes", "4", "--out", str(out)]
    assert nec.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"command: `python scripts/modality_necessity.py {' '.join(argv)}`" in printed
    assert "- date: " in printed and "- machine: " in printed and "| -text:zero |" in printed
    for name in ("necessity.json", "necessity.md", "necessity.png"):
        assert (out / name).stat().st_size > 0
    assert "| -camera:zero |" in (out / "necessity.md").read_text()

    data = json.loads((out / "necessity.json").read_text())
    assert data["meta"]["env_id"] == resolve_env("navigation").env_id
    assert data["meta"]["mask_kinds"] == {"expert": ["zero"], "random": ["zero"]}
    conditions = ["clean", "-camera:zero", "-lidar:zero", "-text:zero", "-state:zero"]
    assert list(data["results"]) == list(data["drops"]) == ["expert", "random"]
    for policy, splits in data["results"].items():
        assert list(splits) == ["train", "test"]
        for split, by_condition in splits.items():
            assert list(by_condition) == conditions
            clean = by_condition["clean"]
            assert set(clean["by_group"]) <= set(SHAPES)  # Navigation groups by target shape
            for rec in by_condition.values():
                assert rec["episodes"] == 4 and rec["ci"][0] <= rec["success"] <= rec["ci"][1]
                assert sum(g["episodes"] for g in rec["by_group"].values()) == 4
                # Same seeds, and neither policy reads observations: every masked condition
                # replays the clean episodes exactly (the expert uses privileged state).
                assert rec["success"] == clean["success"] and rec["by_group"] == clean["by_group"]
                assert rec["mean_return"] == clean["mean_return"]
            drops = data["drops"][policy][split]
            assert list(drops) == conditions[1:]
            assert all(d["drop"] == 0 and not d["significant"] for d in drops.values())
            assert all(d["ci"][0] < 0 < d["ci"][1] for d in drops.values())
        assert splits["train"]["clean"]["success"] >= (0.75 if policy == "expert" else 0.0)


def test_driving_groups_are_its_task_names(nec, tmp_path):
    out = tmp_path / "driving"
    argv = ["--references-only", "--references", "expert", "--env", "driving", "--splits",
            "train", "--modalities", "text", "--episodes", "4", "--out", str(out)]  # fmt: skip
    assert nec.main(argv) == 0
    data = json.loads((out / "necessity.json").read_text())
    groups = data["results"]["expert"]["train"]["clean"]["by_group"]
    assert groups and set(groups) <= set(TASKS)
    assert set(data["drops"]["expert"]["train"]["-text:zero"]["by_group"]) == set(groups)


class TextGatedExpert(ReferencePolicy):
    """Reads the instruction: the expert while the text is there, turning in place once it
    is gone, zeroed (all padding) or replaced in its extractor by the missing embedding."""

    def __init__(self, extractor) -> None:
        import torch as th

        super().__init__("expert")
        self.extractor = extractor
        self.policy = th.nn.ModuleDict({"features_extractor": extractor})

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        actions, _ = super().predict(observation)
        blind = ~np.asarray(observation["text"]).any(axis=1)
        if "text" in self.extractor.masked_modalities:
            blind[:] = True
        return np.where(blind, TURN_LEFT, actions), None


def test_masking_the_text_of_a_policy_that_reads_it_drops_its_success(nec):
    from mmrl.extractor import MultimodalExtractor

    env_config = resolve_env("navigation")
    venv = make_eval_vec_env(env_config, "train", 1, 0)
    space = policy_view(venv.observation_space)
    venv.close()
    model = TextGatedExpert(MultimodalExtractor(space, features_dim=8, fusion="mean", embed_dim=8))
    kinds = nec.mask_kinds_for(model, nec.MASK_KINDS)
    assert kinds == ["extractor", "zero"]
    settings = EvalSettings(episodes=8, n_resamples=20)
    measured = nec.measure(
        model, env_config, settings, ["text", "lidar"], kinds,
        ["train", "test"],
    )  # fmt: skip
    report = nec.build_report({"gated": measured})
    for split in ("train", "test"):
        results, drops = report["results"]["gated"][split], report["drops"]["gated"][split]
        assert results["clean"]["success"] >= 0.75
        for kind in kinds:
            # Masking reaches the policy with either kind: it loses the goal and every episode.
            assert results[f"-text:{kind}"]["success"] == 0.0
            assert drops[f"-text:{kind}"]["significant"]
            assert drops[f"-text:{kind}"]["drop"] == results["clean"]["success"]
            assert drops[f"-lidar:{kind}"]["drop"] == 0.0  # it never reads the lidar
            assert results[f"-text:{kind}"]["mask_kind"] == kind
    assert not model.extractor.masked_modalities  # the extractor mask is lifted afterwards
    verdicts = nec.verdicts(report["drops"]["gated"], ["text", "lidar"])
    assert verdicts["text"]["verdict"] == "necessary"
    assert verdicts["lidar"]["verdict"] == "not shown"
    table = nec.markdown(report, ["text", "lidar"])
    assert "- text: necessary (significant drop on train/extractor, train/zero" in table
    assert "success within T steps" not in table

    # Success within T steps comes from the successful episodes' kept lengths.
    clean_rec = report["results"]["gated"]["train"]["clean"]
    clean_result = measured["train"]["clean"]
    assert clean_rec["success_lengths"] == sorted(clean_result.lengths[clean_result.successes])
    longest = max(clean_rec["success_lengths"])
    assert nec.success_within(clean_rec, longest) == clean_rec["success"]
    assert nec.success_within(clean_rec, longest - 1) < clean_rec["success"]
    assert nec.success_within(clean_rec, 1) == 0.0  # nobody reaches a target in one step
    table = nec.markdown(report, ["text", "lidar"], within_steps=[1, longest])
    assert f"| T=1 | T={longest} | all |" in table
    clean_pct = round(100 * clean_rec["success"])
    assert f"| train | clean | 0% | {clean_pct}% | {clean_pct}% |" in table
    assert "| train | -text:extractor | 0% | 0% | 0% |" in table


def test_trains_a_tiny_agent_masks_it_both_ways_and_reuses_the_run(nec, toy, tmp_path, capsys):
    env, agent = toy.write_presets(tmp_path)
    out = tmp_path / "out"
    # The toy has no instruction splits and no batched expert: train split, random reference.
    argv = ["--train-steps", "64", "--env", env, "--agent", agent, "--set", "eval_episodes=1",
            "--splits", "train", "--modalities", "text", "--references", "random",
            "--episodes", "2", "--out", str(out)]  # fmt: skip
    assert nec.main(argv) == 0
    data = json.loads((out / "necessity.json").read_text())
    assert data["meta"]["mask_kinds"] == {"agent": ["extractor", "zero"], "random": ["zero"]}
    assert data["meta"]["policy"]["trained_here"] and (out / "run" / "model.zip").is_file()
    assert list(data["results"]["agent"]["train"]) == ["clean", "-text:extractor", "-text:zero"]
    assert list(data["results"]["random"]["train"]) == ["clean", "-text:zero"]
    assert set(data["verdicts"]) == {"agent"}
    capsys.readouterr()
    assert nec.main(argv) == 0
    assert "reusing" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--modalities", "sonar"], "--modalities: unknown 'sonar'; allowed: camera, lidar, text"),
        (["--mask-kinds", "noise"], "--mask-kinds: unknown 'noise'; allowed: extractor, zero"),
        (["--episodes", "0"], "--episodes must be >= 1, got 0"),
        (["--within-steps", "50,soon"], "--within-steps takes whole step counts like 50,75"),
        (["--within-steps", "0"], "--within-steps must be >= 1 each, got [0]"),
        (["--splits", "val"], "--splits: unknown 'val'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--env", "nowhere"], "nowhere"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(nec, tmp_path, capsys, argv, message):
    env = [] if "--env" in argv else ["--env", "navigation"]
    code = nec.main(["--references-only", *env, *argv, "--out", str(tmp_path / "o")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("modality_necessity.py: error: ") and message in lines[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no/such/run"], "policy no/such/run: no such run folder or model file"),
        ([], "give exactly one of: a policy"),
        (["--references-only"], "need --env PRESET"),
        (["--train-steps", "0", "--env", "navigation"], "--train-steps must be >= 1"),
    ],
)
def test_missing_policy_exits_2_with_one_line(nec, capsys, argv, message):
    assert nec.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_evaluation_seeds_must_be_held_out(nec):
    config = types.SimpleNamespace(
        seed=10_000, env=types.SimpleNamespace(n_envs=16), eval_seed=1_000_000, eval_episodes=32
    )
    with pytest.raises(nec.UsageError, match=r"overlap the run's training seeds 10000\.\.10015"):
        nec.check_held_out(config, 9_990, 20)
    with pytest.raises(nec.UsageError, match="periodic evaluation seeds"):
        nec.check_held_out(config, 1_000_031, 5)
    nec.check_held_out(config, 10_016, 100)
    nec.check_held_out(None, 0, 10)
