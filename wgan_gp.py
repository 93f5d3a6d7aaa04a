"""WGAN-GP: a Wasserstein GAN whose critic is kept 1-Lipschitz by a gradient penalty.

Two-sided (WGAN-GP): Gulrajani et al. 2017, "Improved Training of Wasserstein GANs".
One-sided (WGAN-LP): Petzka et al. 2018, "On the regularization of Wasserstein GANs"; argued for
in seed 02 ("revisiting the two-sided penalty"): the optimal critic has ‖∇f‖ = 1 only along
transport rays, so only ‖∇f‖ ≤ 1 is a constraint it is known to satisfy everywhere.

    critic     min_f  E f(G(z)) − E f(x) + λ·R                  (f is high on real data)
    two-sided  R = E[(‖∇f(x̂)‖₂ − 1)²]
    one-sided  R = E[max(‖∇f(x̂)‖₂ − 1, 0)²]
               x̂ = t·x + (1 − t)·G(z), one t ~ U[0, 1] per sample
    generator  min_G  −E f(G(z))
    E f(x) − E f(G(z)) is the critic's estimate of W1(P_real, P_G) (exact only for an optimal,
    1-Lipschitz critic); the script also logs the exact W1 and its noise floor (common.py).

Run (outputs go to runs/<script>-<data>-s<seed>-<time>/):
    python wgan_gp.py --one-sided                  # WGAN-LP, λ = 10, swiss roll (~3 min on 2 cores)
    python wgan_gp.py --lambda 10                  # the original two-sided WGAN-GP
    python wgan_gp.py --lambda 0.1                 # the anchor code's toy λ
    python wgan_gp.py --dim 512 --iters 100000 --lambda 0.1    # the anchor's full toy setting
    python wgan_gp.py --fixed-generator            # train the critic alone against real + N(0, I)
    python wgan_gp.py --iters 40 --dim 32 --eval-every 20      # a quick check on the CPU
    python wgan_gp.py --resume runs/<run>/checkpoint.pt --iters 8000    # continue a run
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import signal
import sys
import time

import torch
import torch.nn as nn

import common

SCRIPT = os.path.splitext(os.path.basename(__file__))[0]
N_EVAL = 1024  # points per evaluation: exact W1 at n = 1024 takes ~0.2 s on 2 cores
N_EVAL_DRAWS = 3  # W1 and its floor are means over this many independent draws
GRAPH_WARMUP = 3  # eager iterations on a side stream before the CUDA graph is captured
RESUMABLE = {"iters", "eval_every", "device", "no_cuda_graph"}  # what --resume may change


# ------------------------------------------------------------------------------------ arguments
class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit code 2, without the usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=f"{SCRIPT}.py", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    m = p.add_argument_group("method")
    m.add_argument("--lambda", dest="lam", type=float, default=10.0,
                   help="penalty weight λ (the paper's 10; the anchor's toy code uses 0.1)")
    m.add_argument("--one-sided", action="store_true",
                   help="penalise only ‖∇f‖ > 1 (WGAN-LP) instead of any ‖∇f‖ ≠ 1")
    t = p.add_argument_group("training")
    t.add_argument("--data", choices=common.DATASETS, default="swissroll", help="toy dataset")
    t.add_argument("--iters", type=int, default=5000, help="generator iterations")
    t.add_argument("--n-critic", type=int, default=5, help="critic steps per generator step")
    t.add_argument("--batch", type=int, default=256, help="batch size")
    t.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (G and critic)")
    t.add_argument("--betas", type=float, nargs=2, default=[0.5, 0.9], help="Adam betas")
    t.add_argument("--dim", type=int, default=128,
                   help="hidden width of G and critic (anchor: 512)")
    t.add_argument("--fixed-generator", action="store_true",
                   help="no generator: train the critic alone against fake = real + N(0, I)")
    t.add_argument("--seed", type=int, default=0, help="random seed")
    r = p.add_argument_group("running")
    r.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    r.add_argument("--no-cuda-graph", action="store_true",
                   help="on CUDA, run the training step eagerly instead of replaying a CUDA graph")
    r.add_argument("--eval-every", type=int, default=500,
                   help="evaluate (exact W1, figures, checkpoint) every this many iterations")
    r.add_argument("--out", default="runs", help="parent folder of the run folder")
    r.add_argument("--resume", metavar="PATH",
                   help="checkpoint.pt (or its run folder) to continue; may change only "
                        + ", ".join("--" + k.replace("_", "-") for k in sorted(RESUMABLE)))
    return p


def given_flags(parser: argparse.ArgumentParser, argv) -> set:
    """Names of the options that were written on the command line (not left at their default)."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def check_args(args) -> str | None:
    """Return what is wrong with the arguments, or None."""
    if not math.isfinite(args.lam) or args.lam < 0:
        return f"--lambda must be a finite number >= 0, got {args.lam}"
    if args.iters <= 0:
        return f"--iters must be > 0, got {args.iters}"
    if args.batch < 2:
        return f"--batch must be >= 2, got {args.batch}"
    if args.n_critic < 1:
        return f"--n-critic must be >= 1, got {args.n_critic}"
    if args.dim < 1:
        return f"--dim must be >= 1, got {args.dim}"
    if not (math.isfinite(args.lr) and args.lr > 0):
        return f"--lr must be > 0, got {args.lr}"
    if not all(0 <= b < 1 for b in args.betas):
        return f"--betas must lie in [0, 1), got {args.betas}"
    if args.eval_every < 1:
        return f"--eval-every must be >= 1, got {args.eval_every}"
    try:
        device = pick_device(args.device)
    except (RuntimeError, ValueError) as e:
        return f"--device {args.device!r}: {e}"
    if device.type == "cuda" and not torch.cuda.is_available():
        return f"--device {args.device!r}: CUDA is not available on this machine"
    return None


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# --------------------------------------------------------------------------------------- models
def mlp(d_in: int, dim: int, d_out: int) -> nn.Sequential:
    """Three hidden ReLU layers, as the anchor's toy G and critic (no batch norm: the penalty is
    per sample, and batch norm would couple the samples of a batch)."""
    return nn.Sequential(nn.Linear(d_in, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(),
                         nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, d_out))


