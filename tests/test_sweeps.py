"""The sweeps (benchmarks/compare.py, open_questions.py, through benchmarks/sweep.py): a table
describes only runs that ran what it says, no failure, signal or odd input breaks a sweep, and
every input is checked before anything runs."""
import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from test_scripts import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import compare  # noqa: E402
import open_questions  # noqa: E402
import sweep  # noqa: E402
import harness  # noqa: E402

ONE = ["--only", "c-transform", "--data", "swissroll", "--seeds", "0", "--no-fixed",
       "--iters", "3"]


def planned(argv):
    """compare's planned runs and their identities for argv."""
    a = compare.parse_args(argv)
    runs = compare.plan(a)
    return runs, sweep.identities(runs)


def fake_run(out, key, want, name, status="finished", final=None, metrics=None):
    """A run folder as a script leaves it: config.json with its arguments, summary.json."""
    d = os.path.join(out, "runs", key, name)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as fh:
        json.dump({"args": {**want, "out": "x", "resume": None, "eval_every": 1,
                            "no_cuda_graph": False},
                   "versions": {"device": "cpu", "device_name": "x86_64", "torch": "2.13.0",
                                "cpu_threads": 1}}, fh)
    final = {"iter": want["iters"], "w1": 0.2, "w1_floor": 0.1, "critic_estimate": 0.15,
             "nn_ratio": 1.0, **(final or {})}
    with open(os.path.join(d, "summary.json"), "w") as fh:
        json.dump({"status": status, "final": final, "wall_time_s": 1.0, "run_dir": d}, fh)
    with open(os.path.join(d, "metrics.csv"), "w") as fh:
        fh.write(metrics or "iter,ms_per_iter\n0,\n3,2.0\n")
    return d


def one_line_exit_2(capsys, call, says):
    with pytest.raises(SystemExit) as e:
        call()
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and says in err, err
    return err


# ------------------------------------------------------------------- D1: a run is what it ran
def test_a_finished_run_with_other_settings_is_not_in_the_table(tmp_path, capsys):
    out = str(tmp_path / "cmp")
    runs, wants = planned(ONE + ["--out", out])
    (key,) = wants
    other = dict(wants[key], iters=20, dim=16)
    fake_run(out, key, other, "old", final={"w1": 9.0})  # what an earlier, other sweep left
    assert compare.main(ONE + ["--out", out, "--no-run"]) == 0
    said = capsys.readouterr().out
    assert f"other settings: {key}" in said and "--dim 16 (asked 128)" in said
    assert "--iters 20 (asked 3)" in said and "made again beside it" in said
    md = open(os.path.join(out, "results.md")).read()
    assert "| c-transform |" not in md and "Runs done: 0 of 1" in md
    fake_run(out, key, wants[key], "new", final={"w1": 0.3})  # the run this sweep plans
    assert compare.main(ONE + ["--out", out, "--no-run"]) == 0
    (row,) = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
    assert row["config"] == "c-transform" and float(row["w1_over_floor_median"]) == \
        pytest.approx(3.0)  # the new run's 0.3 / 0.1, not the old one's 9.0 / 0.1
    assert "other settings" not in capsys.readouterr().out  # the matching run is used


def test_refuse_mismatch_stops_before_anything_runs(tmp_path, capsys):
    out = str(tmp_path / "cmp")
    runs, wants = planned(ONE + ["--out", out])
    (key,) = wants
    fake_run(out, key, dict(wants[key], iters=20), "old")
    one_line_exit_2(capsys, lambda: compare.main(ONE + ["--out", out, "--refuse-mismatch"]),
                    "ran other settings than this sweep asks")
    assert len(os.listdir(os.path.join(out, "runs", key))) == 1  # nothing ran
    # the refusal let go of the folder's lock: the next sweep may take it at once
    harness.hold_lock(os.path.join(out, ".sweep.lock"), "still held").close()


def test_identity_is_what_the_script_resolves():
    """Flag order and defaults written out do not make another run; a value does."""
    a = sweep.resolved_args("dragan", ["--loss", "wgan", "--lambda", "10"])
    b = sweep.resolved_args("dragan", ["--lambda", "10.0", "--loss", "wgan", "--n-critic", "5",
                                       "--eval-every", "7"])
    assert a == b and a["iters"] == 5000 and "eval_every" not in a
    assert sweep.resolved_args("wgan_gp", ["--data", "digits"])["iters"] == 2000
    assert sweep.resolved_args("wgan_gp", ["--lambda-from", "1"])["lambda_ramp"] == 5000
    assert sweep.differences(a, dict(a, dim=8)) == "--dim 8 (asked 128)"
    with pytest.raises(ValueError, match="--lambda"):
        sweep.resolved_args("slogan", ["--lambda", "-1"])


