"""The edges a careful user tries: bad output folders, huge seeds and sizes, strange devices,
divergence in the samples, out of memory, SIGTERM, broken pipes, odd consoles, damaged or busy
checkpoints, resumes after a crash at the worst moment. Every script, the same behaviour.
"""
import csv
import importlib
import io
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import common
import harness
from test_scripts import PROCESS, ROOT, SCRIPTS, TWO, quick, run_dirs, run_main


def strict_json(path):
    """Load JSON the way strict tools do: NaN and Infinity are errors."""
    def bad(name):
        raise ValueError(f"{path} holds {name}, which is not JSON")
    with open(path) as fh:
        return json.load(fh, parse_constant=bad)


def iters_logged(d):
    return [int(r["iter"]) for r in csv.DictReader(open(os.path.join(d, "metrics.csv")))]


def one_line_error(code, cap, script, says):
    err = cap.err.strip()
    assert code == 2, (code, err)
    assert "\n" not in err and err.startswith(f"{script}.py: error:") and says in err, err


# --------------------------------------------------------------------------- bad input, exit 2
@pytest.mark.parametrize("script", SCRIPTS)
def test_bad_out_is_one_line_and_writes_nothing(script, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    for out, says in ((str(a_file), "Not a directory"), (os.devnull, "--out"),
                      ("/proc/no-such-dir/runs", "--out"), (str(tmp_path / ("x" * 300)), "--out"),
                      ("", "--out is empty")):
        code, cap = run_main(script, quick(script) + ["--iters", "1", "--out", out], capsys)
        one_line_error(code, cap, script, says)
    assert sorted(os.listdir(tmp_path)) == ["a_file"] and a_file.read_text() == "keep me"


def test_an_out_with_no_room_for_a_run_folder_is_one_line_and_leaves_none(tmp_path, capsys):
    """Near the longest path the system takes, --out itself can be made but a run folder there
    has no room for its files: refused before the folder is made (before: a traceback from the
    lock, exit 1, and an empty run folder left)."""
    script = SCRIPTS[0]
    deep = str(tmp_path)
    while len(deep) < harness.PATH_MAX - 80:
        deep = os.path.join(deep, "d" * min(200, harness.PATH_MAX - 80 - len(deep)))
    os.makedirs(deep)
    code, cap = run_main(script, quick(script) + ["--iters", "1", "--out", deep], capsys)
    one_line_error(code, cap, script, "too long")
    assert os.listdir(deep) == []


def test_a_run_folder_that_cannot_be_locked_is_one_line(tmp_path, capsys, monkeypatch):
    """--resume of a run on a read-only mount: the lock file cannot be opened; one line, exit 2
    (before: an OSError traceback)."""
    import builtins
    script = SCRIPTS[0]
    d = _short_run(script, str(tmp_path / "runs"), capsys, iters=2)
    real_open = builtins.open

    def read_only(path, mode="r", *args, **kw):
        if str(path).endswith(os.sep + "lock") and mode != "r":
            raise OSError(30, "Read-only file system")
        return real_open(path, mode, *args, **kw)
    monkeypatch.setattr(builtins, "open", read_only)
    code, cap = run_main(script, ["--resume", d, "--iters", "4"], capsys)
    monkeypatch.undo()
    one_line_error(code, cap, script, "Read-only file system")
    assert iters_logged(d) == [0, 2] and os.path.exists(d)


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("argv,says", [
    (["--seed", str(2**64)], "--seed"), (["--seed", "-1"], "--seed"),
    (["--lr", "inf"], "--lr"), (["--lr", "nan"], "--lr"), (["--iters", "1.5"], "--iters"),
    (["--device", "meta"], "--device"), (["--device", "mps"], "--device"),
    (["--device", "xpu"], "--device"), (["--device", "gpu"], "--device"),
    (["--batch", "50000000"], "GiB"), (["--dim", "100000"], "GiB"),
    (["--resume", ""], "--resume")])
def test_more_bad_input_is_one_line_exit_2_and_no_folder(script, argv, says, tmp_path, capsys):
    out = str(tmp_path / "runs")
    code, cap = run_main(script, argv + ["--out", out], capsys)
    one_line_error(code, cap, script, says)
    assert not os.path.exists(out)


def test_method_flags_reject_what_others_reject(tmp_path, capsys):
    out = str(tmp_path / "runs")
    for script, argv, says in (("dragan", ["--perturb-scale", "inf"], "--perturb-scale"),
                               ("dragan", ["--perturb-scale", "-1"], "--perturb-scale"),
                               ("slogan", ["--pairs", "all", "--batch", "100000"], "GiB"),
                               ("wgan_clip", ["--clip", "0"], "--clip"),
                               ("wgan_gp", ["--betas", "0.5", "1"], "--betas"),
                               ("wgan_ct", ["--epsilon", "-1"], "--epsilon"),
                               ("wgan_ct", ["--epsilon", "nan"], "--epsilon")):
        code, cap = run_main(script, argv + ["--out", out], capsys)
        one_line_error(code, cap, script, says)
    assert not os.path.exists(out)


@pytest.mark.parametrize("script", TWO)
def test_huge_seed_runs(script, tmp_path, capsys):
    """Evaluation seeds are derived from --seed without overflowing torch's 64-bit seed."""
    out = str(tmp_path / "runs")
    code, cap = run_main(script, quick(script) + ["--seed", str(2**63 - 1), "--iters", "1",
                                                  "--eval-every", "1", "--dim", "8", "--out", out],
                         capsys)
    assert code == 0, cap.err
    assert strict_json(os.path.join(run_dirs(out)[0], "summary.json"))["status"] == "finished"


# ------------------------------------------------------------------ divergence, memory: exit 1
@pytest.mark.parametrize("script", SCRIPTS)
def test_non_finite_samples_are_divergence(script, tmp_path, capsys, monkeypatch):
    """A generator whose output overflows while losses and weights are finite: caught at the
    evaluation (before exact W1 sees it), exit 1, the last good state kept, strict JSON."""
    mod = importlib.import_module(script)
    real_fake_batch = mod.fake_batch

    def overflowing(G, real, args, generator=None):
        out = real_fake_batch(G, real, args, generator)
        return out * float("inf") if len(real) == common.N_EVAL and getattr(G, "broken", 0) else out

    monkeypatch.setattr(mod, "fake_batch", overflowing)
    state = {"evals": 0}
    real_evaluate = mod.evaluate

    def evaluate(G, D, args, device, it):
        state["evals"] += 1
        G.broken = state["evals"] > 1
        return real_evaluate(G, D, args, device, it)

    monkeypatch.setattr(mod, "evaluate", evaluate)
    out = str(tmp_path / "runs")
    code, cap = run_main(script, quick(script) + ["--iters", "4", "--eval-every", "2", "--out",
                                                  out], capsys)
    assert code == 1, cap.err
    assert "a generated sample became NaN or infinite" in cap.err and "Traceback" not in cap.err
    (d,) = run_dirs(out)
    summ = strict_json(os.path.join(d, "summary.json"))
    assert summ["status"] == "diverged" and summ["iteration"] == 0
    assert torch.load(os.path.join(d, "checkpoint.pt"), map_location="cpu",
                      weights_only=True)["iteration"] == 0


def test_clip_with_absurd_lr_is_divergence_not_traceback(tmp_path, capsys):
    """The reported case: weights and losses stay finite while the samples overflow."""
    out = str(tmp_path / "x")
    code, cap = run_main("wgan_clip", ["--lr", "1e12", "--iters", "2", "--eval-every", "1",
                                       "--dim", "8", "--out", out], capsys)
    assert code == 1 and "NaN or infinite" in cap.err and "Traceback" not in cap.err
    assert strict_json(os.path.join(run_dirs(out)[0], "summary.json"))["status"] == "diverged"


@pytest.mark.parametrize("script", SCRIPTS)
def test_out_of_memory_mid_run_is_exit_1_with_summary(script, tmp_path, capsys, monkeypatch):
    mod = importlib.import_module(script)
    calls = {"n": 0}
    real_step = mod.train_step

    def step(*a, **k):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                               "allocate 1099511627776 bytes. Error code 12")
        return real_step(*a, **k)

    monkeypatch.setattr(mod, "train_step", step)
    out = str(tmp_path / "runs")
    code, cap = run_main(script, quick(script) + ["--iters", "6", "--eval-every", "2",
                                                  "--out", out], capsys)
    assert code == 1 and "out of memory" in cap.err and "--batch" in cap.err
    (d,) = run_dirs(out)
    summ = strict_json(os.path.join(d, "summary.json"))
    assert summ["status"] == "out_of_memory" and summ["iteration"] == 2


