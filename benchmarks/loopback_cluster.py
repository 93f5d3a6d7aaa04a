"""A Ray cluster of several nodes on this one machine, inside a network namespace that has only
the loopback interface, so that every connection stays on 127.0.0.1 (Ray otherwise gives its
nodes the address of the external interface). For the tests of --ray, and to measure the Ray
path on one machine; a real cluster is started with `ray start` on each machine (README).

Linux only, as root (unshare, nsenter, ip). Each node
is a `ray start` of its own (a raylet and its workers) with --cpus CPUs; --head-gpus gives the
head GPUs that Ray takes on trust, to see fractional GPUs pack runs on a machine without one. The namespace has a PID
namespace too, so that every process of the cluster ends with it.

    python benchmarks/loopback_cluster.py --nodes 2 --cpus 1 -- bash       # a shell inside
    python benchmarks/loopback_cluster.py -- python benchmarks/compare.py --ray 127.0.0.1:6379
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

PORT = 6379


def unshare_command() -> list:
    return ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child"]


def why_not() -> str | None:
    """Why a loopback cluster cannot start here, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux's"
    for tool in ("unshare", "nsenter", "ip", "ray"):
        if shutil.which(tool) is None and not (tool == "ray" and ray_command()):
            return f"{tool} is not installed"
    try:
        r = subprocess.run([*unshare_command(), "ip", "link", "set", "lo", "up"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare failed: {e}"
    if r.returncode:
        return (f"this user may not make a network namespace "
                f"({(r.stderr.strip().splitlines() or ['unshare failed'])[-1]})")
    return None


def ray_command() -> list:
    """The `ray` command of this Python (its venv's bin/, or the module)."""
    exe = os.path.join(os.path.dirname(sys.executable), "ray")
    return [exe] if os.path.exists(exe) else []


class Cluster:
    """Start it with `with Cluster(nodes, cpus) as c:`; c.address is the head's host:port,
    c.command(argv) the argv that runs a program inside the namespace (a Ray driver, say), and
    the workers' temporary files are under c.work."""

    def __init__(self, nodes: int = 2, cpus: float = 1, port: int = PORT, head_gpus: int = 0,
                 niceness: int = 0):
        self.nodes, self.cpus, self.port, self.head_gpus = nodes, cpus, port, head_gpus
        self.niceness = niceness
        self.address = f"127.0.0.1:{port}"
        self.proc = self.tmp = self.work = None

    def __enter__(self):
        # Ray's sockets live under its temp folder: a short path, as Unix sockets need.
        self.tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        self.work = os.path.join(self.tmp, "work")
        self.proc = subprocess.Popen(
            [*unshare_command(), sys.executable, os.path.abspath(__file__), "--serve",
             "--nodes", str(self.nodes), "--cpus", str(self.cpus), "--port", str(self.port),
             "--head-gpus", str(self.head_gpus), "--niceness", str(self.niceness),
             "--temp-dir", self.tmp], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        said = []
        for line in self.proc.stdout:  # the server says 'ready' once every node has joined
            said.append(line)
            if line.strip() == "ready":
                return self
        self.__exit__()
        raise RuntimeError("the loopback cluster did not start:\n" + "".join(said[-20:]))

    def command(self, argv: list) -> list:
        return ["nsenter", f"--net=/proc/{self.proc.pid}/ns/net", "--", *argv]

    def pids(self, part: str) -> list:
        """The processes in the cluster's namespace whose command line holds `part` (Ray names
        a worker that runs a task 'ray::<function>')."""
        ns, found = os.readlink(f"/proc/{self.proc.pid}/ns/net"), []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
                if part in cmd and os.readlink(f"/proc/{pid}/ns/net") == ns:
                    found.append(int(pid))
            except OSError:  # gone meanwhile
                continue
        return found

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()  # the server ends, and the kernel ends the namespace's rest
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def serve(a) -> None:
    """Inside the namespace: loopback up, the head and the other nodes, 'ready', then wait for
    the end of stdin. Leaving ends the PID namespace, and the kernel kills every process in it."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    ray = ray_command() or ["ray"]
    # The workers' temporary files (a run's folder while it runs) go under the cluster's folder.
    work = os.path.join(a.temp_dir, "work")
    os.makedirs(work, exist_ok=True)
    # Ray starts its workers at niceness 15 by default: on a machine with other work (a test
    # suite beside other jobs) the trainings would get a few per cent of a core and tests time
    # out. By default here they compete as equals, as the local pool's do.
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_worker_niceness=str(a.niceness),
               TMPDIR=work)
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", f"{a.cpus:g}",
              "--object-store-memory", str(200 * 2**20), "--disable-usage-stats"]
    subprocess.run([*ray, "start", "--head", "--port", str(a.port), "--temp-dir", a.temp_dir,
                    "--include-dashboard", "false", "--num-gpus", str(a.head_gpus), *common],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    for _ in range(a.nodes - 1):
        subprocess.run([*ray, "start", "--address", f"127.0.0.1:{a.port}", "--num-gpus", "0",
                        *common], check=True, env=env, stdout=subprocess.DEVNULL)
    print("ready", flush=True)
    sys.stdin.read()


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="loopback_cluster.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=2, help="nodes, the head included")
    p.add_argument("--cpus", type=float, default=1, help="CPUs each node offers")
    p.add_argument("--port", type=int, default=PORT, help="the head's port")
    p.add_argument("--head-gpus", type=int, default=0,
                   help="GPUs the head declares (Ray takes them on trust)")
    p.add_argument("--niceness", type=int, default=0,
                   help="the niceness of the workers and their trainings (Ray's own default: 15)")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--temp-dir", help=argparse.SUPPRESS)
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="after --: the command to run inside, e.g. a sweep with --ray")
    a = p.parse_args(argv)
    a.command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not a.serve and not a.command:
        p.error("give the command to run inside, after --")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.serve:
        serve(a)
        return 0
    why = why_not()
    if why:
        print(f"loopback_cluster.py: error: no loopback cluster here: {why}", file=sys.stderr)
        return 2
    cmd = a.command
    with Cluster(a.nodes, a.cpus, a.port, a.head_gpus, a.niceness) as c:
        print(f"[cluster] {a.nodes} nodes of {a.cpus:g} CPU(s) at {c.address}", flush=True)
        return subprocess.run(c.command(cmd)).returncode


if __name__ == "__main__":
    sys.exit(main())
