"""The W1 benchmark (benchmarks/w1_benchmark.py): its sampler is the published construction in
every dimension, its true potential and metrics are right on critics whose answer is known, a
short training moves a critic toward the optimum, its store of trainings is merged and never
shrunk, its folder is its own, and a signal leaves the tables of what finished."""
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import given, settings, strategies as st

from test_scripts import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import w1_benchmark as wb  # noqa: E402

PAIRS = [(d, w) for d in wb.DIMS for w in wb.FUNNELS]


class Potential(torch.nn.Module):
    def __init__(self, pair, sign):
        super().__init__()
        self.pair, self.sign = pair, sign

    def forward(self, x):
        return self.sign * wb.potential(x, self.pair).float()


def test_the_data_holds_every_published_pair():
    with open(wb.DATA) as fh:
        data = json.load(fh)
    assert set(data["pairs"]) == {f"dim{d}_funnels{w}" for d, w in PAIRS}
    for d, w in PAIRS:
        p = wb.load_pair(d, w)
        assert p["centers"].shape == (w, d) and p["bias"].shape == (w,)
        assert (p["centers"].abs() <= p["half"]).all() and p["deg"] == 8
        assert {"wgan-gp", "wgan-lp", "sn-gan", "sort-out", "cowgan", "true"} <= set(
            p["published"])
    assert "MIT" in data["source"]


@pytest.mark.parametrize("dim,funnels", [(2, 16), (8, 64), (32, 4), (128, 256)])
def test_p_is_q_moved_toward_its_funnel_centre(dim, funnels):
    """Each x lies on the segment from its funnel's centre to its y, in the same funnel, so u
    falls by exactly the distance moved: the plan runs along the rays of u."""
    pair = wb.load_pair(dim, funnels)
    x, y = (v.double() for v in wb.sample_plan(4096, pair, torch.Generator().manual_seed(0)))
    c = pair["centers"]
    _, ky = wb.funnel(y, pair)
    _, kx = wb.funnel(x, pair)
    moved = (x - y).norm(dim=1) > 1e-5
    assert (kx == ky)[moved].float().mean() > 0.999  # the same funnel (float32 ties aside)
    dx, dy = x - c[ky], y - c[ky]
    cos = (dx * dy).sum(1) / (dx.norm(dim=1) * dy.norm(dim=1)).clamp(min=1e-30)
    assert (cos[dx.norm(dim=1) > 1e-4] > 1 - 1e-6).all()  # on the ray from the centre through y
    assert (dx.norm(dim=1) <= dy.norm(dim=1) + 1e-5).all()  # toward the centre
    drop = wb.potential(y, pair) - wb.potential(x, pair)
    torch.testing.assert_close(drop, (y - x).norm(dim=1), atol=1e-5, rtol=0)
    assert (x.abs() <= pair["half"] + 1e-5).all()


@given(seed=st.integers(0, 2**31 - 1), pair=st.sampled_from(PAIRS))
@settings(max_examples=8)
def test_the_potential_is_1_lipschitz_and_lower_on_p(seed, pair):
    pair = wb.load_pair(*pair)
    g = torch.Generator().manual_seed(seed)
    a, b = wb.sample_q(512, pair, g), wb.sample_q(512, pair, g)
    q = (wb.potential(a, pair) - wb.potential(b, pair)).abs() / (a - b).norm(dim=1)
    assert q.max() <= 1 + 1e-9
    x, y = wb.sample_plan(512, pair, g)
    assert (wb.potential(x, pair) <= wb.potential(y, pair) + 1e-6).all()


def test_the_plan_cost_is_the_published_w1_of_every_pair():
    """Their true W1 is one estimate on 4096 samples of the plan: ours agrees with it within
    3.5 standard errors of the two estimates, on all 28 pairs (a 1 % to 1.5 % error theirs)."""
    for d, w in PAIRS:
        pair = wb.load_pair(d, w)
        x, y = wb.sample_plan(16384, pair, torch.Generator().manual_seed(7))
        cost = (x.double() - y.double()).norm(dim=1)
        se = cost.std().item() * (1 / 4096 + 1 / len(cost)) ** 0.5
        want = pair["published"]["true"]["cost"]
        assert abs(cost.mean().item() - want) < 3.5 * se, (d, w, cost.mean().item(), want)


