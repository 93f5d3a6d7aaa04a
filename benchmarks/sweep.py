"""What every sweep of the method scripts shares (benchmarks/compare.py, open_questions.py),
whichever way it runs them: the identity of a run, finding its finished run again, resuming an
interrupted one, checking the input before anything runs, one sweep per output folder, and
signals that reach every running child.

A run is identified by its complete command: the script and every argument it resolves to
(the script's own parser, with its data- and loss-dependent defaults). A finished run under
<out>/runs/<key>/ is reused only if its config.json holds exactly those arguments; a run with
other settings is reported in one line with the arguments that differ, and either run again
into a new folder beside it (the default) or, with --refuse-mismatch, the sweep stops with exit
2 before running anything. Tables are built only from runs that match.
"""
from __future__ import annotations

import contextlib
import glob
import importlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import common  # noqa: E402

# Arguments that do not change what a run computes, and so do not make it another run.
NOT_IDENTITY = {"out", "resume", "eval_every", "no_cuda_graph"}
# Arguments a sweep sets itself: --extra may not set them.
SWEEP_SETS = {"--out", "--resume", "--data", "--seed", "--device", "--fixed-generator"}


def resolved_args(script: str, flags: list) -> dict:
    """Every argument of `script` run with `flags`, as the script resolves them (its defaults,
    per-data defaults, resolve_defaults), less those that are no part of the run's identity.
    ValueError with the script's one-line message for flags it refuses."""
    mod = importlib.import_module(script)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args, _ = common.parse_or_resume(mod.build_parser(), list(flags), script, set())
    except SystemExit:
        why = (err.getvalue().strip().splitlines() or ["refused"])[-1]
        raise ValueError(f"{' '.join(flags)}: {why}") from None
    if hasattr(mod, "resolve_defaults"):
        mod.resolve_defaults(args)
    return {k: v for k, v in vars(args).items() if k not in NOT_IDENTITY}


def _read_json(path):
    """A JSON object from path, or None for a file that is missing, damaged or not ours."""
    try:
        with open(path) as fh:
            obj = json.load(fh)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def differences(want: dict, got: dict) -> str:
    """The arguments that differ, as flags: '--iters 20 (asked 40), --dim 16 (asked 32)'."""
    keys = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    return ", ".join(f"--{k.replace('_', '-')} {got.get(k)} (asked {want.get(k)})" for k in keys)


class Found:
    """What a run folder <out>/runs/<key> holds for one planned run."""

    def __init__(self):
        self.done = None        # the summary of the newest matching run that ended
        self.resumable = None   # else the folder of a matching run that stopped midway
        self.mismatched = []    # (folder, differences) of the runs with other settings
        self.foreign = 0        # summary/config files that are not a run's


def find(folder: str, want: dict) -> Found:
    """Look through the runs in folder (each a subfolder with config.json) for one that ran
    `want` (resolved_args of the planned command)."""
    found = Found()
    for cfg_path in sorted(glob.glob(os.path.join(folder, "*", "config.json")), reverse=True):
        run_dir = os.path.dirname(cfg_path)
        cfg = _read_json(cfg_path)
        args = cfg.get("args") if cfg else None
        if not isinstance(args, dict):
            found.foreign += 1
            continue
        got = {k: v for k, v in args.items() if k not in NOT_IDENTITY}
        if got != want:
            found.mismatched.append((run_dir, differences(want, got)))
            continue
        summ = _read_json(os.path.join(run_dir, "summary.json"))
        if os.path.exists(os.path.join(run_dir, "summary.json")) and (
                summ is None or not isinstance(summ.get("status"), str)):
            found.foreign += 1
            continue
        status = summ.get("status") if summ else None
        if status in ("finished", "diverged"):
            if found.done is None:
                found.done = {**summ, "folder": run_dir}
        elif found.resumable is None and found.done is None and \
                os.path.exists(os.path.join(run_dir, "checkpoint.pt")):
            found.resumable = run_dir  # interrupted, or killed before its summary
    return found


def finished_summary(folder: str, want: dict):
    """The summary of the newest run in folder that ran `want` and ended, or None."""
    return find(folder, want).done


def prepare(runs, out: str, device: str, no_run: bool):
    """Everything a sweep checks before it runs anything: the identity of every planned run
    (flags a script refuses are an error), the device (unless nothing will run), that --out
    can be written; then it holds <out>/.sweep.lock, since two sweeps into one folder would run
    the same runs twice. Returns (identities, the held lock file) or raises ValueError."""
    wants = identities(runs)
    if not no_run:
        check_device(device)
    common.writable_folder(out)
    common.writable_folder(os.path.join(out, "runs"))
    return wants, common.hold_lock(os.path.join(out, ".sweep.lock"),
                                   f"another sweep is writing into {out} right now")


def check_extra(extra: list, own_flags) -> None:
    """--extra takes the rest of the command line: refuse it when it swallowed an option of the
    sweep's own that no script takes (--out, --jobs, --only, ...), or sets what the sweep sets
    for each run (--data, --seed, --device, --out)."""
    script_flags = {o for name in common.SCRIPTS for act in
                    importlib.import_module(name).build_parser()._actions
                    for o in act.option_strings}
    for flag in extra:
        name = flag.split("=")[0]
        if name in SWEEP_SETS:
            raise ValueError(f"--extra may not set {name}: the sweep sets it for each run"
                             + (" (--extra takes everything after it: put --extra last)"
                                if name in own_flags else ""))
        if name in own_flags and name not in script_flags:
            raise ValueError(f"--extra takes everything after it, and it took {name}, an option "
                             f"of the sweep: put --extra last")


