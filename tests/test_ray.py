"""The sweeps on a real Ray cluster (--ray): two nodes on this machine, each a `ray start` of its
own, inside a network namespace with only the loopback interface (benchmarks/loopback_cluster.py),
so that no connection leaves 127.0.0.1. The drivers run in that namespace too. Skipped where Ray
is not installed (requirements-ray.txt) or a network namespace cannot be made (not root)."""
import csv
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from test_scripts import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import compare  # noqa: E402
import loopback_cluster  # noqa: E402
import w1_benchmark  # noqa: E402

try:
    import ray  # noqa: F401
    NO_RAY = None
except ImportError:
    NO_RAY = "Ray is not installed (pip install -r requirements-ray.txt)"
needs_ray = pytest.mark.skipif(NO_RAY is not None, reason=str(NO_RAY))
WHY_NOT = NO_RAY or loopback_cluster.why_not()
needs_cluster = pytest.mark.skipif(WHY_NOT is not None, reason=f"no loopback cluster: {WHY_NOT}")
# One cluster for the module, so its tests run in one pytest-xdist worker, one after the other.
pytestmark = pytest.mark.xdist_group("ray")

# 25gaussians: the cheapest evaluation of the toys (no distance-to-the-data statistics).
TINY = ["--only", "c-transform", "--data", "25gaussians", "--no-fixed", "--iters", "3",
        "--extra", "--dim", "8", "--batch", "16", "--n-critic", "1", "--eval-every", "100"]
# Long enough to be caught running (~600 iterations a second), short enough to finish.
ITERS = 1500
LONG = ["--only", "c-transform", "--data", "25gaussians", "--mixture-seeds", "0", "--no-fixed",
        "--iters", str(ITERS), "--extra", "--dim", "8", "--batch", "16", "--n-critic", "1",
        "--eval-every", str(ITERS)]
TIMING = {"ms_per_iter", "wall_time_s"}


def test_the_module_runs_in_one_worker(request):
    """Its tests share one cluster only if pytest-xdist sends them all to one worker (pytest.ini:
    --dist loadgroup). With pytest 9.2 and pytest-xdist 3.8 the group was silently dropped (the
    group is carried as a suffix of the node id, which pytest 9.2 no longer lets a plugin
    change), and two workers each started a cluster of their own."""
    if not os.environ.get("PYTEST_XDIST_WORKER") or not request.config.getoption("loadgroup",
                                                                                   False):
        pytest.skip("not run by pytest-xdist with --dist loadgroup")
    assert request.node.nodeid.endswith("@ray"), (
        f"{request.node.nodeid}: pytest-xdist did not group this module's tests; see the note "
        f"on the pytest pin in requirements.txt")


@pytest.fixture(scope="module")
def cluster():
    with loopback_cluster.Cluster(nodes=2, cpus=1, head_gpus=1) as c:
        yield c


def driver(cluster, program, argv):
    """The argv of a sweep run as a driver of the cluster, inside its namespace."""
    return cluster.command([sys.executable, os.path.join(ROOT, "benchmarks", program),
                            "--ray", cluster.address, *argv])


