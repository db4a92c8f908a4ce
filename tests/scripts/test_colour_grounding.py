"""``scripts/colour_grounding.py``: the colour-swap probe tells a policy that reads the colour
word from one that ignores it."""

import json

import numpy as np
import pytest

IDLE, LANE_LEFT = 1, 0


class _Policy:
    """Idles while rolling (all copies at once); on the probe's one-row queries it changes
    lanes when ``reads_text`` and the tokens' sum is odd — so swapping the colour word flips
    its decision whenever the two colour ids differ in parity."""

    def __init__(self, reads_text: bool) -> None:
        self.reads_text = reads_text
        self.queries = 0

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        text = obs["text"]
        if len(text) > 1 or not self.reads_text:
            return np.full(len(text), IDLE), None
        self.queries += 1
        return np.array([LANE_LEFT if int(text.sum()) % 2 else IDLE]), None


@pytest.fixture(scope="module")
def grounding(load_script):
    return load_script("colour_grounding")


@pytest.mark.parametrize("reads_text", [False, True])
def test_the_flip_rate_separates_reading_from_ignoring_the_colour(
    grounding, monkeypatch, reads_text
):
    policy = _Policy(reads_text)
    monkeypatch.setattr(grounding, "load_policy", lambda ref: policy)
    row = grounding.probe("fake", n_envs=32, steps=80, every=2, seed=5)
    assert row["states"] > 20  # idling copies drift into the named car's following band
    assert row["follow_episodes"] > 0 and 0.0 <= row["follow_success"] <= 1.0
    if reads_text:
        assert row["flip_rate"] > 0.1
        assert policy.queries >= 2 * row["states"]  # every state asked once per variant
    else:
        assert row["flip_rate"] == 0.0
        assert row["lane_change"] == {"named": 0.0, "other candidate": 0.0, "absent": 0.0}


class _Recurrent(_Policy):
    """Counts steps since each copy's episode start in its "LSTM state"; records the state
    each one-row probe query gets."""

    def __init__(self) -> None:
        super().__init__(reads_text=True)
        self.seen: list = []  # (full-batch calls so far, the probe's state)
        self.calls = 0

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        n = len(obs["text"])
        if n == 1:
            self.seen.append((self.calls, None if state is None else float(state[0][0, 0, 0])))
            return super().predict(obs)[0], state
        self.calls += 1
        h = np.zeros((1, n, 1)) if state is None else state[0]
        h = np.where(np.asarray(episode_start)[None, :, None], 0.0, h) + 1.0
        return np.full(n, IDLE), (h, h.copy())


def test_a_recurrent_policy_is_probed_from_each_copys_own_state(grounding, monkeypatch):
    policy = _Recurrent()
    monkeypatch.setattr(grounding, "load_policy", lambda ref: policy)
    row = grounding.probe("fake", n_envs=32, steps=80, every=2, seed=5)
    assert row["states"] > 20 and len(policy.seen) >= 2 * row["states"]
    # Queries past the first step carry the copy's count of steps since its episode began.
    later = [v for calls, v in policy.seen if calls > 1]
    assert later and all(v is not None and v >= 1 for v in later)
    assert len(set(later)) > 1


def test_variants_swap_only_the_colour_word(grounding):
    word_ids = {0: 10, 1: 11, 2: 12, 3: 13, 4: 14, 5: 15, 6: 16, 7: 17}
    text = np.array([3, 4, 10, 5, 0, 0])  # "... red ..." with red = colour 0 -> id 10
    colors = np.array([0, 2, 2, 5])  # red (named), two blue (no candidate), purple (own colour)
    out = grounding._variants(text, 0, colors, word_ids)
    assert out["named"] is text
    np.testing.assert_array_equal(out["other candidate"], [3, 4, 15, 5, 0, 0])  # purple
    np.testing.assert_array_equal(out["absent"], [3, 4, 11, 5, 0, 0])  # green: not on the road


def test_main_prints_and_writes_json(grounding, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(grounding, "load_policy", lambda ref: _Policy(True))
    out = tmp_path / "g.json"
    monkeypatch.setattr(
        "sys.argv",
        ["colour_grounding.py", "a", "--envs", "8", "--steps", "20", "--every", "4",
         "--json", str(out)],
    )  # fmt: skip
    grounding.main()
    assert "flip rate" in capsys.readouterr().out
    assert json.loads(out.read_text())[0]["policy"] == "a"
