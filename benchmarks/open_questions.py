"""The open questions of the 2017-05-29 Lernapparat post ("More Improved Training of Wasserstein
GANs and DRAGAN") and of its 2017-04-13 predecessor, answered by runs of the method scripts.

    Q1  Does DRAGAN's critic learn a distance to the data (the Eikonal reading)? Every run logs,
        on a fixed grid of points, the correlation of f with −d (d: distance to the noiseless
        data) within a band of 0.25 around it, and the mean ‖∇f‖ inside and outside the band.
    Q2  DRAGAN's penalty plus WGAN-LP's one-sided penalty on interpolates (dragan.py --lp-lambda).
    Q3  Which pairs should the quotient test? SLOGAN on real-fake, interpolate and all B² pairs,
        with the cost of an iteration.
    Q4  A λ that grows as the critic converges: two-sided WGAN-GP with λ rising geometrically from
        0.1 to 10 (wgan_gp.py --lambda-from 0.1), beside the fixed λ = 10 and λ = 0.1.
    Q5  A fake deliberately close to the real: DRAGAN's penalty at x + 0.1(x_f − x)
        (dragan.py --perturb toward-fake).
    Q6  The one-sided penalty unsquared, λ·E[max(‖∇f‖ − 1, 0)], "with a higher weight λ" (the
        2017-04-13 post): wgan_gp.py --one-sided --unsquared at λ 10 and 100, beside WGAN-LP.

Each configuration runs on the swiss roll for every seed, through benchmarks/sweep.py (as
compare.py: a finished run with the planned arguments is not run again, an interrupted one is
resumed, one with other settings is made again beside it). Writes <out>/questions.md,
questions.csv and questions-distance.png (Q1: the distance's level sets beside the critics).

    python benchmarks/open_questions.py --iters-scale 0.6 --jobs 2      # ~50 min on 2 CPU cores
    python benchmarks/open_questions.py --ray auto --cpus-per-run 1      # on a Ray cluster (README)
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import common  # noqa: E402
import harness
import report  # noqa: E402
import sweep  # noqa: E402

QUESTIONS = tuple(p for p in sweep.PLACES if p.startswith("Q"))  # Q1 … Q6, as the docstring


def grid() -> list:
    """(name, script, flags, the questions it answers) of every configuration a method script
    marks with a question (its CONFIGS: benchmarks/sweep.py's configs)."""
    return [(name, script, spec["flags"], " ".join(q for q in QUESTIONS if q in spec["runs"]))
            for name, script, spec in sweep.configs() if spec["runs"] & set(QUESTIONS)]


def parse_args(argv=None):
    p = harness.ArgumentParser(prog="open_questions.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=harness.number(int, 0, 2**63, hi_ok=False), nargs="+",
                   default=[0, 1, 2], help="seeds (swiss roll)")
    p.add_argument("--iters-scale", type=harness.number(float, 0, 1000, lo_ok=False), default=1.0,
                   help="fraction of each script's default iterations")
    p.add_argument("--only", nargs="+", default=None,
                   help="keep configurations whose name contains one of these strings")
    p.add_argument("--no-run", action="store_true", help="only write the tables and figure")
    p.add_argument("--out", default="results/questions", help="output folder")
    p.add_argument("--device", default="cpu", help="passed to every run")
    p.add_argument("--refuse-mismatch", action="store_true",
                   help="stop with exit 2, before running anything, if a finished run under "
                        "--out ran other settings than this sweep asks")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="further flags for every run; it takes the rest of the command line, "
                        "so it comes last")
    sweep.add_where_arguments(p, jobs=1)
    a = p.parse_args(argv)
    sweep.check_args(p, a, [g[0] for g in grid()])
    sweep.check_where(p, a, argv)
    a.seeds = list(dict.fromkeys(a.seeds))
    if not a.out or (os.path.exists(a.out) and not os.path.isdir(a.out)):
        p.error(f"--out {a.out!r} must name a folder")
    return a


