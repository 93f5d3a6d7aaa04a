"""The harness every method script runs in: the same for every method, so it lives here once.

A method script holds its method, models, arguments, training step and evaluation, and a short
main whose loop is in view; around that loop each script does the same things, and they are
here: its records (metrics.csv, config.json and summary.json, each written whole or not at all),
the progress line, the device, the run folder and its lock, a console that survives `| head`,
the signals (Ctrl-C or SIGTERM: evaluate, save, leave), `Run` (how a run starts and ends, and
what each failure becomes), `CudaGraphStep` (the training step captured once and replayed), the
argument parser with its one-line errors, checkpoints and resuming. Nothing here knows a method
or measures one: what every method measures and draws (data, exact W1, figures) is common.py.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import inspect
import io
import json
import math
import os
import platform
import shutil
import signal
import sys
import time

import numpy as np
import torch

import common


# --------------------------------------------------------------------------------------------
# The run's records: metrics.csv (a row per evaluation), config.json, summary.json; whole or none
# --------------------------------------------------------------------------------------------
def _read_text(path: str) -> str:
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        return fh.read()


def metrics_table(path: str):
    """(header, rows) of a metrics.csv as lists of strings, without what a crash or a full disk
    can leave at its end: a last line without its newline, or rows whose cells do not fit the
    header. ([], []) for a file that does not exist or holds no whole header."""
    if not os.path.exists(path):
        return [], []
    text = _read_text(path)
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]  # torn: the last row was cut before its end
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or not rows[0] or rows[0][0] != "iter":
        return [], []

    def whole(r):
        try:
            return len(r) == len(rows[0]) and int(float(r[0])) >= 0
        except ValueError:
            return False
    return rows[0], [r for r in rows[1:] if whole(r)]


def read_metrics(path: str) -> list[dict]:
    """Read a run's metrics.csv into a list of dicts of floats (empty cells, and a cell that is
    no number, become NaN), without a torn last row (metrics_table)."""
    def number(v):
        try:
            return float(v) if v != "" else math.nan
        except ValueError:
            return math.nan
    header, rows = metrics_table(path)
    return [{k: number(v) for k, v in zip(header, r)} for r in rows]


def append_metrics(path: str, row: dict) -> None:
    """Append one row to a metrics.csv, writing the header first if the file is new. The row is
    written whole, in one write; a row that a full disk tore before is cut off first."""
    header, rows = metrics_table(path)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header or list(row), extrasaction="ignore", restval="")
    if not header:
        w.writeheader()
    w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else  # no value: empty
                    f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    whole = _metrics_text(header, rows) if header else ""
    if os.path.exists(path) and whole != _read_text(path):
        _rewrite(path, whole)  # a torn row (or header) left at the end goes first
    with common.writing(path), open(path, "a", newline="") as fh:
        fh.write(buf.getvalue())


def _metrics_text(header, rows) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])  # csv's "\r\n", as DictWriter writes rows
    return buf.getvalue()


def _rewrite(path: str, text: str) -> None:
    with common.writing(path, path + ".tmp"):
        with open(path + ".tmp", "w", newline="", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(path + ".tmp", path)


def trim_metrics(path: str, upto: int) -> set:
    """Drop the rows of metrics.csv past iteration `upto` (on resume: a crash between the row and
    the checkpoint leaves them) and a torn last row (metrics_table), and return the iterations
    logged."""
    if not os.path.exists(path):
        return set()
    header, rows = metrics_table(path)
    keep = [r for r in rows if int(float(r[0])) <= upto]
    if header and _metrics_text(header, keep) != _read_text(path):
        _rewrite(path, _metrics_text(header, keep))
    return {int(float(r[0])) for r in keep}


def _json_safe(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None  # NaN and infinity are not JSON: other tools reject them
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    return [_json_safe(x) for x in v] if isinstance(v, (list, tuple)) else v


def write_json(path: str, obj) -> None:
    """Write obj as strict JSON (non-finite numbers become null), atomically."""
    with common.writing(path, path + ".tmp"):
        with open(path + ".tmp", "w") as fh:
            json.dump(_json_safe(obj), fh, indent=2, default=str, allow_nan=False)
        os.replace(path + ".tmp", path)


def read_json(path: str):
    """A JSON object from path, or None for a file that is missing, damaged or not a dict."""
    try:
        with open(path) as fh:
            obj = json.load(fh)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def versions(device) -> dict:
    import matplotlib
    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "matplotlib": matplotlib.__version__,
            "device": str(device), "device_name": device_name(device),
            "cpu_threads": torch.get_num_threads(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}


# --------------------------------------------------------------------------------------------
# The progress line and the training step's means
# --------------------------------------------------------------------------------------------
def step_stats(columns, total: torch.Tensor, n: int, since: float) -> dict:
    """Means of the training step's outputs summed over n iterations, and the milliseconds per
    iteration since the time `since`. The clock is read after the means reach the host: that
    copy is the one sync per evaluation, so the time counts the queued GPU work, not only how
    fast the host launched it."""
    means = (total / n).tolist() if n else [math.nan] * len(columns)  # no step yet: no value
    seconds = time.time() - since
    return {**dict(zip(columns, means)), "ms_per_iter": 1000 * seconds / n if n else math.nan}


def steps_diverged(row: dict, columns) -> bool:
    """Whether a training step's mean in row is NaN or infinite (an evaluation before the first
    step has no step values, all NaN, and is not a divergence)."""
    values = [row[k] for k in columns]
    if all(math.isnan(v) for v in values) and math.isnan(row["ms_per_iter"]):
        return False
    return not all(math.isfinite(v) for v in values)


class _NoValue(float):
    """A NaN that prints as "–" whatever the format: a value not measured (iteration 0's step
    columns) shows as missing in the progress line, not as "+nan", which reads as a failure."""

    def __format__(self, spec):
        return "–"


def shown(row: dict) -> dict:
    """The row for the progress line, with its speed in it_per_s: NaN values print as "–"."""
    ms = row.get("ms_per_iter", math.nan)
    row = {**row, "it_per_s": 1000 / ms if ms and math.isfinite(ms) else math.nan}
    return {k: _NoValue("nan") if isinstance(v, float) and math.isnan(v) else v
            for k, v in row.items()}


def coverage_text(row: dict) -> str:
    """The progress line's coverage part: modes on the mixtures, classes on the digits."""
    if "modes" in row:
        return f" | {row['modes']}/{row['n_modes']} modes {100 * row['high_quality']:.0f}% hq"
    if "fd" in row:  # mnist: the feature distance too
        return (f" | {row['classes']}/{row['n_classes']} classes, TV {row['class_tv']:.2f}, "
                f"FD {row['fd']:.1f} (floor {row['fd_floor']:.1f})")
    if "classes" in row:
        return f" | {row['classes']}/{row['n_classes']} classes, TV {row['class_tv']:.2f}"
    return ""


