"""Expert guidance (``agent.guidance``): labels aligned with the rollout, a pass that moves
the policy towards the expert, the weight's decay, the privileged-label loss (aligned,
fitted, kept across a resume), and the refusals."""

import copy

import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO

from mmrl import MultimodalExtractor, make_vec_env
from mmrl.cli import main
from mmrl.config import ConfigError, GuidanceConfig
from mmrl.envs.vec_env import find_expert, find_labels
from mmrl.guidance import ExpertGuidanceCallback, _lstm_sequences
from mmrl.train import train

SENSORS = {"camera_size": 16, "lidar_beams": 16}


def _model(n_steps: int = 8, seed: int = 3, features_dim: int = 32, **env_kwargs) -> PPO:
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
                       "features_extractor_kwargs": {"features_dim": features_dim}},
    )  # fmt: skip


def _pending_after_one_rollout(model: PPO, guidance: GuidanceConfig) -> tuple:
    """``(obs, expert actions, privileged labels)`` of the one rollout of a short run."""
    cb = ExpertGuidanceCallback(guidance, batch_size=16, max_grad_norm=0.5)
    seen = []
    cb._fit = lambda obs, actions, labels, weight, memory: seen.append((obs, actions, labels)) or {}  # type: ignore[method-assign]
    model.learn(total_timesteps=model.n_steps * model.n_envs, callback=cb)
    assert len(seen) == 1  # the pass ran once, at the end of training, on the one rollout
    return seen[0]


def _fit(cb: ExpertGuidanceCallback, obs, actions, weight: float = 1.0) -> tuple[float, float]:
    metrics = cb._fit(obs, actions, None, weight)
    return metrics["loss"], metrics["agreement"]


def test_labels_are_the_experts_actions_for_the_rollouts_observations():
    model = _model()
    obs, labels, privileged = _pending_after_one_rollout(model, GuidanceConfig(weight=1.0))
    assert privileged is None  # no label loss asked: the labels are not read
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
    obs, labels, _ = _pending_after_one_rollout(model, GuidanceConfig(weight=1.0))
    cb = ExpertGuidanceCallback(GuidanceConfig(weight=1.0, epochs=1), 16, 0.5)
    cb.init_callback(model)
    th.manual_seed(0)
    first, _ = _fit(cb, obs, labels)
    for _ in range(40):
        last, agreement = _fit(cb, obs, labels)
    assert last < 0.5 * first, (first, last)
    assert agreement > 0.75, agreement


def test_the_weight_decays_linearly_to_zero():
    cb = ExpertGuidanceCallback(GuidanceConfig(weight=2.0, decay_steps=100), 16, 0.5)
    assert [cb.weight(s) for s in (0, 50, 100, 500)] == [2.0, 1.0, 0.0, 0.0]
    constant = ExpertGuidanceCallback(GuidanceConfig(weight=2.0), 16, 0.5)
    assert constant.weight(10**9) == 2.0


def test_continuous_actions_fit_the_mean():
    model = _model(n_steps=16, continuous=True)
    obs, labels, _ = _pending_after_one_rollout(model, GuidanceConfig(weight=1.0))
    assert labels.shape == (16, 2, 2)
    cb = ExpertGuidanceCallback(GuidanceConfig(weight=1.0), 16, 0.5)
    cb.init_callback(model)
    log_std = model.policy.log_std.detach().clone()
    first, _ = _fit(cb, obs, labels)
    for _ in range(10):
        last, _ = _fit(cb, obs, labels)
    assert last < first
    assert th.equal(model.policy.log_std.detach(), log_std)  # exploration stays PPO's


def _recurrent_model(skip: bool = False):
    """A small RecurrentPPO (32-step rollouts of 2 copies, a 16-unit LSTM) on Driving-v1;
    ``skip``: with mmrl's :class:`~mmrl.recurrent.SkipLstmPolicy` (features beside memory)."""
    from sb3_contrib import RecurrentPPO

    from mmrl.recurrent import SkipLstmPolicy

    venv = make_vec_env("mmrl/Driving-v1", n_envs=2, seed=5, **SENSORS)
    policy = SkipLstmPolicy if skip else "MultiInputLstmPolicy"
    return RecurrentPPO(
        policy, venv, n_steps=32, batch_size=16, n_epochs=1, seed=5,
        policy_kwargs={"features_extractor_class": MultimodalExtractor,
                       "features_extractor_kwargs": {"features_dim": 32},
                       "lstm_hidden_size": 16},
    )  # fmt: skip