def check_args(parser, a, names) -> None:
    """The checks of a sweep's own arguments that need no run: --extra (check_extra) and
    --only (it must match one of names, the configurations); a one-line error and exit 2."""
    try:
        check_extra(a.extra, {o for act in parser._actions for o in act.option_strings})
    except ValueError as e:
        parser.error(str(e))
    if a.only and not [n for n in names if any(s in n for s in a.only)]:
        parser.error(f"--only {' '.join(a.only)} matches no configuration; the names: "
                     + ", ".join(names))


def check_device(name: str) -> None:
    """The device every run will use exists here (common.pick_device), or ValueError."""
    try:
        common.pick_device(name)
    except ValueError as e:
        raise ValueError(f"--device {name!r}: {e}") from None


class Runner:
    """Runs the method scripts as child processes, each in a session of its own, and forwards
    a SIGINT or SIGTERM that reaches the sweep to every running child once (each then finishes
    its iteration and writes its checkpoint); no new run starts after one."""

    def __init__(self, env=None):
        self.env, self.children, self.lock = env, set(), threading.Lock()
        self.signum = None
        self.old = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self.old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)

    def _handle(self, signum, frame):
        first = self.signum is None
        self.signum = signum
        with self.lock:
            children = list(self.children)
        for p in children:
            try:
                os.kill(p.pid, signum if first else signal.SIGKILL)  # a second signal: at once
            except ProcessLookupError:
                pass

    def run(self, run, out, want):
        """Run (or resume) one planned run into <out>/runs/<key>/; returns (key, what
        happened)."""
        key, _, script, flags, *_ = run
        folder = os.path.join(out, "runs", key)
        if self.signum:
            return key, "not started (interrupted)"
        found = find(folder, want)
        if found.done is not None:
            return key, "skipped (done)"
        os.makedirs(folder, exist_ok=True)
        if found.resumable:
            argv = ["--resume", found.resumable]
            what = "resumed"
            summ = _read_json(os.path.join(found.resumable, "summary.json")) or {}
            if summ.get("status") == "capture_failed":  # the run says how: without the graph
                argv.append("--no-cuda-graph")
        else:
            argv, what = [*flags, "--out", folder], "ran"
        t = time.time()
        with open(os.path.join(folder, "log.txt"), "a") as log:
            with self.lock:
                if self.signum:
                    return key, "not started (interrupted)"
                p = subprocess.Popen([sys.executable, os.path.join(ROOT, script + ".py"), *argv],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     env=self.env, start_new_session=True)
                self.children.add(p)
            code = p.wait()
            with self.lock:
                self.children.discard(p)
        return key, f"{what}: exit {code} in {time.time() - t:.0f} s"


class Refused(ValueError):
    """The sweep will not go on (a mismatched run under --refuse-mismatch): exit 2."""


def identities(runs) -> dict:
    """{key: resolved_args} of every planned run, or ValueError naming the first refused one:
    bad flags (from --extra, say) stop the sweep before anything runs."""
    wants = {}
    for key, _, script, flags, *_ in runs:
        try:
            wants[key] = resolved_args(script, flags)
        except ValueError as e:
            raise ValueError(f"the run {key} would be refused: {script}.py {e}") from None
    return wants


def execute(runs, wants, out, jobs, tag, refuse_mismatch=False, no_run=False):
    """Run what is not done yet (resuming what was interrupted), `jobs` at a time, and return
    (ended, signum): ended maps each key to the summary of its matching run that ended, or None.
    Prints a line per run, one per mismatched run, and one for files that are not runs."""
    # Toy networks run as fast on one CPU thread as on two: share the cores out among the jobs.
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    mismatched, foreign = [], 0
    for key, *_ in runs:
        found = find(os.path.join(out, "runs", key), wants[key])
        foreign += found.foreign
        if found.done is None and found.mismatched:
            run_dir, diff = found.mismatched[0]
            mismatched.append(f"{key}: {os.path.relpath(run_dir, out)} ran {diff}")
    for line in mismatched:
        print(f"[{tag}] other settings: {line}; "
              + ("refused (--refuse-mismatch)" if refuse_mismatch else
                 "it is not used, and the run is made again beside it"), flush=True)
    if mismatched and refuse_mismatch:
        raise Refused(f"{len(mismatched)} run(s) under {out} ran other settings than this sweep "
                      f"asks (first: {mismatched[0]}); use another --out, or leave out "
                      f"--refuse-mismatch to run them again")
    if foreign:
        print(f"[{tag}] {foreign} file(s) under {os.path.join(out, 'runs')} are no run's "
              f"config or summary: ignored", flush=True)
    signum = None
    if not no_run:
        from concurrent.futures import ThreadPoolExecutor
        with Runner(env) as runner, ThreadPoolExecutor(jobs) as pool:
            todo = pool.map(lambda r: runner.run(r, out, wants[r[0]]), runs)
            for i, (key, what) in enumerate(todo, 1):
                print(f"[{tag}] {i}/{len(runs)} {key}: {what}", flush=True)
            signum = runner.signum
    ended = {key: finished_summary(os.path.join(out, "runs", key), wants[key])
             for key, *_ in runs}
    return ended, signum
