"""DRAGAN: a gradient penalty taken near the real data, its normal-noise variant and PRODGAN.

DRAGAN: Kodali, Abernethy, Hays, Kira 2017, "On Convergence and Stability of GANs",
arXiv:1705.07215 (code: kodalinaveen3/DRAGAN). The normal-noise variant and PRODGAN (Penalty
Right On the Data): T. Viehmann, "More Improved Training of Wasserstein GANs and DRAGAN",
Lernapparat blog, 2017-05-29. The penalty constrains ‖∇f‖ only near the real data:

    R = E[(‖∇f(x̂)‖₂ − 1)²]     (--one-sided: E[max(‖∇f(x̂)‖₂ − 1, 0)²], the post's last question)
    --perturb paper   x̂ = x + α·C·std(x)·u, u ~ U[0, 1) elementwise, C = 0.5, α ~ U[0, 1]
    --perturb normal  x̂ = x + 0.25·std₀(x)·ε, std₀ per feature, ε ~ N(0, I);  none: x̂ = x
(perturb() has them all.) The same penalty centred at 0 (R1, R2, 0-GP) is zero_centred.py.

    --loss gan  (default, the DRAGAN paper): f is a logit, σ the sigmoid,
                critic     min_f  −E log σ(f(x)) − E log(1 − σ(f(G(z)))) + λ·R
                generator  min_G  −E log σ(f(G(z)))        (the non-saturating generator loss)
                1 critic step per generator step, Adam 1e-4, betas (0.5, 0.9), λ = 10
    --loss wgan (the blog post's comparison): critic min_f E f(G(z)) − E f(x) + λ·R,
                generator min_G −E f(G(z)), 5 critic steps per generator step

With --loss gan the "critic estimate" is a gap between mean logits, not an estimate of W1. The
DRAGAN authors later called their noise u ∈ [0, 1) a bug ("should have used [-1, 1]"); --perturb
paper keeps it, as published; --perturb normal is the blog's fix.

Run (outputs go to runs/<script>-<data>-s<seed>-<time>/):
    python dragan.py                               # the paper's setting, swiss roll
    python dragan.py --loss wgan --lambda 10       # DRAGAN's penalty in the WGAN loss
    python dragan.py --loss wgan --perturb normal  # the normal-noise variant
    python dragan.py --loss wgan --perturb none    # PRODGAN
    python dragan.py --loss wgan --data digits     # 8×8 digits, 2000 iterations
    python dragan.py --iters 40 --dim 32 --eval-every 20       # a quick check on the CPU
    python dragan.py --resume runs/<run>/checkpoint.pt --iters 8000     # continue a run
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
PERTURBATIONS = ("paper", "normal", "none", "toward-fake", "interpolate")


def perturb(real: torch.Tensor, kind: str = "paper", scale: float | None = None,
            fake: torch.Tensor | None = None) -> torch.Tensor:
    """Points near the real data where DRAGAN's penalty is taken; real: (N, ...), any shape.

        paper        x̂ = x + α·C·std(x)·u, u ~ U[0, 1) per element, std one number over the
                     batch, C = scale or 0.5, one α ~ U[0, 1] per sample  (DRAGAN's code)
        normal       x̂ = x + s·std₀(x)·ε, std₀ per feature, ε ~ N(0, I), s = scale or 0.25
        none         x̂ = x  (PRODGAN);  toward-fake: x̂ = x + δ(x_f − x), δ = scale or 0.1
        interpolate  x̂ = x + t(x_f − x), one t ~ U[0, 1] per sample: WGAN-GP's points
    """
    real = real.detach()
    if kind == "none":
        return real
    if kind in ("toward-fake", "interpolate"):
        if fake is None or fake.shape != real.shape:
            raise ValueError(f"perturb {kind!r} needs a fake batch of the real batch's shape")
        shape = (real.shape[0],) + (1,) * (real.dim() - 1)
        delta = (0.1 if scale is None else scale) if kind == "toward-fake" else \
            torch.rand(shape, device=real.device, dtype=real.dtype)
        return real + delta * (fake.detach() - real)
    if kind == "paper":
        c = 0.5 if scale is None else scale
        x_p = real + c * real.std(correction=0) * torch.rand_like(real)
        alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device,
                           dtype=real.dtype)
        return real + alpha * (x_p - real)
    if kind == "normal":
        s = 0.25 if scale is None else scale
        return real + s * real.std(dim=0, keepdim=True, correction=0) * torch.randn_like(real)
    raise ValueError(f"kind must be one of {PERTURBATIONS}, got {kind!r}")


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


def dragan_penalty(critic, real: torch.Tensor, kind: str = "paper", one_sided: bool = False,
                   scale: float | None = None, eps: float = 1e-12,
                   fake: torch.Tensor | None = None, grad_scale: float = 1.0) -> torch.Tensor:
    """DRAGAN's gradient penalty R near the real data, without λ.

        two-sided  R = mean[(‖∇f(x̂)‖₂ − 1)²]          (Kodali et al. 2017)
        one-sided  R = mean[max(‖∇f(x̂)‖₂ − 1, 0)²]
        x̂ = perturb(real, kind, scale, fake)   (fakes for toward-fake and interpolate)

    critic: (N, ...) to (N,) or (N, 1) scores; real: (N, ...), any shape; the norm is over all
    non-batch dimensions, ‖g‖ = sqrt(Σg² + eps) (finite where ∇f = 0). Works under no_grad.
    grad_scale: with float16 and a GradScaler, scaler.get_scale() (PyTorch's AMP recipe).
    Needs a double backward: no torch.compile (it refuses one), no cuDNN RNN in the critic.
    To copy: PERTURBATIONS, perturb, warn_if_batch_norm and dragan_penalty (with import torch;
    import warnings).
    """
    warn_if_batch_norm(critic)
    if real.shape[0] == 0:
        raise ValueError("real must be a non-empty batch")
    if not 0 < grad_scale < float("inf"):  # 0, inf or NaN would make the penalty NaN
        raise ValueError(f"grad_scale must be a finite number > 0, got {grad_scale}")
    with torch.enable_grad():  # the penalty is a gradient: it needs autograd even in no_grad code
        x_hat = perturb(real, kind, scale, fake).detach().requires_grad_(True)
        out = critic(x_hat)
        if out.shape not in ((len(x_hat),), (len(x_hat), 1)):  # not a score per sample
            raise ValueError(f"the critic must map N samples to (N,) or (N, 1) scores, got "
                             f"{tuple(out.shape)} for N = {len(x_hat)}")
        scaled = out.float().sum() * grad_scale  # 1 unless float16 needs it (grad_scale)
        (grad,) = torch.autograd.grad(scaled, x_hat, create_graph=True)
        grad = grad / grad_scale
        norm = torch.sqrt(grad.flatten(1).pow(2).sum(1) + eps)
        gap = (norm - 1).clamp(min=0) if one_sided else norm - 1
        return gap.pow(2).mean()


def critic_loss(f_real: torch.Tensor, f_fake: torch.Tensor, loss: str) -> torch.Tensor:
    """The critic's loss before the penalty. gan: −E log σ(f_real) − E log(1 − σ(f_fake)) =
    E softplus(−f_real) + E softplus(f_fake) (stable for any logit); wgan: E f_fake − E f_real."""
    if loss == "gan":
        return nn.functional.softplus(-f_real).mean() + nn.functional.softplus(f_fake).mean()
    return f_fake.mean() - f_real.mean()


def generator_loss(f_fake: torch.Tensor, loss: str) -> torch.Tensor:
    """gan: −E log σ(f(G(z))) = E softplus(−f(G(z))) (non-saturating); wgan: −E f(G(z))."""
    if loss == "gan":
        return nn.functional.softplus(-f_fake).mean()
    return -f_fake.mean()


def critic_step(D, opt_d, real, fake, args):
    """One update of the critic on a batch, its constraint included: what train_step repeats
    n_critic times and what benchmarks/w1_benchmark.py trains. Returns the loss, the penalty R
    and the batch estimate E f(real) − E f(fake), as device tensors."""
    out_real, out_fake = D(real), D(fake)
    pen = dragan_penalty(D, real, args.perturb, args.one_sided, args.perturb_scale, fake=fake)
    loss_d = (critic_loss(out_real, out_fake, args.loss) + args.lam * pen  # loss + λR
              + lp_term(D, real, fake, args))
    opt_d.zero_grad(set_to_none=False)  # in place: a CUDA graph needs fixed addresses
    loss_d.backward()
    opt_d.step()
    return loss_d, pen, out_real.mean() - out_fake.mean()


def lp_term(D, real, fake, args):
    """--lp-lambda times WGAN-LP's one-sided penalty on interpolates (open question Q2), or 0."""
    if args.lp_lambda == 0:
        return 0.0
    return args.lp_lambda * dragan_penalty(D, real, "interpolate", True, fake=fake)


def resolve_defaults(args):
    """The GAN loss takes the paper's 1 critic step per generator step, the WGAN loss 5."""
    if args.n_critic is None:
        args.n_critic = 1 if args.loss == "gan" else 5
    if args.iters is None:
        args.iters = 15000 if args.loss == "gan" else 5000


def estimate_label(args) -> str:
    """What the critic_estimate column E f(real) − E f(fake) is under this run's loss."""
    if args.loss == "gan":
        return "E logit(real) − E logit(fake) (GAN loss: not a W1 estimate)"
    return "critic: E f(real) − E f(fake)"


def method_name(args) -> str:
    name = {"paper": "DRAGAN", "normal": "DRAGAN (normal noise)", "none": "PRODGAN",
            "toward-fake": "penalty toward the fakes", "interpolate": "penalty on interpolates"}
    side = ", one-sided" if args.one_sided else ""
    lp = f" + one-sided GP λ = {args.lp_lambda:g}" if args.lp_lambda else ""
    return f"{name[args.perturb]}{side}, {args.loss.upper()} loss, λ = {args.lam:g}{lp}"


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
    """What is wrong with flags that are fine one by one (the parser's check): a scale for a
    perturbation that has none would be ignored silently."""
    if a.perturb_scale is not None and a.perturb in ("none", "interpolate"):
        return f"--perturb-scale has no effect with --perturb {a.perturb}: leave it out"
    return None


def build_parser() -> harness.ArgumentParser:
    p = harness.ArgumentParser(prog=f"{SCRIPT}.py", description=__doc__.split("\n\n")[0],
                              check=check_args, resolve=resolve_defaults)
    m = p.add_argument_group("method")
    m.add_argument("--lambda", dest="lam", type=harness.number(float, 0), default=10.0,
                   help="penalty weight λ (the DRAGAN paper's 10)")
    m.add_argument("--perturb", choices=PERTURBATIONS, default="paper",
                   help="where the penalty is taken: paper (DRAGAN's code), normal (the blog's "
                        "fix), none (PRODGAN: on the real data), toward-fake, interpolate")
    m.add_argument("--perturb-scale", type=harness.number(float, 0), default=None,
                   help="C of --perturb paper (default 0.5), the factor of --perturb normal "
                        "(default 0.25), or δ of --perturb toward-fake (default 0.1)")
    m.add_argument("--lp-lambda", type=harness.number(float, 0), default=0.0,
                   help="add WGAN-LP's one-sided penalty on real–fake interpolates, this weight")
    m.add_argument("--one-sided", action="store_true",
                   help="penalise only ‖∇f‖ > 1 at the same points")
    m.add_argument("--loss", choices=("gan", "wgan"), default="gan",
                   help="gan: the standard GAN loss on logits, as the DRAGAN paper; "
                        "wgan: the Wasserstein loss, as the blog post")
    t = p.add_argument_group("training")
    t.add_argument("--data", choices=common.DATASETS, default="swissroll",
                   help="a 2-D toy; digits: the 8×8 digits scikit-learn ships; mnist: 5000 "
                        "28×28 MNIST digits (data/), the WGAN-GP paper's models")
    t.add_argument("--iters", type=harness.number(int, 1), default=None,
                   help="generator iterations (default 15000 with --loss gan, 5000 with wgan; "
                        "2000 on digits, 1000 on mnist)")
    t.add_argument("--n-critic", type=harness.number(int, 1), default=None,
                   help="critic steps per generator step (default 1 with --loss gan, 5 with wgan)")
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
    """One generator iteration: n_critic critic steps, then one generator step. No host syncs
    inside, so that a CUDA graph can capture it; returns STEP_COLUMNS as one device tensor."""
    device = next(D.parameters()).device
    for _ in range(n_critic):
        real = common.sample(args.data, args.batch, device)
        with torch.no_grad():
            fake = fake_batch(G, real, args)  # no graph into G: the critic step trains D only
        loss_d, pen, estimate = critic_step(D, opt_d, real, fake, args)
    if args.fixed_generator:
        loss_g = torch.zeros((), device=device)
    else:
        z = torch.randn(args.batch, z_dim(args), device=device)
        loss_g = generator_loss(D(G(z)), args.loss)
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
    """common.measure (exact W1 and its floor, coverage, collapse), then ‖∇f‖ where the penalty
    looks and on the fakes, and the weight gradients of the critic loss's two parts."""
    with common.evaluation_rng(args.seed, it, device):  # never moves the training's stream
        row, real, fake, _ = common.measure(args.data, lambda x: fake_batch(G, x, args), D, device)
        row.update(common.grad_norm_stats(D, perturb(real, args.perturb, args.perturb_scale,
                                                     fake)))
        row["grad_norm_fake_mean"] = common.grad_norm_stats(D, fake)["grad_norm_mean"]
        # Does the penalty pull against the discrimination term? Weight gradients of both parts.
        r, f = real[: args.batch], fake[: args.batch]
        params = [p for p in D.parameters() if p.requires_grad]
        g_disc = common.flat_grad(critic_loss(D(r), D(f), args.loss), params)
        pen = args.lam * dragan_penalty(D, r, args.perturb, args.one_sided, args.perturb_scale,
                                        fake=f) + lp_term(D, r, f, args)
        g_pen = common.flat_grad(pen, params)
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
    say(harness.progress_line(SCRIPT, row, args.iters, "R {penalty:.4f}",
                              "logit gap" if args.loss == "gan" else "est"))
    return row


# -------------------------------------------------------------------- what the programs run
# This method's configurations in the project's programs, as flags of this script. `runs`: where
# each one runs, `summary`: its row in the report's summary, `published` and `w1_flags`: the W1
# benchmark's solver of the same family and its protocol (benchmarks/sweep.py: PLACES, KEYS).
CONFIGS = {
    "dragan-paper": {"flags": [], "runs": "toys digits",
                     "summary": "DRAGAN, its paper's setting (GAN loss)"},
    "dragan-wgan-l10": {"flags": ["--loss", "wgan", "--lambda", "10"],
                        "runs": "toys digits fixed Q1 Q2 Q5 w1",
                        "summary": "DRAGAN's penalty, WGAN loss"},
    "dragan-wgan-normal-l10": {"flags": ["--loss", "wgan", "--perturb", "normal", "--lambda", "10"],
                               "runs": "toys Q1 w1"},
    "prodgan-wgan-l10": {"flags": ["--loss", "wgan", "--perturb", "none", "--lambda", "10"],
                         "runs": "toys digits fixed Q1 w1",
                         "summary": "PRODGAN (penalty on the data), WGAN loss"},
    "dragan-wgan-l10+lp10": {"flags": ["--loss", "wgan", "--lp-lambda", "10"], "runs": "Q2"},
    "toward-fake0.1-wgan-l10": {"flags": ["--loss", "wgan", "--perturb", "toward-fake"],
                                "runs": "Q5 w1"},
    "interpolate-wgan-l10": {"flags": ["--loss", "wgan", "--perturb", "interpolate"],
                             "runs": "w1"},
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
