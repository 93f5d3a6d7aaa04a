"""WGAN-div: a Wasserstein GAN without a Lipschitz constraint, trained on the Wasserstein
divergence.

Wu, Huang, Thoma, Acharya, Van Gool 2018, "Wasserstein Divergence for GANs" (ECCV),
arXiv:1712.01026. The critic maximises E f(x) − E f(G(z)) − k·E‖∇f(x̂)‖^p: for k > 0, p > 1 the
maximum is a divergence W_{k,p} between the two distributions, and no constraint on f is
needed; the paper's search put k = 2, p = 6 best. The generator then minimises −E f(G(z)), as
in a WGAN.

    critic     min_f  E f(G(z)) − E f(x) + k·E‖∇f(x̂)‖₂^p          (k = 2, p = 6)
    generator  min_G  −E f(G(z))
    x̂ (--points): interpolate  x̂ = t·x + (1 − t)·G(z), one t ~ U[0, 1] per sample
                  real-fake    the real and the generated points themselves

Where x̂ is drawn: the paper asks only that its distribution share the data's space, and
compares six ways (real–fake interpolates, interpolates within the real and within the fake
points, interpolates of random pairs, real and fake points, fake only, real only), finding
WGAN-div insensitive to the choice (as summarised in J. Su, "WGAN-div: 一个默默无闻的WGAN填坑者",
Scientific Spaces, 2018-11-07). Default here: real–fake interpolates, as WGAN-GP draws them.
Public code departs in two ways, both available or stated here: the widely copied
eriklindernoren/PyTorch-GAN, implementations/wgan_div/wgan_div.py, takes the real and fake
points with k/2 each, which is --points real-fake (the mean over both sets); and some ports
raise the squared norm to p (‖∇f‖^{2p}, e.g. MorvanZhou/mnistGANs, wgan_div.py), which this
script does not. Unlike the paper's Adam (lr 2e-4), the optimiser is the other scripts' Adam
(lr 1e-4, betas (0.5, 0.9), 5 critic steps), so that the comparison varies the constraint only.

Run (outputs go to runs/<script>-<data>-s<seed>-<time>/):
    python wgan_div.py                             # k = 2, p = 6, swiss roll (~3 min on 2 cores)
    python wgan_div.py --points real-fake          # the penalty on the real and fake points
    python wgan_div.py --k 10 --p 2                # a WGAN-GP-like quadratic, without the "−1"
    python wgan_div.py --data digits               # 8×8 digits, 2000 iterations
    python wgan_div.py --dim 512 --iters 100000    # gan_toy.py's full toy setting
    python wgan_div.py --fixed-generator           # train the critic alone against real + N(0, I)
    python wgan_div.py --iters 40 --dim 32 --eval-every 20     # a quick check on the CPU
    python wgan_div.py --resume runs/<run>/checkpoint.pt --iters 8000    # continue a run
"""
from __future__ import annotations

import functools
import os
import sys
import time

import torch
import torch.nn as nn

import common
from common import say

SCRIPT = os.path.splitext(os.path.basename(__file__))[0]
RESUMABLE = {"iters", "eval_every", "device", "no_cuda_graph"}  # what --resume may change


# ---------------------------------------------------------------------------------- the method
POINTS = ("interpolate", "real-fake")


