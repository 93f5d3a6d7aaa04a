"""report.py writes the tables of the report and the front page from the committed CSVs, and
never destroys what it cannot render: unbalanced markers and broken CSVs are one line, exit 2,
and nothing is rewritten (exit 1 stays for "out of date")."""
import os
import shutil
import sys

import pytest

from test_scripts import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import report  # noqa: E402


@pytest.fixture
def copy(tmp_path, monkeypatch):
    """The two documents and the CSVs they read, copied; report.py pointed at the copy."""
    for doc in report.DOCUMENTS:
        os.makedirs(tmp_path / os.path.dirname(doc), exist_ok=True)
        shutil.copy(os.path.join(ROOT, doc), tmp_path / doc)
    shutil.copytree(os.path.join(ROOT, "results"), tmp_path / "results", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("runs", "*.png"))
    monkeypatch.setattr(report, "ROOT", str(tmp_path))
    return tmp_path


def texts(root):
    return {d: open(os.path.join(root, d), encoding="utf-8").read() for d in report.DOCUMENTS}


def refused(capsys, *says):
    assert report.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and all(s in err for s in says) and "nothing is rewritten" in err, err


def test_the_copy_is_up_to_date(copy, capsys):
    assert report.main(["--check"]) == 0


def test_a_lost_closing_marker_rewrites_nothing(copy, capsys):
    doc = os.path.join(copy, "results", "README.md")
    text = open(doc, encoding="utf-8").read()
    open(doc, "w", encoding="utf-8").write(text.replace("<!-- /table -->", "", 1))
    before = texts(copy)
    refused(capsys, "a table opens before the last one closed")
    assert texts(copy) == before  # the prose after the first table is still there
    assert report.main(["--check"]) == 2


def test_a_hand_edited_number_with_its_end_marker_gone_is_found(copy, capsys):
    doc = os.path.join(copy, "results", "README.md")
    text = open(doc, encoding="utf-8").read()
    head, rest = text.split("<!-- /table -->", 1)  # the first table: the summary
    assert "| 1.26 [1.12, 1.27] (3/3) |" in head  # SLOGAN's swiss-roll cell, edited by hand
    open(doc, "w", encoding="utf-8").write(head.replace("| 1.26 [1.12, 1.27] (3/3) |",
                                                        "| 1.06 [1.12, 1.27] (3/3) |") + rest)
    assert report.main(["--check"]) == 2
    assert "a table opens before the last one closed" in capsys.readouterr().err


@pytest.mark.parametrize("damage,says", [
    (lambda p: os.remove(p), "cannot be read"),
    (lambda p: open(p, "w").write(""), "no rows"),
    (lambda p: open(p, "w").write(open(p).readline() if False else "config,data\n"), "no rows"),
    (lambda p: open(p, "w").write("config,data\nslogan-l10,swissroll\n"), "no column"),
    (lambda p: open(p, "a").write("slogan-l10,swissroll\n"), "has 2 cells where the header has"),
])
def test_a_broken_csv_is_one_line_naming_it(damage, says, copy, capsys):
    path = os.path.join(copy, "results", "questions", "questions.csv")
    damage(path)
    before = texts(copy)
    refused(capsys, "results/questions/questions.csv: ", says)
    assert texts(copy) == before


