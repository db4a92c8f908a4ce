"""Objects, instruction grammar and the train/test split of the navigation task.

A target is a (colour, shape) combination. The test split names only combinations that are
never a target in the train split (and adds paraphrase templates the train split never uses),
so ``instruction_split="test"`` measures compositional generalization: every colour word and
every shape word is seen in training, only their pairing is new (as in gSCAN, Ruis et al. 2020).
"""

from __future__ import annotations

import numpy as np

COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "cyan")
"""Object colour names; index = colour id."""

COLOR_RGB = np.array(
    [
        (220, 40, 40),  # red
        (40, 190, 60),  # green
        (50, 90, 235),  # blue
        (235, 215, 40),  # yellow
        (160, 60, 210),  # purple
        (40, 210, 215),  # cyan
    ],
    dtype=np.float32,
)
"""``(len(COLORS), 3)`` float32 base RGB of each colour (walls and floor are greys/browns)."""

SHAPES: tuple[str, ...] = ("ball", "cube", "cone", "cylinder")
"""Object shape names; index = shape id."""

SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "ball": ("ball", "sphere"),
    "cube": ("cube", "box", "block"),
    "cone": ("cone",),
    "cylinder": ("cylinder", "pillar"),
}
"""Nouns an instruction may use for each shape (synonyms are used in both splits)."""

HELD_OUT: frozenset[tuple[int, int]] = frozenset(
    (COLORS.index(c), SHAPES.index(s))
    for c, s in (
        ("red", "cone"),
        ("green", "cube"),
        ("blue", "cylinder"),
        ("yellow", "ball"),
        ("purple", "cylinder"),
        ("cyan", "cube"),
    )
)
"""(colour id, shape id) pairs that are targets only in the test split: one per colour, every
shape at least once, so each word still occurs as a target in training."""

TRAIN_TEMPLATES: tuple[str, ...] = (
    "go to the {color} {shape}",
    "reach the {color} {shape}",
    "navigate to the {shape} that is {color}",
    "find the {color} {shape}",
    "move to the {color} {shape}",
    "head towards the {color} {shape}",
)
"""Instruction templates of the train split."""

TEST_TEMPLATES: tuple[str, ...] = (
    "drive to the {shape} which is {color}",
    "get to the {color} colored {shape}",
    "please walk over to the {color} {shape}",
)
"""Paraphrase templates used only by the test split (which also uses the train templates)."""

SPLITS = ("train", "test")


def target_combos(split: str) -> list[tuple[int, int]]:
    """The (colour id, shape id) pairs that can be the target in ``split``."""
    every = [(c, s) for c in range(len(COLORS)) for s in range(len(SHAPES))]
    if split == "train":
        return [combo for combo in every if combo not in HELD_OUT]
    if split == "test":
        return sorted(HELD_OUT)
    raise ValueError(f"instruction_split must be one of {list(SPLITS)}, got {split!r}")


def templates(split: str) -> tuple[str, ...]:
    """Instruction templates of ``split``."""
    if split not in SPLITS:
        raise ValueError(f"instruction_split must be one of {list(SPLITS)}, got {split!r}")
    return TRAIN_TEMPLATES if split == "train" else TRAIN_TEMPLATES + TEST_TEMPLATES


def all_words() -> set[str]:
    """Every word the grammar can produce (both splits); used to check the shared vocabulary."""
    words: set[str] = set(COLORS)
    for nouns in SHAPE_WORDS.values():
        words.update(nouns)
    for template in TRAIN_TEMPLATES + TEST_TEMPLATES:
        words.update(w for w in template.split() if not w.startswith("{"))
    return words


def make_instruction(rng: np.random.Generator, split: str, color: int, shape: int) -> str:
    """Phrases an instruction naming the ``color``/``shape`` object with a random template."""
    options = templates(split)
    template = options[int(rng.integers(len(options)))]
    nouns = SHAPE_WORDS[SHAPES[shape]]
    noun = nouns[int(rng.integers(len(nouns)))]
    return template.format(color=COLORS[color], shape=noun)


