"""The zero-centred gradient penalties R1, R2 and 0-GP: the critic pushed flat where they look.

R1 and R2: Mescheder, Geiger, Nowozin 2018, "Which Training Methods for GANs do actually
Converge?", ICML, arXiv:1801.04406 (code: LMescheder/GAN_stability, gan_training/train.py).
0-GP: Thanh-Tung, Tran, Venkatesh 2019, "Improving Generalization and Stability of Generative
Adversarial Networks", ICLR, arXiv:1902.03984 (code: htt210/GeneralizationAndStabilityInGANs).
Where WGAN-GP pulls ‖∇f‖ toward 1, these pull it toward 0, and only where they look:

    R = E[‖∇f(x̂)‖₂²]          (--center c: E[(‖∇f(x̂)‖₂ − c)²]; c = 1 on interpolates is WGAN-GP)
    --perturb none         x̂ = x, the real data                  R1 (γ = 10: λ = γ/2 = 5)
    --perturb fake         x̂ = G(z), the generated samples       R2 (γ = 10: λ = 5)
    --perturb interpolate  x̂ = x + t(G(z) − x), one t ~ U[0, 1] per sample    0-GP (λ = 10)
    --reduce max           R = max over the batch of ‖∇f(x̂)‖₂², not its mean: MaxGP (Zhou et al.
                           2019, "Lipschitz Generative Adversarial Nets", ICML, arXiv:1902.05687;
                           ZhimingZhou/LGANs-for-reproduce, λ 0.1 there; StudioGAN's "maxgp")

    --loss gan  (default, both papers): f is a logit, σ the sigmoid,
                critic     min_f  −E log σ(f(x)) − E log(1 − σ(f(G(z)))) + λ·R
                generator  min_G  −E log σ(f(G(z)))        (the non-saturating generator loss)
                1 critic step per generator step, Adam 1e-4, betas (0.5, 0.9)
    --loss wgan critic min_f E f(G(z)) − E f(x) + λ·R, generator min_G −E f(G(z)), 5 critic steps

R1 is PRODGAN's penalty (dragan.py --perturb none) centred at 0. In the WGAN loss a penalty on
one side bounds nothing on the other: R1 keeps f flat on the data and lets it grow without bound
away from it (the report shows what follows). With --loss gan the "critic estimate"
E f(x) − E f(G(z)) is a gap between mean logits, not an estimate of W1; the exact W1 and the mode
statistics are measured the same way for both losses. Departures from the papers: the models
are gan_toy.py's MLPs and small convolutions, not their ResNets, and no EMA of the generator.

Run (outputs go to runs/<script>-<data>-s<seed>-<time>/):
    python zero_centred.py                          # R1 in the GAN loss, γ = 10, swiss roll
    python zero_centred.py --perturb fake           # R2
    python zero_centred.py --loss wgan --perturb interpolate --lambda 10   # 0-GP, WGAN loss
    python zero_centred.py --data digits            # 8×8 digits, 2000 iterations
    python zero_centred.py --fixed-generator --loss wgan   # the critic alone against real + N(0, I)
    python zero_centred.py --iters 40 --dim 32 --eval-every 20     # a quick check on the CPU
    python zero_centred.py --resume runs/<run>/checkpoint.pt --iters 8000  # continue a run
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
POINTS = ("none", "fake", "interpolate")  # --perturb: R1, R2, 0-GP


def penalty_points(real: torch.Tensor, fake: torch.Tensor | None, points: str) -> torch.Tensor:
    """Where the penalty is taken (detached): real (R1), fake (R2), or real + t·(fake − real),
    one t ~ U[0, 1] per sample (0-GP); any sample shape, fake of the real batch's shape."""
    if points not in POINTS:
        raise ValueError(f"points must be one of {POINTS}, got {points!r}")
    if points != "none" and (fake is None or fake.shape != real.shape):
        raise ValueError(f"points {points!r} needs a fake batch of the real batch's shape")
    real = real.detach()
    if points == "none":
        return real
    if points == "fake":
        return fake.detach()
    t = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device,
                   dtype=real.dtype)
    return real + t * (fake.detach() - real)


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