def divergence_penalty(critic, real: torch.Tensor, fake: torch.Tensor, k: float = 2.0,
                       p: float = 6.0, points: str = "interpolate",
                       eps: float = 1e-12, grad_scale: float = 1.0) -> torch.Tensor:
    """The Wasserstein-divergence term k·E‖∇f(x̂)‖₂^p of WGAN-div (Wu et al. 2018, eq. 11),
    k and p included (the paper's k = 2, p = 6).

        points="interpolate"  x̂ = t·real + (1 − t)·fake, one t ~ U[0, 1] per sample
        points="real-fake"    x̂ runs over the real and the fake points (the mean over both,
                              = k/2·(E_real + E_fake) of eriklindernoren/PyTorch-GAN)

    critic: any callable mapping (N, ...) to (N,) or (N, 1). real, fake: (N, ...) of one shape
    (points, or images: the norm is over all non-batch dimensions). ‖g‖^p is computed as
    (Σg² + eps)^(p/2), so its gradient stays finite where ∇f = 0 for any p > 0. The result keeps
    its graph to the critic's weights; real and fake are detached. Works under no_grad too.
    grad_scale: with float16 autocast and a GradScaler, pass scaler.get_scale(): the input
    gradient is then taken of the scaled output and divided back (PyTorch's AMP recipe for a
    gradient penalty), so that float16 neither underflows nor overflows on the way.
    """
    if real.shape[0] == 0 or real.shape != fake.shape:
        raise ValueError(f"real and fake must be non-empty batches of one shape, got "
                         f"{tuple(real.shape)} and {tuple(fake.shape)}")
    if points not in POINTS:
        raise ValueError(f"points must be one of {', '.join(POINTS)}, got {points!r}")
    real, fake = real.detach(), fake.detach()
    if points == "interpolate":
        t = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device,
                       dtype=real.dtype)
        x_hat = t * real + (1 - t) * fake
    else:
        x_hat = torch.cat([real, fake])
    with torch.enable_grad():  # the penalty is a gradient: it needs autograd even in no_grad code
        x_hat = x_hat.requires_grad_(True)
        out = critic(x_hat)
        if out.shape not in ((len(x_hat),), (len(x_hat), 1)):  # not a score per sample
            raise ValueError(f"the critic must map N samples to (N,) or (N, 1) scores, got "
                             f"{tuple(out.shape)} for N = {len(x_hat)}")
        out = out.float().sum() * grad_scale
        (grad,) = torch.autograd.grad(out, x_hat, create_graph=True, allow_unused=True) \
            if out.requires_grad else (None,)
        grad = torch.zeros_like(x_hat) if grad is None else grad / grad_scale  # blind to x: 0
        return k * (grad.flatten(1).pow(2).sum(1) + eps).pow(p / 2).mean()


def critic_step(D, opt_d, real, fake, args):
    """One update of the critic on a batch: what train_step repeats n_critic times and what
    benchmarks/w1_benchmark.py trains. Returns the loss, the gradient term k·E‖∇f‖^p and the
    batch estimate E f(real) − E f(fake), as device tensors."""
    f_real, f_fake = D(real).mean(), D(fake).mean()
    pen = divergence_penalty(D, real, fake, args.k, args.p, args.points)
    loss_d = f_fake - f_real + pen  # E f(fake) − E f(real) + k·E‖∇f(x̂)‖^p
    opt_d.zero_grad(set_to_none=False)  # in place: a CUDA graph needs fixed addresses
    loss_d.backward()
    opt_d.step()
    return loss_d, pen, f_real - f_fake


def method_name(args) -> str:
    where = "" if args.points == "interpolate" else ", on the real and fake points"
    return f"WGAN-div, k = {args.k:g}, p = {args.p:g}{where}"


def estimate_label(args) -> str:
    """What the curves call the critic_estimate column."""
    return "critic: E f(real) − E f(fake)"


