"""Compare the Lipschitz constraints: a grid of runs of the method scripts, over seeds and data.

Each configuration is run by calling the method script itself (what is compared is exactly what
users run), into <out>/runs/<config>-<data>-s<seed>/. A run that already finished with exactly
the arguments planned now is not run again, an interrupted one is resumed from its checkpoint,
and one with other settings is said in a line and run again beside it (benchmarks/sweep.py:
the same for every sweep); Ctrl-C or SIGTERM reaches every running run, which writes its
checkpoint, and the tables of what finished are written. Then:

    <out>/results.md, results.csv   per configuration and dataset: final W1 / floor (median and
                                    range over seeds), modes and high-quality share (mixtures),
                                    share of runs that converged (W1 ≤ 1.5 × floor), wall time
    <out>/grid-<data>.png           one panel per configuration: final level sets and samples
                                    (as the figures of the 2017-05-29 Lernapparat post), first seed
    <out>/fixed.md, fixed.csv       --fixed-generator runs: the critic's estimate
                                    E f(real) − E f(fake) against the exact W1 of the same
                                    distributions (do WGAN critics estimate W1? Mallasto et al.
                                    2019, arXiv:1910.03875; Stanczuk et al. 2021, arXiv:2103.01678)

    python benchmarks/compare.py                                    # the full grid (hours on a CPU)
    python benchmarks/compare.py --iters-scale 0.6 --jobs 2         # 60 % of each default length
    python benchmarks/compare.py --only slogan gp- --data swissroll --seeds 0
    python benchmarks/compare.py --data mnist --digits-seeds 0 --dim 32 --no-fixed --out results/mnist
    python benchmarks/compare.py --ray auto --device cuda --gpus-per-run 0.125   # on a Ray cluster
"""
from __future__ import annotations

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

# The grid is what the method scripts declare (their CONFIGS, benchmarks/sweep.py's configs):
# each configuration marked "toys" runs on the three toys, "digits" on the digits, "fixed" in the
# fixed-generator study (the critic alone, on the swiss roll).
PLACES = {"toys", "digits", "fixed"}


def grid(lambdas=None) -> list:
    """(name, script, spec) of every configuration this sweep runs somewhere; with lambdas, the
    penalties' λ grid instead (sweep.at_lambdas)."""
    configs = [c for c in sweep.configs() if c[2]["runs"] & PLACES]
    return sweep.at_lambdas(configs, lambdas) if lambdas else configs


def parse_args(argv=None):
    p = harness.ArgumentParser(prog="compare.py", description=__doc__.split("\n\n")[0])
    seed = harness.number(int, 0, 2**63, hi_ok=False)
    p.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2],
                   help="seeds on the swiss roll")
    p.add_argument("--mixture-seeds", type=seed, nargs="+", default=[0],
                   help="seeds on 8gaussians and 25gaussians")
    p.add_argument("--digits-seeds", type=seed, nargs="+", default=[0, 1, 2],
                   help="seeds on the digits")
    p.add_argument("--data", nargs="+", choices=common.DATASETS,
                   default=[d for d in common.DATASETS if d != "mnist"],
                   help="datasets (default: all but mnist, whose runs take 30 min each on a "
                        "CPU thread at its width, 3-28 at --dim 32: ask for it, with --only, as "
                        "the report's MNIST comparison does)")
    p.add_argument("--iters", type=harness.number(int, 1), default=None,
                   help="generator iterations for every run (default: each script's default)")
    p.add_argument("--iters-scale", type=harness.number(float, 0, 1000, lo_ok=False), default=1.0,
                   help="run each configuration for this fraction of its script's default "
                        "iterations (ignored with --iters)")
    p.add_argument("--dim", type=harness.number(int, 1), default=None,
                   help="hidden width (default: the scripts')")
    p.add_argument("--only", nargs="+", default=None,
                   help="keep configurations whose name contains one of these strings")
    p.add_argument("--no-fixed", action="store_true", help="skip the fixed-generator study")
    p.add_argument("--lambdas", type=harness.number(float, 0), nargs="+", default=None,
                   help="the λ grid: run each selected penalty at each of these weights instead "
                        "of its own (named <config>@λ<value>; configurations without --lambda "
                        "are left out); adds the λ figure lambda-<data>.png")
    p.add_argument("--no-run", action="store_true",
                   help="run nothing: write the tables and figures from the runs already done")
    p.add_argument("--device", default="cpu", help="passed to every run")
    p.add_argument("--out", default="results", help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="write the tables even if they would have fewer rows than the ones there")
    p.add_argument("--refuse-mismatch", action="store_true",
                   help="stop with exit 2, before running anything, if a finished run under "
                        "--out ran other settings than this sweep asks (default: say so in a "
                        "line and make the run again beside it)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="further flags for every run; it takes the rest of the command line, "
                        "so it comes last (e.g. --extra --eval-every 1000)")
    sweep.add_where_arguments(p, jobs=1)
    a = p.parse_args(argv)
    sweep.check_args(p, a, [g[0] for g in grid(a.lambdas)])
    sweep.check_where(p, a, argv)
    # a seed given twice would run twice into one folder
    for name in ("seeds", "mixture_seeds", "digits_seeds", "data"):  # and a dataset
        if getattr(a, name) is not None:
            setattr(a, name, list(dict.fromkeys(getattr(a, name))))
    if not a.out or (os.path.exists(a.out) and not os.path.isdir(a.out)):
        p.error(f"--out {a.out!r} must name a folder")
    return a


