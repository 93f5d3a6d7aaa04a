"""Which constraint finds the true critic? Every constraint of the method scripts on the W1
benchmark of Korotin, Kolesov, Burnaev 2022, where the optimal critic is known in closed form.

"Kantorovich Strikes Back! Wasserstein GANs are not Optimal Transport?", NeurIPS 2022 Datasets and
Benchmarks (code and data: justkolesov/Wasserstein1Benchmark, MIT licence; the 2-D pairs are in
benchmarks/data/w1_benchmark_2d.json with their attribution). For a pair with K funnels:

    u(x) = min_k ‖x − c_k‖ + b_k                 a 1-Lipschitz potential ("MinFunnels")
    Q    = uniform on [−2.5, 2.5]²                (this project's "fake")
    P    : y ~ Q, k its funnel, x = c_k + t⁸·(up − c_k), t = ‖y − c_k‖/‖up − c_k‖, up where the ray
           from c_k through y leaves the square or enters another funnel   ("real")
    W1(P, Q) = E‖x − y‖ (the plan moves each point along a ray of u), optimal critic f* = −u

Metrics at samples x of P (their definitions): cos = mean cos(∇f(x), −∇u(x)); L2 = mean
‖∇f(x) + ∇u(x)‖²; estimate = E_P f − E_Q f against the true W1 of the plan. One departure: their
code takes ∇u by autograd through torch.cdist, whose default form ‖x‖² + ‖c‖² − 2x·c loses
digits next to a funnel centre, where P's samples gather (t⁸ is small); here distances are taken
from differences, ∇u = (x − c_k)/‖x − c_k‖ exactly, and the samples that sit exactly on a centre
(t⁸ underflows; ∇u is undefined there) are left out of cos and L2, their share stated.

Each constraint is what a method script declares for this benchmark (the configurations marked
"w1" in its CONFIGS, with their flags), trained by the script's own functions: its critic_net
builds the critic (a ReLU MLP 2-128-128-1, spectrally normalised for wgan_sn.py) and its
critic_step makes each update (the loss with its penalty, or the clipping after it), with the
benchmark's protocol: Adam 2e-4 with betas (0, 0.9), batch 1024, one critic step per
iteration, the critic high on P ("real"). Writes
<out>/results.md and .csv (every constraint's cos, L2 and estimate / true W1 as median
[min, max] over the seeds, beside the published row where one exists), runs.csv (each
training's metrics), and per pair
<out>/pair-<K>.png: the true potential with its gradient field, then each constraint's critic
with the map of cos(∇f, −∇u) over the square (where the constraint goes wrong).

    python benchmarks/w1_benchmark.py                          # 4 and 16 funnels, 3 seeds (~25 min)
    python benchmarks/w1_benchmark.py --only gp- slogan --funnels 4 --seeds 0
    python benchmarks/w1_benchmark.py --iters 60000 --device cuda --jobs 4  # their GP/LP protocol
    python benchmarks/w1_benchmark.py --iters 60000 --ray auto --device cuda --gpus-per-run 0.25
"""
from __future__ import annotations

import csv
import importlib
import json
import math
import os
import signal
import statistics
import sys
import time

import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import common  # noqa: E402
import report  # noqa: E402
import sweep  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "w1_benchmark_2d.json")
FUNNELS = (4, 16, 64, 256)

WIDTH = 128  # the critic's hidden width: theirs, max(2D, 128)


def constraints() -> list:
    """(name, script, flags, published solver or None) of every configuration a method script
    marks "w1" (its CONFIGS), with the flags the benchmark runs it with."""
    return [(name, script, spec["flags"] + spec.get("w1_flags", []), spec.get("published"))
            for name, script, spec in sweep.configs("w1")]


def method(name: str):
    """The script's module and its parsed arguments for the constraint `name`."""
    script, flags = next((sc, fl) for n, sc, fl, _ in constraints() if n == name)
    mod = importlib.import_module(script)
    args, _ = common.parse_or_resume(mod.build_parser(), flags, script, set())
    return mod, args


