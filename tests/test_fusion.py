"""Fusions: registry, shapes, gradients, modality weights, masking semantics, routing."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from torch import nn

from mmrl.extractor import MultimodalExtractor
from mmrl.fusion import PooledFusion, available_fusions, make_fusion, register_fusion
from mmrl.fusion.base import _FUSIONS
from mmrl.fusion.query import sparsemax
from mmrl.testing import (
    BUILTIN_FUSIONS,
    fit_routing,
    routing_observation_space,
    sample_routing_batch,
)

FUSIONS = list(BUILTIN_FUSIONS)
SPACE = routing_observation_space()


def make(fusion: str, **kwargs) -> MultimodalExtractor:
    th.manual_seed(0)
    kwargs.setdefault("features_dim", 32)
    kwargs.setdefault("embed_dim", 16)
    return MultimodalExtractor(SPACE, fusion=fusion, **kwargs)


def batch(extractor: MultimodalExtractor, n: int = 6, seed: int = 0) -> dict[str, th.Tensor]:
    obs, _ = sample_routing_batch(SPACE, "lidar", n, np.random.default_rng(seed))
    return extractor.preprocess(obs)


def test_registry() -> None:
    assert set(FUSIONS) <= set(available_fusions())
    with pytest.raises(ValueError, match=r"unknown fusion 'nope'.*available fusions.*attention"):
        make_fusion("nope", {}, 8)
    with pytest.raises(ValueError, match="already registered"):
        register_fusion("concat")(PooledFusion)


def test_custom_fusion_by_name() -> None:
    @register_fusion("test_max")
    class MaxFusion(PooledFusion):
        def __init__(self, encoders, features_dim):
            super().__init__(encoders, features_dim)
            self.proj = nn.ModuleDict(
                {k: nn.Linear(e.embed_dim, features_dim) for k, e in encoders.items()}
            )

        def fuse(self, feats):
            return th.stack([self.proj[k](v) for k, v in feats.items()]).amax(0)

    try:
        ext = make("test_max")
        assert ext(batch(ext)).shape == (6, 32)
        assert "test_max" in available_fusions()
    finally:
        del _FUSIONS["test_max"]


@pytest.mark.parametrize("fusion", FUSIONS)
def test_shapes_gradients_and_weights(fusion: str) -> None:
    ext = make(fusion)
    x = batch(ext)
    out = ext(x)
    assert out.shape == (6, 32) and out.dtype == th.float32
    assert th.isfinite(out).all()
    out.pow(2).sum().backward()
    # Keys whose tokens the fusion reads instead of their pooled embeddings.
    token_keys = {"attention": ext.modalities, "perceiver": ext.modalities, "query": ["camera"]}
    reads_tokens = {f"encoders.{key}.head." for key in token_keys.get(fusion, [])}
    for name, param in ext.named_parameters():
        if "missing" in name:  # only used when a modality is dropped
            assert param.grad is None or param.grad.abs().sum() == 0, name
        elif any(name.startswith(prefix) for prefix in reads_tokens):
            # Token fusions read tokens; the pooled heads only serve encode() (pretraining).
            assert param.grad is None, name
        else:
            assert param.grad is not None, f"{fusion}: {name} got no gradient"
    weights = ext.modality_weights()
    assert list(weights) == list(ext.modalities)
    assert all(isinstance(w, float) and w >= 0 for w in weights.values())
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
    assert weights != pytest.approx(dict.fromkeys(ext.modalities, 0.25))  # measured, not default


@pytest.mark.parametrize("fusion", FUSIONS)
def test_missing_embeddings_learn_from_dropped_samples(fusion: str) -> None:
    ext = make(fusion)
    mask = th.zeros(6, 4, dtype=th.bool)
    mask[:, ext.modalities.index("camera")] = True
    ext(batch(ext), mask=mask).sum().backward()
    grads = [p.grad for n, p in ext.named_parameters() if "missing" in n]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("key", ["camera", "lidar", "text", "state"])
def test_masked_modality_content_has_no_effect(fusion: str, key: str) -> None:
    ext = make(fusion).eval()
    x, other = batch(ext, seed=0), batch(ext, seed=1)
    swapped = dict(x, **{key: other[key]})
    with th.no_grad():
        assert not th.allclose(ext(x), ext(swapped))  # the modality matters when present
        ext.set_modality_mask([key])
        assert th.allclose(ext(x), ext(swapped), atol=1e-5)
        ext.set_modality_mask(None)
        assert not th.allclose(ext(x), ext(swapped))


@pytest.mark.parametrize("fusion", FUSIONS)
def test_per_sample_mask_only_touches_its_rows(fusion: str) -> None:
    ext = make(fusion).eval()
    x = batch(ext)
    mask = th.zeros(6, 4, dtype=th.bool)
    mask[0, :2] = True
    with th.no_grad():
        full, masked = ext(x), ext(x, mask=mask)
    assert th.allclose(full[1:], masked[1:], atol=1e-5)
    assert not th.allclose(full[0], masked[0])


@pytest.mark.parametrize("fusion", ["gated", "attention", "perceiver"])
def test_weights_follow_masking(fusion: str) -> None:
    # Masked token modalities keep one "missing" token, masked gated modalities a constant
    # embedding; either way the weight of a masked modality moves.
    ext = make(fusion).eval()
    x = batch(ext, n=32)
    with th.no_grad():
        ext(x)
        before = ext.modality_weights()
        ext.set_modality_mask(["camera"])
        ext(x)
    assert ext.modality_weights()["camera"] != pytest.approx(before["camera"], abs=1e-4)


def test_modality_dropout_training_only_and_never_drops_everything() -> None:
    ext = make("concat", modality_dropout=0.95)
    x = batch(ext, n=64)
    drop = ext._drop_mask(x, None)
    assert drop is not None and drop.shape == (64, 4)
    assert (~drop).any(dim=1).all()  # at least one modality kept per sample
    assert drop.float().mean() > 0.5
    assert not th.allclose(ext(x), ext(x))  # stochastic in training mode
    ext.eval()
    assert ext._drop_mask(x, None) is None
    assert th.equal(ext(x), ext(x))


def test_film_needs_something_to_condition_on_and_targets() -> None:
    nothing = spaces.Dict({"camera": SPACE["camera"], "lidar": SPACE["lidar"]})
    with pytest.raises(ValueError, match="needs a text or vector modality to condition on"):
        MultimodalExtractor(nothing, fusion="film")
    no_text = spaces.Dict({"camera": SPACE["camera"], "state": SPACE["state"]})
    assert MultimodalExtractor(no_text, fusion="film").fusion.condition_keys == ("state",)
    # With text present the text conditions, as before (pretrained configs stay valid).
    assert MultimodalExtractor(SPACE, fusion="film").fusion.condition_keys == ("text",)
    no_target = spaces.Dict({"text": SPACE["text"], "state": SPACE["state"]})
    with pytest.raises(ValueError, match="image or lidar encoders"):
        MultimodalExtractor(no_target, fusion="film")
    ext = MultimodalExtractor(SPACE, fusion="film", fusion_kwargs={"target_keys": ["lidar"]})
    assert set(ext.fusion.film) == {"lidar"}


def test_film_text_conditions_the_camera() -> None:
    ext = make("film").eval()
    x, other = batch(ext, seed=0), batch(ext, seed=1)
    with th.no_grad():
        cam = ext.encoders["camera"](x["camera"])
        feats = {}

        def grab(module, args, output):
            feats["camera"] = output

        handle = ext.encoders["camera"].register_forward_hook(grab)
        ext(x)
        conditioned = feats["camera"]
        ext(dict(x, text=other["text"]))
        handle.remove()
    assert not th.allclose(conditioned, cam)  # FiLM changed the camera features
    assert not th.allclose(conditioned, feats["camera"])  # ... as a function of the text


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_fits_sb3s_multi_input_test_env(fusion: str) -> None:
    """SB3's own image + vector env (no text), where its CombinedExtractor works."""
    from stable_baselines3.common.envs import SimpleMultiObsEnv

    space = SimpleMultiObsEnv(random_start=False).observation_space
    th.manual_seed(0)
    ext = MultimodalExtractor(space, fusion=fusion, features_dim=32, embed_dim=16).eval()
    rng = np.random.default_rng(0)
    obs = {"img": rng.integers(0, 256, (4, *space["img"].shape)), "vec": rng.random((4, 5))}
    other = dict(obs, vec=rng.random((4, 5)))
    with th.no_grad():
        out, out_other = ext(ext.preprocess(obs)), ext(ext.preprocess(other))
    assert out.shape == (4, 32) and th.isfinite(out).all()
    assert not th.allclose(out, out_other)  # the vector reaches the features
    if fusion == "film":
        assert ext.fusion.condition_keys == ("vec",) and ext.fusion.target_keys == ("img",)


