"""Adapters that give other benchmark suites mmrl's flat multimodal observations.

- :func:`make_minigrid` / :func:`make_minigrid_vec_env`: MiniGrid and BabyAI
  (``{camera, text, state}``), extra ``mmrl[minigrid]``.
- :func:`make_highway` / :func:`make_highway_vec_env`: highway-env
  (``{camera, lidar, state}``), extra ``mmrl[highway]``.

The suites are optional: importing this package needs neither; calling an adapter without its
suite raises an ``ImportError`` that names the ``pip install`` to run.
"""

from __future__ import annotations

from mmrl.adapters.highway import make_highway, make_highway_vec_env
from mmrl.adapters.minigrid import make_minigrid, make_minigrid_vec_env

__all__ = ["make_highway", "make_highway_vec_env", "make_minigrid", "make_minigrid_vec_env"]