# ------------------------------------------------------------------------------------ resume
def _short_run(script, out, capsys, iters=4):
    code, cap = run_main(script, quick(script) + ["--device", "cpu", "--iters", str(iters),
                                                  "--eval-every", "2", "--out", out], capsys)
    assert code == 0, cap.err
    return run_dirs(out)[0]


@pytest.mark.parametrize("script", TWO)
def test_resume_after_a_crash_between_row_and_checkpoint(script, tmp_path, capsys):
    d = _short_run(script, str(tmp_path / "a"), capsys)
    with open(os.path.join(d, "metrics.csv"), "a") as fh:  # a row past the checkpoint (4)
        fh.write("6" + ",1" * 5 + "\n")
    assert run_main(script, ["--resume", d, "--iters", "8"], capsys)[0] == 0
    assert iters_logged(d) == [0, 2, 4, 6, 8]
    d = _short_run(script, str(tmp_path / "b"), capsys)
    rows = open(os.path.join(d, "metrics.csv")).read().splitlines()
    open(os.path.join(d, "metrics.csv"), "w").write("\n".join(rows[:-1]) + "\n")  # row 4 lost
    assert run_main(script, ["--resume", d, "--iters", "6"], capsys)[0] == 0
    assert iters_logged(d) == [0, 2, 4, 6]