def zero_centred_penalty(critic, real: torch.Tensor, fake: torch.Tensor | None = None,
                         points: str = "none", center: float = 0.0, eps: float = 1e-12,
                         grad_scale: float = 1.0, reduce: str = "mean") -> torch.Tensor:
    """The zero-centred gradient penalty R, without λ.

        R = mean[(‖∇f(x̂)‖₂ − c)²], c = center: 0 for all three papers' penalties
        x̂ = penalty_points(real, fake, points): real (R1), fake (R2), interpolates (0-GP)
        reduce "max": R = max over the batch instead of the mean (MaxGP, at interpolates)

    critic: any callable mapping (N, ...) to (N,) or (N, 1); real and fake: (N, ...) of one
    shape (fake unused by R1). The norm is over all non-batch dimensions, ‖g‖ = sqrt(Σg² + eps)
    keeps the gradient finite where ∇f = 0, and the result keeps its graph for the critic's
    weights. Works under torch.no_grad() too. grad_scale: with float16 autocast and a
    GradScaler, pass scaler.get_scale() (PyTorch's AMP recipe for a gradient penalty).
    Needs a double backward: no torch.compile (it refuses one), no cuDNN RNN in the critic.
    To copy: POINTS, penalty_points, warn_if_batch_norm and zero_centred_penalty (with import
    torch; import warnings).
    """
    warn_if_batch_norm(critic)
    if real.shape[0] == 0:
        raise ValueError("real must be a non-empty batch")
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    if not 0 < grad_scale < float("inf"):  # 0, inf or NaN would make the penalty NaN
        raise ValueError(f"grad_scale must be a finite number > 0, got {grad_scale}")
    with torch.enable_grad():  # the penalty is a gradient: it needs autograd even in no_grad code
        x_hat = penalty_points(real, fake, points).requires_grad_(True)
        out = critic(x_hat)
        if out.shape not in ((len(x_hat),), (len(x_hat), 1)):  # not a score per sample
            raise ValueError(f"the critic must map N samples to (N,) or (N, 1) scores, got "
                             f"{tuple(out.shape)} for N = {len(x_hat)}")
        scaled = out.float().sum() * grad_scale  # 1 unless float16 needs it (grad_scale)
        (grad,) = torch.autograd.grad(scaled, x_hat, create_graph=True)
        grad = grad / grad_scale
        norm = torch.sqrt(grad.flatten(1).pow(2).sum(1) + eps)
        gap = (norm - center).pow(2)
        return gap.amax() if reduce == "max" else gap.mean()


def critic_loss(f_real: torch.Tensor, f_fake: torch.Tensor, loss: str) -> torch.Tensor:
    """The critic's loss before the penalty, from its outputs on real and fake samples.

    gan:  −E log σ(f_real) − E log(1 − σ(f_fake)) = E softplus(−f_real) + E softplus(f_fake),
          computed from the logits (softplus is stable for any logit; log(sigmoid) is not)
    wgan: E f_fake − E f_real
    """
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
    pen = zero_centred_penalty(D, real, fake, args.perturb, args.center, reduce=reduction(args))
    loss_d = critic_loss(out_real, out_fake, args.loss) + args.lam * pen  # loss + λR
    opt_d.zero_grad(set_to_none=False)  # in place: a CUDA graph needs fixed addresses
    loss_d.backward()
    opt_d.step()
    return loss_d, pen, out_real.mean() - out_fake.mean()


def resolve_defaults(args):
    """One critic step per generator step goes with the GAN loss (both papers); the WGAN loss
    trains its critic 5 times per generator step, so needs fewer generator iterations."""
    if args.n_critic is None:
        args.n_critic = 1 if args.loss == "gan" else 5
    if args.iters is None:
        args.iters = 15000 if args.loss == "gan" else 5000


def estimate_label(args) -> str:
    """What the critic_estimate column E f(real) − E f(fake) is under this run's loss."""
    if args.loss == "gan":
        return "E logit(real) − E logit(fake) (GAN loss: not a W1 estimate)"
    return "critic: E f(real) − E f(fake)"


def reduction(args) -> str:
    """How R reduces over the batch: the mean, or with --reduce max the maximum (MaxGP)."""
    return args.reduce or "mean"


