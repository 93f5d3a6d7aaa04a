"""What every sweep of the method scripts shares (benchmarks/compare.py, open_questions.py,
w1_benchmark.py), whichever way it runs them: which configurations the method scripts declare
(their CONFIGS), the identity of a run, finding its finished run again, resuming an interrupted
one, checking the input before anything runs, one sweep per output folder, signals that reach
every running child, a progress line per run, and what a finished run's summary says. The runs
execute in the local pool (--jobs child processes here) or, with --ray, as tasks on a Ray cluster
(benchmarks/on_ray.py); both take the same runs and leave the same run folders.

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
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import common  # noqa: E402
import harness

# ------------------------------------------------------------------- what the methods declare
# Where a configuration can run (the `runs` tags of a script's CONFIGS): the comparison grid on
# the toys and the digits and its fixed-generator study (compare.py), the open questions
# (open_questions.py), the W1 benchmark (w1_benchmark.py), and gpu: one more run of the GPU
# check (gpu_check.py), beside the one of every script with its defaults.
PLACES = ("toys", "digits", "fixed", "Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "w1", "gpu")
# What an entry may say besides its flags and places: its row in the report's summary table,
# the W1 benchmark's published solver of the same family and the flags of its protocol there,
# and whether it is the reference line the small-multiples figures draw in every panel.
KEYS = {"flags", "runs", "summary", "published", "w1_flags", "w1_adam", "reference"}


def configs(where: str | None = None) -> list:
    """The configurations every method script declares (its CONFIGS), in the order of the
    scripts and of their entries, as (name, script, spec): spec holds the script's flags, `runs`
    as a set of PLACES, and what else the script says (KEYS). `where` keeps those that run there.
    A name two scripts declare, a place or key not known here, or an entry without flags or
    places is a ValueError naming the script: a misspelt tag would otherwise drop the
    configuration from a sweep without a word."""
    out, owner = [], {}
    for script in common.SCRIPTS:
        for name, spec in importlib.import_module(script).CONFIGS.items():
            if name in owner:
                raise ValueError(f"the configuration {name!r} is declared by both "
                                 f"{owner[name]}.py and {script}.py")
            owner[name] = script
            where_ = f"{script}.py, CONFIGS[{name!r}]"
            unknown, missing = sorted(set(spec) - KEYS), sorted({"flags", "runs"} - set(spec))
            if unknown or missing:
                raise ValueError(f"{where_}: " + (
                    f"unknown key {unknown[0]!r} (known: {', '.join(sorted(KEYS))})" if unknown
                    else f"no {missing[0]!r}"))
            places = spec["runs"].split()
            unknown = [p for p in places if p not in PLACES]
            if unknown or not places:
                raise ValueError(f"{where_}: " + (f"unknown place {unknown[0]!r} in runs" if unknown
                                 else "runs names no place") + f" (known: {' '.join(PLACES)})")
            spec = {**spec, "runs": set(places)}
            if where is None or where in spec["runs"]:
                out.append((name, script, spec))
    return out


def reference() -> str:
    """The configuration a script declares as the figures' reference line (WGAN-GP's)."""
    (name,) = [n for n, _, spec in configs() if spec.get("reference")]
    return name


LAMBDA = "@λ"  # a configuration run at another penalty weight: "<name>@λ<value>"


def takes_lambda(script: str) -> bool:
    """Whether a method script has a penalty weight --lambda (a penalty, not an architecture)."""
    parser = importlib.import_module(script).build_parser()
    return any("--lambda" in a.option_strings for a in parser._actions)


def at_lambdas(configs, lambdas) -> list:
    """The λ grid (--lambdas): each configuration whose script takes --lambda, once per λ, as
    "<name>@λ<λ>" with --lambda λ after its own flags (the last value given wins), its spec
    saying its base configuration and λ; configurations without a --lambda are left out, and
    one that differs from an earlier one by its λ alone is the same grid: left out too."""
    out, seen = [], set()
    lambdas = list(dict.fromkeys(float(lam) for lam in lambdas))  # one given twice runs once
    for name, script, spec in configs:
        flags = spec["flags"]
        rest = without_lambda(flags)
        if not takes_lambda(script) or (script, rest) in seen:  # λ alone tells them apart:
            continue  # gp-twosided-l0.1 at λ 1 is gp-twosided-l10 at λ 1, run once
        seen.add((script, rest))
        out += [(f"{name}{LAMBDA}{lambda_text(lam)}", script,
                 {**spec, "flags": flags + ["--lambda", lambda_text(lam)], "base": name,
                  "lambda": lam}) for lam in lambdas]
    return out


def lambda_text(lam: float) -> str:
    """λ as a name and a flag: short (1, 0.1, 100) where that is the number itself, else every
    digit, so that two values never share one name or one run (1 and 1.0000001)."""
    return f"{lam:g}" if float(f"{lam:g}") == lam else repr(float(lam))


def without_lambda(flags) -> tuple:
    """A configuration's flags less its --lambda: what λ grids tell configurations apart by."""
    return tuple(f for i, f in enumerate(flags) if f != "--lambda" and
                 (i == 0 or flags[i - 1] != "--lambda"))


