"""The scripts' CPU threads: the default policy per workload, --threads, OMP_NUM_THREADS, what
config.json and the first line record, and that importing a script (to copy a penalty) changes
no torch setting. Nothing here is timed: the measurements behind the policy are
benchmarks/speed.py's (benchmarks/README.md, "CPU threads")."""
import importlib
import json
import os
import subprocess
import sys

import pytest
import torch

import harness
from test_scripts import ROOT, SCRIPTS, quick, run_dirs, run_main


@pytest.fixture
def threads_restored():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def parsed(script, argv):
    return importlib.import_module(script).parse(argv)[0]  # main's first call


@pytest.mark.parametrize("flags, cores, want", [
    (["--dim", "128"], 16, 1), (["--dim", "512"], 16, 8), (["--dim", "512"], 2, 1),
    (["--data", "digits"], 2, 1), (["--data", "digits"], 6, 3), (["--data", "mnist"], 1, 1),
    (["--data", "8gaussians", "--dim", "64"], 64, 1)])
def test_the_default_policy_per_workload(flags, cores, want, monkeypatch, threads_restored):
    """One thread for the toys' small MLPs; half the cores for the larger models; and it is
    what a run sets where neither --threads nor OMP_NUM_THREADS says otherwise."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    torch.set_num_threads(3)
    args = parsed("wgan_gp", flags)
    n, why = harness.default_threads(args, torch.device("cpu"))
    assert n == want and why and torch.get_num_threads() == want
    assert harness.threads_from(args) == "the default policy"
    assert harness.default_threads(args, torch.device("cuda"))[0] == 1


@pytest.mark.parametrize("env", [None, "2"])
def test_threads_flag_wins_and_the_environment_comes_next(env, monkeypatch, threads_restored):
    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    torch.set_num_threads(3)  # what torch read from the environment at its start, say
    args = parsed("slogan", ["--threads", "2"])
    assert torch.get_num_threads() == 2 and harness.threads_from(args) == "--threads"
    torch.set_num_threads(3)
    args = parsed("slogan", [])
    if env is None:
        assert harness.threads_from(args) == "the default policy"
        assert torch.get_num_threads() == 1  # the swiss roll at --dim 128
    else:  # the environment's number is torch's own at start: kept as it is
        assert harness.threads_from(args) == "OMP_NUM_THREADS" and torch.get_num_threads() == 3


def test_a_run_records_the_threads_flag_and_resumes_with_another(tmp_path, capsys,
                                                                  threads_restored):
    out = str(tmp_path / "runs")
    code, cap = run_main("wgan_gp", quick("wgan_gp") + [
        "--iters", "2", "--eval-every", "2", "--out", out, "--threads", "2"], capsys)
    assert code == 0, cap.err
    assert "2 CPU threads (--threads)" in cap.out.splitlines()[0]
    (d,) = run_dirs(out)
    cfg = json.load(open(os.path.join(d, "config.json")))
    assert cfg["versions"]["cpu_threads"] == 2 and cfg["versions"]["cpu_threads_from"] == \
        "--threads" and cfg["args"]["threads"] == 2
    code, cap = run_main("wgan_gp", ["--resume", d, "--iters", "4", "--threads", "1"], capsys)
    assert code == 0, cap.err  # a running flag: --resume may change it
    assert "1 CPU thread (--threads)" in cap.out.splitlines()[0]


def test_importing_a_script_changes_no_torch_setting():
    """A user who imports a script to copy its penalty keeps torch's threads as they were."""
    code = ("import torch; torch.set_num_threads(2); n = torch.get_num_threads(); "
            f"import {', '.join(SCRIPTS)}; import harness, common; "
            "assert torch.get_num_threads() == n, torch.get_num_threads()")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
