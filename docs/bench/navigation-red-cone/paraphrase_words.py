"""Do the held-out split's paraphrase words explain Navigation-v1's held-out gap? (issue 19)

Rolls a policy on the test split (held-out colour-shape pairs) with the instruction templates
restricted to one kind, per target pair (``scripts/navigation_outcomes.py``'s counts):

* ``all``: the split as it is (train templates and the three paraphrases);
* ``train``: the six train templates only;
* ``paraphrase``: the three paraphrase templates only ("please walk over to the red cone");
* ``paraphrase-known``: the paraphrases without the words no train template uses ("drive",
  "which", "get", "colored", "please", "walk", "over"), i.e. what a text encoder that reads
  words it was never trained on as padding would see ("to the red cone");
* ``all-known``: the train templates and ``paraphrase-known``: the whole split under that rule.

    python docs/bench/navigation-red-cone/paraphrase_words.py RUN --templates paraphrase \
        [--episodes 600] [--envs 32] [--seed 30000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch as th

import mmrl.envs.navigation.instructions as instructions

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import navigation_outcomes  # scripts/ is a folder of scripts, not a package

KINDS = ("all", "train", "paraphrase", "paraphrase-known", "all-known")


def known_words() -> set[str]:
    """Words the train split's instructions can contain."""
    words = {w for t in instructions.TRAIN_TEMPLATES for w in t.split()}
    return (
        words
        | set(instructions.COLORS)
        | {w for nouns in instructions.SHAPE_WORDS.values() for w in nouns}
    )


def templates(kind: str) -> tuple[str, ...]:
    """The test split's templates restricted to ``kind``."""
    known = known_words()
    stripped = tuple(
        " ".join(w for w in t.split() if w in known) for t in instructions.TEST_TEMPLATES
    )
    return {
        "all": instructions.TRAIN_TEMPLATES + instructions.TEST_TEMPLATES,
        "train": instructions.TRAIN_TEMPLATES,
        "paraphrase": instructions.TEST_TEMPLATES,
        "paraphrase-known": stripped,
        "all-known": instructions.TRAIN_TEMPLATES + stripped,
    }[kind]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--templates", choices=KINDS, default="all")
    parser.add_argument("--episodes", type=int, default=600)
    parser.add_argument("--envs", type=int, default=32, help="copies rolled at once")
    parser.add_argument("--seed", type=int, default=30000)
    parser.add_argument("--json", help="also write the counts here")
    args = parser.parse_args()
    th.set_num_threads(1)
    chosen = templates(args.templates)
    # The simulator draws test-split instructions through instructions.templates.
    instructions.templates = lambda split: chosen
    row = navigation_outcomes.roll(args.run, args.episodes, "test", args.envs, args.seed)
    print(f"{args.run}, templates {args.templates}: {list(chosen)}")
    for pair, group in row["groups"].items():
        f = group["fractions"]
        print(f"{pair:16s} {group['episodes']:5d}  success {f['success']:.3f}  "
              f"timeout {f['timeout']:.3f}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({**row, "templates": args.templates}, fh, indent=2)


if __name__ == "__main__":
    main()
