"""The tests' patches reach the code they mean to change. monkeypatch.setattr(module, "name", …)
changes the attribute of that one module: code that looks the name up elsewhere (a module that
imported it with `from module import name`, or the module the name moved to) keeps the original,
and the patch silently does nothing. So every patch on a module of this project targets one that
defines the name itself, and no module of the project holds a copy of that name."""
import ast
import functools
import glob
import os

import pytest

from test_scripts import ROOT

PROJECT = {os.path.splitext(os.path.basename(p))[0]: p
           for p in glob.glob(os.path.join(ROOT, "*.py"))
           + glob.glob(os.path.join(ROOT, "benchmarks", "*.py"))}
TESTS = sorted(glob.glob(os.path.join(ROOT, "tests", "*.py")))


@functools.lru_cache(maxsize=None)
def tree(path):
    with open(path, encoding="utf-8") as fh:
        return ast.parse(fh.read())


@functools.lru_cache(maxsize=None)
def defined(module: str) -> set:
    """The names a module binds itself at its top level (def, class, assignment, import of a
    whole module), not those it takes from another module with `from … import`."""
    names = set()
    for node in tree(PROJECT[module]).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


@functools.lru_cache(maxsize=None)
def copied_from(module: str) -> dict:
    """{name: [files]} of the project's files that do `from module import name`."""
    out = {}
    for path in [*PROJECT.values(), *TESTS]:
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.ImportFrom) and node.module == module:
                for a in node.names:
                    out.setdefault(a.name, []).append(os.path.relpath(path, ROOT))
    return out


def patches(path):
    """(module, name, line) of every setattr(<project module>, "<name>", …) call in a test file,
    the module named as the file imports it (`import x` or `import x as y`)."""
    t = ast.parse(open(path, encoding="utf-8").read())
    alias = {a.asname or a.name: a.name for n in ast.walk(t) if isinstance(n, ast.Import)
             for a in n.names if a.name in PROJECT}
    for n in ast.walk(t):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                and n.func.attr == "setattr" and len(n.args) >= 2
                and isinstance(n.args[0], ast.Name) and n.args[0].id in alias
                and isinstance(n.args[1], ast.Constant)):
            yield alias[n.args[0].id], n.args[1].value, n.lineno


def wrong_patches(paths) -> list:
    wrong = []
    for path in paths:
        for module, name, line in patches(path):
            where = f"{os.path.relpath(path, ROOT)}:{line}: {module}.{name}"
            if name not in defined(module):
                wrong.append(f"{where} is not defined there")
            elif name in copied_from(module):
                wrong.append(f"{where} is also imported by {copied_from(module)[name]}")
    return wrong


def test_every_patch_targets_the_module_that_defines_the_name():
    found = [p for path in TESTS for p in patches(path)]
    assert len(found) > 30  # the scan sees the suite's patches
    assert wrong_patches(TESTS) == []


@pytest.mark.parametrize("body, says", [
    ('import common\ndef test(monkeypatch):\n    monkeypatch.setattr(common, "pick_device", 1)\n',
     "common.pick_device is not defined there"),  # it moved to harness.py
    ('import harness\ndef test(monkeypatch):\n    monkeypatch.setattr(harness, "say", 1)\n',
     "also imported by"),  # the scripts call their own copy: `from harness import say`
])
def test_a_patch_on_the_wrong_module_is_found(tmp_path, body, says):
    path = tmp_path / "test_x.py"
    path.write_text(body)
    (problem,) = wrong_patches([str(path)])
    assert says in problem
