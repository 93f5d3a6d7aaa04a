"""How far can a minibatch W1 be trusted? Collapsed point sets against the noise floor.

For each toy dataset and n, over --draws independent draws of n real points, the exact W1 from
the real sample to:
    floor       another real sample of n points (what a perfect generator scores)
    mean        n copies of the data mean (a generator collapsed to one point)
    ot-means    the n-point W1-optimal quantisation of the data: n equal-mass centroids found by
                alternating an exact transport plan (POT) between a large data sample and the
                centroids, and a Weiszfeld (geometric-median) update of each centroid
                c_i ← Σ_j (π_ij / d_ij) x_j / Σ_j (π_ij / d_ij)
                (Elnekave & Weiss 2025, "Do WGANs succeed because they minimize the Wasserstein
                distance?"; Stanczuk et al. 2021, arXiv:2103.01678, saw c-transform samples look
                like such centroids)
    centres     for the mixtures, the component centres repeated in proportion
    ... drawn   n i.i.d. draws from such a set: what a generator collapsed onto it would produce
If a collapsed set scores below the floor, "W1 ≤ 1.5 × floor" alone cannot tell a converged
generator from a collapsed one: a minibatch W1 has false minima. The nn ratio (common.nn_ratio:
median nearest-neighbour distance among the n points over that among n real points) is printed
beside each: about 1 for real samples, near 0 for a collapsed generator.

    python benchmarks/batch_w1.py                          # 3 datasets × n ∈ {64, 256, 1024}
    python benchmarks/batch_w1.py --ns 64 256 --draws 10 --out results
"""
import os
import statistics
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import common  # noqa: E402
import harness
import report  # noqa: E402


def collapsed_sets(name: str, n: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(10_000 + seed)
    big = common.sample(name, 200_000, generator=gen).double().numpy()
    sets = {"mean": np.repeat(big.mean(axis=0, keepdims=True), n, axis=0),
            "ot-means": common.ot_means(common.sample(name, min(4 * n, 4096), generator=gen)
                                 .double().numpy(), n, seed=seed)}
    c = common.centres(name)
    if c is not None:
        sets["centres"] = c[np.arange(n) % len(c)]
    return sets


def parse_args(argv=None):
    p = harness.ArgumentParser(prog="batch_w1.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", choices=common.TOYS, default=list(common.TOYS),
                   help="toy datasets (the digits' figures: in every --data digits run)")
    p.add_argument("--ns", type=harness.number(int, 2, 4096), nargs="+", default=[64, 256, 1024],
                   help="sample sizes")
    p.add_argument("--draws", type=harness.number(int, 2), default=10,
                   help="independent real samples per size")
    p.add_argument("--out", default=None, help="folder for batch_w1.md, .csv and .png")
    a = p.parse_args(argv)
    if a.out is not None:  # before the computing, not after it
        try:
            harness.writable_folder(a.out)
        except ValueError as e:
            p.error(str(e))
    return a


def main(argv=None):
    a = parse_args(argv)
    rows, t0 = [], time.time()
    lines = report.batch_w1([])  # the header; a row as each is measured, by report.py's renderer
    print("\n".join(lines), flush=True)
    for name in a.data:
        for n in a.ns:
            sets = collapsed_sets(name, n, seed=n)
            gen = torch.Generator().manual_seed(n)
            vals = {k: [] for k in ["floor", *sets, *(f"{k} drawn" for k in sets)]}
            nn = {k: [] for k in vals}
            for _ in range(a.draws):
                real = common.sample(name, n, generator=gen)
                other = common.sample(name, n, generator=gen)
                vals["floor"].append(common.w1(other, real))
                nn["floor"].append(common.nn_ratio(other, real))
                for k, pts in sets.items():
                    drawn = pts[torch.randint(0, n, (n,), generator=gen).numpy()]
                    for key, x in ((k, pts), (f"{k} drawn", drawn)):
                        vals[key].append(common.w1(x, real))
                        nn[key].append(common.nn_ratio(x, real))
            row = {"data": name, "n": n, "draws": a.draws}
            for k, v in vals.items():
                row[f"{k}_mean"], row[f"{k}_sd"] = statistics.mean(v), statistics.stdev(v)
                row[f"{k}_nn_ratio"] = statistics.mean(nn[k])
            row["best_collapsed_over_floor"] = min(
                row[f"{k}_mean"] for k in vals if k != "floor") / row["floor_mean"]
            rows.append(row)
            lines.append(report.batch_w1(report.cells([row]))[-1])
            print(lines[-1], flush=True)
    lines.append(f"\nExact W1 to n real points, mean ± sd over {a.draws} draws, with the nn ratio "
                 f"(about 1: spread like the data; near 0: collapsed); "
                 f"{time.time() - t0:.0f} s. Command: `python benchmarks/batch_w1.py "
                 f"{' '.join(sys.argv[1:] if argv is None else argv)}`")
    print(lines[-1])
    if a.out:
        write(rows, a, time.time() - t0)
        with open(os.path.join(a.out, "batch_w1.md"), "w") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


def write(rows, a, seconds):
    import csv
    os.makedirs(a.out, exist_ok=True)
    keys = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k)
                  if k in rows[0] else 99)
    with open(os.path.join(a.out, "batch_w1.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, restval="")
        w.writeheader()
        w.writerows(rows)
    from matplotlib.figure import Figure
    fig = Figure(figsize=(4.4 * len(a.data), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(a.data)))
    for ax, name in zip(axes, a.data):
        rs = [r for r in rows if r["data"] == name]
        ns = [r["n"] for r in rs]
        for k, style in (("floor", "k-o"), ("mean", "C3--s"), ("ot-means", "C0-^"),
                         ("ot-means drawn", "C0:v"), ("centres", "C2-d"),
                         ("centres drawn", "C2:d")):
            if f"{k}_mean" in rs[0]:
                ax.errorbar(ns, [r[f"{k}_mean"] for r in rs], [r[f"{k}_sd"] for r in rs],
                            fmt=style, ms=4, capsize=2,
                            label={"floor": "real′ (the floor)", "mean": "n × data mean",
                                   "ot-means": "OT-means, n points",
                                   "ot-means drawn": "n draws from OT-means",
                                   "centres": "mixture centres in proportion",
                                   "centres drawn": "n draws from the centres"}[k])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("n (points in each sample)")
        ax.set_ylabel("exact W1 to n real points")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("minibatch W1: a real sample against collapsed point sets", fontsize=11)
    common._save(fig, os.path.join(a.out, "batch_w1.png"))
    print(f"wrote {os.path.join(a.out, 'batch_w1.csv')} and batch_w1.png "
          f"({seconds:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