def penalty_label(base: str) -> str:
    """A λ grid's line label: the base configuration's name without its own λ ("-l10")."""
    import re
    return re.sub(r"-l[0-9.]+$", "", base)


def split_lambda(name: str):
    """(base configuration, λ or None) of a configuration's name (at_lambdas)."""
    base, _, lam = name.partition(LAMBDA)
    return base, (float(lam) if lam else None)


def default_iters(script, flags, data="swissroll"):
    """The generator iterations the script would run with these flags on this data (some
    defaults depend on other flags, e.g. dragan.py's on --loss, and on the data)."""
    mod = importlib.import_module(script)
    args, _ = harness.parse_or_resume(mod.build_parser(), flags + ["--data", data], script, set())
    return args.iters


# --------------------------------------------------------------- reading what the runs left
CONVERGED = 1.5  # a run converged if its final W1 ≤ CONVERGED × its floor, and
NN_RATIO_MIN = 0.5  # its samples are not collapsed (nn_ratio, where logged), and on the mixtures
# it captured every mode. A minibatch W1 alone has false minima: n collapsed points can be as close
# to n real points as other real points are (benchmarks/batch_w1.py), so W1 / floor can be gamed.


def converged(s) -> bool:
    f = s.get("final") or {}
    if s.get("status") != "finished" or not f.get("w1_floor"):
        return False
    ok = f["w1"] <= CONVERGED * f["w1_floor"]
    if f.get("nn_ratio") is not None:
        ok = ok and f["nn_ratio"] >= NN_RATIO_MIN
    if f.get("n_modes"):
        ok = ok and f.get("modes") == f["n_modes"]
    if f.get("n_classes"):  # digits: every class drawn (not a blur of them, not a few of them)
        ok = ok and f.get("classes") == f["n_classes"]
    return ok


def settling(rows) -> dict:
    """How a run got where it ended, from its metrics rows (harness.read_metrics):

        settled_at   the first evaluation from which W1 ≤ CONVERGED × floor at every later one
                     (None: it was above at its last evaluation: never settled)
        left         it was within the threshold at some evaluation and above it at a later
                     one: it touched the threshold and left it (whether or not it came back)
        last_third   the median W1 / floor over the evaluations of the last third of the run
                     (by iteration): a final number that does not hinge on one evaluation
        ms_per_iter  the median milliseconds per generator iteration over its evaluations"""
    pts = [(int(r["iter"]), r["w1"] / r["w1_floor"]) for r in rows
           if math.isfinite(r.get("w1", math.nan)) and r.get("w1_floor", 0) > 0]
    ms = [r["ms_per_iter"] for r in rows if math.isfinite(r.get("ms_per_iter", math.nan))]
    if not pts:
        return {"settled_at": None, "left": False, "last_third": None,
                "ms_per_iter": median_of(ms)}
    settled = None
    for it, q in reversed(pts):
        if q > CONVERGED:
            break
        settled = it
    inside = [q <= CONVERGED for _, q in pts]
    left = any(inside[i] and not inside[j] for i in range(len(pts))
               for j in range(i + 1, len(pts)))
    end = pts[-1][0]
    return {"settled_at": settled, "left": left,
            "last_third": statistics.median(q for it, q in pts if it >= 2 * end / 3),
            "ms_per_iter": median_of(ms)}