def test_an_empty_cell_where_a_number_must_be_is_one_line(copy, capsys):
    path = os.path.join(copy, "results", "digits", "results.csv")
    lines = open(path).read().splitlines()
    head = lines[0].split(",")
    cells = lines[1].split(",")
    cells[head.index("converged")] = ""
    open(path, "w").write("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    refused(capsys, "results/digits/results.csv: a cell is not what the table needs")


def test_a_missing_document_is_one_line(copy, capsys):
    os.remove(os.path.join(copy, "results", "README.md"))
    before = {d: t for d, t in texts_left(copy).items()}
    refused(capsys, "results/README.md: cannot be read")
    assert texts_left(copy) == before


def texts_left(root):
    return {d: open(os.path.join(root, d), encoding="utf-8").read() for d in report.DOCUMENTS
            if os.path.exists(os.path.join(root, d))}


def test_the_summary_adds_the_longer_trainings_where_the_learning_curves_are_given(tmp_path):
    """A learning-curves store among the summary's CSVs adds a column: each constraint's cos
    where its 128-D trainings ended (median over the seeds, their number where more than one),
    the length in the header; without one the table keeps its five columns."""
    grid = tmp_path / "grid.csv"
    grid.write_text("config,data,runs,w1_over_floor_median,converged,modes_median,n_modes\n"
                    "slogan-l10,swissroll,3,1.26,1.0,,\n")
    store = tmp_path / "runs.csv"
    rows = [("slogan-l10", 128, 4, s, at, cos) for s, cos in ((0, 0.70), (1, 0.74), (2, 0.90))
            for at in (1000, 10000)] + [("slogan-l10", 128, 64, 0, 10000, 0.40),
                                         ("slogan-l10", 8, 4, 0, 10000, 0.99),
                                         ("wgan-sn", 128, 64, 0, 10000, "")]
    store.write_text("config,dim,funnels,seed,iters,at,cos\n" + "".join(
        f"{c},{d},{w},{s},10000,{at},{cos if at == 10000 else 0.1}\n"
        for c, d, w, s, at, cos in rows))
    plain = report.summary([str(grid)])
    longer = report.summary([str(grid), str(store)])
    assert all(a.count("|") + 1 == b.count("|") for a, b in zip(plain, longer))
    assert "at 10000 iterations, 128-D: cos (4 · 64 funnels) |" in longer[0]
    (slogan,) = [line for line in longer if "SLOGAN" in line]
    assert slogan.startswith(plain[plain.index(next(x for x in plain if "SLOGAN" in x))][:-1])
    assert slogan.endswith("| 0.74 (3 seeds) · 0.40 |")
    assert "| SLOGAN (one-sided quotient, λ 10) | 1.26 (3/3) |" in slogan  # no range kept
    ranged = tmp_path / "ranged.csv"
    ranged.write_text("config,data,runs,w1_over_floor_median,w1_over_floor_min,"
                      "w1_over_floor_max,converged,modes_median,n_modes\n"
                      "slogan-l10,swissroll,3,1.26,1.12,1.27,1.0,,\n")
    (row,) = [line for line in report.summary([str(ranged)]) if "SLOGAN" in line]
    assert "| 1.26 [1.12, 1.27] (3/3) |" in row
    (sn,) = [line for line in longer if "spectral" in line]
    assert sn.endswith("| – · – |")  # its one training diverged: no cos


def test_the_lambda_table_has_a_row_per_penalty_a_cell_per_lambda_and_the_own_lambda_in_bold():
    """compare.py --lambdas' rows: each penalty's median W1/floor and how many of its runs
    converged at each λ, "–" where none has ended, and the λ its configuration runs with
    elsewhere (WGAN-LP's 10, the two-sided quotient's 1) in bold."""
    def row(config, median, converged, runs):
        return {"config": config, "data": "swissroll", "runs": str(runs),
                "w1_over_floor_median": str(median), "converged": str(converged)}
    rows = [row("gp-onesided-l10@λ1", 1.31, 1.0, 2), row("gp-onesided-l10@λ10", 1.28, 0.5, 2),
            row("quotient-twosided-l1@λ1", 4.5, 0.0, 1),
            row("quotient-twosided-l1@λ10", 9.0, 0.0, 2),
            row("wgan-div", 1.2, 1.0, 3)]  # not a λ grid's row: left out
    lines = report.lambdas(rows)
    assert lines[2:] == [
        "| penalty | λ 1 | λ 10 |",
        "|---|---|---|",
        "| gp-onesided | 1.31 (2/2) | **1.28 (1/2)** |",
        "| quotient-twosided | **4.50 (0/1)** | 9.00 (0/2) |"]
    lines = report.lambdas(rows[:1] + rows[2:3])
    assert lines[-2:] == ["| gp-onesided | 1.31 (2/2) |", "| quotient-twosided | **4.50 (0/1)** |"]
    rows.append(row("gp-onesided-l10@λ100", 2.0, 0.0, 2))
    assert report.lambdas(rows[2:])[-2:] == ["| quotient-twosided | **4.50 (0/1)** | 9.00 (0/2) "
                                             "| – |", "| gp-onesided | – | – | 2.00 (0/2) |"]


def test_the_steps_table_has_a_row_per_training_and_its_largest_quotient():
    """w1_steps: each training of a runs.csv on its own line, cos / est÷W1 at every point from
    1000 on ('–' where that training has none), and the largest quotient and ‖∇f‖ measured
    along it (from 1000 on)."""
    def row(config, seed, at, cos, est, quotient=""):
        return {"config": config, "seed": str(seed), "dim": "128", "funnels": "64",
                "at": str(at), "iters": "3000", "cos": str(cos), "estimate": str(est),
                "true_w1": "2", "quotient_max": quotient, "grad_norm_max": str(at / 3000)}
    rows = [row("groupsort", 1, 100, 0.1, 0.2), row("groupsort", 1, 1000, 0.6, 1.2, "0.99"),
            row("groupsort", 1, 3000, 0.8, 1.6, "1.004"), row("aol", 0, 1000, 0.5, 1.0),
            row("aol", 0, 2000, 0.55, 1.1, "nan")]
    out = report.w1_steps(rows)
    assert out[2] == "| training | 1,000 | 2,000 | 3,000 | max quotient · max ‖∇f‖ |"
    assert "| groupsort, seed 1 | 0.60 / 0.60 | – | 0.80 / 0.80 | 1.004 · 1.000 |" in out
    assert "| aol, seed 0 | 0.50 / 0.50 | 0.55 / 0.55 | – | – · 0.667 |" in out
