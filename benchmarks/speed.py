"""Milliseconds per generator iteration, eager vs CUDA graph, side by side in one process.

One generator iteration = --n-critic critic steps with the method's penalty + one generator step,
exactly the step function the method script trains with. On a CPU only the eager path exists.

    python benchmarks/speed.py                          # wgan_gp, batch 256, widths 128 and 512
    python benchmarks/speed.py --script slogan --dims 128
"""
import argparse
import importlib
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def time_path(mod, dim, batch, n_critic, device, graph, iters, warmup, script_argv):
    args = mod.build_parser().parse_args(
        ["--dim", str(dim), "--batch", str(batch), "--n-critic", str(n_critic)] + script_argv)
    torch.manual_seed(0)
    G, D = mod.mlp(2, dim, 2).to(device), mod.Critic(dim).to(device)
    opt_g, opt_d = mod.make_optimizers(G, D, args, device)
    step = mod.make_train_step(G, D, opt_g, opt_d, args, device)
    run = mod.cuda_graph_runner(step) if graph else step
    for _ in range(warmup):  # includes the graph's own warm-up and capture
        run(args.n_critic)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    for _ in range(iters):
        out = run(args.n_critic)
    sync()
    assert torch.isfinite(out).all()
    return 1000 * (time.perf_counter() - t) / iters


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--script", default="wgan_gp", help="method script to time")
    p.add_argument("--dims", type=int, nargs="+", default=[128, 512], help="hidden widths")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--n-critic", type=int, default=5)
    p.add_argument("--iters", type=int, default=200, help="timed iterations per path")
    p.add_argument("--device", default="auto")
    p.add_argument("script_args", nargs="*", help="extra flags for the script, after --")
    a = p.parse_args()
    mod = importlib.import_module(a.script)
    device = mod.pick_device(a.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{a.script}.py on {name} ({device}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, batch {a.batch}, {a.n_critic} critic steps")
    print(f"{'width':>6} {'eager ms/it':>12} {'graph ms/it':>12} {'speed-up':>9}")
    for dim in a.dims:
        eager = time_path(mod, dim, a.batch, a.n_critic, device, False, a.iters, 10, a.script_args)
        if device.type == "cuda":
            graph = time_path(mod, dim, a.batch, a.n_critic, device, True, a.iters, 10,
                              a.script_args)
            print(f"{dim:>6} {eager:>12.2f} {graph:>12.2f} {eager / graph:>8.1f}x", flush=True)
        else:
            print(f"{dim:>6} {eager:>12.2f} {'(no CUDA)':>12} {'':>9}", flush=True)


if __name__ == "__main__":
    main()
