import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmrl.cli import COMMANDS, build_parser, main


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "mmrl.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_unknown_command_exits_2_with_one_line():
    result = _run("frobnicate")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_unknown_option_exits_2_with_one_line():
    result = _run("envs", "--colour")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--colour" in result.stderr


def test_envs_lists_presets_without_constructing(capsys):
    assert main(["envs", "--no-spaces"]) == 0
    out = capsys.readouterr().out
    assert "driving" in out and "ppo-attention" in out and "babyai-gotoredball" in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2


def test_demo_unknown_preset_is_one_line_error(capsys):
    assert main(["demo", "--env", "nowhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown env preset 'nowhere'" in err


def test_console_script_help():
    script = Path(sys.executable).parent / "mmrl"
    if not script.exists():
        pytest.skip("console script not installed next to this interpreter")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "envs" in result.stdout


def test_envs_lists_v0_ids_without_gymnasium_noise():
    """`mmrl envs` says which ids are superseded itself; Gymnasium's warning is not printed."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "mmrl", "envs"], capture_output=True, text=True, check=True
    )
    assert "mmrl/Navigation-v0" in out.stdout and "superseded by v1" in out.stdout
    assert "out of date" not in out.stderr + out.stdout


def test_an_unexpected_exception_is_one_line_unless_debugging(monkeypatch, capsys):
    """Issue 15: a bug below the CLI reached the user as a traceback; it is one line with
    status 1 (bad input is 2), and MMRL_DEBUG=1 lets it through for debugging."""
    import mmrl.cli as cli

    def broken(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(cli, "run_envs", broken)
    monkeypatch.delenv("MMRL_DEBUG", raising=False)
    assert main(["envs"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "mmrl envs: unexpected error, probably a bug (ZeroDivisionError: division by zero "
        "second line); MMRL_DEBUG=1 shows the traceback\n"
    )
    monkeypatch.setenv("MMRL_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["envs"])


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_help_shows_defaults_and_a_runnable_example(name, capsys):
    import re
    import shlex

    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert re.search(r"\(default:? [^)]+\)", text.replace("\n", " ")), text
    lines = text.rstrip().splitlines()
    assert lines[-2] == "example:" and lines[-1].startswith(f"  mmrl {name} "), lines[-2:]
    # The example parses: options and choices it uses exist.
    args = build_parser().parse_args(shlex.split(lines[-1])[1:])
    assert args.command == name


def test_help_shows_option_defaults_without_repeating_ones_the_text_gives(capsys):
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "frames per second (default: 15)" in text
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default driving)" in text and "(default driving) (default:" not in text
    assert "--steps STEPS total environment steps --seed" in text  # None: the preset decides


def _decoded_png(path: Path) -> tuple[int, ...]:
    import cv2

    image = cv2.imread(str(path))
    assert image is not None, f"{path} does not decode"
    return image.shape


def test_demo_on_the_highway_adapter_preset_acts_randomly(tmp_path, capsys):
    """Issue 16: adapter presets have no scripted expert; the demo acts randomly there."""
    pytest.importorskip("highway_env")
    out = tmp_path / "hw.png"
    assert main(["demo", "--env", "highway-fast", "--steps", "3", "--out", str(out)]) == 0
    height, width, channels = _decoded_png(out)
    assert height > 0 and width > 0 and channels == 3
    assert "policy: random" in capsys.readouterr().out


def test_demo_on_a_babyai_preset_writes_a_png(tmp_path, capsys):
    pytest.importorskip("minigrid")
    out = tmp_path / "baby.png"
    assert main(["demo", "--env", "babyai-gotoredball", "--steps", "3", "--out", str(out)]) == 0
    assert min(_decoded_png(out)) > 0
    printed = capsys.readouterr().out
    assert "policy: random" in printed and "instruction: go to the red ball" in printed


def test_demo_random_policy_on_driving(tmp_path, capsys):
    out = tmp_path / "drive.png"
    argv = ["demo", "--env", "driving", "--policy", "random", "--steps", "4", "--out", str(out)]
    assert main(argv) == 0
    assert min(_decoded_png(out)) > 0
    # At most 4 steps: a random lane change off the road's edge ends a Driving-v1 episode.
    assert re.search(r"policy: random, [1-4] steps", capsys.readouterr().out)


def test_demo_expert_is_the_default_where_the_env_has_one(tmp_path, capsys):
    out = tmp_path / "drive.png"
    assert main(["demo", "--steps", "2", "--out", str(out)]) == 0
    assert "policy: expert, 2 steps" in capsys.readouterr().out


def test_demo_expert_on_an_adapter_preset_is_one_line_error(tmp_path, capsys):
    pytest.importorskip("highway_env")
    out = tmp_path / "x.png"
    argv = ["demo", "--env", "highway-fast", "--policy", "expert", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no batched scripted expert" in err
    assert not out.exists()


def test_demo_missing_policy_file_is_one_line_error(tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["demo", "--policy", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such run folder or model file" in err
    assert not out.exists()