def plan(a):
    runs = []
    for name, script, flags, _ in grid():
        if a.only and not any(s in name for s in a.only):
            continue
        iters = max(1, round(a.iters_scale * sweep.default_iters(script, flags)))
        extra = ["--iters", str(iters), "--eval-every", str(max(iters // 5, 1))] \
            if a.iters_scale != 1.0 else []
        for seed in a.seeds:
            runs.append((f"{name}-swissroll-s{seed}", name, script,
                         flags + extra + a.extra + ["--device", a.device, "--data",
                                                    "swissroll", "--seed", str(seed)],
                         "swissroll", seed,
                         False))
    return runs


def ms_per_iter(s):
    """Median training time per generator iteration of a run (None before its second row)."""
    rows = harness.read_metrics(os.path.join(s["folder"], "metrics.csv"))[1:]
    values = [float(r["ms_per_iter"]) for r in rows if r["ms_per_iter"] == r["ms_per_iter"]]
    return statistics.median(values) if values else None


def summarise(runs, ended):
    by = {}
    for key, name, *_ in runs:
        s = ended.get(key)
        if s is not None:
            by.setdefault(name, []).append(s)
    rows = []
    for name, script, flags, qs in grid():
        ss = by.get(name)
        if not ss:
            continue
        fin = [s["final"] for s in ss if s["status"] == "finished" and s.get("final")]

        def med(k):
            return sweep.median_of([f.get(k) for f in fin])
        rows.append({"config": name, "questions": qs, "command": f"python {script}.py "
                     + " ".join(flags), "runs": len(ss),
                     "diverged": sum(s["status"] == "diverged" for s in ss),
                     "converged": sum(map(sweep.converged, ss)),
                     "w1_over_floor": sweep.median_of(ratios(fin)),
                     "w1_over_floor_min": min(ratios(fin), default=None),
                     "w1_over_floor_max": max(ratios(fin), default=None),
                     "nn_ratio": med("nn_ratio"), "dist_corr": med("dist_corr"),
                     "grad_in_band": med("grad_norm_in_band"),
                     "grad_out_band": med("grad_norm_out_band"),
                     "cos_disc_pen": med("cos_disc_pen"),
                     "ms_per_iter": sweep.median_of([ms_per_iter(s) for s in ss])})
    return rows


def ratios(finals):
    return [r for r in (sweep.ratio(f.get("w1"), f.get("w1_floor")) for f in finals)
            if r is not None]


def write(rows, a, command, seconds, failures=None):
    """questions.csv, and questions.md with the table report.py renders from it."""
    os.makedirs(a.out, exist_ok=True)
    report.write_csv(os.path.join(a.out, "questions.csv"), rows)
    lines = [f"Command: `{command}` ({seconds / 60:.0f} min for the runs not already done)."
             + (f" Failed in this call, and not in the table: {sweep.said(failures)}."
                if failures else ""), "",
             "Swiss roll; medians over the seeds; converged: W1 ≤ 1.5 × floor and nn ratio ≥ 0.5;"
             " dist corr: correlation of f with −d within 0.25 of the data; ‖∇f‖ in / out: mean"
             " inside / outside that band; ms/it: median training time per generator iteration"
             " (one CPU thread per run).", "", *report.questions(report.cells(rows))]
    with open(os.path.join(a.out, "questions.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


def distance_figure(runs, a, ended):
    """The distance to the data beside the final critics (first seed) of the Q1 runs."""
    import torch
    t = torch.linspace(1.5 * 3.141592653589793, 4.5 * 3.141592653589793, 20_000)
    ref = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 7.5

    def minus_d(x):
        return -torch.cdist(x, ref.to(x.device)).min(dim=1).values

    real = common.sample("swissroll", 512, generator=torch.Generator().manual_seed(0))
    panels = [("−d: minus the distance to the data\n(the critic of the Eikonal reading)",
               minus_d, real, None)]
    corr = {r["config"]: r["dist_corr"] for r in summarise(runs, ended)}
    seen = set()
    for key, name, script, *_ in runs:
        if name in seen or not any(name == g[0] and "Q1" in g[3] for g in grid()):
            continue
        seen.add(name)
        final = sweep.load_final(ended.get(key), script)
        if final is not None:
            D, r, fk = final
            panels.append((f"{name}\ncorr(f, −d) {sweep.fmt(corr.get(name), '.2f')} (median)",
                           D, r, fk))
    if len(panels) > 1:
        common.plot_critic_grid(panels, os.path.join(a.out, "questions-distance.png"), ncols=5,
                                title="Q1: is the critic a distance to the data? "
                                      "(swiss roll, first seed)")


def main(argv=None):
    harness.robust_console()  # λ on any console; | head never stops a sweep
    a = parse_args(argv)
    a.out = os.path.abspath(a.out)
    runs = plan(a)
    die = harness.ArgumentParser(prog="open_questions.py").error
    try:
        wants, lock, cluster = sweep.prepare(runs, a, "questions")
    except ValueError as e:
        die(str(e))
    command = "python benchmarks/open_questions.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    t = time.time()
    try:
        ended, signum, failures = sweep.execute(runs, wants, a, "questions", cluster)
    except sweep.Refused as e:
        lock.close()  # the refusal leaves the folder to the next sweep at once
        die(str(e))
    missing = [key for key, s in ended.items() if s is None]
    rows = summarise(runs, ended)
    write(rows, a, command, time.time() - t, None if signum else failures)
    distance_figure(runs, a, ended)
    print(f"[questions] {len(runs) - len(missing)} of {len(runs)} runs done; "
          f"{os.path.join(a.out, 'questions.md')}"
          + (f"; interrupted: {sweep.after_interruption(runs, wants, a.out, ended)}"
             if signum else ""), flush=True)
    lock.close()
    return 128 + signum if signum else (1 if missing and not a.no_run else 0)


if __name__ == "__main__":
    sys.exit(main())
