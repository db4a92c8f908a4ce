import subprocess
import sys
from importlib.metadata import entry_points


def test_module_prefixed_id_makes_without_importing_mmrl():
    code = (
        "import sys, gymnasium as gym\n"
        "assert 'mmrl' not in sys.modules\n"
        "env = gym.make('mmrl:mmrl/Driving-v1')\n"
        "print(env.spec.id, env.spec.max_episode_steps)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["mmrl/Driving-v1", "300"]


def test_gymnasium_entry_point_is_declared():
    eps = entry_points(group="gymnasium.envs")
    assert any(ep.value == "mmrl.registration:register_envs" for ep in eps)
