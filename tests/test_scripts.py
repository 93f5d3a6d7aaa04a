"""Behaviour every method script shares (outputs, bad input, divergence, Ctrl-C, resume, CUDA
graph), run for each script for a few iterations at a tiny width on the CPU.

Method-specific arguments for a script's quick runs go in EXTRA; everything else is the same
for all scripts, which is the point: they share one template.
"""
import csv
import glob
import importlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = [s for s in common.SCRIPTS
           if os.path.exists(os.path.join(ROOT, s + ".py"))]
QUICK_ALL = ["--dim", "16", "--batch", "32", "--n-critic", "2"]
# Weight clipping's warm-up schedule (100 critic steps per iteration) is tested on its own.
EXTRA = {"wgan_clip": ["--no-warmup-schedule"]}
# What a signal, a vanished reader or a console does is decided in harness.py (StopSignal, say),
# which every script calls from the same lines (tests/test_layout.py checks that). Signals and
# consoles are tested in this process for every script; each test that needs a process of its
# own (its exit code, a real pipe, a real console) runs on one script, a different one each, to
# keep the suite within its time (a subprocess run costs ~8 s of imports and full evaluations).
PROCESS = {"ctrl_c": "wgan_gp", "sigterm": "wgan_ct", "closed_pipe": "slogan"}
# What every script does the same way because the code is harness.Run's and the run-files and
# main sections are the same text in every script (tests/test_layout.py): tested on two scripts,
# an architecture and a penalty, where a test per script would only repeat the same lines.
TWO = [s for s in ("wgan_sn", "slogan") if s in SCRIPTS] or SCRIPTS[:2]


def quick(script):
    return QUICK_ALL + EXTRA.get(script, [])


def run_main(script, argv, capsys=None):
    mod = importlib.import_module(script)
    try:
        code = mod.main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr() if capsys else None
    return code, out


def run_dirs(out):
    return sorted(glob.glob(os.path.join(out, "*")))


def every_output_cases():
    """(script, data) of the runs that check every output: every script on the swiss roll and
    the digits, each mixture by two scripts (the mixtures share the swiss roll's code, not its
    data and mode statistics). Each script renders its figures for real once, on the swiss roll
    or the digits in turn (rendering costs ~0.7 s a figure; the other cases draw every plotting
    call and write placeholders: tests/conftest.py); one runs at the scripts' own evaluation
    sizes."""
    for i, s in enumerate(SCRIPTS):
        for d in common.DATASETS:
            if d in ("8gaussians", "25gaussians") and not (i < 4 and i % 2 ==
                                                           common.TOYS.index(d)):
                continue
            real = d == ("digits" if i % 2 else "swissroll") or (d == "mnist" and i == 1)
            marks = [pytest.mark.real_figures] * real + [pytest.mark.full_evaluation] * (i == 0)
            yield pytest.param(s, d, real, id=f"{d}-{s}", marks=marks)


# MNIST's 28×28 convolutions and 784-D exact W1 cost ~10× the digits': its runs are the shortest
# that still evaluate twice, at a width of 4 (2 iterations, as the digits' 6 check the same code).
LENGTH = {"mnist": (2, 2, ["--dim", "4"])}


