"""Write the tables of the report (results/README.md) and of the front page's summary
(README.md) from the committed CSVs of the sweeps, so that a rerun of a sweep updates them.
Each table has one renderer, here: the sweeps call the same functions for their own tables.

The prose around them is written by hand. Every generated table sits between two markers,

    <!-- table KIND CSV -->
    ...
    <!-- /table -->

and this script rewrites what is between them from CSV (a path relative to the repository):

    grid       benchmarks/compare.py's results.csv (toys or digits)
    fixed      compare.py's fixed.csv (the critic alone, generator fixed)
    questions  benchmarks/open_questions.py's questions.csv
    batch_w1   benchmarks/batch_w1.py's batch_w1.csv
    w1         benchmarks/w1_benchmark.py's results.csv (both pairs side by side)
    summary    every constraint in one row: CSV is a ';'-separated list of the sweeps it joins

    python benchmarks/report.py            # rewrite the tables in README.md and results/README.md
    python benchmarks/report.py --check    # change nothing; exit 1 if a table is out of date
"""
from __future__ import annotations

import csv
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import common  # noqa: E402
import sweep  # noqa: E402

DOCUMENTS = ("README.md", os.path.join("results", "README.md"))
MARKER = re.compile(r"(<!-- table (\w+) ([^ ]+) -->\n)(.*?)(<!-- /table -->)", re.S)


def rows_of(path: str) -> list:
    with open(os.path.join(ROOT, path), newline="") as fh:
        return list(csv.DictReader(fh))


def cells(rows) -> list:
    """Rows of Python values as their CSV file holds them (strings; None is empty), so that a
    sweep renders its table from what it writes exactly as this script renders it later."""
    return [{k: "" if v is None else str(v) for k, v in r.items()} for r in rows]


def write_csv(path: str, rows) -> None:
    """rows (dicts) as a CSV file with the first row's columns (nothing for no rows)."""
    if rows:
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]), restval="")
            w.writeheader()
            w.writerows(rows)


def num(v, spec=".2f", empty="–"):
    """A CSV cell as a number in spec, or `empty` for a missing value."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return empty
    return empty if x != x else format(x, spec)


def spread(r, key, spec=".2f", k="_median"):
    """'median [min, max]' of a column's three cells (key + k, key + '_min', key + '_max')."""
    return f"{num(r[key + k], spec)} [{num(r[key + '_min'], spec)}, " \
           f"{num(r[key + '_max'], spec)}]"


