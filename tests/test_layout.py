"""The scripts read as references: the method near the top (its penalty and the critic update
that uses it), what the programs run of it just above the shared sections, one measurement
(common.measure) that every script's evaluation starts with, a short main whose loop is seen at
once and has no nested functions, a bounded length, and the sections that are the same in every
script saying so and being so, so that a diff of two scripts is the method alone."""
import ast
import os
import re

import pytest

from test_scripts import ROOT, SCRIPTS

SAME = "(the same in every method script)"
# The sections of every method script, in this order; the banners of the last two say SAME.
SECTIONS = ["the method", "models", "arguments", "training step", "evaluation",
            "what the programs run", f"run files {SAME}", f"main loop {SAME}"]
# dragan.py is the longest: six places for the penalty, two losses and the zero-centred penalties
# (R1, R2, 0-GP: its penalty at other points, centred at 0), with their papers in the docstring.
MAX_LINES = 570


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
    assert funcs["critic_step"].end_lineno <= 180  # dragan.py's three kinds of points: ~180
    assert len(text.splitlines()) <= MAX_LINES
    assert max(len(line) for line in text.splitlines()) <= 100


def test_the_sections_that_say_so_are_the_same_in_every_script():
    """Byte for byte: a reader who has read one script's run files and main loop has read
    them all; what differs between two scripts is above them."""
    first = sections(source(SCRIPTS[0]))
    for script in SCRIPTS[1:]:
        theirs = sections(source(script))
        for title in (t for t in SECTIONS if SAME in t):
            assert theirs[title] == first[title], (script, title)


def test_the_layout_check_sees_a_change():
    """The two checks above fail on a script whose shared section drifted or whose main grew."""
    text = source(SCRIPTS[0])
    drifted = text.replace("common.robust_console()", "common.robust_console()  # drift")
    assert sections(drifted)[f"run files {SAME}"] != sections(text)[f"run files {SAME}"]
    assert list(sections(text.replace(" the method\n", " the penalty\n", 1))) != SECTIONS


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
    assert "common.progress_line" in calls(log) and "common.coverage_text" not in calls(log)
