"""The scripts read as references: the method near the top, a short main with no nested
functions, a bounded length, and the shared boilerplate identical so that a diff of two scripts
is the method alone."""
import ast
import os

import pytest

from test_scripts import ROOT, SCRIPTS

PENALTY = {"wgan_gp": "gradient_penalty", "slogan": "lipschitz_quotient",
           "dragan": "perturb", "wgan_clip": "clip_weights_", "wgan_ct": "c_transform",
           "wgan_sn": "spectral_normalize_", "wgan_div": "divergence_penalty"}
# ~430 lines a method (dragan has five perturbations), plus ~45 for the digits' image models
MAX_LINES = {"dragan": 530}


def source(script):
    with open(os.path.join(ROOT, script + ".py"), encoding="utf-8") as fh:
        return fh.read()


@pytest.mark.parametrize("script", SCRIPTS)
def test_method_first_and_main_short(script):
    text = source(script)
    tree = ast.parse(text)
    funcs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert funcs[PENALTY[script]].lineno <= 100, "the method should start within ~100 lines"
    main = funcs["main"]
    assert main.end_lineno - main.lineno + 1 <= 80
    assert not [n for n in ast.walk(main) if isinstance(n, (ast.FunctionDef, ast.Lambda))
                and n is not main], "main has nested functions"
    assert len(text.splitlines()) <= MAX_LINES.get(script, 475)
    assert max(len(line) for line in text.splitlines()) <= 100


def test_shared_boilerplate_is_identical():
    """From the run-files section down, every script is the template but for its method lines."""
    def tail(script):
        text = source(script)
        return text[text.index("# ---------------------------------------------------------"
                               "--------------------------- run files"):].splitlines()
    import difflib
    base = tail("wgan_gp")
    for script in SCRIPTS:
        changed = [line for line in difflib.unified_diff(base, tail(script), lineterm="", n=0)
                   if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        assert len(changed) <= 8, (script, changed)
