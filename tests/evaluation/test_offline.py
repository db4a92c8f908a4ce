"""Off-policy evaluation on logged corridor data, checked against exactly known values.

FQE tolerance: the estimate must be within 0.05 (absolute) of the policy's true discounted
return from the logged initial states, about 7 % of the expert's 0.69 at gamma = 0.9.
"""

import json

import numpy as np
import pytest
import torch as th

from mmrl.cli import main
from mmrl.config import ConfigError
from mmrl.envs.tokenizer import Tokenizer
from mmrl.evaluation.loading import SpaceMismatchError, load_model, resolve_target
from mmrl.evaluation.offline import (
    default_iterations,
    evaluate_offline,
    load_logged_data,
    policy_outputs,
)

GAMMA = 0.9
FQE_TOLERANCE = 0.05
DATASET = "test/corridor/eps-v0"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, corridor):
    """An epsilon-greedy (0.3) expert dataset of 300 episodes in a private Minari folder."""
    root = tmp_path_factory.mktemp("minari")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root))
    corridor.write_dataset(DATASET, corridor.collect(300, epsilon=0.3, seed=0))
    yield root
    mp.undo()


@pytest.fixture
def minari_root(datasets, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(datasets))
    return datasets


def _true_value(model, data, corridor, gamma):
    """Discounted return of the model's greedy policy from every logged initial state.

    The corridor is deterministic, so rolling the policy out once from each logged start
    (goal and cell read back from the logged observation) gives the exact value.
    """
    sim = corridor.Simulator(data.n_episodes)
    sim.reset_envs()
    first = data.states(data.first_idx)
    # The camera marks the cell (columns 2p, 2p + 1) and the instruction names the goal end.
    sim.pos = np.argmax(first["camera"][:, 0, :, 0], axis=1) // 2
    words = [Tokenizer(max_len=4).decode(t) for t in first["text"]]
    sim.goal = np.array([0 if w.endswith("left") else 1 for w in words])
    sim.elapsed[:] = 0
    sim.last_action[:] = 2
    value = np.zeros(data.n_episodes)
    alive = np.ones(data.n_episodes, dtype=bool)
    for t in range(corridor.MAX_STEPS):
        actions, _ = model.predict(sim.observe(), deterministic=True)
        reward, terminated, truncated, _ = sim.step(actions)
        value += alive * gamma**t * reward
        alive &= ~(terminated | truncated)
        if not alive.any():
            break
    return float(value.mean())


def test_fqe_of_the_expert_is_within_tolerance_of_its_true_value(expert_zip, minari_root, corridor):
    th.manual_seed(0)
    data = load_logged_data(DATASET)
    target = resolve_target(expert_zip)
    model = load_model(target, "cpu")
    truth = _true_value(model, data, corridor, GAMMA)
    assert truth == pytest.approx(corridor.expert_mean_value(GAMMA), abs=0.05)  # sanity
    result = evaluate_offline(model, data, GAMMA, features="policy", seed=0)
    assert abs(result.fqe.value - truth) <= FQE_TOLERANCE, (result.fqe.value, truth)
    # The behaviour policy (30 % random actions) is worse than the expert FQE evaluates.
    assert result.behaviour_discounted_return < truth - 0.05
    assert result.fqe.iterations == default_iterations(GAMMA, int(data.episode_lengths().max()))


def test_fqe_tells_a_poor_policy_from_the_expert(random_zip, minari_root, corridor):
    data = load_logged_data(DATASET)
    target = resolve_target(random_zip)
    model = load_model(target, "cpu")
    truth = _true_value(model, data, corridor, GAMMA)
    result = evaluate_offline(model, data, GAMMA, features="policy", seed=0)
    assert abs(result.fqe.value - truth) <= FQE_TOLERANCE, (result.fqe.value, truth)
    assert result.fqe.value < corridor.expert_mean_value(GAMMA) - 0.2


@pytest.mark.slow
def test_fqe_on_raw_observations_is_within_tolerance(expert_zip, minari_root, corridor):
    data = load_logged_data(DATASET)
    target = resolve_target(expert_zip)
    model = load_model(target, "cpu")
    truth = _true_value(model, data, corridor, GAMMA)
    result = evaluate_offline(model, data, GAMMA, features="raw", seed=0)
    assert abs(result.fqe.value - truth) <= FQE_TOLERANCE, (result.fqe.value, truth)


def test_agreement_likelihood_and_behaviour_return_are_exact(expert_zip, minari_root, corridor):
    data = load_logged_data(DATASET)
    target = resolve_target(expert_zip)
    model = load_model(target, "cpu")
    result = evaluate_offline(model, data, GAMMA, iterations=2, steps_per_iter=2)
    # The clone reproduces the expert, whose action follows from the instruction alone.
    states = data.states(data.state_idx)
    expert = np.array(
        [0 if Tokenizer(max_len=4).decode(t).endswith("left") else 1 for t in states["text"]]
    )
    assert result.agreement == pytest.approx(np.mean(expert == data.actions))
    assert 0.7 < result.agreement < 0.9  # epsilon = 0.3 over 3 actions: about 0.8
    with th.no_grad():
        obs_t, _ = model.policy.obs_to_tensor(states)
        _, log_prob, _ = model.policy.evaluate_actions(obs_t, th.as_tensor(data.actions))
    assert result.log_likelihood == pytest.approx(float(log_prob.mean()), rel=1e-4)
    returns = [data.rewards[data.episode_of == e].sum() for e in range(data.n_episodes)]
    assert result.behaviour_return == pytest.approx(np.mean(returns))
    assert data.n_states == data.n_transitions + data.n_episodes
    outputs = policy_outputs(model.policy, data, data.observations, with_features=True)
    assert outputs.features.shape == (data.n_states, 32)
    np.testing.assert_allclose(np.exp(outputs.log_probs).sum(1), 1.0, rtol=1e-5)


