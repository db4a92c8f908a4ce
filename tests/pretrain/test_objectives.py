"""Pretraining objectives: losses, shared encoder pass, augmentation, label specs."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from mmrl.config import resolve_run_config
from mmrl.data import load_offline_data
from mmrl.pretrain.checkpoint import build_policy
from mmrl.pretrain.objectives import (
    OBJECTIVES,
    PretrainModel,
    infer_label_specs,
    parse_objectives,
    random_shift,
)


@pytest.fixture(scope="module")
def data(setup):
    return load_offline_data(setup.dataset)


def _model(setup, data, objectives=OBJECTIVES, action_space=None, seed=0, fusion="attention"):
    th.manual_seed(seed)
    config = resolve_run_config(setup.env, setup.agent, [f"agent.extractor.fusion={fusion}"])
    policy = build_policy(data.observation_space, action_space or data.action_space, config)
    specs = infer_label_specs(data.labels, th.arange(len(data)))
    return PretrainModel(policy, objectives, specs)


def _batch(data, n=48):
    rows = th.arange(n)
    labels = {k: v[rows] for k, v in data.labels.items()}
    return data.batch(rows), data.bc_actions[rows], labels


def test_parse_objectives():
    assert parse_objectives("bc, masked,bc") == ["bc", "masked"]
    with pytest.raises(ValueError, match="choose from bc, labels, contrastive, masked"):
        parse_objectives("bc,reconstruct")


def test_label_specs_classify_small_ints_and_standardize_floats():
    labels = {
        "lane": th.tensor([0, 2, 1, 2]),
        "dist": th.tensor([1.0, 3.0, 5.0, 7.0]),
        "const": th.tensor([4.0, 4.0, 4.0, 4.0]),
        "big_id": th.tensor([0, 500, 7, 9]),
        "color_or_none": th.tensor([-1, 0, 3, -1]),
    }
    specs = {s.name: s for s in infer_label_specs(labels, th.arange(4))}
    assert specs["lane"].kind == "class" and specs["lane"].num_classes == 3
    assert specs["dist"].kind == "regress" and specs["dist"].mean == pytest.approx(4.0)
    assert specs["big_id"].kind == "regress"  # too many values for a softmax
    assert "const" not in specs
    none = specs["color_or_none"]
    assert (none.kind, none.num_classes, none.offset) == ("class", 5, -1)


def test_every_objective_gives_a_finite_loss_with_gradients(setup, data):
    model = _model(setup, data)
    obs, actions, labels = _batch(data)
    losses, metrics = model.losses(obs, actions, labels, th.Generator().manual_seed(0))
    assert set(losses) == set(OBJECTIVES)
    sum(losses.values()).backward()
    for name, loss in losses.items():
        assert th.isfinite(loss), name
    assert 0 <= metrics["bc_accuracy"] <= 1 and 0 <= metrics["contrastive_top1"] <= 1
    parts = {
        "camera encoder": model.extractor.encoders["camera"],
        "text encoder": model.extractor.encoders["text"],
        "fusion": model.extractor.fusion,
        "action_net": model.policy.action_net,
        "label head": model.label_head,
        "lidar projection": model.projections["lidar"],
        "state predictor": model.predictors["state"],
    }
    for name, module in parts.items():
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters()), name


@pytest.mark.parametrize("fusion", ["attention", "concat", "film", "perceiver"])
def test_shared_encoder_pass_changes_nothing_but_cost(setup, data, fusion):
    """Losses and gradients equal those of separate encoder passes (the memo is exact)."""
    model = _model(setup, data, fusion=fusion)
    obs, actions, labels = _batch(data)
    results = []
    for shared in (True, False):
        model.zero_grad()
        gen = th.Generator().manual_seed(3)
        if shared:
            losses, _ = model.losses(obs, actions, labels, gen)
        else:
            losses, _ = model._losses(model.preprocess(obs), actions, labels, gen)
        sum(losses.values()).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append(({k: v.detach() for k, v in losses.items()}, grads))
    (l1, g1), (l2, g2) = results
    for k in l1:
        th.testing.assert_close(l1[k], l2[k], rtol=1e-5, atol=1e-6)
    assert g1.keys() == g2.keys()
    for k in g1:
        th.testing.assert_close(g1[k], g2[k], rtol=1e-4, atol=1e-6)
    # The patches are gone after the block.
    assert "feature_map" not in vars(model.extractor.encoders["camera"])


def test_infonce_does_not_use_identical_instructions_as_negatives(setup, data):
    model = _model(setup, data, ["contrastive"])
    obs, _, _ = _batch(data)
    obs["text"] = obs["text"][:1].expand_as(obs["text"]).clone()  # one instruction for all
    pre = model.preprocess(obs)
    emb = model.encode(pre)
    only_text = model._infonce({"text": pre["text"]}, {k: emb[k] for k in ("text", "camera")})
    # Every negative of the (text, camera) pair is masked out: nothing left to contrast.
    assert only_text[0].item() == pytest.approx(0.0, abs=1e-6)


def test_bc_on_continuous_actions_is_gaussian_nll(setup, data):
    box = spaces.Box(-1, 1, (1,), np.float32)
    model = _model(setup, data, ["bc"], action_space=box)
    obs, actions, _ = _batch(data)
    target = (actions.float() - 1).unsqueeze(-1)  # the discrete expert as steering -1/0/1
    losses, metrics = model.losses(obs, target)
    losses["bc"].backward()
    assert model.policy.action_net.weight.grad.abs().sum() > 0
    assert model.policy.log_std.grad is not None and "bc_mse" in metrics


def test_random_shift_crops_the_padded_image():
    gen = th.Generator().manual_seed(0)
    images = th.arange(2 * 3 * 8 * 8, dtype=th.float32).view(2, 3, 8, 8).to(th.uint8)
    out = random_shift(images, 2, gen)
    assert out.shape == images.shape and out.dtype == th.uint8
    padded = th.nn.functional.pad(images.float(), (2, 2, 2, 2), mode="replicate")
    for b in range(2):
        matches = [
            (dy, dx) for dy in range(5) for dx in range(5)
            if th.equal(padded[b, :, dy:dy + 8, dx:dx + 8].to(th.uint8), out[b])
        ]  # fmt: skip
        assert matches, "every output must be one crop of its padded input"
    assert th.equal(random_shift(images, 0), images)
    shifts = th.stack([random_shift(images, 2, gen) for _ in range(10)])
    assert (shifts != images).any()  # shifts actually happen