def settling_columns(folders) -> dict:
    """The grid's columns from the runs' settling (a run without metrics counts as never
    settled): the median iteration they settled at (inf when most never did), how many settled
    and how many left the threshold, the median of their last-third medians, and ms/it."""
    runs = []
    for folder in folders:
        path = os.path.join(folder or "", "metrics.csv")
        run = settling(harness.read_metrics(path) if folder and os.path.exists(path) else [])
        ended = harness.read_json(os.path.join(folder or "", "summary.json")) or {}
        if ended.get("status") == "diverged":  # whatever its last good evaluation said
            run["settled_at"] = None
        runs.append(run)
    at = [r["settled_at"] if r["settled_at"] is not None else math.inf for r in runs]
    return {"settled_at_median": statistics.median(at) if at else None,
            "settled_runs": sum(r["settled_at"] is not None for r in runs),
            "left_runs": sum(r["left"] for r in runs),
            "last_third_median": median_of([r["last_third"] for r in runs]),
            "ms_per_iter_median": median_of([r["ms_per_iter"] for r in runs])}


def median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec=".3f"):
    return "–" if v is None or v != v else format(v, spec)


def ratio(a, b):
    """a / b, or None where either is missing (a run that diverged logs null) or b is 0."""
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def ran_on(ended) -> str:
    """Where the runs of the tables ran, as each run's config.json recorded it: an --device auto
    run may have used a GPU, and cuda:1 is not cuda:0."""
    seen = []
    for s in ended:
        try:
            with open(os.path.join(s["folder"], "config.json")) as fh:
                v = json.load(fh)["versions"]
            where = f"{v['device_name']} ({v['device']}, torch {v['torch']}"
            where += f", {v['cpu_threads']} CPU thread{'s' if v['cpu_threads'] != 1 else ''})" \
                if v["device"] == "cpu" else ")"
        except (TypeError, OSError, ValueError, KeyError):  # no run, or an older config
            continue
        if where not in seen:
            seen.append(where)
    return "; ".join(seen) if seen else "no run that ended"


def load_final(s, script: str):
    """The final critic and 512 generated points of the run whose summary is s, a run of the
    method script `script` (None: no run ended, or its checkpoint is gone, damaged or not that
    script's: nothing to draw). Only that script is imported, whatever the checkpoint says."""
    import argparse
    import torch
    if s is None or script not in common.SCRIPTS:
        return None
    try:
        ck = torch.load(os.path.join(s["folder"], "checkpoint.pt"), map_location="cpu",
                        weights_only=True)
        if ck.get("script") != script:
            return None
        mod = importlib.import_module(script)
        args = argparse.Namespace(**ck["args"])
        G, D = mod.make_models(args)
        D.load_state_dict(ck["D"])
        G.load_state_dict(ck["G"])
    except Exception:  # deleted or damaged: the tables stand, the figure leaves it out
        return None
    gen = torch.Generator().manual_seed(0)
    real = common.sample(args.data, 512, generator=gen)
    with torch.no_grad():
        fake = mod.fake_batch(G, real, args, gen)
    return D, real, fake


# ---------------------------------------------------------------------- the identity of a run
# Arguments that do not change what a run computes, and so do not make it another run.
NOT_IDENTITY = {"out", "resume", "eval_every", "no_cuda_graph", "threads"}
# Arguments a sweep sets itself: --extra may not set them.
SWEEP_SETS = {"--out", "--resume", "--data", "--seed", "--device", "--fixed-generator"}


def resolved_args(script: str, flags: list) -> dict:
    """Every argument of `script` run with `flags`, as the script resolves them (its defaults,
    per-data defaults, and those that depend on other flags), less those that are no part of
    the run's identity. ValueError with the script's one-line message for flags it refuses."""
    mod = importlib.import_module(script)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args, _ = harness.parse_or_resume(mod.build_parser(), list(flags), script, set())
    except SystemExit:
        why = (err.getvalue().strip().splitlines() or ["refused"])[-1]
        raise ValueError(f"{' '.join(flags)}: {why}") from None
    return {k: v for k, v in vars(args).items() if k not in NOT_IDENTITY}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def summary_ok(s) -> bool:
    """Whether a summary.json holds what a script writes: a status, a wall time, and a final
    row of numbers (or none); a tampered or damaged one is no run's, and no table reads it."""
    final = s.get("final")
    return isinstance(s.get("status"), str) and _number(s.get("wall_time_s")) and (
        final is None or isinstance(final, dict) and all(
            v is None or _number(v) for v in final.values()))


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
        cfg = harness.read_json(cfg_path)
        args = cfg.get("args") if cfg else None
        if not isinstance(args, dict):
            found.foreign += 1
            continue
        # A flag added after the run was made is missing from its config: its default None
        # means the behaviour the run had (a flag with another default would change it).
        got = {k: args.get(k) for k in set(args) | set(want) if k not in NOT_IDENTITY}
        if got != want:
            found.mismatched.append((run_dir, differences(want, got)))
            continue
        summ = harness.read_json(os.path.join(run_dir, "summary.json"))
        if os.path.exists(os.path.join(run_dir, "summary.json")) and (
                summ is None or not summary_ok(summ)):
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