def test_film_trains_with_sb3_ppo_on_its_multi_input_env() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.envs import SimpleMultiObsEnv

    model = PPO(
        "MultiInputPolicy",
        SimpleMultiObsEnv(random_start=False),
        n_steps=32,
        batch_size=16,
        n_epochs=1,
        seed=0,
        policy_kwargs=dict(
            features_extractor_class=MultimodalExtractor,
            features_extractor_kwargs=dict(fusion="film", features_dim=32, embed_dim=16),
        ),
    )
    film = model.policy.features_extractor.fusion.film["img"].weight.detach().clone()
    model.learn(64)
    assert not th.equal(film, model.policy.features_extractor.fusion.film["img"].weight)


# One signal modality per fusion keeps the default run fast while covering all four keys;
# the full grid is marked slow.
ROUTING_FAST = [
    ("concat", "camera"),
    ("mean", "text"),
    ("gated", "state"),
    ("film", "lidar"),
    ("attention", "lidar"),
    ("perceiver", "camera"),
]


@pytest.mark.parametrize(("fusion", "signal_key"), ROUTING_FAST)
def test_routing_learned_and_masking_destroys_it(fusion: str, signal_key: str) -> None:
    accuracy, masked = fit_routing(fusion, signal_key, steps=120, batch_size=48, eval_size=256)
    assert accuracy >= 0.9, f"{fusion} did not learn the {signal_key} signal ({accuracy:.2f})"
    assert masked <= 0.65, f"{fusion} still solves it with {signal_key} masked ({masked:.2f})"


