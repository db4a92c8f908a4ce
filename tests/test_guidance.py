"""Expert guidance (``agent.guidance``): labels aligned with the rollout, a pass that moves
the policy towards the expert, the weight's decay, and the refusals."""

import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO

from mmrl import MultimodalExtractor, make_vec_env
from mmrl.cli import main
from mmrl.config import ConfigError, GuidanceConfig
from mmrl.envs.vec_env import find_expert
from mmrl.guidance import ExpertGuidanceCallback
from mmrl.train import train

SENSORS = {"camera_size": 16, "lidar_beams": 16}


def _model(n_steps: int = 8, seed: int = 3, **env_kwargs) -> PPO:
    venv = make_vec_env("mmrl/Driving-v1", n_envs=2, seed=seed, **SENSORS, **env_kwargs)
    return PPO(
        "MultiInputPolicy",
        venv,
        n_steps=n_steps,
        batch_size=16,
        n_epochs=1,
        learning_rate=1e-3,
        seed=seed,
        policy_kwargs={"features_extractor_class": MultimodalExtractor,
                       "features_extractor_kwargs": {"features_dim": 32}},
    )  # fmt: skip


def _pending_after_one_rollout(model: PPO, guidance: GuidanceConfig) -> tuple:
    cb = ExpertGuidanceCallback(guidance, batch_size=16, max_grad_norm=0.5)
    seen = []
    cb._fit = lambda obs, labels, weight: seen.append((obs, labels)) or (0.0, 0.0)  # type: ignore[method-assign]
    model.learn(total_timesteps=model.n_steps * model.n_envs, callback=cb)
    assert len(seen) == 1  # the pass ran once, at the end of training, on the one rollout
    return seen[0]


def test_labels_are_the_experts_actions_for_the_rollouts_observations():
    model = _model()
    obs, labels = _pending_after_one_rollout(model, GuidanceConfig(weight=1.0))
    assert labels.shape == (8, 2)
    # Replay the same seeded env with the rollout's actions; the expert's action before each
    # step must be the recorded label of that step's observation.
    replay = make_vec_env("mmrl/Driving-v1", n_envs=2, seed=3, **SENSORS)
    replay.seed(3)  # as PPO(seed=3) seeded the training env before its first reset
    state = replay.reset()["state"]
    expert = find_expert(replay)
    buffer = model.rollout_buffer
    assert buffer.generator_ready  # train() flattened it copy-major: row = copy * n_steps + t
    actions = buffer.actions.reshape(2, 8).astype(np.int64)
    for t in range(8):
        np.testing.assert_array_equal(obs["state"][t], state)
        np.testing.assert_array_equal(labels[t], expert())
        state = replay.step(actions[:, t])[0]["state"]


def test_the_pass_moves_the_policy_towards_the_expert():
    model = _model(n_steps=32)
    obs, labels = _pending_after_one_rollout(model, GuidanceConfig(weight=1.0))
    cb = ExpertGuidanceCallback(GuidanceConfig(weight=1.0, epochs=1), 16, 0.5)
    cb.init_callback(model)
    th.manual_seed(0)
    first, _ = cb._fit(obs, labels, 1.0)
    for _ in range(40):
        last, agreement = cb._fit(obs, labels, 1.0)
    assert last < 0.5 * first, (first, last)
    assert agreement > 0.75, agreement


def test_the_weight_decays_linearly_to_zero():
    cb = ExpertGuidanceCallback(GuidanceConfig(weight=2.0, decay_steps=100), 16, 0.5)
    assert [cb.weight(s) for s in (0, 50, 100, 500)] == [2.0, 1.0, 0.0, 0.0]
    constant = ExpertGuidanceCallback(GuidanceConfig(weight=2.0), 16, 0.5)
    assert constant.weight(10**9) == 2.0


def test_continuous_actions_fit_the_mean():
    model = _model(n_steps=16, continuous=True)
    obs, labels = _pending_after_one_rollout(model, GuidanceConfig(weight=1.0))
    assert labels.shape == (16, 2, 2)
    cb = ExpertGuidanceCallback(GuidanceConfig(weight=1.0), 16, 0.5)
    cb.init_callback(model)
    log_std = model.policy.log_std.detach().clone()
    first, _ = cb._fit(obs, labels, 1.0)
    for _ in range(10):
        last, _ = cb._fit(obs, labels, 1.0)
    assert last < first
    assert th.equal(model.policy.log_std.detach(), log_std)  # exploration stays PPO's


TINY = ["agent.ppo.n_steps=64", "agent.ppo.batch_size=128", "agent.ppo.n_epochs=1",
        "agent.extractor.features_dim=64", "eval_freq=0", "eval_episodes=1",
        "env.kwargs.camera_size=16"]  # fmt: skip


def test_train_logs_the_guidance(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    args = ["train", "--env", "driving", "--steps", "768", "--n-envs", "4", "--out", str(out),
            "--quiet", "--expert-guidance", "0.5", "--guidance-decay", "100000"]  # fmt: skip
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    acc = EventAccumulator(str(next((out / "tb").iterdir())))
    acc.Reload()
    weights = [e.value for e in acc.Scalars("guidance/weight")]
    assert weights and all(0.49 < w < 0.5 for w in weights)
    assert "guidance/agreement" in acc.Tags()["scalars"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["agent.guidance.weight=-1"], "agent.guidance.weight"),
        (["agent.guidance.weight=1", "agent.guidance.decay_steps=-5"], "decay_steps"),
        (["agent.guidance.weight=1", "agent.guidance.epochs=0"], "epochs"),
        (["agent.guidance.weight=1", "agent.algo=recurrent-ppo"], "needs agent.algo ppo or a2c"),
    ],
)
def test_bad_guidance_is_refused_before_the_run_folder(tmp_path, overrides, message):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        train("driving", steps=64, n_envs=2, out=out, overrides=[*TINY, *overrides], verbose=0)
    assert not out.exists()


def test_an_env_without_an_expert_is_refused():
    from gymnasium import spaces
    from stable_baselines3.common.vec_env import DummyVecEnv

    from mmrl.config import RunConfig
    from mmrl.guidance import check_guidance
    from mmrl.testing import RandomDictEnv

    space = spaces.Dict({"state": spaces.Box(-1.0, 1.0, (3,))})
    venv = DummyVecEnv([lambda: RandomDictEnv(space)])
    config = RunConfig()
    check_guidance(config, venv)  # no guidance asked: fine
    config.agent.guidance.weight = 1.0
    with pytest.raises(ConfigError, match="scripted expert"):
        check_guidance(config, venv)


def test_cli_refuses_guidance_on_a_resumed_run(capsys):
    assert main(["train", "--resume", "nowhere", "--expert-guidance", "1"]) == 2
    assert "cannot change a resumed run" in capsys.readouterr().err