# ------------------------------------------------------ D2, D3, D15: odd runs break no table
def test_a_diverged_fixed_run_with_no_estimate_is_a_row(tmp_path, capsys):
    out = str(tmp_path / "cmp")
    argv = ["--only", "c-transform", "--data", "swissroll", "--seeds", "0", "--iters", "3"]
    runs, wants = planned(argv + ["--out", out])
    fixed_key = next(k for k in wants if k.startswith("fixed-"))
    fake_run(out, fixed_key, wants[fixed_key], "r", status="diverged",
             final={"critic_estimate": None, "w1": None})
    for _ in range(2):  # and again: nothing is left behind that breaks the next call
        assert compare.main(argv + ["--out", out, "--no-run"]) == 0
    assert "| c-transform | – | – | – |" in open(os.path.join(out, "fixed.md")).read()


def test_open_questions_takes_a_run_that_stopped_after_one_row(tmp_path, capsys):
    out = str(tmp_path / "q")
    argv = ["--only", "c-transform", "--seeds", "0", "--iters-scale", "0.004"]
    a = open_questions.parse_args(argv + ["--out", out])
    runs = open_questions.plan(a)
    wants = sweep.identities(runs)
    (key,) = wants
    fake_run(out, key, wants[key], "r", status="diverged", final={"w1": None},
             metrics="iter,ms_per_iter\n0,\n")
    assert open_questions.main(argv + ["--out", out, "--no-run"]) == 0
    md = open(os.path.join(out, "questions.md")).read()
    assert "| c-transform | Q1 | 1 |" in md and "(1 diverged)" in md


def test_foreign_files_under_runs_are_counted_and_ignored(tmp_path, capsys):
    out = str(tmp_path / "cmp")
    runs, wants = planned(ONE + ["--out", out])
    (key,) = wants
    for name, config, summary in (("a", "{not json", None), ("b", "[1, 2]", '{"status": 3}'),
                                  ("c", None, '{"status": "finished"}')):
        d = os.path.join(out, "runs", key, name)
        os.makedirs(d)
        for f, text in (("config.json", config), ("summary.json", summary)):
            if text is not None:
                open(os.path.join(d, f), "w").write(text)
    fake_run(out, key, wants[key], "z", final={"w1": 0.3})
    assert compare.main(ONE + ["--out", out, "--no-run"]) == 0
    said = capsys.readouterr().out
    assert "2 file(s)" in said and "ignored" in said and "Runs done: 1 of 1" in open(
        os.path.join(out, "results.md")).read()


# --------------------------------------------------------------- D5, D13, D14, D18: input
@pytest.mark.parametrize("argv,says", [
    (["--device", "cuda:7"], "--device"), (["--device", "bogus"], "--device"),
    (["--only", "slogn"], "matches no configuration; the names: dragan-paper"),
    (["--only", "slogan-allpairs"], "no run planned"),
    (["--extra", "--eval-every", "10", "--out", "X"], "put --extra last"),
    (["--extra", "--seed", "3"], "--extra may not set --seed"),
    (["--extra", "--lambda", "-1"], "would be refused"),
    (["--out", "/proc/no-such-dir/x"], "cannot write there"),
])
def test_compare_checks_its_input_before_anything_runs(argv, says, tmp_path, capsys):
    base = ["--data", "swissroll", "--seeds", "0", "--no-fixed", "--iters", "3"]
    if "--only" not in argv:
        base = ["--only", "c-transform"] + base
    if "--out" not in argv:
        base += ["--out", str(tmp_path / "cmp")]
    one_line_exit_2(capsys, lambda: compare.main(base + argv), says)
    assert not os.path.exists(tmp_path / "cmp" / "runs") or not os.listdir(tmp_path / "cmp"
                                                                            / "runs")


def test_the_device_is_only_checked_when_runs_run(tmp_path, capsys):
    """--no-run writes tables from runs made elsewhere (on a GPU, say): no device needed."""
    assert compare.main(ONE + ["--device", "cuda", "--no-run", "--out", str(tmp_path)]) == 0
    one_line_exit_2(capsys, lambda: compare.main(ONE + ["--device", "cuda", "--out",
                                                        str(tmp_path)]), "CUDA is not available")