@pytest.mark.parametrize("script,data,real", list(every_output_cases()))
def test_run_writes_every_output(script, data, real, tmp_path, capsys):
    out = str(tmp_path / "runs")
    iters, every, more = LENGTH.get(data, (6, 3, []))
    code, cap = run_main(script, quick(script) + more + [
        "--data", data, "--iters", str(iters), "--eval-every", str(every), "--out", out], capsys)
    assert code == 0, cap.err
    (d,) = run_dirs(out)
    assert os.path.basename(d).startswith(f"{script}-{data}-s0-")
    for f in ("config.json", "metrics.csv", "checkpoint.pt", "summary.json"):
        assert os.path.getsize(os.path.join(d, f)) > 0, f
    middle = [f"critic_{every:06d}.png"] if every < iters else []
    for f in ("curves.png", "critic_000000.png", *middle, "critic_final.png"):
        with open(os.path.join(d, f), "rb") as fh:  # a PNG, rendered (not a stub) where asked
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n", f
            assert os.path.getsize(fh.name) > 10_000 or not real, f
    rows = list(csv.DictReader(open(os.path.join(d, "metrics.csv"))))
    assert [int(r["iter"]) for r in rows] == list(range(0, iters + 1, every))
    need = {"loss_d", "critic_estimate", "loss_g", "w1", "w1_floor", "nn_ratio", "grad_norm_mean",
            "grad_norm_max", "grad_share_above_1", "grad_w_disc", "ms_per_iter"}
    # what the training step logs, and for a penalty its weight gradient against the
    # discrimination term's; each method's own diagnostics are checked in its test file
    step = set(importlib.import_module(script).STEP_COLUMNS)
    need |= step | ({"grad_w_pen", "cos_disc_pen"} if "penalty" in step else set())
    if data in ("8gaussians", "25gaussians"):
        need |= {"modes", "n_modes", "high_quality"}
    if data in common.IMAGES:  # class coverage and the collapsed baselines instead of modes
        need |= {"classes", "n_classes", "class_tv", "class_0", "class_9", "w1_mean_digit",
                 "w1_ot_means"} | ({"fd", "fd_floor"} if data == "mnist" else set())
        assert "modes" not in rows[0] and "classes" in cap.out
        assert all(float(r["w1_floor"]) < float(r["w1_mean_digit"]) for r in rows)
        if data == "mnist":  # 28×28 digits, and their distance in the classifier's features
            assert "FD" in cap.out and all(0 < float(r["fd_floor"]) < float(r["fd"])
                                           for r in rows)
    assert need <= set(rows[0])
    assert all(float(r["w1"]) > 0 and float(r["w1_floor"]) > 0 for r in rows)
    cfg = json.load(open(os.path.join(d, "config.json")))
    assert cfg["args"]["data"] == data and cfg["versions"]["torch"] == torch.__version__
    threads = cfg["versions"]["cpu_threads"]  # how many, and from where (conftest sets the env)
    assert cfg["versions"]["cpu_threads_from"] == "OMP_NUM_THREADS" and threads >= 1
    assert f"{threads} CPU thread{'s' * (threads != 1)} (OMP_NUM_THREADS)" in \
        cap.out.splitlines()[0]
    summ = json.load(open(os.path.join(d, "summary.json")))
    assert summ["status"] == "finished" and summ["final"]["iter"] == iters
    assert summ["run_dir"] == d and summ["wall_time_s"] > 0
    assert d in cap.out and f"it      {iters}/{iters}" in cap.out and "W1" in cap.out
    assert "ETA" in cap.out
    ck = torch.load(os.path.join(d, "checkpoint.pt"), map_location="cpu", weights_only=True)
    assert ck["script"] == script and ck["iteration"] == iters


@pytest.mark.parametrize("script", SCRIPTS)
def test_fixed_generator_trains_only_the_critic(script, tmp_path, capsys):
    out = str(tmp_path / "runs")
    code, cap = run_main(script, quick(script) + ["--fixed-generator", "--iters", "4",
                                                  "--eval-every", "4", "--out", out], capsys)
    assert code == 0, cap.err
    (d,) = run_dirs(out)
    ck = torch.load(os.path.join(d, "checkpoint.pt"), map_location="cpu", weights_only=True)
    torch.manual_seed(0)
    mod = importlib.import_module(script)
    g0 = mod.mlp([2, 16, 16, 16, 2]).state_dict()  # the generator as initialised from the seed
    assert all(torch.equal(g0[k], ck["G"][k]) for k in g0)
    rows = list(csv.DictReader(open(os.path.join(d, "metrics.csv"))))
    # fake = real + N(0, I): W1 is about that of adding unit noise, far above the floor (at the
    # tests' 256 evaluation points the floor is 0.15, W1 0.63; at 1024 points 0.09 and 0.63)
    assert float(rows[-1]["w1"]) > 3 * float(rows[-1]["w1_floor"])


@pytest.mark.parametrize("script", TWO)
def test_two_runs_never_share_a_folder(script, tmp_path, capsys):
    out = str(tmp_path / "runs")
    for _ in range(2):
        assert run_main(script, quick(script) + ["--iters", "1", "--eval-every", "1", "--out", out],
                        capsys)[0] == 0
    assert len(run_dirs(out)) == 2