class Critic(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.net = mlp(2, dim, 1)

    def forward(self, x):  # (N, 2) -> (N,); no sigmoid: a Wasserstein critic outputs a score
        return self.net(x).squeeze(-1)


# ---------------------------------------------------------------------------------- the method
def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, one_sided: bool = False,
                     eps: float = 1e-12) -> torch.Tensor:
    """Gradient penalty R of WGAN-GP (two-sided) or WGAN-LP (one-sided), without λ.

        x̂ = t·real + (1 − t)·fake,   one t ~ U[0, 1] per sample
        two-sided  R = mean[(‖∇f(x̂)‖₂ − 1)²]           (Gulrajani et al. 2017, eq. 3)
        one-sided  R = mean[max(‖∇f(x̂)‖₂ − 1, 0)²]     (Petzka et al. 2018)

    critic: any callable mapping (N, ...) to (N,) or (N, 1). real, fake: (N, ...) of one shape,
    e.g. (N, 2) points or (N, C, H, W) images. The norm is over all non-batch dimensions, and
    ‖g‖ = sqrt(Σg² + eps) so the penalty's gradient stays finite where ∇f = 0. The result keeps
    its graph: backpropagating it reaches the critic's weights. real and fake are detached here:
    the penalty constrains the critic only.
    """
    real, fake = real.detach(), fake.detach()
    t = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    x_hat = (t * real + (1 - t) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norm = torch.sqrt(grad.flatten(1).pow(2).sum(1) + eps)
    gap = (norm - 1).clamp(min=0) if one_sided else norm - 1
    return gap.pow(2).mean()


def penalty(critic, real, fake, args) -> torch.Tensor:
    """This script's penalty R with the run's options."""
    return gradient_penalty(critic, real, fake, one_sided=args.one_sided)


def penalty_diagnostics(critic, real, fake, args) -> dict:
    """‖∇f‖ where this method constrains it: at fresh interpolates x̂."""
    t = torch.rand(real.shape[0], 1, device=real.device, dtype=real.dtype)
    return grad_norm_stats(critic, t * real + (1 - t) * fake)


def method_name(args) -> str:
    side = "one-sided (WGAN-LP)" if args.one_sided else "two-sided"
    return f"WGAN-GP {side}, λ = {args.lam:g}"


# ------------------------------------------------------------------------------ training step
def make_optimizers(G, D, args, device):
    """Adam for both, as in the WGAN-GP paper (lr 1e-4, betas (0.5, 0.9)). On CUDA they are
    capturable: the step count lives on the device, so a CUDA graph can replay the update."""
    cap = device.type == "cuda"
    return (torch.optim.Adam(G.parameters(), lr=args.lr, betas=tuple(args.betas), capturable=cap),
            torch.optim.Adam(D.parameters(), lr=args.lr, betas=tuple(args.betas), capturable=cap))


def fake_batch(G, real, args):
    """Generated samples for this batch, or real + N(0, I) with --fixed-generator (the anchor's
    FIXED_GENERATOR: each fake is a noisy copy of the real point beside it)."""
    if args.fixed_generator:
        return real + torch.randn_like(real)
    return G(torch.randn(real.shape[0], 2, device=real.device))


def make_train_step(G, D, opt_g, opt_d, args, device):
    """One generator iteration: n-critic critic steps, then one generator step.

    No host syncs inside (no .item(), no printing), so the same function runs eagerly or is
    captured once into a CUDA graph and replayed. Returns the last critic step's loss, penalty
    and batch estimate, and the generator loss, as one device tensor.
    """
    def step(n_critic: int):
        for _ in range(n_critic):
            real = common.sample(args.data, args.batch, device)
            with torch.no_grad():
                fake = fake_batch(G, real, args)  # no graph into G: the critic step trains D only
            f_real, f_fake = D(real).mean(), D(fake).mean()
            pen = penalty(D, real, fake, args)
            loss_d = f_fake - f_real + args.lam * pen  # E f(fake) − E f(real) + λR
            opt_d.zero_grad(set_to_none=False)  # in place: a CUDA graph needs fixed addresses
            loss_d.backward()
            opt_d.step()
        if args.fixed_generator:
            loss_g = torch.zeros((), device=device)
        else:
            loss_g = -D(G(torch.randn(args.batch, 2, device=device))).mean()  # −E f(G(z))
            opt_g.zero_grad(set_to_none=False)
            loss_g.backward()  # also fills the critic's .grad, which its next step zeroes
            opt_g.step()
        return torch.stack([loss_d, pen, f_real - f_fake, loss_g]).detach()

    return step


STEP_COLUMNS = ("loss_d", "penalty", "estimate_batch", "loss_g")


def critic_steps(args, it: int) -> int:
    """Critic steps in generator iteration it (counted from 0)."""
    return args.n_critic


def cuda_graph_runner(step, warmup: int = GRAPH_WARMUP):
    """Run `step` eagerly `warmup` times on a side stream (real iterations: they also create the
    optimiser state), then capture it once with torch.cuda.graph and replay it (REFERENCE §7);
    one graph per critic-step count. Each call is one training iteration either way."""
    side = torch.cuda.Stream()
    graphs = {}  # n_critic -> [eager warm-up iterations left, graph, its output tensor]

    def run(n_critic: int):
        g = graphs.setdefault(n_critic, [warmup, None, None])
        if g[0] > 0:
            g[0] -= 1
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = step(n_critic)
            torch.cuda.current_stream().wait_stream(side)
            return out
        if g[1] is None:
            g[1] = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g[1]):
                g[2] = step(n_critic)
        g[1].replay()
        return g[2]

    return run


