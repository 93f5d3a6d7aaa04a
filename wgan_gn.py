"""GN-GAN: the critic normalised by its own gradient, so that it is bounded and its gradient is
bounded: no penalty, no constraint on the layers.

Wu, Shuai, Tam, Chiu 2021, "Gradient Normalization for Generative Adversarial Networks", ICCV
2021, arXiv:2109.02235 (code: basiclab/GNGAN-PyTorch, models/gradnorm.py). Any critic f becomes

    f̂(x) = f(x) / (‖∇ₓf(x)‖ + |f(x)|)                          |f̂| ≤ 1 everywhere
    critic     min_f  E f̂(G(z)) − E f̂(x)                        (--loss wgan, default)
               min_f  E softplus(−f̂(x)) + E softplus(f̂(G(z)))  (--loss bce: BCE on the logit f̂)
    generator  min_G  −E f̂(G(z))   or   E softplus(−f̂(G(z)))   (non-saturating)

and f̂ is what both losses see, so the critic's and the generator's steps both differentiate
through ∇ₓf: a double backward in each. The paper proves ‖∇f̂‖ ≤ 1 inside every linear piece of a
piecewise-linear f (a ReLU network): there ∇f is constant, and ∇f̂ = ∇f·‖∇f‖/(‖∇f‖ + |f|)² has
norm ‖∇f‖²/(‖∇f‖ + |f|)² ≤ 1. Across a kink ∇f jumps, and so may f̂: f̂ is not 1-Lipschitz as a
function, only piecewise: where ‖∇f‖ jumps, f̂ is not even continuous (f = max(x, 3x) + 1
gives f̂ → 1/2 left of 0 and 1/4 right of it). Measured in tests/test_wgan_gn.py on a ReLU
critic (two hidden layers of 32, pairs 10⁻³ apart): median quotient 0.06, 0.9 % of the
pairs above 1, the largest 1110, all across kinks.

Which loss. The paper trains f̂ with --loss=bce (its train.py maps it to BCEWithLogits on f̂), one
critic step per generator step, Adam 2e-4 for both, betas (0, 0.9). This project compares ways
to keep a WGAN critic Lipschitz, so the WGAN loss on f̂ is its configuration (--loss wgan, with
the other scripts' Adam 1e-4, betas (0.5, 0.9), 5 critic steps); the paper's loss is the second
(--loss bce, one critic step, its Adam). Under either, E f̂(real) − E f̂(fake) is no estimate of
W1: f̂ is bounded by 1, so it cannot exceed 2.
Departure: the denominator is kept ≥ 1e-12 (where f = 0 and ∇f = 0 both, the paper's is 0/0).

Run (outputs go to runs/<script>-<data>-s<seed>-<time>/):
    python wgan_gn.py                              # WGAN loss on f̂, the swiss roll
    python wgan_gn.py --loss bce                   # the paper's loss and optimiser
    python wgan_gn.py --data digits                # 8×8 digits, 2000 iterations
    python wgan_gn.py --fixed-generator            # train the critic alone against real + N(0, I)
    python wgan_gn.py --iters 40 --dim 32 --eval-every 20      # a quick check on the CPU
    python wgan_gn.py --resume runs/<run>/checkpoint.pt --iters 8000    # continue a run
"""
from __future__ import annotations

import functools
import os
import sys
import time

import torch
import torch.nn as nn

import common
import harness
from harness import say

SCRIPT = os.path.splitext(os.path.basename(__file__))[0]
RESUMABLE = {"iters", "eval_every", "device", "no_cuda_graph", "threads"}  # --resume may change