def test_open_questions_checks_its_input(tmp_path, capsys):
    for argv, says in ((["--only", "nope"], "matches no configuration"),
                       (["--device", "cuda:7"], "--device"),
                       (["--extra", "--jobs", "2"], "put --extra last")):
        one_line_exit_2(capsys, lambda: open_questions.main(
            ["--seeds", "0", "--out", str(tmp_path / "q")] + argv), says)


def test_an_unrelated_results_md_is_left_alone(tmp_path, capsys):
    (tmp_path / "results.md").write_text("# my notes\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    one_line_exit_2(capsys, lambda: compare.main(ONE + ["--out", str(tmp_path)]),
                    "holds a results.md that compare.py did not write")
    assert (tmp_path / "results.md").read_text().startswith("# my notes")


def test_batch_w1_refuses_an_unwritable_out_before_computing(capsys):
    import batch_w1
    t = time.time()
    one_line_exit_2(capsys, lambda: batch_w1.main(["--out", "/proc/no-such-dir/x"]),
                    "cannot write there")
    assert time.time() - t < 5


# ------------------------------------------------------------------- D12: one sweep per --out
def test_a_second_sweep_into_the_same_out_is_refused(tmp_path, capsys):
    import fcntl
    out = tmp_path / "cmp"
    out.mkdir()
    with open(out / ".sweep.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        one_line_exit_2(capsys, lambda: compare.main(ONE + ["--out", str(out)]),
                        "another sweep is writing into")


# ------------------------------------------------------------- D10, D11: signals and resume
@pytest.mark.parametrize("signum", [signal.SIGTERM])  # the Runner treats SIGINT the same way
def test_a_signal_to_the_sweep_reaches_its_runs_and_a_rerun_resumes(signum, tmp_path):
    """The signal goes to compare alone (as `kill` or a scheduler sends it): the running run
    gets it, writes its checkpoint; compare writes its tables and exits 128 + signal without a
    traceback. The same command again resumes the run from its checkpoint (SIGTERM case)."""
    out = str(tmp_path / "cmp")
    argv = [sys.executable, os.path.join(ROOT, "benchmarks", "compare.py"), "--only",
            "c-transform", "--data", "25gaussians", "--mixture-seeds", "0", "--no-fixed", "--iters",
            "1500", "--out", out, "--extra", "--dim", "8", "--batch", "16", "--n-critic", "1",
            "--eval-every", "1500"]  # 25gaussians: the toys' cheapest evaluation
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    deadline = time.time() + 120
    while not glob.glob(os.path.join(out, "runs", "*", "*", "checkpoint.pt")):  # it 0 is done
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    time.sleep(1.0)  # past its first evaluation's writing, into its iterations (~3 s of them)
    proc.send_signal(signum)
    said, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, said + err
    assert "Traceback" not in err and "interrupted" in said
    (run_dir,) = glob.glob(os.path.join(out, "runs", "*", "*", "summary.json"))
    summ = json.load(open(run_dir))
    assert summ["status"] == "interrupted" and 0 < summ["iteration"] < 1500
    assert os.path.exists(os.path.join(out, "results.md"))
    if signum != signal.SIGTERM:
        return
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resumed: exit 0" in r.stdout
    assert len(glob.glob(os.path.join(out, "runs", "*", "*", "summary.json"))) == 1
    summ = json.load(open(run_dir))
    assert summ["status"] == "finished" and summ["iteration"] == 1500
    assert "| c-transform | 25gaussians | 1 |" in open(os.path.join(out, "results.md")).read()


def test_the_runner_passes_ctrl_c_to_its_runs_and_a_second_one_kills_them():
    """What the process test above shows for SIGTERM, for SIGINT, on the Runner's handler
    itself: the first signal goes to every running child as it is, the second kills them."""
    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
                for _ in range(2)]
    runner = sweep.Runner()
    runner.children.update(children)
    runner._handle(signal.SIGINT, None)
    # each got SIGINT: a KeyboardInterrupt (1), or the signal itself if Python was still starting
    assert all(c.wait(timeout=30) in (1, -signal.SIGINT) for c in children)
    assert runner.signum == signal.SIGINT
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal("
                                 "signal.SIGINT, signal.SIG_IGN); time.sleep(60)"])
    time.sleep(0.5)
    runner.children = {stubborn}
    runner._handle(signal.SIGINT, None)  # the second: at once
    assert stubborn.wait(timeout=30) == -signal.SIGKILL