@pytest.mark.slow
@pytest.mark.parametrize("signal_key", ["camera", "lidar", "text", "state"])
@pytest.mark.parametrize("fusion", FUSIONS)
def test_routing_full_grid(fusion: str, signal_key: str) -> None:
    accuracy, masked = fit_routing(fusion, signal_key, steps=200)
    assert accuracy >= 0.9 and masked <= 0.65, (accuracy, masked)


def test_routing_with_modality_dropout() -> None:
    # Trained with dropout, the extractor still relies on the signal modality alone.
    accuracy, masked = fit_routing(
        "gated", "lidar", steps=120, batch_size=48, eval_size=256, modality_dropout=0.2
    )
    assert accuracy >= 0.85 and masked <= 0.65, (accuracy, masked)


@pytest.mark.parametrize("direct_query", [True, False])
def test_query_reaches_the_policy_only_through_the_image_unless_direct(direct_query: bool) -> None:
    ext = make("query", fusion_kwargs={"direct_query": direct_query}).eval()
    x, other = batch(ext, seed=0), batch(ext, seed=1)
    reworded = dict(x, text=other["text"])
    with th.no_grad():
        assert not th.allclose(ext(x), ext(reworded))  # the instruction picks what is read
        ext.set_modality_mask(["camera"])
        # With nothing to query, only a direct path lets the instruction through.
        assert th.allclose(ext(x), ext(reworded), atol=1e-6) != direct_query


def test_query_finds_the_best_matching_cell() -> None:
    ext = make("query").eval()
    fusion = ext.fusion
    h, d = fusion.num_heads, fusion.head_dim
    cells = fusion.position["camera"].shape[0]
    tokens = th.zeros(1, cells, fusion.key["camera"].in_features)
    with th.no_grad():
        for module in (fusion.key["camera"], fusion.query["camera"]):
            module.weight.zero_()
            module.bias.zero_()
        fusion.position["camera"].zero_()
        fusion.position["camera"][2] = 1.0  # cell 2's key points along every query
        fusion.query["camera"].bias.fill_(10.0)
        fusion.value["camera"].weight.zero_()
        fusion.value["camera"].bias.zero_()
        readout = fusion.read("camera", tokens, th.zeros(1, fusion.query["camera"].in_features))
    attended, found = readout[:, : h * d], readout[:, h * d :]
    assert found == pytest.approx(th.ones(1, h), abs=1e-4)  # sure it found something
    assert th.allclose(attended, th.ones(1, h * d), atol=1e-4)  # cell 2's value (its position)


@pytest.mark.parametrize("values", ["cells", "positions"])
def test_query_reads_cell_content_only_with_cell_values(values: str) -> None:
    ext = make("query", fusion_kwargs={"direct_query": False, "values": values}).eval()
    with th.no_grad():  # keys blind to content: every image is attended alike
        ext.fusion.key["camera"].weight.zero_()
    x, other = batch(ext, seed=0), batch(ext, seed=1)
    repainted = dict(x, camera=other["camera"])
    with th.no_grad():
        assert th.allclose(ext(x), ext(repainted), atol=1e-6) == (values == "positions")


def test_query_values_are_checked() -> None:
    with pytest.raises(ValueError, match="values must be 'cells' or 'positions'"):
        make("query", fusion_kwargs={"values": "pixels"})


