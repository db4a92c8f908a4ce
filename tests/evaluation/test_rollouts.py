import numpy as np
import pytest

from mmrl.config import ConfigError
from mmrl.evaluation.encoding import decode_video
from mmrl.evaluation.loading import (
    SpaceMismatchError,
    load_model,
    resolve_env_config,
    resolve_target,
)
from mmrl.evaluation.robustness import comparisons, parse_conditions
from mmrl.evaluation.rollouts import EvalSettings, GroupNamer, evaluate_model
from mmrl.evaluation.video import VideoRecorder, episode_slots, format_action
from mmrl.rollout import Episode


def _run(path, corridor, ablate=None, noise=(), splits=("train",), recorder=None, **kwargs):
    target = resolve_target(path)
    model = load_model(target, "cpu")
    env = resolve_env_config(target, corridor.ENV_ID)
    settings = EvalSettings(**{"episodes": 24, "n_envs": 6, "n_resamples": 200, **kwargs})
    results = evaluate_model(
        model, env, settings, parse_conditions(ablate, list(noise)), splits, recorder
    )
    return model, results


def test_expert_clean_evaluation_matches_the_exact_value(expert_zip, corridor):
    _, (result,) = _run(expert_zip, corridor)
    assert result.episodes == 24 and result.condition.is_clean
    assert result.success_rate.value == 1.0 and result.collision_rate.value == 0.0
    assert result.success_rate.low < 1.0  # Wilson intervals never collapse
    # Every episode is a shortest walk: return = 1 - 0.05 * length.
    np.testing.assert_allclose(result.returns, 1.0 - 0.05 * result.lengths, atol=1e-5)
    assert result.mean_return.low <= result.mean_return.value <= result.mean_return.high
    assert result.reward_terms["goal"] == pytest.approx(1.0)
    # Groups are named through the simulator's label_names (reached through a DummyVecEnv).
    assert set(result.by_group) == {"left", "right"}
    assert sum(g.episodes for g in result.by_group.values()) == 24


def test_evaluation_is_reproducible_and_seed_dependent(random_zip, corridor):
    _, (a,) = _run(random_zip, corridor, seed=5)
    _, (b,) = _run(random_zip, corridor, seed=5)
    _, (c,) = _run(random_zip, corridor, seed=6)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert a.mean_return == b.mean_return
    assert not np.array_equal(a.lengths, c.lengths)


@pytest.mark.parametrize("mode", ["auto", "zero"])
def test_removing_the_text_breaks_the_expert_but_lidar_does_not(expert_zip, corridor, mode):
    model, results = _run(expert_zip, corridor, ablate="text,lidar", ablate_mode=mode)
    clean, no_text, no_lidar = results
    assert [r.condition.name for r in results] == ["clean", "-text", "-lidar"]
    # The goal is only in the text: without it the policy cannot serve both sides (the
    # seeds' goals are unbalanced, so the overall rate alone could stay high).
    assert min(g.success_rate.value for g in no_text.by_group.values()) <= 0.5
    assert min(g.success_rate.value for g in clean.by_group.values()) == 1.0
    # The camera alone also shows the position, so removing the lidar barely matters.
    assert no_lidar.success_rate.value >= 0.8
    deltas = {c.result.condition.name: c.deltas for c in comparisons(results)}
    assert deltas["-text"]["success_rate"].value == pytest.approx(
        no_text.success_rate.value - clean.success_rate.value
    )
    assert deltas["-text"]["success_rate"].value < 0
    from mmrl.extractor import multimodal_extractors

    assert all(not e.masked_modalities for e in multimodal_extractors(model.policy))


def test_text_noise_hurts_and_is_reported_against_clean(expert_zip, corridor):
    _, results = _run(expert_zip, corridor, noise=["text.word_dropout=1.0", "camera=0.05"])
    compared = {c.result.condition.name: c for c in comparisons(results)}
    assert set(compared) == {"noise text.word_dropout=1.0", "noise camera=0.05"}
    no_text = compared["noise text.word_dropout=1.0"]
    assert no_text.deltas["success_rate"].value < 0
    assert min(g.success_rate.value for g in no_text.result.by_group.values()) <= 0.5
    assert compared["noise camera=0.05"].result.success_rate.value >= 0.8