def test_a_repeated_sigterm_is_the_same_request_and_ctrl_c_after_it_is_at_once():
    """`timeout` sends SIGTERM to a sweep and again to its process group: the second copy must
    not turn "stop and keep the checkpoints" into "kill them now". A Ctrl-C after the first
    signal still means at once."""
    said = []
    s = harness.Signals(lambda n: said.append(("first", n)), lambda n: said.append(("again", n)))
    s.handle(signal.SIGTERM, None)
    s.handle(signal.SIGTERM, None)
    assert said == [("first", signal.SIGTERM)] and s.signum == signal.SIGTERM and not s.at_once
    s.handle(signal.SIGINT, None)
    assert said[-1] == ("again", signal.SIGINT) and s.at_once and s.signum == signal.SIGTERM
    child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal("
                              "signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
                              "time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"ready\n"
        runner = sweep.Runner()
        runner.children.add(child)
        runner._handle(signal.SIGTERM, None)
        runner._handle(signal.SIGTERM, None)  # timeout's second copy: no SIGKILL
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=1)
    finally:
        child.kill()
        child.wait()


def test_a_reader_that_leaves_does_not_stop_the_sweep(tmp_path):
    """`compare.py ... | head -1`: the run finishes and the tables are written, exit 0."""
    out = str(tmp_path / "cmp")
    argv = [sys.executable, os.path.join(ROOT, "benchmarks", "compare.py"), *ONE, "--out", out,
            "--extra", "--dim", "8", "--batch", "16", "--n-critic", "1"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert b"runs" in proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=240) == 0 and "Traceback" not in err, err
    assert "| c-transform |" in open(os.path.join(out, "results.md")).read()


def test_a_run_whose_capture_failed_is_resumed_without_the_graph(tmp_path, capsys, monkeypatch):
    """What the run's own message says to do: --resume it with --no-cuda-graph."""
    import harness
    import wgan_ct

    class StopsAtOnce(harness.StopSignal):  # the run stops after its first evaluation
        def __init__(self):
            super().__init__()
            self.signum = signal.SIGINT

    out = str(tmp_path / "cmp")
    argv = ONE + ["--out", out, "--extra", "--dim", "8", "--batch", "16", "--n-critic", "1"]
    a = compare.parse_args(argv)
    (run,) = compare.plan(a)
    want = sweep.resolved_args(run[2], run[3])
    folder = os.path.join(out, "runs", run[0])
    with monkeypatch.context() as m:
        m.setattr(harness, "StopSignal", StopsAtOnce)
        assert wgan_ct.main(run[3] + ["--out", folder]) == 130  # a run as the sweep makes it
    (summary,) = glob.glob(os.path.join(folder, "*", "summary.json"))
    s = json.load(open(summary))
    json.dump({**s, "status": "capture_failed"}, open(summary, "w"))
    with sweep.Runner() as runner:
        key, what = runner.run(run, out, want)
    assert what.startswith("resumed: exit 0"), what
    (resume_cfg,) = glob.glob(os.path.join(os.path.dirname(summary), "config-resume*.json"))
    assert "--no-cuda-graph" in json.load(open(resume_cfg))["argv"]
    assert json.load(open(summary))["status"] == "finished"


def test_a_run_killed_between_its_last_checkpoint_and_its_summary_is_completed(tmp_path,
                                                                              capsys):
    """The sweep resumes it (no --iters: it is at its end already), the script completes it
    from its checkpoint, and the rerun says so; before, every later call said "resumes" and
    failed with exit 2 again."""
    import wgan_ct
    out = str(tmp_path / "cmp")
    argv = ONE + ["--out", out, "--extra", "--dim", "8", "--batch", "16", "--n-critic", "1"]
    (run,) = compare.plan(compare.parse_args(argv))
    folder = os.path.join(out, "runs", run[0])
    assert wgan_ct.main(run[3] + ["--out", folder]) == 0
    (summary,) = glob.glob(os.path.join(folder, "*", "summary.json"))
    os.remove(summary)
    assert compare.main(argv) == 0
    said = capsys.readouterr().out
    assert "resumed: exit 0" in said and json.load(open(summary))["status"] == "finished"
    assert "| c-transform | swissroll | 1 |" in open(os.path.join(out, "results.md")).read()


