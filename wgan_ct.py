"""WGAN-CT: a Wasserstein GAN whose critic needs no penalty, because the constraint is built
into the objective by the c-transform over the real batch.

Mallasto, Montúfar, Gerolin 2019, "How well do WGANs estimate the Wasserstein metric?",
arXiv:1910.03875; read with Stanczuk, Etmann, Kreusser, Schönlieb 2021, "Wasserstein GANs Work
Because They Fail (to Approximate the Wasserstein Distance)", arXiv:2103.01678. With a real batch
x_1..x_B and a fake batch y_1..y_B, and c(x, y) = ‖x − y‖:

    f^c(y)     = min_j ( ‖x_j − y‖ − f(x_j) )                       the c-transform
    f^{c,ε}(y) = −ε log mean_j exp((f(x_j) − ‖x_j − y‖)/ε)          --epsilon ε > 0 (→ f^c as ε → 0)
    critic     max_f  mean_i f(x_i) + mean_i f^c(y_i)
    generator  min_G  mean_i f^c(G(z_i))      (the gradient flows through ‖x_j* − G(z_i)‖ at the
                                                minimising j*; f(x_j) does not depend on G)

For every f, f(x) + f^c(y) ≤ ‖x − y‖, so the critic's value is a certified lower bound on the
batches' exact W1 (their assignment problem), reached by the optimal dual potential: no Lipschitz
constraint is needed. The entropic version sits in [f^c, f^c + ε log B], so its value may exceed
the batch W1 by at most ε log B. Public code has the entropic sign backwards (it tends to −max).
Optimiser and critic steps are those of the penalty scripts (Adam 1e-4, betas (0.5, 0.9), 5 steps)
so that the comparison changes the constraint only. --objective cowgan trains the critic by the
update rule of the W1 benchmark's CoWGAN instead (cowgan_objective, below).

Run (outputs go to runs/<script>-<data>-s<seed>-<time>/):
    python wgan_ct.py                              # the c-transform WGAN on the swiss roll
    python wgan_ct.py --epsilon 0.01               # the entropic (c, ε)-transform
    python wgan_ct.py --objective cowgan           # the published CoWGAN's critic update
    python wgan_ct.py --data digits                # 8×8 digits, 2000 iterations
    python wgan_ct.py --fixed-generator            # the critic alone against real + N(0, I)
    python wgan_ct.py --iters 40 --dim 32 --eval-every 20      # a quick check on the CPU
    python wgan_ct.py --resume runs/<run>/checkpoint.pt --iters 8000    # continue a run
"""
from __future__ import annotations