def prepare(runs, a, tag: str):
    """Everything a sweep checks before it runs anything: the identity of every planned run
    (flags a script refuses are an error), the device (if the runs will run here), that a.out
    can be written; then it holds <out>/.sweep.lock, since two sweeps into one folder would run
    the same runs twice, and with --ray joins the cluster (join_cluster). Returns (identities,
    the held lock file, the cluster's resources or None) or raises ValueError."""
    wants = identities(runs)
    if not a.ray and not a.no_run:
        check_device(a.device)
    harness.writable_folder(a.out)
    harness.writable_folder(os.path.join(a.out, "runs"))
    lock = harness.hold_lock(os.path.join(a.out, ".sweep.lock"),
                            f"another sweep is writing into {a.out} right now")
    try:
        return wants, lock, None if a.no_run else join_cluster(a, tag)
    except ValueError:
        lock.close()
        raise


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


def add_where_arguments(p, jobs: int, what: str = "runs") -> None:
    """--jobs for the local pool, or --ray and its resources: how a sweep's runs execute."""
    p.add_argument("--jobs", type=harness.number(int, 1), default=jobs,
                   help=f"{what} at a time on this machine")
    g = p.add_argument_group("on a Ray cluster (pip install -r requirements-ray.txt)")
    g.add_argument("--ray", metavar="auto|ADDRESS", default=None,
                   help=f"send each of the {what} to a Ray cluster as a task: auto (the cluster "
                        "this machine is part of, or the one RAY_ADDRESS names) or the head's "
                        "host:port")
    g.add_argument("--cpus-per-run", type=harness.number(float, 0, lo_ok=False), default=1.0,
                   help="CPUs each task holds, fractions allowed; a run uses floor(CPUs) "
                        "threads, at least one")
    g.add_argument("--gpus-per-run", type=harness.number(float, 0, 1000), default=0.0,
                   help="GPUs each task holds, fractions allowed: 0.125 packs eight runs on "
                        "one GPU; needed for --device cuda")
    p.add_argument("--heartbeat", type=harness.number(float, 0, lo_ok=False), default=10.0,
                   help="minutes: while no run ends, say the counts again this often")
    g.add_argument("--retries", type=harness.number(int, 0, 100), default=2,
                   help="times a run is tried again when its worker, node or training process "
                        "dies; after that it is reported failed")


def check_where(p, a, argv) -> None:
    """The checks of add_where_arguments that need no cluster: one-line error, exit 2."""
    given = harness.given_options(p, argv)
    ray_only = [f for f in ("cpus_per_run", "gpus_per_run", "retries") if f in given]
    if not a.ray and ray_only:
        p.error(f"--{ray_only[0].replace('_', '-')} is for --ray; on this machine --jobs says "
                f"how many run at a time")
    if not a.ray:
        return
    if "jobs" in given:
        p.error("--jobs is for this machine; on Ray, --cpus-per-run and --gpus-per-run decide "
                "how many run at a time")
    if a.device.startswith("cuda:"):
        p.error(f"--device {a.device} on Ray: each task sees only the GPU(s) Ray gave it, as "
                f"cuda:0 on; use --device cuda")
    if a.device.startswith("cuda") and not a.gpus_per_run:
        p.error(f"--device {a.device} on Ray needs --gpus-per-run (a task without GPUs sees "
                f"none; 0.125 packs eight runs on one GPU)")
    if a.device == "cpu" and a.gpus_per_run:
        p.error("--gpus-per-run with --device cpu: the runs would hold GPUs they never use")