def test_the_sampler_is_fast():
    """A batch of 1024 at D = 128 with 256 funnels: the (N, K) quantities are matrix
    products. A bound loose enough for a loaded machine; the speed itself is printed by the
    benchmark (ms/it)."""
    pair = wb.load_pair(128, 256)
    g = torch.Generator().manual_seed(0)
    wb.sample_plan(1024, pair, g)
    t = time.process_time()
    for _ in range(5):
        wb.sample_plan(1024, pair, g)
    assert (time.process_time() - t) / 5 < 0.5


def test_the_metrics_on_known_critics():
    pair = {**wb.load_pair(2, 4), "true_w1": None}
    best = wb.metrics(Potential(pair, -1), pair, n=8192)
    assert best["cos"] == pytest.approx(1, abs=1e-5) and best["l2"] == pytest.approx(0, abs=1e-8)
    assert best["estimate"] == pytest.approx(best["true_w1"], abs=0.05)
    worst = wb.metrics(Potential(pair, +1), pair, n=8192)
    assert worst["cos"] == pytest.approx(-1, abs=1e-5) and worst["l2"] == pytest.approx(4, 1e-4)
    flat = wb.metrics(lambda x: torch.ones(len(x)), pair, n=1024)
    assert flat["estimate"] == 0 and flat["cos"] == 0 and flat["l2"] == pytest.approx(1, 1e-5)
    assert 0 <= best["at_centre"] < 0.1
    high = wb.load_pair(64, 16)
    assert wb.metrics(Potential(high, -1), high, n=2048)["cos"] == pytest.approx(1, abs=1e-5)


def test_a_short_training_moves_the_critic_toward_the_optimum():
    r = wb.train("wgan-div", 2, 4, 0, 100)
    assert r["cos"] > r["cos_at_start"] + 0.3 and r["cos"] > 0.5 and "state" in r
    r = wb.train("gp-onesided-l10", 16, 4, 0, 60)
    assert r["cos"] > r["cos_at_start"] + 0.2 and "state" not in r


def test_every_constraint_is_a_script_function_with_the_protocols_widths():
    """The constraints are trained by the scripts' own critic_step on their own critic_net,
    [D, max(2D, 128), max(2D, 128), 1]: one update of each moves its critic, finite."""
    for dim in (2, 128):
        pair = wb.load_pair(dim, 4)
        g = torch.Generator().manual_seed(0)
        p, _ = wb.sample_plan(64, pair, g)
        q = wb.sample_q(64, pair, g).float()
        for name, script, flags, _ in wb.constraints():
            mod, args = wb.method(name)
            assert mod.__name__ == script
            D = wb.make_critic(name, dim)
            lin = [(m.in_features, m.out_features) if isinstance(m, torch.nn.Linear) else
                   (m.weight.shape[1],) * 2  # a residual block's own weight: a map of its width
                   for m in D.modules() if isinstance(m, torch.nn.Linear)
                   or isinstance(getattr(m, "weight", None), torch.nn.Parameter)]
            assert lin == [
                (dim, wb.width(dim)), (wb.width(dim), wb.width(dim)), (wb.width(dim), 1)]
            before = [w.detach().clone() for w in D.parameters()]
            out = mod.critic_step(D, torch.optim.Adam(D.parameters(), lr=1e-3), p, q, args)
            assert all(torch.isfinite(torch.as_tensor(v)).all() for v in out), name
            assert any(not torch.equal(a, b) for a, b in zip(before, D.parameters())), name
    assert {c[0] for c in wb.constraints(False)} < {c[0] for c in wb.constraints()}


def test_the_paper_protocol_gives_each_family_its_iterations():
    a = wb.parse_args(["--protocol", "paper", "--dims", "2", "--funnels", "4", "--seeds", "0"])
    iters = {args[0]: args[4] for _, args in wb.plan(a)}
    assert iters["gp-onesided-l10"] == 60000 and iters["wgan-clip"] == 5000
    assert iters["wgan-sn"] == 10000 and iters["groupsort"] == 25000
    assert iters["c-transform"] == 25000 and iters["slogan-l10"] == wb.OTHER_PAPER_ITERS


