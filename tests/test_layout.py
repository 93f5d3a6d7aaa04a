"""The scripts read as references: the method near the top, then what the programs run of it, a
short main whose loop is seen at once and has no nested functions, a bounded length, and the
sections that are the same in every script saying so and being so, so that a diff of two scripts
is the method alone."""
import ast
import os
import re

import pytest

from test_scripts import ROOT, SCRIPTS

SAME = "(the same in every method script)"
# The sections of every method script, in this order; the banners of the last two say SAME.
SECTIONS = ["the method", "what the programs run", "models", "arguments", "training step",
            "evaluation", f"run files {SAME}", f"main loop {SAME}"]
MAX_LINES = 540  # dragan.py, with five perturbations and two losses, is the longest


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