# ---------------------------------------------------------------------------------- evaluation
def grad_norm_stats(critic, x) -> dict:
    """Mean and max of ‖∇f‖ over the points x, and the share of points where it exceeds 1."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x)
    gn = g.flatten(1).norm(dim=1)
    return {"grad_norm_mean": gn.mean().item(), "grad_norm_max": gn.max().item(),
            "grad_share_above_1": (gn > 1).float().mean().item()}


def flat_grad(loss, params):
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                      for g, p in zip(grads, params)])


def evaluate(G, D, args, device, it: int) -> dict:
    """Exact W1 and its floor (means over N_EVAL_DRAWS draws of N_EVAL points), mode stats,
    the method's own diagnostics (penalty_diagnostics) and the weight-gradient diagnostics of
    seed 02's "things to do", on fresh samples.

    Runs under fork_rng with its own seed, so evaluating never changes the training's random
    stream: a run stopped and resumed draws the same numbers as one that was not.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(args.seed * 1_000_003 + it + 1)
        w1s, floors = [], []
        for _ in range(N_EVAL_DRAWS):  # W1 of one draw of 1024 points varies by ~20 %
            real = common.sample(args.data, N_EVAL, device)
            with torch.no_grad():
                fake = fake_batch(G, common.sample(args.data, N_EVAL, device), args)
            w1s.append(common.w1(fake, real))
            floors.append(common.w1(common.sample(args.data, N_EVAL, device), real))
        with torch.no_grad():
            est = (D(real).mean() - D(fake).mean()).item()
        row = {"critic_estimate": est, "w1": sum(w1s) / len(w1s),
               "w1_floor": sum(floors) / len(floors)}
        row.update(common.mode_stats(args.data, fake) or {})

        row.update(penalty_diagnostics(D, real, fake, args))

        # Does the penalty fight the discrimination term? (seed 02) Gradients w.r.t. the critic's
        # weights of the two parts of the critic loss, on one training-size batch.
        r, f = real[: args.batch], fake[: args.batch]
        params = [p for p in D.parameters() if p.requires_grad]
        g_disc = flat_grad(D(f).mean() - D(r).mean(), params)
        g_pen = flat_grad(args.lam * penalty(D, r, f, args), params)
        row.update(grad_w_disc=g_disc.norm().item(), grad_w_pen=g_pen.norm().item(),
                   cos_disc_pen=torch.nn.functional.cosine_similarity(
                       g_disc, g_pen, dim=0, eps=1e-20).item())
    return row