TINY = ["--only", "gp-onesided", "wgan-sn", "--dims", "2", "--funnels", "4", "--seeds", "0",
        "--iters", "5", "--jobs", "1"]


@pytest.mark.real_figures
def test_a_tiny_run_writes_the_tables_and_figures_and_a_rerun_merges(tmp_path, capsys,
                                                                       monkeypatch):
    out = str(tmp_path / "w1")
    drawn = []
    real_pair_figure = wb.pair_figure
    monkeypatch.setattr(wb, "pair_figure", lambda rows, pair, path: drawn.append(
        sorted({r["config"] for r in rows})) or real_pair_figure(rows, pair, path))
    assert wb.main(TINY + ["--out", out, "--heartbeat", "0.005"]) == 0
    said = capsys.readouterr().out
    assert "0/2 done, " in said and "running | still running" in said, said  # every 0.3 s
    assert "2/2 done, 0 running | wgan-sn-d2-w4-s0: cos" in said
    md = open(os.path.join(out, "results.md")).read()
    assert "| gp-onesided-l10 | 1 × 5 |" in md and "wgan-lp: 0.82, 0.17, 1.08" in md
    assert "| wgan-sn | 1 × 5 |" in md and "sn-gan: 0.21" in md and "D = 2, 4 funnels" in md
    for f in ("pair-2d-4.png", "w1-by-dim.png"):
        assert os.path.getsize(os.path.join(out, f)) > 10_000, f
    runs = list(csv.DictReader(open(os.path.join(out, "runs.csv"))))
    assert [r["config"] for r in runs] == ["gp-onesided-l10", "wgan-sn"]
    # a second call with a subset finds its training done, and the table keeps both
    assert wb.main(["--only", "wgan-sn", *TINY[3:], "--out", out]) == 0
    said = capsys.readouterr().out
    assert "1 found done" in said and "0 to run" in said
    assert len(list(csv.DictReader(open(os.path.join(out, "results.csv"))))) == 2
    # other iterations for a training it holds: refused, unless --overwrite
    with pytest.raises(SystemExit) as e:
        wb.main(["--only", "wgan-sn", *TINY[3:9], "--iters", "6", "--out", out])
    assert e.value.code == 2 and "with other iterations" in capsys.readouterr().err
    assert wb.main(["--only", "wgan-sn", *TINY[3:9], "--iters", "6", "--overwrite",
                    "--out", out]) == 0
    runs = {r["config"]: r["iters"] for r in csv.DictReader(open(os.path.join(out, "runs.csv")))}
    assert runs == {"gp-onesided-l10": "5", "wgan-sn": "6"}
    # the pair's figure is drawn from the store, as the tables: the call that trained wgan-sn
    # alone still draws gp-onesided's critic
    assert drawn == [["gp-onesided-l10", "wgan-sn"]] * 2


