"""A method is one script: whatever compares the methods finds every method script (a .py file
at the top of the repository that declares CONFIGS) and reaches it. Each test here fails for a
script that some program leaves out: the comparison grid on the toys and the digits and its
fixed-generator study, the open questions' distance-likeness (Q1), the W1 benchmark, the
README's summary and methods tables, the shared script tests and the GPU check."""
import os
import re
import sys

import pytest

import common
from test_scripts import ROOT, SCRIPTS

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import compare  # noqa: E402
import gpu_check  # noqa: E402
import open_questions  # noqa: E402
import report  # noqa: E402
import sweep  # noqa: E402
import w1_benchmark  # noqa: E402


def test_the_scripts_are_found_not_listed(tmp_path):
    """method_scripts finds a new file that declares CONFIGS, and only such files."""
    (tmp_path / "wgan_new.py").write_text('"""A new method."""\nCONFIGS = {}\n')
    (tmp_path / "helper.py").write_text("CONFIG = 1\nx = 'CONFIGS = {}'\n")
    (tmp_path / "notes.txt").write_text("CONFIGS = {}\n")
    assert common.method_scripts(str(tmp_path)) == ("wgan_new",)
    assert set(common.method_scripts()) == set(SCRIPTS) and len(SCRIPTS) >= 7
    assert "common" not in SCRIPTS


def test_a_name_two_scripts_declare_is_refused(monkeypatch):
    import wgan_gp
    import wgan_sn
    monkeypatch.setattr(wgan_sn, "CONFIGS", {**wgan_sn.CONFIGS, "gp-onesided-l10":
                                             wgan_gp.CONFIGS["gp-onesided-l10"]})
    with pytest.raises(ValueError, match="declared by both"):
        sweep.configs()


@pytest.fixture(scope="module")
def reached():
    """What each program plans, by script."""
    runs = compare.plan(compare.parse_args([]))
    questions = open_questions.plan(open_questions.parse_args([]))
    q1 = {name for name, _, _, qs in open_questions.grid() if "Q1" in qs}
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    return {
        "toys": {r[2] for r in runs if r[4] in common.TOYS and not r[6]},
        "digits": {r[2] for r in runs if r[4] == "digits"},
        "fixed": {r[2] for r in runs if r[6]},
        "Q1": {r[2] for r in questions if r[1] in q1},
        "w1": {script for _, script, _, _ in w1_benchmark.constraints()},
        "summary": {script for name, script, spec in sweep.configs() if "summary" in spec
                    and f"| {spec['summary']} |" in "\n".join(report.summary([]))
                    and f"| {spec['summary']} |" in readme},
        "methods table": {s for s in SCRIPTS if re.search(rf"^\| `{s}\.py` \|", readme, re.M)},
        "gpu check": {argv[1][:-3] for _, argv, graph in gpu_check.commands(
            gpu_check.parse_args([])[1], "OUT") if graph is not None},
    }


@pytest.mark.parametrize("program", ["toys", "digits", "fixed", "Q1", "w1", "summary",
                                     "methods table", "gpu check"])
def test_every_program_reaches_every_method(program, reached):
    assert reached[program] == set(SCRIPTS), f"{program} misses " \
        f"{', '.join(sorted(set(SCRIPTS) - reached[program]))}"


def test_the_shared_tests_run_every_method():
    import test_cuda_branch
    import test_scripts
    assert test_scripts.SCRIPTS == list(SCRIPTS)
    assert {s for s, extra in test_cuda_branch.STEP_CASES if not extra} == set(SCRIPTS)
    assert {s for s, extra in test_cuda_branch.STEP_CASES if extra == ["--data", "digits"]} \
        == set(SCRIPTS)
    assert {s for s, extra in test_scripts.GRAPH_CASES if not extra} == set(SCRIPTS)
