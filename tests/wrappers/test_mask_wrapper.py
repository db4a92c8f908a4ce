"""ModalityMask: zeroing, per-episode vs per-step draws, info, seeding and validation."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from mmrl.wrappers import MASK_INFO_KEY, ModalityMask


def test_p1_masks_always_and_reports_in_info(toy_env, rollout):
    env = ModalityMask(toy_env, ["camera", "text"], p=1.0)
    for obs, info in rollout(env, seed=0):
        assert info[MASK_INFO_KEY] == ["camera", "text"]
        assert not obs["camera"].any() and not obs["text"].any()
        assert obs["camera"].dtype == np.uint8 and obs["text"].dtype == np.int64
        assert obs["lidar"].any()  # not masked
        assert env.observation_space.contains(obs)


def test_p0_never_masks(toy_env, rollout):
    env = ModalityMask(toy_env, "camera", p=0.0, per="step")
    for obs, info in rollout(env, seed=0):
        assert info[MASK_INFO_KEY] == [] and obs["camera"].any()


def _mask_sequence(env, seed: int, episodes: int, steps: int) -> list[list[tuple[str, ...]]]:
    out = []
    for e in range(episodes):
        _, info = env.reset(seed=seed if e == 0 else None)
        episode = [tuple(info[MASK_INFO_KEY])]
        for _ in range(steps):
            _, _, _, _, info = env.step(0)
            episode.append(tuple(info[MASK_INFO_KEY]))
        out.append(episode)
    return out


def test_per_episode_holds_mask_for_the_episode(make_toy):
    env = ModalityMask(make_toy(length=100), ["camera", "lidar"], p=0.5, per="episode")
    seq = _mask_sequence(env, seed=0, episodes=30, steps=4)
    assert all(len(set(ep)) == 1 for ep in seq)
    assert len({ep[0] for ep in seq}) > 2  # but differs between episodes


def test_per_step_redraws_and_masks_what_info_says(make_toy):
    env = ModalityMask(make_toy(length=1000), ["camera", "lidar"], p=0.5, per="step")
    obs, info = env.reset(seed=1)
    seen, n_masked = set(), 0
    for _ in range(100):
        obs, _, _, _, info = env.step(0)
        masked = set(info[MASK_INFO_KEY])
        seen.add(tuple(sorted(masked)))
        n_masked += len(masked)
        for key in ("camera", "lidar"):
            assert (not obs[key].any()) == (key in masked)
    assert len(seen) == 4  # every combination occurs
    assert 70 < n_masked < 130  # each of 2 keys masked with p = 0.5 over 100 steps


def test_seeded_masks_are_reproducible(make_toy):
    def seq(seed):
        env = ModalityMask(make_toy(length=100), ["camera", "lidar", "text"], p=0.5, per="step")
        return _mask_sequence(env, seed=seed, episodes=3, steps=10)

    assert seq(7) == seq(7)
    assert seq(7) != seq(8)


def test_stacked_masks_merge_info(toy_env):
    env = ModalityMask(ModalityMask(toy_env, "camera"), ["lidar", "camera"])
    obs, info = env.reset(seed=0)
    assert info[MASK_INFO_KEY] == ["camera", "lidar"]
    assert not obs["camera"].any() and not obs["lidar"].any()


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
def test_gymnasium_check_env_passes(make_toy):
    check_env(
        ModalityMask(make_toy(), ["camera", "lidar"], p=0.5, per="step"), skip_render_check=True
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("radar",), {}, "key 'radar' is not in the observation space; available keys"),
        ((["camera"],), dict(p=1.5), r"p must be in \[0.0, 1.0\], got 1.5"),
        ((["camera"],), dict(p=-0.1), r"p must be in \[0.0, 1.0\]"),
        ((["camera"],), dict(per="episodes"), r"per must be one of \['episode', 'step'\]"),
        (([],), {}, "at least one"),
        ((["camera", "camera"],), {}, "duplicates"),
    ],
)
def test_bad_input_raises_value_error(toy_env, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModalityMask(toy_env, *args, **kwargs)


def test_unmaskable_spaces_rejected(make_toy):
    env = make_toy(string_text=True)
    with pytest.raises(ValueError, match="only Box spaces whose bounds contain zero"):
        ModalityMask(env, "text")
    env = make_toy()
    env.observation_space = spaces.Dict(
        {**env.observation_space.spaces, "state": spaces.Box(1.0, 2.0, shape=(2,))}
    )
    with pytest.raises(ValueError, match="key 'state' cannot be masked"):
        ModalityMask(env, "state")


def test_non_dict_space_raises(make_toy):
    env = make_toy()
    env.observation_space = spaces.Box(0, 1, shape=(3,))
    with pytest.raises(ValueError, match="needs a flat Dict observation space"):
        ModalityMask(env, "camera")
