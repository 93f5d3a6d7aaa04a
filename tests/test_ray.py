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
    WHY_NOT = loopback_cluster.why_not()
except ImportError:
    WHY_NOT = "Ray is not installed (pip install -r requirements-ray.txt)"

# One cluster for the module, so its tests run in one pytest-xdist worker, one after the other.
pytestmark = [pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT)),
              pytest.mark.xdist_group("ray")]

TINY = ["--only", "c-transform", "--data", "swissroll", "--no-fixed", "--iters", "3",
        "--extra", "--dim", "8", "--batch", "16", "--n-critic", "1", "--eval-every", "100"]
# Long enough to be caught running (4000 iterations take a few seconds), short enough to finish.
LONG = ["--only", "c-transform", "--data", "swissroll", "--seeds", "0", "--no-fixed", "--iters",
        "4000", "--extra", "--dim", "8", "--batch", "16", "--n-critic", "1",
        "--eval-every", "4000"]
TIMING = {"ms_per_iter", "wall_time_s"}


@pytest.fixture(scope="module")
def cluster():
    with loopback_cluster.Cluster(nodes=2, cpus=1) as c:
        yield c


def driver(cluster, program, argv, **kw):
    """The argv of a sweep run as a driver of the cluster, inside its namespace."""
    return cluster.command([sys.executable, os.path.join(ROOT, "benchmarks", program),
                            "--ray", cluster.address, *argv])


def run(cluster, program, argv, timeout=240):
    r = subprocess.run(driver(cluster, program, argv), cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def summaries(out):
    """{run key: summary.json} of every run folder under out."""
    found = {}
    for path in glob.glob(os.path.join(out, "runs", "*", "*", "summary.json")):
        key = os.path.basename(os.path.dirname(os.path.dirname(path)))
        assert key not in found, f"two run folders for {key}"
        found[key] = json.load(open(path))
    return found


def running_checkpoint(cluster, proc, deadline=120):
    """Wait until a run on the cluster has written its first checkpoint (in a worker's temporary
    folder: nothing reaches the driver before the run ends)."""
    end = time.time() + deadline
    while not glob.glob(os.path.join(cluster.work, "wgan-run-*", "runs", "*", "checkpoint.pt")):
        assert time.time() < end and proc.poll() is None, proc.communicate()
        time.sleep(0.2)


def test_a_grid_on_two_nodes_is_the_local_pools_and_a_rerun_runs_nothing(cluster, tmp_path):
    local, remote = str(tmp_path / "local"), str(tmp_path / "ray")
    argv = TINY[:TINY.index("--extra")] + ["--seeds", "0", "1", "--out"]
    extra = TINY[TINY.index("--extra"):]
    code, said, err = run(cluster, "compare.py", argv + [remote] + extra)
    assert code == 0, said + err
    assert "Traceback" not in err
    assert len(set(re.findall(r"exit 0 in \d+ s on node (\w+)", said))) == 2, said  # both nodes
    assert compare.main(argv + [local, "--jobs", "2"] + extra) == 0
    ours, theirs = summaries(remote), summaries(local)
    assert sorted(ours) == sorted(theirs) == ["c-transform-swissroll-s0",
                                              "c-transform-swissroll-s1"]
    for key, s in ours.items():  # what came back is a run folder as a local run leaves it
        folder = os.path.dirname(glob.glob(os.path.join(remote, "runs", key, "*",
                                                        "summary.json"))[0])
        assert {"config.json", "metrics.csv", "checkpoint.pt", "critic_final.png",
                "curves.png"} <= set(os.listdir(folder))
        assert s["status"] == "finished" and s["run_dir"] != theirs[key]["run_dir"]
        same = {k: v for k, v in s["final"].items() if k not in TIMING}
        assert same == {k: v for k, v in theirs[key]["final"].items() if k not in TIMING}
        assert "exit" not in open(os.path.join(remote, "runs", key, "log.txt")).read() or True
    rows = [list(csv.DictReader(open(os.path.join(o, "results.csv")))) for o in (remote, local)]
    for row in rows:
        for r in row:
            r.pop("wall_s_median")
    assert rows[0] == rows[1]
    # the same command again: every run is found finished, nothing is sent to the cluster
    before = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(remote, "runs", "*", "*",
                                                                    "*"))}
    code, said, err = run(cluster, "compare.py", argv + [remote] + extra)
    assert code == 0, said + err
    assert said.count("skipped (done)") == 2 and " exit " not in said, said
    assert before == {p: os.path.getmtime(p) for p in before}