def test_a_torn_last_row_is_dropped_and_the_run_resumes(tmp_path, capsys):
    """What a full disk in the middle of an append leaves: the last row cut short (and, worse,
    cut where a cell still parses). Reading the metrics leaves it out, and --resume drops it and
    writes that evaluation again: the run goes on to the end with whole rows only."""
    script = SCRIPTS[0]
    d = _short_run(script, str(tmp_path / "a"), capsys)  # rows 0, 2, 4; checkpoint at 4
    path = os.path.join(d, "metrics.csv")
    text = open(path, newline="").read()
    last = text[:-1].rfind("\n") + 1
    for cut in (last + 3, len(text) - 2):  # inside its first cells; inside its last cell
        open(path, "w", newline="").write(text[:cut])
        assert [r["iter"] for r in harness.read_metrics(path)] == [0, 2]
    assert run_main(script, ["--resume", d, "--iters", "6"], capsys)[0] == 0
    assert iters_logged(d) == [0, 2, 4, 6]
    rows = list(csv.reader(open(path, newline="")))
    assert len({len(r) for r in rows}) == 1 and open(path, newline="").read().endswith("\n")


def test_an_append_after_a_torn_row_or_header_starts_on_a_whole_line(tmp_path):
    path = str(tmp_path / "metrics.csv")
    harness.append_metrics(path, {"iter": 0, "w1": 1.5})
    with open(path, "a", newline="") as fh:
        fh.write("2,0.7")  # torn: no newline
    harness.append_metrics(path, {"iter": 2, "w1": 0.5})
    assert harness.read_metrics(path) == [{"iter": 0, "w1": 1.5}, {"iter": 2, "w1": 0.5}]
    open(path, "w").write("iter,w")  # the header itself torn
    harness.append_metrics(path, {"iter": 4, "w1": 0.25})
    assert harness.read_metrics(path) == [{"iter": 4, "w1": 0.25}]


