"""WGAN-ALP: the critic kept 1-Lipschitz by adversarial Lipschitz regularisation, the Lipschitz
quotient taken along the direction in which the critic changes fastest.

Terjék 2020, "Adversarial Lipschitz Regularization", ICLR 2020, arXiv:1907.05681 (code:
dterjek/adversarial_lipschitz_regularization, wgan_alp.py). At each sample x of the real and the
generated batch, a perturbation r found by the power iteration of virtual adversarial training
(Miyato, Maeda, Koyama, Ishii 2018, "Virtual Adversarial Training", arXiv:1704.03976):

    d₀ random, ‖d₀‖ = 1;  d ← ∇_d mean|f(x) − f(x + ξd)| / ‖·‖   (--power-iterations times)
    r  = ε·d,  ε ~ U[ε_min, ε_max] per sample
    R  = mean over the 2B samples of max(|f(x) − f(x + r)| / ‖r‖ − K, 0)²
    critic     min_f  E f(G(z)) − E f(x) + λ·R              (λ 10, K 1, ξ 10, ε ∈ [0.1, 10])
    generator  min_G  −E f(G(z))

Against SLOGAN (slogan.py), which also penalises a quotient |f(x) − f(y)|/‖x − y‖ > 1 with first
derivatives only: SLOGAN's y lies on a line to another sample, nearly orthogonal to ∇f in D
dimensions (cos ~ 1/√D: its estimate is 6.7 × W1 at 128-D on the W1 benchmark); ALP's r follows
the power iteration's estimate of ∇f's direction, so its quotient is about ‖∇f‖ whatever D is.

Units. The paper's ε and ξ are distances between images in [−1, 1]³⁰⁷²; here they keep that
meaning per coordinate: every distance is multiplied by ρ·√(D/3072), ρ the data's half-range per
coordinate (--radius: 2 on the toys, 0.5 on the digits and MNIST in [0, 1], 2.5 in the W1
benchmark's cube) and D the sample's size. On the toys ε ∈ [0.005, 0.51]: small against the
swiss roll's spread (±2), as the paper's are against an image's.
Departures: no clipping of x + r to the data's range (the paper clips to the image range
[−1, 1]; the toys have none); the other scripts' Adam (1e-4, betas (0.5, 0.9), 5 critic steps)
and no learning-rate decay (the paper: Adam 2e-4, betas (0, 0.9), linear decay), so that the
comparison varies the constraint only.

No double backward: the power iteration's gradient is stopped, and R's is an ordinary backward
pass, so torch.compile takes the step, but gains nothing (33.4 ms per iteration eager, 35.0
compiled; one thread, width 128: `OMP_NUM_THREADS=1 python benchmarks/speed.py --script
wgan_alp --dims 128 --iters 100 --compile`): the torch.autograd.grad inside breaks its graph.

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
import warnings

import torch
import torch.nn as nn

import common
import harness
from harness import say

SCRIPT = os.path.splitext(os.path.basename(__file__))[0]
RESUMABLE = {"iters", "eval_every", "device", "no_cuda_graph", "threads"}  # --resume may change


# ---------------------------------------------------------------------------------- the method
PAPER_DIM = 3072  # the paper's samples: 32×32×3 images in [−1, 1]; its ε and ξ are in those units


def scores(critic, x: torch.Tensor, split: int | None = None) -> torch.Tensor:
    """The critic's score of each sample, shape (N,): its output must be (N,) or (N, 1). split:
    x is a real batch of this many samples and a fake one after it, given to the critic apart."""
    if split is not None:
        return torch.cat([scores(critic, h) for h in x.split([split, len(x) - split])])
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
                          f_x: torch.Tensor | None = None, split: int | None = None
                          ) -> torch.Tensor:
    """The unit direction d at each sample of x along which the critic changes fastest, by VAT's
    power iteration: d random (uniform − ½, normalised, as their code draws it), then
    power_iterations times d ← normalised ∇_d mean|f(x) − f(x + ξd)|, the gradient stopped.
    For a linear f = a·x one step gives ±a/‖a‖. x: (N, ...); returns d of x's shape, detached."""
    x = x.detach()
    f_x = scores(critic, x, split).detach() if f_x is None else f_x.detach()
    d = unit_norm(torch.rand_like(x) - 0.5)
    for _ in range(power_iterations):
        with torch.enable_grad():  # a gradient with respect to d: it works in no_grad code too
            d = d.requires_grad_(True)
            dist = (f_x - scores(critic, x + xi * d, split)).abs().mean()
            (g,) = torch.autograd.grad(dist, d)
        d = unit_norm(g.detach())
    return d


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