# ------------------------------------------------------------------------------------- the pairs
def load_pair(funnels: int) -> dict:
    """The pair with this many funnels: centres (K, 2), biases (K,), half side, degree, and the
    paper's metrics per solver."""
    with open(DATA) as fh:
        p = json.load(fh)["pairs"][f"dim2_funnels{funnels}"]
    return {"funnels": funnels, "centers": torch.tensor(p["centers"], dtype=torch.float32),
            "bias": torch.tensor(p["bias"], dtype=torch.float32), "half": float(p["half_side"]),
            "deg": int(p["deg"]), "published": p["published_metrics"]}


def potential(x: torch.Tensor, pair: dict) -> torch.Tensor:
    """u(x) = min_k ‖x − c_k‖ + b_k, shape (N,)."""
    return (dist(x, pair["centers"].to(x)) + pair["bias"].to(x)).min(dim=1).values


def dist(x, c):
    """‖x_i − c_k‖ from the differences: torch.cdist's default ‖x‖² + ‖c‖² − 2x·c loses ~8
    digits near a centre, where P's samples gather, and its gradient with them."""
    return torch.cdist(x, c, compute_mode="donot_use_mm_for_euclid_dist")


def potential_grad(x: torch.Tensor, pair: dict) -> torch.Tensor:
    """∇u(x) = (x − c_k)/‖x − c_k‖ for x's funnel k; NaN where x is a funnel centre (undefined)."""
    c = pair["centers"].to(x)
    k = (dist(x, c) + pair["bias"].to(x)).argmin(dim=1)
    d = x - c[k]
    n = d.norm(dim=1, keepdim=True)
    return torch.where(n > 0, d / n.clamp(min=1e-30), torch.full_like(d, float("nan")))


def sample_q(n: int, pair: dict, generator: torch.Generator) -> torch.Tensor:
    """Q: uniform on the square [−half, half]²."""
    return (torch.rand(n, 2, generator=generator) * 2 - 1) * pair["half"]


def sample_plan(n: int, pair: dict, generator: torch.Generator):
    """(x, y): x ~ P, y ~ Q, x = y moved along its funnel's ray toward the centre (their
    MotionSampler and get_borders, in float32 as theirs): the optimal plan for the distance."""
    y = sample_q(n, pair, generator)
    c, b, half = pair["centers"], pair["bias"], pair["half"]
    u_y, k = (dist(y, c) + b).min(dim=1)
    low = c[k]
    v = y - low
    v = v / v.norm(dim=1, keepdim=True).clamp(min=1e-30)
    # from y along v: where the square ends ...
    r_box = ((torch.sign(v) * half - y) / v).abs().nan_to_num(nan=math.inf).min(dim=1).values
    # ... and where another funnel j takes over: ‖y + r v − c_j‖ + b_j = u(y) + r, solved for r
    da = y[:, None, :] - c[None]                      # (N, K, 2)
    db = u_y[:, None] - b[None]                       # (N, K)
    r = 0.5 * (da.pow(2).sum(2) - db.pow(2)) / (db - (da * v[:, None, :]).sum(2))
    r = torch.where((r > 0) & (r > -db), r, torch.full_like(r, math.inf)).min(dim=1).values
    up = y + v * torch.minimum(r_box, r)[:, None]
    full, base = (up - low).norm(dim=1), (y - low).norm(dim=1)
    t = torch.where((full > 0) & (base > 0), base / full.clamp(min=1e-30), torch.zeros_like(base))
    x = low + t.pow(pair["deg"])[:, None] * (up - low)
    return x, y


def true_w1(pair: dict, n: int = 100_000, seed: int = 0) -> float:
    """W1(P, Q) = E‖x − y‖ over the plan, by Monte Carlo."""
    x, y = sample_plan(n, pair, torch.Generator().manual_seed(seed))
    return (x - y).norm(dim=1).mean().item()


