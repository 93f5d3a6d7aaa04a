"""The comparison script on a tiny grid: tables and figures are written, and a rerun resumes."""
import csv
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import compare  # noqa: E402
import sweep  # noqa: E402
from common import SCRIPTS  # noqa: E402

pytestmark = pytest.mark.real_figures  # figures are what several of these tests check

TINY = ["--only", "slogan-l10", "--data", "swissroll", "digits", "--seeds",
        "0", "--digits-seeds", "0", "--iters", "1", "--dim", "8", "--jobs", "2"]
RUN = ["--extra", "--batch", "16", "--n-critic", "1"]


def test_tiny_grid_writes_results_resumes_and_the_questions_reuse_its_runs(tmp_path, capsys,
                                                                          monkeypatch):
    """A configuration on the swiss roll and the digits and its fixed-generator run, on the
    local pool where Ray is not installed: the counts while no run ends, the tables and
    figures; a second call runs nothing; and open_questions.py, asked for a run of the same
    identity into the same folder, finds it done and writes its table from it."""
    import open_questions
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as without the package
    monkeypatch.delitem(sys.modules, "on_ray", raising=False)
    out = str(tmp_path / "cmp")
    assert compare.main(TINY + ["--out", out, "--heartbeat", "0.01"] + RUN) == 0
    first = capsys.readouterr().out
    assert first.count("exit 0") == 3  # 2 datasets + the fixed-generator run
    assert "0/3 done, 2 running | still running" in first  # every 0.6 s while the runs run
    rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
    assert {(r["config"], r["data"]) for r in rows} == {
        ("slogan-l10", "swissroll"), ("slogan-l10", "digits")}
    assert all(float(r["w1_over_floor_median"]) > 0 and r["runs"] == "1" for r in rows)
    md = open(os.path.join(out, "results.md")).read()
    assert "| slogan-l10 | swissroll | 1 |" in md and "Command:" in md
    assert "| slogan-l10 | digits | 1 |" in md and "/10 |" in md and "TV " in md
    assert "mean digit repeated 512 times" in md
    fixed = list(csv.DictReader(open(os.path.join(out, "fixed.csv"))))
    assert [r["config"] for r in fixed] == ["slogan-l10"]
    for f in ("grid-swissroll.png", "grid-digits.png"):
        assert os.path.getsize(os.path.join(out, f)) > 10_000, f
    # a second call finds every run finished and runs nothing again
    assert compare.main(TINY + ["--out", out] + RUN) == 0
    second = capsys.readouterr().out
    assert second.count("skipped (done)") == 3 and "exit" not in second.split("done in")[0]
    assert "not done" not in second
    argv = ["--only", "slogan-l10", "--seeds", "0", "--iters-scale", "0.0002", "--out", out,
            *RUN, "--dim", "8"]
    assert open_questions.main(argv) == 0
    assert "skipped (done)" in capsys.readouterr().out
    md = open(os.path.join(out, "questions.md")).read()
    assert "| slogan-l10 | Q1 Q3 | 1 |" in md
    (row,) = csv.DictReader(open(os.path.join(out, "questions.csv")))
    assert row["dist_corr"] != "" and float(row["ms_per_iter"]) > 0


def test_report_only_counts_missing_runs(tmp_path, capsys):
    out = str(tmp_path / "cmp")
    assert compare.main(["--only", "slogan-l10", "--data", "swissroll", "--seeds", "0", "1",
                         "--no-run", "--out", out]) == 0
    said = capsys.readouterr().out
    assert "3 of 3 runs are not done" in said and "exit" not in said
    md = open(os.path.join(out, "results.md")).read()
    assert "Runs done: 0 of 3" in md and "tables written by --no-run" in md
    # the command shown is the one whose runs fill the tables, not the redraw's
    assert md.startswith("Command: `python benchmarks/compare.py --only slogan-l10 --data "
                         f"swissroll --seeds 0 1 --out {out}`") and "this call took" not in md


