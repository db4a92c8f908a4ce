"""The package's layers: imports point down only, and no two mmrl modules import each other.

Reads every module of ``mmrl`` with :mod:`ast` (module-level and function-level imports, relative
imports resolved; nothing is imported), so a lazy import inside a function counts like any
other: it hides a cycle from Python, not from this test. The layer order is written down once,
in :data:`LAYERS`, and drawn in ``docs/architecture.md`` (issue 14).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mmrl"

#: From the bottom. A module belongs to the layer of its longest listed prefix (``mmrl.data``
#: is the Minari format; ``mmrl.collect`` sits above training because it loads trained
#: policies). A module may import its own layer and the layers below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("mmrl.errors", "mmrl.spaces", "mmrl.densities", "mmrl._lazy", "mmrl._umask"),
    ("mmrl", "mmrl.registration", "mmrl.envs"),  # ``mmrl`` itself: registers the envs
    ("mmrl.wrappers", "mmrl.adapters"),  # observation wrappers, other suites' envs
    ("mmrl.encoders", "mmrl.fusion"),
    # testing: fake envs + extractor fitting helpers; recurrent: the skip-LSTM policy
    ("mmrl.extractor", "mmrl.testing", "mmrl.recurrent"),
    ("mmrl.data",),  # the Minari format: reader and writer
    # runs: the run folder's file names and readers, shared by train (the writer) and above
    # commands: each command's options (typed, declared once), read by the library below cli
    (
        "mmrl.config",
        "mmrl.commands",
        "mmrl.make",
        "mmrl.checkpoint",
        "mmrl.rollout",
        "mmrl.agent",
        "mmrl.runs",
    ),
    # mmrl.evaluation's video recorder and file encoder need only envs, config and errors;
    # they sit in this layer, below the rest of their package, as training records videos too.
    (
        "mmrl.callbacks",
        "mmrl.guidance",
        "mmrl.progress",
        "mmrl.tracking",
        "mmrl.train",
        "mmrl.pretrain",
        "mmrl.train_video",
        "mmrl.evaluation.video",
        "mmrl.evaluation.encoding",
    ),
    ("mmrl.policies",),
    ("mmrl.collect",),
    ("mmrl.evaluation",),
    ("mmrl.bench", "mmrl.export", "mmrl.tune"),  # export: a shareable run folder; tune: Optuna
    ("mmrl.cli", "mmrl.__main__"),
)

#: Imports that break the order or close a cycle today and need a bigger change than the one
#: that added this test. Each names its issue; remove the entry when it is fixed (the test
#: fails on entries that no longer occur, so the list only shrinks).
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _known(name: str) -> str | None:
    """The mmrl module ``name`` refers to (a name inside a module -> that module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    """Every mmrl module ``module`` imports, anywhere in its file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from mmrl.x import y``: y is a submodule or a name defined in mmrl.x.
            names = [f"{source}.{alias.name}" for alias in node.names]
            names = [n if n in MODULES else source for n in names]
        else:
            continue
        found.update(m for n in names if n.split(".")[0] == "mmrl" and (m := _known(n)))
    found.discard(module)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def layer_of(module: str) -> int:
    best, layer = "", -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            fits = module == prefix or module.startswith(prefix + ".")
            if fits and len(prefix) > len(best):
                best, layer = prefix, index
    return layer


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if layer_of(m) < 0]
    assert not missing, f"place these modules in LAYERS of {__file__}: {missing}"


def test_no_import_cycles():
    graph = {
        module: {dep for dep in deps if (module, dep) not in KNOWN_EXCEPTIONS}
        for module, deps in GRAPH.items()
    }
    # A package importing its own submodules is how packages re-export; the submodule
    # importing a sibling through the package would be caught as the sibling edge.
    for module, deps in graph.items():
        graph[module] = {d for d in deps if not d.startswith(module + ".")}
    cycles = _cycles(graph)
    assert not cycles, "import cycles between mmrl modules (move the shared piece down): " + (
        "; ".join(" <-> ".join(c) for c in cycles)
    )


def test_imports_point_down_only():
    upward = [
        f"{module} (layer {layer_of(module)}) imports {dep} (layer {layer_of(dep)})"
        for module, deps in sorted(GRAPH.items())
        for dep in sorted(deps)
        if layer_of(dep) > layer_of(module) and (module, dep) not in KNOWN_EXCEPTIONS
    ]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


@pytest.mark.parametrize("edge", sorted(KNOWN_EXCEPTIONS))
def test_known_exceptions_still_occur(edge):
    module, dep = edge
    assert dep in GRAPH.get(module, set()), (
        f"{module} no longer imports {dep}: remove it from KNOWN_EXCEPTIONS"
    )


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """The parser itself: function-level and relative imports are edges."""
    assert "mmrl.extractor" in GRAPH["mmrl.testing"]  # imported inside a function only
    source = tmp_path / "rollouts.py"
    source.write_text(
        "from . import stats\nfrom .loading import Target\n"
        "def f():\n    from ..train import train\n    import mmrl.cli\n"
    )
    assert _imports("mmrl.evaluation.rollouts", source) == {
        "mmrl.evaluation.stats",
        "mmrl.evaluation.loading",
        "mmrl.train",
        "mmrl.cli",
    }
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("mmrl.data.dataset") < layer_of("mmrl.collect") < layer_of("mmrl.cli")