def progress_line(script: str, row: dict, iters: int, method: str, estimate: str = "est") -> str:
    """The line a script prints at each evaluation, the same in every script but for `method`:
    what it shows of its own columns, as a format string of row keys (e.g. "R {penalty:.4f}"),
    and the name of its estimate. A value not measured yet prints as –."""
    r = shown(row)
    return (f"[{script}] it {r['iter']:>6}/{iters} | D {r['loss_d']:+.4f} G {r['loss_g']:+.4f} "
            + method.format(**r) + f" | W1 {r['w1']:.3f} (floor {r['w1_floor']:.3f})"
            f" {estimate} {r['critic_estimate']:.3f}{coverage_text(row)}"
            f" | {r['it_per_s']:.1f} it/s"
            f" | ETA {fmt_time(row['ms_per_iter'] / 1000 * (iters - row['iter']))}")


def fmt_time(s: float) -> str:
    s = int(s) if math.isfinite(s) and s > 0 else 0
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# --------------------------------------------------------------------------------------------
# The device
# --------------------------------------------------------------------------------------------
def pick_device(name: str) -> torch.device:
    """Set up the device a run asks for: 'auto' (CUDA if there is one), 'cpu', 'cuda' or
    'cuda:N'. A CUDA device comes back indexed (common.indexed), made the current device (streams
    and CUDA graphs are made on it) and checked by asking it for its memory, the first call that
    reaches the driver; ValueError with a one-line reason otherwise. Every script and benchmark
    sets its device up here and nowhere else."""
    try:
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(name)
        if device.type == "cpu":
            return torch.device("cpu")
        if device.type != "cuda":
            raise ValueError(f"the scripts run on cpu or cuda, not {device.type}")
        if not torch.cuda.is_available():
            raise ValueError(f"CUDA is not available here (torch {torch.__version__}"
                             f"{'' if torch.backends.cuda.is_built() else ', a CPU-only build'})")
        n = torch.cuda.device_count()
        device = common.indexed(device)
        if device.index >= n:
            which = "cuda:0" + (f" to cuda:{n - 1}" if n > 1 else "")
            raise ValueError(f"there is no {device}: this machine has {n} CUDA device"
                             f"{'s' if n != 1 else ''} ({which})")
        torch.cuda.set_device(device)
        torch.cuda.mem_get_info(device)  # a device that cannot be used fails here, not mid-run
    except (RuntimeError, ValueError, AssertionError) as e:
        raise ValueError((str(e) or type(e).__name__).strip().splitlines()[0]) from None
    return device


