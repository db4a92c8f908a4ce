"""The driving instruction grammar: vocabulary coverage and the train/test split."""

from __future__ import annotations

import numpy as np
import pytest

from mmrl.envs.driving.instructions import (
    COLORS,
    HELD_OUT_COLORS,
    HELD_OUT_LANES,
    LANE_REFS,
    SPLITS,
    TASKS,
    TEST_TEMPLATES,
    all_instructions,
    combinations,
    sample_instruction,
)
from mmrl.envs.tokenizer import Tokenizer


def test_every_word_is_in_the_shared_vocabulary():
    tok = Tokenizer()
    for split in SPLITS:
        for text in all_instructions(split):
            assert tok.unknown_words(text) == [], text
            assert len(tok.split(text)) <= 16, text


def test_splits_are_disjoint_and_test_only_recombines_training_words():
    train, test = all_instructions("train"), all_instructions("test")
    assert train and test and not train & test
    train_words = {w for text in train for w in Tokenizer.split(text)}
    test_words = {w for text in test for w in Tokenizer.split(text)}
    assert test_words <= train_words


@pytest.mark.parametrize("n_lanes", [2, 3, 4])
@pytest.mark.parametrize("split", SPLITS)
def test_every_task_has_instructions_on_every_road(split, n_lanes):
    for task in TASKS:
        assert combinations(split, task, n_lanes), (split, task, n_lanes)


def test_held_out_pairs_never_appear_in_training():
    for task, color in HELD_OUT_COLORS:
        c = COLORS.index(color)
        for n in (2, 3, 4):
            assert all(arg != c for arg, _ in combinations("train", task, n))
            assert any(arg == c for arg, _ in combinations("test", task, n))
        other = "overtake" if task == "follow" else "follow"
        assert any(arg == c for arg, _ in combinations("train", other, 3))
    train = all_instructions("train")
    for template, ref in HELD_OUT_LANES:
        assert template.format(lane=ref) not in train
    for template in TEST_TEMPLATES:
        if "{lane}" in template:
            forms = {template.format(lane=ref) for ref in LANE_REFS}
        elif "{color}" in template:
            forms = {template.format(color=color) for color in COLORS}
        else:
            forms = {template}
        assert not forms & train, template


def test_lane_arguments_name_existing_lanes():
    for split in SPLITS:
        for n in (2, 3, 4):
            for lane, text in combinations(split, "lane", n):
                assert 0 <= lane < n, text
                ref = next(r for r in LANE_REFS if r in text)
                assert LANE_REFS[ref](n) == lane


def test_sampling_is_seeded_and_respects_the_task_subset():
    a = [sample_instruction(np.random.default_rng(5), "train", TASKS, 3) for _ in range(3)]
    b = [sample_instruction(np.random.default_rng(5), "train", TASKS, 3) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(0)
    for _ in range(50):
        task, _, text = sample_instruction(rng, "test", ("follow",), 4)
        assert TASKS[task] == "follow" and text in all_instructions("test")


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="instruction_split"):
        combinations("val", "lane", 3)