def test_a_run_that_diverged_without_a_final_row_is_counted(tmp_path, capsys):
    out = str(tmp_path / "cmp")
    argv = ["--only", "c-transform", "--data", "swissroll", "--seeds", "0", "1", "--no-fixed",
            "--iters", "3", "--out", out]
    runs, wants = planned(argv)
    for i, key in enumerate(wants):
        d = fake_run(out, key, wants[key], "r", status="diverged")
        if i == 0:  # an older run's summary: diverged before its first row
            s = json.load(open(os.path.join(d, "summary.json")))
            json.dump({**s, "final": None}, open(os.path.join(d, "summary.json"), "w"))
    assert compare.main(argv + ["--no-run"]) == 0
    assert "0% (2 diverged)" in open(os.path.join(out, "results.md")).read()


@pytest.mark.parametrize("damage", [{"wall_time_s": "abc"}, {"final": {"w1": "abc"}},
                                    {"final": [1, 2]}, {"status": 7}])
def test_a_tampered_summary_is_left_out_and_the_tables_are_written(damage, tmp_path, capsys):
    out = str(tmp_path / "cmp")
    runs, wants = planned(ONE + ["--out", out])
    (key,) = wants
    d = fake_run(out, key, wants[key], "r")
    s = json.load(open(os.path.join(d, "summary.json")))
    json.dump({**s, **damage}, open(os.path.join(d, "summary.json"), "w"))
    assert compare.main(ONE + ["--out", out, "--no-run"]) == 0
    said = capsys.readouterr().out
    assert "1 file(s)" in said and "damaged: ignored" in said
    assert "Runs done: 0 of 1" in open(os.path.join(out, "results.md")).read()


def test_a_checkpoint_imports_only_the_script_its_run_belongs_to(tmp_path, monkeypatch):
    """A checkpoint that names another module ("this" prints the Zen of Python), or another
    method script: nothing is imported, the figure leaves it out."""
    import importlib
    import torch
    imported = []
    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: imported.append(name) or real(name, *a))
    for name in ("this", "wgan_div"):
        torch.save({"script": name, "args": {}, "D": {}, "G": {}},
                   str(tmp_path / "checkpoint.pt"))
        assert sweep.load_final({"folder": str(tmp_path)}, "wgan_sn") is None
    assert sweep.load_final({"folder": str(tmp_path)}, "this") is None  # no method script
    assert "this" not in imported and "wgan_div" not in imported


def test_after_an_interruption_the_line_says_what_resumes_and_what_starts_again(tmp_path):
    out = str(tmp_path / "cmp")
    runs, wants = planned(["--only", "c-transform", "--data", "swissroll", "--seeds", "0", "1",
                           "2", "--no-fixed", "--iters", "3", "--out", out])
    keys = list(wants)
    fake_run(out, keys[0], wants[keys[0]], "r")  # ended
    d = fake_run(out, keys[1], wants[keys[1]], "r")  # interrupted, with its checkpoint
    os.remove(os.path.join(d, "summary.json"))
    open(os.path.join(d, "checkpoint.pt"), "wb").write(b"x")
    ended = {k: sweep.finished_summary(os.path.join(out, "runs", k), wants[k]) for k in keys}
    assert sweep.after_interruption(runs, wants, out, ended) == (
        "1 interrupted run(s) have their checkpoints and the same command resumes them; 1 "
        "run(s) have none (not started, or stopped at once) and the same command runs them "
        "from the start")


def test_a_kept_table_says_why_when_nothing_is_missing(tmp_path, capsys):
    """A table of a larger sweep in --out is kept when this call's finished runs give fewer
    rows; the line says so instead of listing an empty 'missing: '."""
    out = str(tmp_path / "cmp")
    runs, wants = planned(ONE + ["--out", out])
    (key,) = wants
    fake_run(out, key, wants[key], "r")
    os.makedirs(out, exist_ok=True)
    big = "Command: `python benchmarks/compare.py`\n\n| h |\n|---|\n| a |\n| b |\n| c |\n"
    for f in ("results.md", "fixed.md"):
        open(os.path.join(out, f), "w").write(big)
    assert compare.main(ONE + ["--out", out, "--no-run"]) == 0
    said = capsys.readouterr().out
    assert "kept results.md" in said and "this call plans fewer runs than the tables hold" in said
    assert "missing: )" not in said and open(os.path.join(out, "results.md")).read() == big