import functools
import math
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
def c_transform(f_real: torch.Tensor, real: torch.Tensor, fake: torch.Tensor,
                epsilon: float = 0.0) -> torch.Tensor:
    """The c-transform of the critic over the real batch, at each fake point; shape (M,).

        ε = 0   f^c(y_i) = min_j ( ‖x_j − y_i‖ − f(x_j) )
        ε > 0   f^{c,ε}(y_i) = −ε log mean_j exp((f(x_j) − ‖x_j − y_i‖)/ε)   (a soft minimum)

    f_real: (B,) the critic's values at the real points; real: (B, ...), fake: (M, ...) of one
    sample shape, any shape (the distance is over all non-batch dimensions). Differentiable in
    f_real and in fake. f^{c,ε} lies in [f^c, f^c + ε log B].
    To copy: c_transform and epsilon_fits (with import torch; import math).
    """
    if min(len(real), len(fake)) == 0 or real.shape[1:] != fake.shape[1:] \
            or f_real.reshape(-1).shape[0] != len(real):
        raise ValueError(f"need non-empty batches of one sample shape and one critic value per "
                         f"real point, got real {tuple(real.shape)}, fake {tuple(fake.shape)}, "
                         f"f_real {tuple(f_real.shape)}")
    if not (epsilon >= 0 and math.isfinite(epsilon)):
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon}")
    if not epsilon_fits(epsilon, f_real.dtype):
        raise ValueError(f"epsilon {epsilon:g} becomes 0 or infinite in {f_real.dtype}")
    dist = torch.cdist(real.flatten(1)[None], fake.flatten(1)[None],  # exact, not x² − 2xy + y²
                       compute_mode="donot_use_mm_for_euclid_dist")[0]  # (B, M)
    a = f_real.reshape(-1, 1) - dist  # f(x_j) − c(x_j, y_i)
    top = a.max(dim=0).values
    if epsilon == 0:
        return -top
    # −ε log mean_j exp(a_j/ε), shifted by the max so that a tiny ε cannot overflow. Where every
    # z_j = (a_j − top)/ε lies in (−1, 0] (a large ε), logsumexp(z) − log B cancels to a small
    # number and loses every digit in float32 (0.37 off at ε = 1e6): log1p(mean expm1(z)) is
    # the same quantity, computed without the cancellation.
    z = (a - top) / epsilon
    near = z.min(dim=0).values > -1
    small = torch.log1p(torch.expm1(torch.where(near, z, torch.zeros_like(z))).mean(dim=0))
    log_mean = torch.where(near, small, torch.logsumexp(z, dim=0) - math.log(len(real)))
    return -top - epsilon * log_mean


def epsilon_fits(epsilon: float, dtype: torch.dtype) -> bool:
    """Whether ε is 0 (the exact transform) or a number that dtype holds as neither 0 nor inf
    (from its smallest subnormal to its largest finite value)."""
    fi = torch.finfo(dtype)
    return epsilon == 0 or fi.tiny * fi.eps <= epsilon <= fi.max


def minimiser_top_share(f_real, real, fake) -> torch.Tensor:
    """Share of the fakes whose c-transform is attained at the most common real point: 1/B when
    every fake has a minimiser of its own, 1 when one real point serves all (no host sync)."""
    dist = torch.cdist(real.flatten(1)[None], fake.flatten(1)[None],
                       compute_mode="donot_use_mm_for_euclid_dist")[0]
    j = (dist - f_real.reshape(-1, 1)).argmin(dim=0)
    counts = torch.zeros(len(real), device=j.device).index_add_(  # no host sync, unlike one_hot
        0, j, torch.ones(len(fake), device=j.device))
    return counts.max() / len(fake)


def cowgan_objective(f_real: torch.Tensor, f_fake: torch.Tensor, real: torch.Tensor,
                     fake: torch.Tensor) -> torch.Tensor:
    """The objective the published CoWGAN ascends at one step (Korotin, Kolesov, Burnaev 2022,
    arXiv:2206.07767; justkolesov/Wasserstein1Benchmark, src/methods.py, train_CoWGAN), a scalar:

        L1 = mean_i f(x_i) − mean_i f(y_i)                      the plain WGAN objective
        L2 = mean_i f(x_i) + mean_i min_j (‖x_j − y_i‖ − f(x_j))   the c-transform over the reals
        L3 = −mean_i f(y_i) + mean_j min_i (‖x_j − y_i‖ + f(y_i))  the transform over the fakes
        L2 if L2 < L1, else L3 if L3 < L1, else L1

    A transform falls below its plain term only where f breaks the 1-Lipschitz bound on a pair
    of the batches, so the rule ascends the unconstrained objective while f keeps the bound
    there and a transform where it does not; this script's default ascends L2 always, and f at
    the fakes then gets no gradient. As their code, each minimiser is chosen without gradient
    from torch.cdist's fast form and its distance then computed exactly. f_real (B,), f_fake
    (M,): the critic at real (B, ...) and fake (M, ...). The choice is a torch.where: no host
    sync. To copy: cowgan_objective (with import torch).
    """
    def transform(f_src, src, dst):  # min_j (‖src_j − y‖ − f(src_j)) at each y of dst
        src, dst, f_src = src.flatten(1), dst.flatten(1), f_src.reshape(-1)
        with torch.no_grad():
            j = (torch.cdist(dst, src) - f_src.detach()).argmin(dim=1)
        return (src[j] - dst).norm(dim=1) - f_src[j]

    l1 = f_real.mean() - f_fake.mean()
    l2 = f_real.mean() + transform(f_real, real, fake).mean()
    l3 = -f_fake.mean() + transform(-f_fake, fake, real).mean()
    return torch.where(l2 < l1, l2, torch.where(l3 < l1, l3, l1))


