"""What sending runs to Ray costs: the same tiny grid of compare.py runs through the local pool
and through --ray, with as many runs at a time on both (--jobs here, the cluster's CPUs there),
each into a fresh folder. Per run: the slot time it took (the sweep's wall time × runs at a
time / runs), the run's own time (its process, start to exit, as the sweep's line gives it),
and the overhead, their difference: starting the process, and on Ray also the task's
scheduling, shipping the code, and the run folder's trip back as an archive.

    python benchmarks/loopback_cluster.py -- python benchmarks/ray_overhead.py --ray 127.0.0.1:6379
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# c-transform runs of 3 iterations: a run's cost is its process and evaluation, the sweep's own
# cost shows.
GRID = ["--only", "c-transform", "--data", "swissroll", "--no-fixed", "--iters", "3",
        "--extra", "--dim", "8", "--batch", "16", "--n-critic", "1", "--eval-every", "100"]


def sweep(where: list, runs: int, out: str) -> dict:
    """Run the grid of `runs` seeds with `where` (--jobs N or --ray ADDRESS): wall seconds of
    the whole call and each run's own seconds (from its line: 'exit 0 in 3.2 s')."""
    i = GRID.index("--extra")
    argv = [sys.executable, os.path.join(ROOT, "benchmarks", "compare.py"), *GRID[:i],
            "--seeds", *map(str, range(runs)), "--out", out, *where, *GRID[i:]]
    t = time.time()
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - t
    if r.returncode:
        raise SystemExit(f"ray_overhead.py: {' '.join(where)} failed:\n{r.stdout}{r.stderr}")
    own = [float(s) for s in re.findall(r"exit 0 in ([\d.]+) s", r.stdout)]
    if len(own) != runs:
        raise SystemExit(f"ray_overhead.py: expected {runs} runs, saw {len(own)}:\n{r.stdout}")
    return {"wall": wall, "own": own}


def per_run(result: dict, slots: int) -> dict:
    """Slot seconds per run, the runs' median own seconds, and the overhead between them."""
    slot = result["wall"] * slots / len(result["own"])
    own = statistics.median(result["own"])
    return {"slot": slot, "own": own, "overhead": slot - own}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="ray_overhead.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--ray", required=True, metavar="auto|ADDRESS", help="the cluster")
    p.add_argument("--runs", type=int, default=8, help="runs of the tiny grid, on each path")
    p.add_argument("--jobs", type=int, default=None,
                   help="runs at a time on both paths (default: the cluster's CPUs)")
    a = p.parse_args(argv)
    if a.runs < 1 or (a.jobs is not None and a.jobs < 1):
        p.error("--runs and --jobs must be at least 1")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    import ray  # the number of CPUs of the cluster, which the Ray path runs at once
    ray.init(address=a.ray, logging_level="WARNING")
    slots = a.jobs or int(ray.cluster_resources().get("CPU", 1))
    nodes = len([n for n in ray.nodes() if n.get("Alive")])
    ray.shutdown()
    tmp = tempfile.mkdtemp(prefix="ray-overhead-")
    try:
        local = per_run(sweep(["--jobs", str(slots)], a.runs, os.path.join(tmp, "local")), slots)
        on_ray = per_run(sweep(["--ray", a.ray, "--cpus-per-run", "1"], a.runs,
                               os.path.join(tmp, "ray")), slots)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{a.runs} tiny runs, {slots} at a time (Ray: {nodes} nodes, {slots} CPUs)")
    print("| path | slot s per run | run's own s (median) | overhead s per run |")
    print("|---|---|---|---|")
    for name, r in (("local pool", local), ("Ray", on_ray)):
        print(f"| {name} | {r['slot']:.1f} | {r['own']:.1f} | {r['overhead']:.1f} |")
    print(f"Ray costs {on_ray['slot'] - local['slot']:+.1f} s per run against the local pool.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