# ------------------------------------------------------------- where the runs execute (--ray)
import w1_benchmark  # noqa: E402

PROGRAMS = {"compare": (compare.main, ONE), "open_questions": (open_questions.main, [
    "--only", "c-transform", "--seeds", "0"]), "w1_benchmark": (w1_benchmark.main, [
        "--only", "gp-onesided", "--funnels", "4", "--seeds", "0"])}


@pytest.mark.parametrize("program", sorted(PROGRAMS))
@pytest.mark.parametrize("flags,says", [
    (["--ray", "auto", "--jobs", "2"], "--jobs is for this machine"),
    (["--cpus-per-run", "2"], "--cpus-per-run is for --ray"),
    (["--retries", "1"], "--retries is for --ray"),
    (["--ray", "auto", "--device", "cuda"], "needs --gpus-per-run"),
    (["--ray", "auto", "--device", "cuda:1", "--gpus-per-run", "1"], "use --device cuda"),
    (["--ray", "auto", "--gpus-per-run", "0.5"], "GPUs they never use"),
    (["--ray", "auto", "--cpus-per-run", "0"], "must be a finite number in (0"),
])
def test_where_the_runs_go_is_checked_before_anything_runs(program, flags, says, tmp_path,
                                                           capsys):
    main, argv = PROGRAMS[program]
    i = argv.index("--extra") if "--extra" in argv else len(argv)
    one_line_exit_2(capsys, lambda: main(argv[:i] + flags + ["--out", str(tmp_path / "o")]
                                         + argv[i:]), says)
    assert not os.path.exists(tmp_path / "o" / "runs")


def test_without_ray_installed_ray_says_how_to_get_it_and_the_rest_works(
        tmp_path, capsys, monkeypatch):
    """(The local pool's runs without Ray: tests/test_compare.py's tiny grid.)"""
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as without the package
    monkeypatch.delitem(sys.modules, "on_ray", raising=False)
    out = str(tmp_path / "cmp")
    one_line_exit_2(capsys, lambda: compare.main(ONE + ["--out", out, "--ray", "auto"]),
                    "pip install -r requirements-ray.txt")
    assert compare.main(ONE + ["--out", out, "--ray", "auto", "--no-run"]) == 0  # runs nothing
    assert "1 of 1 runs are not done" in capsys.readouterr().out


def test_progress_counts_and_its_eta_from_the_runs_that_ran():
    p = sweep.Progress("t", total=5, todo=4)  # one run was done before this call
    assert p.line("a", "skipped (done)", True, 0) == "[t] 1/5 done, 0 running | a: skipped (done)"
    # 10 s a run, two at a time: 3 runs left take 15 s
    assert p.line("b", "ran: exit 0 in 10.0 s", True, 1, 10.0) == \
        "[t] 2/5 done, 1 running, ETA 0m15s | b: ran: exit 0 in 10.0 s"
    assert p.line("c", "ran: exit 1 in 2.0 s", False, 1, 2.0).startswith(
        "[t] 2/5 done, 1 failed, 1 running, ETA 0m06s")  # (10 + 2) / 2 a run, 2 left, 2 slots
    said = p.line("d", "ran: exit 130 in 1.0 s (interrupted)", False, 0, 1.0)
    assert said.startswith("[t] 2/5 done, 1 failed, 0 running, ETA")  # not counted a failure
    assert p.line("e", "not started (interrupted)", False, 0).startswith(
        "[t] 2/5 done, 1 failed, 0 running, ETA")


def test_while_no_run_ends_the_counts_come_again_every_heartbeat():
    def never():
        raise AssertionError("counted running runs when no line was due")
    assert sweep.Progress("t", 3, 3, every=3600).quiet(never) is None
    p = sweep.Progress("t", 3, 3, every=0)
    assert p.quiet(lambda: 2) == "[t] 0/3 done, 2 running | still running"


