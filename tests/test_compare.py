"""The comparison script on a tiny grid: tables and figures are written, and a rerun resumes."""
import csv
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import compare  # noqa: E402

TINY = ["--only", "slogan-l10", "gp-onesided-l10", "--data", "swissroll", "--seeds", "0",
        "--iters", "2", "--dim", "8", "--jobs", "2", "--extra", "--batch", "16", "--n-critic", "1"]


def test_tiny_grid_writes_results_and_resumes(tmp_path, capsys):
    out = str(tmp_path / "cmp")
    assert compare.main(TINY[:-5] + ["--out", out] + TINY[-5:]) == 0
    first = capsys.readouterr().out
    assert first.count("exit 0") == 4  # 2 configurations + their 2 fixed-generator runs
    rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
    assert {r["config"] for r in rows} == {"slogan-l10", "gp-onesided-l10"}
    assert all(float(r["w1_over_floor_median"]) > 0 and r["runs"] == "1" for r in rows)
    md = open(os.path.join(out, "results.md")).read()
    assert "| slogan-l10 | swissroll | 1 |" in md and "Command:" in md
    fixed = list(csv.DictReader(open(os.path.join(out, "fixed.csv"))))
    assert {r["config"] for r in fixed} == {"slogan-l10", "gp-onesided-l10"}
    assert os.path.getsize(os.path.join(out, "grid-swissroll.png")) > 10_000
    # a second call finds every run finished and runs nothing again
    assert compare.main(TINY[:-5] + ["--out", out] + TINY[-5:]) == 0
    second = capsys.readouterr().out
    assert second.count("skipped (done)") == 4 and "exit" not in second.split("done in")[0]
    assert "not done" not in second


def test_report_only_counts_missing_runs(tmp_path, capsys):
    out = str(tmp_path / "cmp")
    assert compare.main(["--only", "slogan-l10", "--data", "swissroll", "--seeds", "0", "1",
                         "--no-run", "--out", out]) == 0
    said = capsys.readouterr().out
    assert "3 of 3 runs are not done" in said and "exit" not in said
    assert "Runs done: 0 of 3" in open(os.path.join(out, "results.md")).read()


def test_plan_covers_the_issue_grid():
    a = compare.parse_args([])
    runs = compare.plan(a)
    swiss = [r for r in runs if r[4] == "swissroll" and not r[6]]
    assert len(swiss) == 3 * len(compare.GRID)  # every configuration, 3 seeds
    for data in ("8gaussians", "25gaussians"):
        assert len([r for r in runs if r[4] == data]) == len(compare.GRID)
    assert len({r[0] for r in runs}) == len(runs)  # one folder per run