def test_query_needs_something_to_query() -> None:
    space = spaces.Dict({"lidar": SPACE["lidar"], "text": SPACE["text"]})
    with pytest.raises(ValueError, match=r"fusion='query' needs a text .* and an image"):
        MultimodalExtractor(space, fusion="query")
    with pytest.raises(ValueError, match="unknown keys"):
        make("query", fusion_kwargs={"target_keys": ["radar"]})


def test_sparsemax_projects_onto_the_simplex_with_exact_zeros() -> None:
    z = th.tensor([[0.5, 0.2, 0.1], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    p = sparsemax(z)
    expected = th.tensor([[0.5 + 1 / 15, 0.2 + 1 / 15, 0.1 + 1 / 15], [1, 0, 0], [1 / 3] * 3])
    assert th.allclose(p, expected, atol=1e-6)
    p[1, 0].backward()
    assert th.equal(z.grad[1], th.zeros(3))  # a saturated gate passes no gradient
    q = sparsemax(th.randn(50, 7) * 3)
    assert th.allclose(q.sum(-1), th.ones(50), atol=1e-5) and (q >= 0).all()


def make_words(**kwargs) -> MultimodalExtractor:
    kwargs.setdefault("encoders", {"camera": "factored", "text": "bow"})
    fusion_kwargs = {"direct_query": False, "values": "positions", "word_queries": True}
    return make("query", fusion_kwargs=fusion_kwargs | kwargs.pop("fusion_kwargs", {}), **kwargs)


def test_word_queries_shapes_gradients_and_groups() -> None:
    ext = make_words()
    assert ext.fusion.groups["camera"] == ext.encoders["camera"].token_groups()
    assert sum(ext.fusion.groups["camera"]) == ext.encoders["camera"].token_shape()[1]
    assert not hasattr(ext.fusion, "key")  # the per-group key maps replace it
    out = ext(batch(ext))
    assert out.shape == (6, 32)
    out.square().sum().backward()
    for name in ("word_query", "group_key", "word_gate", "empty_key"):  # query: 0 at init
        grads = [p.grad for p in getattr(ext.fusion, name).parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), name


def test_word_queries_sum_over_words() -> None:
    # Bag-of-words tokens are context-free, so each word's share of the match is its own:
    # logits(a d) = logits(a b) - logits(c b) + logits(c d) for any cells.
    ext = make_words().eval()
    fusion, text = ext.fusion, ext.encoders["text"]
    t, width = fusion.position["camera"].shape[0], sum(fusion.groups["camera"])
    cells = th.randn(1, t, width)

    def logits(*ids: int) -> th.Tensor:
        words, padding = text.tokens(th.tensor([[*ids, 0, 0, 0, 0]]))
        return fusion.word_logits("camera", cells, words, padding)

    with th.no_grad():
        composed = logits(3, 4) - logits(5, 4) + logits(5, 6)
        assert th.allclose(logits(3, 6), composed, atol=1e-5)
        assert not th.allclose(logits(3, 6), logits(3, 4))


@pytest.mark.parametrize("route", [0, 1])
def test_a_routed_word_reads_only_its_channel_group(route: int) -> None:
    ext = make_words().eval()
    fusion, text = ext.fusion, ext.encoders["text"]
    shape_width, colour_width = fusion.groups["camera"]
    t = fusion.position["camera"].shape[0]
    with th.no_grad():  # every word on one route: 0 = shape channels, 1 = colour channels
        fusion.word_gate["camera"].bias[route] = 100.0
        words, padding = text.tokens(th.tensor([[3, 4, 5, 0, 0, 0]]))
        cells = th.randn(1, t, shape_width + colour_width)
        other = cells.clone()
        other[..., shape_width:] = th.randn(1, t, colour_width)  # new colours, same shapes
        same = th.allclose(
            fusion.word_logits("camera", cells, words, padding),
            fusion.word_logits("camera", other, words, padding),
        )
    assert same == (route == 0)


def test_word_queries_fall_silent_with_the_instruction_masked() -> None:
    ext = make_words().eval()
    x, other = batch(ext, seed=0), batch(ext, seed=1)
    reworded = dict(x, text=other["text"])
    with th.no_grad():
        assert not th.allclose(ext(x), ext(reworded))
        ext.set_modality_mask(["text"])
        assert th.allclose(ext(x), ext(reworded), atol=1e-6)


def test_word_queries_need_one_query_key() -> None:
    with pytest.raises(ValueError, match="word_queries needs exactly one query key"):
        make_words(fusion_kwargs={"query_keys": ["text", "state"]})
