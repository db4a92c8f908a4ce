"""The reference policies (scripted expert, random actions) through the evaluation engine."""

import numpy as np
import pytest

from mmrl.config import ConfigError
from mmrl.envs.navigation.instructions import SHAPES
from mmrl.evaluation.reference import ReferencePolicy
from mmrl.evaluation.robustness import parse_conditions
from mmrl.evaluation.rollouts import EvalSettings, evaluate_model
from mmrl.make import resolve_env

# 6 episodes on 4 copies: two copies run a second episode while the others idle, so the
# expert must be given whole batches (collect_episodes' subset_rows=False) to get this far.
SETTINGS = {"episodes": 6, "n_envs": 4, "n_resamples": 50, "ablate_mode": "zero"}


def _evaluate(name, ablate="text,camera", seed=3, splits=("train", "test"), **kwargs):
    return evaluate_model(
        ReferencePolicy(name, seed=seed),
        resolve_env("navigation"),
        EvalSettings(**{**SETTINGS, **kwargs}),
        parse_conditions(ablate),
        splits,
    )


@pytest.mark.parametrize("name", ["expert", "random"])
def test_masking_does_not_change_a_policy_that_ignores_observations(name):
    results = _evaluate(name)
    assert [(r.split, r.condition.name) for r in results] == [
        (split, c) for split in ("train", "test") for c in ("clean", "-text", "-camera")
    ]
    for split in ("train", "test"):
        clean, *masked = (r for r in results if r.split == split)
        assert clean.episodes == 6
        for r in masked:
            np.testing.assert_array_equal(r.returns, clean.returns)
            np.testing.assert_array_equal(r.successes, clean.successes)
    if name == "expert":
        assert all(r.success_rate.value == 1.0 for r in results)
        # Navigation's groups are the target shapes (named through the simulator's labels).
        assert all(set(r.by_group) <= set(SHAPES) for r in results)


def test_random_actions_follow_the_seed():
    (a,) = _evaluate("random", ablate=None, splits=("train",))
    (b,) = _evaluate("random", ablate=None, splits=("train",))
    (c,) = _evaluate("random", ablate=None, splits=("train",), seed=4)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert not np.array_equal(a.returns, c.returns)


def test_reference_policies_refuse_misuse():
    with pytest.raises(ConfigError, match="unknown reference policy 'oracle'; allowed: expert"):
        ReferencePolicy("oracle")
    with pytest.raises(RuntimeError, match="attach"):
        ReferencePolicy("random").predict({"text": np.zeros((2, 4))})
    with pytest.raises(ConfigError, match="no MultimodalExtractor"):
        _evaluate("expert", ablate_mode="extractor")