def test_dataset_with_other_spaces_is_refused(expert_zip, minari_root, corridor):
    from gymnasium import spaces

    episodes = corridor.collect(3, epsilon=0.0, seed=1)
    for ep in episodes:
        ep.observations["depth"] = np.zeros((len(ep.rewards) + 1, 4), dtype=np.float32)
    sim = corridor.Simulator(1)
    sim.observation_space = spaces.Dict(
        {**sim.observation_space.spaces, "depth": spaces.Box(0, 1, (4,), np.float32)}
    )
    corridor.write_dataset("test/corridor/depth-v0", episodes, sim)
    data = load_logged_data("test/corridor/depth-v0")
    target = resolve_target(expert_zip)
    with pytest.raises(SpaceMismatchError, match=r"keys only in the dataset .*: \['depth'\]"):
        evaluate_offline(load_model(target, "cpu"), data, GAMMA)


def test_missing_dataset_is_a_config_error(minari_root):
    with pytest.raises(ConfigError, match="not found"):
        load_logged_data("test/corridor/nothing-v0")


def test_evaluate_offline_cli(expert_zip, minari_root, tmp_path, capsys):
    out = tmp_path / "off.json"
    assert (
        main(
            [
                "evaluate-offline",
                str(expert_zip),
                "--dataset",
                DATASET,
                "--gamma",
                "0.9",
                "--fqe-iters",
                "3",
                "--fqe-steps",
                "5",
                "--json",
                str(out),
                "--csv",
                str(tmp_path / "off.csv"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "ranked by cwpdis" in text and "behaviour return" in text
    result = json.loads(out.read_text())["results"][0]
    assert result["fqe"]["iterations"] == 3 and result["episodes"] == 300
    assert result["action_agreement"]["metric"] == "accuracy"
    assert "fqe_value" in (tmp_path / "off.csv").read_text().splitlines()[0]
    assert main(["evaluate-offline", str(expert_zip), "--dataset", "test/x/none-v0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not found" in err
    assert main(["evaluate-offline", str(expert_zip), "--dataset", DATASET, "--gamma", "0"]) == 2
    assert "--gamma" in capsys.readouterr().err


def test_pretrain_and_evaluate_offline_refuse_a_damaged_dataset_alike(
    expert_zip, minari_root, corridor, tmp_path, capsys
):
    """One reader: the same truncated file gives the same one line from both commands."""
    corridor.write_dataset("test/corridor/cut-v0", corridor.collect(3, epsilon=0.0, seed=2))
    path = minari_root / "test/corridor/cut-v0" / "data" / "main_data.hdf5"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    lines = []
    for argv in (
        ["pretrain", "--dataset", "test/corridor/cut-v0", "--out", str(tmp_path / "enc.pt")],
        ["evaluate-offline", str(expert_zip), "--dataset", "test/corridor/cut-v0"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0
        prefix = f"mmrl {argv[0]}: error: "
        assert err.startswith(prefix)
        lines.append(err.removeprefix(prefix))
    assert lines[0] == lines[1]
    assert "'test/corridor/cut-v0'" in lines[0] and "is truncated or corrupt" in lines[0]


def test_continuous_actions_mean_abs_error_likelihood_and_fqe(minari_root, corridor, tmp_path):
    from stable_baselines3 import PPO

    from mmrl.envs.vec_env import BatchedVecEnv

    sim = corridor.ContinuousSimulator(1)
    corridor.write_dataset("test/corridor/cont-v0", corridor.collect(40, 0.5, continuous=True), sim)
    data = load_logged_data("test/corridor/cont-v0")
    assert not data.discrete and data.actions.shape == (data.n_transitions, 1)
    venv = BatchedVecEnv(corridor.ContinuousSimulator(2))
    model = PPO("MultiInputPolicy", venv, policy_kwargs=corridor.policy_kwargs(), device="cpu")
    model.save(tmp_path / "cont.zip")
    target = resolve_target(tmp_path / "cont.zip")
    model = load_model(target, "cpu")
    result = evaluate_offline(model, data, GAMMA, iterations=4, steps_per_iter=5)
    states = data.states(data.state_idx)
    greedy, _ = model.predict(states, deterministic=True)
    assert result.agreement_name == "mean_abs_error"
    assert result.agreement == pytest.approx(np.mean(np.abs(greedy - data.actions)), rel=1e-5)
    with th.no_grad():
        obs_t, _ = model.policy.obs_to_tensor(states)
        _, log_prob, _ = model.policy.evaluate_actions(obs_t, th.as_tensor(data.actions))
    assert result.log_likelihood == pytest.approx(float(log_prob.mean()), rel=1e-4)
    assert np.isfinite(result.fqe.value) and len(result.fqe.history) == 4


def test_normalize_observations_matches_vec_normalize():
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    from mmrl.policies import normalize_observations

    rms = {"state": RunningMeanStd(shape=(2,))}
    rms["state"].mean[:] = [1.0, -1.0]
    rms["state"].var[:] = [4.0, 0.01]
    obs = {"state": np.array([[3.0, -1.0], [1.0, 1.0]], dtype=np.float32), "text": np.ones((2, 3))}
    out = normalize_observations(obs, rms)
    np.testing.assert_allclose(out["state"], [[1.0, 0.0], [0.0, 10.0]], atol=1e-4)  # clipped
    assert out["text"] is obs["text"]
