"""WGAN-SN: a Wasserstein GAN whose critic is kept Lipschitz by spectral normalisation.

Miyato, Kataoka, Koyama, Yoshida 2018, "Spectral Normalization for Generative Adversarial
Networks", arXiv:1802.05957 (code: pfnet-research/sngan_projection). Every linear and
convolutional layer of the critic uses its weight W as W/σ(W), σ(W) the largest singular value,
estimated by power iteration with a persistent vector u: one iteration each time the critic is
run in training mode (PyTorch's own torch.nn.utils.parametrizations.spectral_norm). With
1-Lipschitz activations (ReLU, LeakyReLU) each layer is then 1-Lipschitz and so is the MLP
critic, K ≤ Π_l ‖W_l/σ(W_l)‖₂ = 1: no penalty, no clipping.

    critic     min_f  E f(G(z)) − E f(x),   f built from the layers W_l/σ(W_l)
    generator  min_G  −E f(G(z))
    σ(W) ≈ uᵀWv after u ← Wv/‖Wv‖, v ← Wᵀu/‖Wᵀu‖ (--power-iterations per critic update)

Where this departs from the paper, in one line each:
- the WGAN loss, not the paper's hinge loss: spectral normalisation as a WGAN critic's Lipschitz
  constraint (as Korotin et al. 2022 benchmark it, "SN-GAN");
- one power iteration per critic update (its two forward passes share one normalised weight:
  torch.nn.utils.parametrize.cached), not one per forward pass; evaluation runs the critic in
  eval mode, so that measuring never moves u;
- for a convolution σ is that of the weight reshaped to (out, in·kh·kw), as in the paper and in
  torch: that is not the operator norm of the convolution, so on the digits' conv critic the
  product of the layers' σ certifies nothing. The script logs the exact bound
  K = Π_l ‖A_l‖₂ of the layers' linear maps (common.lipschitz_bound, as wgan_clip.py) with
  the certified check E f(real) − E f(fake) ≤ K·W1 on the same samples.

Run (outputs go to runs/<script>-<data>-s<seed>-<time>/):
    python wgan_sn.py                              # swiss roll, 5000 iterations (~2 min on 2 cores)
    python wgan_sn.py --power-iterations 5         # a tighter σ estimate per update
    python wgan_sn.py --constant-sigma             # σ without its gradient (the W1 benchmark's)
    python wgan_sn.py --data digits                # 8×8 digits, 2000 iterations
    python wgan_sn.py --dim 512 --iters 100000     # gan_toy.py's full toy setting
    python wgan_sn.py --fixed-generator            # train the critic alone against real + N(0, I)
    python wgan_sn.py --iters 40 --dim 32 --eval-every 20      # a quick check on the CPU
    python wgan_sn.py --resume runs/<run>/checkpoint.pt --iters 8000    # continue a run
"""
from __future__ import annotations

import functools
import os
import sys
import time

import torch
import torch.nn as nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

import common
import harness
from harness import say

SCRIPT = os.path.splitext(os.path.basename(__file__))[0]
RESUMABLE = {"iters", "eval_every", "device", "no_cuda_graph", "threads"}  # --resume may change


# ---------------------------------------------------------------------------------- the method
def spectral_normalize_(critic: nn.Module, n_power_iterations: int = 1,
                        constant_sigma: bool = False) -> nn.Module:
    """Put spectral normalisation on every nn.Linear and nn.Conv2d of the critic, in place, and
    return it (Miyato et al. 2018): each layer's weight becomes W/σ(W), σ estimated by
    n_power_iterations power iterations on every training-mode forward pass, with persistent
    vectors u and v kept as buffers (in the state dict, so a checkpoint resumes them).

    PyTorch's torch.nn.utils.parametrizations.spectral_norm does the work, σ(W) differentiated
    as the paper's; constant_sigma=True puts ConstantSigma instead. A layer that has a spectral
    norm already is left alone. In eval mode the layers reuse u and v without updating them.
    To copy: spectral_normalize_ and ConstantSigma (with import torch; from torch import nn;
    from torch.nn.utils import parametrize; from torch.nn.utils.parametrizations import
    spectral_norm).
    """
    if n_power_iterations < 1:
        raise ValueError(f"n_power_iterations must be >= 1, got {n_power_iterations}")
    for m in critic.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)) and not parametrize.is_parametrized(m, "weight"):
            if constant_sigma:
                parametrize.register_parametrization(
                    m, "weight", ConstantSigma(m.weight, n_power_iterations))
            else:
                spectral_norm(m, n_power_iterations=n_power_iterations)
    return critic


