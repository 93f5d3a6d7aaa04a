"""WGAN-ALP: a Wasserstein GAN whose critic is kept 1-Lipschitz by adversarial Lipschitz
regularisation: the Lipschitz quotient taken where it is largest, along the direction in which
the critic changes fastest.

Terjék 2020, "Adversarial Lipschitz Regularization", ICLR 2020, arXiv:1907.05681 (code:
dterjek/adversarial_lipschitz_regularization, wgan_alp.py). At each sample x of the real and the
generated batch, a perturbation r found by the power iteration of virtual adversarial training
(Miyato, Maeda, Koyama, Ishii 2018, "Virtual Adversarial Training", arXiv:1704.03976):

    d₀ random, ‖d₀‖ = 1;  d ← ∇_d mean|f(x) − f(x + ξd)| / ‖·‖   (--power-iterations times)
    r  = ε·d,  ε ~ U[ε_min, ε_max] per sample
    R  = mean over the 2B samples of max(|f(x) − f(x + r)| / ‖r‖ − K, 0)²
    critic     min_f  E f(G(z)) − E f(x) + λ·R              (λ 10, K 1, ξ 10, ε ∈ [0.1, 10])
    generator  min_G  −E f(G(z))

How it relates to SLOGAN (slogan.py): both penalise a Lipschitz quotient |f(x) − f(y)|/‖x − y‖
above 1 with first derivatives only. SLOGAN takes y on the line to a random other sample (a
real–fake pair or an interpolate), so it sees ∇f only along that line; in D dimensions a random
line is nearly orthogonal to ∇f (cos ~ 1/√D) and the penalty loses its grip (the W1 benchmark:
SLOGAN's estimate 6.7 × W1 at 128-D). ALP takes y = x + r with r along the power iteration's
estimate of ∇f's direction (for a smooth f at small ξ, d → ±∇f/‖∇f‖), so its quotient is about
‖∇f‖ whatever D is. The SLOGAN post's "fake sample close to the real one" (dragan.py --perturb
toward-fake, open question Q5) moves x toward a fake, a direction chosen by the data; ALP's is
chosen by the critic.

Units. The paper's ε and ξ are distances between images in [−1, 1]³⁰⁷²; here they keep that
meaning per coordinate: every distance is multiplied by ρ·√(D/3072), ρ the data's half-range per
coordinate (--radius: 2 on the toys, 0.5 on the digits and MNIST in [0, 1], 2.5 in the W1
benchmark's cube) and D the sample's size. On the toys ε ∈ [0.005, 0.51]: small against the
swiss roll's spread (±2), as the paper's are against an image's.
Departures: no clipping of x + r to the data's range (the paper clips to the image range
[−1, 1]; the toys have none); the other scripts' Adam (1e-4, betas (0.5, 0.9), 5 critic steps)
and no learning-rate decay (the paper: Adam 2e-4, betas (0, 0.9), linear decay), so that the
comparison varies the constraint only.

No second derivative: the power iteration's gradient is taken with respect to d and stopped,
and R's gradient is an ordinary backward pass. What that buys, measured on this project's 2-core
CPU with one thread, width 128 (`OMP_NUM_THREADS=1 python benchmarks/speed.py --script
wgan_alp --dims 128 --iters 100 --compile`): torch.compile takes the step, where it refuses the
gradient penalties' double backward, but gains nothing here (33.4 ms per generator iteration
eager, 35.0 compiled): the power iteration's torch.autograd.grad inside the step breaks the
compiled graph. SLOGAN's step, which has none, goes from 30.0 to 21.3 ms compiled.

Run (outputs go to runs/<script>-<data>-s<seed>-<time>/):
    python wgan_alp.py                             # λ = 10 on the swiss roll
    python wgan_alp.py --power-iterations 0        # a random direction: no adversary
    python wgan_alp.py --data digits               # 8×8 digits, 2000 iterations
    python wgan_alp.py --fixed-generator           # train the critic alone against real + N(0, I)
    python wgan_alp.py --iters 40 --dim 32 --eval-every 20     # a quick check on the CPU
    python wgan_alp.py --resume runs/<run>/checkpoint.pt --iters 8000    # continue a run
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
from common import say

SCRIPT = os.path.splitext(os.path.basename(__file__))[0]
RESUMABLE = {"iters", "eval_every", "device", "no_cuda_graph"}  # what --resume may change


# ---------------------------------------------------------------------------------- the method
PAPER_DIM = 3072  # the paper's samples: 32×32×3 images in [−1, 1]; its ε and ξ are in those units


def scores(critic, x: torch.Tensor) -> torch.Tensor:
    """The critic's score of each sample, shape (N,): its output must be (N,) or (N, 1)."""
    out = critic(x)
    if out.shape not in ((len(x),), (len(x), 1)):  # not a score per sample
        raise ValueError(f"the critic must map N samples to (N,) or (N, 1) scores, got "
                         f"{tuple(out.shape)} for N = {len(x)}")
    return out.reshape(len(x))


