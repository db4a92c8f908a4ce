"""``mmrl pretrain``: the training loop, its checkpoint, and refusing mismatched data."""

from __future__ import annotations

import pytest
import torch as th

from mmrl.config import ConfigError
from mmrl.data import DatasetError, collect
from mmrl.envs.vec_env import BatchedVecEnv
from mmrl.errors import SpaceMismatchError
from mmrl.pretrain import load_encoder_checkpoint, pretrain
from mmrl.pretrain.checkpoint import deserialize_space


def test_checkpoint_records_architecture_spaces_objectives_and_head(setup):
    ckpt = load_encoder_checkpoint(setup.checkpoint)
    assert ckpt["extractor_config"]["fusion"] == "attention"
    assert ckpt["extractor_config"]["features_dim"] == 32
    assert ckpt["extractor_config"]["modalities"]["camera"]["space"]["shape"] == [3, 16, 16]
    assert deserialize_space(ckpt["observation_space"])["camera"].shape == (3, 16, 16)
    assert str(deserialize_space(ckpt["action_space"])) == "Discrete(3)"
    assert ckpt["info"]["objectives"] == ["bc", "labels", "contrastive", "masked"]
    assert ckpt["info"]["dataset_id"] == setup.dataset
    assert ckpt["head_config"] == {"pi": [16], "activation": "tanh"}
    assert ckpt["head"]["action_net"]["weight"].shape == (3, 16)
    assert any(k.startswith("label_head") for k in ckpt["aux_heads"])
    assert setup.result.val_size > 0 and setup.result.best_epoch >= 1
    events = list(setup.result.log_dir.glob("events.out.tfevents.*"))
    assert events, "TensorBoard event file written"


def test_bc_learns_the_expert(setup):
    result = pretrain(setup.dataset, setup.agent, env=setup.env, objectives="bc", epochs=40,
                      batch_size=32, lr=1e-3, out=setup.root / "bc.pt", patience=40,
                      val_fraction=0.0, verbose=0)  # fmt: skip
    assert result.val_metrics["bc_accuracy"] > 0.9


def test_early_stopping_keeps_the_best_epoch(setup):
    result = pretrain(setup.dataset, setup.agent, env=setup.env, objectives="bc", epochs=10,
                      batch_size=32, lr=1e-12, patience=2, out=setup.root / "es.pt",
                      val_fraction=0.2, verbose=0)  # fmt: skip
    assert result.stopped_early and result.epochs == 3 and result.best_epoch == 1


def test_monitor_follows_one_objective(setup):
    result = pretrain(setup.dataset, setup.agent, env=setup.env, objectives="bc,contrastive",
                      epochs=3, batch_size=32, monitor="bc", out=setup.root / "mon.pt",
                      val_fraction=0.2, verbose=0)  # fmt: skip
    assert result.best_loss == pytest.approx(result.val_metrics["loss/bc"])
    assert result.best_loss < result.val_metrics["loss/total"]
    assert load_encoder_checkpoint(setup.root / "mon.pt")["info"]["monitor"] == "bc"


def test_max_updates_bounds_training(setup):
    result = pretrain(setup.dataset, setup.agent, env=setup.env, objectives="bc,masked",
                      epochs=50, batch_size=32, max_updates=3, out=setup.root / "mu.pt",
                      verbose=0, augment="shift")  # fmt: skip
    assert result.updates == 3


def test_dataset_that_does_not_match_the_env_is_refused(setup, toy):
    collect(policy="expert", episodes=3, dataset_id="toy/small-cam-v0",
            venv=BatchedVecEnv(toy.ToySimulator(2, camera_size=8)))  # fmt: skip
    with pytest.raises(
        SpaceMismatchError,
        match=r"spaces differ: observation key 'camera': environment Box\(16, 16, 3\).*"
        r"dataset Box\(8, 8, 3\) .*\(different shape\)",
    ):
        pretrain("toy/small-cam-v0", setup.agent, env=setup.env, out=setup.root / "x.pt")
    assert not (setup.root / "x.pt").exists()