BAD = [
    (["--lambda", "-1"], "--lambda"),
    (["--iters", "0"], "--iters"),
    (["--batch", "1"], "--batch"),
    (["--data", "moons"], "moons"),
    (["--resume", "/nonexistent/checkpoint.pt"], "no checkpoint"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--n-critic", "0"], "--"),
]


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("argv,says", BAD)
def test_bad_input_is_one_line_exit_2_and_no_folder(script, argv, says, tmp_path, capsys):
    out = str(tmp_path / "runs")
    code, cap = run_main(script, argv + ["--out", out], capsys)
    assert code == 2
    err = cap.err.strip()
    assert "\n" not in err and says in err and err.startswith(f"{script}.py: error:")
    assert not os.path.exists(out)


@pytest.mark.parametrize("script", SCRIPTS)
def test_resume_rejects_foreign_files(script, tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    other = tmp_path / "other.pt"
    torch.save({"script": "some_other_script", "iteration": 3}, other)
    for path, says in ((junk, "not a checkpoint"), (other, f"not a checkpoint of {script}.py")):
        code, cap = run_main(script, ["--resume", str(path), "--out", str(tmp_path / "r")], capsys)
        assert code == 2 and says in cap.err and "\n" not in cap.err.strip()
    assert not os.path.exists(tmp_path / "r")


@pytest.mark.parametrize("script", SCRIPTS)
def test_non_finite_loss_stops_and_keeps_last_good(script, tmp_path, capsys):
    out = str(tmp_path / "runs")
    # An absurd learning rate blows the weights up within a few steps.
    code, cap = run_main(script, quick(script) + ["--lr", "1e30", "--iters", "50",
                                                  "--eval-every", "10", "--out", out], capsys)
    assert code == 1
    assert "NaN or infinite" in cap.err and "last good checkpoint" in cap.err
    (d,) = run_dirs(out)
    summ = json.load(open(os.path.join(d, "summary.json")))
    assert summ["status"] == "diverged"
    ck = torch.load(os.path.join(d, "checkpoint.pt"), map_location="cpu", weights_only=True)
    assert ck["iteration"] == summ["iteration"] < 50
    assert all(torch.isfinite(v).all() for v in ck["D"].values())
    assert os.path.exists(os.path.join(d, f"critic_{ck['iteration']:06d}.png"))


def _params(path):
    ck = torch.load(path, map_location="cpu", weights_only=True)
    return ck["G"], ck["D"], ck["opt_d"]["state"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_resume_is_bit_identical_on_cpu(script, tmp_path, capsys):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    base = quick(script) + ["--device", "cpu", "--eval-every", "5", "--seed", "3"]
    assert run_main(script, base + ["--iters", "12", "--out", a], capsys)[0] == 0
    assert run_main(script, base + ["--iters", "7", "--out", b], capsys)[0] == 0
    (db,) = run_dirs(b)
    summary = os.path.join(db, "summary.json")
    with open(summary) as fh:
        before = json.load(fh)
    with open(summary, "w") as fh:
        json.dump({**before, "wall_time_s": 1000.0}, fh)  # as if it had run 1000 s
    code, cap = run_main(script, ["--resume", os.path.join(db, "checkpoint.pt"), "--iters", "12"],
                         capsys)
    assert code == 0, cap.err
    # the resumed run's wall time counts the segment before the resume too
    with open(summary) as fh:
        assert 1000 < json.load(fh)["wall_time_s"] < 1000 + 600
    assert "with the segments before the resume" in cap.out
    (da,) = run_dirs(a)
    ga, da_, oa = _params(os.path.join(da, "checkpoint.pt"))
    gb, db_, ob = _params(os.path.join(db, "checkpoint.pt"))
    for x, y in ((ga, gb), (da_, db_)):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    for k in oa:
        assert all(torch.equal(torch.as_tensor(oa[k][n]), torch.as_tensor(ob[k][n]))
                   for n in oa[k])
    rows = list(csv.DictReader(open(os.path.join(db, "metrics.csv"))))
    assert [int(r["iter"]) for r in rows] == [0, 5, 7, 10, 12]
    # resuming may not change the method
    code, cap = run_main(script, ["--resume", db, "--iters", "20", "--batch", "64"], capsys)
    assert code == 2 and "cannot change --batch" in cap.err


@pytest.mark.parametrize("script", SCRIPTS)
def test_ctrl_c_writes_checkpoint_and_figures(script, tmp_path, capsys, monkeypatch):
    """A real SIGINT to this process, from inside the third training step: the iteration ends,
    then checkpoint, figures and summary are written and main returns 130."""
    mod = importlib.import_module(script)
    real_step, calls = mod.train_step, {"n": 0}

    def step(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*a, **k)

    monkeypatch.setattr(mod, "train_step", step)
    out = str(tmp_path / "runs")
    code, cap = run_main(script, quick(script) + ["--iters", "100000", "--eval-every", "100000",
                                                  "--out", out], capsys)
    assert code == 130, cap.err
    assert "interrupted at iteration 3" in cap.out and "--resume" in cap.out
    (d,) = run_dirs(out)
    ck = torch.load(os.path.join(d, "checkpoint.pt"), map_location="cpu", weights_only=True)
    assert ck["iteration"] == 3
    for f in ("critic_final.png", "curves.png"):
        assert os.path.exists(os.path.join(d, f))
    assert json.load(open(os.path.join(d, "summary.json")))["status"] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_ctrl_c_exits_130_and_sigterm_143_each_with_its_checkpoint_and_figures(tmp_path):
    """SIGINT (Ctrl-C) to one training process and SIGTERM (what `timeout` and schedulers send)
    to another, both under way at once: each saves, says how to resume, exits 128 + signal."""
    procs = {}
    for signum, key in ((signal.SIGINT, "ctrl_c"), (signal.SIGTERM, "sigterm")):
        script, out = PROCESS[key], str(tmp_path / key)
        procs[signum] = out, subprocess.Popen(
            [sys.executable, "-u", os.path.join(ROOT, script + ".py"), *quick(script),
             "--iters", "100000", "--eval-every", "100000", "--out", out], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = {}
    for signum, (out, proc) in procs.items():
        seen[signum], deadline = "", time.time() + 120
        while "it      0/" not in seen[signum]:  # the first evaluation is done
            line = proc.stdout.readline()
            assert line and time.time() < deadline, seen[signum]
            seen[signum] += line
    time.sleep(1.5)  # let them train a little
    for signum, (out, proc) in procs.items():
        proc.send_signal(signum)
    for signum, (out, proc) in procs.items():
        rest, _ = proc.communicate(timeout=120)
        assert proc.returncode == 128 + signum, seen[signum] + rest
        assert "interrupted at iteration" in rest and "--resume" in rest
        (d,) = run_dirs(out)
        ck = torch.load(os.path.join(d, "checkpoint.pt"), map_location="cpu", weights_only=True)
        assert ck["iteration"] > 0
        assert os.path.exists(os.path.join(d, "critic_final.png"))
        assert os.path.exists(os.path.join(d, "curves.png"))
        assert json.load(open(os.path.join(d, "summary.json")))["status"] == "interrupted"


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_documents_every_flag(script):
    mod = importlib.import_module(script)
    parser = mod.build_parser()
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.option_strings
            assert all("_" not in o for o in action.option_strings)  # hyphenated names
    text = parser.format_help()
    for flag in ("--data", "--iters", "--n-critic", "--batch", "--lr", "--dim", "--seed",
                 "--device", "--eval-every", "--out", "--fixed-generator", "--resume",
                 "--no-cuda-graph"):
        assert flag in text


GRAPH_CASES = [(s, []) for s in SCRIPTS] + [
    ("wgan_gp", ["--one-sided", "--fixed-generator"]), ("slogan", ["--pairs", "all"]),
    ("dragan", ["--perturb", "normal"]), ("dragan", ["--perturb", "none", "--loss", "wgan"]),
    ("dragan", ["--perturb", "toward-fake", "--lp-lambda", "1"]),
    ("zero_centred", ["--perturb", "interpolate", "--loss", "wgan"]),
    ("wgan_gp", ["--lambda-from", "0.1"]),  # the λ ramp must follow the replays
    ("wgan_clip", ["--warmup-schedule-on"]),  # the 100- and 5-step iterations: two graphs
    ("wgan_ct", ["--epsilon", "0.05"]), ("wgan_sn", ["--power-iterations", "3"]),
    ("wgan_div", ["--points", "real-fake"])] + [
    (s, ["--data", "digits"]) for s in SCRIPTS]  # convolutions, and batches drawn by index


def _cuda_run(script, extra, out, capsys, iters=30, resume=None):
    flags = [f for f in extra if f != "--warmup-schedule-on"]
    base = (QUICK_ALL if "--warmup-schedule-on" in extra else quick(script)) + flags
    argv = ["--resume", resume, "--iters", str(iters)] if resume else \
        base + ["--device", "cuda", "--iters", str(iters), "--eval-every", "10", "--out", out]
    code, cap = run_main(script, argv, capsys)
    assert code == 0, cap.err
    d = resume or run_dirs(out)[0]
    return d, _params(os.path.join(d, "checkpoint.pt"))


@pytest.mark.cuda
@pytest.mark.parametrize("script,extra", [c for c in GRAPH_CASES if c[0] in SCRIPTS],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_cuda_graph_matches_eager(script, extra, tmp_path, capsys, cuda_only):
    """The CUDA-graph path and the eager path, from the same seed and with evaluations between
    replays, end with the same weights; so does a graph run stopped at 15 and resumed."""
    _, graph = _cuda_run(script, extra, str(tmp_path / "graph"), capsys)
    _, eager = _cuda_run(script, extra + ["--no-cuda-graph"], str(tmp_path / "eager"), capsys)
    d, _ = _cuda_run(script, extra, str(tmp_path / "resumed"), capsys, iters=15)
    _, resumed = _cuda_run(script, extra, None, capsys, iters=30, resume=d)
    for other in (eager, resumed):
        for x, y in zip(graph[:2], other[:2]):
            for k in x:
                torch.testing.assert_close(x[k], y[k], rtol=1e-4, atol=1e-5)


VARIANTS = [
    ("wgan_gp", ["--one-sided"]),
    ("slogan", ["--pairs", "real-fake"]), ("slogan", ["--pairs", "all"]),
    ("slogan", ["--two-sided"]),
    *[("dragan", ["--loss", loss, "--perturb", kind])
      for loss in ("gan", "wgan") for kind in ("paper", "normal", "none")],
    ("dragan", ["--one-sided", "--perturb-scale", "1.0"]),
    ("wgan_clip", ["--clip", "0.05"]),
    ("wgan_ct", ["--epsilon", "0.05"]), ("wgan_ct", ["--fixed-generator", "--epsilon", "0.5"]),
    ("wgan_gp", ["--lambda-from", "0.1"]),
    ("dragan", ["--loss", "wgan", "--perturb", "toward-fake", "--perturb-scale", "0.05"]),
    ("dragan", ["--loss", "wgan", "--lp-lambda", "10"]),
    *[("zero_centred", ["--perturb", p]) for p in ("fake", "interpolate")],
    ("wgan_sn", ["--power-iterations", "5"]), ("wgan_div", ["--points", "real-fake"]),
    ("wgan_div", ["--k", "10", "--p", "2"]),
]


@pytest.mark.parametrize("script,extra", [v for v in VARIANTS if v[0] in SCRIPTS],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_method_variants_run(script, extra, tmp_path, capsys):
    out = str(tmp_path / "runs")
    code, cap = run_main(script, quick(script) + extra + ["--iters", "2", "--eval-every", "2",
                                                         "--out", out], capsys)
    assert code == 0, cap.err
    (d,) = run_dirs(out)
    cfg = json.load(open(os.path.join(d, "config.json")))
    flags = {a.option_strings[0]: a.dest for a in importlib.import_module(script)
             .build_parser()._actions if a.option_strings}
    for flag, value in zip(extra, extra[1:] + [None]):
        if flag.startswith("--"):
            got = cfg["args"][flags[flag]]
            assert got is True if value is None or value.startswith("--") else \
                str(got) == value or float(got) == float(value)
    rows = list(csv.DictReader(open(os.path.join(d, "metrics.csv"))))
    assert float(rows[-1]["w1"]) > 0 and rows[-1]["iter"] == "2"
