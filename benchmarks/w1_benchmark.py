"""Which constraint finds the true critic, and does it still in 128 dimensions? Every constraint
of the method scripts on the W1 benchmark of Korotin, Kolesov, Burnaev 2022, whose pairs have an
optimal critic known in closed form, in every dimension they publish.

"Kantorovich Strikes Back! Wasserstein GANs are not Optimal Transport?", NeurIPS 2022 Datasets and
Benchmarks (code and data: justkolesov/Wasserstein1Benchmark, MIT licence; all 28 pairs, D ∈ {2,
4, 8, 16, 32, 64, 128} × K ∈ {4, 16, 64, 256} funnels, are in benchmarks/data/
w1_benchmark_nd.json with their attribution). For a pair in D dimensions with K funnels:

    u(x) = min_k ‖x − c_k‖ + b_k                 a 1-Lipschitz potential ("MinFunnels")
    Q    = uniform on [−2.5, 2.5]^D               (this project's "fake")
    P    : y ~ Q, k its funnel, x = c_k + t⁸·(up − c_k), t = ‖y − c_k‖/‖up − c_k‖, up where the ray
           from c_k through y leaves the cube or enters another funnel   ("real")
    W1(P, Q) = E‖x − y‖ (the plan moves each point along a ray of u), optimal critic f* = −u

Metrics at samples x of P (their definitions): cos = mean cos(∇f(x), −∇u(x)); L2 = mean
‖∇f(x) + ∇u(x)‖²; estimate = E_P f − E_Q f against the true W1 of the plan. One departure: their
code takes ∇u by autograd through torch.cdist, whose default form ‖x‖² + ‖c‖² − 2x·c loses
digits next to a funnel centre, where P's samples gather (t⁸ is small); here ∇u = (x − c_k)/
‖x − c_k‖ from the difference itself, and the samples that sit exactly on a centre (t⁸ underflows;
∇u is undefined there) are left out of cos and L2, their share stated.

Each constraint is what a method script declares for this benchmark (its CONFIGS: the
configurations marked "w1", with their flags), trained by the script's own functions: its
critic_net builds the critic, widths [D, h, h, 1] with h = max(2D, 128) as their protocol (a ReLU
MLP; spectrally normalised for wgan_sn.py, orthogonal with GroupSort for wgan_groupsort.py), and
its critic_step makes every update (the loss with its penalty, or the clipping after it); Adam
2e-4 with betas (0, 0.9), batch 1024, one critic step per iteration, the critic high on P
("real"). By default the main configuration of every constraint (the one the report's summary
shows); --all-configs adds the variants (every pairing, perturbation, ε).

Each training is also measured along the way (--eval-at; by default at 100, 200, 500, 1000, …
below its length), on the same samples of P every time and from a random stream of its own, so
that its point at iteration i is what a training of i iterations ends with: a learning curve
from one training. On this machine it saves its state at each of those points into
<out>/checkpoints/ and an interrupted training goes on from there (on Ray it starts over: its
checkpoint would stay on the node that ran it).

Writes into --out: runs.csv (a row per training and point of its curve: the store this
benchmark reads back, so that a finished training is not run again and a smaller call never
shrinks the tables; the tables show each training's last point), results.csv
and results.md (every constraint's cos, L2 and estimate / true W1, median [min, max] over the
seeds, beside the published row of its family, a table per pair), w1-by-dim.png (cos and
estimate / W1 against the dimension, a panel per funnel count) and, for the 2-D pairs,
pair-2d-<K>.png (the true potential, then each critic over the map of cos(∇f, −∇u)).

    python benchmarks/w1_benchmark.py                  # D 2, 8, 32, 128 × 4, 64 funnels (~1 h)
    python benchmarks/w1_benchmark.py --dims 2 --funnels 4 16 --all-configs --out w1-2d  # all
    python benchmarks/w1_benchmark.py --only gp- slogan --dims 2 --funnels 4 --seeds 0
    python benchmarks/w1_benchmark.py --dims 128 --iters 10000 --seeds 0 --jobs 1 \
        --out results/w1_curves                          # the curves to 10,000 iterations
    python benchmarks/w1_benchmark.py --protocol paper --device cuda --jobs 4   # their iterations
    python benchmarks/w1_benchmark.py --protocol paper --ray auto --device cuda --gpus-per-run 0.25
"""
from __future__ import annotations

import copy
import csv
import importlib
import json
import math
import os
import statistics
import sys
import textwrap
import time

import torch
import torch.nn as nn
from matplotlib.figure import Figure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import common  # noqa: E402
import harness
import report  # noqa: E402
import sweep  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "w1_benchmark_nd.json")
DIMS = (2, 4, 8, 16, 32, 64, 128)
FUNNELS = (4, 16, 64, 256)
BATCH = 1024
ADAM = {"lr": 2e-4, "betas": (0.0, 0.9)}  # their critics' Adam (sort-out's aside)
QUOTIENT_FROM = 1000  # a curve's points measure the largest quotient from this iteration on
# Their iterations per solver family (notebooks/test_nd.ipynb); a constraint they did not run
# gets the gradient penalties' 60,000, the longest: --protocol paper.
PAPER_ITERS = {"wgan": 5000, "wgan-gp": 60000, "wgan-lp": 60000, "sn-gan": 10000,
               "sort-out": 25000, "cowgan": 25000}
OTHER_PAPER_ITERS = 60000
# The default command, 11 constraints × 4 dimensions × 2 pairs × 3 seeds = 264 trainings, fits an
# hour on 2 CPU cores at this many iterations each (1.7 % of the gradient penalties' protocol).
SHORT_ITERS = 1000
MARK = "Command: `python benchmarks/w1_benchmark.py"  # the first line of its results.md


def constraints(all_configs: bool = True, lambdas=None) -> list:
    """(name, script, flags, published solver or None) of every configuration a method script
    marks "w1" (its CONFIGS), with the flags the benchmark runs it with; all_configs=False keeps
    the main one of each constraint (those with a row in the report's summary); lambdas: the λ
    grid of those that take a --lambda instead (sweep.at_lambdas: "<name>@λ<value>")."""
    configs = [c for c in sweep.configs("w1") if all_configs or "summary" in c[2]]
    if lambdas:
        configs = sweep.at_lambdas(configs, lambdas)
    return [(name, script, spec["flags"] + spec.get("w1_flags", []), spec.get("published"))
            for name, script, spec in configs]


def method(name: str):
    """The script's module and its parsed arguments for the constraint `name` (or its λ
    variant "<name>@λ<value>")."""
    base, lam = sweep.split_lambda(name)
    script, flags = next((sc, fl) for n, sc, fl, _ in constraints() if n == base)
    flags = flags + (["--lambda", f"{lam:g}"] if lam is not None else [])
    mod = importlib.import_module(script)
    args, _ = harness.parse_or_resume(mod.build_parser(), flags, script, set())
    return mod, args


