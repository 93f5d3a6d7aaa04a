"""GroupSort's orthogonal maps (wgan_groupsort.py --ortho-map) against WGAN-GP's step, on the CPU.

For each of torch's orthogonal maps (householder, the default; cayley; matrix_exp): milliseconds
per critic update on the W1 benchmark's 128-D setting (the critic [128, 256, 256, 1], batch
1024, the update benchmarks/w1_benchmark.py trains: the script's own critic_step) and per MNIST
generator iteration (benchmarks/speed.py's timing, batch 50, DIM 64), each as a ratio to
WGAN-GP's; and how far the weights are from orthogonal after 20 updates (max |WᵀW − I|).

    python benchmarks/ortho_maps.py                    # writes results/threads/ortho_maps.md
    python benchmarks/ortho_maps.py --threads 2 --mnist-iters 3
"""
import importlib
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import harness  # noqa: E402
import speed  # noqa: E402
import sweep  # noqa: E402
import wgan_groupsort  # noqa: E402

MAPS = wgan_groupsort.ORTHO_MAPS


def args_of(mod, flags):
    return harness.parse_or_resume(mod.build_parser(), flags, mod.SCRIPT, set())[0]


def critic_update_ms(mod, flags, steps: int, dim: int = 128, batch: int = 1024):
    """(ms per critic_step of the script on a dim-D pair of Gaussians, the W1 benchmark's sizes;
    the critic it trained)."""
    args = args_of(mod, flags)
    torch.manual_seed(0)
    D = mod.critic_net([dim, 2 * dim, 2 * dim, 1], args)
    opt = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.0, 0.9))
    real, fake = torch.randn(batch, dim), torch.randn(batch, dim) + 1
    mod.critic_step(D, opt, real, fake, args)  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        mod.critic_step(D, opt, real, fake, args)
    return 1000 * (time.perf_counter() - t) / steps, D


def parse_args(argv=None):
    p = harness.ArgumentParser(prog="ortho_maps.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=harness.number(int, 1), default=1, help="CPU threads")
    p.add_argument("--steps", type=harness.number(int, 1), default=20,
                   help="timed critic updates at 128-D")
    p.add_argument("--mnist-iters", type=harness.number(int, 1), default=5,
                   help="timed MNIST iterations")
    p.add_argument("--out", default=os.path.join(ROOT, "results", "threads", "ortho_maps.md"),
                   help="the table's file")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device("cpu")
    # the reference: the configuration the project's figures draw in grey (WGAN-GP's, λ 10)
    script, ref = next((sc, spec["flags"]) for n, sc, spec in sweep.configs()
                       if n == sweep.reference())
    gp = importlib.import_module(script)
    gp_step, _ = critic_update_ms(gp, ref, a.steps)
    mnist = ["--data", "mnist", "--batch", "50", "--dim", "64"]
    gp_mnist = speed.time_path(gp, args_of(gp, ref + mnist), device, False, a.mnist_iters, 1)
    rows = [f"| WGAN-GP (reference) | {gp_step:.1f} | 1.00 | {gp_mnist:.0f} | 1.00 | – |"]
    for m in MAPS:
        flags = ["--ortho-map", m]
        step, D = critic_update_ms(wgan_groupsort, flags, a.steps)
        err = wgan_groupsort.orthogonality_error(D).item()
        it = speed.time_path(wgan_groupsort, args_of(wgan_groupsort, mnist + flags), device,
                             False, a.mnist_iters, 1)
        rows.append(f"| GroupSort, {m} | {step:.1f} | {step / gp_step:.2f} | {it:.0f} | "
                    f"{it / gp_mnist:.2f} | {err:.1e} |")
        print(rows[-1], flush=True)
    load = os.getloadavg()[0]
    text = "\n".join([
        f"Command: `python benchmarks/ortho_maps.py --threads {a.threads}` ({a.steps} critic "
        f"updates at 128-D, {a.mnist_iters} MNIST iterations; torch {torch.__version__}, "
        f"{a.threads} thread(s), {harness.device_name(device)}, load average {load:.2f} at "
        f"the end)", "",
        "| critic | ms per critic update, 128-D | × WGAN-GP | ms per MNIST iteration | "
        "× WGAN-GP | max \\|WᵀW − I\\| after the updates |",
        "|---|---|---|---|---|---|", *rows, ""])
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
