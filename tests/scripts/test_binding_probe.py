"""``scripts/binding_probe.py``: labelled follow states, and a probe that learns from them."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def probe(load_script):
    return load_script("binding_probe")


def test_collect_keeps_camera_text_and_the_offset_label(probe):
    obs, labels, space = probe.collect(n_envs=4, steps=6, every=2, noise=0.3, seed=1)
    assert set(obs) == set(space.spaces) == {"camera", "text"}
    assert len(labels) == len(obs["camera"]) == len(obs["text"]) == 12
    assert labels.dtype == np.int64 and set(labels) <= set(range(-3, 4))  # follow: a lane goal


def test_the_probe_learns_a_label_it_can_see(probe):
    obs, _, space = probe.collect(n_envs=8, steps=8, every=1, noise=0.3, seed=2)
    # A label the text alone decides (the colour word's id parity): learnable in a few epochs.
    colour_word = obs["text"][:, 2]  # "follow the <colour> ..." and the other templates vary,
    labels = (colour_word % 2).astype(np.int64)  # so any fixed position is a text feature
    scores = probe.train_probe("concat", obs, labels, space, epochs=8, seed=0)
    assert len(scores) == 8 and max(scores) > 0.8