@pytest.mark.parametrize("skip", [False, True])
def test_recurrent_pass_steps_the_lstm_from_the_states_the_rollout_recorded(skip):
    """The pass evaluates each observation from the actor LSTM's state of that very step: before
    any update its log-probabilities of the rollout's actions are the rollout's own (with the
    features beside the memory too)."""
    model = _recurrent_model(skip)
    cb = ExpertGuidanceCallback(GuidanceConfig(weight=1.0), batch_size=16, max_grad_norm=0.5)
    seen = []
    cb._fit = lambda *args: seen.append(args) or {}  # type: ignore[method-assign]
    before = copy.deepcopy(model.policy.state_dict())
    model.learn(total_timesteps=64, callback=cb)  # one rollout; the pass runs at the end
    obs, labels, _, _, memory = seen[0]
    hidden, cell, starts = memory
    assert hidden.shape == cell.shape == (32, 2, 1, 16) and starts.shape == (32, 2)
    assert starts[0].all() and np.abs(hidden[1:]).sum() > 0  # fresh episodes, then memory
    buffer = model.rollout_buffer  # flattened copy-major by train(): row = copy * 32 + t
    taken = th.as_tensor(buffer.actions.reshape(2, 32).T.copy())
    logged = buffer.log_probs.reshape(2, 32).T
    policy = model.policy
    policy.load_state_dict(before)  # the rollout's policy, before the one PPO update
    policy.set_training_mode(False)
    flat = {k: th.as_tensor(v.reshape(64, *v.shape[2:])) for k, v in obs.items()}
    flat_memory = tuple(m.reshape(64, *m.shape[2:]) for m in memory)
    with th.no_grad():
        features = policy.extract_features(flat, policy.pi_features_extractor)
        latent = policy.mlp_extractor.forward_actor(
            _lstm_sequences(policy, features, flat_memory, np.arange(64), 1)
        )
        dist = policy._get_action_dist_from_latent(latent)
        log_probs = dist.log_prob(taken.reshape(64).long()).reshape(32, 2).numpy()
    np.testing.assert_allclose(log_probs, logged, atol=1e-5)
    # And the pass itself runs and moves the policy towards the expert.
    real = ExpertGuidanceCallback(GuidanceConfig(weight=1.0), 16, 0.5)
    real.init_callback(model)
    first = real._fit(obs, labels, None, 1.0, memory)["loss"]
    for _ in range(30):
        last = real._fit(obs, labels, None, 1.0, memory)["loss"]
    assert last < 0.7 * first, (first, last)


@pytest.mark.parametrize("skip", [False, True])
def test_memory_labels_are_fitted_from_the_lstm_output_and_train_the_lstm(skip):
    """``label_input: memory``: the label head reads the actor LSTM's output (a skip LSTM's:
    the features beside it), so the label loss reaches the LSTM's weights; with ``features``
    it cannot."""

    from mmrl.guidance import _infer_specs

    model = _recurrent_model(skip)
    guide = GuidanceConfig(label_weight=1.0, labels=["target_lane_offset"])
    cb = ExpertGuidanceCallback(guide, batch_size=16, max_grad_norm=0.5)
    seen = []
    cb._fit = lambda *args: seen.append(args) or {}  # type: ignore[method-assign]
    model.learn(total_timesteps=64, callback=cb)
    obs, _, labels, _, memory = seen[0]
    for label_input, lstm_moves in (("features", False), ("memory", True)):
        lstm = [p.detach().clone() for p in model.policy.lstm_actor.parameters()]
        real = ExpertGuidanceCallback(
            GuidanceConfig(label_weight=1.0, labels=["target_lane_offset"],
                           label_input=label_input), 16, 0.5)  # fmt: skip
        real.init_callback(model)
        real._build_head(_infer_specs(labels, ["target_lane_offset"]))
        width = (32 * skip + 16) if label_input == "memory" else 32
        assert next(real.label_head.parameters()).shape[-1] == width
        first = real._fit(obs, None, labels, 0.0, memory)["label_loss"]
        for _ in range(20):
            last = real._fit(obs, None, labels, 0.0, memory)["label_loss"]
        assert last < first, (label_input, first, last)
        moved = any(not th.equal(a, b) for a, b in zip(lstm, model.policy.lstm_actor.parameters()))
        assert moved == lstm_moves, label_input


