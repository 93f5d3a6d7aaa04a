"""Milliseconds per generator iteration, eager vs CUDA graph, side by side in one process.

One generator iteration = --n-critic critic steps with the method's penalty + one generator step,
exactly the step function the method script trains with. On a CPU only the eager path exists.
The eager path uses plain optimisers, the graph path capturable ones, as the scripts do.

    python benchmarks/speed.py                          # wgan_gp, batch 256, widths 128 and 512
    python benchmarks/speed.py --script slogan --dims 128
    python benchmarks/speed.py --data digits            # the convolutional critic on 8×8 digits
    python benchmarks/speed.py --script slogan -- --pairs all     # flags for the script after --
    python benchmarks/speed.py --script wgan_alp --dims 128 --compile   # + torch.compile'd models
    python benchmarks/speed.py --threads 1 2 --neighbour   # CPU threads, alone and beside a busy
                                                           # process (the scripts' thread policy)

--compile times a third path, the same step wrapped in torch.compile: a penalty that needs a
second derivative (the gradient penalties, GN) is refused there, since torch.compile's autograd
does not support double backward; the first-order ones (quotients, ALP, clipping, SN,
GroupSort, the c-transform) compile, though ALP's power iteration (a torch.autograd.grad inside
the step) breaks the compiled graph.
"""
import contextlib
import functools
import os
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import common  # noqa: E402
import harness

SCRIPTS = common.SCRIPTS


def time_path(mod, args, device, graph, iters, warmup, compiled=False, seconds=float("inf")):
    """Milliseconds per generator iteration over `iters` timed iterations after `warmup`
    untimed ones, or over those done when `seconds` have passed (at least one)."""
    torch.manual_seed(0)
    G, D = (m.to(device) for m in mod.make_models(args))  # the script's own: MLPs or convolutions
    opt_g, opt_d = mod.make_optimizers(G, D, args, capturable=graph)
    step = functools.partial(mod.train_step, G, D, opt_g, opt_d, args)
    if compiled:  # the whole generator iteration, penalty and optimiser steps included
        step = torch.compile(step)
    run = harness.CudaGraphStep(step) if graph else step
    t = time.perf_counter()
    for i in range(warmup):  # includes the graph's own warm-up and capture
        if i and not graph and time.perf_counter() - t > seconds:
            break  # a slow cell: its first iteration warms it enough
        run(args.n_critic)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t, done = time.perf_counter(), 0
    while done < iters and (done == 0 or time.perf_counter() - t < seconds):
        out = run(args.n_critic)
        done += 1
        if seconds < float("inf"):
            sync()  # the clock must see the work, to stop the cell in time
    sync()
    if not torch.isfinite(out).all():
        raise FloatingPointError("the training step produced NaN or infinity")
    return 1000 * (time.perf_counter() - t) / done


@contextlib.contextmanager
def busy_neighbour(on: bool):
    """A second process that keeps one core busy (`python3 -c 'while 1: pass'`), as another
    program on a laptop or a shared machine does, for as long as the block runs."""
    if not on:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    try:
        time.sleep(0.5)  # let it take its core
        yield
    finally:
        proc.kill()
        proc.wait()