def test_the_modes_cell_shows_the_range_where_the_seeds_differ(tmp_path):
    """Three mixture seeds that caught 6, 8 and 7 of 8 modes: the row keeps median, min and
    max, and the grid table and the summary print "7/8 [6, 8]"; seeds that agree print "8/8";
    a table written before the range was kept prints its median alone."""
    import report
    a = compare.parse_args(["--only", "slogan-l10", "--data", "8gaussians", "25gaussians",
                            "--mixture-seeds", "0", "1", "2", "--no-fixed", "--out",
                            str(tmp_path)])
    runs = compare.plan(a)
    caught = {"8gaussians": (6, 8, 7), "25gaussians": (20, 20, 20)}
    ended = {key: {"status": "finished", "wall_time_s": 1.0, "folder": None,
                   "final": {"w1": 0.1, "w1_floor": 0.05, "nn_ratio": 1.0,
                             "modes": caught[data][seed], "n_modes": int(data[:-9])}}
             for key, _, _, _, data, seed, _ in runs}
    table, _ = compare.summarise(runs, ended)
    eight, twenty_five = sorted(table, key=lambda r: r["n_modes"])
    assert (eight["modes_median"], eight["modes_min"], eight["modes_max"]) == (7, 6, 8)
    lines = report.grid(report.cells(table))
    assert "| 7/8 [6, 8] |" in lines[2] and "| 20/25 |" in lines[3]
    old = {k: v for k, v in report.cells([eight])[0].items() if not k.startswith("modes_m")}
    assert "| 7/8 |" in report.grid([{**old, "modes_median": "7"}])[2]
    path = tmp_path / "results.csv"
    report.write_csv(str(path), table)
    (row,) = [line for line in report.summary([str(path)]) if line.startswith("| SLOGAN")]
    assert "| 7/8 [6, 8] · 20/25 |" in row


def test_plan_covers_the_issue_grid():
    """What the scripts declare is what runs: every configuration marked toys on each toy (3
    seeds on the swiss roll, 1 on each mixture), digits on the digits (3 seeds), fixed once."""
    a = compare.parse_args([])
    runs = compare.plan(a)
    declared = {where: {n for n, _, spec in sweep.configs() if where in spec["runs"]}
                for where in ("toys", "digits", "fixed")}
    swiss = [r for r in runs if r[4] == "swissroll" and not r[6]]
    assert len(swiss) == 3 * len(declared["toys"]) and {r[1] for r in swiss} == declared["toys"]
    for data in ("8gaussians", "25gaussians"):
        assert sorted(r[1] for r in runs if r[4] == data) == sorted(declared["toys"])
    digits = [r for r in runs if r[4] == "digits"]
    assert {r[1] for r in digits} == declared["digits"] and len(digits) == 3 * len(
        declared["digits"])  # a digits row for every constraint, 3 seeds
    assert {r[1] for r in runs if r[6]} == declared["fixed"]
    assert {r[2] for r in digits} == {r[2] for r in runs if r[6]} == set(SCRIPTS)
    assert len({r[0] for r in runs}) == len(runs)  # one folder per run


def test_plan_passes_each_script_its_digits_length():
    """--iters-scale scales the length each script would run on each dataset: 2000 iterations on
    the digits, the scripts' own defaults on the toys."""
    a = compare.parse_args(["--only", "gp-onesided-l10", "--iters-scale", "0.5", "--no-fixed"])
    iters = {r[4]: r[3][r[3].index("--iters") + 1] for r in compare.plan(a)}
    assert iters == {"8gaussians": "2500", "25gaussians": "2500", "swissroll": "2500",
                     "digits": "1000"}