def test_sequence_pass_reruns_each_rollout_through_the_lstm_as_the_rollout_did():
    """``sequences``: whole rollouts from each copy's first recorded state, reset at episode
    starts, give back the rollout's own log-probabilities; the pass then fits the expert."""
    from mmrl.guidance import _minibatches

    model = _recurrent_model()
    cb = ExpertGuidanceCallback(GuidanceConfig(weight=1.0), batch_size=16, max_grad_norm=0.5)
    seen = []
    cb._fit = lambda *args: seen.append(args) or {}  # type: ignore[method-assign]
    before = copy.deepcopy(model.policy.state_dict())
    model.learn(total_timesteps=64, callback=cb)
    obs, expert, _, _, memory = seen[0]
    policy = model.policy
    policy.load_state_dict(before)
    policy.set_training_mode(False)
    buffer = model.rollout_buffer  # copy-major after train(): row = copy * 32 + t

    def copy_major(v):
        return v.swapaxes(0, 1).reshape(-1, *v.shape[2:])

    rows = np.arange(64)  # both copies' runs, in time order
    with th.no_grad():
        features = policy.extract_features(
            {k: th.as_tensor(copy_major(v)) for k, v in obs.items()}, policy.pi_features_extractor
        )
        latent = _lstm_sequences(policy, features, tuple(copy_major(m) for m in memory), rows, 32)
        dist = policy._get_action_dist_from_latent(policy.mlp_extractor.forward_actor(latent))
        log_probs = dist.log_prob(th.as_tensor(buffer.actions.reshape(64)).long()).numpy()
    np.testing.assert_allclose(log_probs, buffer.log_probs.reshape(64), atol=1e-5)
    # Minibatches of whole runs, in time order, every row once.
    batches = _minibatches(6 * 32, batch_size=64, steps=32)
    assert [len(b) for b in batches] == [64, 64, 64]
    assert sorted(np.concatenate(batches).tolist()) == list(range(192))
    assert all(np.array_equal(np.diff(b.reshape(2, 32), axis=1), np.ones((2, 31))) for b in batches)
    real = ExpertGuidanceCallback(GuidanceConfig(weight=1.0, sequences=True), 32, 0.5)
    real.init_callback(model)
    first = real._fit(obs, expert, None, 1.0, memory)["loss"]
    for _ in range(60):  # two updates a pass (one copy's rollout each, correlated steps)
        last = real._fit(obs, expert, None, 1.0, memory)["loss"]
    assert last < 0.8 * first, (first, last)


def test_memory_label_input_needs_a_recurrent_policy(tmp_path):
    with pytest.raises(ConfigError, match="label_input=memory reads the actor LSTM"):
        train("driving", steps=64, n_envs=2, out=tmp_path / "r",
              overrides=[*TINY, "agent.guidance.label_weight=1",
                         "agent.guidance.label_input=memory"], verbose=0)  # fmt: skip
    with pytest.raises(ConfigError, match="sequences runs the pass through the actor LSTM"):
        train("driving", steps=64, n_envs=2, out=tmp_path / "r",
              overrides=[*TINY, "agent.guidance.weight=1",
                         "agent.guidance.sequences=true"], verbose=0)  # fmt: skip
    with pytest.raises(ConfigError, match="label_input must be one of features, memory"):
        train("driving", steps=64, n_envs=2, out=tmp_path / "r",
              overrides=[*TINY, "agent.guidance.label_input=lstm"], verbose=0)  # fmt: skip


