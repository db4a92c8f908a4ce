"""Smoke runs of the benchmark scripts at tiny sizes, so they cannot rot unnoticed."""

import re


def test_gpu_check_cpu_side_runs(capsys, load_script):
    load_script("gpu_check").main(
        ["--steps", "256", "--cpu-only", "--n-envs", "4", "--workers", "2"]
    )
    out = capsys.readouterr().out
    assert "PPO ppo-concat on driving, " in out and "env-steps/s (learner " in out
    assert "extractor fwd+bwd batch 256" in out


def test_bench_pretrain_runs_and_reports_each_device(capsys, tmp_path, monkeypatch, load_script):
    # The script points MINARI_DATASETS_PATH at its own temporary folder; restore it after.
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    argv = ["--envs", "navigation", "--n-envs", "4", "--episodes", "4", "--updates", "1",
            "--threads", "1", "--devices", "cpu", "--json", str(tmp_path / "b.json")]  # fmt: skip
    assert load_script("bench_pretrain").main(argv) == 0
    out = capsys.readouterr().out
    assert "| navigation | cpu | 1 |" in out


def test_bench_vector_api_runs_every_case(capsys, load_script):
    argv = ["--envs", "mmrl/Navigation-v1", "--num-envs", "2", "--seconds", "0.2", "--rounds", "1"]
    assert load_script("bench_vector_api").main(argv) == 0
    out = capsys.readouterr().out
    for case in ("vector_entry_point ", "make_vec_env", "sync", "async"):
        assert f"N=2   {case}" in out
    assert len(re.findall(r"ratio +\d+\.\d+x", out)) == 3  # one per peer
    assert load_script("bench_vector_api").main(["--envs", "mmrl/Nope-v0"]) == 2


def test_bench_workers_reports_speed_up_and_cpu(capsys, load_script):
    argv = ["--envs", "mmrl/Driving-v1", "--n-envs", "4", "--seconds", "0.2", "--no-peer"]
    assert load_script("bench_workers").main(argv) == 0
    out = capsys.readouterr().out
    for api in ("sb3", "gymnasium"):  # both front ends over the pool, by default
        assert re.search(
            rf"{api} +n=4 one process: +\d+\.\d env-steps/s, CPU \d+\.\d\d ms/step", out
        )
    workers = r"n=4 K=2 workers: .*speed-up \d+\.\d\dx .*workers \[\d+\.\d\d, \d+\.\d\d\]"
    assert len(re.findall(workers, out)) == 2
    assert len(re.findall(r"projected speed-up on 2 idle cores \d+\.\d\dx", out)) == 2
    assert load_script("bench_workers").main(["--workers", "1", "--no-peer"]) == 2


def test_bench_camera_frames_reports_each_setting_against_one_frame(capsys, load_script):
    argv = ["--envs", "mmrl/Navigation-v1", "--frames", "1", "3", "--n-envs", "2",
            "--seconds", "0.1", "--rounds", "1"]  # fmt: skip
    assert load_script("bench_camera_frames").main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"camera_frames=1: .* env-steps/s \[ *[\d,]+ CPU\]  cost x1\.00", out)
    assert re.search(r"camera_frames=3: .* cost x\d+\.\d\d", out)
    assert "camera_frames=4" not in out  # --frames replaces the default