def test_the_grid_figure_draws_the_next_seed_or_says_what_it_left_out(tmp_path, capsys,
                                                                      monkeypatch):
    """The first seed's checkpoint is damaged: its panel is the second seed's, and says so;
    every checkpoint damaged: a line says the configuration is not drawn and the figure is an
    earlier call's (before: the figure stayed as it was, without a word)."""
    import common
    out = str(tmp_path / "cmp")
    argv = ONE[:4] + ["--seeds", "0", "1", *ONE[6:], "--jobs", "2", "--out", out, "--extra",
                      "--dim", "8", "--batch", "16", "--n-critic", "1"]
    assert compare.main(argv) == 0
    capsys.readouterr()
    drawn = []
    monkeypatch.setattr(common, "plot_critic_grid",
                        lambda panels, path, **kw: drawn.append([p[0] for p in panels]) or path)
    cks = sorted(glob.glob(os.path.join(out, "runs", "*", "*", "checkpoint.pt")))
    assert len(cks) == 2 and "-s0" in cks[0]
    open(cks[0], "wb").write(b"not a checkpoint")
    assert compare.main(argv) == 0
    assert len(drawn[-1]) == 1 and drawn[-1][0].startswith("c-transform, seed 1\nW1/floor ")
    open(cks[1], "wb").write(b"not a checkpoint")
    assert compare.main(argv) == 0
    said = capsys.readouterr().out
    assert "c-transform on swissroll: no checkpoint of its runs can be loaded" in said
    assert "grid-swissroll.png is not redrawn" in said and len(drawn) == 1


# ------------------------------------------------- how a run got there: settling, last third, cost
def rows_of(ratios, every=500, floor=0.1):
    return [{"iter": i * every, "w1": q * floor, "w1_floor": floor, "ms_per_iter": 20.0 + i}
            for i, q in enumerate(ratios)]


@pytest.mark.parametrize("ratios,settled_at,left", [
    ([9, 5, 3, 2, 1.8, 1.6], None, False),          # never within 1.5 × floor
    ([9, 3, 1.4, 1.3, 1.2, 2.0], None, True),       # converged, then left: the final is above
    ([9, 3, 1.4, 1.3, 1.2, 1.1], 1000, False),      # converged at 1000 and stayed
    ([9, 1.4, 2.2, 1.3, 1.2, 1.1], 1500, True),     # touched at 500, left, settled at 1500
])
def test_settling_says_when_a_run_converged_and_whether_it_stayed(ratios, settled_at, left):
    s = sweep.settling(rows_of(ratios))
    assert s["settled_at"] == settled_at and s["left"] == left
    # the last third of 0 … 2500: the evaluations at 2000 and 2500
    assert s["last_third"] == pytest.approx((ratios[-2] + ratios[-1]) / 2)
    assert s["ms_per_iter"] == pytest.approx(22.5)


def test_settling_columns_and_their_cell(tmp_path):
    """Three runs: settled at 1000, never (left), settled at 1500 (left): the median is 1500,
    2 of 3 settled, 2 left; a run with no metrics counts as never settled."""
    import harness
    import report
    folders = []
    for i, ratios in enumerate(([9, 3, 1.4, 1.3], [9, 1.4, 1.3, 2.0], [9, 1.4, 2.2, 1.2])):
        d = tmp_path / str(i)
        d.mkdir()
        for r in rows_of(ratios):
            harness.append_metrics(str(d / "metrics.csv"), r)
        folders.append(str(d))
    cols = sweep.settling_columns(folders)
    assert (cols["settled_at_median"], cols["settled_runs"], cols["left_runs"]) == (1500, 2, 2)
    assert report.settles({**cols, "runs": 3}) == "1500 (2/3, 2 left)"
    never = sweep.settling_columns(folders[1:2] + [None, str(tmp_path / "nothing")])
    assert never["settled_at_median"] == float("inf") and never["settled_runs"] == 0
    assert report.settles({**never, "runs": 3}).startswith("never (0/3")
    assert report.settles({"runs": 3}) == "–"  # a table written before the columns existed


# --------------------------------------------------------------------------------- the λ grid
def test_the_lambda_grid_runs_each_penalty_at_each_weight_and_leaves_out_the_rest():
    a = compare.parse_args(["--only", "gp-onesided-l10", "slogan-l10", "wgan-sn", "--data",
                            "swissroll", "--seeds", "0", "--no-fixed", "--lambdas", "0.1", "1"])
    runs = compare.plan(a)
    assert [r[1] for r in runs] == ["slogan-l10@λ0.1", "slogan-l10@λ1", "gp-onesided-l10@λ0.1",
                                    "gp-onesided-l10@λ1"]
    for _, name, script, flags, *_ in runs:  # the last --lambda is the one the run takes
        args = sweep.resolved_args(script, flags)
        assert args["lam"] == sweep.split_lambda(name)[1]
        assert (script == "wgan_gp") == args.get("one_sided", False)
    assert sweep.split_lambda("gp-onesided-l10") == ("gp-onesided-l10", None)