# ------------------------------------------------------------------------------------ the metrics
def metrics(critic, pair: dict, n: int = 4096, seed: int = 1, device="cpu") -> dict:
    """cos and L2 between ∇f and the optimal −∇u at n samples of P (leaving out the points on a
    funnel centre, whose share is `at_centre`), and the critic's estimate E_P f − E_Q f on
    independent samples beside the true W1 of the plan's n pairs."""
    g = torch.Generator().manual_seed(seed)
    x, y = sample_plan(n, pair, g)
    q = sample_q(n, pair, g)
    want = -potential_grad(x, pair)
    ok = torch.isfinite(want).all(dim=1)
    f_x, gn = (v.cpu() for v in critic_and_grad(critic, x.to(device)))
    cos = (gn * want).sum(1) / (gn.norm(dim=1) * want.norm(dim=1) + 1e-15)
    with torch.no_grad():
        f_q = critic(q.to(device)).reshape(-1).cpu()
    return {"cos": cos[ok].mean().item(), "l2": (gn - want)[ok].pow(2).sum(1).mean().item(),
            "estimate": (f_x.mean() - f_q.mean()).item(),
            "true_w1": (x - y).norm(dim=1).mean().item(), "at_centre": 1 - ok.float().mean().item()}


def critic_and_grad(critic, x):
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = critic(x).reshape(-1)
        (gx,) = torch.autograd.grad(f.sum(), x, allow_unused=True) if f.requires_grad \
            else (None,)
    return f.detach(), (torch.zeros_like(x) if gx is None else gx).detach()  # blind to x: 0


# ----------------------------------------------------------------------------- training one critic
def make_critic(name: str, dim: int = 2) -> nn.Module:
    """The benchmark's critic for the constraint `name`: widths [D, h, h, 1], built by its
    script's critic_net (a ReLU MLP unless the method is an architecture)."""
    mod, args = method(name)
    return mod.critic_net([dim, WIDTH, WIDTH, 1], args)


def train(name: str, funnels: int, seed: int, iters: int, batch: int = 1024,
          device: str = "cpu", threads: int = 1) -> dict:
    """Train one critic on one pair from one seed; return its metrics and the critic. The
    batches are drawn on the CPU (one generator, whatever the device) and moved to `device`."""
    torch.set_num_threads(threads)
    device = common.pick_device(device)
    mod, args = method(name)
    pair = load_pair(funnels)
    torch.manual_seed(seed)
    D = make_critic(name).to(device)
    opt = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.0, 0.9))
    g = torch.Generator().manual_seed(10_000 + seed)
    D.eval()  # measure without moving anything (spectral norm's u)
    first = metrics(D, pair, seed=seed + 1, device=device)
    D.train()
    t = time.time()
    for _ in range(iters):
        p, _ = sample_plan(batch, pair, g)
        q = sample_q(batch, pair, g)
        mod.critic_step(D, opt, p.to(device), q.to(device), args)  # P is "real", Q "fake"
    seconds = time.time() - t
    D.eval()
    out = {"config": name, "funnels": funnels, "seed": seed, "iters": iters,
           "seconds": seconds, **metrics(D, pair, seed=seed + 1, device=device),
           "cos_at_start": first["cos"]}
    if not all(math.isfinite(out[k]) for k in ("cos", "l2", "estimate")):
        out["diverged"] = True
    return {**out, "state": {k: v.detach().cpu().clone() for k, v in D.state_dict().items()}}


# ------------------------------------------------------------------------------- tables, figures
def spread(rs, key: str, name: str, scale: float = 1.0) -> dict:
    """{name, name_min, name_max}: median and range of r[key] / scale over the runs rs."""
    v = [r[key] / scale for r in rs if math.isfinite(r[key])]
    return dict(zip((name, name + "_min", name + "_max"),
                    (statistics.median(v), min(v), max(v)) if v else (None,) * 3))


def table(rows, pairs) -> list:
    out = []
    for funnels in sorted({r["funnels"] for r in rows}):
        w1 = pairs[funnels]["true_w1"]
        for name, _, _, pub in constraints():
            rs = [r for r in rows if r["config"] == name and r["funnels"] == funnels]
            if not rs:
                continue
            published = pairs[funnels]["published"].get(pub) if pub else None
            out.append({"funnels": funnels, "config": name, "seeds": len(rs),
                        "iters": rs[0]["iters"],
                        **spread(rs, "cos", "cos"), **spread(rs, "l2", "l2"),
                        **spread(rs, "estimate", "est_over_w1", w1),
                        "published_solver": pub or "", "published_cos":
                        published["cos"] if published else None,
                        "published_l2": published["l2"] if published else None,
                        "published_est_over_w1": published["cost"] / pairs[funnels]["published"]
                        ["true"]["cost"] if published else None,
                        "at_centre": statistics.median(r["at_centre"] for r in rs),
                        "seconds": statistics.median(r["seconds"] for r in rs),
                        "true_w1": w1, "published_true_w1":
                        pairs[funnels]["published"]["true"]["cost"]})
    return out