def adam_settings(name: str) -> dict:
    """The critic's Adam settings: their lr 2e-4 and betas (0, 0.9) (ADAM), less what the
    configuration states otherwise (its w1_adam: their sort-out solver keeps Adam's default
    betas, for one)."""
    base = sweep.split_lambda(name)[0]
    own = next(spec.get("w1_adam", {}) for n, _, spec in sweep.configs("w1") if n == base)
    return {**ADAM, **{k: tuple(v) if k == "betas" else v for k, v in own.items()}}


def paper_iters(name: str) -> int:
    pub = next(p for n, _, _, p in constraints() if n == sweep.split_lambda(name)[0])
    return PAPER_ITERS.get(pub, OTHER_PAPER_ITERS)


def width(dim: int) -> int:
    return max(2 * dim, 128)  # their protocol's hidden width


# ------------------------------------------------------------------------------------- the pairs
def load_pair(dim: int, funnels: int) -> dict:
    """The pair in `dim` dimensions with this many funnels: centres (K, D) and biases (K,) in
    float64, half the cube's side, the degree, and the paper's metrics per solver."""
    with open(DATA) as fh:
        p = json.load(fh)["pairs"][f"dim{dim}_funnels{funnels}"]
    return {"dim": dim, "funnels": funnels, "half": float(p["half_side"]), "deg": int(p["deg"]),
            "centers": torch.tensor(p["centers"], dtype=torch.float64),
            "bias": torch.tensor(p["bias"], dtype=torch.float64),
            "published": p["published_metrics"]}


def sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """‖x_i − c_k‖², (N, K), by matrix products in float64: the ~16 digits of float64 leave
    ~8 after the cancellation of ‖x‖² + ‖c‖² − 2x·c, far more than float32's own 7."""
    x, c = x.double(), c.double()
    return ((x * x).sum(1, keepdim=True) - 2 * x @ c.T + (c * c).sum(1)).clamp(min=0)


def funnel(x: torch.Tensor, pair: dict):
    """(u(x), the index of the funnel that attains it), computed in float64."""
    return (sq_dist(x, pair["centers"]).sqrt() + pair["bias"]).min(dim=1)


def potential(x: torch.Tensor, pair: dict) -> torch.Tensor:
    """u(x) = min_k ‖x − c_k‖ + b_k, shape (N,), float64, its funnel's distance taken from the
    difference (exact, and differentiable but at the centre)."""
    x = x.double()
    k = funnel(x, pair)[1]
    return (x - pair["centers"][k]).norm(dim=1) + pair["bias"][k]


def potential_grad(x: torch.Tensor, pair: dict) -> torch.Tensor:
    """∇u(x) = (x − c_k)/‖x − c_k‖ for x's funnel k, from the difference itself (exact next to
    a centre, where P gathers); NaN where x is a funnel centre (undefined there)."""
    x = x.double()
    d = x - pair["centers"][funnel(x, pair)[1]]
    n = d.norm(dim=1, keepdim=True)
    return torch.where(n > 0, d / n.clamp(min=1e-300), torch.full_like(d, math.nan))


def sample_q(n: int, pair: dict, generator: torch.Generator) -> torch.Tensor:
    """Q: uniform on the cube [−half, half]^D, float64."""
    return (torch.rand(n, pair["dim"], generator=generator, dtype=torch.float64) * 2 - 1) \
        * pair["half"]


def sample_plan(n: int, pair: dict, generator: torch.Generator):
    """(x, y) in float32: y ~ Q, x ~ P, x = y moved along its funnel's ray toward the centre
    (their MotionSampler and get_borders, computed in float64): the optimal plan for the
    distance cost. From y along v = (y − c_k)/‖y − c_k‖, the ray ends where the cube ends or
    where a funnel j takes over, ‖y + rv − c_j‖ + b_j = u(y) + r, solved for r:
        r_j = (‖y − c_j‖² − (u(y) − b_j)²) / (2((u(y) − b_j) − (y − c_j)·v))
    taken where r_j > 0 and u(y) − b_j + r_j > 0; every (N, K) quantity is a matrix product."""
    y = sample_q(n, pair, generator)
    c, b, half = pair["centers"], pair["bias"], pair["half"]
    d2 = sq_dist(y, c)                                            # ‖y − c_j‖²
    u_y, k = (d2.sqrt() + b).min(dim=1)
    low = c[k]
    base = (y - low).norm(dim=1)
    v = (y - low) / base.clamp(min=1e-300)[:, None]
    r_box = ((torch.sign(v) * half - y) / v).abs().nan_to_num(nan=math.inf).min(dim=1).values
    db = u_y[:, None] - b                                         # u(y) − b_j
    dav = (y * v).sum(1, keepdim=True) - v @ c.T                  # (y − c_j)·v
    r = 0.5 * (d2 - db.pow(2)) / (db - dav)
    own = torch.arange(len(c))[None, :] == k[:, None]             # r_k is 0/0: not a border
    r = torch.where((r > 0) & (r > -db) & ~own, r, torch.full_like(r, math.inf)).min(dim=1).values
    up = y + v * torch.minimum(r_box, r)[:, None]
    full = (up - low).norm(dim=1)
    t = torch.where((full > 0) & (base > 0), base / full.clamp(min=1e-300), torch.zeros_like(base))
    x = low + t.pow(pair["deg"])[:, None] * (up - low)
    return x.float(), y.float()


def true_w1(pair: dict, n: int = 100_000, seed: int = 0) -> float:
    """W1(P, Q) = E‖x − y‖ over the plan, by Monte Carlo (in chunks of 8192)."""
    g, total, done = torch.Generator().manual_seed(seed), 0.0, 0
    while done < n:
        x, y = sample_plan(min(8192, n - done), pair, g)
        total += (x.double() - y.double()).norm(dim=1).sum().item()
        done += len(x)
    return total / n