def test_bench_ablation_is_mmrl_evaluate_ablate_on_the_same_seeds(expert_zip, corridor):
    """``mmrl bench``'s per-modality figures are ``evaluate_model``'s for the same seeds and
    copies (issue 14: one evaluation loop), and masking the goal's only sensor changes them."""
    from mmrl.bench.runner import ablate_modalities
    from mmrl.config import RunConfig

    model, results = _run(
        expert_zip, corridor, ablate="camera,lidar,text,state", seed=77, ablate_mode="extractor"
    )
    env = resolve_env_config(resolve_target(expert_zip), corridor.ENV_ID)
    env.n_envs = 6  # bench steps min(episodes, n_envs) copies, as _run does
    record = ablate_modalities(model, RunConfig(env=env, eval_seed=77), 24)
    by_name = {r.condition.name.lstrip("-").replace("clean", "none"): r for r in results}
    assert set(record) == set(by_name) == {"none", "camera", "lidar", "text", "state"}
    for key, summary in record.items():
        result = by_name[key]
        assert summary["episodes"] == 24
        assert summary["mean_return"] == pytest.approx(result.mean_return.value, abs=1e-12)
        assert summary["success_rate"] == pytest.approx(result.success_rate.value, abs=1e-12)
        assert summary["mean_length"] == pytest.approx(result.mean_length.value, abs=1e-12)
        assert summary["collision_rate"] == pytest.approx(result.collision_rate.value, abs=1e-12)
    assert record["none"]["success_rate"] == 1.0
    assert record["text"]["mean_return"] < record["none"]["mean_return"]


def test_bad_ablation_and_noise_are_config_errors(expert_zip, corridor):
    with pytest.raises(ConfigError, match=r"unknown observation key\(s\) \['depth'\]"):
        _run(expert_zip, corridor, ablate="depth")
    with pytest.raises(ConfigError, match="--noise"):
        parse_conditions(None, ["sonar=0.1"])
    with pytest.raises(ConfigError, match="--ablate"):
        parse_conditions(",", [])


def test_model_for_another_environment_is_refused_naming_keys(expert_zip):
    target = resolve_target(expert_zip)
    model = load_model(target, "cpu")
    env = resolve_env_config(target, "mmrl/Navigation-v1")
    with pytest.raises(SpaceMismatchError) as err:
        evaluate_model(model, env, EvalSettings(episodes=1, n_envs=1))
    message = str(err.value)
    assert "environment mmrl/Navigation-v1" in message
    assert "key 'camera'" in message and "key 'lidar'" in message and "action space" in message


def test_video_has_one_frame_per_step_of_the_recorded_episodes(expert_zip, corridor, tmp_path):
    recorder = VideoRecorder(tmp_path / "eval.mp4", n_videos=3, fps=10)
    _run(expert_zip, corridor, recorder=recorder, seed=77)
    path = recorder.write()
    # The first episode of copies 0, 1 and 2; the expert walks straight to its goal.
    expected = 0
    for copy in range(3):
        sim = corridor.Simulator(1)
        sim.seed([77 + copy])
        sim.reset_envs()
        goal_cell = 0 if sim.goal[0] == 0 else corridor.CELLS - 1
        expected += abs(int(sim.pos[0]) - goal_cell)
    assert recorder.frame_count() == expected
    codec, frames = decode_video(path)
    assert codec == "h264"  # what browsers, VS Code, Jupyter and TensorBoard play
    assert len(frames) == expected
    height, width = frames[0].shape[:2]
    assert width == 512 and height % 2 == 0 and height > 256
    assert frames[0][:256].std() > 0  # camera and lidar panels are drawn


def test_format_action():
    assert format_action(np.int64(3)) == "3"
    assert format_action(np.array([0.5, -1.0], dtype=np.float32)) == "[0.50, -1.00]"


def test_episode_slots_stay_within_quotas():
    assert episode_slots(5, 4, 5) == [(0, 0), (1, 0), (2, 0), (3, 0), (3, 1)]
    assert episode_slots(10, 2, 3) == [(0, 0), (1, 0), (0, 1)]
    assert len(episode_slots(2, 4, 3)) == 2


def test_video_recorder_rejects_bad_paths(tmp_path):
    with pytest.raises(ConfigError, match=r"\.mp4 \(H\.264\), \.webm \(VP9\) or \.gif"):
        VideoRecorder(tmp_path / "x.avi")
    with pytest.raises(ConfigError, match="does not exist"):
        VideoRecorder(tmp_path / "missing" / "x.mp4")


def _episode(instruction="", labels=None):
    return Episode(1.0, 3, True, False, instruction, {}, 0, labels or {})


def test_group_namer_modes():
    ep = _episode("Follow the red car", {"instruction_type": 3, "target_color": 0})
    names = {"instruction_type": ("a", "b", "c", "follow")}
    assert GroupNamer("auto", names)(ep) == "follow"
    assert GroupNamer("auto")(ep) == "instruction_type=3"
    assert GroupNamer("verb")(ep) == "follow"
    assert GroupNamer("instruction")(ep) == "Follow the red car"
    assert GroupNamer("label:target_color", {"target_color": ("red",)})(ep) == "red"
    assert GroupNamer("none")(ep) == "all"
    assert GroupNamer("auto")(_episode("go to the ball")) == "go"
    assert GroupNamer("auto")(_episode()) == "(none)"
    with pytest.raises(ConfigError, match="no label 'speed'"):
        GroupNamer("label:speed")(ep)
    with pytest.raises(ConfigError, match="--group-by"):
        GroupNamer("colour")