def alp_penalty(critic, real: torch.Tensor, fake: torch.Tensor, eps_min: float = 0.1,
                eps_max: float = 10.0, xi: float = 10.0, power_iterations: int = 1,
                k: float = 1.0) -> torch.Tensor:
    """Adversarial Lipschitz penalty R of ALP (Terjék 2020), without λ: x over the real and the
    generated batch, d = adversarial_direction(x, ξ), r = ε·d, ε ~ U[eps_min, eps_max] per sample,

        R = mean[max(|f(x) − f(x + r)| / ‖r‖ − k, 0)²]

    critic: (N, ...) to (N,) or (N, 1) scores; real, fake: (N, ...), any sample shape (norms over
    all non-batch dimensions); eps and xi in the data's own units (the script converts the
    paper's); ‖r‖ ≥ 1e-10, as in their code. The graph reaches the critic's weights through f(x)
    and f(x + r). The critic sees the real and the fake batch apart, so a conditional critic
    works as for every penalty: alp_penalty(lambda x: D(x, y), real, fake), y a row per sample.
    To copy: scores, unit_norm, adversarial_direction, warn_if_batch_norm and alp_penalty (with
    import torch; import warnings).
    """
    warn_if_batch_norm(critic)
    if real.shape[0] == 0 or real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and fake must be non-empty batches of one sample shape, got "
                         f"{tuple(real.shape)} and {tuple(fake.shape)}")
    if not 0 < eps_min <= eps_max or not xi > 0 or power_iterations < 0:
        raise ValueError(f"need 0 < eps_min ≤ eps_max, xi > 0, power_iterations ≥ 0; got "
                         f"{eps_min}, {eps_max}, {xi}, {power_iterations}")
    x = torch.cat([real, fake]).detach()  # the penalty constrains the critic only
    f_x = scores(critic, x, len(real))  # the critic sees the real and the fake batch apart
    d = adversarial_direction(critic, x, xi, power_iterations, f_x, len(real))
    eps = eps_min + (eps_max - eps_min) * torch.rand((len(x),) + (1,) * (x.dim() - 1),
                                                     device=x.device, dtype=x.dtype)
    r = eps * d
    quotient = (f_x - scores(critic, x + r, len(real))).abs() / r.flatten(1).norm(dim=1).clamp(
        min=1e-10)
    return (quotient - k).clamp(min=0).pow(2).mean()


def data_unit(args, sample_shape) -> float:
    """The paper's distance 1 in this data: ρ·√(D/3072) (--radius ρ; the module docstring)."""
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


def build_parser() -> harness.ArgumentParser:
    p = harness.ArgumentParser(prog=f"{SCRIPT}.py", description=__doc__.split("\n\n")[0],
                              check=check_args, resolve=resolve_defaults)
    m = p.add_argument_group("method (ε and ξ in the paper's units: see the docstring)")
    m.add_argument("--lambda", dest="lam", type=harness.number(float, 0), default=10.0,
                   help="penalty weight λ (the paper's 10)")
    m.add_argument("--eps-min", type=harness.number(float, 0, lo_ok=False), default=0.1,
                   help="smallest perturbation length ε (the paper's 0.1)")
    m.add_argument("--eps-max", type=harness.number(float, 0, lo_ok=False), default=10.0,
                   help="largest perturbation length ε (the paper's 10)")
    m.add_argument("--xi", type=harness.number(float, 0, lo_ok=False), default=10.0,
                   help="the power iteration's step ξ (the paper's 10)")
    m.add_argument("--power-iterations", type=harness.number(int, 0, 100), default=1,
                   help="power-iteration steps (the paper's 1; 0: a random direction)")
    m.add_argument("--lipschitz", type=harness.number(float, 0, lo_ok=False), default=1.0,
                   help="the Lipschitz constant K the quotient may reach (the paper's 1)")
    m.add_argument("--radius", type=harness.number(float, 0, lo_ok=False), default=None,
                   help="the data's half-range per coordinate, the unit of ε and ξ (default: 2 "
                        "on the toys, 0.5 on the digits and MNIST)")
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
    optimiser state, and activations of the passes on 2B samples and their perturbations (~5×
    more per unit of width in the digits' convolutions than in the toys' MLPs)."""
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
    say(harness.progress_line(SCRIPT, row, args.iters, "R {penalty:.4f}"))
    return row


# -------------------------------------------------------------------- what the programs run
# This method's configurations in the project's programs, as flags of this script. `runs`: where
# each one runs, `summary`: its row in the report's summary, `published` and `w1_flags`: the W1
# benchmark's solver of the same family and its protocol (benchmarks/sweep.py: PLACES, KEYS).
# The benchmark's cube is [−2.5, 2.5]^D: its --radius.
CONFIGS = {
    "alp-l10": {"flags": ["--lambda", "10"], "runs": "toys digits fixed Q1 w1",
                "w1_flags": ["--radius", "2.5"], "summary": "ALP (adversarial quotient, λ 10)"},
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