def write(rows, pairs, a, command, minutes, failed=None):
    """runs.csv (a row per training), results.csv (a row per constraint and pair) and
    results.md, whose tables report.py renders from results.csv."""
    os.makedirs(a.out, exist_ok=True)
    fields = ["config", "funnels", "seed", "iters", "seconds", "cos", "l2", "estimate",
              "true_w1", "at_centre"]
    with open(os.path.join(a.out, "runs.csv"), "w", newline="") as fh:  # one row a training
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    t = table(rows, pairs)
    report.write_csv(os.path.join(a.out, "results.csv"), t)
    import platform
    lines = [f"Command: `{command.strip()}`", "",
             "Ran on " + (f"a Ray cluster, {a.cpus_per_run:g} CPU(s) and {a.gpus_per_run:g} "
                          f"GPU(s) per training, {max(1, int(a.cpus_per_run))} thread(s) each"
                          if a.ray else f"this machine ({platform.machine()}, {os.cpu_count()} "
                          f"cores), one thread per training, {a.jobs} at a time")
             + f", --device {a.device}, torch {torch.__version__}; this call took "
             f"{minutes:.0f} min."
             + (f" Failed, and not in the tables: {sweep.said(failed)}." if failed else ""), "",
             "Medians [min, max] over the seeds. cos: mean cos(∇f, −∇u) at samples of P (1: the "
             "optimal critic's gradient); L2: mean ‖∇f + ∇u‖² there (0 is optimal); est/W1: the "
             "critic's E_P f − E_Q f over the true W1 (1 is exact). 'published': the paper's "
             "solver of that family under their full protocol (60,000 iterations for GP/LP, "
             "10,000 SN, 25,000 CoWGAN, 5,000 clipping, which clips the weights but not the "
             "biases) and their metric, which differentiates u through torch.cdist's "
             "‖x‖² + ‖c‖² − 2x·c form, imprecise next to a funnel centre where P gathers; here "
             "∇u is exact and the samples exactly on a centre (share in the last column) are "
             "left out.", "", *report.w1_pairs(report.cells(t))]
    with open(os.path.join(a.out, "results.md"), "w") as fh:
        fh.write("\n".join(lines))
    return t


