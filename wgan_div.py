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
import warnings

import torch
import torch.nn as nn

import common
import harness
from harness import say

SCRIPT = os.path.splitext(os.path.basename(__file__))[0]
RESUMABLE = {"iters", "eval_every", "device", "no_cuda_graph", "threads"}  # --resume may change


# ---------------------------------------------------------------------------------- the method
POINTS = ("interpolate", "real-fake")


def warn_if_batch_norm(critic) -> None:
    """Batch norm in training mode couples a batch's samples, so a per-sample penalty is no
    longer per sample: warned where the critic (a module, or a partial or bound method) has it."""
    owner = getattr(critic, "func", critic)
    owner, norm = getattr(owner, "__self__", owner), torch.nn.modules.batchnorm._BatchNorm
    if isinstance(owner, torch.nn.Module) and any(isinstance(m, norm) and m.training
                                                  for m in owner.modules()):
        warnings.warn("the critic holds batch norm in training mode, which couples a batch's "
                      "samples: use LayerNorm or no normalisation in a penalised critic",
                      UserWarning, stacklevel=3)


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
    Needs a double backward: no torch.compile (it refuses one), no cuDNN RNN in the critic.
    To copy: POINTS, warn_if_batch_norm and divergence_penalty (with import torch; import
    warnings).
    """
    warn_if_batch_norm(critic)
    if real.shape[0] == 0 or real.shape != fake.shape:
        raise ValueError(f"real and fake must be non-empty batches of one shape, got "
                         f"{tuple(real.shape)} and {tuple(fake.shape)}")
    if points not in POINTS:
        raise ValueError(f"points must be one of {', '.join(POINTS)}, got {points!r}")
    if not 0 < grad_scale < float("inf"):  # 0, inf or NaN would make the penalty NaN
        raise ValueError(f"grad_scale must be a finite number > 0, got {grad_scale}")
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


# ---------------------------------------------------------------------------------- the critic
def critic_net(widths, args) -> nn.Module:
    """The critic as an MLP of these widths (the toys': [2, dim, dim, dim, 1]; the W1
    benchmark's: [D, h, h, 1]): this method needs nothing of the architecture."""
    return mlp(widths)


def make_critic(args) -> nn.Module:
    """The run's critic: the MLP on the toys, convolutions on the digits and MNIST."""
    if args.data == "mnist":
        return MnistCritic(args.dim)
    if args.data == "digits":
        return ConvCritic(args.dim)
    return Critic(critic_net([2, *[args.dim] * 3, 1], args))


# ------------------------------------------------------ models (the same in every method script)
# The experiment's, not a method's: gan_toy.py's MLPs on the toys, small convolutions on the
# digits, the WGAN-GP paper's pair on MNIST; a method builds its critic in make_critic, above.
def mlp(widths) -> nn.Sequential:
    """Linear layers of these widths with ReLU between them; the toys' G and critic have three
    hidden layers, as gan_toy.py's (no batch norm: the penalty is per sample, and batch norm
    would couple the samples of a batch)."""
    layers = [nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
    return nn.Sequential(*[m for lin in layers for m in (lin, nn.ReLU())][:-1])


class Critic(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):  # (N, ...) -> (N,), flattened first; a score, no sigmoid
        return self.net(x.flatten(1)).squeeze(-1)


Z_DIGITS, Z_MNIST = 16, 128  # latent sizes; on the toys z is drawn in the data's own plane


class ConvCritic(nn.Module):
    """The digits' critic, gan_mnist.py's (igul222/improved_wgan_training) scaled down: convs
    8×8 → 8×8 → 4×4 → 2×2 of dim/8, dim/4, dim/2 channels, LeakyReLU(0.2), a linear score."""

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


class MnistCritic(nn.Module):
    """gan_mnist.py's critic (MODE wgan-gp, no batch norm): 5×5 convolutions with stride 2, 1 → dim
    → 2·dim → 4·dim channels ('SAME' padding: 28 → 14 → 7 → 4), LeakyReLU(0.2), a linear score."""

    def __init__(self, dim: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, dim, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Conv2d(dim, 2 * dim, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * dim, 4 * dim, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(4 * 4 * 4 * dim, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


class MnistGenerator(nn.Module):
    """gan_mnist.py's generator (no batch norm): z (N, 128) → linear to 4·4·4dim → 5×5 transposed
    convolutions to 8×8 (cropped to 7×7), 14×14 and 28×28, ReLU between, a sigmoid for [0, 1]."""

    def __init__(self, dim: int = 64):
        super().__init__()
        up = dict(kernel_size=5, stride=2, padding=2, output_padding=1)  # 'SAME': twice as big
        self.dim = dim
        self.fc = nn.Sequential(nn.Linear(Z_MNIST, 4 * 4 * 4 * dim), nn.ReLU())
        self.up1 = nn.Sequential(nn.ConvTranspose2d(4 * dim, 2 * dim, **up), nn.ReLU())
        self.up2 = nn.Sequential(nn.ConvTranspose2d(2 * dim, dim, **up), nn.ReLU(),
                                 nn.ConvTranspose2d(dim, 1, **up), nn.Sigmoid())

    def forward(self, z):
        x = self.up1(self.fc(z).reshape(len(z), 4 * self.dim, 4, 4))
        return self.up2(x[:, :, :7, :7])  # gan_mnist.py crops 8×8 to 7×7


def make_models(args):
    """(G, D): the data's generator and the method's critic (make_critic), G made first."""
    if args.data == "mnist":
        G = MnistGenerator(args.dim)
    else:
        G = conv_generator(args.dim) if args.data == "digits" else mlp([2, *[args.dim] * 3, 2])
    return G, make_critic(args)


def z_dim(args) -> int:
    return {"digits": Z_DIGITS, "mnist": Z_MNIST}.get(args.data, 2)


def fake_batch(G, real, args, generator=None):
    """Generated samples for this batch, or real + N(0, I) with --fixed-generator (gan_toy.py's
    FIXED_GENERATOR: each fake is a noisy copy of the real point beside it)."""
    if args.fixed_generator:
        return real + torch.randn(real.shape, device=real.device, generator=generator)
    return G(torch.randn(len(real), z_dim(args), device=real.device, generator=generator))


# A step's memory against the toys' MLP of one --dim (step_bytes; MNIST: 2.6 M weights, 640·dim²)
WEIGHTS, ACTIVATIONS = {"mnist": 40}, {"digits": 5, "mnist": 20}


# ------------------------------------------------------------------------------------ arguments
def build_parser() -> harness.ArgumentParser:
    p = harness.ArgumentParser(prog=f"{SCRIPT}.py", description=__doc__.split("\n\n")[0])
    m = p.add_argument_group("method")
    m.add_argument("--k", type=harness.number(float, 0), default=2.0,
                   help="weight k of the gradient term (the paper's 2)")
    m.add_argument("--p", type=harness.number(float, 1, 100, lo_ok=False), default=6.0,
                   help="power p of ‖∇f‖ (the paper's 6; the divergence needs p > 1)")
    m.add_argument("--points", choices=POINTS, default="interpolate",
                   help="where ‖∇f‖ is taken: real–fake interpolates, or the real and fake "
                        "points themselves")
    t = p.add_argument_group("training")
    t.add_argument("--data", choices=common.DATASETS, default="swissroll",
                   help="a 2-D toy; digits: the 8×8 digits scikit-learn ships; mnist: 5000 "
                        "28×28 MNIST digits (data/), the WGAN-GP paper's models")
    t.add_argument("--iters", type=harness.number(int, 1), default=5000,
                   help="generator iterations (2000 on digits, 1000 on mnist)")
    t.add_argument("--n-critic", type=harness.number(int, 1), default=5,
                   help="critic steps per generator step")
    t.add_argument("--batch", type=harness.number(int, 2), default=256,
                   help="batch size (50 on mnist, gan_mnist.py's)")
    t.add_argument("--lr", type=harness.number(float, 0, lo_ok=False), default=1e-4,
                   help="Adam learning rate (G and critic)")
    t.add_argument("--betas", type=harness.number(float, 0, 1, hi_ok=False), nargs=2,
                   default=[0.5, 0.9], help="Adam betas")
    t.add_argument("--dim", type=harness.number(int, 1), default=128,
                   help="hidden width of G and critic (gan_toy.py: 512); on digits, twice the "
                        "channels of the widest convolution; on mnist gan_mnist.py's DIM (64)")
    t.add_argument("--fixed-generator", action="store_true",
                   help="no generator: train the critic alone against fake = real + N(0, I)")
    t.add_argument("--seed", type=harness.number(int, 0, 2**63, hi_ok=False), default=0,
                   help="random seed")
    return harness.running_arguments(p, RESUMABLE)


def step_bytes(args) -> int:
    """A rough upper estimate of one training step's memory: weights with their gradients and
    optimiser state, and activations kept for the double backward (~5× more per unit of
    width in the digits' convolutions than in the toys' MLPs)."""
    acts = 48 * args.batch * args.dim * ACTIVATIONS.get(args.data, 1)
    return 4 * (16 * args.dim ** 2 * WEIGHTS.get(args.data, 1) + acts)


# ------------------------------------------------------------------------------ training step
OPTIMIZER = torch.optim.Adam  # for G and the critic


def make_optimizers(G, D, args, capturable: bool):
    """Adam for both, as in the WGAN-GP paper (lr 1e-4, betas (0.5, 0.9)). Capturable (the step
    count lives on the GPU) only where a CUDA graph replays the update: eager runs skip its cost."""
    kw = {"capturable": True} if capturable else {}
    return (OPTIMIZER(G.parameters(), lr=args.lr, betas=tuple(args.betas), **kw),
            OPTIMIZER(D.parameters(), lr=args.lr, betas=tuple(args.betas), **kw))


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
    if harness.steps_diverged(row, STEP_COLUMNS) or not torch.isfinite(weights).all():
        raise common.Diverged("a loss or a weight")
    row.update(evaluate(G, D, args, device, it))
    gen = torch.Generator(device).manual_seed(args.seed + 17)  # the same points in every figure
    real = common.sample(args.data, 512, device, generator=gen)
    with torch.no_grad():
        fake = fake_batch(G, common.sample(args.data, 512, device, generator=gen), args, gen)
    common.plot_critic(D, real, fake, os.path.join(
        run_dir, "critic_final.png" if final else f"critic_{it:06d}.png"),
        title=f"{method_name(args)} · {args.data} · iteration {it}")
    harness.save_checkpoint(run_dir, {
        "script": SCRIPT, "iteration": it, "args": vars(args), "G": G.state_dict(),
        "D": D.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict()}, device)
    harness.append_metrics(os.path.join(run_dir, "metrics.csv"), row)
    say(harness.progress_line(SCRIPT, row, args.iters, "k·E‖∇f‖^p {penalty:.4f}"))
    return row


# -------------------------------------------------------------------- what the programs run
# This method's configurations in the project's programs, as flags of this script. `runs`: where
# each one runs, `summary`: its row in the report's summary, `published` and `w1_flags`: the W1
# benchmark's solver of the same family and its protocol (benchmarks/sweep.py: PLACES, KEYS).
CONFIGS = {
    "wgan-div": {"flags": [], "runs": "toys digits fixed Q1 w1", "summary": "WGAN-div (k 2, p 6)"},
}


# ------------------------------------------------------ run files (the same in every method script)
def parse(argv):
    """The run's arguments (the checkpoint's on --resume), checkpoint and device, or a one-line
    error and exit 2 before anything is written."""
    return harness.parse(build_parser(), argv, SCRIPT, RESUMABLE, step_bytes)


# ------------------------------------------------------ main loop (the same in every method script)
def main(argv=None) -> int:
    args, ckpt, device = parse(argv)
    use_graph = harness.graph_wanted(device, args.no_cuda_graph, OPTIMIZER)
    torch.manual_seed(args.seed)
    G, D = (m.to(device) for m in make_models(args))
    opt_g, opt_d = make_optimizers(G, D, args, capturable=use_graph)
    start = harness.restore(build_parser(), ckpt, G, D, opt_g, opt_d, device, use_graph)
    run = harness.Run(build_parser(), SCRIPT, args, ckpt, device, method_name(args), use_graph,
                     argv)  # the run folder, its lock and config.json, or one line and exit 2
    step = functools.partial(train_step, G, D, opt_g, opt_d, args)
    run_step = harness.CudaGraphStep(step) if use_graph else step
    acc, it, mark = torch.zeros(len(STEP_COLUMNS), device=device), start, (start, time.time())
    with run.training(start) as logged:  # NaN, out of memory, a failed capture: the run's status
        if start not in logged:  # a new run, or one stopped between its checkpoint and its row
            run.last = log_and_save(run.dir, it, G, D, opt_g, opt_d, args, device,
                                    harness.step_stats(STEP_COLUMNS, acc, 0, mark[1]),
                                    final=it == args.iters)
            mark = (it, time.time())
        while it < args.iters and not run.stopped:  # Ctrl-C or SIGTERM: evaluate, save, leave
            # train_step: critic_steps(args, it) critic_step()s, then one step of G; its
            # outputs are summed on the device, with no host sync per step
            acc += run_step(critic_steps(args, it))
            it += 1
            if it % args.eval_every == 0 or it == args.iters or run.stopped:
                stats = harness.step_stats(STEP_COLUMNS, acc, it - mark[0], mark[1])
                run.last = log_and_save(run.dir, it, G, D, opt_g, opt_d, args, device, stats,
                                        final=it == args.iters or run.stopped)
                acc.zero_()
                mark = (it, time.time())
    return run.end(estimate_label(args))  # curves, summary.json and the exit code


if __name__ == "__main__":
    sys.exit(main())