def test_the_lambda_grids_table_and_figure(tmp_path, monkeypatch):
    """Runs of the grid are rows named <config>@λ<value>, in the plan's order; the figure draws
    a line per penalty against λ from those rows."""
    import common
    a = compare.parse_args(["--only", "gp-onesided-l10", "--data", "swissroll", "--seeds", "0",
                            "1", "--no-fixed", "--lambdas", "0.1", "10", "--out",
                            str(tmp_path)])
    runs = compare.plan(a)
    ended = {}
    for key, name, script, flags, data, seed, _ in runs:
        want = sweep.resolved_args(script, flags)
        lam = sweep.split_lambda(name)[1]
        d = fake_run(str(tmp_path), key, want, "run", final={"w1": 0.1 * (1 + lam) + seed * 0.01})
        ended[key] = {**json.load(open(os.path.join(d, "summary.json"))), "folder": d}
    table, _ = compare.summarise(runs, ended)
    assert [r["config"] for r in table] == ["gp-onesided-l10@λ0.1", "gp-onesided-l10@λ10"]
    assert table[1]["w1_over_floor_median"] == pytest.approx(11.05)
    drawn = {}
    monkeypatch.setattr(common, "plot_against_lambda",
                        lambda series, path, *a, **k: drawn.update(series) or path)
    compare.lambda_figure(table, "swissroll", str(tmp_path / "l.png"))
    assert [p[:2] for p in drawn["gp-onesided"]] == [(0.1, pytest.approx(1.15)),
                                                          (10.0, pytest.approx(11.05))]


def test_the_lambda_figure_of_many_penalties_is_a_panel_each_with_wgan_gp_in_grey(monkeypatch):
    """Twelve penalties are more lines than one axes tells apart (ten colours): a panel each,
    its own line coloured, WGAN-GP's grey in every other panel, one y- and x-scale for all, and
    one legend entry per kind of line."""
    import common
    figures = []
    monkeypatch.setattr(common, "_save", lambda fig, path: figures.append(fig) or path)
    names = [sweep.penalty_label(sweep.reference())] + [f"penalty-{i}" for i in range(11)]
    table = [{"config": f"{n}-l10@λ{lam:g}", "data": "swissroll",
              "w1_over_floor_median": (i + 1) * lam, "w1_over_floor_min": (i + 1) * lam / 2,
              "w1_over_floor_max": (i + 1) * lam * 2}
             for i, n in enumerate(names) for lam in (0.1, 1, 10)]
    compare.lambda_figure(table, "swissroll", "unused.png")
    (fig,) = figures
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == names
    for i, ax in enumerate(panels):
        own = [ln for ln in ax.get_lines() if ln.get_label().startswith("the panel's")]
        grey = [ln for ln in ax.get_lines() if ln.get_label().endswith("for reference")]
        assert len(own) == 1 and list(own[0].get_ydata()) == pytest.approx(
            [(i + 1) * lam for lam in (0.1, 1, 10)])
        assert len(grey) == (0 if i == 0 else 1)  # WGAN-GP's own panel draws it once, coloured
        assert ax.get_ylim() == panels[0].get_ylim() and ax.get_xlim() == panels[0].get_xlim()
    assert panels[0].get_ylim()[1] >= 12 * 10 * 2  # the largest band fits every panel
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) == 2 and labels[1] == f"{names[0]}, for reference"


def test_a_shared_lambda_axes_dashes_the_lines_whose_colour_repeats(monkeypatch):
    """On one axes (each_panel off) the eleventh and twelfth lines reuse tab10's first colours:
    they are dashed, so that no two lines look alike."""
    import common
    figures = []
    monkeypatch.setattr(common, "_save", lambda fig, path: figures.append(fig) or path)
    series = {f"p{i:02d}": [(1.0, 1.0 + i, 1.0, 2.0 + i), (10.0, 2.0, 1.0, 3.0)] for i in range(12)}
    common.plot_against_lambda(series, "unused.png", "t", "y")
    (fig,) = figures
    looks = [(ln.get_color(), ln.get_linestyle()) for ln in fig.axes[0].get_lines()]
    assert len(looks) == 12 and len(set(looks)) == 12
    assert [s for _, s in looks] == ["-"] * 10 + ["--"] * 2
