"""``scripts/memory_probe.py``: overtake rollouts with the pull-in label, and a recurrent head
that recalls what a feed-forward one cannot see."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def probe(load_script):
    return load_script("memory_probe")


def test_collect_records_overtake_steps_with_the_lane_label(probe):
    data = probe.collect(lambda obs, start: obs["state"], n_envs=4, steps=80, noise=0.0, seed=1)
    T, n = data["label"].shape
    assert (T, n) == (80, 4) and data["features"].shape == (80, 4, 6)
    assert data["start"][0].all() and data["start"][1:].any()  # episodes end and restart
    assert set(np.unique(data["label"])) <= set(range(7))  # overtake: always a lane goal
    # The expert passes the named car: its distance turns negative within each episode.
    assert (data["distance"] < -6.5).any() and (data["distance"] > 0).any()


def _memory_task(T: int = 60, n: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """The label is in the features only on an episode's first step; afterwards the steps are
    'behind' (out of view) and carry noise, so only memory recovers it."""
    rng = np.random.default_rng(seed)
    start = np.zeros((T, n), bool)
    start[::20] = True
    label = np.zeros((T, n), np.int64)
    features = rng.normal(0, 1, (T, n, 8)).astype(np.float32)
    for t0 in range(0, T, 20):
        lab = rng.choice([1, 2, 4, 5], n)
        label[t0 : t0 + 20] = lab
        features[t0, :, :] = 0.0
        features[t0, np.arange(n), lab] = 3.0
    distance = np.where(start, 20.0, -20.0).astype(np.float32)
    return {"features": features, "label": label, "distance": distance, "start": start}


def test_only_the_recurrent_head_recalls_a_label_it_saw_earlier(probe):
    data = _memory_task()
    train = np.arange(64) < 48
    gru = probe.scores(probe.fit(data, train, True, epochs=60, bptt=20, seed=0), data, ~train, 6.5)
    now = probe.scores(probe.fit(data, train, False, epochs=60, bptt=20, seed=0), data, ~train, 6.5)
    assert gru["n_passed_not_in_lane"] == 16 * 57
    assert gru["passed_not_in_lane"] > 0.9
    assert now["passed_not_in_lane"] < 0.45  # four labels, nothing to see: about chance
    assert now["in_view"] > 0.9  # the first steps show it to both


@pytest.fixture(scope="module")
def recurrent_run(tmp_path_factory):
    from mmrl.train import train

    out = tmp_path_factory.mktemp("probe") / "run"
    train("driving", "recurrent-ppo-concat", steps=64, out=out, verbose=0,
          overrides=["env.n_envs=2", "eval_freq=0", "agent.ppo.n_steps=32",
                     "agent.ppo.batch_size=32", "agent.recurrent.lstm_hidden_size=16"])  # fmt: skip
    return out


def test_lstm_features_carry_the_state_through_an_episode(probe, recurrent_run):
    from mmrl import make_vec_env

    venv = make_vec_env("mmrl/Driving-v1", n_envs=2, seed=0)
    obs = venv.reset()
    features = probe.policy_features(str(recurrent_run), lstm=True)
    first = features(obs, np.ones(2, bool))
    again = features(obs, np.zeros(2, bool))  # the same frame, one step of memory later
    fresh = features(obs, np.ones(2, bool))
    assert first.shape == (2, 16) and first.dtype == np.float32
    assert not np.allclose(first, again) and np.allclose(first, fresh, atol=1e-6)
    extractor = probe.policy_features(str(recurrent_run))(obs, np.ones(2, bool))
    assert extractor.shape[1] != 16  # the extractor's features, not the LSTM's
    venv.close()
