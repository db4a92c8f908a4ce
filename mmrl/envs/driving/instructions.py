"""Instruction grammar of the driving task and its train/test split.

An instruction is a (task, argument, template) triple rendered to a string. Tasks change what
the right behaviour is: take or skip the off-ramp, drive in a named lane, follow or overtake
the car of a named colour, drive slowly or fast. The argument is a lane reference for
``lane`` and a colour for ``follow``/``overtake``.

The test split holds out (i) one or two paraphrase templates per task, (ii) some
task x colour pairs (e.g. *follow* x red: red cars are followed only in the test split, but
red cars are overtaken in the train split) and (iii) some template x lane-reference pairs.
Every test word occurs in some training instruction, so ``instruction_split="test"``
measures compositional generalization (as in gSCAN, Ruis et al. 2020), not new vocabulary.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

SPLITS: tuple[str, ...] = ("train", "test")
"""Allowed values of ``instruction_split``."""

TASKS: tuple[str, ...] = ("take_exit", "skip_exit", "lane", "follow", "overtake", "slow", "fast")
"""Task names; index = instruction type id (``info["labels"]["instruction_type"]``)."""
TAKE_EXIT, SKIP_EXIT, LANE, FOLLOW, OVERTAKE, SLOW, FAST = range(len(TASKS))
"""Task ids (indices in :data:`TASKS`)."""

COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "white", "purple", "orange", "cyan")
"""Car colour names; index = colour id (``info["labels"]["target_color"]``)."""

COLOR_RGB = np.array(
    [
        (220, 40, 40),  # red
        (40, 180, 60),  # green
        (45, 85, 235),  # blue
        (235, 215, 40),  # yellow
        (250, 250, 250),  # white
        (150, 60, 205),  # purple
        (245, 140, 30),  # orange
        (40, 210, 220),  # cyan
    ],
    dtype=np.uint8,
)
"""``(len(COLORS), 3)`` uint8 RGB of each car colour as drawn by the camera."""

# Lane references and the lane index (0 = leftmost) they name on a road of ``n`` lanes, or
# ``None`` where the phrase does not apply (there is no single middle lane on 2 or 4 lanes).
LANE_REFS: dict[str, Callable[[int], int | None]] = {
    "left lane": lambda n: 0,
    "leftmost lane": lambda n: 0,
    "right lane": lambda n: n - 1,
    "rightmost lane": lambda n: n - 1,
    "middle lane": lambda n: 1 if n == 3 else None,
    "center lane": lambda n: 1 if n == 3 else None,
    "first lane from the left": lambda n: 0,
    "second lane from the left": lambda n: 1,
    "third lane from the left": lambda n: 2 if n >= 3 else None,
    "fourth lane from the left": lambda n: 3 if n >= 4 else None,
}

TEMPLATES: dict[str, tuple[str, ...]] = {
    "take_exit": (
        "take the exit",
        "take the next exit",
        "use the off ramp",
        "leave the highway at the next exit",
        "get off the highway",
        "take the offramp",
        "use the next exit to leave the highway",
        "get off at the next ramp",
    ),
    "skip_exit": (
        "skip the exit",
        "stay on the highway",
        "do not take the exit",
        "ignore the off ramp",
        "skip the exit and continue straight",
        "continue straight past the exit",
        "ignore the next exit and stay on the highway",
        "do not use the ramp",
    ),
    "lane": (
        "drive in the {lane}",
        "stay in the {lane}",
        "keep to the {lane}",
        "move to the {lane}",
        "use the {lane}",
        "get in the {lane}",
        "keep the car in the {lane}",
    ),
    "follow": (
        "follow the {color} car",
        "drive behind the {color} car",
        "stay behind the {color} vehicle",
        "follow the {color} vehicle",
        "keep behind the {color} car",
        "tail the {color} car",
        "get behind the {color} vehicle",
    ),
    "overtake": (
        "overtake the {color} car",
        "pass the {color} car",
        "overtake the {color} vehicle",
        "drive past the {color} car",
        "get ahead of the {color} car",
        "pass the {color} vehicle",
        "move ahead of the {color} vehicle",
    ),
    "slow": (
        "drive slowly",
        "go slow",
        "slow down",
        "keep a low speed",
        "please drive slowly",
        "drive at a low speed",
        "keep the speed low",
        "go at a low speed",
    ),
    "fast": (
        "drive fast",
        "go quickly",
        "speed up",
        "keep a high speed",
        "please drive fast",
        "drive at a high speed",
        "keep the speed high",
        "go at a high speed",
    ),
}
"""Every template of every task, train and test ones together."""

TEST_TEMPLATES: frozenset[str] = frozenset(
    {
        "use the next exit to leave the highway",
        "get off at the next ramp",
        "ignore the next exit and stay on the highway",
        "do not use the ramp",
        "keep the car in the {lane}",
        "get behind the {color} vehicle",
        "move ahead of the {color} vehicle",
        "keep the speed low",
        "go at a low speed",
        "keep the speed high",
        "go at a high speed",
    }
)
"""Paraphrase templates used only in the test split."""

HELD_OUT_COLORS: frozenset[tuple[str, str]] = frozenset(
    {("follow", "red"), ("follow", "orange"), ("overtake", "blue"), ("overtake", "yellow")}
)
"""(task, colour) pairs named only in the test split; each colour is used by the other task
in training."""

HELD_OUT_LANES: frozenset[tuple[str, str]] = frozenset(
    {
        ("drive in the {lane}", "rightmost lane"),
        ("stay in the {lane}", "second lane from the left"),
        ("keep to the {lane}", "left lane"),
        ("move to the {lane}", "middle lane"),
        ("use the {lane}", "first lane from the left"),
        ("get in the {lane}", "center lane"),
    }
)
"""(template, lane reference) pairs used only in the test split."""

NO_ARG = -1


def _is_test(task: str, template: str, arg_word: str | None) -> bool:
    if template in TEST_TEMPLATES:
        return True
    if task in ("follow", "overtake") and (task, arg_word) in HELD_OUT_COLORS:
        return True
    return task == "lane" and (template, arg_word) in HELD_OUT_LANES


@functools.cache
def combinations(split: str, task: str, n_lanes: int) -> tuple[tuple[int, str], ...]:
    """All instructions of ``task`` in ``split`` on a road with ``n_lanes`` lanes.

    Returns:
        ``(argument, text)`` pairs; the argument is the lane index (``lane``), the colour id
        (``follow``/``overtake``) or ``-1``.
    """
    if split not in SPLITS:
        raise ValueError(f"instruction_split must be one of {list(SPLITS)}, got {split!r}")
    out: list[tuple[int, str]] = []
    for template in TEMPLATES[task]:
        if task == "lane":
            args = [(ref, LANE_REFS[ref](n_lanes)) for ref in LANE_REFS]
            items = [
                (lane, template.format(lane=ref), ref) for ref, lane in args if lane is not None
            ]
        elif task in ("follow", "overtake"):
            items = [(c, template.format(color=name), name) for c, name in enumerate(COLORS)]
        else:
            items = [(NO_ARG, template, None)]
        for arg, text, word in items:
            if _is_test(task, template, word) == (split == "test"):
                out.append((arg, text))
    return tuple(out)


def sample_instruction(
    rng: np.random.Generator, split: str, tasks: tuple[str, ...], n_lanes: int
) -> tuple[int, int, str]:
    """Draws one instruction.

    Args:
        rng: The copy's random generator.
        split: ``"train"`` or ``"test"``.
        tasks: Task names to draw from (uniformly).
        n_lanes: Number of main-road lanes (lane references must exist).

    Returns:
        ``(task id, argument, text)``, see :func:`combinations` for the argument.
    """
    task = tasks[int(rng.integers(len(tasks)))]
    combos = combinations(split, task, n_lanes)
    arg, text = combos[int(rng.integers(len(combos)))]
    return TASKS.index(task), arg, text


def allowed_args(split: str, task: str, n_lanes: int) -> tuple[int, ...]:
    """Arguments (lane indices or colour ids) some instruction of ``task`` names in ``split``."""
    return tuple(sorted({arg for arg, _ in combinations(split, task, n_lanes)}))


@functools.cache
def phrases(split: str, task: str, n_lanes: int, arg: int) -> tuple[str, ...]:
    """The instructions of ``task`` in ``split`` naming ``arg`` (``-1``: no argument), in the
    grammar's order: an episode draws its phrase uniformly among them (empty: none does)."""
    return tuple(text for a, text in combinations(split, task, n_lanes) if a == arg)


def all_instructions(split: str) -> set[str]:
    """Every string the grammar can produce in ``split`` (all tasks, all lane counts)."""
    return {text for task in TASKS for n in (2, 3, 4) for _, text in combinations(split, task, n)}
