"""The BC policy of an encoder checkpoint: acting with it, collecting with it (DAgger)."""

from __future__ import annotations

import minari
import numpy as np
import pytest
import torch as th

from mmrl.checkpoint import CheckpointError
from mmrl.data import collect
from mmrl.envs.vec_env import BatchedVecEnv
from mmrl.pretrain import load_encoder_checkpoint, pretrain
from mmrl.pretrain.bc_policy import load_bc_policy

CONCAT = "agent.extractor.fusion=concat"


@pytest.fixture(scope="module")
def bc_checkpoint(setup):
    """A BC checkpoint trained until it imitates the toy expert; concat fusion, which (unlike
    attention) depends on the order of the modalities."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(setup.root / "datasets"))
        result = pretrain(setup.dataset, setup.agent, env=setup.env, objectives="bc", epochs=40,
                          batch_size=32, out=setup.root / "bc-policy.pt", patience=40,
                          val_fraction=0.0, verbose=0, overrides=[CONCAT])  # fmt: skip
    assert result.val_metrics["bc_accuracy"] > 0.9
    return result.out


def test_bc_policy_imitates_the_expert_in_fresh_states(setup, toy, bc_checkpoint):
    act, policy, config = load_bc_policy(bc_checkpoint, setup.env)
    assert config.agent.init.init_policy_head and not policy.training
    venv = BatchedVecEnv(toy.ToySimulator(16))
    venv.seed(1000)
    obs = venv.reset()
    agree = []
    for _ in range(6):
        actions = act(obs)
        assert actions.shape == (16,) and actions.dtype.kind == "i"
        agree.append(np.mean(actions == venv.expert_action()))
        obs, *_ = venv.step(actions)
    assert np.mean(agree) > 0.85
    # Exactly the checkpoint's weights: the extractor and the action head.
    ckpt = load_encoder_checkpoint(bc_checkpoint)
    for name, value in ckpt["extractor"].items():
        assert np.array_equal(policy.features_extractor.state_dict()[name].numpy(), value.numpy())
    head = ckpt["head"]["action_net"]["weight"].numpy()
    assert np.array_equal(policy.action_net.weight.detach().numpy(), head)


@pytest.fixture(scope="module")
def labels_only(setup):
    """A checkpoint pretrained without the ``bc`` objective (no policy head)."""
    out = setup.root / "labels-only.pt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(setup.root / "datasets"))
        pretrain(setup.dataset, setup.agent, env=setup.env, objectives="labels", epochs=1,
                 batch_size=64, out=out, verbose=0)  # fmt: skip
    return out


def test_checkpoint_without_a_bc_head_cannot_act(setup, labels_only):
    with pytest.raises(CheckpointError, match=r"--policy .*labels-only\.pt: .* no BC policy head"):
        load_bc_policy(labels_only, setup.env)
    with pytest.raises(CheckpointError, match=r"--policy .*absent\.pt: file not found"):
        load_bc_policy(setup.root / "absent.pt", setup.env)


def test_collect_with_the_bc_policy_and_expert_labels(setup, toy, bc_checkpoint, monkeypatch):
    """One DAgger iteration: the BC policy drives, the expert labels the states it visits."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(setup.root / "datasets"))
    collect(setup.env, str(bc_checkpoint), episodes=6, dataset_id="toy/dagger-bc-v0", seed=3,
            venv=BatchedVecEnv(toy.ToySimulator(3)), expert_labels=True)  # fmt: skip
    dataset = minari.load_dataset("toy/dagger-bc-v0")
    meta = dataset.storage.metadata["mmrl"]
    assert meta["policy"] == str(bc_checkpoint) and meta["bc_target"] == "expert_action"
    actions = np.concatenate([ep.actions for ep in dataset.iterate_episodes()])
    expert = np.concatenate([ep.infos["expert_action"][:-1] for ep in dataset.iterate_episodes()])
    assert (actions == expert).mean() > 0.8  # the BC policy acted, mostly like the expert


