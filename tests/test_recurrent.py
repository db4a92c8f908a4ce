"""``mmrl.recurrent``: an LSTM beside the feed-forward path (``agent.recurrent.skip_connection``).

Loading a feed-forward BC head into it: ``tests/pretrain/test_recurrent.py``."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from torch import nn

pytest.importorskip("sb3_contrib")

from mmrl.recurrent import SkipLinear, SkipLSTM, SkipLstmPolicy


def test_skip_lstm_hands_on_its_input_beside_the_lstm_output():
    th.manual_seed(0)
    skip = SkipLSTM(6, 4, num_layers=2)
    plain = nn.LSTM(6, 4, num_layers=2)
    plain.load_state_dict(skip.state_dict())
    x = th.randn(5, 3, 6)
    state = (th.randn(2, 3, 4), th.randn(2, 3, 4))
    out, (h, c) = skip(x, state)
    expected, (h0, c0) = plain(x, state)
    assert skip.output_size == 10 and out.shape == (5, 3, 10)
    assert th.equal(out[..., :6], x)
    assert th.allclose(out[..., 6:], expected) and th.equal(h, h0) and th.equal(c, c0)


def test_skip_linear_hands_on_its_input_beside_the_map():
    layer = SkipLinear(6, 4)
    x = th.randn(3, 6)
    out = layer(x)
    assert out.shape == (3, 10) and th.equal(out[:, :6], x)
    assert th.allclose(out[:, 6:], nn.functional.linear(x, layer.weight, layer.bias))


def _policy(**lstm: bool) -> SkipLstmPolicy:
    from gymnasium import spaces

    from mmrl import MultimodalExtractor

    obs = spaces.Dict({"state": spaces.Box(-1, 1, (5,), np.float32)})
    return SkipLstmPolicy(
        obs, spaces.Discrete(3), lambda _: 1e-3,
        features_extractor_class=MultimodalExtractor,
        features_extractor_kwargs={"features_dim": 12}, net_arch={"pi": [8], "vf": [8]},
        lstm_hidden_size=4, **lstm,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("lstm", "critic"),
    [
        ({"enable_critic_lstm": True}, "lstm"),
        ({"enable_critic_lstm": False}, "linear"),
        ({"enable_critic_lstm": False, "shared_lstm": True}, "shared"),
    ],
)
def test_the_heads_read_the_features_beside_the_memory(lstm, critic):
    policy = _policy(**lstm)
    assert isinstance(policy.lstm_actor, SkipLSTM)
    assert isinstance(policy.lstm_critic, SkipLSTM) is (critic == "lstm")
    assert isinstance(policy.critic, SkipLinear) is (critic == "linear")
    assert policy.mlp_extractor.policy_net[0].in_features == 12 + 4
    assert policy.mlp_extractor.value_net[0].in_features == 12 + 4
    # The optimizer trains the swapped-in modules, not the ones they replaced.
    optimized = {id(p) for group in policy.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in policy.parameters()}
    obs = {"state": th.rand(6, 5)}
    zeros = (th.zeros(1, 6, 4), th.zeros(1, 6, 4))
    from sb3_contrib.common.recurrent.type_aliases import RNNStates

    actions, values, log_prob, _ = policy(obs, RNNStates(zeros, zeros), th.ones(6))
    assert actions.shape == (6,) and values.shape == (6, 1) and log_prob.shape == (6,)


def test_a_skip_model_saves_and_loads_as_recurrent_ppo(tmp_path):
    """``model.zip`` names mmrl's policy class; :func:`mmrl.policies.load_policy` reloads it
    with sb3-contrib's ``RecurrentPPO`` and acts as the saved model did."""
    from sb3_contrib import RecurrentPPO

    from mmrl import MultimodalExtractor, make_vec_env
    from mmrl.policies import algorithm_class, load_policy

    venv = make_vec_env("mmrl/Driving-v1", n_envs=2, seed=1, camera_size=16, lidar_beams=16)
    model = RecurrentPPO(
        SkipLstmPolicy, venv, n_steps=16, batch_size=16, n_epochs=1, seed=1,
        policy_kwargs={"features_extractor_class": MultimodalExtractor,
                       "features_extractor_kwargs": {"features_dim": 16},
                       "lstm_hidden_size": 8},
    )  # fmt: skip
    model.learn(32)
    model.save(tmp_path / "model.zip")
    assert algorithm_class(tmp_path / "model.zip") is RecurrentPPO
    policy = load_policy(tmp_path / "model.zip")
    assert isinstance(policy.policy, SkipLstmPolicy) and policy.recurrent
    obs = venv.reset()
    mine, _ = model.predict(obs, episode_start=np.ones(2, bool), deterministic=True)
    loaded, _ = policy.predict(obs, None, np.ones(2, bool))
    np.testing.assert_array_equal(mine, loaded)


def test_without_its_memory_the_policy_acts_from_the_features_alone():
    from sb3_contrib.common.recurrent.policies import RecurrentMultiInputActorCriticPolicy

    from mmrl.recurrent import drop_memory

    policy = _policy(enable_critic_lstm=False)
    policy.set_training_mode(False)
    obs = {"state": th.rand(6, 5)}

    def logits(seed: int) -> th.Tensor:
        g = th.Generator().manual_seed(seed)
        states = tuple(th.randn(1, 6, 4, generator=g) for _ in range(2))
        with th.no_grad():
            return policy.get_distribution(obs, states, th.zeros(6))[0].distribution.logits

    assert not th.allclose(logits(0), logits(1))  # the LSTM state matters...
    drop_memory(policy)
    assert th.equal(logits(0), logits(1))  # ...and no longer does
    plain = RecurrentMultiInputActorCriticPolicy(
        policy.observation_space, policy.action_space, lambda _: 1e-3, lstm_hidden_size=4
    )
    with pytest.raises(TypeError, match="skip_connection"):
        drop_memory(plain)


@pytest.mark.parametrize("pi", [[8], []])
def test_a_feedforward_head_fills_the_feature_columns_of_the_reading_layer(pi):
    """With ``pi`` layers the first of them reads features and memory; without, the action
    layer does. Either way the feature columns take the head's weights and the memory's
    are zero; a head of another width is one RuntimeError."""
    from gymnasium import spaces

    from mmrl import MultimodalExtractor
    from mmrl.recurrent import load_feedforward_head

    obs = spaces.Dict({"state": spaces.Box(-1, 1, (5,), np.float32)})
    policy = SkipLstmPolicy(
        obs, spaces.Discrete(3), lambda _: 1e-3, features_extractor_class=MultimodalExtractor,
        features_extractor_kwargs={"features_dim": 12}, net_arch={"pi": pi, "vf": [8]},
        lstm_hidden_size=4,
    )  # fmt: skip
    width = pi[0] if pi else 3
    reading = th.randn(width, 12)
    head = {
        "policy_net": {"0.weight": reading, "0.bias": th.zeros(8)} if pi else {},
        "action_net": {"weight": th.randn(3, 8), "bias": th.zeros(3)}
        if pi
        else {"weight": reading, "bias": th.zeros(3)},
    }
    load_feedforward_head(policy, head)
    layer = policy.mlp_extractor.policy_net[0] if pi else policy.action_net
    assert th.equal(layer.weight[:, :12], reading) and th.all(layer.weight[:, 12:] == 0)
    bad = {**head, ("policy_net" if pi else "action_net"): {
        "0.weight" if pi else "weight": th.randn(width, 7)}}  # fmt: skip
    with pytest.raises(RuntimeError, match="does not fit"):
        load_feedforward_head(policy, bad)