def device_name(device: torch.device) -> str:
    """What a table says the run ran on: the GPU's name, or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(common.indexed(device))
    return platform.processor() or platform.machine() or "CPU"


def graph_wanted(device: torch.device, no_cuda_graph: bool, optimizer: type) -> bool:
    """Whether the training step is captured into a CUDA graph: on CUDA unless --no-cuda-graph,
    and only where the installed torch's `optimizer` can step inside one (capturable: RMSprop
    has it from torch 2.4). Otherwise one line says why, and the run goes eagerly."""
    if device.type != "cuda" or no_cuda_graph:
        return False
    if "capturable" not in inspect.signature(optimizer).parameters:
        say(f"note: torch {torch.__version__}'s {optimizer.__name__} cannot step inside a CUDA "
            f"graph (no capturable before torch 2.4): running eagerly, as --no-cuda-graph",
            err=True)
        return False
    return True


def default_threads(args, device) -> tuple:
    """The scripts' default number of CPU threads for a run, and why (measured on 2 cores:
    benchmarks/README.md, "CPU threads"). A second thread makes the toys' small MLPs ~10 %
    faster and the larger models 1.5–2× faster on an idle machine, but beside one busy
    process every step waits on a descheduled thread (OpenMP), 2–17× slower than one thread;
    one thread keeps its speed there. So: one thread for the toys below --dim 512, and half the
    cores (at least one) for the rest, the other half left to whatever else runs."""
    if device.type == "cuda":
        return 1, "the GPU computes; the CPU launches its work"
    if args.data in common.TOYS and args.dim < 512:
        return 1, "a small MLP: a second thread buys ~10 %"
    cores = os.cpu_count() or 1
    return max(1, cores // 2), f"half the {cores} cores, the rest left to other work"


def threads_from(args) -> str:
    """Where a run's number of CPU threads comes from: --threads, else the environment's
    OMP_NUM_THREADS (torch reads it at start), else the default policy (default_threads)."""
    if args.threads:
        return "--threads"
    if os.environ.get("OMP_NUM_THREADS"):
        return "OMP_NUM_THREADS"
    return "the default policy"


def use_threads(args, device) -> int:
    """Set torch's CPU threads for this run (a script's main calls it through parse; importing a
    script changes no torch setting) and return the number."""
    source = threads_from(args)
    n = args.threads if source == "--threads" else torch.get_num_threads() \
        if source == "OMP_NUM_THREADS" else default_threads(args, device)[0]
    torch.set_num_threads(n)
    return n


def memory_of(device: torch.device) -> int:
    """Bytes of memory the device has in all (the machine's RAM for the CPU)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(common.indexed(device))[1]
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------------------------
# The run folder, its lock, the console and the signals
# --------------------------------------------------------------------------------------------
def writable_folder(path: str) -> str:
    """Make the folder and check that a file can be written in it, or raise ValueError with a
    one-line reason (before anything is computed for it)."""
    if not path:
        raise ValueError("--out is empty: name a folder (. for the current one)")
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{os.getpid()}")
        with open(probe, "w") as fh:
            fh.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ValueError(f"--out {path!r}: cannot write there "
                         f"({e.strerror or type(e).__name__})") from None
    return path


# The longest name a run writes in its folder ("config-resume<iteration>.json", with room), and
# the longest path the system takes: a run folder with no room for its files is refused at once.
RUN_FILE_ROOM = 40


PATH_MAX = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 260


def open_run_dir(out: str, prefix: str, resume_dir: str | None = None):
    """Make a new run folder out/<prefix>-<time> (or take resume_dir) and lock it against a second
    process; returns (folder, lock file) or raises ValueError. Nothing is written before this."""
    run_dir = resume_dir
    if run_dir is None:
        if not out:
            raise ValueError("--out is empty: name a folder (. for the current one)")
        base = os.path.join(out, f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")
        longest = len(os.path.abspath(base)) + len("-999/") + RUN_FILE_ROOM
        if longest >= PATH_MAX:
            raise ValueError(f"--out {out!r}: too long: a run folder there leaves no room for "
                             f"its files ({longest} of the {PATH_MAX} characters a path may have)")
        for k in range(1000):
            try:
                os.makedirs(f"{base}-{k}" if k else base)  # never reuse a run folder
                run_dir = f"{base}-{k}" if k else base
                break
            except FileExistsError:
                continue
            except OSError as e:
                raise ValueError(f"--out {out!r}: cannot make a run folder there "
                                 f"({e.strerror or type(e).__name__})") from None
    try:
        return run_dir, hold_lock(os.path.join(run_dir, "lock"),
                                  f"another process is running {run_dir} right now")
    except ValueError:
        if resume_dir is None:  # the folder made here holds nothing yet
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def hold_lock(path: str, busy: str):
    """Hold an exclusive lock on the file at path for as long as the returned file is open, or
    raise ValueError(busy) if another process holds it, or with the reason when the file cannot
    be opened (a read-only mount). (Not on Windows: no lock there.)"""
    try:
        fh = open(path, "a")
    except OSError as e:
        raise ValueError(f"cannot lock {path} ({e.strerror or type(e).__name__}): "
                         f"it must be writable") from None
    try:
        import fcntl
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:
        pass
    except OSError:
        fh.close()
        raise ValueError(busy) from None
    return fh


def say(msg: str, err: bool = False) -> None:
    """Print a line; a closed pipe (| head) or a console that cannot show λ never stops a run."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(msg, file=stream, flush=True)
    except UnicodeEncodeError:
        print(msg.encode("ascii", "backslashreplace").decode(), file=stream, flush=True)
    except (BrokenPipeError, ValueError):  # the reader is gone: silence this stream from now on
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (OSError, ValueError):
            pass


class _PipeSafe:
    """A console stream whose reader may leave (| head, a pager closed): from then on what is
    written goes to /dev/null, so that a sweep finishes its runs and writes its tables instead
    of dying of BrokenPipeError in a print."""

    def __init__(self, stream):
        self._stream = stream

    def _gone(self):
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        except (OSError, ValueError):
            pass

    def write(self, text):
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._gone()
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()
            try:
                self._stream.flush()  # what was held goes to /dev/null now
            except (BrokenPipeError, OSError, ValueError):
                pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


def robust_console() -> None:
    """Let a console that cannot encode λ or ‖∇f‖ (cp1252, ascii) print them escaped instead of
    raising, --help included; and let a reader that leaves (| head) silence the output instead
    of stopping the program (_PipeSafe)."""
    for name in ("stdout", "stderr"):
        s = getattr(sys, name)
        if hasattr(s, "reconfigure") and (s.encoding or "").lower().replace("-", "") != "utf8":
            s.reconfigure(errors="backslashreplace")
        if not isinstance(s, _PipeSafe):
            setattr(sys, name, _PipeSafe(s))


class StopSignal:
    """The first SIGINT (Ctrl-C) or SIGTERM (schedulers, `timeout`) asks the training loop to
    stop after this iteration and save; a second Ctrl-C stops at once. Exit code: 128 + signal."""

    def __init__(self):
        self.signum = None
        self.old = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def handle(self, signum, frame):
        self.signum = signum
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def restore(self) -> None:
        for s, handler in self.old.items():
            signal.signal(s, handler)


class Signals:
    """SIGINT and SIGTERM while a sweep runs (benchmarks/sweep.py, on_ray.py). The first asks it
    to stop gently: first(signum) (the runs write their checkpoints, the tables of what finished
    are written). A Ctrl-C after it asks for at once: again(signum). A SIGTERM after it is the
    same request as the first and changes nothing: `timeout` sends SIGTERM to the process and
    again to its process group, and the second copy must not throw away what the first asked to
    keep (a scheduler that means "now" sends SIGKILL). signum: the first signal, or None; at_once: a Ctrl-C came after it."""

    def __init__(self, first=None, again=None):
        self.first, self.again = first, again
        self.signum, self.at_once, self.old = None, False, {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self.old[s] = signal.signal(s, self.handle)
        return self

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)

    def handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            if self.first:
                self.first(signum)
        elif signum == signal.SIGINT:
            self.at_once = True
            if self.again:
                self.again(signum)


# --------------------------------------------------------------------------------------------
# A run around its training loop, and the CUDA graph of its step
# --------------------------------------------------------------------------------------------
class Run:
    """A method script's run around its training loop, done the same way for every script: the
    run folder and its lock, config.json, the signals, and how the run ends (status, message,
    curves, summary.json, exit code). Every script's main reads

        start = restore(...) if ckpt else 0   # a checkpoint that does not fit: exit 2 first
        run = common.Run(parser, SCRIPT, args, ckpt, device, method_name(args), use_graph, argv)
        with run.training(start) as logged:   # logged: the iterations metrics.csv holds
            ...evaluate at start (unless logged), then train while not run.stopped, and set
            run.last to every evaluation's metrics row
        return run.end(estimate_label(args))

    Inside `training`, Diverged, CaptureFailed, running out of memory and a file that cannot be
    written (a full disk) end the run with their status and a one-line reason, the last good
    checkpoint and figures kept; the first SIGINT or SIGTERM sets run.stopped, so that the loop
    evaluates, saves and leaves (a second Ctrl-C stops at once). Anything else is a bug and
    propagates as a traceback.
    """

    EXIT = {"finished": 0, "diverged": 1, "out_of_memory": 1, "capture_failed": 1,
            "no_space": 1, "write_failed": 1}

    def __init__(self, parser, script: str, args, ckpt, device, method: str, cuda_graph: bool,
                 argv):
        try:
            self.dir, self.lock = open_run_dir(args.out, f"{script}-{args.data}-s{args.seed}",
                                               os.path.dirname(ckpt["path"]) if ckpt else None)
        except ValueError as e:
            parser.error(str(e))
        self.script, self.args, self.method = script, args, method
        self.start = ckpt["iteration"] if ckpt else 0
        # a resumed run's wall time is its segments' together: the summary the last segment left
        # holds theirs (a segment killed before it wrote one is not counted)
        before = (read_json(self.path("summary.json")) or {}).get("wall_time_s") if ckpt else 0
        self.before = before if isinstance(before, (int, float)) else 0.0
        self.last, self.status, self.why, self.stop, self.t0 = None, "finished", "", None, \
            time.time()
        try:
            write_json(self.path(f"config-resume{self.start}.json" if ckpt else "config.json"),
                       {"script": script, "args": vars(args), "method": method,
                        "argv": sys.argv if argv is None else argv, "cuda_graph": cuda_graph,
                        "versions": {**versions(device), "cpu_threads_from": threads_from(args)}})
        except common.WriteFailed as e:  # before anything ran: no folder that looks like a run
            self.lock.close()
            if not ckpt:
                import shutil
                shutil.rmtree(self.dir, ignore_errors=True)
            say(f"[{script}] {e}: nothing ran", err=True)
            raise SystemExit(1) from None
        n = torch.get_num_threads()
        say(f"[{script}] {method} · {args.data} · {args.iters} iterations on {device}"
            f"{' (CUDA graph)' if cuda_graph else ''}, {n} CPU thread{'s' * (n != 1)} "
            f"({threads_from(args)})\n[{script}] run folder: {self.dir}")

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    @property
    def stopped(self) -> bool:
        """A SIGINT or SIGTERM came: evaluate, save and leave the loop."""
        return bool(self.stop and self.stop.signum)

    @contextlib.contextmanager
    def training(self, start: int):
        """The training loop's frame: yields the iterations metrics.csv holds (rows past `start`,
        left by a crash between a row and its checkpoint, are dropped first), and turns the
        ways a run can stop into its status."""
        self.start = start
        logged = trim_metrics(self.path("metrics.csv"), start)
        if start in logged:  # the run's last good row so far, should it end before the next
            self.last = next(r for r in read_metrics(self.path("metrics.csv"))
                             if r["iter"] == start)
            self.last["iter"] = start
        self.stop = StopSignal()
        try:
            yield logged
            self.status = "interrupted" if self.stop.signum else "finished"
        except common.Diverged as e:
            self.status, self.why = "diverged", f"{e} became NaN or infinite (try a smaller --lr)"
        except CaptureFailed as e:  # not safe to go on in this process: stop, say how to resume
            self.status, self.why = "capture_failed", (
                f"{e}; continue without the graph: --resume {self.path('checkpoint.pt')} "
                f"--no-cuda-graph")
        except common.WriteFailed as e:  # a full disk: what was written before stays good
            self.status, self.why = "no_space" if e.no_space else "write_failed", str(e)
        except (MemoryError, RuntimeError) as e:  # torch's out-of-memory errors are RuntimeErrors
            if not isinstance(e, MemoryError) and "memory" not in str(e):
                raise
            self.status, self.why = "out_of_memory", "out of memory (try a smaller --batch or " \
                "--dim): " + str(e).strip().splitlines()[0]
        finally:
            self.stop.restore()

    def end(self, estimate_label: str) -> int:
        """Draw the curves (unless the run failed), write summary.json, say how the run ended,
        release the folder; returns the exit code: 0 finished, 1 failed, 128 + the signal."""
        good = self.last["iter"] if self.last else self.start
        a, s = self.args, self.script
        if not self.why:
            try:
                common.plot_curves(read_metrics(self.path("metrics.csv")),
                                   self.path("curves.png"), title=self.method,
                                   estimate_label=estimate_label)
            except common.WriteFailed as e:
                self.status, self.why = "no_space" if e.no_space else "write_failed", str(e)
        if self.why:
            kept = f"The last good checkpoint and figures (iteration {good}) are kept in " \
                f"{self.dir}" if os.path.exists(self.path("checkpoint.pt")) else \
                f"No checkpoint was written; {self.dir} holds what there is"
            say(f"[{s}] stopped after iteration {good}: {self.why}. {kept}", err=True)
        if self.status == "interrupted":
            say(f"[{s}] interrupted at iteration {good}: checkpoint and figures written; "
                f"continue with --resume {self.path('checkpoint.pt')}")
        seconds = time.time() - self.t0
        try:
            write_json(self.path("summary.json"), {
                "status": self.status, "iteration": good, "wall_time_s": self.before + seconds,
                "run_dir": self.dir, "method": self.method, "data": a.data,
                "why": self.why or None, "final": self.last})
        except common.WriteFailed as e:
            say(f"[{s}] {e}: the run has no summary; --resume {self.path('checkpoint.pt')} "
                f"writes it once there is space", err=True)
        say(f"[{s}] {self.status} in {fmt_time(seconds)}"
            + (f" ({fmt_time(self.before + seconds)} with the segments before the resume)"
               if self.before else "") + f" · run folder: {self.dir}")
        self.lock.close()
        return self.EXIT.get(self.status, 128 + ((self.stop and self.stop.signum) or 2))


class CaptureFailed(Exception):
    """Capturing the training step into a CUDA graph failed. The run stops: a failed capture can
    leave the capture stream current and the CUDA generator and allocator in states PyTorch
    does not promise to recover from (CUDAGraph::reset), so going on in the same process is not
    safe. The last checkpoint is good; --resume it with --no-cuda-graph."""


class CudaGraphStep:
    """Wraps a training step step(n) -> tensor so that it is captured once into a CUDA graph and
    then replayed: a toy step is launch-bound, and a replay launches it all at once.

    The first `warmup` calls run eagerly on a side stream (real iterations, which also create the
    optimiser state); then torch.cuda.graph captures it, one graph per argument n (weight
    clipping's 100- and 5-step iterations). A capture that fails raises CaptureFailed with a
    one-line reason. The step must not sync with the host and its optimisers must be capturable.
    """

    def __init__(self, step, warmup: int = 3):
        self.step, self.warmup, self.side, self.graphs = step, warmup, torch.cuda.Stream(), {}

    def __call__(self, n: int) -> torch.Tensor:
        g = self.graphs.setdefault(n, [self.warmup, None, None])  # [warm-ups left, graph, out]
        if g[0] <= 0 and g[1] is None:
            try:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    out = self.step(n)
            except Exception as e:
                text = str(e).strip().splitlines()[0] if str(e).strip() else ""
                raise CaptureFailed(f"CUDA graph capture failed ({type(e).__name__}: {text})") \
                    from e
            g[1], g[2] = graph, out
        if g[1] is not None:
            g[1].replay()
            return g[2]
        g[0] -= 1
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            out = self.step(n)
        torch.cuda.current_stream().wait_stream(self.side)
        return out


# --------------------------------------------------------------------------------------------
# Arguments, checkpoints and resuming
# --------------------------------------------------------------------------------------------
class ArgumentParser(argparse.ArgumentParser):
    """argparse with the defaults in --help, and errors as one line with exit code 2. `check`,
    if given, sees every parsed namespace and returns what is wrong with it (flags that are fine
    one by one but not together), or None: whoever parses a script's flags (the script, a sweep,
    a benchmark) gets the same verdict. `resolve`, if given, fills the defaults that depend on
    other flags (parse_or_resume calls it, after the data's defaults)."""

    def __init__(self, check=None, resolve=None, **kw):
        super().__init__(formatter_class=argparse.ArgumentDefaultsHelpFormatter, **kw)
        self.check, self.resolve = check, resolve

    def parse_known_args(self, args=None, namespace=None):
        ns, rest = super().parse_known_args(args, namespace)
        if self.check is not None and all(hasattr(ns, a.dest) for a in self._actions
                                          if a.dest != "help"):  # given_options' partial parse
            problem = self.check(ns)
            if problem:
                self.error(problem)
        return ns, rest

    def error(self, message):  # one line and exit code 2, without the usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def running_arguments(p: ArgumentParser, resumable: set) -> ArgumentParser:
    """Add the flags of running a script, the same in every script, as the group "running"
    (after the method's and the training's groups in --help); returns p."""
    r = p.add_argument_group("running")
    r.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    r.add_argument("--no-cuda-graph", action="store_true",
                   help="on CUDA, run the training step eagerly instead of replaying a CUDA graph")
    r.add_argument("--eval-every", type=number(int, 1), default=500,
                   help="evaluate (exact W1, figures, checkpoint) every this many iterations")
    r.add_argument("--threads", type=number(int, 1), default=None,
                   help="CPU threads for torch (default: the scripts' policy for the workload, "
                        "or OMP_NUM_THREADS where it is set)")
    r.add_argument("--out", default="runs", help="parent folder of the run folder")
    r.add_argument("--resume", metavar="PATH",
                   help="checkpoint.pt (or its run folder) to continue; may change only "
                        + ", ".join("--" + k.replace("_", "-") for k in sorted(resumable)))
    return p


def number(kind, lo=-math.inf, hi=math.inf, lo_ok=True, hi_ok=True):
    """An argparse type: a finite int or float in the given range, or a one-line error. A float
    must also be one float32 holds, since the scripts train in float32: neither beyond its
    largest finite value (3.4e38) nor so small that it becomes 0 there (below 1.4e-45)."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        inside = (v >= lo if lo_ok else v > lo) and (v <= hi if hi_ok else v < hi)
        if not (math.isfinite(v) and inside):
            span = f"{'[' if lo_ok else '('}{lo}, {hi}{']' if hi_ok else ')'}"
            raise argparse.ArgumentTypeError(f"must be a finite number in {span}, got {text}")
        if kind is float:
            with np.errstate(over="ignore", under="ignore"):
                f32 = float(np.float32(v))
            if not math.isfinite(f32) or (f32 == 0) != (v == 0):
                raise argparse.ArgumentTypeError(
                    f"{text} becomes {'infinite' if not math.isfinite(f32) else '0'} in float32, "
                    f"in which the scripts train")
        return v
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


CHECKPOINT_KEYS = {"script", "iteration", "args", "G", "D", "opt_g", "opt_d", "rng_cpu", "rng_cuda"}


def save_checkpoint(run_dir: str, state: dict, device) -> None:
    """torch.save the state with the random generators' states, atomically: a crash while
    writing leaves the previous checkpoint intact."""
    state = {**state, "rng_cpu": torch.get_rng_state(),
             "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
    path = os.path.join(run_dir, "checkpoint.pt")
    with common.writing(path, path + ".tmp"):
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)


def load_checkpoint(path: str, script: str, arg_names: set, may_lack=None) -> dict:
    """Load a checkpoint of `script` (without running any pickled code), or raise ValueError
    saying why it is not one. Its arguments are `arg_names`, less at most those of `may_lack`
    ({name: default}): flags added since it was made whose default (None, or False for a
    switch) keeps the behaviour it had; they come back as that default."""
    may_lack = may_lack or {}
    path = os.path.join(path, "checkpoint.pt") if os.path.isdir(path) else path
    if not os.path.isfile(path):
        raise ValueError(f"no checkpoint at {path!r}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds here for a file that is not a checkpoint
        raise ValueError(f"{path} is not a checkpoint ({type(e).__name__})") from None
    found = ckpt.get("script") if isinstance(ckpt, dict) else None
    if found != script:
        raise ValueError(f"{path} is not a checkpoint of {script}.py"
                         + (f" (it is from {found}.py)" if isinstance(found, str) else ""))
    if not CHECKPOINT_KEYS <= set(ckpt) or not isinstance(ckpt["args"], dict) \
            or not set(ckpt["args"]) <= arg_names \
            or not arg_names - set(ckpt["args"]) <= set(may_lack):
        raise ValueError(f"{path} is damaged or from another version of {script}.py")
    args = {**{k: may_lack[k] for k in arg_names - set(ckpt["args"])}, **ckpt["args"]}
    return {**ckpt, "args": args, "path": os.path.abspath(path)}


def load_optimizer(opt, state: dict, device, capturable: bool) -> None:
    """Load an optimiser's state for this run, whichever device wrote it: load_state_dict also
    restores the writer's `capturable`, which must match this run's (CUDA graph or not). A state
    tensor whose shape is not its weight's (a damaged checkpoint) is a ValueError here, not a
    traceback at the first step: torch checks only the number of weights."""
    opt.load_state_dict(state)
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        for name, v in opt.state.get(p, {}).items():
            if torch.is_tensor(v) and v.dim() > 0 and v.shape != p.shape:
                raise ValueError(f"optimiser state {name!r} of weight {i} has shape "
                                 f"{tuple(v.shape)}, the weight {tuple(p.shape)}")
    for group in opt.param_groups:
        group["capturable"] = capturable
    for st in opt.state.values():  # a capturable step count lives beside the weights
        if capturable or torch.is_tensor(st.get("step")):  # older RMSprop keeps a Python int
            st["step"] = torch.as_tensor(st["step"], dtype=torch.float32).to(
                device if capturable else "cpu")


def restore_rng(ckpt: dict, device) -> None:
    """Restore the random streams a checkpoint saved. A checkpoint written on the CPU holds no
    CUDA stream: resumed on a GPU, the CUDA generator gets a seed of its own from the run's seed
    and iteration, so the noise of the first iterations is not drawn again."""
    torch.set_rng_state(ckpt["rng_cpu"])
    if device.type == "cuda":
        if ckpt["rng_cuda"] is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
        else:
            torch.cuda.manual_seed(resume_seed(ckpt["args"]["seed"], ckpt["iteration"]))


def resume_seed(seed: int, iteration: int) -> int:
    """A seed for a random stream picked up at `iteration` with no saved state: a function of
    the run's seed and the iteration, unlike the seed the run started from."""
    return (seed * 6_364_136_223_846_793_005 + iteration * 1_442_695_040_888_963_407 + 1) % 2**63


# Defaults that follow --data (a flag given on the command line wins). MNIST: gan_mnist.py's
# batch 50 and DIM 64; its 200,000 iterations take days on a CPU, where one takes 1.7 s on one
# thread (benchmarks/speed.py --data mnist): 1000 take half an hour there.
DATA_DEFAULTS = {"digits": {"iters": 2000},
                 "mnist": {"iters": 1000, "batch": 50, "dim": 64, "eval_every": 250}}


def given_options(parser, argv) -> set:
    """The destinations of the options written on the command line (not left at a default)."""
    defaults = {a: a.default for a in parser._actions}
    for a in parser._actions:
        a.default = argparse.SUPPRESS
    try:
        return set(vars(parser.parse_args(argv)))
    finally:
        for a, d in defaults.items():
            a.default = d


def check_data(parser, data) -> None:
    """MNIST's files, before anything is written: the digits (their sha256), the baselines'
    numbers, the classifier's weights (trained here on first use, checked on held-out digits).
    A file that is missing, damaged or foreign is one line saying what to do, and exit 2."""
    if data != "mnist":
        return
    try:
        common.mnist_arrays()
        common.mnist_assets()
        common.mnist_classifier("cpu")
    except (OSError, ValueError) as e:
        parser.error(f"--data mnist: {e}")
    except common.WriteFailed as e:
        parser.error(f"--data mnist: the classifier's weights: {e}")


def parse_or_resume(parser, argv, script: str, resumable: set):
    """Parse the command line, filling DATA_DEFAULTS for its --data and then the parser's
    resolve (defaults that depend on other flags); with --resume, load the checkpoint and
    continue with the arguments it was made with (checked as a command line is: a damaged or
    tampered checkpoint is refused), of which the command line may change only `resumable`.
    A run that reached its --iters but has no summary yet (killed while it wrote its figures)
    is completed without training. Returns (args, checkpoint or None); a bad command line is
    a one-line error and exit 2."""
    args = parser.parse_args(argv)
    if args.resume is None:
        check_data(parser, getattr(args, "data", None))
        given = given_options(parser, argv)
        for k, v in DATA_DEFAULTS.get(args.data, {}).items():
            if k not in given:
                setattr(args, k, v)
        if parser.resolve is not None:
            parser.resolve(args)
        return args, None
    try:
        newer = {a.dest: a.default for a in parser._actions if a.option_strings
                 and (a.default is None or isinstance(a, argparse._StoreTrueAction))}
        ckpt = load_checkpoint(args.resume, script, set(vars(args)), newer)
        check_data(parser, ckpt["args"].get("data"))  # the run's data, not the command line's
        check_saved_args(parser, ckpt)
    except ValueError as e:
        parser.error(f"--resume: {e}")
    given = given_options(parser, argv) - {"resume"}
    changed = {k for k in given - resumable if getattr(args, k) != ckpt["args"].get(k)}
    if changed:  # repeating a value the run already has is no change
        parser.error("--resume continues a run as it was configured; it cannot change "
                     + ", ".join("--" + k.replace("_", "-") for k in sorted(changed)))
    args = argparse.Namespace(**{**ckpt["args"], "resume": args.resume,
                                 **{k: getattr(args, k) for k in given}})
    if args.iters < ckpt["iteration"] or (args.iters == ckpt["iteration"] and run_ended(ckpt)):
        parser.error(f"--resume: the run is at iteration {ckpt['iteration']} already; pass "
                     f"--iters larger than that to continue it")
    return args, ckpt


def parse(parser: ArgumentParser, argv, script: str, resumable: set, step_bytes):
    """A script's run arguments (the checkpoint's on --resume), checkpoint and device, or a
    one-line error and exit 2 before anything is written. step_bytes(args): the script's
    estimate of a training step's memory, checked against the device's."""
    robust_console()
    args, ckpt = parse_or_resume(parser, argv, script, resumable)
    try:
        device = pick_device(args.device)
    except ValueError as e:
        parser.error(f"--device {args.device!r}: {e}")
    if step_bytes(args) > memory_of(device):
        parser.error(f"--batch {args.batch} with --dim {args.dim} needs about "
                     f"{step_bytes(args) / 2**30:.0f} GiB, more than the "
                     f"{memory_of(device) / 2**30:.0f} GiB of {device}")
    use_threads(args, device)
    return args, ckpt, device


def restore(parser: ArgumentParser, ckpt, G, D, opt_g, opt_d, device, capturable: bool) -> int:
    """The iteration a run starts at: 0 for a new run (ckpt None); on --resume, after loading the
    checkpoint's weights, optimiser and random states onto this run's device. One whose tensors
    do not fit this run is a one-line error and exit 2, before anything is written."""
    if ckpt is None:
        return 0
    try:
        G.load_state_dict(ckpt["G"])
        D.load_state_dict(ckpt["D"])
        load_optimizer(opt_g, ckpt["opt_g"], device, capturable)
        load_optimizer(opt_d, ckpt["opt_d"], device, capturable)
        restore_rng(ckpt, device)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
        why = (str(e).strip() or type(e).__name__).splitlines()[0]
        parser.error(f"--resume: damaged checkpoint {ckpt['path']}: its tensors do not fit this "
                     f"run ({why})")
    return ckpt["iteration"]


def run_ended(ckpt) -> bool:
    """Whether the run of this checkpoint has its summary: it ended (a run killed between its
    last checkpoint and its summary has none, and --resume completes it)."""
    try:
        with open(os.path.join(os.path.dirname(ckpt["path"]), "summary.json")) as fh:
            return json.load(fh).get("status") in ("finished", "diverged")
    except (OSError, ValueError, AttributeError):
        return False


def check_saved_args(parser, ckpt: dict) -> None:
    """A checkpoint's arguments pass the checks the command line passes: rebuilt into the flags
    that give them and parsed by the script's own parser (types, ranges, choices, the flags
    that go together), each value as it was saved; its iteration is a count within its
    --iters. ValueError saying what is damaged otherwise: nothing but tensors is trusted."""
    saved, argv = ckpt["args"], []
    for act in parser._actions:
        if not act.option_strings or act.dest in ("help", "resume"):
            continue
        v, flag = saved.get(act.dest), act.option_strings[0]
        if isinstance(act, argparse._StoreTrueAction):
            if not isinstance(v, bool):
                raise ValueError(f"damaged checkpoint: {flag} is {v!r}, not true or false")
            argv += [flag] if v else []
        elif v is None:
            if act.default is not None:
                raise ValueError(f"damaged checkpoint: it has no {flag}")
        else:
            argv += [flag, *(map(str, v) if isinstance(v, list) and act.nargs else [str(v)])]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):  # a command line of the saved values, resolved as
            parsed = vars(parse_or_resume(parser, argv, "", set())[0])  # a new run's would be
    except SystemExit:
        why = (err.getvalue().strip().splitlines() or ["refused"])[-1].split("error: ", 1)[-1]
        raise ValueError(f"damaged checkpoint: its arguments are refused ({why})") from None
    for k, v in parsed.items():
        if k != "resume" and (saved.get(k) != v or type(saved.get(k)) is not type(v)) \
                and not (isinstance(v, float) and isinstance(saved.get(k), int)):
            raise ValueError(f"damaged checkpoint: --{k.replace('_', '-')} is "
                             f"{saved.get(k)!r}")
    it = ckpt["iteration"]
    if not isinstance(it, int) or isinstance(it, bool) or not 0 <= it <= saved["iters"]:
        raise ValueError(f"damaged checkpoint: its iteration is {it!r}, not a count from 0 to "
                         f"its --iters {saved['iters']}")