# ------------------------------------------------------------------------------------ run files
def new_run_dir(args) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.join(args.out, f"{SCRIPT}-{args.data}-s{args.seed}-{stamp}")
    for k in range(1, 1000):
        path = base if k == 1 else f"{base}-{k}"
        try:
            os.makedirs(path)  # never reuse an existing run folder
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {args.out}")


def save_checkpoint(run_dir, it, G, D, opt_g, opt_d, args, device):
    state = {"script": SCRIPT, "iteration": it, "args": vars(args),
             "G": G.state_dict(), "D": D.state_dict(),
             "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
             "rng_cpu": torch.get_rng_state(),
             "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
    path = os.path.join(run_dir, "checkpoint.pt")
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)  # atomic: a crash leaves the previous checkpoint intact


def load_checkpoint(path: str) -> dict:
    """Load a checkpoint of this script, or raise ValueError saying why it is not one."""
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.pt")
    if not os.path.isfile(path):
        raise ValueError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds here for a file that is not a checkpoint
        raise ValueError(f"{path} is not a checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("script") != SCRIPT:
        found = ckpt.get("script") if isinstance(ckpt, dict) else None
        raise ValueError(f"{path} is not a checkpoint of {SCRIPT}.py"
                         + (f" (it is from {found}.py)" if found else ""))
    ckpt["path"] = os.path.abspath(path)
    return ckpt


def write_json(path, obj):
    with open(path + ".tmp", "w") as fh:
        json.dump(obj, fh, indent=2, default=str)
    os.replace(path + ".tmp", path)


def append_metrics(path, row):
    new = not os.path.exists(path)
    fields = list(row) if new else next(csv.reader(open(path)))
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore", restval="")
        if new:
            w.writeheader()
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def versions(device) -> dict:
    import matplotlib
    import numpy
    try:
        import ot
        pot = ot.__version__
    except ImportError:
        pot = None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "matplotlib": matplotlib.__version__, "pot": pot,
            "device": str(device), "device_name": name or platform.machine(),
            "cpu_threads": torch.get_num_threads()}