def test_recipe_naming_absent_keys_is_refused(setup):
    with pytest.raises(DatasetError, match=r"agent\.extractor\.encoders names \['radar'\]"):
        pretrain(setup.dataset, setup.agent, env=setup.env, out=setup.root / "x.pt",
                 overrides=["agent.extractor.encoders={radar: mlp}"])  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"objectives": "bc,foo"}, "unknown objective"),
        ({"augment": "rotate"}, "--augment must be one of"),
        ({"batch_size": 100000}, "fewer than one batch"),
        ({"weights": {"masked": 2.0}, "objectives": "bc"}, "--weight names objectives"),
        ({"monitor": "masked", "objectives": "bc"}, r"--monitor must be 'total' or a trained"),
        ({"weights": {"bc": -1.0}}, r"--weight values must be finite numbers >= 0"),
        ({"weights": {"bc": float("inf")}}, r"--weight values must be finite numbers >= 0"),
        ({"weights": {"bc": float("nan")}}, r"--weight values must be finite numbers >= 0"),
    ],
)
def test_bad_arguments(setup, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        pretrain(setup.dataset, setup.agent, env=setup.env, out=setup.root / "x.pt", **kwargs)


def test_labels_option_fits_only_the_chosen_labels(setup):
    result = pretrain(setup.dataset, setup.agent, env=setup.env, objectives="bc,labels",
                      labels="distance", epochs=1, batch_size=32, out=setup.root / "lab.pt",
                      verbose=0)  # fmt: skip
    specs = load_encoder_checkpoint(result.out)["info"]["label_specs"]
    assert [spec["name"] for spec in specs] == ["distance"]
    every = pretrain(setup.dataset, setup.agent, env=setup.env, objectives="bc,labels",
                     epochs=1, batch_size=32, out=setup.root / "all.pt", verbose=0)  # fmt: skip
    specs = load_encoder_checkpoint(every.out)["info"]["label_specs"]
    names = {spec["name"] for spec in specs}
    assert names == {"distance", "goal_index"}


@pytest.mark.parametrize(
    ("labels", "objectives", "error", "match"),
    [
        ("radar_range", "bc,labels", ConfigError, r"--labels \['radar_range'\] not in dataset .*"
         r"its labels: \['distance', 'goal_index'\]"),
        ("distance", "bc", ConfigError, r"--labels distance needs the 'labels' objective"),
        (" , ", "bc,labels", ConfigError, r"--labels is empty"),
    ],
)  # fmt: skip
def test_bad_labels_are_refused_before_training(setup, labels, objectives, error, match):
    out = setup.root / "bad-labels.pt"
    with pytest.raises(error, match=match):
        pretrain(setup.dataset, setup.agent, env=setup.env, objectives=objectives,
                 labels=labels, batch_size=32, out=out, verbose=0)  # fmt: skip
    assert not out.exists()


def test_missing_dataset_is_a_clear_error(setup):
    with pytest.raises(DatasetError, match="not found"):
        pretrain("toy/absent-v0", setup.agent, env=setup.env, out=setup.root / "x.pt")


def test_pretraining_is_deterministic(setup):
    runs = [
        pretrain(setup.dataset, setup.agent, env=setup.env, objectives="bc,contrastive",
                 epochs=1, batch_size=32, out=setup.root / f"d{i}.pt", verbose=0)
        for i in range(2)
    ]  # fmt: skip
    a, b = (load_encoder_checkpoint(r.out)["extractor"] for r in runs)
    assert all(th.equal(a[k], b[k]) for k in a)


def test_cli_pretrain(setup, capsys):
    from mmrl.cli import main

    out = setup.root / "cli.pt"
    args = ["pretrain", "--dataset", setup.dataset, "--agent", setup.agent, "--env", setup.env,
            "--objectives", "bc,labels", "--epochs", "1", "--batch-size", "32", "--out", str(out),
            "--weight", "labels=0.5", "--monitor", "bc", "--labels", "goal_index",
            "--quiet"]  # fmt: skip
    assert main(args) == 0 and out.is_file()
    info = load_encoder_checkpoint(out)["info"]
    assert [spec["name"] for spec in info["label_specs"]] == ["goal_index"]
    assert info["weights"] == {"bc": 1.0, "labels": 0.5} and info["monitor"] == "bc"
    assert main([*args[:-1], "--weight", "labels=x"]) == 2
    assert "--weight 'labels=x'" in capsys.readouterr().err
    assert main([*args[:-3], "--labels", "nope", "--force", "--quiet"]) == 2
    assert "--labels ['nope'] not in dataset" in capsys.readouterr().err
    assert main(["pretrain", "--dataset", "toy/absent-v0", "--env", setup.env]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_pretrain_refuses_to_overwrite_without_force(setup, tmp_path, capsys):
    """Issue 14 defect 4: like train and collect, pretrain keeps an existing --out."""
    from mmrl.cli import main

    out = tmp_path / "enc.pt"
    out.write_bytes(b"keep me")
    args = ["pretrain", "--dataset", setup.dataset, "--agent", setup.agent, "--env", setup.env,
            "--objectives", "bc", "--max-updates", "1", "--batch-size", "32", "--out", str(out),
            "--quiet"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"mmrl pretrain: error: --out {out} already exists; pass --force to overwrite it"
    assert out.read_bytes() == b"keep me"
    with pytest.raises(ConfigError, match=r"^out .* already exists"):
        pretrain(setup.dataset, setup.agent, env=setup.env, out=out, verbose=0)
    assert main([*args, "--force"]) == 0
    assert load_encoder_checkpoint(out)["info"]["objectives"] == ["bc"]


def test_pretrain_then_train_init_from_with_default_recipes(setup, tmp_path):
    """Issue 14 defect 2: pretrain and train default to the same recipe (ppo-concat), so
    ``mmrl pretrain`` then ``mmrl train --init-from`` works without --agent."""
    from mmrl.cli import main

    enc = tmp_path / "enc.pt"
    args = ["pretrain", "--dataset", setup.dataset, "--env", setup.env, "--objectives", "bc",
            "--max-updates", "1", "--batch-size", "32", "--out", str(enc), "--quiet"]  # fmt: skip
    assert main(args) == 0
    assert load_encoder_checkpoint(enc)["extractor_config"]["fusion"] == "concat"
    run = tmp_path / "run"
    assert main(["train", "--env", setup.env, "--init-from", str(enc), "--steps", "16",
                 "--out", str(run), "--quiet", "--set", "agent.ppo.n_steps=8",
                 "--set", "agent.ppo.batch_size=16", "--set", "eval_freq=0",
                 "--set", "eval_episodes=1"]) == 0  # fmt: skip
    assert (run / "model.zip").is_file()


def test_diverging_loss_stops_with_a_clear_message(setup, tmp_path, monkeypatch):
    """Issue 15: a diverged loss (``--lr 1e8`` did it) trained on NaN to the end and saved
    NaN weights. The divergence is forced here: the bc loss of every batch becomes NaN."""
    from mmrl.pretrain import trainer as trainer_module

    real = trainer_module.Pretrainer.total

    def nan_total(self, losses):
        return real(self, {k: v * float("nan") for k, v in losses.items()})

    monkeypatch.setattr(trainer_module.Pretrainer, "total", nan_total)
    out = tmp_path / "nan.pt"
    with pytest.raises(ConfigError, match=r"^pretraining diverged: the loss became nan .*--lr"):
        pretrain(setup.dataset, setup.agent, env=setup.env, objectives="bc", epochs=3,
                 batch_size=32, out=out, verbose=0)  # fmt: skip
    assert not out.exists()
