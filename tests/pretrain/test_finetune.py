"""``mmrl train --init-from``: loading, freezing, lr scaling and refusing wrong checkpoints."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch as th

from mmrl.checkpoint import CheckpointError
from mmrl.config import ConfigError, InitConfig, resolve_run_config
from mmrl.pretrain import FreezeEncodersCallback, load_encoder_checkpoint, load_pretrained
from mmrl.pretrain.finetune import check_init, policy_extractors, validate_init
from mmrl.train import build_model, build_vec_env


def _config(setup, *overrides, path=None):
    path = setup.checkpoint if path is None else path
    items = [f"agent.init.path={json.dumps(str(path))}", "eval_freq=0", *overrides]
    return resolve_run_config(setup.env, setup.agent, items, seed=0)


def _model(config):
    return build_model(config, build_vec_env(config, seed=0), th.device("cpu"), None)


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return all(th.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("share", [True, False])
def test_weights_match_after_loading(setup, share):
    config = _config(setup, f"agent.policy.share_features_extractor={str(share).lower()}",
                     "agent.init.init_policy_head=true")  # fmt: skip
    model = _model(config)
    extractors = policy_extractors(model.policy)
    assert len(extractors) == (1 if share else 2)
    ckpt = load_encoder_checkpoint(setup.checkpoint)
    assert not _same(ckpt["extractor"], extractors[0].state_dict())  # fresh init differs
    before_log_std = model.policy.log_std if hasattr(model.policy, "log_std") else None
    load_pretrained(model, config)
    for extractor in extractors:
        state = extractor.state_dict()
        assert state.keys() == ckpt["extractor"].keys()
        assert _same(ckpt["extractor"], state)
    assert _same(ckpt["head"]["policy_net"], model.policy.mlp_extractor.policy_net.state_dict())
    assert _same(ckpt["head"]["action_net"], model.policy.action_net.state_dict())
    assert before_log_std is None  # discrete actions: no log_std to keep


def test_value_head_and_critic_mlp_stay_fresh(setup):
    config = _config(setup, "agent.init.init_policy_head=true")
    model = _model(config)
    value = _snapshot(model.policy.value_net)
    load_pretrained(model, config)
    assert _same(value, model.policy.value_net.state_dict())


@pytest.mark.parametrize("share", [True, False])
def test_frozen_encoders_stay_unchanged_then_train(setup, share):
    # 2 envs x n_steps 16 = 32 env steps per rollout; frozen for the first 64.
    config = _config(setup, f"agent.policy.share_features_extractor={str(share).lower()}",
                     "agent.init.freeze_encoders_steps=64")  # fmt: skip
    model = _model(config)
    load_pretrained(model, config)
    extractors = policy_extractors(model.policy)
    loaded = [_snapshot(e) for e in extractors]
    head = _snapshot(model.policy.action_net)
    callback = FreezeEncodersCallback(64)
    model.learn(32, callback=callback)
    assert callback.frozen
    assert all(_same(s, e.state_dict()) for s, e in zip(loaded, extractors))
    assert not _same(head, model.policy.action_net.state_dict())  # the heads did learn
    model.learn(32, callback=callback, reset_num_timesteps=False)
    assert callback.unfrozen_at == 64 and not callback.frozen
    for snapshot, extractor in zip(loaded, extractors):
        changed = [k for k in snapshot if not th.equal(snapshot[k], extractor.state_dict()[k])]
        assert changed, "the extractor trains after the freeze"
    assert all(p.requires_grad for e in extractors for p in e.parameters())


@pytest.mark.parametrize("share", [True, False])
def test_critic_warmup_trains_only_the_critic_then_everything(setup, share):
    from mmrl.pretrain.finetune import CriticWarmupCallback, critic_parameters, init_callbacks

    # 2 envs x n_steps 16 = 32 env steps per rollout; the updates after the rollouts ending
    # at 32 and 64 are the critic's only.
    config = _config(setup, f"agent.policy.share_features_extractor={str(share).lower()}",
                     "agent.init.init_policy_head=true",
                     "agent.init.critic_warmup_steps=64")  # fmt: skip
    model = _model(config)
    load_pretrained(model, config)
    policy = model.policy
    critic = {id(p) for p in critic_parameters(policy)}
    vf_extractor = {id(p) for p in policy.vf_features_extractor.parameters()}
    assert (vf_extractor <= critic) is (not share)  # a shared extractor is the actor's too
    assert {id(p) for p in policy.value_net.parameters()} <= critic
    assert not {id(p) for p in policy.action_net.parameters()} & critic
    actor = {n: p.detach().clone() for n, p in policy.named_parameters() if id(p) not in critic}
    value = _snapshot(policy.value_net)
    callbacks = init_callbacks(config.agent.init, config.agent.algo)
    assert [type(c) for c in callbacks] == [CriticWarmupCallback]
    callback = callbacks[0]
    model.learn(64, callback=callback)
    assert callback.active and callback.ended_at is None
    named = dict(policy.named_parameters())
    assert all(th.equal(actor[n], named[n]) for n in actor), "the policy stays as loaded"
    assert not _same(value, policy.value_net.state_dict()), "the critic learns"
    model.learn(32, callback=callback, reset_num_timesteps=False)
    assert callback.ended_at == 96 and not callback.active
    named = dict(policy.named_parameters())
    assert not th.equal(actor["action_net.weight"], named["action_net.weight"])
    assert not policy.optimizer._optimizer_step_pre_hooks  # removed at the end of learn


def test_encoder_lr_scale_equals_a_smaller_learning_rate(setup):
    config = _config(setup, "agent.init.encoder_lr_scale=0.1")
    model = _model(config)
    policy = model.policy
    reference = copy.deepcopy(policy)
    ext_ids = {id(p) for p in policy.features_extractor.parameters()}
    opt = policy.optimizer
    lr = opt.param_groups[0]["lr"]
    defaults = {k: v for k, v in opt.defaults.items() if k != "lr"}
    ref_opt = type(opt)(
        [
            {"params": list(reference.features_extractor.parameters()), "lr": lr * 0.1},
            {"params": [p for p in reference.parameters()
                        if id(p) not in {id(q) for q in reference.features_extractor.parameters()}],
             "lr": lr},
        ],
        **defaults,
    )  # fmt: skip
    callback = FreezeEncodersCallback(0, lr_scale=0.1)
    callback.init_callback(model)
    callback.on_training_start({}, {})
    obs = {k: th.as_tensor(v) for k, v in model.env.reset().items()}
    actions = th.tensor([0, 2])
    for _ in range(3):
        for pol, optimizer in ((policy, opt), (reference, ref_opt)):
            values, log_prob, _ = pol.evaluate_actions(obs, actions)
            loss = values.pow(2).mean() - log_prob.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for (name, p), q in zip(policy.named_parameters(), reference.parameters()):
        th.testing.assert_close(p, q, rtol=1e-5, atol=1e-7, msg=name)
    assert any(id(p) in ext_ids for p in policy.parameters())
    callback.on_training_end()
    assert not opt._optimizer_step_pre_hooks


def test_incompatible_checkpoint_is_refused_naming_the_difference(setup):
    with pytest.raises(
        CheckpointError, match=r"extractor\.fusion: 'attention' \(checkpoint\) vs 'concat'"
    ):
        check_init(_config(setup, "agent.extractor.fusion=concat"))
    with pytest.raises(CheckpointError, match=r"extractor\.features_dim: 32 \(checkpoint\) vs 48"):
        check_init(_config(setup, "agent.extractor.features_dim=48"))
    with pytest.raises(CheckpointError, match=r"policy\.pi: \[16\] \(checkpoint\) vs \[8\]"):
        check_init(_config(setup, "agent.policy.pi=[8]", "agent.init.init_policy_head=true"))
    # Only the BC head depends on pi: without --init-policy-head the extractor still fits.
    assert check_init(_config(setup, "agent.policy.pi=[8]")) is not None
    # Modality dropout does not change shapes, so it may differ.
    assert check_init(_config(setup, "agent.extractor.modality_dropout=0.2")) is not None


def test_policy_head_needs_a_bc_checkpoint(setup, tmp_path):
    from mmrl.pretrain import pretrain

    out = tmp_path / "no_bc.pt"
    pretrain(setup.dataset, setup.agent, env=setup.env, objectives="labels", epochs=1,
             batch_size=32, out=out, verbose=0)  # fmt: skip
    with pytest.raises(CheckpointError, match=r"no BC head.*'bc' objective"):
        check_init(_config(setup, "agent.init.init_policy_head=true", path=out))
    assert check_init(_config(setup, path=out)) is not None  # the extractor alone still loads


def test_checkpoint_for_other_observation_shapes_is_refused(setup, tmp_path):
    env = tmp_path / "toy-small.yaml"
    env.write_text(Path(setup.env).read_text().replace("camera_size: 16", "camera_size: 8"))
    items = [f"agent.init.path={json.dumps(str(setup.checkpoint))}"]
    config = resolve_run_config(str(env), setup.agent, items)
    with pytest.raises(CheckpointError, match=r"modalities\.camera\.space\.shape: \[3, 16, 16\]"):
        check_init(config)


def test_checkpoint_in_another_modality_order_is_refused(setup, tmp_path):
    """Same parameter names and shapes, but the fusion was trained on another input order
    (e.g. a dataset's sorted keys): loading it would scramble the fusion."""
    payload = th.load(setup.checkpoint, map_location="cpu", weights_only=True)
    modalities = payload["extractor_config"]["modalities"]
    assert list(modalities) == ["camera", "lidar", "text", "state"]  # the env's order
    payload["extractor_config"]["modalities"] = dict(sorted(modalities.items()))
    reordered = tmp_path / "sorted.pt"
    th.save(payload, reordered)
    with pytest.raises(CheckpointError, match=r"modalities order \['camera', 'lidar', 'state'"):
        check_init(_config(setup, path=reordered))


def test_unreadable_or_foreign_files_are_refused(setup, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable mmrl encoder checkpoint"):
        check_init(_config(setup, path=garbage))
    foreign = tmp_path / "state.pt"
    th.save({"weights": th.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not an mmrl encoder checkpoint"):
        check_init(_config(setup, path=foreign))
    with pytest.raises(CheckpointError, match="file not found"):
        check_init(_config(setup, path=tmp_path / "absent.pt"))


def test_bad_init_settings():
    with pytest.raises(ConfigError, match=r"need.* --init-from"):
        validate_init(InitConfig(freeze_encoders_steps=10))
    with pytest.raises(ConfigError, match="encoder-lr-scale must be > 0"):
        validate_init(InitConfig(path="x.pt", encoder_lr_scale=0.0))
    with pytest.raises(ConfigError, match="--critic-warmup must be >= 0, got -1"):
        validate_init(InitConfig(path="x.pt", init_policy_head=True, critic_warmup_steps=-1))
    with pytest.raises(ConfigError, match=r"--critic-warmup .* needs --init-policy-head"):
        validate_init(InitConfig(path="x.pt", critic_warmup_steps=100))
    with pytest.raises(ConfigError, match=r"--critic-warmup need\(s\) --init-from"):
        validate_init(InitConfig(critic_warmup_steps=100))


def test_train_refuses_a_bad_init_before_creating_the_run(setup, tmp_path):
    from mmrl.train import train

    out = tmp_path / "run"
    with pytest.raises(CheckpointError, match="fusion"):
        train(setup.env, setup.agent, steps=32, out=out,
              overrides=[f"agent.init.path={json.dumps(str(setup.checkpoint))}",
                         "agent.extractor.fusion=mean"])  # fmt: skip
    assert not out.exists()


def test_cli_init_flags(setup, tmp_path, capsys):
    from mmrl.cli import main

    assert main(["train", "--freeze-encoders", "10", "--steps", "5"]) == 2
    assert "need --init-from" in capsys.readouterr().err
    code = main(["train", "--env", setup.env, "--agent", setup.agent, "--init-from",
                 str(tmp_path / "none.pt"), "--out", str(tmp_path / "r"), "--quiet"])  # fmt: skip
    assert code == 2 and "file not found" in capsys.readouterr().err


def test_checkpoint_with_nan_weights_is_refused(setup, tmp_path):
    """Issue 15: NaN weights loaded silently and trained a NaN policy."""
    payload = th.load(setup.checkpoint, map_location="cpu", weights_only=True)
    name = next(k for k, v in payload["extractor"].items() if v.is_floating_point())
    payload["extractor"][name] = th.full_like(payload["extractor"][name], float("nan"))
    bad = tmp_path / "nan.pt"
    th.save(payload, bad)
    with pytest.raises(CheckpointError, match=rf"NaN or infinite weights in extractor\.{name}"):
        check_init(_config(setup, path=bad))


def _damage(payload, case):
    if case == "version":
        payload["version"] = "abc"
    elif case == "extractor_config":
        payload["extractor_config"] = "x"
    elif case == "observation_space":
        payload["observation_space"] = "not json"
    elif case == "action_space":
        payload["action_space"] = "{}"
    elif case == "extractor":
        payload["extractor"] = "weights"
    elif case == "info":
        payload["info"] = [1, 2]
    elif case == "head_shapes":
        payload["head"]["action_net"] = {"weight": th.zeros(3, 3)}
    return payload


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("version", r"'version' is 'abc', not an integer"),
        ("extractor_config", r"'extractor_config' is a str, not a mapping"),
        ("observation_space", r"'observation_space' is not a serialized Gymnasium space"),
        ("action_space", r"'action_space' is not a serialized Gymnasium space"),
        ("extractor", r"'extractor' is not a mapping of parameter names to tensors"),
        ("info", r"'info' is a list, not a mapping"),
        ("head_shapes", r"missing tensors: bias; size mismatch for weight: \[3, 3\] in the file"),
    ],
)
def test_malformed_checkpoint_fields_are_one_error_before_the_run_folder(
    setup, tmp_path, case, message
):
    """Issue 15: a damaged or hand-edited encoder checkpoint crashed with AttributeError,
    KeyError or ValueError deep in the loading code (or, for mis-shaped head tensors, after
    the run folder was written); now each is one CheckpointError naming the field."""
    from mmrl.train import train

    payload = th.load(setup.checkpoint, map_location="cpu", weights_only=True)
    bad = tmp_path / f"{case}.pt"
    th.save(_damage(payload, case), bad)
    out = tmp_path / "run"
    with pytest.raises(CheckpointError, match=message):
        train(setup.env, setup.agent, steps=32, out=out,
              overrides=[f"agent.init.path={json.dumps(str(bad))}",
                         "agent.init.init_policy_head=true"])  # fmt: skip
    assert not out.exists()


def test_recurrent_ppo_loads_the_extractor_and_refuses_the_bc_head(setup, tmp_path):
    """The extractor of a feed-forward checkpoint fits a recurrent-ppo policy; its BC head does
    not (the policy's head reads the LSTM), which is one clear error before the run folder
    (a recurrent-ppo checkpoint's head does: tests/pretrain/test_recurrent.py)."""
    from mmrl.train import train

    config = _config(setup, "agent.algo=recurrent-ppo")
    model = _model(config)
    ckpt = load_encoder_checkpoint(setup.checkpoint)
    load_pretrained(model, config)
    for extractor in policy_extractors(model.policy):
        assert _same(ckpt["extractor"], extractor.state_dict())
    out = tmp_path / "run"
    init = [f"agent.init.path={json.dumps(str(setup.checkpoint))}", "agent.algo=recurrent-ppo"]
    with pytest.raises(CheckpointError, match="reads the extractor's output, a recurrent-ppo"):
        train(setup.env, setup.agent, steps=32, out=out,
              overrides=[*init, "agent.init.init_policy_head=true"])  # fmt: skip
    assert not out.exists()
    train(setup.env, setup.agent, steps=32, out=out, verbose=0, overrides=[*init, "eval_freq=0"])
    assert (out / "model.zip").exists()
