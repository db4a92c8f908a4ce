"""``mmrl collect``: batched rollouts into Minari datasets."""

from __future__ import annotations

import minari
import numpy as np
import pytest

from mmrl.config import ConfigError
from mmrl.data import DatasetError, collect
from mmrl.envs.vec_env import BatchedVecEnv


def _venv(toy, n=3, **kwargs):
    return BatchedVecEnv(toy.ToySimulator(n, **kwargs))


def test_dataset_round_trips_through_minari(toy, datasets_path):
    result = collect(
        policy="expert", episodes=7, dataset_id="mmrl/toy/expert-v0", epsilon=0.2, seed=3,
        venv=_venv(toy), flush_every=3,
    )  # fmt: skip
    assert result.episodes == 7
    assert (datasets_path / "mmrl/toy/expert-v0/data/main_data.hdf5").is_file()
    dataset = minari.load_dataset("mmrl/toy/expert-v0")
    assert dataset.total_episodes == 7
    assert dataset.total_steps == result.steps
    assert dataset.storage.metadata["mmrl"]["policy"] == "expert"
    for ep in dataset.iterate_episodes():
        t = len(ep)
        assert set(ep.observations) == {"camera", "lidar", "text", "state"}
        assert ep.observations["camera"].shape == (t + 1, 16, 16, 3)
        assert ep.observations["camera"].dtype == np.uint8
        assert ep.actions.shape == (t,)
        # Exactly the last step ends the episode, by termination or truncation.
        ended = ep.terminations | ep.truncations
        assert ended[-1] and not ended[:-1].any()
        assert ep.terminations[-1] == (ep.infos["is_success"][-1] == 1)
        assert len(ep.infos["instruction"]) == t + 1
        assert {s.decode() for s in ep.infos["instruction"]} <= {"go left", "go right"}
        assert set(ep.infos["labels"]) == {"goal_index", "distance"}
        assert ep.infos["labels"]["distance"].shape == (t + 1,)
        # Reward is the sum of the named terms of the same step.
        terms = sum(v[1:] for v in ep.infos["rewards"].values())
        np.testing.assert_allclose(ep.rewards, terms, rtol=1e-6)
        assert ep.infos["expert_action"][-1] == -1  # the final observation has no decision


def test_first_episodes_replay_exactly_in_a_single_env(toy, datasets_path):
    collect(policy="expert", episodes=6, dataset_id="toy/replay-v0", epsilon=0.3, seed=11,
            venv=_venv(toy, n=3))  # fmt: skip
    dataset = minari.load_dataset("toy/replay-v0")
    seeds = {m.get("seed"): i for i, m in enumerate(dataset.storage.get_episode_metadata(
        range(dataset.total_episodes)))}  # fmt: skip
    assert {11, 12, 13} <= set(seeds)
    for seed in (11, 13):
        ep = dataset[seeds[seed]]
        env = toy.ToyEnv()
        obs, _ = env.reset(seed=seed)
        for t, action in enumerate(ep.actions):
            for key in obs:
                np.testing.assert_array_equal(obs[key], ep.observations[key][t], err_msg=key)
            obs, reward, term, trunc, info = env.step(int(action))
            assert reward == pytest.approx(ep.rewards[t])
            assert info["labels"]["distance"] == pytest.approx(
                ep.infos["labels"]["distance"][t + 1]
            )
        for key in obs:  # the final observation is the terminal one, not the next reset
            np.testing.assert_array_equal(obs[key], ep.observations[key][-1], err_msg=key)
        assert term or trunc


def test_epsilon_noise_keeps_expert_labels(toy, datasets_path):
    collect(policy="expert", episodes=4, dataset_id="toy/noisy-v0", epsilon=1.0, seed=0,
            venv=_venv(toy, n=2))  # fmt: skip
    dataset = minari.load_dataset("toy/noisy-v0")
    actions = np.concatenate([ep.actions for ep in dataset.iterate_episodes()])
    expert = np.concatenate([ep.infos["expert_action"][:-1] for ep in dataset.iterate_episodes()])
    assert set(np.unique(expert)) <= {0, 1, 2}
    assert (actions != expert).mean() > 0.3  # epsilon 1: actions are uniform, not the expert's


