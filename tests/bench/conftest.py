"""A fast synthetic cell function for the grid, resume, backend and report tests.

It returns records shaped like :func:`mmrl.bench.runner.run_cell`'s with known numbers
(so aggregates can be checked by hand) and appends a line to ``calls.txt`` in the cell's
folder every time it runs (so tests can count executions across processes).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from mmrl.bench.grid import BenchSpec, Cell, cell_dir

#: Base success of each fusion in the synthetic records (+0.1 per seed).
BASE = {"concat": 0.2, "mean": 0.4, "attention": 0.6}
MODALITY_DROP = {"camera": 0.3, "lidar": 0.1, "text": 0.0}
FAIL_SEED = 100
SLOW_SEED = 7
"""Cells of this seed sleep for two minutes (to be interrupted)."""


def fake_success(cell: Cell) -> float:
    return round(BASE.get(cell.fusion, 0.5) + 0.1 * cell.seed, 6)


def fake_cell(cell: Cell, spec: BenchSpec, out: str) -> dict[str, Any]:
    folder = cell_dir(Path(out), cell)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "calls.txt", "a") as fh:
        fh.write(f"{cell.cell_id}\n")
    if cell.seed == FAIL_SEED:
        raise RuntimeError(f"boom in {cell.cell_id}")
    if cell.seed == SLOW_SEED:
        import time

        time.sleep(120)
    success = fake_success(cell)
    test_success = success / 2

    def summary(s: float) -> dict[str, float]:
        return {"episodes": 4, "success_rate": s, "mean_return": 10 * s,
                "collision_rate": 0.0, "mean_length": 20.0}  # fmt: skip

    curve = [
        {"step": 100 * k, "train": summary(success * k / 3), "test": summary(test_success * k / 3)}
        for k in (1, 2, 3)
    ]
    ablation = {"none": summary(success)}
    if cell.seed > 0:  # records from before per-group success existed have none (seed 0)
        ablation["none"]["by_group"] = {
            "follow": {"episodes": 2, "success_rate": success / 2},
            "lane": {"episodes": 2, "success_rate": 1.0},
        }
    ablation.update({k: summary(success - d) for k, d in MODALITY_DROP.items()})
    return {
        "cell": cell.to_dict(),
        "cell_id": cell.cell_id,
        "env_name": cell.env_name,
        "agent": cell.agent,
        "protocol": spec.protocol(),
        "steps": spec.steps,
        "train_seconds": 2.0,
        "steps_per_second": spec.steps / 2.0,
        "params": {"policy": 1000 + len(cell.fusion), "extractor": 800},
        "eval": {"train": summary(success), "test": summary(test_success)},
        "eval_episodes": 4,
        "curve": curve,
        "ablation": ablation,
        "cell_seconds": 2.5,
        "host": "test-host",
    }


def calls(out: Path, cell: Cell) -> int:
    path = cell_dir(out, cell) / "calls.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def cell_fn():
    """``fake_cell``, picklable by value so spawned workers and Ray tasks can run it (this
    conftest is not importable by name outside pytest)."""
    import cloudpickle

    module = sys.modules[fake_cell.__module__]
    picklers = [cloudpickle]
    try:
        import ray.cloudpickle

        picklers.append(ray.cloudpickle)
    except ImportError:
        pass
    for pickler in picklers:
        pickler.register_pickle_by_value(module)
    yield fake_cell
    for pickler in picklers:
        pickler.unregister_pickle_by_value(module)


def make_spec(**kwargs: Any) -> BenchSpec:
    values: dict[str, Any] = {
        "envs": ["driving"],
        "fusions": ["concat", "attention"],
        "seeds": [0, 1],
        "steps": 300,
    }
    values.update(kwargs)
    return BenchSpec(**values)


@pytest.fixture
def fake():
    """Helpers of the synthetic cells: ``make_spec``, ``calls``, ``success``, ``FAIL_SEED``."""
    from types import SimpleNamespace

    return SimpleNamespace(
        make_spec=make_spec, calls=calls, success=fake_success, FAIL_SEED=FAIL_SEED,
        SLOW_SEED=SLOW_SEED, MODALITY_DROP=MODALITY_DROP,
    )  # fmt: skip
