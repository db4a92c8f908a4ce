"""``import mmrl``, the envs and ``mmrl --help`` load neither torch nor Stable-Baselines3.

torch alone costs ~2.4 s to import; Gymnasium users (``gym.make``/``gym.make_vec``) and the
command line's help need neither (issue 17). Each check runs in a fresh interpreter, since
this test process has long imported both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "stable_baselines3")
HELP = "from mmrl.cli import main\ntry:\n    main({args})\nexcept SystemExit:\n    pass"


def heavy_modules_after(code: str) -> list[str]:
    """The heavy modules loaded by running ``code`` in a fresh interpreter."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "code",
    [
        "import mmrl",
        "import gymnasium as gym, mmrl\ngym.make('mmrl/Driving-v1').reset(seed=0)",
        "import gymnasium as gym, mmrl\nv = gym.make_vec('mmrl/Navigation-v1', num_envs=2)\n"
        "v.reset(seed=0); v.step(v.action_space.sample())",
        HELP.format(args="['--help']"),
        HELP.format(args="['train', '--help']"),
    ],
    ids=["import", "gym.make", "gym.make_vec", "mmrl --help", "mmrl train --help"],
)
def test_light_paths_do_not_import_torch_or_sb3(code):
    assert heavy_modules_after(code) == []


def test_the_heavy_parts_still_load_on_first_use():
    code = "import mmrl\nmmrl.MultimodalExtractor\nfrom mmrl.envs import BatchedVecEnv"
    assert heavy_modules_after(code) == list(HEAVY)