def join_cluster(a, tag: str):
    """With --ray: join the cluster (benchmarks/on_ray.py) and check that a run fits on one of
    its nodes; returns (cpus, gpus, retries) per run, or None without --ray. ValueError with a
    one-line reason."""
    if not a.ray:
        return None
    try:
        import on_ray
    except ImportError as e:
        raise ValueError(f"--ray needs Ray ({e}): pip install -r requirements-ray.txt") from None
    print(f"[{tag}] {on_ray.connect(a.ray, a.out)}; each run holds {a.cpus_per_run:g} CPU(s) "
          f"and {a.gpus_per_run:g} GPU(s)", flush=True)
    on_ray.check_fits(a.cpus_per_run, a.gpus_per_run)
    return a.cpus_per_run, a.gpus_per_run, a.retries


def check_device(name: str) -> None:
    """The device every run will use exists here (harness.pick_device), or ValueError."""
    try:
        harness.pick_device(name)
    except ValueError as e:
        raise ValueError(f"--device {name!r}: {e}") from None


class Runner:
    """Runs the method scripts as child processes, each in a session of its own, and forwards
    the first SIGINT or SIGTERM that reaches the sweep to every running child (each then
    finishes its iteration and writes its checkpoint); a Ctrl-C after it kills them (Signals);
    no new run starts after the first."""

    def __init__(self, env=None):
        self.env, self.children, self.lock = env, set(), threading.Lock()
        self.signals = harness.Signals(self._send, lambda signum: self._send(signal.SIGKILL))

    @property
    def signum(self):
        return self.signals.signum

    def __enter__(self):
        self.signals.__enter__()
        return self

    def __exit__(self, *exc):
        self.signals.__exit__(*exc)

    def _handle(self, signum, frame):
        self.signals.handle(signum, frame)

    def _send(self, signum):
        with self.lock:
            children = list(self.children)
        for p in children:
            try:
                os.kill(p.pid, signum)
            except ProcessLookupError:
                pass

    def run(self, run, out, want):
        """Run (or resume) one planned run into <out>/runs/<key>/; returns (key, what
        happened)."""
        key, _, script, flags, *_ = run
        folder = os.path.join(out, "runs", key)
        if self.signum:
            return key, "not started (interrupted)"
        what, resume, more = next_step(folder, want)
        if what == "skipped (done)":
            return key, what
        os.makedirs(folder, exist_ok=True)
        argv = ["--resume", resume, *more] if resume else [*flags, "--out", folder]
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
        return key, f"{what}: exit {code} in {time.time() - t:.1f} s" + (
            " (interrupted)" if self.signum and code else "")


def next_step(folder: str, want: dict):
    """What to do for the run planned into folder: ('skipped (done)', None, []) for a run that
    ended, ('resumed', its folder, flags to add) for one that stopped midway, else ('ran', None,
    [])."""
    found = find(folder, want)
    if found.done is not None:
        return "skipped (done)", None, []
    if found.resumable:
        summ = harness.read_json(os.path.join(found.resumable, "summary.json")) or {}
        # a run whose graph capture failed says how to go on: without the graph
        return "resumed", found.resumable, (["--no-cuda-graph"] if summ.get("status") ==
                                            "capture_failed" else [])
    return "ran", None, []


class Progress:
    """A line per run that ends: how many are done, failed and running, and an ETA: the runs
    left times the mean time of those that ran, over the most that ran at once. While no run
    ends (runs can take an hour), the same counts again every `every` seconds."""

    def __init__(self, tag: str, total: int, todo: int, every: float = 600.0):
        self.tag, self.total, self.todo, self.every = tag, total, todo, every
        self.done = self.failed = self.ran = self.slots = 0
        self.seconds, self.last = 0.0, time.time()

    def counts(self, running: int) -> str:
        left = self.todo - self.ran
        eta = "" if not left or not self.ran else \
            f", ETA {harness.fmt_time(left * self.seconds / self.ran / self.slots)}"
        failed = f", {self.failed} failed" if self.failed else ""
        self.last = time.time()
        return f"[{self.tag}] {self.done}/{self.total} done{failed}, {running} running{eta}"

    def line(self, key: str, what: str, ok: bool, running: int, seconds=None) -> str:
        """The line for a run that ended (ok: it left a finished or diverged run; seconds: how
        long it ran, None for one that did not run)."""
        self.done += ok
        self.slots = max(self.slots, running + 1)
        if seconds is not None:
            self.ran += 1
            self.seconds += seconds
            self.failed += not ok and "interrupted" not in what
        return f"{self.counts(running)} | {key}: {what}"

    def quiet(self, running):
        """The counts again if no line came for `every` seconds, else None; running: a function
        that counts the running runs, asked only then."""
        if time.time() - self.last < self.every:
            return None
        return f"{self.counts(running())} | still running"


