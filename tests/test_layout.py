"""The scripts read as references: the method near the top (its penalty and the critic update
that uses it), what the programs run of it just above the shared sections, one measurement
(common.measure) that every script's evaluation starts with, a short main whose loop is seen at
once and has no nested functions, a bounded length, and the sections that are the same in every
script saying so and being so, so that a diff of two scripts is the method alone."""
import ast
import glob
import os
import re

import pytest

from test_scripts import ROOT, SCRIPTS

SAME = "(the same in every method script)"
# The sections of every method script, in this order. Those whose banners say SAME are byte for
# byte the same in every script; every other one is the method's own.
SECTIONS = ["the method", "the critic", f"models {SAME}", "arguments", "training step",
            "evaluation", "what the programs run", f"run files {SAME}", f"main loop {SAME}"]
MAX_LINES = 530  # one cap for every method script, no exception
COMMON_MAX_LINES = 1150  # common.py: what every method measures and draws, nothing else
CRITIC_STEP_MAX = 9  # lines of code in critic_step: the critic update is the method, in view


def source(script):
    with open(os.path.join(ROOT, script + ".py"), encoding="utf-8") as fh:
        return fh.read()


def sections(text):
    """{banner title: the section's text} for the '# ---- title' banners of a script."""
    parts = re.split(r"^# -{10,} (.+)$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("script", SCRIPTS)
def test_method_first_and_main_short(script):
    text = source(script)
    assert list(sections(text)) == SECTIONS
    tree = ast.parse(text)
    funcs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    banner = next(i for i, line in enumerate(text.splitlines(), 1)
                  if line.startswith("# ---") and line.endswith(" the method"))
    first = min(n.lineno for n in funcs.values() if n.lineno > banner)
    assert first <= 100, "the method should start within ~100 lines"
    main = funcs["main"]
    assert main.end_lineno - main.lineno + 1 <= 45, "main's loop should be seen at once"
    assert not [n for n in ast.walk(main) if isinstance(n, (ast.FunctionDef, ast.Lambda))
                and n is not main], "main has nested functions"
    assert {"critic_step", "critic_net", "estimate_label", "train_step"} <= set(funcs)
    # The update that uses the penalty is part of the method: a reader meets the loss beside its
    # penalty, in the first ~150 lines, before any model.
    assert "def critic_step(" in sections(text)["the method"]
    assert funcs["critic_step"].end_lineno <= 180
    assert code_lines(funcs["critic_step"]) <= CRITIC_STEP_MAX
    assert len(text.splitlines()) <= MAX_LINES
    assert max(len(line) for line in text.splitlines()) <= 100


def code_lines(node) -> int:
    """Lines of code in a function's body: its docstring, comments and blank lines not counted."""
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    return len({line for stmt in body for n in ast.walk(stmt) if hasattr(n, "lineno")
                for line in range(n.lineno, n.end_lineno + 1)})


def shared_and_own(texts: dict) -> list:
    """What breaks the rule for the shared lines in {script: source}: a section that says SAME
    and differs in some script, or one that does not say so and is the same in all of them."""
    wrong = []
    for title in SECTIONS:
        copies = {sections(t)[title] for t in texts.values()}
        if SAME in title and len(copies) > 1:
            wrong.append(f"{title!r} differs between scripts")
        if SAME not in title and len(copies) == 1:
            wrong.append(f"{title!r} is the same in every script: mark it {SAME}")
    return wrong


def test_every_section_is_shared_byte_for_byte_or_the_methods_own():
    """A reader who has read one script's shared sections (models, run files, main loop) has
    read them all, and what differs between two scripts is the method alone."""
    assert shared_and_own({s: source(s) for s in SCRIPTS}) == []


def test_the_layout_check_sees_a_change():
    """The checks above fail on a shared section that drifted in one script (the models as
    much as the main loop), a section renamed, a critic_step grown past its cap."""
    texts = {s: source(s) for s in SCRIPTS}
    for line in ("    return G, make_critic(args)\n", "    args, ckpt, device = parse(argv)\n"):
        drifted = {**texts, SCRIPTS[1]: texts[SCRIPTS[1]].replace(line, line[:-1] + "  # d\n")}
        assert len(shared_and_own(drifted)) == 1
    renamed = texts[SCRIPTS[0]].replace(" the method\n", " the penalty\n", 1)
    assert list(sections(renamed)) != SECTIONS
    grown = ast.parse('def critic_step(D):\n    """doc"""\n    # why\n' + "    x = 1\n" * 10)
    assert code_lines(grown.body[0]) == 10 > CRITIC_STEP_MAX


def test_common_holds_what_every_method_measures_and_draws():
    """common.py: data, exact W1, the critic diagnostics and figures. No signal, checkpoint or
    argument-parsing code (harness.py has the run plumbing), no model of the experiments (each
    script has them), and no import of harness: the import graph has no cycle."""
    text = open(os.path.join(ROOT, "common.py"), encoding="utf-8").read()
    assert len(text.splitlines()) <= COMMON_MAX_LINES
    tree = ast.parse(text)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names} | {n.module for n in ast.walk(tree)
                                     if isinstance(n, ast.ImportFrom)}
    assert not imported & {"signal", "argparse", "harness"}
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert not defined & {"save_checkpoint", "parse_or_resume", "StopSignal", "Run",
                          "CudaGraphStep", "ArgumentParser", "MnistCritic", "MnistGenerator"}


