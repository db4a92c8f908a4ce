"""Pretraining a recurrent-ppo recipe: whole episodes through the actor LSTM (BC-RNN), a
memory a feed-forward head cannot have, and the LSTM carried into RecurrentPPO."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch as th

from mmrl.checkpoint import CheckpointError
from mmrl.config import resolve_run_config
from mmrl.envs.vec_env import BatchedVecEnv
from mmrl.pretrain import load_encoder_checkpoint, load_pretrained
from mmrl.pretrain.bc_policy import load_bc_policy

# Concat fusion: the toy's attention recipe learns the text too slowly for a short test.
CONCAT = "agent.extractor.fusion=concat"
RECURRENT = [CONCAT, "agent.algo=recurrent-ppo", "agent.recurrent.lstm_hidden_size=32"]


@pytest.fixture(scope="module")
def memory(toy, tmp_path_factory):
    """The toy task with its instruction shown on the first step only (camera and state
    blank), an expert dataset of it, and a recurrent and a feed-forward BC checkpoint."""
    from types import SimpleNamespace

    from mmrl.data import collect
    from mmrl.pretrain import pretrain

    root = tmp_path_factory.mktemp("recurrent")
    _, agent = toy.write_presets(root)
    env = root / "toy-memory.yaml"
    env.write_text(f"env_id: {toy.TOY_ID}\nn_envs: 2\nkwargs:\n  camera_size: 16\n  memory: true\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root / "datasets"))
        collect(policy="expert", episodes=160, dataset_id="toy/memory-v0", epsilon=0.0, seed=0,
                venv=BatchedVecEnv(toy.ToySimulator(8, memory=True)))  # fmt: skip
        common = dict(objectives="bc", epochs=60, batch_size=64, val_fraction=0.25,
                      patience=60, verbose=0, seed=0)  # fmt: skip
        recurrent = pretrain("toy/memory-v0", agent, env=str(env), out=root / "rec.pt",
                             overrides=RECURRENT, **common)  # fmt: skip
        feedforward = pretrain("toy/memory-v0", agent, env=str(env), out=root / "ff.pt",
                               overrides=[CONCAT], **common)  # fmt: skip
        yield SimpleNamespace(root=root, env=str(env), agent=agent, recurrent=recurrent,
                              feedforward=feedforward)  # fmt: skip


def test_only_the_recurrent_head_remembers_the_instruction(memory):
    # After the first step the instruction is gone: a feed-forward head guesses (about half
    # of the later steps), the LSTM carries it.
    assert memory.recurrent.val_metrics["bc_accuracy"] > 0.95
    assert memory.feedforward.val_metrics["bc_accuracy"] < 0.85
    head = load_encoder_checkpoint(memory.recurrent.out)["head"]
    assert {"policy_net", "action_net", "lstm"} <= set(head)
    assert "lstm" not in load_encoder_checkpoint(memory.feedforward.out)["head"]


def test_batches_are_whole_episodes_in_time_order(memory, toy):
    from mmrl.data.dataset import load_offline_datasets
    from mmrl.pretrain.trainer import Pretrainer, _pretrain_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(memory.root / "datasets"))
        data = load_offline_datasets("toy/memory-v0")
    config = resolve_run_config(memory.env, memory.agent, RECURRENT)
    model = _pretrain_model(data, config, ["bc"], [], 0.25, 0, th.device("cpu"))
    train_rows, val_rows = data.split(0.25, 0)
    trainer = Pretrainer(data, model, train_rows, val_rows, batch_size=10)
    batches = trainer.epoch_batches()
    rows = th.cat(batches)
    assert sorted(rows.tolist()) == sorted(train_rows.tolist())  # every row once
    for batch in batches:
        assert len(batch) >= 10 or batch is batches[-1]
        episodes = data.episode[batch]
        change = th.nonzero(episodes[1:] != episodes[:-1]).squeeze(1) + 1
        for part in th.tensor_split(batch, change):
            assert th.equal(part, th.arange(part[0], part[0] + len(part)))  # in order, whole
            assert (data.episode == data.episode[part[0]]).sum() == len(part)


def test_memory_runs_each_sequence_from_a_zero_state(memory):
    """Sequences laid back to back in one batch give the LSTM outputs of each run alone."""
    from mmrl.data.dataset import policy_observation_space
    from mmrl.pretrain.checkpoint import build_policy
    from mmrl.pretrain.objectives import PretrainModel
    from mmrl.pretrain.resolve import env_spaces

    config = resolve_run_config(memory.env, memory.agent, RECURRENT)
    obs_space, action_space = env_spaces(config)
    model = PretrainModel(build_policy(policy_observation_space(obs_space), action_space, config),
                          ["bc"])  # fmt: skip
    features = th.randn(9, model.extractor.features_dim)
    starts = th.tensor([1, 0, 0, 0, 1, 0, 1, 0, 0], dtype=th.bool)
    out = model.memory(features, starts)
    for first, last in ((0, 4), (4, 6), (6, 9)):
        alone, _ = model.lstm(features[first:last, None])
        assert th.allclose(out[first:last], alone[:, 0], atol=1e-6)


@pytest.mark.parametrize("shared", [True, False])
def test_recurrent_ppo_starts_from_the_pretrained_lstm_and_acts_from_memory(memory, toy, shared):
    from mmrl.train import build_model, build_vec_env

    overrides = [
        *RECURRENT,
        f"agent.init.path={json.dumps(str(memory.recurrent.out))}",
        "agent.init.init_policy_head=true",
        f"agent.recurrent.shared_lstm={str(shared).lower()}",
        f"agent.recurrent.enable_critic_lstm={str(not shared).lower()}",
        "eval_freq=0",
    ]
    config = resolve_run_config(memory.env, memory.agent, overrides, seed=0)
    model = build_model(config, build_vec_env(config, seed=0), th.device("cpu"), None)
    load_pretrained(model, config)
    saved = load_encoder_checkpoint(memory.recurrent.out)["head"]["lstm"]
    lstms = [model.policy.lstm_actor] + ([] if shared else [model.policy.lstm_critic])
    for lstm in lstms:
        assert all(th.equal(saved[k], v) for k, v in lstm.state_dict().items())
    # Acting step by step with the LSTM state (as PPO rolls out) = the pretraining's pass
    # over the whole episode: the instruction seen on step 0 decides every later action.
    act, _, _ = load_bc_policy(memory.recurrent.out, memory.env)
    venv = BatchedVecEnv(toy.ToySimulator(32, memory=True))
    venv.seed(7)
    obs, start = venv.reset(), np.ones(32, bool)
    successes = []
    for _ in range(40):
        obs, _, done, infos = venv.step(act(obs, start))
        successes += [info["is_success"] for info, d in zip(infos, done, strict=True) if d]
        start = done
    assert len(successes) > 50 and np.mean(successes) > 0.9


def test_an_lstm_head_into_a_feedforward_policy_is_refused(memory):
    from mmrl.pretrain.finetune import check_init

    items = [f"agent.init.path={json.dumps(str(memory.recurrent.out))}", CONCAT,
             "agent.init.init_policy_head=true"]  # fmt: skip
    with pytest.raises(CheckpointError, match="reads an LSTM"):
        check_init(resolve_run_config(memory.env, memory.agent, items))
    # The extractor alone fits it.
    check_init(resolve_run_config(memory.env, memory.agent, items[:2]))


def test_evaluation_acts_with_the_recurrent_bc_policy_from_memory(memory, toy):
    """``mmrl evaluate enc.pt`` (and ``collect --policy enc.pt``) roll a checkpoint's BC policy
    out through :func:`mmrl.rollout.collect_episodes`, which carries the LSTM state."""
    from mmrl.policies import load_policy
    from mmrl.rollout import collect_episodes

    results = {}
    for name, checkpoint in (("rnn", memory.recurrent.out), ("ff", memory.feedforward.out)):
        policy = load_policy(checkpoint, env=memory.env)
        assert policy.recurrent is (name == "rnn")
        venv = BatchedVecEnv(toy.ToySimulator(16, memory=True))
        venv.seed(11)
        episodes = collect_episodes(policy.predict, venv, 64, subset_rows=not policy.whole_batch)
        results[name] = np.mean([ep.success for ep in episodes])
    assert results["rnn"] > 0.9
    assert results["ff"] < results["rnn"] - 0.2


def test_freezing_the_encoders_keeps_the_loaded_lstm_too(memory):
    """With --init-policy-head a recurrent policy's pretrained LSTM is an encoder: frozen with
    the extractor (PPO updates wore its memory down, BENCHMARKS.md E12); the head learns."""
    from mmrl.pretrain.finetune import FreezeEncodersCallback, init_callbacks, policy_extractors
    from mmrl.train import build_model, build_vec_env

    overrides = [*RECURRENT, f"agent.init.path={json.dumps(str(memory.recurrent.out))}",
                 "agent.init.init_policy_head=true", "agent.init.freeze_encoders_steps=1000",
                 "agent.recurrent.shared_lstm=true", "agent.recurrent.enable_critic_lstm=false",
                 "eval_freq=0"]  # fmt: skip
    config = resolve_run_config(memory.env, memory.agent, overrides, seed=0)
    (callback,) = init_callbacks(config.agent.init, config.agent.algo)
    assert isinstance(callback, FreezeEncodersCallback) and callback.memory
    model = build_model(config, build_vec_env(config, seed=0), th.device("cpu"), None)
    load_pretrained(model, config)
    frozen = [model.policy.lstm_actor, *policy_extractors(model.policy)]
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in frozen]
    head = {k: v.clone() for k, v in model.policy.action_net.state_dict().items()}
    model.learn(64, callback=callback)
    for module, state in zip(frozen, before, strict=True):
        assert all(th.equal(state[k], v) for k, v in module.state_dict().items())
    assert any(not th.equal(head[k], v) for k, v in model.policy.action_net.state_dict().items())
    # The extractor alone (no head, so a fresh LSTM): the extractor only.
    alone = [o for o in overrides if "init_policy_head" not in o]
    config = resolve_run_config(memory.env, memory.agent, alone)
    assert not init_callbacks(config.agent.init, config.agent.algo)[0].memory


SKIP = [*RECURRENT, "agent.recurrent.skip_connection=true"]


def test_a_feedforward_head_starts_a_skip_policy_as_the_feedforward_policy(memory):
    """``skip_connection``: a feed-forward BC head loads into the heads' feature columns with
    the LSTM's columns at zero, so the policy acts exactly as the feed-forward one."""
    from mmrl.pretrain.finetune import check_init, env_policy, load_pretrained_policy
    from mmrl.recurrent import SkipLstmPolicy

    init = [f"agent.init.path={json.dumps(str(memory.feedforward.out))}",
            "agent.init.init_policy_head=true"]  # fmt: skip
    skip = resolve_run_config(memory.env, memory.agent, [*SKIP, *init])
    feedforward = resolve_run_config(memory.env, memory.agent, [CONCAT, *init])
    check_init(skip)  # not refused
    policies = [env_policy(c) for c in (skip, feedforward)]
    for policy, config in zip(policies, (skip, feedforward), strict=True):
        load_pretrained_policy(policy, config)
        policy.set_training_mode(False)
    assert isinstance(policies[0], SkipLstmPolicy)
    first = policies[0].mlp_extractor.policy_net[0].weight
    features = policies[0].features_dim
    assert first.shape[1] == features + 32 and th.all(first[:, features:] == 0)
    th.manual_seed(0)
    space = policies[0].observation_space
    obs = {k: th.as_tensor(np.stack([s.sample() for _ in range(16)])) for k, s in space.items()}
    zeros = (th.zeros(1, 16, 32), th.zeros(1, 16, 32))
    with th.no_grad():
        mine, _ = policies[0].get_distribution(obs, zeros, th.ones(16))
        theirs = policies[1].get_distribution(obs)
    assert th.allclose(mine.distribution.logits, theirs.distribution.logits, atol=1e-5)


