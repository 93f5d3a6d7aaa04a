"""Write the tables of the report (results/README.md, its summary of every constraint included)
from the committed CSVs of the sweeps, so that a rerun of a sweep updates them.
Each table has one renderer, here: the sweeps call the same functions for their own tables.

The prose around them is written by hand. Every generated table sits between two markers,

    <!-- table KIND CSV -->
    ...
    <!-- /table -->

and this script rewrites what is between them from CSV (a path relative to the repository):

    grid       benchmarks/compare.py's results.csv (toys or digits)
    lambdas    compare.py --lambdas' results.csv: a row per penalty, a column per λ
    fixed      compare.py's fixed.csv (the critic alone, generator fixed)
    questions  benchmarks/open_questions.py's questions.csv
    batch_w1   benchmarks/batch_w1.py's batch_w1.csv
    w1         benchmarks/w1_benchmark.py's results.csv: the 2-D pairs side by side
    w1_dims    the same across dimensions: a table per funnel count, a column per dimension
    summary    every constraint in one row: CSV is a ';'-separated list of the sweeps it joins

    python benchmarks/report.py            # rewrite the tables in results/README.md
    python benchmarks/report.py --check    # change nothing; exit 1 if a table is out of date
"""
from __future__ import annotations

import csv
import os
import re
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import harness  # noqa: E402
import sweep  # noqa: E402

DOCUMENTS = (os.path.join("results", "README.md"),)  # the front page keeps no generated table
MARKER = re.compile(r"(<!-- table (\w+) ([^ ]+) -->[ \t]*\n)(.*?)(<!-- /table -->)", re.S)


class ReportError(ValueError):
    """A document or a CSV report.py cannot render from: nothing is rewritten (exit 2)."""


