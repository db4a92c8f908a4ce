"""Distinct row labels for the policies compared in one table.

A policy's label is its run folder's name (or file stem), so two runs both called ``run``
(``a/run`` and ``b/run``, the usual layout of sweeps) were two rows named ``run`` (issue 16).
:func:`distinct_labels` prefixes each colliding label with the shortest parent path that
tells the policies apart, as editors do with tabs of same-named files.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import PurePath

__all__ = ["distinct_labels"]


def _parents(label: str, ref: str) -> tuple[str, ...]:
    """The folders above what ``label`` names, from the root down (none for a name that is
    not a path, such as ``expert``). The label starts with the run folder's or the file's
    name (``run``, ``run/step_64``, ``enc``), so the parents are those above the nearest
    part of ``ref`` of that name."""
    if not os.path.exists(ref):
        return ()
    parts = PurePath(os.path.abspath(ref)).parts
    head = label.split("/")[0]
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == head or PurePath(parts[index]).stem == head:
            return parts[:index]
    return parts[:-1]


def distinct_labels(labels: Sequence[str], refs: Sequence[str]) -> list[str]:
    """``labels`` with the colliding ones made distinct.

    Each label shared by several policies is prefixed with the fewest parent folders of
    its reference that no other policy of the group shares (``a/run`` and ``b/run``;
    ``x/a/run``, ``y/a/run`` and ``b/run``); where the references cannot tell them apart
    (the same path twice, ``expert`` twice), ``#2``, ``#3``... are appended instead.

    Args:
        labels: The policies' labels, in order.
        refs: What each policy was loaded from (a path, ``expert``, ``random``).
    """
    if len(labels) != len(refs):
        raise ValueError(f"{len(labels)} labels for {len(refs)} references")
    out = list(labels)
    groups: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        groups[label].append(index)
    for label, members in groups.items():
        if len(members) < 2:
            continue
        parents = {i: _parents(label, refs[i]) for i in members}
        for i in members:
            for depth in range(1, len(parents[i]) + 1):
                prefix = parents[i][-depth:]
                if all(parents[j][-depth:] != prefix for j in members if j != i):
                    out[i] = "/".join((*prefix, label)).lstrip("/")
                    break
    seen: dict[str, int] = defaultdict(int)
    for index, label in enumerate(out):  # what the paths could not separate
        seen[label] += 1
        if seen[label] > 1:
            out[index] = f"{label}#{seen[label]}"
    return out