class ConstantSigma(nn.Module):
    """W/σ(W) with σ a constant of the backward pass: the spectral normalisation of the W1
    benchmark's SN-GAN (justkolesov/Wasserstein1Benchmark, src/models.py, after christiancosgrove/
    pytorch-spectral-normalization-gan), whose σ = uᵀWv is computed from the weights' .data. The
    function class is the same (every layer's norm is 1); the gradient is not: it is ∂L/∂W'
    over σ, without the paper's term −(∂L/∂W'·W')·uvᵀ/σ that keeps the update off the direction
    of σ. One departure from their code: one power iteration per update (parametrize.cached, as
    above), not one per forward pass."""

    def __init__(self, weight: torch.Tensor, n_power_iterations: int = 1):
        super().__init__()
        w = weight.detach().flatten(1)
        self.n_power_iterations = n_power_iterations
        self.register_buffer("u", nn.functional.normalize(torch.randn_like(w[:, 0]), dim=0))
        self.register_buffer("v", nn.functional.normalize(torch.randn_like(w[0]), dim=0))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        w = weight.detach().flatten(1)
        if self.training:  # u ← Wv/‖Wv‖ after v ← Wᵀu/‖Wᵀu‖, in place (a CUDA graph's buffers)
            with torch.no_grad():
                for _ in range(self.n_power_iterations):
                    self.v.copy_(nn.functional.normalize(w.T @ self.u, dim=0))
                    self.u.copy_(nn.functional.normalize(w @ self.v, dim=0))
        return weight / (self.u @ w @ self.v)  # σ from the detached weight: no gradient


@torch.no_grad()
def layer_sigmas(critic: nn.Module) -> torch.Tensor:
    """The exact largest singular value of each normalised layer's weight matrix as the layer
    uses it (W/σ(W), a convolution's reshaped to (out, in·kh·kw)): 1 once the power iteration
    has converged. Reads the weights in eval mode: no power-iteration step."""
    was = critic.training
    critic.eval()
    try:
        return torch.stack([torch.linalg.matrix_norm(m.weight.detach().double().flatten(1), 2)
                            for m in critic.modules() if isinstance(m, (nn.Linear, nn.Conv2d))])
    finally:
        critic.train(was)


def critic_step(D, opt_d, real, fake, args):
    """One update of the critic on a batch: what train_step repeats n_critic times and what
    benchmarks/w1_benchmark.py trains. Returns the loss and the batch estimate
    E f(real) − E f(fake), as device tensors."""
    with parametrize.cached():  # one W/σ(W), so one power iteration, for both passes
        f_real, f_fake = D(real).mean(), D(fake).mean()
        loss_d = f_fake - f_real  # E f(fake) − E f(real); the constraint is in the layers
    opt_d.zero_grad(set_to_none=False)  # in place: a CUDA graph needs fixed addresses
    loss_d.backward()
    opt_d.step()
    return loss_d, f_real - f_fake


def method_name(args) -> str:
    its = "" if args.power_iterations == 1 else f", {args.power_iterations} power iterations"
    return f"WGAN, spectral normalisation{its}" + (", σ constant" if args.constant_sigma else "")


def estimate_label(args) -> str:
    """What the curves call the critic_estimate column."""
    return "critic: E f(real) − E f(fake)"


# ---------------------------------------------------------------------------------- the critic
def critic_net(widths, args) -> nn.Module:
    """The critic as an MLP of these widths (the toys': [2, dim, dim, dim, 1]; the W1
    benchmark's: [D, h, h, 1]), every layer spectrally normalised."""
    return spectral_normalize_(mlp(widths), args.power_iterations, args.constant_sigma)


def make_critic(args) -> nn.Module:
    """The run's critic, every layer spectrally normalised: the MLP on the toys, the
    convolutions on the digits and MNIST."""
    if args.data == "mnist":
        return spectral_normalize_(MnistCritic(args.dim), args.power_iterations,
                                   args.constant_sigma)
    if args.data == "digits":
        return spectral_normalize_(ConvCritic(args.dim), args.power_iterations,
                                   args.constant_sigma)
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
    m.add_argument("--power-iterations", type=harness.number(int, 1, 1000), default=1,
                   help="power iterations per critic update for each layer's σ (the paper's 1)")
    m.add_argument("--constant-sigma", action="store_true",
                   help="treat σ(W) as a constant in the backward pass, as the W1 benchmark's "
                        "SN-GAN does (ConstantSigma); by default it is differentiated, as the "
                        "paper's")
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
    """Adam for both, lr 1e-4, betas (0.5, 0.9), as the other scripts (the SN-GAN paper's
    WGAN-GP comparisons use the same). Capturable (the step
    count lives on the GPU) only where a CUDA graph replays the update: eager runs skip its cost."""
    kw = {"capturable": True} if capturable else {}
    return (OPTIMIZER(G.parameters(), lr=args.lr, betas=tuple(args.betas), **kw),
            OPTIMIZER(D.parameters(), lr=args.lr, betas=tuple(args.betas), **kw))