def run(cluster, program, argv, timeout=600):
    proc = subprocess.Popen(driver(cluster, program, argv), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    said, err = finish(proc, timeout, f"{program} to end")
    return proc.returncode, said, err


def finish(proc, timeout, what):
    """proc's (stdout, stderr) once it has ended. The timeout only bounds a hang (the whole of
    this file takes ~5 minutes beside four busy loops on 2 cores): a hang is killed and the
    failure says what was waited for, with what the driver had said so far."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        said, err = proc.communicate()
        pytest.fail(f"waited {timeout} s for {what}; the driver said:\n{said}\n{err}")


def summaries(out):
    """{run key: summary.json} of every run folder under out."""
    found = {}
    for path in glob.glob(os.path.join(out, "runs", "*", "*", "summary.json")):
        key = os.path.basename(os.path.dirname(os.path.dirname(path)))
        assert key not in found, f"two run folders for {key}"
        found[key] = json.load(open(path))
    return found


def run_folders(cluster):
    """The runs' temporary folders on the cluster's workers, those of earlier tests included."""
    return set(glob.glob(os.path.join(cluster.work, "wgan-run-*")))


def running_checkpoint(cluster, proc, seen, deadline=600):
    """Wait until a run on the cluster has written its first checkpoint in a worker's temporary
    folder not in seen (the folders there before, of earlier tests or tries: nothing reaches the
    driver before the run ends); returns that folder. The event itself is waited for: the
    deadline only bounds a hang, and is far beyond the ~20 s it takes on a loaded 2-core
    machine."""
    end = time.time() + deadline
    while True:
        found = [f for f in run_folders(cluster) - set(seen)
                 if glob.glob(os.path.join(f, "runs", "*", "checkpoint.pt"))]
        if found:
            return found[0]
        assert proc.poll() is None, ("the driver ended before a run on the cluster wrote its "
                                     "first checkpoint", proc.communicate())
        if time.time() > end:
            proc.kill()
            pytest.fail(f"waited {deadline} s for a run on the cluster to write its first "
                        f"checkpoint; the driver said:\n" + "\n".join(proc.communicate()))
        time.sleep(0.1)


@needs_cluster
def test_a_grid_on_two_nodes_is_the_local_pools_and_a_rerun_runs_nothing(cluster, tmp_path):
    local, remote = str(tmp_path / "local"), str(tmp_path / "ray")
    argv = TINY[:TINY.index("--extra")] + ["--mixture-seeds", "0", "1", "--out"]
    extra = TINY[TINY.index("--extra"):]
    code, said, err = run(cluster, "compare.py", argv + [remote, "--heartbeat", "0.02"] + extra)
    assert code == 0, said + err
    assert "Traceback" not in err
    assert re.search(r"0/2 done, [12] running \| still running", said), said  # every 1.2 s
    assert len(set(re.findall(r"exit 0 in [\d.]+ s on node (\w+)", said))) == 2, said  # 2 nodes
    # the local pool's run of seed 0 (one is enough to compare: both went the same way)
    local_argv = argv[:argv.index("--mixture-seeds")] + ["--mixture-seeds", "0", "--out"]
    assert compare.main(local_argv + [local, "--jobs", "1"] + extra) == 0
    ours, theirs = summaries(remote), summaries(local)
    assert sorted(ours) == ["c-transform-25gaussians-s0", "c-transform-25gaussians-s1"]
    assert sorted(theirs) == ["c-transform-25gaussians-s0"]
    for key, s in ours.items():  # what came back is a run folder as a local run leaves it
        folder = os.path.dirname(glob.glob(os.path.join(remote, "runs", key, "*",
                                                        "summary.json"))[0])
        assert {"config.json", "metrics.csv", "checkpoint.pt", "critic_final.png",
                "curves.png"} <= set(os.listdir(folder))
        assert s["status"] == "finished"
        assert "finished in" in open(os.path.join(remote, "runs", key, "log.txt")).read()
    s, t = ours["c-transform-25gaussians-s0"], theirs["c-transform-25gaussians-s0"]
    assert s["run_dir"] != t["run_dir"]
    assert ({k: v for k, v in s["final"].items() if k not in TIMING}
            == {k: v for k, v in t["final"].items() if k not in TIMING})
    (row,) = csv.DictReader(open(os.path.join(remote, "results.csv")))
    assert row["runs"] == "2"
    # the same command again: every run is found finished, nothing is sent to the cluster
    before = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(remote, "runs", "*", "*",
                                                                    "*"))}
    code, said, err = run(cluster, "compare.py", argv + [remote] + extra)
    assert code == 0, said + err
    assert said.count("skipped (done)") == 2 and " exit " not in said, said
    assert before == {p: os.path.getmtime(p) for p in before}


@needs_cluster
def test_a_killed_worker_is_tried_again_and_ctrl_c_brings_the_run_back_to_resume(cluster,
                                                                              tmp_path):
    """Kill the Ray worker that runs the task: Ray tries it again. Ctrl-C during the second
    try: the run writes its checkpoint and its folder comes back. The same command resumes it
    (its folder travels to a worker and back) and it finishes, in one run folder."""
    out = str(tmp_path / "cmp")
    argv = LONG[:LONG.index("--extra")] + ["--out", out] + LONG[LONG.index("--extra"):]
    seen = run_folders(cluster)
    proc = subprocess.Popen(driver(cluster, "compare.py", argv), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = kill_once_running(cluster, proc, seen)
    running_checkpoint(cluster, proc, seen | {first})  # the second try is under way
    proc.send_signal(signal.SIGINT)
    said, err = finish(proc, 300, "the driver to end after Ctrl-C")
    assert proc.returncode == 130, said + err
    assert "Traceback" not in err, err
    assert re.search(r"ran: exit 130 in [\d.]+ s on node \w+ \(127.0.0.1\), try 2 of 3 "
                     r"\(interrupted\)", said), said
    (s,) = summaries(out).values()  # the interrupted run came back, with its checkpoint
    assert s["status"] == "interrupted" and 0 < s["iteration"] < ITERS
    assert glob.glob(os.path.join(out, "runs", "*", "*", "checkpoint.pt"))
    code, said, err = run(cluster, "compare.py", argv)
    assert code == 0, said + err
    assert re.search(r"resumed: exit 0 in [\d.]+ s on node", said), said
    (s,) = summaries(out).values()  # resumed in the folder it came back to: one run
    assert s["status"] == "finished" and s["iteration"] == ITERS
    assert glob.glob(os.path.join(out, "runs", "*", "*", "config-resume*.json"))


def kill_once_running(cluster, proc, seen, what="ray::on_board"):
    """SIGKILL the process whose command line holds `what` (by default the Ray worker that runs
    the task; its training dies with it) once the run has written its first checkpoint in a
    folder not in seen; returns the run's temporary folder."""
    folder = running_checkpoint(cluster, proc, seen)
    # The training writes its checkpoint while its worker runs: one process, there already (a
    # worker renames itself ray::<function> as its task starts). Asked for a few times only
    # because /proc is read while processes come and go.
    for _ in range(50):
        pids = cluster.pids(what)
        if len(pids) == 1:
            break
        time.sleep(0.1)
    assert len(pids) == 1, (f"one process with {what!r} in its command line was expected on "
                            f"the cluster while the run wrote {folder}; found {pids}")
    # at the niceness the cluster gave it (Ray's own 15 starves it beside other work)
    assert os.getpriority(os.PRIO_PROCESS, pids[0]) == cluster.niceness == 0
    os.kill(pids[0], signal.SIGKILL)
    return folder


@needs_cluster
def test_a_run_whose_training_is_killed_more_often_than_retries_is_reported_failed(
        cluster, tmp_path):
    """The training process alone killed (as the OOM killer does), and --retries 0: the sweep
    (open_questions.py) goes on, and says the run failed in its output, its exit code and its
    table."""
    out = str(tmp_path / "questions")
    argv = ["--only", "c-transform", "--seeds", "0", "--retries", "0", "--out", out, "--extra",
            *LONG[LONG.index("--extra") + 1:], "--iters", str(ITERS)]
    seen = run_folders(cluster)
    proc = subprocess.Popen(driver(cluster, "open_questions.py", argv), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kill_once_running(cluster, proc, seen, what="runpy.run_path")  # the training's command line
    said, err = finish(proc, 600, "open_questions.py to end after its training was killed")
    assert proc.returncode == 1, said + err
    assert "1 failed" in said and "failed after 1 try: the training died of signal 9" in said
    assert "Failed in this call" in open(os.path.join(out, "questions.md")).read()
    assert not summaries(out)


@needs_cluster
def test_a_run_that_no_node_can_hold_is_refused_before_anything_runs(cluster, tmp_path):
    code, said, err = run(cluster, "compare.py", TINY[:TINY.index("--extra")] + [
        "--mixture-seeds", "0", "--device", "auto", "--gpus-per-run", "2", "--out",
        str(tmp_path)])
    assert code == 2 and "no node of the cluster has 1 CPUs and 2 GPUs" in err, said + err
    assert "127.0.0.1: 1 CPUs, 1 GPUs" in err and "127.0.0.1: 1 CPUs, 0 GPUs" in err
    assert not os.listdir(tmp_path / "runs")


@needs_cluster
def test_the_w1_benchmark_packs_runs_on_a_gpu_and_gives_the_local_numbers(cluster, tmp_path):
    """Half a GPU and half a CPU a training: both go to the head, which declares one GPU (Ray
    takes it on trust; torch here has no CUDA, so --device auto trains on the CPU), side by
    side: each ran while the other did (their trainings are long enough, ~2 s each, that a
    loaded machine's slower start of the second cannot miss the first). Its trainings come back
    as values: the same numbers as train() gives here."""
    argv = ["--only", "gp-onesided", "wgan-sn", "--dims", "2", "--funnels", "4", "--seeds", "0",
            "--iters", "100", "--device", "auto", "--cpus-per-run", "0.5", "--gpus-per-run",
            "0.5"]
    code, said, err = run(cluster, "w1_benchmark.py", argv + ["--out", str(tmp_path)])
    assert code == 0, said + err
    assert "1/2 done, 1 running" in said, said  # the two at once, on one node
    rows = list(csv.DictReader(open(tmp_path / "runs.csv")))
    assert [r["config"] for r in rows] == ["gp-onesided-l10", "wgan-sn"]
    for r in rows:
        here = w1_benchmark.train(r["config"], 2, 4, 0, 100)
        for k in ("cos", "l2", "estimate", "true_w1", "at_centre"):
            assert float(r[k]) == here[k], k


# ------------------------------------------------------------------- without a cluster
@needs_ray
def test_a_run_folder_makes_the_trip_whole_and_an_archive_cannot_write_outside(tmp_path):
    import tarfile
    import on_ray
    run = tmp_path / "a" / "wgan_ct-x"
    run.mkdir(parents=True)
    (run / "summary.json").write_text('{"status": "finished"}')
    (run / "checkpoint.pt").write_bytes(bytes(range(256)) * 100)
    blob = on_ray.pack(str(tmp_path / "a"), ["wgan_ct-x"])
    on_ray.unpack(blob, str(tmp_path / "b"))
    for f in ("summary.json", "checkpoint.pt"):
        assert (tmp_path / "b" / "wgan_ct-x" / f).read_bytes() == (run / f).read_bytes()
    for name in ("../escaped", str(tmp_path / "absolute")):  # a damaged or hostile archive
        buf = __import__("io").BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.addfile(tarfile.TarInfo(name), __import__("io").BytesIO(b""))
        try:  # refused, or (an absolute path, where Python has tarfile's data filter) kept inside
            on_ray.unpack(buf.getvalue(), str(tmp_path / "c"))
            assert name.startswith("/") and (tmp_path / "c" / name.lstrip("/")).exists()
        except tarfile.TarError:
            pass
    assert not (tmp_path / "absolute").exists()
    assert not (tmp_path / "escaped").exists()


@needs_ray
def test_an_address_where_no_head_answers_is_one_line_at_once(tmp_path, capsys):
    t = time.time()
    with pytest.raises(SystemExit) as e:
        compare.main(["--only", "c-transform", "--data", "swissroll", "--seeds", "0",
                      "--no-fixed", "--out", str(tmp_path), "--ray", "127.0.0.1:1"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and "no Ray head answers there" in err, err
    assert time.time() - t < 30


def test_the_overhead_is_the_slot_time_a_run_took_beyond_its_own():
    import ray_overhead
    r = ray_overhead.per_run({"wall": 20.0, "own": [8.0, 9.0, 10.0, 9.5]}, slots=2)
    assert r == {"slot": 10.0, "own": 9.25, "overhead": 0.75}  # 20 s × 2 slots / 4 runs
