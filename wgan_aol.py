"""WGAN-AOL: a Wasserstein GAN whose critic is 1-Lipschitz by construction, with almost-orthogonal
layers (AOL) and MaxMin activations.

Prach, Lampert 2022, "Almost-Orthogonal Layers for Efficient General-Purpose Lipschitz
Networks", ECCV, arXiv:2208.03160 (code: berndprach/AOL, src/aol_code/layers/aol/). Each linear
layer keeps a free weight P and uses it rescaled column by column,

    W = P·D,   D = diag(d),   d_i = (Σ_j |PᵀP|_ij + ε)^(−1/2)        (ε = 1e-6, as their code)

which has ‖W‖₂ ≤ 1 for every P (their Theorem 1: PᵀP ≼ diag(Σ_j |PᵀP|_ij), a Gershgorin-style
bound), with no iteration and no setting: the rescaling is a closed form, differentiable, computed
once per critic update. Where P is orthogonal, PᵀP = I and D = I: the layer is P itself, which is
why AOL layers start orthogonal and stay near it ("almost orthogonal"). Between the layers MaxMin
(GroupSort with groups of 2, Anil et al. 2019), as in their networks.

    critic     min_f  E f(G(z)) − E f(x),   f = W_L ∘ MaxMin ∘ … ∘ MaxMin ∘ W_1 (+ biases)
    generator  min_G  −E f(G(z))

Unlike GroupSort's orthogonal layers, AOL bounds the norm but does not keep it: wherever P is
not orthogonal, ‖W·v‖ < ‖v‖ for some v, so ‖∇f‖ may fall below 1, as with spectral
normalisation, whose critic underestimates W1 on the W1 benchmark. This script is the
measurement of whether AOL does too. A last layer of one output is a row of unit norm exactly
(up to ε): for P = pᵀ, d_i = (|p_i|·‖p‖₁)^(−1/2), so ‖W‖² = Σ_i |p_i|/‖p‖₁ = 1.

Where this departs from the paper, in one line each:
- dense layers only (the critic of the toys, and of the digits and MNIST on their pixels): the
  paper's convolutional AOL (a rescaling from the kernel's own correlation) is left out;
- every layer starts orthogonal (torch.nn.init.orthogonal_); their dense networks start the
  first layer orthogonal and the others at the identity;
- the rescaling is a torch parametrization, computed once per critic update for both passes
  (parametrize.cached), and the weight a checkpoint holds is P.

Run (outputs go to runs/<script>-<data>-s<seed>-<time>/):
    python wgan_aol.py                             # swiss roll, 5000 iterations
    python wgan_aol.py --data digits               # 8×8 digits (an MLP on the pixels)
    python wgan_aol.py --data mnist                # 5000 MNIST digits (an MLP on the pixels)
    python wgan_aol.py --fixed-generator           # train the critic alone against real + N(0, I)
    python wgan_aol.py --iters 40 --dim 32 --eval-every 20     # a quick check on the CPU
    python wgan_aol.py --resume runs/<run>/checkpoint.pt --iters 8000    # continue a run
"""
from __future__ import annotations

import functools
import os
import sys
import time

import torch
import torch.nn as nn
from torch.nn.utils import parametrize

import common
import harness
from harness import say

SCRIPT = os.path.splitext(os.path.basename(__file__))[0]
RESUMABLE = {"iters", "eval_every", "device", "no_cuda_graph", "threads"}  # --resume may change


# ---------------------------------------------------------------------------------- the method
class AOLRescale(nn.Module):
    """The AOL parametrization of a weight P (out, in): P·diag(d), d_i = (Σ_j |PᵀP|_ij + ε)^(−½),
    whose spectral norm is ≤ 1 for every P (Prach & Lampert 2022, Theorem 1); P itself where P is
    orthogonal (then PᵀP = I). One departure: ε acts on P/max|P| (theirs on P), so it stays
    as small beside PᵀP whatever P's scale. Register it on a layer's weight (aol_linear) and
    the layer uses the rescaled weight; the optimiser moves P.
    To copy: AOLRescale and aol_linear (with import torch; from torch import nn; from
    torch.nn.utils import parametrize)."""

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        # P·D is the same for P and P/s: computed on P/max|P|, PᵀP cannot overflow however
        # large P grows (in float32 it would past |P| ~ 1e19, and D would silently be 0)
        scale = p.detach().abs().amax().clamp_min(torch.finfo(p.dtype).tiny)
        p2 = p.flatten(1) / scale
        d = ((p2.T @ p2).abs().sum(dim=1) + self.eps).rsqrt()  # (Σ_j |PᵀP|_ij + ε)^(−½)
        return (p2 * d).reshape(p.shape)  # P·D: column i of P times d_i