def rows_of(path: str) -> list:
    """The rows of a committed CSV; ReportError for one that is missing or has no rows (an
    empty table would blank the rows it renders)."""
    try:
        with open(os.path.join(ROOT, path), newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as e:
        raise ReportError(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None
    if not rows:
        raise ReportError(f"{path}: no rows (an empty or header-only CSV)")
    for i, r in enumerate(rows, 2):  # a torn or shifted row would render as other columns
        if None in r or None in r.values():
            cells = len([v for v in r.values() if v is not None])
            raise ReportError(f"{path}: line {i} has {cells} cells where the header has "
                              f"{len([k for k in r if k])}")
    return rows


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
    """'median [min, max]' of a column's three cells (key + k, key + '_min', key + '_max'); the
    median alone for a table that kept no range."""
    if key + "_min" not in r:
        return num(r[key + k], spec)
    return f"{num(r[key + k], spec)} [{num(r[key + '_min'], spec)}, " \
           f"{num(r[key + '_max'], spec)}]"


def modes(r) -> str:
    """The modes (classes) cell: "median/n", with "[min, max]" after it where the runs differ
    (a table written before the range was kept shows the median alone)."""
    if r is None or not r.get("n_modes"):
        return "–"
    cell = f"{num(r['modes_median'], 'g')}/{r['n_modes']}"
    low, high = num(r.get("modes_min"), "g"), num(r.get("modes_max"), "g")
    return cell + (f" [{low}, {high}]" if "–" not in (low, high) and low != high else "")


def settles(r) -> str:
    """The settling cell: the median iteration from which W1 stayed ≤ 1.5 × floor ("never"
    where most runs never settled), how many runs settled, and how many touched the threshold
    and left it; "–" for a table written before these columns were."""
    at = r.get("settled_at_median")
    if at in ("", None):
        return "–"
    left = int(r.get("left_runs") or 0)
    return (("never" if float(at) == float("inf") else num(at, ".0f"))
            + f" ({r.get('settled_runs', '–')}/{r['runs']}" + (f", {left} left" if left else "")
            + ")")


def grid(rows) -> list:
    out = ["| config | data | runs | W1/floor median [min, max] | converged | settles at "
           "(settled, left) | last third | modes | high quality | nn ratio | ms/it | wall s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        digits = r["data"] in ("digits", "mnist")
        hq = r["high_quality_median"]  # images: the class histogram's TV from uniform
        hq = "–" if hq in ("", None) else f"TV {num(hq)}" if digits else \
            f"{num(100 * float(hq), '.0f')}%"
        if r.get("fd_over_floor_median") not in ("", None):  # mnist: the feature distance too
            hq += f", FD {num(r['fd_over_floor_median'])} × floor"
        diverged = f" ({r['diverged']} diverged)" if r.get("diverged") not in ("0", "", None) \
            else ""
        out.append(f"| {r['config']} | {r['data']} | {r['runs']} | {spread(r, 'w1_over_floor')} "
                   f"| {num(100 * float(r['converged']), '.0f')}%{diverged} | {settles(r)} | "
                   f"{num(r.get('last_third_median'))} | {modes(r)} | {hq} | "
                   f"{num(r.get('nn_ratio_median'))} | {num(r.get('ms_per_iter_median'), '.1f')} "
                   f"| {num(r['wall_s_median'], '.0f')} |")
    return out


def lambdas(rows) -> list:
    """The λ grid of compare.py --lambdas in one table per dataset: a row per penalty, a cell
    per λ, 'W1/floor median (converged/runs)', "–" where no run has ended; in bold the λs the
    front page's summary runs that penalty at."""
    configs = sweep.configs()
    same = {name: (script, sweep.without_lambda(spec["flags"])) for name, script, spec in configs}
    summary = {}  # the λs the summary's rows run each penalty at (WGAN-GP: 10 and 0.1)
    for name, script, spec in configs:
        if spec.get("summary") and sweep.takes_lambda(script):
            summary.setdefault(same[name], set()).add(
                sweep.resolved_args(script, spec["flags"]).get("lam"))
    out = []
    for data in dict.fromkeys(r["data"] for r in rows):
        cells, grid_lams = {}, set()
        for r in rows:
            base, lam = sweep.split_lambda(r["config"])
            if r["data"] != data or lam is None:
                continue
            grid_lams.add(lam)
            n = int(r["runs"])
            cell = f"{num(r['w1_over_floor_median'])} ({round(float(r['converged']) * n)}/{n})"
            bold = lam in summary.get(same.get(base), ())
            cells.setdefault(base, {})[lam] = f"**{cell}**" if bold else cell
        lams = sorted(grid_lams)
        out += [f"{data}: W1 / floor, median over the seeds (runs converged / runs ended)", "",
                "| penalty | " + " | ".join(f"λ {lam:g}" for lam in lams) + " |",
                "|---|" + "---|" * len(lams)]
        out += [f"| {sweep.penalty_label(base)} | " + " | ".join(c.get(lam, "–") for lam in lams)
                + " |" for base, c in cells.items()]
        out.append("")
    return out[:-1]


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
    """The 2-D pairs side by side: every constraint's cos / L2 / est÷W1 beside its family's
    published row."""
    rows = [r for r in rows if r.get("dim", "2") == "2"]
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


def w1_dims(rows) -> list:
    """The W1 benchmark across dimensions: a table per funnel count, a column per dimension,
    each cell cos / est÷W1 (medians over the seeds) with the published solver's in brackets,
    and what one critic update costs at the smallest and the largest dimension."""
    out = []
    for funnels in sorted({r["funnels"] for r in rows}, key=int):
        rs = [r for r in rows if r["funnels"] == funnels]
        dims = sorted({r["dim"] for r in rs}, key=int)
        by = {(r["config"], r["dim"]): r for r in rs}
        out += [f"{funnels} funnels, cos / est÷W1 (the published solver's in brackets):", "",
                "| constraint (published solver) | " + " | ".join(f"D = {d}" for d in dims)
                + f" | ms/it, D = {dims[0]} → {dims[-1]} |", "|---|" + "---|" * (len(dims) + 1)]
        for name in dict.fromkeys(r["config"] for r in rs):
            cells = []
            for d in dims:
                r = by.get((name, d))
                cell = "–" if r is None else f"{num(r['cos'])} / {num(r['est_over_w1'])}"
                if r is not None and r["published_solver"]:
                    cell += f" ({num(r['published_cos'])} / {num(r['published_est_over_w1'])})"
                cells.append(cell)
            ends = [by.get((name, d)) for d in (dims[0], dims[-1])]
            ms = " → ".join(num(r["ms_per_iter"], ".0f") if r else "–" for r in ends)
            solver = next((r["published_solver"] for r in rs if r["config"] == name), "")
            out.append(f"| {name}{f' ({solver})' if solver else ''} | " + " | ".join(cells)
                       + f" | {ms} |")
        out.append("")
    return out


def w1_pairs(rows) -> list:
    """benchmarks/w1_benchmark.py's own results.md: a table per pair, every constraint's cos, L2
    and estimate / true W1 as median [min, max] over its seeds, beside the published row."""
    out = []
    pairs = sorted({(r["dim"], r["funnels"]) for r in rows}, key=lambda p: (int(p[0]), int(p[1])))
    for dim, funnels in pairs:
        rs = [r for r in rows if (r["dim"], r["funnels"]) == (dim, funnels)]
        quotient = any(r.get("quotient") for r in rs)  # a column only where one was measured
        out += [f"### D = {dim}, {funnels} funnels (true W1 {num(rs[0]['true_w1'], '.3f')}; the "
                f"paper's {num(rs[0]['published_true_w1'], '.3f')})", "",
                "| constraint | seeds × iters | cos | L2 | est / W1 | published (solver: cos, "
                "L2, est / W1) | on a centre | " + "max quotient | " * quotient + "ms/it |",
                "|---|---|---|---|---|---|---|" + "---|" * quotient + "---|"]
        for r in rs:
            pub = (f"{r['published_solver']}: {num(r['published_cos'])}, "
                   f"{num(r['published_l2'])}, {num(r['published_est_over_w1'])}"
                   if r["published_solver"] else "–")
            div = f" ({r['diverged']} diverged)" if r.get("diverged") not in ("0", "", None) \
                else ""
            out.append(f"| {r['config']} | {r['seeds']} × {r['iters']}{div} | "
                       f"{spread(r, 'cos', k='')} | {spread(r, 'l2', k='')} | "
                       f"{spread(r, 'est_over_w1', k='')} | {pub} | "
                       f"{num(100 * float(r['at_centre']), '.0f')} % | "
                       + (f"{spread(r, 'quotient', '.3f', k='') if r.get('quotient') else '–'} | "
                          if quotient else "")
                       + f"{num(r['ms_per_iter'], '.1f')} |")
        out.append("")
    return out


# The summary: one row per configuration whose method script gives it a summary label (its
# CONFIGS), in the scripts' order; its W1 benchmark cells are that configuration's rows there.
def summary(paths) -> list:
    toys, digits, bench, curves = {}, {}, {}, {}
    for path in paths:
        for r in rows_of(path):
            if "config" not in r or ("funnels" not in r and "data" not in r):
                raise ReportError(f"{path}: neither a grid's nor the W1 benchmark's results.csv")
            if "at" in r:  # the learning curves' store: a row per training and point
                if r["at"] == r["iters"] and r["dim"] == "128":  # where each training ended
                    curves.setdefault((r["config"], r["funnels"]), []).append(r)
            elif "funnels" in r:
                bench[(r["config"], r.get("dim", "2"), r["funnels"])] = r
            elif r["data"] == "digits":
                digits[r["config"]] = r
            else:
                toys[(r["config"], r["data"])] = r

    def swiss(c):
        r = toys.get((c, "swissroll"))
        if r is None:
            return "–"
        ok = round(float(r["converged"]) * int(r["runs"]))
        at = r.get("settled_at_median")
        after = "" if at in ("", None) else ", never settles" if float(at) == float("inf") \
            else f", settles at {num(at, '.0f')}, {num(r.get('ms_per_iter_median'), '.0f')} ms/it"
        return f"{spread(r, 'w1_over_floor')} ({ok}/{r['runs']}){after}"

    def mixtures(c):
        return " · ".join(modes(toys.get((c, d))) for d in ("8gaussians", "25gaussians"))

    def dig(c):
        r = digits.get(c)
        if r is None:
            return "–"
        return f"{spread(r, 'w1_over_floor')}, {modes(r)}"

    def w1b(c):
        def trend(funnels):
            low, high = (bench.get((c, d, funnels)) for d in ("2", "128"))
            if not (low or high):
                return "–"
            return f"{num(low['cos']) if low else '–'}→{num(high['cos']) if high else '–'}"
        return f"{trend('4')} · {trend('64')}"

    def longer(c):  # 128-D only, median over the seeds, their number where more than one
        def at(funnels):
            cos = [float(r["cos"]) for r in curves.get((c, funnels), [])
                   if r["cos"] not in ("", "nan")]  # a diverged training has none
            if not cos:
                return "–"
            return num(statistics.median(cos)) + (f" ({len(cos)} seeds)" if len(cos) > 1 else "")
        return f" {at('4')} · {at('64')} |"

    lengths = "/".join(sorted({r.get("iters", "?") for r in bench.values()}, key=str)) or "–"
    ends = "/".join(sorted({rs[0]["iters"] for rs in curves.values()}, key=int))
    out = ["| constraint | swiss roll: W1/floor (converged) | modes: 8 · 25 gaussians | "
           f"digits: W1/floor, classes | W1 benchmark at {lengths} iterations: cos, 2-D→128-D "
           "(4 · 64 funnels) |" + (f" at {ends} iterations, 128-D: cos (4 · 64 funnels) |"
                                   if curves else ""),
           "|---|---|---|---|---|" + ("---|" if curves else "")]
    out += [f"| {spec['summary']} | {swiss(c)} | {mixtures(c)} | {dig(c)} | {w1b(c)} |"
            + (longer(c) if curves else "")
            for c, _, spec in sweep.configs() if "summary" in spec]
    return out


def w1_curves(rows) -> list:
    """The W1 benchmark's learning curves (its runs.csv: a row per training and point): a table
    per pair, each constraint's cos and estimate / W1 at the points every training reached (in
    the columns: 1000 and the last), median [min, max] over the seeds, and its largest ‖∇f‖ at
    the end: one training's curve, so a row compares lengths, a column constraints."""
    def cell(values):
        values = sorted(values)
        if not values:
            return "–"
        return num(statistics.median(values)) + (f" [{num(values[0])}, {num(values[-1])}]" if len(values) > 1 else "")
    out = []
    for dim, funnels in sorted({(int(r["dim"]), int(r["funnels"])) for r in rows}):
        rs = [r for r in rows if (int(r["dim"]), int(r["funnels"])) == (dim, funnels)]
        ends = sorted({int(r["iters"]) for r in rs})
        points = sorted({p for p in (1000, *ends) if all(any(int(x["at"]) == p for x in rs
                                                              if x["config"] == c)
                                                          for c in {r["config"] for r in rs})})
        out += [f"D = {dim}, {funnels} funnels:", "",
                "| constraint | seeds | " + " | ".join(f"cos at {p}" for p in points) + " | "
                + " | ".join(f"est/W1 at {p}" for p in points) + " | max ‖∇f‖ at the end |",
                "|---|---|" + "---|" * (2 * len(points) + 1)]
        order = {n: i for i, (n, *_) in enumerate(sweep.configs())}  # the scripts' order
        for name in sorted({r["config"] for r in rs}, key=lambda n: (order.get(n, len(order)),
                                                                    n)):
            mine = [r for r in rs if r["config"] == name]
            at = {p: [r for r in mine if int(r["at"]) == p] for p in points}
            last = [r for r in mine if r["at"] == r["iters"]]
            out.append(f"| {name} | {len(last)} | "
                       + " | ".join(cell([float(r["cos"]) for r in at[p]]) for p in points)
                       + " | " + " | ".join(cell([float(r["estimate"]) / float(r["true_w1"])
                                                 for r in at[p]]) for p in points)
                       + f" | {cell([float(r['grad_norm_max']) for r in last])} |")
        out.append("")
    return out


def w1_steps(rows) -> list:
    """Each training of a W1-benchmark runs.csv on its own (a row per configuration and seed):
    cos / estimate ÷ W1 at every point of its curve from 1000 on, and the largest Lipschitz
    quotient and the largest ‖∇f‖ at samples of P measured along it: where a curve steps, and
    whether the critic is still 1-Lipschitz after the step."""
    out = []
    for dim, funnels in sorted({(int(r["dim"]), int(r["funnels"])) for r in rows}):
        rs = [r for r in rows if (int(r["dim"]), int(r["funnels"])) == (dim, funnels)
              and int(r["at"]) >= 1000]
        points = sorted({int(r["at"]) for r in rs})
        out += [f"D = {dim}, {funnels} funnels, cos / est÷W1 at each iteration:", "",
                "| training | " + " | ".join(f"{p:,}" for p in points)
                + " | max quotient · max ‖∇f‖ |", "|---|" + "---|" * (len(points) + 1)]
        order = {n: i for i, (n, *_) in enumerate(sweep.configs())}  # the scripts' order
        for name, seed in sorted({(r["config"], int(r["seed"])) for r in rs},
                                 key=lambda k: (order.get(k[0], len(order)), k)):
            mine = {int(r["at"]): r for r in rs if (r["config"], int(r["seed"])) == (name, seed)}
            def largest(key):
                v = [float(r[key]) for r in mine.values() if r.get(key) not in (None, "", "nan")]
                return num(max(v), ".3f") if v else "–"
            cells = [f"{num(mine[p]['cos'])} / "
                     f"{num(float(mine[p]['estimate']) / float(mine[p]['true_w1']))}"
                     if p in mine else "–" for p in points]
            out.append(f"| {name}, seed {seed} | " + " | ".join(cells)
                       + f" | {largest('quotient_max')} · {largest('grad_norm_max')} |")
        out.append("")
    return out


KINDS = {"grid": grid, "lambdas": lambdas, "fixed": fixed, "questions": questions, "batch_w1": batch_w1, "w1": w1,
         "w1_dims": w1_dims, "w1_curves": w1_curves, "w1_steps": w1_steps}


def render(kind: str, source: str) -> str:
    """The table of this kind from its CSV(s); ReportError naming the file and what is wrong
    with it (a missing column, a cell that is no number)."""
    if kind != "summary" and kind not in KINDS:
        raise ReportError(f"unknown table kind {kind!r}")
    try:
        lines = summary(source.split(";")) if kind == "summary" else KINDS[kind](rows_of(source))
    except KeyError as e:
        raise ReportError(f"{source}: no column {e.args[0]!r}") from None
    except (ValueError, TypeError) as e:
        if isinstance(e, ReportError):
            raise
        raise ReportError(f"{source}: a cell is not what the table needs ({e})") from None
    return "\n".join(lines) + "\n"


MARKERS = re.compile(r"<!-- (table \w+ [^ ]+|/table) -->")


def update(text: str, doc: str = "the document") -> str:
    """text with every generated table rewritten; ReportError, and nothing rewritten, if its
    markers do not pair up (a lost closing marker would make the table swallow the prose up to
    the next one)."""
    expect_open = True
    for m in MARKERS.finditer(text):
        opening = m.group(1).startswith("table ")
        if opening != expect_open:
            line = text.count("\n", 0, m.start()) + 1
            raise ReportError(f"{doc}:{line}: " + (
                "a table opens before the last one closed (a lost <!-- /table -->?)" if opening
                else "<!-- /table --> with no table open"))
        expect_open = not expect_open
    if not expect_open:
        raise ReportError(f"{doc}: the last table never closes (a lost <!-- /table -->?)")
    found = {m.start() for m in MARKER.finditer(text)}
    for m in MARKERS.finditer(text):  # an opening marker the rewrite would not see: never skip
        if m.group(1).startswith("table ") and m.start() not in found:
            line = text.count("\n", 0, m.start()) + 1
            raise ReportError(f"{doc}:{line}: a table marker with more than its line after it")
    return MARKER.sub(lambda m: m.group(1) + render(m.group(2), m.group(3)) + m.group(5), text)


def parse_args(argv=None):
    p = harness.ArgumentParser(prog="report.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 if a generated table is out of date")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """0: every table is up to date (or rewritten); 1: --check found one out of date; 2: a
    document or a CSV it cannot render from, and nothing is rewritten."""
    harness.robust_console()  # λ on any console; | head never stops a sweep
    a = parse_args(argv)
    new = {}
    for doc in DOCUMENTS:
        path = os.path.join(ROOT, doc)
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            new[path] = (text, update(text, doc))
        except (OSError, UnicodeDecodeError) as e:
            print(f"report.py: {doc}: cannot be read "
                  f"({getattr(e, 'strerror', None) or type(e).__name__}); nothing is rewritten",
                  file=sys.stderr)
            return 2
        except ReportError as e:
            print(f"report.py: {e}; nothing is rewritten", file=sys.stderr)
            return 2
    stale = [os.path.relpath(p, ROOT) for p, (old, text) in new.items() if old != text]
    if a.check and stale:
        print(f"report.py: out of date: {', '.join(stale)} (run python benchmarks/report.py)",
              file=sys.stderr)
        return 1
    for path, (old, text) in new.items():
        if old != text:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
    print(("rewrote " + ", ".join(stale)) if stale else "every table is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