def fmt_time(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# ------------------------------------------------------------------------------------ main loop
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ckpt = None
    if args.resume:
        try:
            ckpt = load_checkpoint(args.resume)
        except ValueError as e:
            parser.error(f"--resume: {e}")
        given = given_flags(build_parser(), argv)
        changed = given - RESUMABLE - {"resume"}
        if changed:
            flag = {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}
            parser.error("--resume continues a run as it was configured; it cannot change "
                         + ", ".join(sorted(flag[k] for k in changed)))
        saved = dict(ckpt["args"])
        saved.update({k: getattr(args, k) for k in given & RESUMABLE})
        saved["resume"] = args.resume
        args = argparse.Namespace(**saved)
        if args.iters <= ckpt["iteration"]:
            parser.error(f"--resume: the run is already at iteration {ckpt['iteration']}; "
                         f"pass --iters larger than that to continue it")
    problem = check_args(args)
    if problem:
        parser.error(problem)

    device = pick_device(args.device)
    use_graph = device.type == "cuda" and not args.no_cuda_graph
    torch.manual_seed(args.seed)
    G, D = mlp(2, args.dim, 2).to(device), Critic(args.dim).to(device)
    opt_g, opt_d = make_optimizers(G, D, args, device)

    start = 0
    if ckpt is not None:
        G.load_state_dict(ckpt["G"])
        D.load_state_dict(ckpt["D"])
        opt_g.load_state_dict(ckpt["opt_g"])
        opt_d.load_state_dict(ckpt["opt_d"])
        torch.set_rng_state(ckpt["rng_cpu"])
        if device.type == "cuda" and ckpt["rng_cuda"] is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
        start = ckpt["iteration"]
        run_dir = os.path.dirname(ckpt["path"])
    else:
        run_dir = new_run_dir(args)
    metrics_path = os.path.join(run_dir, "metrics.csv")
    config_name = "config.json" if ckpt is None else f"config-resume{start}.json"
    write_json(os.path.join(run_dir, config_name),
               {"script": SCRIPT, "args": vars(args), "argv": sys.argv if argv is None else argv,
                "method": method_name(args), "cuda_graph": use_graph, "versions": versions(device),
                "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    title = f"{method_name(args)} · {args.data}"
    print(f"[{SCRIPT}] {title} · {args.iters} iterations on {device}"
          f"{' (CUDA graph)' if use_graph else ''}\n[{SCRIPT}] run folder: {run_dir}", flush=True)

    step = make_train_step(G, D, opt_g, opt_d, args, device)
    run_step = cuda_graph_runner(step) if use_graph else step

    stop = {"asked": False}

    def on_sigint(signum, frame):  # first Ctrl-C: stop cleanly after this iteration
        stop["asked"] = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # second: stop at once

    old_handler = signal.signal(signal.SIGINT, on_sigint)
    t_start, last_row, status = time.time(), None, "finished"
    acc, n_acc, it = torch.zeros(len(STEP_COLUMNS), device=device), 0, start
    t_mark, it_mark = time.time(), start

    def eval_and_save(final: bool):
        nonlocal n_acc, t_mark, it_mark, last_row
        stats = (acc / max(n_acc, 1)).tolist()  # the one host sync per evaluation
        params = torch.cat([p.detach().reshape(-1) for p in [*G.parameters(), *D.parameters()]])
        if not (all(math.isfinite(v) for v in stats) and torch.isfinite(params).all()):
            return False
        ms = 1000 * (time.time() - t_mark) / max(it - it_mark, 1)
        row = {"iter": it, **dict(zip(STEP_COLUMNS, stats)), **evaluate(G, D, args, device, it),
               "ms_per_iter": ms if it > it_mark else float("nan")}
        append_metrics(metrics_path, row)
        common.plot_critic(D, real_for_plot(), fake_for_plot(), os.path.join(
            run_dir, "critic_final.png" if final else f"critic_{it:06d}.png"),
            title=f"{title} · iteration {it}")
        save_checkpoint(run_dir, it, G, D, opt_g, opt_d, args, device)
        done = it - start
        eta = fmt_time((time.time() - t_start) / done * (args.iters - it)) if done else "-"
        modes = f" | {row['modes']}/{row['n_modes']} modes {100 * row['high_quality']:.0f}% hq" \
            if "modes" in row else ""
        print(f"[{SCRIPT}] it {it:>6}/{args.iters} | D {row['loss_d']:+.4f} G {row['loss_g']:+.4f}"
              f" R {row['penalty']:.4f} | W1 {row['w1']:.3f} (floor {row['w1_floor']:.3f})"
              f" est {row['critic_estimate']:.3f}{modes} | "
              f"{1000 / ms if it > it_mark else float('nan'):.1f} it/s | ETA {eta}",
              flush=True)
        acc.zero_()
        n_acc, t_mark, it_mark, last_row = 0, time.time(), it, row
        return True

    def real_for_plot():
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(args.seed + 17)
            return common.sample(args.data, 512, device)

    def fake_for_plot():
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
                torch.no_grad():
            torch.manual_seed(args.seed + 18)
            return fake_batch(G, common.sample(args.data, 512, device), args)

    try:
        if start == 0:
            eval_and_save(final=False)
        while it < args.iters and not stop["asked"]:
            acc += run_step(critic_steps(args, it))
            n_acc += 1
            it += 1
            if it % args.eval_every == 0 or it == args.iters:
                if not eval_and_save(final=it == args.iters):
                    status = "diverged"
                    break
        if stop["asked"]:
            status = "interrupted"
            if it > it_mark and not eval_and_save(final=True):
                status = "diverged"
    finally:
        signal.signal(signal.SIGINT, old_handler)

    wall = time.time() - t_start
    if status == "diverged":
        print(f"[{SCRIPT}] stopped: a loss became NaN or infinite between iterations {it_mark} "
              f"and {it}. The last good checkpoint and figures (iteration {it_mark}) are kept "
              f"in {run_dir}", file=sys.stderr, flush=True)
    else:
        common.plot_curves(metrics_path, os.path.join(run_dir, "curves.png"), title=title)
        if status == "interrupted":
            print(f"[{SCRIPT}] interrupted at iteration {it}: checkpoint and figures written; "
                  f"continue with --resume {os.path.join(run_dir, 'checkpoint.pt')}", flush=True)
    write_json(os.path.join(run_dir, "summary.json"),
               {"status": status, "iteration": it_mark, "wall_time_s": wall, "run_dir": run_dir,
                "method": method_name(args), "data": args.data, "final": last_row})
    print(f"[{SCRIPT}] {status} in {fmt_time(wall)} · run folder: {run_dir}", flush=True)
    return {"finished": 0, "diverged": 1, "interrupted": 130}[status]


if __name__ == "__main__":
    sys.exit(main())