def critic_step(D, opt_d, real, fake, args):
    """One update of the critic on a batch: what train_step repeats n_critic times and what
    benchmarks/w1_benchmark.py trains. Returns the loss, the objective ascended (by default
    the critic's value mean f + mean f^c) and f at the real points, as device tensors."""
    out_real = D(real)
    value = (cowgan_objective(out_real, D(fake), real, fake) if args.objective == "cowgan" else
             out_real.mean() + c_transform(out_real, real, fake, args.epsilon).mean())
    loss_d = -value  # max_f  mean f(x) + mean f^c(y)  (or CoWGAN's choice among L1, L2, L3)
    opt_d.zero_grad(set_to_none=False)  # in place: a CUDA graph needs fixed addresses
    loss_d.backward()
    opt_d.step()
    return loss_d, value, out_real


def method_name(args) -> str:
    kind = f"(c, ε)-transform, ε = {args.epsilon:g}" if args.epsilon > 0 else "c-transform"
    return f"WGAN-CT, {kind}" + (", CoWGAN's update rule" if args.objective == "cowgan" else "")


def estimate_label(args) -> str:
    """What the curves call the critic_estimate column: the critic's value, a lower bound."""
    return "critic value mean f + mean f^c (≤ W1)"


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
def check_args(a):
    """What is wrong with flags that are fine one by one (the parser's check): the training
    runs in float32, where an ε below ~1.4e-45 is 0 and one above ~3.4e38 is infinite."""
    if not epsilon_fits(a.epsilon, torch.float32):
        f32 = torch.finfo(torch.float32)
        return (f"--epsilon {a.epsilon:g} becomes 0 or infinite in float32, which the training "
                f"runs in: take one in [{f32.tiny * f32.eps:.3g}, {f32.max:.3g}], or 0 for the "
                f"exact c-transform")
    if a.objective == "cowgan" and a.epsilon > 0:
        return (f"--objective cowgan takes the exact transforms, as the published rule: drop "
                f"--epsilon {a.epsilon:g}")
    return None