@pytest.mark.parametrize("script", SCRIPTS)
def test_resume_after_ctrl_c_in_the_first_evaluation(script, tmp_path, capsys, monkeypatch):
    class AskedAtOnce(harness.StopSignal):
        def __init__(self):
            super().__init__()
            self.signum = signal.SIGINT

    out = str(tmp_path / "runs")
    with monkeypatch.context() as m:
        m.setattr(harness, "StopSignal", AskedAtOnce)
        code, cap = run_main(script, quick(script) + ["--iters", "4", "--eval-every", "2",
                                                      "--out", out], capsys)
    assert code == 130 and "interrupted at iteration 0" in cap.out
    (d,) = run_dirs(out)
    assert run_main(script, ["--resume", d], capsys)[0] == 0
    assert iters_logged(d) == [0, 2, 4]


@pytest.mark.parametrize("script", SCRIPTS)
def test_resume_refuses_damaged_and_busy_runs(script, tmp_path, capsys):
    hand_made = tmp_path / "hand.pt"
    torch.save({"script": script}, hand_made)
    code, cap = run_main(script, ["--resume", str(hand_made)], capsys)
    one_line_error(code, cap, script, "damaged")
    d = _short_run(script, str(tmp_path / "runs"), capsys, iters=2)
    import fcntl
    with open(os.path.join(d, "lock"), "a") as held:  # as a second process running it would
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, cap = run_main(script, ["--resume", d, "--iters", "4"], capsys)
        one_line_error(code, cap, script, "another process")
    assert iters_logged(d) == [0, 2]
    # an optimiser state of the wrong shape: refused before anything is written, not a
    # traceback at the first step after config-resume.json
    path = os.path.join(d, "checkpoint.pt")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    st = ck["opt_d"]["state"][0]
    name = next(k for k, v in st.items() if torch.is_tensor(v) and v.dim() > 0)
    st[name] = torch.zeros(st[name].numel() + 1)
    torch.save(ck, path)
    code, cap = run_main(script, ["--resume", d, "--iters", "4"], capsys)
    one_line_error(code, cap, script, "damaged")
    assert f"optimiser state '{name}'" in cap.err
    assert not [f for f in os.listdir(d) if f.startswith("config-resume")]
    assert iters_logged(d) == [0, 2]


@pytest.mark.parametrize("script", SCRIPTS)
def test_resume_a_checkpoint_written_for_a_cuda_graph_on_the_cpu(script, tmp_path, capsys):
    """A checkpoint from a CUDA-graph run holds capturable optimisers; the CPU must take it."""
    d = _short_run(script, str(tmp_path / "runs"), capsys, iters=2)
    path = os.path.join(d, "checkpoint.pt")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("opt_g", "opt_d"):
        for g in ck[key]["param_groups"]:
            g["capturable"] = True
        for st in ck[key]["state"].values():
            st["step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(())
    torch.save(ck, path)
    code, cap = run_main(script, ["--resume", d, "--iters", "4", "--device", "cpu"], capsys)
    assert code == 0, cap.err
    ck = torch.load(path, map_location="cpu", weights_only=True)
    assert ck["iteration"] == 4
    assert not any(g.get("capturable") for g in ck["opt_d"]["param_groups"])


# ------------------------------------------------------------- signals, pipes, consoles, imports
def test_a_closed_pipe_on_a_console_without_unicode_does_not_kill_the_run(tmp_path):
    """`python script.py | head -1` on a cp1252 console: the first line arrives with λ escaped,
    the reader goes away, and the run goes on to the end (one process for both: a console's
    encoding and a vanished reader are handled by the same say())."""
    script, out = PROCESS["closed_pipe"], str(tmp_path / "runs")
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, script + ".py"), *quick(script), "--iters", "2",
         "--eval-every", "2", "--out", out], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env={**os.environ, "PYTHONIOENCODING": "cp1252"})
    first = proc.stdout.readline().decode("cp1252")
    proc.stdout.close()  # as head does after its lines
    err = proc.stderr.read().decode("cp1252", "replace")
    assert proc.wait(timeout=300) == 0, err
    assert "\\u03bb" in first, first  # λ, escaped
    assert "BrokenPipeError" not in err and "UnicodeEncodeError" not in err, err
    (d,) = run_dirs(out)
    assert strict_json(os.path.join(d, "summary.json"))["status"] == "finished"


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_console_without_unicode_in_process(script, tmp_path, monkeypatch):
    """stdout and stderr as a cp1252 console has them (strict errors): --help and a run print
    their λ, ‖∇f‖ and ε escaped instead of raising."""
    streams = {}
    for name in ("stdout", "stderr"):
        streams[name] = io.TextIOWrapper(io.BytesIO(), encoding="cp1252", errors="strict")
        monkeypatch.setattr(sys, name, streams[name])
    mod = importlib.import_module(script)
    with pytest.raises(SystemExit) as e:
        mod.main(["--help"])
    assert e.value.code == 0
    out = str(tmp_path / "runs")
    assert mod.main(quick(script) + ["--iters", "1", "--eval-every", "1", "--out", out]) == 0
    streams["stdout"].flush()
    text = streams["stdout"].buffer.getvalue().decode("cp1252")
    assert "--lr" in text and "finished" in text and "\\u" in text  # something was escaped


