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
    python benchmarks/compare.py --ray auto --device cuda --gpus-per-run 0.125   # on a Ray cluster
"""
from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import common  # noqa: E402
import sweep  # noqa: E402

# (name, script, flags): every constraint at the λ its source uses, and the two-sided ones at the
# smaller λ of gan_toy.py. The name is the folder key.
GRID = [
    ("slogan-l10", "slogan", ["--lambda", "10"]),
    ("gp-onesided-l10", "wgan_gp", ["--one-sided", "--lambda", "10"]),
    ("gp-twosided-l10", "wgan_gp", ["--lambda", "10"]),
    ("gp-twosided-l0.1", "wgan_gp", ["--lambda", "0.1"]),
    ("quotient-twosided-l0.1", "slogan", ["--two-sided", "--lambda", "0.1"]),
    ("quotient-twosided-l1", "slogan", ["--two-sided", "--lambda", "1"]),
    ("quotient-twosided-l10", "slogan", ["--two-sided", "--lambda", "10"]),
    ("dragan-paper", "dragan", []),
    ("dragan-wgan-l10", "dragan", ["--loss", "wgan", "--lambda", "10"]),
    ("dragan-wgan-normal-l10", "dragan",
     ["--loss", "wgan", "--perturb", "normal", "--lambda", "10"]),
    ("prodgan-wgan-l10", "dragan", ["--loss", "wgan", "--perturb", "none", "--lambda", "10"]),
    ("wgan-clip", "wgan_clip", []),
    ("c-transform", "wgan_ct", []),
    ("wgan-sn", "wgan_sn", []),
    ("wgan-div", "wgan_div", []),
    ("slogan-allpairs-l10", "slogan", ["--pairs", "all", "--lambda", "10"]),
]
# On the digits, one configuration per constraint at its source's λ, plus SLOGAN's all-pairs
# quotients (the 2017-05-29 Lernapparat post asks whether testing more pairs helps on real
# problems); those run on the digits only (on the toys: benchmarks/open_questions.py, Q3).
ON_DIGITS = ["slogan-l10", "slogan-allpairs-l10", "gp-onesided-l10", "gp-twosided-l10",
             "quotient-twosided-l1", "dragan-paper", "dragan-wgan-l10", "prodgan-wgan-l10",
             "wgan-clip", "c-transform", "wgan-sn", "wgan-div"]
DIGITS_ONLY = {"slogan-allpairs-l10"}
# One configuration per constraint for the fixed-generator study (the critic alone).
FIXED = ["slogan-l10", "gp-onesided-l10", "gp-twosided-l10", "quotient-twosided-l1",
         "dragan-wgan-l10", "prodgan-wgan-l10", "wgan-clip", "c-transform", "wgan-sn",
         "wgan-div"]
CONVERGED = 1.5  # a run converged if its final W1 ≤ CONVERGED × its floor, and
NN_RATIO_MIN = 0.5  # its samples are not collapsed (nn_ratio, where logged), and on the mixtures
# it captured every mode. A minibatch W1 alone has false minima: n collapsed points can be as close
# to n real points as other real points are (benchmarks/batch_w1.py), so W1 / floor can be gamed.


def converged(s) -> bool:
    f = s.get("final") or {}
    if s.get("status") != "finished" or not f.get("w1_floor"):
        return False
    ok = f["w1"] <= CONVERGED * f["w1_floor"]
    if f.get("nn_ratio") is not None:
        ok = ok and f["nn_ratio"] >= NN_RATIO_MIN
    if f.get("n_modes"):
        ok = ok and f.get("modes") == f["n_modes"]
    if f.get("n_classes"):  # digits: every class drawn (not a blur of them, not a few of them)
        ok = ok and f.get("classes") == f["n_classes"]
    return ok


def parse_args(argv=None):
    p = common.ArgumentParser(prog="compare.py", description=__doc__.split("\n\n")[0])
    seed = common.number(int, 0, 2**63, hi_ok=False)
    p.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2],
                   help="seeds on the swiss roll")
    p.add_argument("--mixture-seeds", type=seed, nargs="+", default=[0],
                   help="seeds on 8gaussians and 25gaussians")
    p.add_argument("--digits-seeds", type=seed, nargs="+", default=[0, 1, 2],
                   help="seeds on the digits")
    p.add_argument("--data", nargs="+", choices=common.DATASETS, default=list(common.DATASETS))
    p.add_argument("--iters", type=common.number(int, 1), default=None,
                   help="generator iterations for every run (default: each script's default)")
    p.add_argument("--iters-scale", type=common.number(float, 0, 1000, lo_ok=False), default=1.0,
                   help="run each configuration for this fraction of its script's default "
                        "iterations (ignored with --iters)")
    p.add_argument("--dim", type=common.number(int, 1), default=None,
                   help="hidden width (default: the scripts')")
    p.add_argument("--only", nargs="+", default=None,
                   help="keep configurations whose name contains one of these strings")
    p.add_argument("--no-fixed", action="store_true", help="skip the fixed-generator study")
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
    sweep.check_args(p, a, [g[0] for g in GRID])
    sweep.check_where(p, a, argv)
    # a seed given twice would run twice into one folder
    for name in ("seeds", "mixture_seeds", "digits_seeds"):
        setattr(a, name, list(dict.fromkeys(getattr(a, name))))
    if not a.out or (os.path.exists(a.out) and not os.path.isdir(a.out)):
        p.error(f"--out {a.out!r} must name a folder")
    return a


def plan(a):
    """The runs to make: (key, config name, script, flags, data, seed, fixed)."""
    grid = [g for g in GRID if not a.only or any(s in g[0] for s in a.only)]
    runs = []
    seeds = {"swissroll": a.seeds, "digits": a.digits_seeds}
    for name, script, flags in grid:
        for data in a.data:
            if (name not in ON_DIGITS) if data == "digits" else (name in DIGITS_ONLY):
                continue
            for seed in seeds.get(data, a.mixture_seeds):
                runs.append((f"{name}-{data}-s{seed}", name, script,
                             flags + run_flags(a, script, flags, data)
                             + ["--data", data, "--seed", str(seed)], data, seed, False))
        if not a.no_fixed and name in FIXED and "swissroll" in a.data:
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
        iters = a.iters or max(1, round(a.iters_scale * default_iters(script, flags, data)))
        out += ["--iters", str(iters), "--eval-every", str(max(iters // 5, 1))]
    if a.dim:
        out += ["--dim", str(a.dim)]
    return out + a.extra


def default_iters(script, flags, data="swissroll"):
    """The generator iterations the script would run with these flags on this data (some
    defaults depend on other flags, e.g. dragan.py's on --loss, and on the data)."""
    mod = importlib.import_module(script)
    args, _ = common.parse_or_resume(mod.build_parser(), flags + ["--data", data], script, set())
    if hasattr(mod, "resolve_defaults"):
        mod.resolve_defaults(args)
    return args.iters


def ran_on(ended) -> str:
    """Where the runs of the tables ran, as each run's config.json recorded it: an --device auto
    run may have used a GPU, and cuda:1 is not cuda:0."""
    seen = []
    for s in ended:
        try:
            with open(os.path.join(s["folder"], "config.json")) as fh:
                v = json.load(fh)["versions"]
            where = f"{v['device_name']} ({v['device']}, torch {v['torch']}"
            where += f", {v['cpu_threads']} CPU thread{'s' if v['cpu_threads'] != 1 else ''})" \
                if v["device"] == "cpu" else ")"
        except (TypeError, OSError, ValueError, KeyError):  # no run, or an older config
            continue
        if where not in seen:
            seen.append(where)
    return "; ".join(seen) if seen else "no run that ended"


def median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec=".3f"):
    return "–" if v is None or v != v else format(v, spec)