def after_interruption(runs, wants, out: str, ended: dict) -> str:
    """What a call that was interrupted leaves, in a line: the runs not done that have a
    checkpoint to resume from (a run stopped by the first signal writes one; a second signal, or
    a Ray task abandoned, leaves none), and those that start from the beginning."""
    left = [k for k, *_ in runs if ended.get(k) is None]
    back = [k for k in left if find(os.path.join(out, "runs", k), wants[k]).resumable]
    parts = []
    if back:
        parts.append(f"{len(back)} interrupted run(s) have their checkpoints and the same command "
                     f"resumes them")
    if len(left) > len(back):
        parts.append(f"{len(left) - len(back)} run(s) have none (not started, or stopped at "
                     f"once) and the same command runs them from the start")
    return "; ".join(parts) or "every run ended"


def said(failures: dict, most: int = 8) -> str:
    """The failed runs and why, for a table's note: 'key (why); key (why); … and 3 more'."""
    items = [f"{k} ({why})" for k, why in sorted(failures.items())]
    return "; ".join(items[:most]) + (f"; … and {len(items) - most} more" if
                                      len(items) > most else "")


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


def execute(runs, wants, a, tag, cluster=None):
    """Run what is not done yet (resuming what was interrupted) into a.out: a.jobs at a time
    here, or on the Ray cluster that join_cluster joined when cluster holds (cpus, gpus,
    retries) per run. Returns (ended, signum, failed): ended maps each key to the summary of its
    matching run that ended, or None; failed maps the runs that ran and did not end to why.
    Prints a line per run (and the counts every a.heartbeat minutes while none ends), one per
    mismatched run, and one for files that are not runs."""
    out, refuse_mismatch = a.out, a.refuse_mismatch
    print(f"[{tag}] {len(runs)} runs, " + ("on Ray" if cluster else f"{a.jobs} at a time")
          + f", into {out}", flush=True)
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
              f"config or summary, or damaged: ignored, and not in the tables", flush=True)
    signum, failed = None, {}
    if not a.no_run:
        progress = Progress(tag, len(runs), sum(
            find(os.path.join(out, "runs", k), wants[k]).done is None for k, *_ in runs),
            every=60 * a.heartbeat)
        go = on_cluster if cluster else on_this_machine
        signum = go(runs, wants, out, cluster or a.jobs, tag, progress, failed)
    ended = {key: finished_summary(os.path.join(out, "runs", key), wants[key])
             for key, *_ in runs}
    return ended, signum, {k: why for k, why in failed.items() if ended[k] is None}


def on_this_machine(runs, wants, out, jobs, tag, progress, failed):
    """The local pool: `jobs` child processes at a time; returns the signal that stopped it."""
    # Toy networks run as fast on one CPU thread as on two: share the cores out among the jobs.
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    from concurrent.futures import ThreadPoolExecutor
    with Runner(env) as runner, ThreadPoolExecutor(jobs) as pool:
        todo = [pool.submit(timed, runner.run, r, out, wants[r[0]]) for r in runs]
        for fut in as_they_end(todo, lambda: progress.quiet(lambda: len(runner.children))):
            seconds, (key, what) = fut.result()
            ok = find(os.path.join(out, "runs", key), wants[key]).done is not None
            if not ok and "exit" in what and "interrupted" not in what:
                failed[key] = what
            print(progress.line(key, what, ok, len(runner.children),
                                seconds if "exit" in what else None), flush=True)
    return runner.signum


def as_they_end(futures: list, quiet=None, stopped=lambda: False):
    """The futures as they end (in the plan's order when several end at once), until all have
    or stopped() says so; while none ends, the line quiet() returns, if any, is printed."""
    from concurrent.futures import FIRST_COMPLETED, wait
    pending = set(futures)
    while pending and not stopped():
        ended, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
        yield from sorted(ended, key=futures.index)
        still = None if ended or quiet is None else quiet()
        if still:
            print(still, flush=True)