def test_importing_a_script_leaves_the_matplotlib_backend_alone(tmp_path):
    code = ("import matplotlib; matplotlib.use('svg'); "
            + "; ".join(f"import {s}" for s in SCRIPTS)
            + "; import common, torch; "
            + f"common.plot_critic(lambda x: x.sum(1), torch.zeros(3, 2), None, r'{tmp_path}/c.png'); "
            + "print(matplotlib.get_backend())")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "svg" and os.path.getsize(tmp_path / "c.png") > 0


# ----------------------------------------------------------------------- benchmarks' arguments
@pytest.mark.parametrize("argv", [["--iters", "0"], ["--n-critic", "0"], ["--batch", "0"],
                                  ["--dims", "0"], ["--script", "nope"], ["--device", "bogus"],
                                  ["--warmup", "-1"], ["--batch", "8", "--", "--batch", "300"],
                                  ["--", "--data", "digits"], ["--", "--dim=64"]])
def test_speed_rejects_bad_arguments(argv, capsys):
    """Including flags after -- that would override speed.py's own (the table says its own)."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import speed
    with pytest.raises(SystemExit) as e:
        speed.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("speed.py: error:")


def test_speed_says_in_one_line_when_the_flags_make_the_step_diverge(capsys):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import speed
    assert speed.main(["--script", "wgan_div", "--dims", "8", "--batch", "8", "--iters", "2",
                       "--warmup", "1", "--device", "cpu", "--", "--lr", "1e30"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "NaN or infinity" in err and "Traceback" not in err


def test_results_grid_never_refers_to_files_users_do_not_have():
    """Nothing committed may point at the sources this project was written from."""
    import re
    bad = re.compile(r"\.\./shared|REFERENCE(\.md| §)|(?i:seed 0[0-9]|seeds/|the anchor)")
    hits = []
    for base, dirs, files in os.walk(ROOT):
        dirs[:] = [x for x in dirs if not x.startswith(".") and x not in
                   ("runs", "__pycache__", "node_modules") and "venv" not in x]
        for f in files:
            if f.endswith((".py", ".md", ".txt", ".ini", ".cfg", ".toml", ".csv")) or f == "run":
                path = os.path.join(base, f)
                for i, line in enumerate(open(path, encoding="utf-8", errors="replace"), 1):
                    if bad.search(line) and "re.compile(" not in line:
                        hits.append(f"{os.path.relpath(path, ROOT)}:{i}: {line.strip()[:80]}")
    assert not hits, "\n".join(hits)


# ------------------------------------------------------- flags that are fine alone, not together
@pytest.mark.parametrize("script,argv,says", [
    ("wgan_gp", ["--lambda-from", "20", "--lambda", "10"], "must be below --lambda"),
    ("wgan_gp", ["--lambda-from", "10", "--lambda", "10"], "must be below --lambda"),
    ("wgan_gp", ["--lambda-ramp", "100"], "--lambda-ramp needs --lambda-from"),
    ("dragan", ["--perturb", "none", "--perturb-scale", "0.3"], "no effect with --perturb none"),
    ("dragan", ["--perturb", "interpolate", "--perturb-scale", "0.3"], "--perturb interpolate"),
    ("wgan_ct", ["--epsilon", "1e-300"], "becomes 0 in float32"),
    ("wgan_ct", ["--epsilon", "3.5e38"], "infinite in float32"),
])
def test_flags_that_do_not_go_together_are_one_line(script, argv, says, tmp_path, capsys):
    out = str(tmp_path / "runs")
    code, cap = run_main(script, argv + ["--out", out], capsys)
    one_line_error(code, cap, script, says)
    assert not os.path.exists(out)


def test_c_transform_keeps_its_digits_for_a_large_epsilon():
    """logsumexp − log B cancels for a large ε (0.37 off at ε = 1e6 in float32 before)."""
    from wgan_ct import c_transform
    g = torch.Generator().manual_seed(0)
    real, fake, f = torch.randn(64, 2, generator=g), torch.randn(32, 2, generator=g), \
        torch.randn(64, generator=g)
    for eps in (0.05, 1.0, 1e3, 1e6, 1e30):
        want = c_transform(f.double(), real.double(), fake.double(), eps)
        got = c_transform(f, real, fake, eps)
        assert (got.double() - want).abs().max() < 1e-5, eps
    limit = (torch.cdist(real.double(), fake.double()) - f.double()[:, None]).mean(0)
    assert (c_transform(f, real, fake, 1e30).double() - limit).abs().max() < 1e-5  # ε → ∞
    with pytest.raises(ValueError, match="0 or infinite"):
        c_transform(f, real, fake, 1e-300)


def test_extending_a_lambda_ramp_continues_it(tmp_path, capsys):
    """The ramp's length is the first --iters: resuming with more iterations keeps λ at its end
    value instead of stretching the ramp (λ used to fall from 4.7 to 1.45 and climb again)."""
    out = str(tmp_path / "runs")
    flags = quick("wgan_gp") + ["--lambda-from", "0.1", "--lambda", "10", "--eval-every", "2",
                                "--dim", "8", "--out", out]
    assert run_main("wgan_gp", flags + ["--iters", "4"], capsys)[0] == 0
    (d,) = run_dirs(out)
    assert run_main("wgan_gp", ["--resume", d, "--iters", "8"], capsys)[0] == 0
    rows = list(csv.DictReader(open(os.path.join(d, "metrics.csv"))))
    lams = [float(r["lambda"]) for r in rows[1:]]
    assert lams == sorted(lams) and lams[-1] == pytest.approx(10)
    assert torch.load(os.path.join(d, "checkpoint.pt"), map_location="cpu",
                      weights_only=True)["args"]["lambda_ramp"] == 4


def test_resume_accepts_a_value_the_run_already_has(tmp_path, capsys):
    out = str(tmp_path / "runs")
    assert run_main("wgan_ct", quick("wgan_ct") + ["--epsilon", "0.05", "--iters", "2",
                                                   "--eval-every", "2", "--out", out],
                    capsys)[0] == 0
    (d,) = run_dirs(out)
    code, cap = run_main("wgan_ct", ["--resume", d, "--iters", "3", "--epsilon", "0.05",
                                     "--batch", "32"], capsys)
    assert code == 0, cap.err
    code, cap = run_main("wgan_ct", ["--resume", d, "--iters", "4", "--epsilon", "0.5"], capsys)
    one_line_error(code, cap, "wgan_ct", "cannot change --epsilon")


def test_the_first_row_has_no_step_values(tmp_path, capsys):
    """Iteration 0 is evaluated before any training step: its step columns are empty, not 0."""
    d = _short_run("wgan_gp", str(tmp_path / "a"), capsys, iters=2)
    rows = list(csv.DictReader(open(os.path.join(d, "metrics.csv"))))
    for k in ("loss_d", "penalty", "estimate_batch", "loss_g", "lambda", "ms_per_iter"):
        assert rows[0][k] == "" and rows[1][k] != "", k
    assert rows[0]["w1"] != ""


def test_a_value_not_measured_yet_prints_as_a_dash(tmp_path, capsys):
    """Iteration 0 has no step values and no speed: the progress line shows –, never +nan."""
    r = harness.shown({"loss_d": float("nan"), "w1": 1.25, "ms_per_iter": float("nan")})
    assert f"{r['loss_d']:+.4f} {r['w1']:.3f} {r['it_per_s']:.1f}" == "– 1.250 –"
    assert f"{harness.shown({'ms_per_iter': 4.0})['it_per_s']:.1f}" == "250.0"
    code, cap = run_main("wgan_gp", quick("wgan_gp") + ["--iters", "1", "--eval-every", "1",
                                                        "--out", str(tmp_path / "b")], capsys)
    first = next(line for line in cap.out.splitlines() if "it      0/1" in line)
    assert code == 0 and "nan" not in first and "D – G –" in first


# ------------------------------------------------ third round: runs that end at the worst moment
@pytest.mark.parametrize("lost", ["row", "figures"])
def test_a_run_killed_after_its_last_checkpoint_is_completed_without_training(lost, tmp_path,
                                                                              capsys):
    """Killed after the final checkpoint, before its metrics row (lost="row") or after it,
    before the curves and the summary ("figures"): --resume, with no --iters, completes the run
    from its checkpoint (figures and summary) and trains nothing; a run that has its summary is
    done, and --resume says so."""
    script = SCRIPTS[(lost == "row") + 1]
    d = _short_run(script, str(tmp_path / "a"), capsys)
    before = torch.load(os.path.join(d, "checkpoint.pt"), weights_only=True)
    for f in ("summary.json", "curves.png") + (("critic_final.png",) if lost == "row" else ()):
        os.remove(os.path.join(d, f))
    if lost == "row":
        rows = open(os.path.join(d, "metrics.csv")).read().splitlines()
        open(os.path.join(d, "metrics.csv"), "w").write("\n".join(rows[:-1]) + "\n")
    code, cap = run_main(script, ["--resume", d], capsys)
    assert code == 0, cap.err
    assert iters_logged(d) == [0, 2, 4]
    summ = strict_json(os.path.join(d, "summary.json"))
    assert summ["status"] == "finished" and summ["final"]["iter"] == 4
    assert summ["final"]["w1"] > 0 and os.path.exists(os.path.join(d, "curves.png"))
    assert os.path.exists(os.path.join(d, "critic_final.png"))
    after = torch.load(os.path.join(d, "checkpoint.pt"), weights_only=True)
    assert all(torch.equal(before["D"][k], after["D"][k]) for k in before["D"])  # no training
    code, cap = run_main(script, ["--resume", d], capsys)
    one_line_error(code, cap, script, "at iteration 4 already")


def test_a_resumed_run_that_diverges_before_its_next_row_keeps_its_last_good_row(tmp_path,
                                                                               capsys,
                                                                               monkeypatch):
    """Its summary's final row is the last good one (the checkpoint's), not null: a sweep
    counts the run as diverged, with the W1 it had."""
    script = SCRIPTS[3]
    d = _short_run(script, str(tmp_path / "a"), capsys)
    mod = importlib.import_module(script)
    real = mod.train_step
    monkeypatch.setattr(mod, "train_step", lambda *a, **k: real(*a, **k) * float("nan"))
    code, cap = run_main(script, ["--resume", d, "--iters", "8"], capsys)
    assert code == 1 and "NaN or infinite" in cap.err
    summ = strict_json(os.path.join(d, "summary.json"))
    assert summ["status"] == "diverged" and summ["final"]["iter"] == 4 and summ["final"]["w1"] > 0


def _no_space(*a, **k):
    raise OSError(28, "No space left on device")


def test_a_full_disk_at_the_start_is_one_line_and_leaves_no_folder(tmp_path, capsys,
                                                                   monkeypatch):
    script = SCRIPTS[4]
    out = str(tmp_path / "runs")
    monkeypatch.setattr(json, "dump", _no_space)
    code, cap = run_main(script, quick(script) + ["--iters", "2", "--out", out], capsys)
    err = [line for line in cap.err.splitlines() if line.strip()]
    assert code == 1 and len(err) == 1 and "Traceback" not in cap.err
    assert "config.json (no space left on the device)" in err[0] and "nothing ran" in err[0]
    assert os.listdir(out) == []  # no folder that looks like a run, no empty .tmp


def test_a_full_disk_mid_run_stops_with_the_file_and_keeps_the_last_checkpoint(tmp_path, capsys,
                                                                              monkeypatch):
    """torch.save's own error on a full disk ("unexpected pos"): exit 1, one line naming
    checkpoint.pt, summary no_space, the half-written .tmp removed, iteration 2's checkpoint
    intact and resumable."""
    script = SCRIPTS[5]
    out = str(tmp_path / "runs")
    real, calls = torch.save, {"n": 0}

    def save(obj, path, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # iteration 4's checkpoint
            open(path, "wb").write(b"PK\x03\x04half")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 "
                               "vs 0")
        return real(obj, path, *a, **k)
    monkeypatch.setattr(torch, "save", save)
    code, cap = run_main(script, quick(script) + ["--iters", "6", "--eval-every", "2", "--out",
                                                  out], capsys)
    (d,) = run_dirs(out)
    err = [line for line in cap.err.splitlines() if line.strip()]
    assert code == 1 and len(err) == 1 and "Traceback" not in cap.err, cap.err
    assert f"cannot write {os.path.join(d, 'checkpoint.pt')}" in err[0]
    summ = strict_json(os.path.join(d, "summary.json"))
    assert summ["status"] == "no_space" and "checkpoint.pt" in summ["why"]
    assert summ["iteration"] == 2 and not os.path.exists(os.path.join(d, "checkpoint.pt.tmp"))
    monkeypatch.setattr(torch, "save", real)
    assert torch.load(os.path.join(d, "checkpoint.pt"), weights_only=True)["iteration"] == 2
    assert run_main(script, ["--resume", d], capsys)[0] == 0
    assert strict_json(os.path.join(d, "summary.json"))["status"] == "finished"


TAMPERED = {
    "data": ("args", "data", "bogus"), "dim": ("args", "dim", "abc"), "lr": ("args", "lr", -1.0),
    "n_critic": ("args", "n_critic", 0), "betas": ("args", "betas", [2.0, 3.0]),
    "seed": ("args", "seed", -5), "batch": ("args", "batch", 0),
    "fixed": ("args", "fixed_generator", "yes"), "iteration": (None, "iteration", "5"),
    "iteration<0": (None, "iteration", -3), "rng": (None, "rng_cpu", torch.zeros(3,
                                                                                dtype=torch.uint8)),
    "D": ("D", None, None),
}


TAMPER_SCRIPT = "wgan_sn" if "wgan_sn" in SCRIPTS else SCRIPTS[0]


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    """One short run, which every tampering case copies (one run, many readers)."""
    from conftest import draw_only, evaluate_small
    out = str(tmp_path_factory.mktemp("one") / "runs")
    with pytest.MonkeyPatch.context() as m:
        evaluate_small(m)
        draw_only(m)
        code, _ = run_main(TAMPER_SCRIPT, quick(TAMPER_SCRIPT) + [
            "--device", "cpu", "--iters", "2", "--eval-every", "2", "--out", out])
    assert code == 0
    return run_dirs(out)[0]


@pytest.mark.parametrize("what", sorted(TAMPERED))
def test_a_tampered_checkpoint_is_one_line_and_exit_2(what, one_run, tmp_path, capsys):
    """A checkpoint's arguments pass the parser's own checks, its iteration is a count, its
    tensors fit the run: otherwise one line, exit 2, and nothing is written."""
    import shutil
    script = TAMPER_SCRIPT
    d = str(tmp_path / "run")
    shutil.copytree(one_run, d)
    path = os.path.join(d, "checkpoint.pt")
    ck = torch.load(path, weights_only=True)
    where, key, value = TAMPERED[what]
    if where == "args":
        ck["args"][key] = value
    elif where == "D":
        ck["D"] = {k: v[..., :1] if v.dim() else v for k, v in ck["D"].items()}
    else:
        ck[key] = value
    torch.save(ck, path)
    files = sorted(os.listdir(d))
    code, cap = run_main(script, ["--resume", d, "--iters", "4"], capsys)
    one_line_error(code, cap, script, "damaged checkpoint")
    assert sorted(os.listdir(d)) == files