def test_ctrl_c_brings_the_running_run_back_and_the_same_command_resumes_it(cluster, tmp_path):
    out = str(tmp_path / "cmp")
    argv = LONG[:LONG.index("--extra")] + ["--out", out] + LONG[LONG.index("--extra"):]
    proc = subprocess.Popen(driver(cluster, "compare.py", argv), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    running_checkpoint(cluster, proc)
    proc.send_signal(signal.SIGINT)
    said, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, said + err
    assert "Traceback" not in err and "(interrupted)" in said, said
    (s,) = summaries(out).values()  # the interrupted run came back, with its checkpoint
    assert s["status"] == "interrupted" and 0 < s["iteration"] < 4000
    assert glob.glob(os.path.join(out, "runs", "*", "*", "checkpoint.pt"))
    code, said, err = run(cluster, "compare.py", argv)
    assert code == 0, said + err
    assert re.search(r"resumed: exit 0 in \d+ s on node", said), said
    (s,) = summaries(out).values()  # resumed in the folder it came back to: one run
    assert s["status"] == "finished" and s["iteration"] == 4000
    (resume_cfg,) = glob.glob(os.path.join(out, "runs", "*", "*", "config-resume*.json"))


def kill_the_worker_once_running(cluster, proc):
    """SIGKILL the Ray worker process that runs the task (its training dies with it)."""
    running_checkpoint(cluster, proc)
    (pid,) = cluster.pids("ray::on_board")
    os.kill(pid, signal.SIGKILL)
    return pid


def test_a_killed_worker_is_tried_again_or_reported_failed(cluster, tmp_path):
    out = str(tmp_path / "cmp")
    argv = LONG[:LONG.index("--extra")] + ["--out", out] + LONG[LONG.index("--extra"):]
    proc = subprocess.Popen(driver(cluster, "compare.py", argv), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kill_the_worker_once_running(cluster, proc)
    said, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, said + err
    assert re.search(r"ran: exit 0 in \d+ s on node \w+ \(127.0.0.1\), try 2 of 3", said), said
    (s,) = summaries(out).values()
    assert s["status"] == "finished" and s["iteration"] == 4000
    # with no retry, the run is reported failed, in the output, the exit code and the table
    out = str(tmp_path / "questions")
    argv = ["--only", "c-transform", "--seeds", "0", "--retries", "0", "--out", out, "--extra",
            *LONG[LONG.index("--extra") + 1:], "--iters", "4000"]
    proc = subprocess.Popen(driver(cluster, "open_questions.py", argv), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kill_the_worker_once_running(cluster, proc)
    said, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, said + err
    assert "1 failed" in said and "failed after 1 try" in said, said
    assert "Failed in this call" in open(os.path.join(out, "questions.md")).read()
    assert not summaries(out)


def test_the_w1_benchmark_on_ray_is_the_local_one(cluster, tmp_path):
    argv = ["--only", "gp-onesided", "wgan-sn", "--funnels", "4", "--seeds", "0", "--iters",
            "20"]
    code, said, err = run(cluster, "w1_benchmark.py", argv + ["--out", str(tmp_path / "ray")])
    assert code == 0, said + err
    assert w1_benchmark.main(argv + ["--out", str(tmp_path / "local"), "--jobs", "1"]) == 0
    rows = [list(csv.DictReader(open(tmp_path / o / "runs.csv"))) for o in ("ray", "local")]
    for row in rows:
        for r in row:
            r.pop("seconds")
    assert rows[0] == rows[1] and len(rows[0]) == 2
