"""Check a GPU machine in one command: run this first on a new machine with an NVIDIA GPU.

It runs, in order, and stops at nothing (each part is reported on its own):
  1. the CUDA tests, with `python -m pytest`: those marked `cuda` (the CUDA-graph path against
     the eager one from one seed, a resumed graph run), then tests/test_cuda_branch.py (device
     set-up, capture safety, cross-device checkpoints: the CPU's view of the same code);
  2. a short default run of every method script, with the CUDA graph and without
     (--no-cuda-graph): exit 0, status finished, the graph used where asked, no warning;
  3. the speed table of benchmarks/speed.py for every script (eager vs graph, widths 128, 512).
Any check that exits non-zero or prints a warning fails. The last line is one verdict:
"gpu_check: PASS …" or "gpu_check: FAIL …" (exit 1).

    python benchmarks/gpu_check.py                    # ~5 min on an H100/H200
    python benchmarks/gpu_check.py --device cuda:1 --iters 100 --no-speed
    python benchmarks/gpu_check.py --dry-run          # print the commands, run nothing
"""
from __future__ import annotations

import glob
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import common  # noqa: E402
import harness  # noqa: E402
import sweep  # noqa: E402

SCRIPTS = common.SCRIPTS


def parse_args(argv=None):
    p = harness.ArgumentParser(prog="gpu_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="the GPU to check: cuda or cuda:N")
    p.add_argument("--iters", type=harness.number(int, 1), default=300,
                   help="generator iterations of each short run")
    p.add_argument("--no-tests", action="store_true", help="skip the CUDA tests")
    p.add_argument("--no-speed", action="store_true", help="skip the speed table")
    p.add_argument("--out", default=None,
                   help="folder for the short runs (default: a temporary one, removed after)")
    p.add_argument("--dry-run", action="store_true", help="print the commands and run nothing")
    return p, p.parse_args(argv)


def commands(a, out):
    """(label, argv, what the run must show) for every check, in order."""
    py = sys.executable
    todo = []
    if not a.no_tests:
        todo.append(("CUDA tests", [py, "-m", "pytest", "-q", "-m", "cuda"], None))
        todo.append(("CUDA-branch tests",
                     [py, "-m", "pytest", "-q", os.path.join("tests", "test_cuda_branch.py")],
                     None))
    for script in SCRIPTS:
        for graph in (True, False):
            flags = ["--device", a.device, "--iters", str(a.iters),
                     "--eval-every", str(a.iters), "--out", os.path.join(out, script)]
            todo.append((f"{script} {'graph' if graph else 'eager'}",
                         [py, f"{script}.py", *flags] + ([] if graph else ["--no-cuda-graph"]),
                         graph))
        todo.append((f"{script} mnist graph",  # the 28×28 models, captured
                     [py, f"{script}.py", "--data", "mnist", "--device", a.device, "--iters",
                      str(a.iters), "--eval-every", str(a.iters), "--out",
                      os.path.join(out, script + "-mnist")], True))
    for name, script, spec in sweep.configs("gpu"):  # what a script asks the check to run too
        args, _ = harness.parse_or_resume(importlib.import_module(script).build_parser(),
                                          spec["flags"], script, set())
        graph = not args.no_cuda_graph  # as the script resolves it (GroupSort's faster maps)
        todo.append((f"{script} {name}", [
            py, f"{script}.py", *spec["flags"], "--device", a.device, "--iters", str(a.iters),
            "--eval-every", str(a.iters), "--out", os.path.join(out, name)]
            + ([] if graph else ["--no-cuda-graph"]), graph))
    if not a.no_speed:
        for script in SCRIPTS:
            todo.append((f"speed {script}", [py, os.path.join("benchmarks", "speed.py"),
                                             "--script", script, "--device", a.device], None))
    return todo


def check_run(folder: str, graph: bool) -> str:
    """'' if the newest run in folder finished with the graph used as asked, else why not; and
    its speed."""
    runs = sorted(glob.glob(os.path.join(folder, "*", "summary.json")), key=os.path.getmtime)
    if not runs:
        return "no summary.json"
    with open(runs[-1]) as fh:
        summ = json.load(fh)
    with open(os.path.join(os.path.dirname(runs[-1]), "config.json")) as fh:
        cfg = json.load(fh)
    if summ["status"] != "finished":
        return f"status {summ['status']}: {summ.get('why')}"
    if cfg["cuda_graph"] != graph:
        return f"cuda_graph is {cfg['cuda_graph']} (asked for {graph})"
    return ""


def main(argv=None) -> int:
    parser, a = parse_args(argv)
    if a.dry_run:
        for label, argv_, _ in commands(a, a.out or "OUT"):
            print(f"{label:<20} {' '.join(argv_)}")
        return 0
    try:
        device = harness.pick_device(a.device)
    except ValueError as e:
        parser.error(f"--device {a.device!r}: {e}")
    if device.type != "cuda":
        parser.error(f"--device {a.device!r}: this checks a GPU; {device} is not one")
    where = f"{harness.device_name(device)} ({device})"
    out = a.out or tempfile.mkdtemp(prefix="gpu_check-")
    todo = commands(a, out)
    import torch
    print(f"gpu_check on {where}, torch {torch.__version__}, {len(todo)} checks", flush=True)
    failed, t0 = [], time.time()
    for label, argv_, graph in todo:
        t = time.time()
        print(f"\n=== {label}: {' '.join(argv_)}", flush=True)
        r = subprocess.run(argv_, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        lines = r.stdout.rstrip().splitlines()
        print("\n".join(lines if label.startswith("speed") else lines[-3:]), flush=True)
        why = f"exit {r.returncode}" if r.returncode else ""
        if not why and graph is not None:
            why = check_run(argv_[argv_.index("--out") + 1], graph)  # the run's own folder
        warned = [line.strip() for line in lines if "Warning" in line]
        if not why and warned:  # a run that warns on a GPU needs a look (e.g. stream mismatch)
            why = f"{len(warned)} warning line(s), the first: {warned[0][:160]}"
        verdict = f"FAIL ({why})" if why else "ok"
        print(f"--- {label}: {verdict} in {time.time() - t:.0f} s", flush=True)
        if why:
            failed.append(label)
    verdict = "PASS" if not failed else f"FAIL ({len(failed)} of {len(todo)}: {', '.join(failed)})"
    print(f"\ngpu_check: {verdict} on {where}, torch {torch.__version__}, "
          f"{len(todo)} checks in {harness.fmt_time(time.time() - t0)}"
          + (f"; runs in {out}" if a.out else ""), flush=True)
    if not a.out:
        import shutil
        shutil.rmtree(out, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