TINY = ["agent.ppo.n_steps=64", "agent.ppo.batch_size=128", "agent.ppo.n_epochs=1",
        "agent.extractor.features_dim=64", "eval_freq=0", "eval_episodes=1",
        "env.kwargs.camera_size=16"]  # fmt: skip


@pytest.mark.parametrize("agent", ["ppo-concat", "recurrent-ppo-concat"])
def test_train_logs_the_guidance(tmp_path, agent):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    args = ["train", "--env", "driving", "--agent", agent, "--steps", "768", "--n-envs", "4",
            "--out", str(out), "--quiet", "--expert-guidance", "0.5",
            "--guidance-decay", "100000"]  # fmt: skip
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
        (["agent.guidance.label_weight=-1"], "agent.guidance.label_weight"),
        (["agent.guidance.label_weight=1", "agent.algo=dqn"], "needs an on-policy agent.algo"),
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
    assert main(["train", "--resume", "nowhere", "--label-guidance", "1"]) == 2
    assert "cannot change a resumed run" in capsys.readouterr().err


# ---------------------------------------------------------------- privileged-label loss
def test_privileged_labels_are_those_of_the_rollouts_observations():
    model = _model()
    obs, actions, labels = _pending_after_one_rollout(model, GuidanceConfig(label_weight=1.0))
    assert actions is None  # no expert weight: the expert is not asked
    assert labels["lane_index"].shape == (8, 2)
    # Replayed with the rollout's actions, the simulator's labels before each step are the
    # recorded ones, also across the auto-reset of a finished copy (which info["labels"],
    # read before the reset, would get wrong).
    replay = make_vec_env("mmrl/Driving-v1", n_envs=2, seed=3, **SENSORS)
    replay.seed(3)
    state = replay.reset()["state"]
    read = find_labels(replay)
    actions = model.rollout_buffer.actions.reshape(2, 8).astype(np.int64)
    for t in range(8):
        np.testing.assert_array_equal(obs["state"][t], state)
        for key, value in read().items():
            np.testing.assert_array_equal(labels[key][t], value, err_msg=key)
        state = replay.step(actions[:, t])[0]["state"]


def test_worker_processes_give_the_single_process_labels():
    single = make_vec_env("mmrl/Driving-v1", n_envs=4, seed=11, **SENSORS)
    pooled = make_vec_env("mmrl/Driving-v1", n_envs=4, seed=11, n_workers=2, **SENSORS)
    try:
        single.reset()
        pooled.reset()
        for step in range(3):
            a, b = find_labels(single)(), find_labels(pooled)()
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
            action = np.full(4, step % 5)
            single.step(action)
            pooled.step(action)
    finally:
        pooled.close()


def test_the_label_pass_fits_the_labels_through_the_actor_features():
    model = _model(n_steps=32)
    obs, _, labels = _pending_after_one_rollout(model, GuidanceConfig(label_weight=1.0))
    cb = ExpertGuidanceCallback(GuidanceConfig(label_weight=1.0), 16, 0.5)
    cb.init_callback(model)
    from mmrl.guidance import _infer_specs

    cb._build_head(_infer_specs(labels))
    names = {spec.name for spec in cb.label_specs}
    assert {"lane_index", "target_distance"} <= names
    camera = model.policy.features_extractor.encoders["camera"]
    before = [p.detach().clone() for p in camera.parameters()]
    th.manual_seed(0)
    first = cb._fit(obs, None, labels, 0.0)
    for _ in range(30):
        last = cb._fit(obs, None, labels, 0.0)
    assert "loss" not in last  # no expert weight: no imitation term
    assert last["label_loss"] < 0.5 * first["label_loss"], (first, last)
    # The loss shapes the policy's own features: its camera encoder's convolutions (the
    # default attention fusion reads the conv grid as tokens, so the pooled head is unused).
    still = [n for (n, p), b in zip(camera.named_parameters(), before) if th.equal(p, b)]
    assert still == ["head.1.weight", "head.1.bias"], still