def test_continuous_actions_and_random_policy(toy, datasets_path):
    result = collect(policy="random", episodes=3, dataset_id="toy/random-v0",
                     venv=_venv(toy, n=2, continuous=True))  # fmt: skip
    ep = minari.load_dataset("toy/random-v0")[0]
    assert ep.actions.dtype == np.float32 and ep.actions.shape == (len(ep), 1)
    assert np.all(np.abs(ep.actions) <= 1)
    assert "expert_action" not in ep.infos  # only the expert policy logs expert labels
    assert result.steps == sum(len(e) for e in minari.load_dataset("toy/random-v0"))


def test_existing_id_is_refused_unless_forced_and_nothing_is_left_behind(toy, datasets_path):
    collect(policy="expert", episodes=2, dataset_id="toy/x-v0", venv=_venv(toy))
    with pytest.raises(DatasetError, match=r"already exists.*--force"):
        collect(policy="expert", episodes=3, dataset_id="toy/x-v0", venv=_venv(toy))
    collect(policy="expert", episodes=3, dataset_id="toy/x-v0", venv=_venv(toy), force=True)
    assert minari.load_dataset("toy/x-v0").total_episodes == 3
    assert not [p for p in datasets_path.iterdir() if p.name.startswith(".mmrl-")]


def test_interrupted_collection_leaves_no_dataset(toy, datasets_path):
    class Failing(BatchedVecEnv):
        calls = 0

        def step_wait(self):
            Failing.calls += 1
            if Failing.calls > 25:
                raise KeyboardInterrupt
            return super().step_wait()

    with pytest.raises(KeyboardInterrupt):
        collect(policy="expert", episodes=50, dataset_id="toy/killed-v0", flush_every=2,
                venv=Failing(toy.ToySimulator(2)))  # fmt: skip
    assert not (datasets_path / "toy" / "killed-v0").exists()
    assert not [p for p in datasets_path.iterdir() if p.name.startswith(".mmrl-")]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset_id": "no version"}, "malformed dataset id"),
        ({"episodes": 0}, "episodes must be >= 1"),
        ({"epsilon": 1.5}, "epsilon must be in"),
        ({"policy": "no/such/run"}, "not 'expert', 'random'"),
        ({"n_envs": 0}, "--n-envs must be >= 1, got 0"),
        ({"n_workers": 2}, "must be 1 with a given venv"),
    ],
)
def test_bad_arguments_are_refused(toy, datasets_path, kwargs, match):
    args = {"policy": "expert", "episodes": 2, "dataset_id": "toy/bad-v0", **kwargs}
    with pytest.raises(ValueError, match=match):
        collect(venv=_venv(toy), **args)


def test_expert_needs_an_mmrl_env(toy, datasets_path):
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(toy.TOY_ID, n_envs=2)
    with pytest.raises(ValueError, match="no batched scripted expert"):
        collect(policy="expert", episodes=2, dataset_id="toy/y-v0", venv=venv)
    with pytest.raises(ValueError, match=r"--expert-labels: .* no batched scripted expert"):
        collect(policy="random", episodes=2, dataset_id="toy/y-v0", venv=venv, expert_labels=True)


def test_expert_labels_relabel_another_policys_states(toy, datasets_path):
    """DAgger-style: a random policy drives, the expert's choice in each visited state is the
    BC target."""
    from mmrl.data.dataset import load_offline_data

    venv = _venv(toy, n=2, horizon=12)
    sim = venv.sim
    logged = []
    real = sim.expert_action
    sim.expert_action = lambda: logged.append(real()) or logged[-1]  # spy on the queries
    collect(policy="random", episodes=4, dataset_id="toy/dagger-v0", seed=1, venv=venv,
            expert_labels=True)  # fmt: skip
    dataset = minari.load_dataset("toy/dagger-v0")
    assert dataset.storage.metadata["mmrl"]["bc_target"] == "expert_action"
    actions = np.concatenate([ep.actions for ep in dataset.iterate_episodes()])
    expert = np.concatenate([ep.infos["expert_action"][:-1] for ep in dataset.iterate_episodes()])
    assert set(np.unique(expert)) <= {0, 1, 2} and (actions != expert).mean() > 0.3
    first = dataset[0]  # copy 0's first episode: its expert labels are the first queries
    np.testing.assert_array_equal(first.infos["expert_action"][:-1],
                                  [q[0] for q in logged[: len(first)]])  # fmt: skip
    data = load_offline_data("toy/dagger-v0")
    np.testing.assert_array_equal(data.bc_actions.numpy(), expert)