def unit_norm(d: torch.Tensor) -> torch.Tensor:
    """Each sample's d over its norm (all non-batch dimensions), the norm kept ≥ 1e-10 as in the
    paper's code: where the critic is flat around x its gradient is 0, and 0/0 would be NaN."""
    n = d.flatten(1).norm(dim=1).clamp(min=1e-10)
    return d / n.reshape((-1,) + (1,) * (d.dim() - 1))


def adversarial_direction(critic, x: torch.Tensor, xi: float, power_iterations: int = 1,
                          f_x: torch.Tensor | None = None) -> torch.Tensor:
    """The unit direction d at each sample of x along which the critic changes fastest, by VAT's
    power iteration: d random (uniform − ½, normalised, as their code draws it), then
    power_iterations times d ← normalised ∇_d mean|f(x) − f(x + ξd)|, the gradient stopped.
    For a linear f = a·x one step gives ±a/‖a‖. x: (N, ...); returns d of x's shape, detached."""
    x = x.detach()
    f_x = scores(critic, x).detach() if f_x is None else f_x.detach()
    d = unit_norm(torch.rand_like(x) - 0.5)
    for _ in range(power_iterations):
        with torch.enable_grad():  # a gradient with respect to d: it works in no_grad code too
            d = d.requires_grad_(True)
            dist = (f_x - scores(critic, x + xi * d)).abs().mean()
            (g,) = torch.autograd.grad(dist, d)
        d = unit_norm(g.detach())
    return d


def alp_penalty(critic, real: torch.Tensor, fake: torch.Tensor, eps_min: float = 0.1,
                eps_max: float = 10.0, xi: float = 10.0, power_iterations: int = 1,
                k: float = 1.0) -> torch.Tensor:
    """Adversarial Lipschitz penalty R of ALP (Terjék 2020), without λ:

        x over the real and the generated batch; d = adversarial_direction(x, ξ);
        r = ε·d, ε ~ U[eps_min, eps_max] per sample
        R = mean[max(|f(x) − f(x + r)| / ‖r‖ − k, 0)²]

    critic: any callable mapping (N, ...) to (N,) or (N, 1); real, fake: (N, ...) of one shape,
    any sample shape (the norms are over all non-batch dimensions); eps and xi are in the data's
    own units (the script converts the paper's). ‖r‖ is kept ≥ 1e-10, as in their code. The
    result keeps its graph to the critic's weights (through f(x) and f(x + r), not through r).
    """
    if real.shape[0] == 0 or real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and fake must be non-empty batches of one sample shape, got "
                         f"{tuple(real.shape)} and {tuple(fake.shape)}")
    if not 0 < eps_min <= eps_max or not xi > 0 or power_iterations < 0:
        raise ValueError(f"need 0 < eps_min ≤ eps_max, xi > 0, power_iterations ≥ 0; got "
                         f"{eps_min}, {eps_max}, {xi}, {power_iterations}")
    x = torch.cat([real, fake]).detach()  # the penalty constrains the critic only
    f_x = scores(critic, x)
    d = adversarial_direction(critic, x, xi, power_iterations, f_x)
    eps = eps_min + (eps_max - eps_min) * torch.rand((len(x),) + (1,) * (x.dim() - 1),
                                                     device=x.device, dtype=x.dtype)
    r = eps * d
    quotient = (f_x - scores(critic, x + r)).abs() / r.flatten(1).norm(dim=1).clamp(min=1e-10)
    return (quotient - k).clamp(min=0).pow(2).mean()


def data_unit(args, sample_shape) -> float:
    """How long the paper's distance 1 is for this data: ρ·√(D/3072), ρ the data's half-range
    per coordinate (--radius), D the size of a sample (see the module docstring)."""
    return args.radius * math.sqrt(math.prod(sample_shape) / PAPER_DIM)


def penalty(D, real, fake, args):
    """alp_penalty with the script's flags, ε and ξ in this data's units."""
    u = data_unit(args, real.shape[1:])
    return alp_penalty(D, real, fake, args.eps_min * u, args.eps_max * u, args.xi * u,
                       args.power_iterations, args.lipschitz)


def critic_step(D, opt_d, real, fake, args):
    """One update of the critic on a batch: what train_step repeats n_critic times and what
    benchmarks/w1_benchmark.py trains. Returns the loss, the penalty R and the batch estimate
    E f(real) − E f(fake), as device tensors."""
    f_real, f_fake = D(real).mean(), D(fake).mean()
    pen = penalty(D, real, fake, args)
    loss_d = f_fake - f_real + args.lam * pen  # E f(fake) − E f(real) + λR
    opt_d.zero_grad(set_to_none=False)  # in place: a CUDA graph needs fixed addresses
    loss_d.backward()
    opt_d.step()
    return loss_d, pen, f_real - f_fake