# ------------------------------------------------------------------------------------ the metrics
def metrics(critic, pair: dict, n: int = 4096, seed: int = 1, device="cpu",
            quotient: bool = True) -> dict:
    """cos and L2 between ∇f and the optimal −∇u at n samples of P (leaving out the points on a
    funnel centre, whose share is `at_centre`), the mean and largest ‖∇f‖ there, the critic's
    estimate E_P f − E_Q f on independent samples beside the true W1 of the plan's n pairs, and
    (quotient: a few seconds at 128-D; NaN without) the largest Lipschitz quotient. The same
    samples every time for a seed: a training's curve is measured on them."""
    g = torch.Generator().manual_seed(seed)
    x, y = sample_plan(n, pair, g)
    q = sample_q(n, pair, g).float()
    want = -potential_grad(x, pair)  # at the points the critic sees (float32)
    ok = torch.isfinite(want).all(dim=1)
    f_x, gn = (v.cpu().double() for v in critic_and_grad(critic, x.to(device)))
    cos = (gn * want).sum(1) / (gn.norm(dim=1) * want.norm(dim=1) + 1e-15)
    with torch.no_grad():
        f_q = critic(q.to(device)).reshape(-1).cpu().double()
    norm = gn.norm(dim=1)
    return {"cos": cos[ok].mean().item(), "l2": (gn - want)[ok].pow(2).sum(1).mean().item(),
            "estimate": (f_x.mean() - f_q.mean()).item(),
            "true_w1": (x.double() - y.double()).norm(dim=1).mean().item(),
            "at_centre": 1 - ok.double().mean().item(),
            "grad_norm_mean": norm.mean().item(), "grad_norm_max": norm.max().item(),
            "quotient_max": largest_quotient(critic, pair, seed=seed, device=device)
            if quotient else math.nan}