def test_continuous_actions_evaluate_and_show_in_the_video(corridor, tmp_path):
    from stable_baselines3 import PPO

    from mmrl.envs.vec_env import BatchedVecEnv

    venv = BatchedVecEnv(corridor.ContinuousSimulator(2))
    model = PPO("MultiInputPolicy", venv, policy_kwargs=corridor.policy_kwargs(), device="cpu")
    model.save(tmp_path / "cont.zip")
    target = resolve_target(tmp_path / "cont.zip")
    env = resolve_env_config(target, corridor.CONTINUOUS_ENV_ID)
    recorder = VideoRecorder(tmp_path / "cont.mp4", n_videos=1)
    settings = EvalSettings(episodes=4, n_envs=2, n_resamples=50)
    (result,) = evaluate_model(load_model(target), env, settings, recorder=recorder)
    assert result.episodes == 4 and 1 <= result.mean_length.value <= corridor.MAX_STEPS
    assert recorder.frame_count() >= 1
    assert recorder.recorded[0][0].action.shape == (1,)
    codec, frames = decode_video(recorder.write())
    assert codec == "h264" and len(frames) == recorder.frame_count()


@pytest.mark.parametrize("eval_kwargs", [{}, {"instruction_split": "test", "lanes": 3}])
def test_train_and_evaluate_hold_out_the_same_split(monkeypatch, eval_kwargs):
    """``mmrl train``'s periodic evaluation (``build_vec_env(..., "test")``) and ``mmrl
    evaluate --split test`` (``make_eval_vec_env``) build the test env with the same kwargs."""
    import mmrl.make
    from mmrl.agent import build_vec_env
    from mmrl.config import resolve_run_config
    from mmrl.evaluation.rollouts import make_eval_vec_env

    seen = []

    def record(env, n_envs=None, seed=None, n_workers=1, **kw):
        seen.append(kw)  # n_workers: the training env's, not an env kwarg

    monkeypatch.setattr(mmrl.make, "make_training_vec_env", record)
    config = resolve_run_config("driving", "ppo-concat")
    config.env.eval_kwargs = dict(eval_kwargs)
    build_vec_env(config, 0, 1, "test")
    make_eval_vec_env(config.env, "test", 1, 0)
    build_vec_env(config, 0, 1, "train")
    make_eval_vec_env(config.env, "train", 1, 0)
    assert seen[0] == seen[1] == (eval_kwargs or {"instruction_split": "test"})
    assert seen[2] == seen[3] == {}


@pytest.mark.parametrize("eval_kwargs", [{}, {"instruction_split": "test"}])
def test_train_and_bench_evaluate_the_same_splits(monkeypatch, tmp_path, eval_kwargs):
    """One rule (:func:`mmrl.agent.evaluation_splits`) picks the splits of ``mmrl train``'s
    periodic evaluation and of ``mmrl bench``'s final one: the test split only where the
    preset holds instructions out."""
    import mmrl.callbacks
    import mmrl.evaluation.rollouts
    from mmrl.agent import evaluation_splits
    from mmrl.bench.runner import evaluate_cell
    from mmrl.config import resolve_run_config
    from mmrl.runs import RunFolder
    from mmrl.train import _evaluator

    config = resolve_run_config("driving", "ppo-concat")
    config.env.eval_kwargs = dict(eval_kwargs)
    expected = ("train", "test") if eval_kwargs else ("train",)
    assert evaluation_splits(config.env) == expected

    periodic = {}
    monkeypatch.setattr(
        mmrl.callbacks, "HeldOutEvalCallback", lambda envs, **kw: periodic.update(envs)
    )
    _evaluator(config, RunFolder(tmp_path), model=None, resumed=None, on_evaluation=None)
    assert tuple(periodic) == expected

    final = []

    def fake_evaluate(policy, env, settings, conditions, splits):
        final.extend(splits)
        return [mmrl.evaluation.rollouts.EvalResult.__new__(mmrl.evaluation.rollouts.EvalResult)]

    monkeypatch.setattr(mmrl.evaluation.rollouts, "evaluate_model", fake_evaluate)
    monkeypatch.setattr("mmrl.bench.runner._summary_with_groups", lambda result: {})
    evaluate_cell(policy=None, config=config, episodes=4, ablate=False)
    assert tuple(final) == expected