def calls(node) -> list:
    """The dotted names of the functions called inside an AST node, e.g. 'common.w1'."""
    return [ast.unparse(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)]


# The one exact W1 an evaluation may compute beside common.measure's: wgan_ct.py checks its
# estimate against the exact W1 of the same training-size batch (the c-transform's own bound).
OWN_W1 = {"wgan_ct": 1}


@pytest.mark.parametrize("script", SCRIPTS)
def test_one_measurement_in_one_place(script):
    """Every script measures a run through common.measure (draws, exact W1 and its floor,
    coverage, collapse, under common.evaluation_rng); its evaluate adds the method's own
    diagnostics and draws no data and no exact W1 of its own, and the sizes exist once."""
    text = source(script)
    tree = ast.parse(text)
    evaluate = next(n for n in tree.body if isinstance(n, ast.FunctionDef)
                    and n.name == "evaluate")
    called = calls(evaluate)
    assert called.count("common.measure") == 1 and "common.evaluation_rng" in called
    assert not [c for c in called if c in ("common.sample", "common.w1_floor",
                                           "common.sample_stats", "torch.random.fork_rng")]
    assert called.count("common.w1") == OWN_W1.get(script, 0)
    assert not re.search(r"^N_EVAL", text, re.M) and "N_EVAL" not in text
    log = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "log_and_save")
    assert "harness.progress_line" in calls(log) and "harness.coverage_text" not in calls(log)


def import_cycles(sources: dict) -> list:
    """The cycles in the import graph of {module: source} (imports anywhere in a module, lazy
    ones inside functions included), each as a list of modules."""
    edges = {}
    for m, text in sources.items():
        deps = set()
        for n in ast.walk(ast.parse(text)):
            if isinstance(n, ast.Import):
                deps |= {a.name.split(".")[0] for a in n.names}
            elif isinstance(n, ast.ImportFrom) and n.module:
                deps.add(n.module.split(".")[0])
        edges[m] = (deps & set(sources)) - {m}
    cycles, state, path = [], {}, []

    def visit(u):
        state[u] = "open"
        path.append(u)
        for v in sorted(edges[u]):
            if state.get(v) == "open":
                cycles.append(path[path.index(v):] + [v])
            elif v not in state:
                visit(v)
        state[u] = "done"
        path.pop()
    for u in sorted(edges):
        if u not in state:
            visit(u)
    return cycles


def test_the_import_graph_has_no_cycle():
    """The scripts, common.py, harness.py and the benchmarks import one another one way only
    (harness → common; benchmarks → both; no benchmark back from on_ray to sweep)."""
    paths = glob.glob(os.path.join(ROOT, "*.py")) + glob.glob(os.path.join(ROOT, "benchmarks",
                                                                           "*.py"))
    sources = {os.path.splitext(os.path.basename(p))[0]: open(p, encoding="utf-8").read()
               for p in paths}
    assert import_cycles(sources) == []
    assert import_cycles({**sources, "common": sources["common"] + "\nimport harness\n"}) \
        == [["common", "harness", "common"]]


def test_a_helper_copied_into_several_penalties_is_the_same_everywhere():
    """warn_if_batch_norm stands in every penalty script's method (a copied penalty takes it
    along), AOL's layer in wgan_aol.py and wgan_sll.py, the orthogonality check in GroupSort's
    and AOL's: one text each, so a fix to one copy cannot miss the others."""
    for name, least in (("warn_if_batch_norm", 6), ("AOLRescale", 2), ("aol_linear", 2),
                        ("orthogonality_error", 2)):
        copies = {}  # AOL's layer also opens and closes the SLL critic: a copy in wgan_sll.py
        for script in SCRIPTS:
            text = source(script)
            for n in ast.parse(text).body:
                if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name:
                    copies[script] = ast.get_source_segment(text, n)
        assert len(copies) >= least and len(set(copies.values())) == 1, (name, sorted(copies))