def build_parser() -> harness.ArgumentParser:
    p = harness.ArgumentParser(prog=f"{SCRIPT}.py", description=__doc__.split("\n\n")[0],
                              check=check_args)
    m = p.add_argument_group("method")
    m.add_argument("--epsilon", type=harness.number(float, 0), default=0.0,
                   help="ε of the entropic (c, ε)-transform; 0 takes the exact minimum")
    m.add_argument("--objective", choices=("c-transform", "cowgan"), default=None,
                   help="the critic's update: ascend mean f + mean f^c (c-transform), or the "
                        "published CoWGAN's rule (cowgan: the plain WGAN objective while f "
                        "keeps the bound on the batches, a transform where it does not; exact "
                        "transforms only); the generator's loss is mean f^c either way (default: "
                        "c-transform)")
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
    optimiser state, activations (~5× more per unit of width in the digits' convolutions), and
    the B × B distances of the c-transform."""
    acts = 48 * args.batch * args.dim * ACTIVATIONS.get(args.data, 1)
    return 4 * (16 * args.dim ** 2 * WEIGHTS.get(args.data, 1) + acts + 8 * args.batch ** 2)


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
    captured once into a CUDA graph and replayed. Returns the last critic step's loss, penalty
    and batch estimate, and the generator loss, as one device tensor (STEP_COLUMNS).
    """
    device = next(D.parameters()).device
    for _ in range(n_critic):
        real = common.sample(args.data, args.batch, device)
        with torch.no_grad():
            fake = fake_batch(G, real, args)  # no graph into G: the critic step trains D only
        loss_d, value, out_real = critic_step(D, opt_d, real, fake, args)
    if args.fixed_generator:
        loss_g = torch.zeros((), device=device)
    else:
        real = common.sample(args.data, args.batch, device)
        with torch.no_grad():
            out_real = D(real)  # f(x_j) does not depend on G
        fake = G(torch.randn(args.batch, z_dim(args), device=device))
        loss_g = c_transform(out_real, real, fake, args.epsilon).mean()  # mean f^c(G(z))
        opt_g.zero_grad(set_to_none=False)
        loss_g.backward()  # also fills the critic's .grad, which its next step zeroes
        opt_g.step()
    with torch.no_grad():
        share = minimiser_top_share(out_real, real, fake)
    return torch.stack([loss_d, share, value, loss_g]).detach()


STEP_COLUMNS = ("loss_d", "minimiser_top_share", "estimate_batch", "loss_g")


def critic_steps(args, it: int) -> int:
    """Critic steps in generator iteration it (counted from 0)."""
    return args.n_critic


# ---------------------------------------------------------------------------------- evaluation
def evaluate(G, D, args, device, it: int) -> dict:
    """The measurement every script shares (common.measure: exact W1 and its floor, coverage,
    collapse), with the critic's value mean f + mean f^c as its estimate; then what this method
    adds: that value against the exact W1 of the same points (on the last draw and on one
    training-size batch: it must be below both), ‖∇f‖ on the data, and how many fakes share one
    minimiser."""
    with common.evaluation_rng(args.seed, it, device):  # never moves the training's stream
        def value(r, f):  # the critic's value mean f + mean f^c: its estimate of W1
            f_r = D(r)
            return f_r.mean() + c_transform(f_r, r, f, args.epsilon).mean()
        row, real, fake, w1_last = common.measure(args.data, lambda x: fake_batch(G, x, args), D,
                                                  device, estimate=value)
        est = row["critic_estimate"]
        row.update(common.grad_norm_stats(D, real), estimate_over_w1=est / w1_last)  # on data
        r, f = real[: args.batch], fake[: args.batch]
        with torch.no_grad():
            f_r = D(r)
            row.update(value_batch=(f_r.mean() + c_transform(f_r, r, f, args.epsilon).mean())
                       .item(), w1_batch=common.w1(f, r),
                       minimiser_top_share=minimiser_top_share(f_r, r, f).item())
        params = [p for p in D.parameters() if p.requires_grad]
        f_r = D(r)
        g = common.flat_grad(-(f_r.mean() + c_transform(f_r, r, f, args.epsilon).mean()), params)
        row["grad_w_disc"] = g.norm().item()
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
    say(harness.progress_line(SCRIPT, row, args.iters, "top {minimiser_top_share:.0%}", "value"))
    return row


# -------------------------------------------------------------------- what the programs run
# This method's configurations in the project's programs, as flags of this script. `runs`: where
# each one runs, `summary`: its row in the report's summary, `published` and `w1_flags`: the W1
# benchmark's solver of the same family and its protocol (benchmarks/sweep.py: PLACES, KEYS).
CONFIGS = {
    "c-transform": {"flags": [], "runs": "toys digits fixed Q1 w1", "published": "cowgan",
                    "summary": "c-transform"},
    "c-transform-eps0.05": {"flags": ["--epsilon", "0.05"], "runs": "w1"},
    # the published CoWGAN's update rule (justkolesov/Wasserstein1Benchmark, src/methods.py)
    "cowgan-rule": {"flags": ["--objective", "cowgan"], "runs": "w1", "published": "cowgan"},
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
