"""The documents stay honest: every command the README, the results' tables and the programs'
docstrings show exists with those flags (parsed by the scripts' and benchmarks' own parsers,
nothing run), and every file they link to or show is in the repository."""
import glob
import importlib
import os
import re
import shlex
import sys

import pytest

import common
import harness
from test_scripts import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

DOCS = sorted({*glob.glob(os.path.join(ROOT, "*.md")),
               *glob.glob(os.path.join(ROOT, "benchmarks", "**", "*.md"), recursive=True),
               *glob.glob(os.path.join(ROOT, "results", "**", "*.md"), recursive=True)})


def commands(path):
    """(line number, command) for every `python <file>.py ...` in a code block or a code span;
    a block's line that ends in a backslash goes on on the next (the command is the whole)."""
    found, block, held = [], False, None
    for i, line in enumerate(open(path, encoding="utf-8"), 1):
        if line.lstrip().startswith("```"):
            block, held = not block, None
            continue
        if block and held is not None:
            start, line = held[0], held[1] + " " + line.strip()
        else:
            start = i
        if block and line.rstrip().endswith("\\"):
            held = (start, line.rstrip()[:-1].rstrip())
            continue
        held = None
        texts = [line] if block else re.findall(r"`([^`]+)`", line)
        for text in texts:
            text = re.split(r"\s#\s", text)[0].strip()  # a comment after the command
            m = re.search(r"(?:^|\s)(python [\w/]+\.py(?: .*)?)$", text)
            if m and not re.search(r"[<…]|\.\.\.", m.group(1)):
                found.append((start, m.group(1)))
    return found


def docstring_commands(path):
    """(line number, command) for the run commands of a script's or benchmark's docstring."""
    import ast
    doc = ast.get_docstring(ast.parse(open(path, encoding="utf-8").read())) or ""
    out, lines = [], doc.splitlines()
    for i, line in enumerate(lines, 2):
        while line.rstrip().endswith("\\") and i - 1 < len(lines):  # continued on the next line
            line = line.rstrip()[:-1] + " " + re.split(r"\s#\s", lines[i - 1])[0].strip()
            lines[i - 1] = ""
        text = re.split(r"\s#\s", line)[0].strip()
        if re.match(r"python [\w/]+\.py(?: |$)", text) and not re.search(r"[<…]|\.\.\.", text):
            out.append((i, text))
    return out


PROGRAMS = [os.path.join(ROOT, s + ".py") for s in common.SCRIPTS] + sorted(
    glob.glob(os.path.join(ROOT, "benchmarks", "*.py")))
ALL = [(os.path.relpath(p, ROOT), i, c) for p in DOCS for i, c in commands(p)] + [
    (os.path.relpath(p, ROOT), i, c) for p in PROGRAMS for i, c in docstring_commands(p)]


def parse(argv, monkeypatch):
    """Parse a command line with its program's own parser; SystemExit 2 if it refuses one."""
    path, args = argv[1], argv[2:]
    name = os.path.splitext(os.path.basename(path))[0]
    monkeypatch.setattr(harness, "writable_folder", lambda p: p)  # parse, never make folders
    monkeypatch.setattr(harness, "pick_device",  # the flags, not this machine's devices
                        lambda name: __import__("torch").device("cpu" if name == "auto" else name))
    mod = importlib.import_module(name)
    if name in common.SCRIPTS:
        return mod.build_parser().parse_args(args)
    if name == "speed":
        return mod.parse(args)
    if name == "gpu_check":
        return mod.parse_args(args)[1]
    return mod.parse_args(args)


def test_the_documents_show_commands():
    assert len(ALL) > 80 and any(c.startswith("python slogan.py") for _, _, c in ALL)


@pytest.mark.parametrize("where,line,command", ALL, ids=[f"{w}:{n}" for w, n, _ in ALL])
def test_every_command_shown_exists_with_its_flags(where, line, command, monkeypatch, capsys):
    argv = shlex.split(command)
    try:
        a = parse(argv, monkeypatch)
        if argv[1].endswith("loopback_cluster.py") and a.command[:1] == ["python"]:
            parse(a.command, monkeypatch)  # and the command it runs inside the cluster
    except SystemExit as e:
        pytest.fail(f"{where}:{line}: `{command}` is refused: {capsys.readouterr().err.strip()}"
                    if e.code else f"{where}:{line}: `{command}` exits")


def test_every_linked_file_exists():
    missing = []
    for path in DOCS:
        base = os.path.dirname(path)
        for i, line in enumerate(open(path, encoding="utf-8"), 1):
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"[a-z]+:", target) or target.startswith("#"):
                    continue
                if not os.path.exists(os.path.join(base, target.split("#")[0])):
                    missing.append(f"{os.path.relpath(path, ROOT)}:{i}: {target}")
    assert not missing, "\n".join(missing)


def test_every_file_the_documents_name_exists():
    """A file named in code style (`results/w1_benchmark/results.md`) is in the repository."""
    named = set()
    for path in DOCS:
        text = open(path, encoding="utf-8").read()
        named |= set(re.findall(r"`((?:results|assets|benchmarks|tests)/[\w./-]+\."
                                r"(?:md|csv|png|py|json))`", text))
    assert len(named) > 10 and not [n for n in named if not os.path.exists(os.path.join(ROOT, n))]


def test_the_generated_tables_match_the_committed_csvs(tmp_path, monkeypatch, capsys):
    """Every table between markers in the report, results/README.md, is what its CSV gives;
    an edited one is found out."""
    import report
    assert report.main(["--check"]) == 0
    for doc in report.DOCUMENTS:
        os.makedirs(tmp_path / os.path.dirname(doc), exist_ok=True)
        text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
        assert "<!-- table " in text
        (tmp_path / doc).write_text(text.replace("| 3 | 1.26 [1.12, 1.27] |", "| 3 | 1.06 |"))
    monkeypatch.setattr(report, "DOCUMENTS", tuple(str(tmp_path / d) for d in report.DOCUMENTS))
    assert report.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