# ---------------------------------------------------------------------------------- the method
def grad_normalized(critic, x: torch.Tensor) -> torch.Tensor:
    """f̂(x) = f(x) / (‖∇ₓf(x)‖ + |f(x)|) for each sample of x, shape (N,) (Wu et al. 2021).

    critic: any callable mapping (N, ...) to (N,) or (N, 1); x: (N, ...), any sample shape (the
    norm is over all non-batch dimensions). ∇ₓf is taken with create_graph, so f̂ keeps its graph
    to the critic's weights and to x. f̂ needs autograd in its forward pass: it turns gradients
    on for itself, so it works under torch.no_grad() (evaluation), and there returns no graph.
    Needs a double backward: no torch.compile (it refuses one), no cuDNN RNN in the critic."""
    if x.shape[0] == 0:
        raise ValueError("x must be a non-empty batch")
    graph = torch.is_grad_enabled()
    with torch.enable_grad():
        x_in = x if x.requires_grad else x.detach().requires_grad_(True)
        f = critic(x_in)
        if f.shape not in ((len(x),), (len(x), 1)):  # not a score per sample
            raise ValueError(f"the critic must map N samples to (N,) or (N, 1) scores, got "
                             f"{tuple(f.shape)} for N = {len(x)}")
        f = f.reshape(len(x))
        (g,) = torch.autograd.grad(f.sum(), x_in, create_graph=graph)
        norm = torch.linalg.vector_norm(g.flatten(1), dim=1)  # its gradient at 0 is 0, not NaN
        f_hat = f / (norm + f.abs()).clamp(min=1e-12)
    return f_hat if graph else f_hat.detach()