def method_name(args) -> str:
    how = f"{args.power_iterations} power iteration{'s' if args.power_iterations != 1 else ''}"
    return f"WGAN-ALP, λ = {args.lam:g}, ε ∈ [{args.eps_min:g}, {args.eps_max:g}], {how}"


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
RADIUS = {"digits": 0.5, "mnist": 0.5}  # the toys lie within about ±2; grey levels in [0, 1]


def check_args(a):
    """What is wrong with flags that are fine one by one (the parser's check)."""
    if a.eps_min > a.eps_max:
        return f"--eps-min {a.eps_min:g} is above --eps-max {a.eps_max:g}"
    return None


def resolve_defaults(args):
    """--radius follows --data unless given (the W1 benchmark gives its cube's 2.5)."""
    if args.radius is None:
        args.radius = RADIUS.get(args.data, 2.0)


def build_parser() -> common.ArgumentParser:
    p = common.ArgumentParser(prog=f"{SCRIPT}.py", description=__doc__.split("\n\n")[0],
                              check=check_args, resolve=resolve_defaults)
    m = p.add_argument_group("method (ε and ξ in the paper's units: see the docstring)")
    m.add_argument("--lambda", dest="lam", type=common.number(float, 0), default=10.0,
                   help="penalty weight λ (the paper's 10)")
    m.add_argument("--eps-min", type=common.number(float, 0, lo_ok=False), default=0.1,
                   help="smallest perturbation length ε (the paper's 0.1)")
    m.add_argument("--eps-max", type=common.number(float, 0, lo_ok=False), default=10.0,
                   help="largest perturbation length ε (the paper's 10)")
    m.add_argument("--xi", type=common.number(float, 0, lo_ok=False), default=10.0,
                   help="the power iteration's step ξ (the paper's 10)")
    m.add_argument("--power-iterations", type=common.number(int, 0, 100), default=1,
                   help="power-iteration steps (the paper's 1; 0: a random direction)")
    m.add_argument("--lipschitz", type=common.number(float, 0, lo_ok=False), default=1.0,
                   help="the Lipschitz constant K the quotient may reach (the paper's 1)")
    m.add_argument("--radius", type=common.number(float, 0, lo_ok=False), default=None,
                   help="the data's half-range per coordinate, the unit of ε and ξ (default: 2 "
                        "on the toys, 0.5 on the digits and MNIST)")
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
    optimiser state, and activations of the passes on 2B samples and their perturbations (~5×
    more per unit of width in the digits' convolutions than in the toys' MLPs)."""
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
    captured once into a CUDA graph and replayed. Returns the last critic step's loss, penalty
    and batch estimate, and the generator loss, as one device tensor (STEP_COLUMNS).
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
    collapse), then what this method adds: the quotient along the adversarial direction beside
    the quotient along a random one at the same samples and ε (how much the power iteration
    finds), ‖∇f‖ at the samples, and the weight gradients of the two parts of the critic loss."""
    with common.evaluation_rng(args.seed, it, device):  # never moves the training's stream
        row, real, fake, _ = common.measure(args.data, lambda x: fake_batch(G, x, args), D, device)
        x = torch.cat([real, fake])
        u = data_unit(args, real.shape[1:])
        eps = u * (args.eps_min + (args.eps_max - args.eps_min) * torch.rand(
            (len(x),) + (1,) * (x.dim() - 1), device=device))
        with torch.no_grad():
            f_x = scores(D, x)
            for name, d in (("adv", adversarial_direction(D, x, args.xi * u,
                                                          args.power_iterations, f_x)),
                            ("random", unit_norm(torch.randn_like(x)))):
                q = (f_x - scores(D, x + eps * d)).abs() / eps.flatten()
                row.update({f"quotient_{name}_mean": q.mean().item(),
                            f"quotient_{name}_max": q.max().item(),
                            f"quotient_{name}_above_k": (q > args.lipschitz).float().mean().item()})
        row.update(common.grad_norm_stats(D, x))  # at the samples the penalty looks from
        # Does the penalty pull against the discrimination term? Weight gradients of both parts.
        r, f = real[: args.batch], fake[: args.batch]
        params = [p for p in D.parameters() if p.requires_grad]
        g_disc = common.flat_grad(D(f).mean() - D(r).mean(), params)
        g_pen = common.flat_grad(args.lam * penalty(D, r, f, args), params)
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
    say(common.progress_line(SCRIPT, row, args.iters, "R {penalty:.4f}"))
    return row


# -------------------------------------------------------------------- what the programs run
# This method's configurations in the project's programs, as flags of this script. `runs`: where
# each one runs, `summary`: its row in the README's table, `published` and `w1_flags`: the W1
# benchmark's solver of the same family and its protocol (benchmarks/sweep.py: PLACES, KEYS).
# The benchmark's cube is [−2.5, 2.5]^D: its --radius.
CONFIGS = {
    "alp-l10": {"flags": ["--lambda", "10"], "runs": "toys digits fixed Q1 w1",
                "w1_flags": ["--radius", "2.5"], "summary": "ALP (adversarial quotient, λ 10)"},
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