def train_step(G, D, opt_g, opt_d, args, n_critic: int) -> torch.Tensor:
    """One generator iteration: n_critic critic steps, then one generator step.

    No host syncs inside (no .item(), no printing), so the same function runs eagerly or is
    captured once into a CUDA graph and replayed (the power iteration updates u and v in place,
    so a replay updates them too). Returns the last critic step's loss and batch estimate, and
    the generator loss, as one device tensor (STEP_COLUMNS).
    """
    device = next(D.parameters()).device
    for _ in range(n_critic):
        real = common.sample(args.data, args.batch, device)
        with torch.no_grad():
            fake = fake_batch(G, real, args)  # no graph into G: the critic step trains D only
        loss_d, estimate = critic_step(D, opt_d, real, fake, args)
    if args.fixed_generator:
        loss_g = torch.zeros((), device=device)
    else:
        loss_g = -D(G(torch.randn(args.batch, z_dim(args), device=device))).mean()  # −E f(G(z))
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
    collapse), then what this method adds: ‖∇f‖ at interpolates, the exact bound K with its
    certified check E f(real) − E f(fake) ≤ K·W1(real, fake) on the last draw, the largest σ of
    the normalised layers, and the critic loss's weight gradient. Called with the critic in
    eval mode (log_and_save)."""
    with common.evaluation_rng(args.seed, it, device):  # never moves the training's stream
        row, real, fake, w1_last = common.measure(args.data, lambda x: fake_batch(G, x, args), D,
                                                  device)
        est = row["critic_estimate"]
        t = torch.rand((len(real),) + (1,) * (real.dim() - 1), device=device)
        row.update(common.grad_norm_stats(D, t * real + (1 - t) * fake))  # at fresh x̂
        k = common.lipschitz_bound(D, real.shape[1:]).item()
        row.update(lipschitz_bound=k, k_times_w1=k * w1_last, estimate_over_w1=est / w1_last,
                   certified=float(est <= k * w1_last + 1e-9),
                   sigma_max=layer_sigmas(D).max().item())
        # The critic loss's weight gradient, as the penalty scripts log it (no penalty here).
        r, f = real[: args.batch], fake[: args.batch]
        params = [p for p in D.parameters() if p.requires_grad]
        row["grad_w_disc"] = common.flat_grad(D(f).mean() - D(r).mean(), params).norm().item()
    return row


def log_and_save(run_dir, it, G, D, opt_g, opt_d, args, device, stats, final) -> dict:
    """Evaluate at iteration it, then write the critic figure, the checkpoint and a metrics row
    and print a progress line. stats: the training step's means since the last evaluation."""
    row = {"iter": it, **stats}
    weights = torch.cat([p.detach().reshape(-1) for p in [*G.parameters(), *D.parameters()]])
    if harness.steps_diverged(row, STEP_COLUMNS) or not torch.isfinite(weights).all():
        raise common.Diverged("a loss or a weight")
    D.eval()  # measuring must not take power-iteration steps (u, v are training state)
    try:
        row.update(evaluate(G, D, args, device, it))
        gen = torch.Generator(device).manual_seed(args.seed + 17)  # the same points every time
        real = common.sample(args.data, 512, device, generator=gen)
        with torch.no_grad():
            fake = fake_batch(G, common.sample(args.data, 512, device, generator=gen), args, gen)
        common.plot_critic(D, real, fake, os.path.join(
            run_dir, "critic_final.png" if final else f"critic_{it:06d}.png"),
            title=f"{method_name(args)} · {args.data} · iteration {it}")
    finally:
        D.train()
    harness.save_checkpoint(run_dir, {
        "script": SCRIPT, "iteration": it, "args": vars(args), "G": G.state_dict(),
        "D": D.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict()}, device)
    harness.append_metrics(os.path.join(run_dir, "metrics.csv"), row)
    say(harness.progress_line(SCRIPT, row, args.iters, "σ {sigma_max:.3f} K {lipschitz_bound:.3g}"))
    return row


# -------------------------------------------------------------------- what the programs run
# This method's configurations in the project's programs, as flags of this script. `runs`: where
# each one runs, `summary`: its row in the report's summary, `published` and `w1_flags`: the W1
# benchmark's solver of the same family and its protocol (benchmarks/sweep.py: PLACES, KEYS).
CONFIGS = {
    "wgan-sn": {"flags": [], "runs": "toys digits fixed Q1 w1",
                "w1_flags": ["--power-iterations", "5"], "published": "sn-gan",
                "summary": "spectral normalisation"},
    # the W1 benchmark's SN-GAN normalises as christiancosgrove's code: σ without its gradient
    "wgan-sn-constant-sigma": {"flags": ["--constant-sigma"], "runs": "w1",
                               "w1_flags": ["--power-iterations", "5"], "published": "sn-gan"},
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