def test_cli_collect_refuses_a_bad_checkpoint(setup, tmp_path, capsys):
    from mmrl.cli import main

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    args = ["collect", "--env", setup.env, "--episodes", "2", "--dataset-id", "toy/bad-v0"]
    assert main([*args, "--policy", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"--policy {bad}: not a readable mmrl encoder checkpoint" in err
    assert "Traceback" not in err


def test_fine_tuning_starts_from_the_bc_policy(setup, toy, bc_checkpoint):
    """``mmrl train --init-from --init-policy-head`` builds PPO's policy on the env's key order
    while pretraining read the dataset's; the loaded policy must still act like the BC policy
    (the concat fusion depends on the modality order, parameter names do not)."""
    import json

    import torch as th

    from mmrl.config import resolve_run_config
    from mmrl.pretrain import load_pretrained
    from mmrl.train import build_model, build_vec_env

    path = json.dumps(str(bc_checkpoint))
    items = [f"agent.init.path={path}", "agent.init.init_policy_head=true", CONCAT]
    config = resolve_run_config(setup.env, setup.agent, items, seed=0)
    model = build_model(config, build_vec_env(config, seed=0), th.device("cpu"), None)
    load_pretrained(model, config)
    act, _, _ = load_bc_policy(bc_checkpoint, setup.env)
    venv = BatchedVecEnv(toy.ToySimulator(16))
    venv.seed(2000)
    obs = venv.reset()
    ppo_agree, bc_agree = [], []
    for _ in range(6):
        ppo_actions, _ = model.predict(obs, deterministic=True)
        expert = venv.expert_action()
        ppo_agree.append(np.mean(ppo_actions == expert))
        bc_agree.append(np.mean(act(obs) == expert))
        obs, *_ = venv.step(ppo_actions)
    assert np.mean(bc_agree) > 0.85 and np.mean(ppo_agree) > 0.85


def test_evaluate_the_bc_policy_alone(bc_checkpoint, labels_only, tmp_path, capsys):
    """``mmrl evaluate ENCODER.pt`` rolls the BC policy out in the env it was pretrained for
    (the toy's gym env here, like a run folder's), with the usual report."""
    import json

    from mmrl.cli import main

    out = tmp_path / "bc.json"
    args = ["evaluate", str(bc_checkpoint), "--episodes", "8", "--json", str(out), "--quiet"]
    assert main(args) == 0
    report = json.loads(out.read_text())
    (result,) = report["results"]
    assert result["label"] == "bc-policy" and result["episodes"] == 8
    # The BC policy imitates the (always successful) expert.
    assert result["success_rate"]["value"] >= 0.75
    assert main(["evaluate", str(labels_only), "--episodes", "2", "--quiet"]) == 2
    assert "no BC policy head" in capsys.readouterr().err


def test_evaluate_offline_the_bc_policy(setup, bc_checkpoint, tmp_path, monkeypatch):
    import json

    from mmrl.cli import main

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(setup.root / "datasets"))
    out = tmp_path / "offline.json"
    args = ["evaluate-offline", str(bc_checkpoint), "--dataset", setup.dataset, "--fqe-iters",
            "2", "--fqe-steps", "2", "--json", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    report = json.loads(out.read_text())
    text = json.dumps(report)
    assert "action_agreement" in text
    # Greedy BC actions agree with the logged ones except where epsilon noise replaced them.
    agreement = report["results"][0]["action_agreement"]["value"]
    assert agreement > 0.7


def test_dagger_iteration_pretrains_on_expert_and_relabelled_data(setup, toy, bc_checkpoint,
                                                                  monkeypatch):  # fmt: skip
    """Collect with the BC policy + expert labels, then pretrain on both datasets at once."""
    from mmrl.data.dataset import load_offline_data, load_offline_datasets

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(setup.root / "datasets"))
    collect(setup.env, str(bc_checkpoint), episodes=5, dataset_id="toy/dagger-1-v0", seed=9,
            venv=BatchedVecEnv(toy.ToySimulator(3)), expert_labels=True)  # fmt: skip
    expert, relabelled = (load_offline_data(i) for i in (setup.dataset, "toy/dagger-1-v0"))
    both = load_offline_datasets(f"{setup.dataset},toy/dagger-1-v0")
    assert len(both) == len(expert) + len(relabelled)
    assert both.num_episodes == expert.num_episodes + relabelled.num_episodes
    assert th.equal(both.bc_actions, th.cat([expert.bc_actions, relabelled.bc_actions]))
    assert th.equal(both.observations["camera"][len(expert) :], relabelled.observations["camera"])
    # Instruction ids index one shared list and still name each row's own instruction.
    for part, rows in ((expert, slice(0, len(expert))), (relabelled, slice(len(expert), None))):
        mine = [part.instructions[i] for i in part.instruction_ids.tolist()]
        assert [both.instructions[i] for i in both.instruction_ids[rows].tolist()] == mine
    result = pretrain([setup.dataset, "toy/dagger-1-v0"], setup.agent, env=setup.env,
                      objectives="bc", epochs=1, batch_size=32, out=setup.root / "dagger.pt",
                      overrides=[CONCAT], verbose=0)  # fmt: skip
    info = load_encoder_checkpoint(result.out)["info"]
    assert info["dataset_id"] == f"{setup.dataset},toy/dagger-1-v0"
    assert info["train_size"] + info["val_size"] == len(both)


def test_datasets_that_cannot_be_combined_are_refused(setup, toy, monkeypatch):
    from mmrl.data import DatasetError
    from mmrl.data.dataset import load_offline_datasets

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(setup.root / "datasets"))
    collect(policy="random", episodes=2, dataset_id="toy/cont-v0",
            venv=BatchedVecEnv(toy.ToySimulator(2, continuous=True)))  # fmt: skip
    with pytest.raises(DatasetError, match=r"toy/cont-v0.*vs.*toy/expert-v0.*action"):
        load_offline_datasets([setup.dataset, "toy/cont-v0"])
    with pytest.raises(DatasetError, match=r"names \['toy/expert-v0'\] more than once"):
        load_offline_datasets(f"{setup.dataset},{setup.dataset}")
    with pytest.raises(DatasetError, match="one or more comma-separated ids"):
        load_offline_datasets(f"{setup.dataset},")


def test_acting_in_another_environment_names_what_differs(setup, bc_checkpoint, tmp_path):
    """A BC checkpoint used with an env of other shapes: refused, naming the option and key."""
    from pathlib import Path

    env = tmp_path / "toy-small.yaml"
    env.write_text(Path(setup.env).read_text().replace("camera_size: 16", "camera_size: 8"))
    with pytest.raises(CheckpointError, match=r"^--policy .*bc-policy\.pt: .*camera\.space\.shape"):
        load_bc_policy(bc_checkpoint, str(env))