# --------------------------------------------------------------------------------------- models
def mlp(widths) -> nn.Sequential:
    """Linear layers of these widths with ReLU between them; the toys' G and critic have three
    hidden layers, as gan_toy.py's (no batch norm: the penalty is per sample, and batch norm
    would couple the samples of a batch)."""
    layers = [nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
    return nn.Sequential(*[m for lin in layers for m in (lin, nn.ReLU())][:-1])


def critic_net(widths, args) -> nn.Module:
    """The critic as an MLP of these widths (the toys': [2, dim, dim, dim, 1]; the W1
    benchmark's: [D, h, h, 1]): this method needs nothing of the architecture."""
    return mlp(widths)


class Critic(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):  # (N, 2) -> (N,); no sigmoid: a Wasserstein critic outputs a score
        return self.net(x).squeeze(-1)


Z_DIGITS = 16  # latent size for the digits; on the toys z is drawn in the data's own plane


class ConvCritic(nn.Module):
    """The critic for the 8×8 digits, in the shape of gan_mnist.py's (igul222/
    improved_wgan_training): convolutions 8×8 → 8×8 → 4×4 → 2×2 of dim/8, dim/4 and dim/2
    channels with LeakyReLU(0.2), then a linear score. No batch norm, for the reason at mlp."""

    def __init__(self, dim: int):
        super().__init__()
        c = max(dim // 8, 1)
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(16 * c, 1))

    def forward(self, x):  # (N, 1, 8, 8) -> (N,)
        return self.net(x).squeeze(-1)


def conv_generator(dim: int) -> nn.Sequential:
    """z (N, Z_DIGITS) → digits (N, 1, 8, 8): linear to 2×2, transposed convolutions to 4×4 and
    8×8, and a sigmoid for the data's range [0, 1] (gan_mnist.py's generator, scaled down)."""
    c = max(dim // 8, 1)
    return nn.Sequential(
        nn.Linear(Z_DIGITS, 16 * c), nn.ReLU(), nn.Unflatten(1, (4 * c, 2, 2)),
        nn.ConvTranspose2d(4 * c, 2 * c, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(c, 1, 3, padding=1), nn.Sigmoid())


def make_models(args):
    """(G, D): the MLPs on the toys, the convolutional pair on the digits."""
    if args.data == "mnist":  # gan_mnist.py's pair (common.py)
        return common.MnistGenerator(args.dim), common.MnistCritic(args.dim)
    if args.data == "digits":
        return conv_generator(args.dim), ConvCritic(args.dim)
    return mlp([2, *[args.dim] * 3, 2]), Critic(critic_net([2, *[args.dim] * 3, 1], args))


def z_dim(args) -> int:
    return {"digits": Z_DIGITS, "mnist": common.Z_MNIST}.get(args.data, 2)


# ------------------------------------------------------------------------------------ arguments
def build_parser() -> common.ArgumentParser:
    p = common.ArgumentParser(prog=f"{SCRIPT}.py", description=__doc__.split("\n\n")[0])
    m = p.add_argument_group("method")
    m.add_argument("--k", type=common.number(float, 0), default=2.0,
                   help="weight k of the gradient term (the paper's 2)")
    m.add_argument("--p", type=common.number(float, 1, 100, lo_ok=False), default=6.0,
                   help="power p of ‖∇f‖ (the paper's 6; the divergence needs p > 1)")
    m.add_argument("--points", choices=POINTS, default="interpolate",
                   help="where ‖∇f‖ is taken: real–fake interpolates, or the real and fake "
                        "points themselves")
    t = p.add_argument_group("training")
    t.add_argument("--data", choices=common.DATASETS, default="swissroll",
                   help="a 2-D toy; digits: the 8×8 digits scikit-learn ships; mnist: 5000 "
                        "28×28 MNIST digits (data/), the WGAN-GP paper's models")
    t.add_argument("--iters", type=common.number(int, 1), default=5000,
                   help="generator iterations (2000 on digits, 1000 on mnist)")
    t.add_argument("--n-critic", type=common.number(int, 1), default=5,
                   help="critic steps per generator step")
    t.add_argument("--batch", type=common.number(int, 2), default=256,
                   help="batch size (50 on mnist, gan_mnist.py's)")
    t.add_argument("--lr", type=common.number(float, 0, lo_ok=False), default=1e-4,
                   help="Adam learning rate (G and critic)")
    t.add_argument("--betas", type=common.number(float, 0, 1, hi_ok=False), nargs=2,
                   default=[0.5, 0.9], help="Adam betas")
    t.add_argument("--dim", type=common.number(int, 1), default=128,
                   help="hidden width of G and critic (gan_toy.py: 512); on digits, twice the "
                        "channels of the widest convolution; on mnist gan_mnist.py's DIM (64)")
    t.add_argument("--fixed-generator", action="store_true",
                   help="no generator: train the critic alone against fake = real + N(0, I)")
    t.add_argument("--seed", type=common.number(int, 0, 2**63, hi_ok=False), default=0,
                   help="random seed")
    r = p.add_argument_group("running")
    r.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    r.add_argument("--no-cuda-graph", action="store_true",
                   help="on CUDA, run the training step eagerly instead of replaying a CUDA graph")
    r.add_argument("--eval-every", type=common.number(int, 1), default=500,
                   help="evaluate (exact W1, figures, checkpoint) every this many iterations")
    r.add_argument("--out", default="runs", help="parent folder of the run folder")
    r.add_argument("--resume", metavar="PATH",
                   help="checkpoint.pt (or its run folder) to continue; may change only "
                        + ", ".join("--" + k.replace("_", "-") for k in sorted(RESUMABLE)))
    return p


def step_bytes(args) -> int:
    """A rough upper estimate of one training step's memory: weights with their gradients and
    optimiser state, and activations kept for the double backward (~5× more per unit of
    width in the digits' convolutions than in the toys' MLPs)."""
    acts = 48 * args.batch * args.dim * common.ACTIVATIONS.get(args.data, 1)
    return 4 * (16 * args.dim ** 2 * common.WEIGHTS.get(args.data, 1) + acts)


# ------------------------------------------------------------------------------ training step
OPTIMIZER = torch.optim.Adam  # for G and the critic


def make_optimizers(G, D, args, capturable: bool):
    """Adam for both, as in the WGAN-GP paper (lr 1e-4, betas (0.5, 0.9)). Capturable (the step
    count lives on the GPU) only where a CUDA graph replays the update: eager runs skip its cost."""
    kw = {"capturable": True} if capturable else {}
    return (OPTIMIZER(G.parameters(), lr=args.lr, betas=tuple(args.betas), **kw),
            OPTIMIZER(D.parameters(), lr=args.lr, betas=tuple(args.betas), **kw))


def fake_batch(G, real, args, generator=None):
    """Generated samples for this batch, or real + N(0, I) with --fixed-generator (gan_toy.py's
    FIXED_GENERATOR: each fake is a noisy copy of the real point beside it)."""
    if args.fixed_generator:
        return real + torch.randn(real.shape, device=real.device, generator=generator)
    return G(torch.randn(len(real), z_dim(args), device=real.device, generator=generator))


def train_step(G, D, opt_g, opt_d, args, n_critic: int) -> torch.Tensor:
    """One generator iteration: n_critic critic steps, then one generator step.

    No host syncs inside (no .item(), no printing), so the same function runs eagerly or is
    captured once into a CUDA graph and replayed. Returns the last critic step's loss, gradient
    term k·E‖∇f‖^p and batch estimate, and the generator loss, as one device tensor
    (STEP_COLUMNS).
    """
    device = next(D.parameters()).device
    for _ in range(n_critic):
        real = common.sample(args.data, args.batch, device)
        with torch.no_grad():
            fake = fake_batch(G, real, args)  # no graph into G: the critic step trains D only
        loss_d, pen, estimate = critic_step(D, opt_d, real, fake, args)
    if args.fixed_generator:
        loss_g = torch.zeros((), device=device)
    else:
        loss_g = -D(G(torch.randn(args.batch, z_dim(args), device=device))).mean()  # −E f(G(z))
        opt_g.zero_grad(set_to_none=False)
        loss_g.backward()  # also fills the critic's .grad, which its next step zeroes
        opt_g.step()
    return torch.stack([loss_d, pen, estimate, loss_g]).detach()


STEP_COLUMNS = ("loss_d", "penalty", "estimate_batch", "loss_g")


def critic_steps(args, it: int) -> int:
    """Critic steps in generator iteration it (counted from 0)."""
    return args.n_critic


# ---------------------------------------------------------------------------------- evaluation
def evaluate(G, D, args, device, it: int) -> dict:
    """The measurement every script shares (common.measure: exact W1 and its floor, coverage,
    collapse), then what this method adds: ‖∇f‖ at interpolates, and the weight gradients of the
    two parts of the critic loss."""
    with common.evaluation_rng(args.seed, it, device):  # never moves the training's stream
        row, real, fake, _ = common.measure(args.data, lambda x: fake_batch(G, x, args), D, device)
        t = torch.rand((len(real),) + (1,) * (real.dim() - 1), device=device)
        row.update(common.grad_norm_stats(D, t * real + (1 - t) * fake))  # at fresh x̂
        # Does the penalty pull against the discrimination term? Weight gradients of both parts.
        r, f = real[: args.batch], fake[: args.batch]
        params = [p for p in D.parameters() if p.requires_grad]
        g_disc = common.flat_grad(D(f).mean() - D(r).mean(), params)
        g_pen = common.flat_grad(divergence_penalty(D, r, f, args.k, args.p, args.points),
                                 params)
        row.update(grad_w_disc=g_disc.norm().item(), grad_w_pen=g_pen.norm().item(),
                   cos_disc_pen=nn.functional.cosine_similarity(g_disc, g_pen, 0, 1e-20).item())
    return row


def log_and_save(run_dir, it, G, D, opt_g, opt_d, args, device, stats, final) -> dict:
    """Evaluate at iteration it, then write the critic figure, the checkpoint and a metrics row
    and print a progress line. stats: the training step's means since the last evaluation."""
    row = {"iter": it, **stats}
    weights = torch.cat([p.detach().reshape(-1) for p in [*G.parameters(), *D.parameters()]])
    if common.steps_diverged(row, STEP_COLUMNS) or not torch.isfinite(weights).all():
        raise common.Diverged("a loss or a weight")
    row.update(evaluate(G, D, args, device, it))
    gen = torch.Generator(device).manual_seed(args.seed + 17)  # the same points in every figure
    real = common.sample(args.data, 512, device, generator=gen)
    with torch.no_grad():
        fake = fake_batch(G, common.sample(args.data, 512, device, generator=gen), args, gen)
    common.plot_critic(D, real, fake, os.path.join(
        run_dir, "critic_final.png" if final else f"critic_{it:06d}.png"),
        title=f"{method_name(args)} · {args.data} · iteration {it}")
    common.save_checkpoint(run_dir, {
        "script": SCRIPT, "iteration": it, "args": vars(args), "G": G.state_dict(),
        "D": D.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict()}, device)
    common.append_metrics(os.path.join(run_dir, "metrics.csv"), row)
    say(common.progress_line(SCRIPT, row, args.iters, "k·E‖∇f‖^p {penalty:.4f}"))
    return row


# -------------------------------------------------------------------- what the programs run
# This method's configurations in the project's programs, as flags of this script. `runs`: where
# each one runs, `summary`: its row in the README's table, `published` and `w1_flags`: the W1
# benchmark's solver of the same family and its protocol (benchmarks/sweep.py: PLACES, KEYS).
CONFIGS = {
    "wgan-div": {"flags": [], "runs": "toys digits fixed Q1 w1", "summary": "WGAN-div (k 2, p 6)"},
}


# ------------------------------------------------------ run files (the same in every method script)
def restore(ckpt, G, D, opt_g, opt_d, device, capturable: bool) -> int:
    """Load a checkpoint's weights, optimiser and random states onto this run's device; one
    whose tensors do not fit this run is a one-line error and exit 2, before anything is
    written."""
    try:
        G.load_state_dict(ckpt["G"])
        D.load_state_dict(ckpt["D"])
        common.load_optimizer(opt_g, ckpt["opt_g"], device, capturable)
        common.load_optimizer(opt_d, ckpt["opt_d"], device, capturable)
        common.restore_rng(ckpt, device)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
        why = (str(e).strip() or type(e).__name__).splitlines()[0]
        build_parser().error(f"--resume: damaged checkpoint {ckpt['path']}: its tensors do not "
                             f"fit this run ({why})")
    return ckpt["iteration"]


def parse(argv):
    """The run's arguments (the checkpoint's on --resume), checkpoint and device, or a one-line
    error and exit 2 before anything is written."""
    common.robust_console()
    parser = build_parser()
    args, ckpt = common.parse_or_resume(parser, argv, SCRIPT, RESUMABLE)
    try:
        device = common.pick_device(args.device)
    except ValueError as e:
        parser.error(f"--device {args.device!r}: {e}")
    if step_bytes(args) > common.memory_of(device):
        parser.error(f"--batch {args.batch} with --dim {args.dim} needs about "
                     f"{step_bytes(args) / 2**30:.0f} GiB, more than the "
                     f"{common.memory_of(device) / 2**30:.0f} GiB of {device}")
    return args, ckpt, device


# ------------------------------------------------------ main loop (the same in every method script)
def main(argv=None) -> int:
    args, ckpt, device = parse(argv)
    use_graph = common.graph_wanted(device, args.no_cuda_graph, OPTIMIZER)
    torch.manual_seed(args.seed)
    G, D = (m.to(device) for m in make_models(args))
    opt_g, opt_d = make_optimizers(G, D, args, capturable=use_graph)
    start = restore(ckpt, G, D, opt_g, opt_d, device, use_graph) if ckpt else 0
    run = common.Run(build_parser(), SCRIPT, args, ckpt, device, method_name(args), use_graph,
                     argv)  # the run folder, its lock and config.json, or one line and exit 2
    step = functools.partial(train_step, G, D, opt_g, opt_d, args)
    run_step = common.CudaGraphStep(step) if use_graph else step
    acc, it, mark = torch.zeros(len(STEP_COLUMNS), device=device), start, (start, time.time())
    with run.training(start) as logged:  # NaN, out of memory, a failed capture: the run's status
        if start not in logged:  # a new run, or one stopped between its checkpoint and its row
            run.last = log_and_save(run.dir, it, G, D, opt_g, opt_d, args, device,
                                    common.step_stats(STEP_COLUMNS, acc, 0, mark[1]),
                                    final=it == args.iters)
            mark = (it, time.time())
        while it < args.iters and not run.stopped:  # Ctrl-C or SIGTERM: evaluate, save, leave
            # train_step: critic_steps(args, it) critic_step()s, then one step of G; its
            # outputs are summed on the device, with no host sync per step
            acc += run_step(critic_steps(args, it))
            it += 1
            if it % args.eval_every == 0 or it == args.iters or run.stopped:
                stats = common.step_stats(STEP_COLUMNS, acc, it - mark[0], mark[1])
                run.last = log_and_save(run.dir, it, G, D, opt_g, opt_d, args, device, stats,
                                        final=it == args.iters or run.stopped)
                acc.zero_()
                mark = (it, time.time())
    return run.end(estimate_label(args))  # curves, summary.json and the exit code


if __name__ == "__main__":
    sys.exit(main())