def grid(rows) -> list:
    out = ["| config | data | runs | W1/floor median [min, max] | converged | modes | "
           "high quality | nn ratio | wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        digits = r["data"] == "digits"
        modes = f"{num(r['modes_median'], 'g')}/{r['n_modes']}" if r.get("n_modes") else "–"
        hq = r["high_quality_median"]  # digits: the class histogram's TV from uniform
        hq = "–" if hq in ("", None) else f"TV {num(hq)}" if digits else \
            f"{num(100 * float(hq), '.0f')}%"
        diverged = f" ({r['diverged']} diverged)" if r.get("diverged") not in ("0", "", None) \
            else ""
        out.append(f"| {r['config']} | {r['data']} | {r['runs']} | {spread(r, 'w1_over_floor')} "
                   f"| {num(100 * float(r['converged']), '.0f')}%{diverged} | {modes} | {hq} | "
                   f"{num(r.get('nn_ratio_median'))} | {num(r['wall_s_median'], '.0f')} |")
    return out


def fixed(rows) -> list:
    out = ["| config | critic estimate | exact W1 | estimate / W1 | mean ‖∇f‖ |",
           "|---|---|---|---|---|"]
    out += [f"| {r['config']} | {num(r['critic_estimate'], '.3f')} | {num(r['w1'], '.3f')} | "
            f"{num(r['estimate_over_w1'])} | {num(r['grad_norm_mean'])} |" for r in rows]
    return out


def questions(rows) -> list:
    out = ["| config | Q | runs | W1/floor median [min, max] | converged | nn ratio | dist corr | "
           "‖∇f‖ in band / out | cos(disc, pen) | ms/it |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        div = f" ({r['diverged']} diverged)" if r["diverged"] not in ("0", "") else ""
        out.append(f"| {r['config']} | {r['questions']} | {r['runs']} | "
                   f"{num(r['w1_over_floor'])} [{num(r['w1_over_floor_min'])}, "
                   f"{num(r['w1_over_floor_max'])}] | {r['converged']}/{r['runs']}{div} | "
                   f"{num(r['nn_ratio'])} | {num(r['dist_corr'])} | {num(r['grad_in_band'])} / "
                   f"{num(r['grad_out_band'])} | {num(r['cos_disc_pen'])} | "
                   f"{num(r['ms_per_iter'], '.1f')} |")
    return out


def batch_w1(rows) -> list:
    sets = ["floor", "mean", "ot-means", "ot-means drawn", "centres", "centres drawn"]
    out = ["| data | n | floor W1(real, real′) | mean ×n | OT-means | OT-means drawn | centres | "
           "centres drawn | best collapsed / floor |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{num(r[k + '_mean'], '.4f')} ± {num(r[k + '_sd'], '.4f')} "
                 f"(nn {num(r[k + '_nn_ratio'])})" if r.get(k + "_mean") not in ("", None)
                 else "–" for k in sets]
        out.append(f"| {r['data']} | {r['n']} | " + " | ".join(cells)
                   + f" | {num(r['best_collapsed_over_floor'])} |")
    return out


def w1(rows) -> list:
    by = {(r["config"], r["funnels"]): r for r in rows}
    pairs = sorted({r["funnels"] for r in rows}, key=int)
    out = ["| constraint | " + " | ".join(f"{f} funnels: cos / L2 / est÷W1 | published ({f})"
                                          for f in pairs) + " |",
           "|---|" + "---|---|" * len(pairs)]
    for name in dict.fromkeys(r["config"] for r in rows):
        cells = []
        for f in pairs:
            r = by.get((name, f))
            if r is None:
                cells += ["–", "–"]
                continue
            cells.append(f"{num(r['cos'])} / {num(r['l2'])} / {num(r['est_over_w1'])}")
            cells.append(f"{r['published_solver']}: {num(r['published_cos'])} / "
                         f"{num(r['published_l2'])} / {num(r['published_est_over_w1'])}"
                         if r["published_solver"] else "–")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


def w1_pairs(rows) -> list:
    """benchmarks/w1_benchmark.py's own results.md: a table per pair, every constraint's cos, L2
    and estimate / true W1 as median [min, max] over its seeds, beside the published row."""
    out = []
    for funnels in sorted({r["funnels"] for r in rows}, key=int):
        rs = [r for r in rows if r["funnels"] == funnels]
        out += [f"### {funnels} funnels (true W1 {num(rs[0]['true_w1'], '.3f')}; the paper's "
                f"{num(rs[0]['published_true_w1'], '.3f')})", "",
                "| constraint | seeds × iters | cos | L2 | est / W1 | published (solver: cos, "
                "L2, est / W1) | on a centre | s per run |", "|---|---|---|---|---|---|---|---|"]
        for r in rs:
            pub = (f"{r['published_solver']}: {num(r['published_cos'])}, "
                   f"{num(r['published_l2'])}, {num(r['published_est_over_w1'])}"
                   if r["published_solver"] else "–")
            out.append(f"| {r['config']} | {r['seeds']} × {r['iters']} | {spread(r, 'cos', k='')} "
                       f"| {spread(r, 'l2', k='')} | {spread(r, 'est_over_w1', k='')} | {pub} | "
                       f"{num(100 * float(r['at_centre']), '.0f')} % | "
                       f"{num(r['seconds'], '.0f')} |")
        out.append("")
    return out


# The summary: one row per configuration whose method script gives it a summary label (its
# CONFIGS), in the scripts' order; its W1 benchmark cells are that configuration's rows there.
def summary(paths) -> list:
    toys, digits, bench = {}, {}, {}
    for path in paths:
        for r in rows_of(path):
            if "funnels" in r:
                if r.get("dim", "2") == "2":  # the 2-D pairs
                    bench[(r["config"], r["funnels"])] = r
            elif r["data"] == "digits":
                digits[r["config"]] = r
            else:
                toys[(r["config"], r["data"])] = r

    def swiss(c):
        r = toys.get((c, "swissroll"))
        if r is None:
            return "–"
        ok = round(float(r["converged"]) * int(r["runs"]))
        return f"{num(r['w1_over_floor_median'])} ({ok}/{r['runs']})"

    def modes(c):
        cells = [f"{num(r['modes_median'], 'g')}/{r['n_modes']}" if r else "–"
                 for r in (toys.get((c, d)) for d in ("8gaussians", "25gaussians"))]
        return " · ".join(cells)

    def dig(c):
        r = digits.get(c)
        if r is None:
            return "–"
        return f"{num(r['w1_over_floor_median'])}, {num(r['modes_median'], 'g')}/10"

    def w1b(c):
        if (c, "4") not in bench:
            return "–"
        a, b = bench[(c, "4")], bench.get((c, "16"))
        return f"{num(a['cos'])} · {num(b['cos']) if b else '–'} ({num(a['est_over_w1'])})"

    out = ["| constraint | swiss roll: W1/floor (converged) | modes: 8 · 25 gaussians | "
           "digits: W1/floor, classes | W1 benchmark: cos 4 · 16 funnels (est/W1, 4) |",
           "|---|---|---|---|---|"]
    out += [f"| {spec['summary']} | {swiss(c)} | {modes(c)} | {dig(c)} | {w1b(c)} |"
            for c, _, spec in sweep.configs() if "summary" in spec]
    return out


KINDS = {"grid": grid, "fixed": fixed, "questions": questions, "batch_w1": batch_w1, "w1": w1}


def render(kind: str, source: str) -> str:
    if kind == "summary":
        return "\n".join(summary(source.split(";"))) + "\n"
    if kind not in KINDS:
        raise ValueError(f"unknown table kind {kind!r}")
    return "\n".join(KINDS[kind](rows_of(source))) + "\n"


def update(text: str) -> str:
    return MARKER.sub(lambda m: m.group(1) + render(m.group(2), m.group(3)) + m.group(5), text)


def parse_args(argv=None):
    p = common.ArgumentParser(prog="report.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 if a generated table is out of date")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    stale = []
    for doc in DOCUMENTS:
        path = os.path.join(ROOT, doc)
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        new = update(text)
        if new != text:
            stale.append(doc)
            if not a.check:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(new)
    if a.check and stale:
        print(f"report.py: out of date: {', '.join(stale)} (run python benchmarks/report.py)",
              file=sys.stderr)
        return 1
    print(("rewrote " + ", ".join(stale)) if stale else "every table is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
