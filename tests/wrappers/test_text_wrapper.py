"""TextToTokens: spaces, vocabulary sources (given, grammar, shared) and validation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from mmrl.envs.tokenizer import PAD, UNK, UNK_ID, VOCAB
from mmrl.wrappers import TextToTokens, build_vocab
from mmrl.wrappers.text import mission_space_words


def test_string_to_token_box_with_given_vocab(string_env, rollout):
    words = ["go", "to", "the", "red", "car", "drive", "toward", "blue", "ball", "head"]
    env = TextToTokens(string_env, key="text", vocab=words, max_len=6)
    assert env.vocab[:2] == (PAD, UNK) and env.vocab[2:] == tuple(words)
    space = env.observation_space["text"]
    assert space == spaces.Box(0, len(words) + 1, shape=(6,), dtype=np.int64)
    assert set(env.observation_space.spaces) == {"camera", "lidar", "text", "state"}
    for obs, info in rollout(env, seed=0):
        assert env.observation_space.contains(obs)
        decoded = [env.vocab[i] for i in obs["text"] if i]
        expected = [w if w in words else UNK for w in info["instruction"].split()][:6]
        assert decoded == expected  # "green", "cube" are unknown -> UNK
    env.reset(seed=2)
    tokens = env.observation({**env.env.observation_space.sample(), "text": "head to the cube"})
    np.testing.assert_array_equal(tokens["text"], [11, 3, 4, UNK_ID, 0, 0])


def test_keep_original_and_output_key(string_env):
    env = TextToTokens(string_env, key="text", output_key="tokens", keep_original=True)
    assert {"text", "tokens"} <= set(env.observation_space.spaces)
    obs, info = env.reset(seed=0)
    assert obs["text"] == info["instruction"]
    assert env.vocab == VOCAB and env.vocab_source == "shared"
    # The toy instructions use only words of the shared vocabulary.
    assert UNK_ID not in obs["tokens"] and obs["tokens"].dtype == np.int64


def test_shared_vocab_warns_once_on_unknown_words(string_env):
    env = TextToTokens(string_env, key="text", output_key="tokens")
    with pytest.warns(UserWarning, match="not in mmrl's shared vocabulary"):
        env.observation({"text": "fetch the purple key"})


class _MissionEnv(gym.Env):
    """A MiniGrid-style env whose mission comes from a MissionSpace grammar."""

    def __init__(self, mission_space) -> None:
        self.observation_space = spaces.Dict(
            {"mission": mission_space, "state": spaces.Box(0, 1, (1,), np.float32)}
        )
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space["mission"].seed(seed)
        return {"mission": self.observation_space["mission"].sample(), "state": np.zeros(1)}, {}

    def step(self, action):
        return self.reset()[0], 0.0, True, False, {}


def test_vocab_from_minigrid_mission_space_extends_shared_vocab():
    mission = pytest.importorskip("minigrid.core.mission")
    space = mission.MissionSpace(
        mission_func=lambda color, obj: f"pick up the {color} {obj}",
        ordered_placeholders=[["red", "grey"], ["ball", "key"]],
    )
    env = TextToTokens(_MissionEnv(space), key="mission")
    assert env.vocab_source == "grammar"
    assert env.vocab[: len(VOCAB)] == VOCAB  # shared words keep their ids
    grammar = {"pick", "up", "the", "red", "grey", "ball", "key"}
    assert set(env.vocab[len(VOCAB) :]) == grammar - set(VOCAB)
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        assert UNK_ID not in obs["text"]
        assert env.tokenizer.decode(obs["text"]) == info["instruction"]
        assert "mission" not in obs


def test_large_mission_grammar_is_read_per_placeholder():
    mission = pytest.importorskip("minigrid.core.mission")
    values = [[f"w{i}x{j}" for j in range(6)] for i in range(5)]  # 6**5 = 7776 missions
    space = mission.MissionSpace(
        mission_func=lambda a, b, c, d, e: f"{a} then {b} {c} {d} and {e}",
        ordered_placeholders=values,
    )
    words = set(mission_space_words(space))
    assert words == {w for vs in values for w in vs} | {"then", "and"}


def test_babyai_grammar_covers_missions():
    pytest.importorskip("minigrid")
    for env_id in ("BabyAI-GoToLocal-v0", "BabyAI-PutNextLocal-v0", "BabyAI-SynthLoc-v0"):
        env = TextToTokens(gym.make(env_id), key="mission", max_len=48)
        assert env.vocab_source == "grammar"
        for seed in range(8):
            obs, info = env.reset(seed=seed)
            assert env.tokenizer.unknown_words(info["instruction"]) == []
            assert UNK_ID not in obs["text"]


def test_build_vocab_normalises_words():
    assert build_vocab(["Go", "pick up", "go", PAD]) == (PAD, UNK, "go", "pick", "up")
    assert build_vocab(None) == VOCAB
    extended = build_vocab(["zebra", "car"], extend_shared=True)
    assert extended == (*VOCAB, "zebra")


def test_truncates_long_instructions(string_env):
    env = TextToTokens(string_env, key="text", max_len=2)
    obs, info = env.reset(seed=0)
    assert len(info["instruction"].split()) > 2
    assert obs["text"].shape == (2,) and (obs["text"] > 0).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(key="mission"), "key 'mission' is not in the observation space; available keys"),
        (dict(key="camera"), "key 'camera' must be a string space"),
        (dict(key="text", output_key="lidar"), "output_key 'lidar' already exists"),
        (dict(key="text", keep_original=True), "keep_original=True needs an output_key"),
        (dict(key="text", max_len=0), "max_len must be in >= 1, got 0"),
    ],
)
def test_bad_input_raises_value_error(string_env, kwargs, match):
    with pytest.raises(ValueError, match=match):
        TextToTokens(string_env, **kwargs)


def test_non_dict_space_raises():
    class TextOnly(gym.Env):
        observation_space = spaces.Text(10)
        action_space = spaces.Discrete(2)

    with pytest.raises(ValueError, match="needs a flat Dict observation space"):
        TextToTokens(TextOnly(), key="text")