def ratio(a, b):
    """a / b, or None where either is missing (a run that diverged logs null) or b is 0."""
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


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
                          "estimate_over_w1": ratio(f.get("critic_estimate"), f.get("w1")),
                          "lipschitz_bound": f.get("lipschitz_bound"),
                          "grad_norm_mean": f.get("grad_norm_mean")})
            continue
        groups.setdefault((name, data), []).append(s)
    for (name, data), ss in groups.items():
        ss = [s for s in ss if s.get("final")]  # a run that diverged before its first row
        if not ss:
            continue
        ratios = [(ratio(s["final"].get("w1"), s["final"].get("w1_floor")) or float("inf"))
                  if s["status"] == "finished" else float("inf") for s in ss]
        done = [s["final"] for s in ss if s["status"] == "finished"]
        modes = [f.get("modes", f.get("classes")) for f in done]  # digits: classes covered
        hq = [f.get("high_quality", f.get("class_tv")) for f in done]  # digits: class TV
        table.append({
            "config": name, "data": data, "runs": len(ss),
            "w1_over_floor_median": statistics.median(ratios),
            "w1_over_floor_min": min(ratios), "w1_over_floor_max": max(ratios),
            "converged": sum(map(converged, ss)) / len(ss),
            "nn_ratio_median": median_of([s["final"].get("nn_ratio") for s in ss
                                          if s["status"] == "finished"]),
            "diverged": sum(s["status"] == "diverged" for s in ss),
            "modes_median": statistics.median(modes) if modes and modes[0] is not None else None,
            "n_modes": (ss[0]["final"].get("n_modes", ss[0]["final"].get("n_classes"))
                        if ss[0]["final"] else None),
            "w1_median": median_of([f.get("w1") for f in done]),
            "w1_floor_median": median_of([f.get("w1_floor") for f in done]),
            "w1_mean_digit": median_of([f.get("w1_mean_digit") for f in done]),
            "w1_ot_means": median_of([f.get("w1_ot_means") for f in done]),
            "high_quality_median": statistics.median(hq) if hq and hq[0] is not None else None,
            "wall_s_median": statistics.median(s["wall_time_s"] for s in ss)})
    order = {g[0]: i for i, g in enumerate(GRID)}
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
    def write_csv(path, rows):
        if rows:
            with open(path, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)

    write_csv(os.path.join(out, "results.csv"), table)
    write_csv(os.path.join(out, "fixed.csv"), fixed)
    lines = [f"Command: `{command}`", "", note, "",
             f"W1 / floor: final exact W1(generated, real) over the noise floor W1(real, real'), "
             f"each the mean of 3 draws of 1024 points (digits: 512 generated against the 512 "
             f"held-out digits, floor: 512 distinct training digits against them); converged: "
             f"W1 ≤ {CONVERGED} × floor, and where the run logged it (runs from after the "
             f"batch-W1 study) nn ratio ≥ {NN_RATIO_MIN} (no collapse) and, on the mixtures, "
             f"every mode captured (digits: every class covered); diverged runs count as not "
             f"converged. Digits: the modes column counts classes covered, the high-quality "
             f"column is the class histogram's total-variation distance from uniform.",
             *digits_scale(table), "",
             "| config | data | runs | W1/floor median [min, max] | converged | modes | "
             "high quality | nn ratio | wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        modes = f"{fmt(r['modes_median'], 'g')}/{r['n_modes']}" if r["n_modes"] else "–"
        hq = r["high_quality_median"]
        hq = "–" if hq is None else (f"TV {hq:.2f}" if r["data"] == "digits" else
                                     f"{100 * hq:.0f}%")
        diverged = f" ({r['diverged']} diverged)" if r["diverged"] else ""
        ratio = (f"{fmt(r['w1_over_floor_median'], '.2f')} [{fmt(r['w1_over_floor_min'], '.2f')}, "
                 f"{fmt(r['w1_over_floor_max'], '.2f')}]")
        lines.append(f"| {r['config']} | {r['data']} | {r['runs']} | {ratio} | "
                     f"{100 * r['converged']:.0f}%{diverged} | {modes} | {hq} | "
                     f"{fmt(r['nn_ratio_median'], '.2f')} | {fmt(r['wall_s_median'], '.0f')} |")
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    lines = [f"Command: `{command}`", "", note, "",
             "Critic trained alone against fake = real + N(0, I) on the swiss roll "
             "(--fixed-generator). A critic that solved the dual problem would have "
             "estimate / W1 = 1.", "",
             "| config | critic estimate | exact W1 | estimate / W1 | mean ‖∇f‖ |",
             "|---|---|---|---|---|"]
    for r in fixed:
        lines.append(f"| {r['config']} | {fmt(r['critic_estimate'])} | {fmt(r['w1'])} | "
                     f"{fmt(r['estimate_over_w1'], '.2f')} | {fmt(r['grad_norm_mean'], '.2f')} |")
    with open(os.path.join(out, "fixed.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


def load_final(s):
    """The final critic and 512 generated points of the run whose summary is s (None: no
    run ended, nothing to draw)."""
    import torch
    if s is None:
        return None
    try:
        ck = torch.load(os.path.join(s["folder"], "checkpoint.pt"), map_location="cpu",
                        weights_only=True)
    except Exception:  # deleted or damaged: the tables stand, the figure leaves it out
        return None
    mod = importlib.import_module(ck["script"])
    args = argparse.Namespace(**ck["args"])
    G, D = mod.make_models(args)
    D.load_state_dict(ck["D"])
    G.load_state_dict(ck["G"])
    gen = torch.Generator().manual_seed(0)
    real = common.sample(args.data, 512, generator=gen)
    with torch.no_grad():
        fake = mod.fake_batch(G, real, args, gen)
    return D, real, fake


def draw_grids(runs, out, table, ended):
    import torch
    ratio = {(r["config"], r["data"]): r["w1_over_floor_median"] for r in table}
    paths = []
    for data in common.DATASETS:
        panels, seen = [], set()
        for key, name, _, _, d, seed, is_fixed in runs:
            if d != data or is_fixed or name in seen:
                continue
            seen.add(name)  # first seed of each configuration
            final = load_final(ended.get(key))
            if final is None:
                continue
            D, real, fake = final
            panels.append((f"{name}\nW1/floor {fmt(ratio.get((name, data)), '.2f')} (median)",
                           D, real, fake))
        if panels and data == "digits":  # samples, not level sets: 64 digits per configuration
            held_out = common.sample("digits", 64, generator=torch.Generator().manual_seed(0),
                                     split="test")
            paths.append(common.plot_digit_grid(
                [("real (held out)", held_out)] + [(p[0], p[3]) for p in panels],
                os.path.join(out, "grid-digits.png"), ncols=4,
                title="generated digits, first seed of each configuration"))
        elif panels:
            paths.append(common.plot_critic_grid(
                panels, os.path.join(out, f"grid-{data}.png"),
                title=f"final critics and samples on {data} (orange real, green generated)"))
    return paths


def die(message: str):
    common.ArgumentParser(prog="compare.py").error(message)


def main(argv=None):
    a = parse_args(argv)
    a.out = os.path.abspath(a.out)  # the runs execute in the repository's root
    runs = plan(a)
    if not runs:
        die("no run planned: --only, --data and the seeds leave nothing (the digits-only "
            f"configurations {', '.join(sorted(DIGITS_ONLY))} need --data digits)")
    try:
        for f in ("results.md", "fixed.md"):
            if not ours(os.path.join(a.out, f)):
                raise ValueError(f"--out {a.out} holds a {f} that compare.py did not write: "
                                 f"choose another --out")
        wants, lock, cluster = sweep.prepare(runs, a, "compare")
    except ValueError as e:
        die(str(e))
    command = "python benchmarks/compare.py " + " ".join(sys.argv[1:] if argv is None else argv)
    t = time.time()
    try:
        ended, signum, failures = sweep.execute(runs, wants, a, "compare", cluster)
    except sweep.Refused as e:
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
    note = (f"Ran on {ran_on(ended.values())}; this call took {(time.time() - t) / 60:.0f} min "
            f"(runs found already done are not run again). Runs done: {done} of {len(runs)}, "
            f"their wall times add up to {run_minutes:.0f} min."
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
        grids = draw_grids(runs, a.out, table, ended)
        print(f"[compare] done in {time.time() - t:.0f} s: {os.path.join(a.out, 'results.md')}, "
              f"{os.path.join(a.out, 'fixed.md')}, " + ", ".join(grids), flush=True)
    if signum:
        print("[compare] interrupted: the runs that were running wrote their checkpoints; the "
              "same command resumes them", flush=True)
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