def parse(argv=None):
    """The arguments and the device, set up as the scripts set theirs up (harness.pick_device),
    or a one-line error and exit 2."""
    p = harness.ArgumentParser(prog="speed.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--script", choices=SCRIPTS, default="wgan_gp", help="method script to time")
    p.add_argument("--dims", type=harness.number(int, 1), nargs="+", default=[128, 512],
                   help="hidden widths")
    p.add_argument("--data", choices=common.DATASETS, default="swissroll",
                   help="a 2-D toy (MLPs) or digits (the scripts' convolutional models)")
    p.add_argument("--batch", type=harness.number(int, 2), default=256, help="batch size")
    p.add_argument("--n-critic", type=harness.number(int, 1), default=5,
                   help="critic steps per generator step")
    p.add_argument("--iters", type=harness.number(int, 1), default=200,
                   help="timed iterations per path")
    p.add_argument("--warmup", type=harness.number(int, 0), default=10,
                   help="untimed iterations first (the graph path captures in these)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--compile", action="store_true",
                   help="also time the step wrapped in torch.compile (eager, no CUDA graph)")
    p.add_argument("--threads", type=harness.number(int, 1), nargs="+", default=None,
                   help="CPU threads to time the eager step with, each in turn (default: the "
                        "scripts' thread policy for this workload)")
    p.add_argument("--neighbour", action="store_true",
                   help="time each eager cell again beside a busy single-threaded process")
    p.add_argument("--max-seconds", type=harness.number(float, 0, lo_ok=False), default=60.0,
                   help="stop a cell's timed iterations after this long")
    p.add_argument("script_args", nargs="*", help="extra flags for the script, after --")
    a = p.parse_args(argv)
    own = {"--dim", "--batch", "--data", "--n-critic", "--device", "--iters"}
    set_here = sorted({f.split("=")[0] for f in a.script_args} & own)
    if set_here:  # the table's header and rows say this program's values: they must be the run's
        p.error(f"{set_here[0]} after -- would override speed.py's own; give it before --"
                + (" (as --dims)" if set_here[0] == "--dim" else ""))
    try:
        device = harness.pick_device(a.device)
    except ValueError as e:
        p.error(f"--device {a.device!r}: {e}")
    return a, device


def main(argv=None):
    a, device = parse(argv)
    import importlib
    mod = importlib.import_module(a.script)
    parser = mod.build_parser()
    use_graph = harness.graph_wanted(device, False, mod.OPTIMIZER)
    print(f"{a.script}.py on {harness.device_name(device)} ({device}), torch {torch.__version__},"
          f" {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}, {a.data}, batch "
          f"{a.batch}, {a.n_critic} critic steps"
          + (f", {' '.join(a.script_args)}" if a.script_args else ""))
    print(f"{'width':>6} {'threads':>8} {'eager ms/it':>12}"
          + (f" {'beside busy':>12}" if a.neighbour else "")
          + f" {'graph ms/it':>12} {'speed-up':>9}", flush=True)
    for dim in a.dims:
        args, _ = harness.parse_or_resume(parser, [
            "--dim", str(dim), "--batch", str(a.batch), "--data", a.data, "--n-critic",
            str(a.n_critic), *a.script_args], a.script, set())
        policy, _ = harness.default_threads(args, device)
        for threads in a.threads or [policy]:
            torch.set_num_threads(threads)
            eager = []
            try:
                for busy in [False, True][:1 + a.neighbour]:
                    with busy_neighbour(busy):
                        eager.append(time_path(mod, args, device, False, a.iters, a.warmup,
                                               seconds=a.max_seconds))
            except FloatingPointError as e:
                print(f"speed.py: width {dim}: {e} (the flags after -- make it diverge?)",
                      file=sys.stderr, flush=True)
                return 1
            cells = f"{dim:>6} {threads:>8} " + " ".join(f"{e:>12.2f}" for e in eager)
            if use_graph:
                try:
                    graph = time_path(mod, args, device, True, a.iters, max(a.warmup, 4))
                except (harness.CaptureFailed, FloatingPointError) as e:
                    print(f"{cells} {'(failed)':>12}   {e}", flush=True)
                    return 1
                print(f"{cells} {graph:>12.2f} {eager[0] / graph:>8.1f}x", flush=True)
            else:
                why = "(no graph)" if device.type == "cuda" else "(no CUDA)"
                print(f"{cells} {why:>12} {'':>9}", flush=True)
        if a.compile:
            try:
                t0 = time.perf_counter()
                fast = time_path(mod, args, device, False, a.iters, max(a.warmup, 3), True)
                warm = time.perf_counter() - t0 - fast * a.iters / 1000
                print(f"{'':>6} compiled: {fast:.2f} ms/it ({eager[0] / fast:.2f}x eager; "
                      f"compiling and warm-up {warm:.0f} s)", flush=True)
            except Exception as e:  # noqa: BLE001 - what torch.compile refuses is the result
                why = " ".join(str(e).split())[:160] or type(e).__name__
                print(f"{'':>6} compiled: refused ({type(e).__name__}: {why})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
