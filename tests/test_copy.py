"""A penalty copied into another project works there: each method script's penalty (or
constraint) names in its docstring what a copy needs ("To copy: names (with imports)"), and the
test takes exactly that source text, with exactly those imports and nothing of the project,
into a fresh module, and checks that it gives the script's own values on an analytic critic."""
import ast
import importlib
import os
import re
import types

import pytest
import torch

from test_scripts import ROOT, SCRIPTS

COPY = re.compile(r"To copy: (?P<names>.+?) \(with (?P<imports>.+?)\)\.", re.S)
# What a copy may import: torch and the standard library's math and warnings, nothing of
# this project.
ALLOWED = re.compile(r"^(import (torch|math|warnings)|from torch(\.[a-z_.]+)? import [a-z_]+)$")


def copies(script):
    """[(names, imports)] of every "To copy:" line of the script's top-level docstrings."""
    tree = ast.parse(open(os.path.join(ROOT, script + ".py"), encoding="utf-8").read())
    found = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node):
            m = COPY.search(" ".join(ast.get_docstring(node).split()))
            if m:
                names = re.split(r", | and ", m["names"])
                found.append((node.name, names, [i.strip() for i in m["imports"].split(";")]))
    return found


def copied(script, names, imports):
    """A fresh module holding the imports and exactly the named top-level definitions of the
    script, in the script's order: what a user would paste."""
    text = open(os.path.join(ROOT, script + ".py"), encoding="utf-8").read()
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    parts = []
    for node in tree.body:
        name = node.name if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else \
            getattr(getattr(node, "targets", [None])[0], "id", None)
        if name in names:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            parts.append("".join(lines[first - 1:node.end_lineno]))
    assert len(parts) == len(names), f"{script}: not every name to copy is defined: {names}"
    module = types.ModuleType(f"copy_of_{script}")
    exec("\n".join(imports) + "\n\n\n" + "\n\n".join(parts), module.__dict__)  # noqa: S102
    return module


def bumpy(x):
    """An analytic critic whose gradient changes from point to point: a·x + 0.3·‖x‖² summed over
    every non-batch dimension."""
    a = torch.linspace(-1.0, 1.5, x[0].numel(), dtype=x.dtype).reshape(x.shape[1:])
    return (a * x).flatten(1).sum(1) + 0.3 * x.flatten(1).pow(2).sum(1)


def net():
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))


# How each copyable function is called, and what is compared: its value (a tensor), or a
# module's output after it (the constraints that act on a network).
g = torch.Generator().manual_seed(0)
REAL, FAKE = torch.randn(16, 1, 2, 2, generator=g), torch.randn(16, 1, 2, 2, generator=g) + 1
CALLS = {
    "gradient_penalty": lambda m: m.gradient_penalty(bumpy, REAL, FAKE),
    "lipschitz_penalty": lambda m: m.lipschitz_penalty(bumpy, REAL, FAKE, pairs="all"),
    "dragan_penalty": lambda m: m.dragan_penalty(bumpy, REAL),
    "zero_centred_penalty": lambda m: m.zero_centred_penalty(bumpy, REAL, FAKE, "interpolate"),
    "divergence_penalty": lambda m: m.divergence_penalty(bumpy, REAL, FAKE),
    "alp_penalty": lambda m: m.alp_penalty(bumpy, REAL, FAKE, 0.1, 1.0, 0.5),
    "c_transform": lambda m: m.c_transform(bumpy(REAL), REAL, FAKE, epsilon=0.1),
    "GradNorm": lambda m: m.GradNorm(bumpy)(REAL),
    "cowgan_objective": lambda m: m.cowgan_objective(bumpy(REAL), bumpy(FAKE), REAL, FAKE),
    "spectral_normalize_": lambda m: torch.cat([m.spectral_normalize_(net())(REAL.flatten(1)),
                                                m.spectral_normalize_(net(), 2, True)(
                                                    REAL.flatten(1))]),
    "orthogonal_linear": lambda m: m.GroupSort(2)(m.orthogonal_linear(4, 6)(REAL.flatten(1))),
    "clip_weights_": lambda m: clipped(m),
    "AOLRescale": lambda m: m.aol_linear(4, 6)(REAL.flatten(1)),
    "SLLBlock": lambda m: m.SLLBlock(4, 6)(REAL.flatten(1)),
}


def clipped(m):
    """A network's output after m's clip_weights_."""
    n = net()
    m.clip_weights_(n, 0.05)
    return n(REAL.flatten(1))


def test_every_method_script_has_something_to_copy_and_the_test_calls_each():
    """A script without a "To copy" line, or one the test does not call, fails here."""
    declared = {fn for s in SCRIPTS for fn, _, _ in copies(s)}
    assert all(copies(s) for s in SCRIPTS)
    assert declared == set(CALLS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_copy_gives_the_scripts_values(script):
    own = importlib.import_module(script)
    for fn, names, imports in copies(script):
        assert all(ALLOWED.match(i) for i in imports), imports
        module = copied(script, names, imports)
        torch.manual_seed(0)
        want = CALLS[fn](own)
        torch.manual_seed(0)
        got = CALLS[fn](module)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        assert torch.isfinite(got).all()


def test_a_copy_that_leaves_out_a_helper_fails():
    """The check can fail: ALP's penalty without the helper it calls raises where it is used."""
    (fn, names, imports), = copies("wgan_alp")
    module = copied("wgan_alp", [n for n in names if n != "unit_norm"], imports)
    with pytest.raises(NameError, match="unit_norm"):
        CALLS[fn](module)