def test_another_programs_table_and_a_busy_folder_are_refused(tmp_path, capsys):
    import harness
    out = tmp_path / "w1"
    out.mkdir()
    (out / "results.md").write_text("Command: `python benchmarks/compare.py`\n")
    with pytest.raises(SystemExit) as e:
        wb.main(TINY + ["--out", str(out)])
    assert e.value.code == 2 and "did not write" in capsys.readouterr().err
    (out / "results.md").unlink()
    lock = harness.hold_lock(str(out / ".sweep.lock"), "busy")
    try:
        with pytest.raises(SystemExit) as e:
            wb.main(TINY + ["--out", str(out)])
        assert e.value.code == 2 and "another sweep is writing" in capsys.readouterr().err
    finally:
        lock.close()
    for damage, says in [(b"config,dim\nx,2\n", "lacks the columns"),
                         (b"\x89PNG\r\x1a\x00\xff binary", "not a runs.csv"),  # one line
                         (b"PK\x03\x04 zip", "lacks the columns"),
                         ]:
        (out / "runs.csv").write_bytes(damage)
        with pytest.raises(SystemExit) as e:
            wb.main(TINY + ["--out", str(out)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and "runs.csv" in err and says in err, err
        assert (out / "runs.csv").read_bytes() == damage  # refused, never overwritten
    good = wb.train("wgan-div", 2, 4, 0, 5, batch=64)
    wb.write_runs(str(out / "runs.csv"), {"k": good})
    with open(out / "runs.csv", "a") as fh:
        fh.write("wgan-div,2,4\n")  # a short row
    with pytest.raises(ValueError, match="a row of 3 cells"):
        wb.read_runs(str(out / "runs.csv"))
    lines = open(os.path.join(ROOT, "results", "w1_benchmark", "runs.csv")).read().splitlines()
    (out / "runs.csv").write_text(lines[0] + "\n" + lines[1].replace(",2,4,", ",3,5,", 1) + "\n")
    with pytest.raises(ValueError, match="a pair the benchmark has not: D = 3, 5 funnels"):
        wb.read_runs(str(out / "runs.csv"))


def test_the_local_pool_reports_a_failed_training_and_goes_on():
    """A training that raises is reported and the others go on; the running count is what
    runs, never the trainings waiting in the pool's queue."""
    jobs = [("bad", ("no-such-constraint", 2, 4, 0, 5, 64)),
            ("good", ("gp-onesided-l10", 2, 4, 0, 5, 64)),
            ("more", ("wgan-sn", 2, 4, 0, 5, 64))]
    seen = {}
    assert wb.sweep.in_processes(wb.train, jobs, 1, lambda k, r, e, tries, running: seen.update(
        {k: (r, e, running)}), "w1") is None
    assert seen["bad"][0] is None and "StopIteration" in seen["bad"][1]
    assert seen["good"][0]["config"] == "gp-onesided-l10"
    assert [seen[k][2] for k in ("bad", "good", "more")] == [1, 1, 0]


def test_repeated_values_train_once():
    a = wb.parse_args(["--funnels", "4", "4", "--dims", "2", "2", "--seeds", "1", "1", "--only",
                       "wgan-sn"])
    assert [k for k, _ in wb.plan(a)] == ["wgan-sn-d2-w4-s1"]


def _argv(out, *extra, seeds=6):
    return [sys.executable, os.path.join(ROOT, "benchmarks", "w1_benchmark.py"), "--only",
            "wgan-div", "--dims", "2", "--funnels", "4", "--seeds", *map(str, range(seeds)),
            "--jobs", "2", "--out", out, *extra]


def _driver(out, *extra, seeds=6):
    argv = _argv(out, *extra, seeds=seeds)
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            start_new_session=True)


def _workers(pid):
    """The pool's worker processes of the driver pid (not multiprocessing's resource
    tracker, which leaves on its own when the driver is gone). Read from /proc, not `ps`:
    `ps` cuts its lines at $COLUMNS, and a long interpreter path hides the worker's name."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue  # not a process, or one that ended while we looked
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry))
    return found


def _gone(pids, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.2)
    return not [p for p in pids if os.path.exists(f"/proc/{p}")]


def _wait_for(proc, what, deadline):
    """Lines of proc's stdout until one contains `what`; fails saying what it waited for."""
    seen = ""
    while what not in seen:
        line = proc.stdout.readline()
        assert line or proc.poll() is None, f"the driver ended before {what!r}: {seen}"
        assert time.time() < deadline, f"no {what!r} after its deadline: {seen}"
        seen += line
    return seen


def test_sigterm_stops_the_workers_and_writes_what_finished(tmp_path):
    """The first training ends, then SIGTERM as `timeout` sends it: once to the driver and once
    to its whole process group, workers included. The queued trainings are cancelled and the
    running ones stopped, none of them reported failed (a worker ignores the group's signal; the
    second copy is the same request, not "at once"), the table of the finished one is written
    with a note of what is missing, exit 143, no worker left."""
    out = str(tmp_path / "w1")
    short = ("--iters", "100", "--eval-at", "50")  # two rows a training: its curve's, its end's
    proc = _driver(out, *short, seeds=4)
    _wait_for(proc, "1/4 done", time.time() + 240)
    workers = _workers(proc.pid)
    assert len(workers) == 2
    proc.send_signal(signal.SIGTERM)
    os.killpg(proc.pid, signal.SIGTERM)  # _driver starts it in a session (a group) of its own
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, rest + err
    assert "Traceback" not in err and "interrupted" in rest and "stopped at once" not in err
    assert "failed" not in rest and "BrokenProcessPool" not in rest, rest
    md = open(os.path.join(out, "results.md")).read()
    assert "Not done: 3 of the 4 planned" in md or "Not done: 2 of the 4 planned" in md, md
    assert len({r["seed"] for r in csv.DictReader(open(os.path.join(out, "runs.csv")))}) in (1, 2)
    assert _gone(workers), "workers left running"
    # the same command again: what was stopped runs, what finished is not run again; every
    # training has its rows, none twice
    r = subprocess.run(_argv(out, *short, seeds=4), cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0 and "found done" in r.stdout, r.stdout + r.stderr
    rows = [(x["seed"], x["at"]) for x in csv.DictReader(open(os.path.join(out, "runs.csv")))]
    assert sorted(rows) == sorted({(str(s), a) for s in range(4) for a in ("50", "100")})


def test_a_second_ctrl_c_ends_at_once(tmp_path):
    out = str(tmp_path / "w1")
    proc = _driver(out, "--iters", "100000")
    _wait_for(proc, "6 to run", time.time() + 120)
    time.sleep(3)  # the workers are training
    workers = _workers(proc.pid)
    assert len(workers) == 2
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    t = time.time()
    rest, err = proc.communicate(timeout=60)
    # 130 from the driver, or death by the signal itself (-2) if it came while Python was
    # already shutting down: either way the shell says 130
    assert time.time() - t < 30 and proc.returncode in (130, -signal.SIGINT), rest + err
    assert "Traceback" not in err, err
    assert _gone(workers), "workers left running"


@pytest.mark.parametrize("argv,says", [(["--funnels", "5"], "--funnels"),
                                       (["--dims", "3"], "--dims"),
                                       (["--only", "nope"], "matches no constraint"),
                                       (["--iters", "0"], "--iters"),
                                       (["--protocol", "paper", "--iters", "9"], "--protocol"),
                                       (["--device", "cuda:7"], "--device"),
                                       (["--out", "/proc/no-such-dir/x"], "cannot write")])
def test_bad_flags_are_one_line(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        wb.main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and says in err


def test_a_reader_that_leaves_loses_no_training(tmp_path):
    """`w1_benchmark.py ... | head -1`: the pipe closes after the first line; every training
    still runs and is kept, the tables are written, exit 0, no traceback."""
    out = str(tmp_path / "w1")
    argv = [sys.executable, os.path.join(ROOT, "benchmarks", "w1_benchmark.py"), *TINY,
            "--jobs", "2", "--out", out]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert b"trainings planned" in proc.stdout.readline()
    proc.stdout.close()  # as head does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=240) == 0 and "Traceback" not in err, err
    assert len(list(csv.DictReader(open(os.path.join(out, "runs.csv"))))) == 2
    assert os.path.exists(os.path.join(out, "results.md"))


# ----------------------------------------------------------------- learning curves (runs.csv rows)
def test_a_curve_point_is_what_a_shorter_training_ends_with():
    """Measuring along a training draws from a stream of its own: the point at iteration 20 of a
    30-iteration training is the 20-iteration training's result, bit for bit (CPU)."""
    short = wb.train("gp-onesided-l10", 2, 4, 0, 20, batch=64)
    long = wb.train("gp-onesided-l10", 2, 4, 0, 30, batch=64, at=[10, 20, 99])
    assert [c["at"] for c in long["curve"]] == [10, 20, 30]  # 99 is past its end
    (at20,) = [c for c in long["curve"] if c["at"] == 20]
    for k in ("cos", "l2", "estimate", "grad_norm_mean", "grad_norm_max"):
        assert at20[k] == short[k], k
    assert long["curve"][-1]["cos"] == long["cos"] and long["at"] == 30
    assert wb.eval_points(10000) == [100, 200, 500, 1000, 2000, 5000, 10000]
    assert wb.eval_points(5, [100]) == [5]


@pytest.mark.parametrize("config", [c[0] for c in wb.constraints(all_configs=False)])
def test_an_interrupted_training_goes_on_from_its_checkpoint(config, tmp_path, monkeypatch):
    """Killed after its first point: the next call finds its checkpoint and ends with the
    numbers of a training that was never interrupted; one of another length is not used.
    Every constraint's, so that a critic's extra state (GroupSort's orthogonal base, SN's
    power-iteration vectors) is seen to travel in the checkpoint."""
    whole = wb.train(config, 2, 4, 0, 30, batch=64, at=[10, 20])
    ck = str(tmp_path / "k.pt")
    saved = wb.save_training

    def save_then_die(*args):
        saved(*args)
        raise KeyboardInterrupt  # as SIGKILL would, right after the checkpoint
    monkeypatch.setattr(wb, "save_training", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        wb.train(config, 2, 4, 0, 30, batch=64, at=[10, 20], checkpoint=ck)
    monkeypatch.setattr(wb, "save_training", saved)
    assert torch.load(ck, weights_only=True)["done"] == 10
    again = wb.train(config, 2, 4, 0, 30, batch=64, at=[10, 20], checkpoint=ck)
    assert [(c["at"], c["cos"], c["estimate"]) for c in again["curve"]] == \
        [(c["at"], c["cos"], c["estimate"]) for c in whole["curve"]]
    other = wb.train(config, 2, 4, 0, 40, batch=64, at=[10, 20], checkpoint=ck)
    assert [c["cos"] for c in other["curve"][:2]] == [c["cos"] for c in whole["curve"][:2]]


def test_runs_csv_holds_a_row_per_training_and_point_and_reads_an_older_one(tmp_path):
    path = str(tmp_path / "runs.csv")
    r = wb.train("wgan-div", 2, 4, 0, 30, batch=64, at=[10])
    wb.write_runs(path, {"a": r})
    rows = list(csv.DictReader(open(path)))
    assert [int(x["at"]) for x in rows] == [10, 30] and {x["iters"] for x in rows} == {"30"}
    back = wb.read_runs(path)[wb.key("wgan-div", 2, 4, 0)]
    assert back["at"] == 30 and [c["at"] for c in back["curve"]] == [10, 30]
    assert back["cos"] == pytest.approx(r["cos"], rel=1e-12)
    # the store of an earlier version: a row per training, no `at`, no gradient norms
    old = [{k: v for k, v in x.items() if k not in wb.ADDED} for x in rows[1:]]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(old[0]))
        w.writeheader()
        w.writerows(old)
    back = wb.read_runs(path)[wb.key("wgan-div", 2, 4, 0)]
    assert back["at"] == 30 and len(back["curve"]) == 1 and math.isnan(back["grad_norm_mean"])
    # two rows of one training at the same point: damaged, refused
    with open(path, "a", newline="") as fh:
        csv.DictWriter(fh, fieldnames=list(old[0])).writerow(old[0])
    with pytest.raises(ValueError, match="not one training's"):
        wb.read_runs(path)


def test_a_folder_where_every_training_diverged_gets_its_tables_and_a_figure(tmp_path, capsys,
                                                                            monkeypatch):
    """Every cos, L2 and estimate NaN: the tables say diverged, the figure says which, and the
    call ends normally (before: a traceback in the figure, after results.md was rewritten)."""
    out = tmp_path / "w1"
    out.mkdir()
    r = wb.train("wgan-div", 2, 4, 0, 5, batch=64)
    for row in [r, *r["curve"]]:
        row.update(cos=math.nan, l2=math.nan, estimate=math.nan, diverged=True)
    wb.write_runs(str(out / "runs.csv"), {"x": r})
    import common
    figures = []
    monkeypatch.setattr(common, "_save", lambda fig, path: figures.append(fig) or path)
    argv = ["--only", "wgan-div", "--dims", "2", "--funnels", "4", "--seeds", "0", "--iters",
            "5", "--out", str(out)]
    assert wb.main(argv) == 0, capsys.readouterr().err
    assert "| wgan-div | 1 × 5 (1 diverged) |" in (out / "results.md").read_text()
    said = [(ax.get_title(), t.get_text()) for fig in figures for ax in fig.axes
            for t in ax.texts]
    assert ("wgan-div: cos(∇f, −∇u)", "diverged") in said, said


def test_the_curves_figure_says_each_panels_seeds_and_draws_their_range(monkeypatch):
    """A constraint at three seeds and one at one: each panel's title says how many it holds,
    the line is the median at every point measured and the band spans the seeds' range; one
    legend entry for every constraint's line, whatever its seeds."""
    import common
    r = wb.train("wgan-div", 2, 4, 0, 20, batch=64, at=[10])
    store = {}
    for seed, shift in enumerate((0.0, 0.1, -0.05)):
        curve = [{**c, "cos": c["cos"] + shift} for c in r["curve"]]
        store[wb.key("wgan-div", 2, 4, seed)] = {**curve[-1], "seed": seed, "curve": curve}
    store[wb.key("wgan-sn", 2, 4, 0)] = {**r, "config": "wgan-sn"}
    pair = {**wb.load_pair(2, 4), "true_w1": 1.0}
    figures = []
    monkeypatch.setattr(common, "_save", lambda fig, path: figures.append(fig) or path)
    wb.curves_figure(store, pair, "unused.png")
    (fig,) = figures
    titles = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    ax = titles["wgan-div (3 seeds): cos(∇f, −∇u)"]
    assert "wgan-sn (1 seed): cos(∇f, −∇u)" in titles, sorted(titles)
    (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("the panel's")]
    assert list(line.get_xdata()) == [10, 20]
    assert list(line.get_ydata()) == pytest.approx([c["cos"] for c in r["curve"]])  # median
    (band,) = ax.collections
    ys = band.get_paths()[0].vertices[:, 1]
    assert min(ys) == pytest.approx(min(c["cos"] for c in r["curve"]) - 0.05)
    assert max(ys) == pytest.approx(max(c["cos"] for c in r["curve"]) + 0.1)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert sum(lab.startswith("the panel's constraint") for lab in labels) == 1, labels


def test_a_curves_figure_of_one_constraint_has_room_for_its_title_and_legend(monkeypatch):
    """One constraint's curves (a single column of panels): the title and the legend lie
    inside the figure, not cut at its edges."""
    import common
    r = wb.train("wgan-div", 2, 4, 0, 20, batch=64, at=[10])
    figures = []
    monkeypatch.setattr(common, "_save", lambda fig, path: figures.append(fig) or path)
    wb.curves_figure({wb.key("wgan-div", 2, 4, 0): r}, {**wb.load_pair(2, 4), "true_w1": 1.0},
                     "unused.png")
    (fig,) = figures
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)  # the constrained layout places title and legend
    inside = fig.bbox.padded(1)
    for artist in (fig._suptitle, fig.legends[0]):
        box = artist.get_window_extent(renderer)
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1, (artist, box, fig.bbox)


def test_the_lambda_grid_trains_each_penalty_at_each_weight():
    a = wb.parse_args(["--only", "gp-onesided", "wgan-sn", "--lambdas", "1", "100", "--dims",
                       "2", "--funnels", "4", "--seeds", "0"])
    assert [k for k, _ in wb.plan(a)] == ["gp-onesided-l10@λ1-d2-w4-s0",
                                          "gp-onesided-l10@λ100-d2-w4-s0"]
    mod, args = wb.method("gp-onesided-l10@λ100")
    assert args.lam == 100 and args.one_sided and wb.paper_iters("gp-onesided-l10@λ100") == 60000


def test_a_pair_figure_is_not_drawn_with_fewer_panels_than_the_store_has(tmp_path, capsys,
                                                                         monkeypatch):
    """A store written before critics were kept: a first seed's critic is trained again and
    kept where it agrees with the stored numbers; where it does not, the figure there is left
    as it was, said in a line (never redrawn without the panels it had)."""
    out = tmp_path / "w1"
    assert wb.main(TINY + ["--out", str(out)]) == 0
    import shutil
    shutil.rmtree(out / "critics")
    drawn = []
    monkeypatch.setattr(wb, "pair_figure", lambda rows, pair, path: drawn.append(
        sorted({r["config"] for r in rows})) or path)
    argv = ["--only", "wgan-sn", *TINY[3:9], "--iters", "6", "--overwrite", "--out", str(out)]
    assert wb.main(argv) == 0
    assert drawn == [["gp-onesided-l10", "wgan-sn"]]  # gp-onesided's trained again, and kept
    shutil.rmtree(out / "critics")
    rows = list(csv.DictReader(open(out / "runs.csv")))
    for r in rows:  # as if stored by another version of the code
        r["cos"] = str(float(r["cos"]) - 0.1) if r["config"] == "gp-onesided-l10" else r["cos"]
    with open(out / "runs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    argv[argv.index("6")] = "7"
    capsys.readouterr()
    assert wb.main(argv) == 0
    assert len(drawn) == 1 and "pair-2d-4.png is not redrawn" in capsys.readouterr().out


# ------------------------------------------- the largest quotient, a configuration's own rate
def test_the_largest_quotient_finds_a_known_lipschitz_constant():
    """On analytic critics: a linear f(x) = a·x in 2-D reaches ‖a‖ (its close pairs point every
    way) and never passes it; a funnel's −u is 1-Lipschitz and its quotient nears 1 from below."""
    pair = wb.load_pair(2, 4)
    a = torch.tensor([0.6, -0.3])
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(a[None]), lin.bias.zero_()
    q = wb.largest_quotient(lin, pair, n=2000)
    assert a.norm().item() * 0.99 < q <= a.norm().item() + 1e-12

    class MinusU(torch.nn.Module):
        def forward(self, x):
            return -wb.potential(x, pair)
    assert 0.9 < wb.largest_quotient(MinusU(), pair, n=2000) <= 1 + 1e-12


def test_a_configuration_may_state_its_own_adam_and_the_curve_its_quotient():
    """GroupSort's half-rate case trains with Adam 1e-4 and the published sort-out's betas
    case with (0.9, 0.999) (their w1_adam), the others with lr 2e-4 and betas (0, 0.9); a
    training measures the quotient from QUOTIENT_FROM on, and runs.csv keeps it."""
    assert wb.adam_settings("groupsort-lr1e-4") == {"lr": 1e-4, "betas": (0.0, 0.9)}
    assert wb.adam_settings("groupsort-adam-betas") == {"lr": 2e-4, "betas": (0.9, 0.999)}
    assert wb.adam_settings("groupsort") == wb.adam_settings("gp-onesided-l10@λ1") == wb.ADAM
    D, opt, _ = wb.start("groupsort-adam-betas", 2, 0, torch.device("cpu"))
    assert opt.param_groups[0]["betas"] == (0.9, 0.999) and opt.param_groups[0]["lr"] == 2e-4
    r = wb.train("cowgan-rule", 2, 4, 0, 20, batch=64, at=[10])
    assert [math.isnan(c["quotient_max"]) for c in r["curve"]] == [True, False]  # the last
    old = wb.QUOTIENT_FROM
    try:
        wb.QUOTIENT_FROM = 10
        r = wb.train("cowgan-rule", 2, 4, 0, 20, batch=64, at=[5, 10])
    finally:
        wb.QUOTIENT_FROM = old
    assert [math.isnan(c["quotient_max"]) for c in r["curve"]] == [True, False, False]
    assert r["quotient_max"] > 0


def test_the_pair_tables_show_the_quotient_only_where_it_was_measured():
    import report
    row = {"dim": "2", "funnels": "4", "config": "x", "seeds": "1", "iters": "10",
           "true_w1": "0.8", "published_true_w1": "0.8", "published_solver": "",
           "at_centre": "0", "ms_per_iter": "1", "diverged": "0",
           **{k + s: "0.5" for k in ("cos", "l2", "est_over_w1") for s in ("", "_min", "_max")}}
    old = report.w1_pairs([row])
    assert "max quotient" not in "\n".join(old)
    new = report.w1_pairs([row, {**row, "config": "y", "quotient": "0.97",
                                 "quotient_min": "0.9", "quotient_max": "1.01"}])
    assert "| max quotient |" in new[2] and "| 0.970 [0.900, 1.010] |" in new[5]
    assert new[4].count("|") == new[5].count("|") == new[2].count("|")