def sample_objects(
    rng: np.random.Generator, split: str, n_objects: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Navigation-v0's object draw (kept unchanged for ``-v0``; it leaks the target).

    All objects have distinct (colour, shape) pairs. One distractor shares the target's
    colour and one its shape, so the target is the one object whose colour *and* shape both
    recur in the scene: a rule that ignores the instruction finds it in most episodes.
    :func:`sample_scene` (v1) draws the scene first and the target from it uniformly.

    Args:
        rng: The episode's generator.
        split: ``"train"`` or ``"test"``; decides which pairs may be the target.
        n_objects: Number of objects (>= 2).

    Returns:
        ``(colors (n,) int64, shapes (n,) int64, target index)``; the target sits at a random
        index.
    """
    combos = target_combos(split)
    tc, ts = combos[int(rng.integers(len(combos)))]
    n_c, n_s = len(COLORS), len(SHAPES)
    chosen = [(tc, ts)]
    # Same colour, other shape.
    other_shapes = [s for s in range(n_s) if s != ts]
    chosen.append((tc, other_shapes[int(rng.integers(len(other_shapes)))]))
    if n_objects >= 3:
        # Same shape, other colour.
        other_colors = [c for c in range(n_c) if c != tc]
        chosen.append((other_colors[int(rng.integers(len(other_colors)))], ts))
    pool = [(c, s) for c in range(n_c) for s in range(n_s) if (c, s) not in chosen]
    extra = rng.choice(len(pool), size=n_objects - len(chosen), replace=False)
    chosen.extend(pool[int(i)] for i in extra)
    order = rng.permutation(n_objects)
    colors = np.array([chosen[i][0] for i in order], dtype=np.int64)
    shapes = np.array([chosen[i][1] for i in order], dtype=np.int64)
    target = int(np.flatnonzero(order == 0)[0])
    return colors, shapes, target


def _related_combo(
    rng: np.random.Generator, anchor: tuple[int, int], allowed: list[tuple[int, int]]
) -> tuple[int, int] | None:
    """An allowed pair sharing the anchor's colour or its shape (either with equal odds)."""
    same_color = [p for p in allowed if p[0] == anchor[0]]
    same_shape = [p for p in allowed if p[1] == anchor[1]]
    kinds = [k for k in (same_color, same_shape) if k]
    if not kinds:
        return None
    pick = kinds[int(rng.integers(len(kinds)))]
    return pick[int(rng.integers(len(pick)))]


def sample_scene(
    rng: np.random.Generator, split: str, n_objects: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Draws one episode's objects, its confusable candidates, then the target among them.

    The scene is built first and the target drawn uniformly from the candidates afterwards,
    so the scene alone says nothing about which candidate is named (BabyAI's level
    generators work the same way; Chevalier-Boisvert et al. 2019). Every object after the
    first shares the colour or the shape of an earlier one where the split allows it, so an
    instruction usually needs both of its words.

    * ``train``: every object is a train pair and a candidate (held-out pairs never appear).
    * ``test``: two held-out pairs are the candidates; the other objects are train pairs
      that share a candidate's colour or shape (each related to a candidate drawn
      uniformly), so a colour or a shape alone rarely identifies the target.

    Args:
        rng: The episode's generator.
        split: ``"train"`` or ``"test"``.
        n_objects: Number of objects (>= 3).

    Returns:
        ``(colors (n,) int64, shapes (n,) int64, candidates (n,) bool, target index)``; all
        pairs are distinct and the target is a candidate.
    """
    train = target_combos("train")
    if split == "train":
        first = train[int(rng.integers(len(train)))]
        chosen = [first]
        n_candidates = n_objects
    else:
        held = target_combos("test")  # raises for an unknown split
        pick = rng.choice(len(held), size=2, replace=False)
        chosen = [held[int(i)] for i in pick]
        n_candidates = 2
    while len(chosen) < n_objects:
        free = [p for p in train if p not in chosen]
        # Train split: relate to any earlier object; test split: to a candidate.
        anchor = chosen[int(rng.integers(n_candidates if split == "test" else len(chosen)))]
        combo = _related_combo(rng, anchor, free)
        chosen.append(combo if combo is not None else free[int(rng.integers(len(free)))])
    order = rng.permutation(n_objects)
    colors = np.array([chosen[i][0] for i in order], dtype=np.int64)
    shapes = np.array([chosen[i][1] for i in order], dtype=np.int64)
    candidates = order < n_candidates
    target = int(rng.choice(np.flatnonzero(candidates)))
    return colors, shapes, candidates, target
