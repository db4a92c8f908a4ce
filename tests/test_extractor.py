"""MultimodalExtractor: encoder choice, config, encode, masks, determinism, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs
from torch import nn

from mmrl.encoders import GRUTextEncoder, ImpalaEncoder, LidarEncoder, MlpEncoder, NatureCNNEncoder
from mmrl.extractor import (
    MultimodalExtractor,
    multimodal_extractors,
    set_policy_modality_mask,
)
from mmrl.testing import BUILTIN_FUSIONS, routing_observation_space, sample_routing_batch

FUSIONS = list(BUILTIN_FUSIONS)
SPACE = routing_observation_space()
SMALL = {"features_dim": 32, "embed_dim": 16}


def routing_batch(ext: MultimodalExtractor, n: int = 4, seed: int = 0) -> dict[str, th.Tensor]:
    obs, _ = sample_routing_batch(SPACE, "text", n, np.random.default_rng(seed))
    return ext.preprocess(obs)


def test_default_encoders_and_overrides() -> None:
    ext = MultimodalExtractor(SPACE, **SMALL)
    assert ext.modalities == ("camera", "lidar", "state", "text")  # gymnasium sorts keys
    assert isinstance(ext.encoders, nn.ModuleDict)
    assert isinstance(ext.encoders["camera"], NatureCNNEncoder)
    assert isinstance(ext.encoders["lidar"], LidarEncoder)
    assert isinstance(ext.encoders["text"], GRUTextEncoder)
    assert isinstance(ext.encoders["state"], MlpEncoder)
    assert ext.features_dim == 32

    ext = MultimodalExtractor(SPACE, encoders={"camera": "impala", "lidar": "mlp"}, **SMALL)
    assert isinstance(ext.encoders["camera"], ImpalaEncoder)
    assert isinstance(ext.encoders["lidar"], MlpEncoder)
    assert ext.config["modalities"]["camera"]["encoder"] == "impala"


def test_lidar_and_text_keys() -> None:
    space = spaces.Dict(
        {
            "scan": spaces.Box(0, 1, (16,), np.float32),
            "instr": spaces.Box(0, 30, (5,), np.float32),  # float ids: only text_keys says so
            "goal": spaces.Box(0, 9, (3,), np.int64),  # integer Box: text by default
        }
    )
    ext = MultimodalExtractor(space, lidar_keys=("scan",), text_keys=("instr",), **SMALL)
    assert isinstance(ext.encoders["scan"], LidarEncoder)
    assert isinstance(ext.encoders["instr"], GRUTextEncoder)
    assert ext.encoders["instr"].vocab_size == 31
    assert isinstance(ext.encoders["goal"], GRUTextEncoder)
    ext = MultimodalExtractor(space, **SMALL)
    assert isinstance(ext.encoders["scan"], MlpEncoder)
    assert isinstance(ext.encoders["instr"], MlpEncoder)


def test_config_is_plain_json_and_tracks_architecture() -> None:
    kwargs = dict(
        fusion="attention",
        encoder_kwargs={"camera": {"channels": (8, 8, 8)}},
        fusion_kwargs={"num_layers": 2},
        **SMALL,
    )
    a, b = MultimodalExtractor(SPACE, **kwargs), MultimodalExtractor(SPACE, **kwargs)
    assert json.loads(json.dumps(a.config)) == a.config == b.config
    assert a.config["modalities"]["camera"]["encoder_kwargs"] == {"channels": [8, 8, 8]}
    assert a.config["modalities"]["text"]["space"]["high"] == 11
    assert MultimodalExtractor(SPACE, fusion="concat", **SMALL).config != a.config
    dropout = MultimodalExtractor(SPACE, modality_dropout=0.5, **kwargs)
    assert dropout.config == a.config  # a training setting, not architecture
    # Equal configs <=> loadable weights.
    b.load_state_dict(a.state_dict())


def test_encode_returns_per_modality_embeddings() -> None:
    ext = MultimodalExtractor(SPACE, **SMALL)
    emb = ext.encode(routing_batch(ext))
    assert set(emb) == set(ext.modalities)
    assert all(v.shape == (4, 16) for v in emb.values())


def test_preprocess_matches_sb3() -> None:
    ext = MultimodalExtractor(SPACE, **SMALL)
    obs, _ = sample_routing_batch(SPACE, "text", 3, np.random.default_rng(0))
    ours = ext.preprocess(obs)
    sb3 = preprocess_obs({k: th.as_tensor(v) for k, v in obs.items()}, SPACE)
    assert all(th.equal(ours[k], sb3[k]) for k in SPACE.spaces)
    assert ours["camera"].max() <= 1.0


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_space_sb3_accepts(fusion: str) -> None:
    space = spaces.Dict(
        {
            "camera": spaces.Box(0, 255, (1, 7, 7), np.uint8),  # MiniGrid-like, channel-first
            "text": spaces.Box(0, 9, (4,), np.int64),
            "lidar": spaces.Box(0, 1, (8,), np.float32),
            "discrete": spaces.Discrete(3),
            "multi_discrete": spaces.MultiDiscrete([2, 4]),
            "multi_binary": spaces.MultiBinary(5),
            "matrix": spaces.Box(-1, 1, (2, 3), np.float32),
            "depth": spaces.Box(0, 255, (9, 9, 1), np.uint8),
        }
    )
    ext = MultimodalExtractor(space, fusion=fusion, **SMALL)
    raw = {k: th.as_tensor(np.stack([space[k].sample() for _ in range(3)])) for k in space}
    out = ext(preprocess_obs(raw, space))
    assert out.shape == (3, 32) and th.isfinite(out).all()


def test_channel_last_space_handled_like_transposed_one() -> None:
    first = routing_observation_space(channels_first=True)
    th.manual_seed(0)
    a = MultimodalExtractor(SPACE, fusion="attention", **SMALL)
    b = MultimodalExtractor(first, fusion="attention", **SMALL)
    b.load_state_dict(a.state_dict())
    x = routing_batch(a)
    y = dict(x, camera=x["camera"].permute(0, 3, 1, 2))
    assert th.allclose(a(x), b(y), atol=1e-5)


def test_normalized_image_option() -> None:
    space = spaces.Dict({"img": spaces.Box(0, 1, (3, 8, 8), np.float32)})
    assert isinstance(MultimodalExtractor(space, **SMALL).encoders["img"], MlpEncoder)
    ext = MultimodalExtractor(space, normalized_image=True, **SMALL)
    assert isinstance(ext.encoders["img"], NatureCNNEncoder)


def test_seeded_determinism() -> None:
    outs, states = [], []
    for seed in (0, 0, 1):
        th.manual_seed(seed)
        ext = MultimodalExtractor(SPACE, fusion="perceiver", modality_dropout=0.3, **SMALL)
        x = routing_batch(ext)
        th.manual_seed(123)
        outs.append(ext(x))  # training mode: dropout draws from the seeded generator
        states.append(ext.state_dict())
    assert th.equal(outs[0], outs[1])
    assert all(th.equal(states[0][k], states[1][k]) for k in states[0])
    assert not th.allclose(outs[0], outs[2])


def test_state_dict_round_trip() -> None:
    a = MultimodalExtractor(SPACE, fusion="gated", **SMALL).eval()
    b = MultimodalExtractor(SPACE, fusion="gated", **SMALL).eval()
    x = routing_batch(a)
    assert not th.allclose(a(x), b(x))
    b.load_state_dict(a.state_dict())
    assert th.equal(a(x), b(x))


def test_set_modality_mask_api() -> None:
    ext = MultimodalExtractor(SPACE, **SMALL).eval()
    x = routing_batch(ext)
    full = ext(x)
    ext.set_modality_mask(["text", "camera"])
    assert ext.masked_modalities == ("camera", "text")
    assert not th.allclose(ext(x), full)
    ext.set_modality_mask(None)
    assert ext.masked_modalities == ()
    assert th.equal(ext(x), full)
    with pytest.raises(ValueError, match=r"unknown modalities \['radar'\]"):
        ext.set_modality_mask(["radar"])


def test_policy_helper_reaches_every_extractor() -> None:
    policy = nn.ModuleDict(
        {"pi": MultimodalExtractor(SPACE, **SMALL), "vf": MultimodalExtractor(SPACE, **SMALL)}
    )
    set_policy_modality_mask(policy, ["lidar"])
    assert [e.masked_modalities for e in multimodal_extractors(policy)] == [("lidar",)] * 2
    with pytest.raises(ValueError, match="no MultimodalExtractor"):
        set_policy_modality_mask(nn.Linear(1, 1), ["lidar"])


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("space", "match"),
    [
        (spaces.Dict({"a": spaces.Dict({"b": spaces.Discrete(2)})}), r"'a' is a nested Dict.*flat"),
        (spaces.Dict({"pair": spaces.Tuple([spaces.Discrete(2)])}), r"'pair' is a nested Tuple"),
        (spaces.Dict({"words": spaces.Text(10)}), r"'words'.*mmrl.wrappers.TextToTokens"),
        (spaces.Box(0, 1, (3,)), r"needs a spaces.Dict"),
        (spaces.Dict({}), r"non-empty"),
        (spaces.Dict({"a.b": spaces.Discrete(2)}), r"'a.b' cannot name a torch submodule"),
        (spaces.Dict({"keys": spaces.Discrete(2)}), r"'keys' clashes with a torch ModuleDict"),
        (
            spaces.Dict({"seq": spaces.Sequence(spaces.Discrete(2))}),
            r"'seq' has unsupported space",
        ),
    ],
)
def test_bad_spaces(space: spaces.Space, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MultimodalExtractor(space)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fusion": "late"}, r"unknown fusion 'late'; available fusions: \['attention'"),
        ({"encoders": {"camera": "vit"}}, r"unknown encoder 'vit'; available encoders"),
        ({"encoders": {"radar": "mlp"}}, r"encoders has unknown keys \['radar'\]"),
        ({"encoder_kwargs": {"radar": {}}}, r"encoder_kwargs has unknown keys"),
        ({"encoders": {"camera": "lidar"}}, r"key 'camera': cannot build encoder 'lidar'"),
        ({"encoder_kwargs": {"text": {"size": 3}}}, r"key 'text': cannot build encoder 'gru'"),
        ({"modality_dropout": 1.0}, r"modality_dropout must be in \[0, 1\)"),
        ({"fusion_kwargs": {"num_layer": 2}}, r"cannot build fusion 'attention'.*num_layer"),
        ({"fusion_kwargs": {"target_keys": ["radar"]}, "fusion": "film"}, r"unknown key 'radar'"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MultimodalExtractor(SPACE, **kwargs)


def test_missing_key_in_batch_is_named() -> None:
    ext = MultimodalExtractor(SPACE, **SMALL)
    x = routing_batch(ext)
    del x["lidar"]
    with pytest.raises(KeyError, match=r"missing key\(s\) \['lidar'\]"):
        ext(x)
    with pytest.raises(KeyError, match="lidar"):
        ext.encode(x)


def test_bad_mask_is_explained() -> None:
    ext = MultimodalExtractor(SPACE, **SMALL)
    x = routing_batch(ext)
    with pytest.raises(ValueError, match=r"bool tensor of shape \(batch, n_modalities\)"):
        ext(x, mask=th.zeros(4, 3, dtype=th.bool))
    with pytest.raises(ValueError, match="bool tensor"):
        ext(x, mask=th.zeros(4, 4))