def figure(rows, pair, path):
    """The true critic −u with its gradient field, then each constraint's critic (first seed)
    over the map of cos(∇f, −∇u): red where the critic's gradient points the wrong way."""
    from matplotlib.colors import TwoSlopeNorm
    h, n = pair["half"], 96
    xs = torch.linspace(-h, h, n)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), dim=-1).reshape(-1, 2)
    xs = xs.numpy()
    want = -potential_grad(grid, pair)
    firsts = {}
    for r in rows:
        if r["funnels"] == pair["funnels"] and r["config"] not in firsts:
            firsts[r["config"]] = r
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
            D = make_critic(r["config"])
            D.load_state_dict(r["state"])
            D.eval()
            f, gr = critic_and_grad(D, grid)
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
    p = common.ArgumentParser(prog="w1_benchmark.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--funnels", type=int, nargs="+", choices=FUNNELS, default=[4, 16],
                   help="the pairs (funnel counts)")
    p.add_argument("--seeds", type=common.number(int, 0, 2**31, hi_ok=False), nargs="+",
                   default=[0, 1, 2], help="seeds of each training")
    p.add_argument("--iters", type=common.number(int, 1), default=1500,
                   help="critic iterations per training (theirs: 60,000 for GP/LP)")
    p.add_argument("--only", nargs="+", default=None,
                   help="keep constraints whose name contains one of these strings")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N, for every training")
    p.add_argument("--out", default="results/w1_benchmark", help="output folder")
    sweep.add_where_arguments(p, jobs=2, what="trainings")
    a = p.parse_args(argv)
    sweep.check_where(p, a, argv)
    names = [c[0] for c in constraints()]
    if a.only and not [n for n in names if any(s in n for s in a.only)]:
        p.error(f"--only {' '.join(a.only)} matches no constraint; the names: {', '.join(names)}")
    a.seeds = list(dict.fromkeys(a.seeds))
    try:
        if not a.ray:  # on Ray the workers have the devices
            common.pick_device(a.device)
    except ValueError as e:
        p.error(f"--device {a.device!r}: {e}")
    try:
        common.writable_folder(a.out)
    except ValueError as e:
        p.error(str(e))
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    names = [c[0] for c in constraints() if not a.only or any(s in c[0] for s in a.only)]
    jobs = [(n, f, s) for f in a.funnels for n in names for s in a.seeds]
    command = "python benchmarks/w1_benchmark.py " + " ".join(sys.argv[1:] if argv is None
                                                                else argv)
    pairs = {f: {**load_pair(f), "true_w1": true_w1(load_pair(f))} for f in a.funnels}
    try:
        cluster = sweep.join_cluster(a, "w1")
    except ValueError as e:
        common.ArgumentParser(prog="w1_benchmark.py").error(str(e))
    print(f"[w1] {len(jobs)} trainings of {a.iters} iterations, "
          + ("on Ray" if cluster else f"{a.jobs} at a time") + f", into {a.out}; true W1: "
          + ", ".join(f"{f} funnels {pairs[f]['true_w1']:.3f}" for f in a.funnels), flush=True)
    t0, rows, failed = time.time(), [], {}
    progress = sweep.Progress("w1", len(jobs), len(jobs), every=60 * a.heartbeat)

    def report(key, r, error, tries, running):
        if r is not None:
            rows.append(r)
            what = (f"cos {r['cos']:.3f} L2 {r['l2']:.3f} est/W1 "
                    f"{r['estimate'] / pairs[r['funnels']]['true_w1']:.2f} in "
                    f"{r['seconds']:.0f} s" + (f", try {tries}" if tries > 1 else ""))
        else:
            what = error if "interrupted" in error else f"failed: {error}"
            if "interrupted" not in error:
                failed[key] = error
        print(progress.line(key, what, r is not None, running, r["seconds"] if r else 0.0),
              flush=True)

    named = [(f"{n}-{f}-s{s}", (n, f, s, a.iters, 1024, a.device)) for n, f, s in jobs]
    if cluster:
        cpus, gpus, retries = cluster
        import on_ray
        signum = on_ray.run_all(
            "benchmarks/w1_benchmark.py:train", [(k, (*v, max(1, int(cpus)))) for k, v in named],
            cpus, gpus, retries, report, "w1", progress.quiet)
    else:
        signum = local_pool(named, a.jobs, report, progress.quiet)
    rows.sort(key=lambda r: [(n, f, s) for n, f, s in jobs].index(
        (r["config"], r["funnels"], r["seed"])))  # the order of the plan, wherever they ran
    if not rows:
        print("[w1] no training ended: nothing written", flush=True)
        return 128 + signum if signum else 1
    write(rows, pairs, a, command, (time.time() - t0) / 60, None if signum else failed)
    for f in a.funnels:
        figure(rows, pairs[f], os.path.join(a.out, f"pair-{f}.png"))
    print(f"[w1] done in {common.fmt_time(time.time() - t0)}: {os.path.join(a.out, 'results.md')}"
          + (f"; {len(failed)} failed" if failed else "")
          + ("; interrupted: the tables hold the trainings that ended" if signum else ""),
          flush=True)
    return 128 + signum if signum else (1 if failed else 0)


def local_pool(named, jobs: int, report, quiet=None):
    """The trainings in `jobs` processes of this machine (quiet: as on_ray.run_all's); returns
    the signal that stopped them, or None."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    import multiprocessing
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(train, *args): key for key, args in named}
        pending = set(futures)
        try:
            while pending:
                ended, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in sorted(ended, key=list(futures).index):  # in the plan's order
                    try:
                        r, error = fut.result(), None
                    except Exception as e:  # noqa: BLE001 - reported, and the others go on
                        r, error = None, f"{type(e).__name__}: {e}"
                    report(futures[fut], r, error, 1, sum(f.running() for f in futures))
                still = None if ended or quiet is None else quiet(
                    lambda: sum(f.running() for f in futures))
                if still:
                    print(still, flush=True)
        except KeyboardInterrupt:
            for fut in futures:
                fut.cancel()
            return signal.SIGINT
    return None


if __name__ == "__main__":
    sys.exit(main())
