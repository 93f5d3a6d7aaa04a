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


def test_tiny_digits_grid_writes_the_table_and_the_sample_grid(tmp_path, capsys):
    out = str(tmp_path / "cmp")
    assert compare.main(["--only", "gp-onesided-l10", "c-transform", "--data", "digits",
                         "--digits-seeds", "0", "--iters", "2", "--jobs", "2", "--out", out,
                         "--extra", "--dim", "16", "--batch", "16"]) == 0
    table = open(os.path.join(out, "results.md")).read()
    assert "| gp-onesided-l10 | digits | 1 |" in table and "| c-transform | digits | 1 |" in table
    assert "/10 |" in table and "TV " in table and "mean digit repeated 512 times" in table
    assert os.path.getsize(os.path.join(out, "grid-digits.png")) > 10_000


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


def test_open_questions_runs_its_grid_and_writes_the_table(tmp_path, capsys):
    import open_questions
    out = str(tmp_path / "q")
    argv = ["--only", "ramp", "toward-fake", "--seeds", "0", "--iters-scale", "0.0004",
            "--jobs", "2", "--out", out, "--extra", "--dim", "8", "--batch", "16"]
    assert open_questions.main(argv) == 0
    md = open(os.path.join(out, "questions.md")).read()
    assert "| gp-twosided-ramp0.1to10 | Q4 | 1 |" in md and "toward-fake0.1-wgan-l10" in md
    rows = list(csv.DictReader(open(os.path.join(out, "questions.csv"))))
    assert all(r["dist_corr"] != "" and float(r["ms_per_iter"]) > 0 for r in rows)
    assert open_questions.main(argv) == 0  # all done: nothing runs again
    assert "skipped (done)" in capsys.readouterr().out
