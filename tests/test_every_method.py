"""A method is one script: whatever compares the methods finds every method script (a .py file
at the top of the repository that declares CONFIGS) and reaches it. Each test here fails for a
script that some program leaves out: the comparison grid on the toys and the digits and its
fixed-generator study, the open questions' distance-likeness (Q1), the W1 benchmark, the
report's summary, the README's methods table, the shared script tests and the GPU check."""
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
    report_md = open(os.path.join(ROOT, "results", "README.md"), encoding="utf-8").read()
    return {
        "toys": {r[2] for r in runs if r[4] in common.TOYS and not r[6]},
        "digits": {r[2] for r in runs if r[4] == "digits"},
        "fixed": {r[2] for r in runs if r[6]},
        "Q1": {r[2] for r in questions if r[1] in q1},
        "w1": {script for _, script, _, _ in w1_benchmark.constraints()},
        "summary": {script for name, script, spec in sweep.configs() if "summary" in spec
                    and f"| {spec['summary']} |" in "\n".join(report.summary([]))
                    and f"| {spec['summary']} |" in report_md},
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


# --------------------------------------------------------- what other programs read from a script
def module_reads(path) -> set:
    """The names a program reads from the method scripts it loads: attributes of the names it
    binds to importlib.import_module(...) (a script's name, or a variable: the scripts are found,
    not listed), of such a call itself, and the names it gets, sets or patches on them."""
    import ast
    tree = ast.parse(open(path, encoding="utf-8").read())

    def loads_a_script(node):
        if not (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module")
                and node.args):
            return False
        arg = node.args[0]
        return not isinstance(arg, ast.Constant) or arg.value in SCRIPTS

    names = set()
    for n in ast.walk(tree):  # x = import_module(s), and x, ... = f() where f returns one
        if isinstance(n, ast.Assign) and loads_a_script(n.value):
            names |= {t.id for t in n.targets if isinstance(t, ast.Name)}
    def position(value):  # where a returned value holds a module: None (all of it), an index
        if isinstance(value, ast.Name) and value.id in names:
            return [None]
        if isinstance(value, ast.Tuple):
            return [i for i, e in enumerate(value.elts) if isinstance(e, ast.Name)
                    and e.id in names]
        return []
    returning = {f.name: position(r.value) for f in ast.walk(tree)
                 if isinstance(f, ast.FunctionDef) for r in ast.walk(f)
                 if isinstance(r, ast.Return) and position(r.value)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) \
                and ast.unparse(n.value.func) in returning:
            for t, i in ((t, i) for t in n.targets for i in returning[ast.unparse(n.value.func)]):
                e = t if i is None else t.elts[i] if isinstance(t, ast.Tuple) else None
                names |= {e.id} if isinstance(e, ast.Name) else set()
    reads = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute) and (loads_a_script(n.value) or (
                isinstance(n.value, ast.Name) and n.value.id in names)):
            reads.add(n.attr)
        if isinstance(n, ast.Call) and ast.unparse(n.func).split(".")[-1] in (
                "getattr", "setattr", "hasattr", "delattr") and len(n.args) >= 2 \
                and isinstance(n.args[0], ast.Name) and n.args[0].id in names \
                and isinstance(n.args[1], ast.Constant):
            reads.add(n.args[1].value)
    return reads


# Reads the scan counts that are not of a method script, with why.
NOT_A_SCRIPT = {("tests/test_docs.py", "parse_args"): "the benchmark programs' own parser, "
                "loaded by the same import_module as the scripts"}


def documented_names() -> set:
    """The first column of CONTRIBUTING.md's table of what other programs read from a script."""
    text = open(os.path.join(ROOT, "CONTRIBUTING.md"), encoding="utf-8").read()
    table = text.split("## What other programs read from a method script", 1)[1].split("\n## ")[0]
    return set(re.findall(r"^\| `(\w+)`", table, re.M))


def test_every_name_other_programs_read_is_documented_and_in_every_script():
    """A contributor who writes what CONTRIBUTING.md lists has written everything the sweeps,
    benchmarks and shared tests call: a program that starts reading another name fails here
    until the list (and so every script) has it."""
    import glob
    import importlib
    listed = documented_names()
    programs = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "*.py"))
                      + glob.glob(os.path.join(ROOT, "tests", "*.py")))
    read = {(os.path.relpath(p, ROOT), name) for p in programs for name in module_reads(p)}
    assert len(read) > 20, "the scan found too little: is it still reading the programs?"
    missing = sorted(f"{name} (read by {path})" for path, name in read
                     if name not in listed and (path, name) not in NOT_A_SCRIPT)
    assert not missing, f"read from method scripts but not listed in CONTRIBUTING.md: {missing}"
    for script in SCRIPTS:
        mod = importlib.import_module(script)
        assert not [n for n in listed if not hasattr(mod, n)], script


def test_the_scan_sees_a_new_read(tmp_path):
    """module_reads finds reads through a variable, a chain, a helper that returns the module
    and a patch."""
    prog = tmp_path / "prog.py"
    prog.write_text("import importlib\n"
                    "def load(s):\n    m = importlib.import_module(s)\n    return m, 1\n"
                    "def f(s):\n    mod, _ = load(s)\n    mod.brand_new(); mod.also\n"
                    "    importlib.import_module(s).chained\n"
                    "    importlib.import_module('json').not_a_script\n"
                    "def g(monkeypatch, s):\n    m = importlib.import_module(s)\n"
                    "    monkeypatch.setattr(m, 'PATCHED', 1)\n")
    assert module_reads(prog) == {"brand_new", "also", "chained", "PATCHED"}


def test_an_unknown_place_or_key_in_configs_is_an_error(monkeypatch):
    """A misspelt `runs` tag (or key) would drop a configuration from a sweep without a word:
    it is a ValueError that names the script, the configuration and the tag."""
    import wgan_gp
    good = wgan_gp.CONFIGS["gp-onesided-l10"]
    for bad, says in [({**good, "runs": "toys digts"}, "unknown place 'digts'"),
                      ({**good, "runs": " "}, "runs names no place"),
                      ({**good, "sumary": "x"}, "unknown key 'sumary'"),
                      ({"runs": "toys"}, "no 'flags'")]:
        monkeypatch.setattr(wgan_gp, "CONFIGS", {"gp-onesided-l10": bad})
        with pytest.raises(ValueError, match=f"wgan_gp.py, CONFIGS\\['gp-onesided-l10'\\]: {says}"):
            sweep.configs()
    monkeypatch.setattr(wgan_gp, "CONFIGS", {"gp-onesided-l10": good})
    assert [n for n, s, _ in sweep.configs() if s == "wgan_gp"] == ["gp-onesided-l10"]
