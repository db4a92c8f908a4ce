"""SensorNoise: per-modality corruption, seeding, compact spec and input validation."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from mmrl.envs.tokenizer import VOCAB, Tokenizer
from mmrl.wrappers import (
    CameraNoise,
    LidarNoise,
    SensorNoise,
    TextNoise,
    TextToTokens,
    parse_noise_spec,
)

TOK = Tokenizer(max_len=8)


def _flat(obs_seq):
    return [(o["camera"], o["lidar"], o["text"]) for o, _ in obs_seq]


def test_same_seed_same_noise_and_env_stream_untouched(make_toy, rollout):
    def noisy():
        return SensorNoise(make_toy(), camera=0.2, lidar=0.1, text=0.3)

    a, b = rollout(noisy(), seed=3), rollout(noisy(), seed=3)
    for (ca, la, ta), (cb, lb, tb) in zip(_flat(a), _flat(b)):
        np.testing.assert_array_equal(ca, cb)
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(ta, tb)
    other = rollout(noisy(), seed=4)
    assert not np.array_equal(a[0][0]["camera"], other[0][0]["camera"])
    # The wrapper draws from its own generator: the clean env sees the same scenario (state
    # and episode structure) with and without noise.
    clean = rollout(make_toy(), seed=3)
    for (o_noisy, _), (o_clean, _) in zip(a, clean):
        np.testing.assert_array_equal(o_noisy["state"], o_clean["state"])
        assert not np.array_equal(o_noisy["camera"], o_clean["camera"])


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
def test_gymnasium_check_env_passes(make_toy):
    env = SensorNoise(
        make_toy(),
        camera=dict(noise_std=0.1, blur=3, brightness=0.1, occlusion=0.25),
        lidar=dict(noise_std=0.05, dropout=0.1),
        text=dict(word_dropout=0.2, synonym_swap=0.5),
    )
    check_env(env, skip_render_check=True)  # includes reset(seed) determinism
    obs, _ = env.reset(seed=0)
    for _ in range(6):
        assert env.observation_space.contains(obs)
        obs, *_ = env.step(0)


def test_input_observation_not_mutated_and_other_keys_passed_through(toy_env):
    env = SensorNoise(toy_env, camera=0.5, lidar=0.5)
    toy_env.reset(seed=1)
    clean = toy_env._obs()
    before = {k: np.array(v, copy=True) for k, v in clean.items()}
    noisy = env.observation(clean)
    for key, value in before.items():
        np.testing.assert_array_equal(clean[key], value)
    assert noisy["state"] is clean["state"] and noisy["text"] is clean["text"]


def test_camera_noise_components():
    rng = np.random.default_rng(0)
    flat = np.full((2, 20, 20, 3), 128, dtype=np.uint8)

    noisy = CameraNoise(noise_std=0.1).apply(flat, rng)
    assert noisy.dtype == np.uint8 and noisy.shape == flat.shape
    assert 20 < noisy.astype(float).std() < 32  # 0.1 * 255 = 25.5 grey levels

    occluded = CameraNoise(occlusion=0.25).apply(np.full_like(flat, 200), rng)
    assert ((occluded == 0).all(axis=-1).sum(axis=(1, 2)) == 25).all()  # 5x5 patch each

    shifted = CameraNoise(brightness=0.5).apply(flat, rng)
    for img in shifted:  # one uniform shift per image
        assert np.unique(img).size == 1
    assert not np.array_equal(shifted, flat)

    checker = np.indices((20, 20)).sum(axis=0) % 2 * 255
    board = np.repeat(checker[None, :, :, None], 1, axis=-1).astype(np.uint8)
    blurred = CameraNoise(blur=3).apply(board, rng)
    assert blurred.shape == board.shape  # single-channel images keep their channel axis
    assert blurred.std() < 0.5 * board.std()
    np.testing.assert_array_equal(CameraNoise(blur=5).apply(flat, rng), flat)


def test_lidar_noise_dropout_reads_max_range_and_stays_in_bounds():
    rng = np.random.default_rng(0)
    scans = np.full((4, 64), 0.5, dtype=np.float32)
    dropped = LidarNoise(dropout=1.0).apply(scans, rng)
    assert dropped.dtype == np.float32
    np.testing.assert_array_equal(dropped, 1.0)
    half = LidarNoise(dropout=0.5).apply(scans, rng)
    assert 0.3 < (half == 1.0).mean() < 0.7
    noisy = LidarNoise(noise_std=0.5).apply(scans, rng)
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0 and 0.2 < noisy.std() < 0.5


def test_text_noise_on_token_ids():
    rng = np.random.default_rng(0)
    tokens = TOK.encode_batch(["go to the red car", "reach the ball"])
    np.testing.assert_array_equal(TextNoise(word_dropout=1.0).apply_tokens(tokens, rng), 0)

    swapped = TextNoise(synonym_swap=1.0).apply_tokens(tokens, rng)
    first = TOK.decode(swapped[0]).split()
    assert first[0] in {"drive", "head", "move", "navigate"}  # never the original "go"
    assert first[1:4] == ["to", "the", "red"] and first[4] == "vehicle"
    assert TOK.decode(swapped[1]) == "reach the sphere"

    dropped = TextNoise(word_dropout=0.5).apply_tokens(np.repeat(tokens[:1], 50, axis=0), rng)
    original = [int(t) for t in tokens[0] if t]
    lengths = set()
    for row in dropped:
        kept = [int(t) for t in row if t]
        lengths.add(len(kept))
        assert (row[len(kept) :] == 0).all()  # padding only at the end
        it = iter(original)
        assert all(t in it for t in kept)  # an in-order subsequence
    assert len(lengths) > 2


def test_text_noise_on_strings(make_toy):
    env = SensorNoise(make_toy(string_text=True), text=dict(synonym_swap=1.0))
    obs, _ = env.reset(seed=0)
    words = obs["text"].split()
    assert len(words) == 5 and obs["text"] not in {
        "go to the red car",
        "drive toward the blue ball",
        "head to the green cube",
    }
    assert env.observation_space.contains(obs)


def test_synonyms_use_vocab_of_text_to_tokens_below(make_toy):
    words = ["go", "to", "the", "red", "car", "vehicle", "drive", "toward", "blue", "ball"]
    words += ["head", "green", "cube", "sphere", "block", "box", "towards"]
    tokens = TextToTokens(make_toy(string_text=True), key="text", vocab=words, max_len=8)
    env = SensorNoise(tokens, text=dict(synonym_swap=1.0))
    assert env.model.text.vocab == tokens.vocab
    obs, info = env.reset(seed=0)
    decoded = tokens.tokenizer.decode(obs["text"]).split()
    original = info["instruction"].split()
    assert len(decoded) == len(original) and decoded != original
    assert "<unk>" not in decoded


def test_keys_mapping_and_clip_to_space_bounds(toy_env):
    # Lidar-style noise on the state key, whose Box is [-1, 1]: values stay inside it.
    env = SensorNoise(toy_env, lidar=dict(noise_std=1.0), keys={"lidar": "state"})
    obs, _ = env.reset(seed=0)
    assert obs["state"].min() >= -1.0 and obs["state"].max() <= 1.0
    assert not np.array_equal(obs["state"], [0.0, 0.0])


def test_parse_noise_spec_levels_and_params():
    assert parse_noise_spec("camera=0.1,lidar=0.05") == {
        "camera": {"noise_std": 0.1},
        "lidar": {"noise_std": 0.05, "dropout": 0.05},
    }
    assert parse_noise_spec(" text=0.2 , camera.blur=3,") == {
        "text": {"word_dropout": 0.2, "synonym_swap": 0.2},
        "camera": {"blur": 3},
    }
    for bad, match in [
        ("camera", "must look like"),
        ("radar=0.1", "unknown modality 'radar'"),
        ("camera=abc", "not a number"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_noise_spec(bad)


def test_from_spec_equals_explicit_form(make_toy, rollout):
    a = rollout(SensorNoise.from_spec(make_toy(), "camera=0.1,lidar=0.05,text=0.2"), seed=5)
    b = rollout(
        SensorNoise(
            make_toy(),
            camera=dict(noise_std=0.1),
            lidar=LidarNoise(noise_std=0.05, dropout=0.05),
            text=0.2,
        ),
        seed=5,
    )
    for x, y in zip(_flat(a), _flat(b)):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


class _BoxEnv:
    observation_space = spaces.Box(0, 1, shape=(3,))
    action_space = spaces.Discrete(2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(lidar=dict(dropout=1.5)), r"lidar.dropout must be in \[0.0, 1.0\]"),
        (dict(text=dict(word_dropout=-0.1)), r"text.word_dropout must be in"),
        (dict(camera=dict(blur=4)), "odd kernel size"),
        (dict(camera=dict(sigma=1)), "unknown parameter.*'sigma'.*allowed parameters: noise_std"),
        (dict(camera=0.1, keys={"camera": "rgb"}), "'rgb' is not in the observation space"),
        (dict(lidar=0.1, keys={"radar": "lidar"}), "unknown modality"),
        (dict(camera=0.1, keys={"camera": "lidar"}), r"camera key 'lidar' must be a \(H, W, C\)"),
        (dict(text=0.1, keys={"text": "lidar"}), "must be a 1-D integer token-id Box"),
        (dict(camera="loud"), "must be a number"),
    ],
)
def test_bad_input_raises_value_error(toy_env, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SensorNoise(toy_env, **kwargs)


def test_non_dict_space_raises(make_toy):
    import gymnasium as gym

    env = gym.wrappers.TransformObservation(
        make_toy(), lambda o: o["lidar"], spaces.Box(0, 1, shape=(8,), dtype=np.float32)
    )
    with pytest.raises(ValueError, match="needs a flat Dict observation space"):
        SensorNoise(env, lidar=0.1)


def test_vocab_default_is_shared():
    assert TextNoise().vocab is None
    groups = TextNoise(synonym_swap=1.0)._id_groups
    assert VOCAB[int(groups[VOCAB.index("car")][0])] == "vehicle"


def test_negative_seed_is_refused_naming_the_seed(make_toy):
    """Issue 15: a negative reset seed failed inside NumPy ("expected non-negative integer")."""
    from mmrl.errors import ConfigError
    from mmrl.wrappers import ModalityMask

    for wrapper in (SensorNoise(make_toy()), ModalityMask(make_toy(), keys=["camera"])):
        with pytest.raises(ConfigError, match=r"^seed must be in \[0, 2\*\*32 - 1\], got -1$"):
            wrapper.reset(seed=-1)