def test_cli_collect(toy, datasets_path, tmp_path, capsys):
    from mmrl.cli import main

    env, _ = toy.write_presets(tmp_path)
    args = ["collect", "--env", env, "--episodes", "3", "--dataset-id", "toy/cli-v0", "--quiet"]
    assert main([*args, "--policy", "random"]) == 0
    assert minari.load_dataset("toy/cli-v0").total_episodes == 3
    assert main([*args, "--policy", "random"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--policy", "expert", "--force"]) == 2
    assert "no batched scripted expert" in capsys.readouterr().err
    assert main([*args, "--policy", "random", "--expert-labels", "--force"]) == 2
    assert "--expert-labels:" in capsys.readouterr().err
    assert main(["collect", "--dataset-id", "toy/z-v0", "--episodes", "0"]) == 2


def test_collect_from_a_trained_run(toy, datasets_path, tmp_path):
    from mmrl.train import train

    env, agent = toy.write_presets(tmp_path)
    run = train(env, agent, steps=32, out=tmp_path / "run", verbose=0,
                overrides=["eval_freq=0", "eval_episodes=1"])  # fmt: skip
    result = collect(env=None, policy=str(run), episodes=3, dataset_id="toy/run-v0", n_envs=2)
    dataset = minari.load_dataset("toy/run-v0")
    assert dataset.total_episodes == 3 and result.episodes == 3
    assert dataset.storage.metadata["mmrl"]["env"] == env  # the run's environment preset
    assert "expert_action" not in dataset[0].infos


def test_batched_and_per_copy_info_recording_write_the_same_dataset(toy, datasets_path):
    """An unwrapped BatchedVecEnv hands its infos over as arrays; through a VecEnv wrapper the
    recorder reads SB3's per-copy dicts. Both must store identical episodes."""
    from stable_baselines3.common.vec_env import VecMonitor

    args = {"policy": "expert", "episodes": 6, "epsilon": 0.3, "seed": 5}
    collect(dataset_id="toy/arrays-v0", venv=_venv(toy), **args)
    collect(dataset_id="toy/dicts-v0", venv=VecMonitor(_venv(toy)), **args)
    a, b = (minari.load_dataset(f"toy/{name}-v0") for name in ("arrays", "dicts"))
    assert a.total_steps == b.total_steps
    for ea, eb in zip(a.iterate_episodes(), b.iterate_episodes()):
        np.testing.assert_array_equal(ea.actions, eb.actions)
        np.testing.assert_array_equal(ea.infos["instruction"], eb.infos["instruction"])
        np.testing.assert_array_equal(ea.infos["is_success"], eb.infos["is_success"])
        for group in ("labels", "rewards"):
            assert set(ea.infos[group]) == set(eb.infos[group])
            for name, values in ea.infos[group].items():
                assert values.dtype == eb.infos[group][name].dtype
                np.testing.assert_array_equal(values, eb.infos[group][name])


def test_recorder_rows_fit_the_episode_limit_or_grow(toy, datasets_path, monkeypatch):
    """Buffers sized for the env's step limit never grow; a foreign env starts small and
    grows, and both store the same episodes."""
    import importlib

    from stable_baselines3.common.vec_env import VecMonitor

    module = importlib.import_module("mmrl.collect")
    assert module._episode_rows(VecMonitor(_venv(toy, horizon=90))) == 92
    assert module._episode_rows(object()) == 64
    args = {"policy": "expert", "episodes": 5, "epsilon": 0.5, "seed": 2}
    collect(dataset_id="toy/rows-v0", venv=_venv(toy, horizon=30), **args)
    monkeypatch.setattr(module, "_episode_rows", lambda venv: 2)  # grows 2 -> 4 -> ... -> 32
    collect(dataset_id="toy/grown-v0", venv=_venv(toy, horizon=30), **args)
    a, b = (minari.load_dataset(f"toy/{name}-v0") for name in ("rows", "grown"))
    assert a.total_steps == b.total_steps and max(len(ep) for ep in a.iterate_episodes()) > 4
    for ea, eb in zip(a.iterate_episodes(), b.iterate_episodes()):
        np.testing.assert_array_equal(ea.actions, eb.actions)
        for key in ea.observations:
            np.testing.assert_array_equal(ea.observations[key], eb.observations[key])
        np.testing.assert_array_equal(
            ea.infos["labels"]["distance"], eb.infos["labels"]["distance"]
        )


def test_missing_policy_without_env_names_the_policy(datasets_path, capsys):
    """Issue 14 defect 1: a typo in --policy (no --env) used to report a problem with --resume."""
    from mmrl.cli import main

    args = ["collect", "--policy", "runs/typo", "--dataset-id", "mmrl/driving/x-v0", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--policy 'runs/typo'" in err and "--resume" not in err, err


def test_bare_model_zip_without_env_asks_for_env(datasets_path, tmp_path, capsys):
    from mmrl.cli import main

    (tmp_path / "model.zip").write_bytes(b"")
    args = ["collect", "--policy", str(tmp_path / "model.zip"), "--dataset-id", "toy/b-v0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "pass --env" in err and "--resume" not in err, err


def test_collect_from_a_dqn_model_zip(toy, datasets_path, tmp_path):
    """Issue 14 defect 5: a DQN model.zip with MultimodalExtractor loads with DQN, not PPO
    (PPO.load passed use_sde to DQN's policy: TypeError)."""
    from stable_baselines3 import DQN

    from mmrl import MultimodalExtractor

    env, _ = toy.write_presets(tmp_path)
    kwargs = {"fusion": "concat", "features_dim": 16}
    model = DQN("MultiInputPolicy", _venv(toy, n=1), buffer_size=64, learning_starts=0,
                policy_kwargs={"features_extractor_class": MultimodalExtractor,
                               "features_extractor_kwargs": kwargs})  # fmt: skip
    model.save(tmp_path / "dqn.zip")
    result = collect(env=env, policy=str(tmp_path / "dqn.zip"), episodes=2,
                     dataset_id="toy/dqn-v0", n_envs=2)  # fmt: skip
    assert result.episodes == 2
    assert minari.load_dataset("toy/dqn-v0").total_episodes == 2


def test_full_disk_is_one_line_and_removes_the_temporary_folder(
    toy, datasets_path, tmp_path, capsys, monkeypatch
):
    """Issue 15: HDF5 on a full disk printed thousands of lines, then crashed the process,
    leaving the temporary dataset folder (and the disk full). A chunk that may not fit is
    refused before HDF5 writes it; an OSError from the write itself is one line too."""
    import errno
    import shutil as shutil_module

    from mmrl.cli import main
    from mmrl.data import writer

    env, _ = toy.write_presets(tmp_path)
    args = ["collect", "--env", env, "--episodes", "3", "--dataset-id", "toy/full-v0", "--quiet"]
    real = shutil_module.disk_usage

    def almost_full(path):
        return real(path)._replace(free=writer.SPACE_MARGIN // 2)

    monkeypatch.setattr(writer.shutil, "disk_usage", almost_full)
    assert main([*args, "--policy", "random"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err, err
    assert "cannot write dataset 'toy/full-v0'" in err
    assert not list(datasets_path.iterdir())
    monkeypatch.setattr(writer.shutil, "disk_usage", real)

    def enospc(self, episodes):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer.AtomicDatasetWriter, "_write", enospc)
    assert main([*args, "--policy", "random"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "toy/full-v0" in err and "No space left" in err, err
    assert not list(datasets_path.iterdir())


def test_temporary_folders_of_killed_runs_are_cleaned_on_the_next_run(toy, datasets_path):
    """A collect killed by SIGKILL leaves its hidden temporary folder; the next run deletes
    the folders whose process is gone (and unnamed ones after a day), not live runs'."""
    import os
    import socket
    import subprocess
    import time

    from mmrl.data.writer import STALE_SECONDS

    host = socket.gethostname()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = datasets_path / f".mmrl-collect-{host}-{dead.pid}-abc123"
    live = datasets_path / f".mmrl-collect-{host}-{os.getpid()}-def456"
    other_host = datasets_path / f".mmrl-trash-elsewhere-{dead.pid}-ghi789"
    old_unnamed = datasets_path / ".mmrl-collect-x1y2z3"
    for path in (stale, live, other_host, old_unnamed):
        (path / "data").mkdir(parents=True)
    past = time.time() - STALE_SECONDS - 60
    os.utime(old_unnamed, (past, past))
    collect(policy="expert", episodes=2, dataset_id="toy/next-v0", venv=_venv(toy))
    left = sorted(p.name for p in datasets_path.iterdir() if p.name.startswith(".mmrl-"))
    assert left == sorted([live.name, other_host.name])


def test_sigterm_during_collect_removes_the_temporary_folder(datasets_path):
    """Issue 15: ``collect`` ended by SIGTERM left its hidden temporary folder forever; the
    CLI turns SIGTERM into an exit through Python, so the folder is removed."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmrl", "collect", "--env", "driving", "--n-envs", "2",
         "--policy", "random", "--episodes", "100000", "--dataset-id", "tests/term-v0", "--quiet"],
        env={**os.environ, "PYTHONPATH": str(repo)}, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 60
    while not list(datasets_path.glob(".mmrl-collect-*")) and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    assert list(datasets_path.glob(".mmrl-collect-*")), proc.stderr.read() if proc.poll() else ""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM, proc.stderr.read()
    assert not list(datasets_path.glob(".mmrl-*"))


# ---------------------------------------------------------------------------- behaviour log-probs
def _logged(dataset_id):
    dataset = minari.load_dataset(dataset_id)
    eps = list(dataset.iterate_episodes())
    lp = np.concatenate([ep.infos["behaviour_log_prob"][:-1] for ep in eps])
    assert all(np.isnan(ep.infos["behaviour_log_prob"][-1]) for ep in eps)
    return dataset, eps, lp


def test_expert_with_noise_logs_the_exact_mixture_probability(toy, datasets_path):
    collect(policy="expert", episodes=6, dataset_id="toy/mu-v0", epsilon=0.3, seed=2,
            venv=_venv(toy, n=3))  # fmt: skip
    dataset, eps, lp = _logged("toy/mu-v0")
    actions = np.concatenate([ep.actions for ep in eps])
    expert = np.concatenate([ep.infos["expert_action"][:-1] for ep in eps])
    expected = np.where(actions == expert, 0.7 + 0.1, 0.1)  # 3 actions: epsilon / 3 = 0.1
    np.testing.assert_allclose(np.exp(lp), expected, rtol=1e-12)
    assert (actions != expert).any()  # both branches are exercised
    behaviour = dataset.storage.metadata["mmrl"]["behaviour"]
    assert behaviour == {"policy": "expert", "epsilon": 0.3, "stochastic": False,
                         "log_prob_key": "behaviour_log_prob",
                         "log_prob_kind": "probability"}  # fmt: skip


def test_continuous_behaviour_densities(toy, datasets_path):
    collect(policy="random", episodes=3, dataset_id="toy/cr-v0",
            venv=_venv(toy, n=2, continuous=True))  # fmt: skip
    _, _, lp = _logged("toy/cr-v0")
    np.testing.assert_allclose(lp, -np.log(2.0))  # uniform on [-1, 1]
    collect(policy="expert", episodes=4, dataset_id="toy/ce-v0", epsilon=0.5, seed=1,
            venv=_venv(toy, n=2, continuous=True))  # fmt: skip
    _, eps, lp = _logged("toy/ce-v0")
    actions = np.concatenate([ep.actions for ep in eps])[:, 0]
    expert = np.concatenate([ep.infos["expert_action"][:-1] for ep in eps])[:, 0]
    atom = actions == expert
    assert atom.any() and (~atom).any()
    assert np.all(lp[atom] == np.inf)  # the expert's own choice is a point mass
    np.testing.assert_allclose(lp[~atom], np.log(0.5 / 2.0))


def _save_small_ppo(toy, path):
    """An untrained PPO policy with a small concat extractor on the toy env, saved at ``path``."""
    from stable_baselines3 import PPO

    from mmrl import MultimodalExtractor

    kwargs = {"fusion": "concat", "features_dim": 16}
    model = PPO("MultiInputPolicy", _venv(toy, n=1), n_steps=8, batch_size=8, seed=0,
                policy_kwargs={"features_extractor_class": MultimodalExtractor,
                               "features_extractor_kwargs": kwargs})  # fmt: skip
    model.save(path)


def test_stochastic_policy_logs_its_distribution(toy, datasets_path, tmp_path):
    from mmrl.densities import epsilon_mixture
    from mmrl.policies import load_policy

    env, _ = toy.write_presets(tmp_path)
    _save_small_ppo(toy, tmp_path / "ppo.zip")
    collect(env=env, policy=str(tmp_path / "ppo.zip"), episodes=3, dataset_id="toy/sto-v0",
            n_envs=2, stochastic=True, epsilon=0.2)  # fmt: skip
    dataset, eps, lp = _logged("toy/sto-v0")
    assert dataset.storage.metadata["mmrl"]["behaviour"]["stochastic"] is True
    policy = load_policy(tmp_path / "ppo.zip")
    obs = {k: np.concatenate([ep.observations[k][:-1] for ep in eps]) for k in eps[0].observations}
    actions = np.concatenate([ep.actions for ep in eps])
    expected = epsilon_mixture(policy.log_prob(obs, actions), policy.action_space, 0.2)
    np.testing.assert_allclose(lp, expected, rtol=1e-5)
    assert len(np.unique(np.round(lp, 6))) > 2  # probabilities of a real distribution


def test_stochastic_collection_is_reproducible(toy, datasets_path, tmp_path, monkeypatch):
    """The same seed logs the same sampled actions whatever torch's global generator holds
    when the policy starts acting, and sampling leaves that generator as it was."""
    import torch as th

    import mmrl.collect

    env, _ = toy.write_presets(tmp_path)
    _save_small_ppo(toy, tmp_path / "ppo.zip")
    real_load = mmrl.collect.load_policy
    logged = []
    for name, torch_seed, seed in (("a", 1, 7), ("b", 2, 7), ("c", 2, 8)):

        def load_then_draw(*args, torch_seed=torch_seed, **kwargs):
            policy = real_load(*args, **kwargs)  # (SB3's load reseeds torch itself)
            th.manual_seed(torch_seed)  # whatever the process has drawn by then
            return policy

        monkeypatch.setattr(mmrl.collect, "load_policy", load_then_draw)
        collect(env=env, policy=str(tmp_path / "ppo.zip"), episodes=4,
                dataset_id=f"toy/sto-{name}-v0", n_envs=2, stochastic=True, seed=seed)  # fmt: skip
        assert th.equal(th.get_rng_state(), th.manual_seed(torch_seed).get_state())
        _, eps, _ = _logged(f"toy/sto-{name}-v0")
        logged.append(np.concatenate([ep.actions for ep in eps]))
    np.testing.assert_array_equal(logged[0], logged[1])  # same seed, other torch state
    assert logged[0].shape != logged[2].shape or not np.array_equal(logged[0], logged[2])


def test_stochastic_needs_a_distribution(toy, datasets_path, tmp_path):
    from stable_baselines3 import DQN

    from mmrl import MultimodalExtractor

    env, _ = toy.write_presets(tmp_path)
    model = DQN("MultiInputPolicy", _venv(toy, n=1), buffer_size=64, learning_starts=0,
                policy_kwargs={"features_extractor_class": MultimodalExtractor,
                               "features_extractor_kwargs": {"fusion": "concat"}})  # fmt: skip
    model.save(tmp_path / "dqn.zip")
    with pytest.raises(ValueError, match=r"--stochastic: .*no action distribution"):
        collect(env=env, policy=str(tmp_path / "dqn.zip"), episodes=1, dataset_id="toy/d-v0",
                stochastic=True)  # fmt: skip


def _episode_arrays(dataset) -> list[dict[str, np.ndarray]]:
    """Every array of every episode, flattened to ``path -> array`` (infos included)."""

    def flat(prefix: str, value, out: dict) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                flat(f"{prefix}/{key}", item, out)
        else:
            out[prefix] = np.asarray(value)

    episodes = []
    for ep in dataset.iterate_episodes():
        out: dict[str, np.ndarray] = {}
        for name in ("observations", "actions", "rewards", "terminations", "truncations"):
            flat(name, getattr(ep, name), out)
        flat("infos", ep.infos, out)
        episodes.append(out)
    return episodes


def test_worker_processes_and_per_copy_infos_write_the_same_navigation_dataset(datasets_path):
    """Navigation's auto-reset rewrites its collision flags in place: the batched info
    snapshot must be taken before it, in one process and in the worker processes alike."""
    from stable_baselines3.common.vec_env import VecMonitor

    from mmrl.config import EnvConfig
    from mmrl.envs import make_vec_env

    small = {"camera_size": 16, "lidar_beams": 16}
    config = EnvConfig(env_id="mmrl/Navigation-v1", kwargs=small, n_envs=4)
    args = {"policy": "random", "episodes": 8, "seed": 5}
    collect(env=config, dataset_id="nav/one-v0", **args)
    collect(env=config, dataset_id="nav/workers-v0", n_workers=2, **args)
    dicts = VecMonitor(make_vec_env("mmrl/Navigation-v1", n_envs=4, monitor=False, **small))
    collect(dataset_id="nav/dicts-v0", venv=dicts, **args)
    one, workers, per_copy = (
        _episode_arrays(minari.load_dataset(f"nav/{name}-v0"))
        for name in ("one", "workers", "dicts")
    )
    # The flags this is about: a collision on an episode's last step (seed 5 has two).
    assert sum(bool(ep["infos/collision"][-1]) for ep in one) == 2
    for other in (workers, per_copy):
        assert len(other) == len(one)
        for ea, eb in zip(one, other):
            assert set(ea) == set(eb)
            for path, values in ea.items():
                assert values.dtype == eb[path].dtype, path
                np.testing.assert_array_equal(values, eb[path], err_msg=path)


def test_collect_refuses_bad_n_workers(datasets_path):
    with pytest.raises(ConfigError, match="n_workers must be between 1 and"):
        collect(env="driving", episodes=1, dataset_id="toy/workers-v0", n_envs=2, n_workers=3)


def test_cli_collect_with_workers(datasets_path, capsys):
    from mmrl.cli import main

    args = ["collect", "--env", "driving", "--episodes", "2", "--n-envs", "2", "--quiet"]
    assert main([*args, "--dataset-id", "drv/w-v0", "--workers", "2"]) == 0
    assert main([*args, "--dataset-id", "drv/one-v0"]) == 0
    a, b = (minari.load_dataset(f"drv/{name}-v0") for name in ("w", "one"))
    assert a.total_steps == b.total_steps
    for ea, eb in zip(a.iterate_episodes(), b.iterate_episodes()):
        np.testing.assert_array_equal(ea.observations["camera"], eb.observations["camera"])
    assert main([*args, "--dataset-id", "drv/x-v0", "--workers", "3"]) == 2
    assert "--n-workers must be between 1 and the number of copies (2)" in capsys.readouterr().err


@pytest.mark.parametrize("writes", ["thread", "process"])
def test_overlapped_writes_make_the_inline_dataset(toy, datasets_path, writes):
    """Chunks written on the writer thread or in the writer process while stepping goes on:
    the dataset an inline write makes."""
    args = {"policy": "expert", "episodes": 9, "epsilon": 0.3, "seed": 4, "flush_every": 2}
    overlapped = collect(dataset_id="toy/overlap-v0", venv=_venv(toy), writes=writes, **args)
    inline = collect(dataset_id="toy/inline-v0", venv=_venv(toy), writes="inline", **args)
    assert overlapped.episodes == inline.episodes == 9
    a, b = (minari.load_dataset(f"toy/{n}-v0") for n in ("overlap", "inline"))
    seeds = [a.storage.get_episode_metadata(range(9)), b.storage.get_episode_metadata(range(9))]
    assert [m.get("seed") for m in seeds[0]] == [m.get("seed") for m in seeds[1]]
    assert a.storage.metadata["mmrl"] == b.storage.metadata["mmrl"]
    one, other = _episode_arrays(a), _episode_arrays(b)
    assert len(one) == len(other) == 9
    for ea, eb in zip(one, other):
        assert set(ea) == set(eb)
        for path, values in ea.items():
            np.testing.assert_array_equal(values, eb[path], err_msg=path)
    assert overlapped.write_seconds > 0 and overlapped.rollout_seconds > 0
    assert overlapped.write_cpu_seconds > 0
    assert sorted(p.name for p in datasets_path.iterdir()) == ["toy"]  # no temporaries left


def test_auto_writes_use_a_process_for_long_collections(toy, datasets_path, monkeypatch):
    import mmrl.collect as collect_module

    started = []

    class Spy(collect_module.WriterProcess):
        def __init__(self, *args, **kwargs):
            started.append(kwargs["dataset_id"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(collect_module, "WriterProcess", Spy)
    collect("toy", "expert", 7, "toy/short-v0", venv=_venv(toy), flush_every=2)
    assert started == []  # 7 episodes < 4 chunks of 2: inline
    collect("toy", "expert", 8, "toy/long-v0", venv=_venv(toy), flush_every=2)
    assert started == ["toy/long-v0"]


def test_collect_refuses_unknown_writes(toy, datasets_path, capsys):
    from mmrl.cli import main

    with pytest.raises(ConfigError, match="writes must be one of auto, process, thread, inline"):
        collect(policy="expert", episodes=1, dataset_id="toy/w-v0", venv=_venv(toy), writes="x")
    args = ["collect", "--env", "driving", "--episodes", "1", "--dataset-id", "d/w-v0"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--writes", "later"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--writes: invalid choice: 'later'" in err
    assert list(datasets_path.iterdir()) == []


def test_an_interrupt_during_process_writes_leaves_nothing(toy, datasets_path, monkeypatch):
    """Ctrl-C in the rollout: the writer process is stopped and its temporary folder removed."""
    import multiprocessing as mp

    import mmrl.collect as collect_module

    calls = []
    original = collect_module._Rollout._end_episodes

    def interrupted(self, done_idx, obs):
        calls.append(1)
        if len(calls) == 6:  # after a few chunks went to the writer process
            raise KeyboardInterrupt
        original(self, done_idx, obs)

    monkeypatch.setattr(collect_module._Rollout, "_end_episodes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        collect(policy="expert", episodes=30, dataset_id="toy/int-v0", venv=_venv(toy),
                flush_every=2, writes="process")  # fmt: skip
    assert list(datasets_path.iterdir()) == []
    assert not [p for p in mp.active_children() if p.name == "mmrl-dataset-writer"]


def test_a_failed_background_write_is_raised_and_leaves_nothing(toy, datasets_path, monkeypatch):
    from mmrl.data.writer import AtomicDatasetWriter

    calls = []
    original = AtomicDatasetWriter._write

    def failing(self, episodes):
        calls.append(len(episodes))
        if len(calls) == 2:  # the second chunk, on the writer thread
            raise OSError(28, "No space left on device")
        original(self, episodes)

    monkeypatch.setattr(AtomicDatasetWriter, "_write", failing)
    with pytest.raises(DatasetError, match="No space left on device"):
        collect(policy="expert", episodes=8, dataset_id="toy/fail-v0", venv=_venv(toy),
                flush_every=2, writes="thread")  # fmt: skip
    assert len(calls) >= 2
    assert sorted(p.name for p in datasets_path.iterdir()) == []


def test_a_refused_policy_closes_the_env(datasets_path, tmp_path, monkeypatch):
    closed = []
    original = BatchedVecEnv.close
    monkeypatch.setattr(BatchedVecEnv, "close", lambda self: closed.append(1) or original(self))
    with pytest.raises(Exception, match="typo"):
        collect(env="driving", policy=str(tmp_path / "typo"), episodes=1, n_envs=2,
                dataset_id="drv/refused-v0")  # fmt: skip
    assert closed == [1]  # not left to the garbage collector (worker processes, files)
