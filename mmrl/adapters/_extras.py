"""Imports of optional dependencies with an error that says how to install them (private)."""

from __future__ import annotations

import importlib
from types import ModuleType


def require_extra(module: str, extra: str, feature: str) -> ModuleType:
    """Imports ``module`` or raises an ``ImportError`` naming the ``pip install`` that fixes it.

    Args:
        module: Module to import, e.g. ``"minigrid"``.
        extra: mmrl extra that installs it, e.g. ``"minigrid"`` for ``mmrl[minigrid]``.
        feature: What needs it, for the message (e.g. ``"make_minigrid"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{feature} needs the optional dependency {module!r}, which is not installed; "
            f"install it with: pip install 'mmrl[{extra}]'"
        ) from exc
