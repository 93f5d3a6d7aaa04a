"""WGAN: the original Wasserstein GAN, whose critic is kept Lipschitz by clipping its weights.

Arjovsky, Chintala, Bottou 2017, "Wasserstein GAN", arXiv:1701.07875 (code:
martinarjovsky/WassersteinGAN). After every critic update each critic parameter is clipped to
[−c, c]. The weights then live in a compact set, so the critic is K-Lipschitz for some K, but K
is unknown and the reachable functions are not the Lipschitz ball (a square, not a circle:
"Geometric Intuition on Improved Wasserstein GANs", Lernapparat blog, 2017-04-13): the critic
estimates W1 only up to K, and not even that once clipping pins the weights to the corners.

    critic     min_f  E f(G(z)) − E f(x),   then w ← clip(w, −c, c) for every critic parameter
    generator  min_G  −E f(G(z))
    RMSProp lr 5e-5, c = 0.01, 5 critic steps per generator step, and the paper code's schedule:
    100 critic steps in each of the first 25 generator iterations and in every 500th.

K ≤ Π‖W_l‖₂ (the product of the spectral norms of the linear and convolutional layers, ReLU and
LeakyReLU being 1-Lipschitz) is logged at every evaluation with the certified comparison it gives
on the same samples: E f(real) − E f(fake) ≤ K·W1(real, fake) (the paper's "up to a constant K",
made checkable).

Run (outputs go to runs/<script>-<data>-s<seed>-<time>/):
    python wgan_clip.py                            # the paper's setting, swiss roll
    python wgan_clip.py --clip 0.1                 # a looser clip
    python wgan_clip.py --no-warmup-schedule       # always 5 critic steps
    python wgan_clip.py --data digits              # 8×8 digits, 2000 iterations
    python wgan_clip.py --dim 512 --iters 100000   # gan_toy.py's full toy setting
    python wgan_clip.py --fixed-generator          # train the critic alone against real + N(0, I)
    python wgan_clip.py --iters 40 --dim 32 --eval-every 20    # a quick check on the CPU
    python wgan_clip.py --resume runs/<run>/checkpoint.pt --iters 8000  # continue a run
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
@torch.no_grad()
def clip_weights_(critic: torch.nn.Module, c: float, biases: bool = True) -> None:
    """Clip every parameter of the critic to [−c, c] in place (Arjovsky et al. 2017, Alg. 1);
    biases=False leaves the parameters named *bias free, as the W1 benchmark's WGAN
    (justkolesov/Wasserstein1Benchmark, src/models.py, Clipper) does.
    To copy: clip_weights_ (with import torch)."""
    for name, p in critic.named_parameters():
        if biases or not name.endswith("bias"):
            p.clamp_(-c, c)


def clipped_share(critic: nn.Module, c: float) -> torch.Tensor:
    """Share of critic parameters sitting at ±c: how much the clipping box is binding."""
    p = torch.cat([q.detach().reshape(-1) for q in critic.parameters()])
    return (p.abs() >= c * (1 - 1e-6)).float().mean()


def critic_step(D, opt_d, real, fake, args):
    """One update of the critic on a batch, its constraint included: what train_step repeats
    n_critic times and what benchmarks/w1_benchmark.py trains. Returns the loss and the batch
    estimate E f(real) − E f(fake), as device tensors."""
    f_real, f_fake = D(real).mean(), D(fake).mean()
    loss_d = f_fake - f_real  # E f(fake) − E f(real); no penalty
    opt_d.zero_grad(set_to_none=False)  # in place: a CUDA graph needs fixed addresses
    loss_d.backward()
    opt_d.step()
    clip_weights_(D, args.clip, not args.weights_only)  # w ← clip(w, −c, c) after each
    return loss_d, f_real - f_fake


def method_name(args) -> str:
    sched = "" if args.no_warmup_schedule else ", warm-up schedule"
    which = ", biases free" if args.weights_only else ""
    return f"WGAN weight clipping, c = {args.clip:g}{which}{sched}"


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
    m.add_argument("--clip", type=harness.number(float, 0, lo_ok=False), default=0.01,
                   help="clip every critic parameter to [−c, c] after each critic update")
    m.add_argument("--weights-only", action="store_true",
                   help="clip the weights and leave the biases free, as the W1 benchmark's "
                        "WGAN solver does (by default every parameter, as the paper's Alg. 1)")
    m.add_argument("--no-warmup-schedule", action="store_true",
                   help="always --n-critic critic steps, without the paper code's 100 critic "
                        "steps for the first 25 generator iterations and every 500th")
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
    t.add_argument("--lr", type=harness.number(float, 0, lo_ok=False), default=5e-5,
                   help="RMSProp learning rate (G and critic)")
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
OPTIMIZER = torch.optim.RMSprop  # for G and the critic


def make_optimizers(G, D, args, capturable: bool):
    """RMSProp for both, as in the WGAN paper (lr 5e-5: momentum-based optimisers made the
    clipped critic unstable there). Capturable (the step count lives on the GPU) only where a
    CUDA graph replays the update: eager runs skip its cost."""
    kw = {"capturable": True} if capturable else {}
    return (OPTIMIZER(G.parameters(), lr=args.lr, **kw),
            OPTIMIZER(D.parameters(), lr=args.lr, **kw))


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
        loss_d, estimate = critic_step(D, opt_d, real, fake, args)
    if args.fixed_generator:
        loss_g = torch.zeros((), device=device)
    else:
        loss_g = -D(G(torch.randn(args.batch, z_dim(args), device=device))).mean()  # −E f(G(z))
        opt_g.zero_grad(set_to_none=False)
        loss_g.backward()  # also fills the critic's .grad, which its next step zeroes
        opt_g.step()
    return torch.stack([loss_d, clipped_share(D, args.clip), estimate, loss_g]).detach()


STEP_COLUMNS = ("loss_d", "clipped_share", "estimate_batch", "loss_g")


def critic_steps(args, it: int) -> int:
    """Critic steps in generator iteration it (counted from 0): the WGAN code trains the critic
    100 times in the first 25 generator iterations and every 500th, to keep it near optimal."""
    if not args.no_warmup_schedule and (it < 25 or it % 500 == 0):
        return 100
    return args.n_critic


# ---------------------------------------------------------------------------------- evaluation
def evaluate(G, D, args, device, it: int) -> dict:
    """The measurement every script shares (common.measure: exact W1 and its floor, coverage,
    collapse), then what this method adds: ‖∇f‖ at interpolates, the bound K with its certified
    check E f(real) − E f(fake) ≤ K·W1(real, fake) on the last draw, and the critic loss's
    weight gradient."""
    with common.evaluation_rng(args.seed, it, device):  # never moves the training's stream
        row, real, fake, w1_last = common.measure(args.data, lambda x: fake_batch(G, x, args), D,
                                                  device)
        est = row["critic_estimate"]
        t = torch.rand((len(real),) + (1,) * (real.dim() - 1), device=device)
        row.update(common.grad_norm_stats(D, t * real + (1 - t) * fake))  # at fresh x̂
        k = common.lipschitz_bound(D, real.shape[1:]).item()
        row.update(lipschitz_bound=k, k_times_w1=k * w1_last, estimate_over_w1=est / w1_last,
                   certified=float(est <= k * w1_last + 1e-9))
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
                              "at ±c {clipped_share:.0%} K {lipschitz_bound:.3g}"))
    return row


# -------------------------------------------------------------------- what the programs run
# This method's configurations in the project's programs, as flags of this script. `runs`: where
# each one runs, `summary`: its row in the report's summary, `published` and `w1_flags`: the W1
# benchmark's solver of the same family and its protocol (benchmarks/sweep.py: PLACES, KEYS).
CONFIGS = {
    "wgan-clip": {"flags": [], "runs": "toys digits fixed Q1 w1", "w1_flags": ["--clip", "0.04"],
                  "published": "wgan",
                  "summary": "weight clipping (c 0.01; 0.04 in the W1 benchmark)"},
    # the W1 benchmark's WGAN clips the weights and not the biases (src/models.py, Clipper)
    "wgan-clip-weights-only": {"flags": ["--weights-only"], "runs": "w1",
                               "w1_flags": ["--clip", "0.04"], "published": "wgan"},
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
