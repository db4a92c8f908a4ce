"""Encoders: registry, shapes, gradients, layouts, circular padding, text padding, FiLM."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs

from mmrl.encoders import (
    Encoder,
    LidarEncoder,
    available_encoders,
    conv_plan,
    make_encoder,
    register_encoder,
)
from mmrl.encoders.base import _ENCODERS

IMAGE_SHAPES = [(64, 64, 3), (3, 64, 64), (7, 7, 3), (7, 7, 1), (1, 7, 7), (16, 16, 3), (84, 84, 4)]
TEXT = spaces.Box(0, 19, (8,), np.int64)


def image_space(shape: tuple[int, ...]) -> spaces.Box:
    return spaces.Box(0, 255, shape, np.uint8)


def check_gradients(encoder: Encoder, out: th.Tensor) -> None:
    encoder.zero_grad()
    out.pow(2).sum().backward()
    for name, param in encoder.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert th.isfinite(param.grad).all(), name
    total = sum(p.grad.abs().sum() for p in encoder.parameters())
    assert total > 0


def test_registry_lists_builtins_and_rejects_unknown_names() -> None:
    assert {"nature", "impala", "factored", "lidar", "gru", "bow", "transformer", "mlp"} <= set(
        available_encoders()
    )
    with pytest.raises(ValueError, match=r"unknown encoder 'nope'.*available encoders.*nature"):
        make_encoder("nope", TEXT, 8)
    with pytest.raises(ValueError, match="already registered"):
        register_encoder("gru")(LidarEncoder)


def test_custom_encoder_registration() -> None:
    @register_encoder("test_sum")
    class SumEncoder(Encoder):
        def __init__(self, space: spaces.Space, embed_dim: int) -> None:
            super().__init__(space, embed_dim)
            self.linear = th.nn.Linear(1, embed_dim)

        def forward(self, x: th.Tensor, film: object = None) -> th.Tensor:
            return self.linear(x.flatten(1).sum(1, keepdim=True))

    try:
        enc = make_encoder("test_sum", spaces.Box(0, 1, (3,)), 5)
        assert enc(th.ones(2, 3)).shape == (2, 5)
        assert enc.token_shape() == (1, 5)
    finally:
        del _ENCODERS["test_sum"]


@pytest.mark.parametrize("name", ["nature", "impala", "factored"])
@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_image_encoders_shapes_and_gradients(name: str, shape: tuple[int, ...]) -> None:
    space = image_space(shape)
    if name == "factored" and min(shape) % 3:  # its shape stream reads RGB frames
        with pytest.raises(ValueError, match="RGB frames"):
            make_encoder(name, space, 16)
        return
    enc = make_encoder(name, space, 16)
    x = preprocess_obs(th.as_tensor(np.stack([space.sample() for _ in range(3)])), space)
    out = enc(x)
    assert out.shape == (3, 16)
    toks, padding = enc.tokens(x)
    t, d = enc.token_shape()
    assert toks.shape == (3, t, d) and padding is None
    assert t <= 64  # grid capped at max_grid x max_grid
    assert sum(enc.token_groups()) == d and len(enc.token_groups()) == (name == "factored") + 1
    check_gradients(enc, out + toks.mean())


def test_factored_token_groups_are_its_shape_and_colour_streams() -> None:
    enc = make_encoder("factored", image_space((24, 24, 3)), 8)
    shape_width, _ = enc.token_groups()
    x = th.rand(2, 24, 24, 3)
    recoloured = x[..., [2, 0, 1]]  # every pixel's hue changes, its brightness (max) does not
    toks, recoloured_toks = enc.tokens(x)[0], enc.tokens(recoloured)[0]
    assert th.allclose(toks[..., :shape_width], recoloured_toks[..., :shape_width], atol=1e-6)
    assert not th.allclose(toks[..., shape_width:], recoloured_toks[..., shape_width:])


def test_nature_geometry_follows_image_size() -> None:
    assert conv_plan(64) == [(8, 4, 0), (4, 2, 0), (3, 1, 0)]  # NatureCNN
    assert conv_plan(7) == [(3, 1, 1)] * 3  # MiniGrid views keep their cells
    assert make_encoder("nature", image_space((64, 64, 3)), 8).token_shape()[0] == 16


@pytest.mark.parametrize("name", ["nature", "impala", "factored"])
def test_channel_last_and_first_layouts_agree(name: str) -> None:
    last = make_encoder(name, image_space((12, 12, 3)), 8)
    first = make_encoder(name, image_space((3, 12, 12)), 8)
    first.load_state_dict(last.state_dict())
    x = th.rand(2, 12, 12, 3)
    assert th.allclose(last(x), first(x.permute(0, 3, 1, 2)), atol=1e-6)
    assert th.allclose(last.tokens(x)[0], first.tokens(x.permute(0, 3, 1, 2))[0], atol=1e-6)


def test_lidar_shapes_gradients_and_circular_equivariance() -> None:
    space = spaces.Box(0, 1, (64,), np.float32)
    enc = make_encoder("lidar", space, 16)
    x = th.rand(4, 64)
    assert enc(x).shape == (4, 16)
    assert enc.tokens(x)[0].shape == (4, 8, 32)
    check_gradients(enc, enc(x))
    # Three stride-2 layers: rotating the scan by 8 beams rotates the feature map by 1 cell,
    # exactly, only if the padding wraps around (zero padding would break it at the edges).
    fmap = enc.feature_map(x)
    rotated = enc.feature_map(th.roll(x, 8, dims=1))
    assert th.allclose(rotated, th.roll(fmap, 1, dims=2), atol=1e-5)


@pytest.mark.parametrize("beams", [1, 2, 3, 8])
def test_lidar_short_scans(beams: int) -> None:
    enc = make_encoder("lidar", spaces.Box(0, 1, (beams,), np.float32), 8)
    assert enc(th.rand(2, beams)).shape == (2, 8)


@pytest.mark.parametrize("name", ["gru", "bow", "transformer"])
def test_text_encoders_shapes_gradients_and_float_input(name: str) -> None:
    enc = make_encoder(name, TEXT, 16)
    ids = th.tensor([[3, 4, 5, 0, 0, 0, 0, 0], [7, 8, 9, 10, 11, 12, 13, 14]])
    out = enc(ids.float())  # what SB3's preprocess_obs hands over
    assert out.shape == (2, 16)
    assert th.equal(out, enc(ids))
    toks, padding = enc.tokens(ids.float())
    assert toks.shape[:2] == (2, 8) and padding.shape == (2, 8)
    assert padding[0].sum() == 5 and not padding[1].any()
    check_gradients(enc, out)


@pytest.mark.parametrize("name", ["gru", "bow", "transformer"])
def test_text_padding_is_ignored(name: str) -> None:
    enc = make_encoder(name, TEXT, 16)
    ids = th.tensor([[3, 4, 5, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]])
    before = enc(ids)
    assert th.isfinite(before).all()  # an empty instruction must not produce NaN
    with th.no_grad():
        enc.embedding.weight[0].normal_()  # if padding were read, this would leak through
    assert th.allclose(enc(ids), before, atol=1e-6)


@pytest.mark.parametrize("name", ["gru", "bow"])
def test_text_padding_position_does_not_matter(name: str) -> None:
    enc = make_encoder(name, TEXT, 16)
    right = th.tensor([[3, 4, 5, 0, 0, 0, 0, 0]])
    scattered = th.tensor([[0, 3, 0, 0, 4, 5, 0, 0]])
    assert th.allclose(enc(right), enc(scattered), atol=1e-6)
    assert not th.allclose(enc(right), enc(th.tensor([[5, 4, 3, 0, 0, 0, 0, 0]]))) or name == "bow"


def test_bag_of_words_embedding_std() -> None:
    th.manual_seed(0)
    small = make_encoder("bow", TEXT, 16, embedding_std=0.1)
    weights = small.embedding.weight[1:]
    assert 0.09 < weights.std().item() < 0.11 and not small.embedding.weight[0].any()
    assert make_encoder("bow", TEXT, 16).embedding.weight[1:].std().item() > 0.9
    with pytest.raises(ValueError, match="embedding_std must be > 0"):
        make_encoder("bow", TEXT, 16, embedding_std=0.0)


def test_linear_bag_of_words_composes_word_pairs_exactly() -> None:
    th.manual_seed(0)
    # Two-word instructions: with linear=True, (a, d) is determined by (a, b), (c, b) and
    # (c, d), since f(a, d) = f(a, b) - f(c, b) + f(c, d) for an affine map of a mean.
    enc = make_encoder("bow", TEXT, 16, linear=True)
    relu = make_encoder("bow", TEXT, 16)
    relu.load_state_dict(enc.state_dict())  # one layout, whichever the option
    a, b, c, d = 3, 4, 5, 6

    def embed(model: th.nn.Module, x: int, y: int) -> th.Tensor:
        return model(th.tensor([[x, y, 0, 0, 0, 0, 0, 0]]))

    for model, exact in ((enc, True), (relu, False)):
        composed = embed(model, a, b) - embed(model, c, b) + embed(model, c, d)
        assert th.allclose(embed(model, a, d), composed, atol=1e-5) is exact
    assert (embed(enc, a, b) < 0).any()  # no ReLU after the map


@pytest.mark.parametrize("name", ["gru", "bow", "transformer"])
def test_drop_unseen_words_reads_untrained_ids_as_padding(name: str) -> None:
    th.manual_seed(0)
    enc = make_encoder(name, TEXT, 16, drop_unseen_words=True)
    plain = make_encoder(name, TEXT, 16)
    plain.load_state_dict({k: v for k, v in enc.state_dict().items() if k != "seen_words"})
    known = th.tensor([[3, 4, 0, 0, 0, 0, 0, 0]])
    with_novel = th.tensor([[3, 9, 4, 0, 0, 0, 0, 0]])  # 9: never shown in training
    enc.eval()
    # Nothing seen yet (a from-scratch agent's first rollout): the whole instruction counts.
    assert th.allclose(enc(with_novel), plain(with_novel), atol=1e-6)
    enc.train()
    enc(known.float())  # a training step shows 3 and 4
    assert enc.seen_words.nonzero().flatten().tolist() == [3, 4]
    enc.eval()
    # 9 is read as padding where it stands (the transformer's positions see the gap).
    assert th.allclose(enc(with_novel), plain(th.tensor([[3, 0, 4, 0, 0, 0, 0, 0]])), atol=1e-6)
    assert not th.allclose(plain(with_novel), plain(known), atol=1e-4)
    # Evaluation never marks words: 9 stays unseen.
    enc(th.tensor([[9, 0, 0, 0, 0, 0, 0, 0]]))
    assert not enc.seen_words[9]
    # The ids seen travel with the weights.
    copy = make_encoder(name, TEXT, 16, drop_unseen_words=True).eval()
    copy.load_state_dict(enc.state_dict())
    assert th.allclose(copy(with_novel), enc(with_novel), atol=1e-6)


def test_drop_unseen_words_loads_weights_saved_without_it() -> None:
    old = make_encoder("bow", TEXT, 16)
    new = make_encoder("bow", TEXT, 16, drop_unseen_words=True)
    new.load_state_dict(old.state_dict())  # strict: the missing buffer is not an error
    assert not new.seen_words.any()
    with pytest.raises(RuntimeError, match="seen_words"):
        old.load_state_dict(new.state_dict())  # the reverse would silently drop the option


@pytest.mark.parametrize(
    "space",
    [
        spaces.Discrete(5),
        spaces.MultiDiscrete([2, 3]),
        spaces.MultiBinary(4),
        spaces.MultiBinary([2, 3]),
        spaces.Box(-1, 1, (2, 3), np.float32),
    ],
)
def test_mlp_after_sb3_preprocessing(space: spaces.Space) -> None:
    enc = make_encoder("mlp", space, 8)
    raw = th.as_tensor(np.stack([space.sample() for _ in range(3)]))
    out = enc(preprocess_obs(raw, space))
    assert out.shape == (3, 8)
    check_gradients(enc, out)


@pytest.mark.parametrize(
    ("name", "space", "match"),
    [
        ("gru", spaces.Box(0, np.inf, (4,), np.float32), "finite range"),
        ("lidar", spaces.Box(0, 1, (4, 4), np.float32), "1-D Box"),
        ("nature", spaces.Box(0, 1, (4,), np.float32), "3-D Box"),
        ("mlp", spaces.Text(5), "Box/Discrete"),
    ],
)
def test_incompatible_spaces_raise(name: str, space: spaces.Space, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_encoder(name, space, 8)


@pytest.mark.parametrize(
    ("name", "space", "x"),
    [
        ("nature", image_space((3, 12, 12)), th.rand(2, 3, 12, 12)),
        ("impala", image_space((3, 12, 12)), th.rand(2, 3, 12, 12)),
        ("factored", image_space((3, 12, 12)), th.rand(2, 3, 12, 12)),
        ("lidar", spaces.Box(0, 1, (16,), np.float32), th.rand(2, 16)),
    ],
)
def test_film_identity_and_effect(name: str, space: spaces.Space, x: th.Tensor) -> None:
    enc = make_encoder(name, space, 8)
    assert len(enc.film_dims) == 3
    identity = [(th.ones(2, c), th.zeros(2, c)) for c in enc.film_dims]
    assert th.allclose(enc(x, film=identity), enc(x), atol=1e-6)
    betas = [th.randn(2, c, requires_grad=True) for c in enc.film_dims]
    out = enc(x, film=[(th.ones(2, c), b) for c, b in zip(enc.film_dims, betas)])
    assert not th.allclose(out, enc(x))
    out.sum().backward()
    assert all(b.grad is not None and b.grad.abs().sum() > 0 for b in betas)


def test_factored_shape_stream_is_blind_to_hue() -> None:
    enc = make_encoder("factored", image_space((64, 64, 3)), 8)
    shape_channels = enc.film_dims[-1]
    red, blue = th.full((1, 64, 64, 3), 0.3), th.full((1, 64, 64, 3), 0.3)
    red[:, 20:44, 24:40] = th.tensor([0.9, 0.1, 0.1])  # the same object, another hue
    blue[:, 20:44, 24:40] = th.tensor([0.1, 0.1, 0.9])
    dim = blue.clone()
    dim[:, 20:44, 24:40] = th.tensor([0.1, 0.1, 0.5])  # the same hue, darker
    with th.no_grad():
        f_red, f_blue, f_dim = (enc.feature_map(x) for x in (red, blue, dim))
    assert th.equal(f_red[:, :shape_channels], f_blue[:, :shape_channels])
    assert not th.allclose(f_red[:, shape_channels:], f_blue[:, shape_channels:])
    assert not th.allclose(f_blue[:, :shape_channels], f_dim[:, :shape_channels])


def test_factored_needs_rgb_frames() -> None:
    with pytest.raises(ValueError, match="RGB frames"):
        make_encoder("factored", image_space((12, 12, 4)), 8)
    two_frames = make_encoder("factored", image_space((12, 12, 6)), 8)
    assert two_frames(th.rand(2, 12, 12, 6)).shape == (2, 8)