def test_no_run_never_replaces_a_table_with_an_emptier_one(tmp_path, capsys):
    """A fresh clone has the committed tables but none of their runs: --no-run keeps them."""
    out = tmp_path / "cmp"
    out.mkdir()
    committed = {f: "Command: `python benchmarks/compare.py`\n\n| config | data |\n|---|---|\n"
                    "| a | swissroll |\n| b | 8g |\n" for f in ("results.md", "fixed.md")}
    for f, text in committed.items():
        (out / f).write_text(text)
    assert compare.main(["--only", "slogan-l10", "--data", "swissroll", "--seeds", "0",
                         "--no-run", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "kept" in said and "missing: slogan-l10 on swissroll" in said and "--overwrite" in said
    assert all((out / f).read_text() == t for f, t in committed.items())
    assert compare.main(["--only", "slogan-l10", "--data", "swissroll", "--seeds", "0",
                         "--no-run", "--overwrite", "--out", str(out)]) == 0
    assert (out / "results.md").read_text() != committed["results.md"]


def test_exit_1_when_runs_fail(tmp_path, capsys):
    """A run that fails when it runs (here: more memory than the machine has) is counted, the
    tables are written, exit 1; the advice does not mention a --no-run that was not given."""
    out = str(tmp_path / "cmp")
    code = compare.main(["--only", "slogan-l10", "--data", "swissroll", "--seeds", "0",
                         "--no-fixed", "--iters", "1", "--out", out, "--extra", "--dim", "100000"])
    cap = capsys.readouterr()
    assert code == 1 and "1 of 1 runs failed" in cap.err
    assert "--no-run" not in cap.out and "resumes the interrupted ones" in cap.out
    assert os.path.exists(os.path.join(out, "results.md"))


@pytest.mark.parametrize("argv,says", [(["--iters-scale", "inf"], "--iters-scale"),
                                       (["--iters-scale", "0"], "--iters-scale"),
                                       (["--jobs", "0"], "--jobs"), (["--seeds", "-1"], "--seeds")])
def test_bad_arguments_are_one_line(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        compare.parse_args(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and says in err


def test_out_file_and_repeated_seeds(tmp_path, capsys):
    f = tmp_path / "a_file"
    f.write_text("")
    with pytest.raises(SystemExit) as e:
        compare.parse_args(["--out", str(f)])
    assert e.value.code == 2 and "--out" in capsys.readouterr().err
    a = compare.parse_args(["--seeds", "0", "0", "1", "--mixture-seeds", "2", "2"])
    assert a.seeds == [0, 1] and a.mixture_seeds == [2]
    keys = [r[0] for r in compare.plan(a)]
    assert len(keys) == len(set(keys))


def test_converged_needs_more_than_a_small_w1():
    good = {"status": "finished", "final": {"w1": 0.1, "w1_floor": 0.09, "nn_ratio": 0.97}}
    assert sweep.converged(good)
    collapsed = {"status": "finished", "final": {"w1": 0.08, "w1_floor": 0.09, "nn_ratio": 0.01}}
    assert not sweep.converged(collapsed)
    dropped = {"status": "finished", "final": {"w1": 0.1, "w1_floor": 0.09, "nn_ratio": 1.0,
                                               "modes": 7, "n_modes": 8}}
    assert not sweep.converged(dropped)
    far = {"status": "finished", "final": {"w1": 0.2, "w1_floor": 0.09, "nn_ratio": 1.0}}
    assert not sweep.converged(far)
    blur = {"status": "finished", "final": {"w1": 1.9, "w1_floor": 1.37, "nn_ratio": 0.9,
                                            "classes": 4, "n_classes": 10}}
    assert not sweep.converged(blur)  # digits: a few classes are not the data
    assert sweep.converged({**blur, "final": {**blur["final"], "classes": 10}})
    old = {"status": "finished", "final": {"w1": 0.1, "w1_floor": 0.09}}  # before nn_ratio
    assert sweep.converged(old) and not sweep.converged({**old, "status": "diverged"})


def test_batch_w1_study_runs_and_separates_collapse(tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "benchmarks"))
    import batch_w1
    out = str(tmp_path / "bw")
    assert batch_w1.main(["--data", "8gaussians", "swissroll", "--ns", "32", "64", "--draws", "3",
                          "--out", out]) == 0
    rows = list(csv.DictReader(open(os.path.join(out, "batch_w1.csv"))))
    assert [(r["data"], r["n"]) for r in rows] == [("8gaussians", "32"), ("8gaussians", "64"),
                                                   ("swissroll", "32"), ("swissroll", "64")]
    for r in rows:
        assert float(r["floor_nn_ratio"]) > 0.6 and float(r["ot-means drawn_nn_ratio"]) < 0.3
        assert float(r["mean_mean"]) > float(r["floor_mean"])  # one point is far from the data
    assert os.path.getsize(os.path.join(out, "batch_w1.png")) > 10_000