def aol_linear(d_in: int, d_out: int) -> nn.Linear:
    """nn.Linear(d_in, d_out) whose weight is AOL-rescaled (‖W‖₂ ≤ 1 at every step), started
    orthogonal: where d_out ≥ d_in, PᵀP = I and the layer starts as P itself (D = I up to ε)."""
    lin = nn.Linear(d_in, d_out)
    nn.init.orthogonal_(lin.weight)
    return parametrize.register_parametrization(lin, "weight", AOLRescale())


def max_min(x: torch.Tensor) -> torch.Tensor:
    """MaxMin (Anil et al. 2019; GroupSort with groups of 2): each pair of units (x_2k, x_2k+1)
    becomes (max, min). A permutation of each pair, so it keeps the norm of x and of the
    gradient; 1-Lipschitz. x: (N, C), C even."""
    if x.dim() != 2 or x.shape[1] % 2:
        raise ValueError(f"max_min needs (N, C) with C even, got {tuple(x.shape)}")
    pairs = x.reshape(len(x), x.shape[1] // 2, 2)
    return torch.stack([pairs.max(dim=-1).values, pairs.min(dim=-1).values], dim=-1) \
        .reshape(x.shape)


class MaxMin(nn.Module):
    def forward(self, x):
        return max_min(x)


def critic_step(D, opt_d, real, fake, args):
    """One update of the critic on a batch: what train_step repeats n_critic times and what
    benchmarks/w1_benchmark.py trains. Returns the loss and the batch estimate
    E f(real) − E f(fake), as device tensors."""
    with parametrize.cached():  # each rescaled W computed once, for both passes
        f_real, f_fake = D(real).mean(), D(fake).mean()
        loss_d = f_fake - f_real  # E f(fake) − E f(real); the constraint is in the layers
    opt_d.zero_grad(set_to_none=False)  # in place: a CUDA graph needs fixed addresses
    loss_d.backward()
    opt_d.step()
    return loss_d, f_real - f_fake


def method_name(args) -> str:
    return "WGAN, almost-orthogonal layers (AOL) + MaxMin"


def estimate_label(args) -> str:
    """What the curves call the critic_estimate column."""
    return "critic: E f(real) − E f(fake)"


# ---------------------------------------------------------------------------------- the critic
def critic_net(widths, args) -> nn.Module:
    """The critic as an MLP of these widths (the toys': [2, dim, dim, dim, 1]; the W1
    benchmark's: [D, h, h, 1]): AOL layers with MaxMin between them."""
    layers = [aol_linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
    return nn.Sequential(*[m for lin in layers for m in (lin, MaxMin())][:-1])


def make_critic(args) -> nn.Module:
    """The run's critic: the MLP on the toys; on the digits the same MLP on the 64 pixels and on
    MNIST on the 784, as wide as gan_mnist.py's widest layer (4·dim): dense AOL layers only."""
    if args.data == "mnist":
        return Critic(critic_net([784, *[4 * args.dim] * 3, 1], args))
    if args.data == "digits":
        return Critic(critic_net([64, *[args.dim] * 3, 1], args))
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
def check_args(a):
    """What is wrong with flags that are fine one by one (the parser's check): MaxMin pairs the
    units of every hidden layer."""
    if a.dim % 2:
        return f"--dim {a.dim} is odd: MaxMin pairs the units of each hidden layer"
    return None


def build_parser() -> harness.ArgumentParser:
    p = harness.ArgumentParser(prog=f"{SCRIPT}.py", description=__doc__.split("\n\n")[0],
                              check=check_args)
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
                        "channels of the generator's widest convolution, and the critic MLP's "
                        "width")
    t.add_argument("--fixed-generator", action="store_true",
                   help="no generator: train the critic alone against fake = real + N(0, I)")
    t.add_argument("--seed", type=harness.number(int, 0, 2**63, hi_ok=False), default=0,
                   help="random seed")
    return harness.running_arguments(p, RESUMABLE)


def step_bytes(args) -> int:
    """A rough upper estimate of one training step's memory: weights with their gradients and
    optimiser state, each layer's PᵀP and its backward, and activations."""
    acts = 48 * args.batch * args.dim * ACTIVATIONS.get(args.data, 1)
    return 4 * (32 * args.dim ** 2 * (16 if args.data == "mnist" else 1) + acts)


# ------------------------------------------------------------------------------ training step
OPTIMIZER = torch.optim.Adam  # for G and the critic


def make_optimizers(G, D, args, capturable: bool):
    """Adam for both, lr 1e-4, betas (0.5, 0.9), as the other scripts: the comparison changes
    the constraint only. Capturable (the step count lives on the GPU) only where a CUDA graph
    replays the update: eager runs skip its cost."""
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
    collapse), then what this method adds: ‖∇f‖ at interpolates with the share of points where
    it fell below 0.99 (gradient norm the layers did not keep), the exact bound K = Π_l ‖W_l‖₂
    (≤ 1 by construction) with its certified check E f(real) − E f(fake) ≤ K·W1(real, fake) on
    the last draw, how far the rescaled weights are from orthogonal, and the critic loss's
    weight gradient."""
    with common.evaluation_rng(args.seed, it, device):  # never moves the training's stream
        row, real, fake, w1_last = common.measure(args.data, lambda x: fake_batch(G, x, args), D,
                                                  device)
        est = row["critic_estimate"]
        t = torch.rand((len(real),) + (1,) * (real.dim() - 1), device=device)
        x_hat = t * real + (1 - t) * fake
        row.update(common.grad_norm_stats(D, x_hat))  # at fresh x̂
        _, gn = common.critic_and_grad_norm(D, x_hat)
        k = common.lipschitz_bound(D, real.shape[1:]).item()
        row.update(grad_share_below_0_99=(gn < 0.99).double().mean().item(),
                   lipschitz_bound=k, k_times_w1=k * w1_last, estimate_over_w1=est / w1_last,
                   certified=float(est <= k * w1_last + 1e-9),  # (of the rescaled weights:
                   orthogonality_error=orthogonality_error(D).item())  # the norm AOL throws away)
        # The critic loss's weight gradient, as the penalty scripts log it (no penalty here).
        r, f = real[: args.batch], fake[: args.batch]
        params = [p for p in D.parameters() if p.requires_grad]
        row["grad_w_disc"] = common.flat_grad(D(f).mean() - D(r).mean(), params).norm().item()
    return row


def orthogonality_error(critic: nn.Module) -> torch.Tensor:
    """max over the critic's linear layers of max |WᵀW − I| (or |WWᵀ − I| for a wide W): 0 up to
    float precision for weights that are orthogonal."""
    errs = []
    with torch.no_grad():
        for m in critic.modules():
            if isinstance(m, nn.Linear):
                w = m.weight.double()
                gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
                errs.append((gram - torch.eye(len(gram), dtype=gram.dtype,
                                              device=gram.device)).abs().max())
    return torch.stack(errs).max()


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
                              "K {lipschitz_bound:.4f} ‖∇f‖ {grad_norm_mean:.3f}"))
    return row


# -------------------------------------------------------------------- what the programs run
# This method's configurations in the project's programs, as flags of this script. `runs`: where
# each one runs, `summary`: its row in the report's summary, `published` and `w1_flags`: the W1
# benchmark's solver of the same family and its protocol (benchmarks/sweep.py: PLACES, KEYS).
# The W1 benchmark's paper has no AOL solver: no published row.
CONFIGS = {
    "aol": {"flags": [], "runs": "toys digits fixed Q1 w1",
            "summary": "almost-orthogonal layers (AOL) + MaxMin"},
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