def plan(a):
    """The runs to make: (key, config name, script, flags, data, seed, fixed)."""
    runs = []
    seeds = {"swissroll": a.seeds, "digits": a.digits_seeds, "mnist": a.digits_seeds}
    for name, script, spec in grid(a.lambdas):
        if a.only and not any(s in name for s in a.only):
            continue
        flags = spec["flags"]
        for data in a.data:
            if ("digits" if data in common.IMAGES else "toys") not in spec["runs"]:  # images
                continue
            for seed in seeds.get(data, a.mixture_seeds):
                runs.append((f"{name}-{data}-s{seed}", name, script,
                             flags + run_flags(a, script, flags, data)
                             + ["--data", data, "--seed", str(seed)], data, seed, False))
        if not a.no_fixed and "fixed" in spec["runs"] and "swissroll" in a.data:
            seed = a.seeds[0]
            runs.append((f"fixed-{name}-swissroll-s{seed}", name, script,
                         flags + run_flags(a, script, flags, "swissroll")
                         + ["--fixed-generator", "--data", "swissroll",
                                                 "--seed", str(seed)], "swissroll", seed, True))
    return runs


def run_flags(a, script, flags, data):
    """The flags every run of this sweep gets: device, length, width and --extra."""
    out = ["--device", a.device]
    if a.iters or a.iters_scale != 1.0:
        iters = a.iters or max(1, round(a.iters_scale * sweep.default_iters(script, flags, data)))
        out += ["--iters", str(iters), "--eval-every", str(max(iters // 5, 1))]
    if a.dim:
        out += ["--dim", str(a.dim)]
    return out + a.extra


def summarise(runs, ended):
    """Results table rows (per configuration and dataset) and the fixed-generator rows, from
    ended: {key: the summary of the run that ran what the sweep planned, or None}."""
    table, fixed = [], []
    groups = {}
    for key, name, script, flags, data, seed, is_fixed in runs:
        s = ended.get(key)
        if s is None:
            continue
        if is_fixed:
            f = s.get("final") or {}
            fixed.append({"config": name, "data": data, "seed": seed, "status": s["status"],
                          "critic_estimate": f.get("critic_estimate"), "w1": f.get("w1"),
                          "w1_floor": f.get("w1_floor"),
                          "estimate_over_w1": sweep.ratio(f.get("critic_estimate"), f.get("w1")),
                          "lipschitz_bound": f.get("lipschitz_bound"),
                          "grad_norm_mean": f.get("grad_norm_mean")})
            continue
        groups.setdefault((name, data), []).append(s)
    for (name, data), ss in groups.items():
        # a run that diverged before its first row has no final row: counted as diverged
        ss = [s for s in ss if s.get("final") or s["status"] == "diverged"]
        if not ss:
            continue
        ratios = [(sweep.ratio(s["final"].get("w1"), s["final"].get("w1_floor")) or float("inf"))
                  if s["status"] == "finished" else float("inf") for s in ss]
        done = [s["final"] for s in ss if s["status"] == "finished"]
        rows = [s["final"] for s in ss if s.get("final")]
        modes = [f.get("modes", f.get("classes")) for f in done]  # digits: classes covered
        hq = [f.get("high_quality", f.get("class_tv")) for f in done]  # digits: class TV
        table.append({
            "config": name, "data": data, "runs": len(ss),
            "w1_over_floor_median": statistics.median(ratios),
            "w1_over_floor_min": min(ratios), "w1_over_floor_max": max(ratios),
            "converged": sum(map(sweep.converged, ss)) / len(ss),
            "nn_ratio_median": sweep.median_of([s["final"].get("nn_ratio") for s in ss
                                                if s["status"] == "finished"]),
            "diverged": sum(s["status"] == "diverged" for s in ss),
            **({"modes_median": statistics.median(modes), "modes_min": min(modes),
                "modes_max": max(modes)} if modes and modes[0] is not None else
               {"modes_median": None, "modes_min": None, "modes_max": None}),
            "n_modes": rows[0].get("n_modes", rows[0].get("n_classes")) if rows else None,
            "w1_median": sweep.median_of([f.get("w1") for f in done]),
            "w1_floor_median": sweep.median_of([f.get("w1_floor") for f in done]),
            "w1_mean_digit": sweep.median_of([f.get("w1_mean_digit") for f in done]),
            "w1_ot_means": sweep.median_of([f.get("w1_ot_means") for f in done]),
            "high_quality_median": statistics.median(hq) if hq and hq[0] is not None else None,
            "fd_over_floor_median": sweep.median_of([sweep.ratio(f.get("fd"), f.get("fd_floor"))
                                                     for f in done]),  # mnist
            **sweep.settling_columns([s.get("folder") for s in ss]),
            "wall_s_median": statistics.median(s["wall_time_s"] for s in ss)})
    order = {n: i for i, n in enumerate(dict.fromkeys(r[1] for r in runs))}  # the plan's
    table.sort(key=lambda r: (common.DATASETS.index(r["data"]), order[r["config"]]))
    fixed.sort(key=lambda r: order[r["config"]])
    return table, fixed


def table_rows(path) -> int:
    """Rows in a markdown table file written by write_tables (0 if there is none)."""
    if not os.path.exists(path):
        return 0
    with open(path) as fh:
        return max(0, sum(line.startswith("| ") for line in fh) - 1)  # less the header row


def digits_scale(table):
    """A line on what a collapsed generator scores on the digits, for scale (or nothing)."""
    r = next((r for r in table if r["data"] == "digits" and r["w1_mean_digit"]), None)
    if r is None:
        return []
    fl = r["w1_floor_median"]
    held_out, labels = common.digits("test")
    right = (common.classify_digits(held_out) == labels).double().mean().item()
    return ["", f"For scale on the digits: the floor is {fl:.3f}; the mean digit repeated 512 "
                f"times scores {r['w1_mean_digit']:.3f} ({r['w1_mean_digit'] / fl:.2f} × floor), "
                f"512 OT-means centroids of the training digits {r['w1_ot_means']:.3f} "
                f"({r['w1_ot_means'] / fl:.2f} × floor). The held-out digits themselves: class "
                f"TV {common.class_stats(held_out)['class_tv']:.2f}, and the nearest-neighbour "
                f"classifier labels {100 * right:.1f} % of them right."]


def write_tables(table, fixed, out, command, note=""):
    """results.md/.csv and fixed.md/.csv: the CSVs, and the tables report.py renders from them
    (the same renderer that writes them into results/README.md)."""
    report.write_csv(os.path.join(out, "results.csv"), table)
    report.write_csv(os.path.join(out, "fixed.csv"), fixed)
    lines = [f"Command: `{command}`", "", note, "",
             f"W1 / floor: final exact W1(generated, real) over the noise floor W1(real, real'), "
             f"each the mean of 3 draws of 1024 points (digits: 512 generated against the 512 "
             f"held-out digits, floor: 512 distinct training digits against them); converged: "
             f"W1 ≤ {sweep.CONVERGED} × floor, and where the run logged it (runs from after the "
             f"batch-W1 study) nn ratio ≥ {sweep.NN_RATIO_MIN} (no collapse) and, on the "
             f"mixtures, every mode captured (digits: every class covered); diverged runs count "
             f"as not converged. Digits: the modes column counts classes covered, the "
             f"high-quality column is the class histogram's total-variation distance from "
             f"uniform.", *digits_scale(table), "", *report.grid(report.cells(table))]
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    lines = [f"Command: `{command}`", "", note, "",
             "Critic trained alone against fake = real + N(0, I) on the swiss roll "
             "(--fixed-generator). A critic that solved the dual problem would have "
             "estimate / W1 = 1.", "", *report.fixed(report.cells(fixed))]
    with open(os.path.join(out, "fixed.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


def draw_grids(runs, out, table, ended):
    """grid-<data>.png for every dataset: the first seed of each configuration whose critic
    can be loaded (a later seed where the first one's checkpoint is gone or damaged, said in its
    panel). Returns the figures and a line for each configuration left out, or for a figure
    left as an earlier call drew it: never a stale figure without a word."""
    import torch
    ratio = {(r["config"], r["data"]): r["w1_over_floor_median"] for r in table}
    paths, notes = [], []
    for data in common.DATASETS:
        panels, seeds, firsts = [], {}, {}
        for key, name, script, _, d, seed, is_fixed in runs:
            if d == data and not is_fixed:
                seeds.setdefault(name, []).append((seed, key, script))
        for name, tried in seeds.items():
            for seed, key, script in tried:  # the first seed that can be drawn
                final = sweep.load_final(ended.get(key), script)
                if final is not None:
                    break
            if final is None:
                if any(ended.get(k) is not None for _, k, _ in tried):
                    notes.append(f"{name} on {data}: no checkpoint of its runs can be loaded "
                                 f"(gone or damaged), not drawn")
                continue
            D, real, fake = final
            firsts[name] = seed
            later = "" if seed == tried[0][0] else f", seed {seed}"
            panels.append((f"{name}{later}\nW1/floor {sweep.fmt(ratio.get((name, data)), '.2f')} "
                           f"(median)", D, real, fake))
        path = os.path.join(out, f"grid-{data}.png")
        if not panels:
            if seeds and os.path.exists(path):
                notes.append(f"{os.path.basename(path)} is not redrawn (no critic of this call "
                             f"can be loaded): it is an earlier call's")
            continue
        if data in common.IMAGES:  # samples, not level sets: 64 digits per configuration
            held_out = common.sample(data, 64, generator=torch.Generator().manual_seed(0),
                                     split="test")
            paths.append(common.plot_digit_grid(
                [("real (held out)", held_out)] + [(p[0], p[3]) for p in panels], path,
                ncols=4, title="generated digits, first seed of each configuration"))
        else:
            paths.append(common.plot_critic_grid(
                panels, path,
                title=f"final critics and samples on {data} (orange real, green generated)"))
    return paths, notes


def lambda_figure(table, data: str, path: str) -> str:
    """W1 / floor against λ on one dataset (the --lambdas grid), a panel per penalty: median
    over the seeds, the band their range."""
    series = {}
    for r in table:
        base, lam = sweep.split_lambda(r["config"])
        if r["data"] == data and lam is not None:
            series.setdefault(sweep.penalty_label(base), []).append(
                (lam, r["w1_over_floor_median"], r["w1_over_floor_min"], r["w1_over_floor_max"]))
    return common.plot_against_lambda(  # a panel per penalty, WGAN-GP's line in each
        series, path, f"{data}: final W1 / floor against the penalty weight λ",
        "W1 / floor (1.5: converged)", threshold=sweep.CONVERGED, log_y=True,
        each_panel=True, reference=sweep.penalty_label(sweep.reference()))


def die(message: str):
    harness.ArgumentParser(prog="compare.py").error(message)


def main(argv=None):
    harness.robust_console()  # λ on any console; | head never stops a sweep
    a = parse_args(argv)
    a.out = os.path.abspath(a.out)  # the runs execute in the repository's root
    runs = plan(a)
    if not runs:
        digits_only = sorted(n for n, _, spec in grid() if "toys" not in spec["runs"])
        die("no run planned: --only, --data and the seeds leave nothing (the digits-only "
            f"configurations {', '.join(digits_only)} need --data digits)")
    try:
        for f in ("results.md", "fixed.md"):
            if not ours(os.path.join(a.out, f)):
                raise ValueError(f"--out {a.out} holds a {f} that compare.py did not write: "
                                 f"choose another --out")
        wants, lock, cluster = sweep.prepare(runs, a, "compare")
    except ValueError as e:
        die(str(e))
    given = sys.argv[1:] if argv is None else argv
    # the tables are what the command without --no-run makes: that is the one a reader reruns
    command = "python benchmarks/compare.py " + " ".join(x for x in given if x != "--no-run")
    t = time.time()
    try:
        ended, signum, failures = sweep.execute(runs, wants, a, "compare", cluster)
    except sweep.Refused as e:
        lock.close()  # the refusal leaves the folder to the next sweep at once
        die(str(e))
    done = sum(s is not None for s in ended.values())
    failed = 0 if signum else len(failures)
    if failed:
        print(f"[compare] {failed} of {len(runs)} runs failed: see log.txt in their folders "
              f"under {os.path.join(a.out, 'runs')}", file=sys.stderr, flush=True)
    run_minutes = sum(s["wall_time_s"] or 0 for s in ended.values() if s is not None) / 60
    if done < len(runs):
        how = ("the same command without --no-run runs them" if a.no_run else
               "the same command again resumes the interrupted ones and runs the rest")
        print(f"[compare] {len(runs) - done} of {len(runs)} runs are not done: the tables "
              f"cover the {done} that are; {how}", flush=True)
    table, fixed = summarise(runs, ended)
    note = (f"Ran on {sweep.ran_on(ended.values())}; "
            + ("tables written by --no-run from the runs already done. " if a.no_run else
               f"this call took {(time.time() - t) / 60:.0f} min (runs found already done are "
               "not run again). ") +
            f"Runs done: {done} of {len(runs)}, their wall times add up to {run_minutes:.0f} min."
            + (f" Failed in this call, and not in the tables: {sweep.said(failures)}."
               if failed else ""))
    code = 128 + signum if signum else (1 if failed else 0)
    kept = [f for f, new in (("results.md", table), ("fixed.md", fixed))
            if len(new) < table_rows(os.path.join(a.out, f)) and not a.overwrite]
    if kept:  # never replace a table by an emptier one unasked (a fresh clone has no runs)
        missing = sorted({f"{r[1]} on {r[4]}" for r in runs if ended[r[0]] is None})
        why = (f"missing: {'; '.join(missing[:8])}{' …' if len(missing) > 8 else ''}"
               if missing else "this call plans fewer runs than the tables hold")
        print(f"[compare] kept {', '.join(kept)} in {a.out}: the runs found give fewer rows than "
              f"it has ({why}). Run them, or pass --overwrite", flush=True)
    else:
        write_tables(table, fixed, a.out, command, note)
        grids, notes = draw_grids(runs, a.out, table, ended)
        if a.lambdas:  # the λ grid: the metric against λ, a line per penalty
            grids += [lambda_figure(table, data, os.path.join(a.out, f"lambda-{data}.png"))
                      for data in a.data if any(r["data"] == data for r in table)]
        for line in notes:
            print(f"[compare] {line}", flush=True)
        print(f"[compare] done in {time.time() - t:.0f} s: {os.path.join(a.out, 'results.md')}, "
              f"{os.path.join(a.out, 'fixed.md')}, " + ", ".join(grids), flush=True)
    if signum:
        print(f"[compare] interrupted: {sweep.after_interruption(runs, wants, a.out, ended)}",
              flush=True)
    lock.close()
    return code


def ours(path: str) -> bool:
    """Whether a table at path is absent or one compare.py wrote (its first line names it)."""
    if not os.path.exists(path):
        return True
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.readline().startswith("Command: `python benchmarks/compare.py")


if __name__ == "__main__":
    sys.exit(main())
