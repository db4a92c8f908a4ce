import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmrl.config import (
    AgentConfig,
    ConfigError,
    EnvConfig,
    RunConfig,
    available_presets,
    find_preset,
    from_dict,
    load_agent_preset,
    load_env_preset,
    parse_override,
    resolve_run_config,
    to_dict,
    validate_run_config,
)
from mmrl.testing import BUILTIN_FUSIONS

FUSIONS = list(BUILTIN_FUSIONS)


def test_required_presets_exist_and_validate():
    envs = available_presets("envs")
    for name in ["driving", "driving-continuous", "navigation", "babyai-gotoredball"]:
        assert name in envs
    assert all(isinstance(load_env_preset(name), EnvConfig) for name in envs)
    assert load_env_preset("driving-follow").kwargs["tasks"] == ["follow"]
    assert load_env_preset("driving-overtake").kwargs["tasks"] == ["overtake"]
    agents = available_presets("agents")
    for fusion in FUSIONS:
        agent = load_agent_preset(f"ppo-{fusion}")
        assert agent.extractor.fusion == fusion
    assert all(isinstance(load_agent_preset(a), AgentConfig) for a in agents)


def test_unknown_key_names_key_and_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo: ppo\nppo:\n  learnin_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.ppo: unknown key 'learnin_rate'"):
        load_agent_preset(str(bad))


def test_wrong_type_names_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ppo:\n  n_steps: many\n")
    with pytest.raises(ConfigError, match=r"ppo.n_steps: expected an integer"):
        load_agent_preset(str(bad))


def test_unknown_preset_lists_available():
    with pytest.raises(ConfigError, match=r"unknown env preset 'drivng'; available: .*driving"):
        find_preset("envs", "drivng")


def test_overrides_and_env_overrides_apply(tmp_path):
    agent = tmp_path / "agent.yaml"
    agent.write_text(
        yaml.safe_dump(
            {
                "extractor": {"fusion": "mean"},
                "env_overrides": {"driving": {"ppo": {"n_steps": 32}}},
            }
        )
    )
    cfg = resolve_run_config(
        "driving", str(agent), ["agent.ppo.learning_rate=1e-4", "env.n_envs=4"], steps=1000
    )
    assert cfg.agent.ppo.n_steps == 32
    assert cfg.agent.ppo.learning_rate == pytest.approx(1e-4)
    assert cfg.env.n_envs == 4 and cfg.steps == 1000
    # The resolved config round-trips through YAML.
    again = from_dict(RunConfig, yaml.safe_load(yaml.safe_dump(to_dict(cfg))))
    assert dataclasses.asdict(again) == dataclasses.asdict(cfg)


@pytest.mark.parametrize(
    "item, match",
    [("agent.ppo.n_steps", "KEY=VALUE"), ("agent..x=1", "empty key"),
     ("agent.ppo.nsteps=3", "unknown key 'nsteps'"), ("steps=[1", "cannot parse"),
     ("device=tpu", "device must be")],
)  # fmt: skip
def test_bad_overrides_name_the_key(item, match):
    with pytest.raises(ConfigError, match=match):
        resolve_run_config("driving", "ppo-concat", [item])


def test_parse_override_reads_yaml_values():
    assert parse_override("a.b=[64, 64]") == (["a", "b"], [64, 64])
    assert parse_override("x=true") == (["x"], True)


@pytest.mark.slow
def test_presets_resolve_after_non_editable_install(tmp_path):
    """Builds a wheel and checks the presets are inside it (non-editable installs)."""
    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    shutil.copytree(root, src, ignore=shutil.ignore_patterns(".git", ".venv", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
         str(tmp_path / "dist"), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    import zipfile

    (wheel,) = (tmp_path / "dist").glob("mmrl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mmrl/presets/envs/driving.yaml" in names
    assert "mmrl/presets/agents/ppo-attention.yaml" in names


def test_stopping_rule_is_validated():
    config = resolve_run_config("driving", "ppo-concat", ["stop_success=0.8", "stop_split=test"])
    validate_run_config(config)  # Driving has held-out test instructions
    config.env.eval_kwargs = {}
    with pytest.raises(ConfigError, match="needs an environment with a held-out test split"):
        validate_run_config(config)
    with pytest.raises(ConfigError, match="stop_success must be in"):
        resolve_run_config("driving", "ppo-concat", ["stop_success=2"])
    with pytest.raises(ConfigError, match="needs periodic evaluation"):
        resolve_run_config("driving", "ppo-concat", ["stop_success=0.5", "eval_freq=0"])


def test_with_kwargs_sets_training_and_evaluation_kwargs_and_leaves_the_preset():
    preset = EnvConfig(
        kwargs={"instruction_split": "train"}, eval_kwargs={"instruction_split": "test"}
    )
    only = preset.with_kwargs(tasks=["follow"])
    assert only.kwargs == {"instruction_split": "train", "tasks": ["follow"]}
    assert only.eval_kwargs == {"instruction_split": "test", "tasks": ["follow"]}
    assert preset.kwargs == {"instruction_split": "train"} and "tasks" not in preset.eval_kwargs
    assert (only.env_id, only.n_envs) == (preset.env_id, preset.n_envs)
