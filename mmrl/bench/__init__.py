"""``mmrl bench``: grids of fusions x environments x seeds, aggregated with confidence intervals.

Typical use::

    from mmrl.bench import BenchSpec, LocalBackend, run_bench

    spec = BenchSpec(envs=["driving"], fusions=["concat", "attention"], seeds=[0, 1, 2],
                     steps=100_000)
    result = run_bench(spec, "bench/mine", LocalBackend(workers=2))

Modules: :mod:`~mmrl.bench.grid` (cells, validation, resume), :mod:`~mmrl.bench.runner`
(one cell: train, evaluate, ablate), :mod:`~mmrl.bench.backends` (inline, process pool,
Ray), :mod:`~mmrl.bench.aggregate` (IQM, stratified bootstrap), :mod:`~mmrl.bench.figures`
and :mod:`~mmrl.bench.report` (CSV, Markdown, PNG), :mod:`~mmrl.bench.driver` (the loop).
"""

from mmrl.bench.backends import (
    Backend,
    InlineBackend,
    LocalBackend,
    MissingDependencyError,
    RayBackend,
    make_backend,
)
from mmrl.bench.driver import BenchResult, run_bench
from mmrl.bench.grid import BenchSpec, Cell, validate_spec

__all__ = [
    "Backend",
    "BenchResult",
    "BenchSpec",
    "Cell",
    "InlineBackend",
    "LocalBackend",
    "MissingDependencyError",
    "RayBackend",
    "make_backend",
    "run_bench",
    "validate_spec",
]