def method_name(args) -> str:
    name = {"none": "R1", "fake": "R2", "interpolate": "0-GP"}[args.perturb]
    if reduction(args) == "max":
        name = "MaxGP" if args.perturb == "interpolate" else f"{name}, its maximum"
    if args.center != 0:
        name = f"{name} centred at {args.center:g}"
    return f"{name}, {args.loss.upper()} loss, λ = {args.lam:g}"


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
    p = harness.ArgumentParser(prog=f"{SCRIPT}.py", description=__doc__.split("\n\n")[0],
                              resolve=resolve_defaults)
    m = p.add_argument_group("method")
    m.add_argument("--lambda", dest="lam", type=harness.number(float, 0), default=5.0,
                   help="penalty weight λ (R1 and R2: γ/2, the paper's γ = 10; 0-GP's: 10)")
    m.add_argument("--perturb", choices=POINTS, default="none",
                   help="where the penalty is taken: none (the real data: R1), fake (the "
                        "generated samples: R2), interpolate (real–fake interpolates: 0-GP)")
    m.add_argument("--center", type=harness.number(float, 0, 1e3), default=0.0,
                   help="the gradient norm the penalty pulls toward: 0 for R1, R2 and 0-GP "
                        "(at most 1000: a larger one overflows the squared gap in float32)")
    m.add_argument("--reduce", choices=("mean", "max"), default=None,
                   help="mean (when left out) over the batch, or max: the largest ‖∇f‖² "
                        "(MaxGP, with --perturb interpolate)")
    m.add_argument("--loss", choices=("gan", "wgan"), default="gan",
                   help="gan: the standard GAN loss on logits, as both papers; "
                        "wgan: the Wasserstein loss")
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
    """The measurement every script shares (common.measure: exact W1 and its floor, coverage,
    collapse), then what this method adds: ‖∇f‖ where the penalty looks and on the fakes, and
    the weight gradients of the two parts of the critic loss."""
    with common.evaluation_rng(args.seed, it, device):  # never moves the training's stream
        row, real, fake, _ = common.measure(args.data, lambda x: fake_batch(G, x, args), D, device)
        row.update(common.grad_norm_stats(D, penalty_points(real, fake, args.perturb)))
        row["grad_norm_fake_mean"] = common.grad_norm_stats(D, fake)["grad_norm_mean"]
        # Does the penalty pull against the discrimination term? Weight gradients of both parts.
        r, f = real[: args.batch], fake[: args.batch]
        params = [p for p in D.parameters() if p.requires_grad]
        g_disc = common.flat_grad(critic_loss(D(r), D(f), args.loss), params)
        pen = args.lam * zero_centred_penalty(D, r, f, args.perturb, args.center,
                                              reduce=reduction(args))
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
    # The zero-centred penalties: their papers' points, weights and losses (R1 and R2: γ = 10,
    # λ = γ/2, the non-saturating GAN loss; 0-GP: λ = 10), and two in the WGAN loss: 0-GP, and
    # R1 there, to show what a penalty on one side leaves unbounded on the other.
    "r1-gan": {"flags": ["--perturb", "none", "--lambda", "5"],
               "runs": "toys digits w1",
               "summary": "R1 (zero-centred on the data, γ 10), GAN loss"},
    "r2-gan": {"flags": ["--perturb", "fake", "--lambda", "5"],
               "runs": "toys digits w1",
               "summary": "R2 (zero-centred on the fakes, γ 10), GAN loss"},
    "zero-gp-gan": {"flags": ["--perturb", "interpolate", "--lambda", "10"], "runs": "toys"},
    "zero-gp-wgan": {"flags": ["--loss", "wgan", "--perturb", "interpolate", "--lambda", "10"],
                     "runs": "toys digits fixed Q1 w1",
                     "summary": "0-GP (zero-centred on interpolates), WGAN loss"},
    "r1-wgan": {"flags": ["--loss", "wgan", "--perturb", "none", "--lambda", "5"],
                "runs": "toys fixed w1"},
    # MaxGP: the largest ‖∇f‖² at interpolates, the GAN loss and λ 0.1 of the paper's code
    # (gan_synthetic4.py; it also feeds the last step's steepest B/8 points back: not done here).
    "maxgp-gan": {"flags": ["--perturb", "interpolate", "--reduce", "max", "--lambda", "0.1"],
                  "runs": "toys w1"},
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
