"""The sweeps past one machine: benchmarks/compare.py, open_questions.py and w1_benchmark.py with
`--ray auto|ADDRESS` send each run to a Ray cluster (https://docs.ray.io) as a task of its
own. Ray is optional (requirements-ray.txt): only this module imports it, and only with --ray.

- Resources: each task holds --cpus-per-run CPUs and --gpus-per-run GPUs; fractions pack runs,
  e.g. --gpus-per-run 0.125 puts eight toy runs on one GPU. A run uses floor(CPUs) threads.
- No shared file system: the repository's code travels with the job (Ray's working_dir), the
  folder of an interrupted run travels to the worker that resumes it, and every run's folder
  comes back to the driver as a tar archive and lands under --out as a local run's would.
- Failures: a task whose worker process or node dies, or whose training process is killed, is
  tried again up to --retries times; after that the run is reported failed and the sweep goes on.
- Ctrl-C (or SIGTERM) on the driver: tasks not started are cancelled, running ones are
  interrupted: each run writes its checkpoint and its folder comes back, so the same command
  resumes it. A second Ctrl-C abandons the running ones at once.
"""
from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

import ray
import ray.cloudpickle
import ray.exceptions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What the job does not need on the workers: history, results and figures, and run folders.
NOT_SHIPPED = [".git/", "results/", "assets/", "runs/", "*.pt", ".hypothesis/", ".pytest_cache/",
               "__pycache__/", ".sweep.lock", ".venv/", "venv/"]
# The training's own process: it dies with its Ray worker (Linux; a training that outlived its
# worker would run on unseen), and takes SIGINT and SIGTERM, which a Ray worker blocks and a
# child inherits blocked (its checkpoint on Ctrl-C depends on them).
IN_TASK = ("import ctypes, os, runpy, signal, sys\n"
           "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})\n"
           "if sys.platform.startswith('linux'):\n"
           "    ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL\n"
           "    if os.getppid() == 1: sys.exit(137)  # the worker is gone already\n"
           "sys.argv = sys.argv[1:]\n"
           "runpy.run_path(sys.argv[0], run_name='__main__')\n")


def connect(address: str, out: str) -> str:
    """Join the Ray cluster at address ('auto': the one this machine is part of or RAY_ADDRESS
    names; or the head's host:port), shipping the repository's code. Returns a line saying what
    the cluster holds; ValueError if there is none."""
    os.environ.setdefault("RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES", "")  # ours: NOT_SHIPPED
    excludes = list(NOT_SHIPPED)
    rel = os.path.relpath(os.path.abspath(out), ROOT)
    if not rel.startswith(os.pardir):  # an --out inside the repository stays behind too
        excludes.append("/" + rel.replace(os.sep, "/") + "/")
    host, _, port = address.rpartition(":")
    if port.isdigit() and host and "://" not in host:  # Ray waits minutes for a missing head
        import socket
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        except OSError as e:
            raise ValueError(f"--ray {address}: no Ray head answers there "
                             f"({e.strerror or type(e).__name__}); `ray start --head` starts "
                             f"one, `ray status` on a node names its address") from None
    try:
        ray.init(address=address, runtime_env={"working_dir": ROOT, "excludes": excludes},
                 log_to_driver=False, logging_level="WARNING")
    except Exception as e:  # noqa: BLE001 - Ray says why in many exception types
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"--ray {address}: no Ray cluster to join ({why})") from None
    res = ray.cluster_resources()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return (f"Ray {ray.__version__}: {len(nodes)} node(s), {res.get('CPU', 0):g} CPUs, "
            f"{res.get('GPU', 0):g} GPUs")


def check_fits(cpus: float, gpus: float) -> None:
    """A task that no node can hold would wait for ever: ValueError instead."""
    for n in ray.nodes():
        r = n.get("Resources", {})
        if n.get("Alive") and r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus:
            return
    raise ValueError(f"no node of the cluster has {cpus:g} CPUs and {gpus:g} GPUs for one run "
                     f"(--cpus-per-run, --gpus-per-run); it has: " + "; ".join(
                         f"{n['NodeManagerAddress']}: {n['Resources'].get('CPU', 0):g} CPUs, "
                         f"{n['Resources'].get('GPU', 0):g} GPUs"
                         for n in ray.nodes() if n.get("Alive")))


