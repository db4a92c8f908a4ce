"""What ``pyproject.toml`` declares matches the package: typing marker, dependencies, extras."""

from __future__ import annotations

import ast
import importlib.resources
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]

#: The module each extra's distribution is imported as (an extra mmrl never imports is dead
#: weight that can break a fresh install, as ``stats = ["rliable"]`` did: issue 17).
EXTRA_MODULES = {
    "highway-env": "highway_env",
    "minigrid": "minigrid",
    "ray": "ray",
    "optuna": "optuna",
    "sb3-contrib": "sb3_contrib",
    "pygame-ce": "pygame",
    "wandb": "wandb",
    "mlflow-skinny": "mlflow",
}


def _name(requirement: str) -> str:
    """``"minari[hdf5]>=0.5.1"`` -> ``"minari"``."""
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def _modules_mmrl_uses() -> set[str]:
    """Top-level modules mmrl imports (statements, or names given to ``require_extra``)."""
    used: set[str] = set()
    for path in (ROOT / "mmrl").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                used.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                used.add(node.module.split(".")[0])
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", "")) == "require_extra"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                used.add(str(node.args[0].value).split(".")[0])
    return used


def test_py_typed_ships_with_the_package():
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["mmrl"]
    assert (importlib.resources.files("mmrl") / "py.typed").is_file()


def test_h5py_is_declared_exactly_when_mmrl_imports_it():
    """Minari's hdf5 extra brings h5py for reading; mmrl's writer also imports it (chunk
    sizes for the free-space check), so it is then a direct dependency too."""
    used = _modules_mmrl_uses()
    names = {_name(r): r for r in PROJECT["dependencies"]}
    assert ("h5py" in names) == ("h5py" in used), "declare h5py iff mmrl imports it"
    assert "hdf5" in re.search(r"\[(.*?)\]", names["minari"]).group(1).split(",")
    assert "minari" in used


def test_every_extra_is_used_and_the_meta_extras_name_real_ones():
    extras = PROJECT["optional-dependencies"]
    used = _modules_mmrl_uses()
    meta = {"peers", "all", "dev", "track"}
    # The docs extra serves the site build (mkdocs.yml, docs/hooks.py), not the package.
    tools = {"docs"}
    for extra, requirements in extras.items():
        if extra in meta or extra in tools:
            continue
        for requirement in requirements:
            module = EXTRA_MODULES.get(_name(requirement))
            assert module, f"extra {extra!r}: add {_name(requirement)!r} to EXTRA_MODULES"
            assert module in used, f"extra {extra!r} installs {module!r}, which mmrl never imports"
    assert "stats" not in extras
    for extra in meta:
        for requirement in extras[extra]:
            if requirement.startswith("mmrl["):
                named = requirement[len("mmrl[") : -1].split(",")
                assert set(named) <= set(extras), f"{extra!r} names unknown extras {named}"


def test_built_wheel_contains_py_typed(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "presets")
    for name in ("mmrl", "envs", "agents"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
         str(tmp_path / "dist"), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("mmrl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mmrl/py.typed" in names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA")))
    assert b"Requires-Dist: minari[hdf5]" in metadata
    assert b"Requires-Dist: h5py" in metadata and b"rliable" not in metadata