class GradNorm(torch.nn.Module):
    """Any critic, gradient-normalised: forward(x) is grad_normalized(net, x); `net` is f. A
    conditional critic f(x, y): forward(x, y) normalises by ‖∇ₓf‖ with y held fixed.
    To copy: grad_normalized and GradNorm (with import torch)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x, *rest, **kw):  # rest, kw: a conditional critic's other inputs
        return grad_normalized(lambda v: self.net(v, *rest, **kw), x)


def critic_loss(f_real: torch.Tensor, f_fake: torch.Tensor, loss: str) -> torch.Tensor:
    """wgan: E f̂(fake) − E f̂(real); bce: E softplus(−f̂(real)) + E softplus(f̂(fake)), the
    BCE of the logit f̂ against 1 for real and 0 for fake (the paper's BCEWithLogits)."""
    if loss == "bce":
        return nn.functional.softplus(-f_real).mean() + nn.functional.softplus(f_fake).mean()
    return f_fake.mean() - f_real.mean()


def generator_loss(f_fake: torch.Tensor, loss: str) -> torch.Tensor:
    """wgan: −E f̂(G(z)); bce: E softplus(−f̂(G(z))), the non-saturating loss."""
    if loss == "bce":
        return nn.functional.softplus(-f_fake).mean()
    return -f_fake.mean()


def critic_step(D, opt_d, real, fake, args):
    """One update of the critic on a batch: what train_step repeats n_critic times and what
    benchmarks/w1_benchmark.py trains. D is the GradNorm-wrapped critic, so D(x) is f̂(x) and
    the step differentiates through ∇ₓf. Returns the loss and E f̂(real) − E f̂(fake), as device
    tensors."""
    out_real, out_fake = D(real), D(fake)
    loss_d = critic_loss(out_real, out_fake, args.loss)  # no penalty: f̂ is bounded itself
    opt_d.zero_grad(set_to_none=False)  # in place: a CUDA graph needs fixed addresses
    loss_d.backward()
    opt_d.step()
    return loss_d, out_real.mean() - out_fake.mean()


def method_name(args) -> str:
    return f"GN-GAN, gradient-normalised critic, {args.loss.upper()} loss"


def estimate_label(args) -> str:
    """What the curves call the critic_estimate column: f̂ is bounded by 1, so not W1."""
    return "E f̂(real) − E f̂(fake) (bounded by 2: not a W1 estimate)"


# ---------------------------------------------------------------------------------- the critic
def critic_net(widths, args) -> nn.Module:
    """The critic as an MLP of these widths (the toys': [2, dim, dim, dim, 1]; the W1
    benchmark's: [D, h, h, 1]), gradient-normalised."""
    return GradNorm(mlp(widths))


def make_critic(args) -> nn.Module:
    """The run's critic, gradient-normalised: the MLP on the toys (critic_net returns (N,)
    already), the convolutions on the digits and MNIST."""
    if args.data == "mnist":
        return GradNorm(MnistCritic(args.dim))
    if args.data == "digits":
        return GradNorm(ConvCritic(args.dim))
    return critic_net([2, *[args.dim] * 3, 1], args)


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
def resolve_defaults(args):
    """The paper's setting goes with its loss: one critic step per generator step, Adam 2e-4 with
    betas (0, 0.9), and (one critic step) three times the generator iterations, as dragan.py."""
    bce = args.loss == "bce"
    for name, paper, ours in (("n_critic", 1, 5), ("lr", 2e-4, 1e-4), ("betas", [0.0, 0.9],
                                                                       [0.5, 0.9]),
                              ("iters", 15000, 5000)):
        if getattr(args, name) is None:
            setattr(args, name, paper if bce else ours)


def build_parser() -> harness.ArgumentParser:
    p = harness.ArgumentParser(prog=f"{SCRIPT}.py", description=__doc__.split("\n\n")[0],
                              resolve=resolve_defaults)
    m = p.add_argument_group("method")
    m.add_argument("--loss", choices=("wgan", "bce"), default="wgan",
                   help="wgan: the Wasserstein loss on f̂ (this project's comparison); bce: the "
                        "paper's, BCE on the logit f̂, with its optimiser and one critic step")
    t = p.add_argument_group("training")
    t.add_argument("--data", choices=common.DATASETS, default="swissroll",
                   help="a 2-D toy; digits: the 8×8 digits scikit-learn ships; mnist: 5000 "
                        "28×28 MNIST digits (data/), the WGAN-GP paper's models")
    t.add_argument("--iters", type=harness.number(int, 1), default=None,
                   help="generator iterations (default 5000; with --loss bce 15000; 2000 on "
                        "digits, 1000 on mnist)")
    t.add_argument("--n-critic", type=harness.number(int, 1), default=None,
                   help="critic steps per generator step (default 5; with --loss bce 1)")
    t.add_argument("--batch", type=harness.number(int, 2), default=256,
                   help="batch size (50 on mnist, gan_mnist.py's)")
    t.add_argument("--lr", type=harness.number(float, 0, lo_ok=False), default=None,
                   help="Adam learning rate, G and critic (default 1e-4; with --loss bce 2e-4)")
    t.add_argument("--betas", type=harness.number(float, 0, 1, hi_ok=False), nargs=2,
                   default=None, help="Adam betas (default 0.5 0.9; with --loss bce 0 0.9)")
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
    optimiser state, and activations kept for the double backward of f̂ (~5× more per unit of
    width in the digits' convolutions than in the toys' MLPs)."""
    acts = 48 * args.batch * args.dim * ACTIVATIONS.get(args.data, 1)
    return 4 * (16 * args.dim ** 2 * WEIGHTS.get(args.data, 1) + acts)


# ------------------------------------------------------------------------------ training step
OPTIMIZER = torch.optim.Adam  # for G and the critic


def make_optimizers(G, D, args, capturable: bool):
    """Adam for both: the WGAN-GP paper's (lr 1e-4, betas (0.5, 0.9)), or with --loss bce the GN
    paper's (2e-4, (0, 0.9)). Capturable (the step count lives on the GPU) only where a CUDA
    graph replays the update: eager runs skip its cost."""
    kw = {"capturable": True} if capturable else {}
    return (OPTIMIZER(G.parameters(), lr=args.lr, betas=tuple(args.betas), **kw),
            OPTIMIZER(D.parameters(), lr=args.lr, betas=tuple(args.betas), **kw))


def train_step(G, D, opt_g, opt_d, args, n_critic: int) -> torch.Tensor:
    """One generator iteration: n_critic critic steps, then one generator step.

    No host syncs inside (no .item(), no printing), so the same function runs eagerly or is
    captured once into a CUDA graph and replayed. Returns the last critic step's loss and batch
    estimate, and the generator loss, as one device tensor (STEP_COLUMNS).
    """
    device = next(D.parameters()).device
    for _ in range(n_critic):
        real = common.sample(args.data, args.batch, device)
        with torch.no_grad():
            fake = fake_batch(G, real, args)  # no graph into G: the critic step trains D only
        loss_d, estimate = critic_step(D, opt_d, real, fake, args)
    if args.fixed_generator:
        loss_g = torch.zeros((), device=device)
    else:  # f̂(G(z)): through ∇ₓf, a double backward into G too
        loss_g = generator_loss(D(G(torch.randn(args.batch, z_dim(args), device=device))),
                                args.loss)
        opt_g.zero_grad(set_to_none=False)
        loss_g.backward()  # also fills the critic's .grad, which its next step zeroes
        opt_g.step()
    return torch.stack([loss_d, estimate, loss_g]).detach()


STEP_COLUMNS = ("loss_d", "estimate_batch", "loss_g")


def critic_steps(args, it: int) -> int:
    """Critic steps in generator iteration it (counted from 0)."""
    return args.n_critic


# ---------------------------------------------------------------------------------- evaluation
def evaluate(G, D, args, device, it: int) -> dict:
    """The measurement every script shares (common.measure: exact W1 and its floor, coverage,
    collapse), then what this method adds: at fresh interpolates, ‖∇f̂‖ (≤ 1 inside a linear
    piece), ‖∇f‖ of the raw critic, the largest |f̂| (≤ 1) and the share of points where |f|
    outweighs ‖∇f‖ in the denominator; and the critic loss's weight gradient."""
    with common.evaluation_rng(args.seed, it, device):  # never moves the training's stream
        row, real, fake, _ = common.measure(args.data, lambda x: fake_batch(G, x, args), D, device)
        t = torch.rand((len(real),) + (1,) * (real.dim() - 1), device=device)
        x_hat = t * real + (1 - t) * fake
        row.update(common.grad_norm_stats(D, x_hat))  # ‖∇f̂‖ at fresh x̂
        f, gn = common.critic_and_grad_norm(D.net, x_hat)  # the raw critic f
        with torch.no_grad():
            f_hat = D(x_hat)
        row.update(raw_grad_norm_mean=gn.mean().item(), f_hat_abs_max=f_hat.abs().max().item(),
                   share_f_outweighs_grad=(f.abs() > gn).double().mean().item())
        # The critic loss's weight gradient, as the penalty scripts log it (no penalty here).
        r, f_ = real[: args.batch], fake[: args.batch]
        params = [p for p in D.parameters() if p.requires_grad]
        row["grad_w_disc"] = common.flat_grad(critic_loss(D(r), D(f_), args.loss),
                                              params).norm().item()
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
    say(harness.progress_line(SCRIPT, row, args.iters,
                              "‖∇f̂‖ {grad_norm_mean:.3f} max|f̂| {f_hat_abs_max:.3f}"))
    return row


# -------------------------------------------------------------------- what the programs run
# This method's configurations in the project's programs, as flags of this script. `runs`: where
# each one runs, `summary`: its row in the report's summary, `published` and `w1_flags`: the W1
# benchmark's solver of the same family and its protocol (benchmarks/sweep.py: PLACES, KEYS).
CONFIGS = {
    "gn-wgan": {"flags": [], "runs": "toys digits fixed Q1 w1",
                "summary": "GN (gradient-normalised critic), WGAN loss"},
    "gn-bce": {"flags": ["--loss", "bce"], "runs": "toys digits",
               "summary": "GN, its paper's setting (BCE loss)"},
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