def test_the_label_head_survives_a_resume(tmp_path):
    import pickle

    out = tmp_path / "run"
    args = ["train", "--env", "driving", "--steps", "512", "--n-envs", "4", "--out", str(out),
            "--quiet", "--label-guidance", "1"]  # fmt: skip
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    saved = pickle.loads((out / "checkpoints" / "step_000000000512" / "state.pkl").read_bytes())
    head = saved["guidance"]["label_head"]
    assert saved["guidance"]["label_specs"] and head

    from mmrl.guidance import guidance_callbacks
    from mmrl.runs import load_run_config

    [cb] = guidance_callbacks(load_run_config(out), saved)
    model = _model(features_dim=64)  # agent.extractor.features_dim of TINY
    cb.init_callback(model)  # a resumed run rebuilds the head from the checkpoint
    for key, value in cb.label_head.state_dict().items():
        assert th.equal(value, head[key]), key
    assert cb.state_dict()["label_head"].keys() == head.keys()
    # And `mmrl train --resume` goes on from it.
    assert main(["train", "--resume", str(out), "--steps", "768", "--quiet"]) == 0
    resumed = pickle.loads((out / "checkpoints" / "step_000000000768" / "state.pkl").read_bytes())
    assert resumed["guidance"]["label_specs"] == saved["guidance"]["label_specs"]


def test_an_env_without_labels_is_refused_for_the_label_loss():
    from gymnasium import spaces
    from stable_baselines3.common.vec_env import DummyVecEnv

    from mmrl.config import RunConfig
    from mmrl.guidance import check_guidance
    from mmrl.testing import RandomDictEnv

    venv = DummyVecEnv([lambda: RandomDictEnv(spaces.Dict({"state": spaces.Box(-1, 1, (3,))}))])
    config = RunConfig()
    config.agent.guidance.label_weight = 1.0
    with pytest.raises(ConfigError, match="privileged labels"):
        check_guidance(config, venv)


def test_out_of_range_classes_are_left_out_of_the_label_loss():
    from mmrl.pretrain.objectives import LabelSpec, label_loss

    spec = LabelSpec("lane", "class", num_classes=3, offset=0)
    out = th.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    inside, metrics = label_loss([spec], out, {"lane": th.tensor([0, 1])})
    mixed, _ = label_loss([spec], out, {"lane": th.tensor([0, 7])})  # 7: never seen
    assert metrics["label_acc/lane"] == 1.0
    assert th.isfinite(mixed) and mixed < inside + 1e-6  # only the in-range row counts
    none, _ = label_loss([spec], out, {"lane": th.tensor([9, 7])})
    assert float(none) == 0.0


def test_label_selection_fits_only_the_named_labels():
    from mmrl.config import RunConfig
    from mmrl.guidance import _infer_specs, check_guidance

    model = _model()
    _, _, labels = _pending_after_one_rollout(model, GuidanceConfig(label_weight=1.0))
    chosen = _infer_specs(labels, ["target_lane_offset", "lane_index"])
    assert [s.name for s in chosen] == ["lane_index", "target_lane_offset"]  # the env's order
    assert len(_infer_specs(labels)) > 5  # empty: every non-constant label

    config = RunConfig()
    config.agent.guidance.label_weight = 1.0
    config.agent.guidance.labels = ["target_lane_offset"]
    check_guidance(config, model.get_env())
    config.agent.guidance.labels = ["target_lane_offset", "nope"]
    with pytest.raises(ConfigError, match=r"names \['nope'\].*its labels: lane_index"):
        check_guidance(config, model.get_env())


def test_the_expert_is_not_asked_once_its_weight_has_decayed():
    calls = []

    class Counting(ExpertGuidanceCallback):
        def _init_callback(self) -> None:
            super()._init_callback()
            expert = self._expert
            self._expert = lambda: calls.append(self.num_timesteps) or expert()

    model = _model(n_steps=8)  # 2 copies: 16 env steps per rollout
    cb = Counting(GuidanceConfig(weight=1.0, decay_steps=17), 16, 0.5)
    model.learn(total_timesteps=48, callback=cb)
    # Asked while the weight is above 0 (before step 17): the first rollout's 9 states
    # (steps 0, 2, ..., 16), never after.
    assert calls == list(range(0, 17, 2))