def test_a_recurrent_head_without_the_skip_does_not_fit_a_skip_policy(memory):
    from mmrl.pretrain.finetune import check_init

    init = [f"agent.init.path={json.dumps(str(memory.recurrent.out))}",
            "agent.init.init_policy_head=true"]  # fmt: skip
    with pytest.raises(CheckpointError, match="skip_connection"):
        check_init(resolve_run_config(memory.env, memory.agent, [*SKIP, *init]))


def test_a_skip_recipe_pretrains_its_memory_and_fine_tunes_from_it(memory, tmp_path, monkeypatch):
    """BC through the skip LSTM learns the memory task as the plain LSTM does, and its head
    (LSTM included) loads back into the PPO policy."""
    from mmrl.pretrain import pretrain
    from mmrl.pretrain.finetune import check_init, env_policy, load_pretrained_policy

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(memory.root / "datasets"))
    result = pretrain("toy/memory-v0", memory.agent, env=memory.env, out=tmp_path / "skip.pt",
                      overrides=SKIP, objectives="bc", epochs=60, batch_size=64,
                      val_fraction=0.25, patience=60, verbose=0, seed=0)  # fmt: skip
    assert result.val_metrics["bc_accuracy"] > 0.95
    head = load_encoder_checkpoint(result.out)["head"]
    init = [f"agent.init.path={json.dumps(str(result.out))}", "agent.init.init_policy_head=true"]
    config = resolve_run_config(memory.env, memory.agent, [*SKIP, *init])
    check_init(config)
    policy = env_policy(config)
    load_pretrained_policy(policy, config)
    assert all(th.equal(head["lstm"][k], v) for k, v in policy.lstm_actor.state_dict().items())
    net = policy.mlp_extractor.policy_net.state_dict()
    assert all(th.equal(head["policy_net"][k], v) for k, v in net.items())