# ------------------------------------------------------------------------ on the workers
class RunKilled(RuntimeError):
    """The training process died of a signal the task did not send (the OOM killer, say): Ray
    tries the task again (retry_exceptions)."""


def pack(folder: str, names=None) -> bytes:
    """The entries `names` of folder (all of them by default) as a tar.gz archive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in sorted(os.listdir(folder) if names is None else names):
            tar.add(os.path.join(folder, name), arcname=name)
    return buf.getvalue()


def unpack(blob: bytes, folder: str) -> None:
    """Extract an archive of pack() into folder, over what is there; nothing lands outside it
    (an entry with '..' or a link out is refused, tarfile.TarError)."""
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.8.17, 3.9.17, 3.10.12, 3.11.4 and on
            tar.extractall(folder, filter="data")
            return
        for m in tar.getmembers():  # older Pythons: the same refusals, by hand
            if os.path.isabs(m.name) or os.pardir in m.name.split("/") or not (
                    m.isfile() or m.isdir()):
                raise tarfile.TarError(f"{m.name}: not a plain file inside the folder")
        tar.extractall(folder)


def repo_root() -> str:
    """Where the job's copy of the repository is on this worker (Ray's working_dir)."""
    for p in [os.getcwd(), *sys.path]:
        if os.path.isfile(os.path.join(p or ".", "common.py")):
            return os.path.abspath(p or ".")
    raise RuntimeError("the repository did not reach this worker (Ray's working_dir)")


def load(spec: str):
    """The function named by 'path/in/repository.py:name', imported from the worker's copy of
    the repository (a module of benchmarks/ is no package the workers could import by name)."""
    import importlib.util
    path, name = spec.split(":")
    module = os.path.splitext(os.path.basename(path))[0]
    if module not in sys.modules:  # a worker runs many tasks: import once
        full = os.path.join(repo_root(), path)
        if os.path.dirname(full) not in sys.path:  # its neighbours, as a script has them
            sys.path.insert(0, os.path.dirname(full))
        loc = importlib.util.spec_from_file_location(module, full)
        mod = importlib.util.module_from_spec(loc)
        sys.modules[module] = mod
        loc.loader.exec_module(mod)
    return getattr(sys.modules[module], name)


def forget_dead_runs() -> None:
    """Remove the temporary folders of tasks whose worker was killed (no `finally` ran there);
    their runs were tried again or reported failed."""
    import glob
    for path in glob.glob(os.path.join(tempfile.gettempdir(), "wgan-run-*-*")):
        try:
            os.kill(int(os.path.basename(path).split("-")[2]), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, OSError):  # not a pid, or another user's process: not ours to judge
            continue


def run_script(script: str, flags: list, resume, threads: int) -> dict:
    """On a worker: run one run of a method script (or resume the one in `resume`: its folder
    name, its folder as a tar archive, the flags to add) in a folder of its own; return its exit
    code, log, time, node, and the folder as a tar archive."""
    root = repo_root()
    forget_dead_runs()
    tmp = tempfile.mkdtemp(prefix=f"wgan-run-{os.getpid()}-")
    try:
        runs = os.path.join(tmp, "runs")
        os.makedirs(runs)
        if resume:
            name, blob, more = resume
            unpack(blob, runs)
            argv = ["--resume", os.path.join(runs, name), *more]
        else:
            argv = [*flags, "--out", runs]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        t = time.time()
        interrupted = False
        with open(os.path.join(tmp, "log.txt"), "w") as log:
            p = subprocess.Popen([sys.executable, "-c", IN_TASK,
                                  os.path.join(root, script + ".py"), *argv], stdout=log,
                                 stderr=subprocess.STDOUT, cwd=root, env=env)
            while True:
                try:  # in steps: ray.cancel's KeyboardInterrupt reaches Python code only
                    code = p.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except KeyboardInterrupt:  # ray.cancel: the driver was interrupted
                    if not interrupted:
                        p.send_signal(signal.SIGINT)  # the run writes its checkpoint and stops
                    interrupted = True
        with open(os.path.join(tmp, "log.txt"), errors="replace") as fh:
            text = fh.read()
        if code < 0 and not interrupted:
            tail = "\n".join(text.strip().splitlines()[-3:])
            raise RunKilled(f"the training died of signal {-code}; its log ends: {tail}")
        ctx = ray.get_runtime_context()
        return {"code": code, "seconds": time.time() - t, "log": text, "tar": pack(runs),
                "node": ctx.get_node_id(), "ip": ray.util.get_node_ip_address(),
                "interrupted": interrupted}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@ray.remote(num_cpus=0)
class Board:
    """Where tasks say they started and ended: the driver's count of running runs, and of the
    tries each took."""

    def __init__(self):
        self.running, self.tries = set(), {}

    def start(self, key):
        self.running.add(key)
        self.tries[key] = self.tries.get(key, 0) + 1

    def end(self, key):
        self.running.discard(key)

    def state(self):
        return self.running, self.tries


def on_board(board, key, fn, *args):
    """A task: fn(*args) (fn a function of this module, or 'path.py:name' to load()), with its
    start and end said on the board."""
    board.start.remote(key)
    try:
        return (load(fn) if isinstance(fn, str) else fn)(*args)
    finally:
        board.end.remote(key)


# ------------------------------------------------------------------------ on the driver
def board_state(board):
    """(keys running, tries per key) from the board; empty if its node is gone."""
    try:
        return ray.get(board.state.remote())
    except ray.exceptions.RayError:
        return set(), {}


def running_on(board) -> set:
    return board_state(board)[0]


def run_all(fn, jobs, cpus: float, gpus: float, retries: int, report, tag: str, quiet=None):
    """Run fn(*args) for every (key, args) in jobs as Ray tasks (fn: a function of this module,
    or 'path.py:name' of the repository). Calls report(key, result, error, tries, running) as
    each ends (error: None, or why it failed), and quiet(count of running runs) while none ends
    (a line to print, or None); returns the signal that interrupted the driver, or None."""
    if not jobs:
        return None
    # The workers cannot import this module by name (benchmarks/ is no package): send it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    board = Board.remote()
    task = ray.remote(on_board).options(num_cpus=cpus, num_gpus=gpus, max_retries=retries,
                                        retry_exceptions=[RunKilled])
    refs = {task.remote(board, key, fn, *args): key for key, args in jobs}
    import harness  # the driver's side only: the workers never wait on signals
    cancelled = 0  # what was asked so far: 1 stop gently, 2 at once
    with harness.Signals() as stop:
        while refs:
            asked = 2 if stop.at_once else 1 if stop.signum is not None else 0
            if asked > cancelled:
                force = asked > 1
                print(f"[{tag}] " + ("abandoning the running runs" if force else
                                     "interrupted: runs not started are cancelled, running ones "
                                     "are stopped (a sweep's runs write their checkpoints and "
                                     "come back); Ctrl-C again: abandon them"), flush=True)
                for ref in refs:
                    ray.cancel(ref, force=force)
                cancelled = asked
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.25)
            still = None if ready or quiet is None else quiet(
                lambda: len(running_on(board) & set(refs.values())))
            if still:
                print(still, flush=True)
            for ref in ready:
                key = refs.pop(ref)
                result, error = None, None
                running, tries = board_state(board)
                try:
                    result = ray.get(ref)
                except ray.exceptions.TaskCancelledError:
                    error = ("not started (interrupted)" if not tries.get(key) else
                             "stopped (interrupted): what it ran this time is lost")
                except ray.exceptions.RayError as e:
                    cause = getattr(e, "cause", None) or e
                    error = " ".join(str(cause).split())[:300] or type(cause).__name__
                report(key, result, error, tries.get(key, 0),
                       len(running & set(refs.values())))
    return stop.signum