def largest_quotient(critic, pair: dict, n: int = 100_000, seed: int = 1, device="cpu") -> float:
    """The largest |f(x) − f(y)|/‖x − y‖ over n random pairs, the critic run in float64 (a
    copy of it, so that float32's rounding does not make the quotient of a close pair): half of
    them x ~ P and y ~ Q, half x ~ P and y = x + r·e, e a random unit vector and r
    log-uniform in [1e-3, 1] (close pairs, where the quotient nears |∇f·e|: in D dimensions a
    random e sees about ‖∇f‖/√D, so the largest ‖∇f‖ at samples of P is the closer local
    check). Above 1, the critic is not 1-Lipschitz there; a lower bound of its constant, not
    a certificate."""
    g = torch.Generator().manual_seed(seed + 7)
    x = torch.cat([sample_plan(n // 2, pair, g)[0] for _ in range(2)]).double()
    e = torch.nn.functional.normalize(torch.randn(x.shape, generator=g, dtype=torch.float64), dim=1)
    r = 10 ** (3 * torch.rand(n // 2, 1, generator=g, dtype=torch.float64) - 3)
    y = torch.cat([sample_q(n // 2, pair, g), x[n // 2:] + r * e[n // 2:]])
    twin = copy.deepcopy(critic).double().eval() if isinstance(critic, nn.Module) else critic
    with torch.no_grad():
        fx, fy = (torch.cat([twin(c.to(device)).reshape(-1).cpu() for c in v.split(8192)])
                  for v in (x, y))
    return ((fx - fy).abs() / (x - y).norm(dim=1)).max().item()


def critic_and_grad(critic, x):
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = critic(x).reshape(-1)
        (gx,) = torch.autograd.grad(f.sum(), x, allow_unused=True) if f.requires_grad \
            else (None,)
    return f.detach(), (torch.zeros_like(x) if gx is None else gx).detach()  # blind to x: 0


# ----------------------------------------------------------------------------- training one critic
def make_critic(name: str, dim: int) -> nn.Module:
    """The benchmark's critic for the constraint `name` in `dim` dimensions: widths
    [D, h, h, 1], built by its script's critic_net."""
    mod, args = method(name)
    return mod.critic_net([dim, width(dim), width(dim), 1], args)


def eval_points(iters: int, asked=None) -> list:
    """The iterations a training is measured at: those asked (--eval-at) below iters, else
    100, 200, 500, 1000, 2000, 5000, … (log-spaced: a curve over decades), and iters itself."""
    below = asked if asked else [m * 10 ** e for e in range(2, 10) for m in (1, 2, 5)]
    return sorted({i for i in below if 0 < i < iters} | {iters})


def train(name: str, dim: int, funnels: int, seed: int, iters: int, batch: int = BATCH,
          device: str = "cpu", threads: int = 1, at=None, checkpoint: str | None = None) -> dict:
    """Train one critic on one pair from one seed; return its metrics at its last iteration,
    with `curve`: the metrics at every one of eval_points(iters, at), and for a 2-D pair the
    critic's weights (the figure draws them). The batches are drawn on the CPU (one generator,
    whatever the device) and moved to `device`. Measuring draws from a generator of its own, so
    a curve's point at iteration i is what a training of i iterations ends with.

    checkpoint: a file where the training's state is saved at each point of its curve; a
    training that finds one of itself there goes on from it (bit for bit on the CPU), so an
    interrupted sweep loses at most the iterations since the last point."""
    torch.set_num_threads(threads)
    device = harness.pick_device(device)
    mod, args = method(name)
    pair = load_pair(dim, funnels)
    points = eval_points(iters, at)
    me = {"config": name, "dim": dim, "funnels": funnels, "seed": seed, "iters": iters}
    D, opt, g = start(name, dim, seed, device)
    state = resume_from(checkpoint, me, D, opt, g, device)
    if state is None:  # none of this training, or a file it could not use: from the start
        D, opt, g = start(name, dim, seed, device)
        state = {"done": 0, "seconds": 0.0, "curve": []}
    done, seconds, curve = state["done"], state["seconds"], state["curve"]
    if not done:
        D.eval()  # measure without moving anything (spectral norm's u)
        curve = [{"at": 0, **metrics(D, pair, seed=seed + 1, device=device, quotient=False)}]
        D.train()
    for point in (p for p in points if p > done):
        t = time.time()
        for _ in range(point - done):
            p, _ = sample_plan(batch, pair, g)
            q = sample_q(batch, pair, g).float()
            mod.critic_step(D, opt, p.to(device), q.to(device), args)  # P is "real", Q "fake"
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds, done = seconds + time.time() - t, point
        D.eval()
        curve.append({"at": point, "seconds": seconds,  # the quotient from QUOTIENT_FROM on
                      **metrics(D, pair, seed=seed + 1, device=device,
                                quotient=point >= min(QUOTIENT_FROM, iters))})
        D.train()
        if checkpoint and point < iters:
            save_training(checkpoint, me, D, opt, g, device, done, seconds, curve)
    out = {**me, "batch": batch, "seconds": seconds, "ms_per_iter": 1000 * seconds / iters,
           **curve[-1], "cos_at_start": curve[0]["cos"], "device": harness.device_name(device),
           "threads": threads}
    out["curve"] = [{**out, **c} for c in curve[1:]]
    for row in [out, *out["curve"]]:
        row["diverged"] = not all(math.isfinite(row[k]) for k in ("cos", "l2", "estimate"))
    if dim == 2:
        out["state"] = {k: v.detach().cpu().clone() for k, v in D.state_dict().items()}
    return out


def save_training(path, me, D, opt, g, device, done, seconds, curve) -> None:
    """A training's state at iteration `done`, written whole or not at all."""
    torch.save({**me, "done": done, "seconds": seconds, "curve": curve, "D": D.state_dict(),
                "opt": opt.state_dict(), "g": g.get_state(), "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
               path + ".tmp")
    os.replace(path + ".tmp", path)


def start(name: str, dim: int, seed: int, device):
    """A new training's critic, optimiser and batch generator: Adam 2e-4, betas (0, 0.9), or
    the configuration's own (adam_settings)."""
    torch.manual_seed(seed)
    D = make_critic(name, dim).to(device)
    opt = torch.optim.Adam(D.parameters(), **adam_settings(name))
    return D, opt, torch.Generator().manual_seed(10_000 + seed)


def resume_from(path, me, D, opt, g, device):
    """Load the training `me` (config, pair, seed, iterations) from its checkpoint at path into
    D, opt, g and the random streams: {done, seconds, curve}, or None where there is none of it
    (another length, a damaged file: the training starts over, and overwrites the file)."""
    if not path or not os.path.exists(path):
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if {k: ck[k] for k in me} != me or not 0 < ck["done"] < me["iters"]:
            return None
        D.load_state_dict(ck["D"])
        opt.load_state_dict(ck["opt"])
        g.set_state(ck["g"])
        torch.set_rng_state(ck["rng_cpu"])
        if ck["rng_cuda"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state(ck["rng_cuda"], device)
        return {"done": int(ck["done"]), "seconds": float(ck["seconds"]),
                "curve": [dict(c) for c in ck["curve"]]}
    except Exception:  # noqa: BLE001 - an unreadable checkpoint only costs its iterations
        return None


# --------------------------------------------------------------------------- what runs.csv holds
RUN_FIELDS = ["config", "dim", "funnels", "seed", "iters", "at", "batch", "seconds", "ms_per_iter",
              "cos", "l2", "estimate", "true_w1", "at_centre", "grad_norm_mean", "grad_norm_max",
              "quotient_max", "cos_at_start", "diverged", "device", "threads"]
NUMBERS = {"dim": int, "funnels": int, "seed": int, "iters": int, "at": int, "batch": int,
           "threads": int, "seconds": float, "ms_per_iter": float, "cos": float, "l2": float,
           "estimate": float, "true_w1": float, "at_centre": float, "grad_norm_mean": float,
           "grad_norm_max": float, "quotient_max": float, "cos_at_start": float}
# Columns a runs.csv of an earlier version lacks, and what they were: a row per training, at
# its last iteration, with no gradient norms and no quotient.
ADDED = {"at": None, "grad_norm_mean": "nan", "grad_norm_max": "nan", "quotient_max": "nan"}


def key(config, dim, funnels, seed) -> str:
    return f"{config}-d{dim}-w{funnels}-s{seed}"


def read_runs(path: str) -> dict:
    """The trainings a runs.csv holds, {key: the row of its last iteration, with `curve`: its
    rows at every iteration measured}, or ValueError naming the file and what is wrong with it
    (a damaged store is refused, not half read)."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
        lacks = set(RUN_FIELDS) - set(ADDED) - set(reader.fieldnames or [])
        if lacks and os.path.getsize(path):  # an empty file is an empty store; nothing else
            raise ValueError(f"it lacks the columns {', '.join(sorted(lacks))}")
        curves = {}
        for r in rows:
            if None in r or None in r.values():
                raise ValueError(f"a row of {len([v for v in r.values() if v is not None])} "
                                 f"cells under a header of {len(reader.fieldnames)}")
            r = {**{k: v or r["iters"] for k, v in ADDED.items()}, **{k: v for k, v in r.items()
                                                                         if v is not None}}
            r = {k: NUMBERS[k](r[k]) if k in NUMBERS else r[k] for k in RUN_FIELDS}
            r["diverged"] = r["diverged"] == "True"
            if r["dim"] not in DIMS or r["funnels"] not in FUNNELS:
                raise ValueError(f"a row of a pair the benchmark has not: D = {r['dim']}, "
                                 f"{r['funnels']} funnels")
            curves.setdefault(key(r["config"], r["dim"], r["funnels"], r["seed"]), []).append(r)
        out = {}
        for k, curve in curves.items():
            curve.sort(key=lambda r: r["at"])
            last = curve[-1]
            if last["at"] != last["iters"] or len({(r["iters"], r["at"]) for r in curve}) \
                    != len(curve) or len({r["iters"] for r in curve}) != 1:
                raise ValueError(f"the rows of {k} are not one training's")
            out[k] = {**last, "curve": curve}
        return out
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{path} is not a runs.csv this benchmark can read "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__}): move it "
                         f"away or choose another --out") from None


def write_runs(path: str, runs: dict) -> None:
    """Every row of every training: its curve (a row per iteration measured, the last one the
    training's own)."""
    rows = [c for r in runs.values() for c in r.get("curve") or [r]]
    with open(path + ".tmp", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=RUN_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(sorted(rows, key=lambda r: (
            r["dim"], r["funnels"], r["config"], r["seed"], r["at"])))
    os.replace(path + ".tmp", path)


# ------------------------------------------------------------------------------- tables, figures
def spread(rs, key_: str, name: str, scale=None) -> dict:
    """{name, name_min, name_max}: median and range of r[key_] (over scale(r), if given) over
    the runs rs that did not diverge."""
    v = [r[key_] / (scale(r) if scale else 1) for r in rs if math.isfinite(r[key_])]
    return dict(zip((name, name + "_min", name + "_max"),
                    (statistics.median(v), min(v), max(v)) if v else (None,) * 3))


def table(runs, pairs) -> list:
    """A row per pair and constraint (in the scripts' order) of the trainings in runs."""
    order = {n: i for i, (n, *_) in enumerate(constraints())}
    groups = {}
    for r in runs:
        groups.setdefault((r["dim"], r["funnels"], r["config"]), []).append(r)
    out = []
    for (dim, funnels, name), rs in sorted(groups.items(), key=lambda kv: (
            kv[0][0], kv[0][1], order.get(kv[0][2], len(order)))):
        pub_name = next((p for n, _, _, p in constraints() if n == sweep.split_lambda(name)[0]),
                        None)
        published = pairs[(dim, funnels)]["published"]
        pub = published.get(pub_name) if pub_name else None
        true = pairs[(dim, funnels)]["true_w1"]
        out.append({"dim": dim, "funnels": funnels, "config": name, "seeds": len(rs),
                    "iters": "/".join(str(i) for i in sorted({r["iters"] for r in rs})),
                    **spread(rs, "cos", "cos"), **spread(rs, "l2", "l2"),
                    **spread(rs, "estimate", "est_over_w1", lambda r: true),
                    **spread(rs, "quotient_max", "quotient"),
                    "diverged": sum(r["diverged"] for r in rs),
                    "published_solver": pub_name or "",
                    "published_cos": pub["cos"] if pub else None,
                    "published_l2": pub["l2"] if pub else None,
                    "published_est_over_w1": pub["cost"] / published["true"]["cost"]
                    if pub else None,
                    "true_w1": true, "published_true_w1": published["true"]["cost"],
                    "at_centre": statistics.median(r["at_centre"] for r in rs),
                    "seconds": statistics.median(r["seconds"] for r in rs),
                    "ms_per_iter": statistics.median(r["ms_per_iter"] for r in rs)})
    return out


def write(runs, pairs, a, command, minutes, ran, planned, missing, failed):
    """results.csv and results.md from every training runs.csv holds; the tables are
    report.py's renderers."""
    t = table(runs, pairs)
    report.write_csv(os.path.join(a.out, "results.csv"), t)
    import platform
    where = (f"a Ray cluster, {a.cpus_per_run:g} CPU(s) and {a.gpus_per_run:g} GPU(s) per "
             f"training, {max(1, int(a.cpus_per_run))} thread(s) each" if a.ray else
             f"this machine ({platform.machine()}, {os.cpu_count()} cores), one thread per "
             f"training, {a.jobs} at a time")
    note = (f"This call ran {ran} training(s) on {where}, --device {a.device}, torch "
            f"{torch.__version__}, in {minutes:.0f} min; the tables hold {len(runs)} "
            f"(those run before are read back from runs.csv).")
    if missing:
        note += (f" **Not done: {len(missing)} of the {planned} planned** "
                 f"({'; '.join(missing[:6])}{' …' if len(missing) > 6 else ''}): the same "
                 f"command runs them.")
    if failed:
        note += f" Failed, and not in the tables: {sweep.said(failed)}."
    lines = [f"Command: `{command.strip()}`", "", note,
             "", "Medians [min, max] over the seeds. cos: mean cos(∇f, −∇u) at samples of P (1: "
             "the optimal critic's gradient); L2: mean ‖∇f + ∇u‖² there (0 is optimal); est/W1: "
             "the critic's E_P f − E_Q f over the true W1 (1 is exact). 'published': the "
             "paper's solver of that family under their protocol (one seed; 60,000 iterations "
             "for GP/LP, 25,000 sort-out and CoWGAN, 10,000 SN, 5,000 clipping, which clips the "
             "weights but not the biases) and their metric, which differentiates u through "
             "torch.cdist's ‖x‖² + ‖c‖² − 2x·c form, imprecise next to a funnel centre where P "
             "gathers; here ∇u is exact and the samples exactly on a centre (share in 'on a "
             "centre') are left out. max quotient (where measured): the largest |f(x) − f(y)|/"
             "‖x − y‖ over 10⁵ random pairs, far and close; above 1 the critic is not "
             "1-Lipschitz there. ms/it: one critic update, median over the seeds.", "",
             *report.w1_pairs(report.cells(t))]
    with open(os.path.join(a.out, "results.md"), "w") as fh:
        fh.write("\n".join(lines))
    return t


REFERENCE = sweep.reference()  # drawn in every panel of the small multiples: WGAN-GP
METRICS = (("cos", "cos(∇f, −∇u)"), ("est_over_w1", "estimate / true W1"))


def small_multiples(series, published, path: str, title: str, xlabel: str, xticks=None,
                    notes=None) -> str:
    """A panel per constraint and metric (cos, then estimate / true W1: two blocks of panels),
    each holding the constraint's lines (median, band: the range over the seeds), WGAN-GP's in
    grey and the optimal critic's 1 in black, and its family's published value as a marker.
    series[metric][config]: {line label: [(x, median, min, max), ...]}; published[metric]
    [config]: [(x, value), ...]. The estimate's axis is linear within ±1 and logarithmic beyond,
    so that a 17-fold overestimate and an exact one are both readable. notes[config], where
    given, goes into the panel's title beside the name (e.g. how many seeds it holds)."""
    notes = notes or {}
    names = [n for n, *_ in constraints()] + sorted(
        {n for m in series.values() for n in m} - {n for n, *_ in constraints()})
    names = [n for n in names if any(series[m].get(n) for m, _ in METRICS)]
    if not names:
        raise ValueError("nothing to draw")
    ncols = min(4, len(names))
    nrows = -(-len(names) // ncols)
    width = max(3.2 * ncols, 6.4)  # one or two panels: still room for the title and legend
    fig = Figure(figsize=(width, 2.5 * 2 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(2 * nrows, ncols, squeeze=False)
    styles = ["-", "--", ":", "-."]
    xs_all = [p[0] for m in series.values() for c in m.values() for line in c.values()
              for p in line] + [p[0] for m in published.values() for c in m.values() for p in c]
    xlim = (min(xs_all) / 1.4, max(xs_all) * 1.4)  # one x range in every panel
    from matplotlib.ticker import NullFormatter
    for block, (metric, label) in enumerate(METRICS):
        values = [v for m in series[metric].values() for line in m.values() for p in line
                  for v in p[1:] if v is not None and math.isfinite(v)]
        for i in range(nrows * ncols):
            ax = axes[block * nrows + i // ncols, i % ncols]
            if i >= len(names):
                ax.axis("off")
                continue
            name = names[i]
            for j, (line, pts) in enumerate(sorted((series[metric].get(REFERENCE) or {}).items())):
                if name != REFERENCE and pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], styles[j % 4], color="0.6",
                            lw=1.1, label=f"WGAN-GP, {line}")
            for j, (line, pts) in enumerate(sorted((series[metric].get(name) or {}).items())):
                pts = [p for p in pts if p[1] is not None]
                if not pts:
                    continue
                xs = [p[0] for p in pts]
                ax.plot(xs, [p[1] for p in pts], styles[j % 4], marker="o", ms=2.5, lw=1.5,
                        color="#1f77b4", label=f"the panel's constraint, {line}")
                ax.fill_between(xs, [p[2] for p in pts], [p[3] for p in pts], color="#1f77b4",
                                alpha=0.18, lw=0)
            pub = published.get(metric, {}).get(name) or []
            if pub:
                ax.plot(*zip(*pub), "*", color="#d62728", ms=8,
                        label="the published solver of its family (their protocol)")
            if not any(p[1] is not None for line in (series[metric].get(name) or {}).values()
                       for p in line):
                ax.text(0.5, 0.5, "diverged", transform=ax.transAxes, ha="center",
                        color="#b2182b")
            ax.axhline(1.0, color="k", lw=0.7)
            ax.set_xscale("log", base=2 if xticks else 10)
            ax.set_xlim(*xlim)
            if xticks:
                ax.set_xticks(xticks, [str(x) for x in xticks])
                ax.minorticks_off()
            else:
                ax.xaxis.set_minor_formatter(NullFormatter())
            if metric == "est_over_w1":
                ax.axhline(0.0, color="0.5", lw=0.5)
                ax.set_yscale("symlog", linthresh=1.0)
                top = max((abs(v) for v in values), default=1.0)
                ticks = [t for t in (-1, -0.5, 0, 0.5, 1, 2, 5, 10, 20, 50) if abs(t) <= 2 * top]
                ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
            else:
                ax.set_ylim(min(-0.1, min(values, default=0) - 0.05), 1.05)
            note = f" ({notes[name]})" if name in notes else ""
            ax.set_title(f"{name}{note}: {label}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3, which="both")
            if i // ncols == nrows - 1 or i + ncols >= len(names):
                ax.set_xlabel(xlabel, fontsize=8)
    handles, labels = [], []
    for ax in axes.ravel():
        h, lab = ax.get_legend_handles_labels()
        for hh, ll in zip(h, lab):
            if ll not in labels:
                handles.append(hh)
                labels.append(ll)
    fig.legend(handles, labels, loc="outside lower center",
               ncols=min(6, len(labels)) if ncols > 2 else 1, fontsize=8)
    fig.suptitle(textwrap.fill(title + " (black: the optimal critic's 1; grey: WGAN-GP; band: "
                               "the range over the seeds)", int(width * 14)), fontsize=10)
    return common._save(fig, path)


def by_dim_figure(rows, path: str) -> str:
    """cos(∇f, −∇u) and estimate / true W1 against the dimension, a panel per constraint (small
    multiples: sixteen crossing lines on one axes cannot be read), a line per funnel count, the
    published row of its family as markers; a constraint whose trainings all diverged is said
    in its panel."""
    series = {m: {} for m, _ in METRICS}
    published = {m: {} for m, _ in METRICS}
    for r in sorted(rows, key=lambda r: (r["config"], r["funnels"], r["dim"])):
        for m, _ in METRICS:
            series[m].setdefault(r["config"], {}).setdefault(f"{r['funnels']} funnels", []) \
                .append((r["dim"], r[m], r[m + "_min"], r[m + "_max"]))
            if r["published_" + m] is not None:
                published[m].setdefault(r["config"], []).append((r["dim"], r["published_" + m]))
    dims = sorted({r["dim"] for r in rows})
    return small_multiples(series, published, path, "The W1 benchmark by dimension: median "
                           "over the seeds", "dimension D", dims)


def lambda_figures(rows, out: str) -> list:
    """cos and estimate / true W1 against λ (the --lambdas grid): a panel per pair, a line per
    penalty, median and range over the seeds."""
    paths = []
    for metric, label, name in (("cos", "cos(∇f, −∇u)", "cos"),
                                ("est_over_w1", "estimate / true W1", "estimate")):
        panels = {}
        for r in sorted(rows, key=lambda r: (r["dim"], r["funnels"])):
            base, lam = sweep.split_lambda(r["config"])
            if lam is not None:
                panels.setdefault(f"D = {r['dim']}, {r['funnels']} funnels", {}).setdefault(
                    sweep.penalty_label(base), []).append(
                    (lam, r[metric], r[metric + "_min"], r[metric + "_max"]))
        paths.append(common.plot_against_lambda(
            {}, os.path.join(out, f"lambda-{name}.png"), f"The W1 benchmark: {label} against "
            f"the penalty weight λ", label, threshold=1.0, panels=panels))
    return paths


def curves_figure(store: dict, pair: dict, path: str) -> str:
    """One pair's learning curves: cos and estimate / true W1 against the iterations (log x),
    a panel per constraint, median and range over the seeds at every point measured, the
    published row of its family as a marker at its protocol's length."""
    groups = {}
    for r in store.values():
        if (r["dim"], r["funnels"]) == (pair["dim"], pair["funnels"]):
            for c in r.get("curve") or [r]:
                groups.setdefault(r["config"], {}).setdefault(c["at"], []).append(c)
    series = {m: {} for m, _ in METRICS}
    published = {m: {} for m, _ in METRICS}
    notes = {}
    for name, points in groups.items():
        seeds = max(len(v) for v in points.values())
        notes[name] = f"{seeds} seed{'s' if seeds > 1 else ''}"
        for m, _ in METRICS:
            line = []
            for at, cs in sorted(points.items()):
                v = [c["cos"] if m == "cos" else c["estimate"] / pair["true_w1"] for c in cs
                     if math.isfinite(c["cos"] if m == "cos" else c["estimate"])]
                line.append((at, *((statistics.median(v), min(v), max(v)) if v else
                                   (None,) * 3)))
            series[m][name] = {"median over its seeds": line}
        pub_name = next((p for n, _, _, p in constraints() if n == sweep.split_lambda(name)[0]),
                        None)
        pub = pair["published"].get(pub_name) if pub_name else None
        if pub:
            x = PAPER_ITERS.get(pub_name, OTHER_PAPER_ITERS)
            published["cos"][name] = [(x, pub["cos"])]
            published["est_over_w1"][name] = [(x, pub["cost"] / pair["published"]["true"]
                                               ["cost"])]
    return small_multiples(series, published, path, f"Learning curves, D = {pair['dim']}, "
                           f"{pair['funnels']} funnels", "critic iterations", notes=notes)


def pair_figure(rows, pair, path):
    """The true critic −u with its gradient field, then each constraint's critic (first seed)
    over the map of cos(∇f, −∇u): red where the critic's gradient points the wrong way. 2-D."""
    from matplotlib.colors import TwoSlopeNorm
    h, n = pair["half"], 96
    xs = torch.linspace(-h, h, n, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), dim=-1).reshape(-1, 2)
    xs = xs.numpy()
    want = -potential_grad(grid, pair)
    firsts = {}
    for r in rows:
        if r["funnels"] == pair["funnels"] and r["dim"] == 2 and "state" in r:
            firsts.setdefault(r["config"], r)
    panels = [("optimal critic −u, ∇(−u)", None)] + [
        (f"{name}\ncos {firsts[name]['cos']:.2f}, est/W1 "
         f"{firsts[name]['estimate'] / pair['true_w1']:.2f}", firsts[name])
        for name, *_ in constraints() if name in firsts]
    fig, axes, _ = common._panel_grid(len(panels), 5, 3.2, 3.3)
    for ax, (title, r) in zip(axes, panels):
        if r is None:
            f = -potential(grid, pair)
            ax.contourf(xs, xs, f.reshape(n, n).numpy(), levels=20, cmap="PuBu")
            s = slice(None, None, 6)
            g = want.reshape(n, n, 2).numpy()
            ax.quiver(xs[s], xs[s], g[s, s, 0], g[s, s, 1], color="k", scale=30, width=0.004)
        else:
            D = make_critic(r["config"], 2)
            D.load_state_dict(r["state"])
            D.eval()
            f, gr = critic_and_grad(D, grid.float())
            gr = gr.double()
            cos = (gr * want).sum(1) / (gr.norm(dim=1) * want.norm(dim=1) + 1e-15)
            ax.imshow(cos.reshape(n, n).nan_to_num(0).numpy(), origin="lower",
                      extent=(-h, h, -h, h),
                      cmap="RdBu", norm=TwoSlopeNorm(vmin=-1, vcenter=0, vmax=1))
            ax.contour(xs, xs, f.reshape(n, n).numpy(), levels=15, colors="k", linewidths=0.4)
        c = pair["centers"].numpy()
        ax.scatter(c[:, 0], c[:, 1], s=8, c="#f28e2b", zorder=3)
        common.square_panel(ax, h, title, fontsize=8)
    fig.suptitle(f"{pair['funnels']} funnels: the optimal critic, then each constraint's level "
                 f"lines over cos(∇f, −∇u) (blue 1, red −1), funnel centres orange", fontsize=10)
    return common._save(fig, path)


# ------------------------------------------------------------------------------------------ main
def parse_args(argv=None):
    p = harness.ArgumentParser(prog="w1_benchmark.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--dims", type=int, nargs="+", choices=DIMS, default=[2, 8, 32, 128],
                   help="the pairs' dimensions")
    p.add_argument("--funnels", type=int, nargs="+", choices=FUNNELS, default=[4, 64],
                   help="the pairs' funnel counts")
    p.add_argument("--seeds", type=harness.number(int, 0, 2**31, hi_ok=False), nargs="+",
                   default=[0, 1, 2], help="seeds of each training")
    p.add_argument("--iters", type=harness.number(int, 1), default=None,
                   help=f"critic iterations per training (default {SHORT_ITERS}: the default "
                        f"command's budget on 2 CPU cores; with --protocol paper, "
                        "theirs for each solver family)")
    p.add_argument("--protocol", choices=("short", "paper"), default="short",
                   help="short: --iters for every constraint; paper: their iterations (5,000 "
                        "clipping, 10,000 SN, 25,000 sort-out and CoWGAN, 60,000 the rest)")
    p.add_argument("--eval-at", type=harness.number(int, 1), nargs="+", default=None,
                   help="iterations at which each training is also measured, for its learning "
                        "curve (default: 100, 200, 500, 1000, 2000, 5000, ... below --iters); "
                        "its last iteration always is")
    p.add_argument("--lambdas", type=harness.number(float, 0), nargs="+", default=None,
                   help="the λ grid: train each selected penalty at each of these weights "
                        "instead of its own (<config>@λ<value>); adds lambda-cos.png and "
                        "lambda-estimate.png")
    p.add_argument("--all-configs", action="store_true",
                   help="every configuration the scripts mark for this benchmark, not only the "
                        "main one of each constraint")
    p.add_argument("--only", nargs="+", default=None,
                   help="keep constraints whose name contains one of these strings")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N, for every training")
    p.add_argument("--out", default="results/w1_benchmark", help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the trainings --out holds with other iterations for the same "
                        "constraint, pair and seed (default: refuse)")
    sweep.add_where_arguments(p, jobs=2, what="trainings")
    a = p.parse_args(argv)
    sweep.check_where(p, a, argv)
    if a.protocol == "paper" and a.iters is not None:
        p.error("--iters with --protocol paper: the paper's protocol sets the iterations")
    names = [c[0] for c in constraints(a.all_configs, a.lambdas)]
    if a.only and not [n for n in names if any(s in n for s in a.only)]:
        p.error(f"--only {' '.join(a.only)} matches no constraint; the names: {', '.join(names)}")
    for k in ("seeds", "dims", "funnels"):  # a value given twice would train twice
        setattr(a, k, list(dict.fromkeys(getattr(a, k))))
    try:
        if not a.ray:  # on Ray the workers have the devices
            harness.pick_device(a.device)
    except ValueError as e:
        p.error(f"--device {a.device!r}: {e}")
    try:
        harness.writable_folder(a.out)
    except ValueError as e:
        p.error(str(e))
    return a


def plan(a) -> list:
    """(key, (name, dim, funnels, seed, iters)) of every training this call asks for."""
    names = [c[0] for c in constraints(a.all_configs, a.lambdas)
             if not a.only or any(s in c[0] for s in a.only)]
    return [(key(n, d, w, s), (n, d, w, s, paper_iters(n) if a.protocol == "paper" else
                               a.iters or SHORT_ITERS))
            for d in a.dims for w in a.funnels for n in names for s in a.seeds]


def main(argv=None) -> int:
    harness.robust_console()  # λ on any console; | head never stops a sweep
    a = parse_args(argv)
    die = harness.ArgumentParser(prog="w1_benchmark.py").error
    todo = plan(a)
    command = "python benchmarks/w1_benchmark.py " + " ".join(sys.argv[1:] if argv is None
                                                                else argv)
    try:
        if not ours(os.path.join(a.out, "results.md")):
            raise ValueError(f"--out {a.out} holds a results.md that w1_benchmark.py did not "
                             f"write: choose another --out")
        lock = harness.hold_lock(os.path.join(a.out, ".sweep.lock"),
                                f"another sweep is writing into {a.out} right now")
    except ValueError as e:
        die(str(e))
    try:
        store = read_runs(os.path.join(a.out, "runs.csv"))
        other = [k for k, (n, d, w, s, it) in todo if k in store and store[k]["iters"] != it]
        if other and not a.overwrite:
            raise ValueError(f"{a.out} holds {len(other)} of these trainings with other "
                             f"iterations (first: {other[0]}, {store[other[0]]['iters']} "
                             f"iterations; this call asks {dict(todo)[other[0]][4]}): choose "
                             f"another --out, or pass --overwrite to replace them")
        cluster = sweep.join_cluster(a, "w1")
    except ValueError as e:
        lock.close()
        die(str(e))
    run = [(k, args) for k, args in todo if k not in store or store[k]["iters"] != args[4]]
    pairs = {(d, w): {**load_pair(d, w), "true_w1": true_w1(load_pair(d, w))}
             for d, w in sorted({(r["dim"], r["funnels"]) for r in store.values()}
                                | {(d, w) for d in a.dims for w in a.funnels})}
    print(f"[w1] {len(todo)} trainings planned, {len(todo) - len(run)} found done in "
          f"{os.path.join(a.out, 'runs.csv')}, {len(run)} to run "
          + ("on Ray" if cluster else f"{a.jobs} at a time") + f", into {a.out}", flush=True)
    t0, fresh, failed = time.time(), {}, {}
    progress = sweep.Progress("w1", len(todo), len(run), every=60 * a.heartbeat)
    progress.done = len(todo) - len(run)

    def report_one(k, r, error, tries, running):
        if r is not None:
            fresh[k] = r
            store[k] = r
            write_runs(os.path.join(a.out, "runs.csv"), store)  # nothing lost on a crash
            keep_critic(a.out, store, r)
            if os.path.exists(checkpoint_of(a.out, k)):  # kept in runs.csv now
                os.remove(checkpoint_of(a.out, k))
            what = (f"cos {r['cos']:.3f} L2 {r['l2']:.3f} est/W1 "
                    f"{r['estimate'] / pairs[(r['dim'], r['funnels'])]['true_w1']:.2f} in "
                    f"{r['seconds']:.0f} s" + (f", try {tries}" if tries > 1 else ""))
        else:
            what = error if "interrupted" in error else f"failed: {error}"
            if "interrupted" not in error:
                failed[k] = error
        print(progress.line(k, what, r is not None, running,
                            r["seconds"] if r else None if "interrupted" in what else 0.0),
              flush=True)

    if cluster:  # a task's checkpoint would stay on its node: an interrupted one starts over
        import on_ray
        cpus, gpus, retries = cluster
        signum = on_ray.run_all("benchmarks/w1_benchmark.py:train", [
            (k, (*args, BATCH, a.device, max(1, int(cpus)), a.eval_at, None))
            for k, args in run], cpus, gpus, retries, report_one, "w1", progress.quiet)
    else:
        os.makedirs(os.path.join(a.out, "checkpoints"), exist_ok=True)
        signum = sweep.in_processes(train, [
            (k, (*args, BATCH, a.device, 1, a.eval_at, checkpoint_of(a.out, k)))
            for k, args in run], a.jobs, report_one, "w1", progress.quiet)
    missing = [k for k, args in todo if k not in store or store[k]["iters"] != args[4]]
    ended = list(store.values())
    if not ended:
        print("[w1] no training ended: nothing written", flush=True)
        lock.close()
        return 128 + signum if signum else 1
    t = write(ended, pairs, a, command, (time.time() - t0) / 60, len(fresh), len(todo), missing,
              None if signum else failed)
    plain = [r for r in t if sweep.split_lambda(r["config"])[1] is None]
    figures = [by_dim_figure(plain, os.path.join(a.out, "w1-by-dim.png"))] if plain else []
    if len(plain) < len(t):  # the λ grid's own figures instead of a panel per λ
        figures += lambda_figures(t, a.out)
    for (d, w), pair in pairs.items():  # where a training has more than its last point
        if any((r["dim"], r["funnels"]) == (d, w) and len(r.get("curve") or []) > 1
               for r in store.values()):
            figures.append(curves_figure(store, pair, os.path.join(a.out,
                                                                   f"curves-d{d}-w{w}.png")))
    for (d, w), pair in pairs.items():
        if d == 2 and any(r["dim"] == 2 and r["funnels"] == w for r in fresh.values()):
            lost = missing_critics(a.out, {k: r for k, r in store.items() if r["funnels"] == w})
            if lost:  # a figure with fewer panels than the store has: keep the one there
                print(f"[w1] pair-2d-{w}.png is not redrawn: the critics of {len(lost)} "
                      f"training(s) drawn before are not kept (first: {lost[0]})", flush=True)
                continue
            figures.append(pair_figure(kept_critics(a.out, store), pair,
                                       os.path.join(a.out, f"pair-2d-{w}.png")))
    print(f"[w1] done in {harness.fmt_time(time.time() - t0)}: {os.path.join(a.out, 'results.md')}, "
          + ", ".join(os.path.basename(f) for f in figures)
          + (f"; {len(failed)} failed" if failed else "")
          + (f"; interrupted: {len(missing)} of {len(todo)} not done, the same command "
             f"runs them" if signum else ""), flush=True)
    lock.close()
    return 128 + signum if signum else (1 if failed else 0)


def keep_critic(out: str, store: dict, r: dict) -> None:
    """Keep the weights of a 2-D training that its pair's figure draws (the first seed of each
    constraint) in <out>/critics/, beside runs.csv, so that the figure is drawn from the store
    as the tables are; a later call that trains a lower seed replaces it. A cache, not committed:
    a clone without it trains them again (missing_critics)."""
    if "state" not in r:
        return
    first = min(s["seed"] for s in store.values() if (s["config"], s["dim"], s["funnels"]) ==
                (r["config"], r["dim"], r["funnels"]))
    if r["seed"] != first:
        return
    folder = os.path.join(out, "critics")
    os.makedirs(folder, exist_ok=True)
    mine = key(r["config"], r["dim"], r["funnels"], "")
    for f in os.listdir(folder):  # the higher seed kept before
        if f.startswith(mine) and f != key(r["config"], r["dim"], r["funnels"], r["seed"]) + ".pt":
            os.remove(os.path.join(folder, f))
    path = os.path.join(folder, key(r["config"], r["dim"], r["funnels"], r["seed"]) + ".pt")
    torch.save(r["state"], path + ".tmp")
    os.replace(path + ".tmp", path)


def missing_critics(out: str, store: dict) -> list:
    """Train again the 2-D trainings that keep_critic would keep but that have no critic there
    (a store written before critics were kept), and keep them where they agree with the stored
    metrics (cos within 0.02: the same configuration and seed under this code; the panel's
    numbers stay the stored ones). Returns the keys it could not restore. ~10 s each, once."""
    lost = []
    for k, r in sorted(store.items()):
        first = min(s["seed"] for s in store.values()
                    if (s["config"], s["dim"], s["funnels"]) == (r["config"], 2, r["funnels"]))
        path = os.path.join(out, "critics", k + ".pt")
        if r["dim"] != 2 or r["seed"] != first or os.path.exists(path):
            continue
        try:
            again = train(r["config"], 2, r["funnels"], r["seed"], r["iters"], r["batch"])
        except (StopIteration, ValueError):  # a configuration no script declares any more
            again = None
        if again is None or not abs(again["cos"] - r["cos"]) < 0.02:
            lost.append(k)
            continue
        keep_critic(out, store, again)
    return lost


def kept_critics(out: str, store: dict) -> list:
    """The store's 2-D trainings whose weights are kept (keep_critic), as rows with `state`."""
    rows = []
    for k, r in store.items():
        path = os.path.join(out, "critics", k + ".pt")
        if r["dim"] == 2 and os.path.exists(path):
            try:
                rows.append({**r, "state": torch.load(path, map_location="cpu",
                                                      weights_only=True)})
            except Exception:  # noqa: BLE001 - a damaged file: that panel is left out
                pass
    return sorted(rows, key=lambda r: r["seed"])


def checkpoint_of(out: str, k: str) -> str:
    """Where a training of --out keeps its state while it runs (train's checkpoint)."""
    return os.path.join(out, "checkpoints", k + ".pt")


def ours(path: str) -> bool:
    """Whether a results.md at path is absent or one this benchmark wrote."""
    if not os.path.exists(path):
        return True
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.readline().startswith(MARK)


if __name__ == "__main__":
    sys.exit(main())