def _in_worker():
    """A worker of in_processes: its driver decides what a signal means (a terminal's Ctrl-C,
    and `timeout`'s SIGTERM, reach the whole process group), and a worker dies with its driver
    (Linux), never orphaned."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the driver is gone already
            os._exit(1)


def in_processes(fn, named, jobs: int, report_one, tag: str, quiet=None):
    """fn(*args) for every (key, args) of named, in `jobs` processes of this machine (the W1
    benchmark's trainings, which return their numbers); report_one(key, result, error, 1,
    running) as each ends (quiet: as on_ray.run_all's). Returns the signal that stopped them, or
    None. The first SIGINT or SIGTERM cancels what has not started and stops what runs (a
    training has no checkpoint: what it trained is lost), so that the tables of what finished
    are written at once; a Ctrl-C after it ends the driver at once (Signals)."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_in_worker)

    def stop_workers():
        for p in list(getattr(pool, "_processes", {}).values()):
            p.kill()

    def at_once(signum):  # this handler stays: even while the tables are written
        stop_workers()
        print(f"[{tag}] stopped at once (signal {signum}): nothing more is written",
              file=sys.stderr, flush=True)
        os._exit(128 + signum)

    stop = harness.Signals(again=at_once).__enter__()
    futures = []
    try:
        futures = [pool.submit(fn, *args) for _, args in named]
        keys = dict(zip(futures, (k for k, _ in named)))

        def running():  # the pool keeps every worker busy while trainings wait
            return min(jobs, sum(not f.done() for f in futures))
        for fut in as_they_end(futures, quiet and (lambda: quiet(running)),
                               lambda: stop.signum is not None):
            try:
                r, error = fut.result(), None
            except Exception as e:  # noqa: BLE001 - reported, and the others go on
                r, error = None, f"{type(e).__name__}: {e}"
            report_one(keys[fut], r, error, 1, running())
        if stop.signum is not None:
            print(f"[{tag}] interrupted: {sum(not f.done() for f in futures)} training(s) not "
                  f"finished are stopped; writing the tables of those that finished", flush=True)
            for f in futures:
                f.cancel()
            stop_workers()
        return stop.signum
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if stop.signum is None:  # after a signal the handler stays: a Ctrl-C while the tables
            stop.__exit__()  # are written still ends the driver at once


def timed(fn, *args):
    t = time.time()
    out = fn(*args)
    return time.time() - t, out


def on_cluster(runs, wants, out, resources, tag, progress, failed):
    """The Ray path (benchmarks/on_ray.py): each run that is not done becomes a task; its
    folder comes back here. Returns the signal that stopped the sweep, or None."""
    import on_ray
    cpus, gpus, retries = resources
    jobs, how = [], {}
    for key, _, script, flags, *_ in runs:
        what, resume, more = next_step(os.path.join(out, "runs", key), wants[key])
        if resume:  # the interrupted run travels to the worker that resumes it
            resume = (os.path.basename(resume), on_ray.pack(os.path.dirname(resume),
                                                            [os.path.basename(resume)]), more)
        if what == "skipped (done)":
            print(progress.line(key, what, True, 0), flush=True)  # not sent to the cluster
        else:
            jobs.append((key, (script, flags, resume, max(1, int(cpus)))))
            how[key] = what

    def report(key, result, error, tries, running):
        folder = os.path.join(out, "runs", key)
        if result is not None:
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "log.txt"), "a") as fh:
                fh.write(result["log"])
            try:
                on_ray.unpack(result["tar"], folder)
            except (OSError, on_ray.tarfile.TarError) as e:
                result, error = None, f"its folder could not be unpacked here ({e})"
        if result is not None:
            what = (f"{how[key]}: exit {result['code']} in {result['seconds']:.1f} s on node "
                    f"{result['node'][:8]} ({result['ip']})"
                    + (f", try {tries} of {retries + 1}" if tries > 1 else "")
                    + (" (interrupted)" if result["interrupted"] else ""))
        elif "interrupted" in error:
            what = error
        elif tries:
            what = f"failed after {tries} tr{'y' if tries == 1 else 'ies'}: {error}"
        else:  # it never started: the cluster could not set the task up
            what = f"failed: {error}"
        ok = find(folder, wants[key]).done is not None
        if not ok and "interrupted" not in what:
            failed[key] = what
        seconds = result["seconds"] if result else None if "interrupted" in what else 0.0
        print(progress.line(key, what, ok, running, seconds), flush=True)

    return on_ray.run_all(on_ray.run_script, jobs, cpus, gpus, retries, report, tag,
                          progress.quiet)
