"""Build hook: ship the top-level ``envs/`` and ``agents/`` presets inside the wheel.

The presets live at the repository top level (they are data users read and edit), but a
non-editable install only contains the ``mmrl`` package, so ``build_py`` copies them to
``mmrl/presets/`` in the build tree. ``mmrl.config`` looks in the checkout first, then there.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithPresets(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).parent
        for kind in ("envs", "agents"):
            target = Path(self.build_lib) / "mmrl" / "presets" / kind
            target.mkdir(parents=True, exist_ok=True)
            for preset in sorted((root / kind).glob("*.yaml")):
                shutil.copy2(preset, target / preset.name)


setup(cmdclass={"build_py": BuildPyWithPresets})
