"""The plain-PyTorch PPO on the Gymnasium vector API runs end to end (no SB3 algorithm)."""

import math

import pytest


def test_discrete_ppo_runs_a_few_thousand_steps(load_script, capsys):
    argv = ["--env", "mmrl/Navigation-v1", "--steps", "2048", "--num-envs", "8",
            "--num-steps", "64", "--epochs", "2", "--env-kwarg", "camera_size=32"]  # fmt: skip
    stats = load_script("ppo_gymnasium").main(argv)
    assert stats["global_step"] == 2048
    assert stats["rollout/episodes"] > 0  # episode ends were read from infos["final_info"]
    assert 0.0 <= stats["rollout/success"] <= 1.0
    assert all(math.isfinite(stats[k]) for k in ("train/policy_loss", "train/value_loss"))
    assert capsys.readouterr().out.count("step ") == 4  # one line per update


def test_continuous_ppo_and_time_limit_bootstrap(load_script):
    # A 10-step limit truncates every episode: the final_obs bootstrap path runs.
    argv = ["--env", "mmrl/DrivingContinuous-v1", "--steps", "256", "--num-envs", "4",
            "--num-steps", "32", "--fusion", "attention", "--env-kwarg", "camera_size=32",
            "--env-kwarg", "max_episode_steps=10"]  # fmt: skip
    stats = load_script("ppo_gymnasium").main(argv)
    assert stats["global_step"] == 256 and stats["rollout/episodes"] >= 8
    assert math.isfinite(stats["train/entropy"])


def test_bad_env_kwarg_is_refused(load_script):
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        load_script("ppo_gymnasium").main(["--env-kwarg", "camera_size"])
