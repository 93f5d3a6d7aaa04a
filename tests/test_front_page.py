"""The front page answers what users come for within its first screens: what this is, the two
commands, the methods, which constraint to use (with links to the evidence), how to copy a
penalty, and the licence; the study itself lives in the report. Its caps are kept here, and
every #anchor a README link names is a heading of the file it points to."""
import os
import re

from test_scripts import ROOT

SECTIONS = ["Set up and run", "The methods", "Which constraint to use", "Copying a penalty",
            "More", "Licence", "Sources"]
MAX_LINES, MAX_WORDS, MAX_WIDTH, WHICH_BY, WHICH_LINES = 150, 120, 100, 60, 15


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
        return fh.read()


def prose(text):
    """(line number, line) of the lines outside code blocks and tables."""
    fence = False
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            fence = not fence
            continue
        if not fence and not line.startswith("|"):
            yield n, line


def paragraphs(text):
    """Blocks of prose between blank lines, headings and list items, as lists of lines."""
    block = []
    for _, line in prose(text):
        if not line.strip() or line.startswith("#") or re.match(r"- |\d+\. ", line):
            if block:
                yield block
            block = [line] if re.match(r"- |\d+\. ", line) else []
        else:
            block.append(line)
    if block:
        yield block


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation and symbols dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    return {slug(h) for h in re.findall(r"^#+ (.+)$", read(path), re.M)}


def problems(text: str) -> list:
    """What breaks the front page's rules in `text`."""
    lines = text.splitlines()
    out = []
    if len(lines) > MAX_LINES:
        out.append(f"{len(lines)} lines, more than {MAX_LINES}")
    out += [f"line {n} is {len(line)} characters" for n, line in prose(text)
            if len(line) > MAX_WIDTH]
    out += [f"a paragraph of {len(' '.join(p).split())} words: {p[0][:40]}"
            for p in paragraphs(text) if len(" ".join(p).split()) > MAX_WORDS]
    heads = [(n, line[3:]) for n, line in enumerate(lines, 1) if line.startswith("## ")]
    if [h for _, h in heads] != SECTIONS:
        out.append(f"sections {[h for _, h in heads]}, not {SECTIONS}")
    which = [n for n, h in heads if h == "Which constraint to use"]
    if which:
        after = [n for n, _ in heads if n > which[0]]
        if which[0] > WHICH_BY:
            out.append(f"'Which constraint to use' starts at line {which[0]}")
        if (after[0] if after else len(lines)) - which[0] - 1 > WHICH_LINES:
            out.append("'Which constraint to use' is longer than its 15 lines")
        body = lines[which[0]:after[0] - 1 if after else None]
        rows = [r for r in body if r.startswith("| ") and not r.startswith("| you want")]
        out += [f"a recommendation without a link to the report: {r[:50]}" for r in rows
                if "](results/README.md#" not in r]
        if len(rows) < 5:
            out.append("'Which constraint to use' has fewer than 5 recommendations")
    return out


def test_the_front_page_keeps_its_caps_and_its_order():
    assert problems(read("README.md")) == []


def test_the_check_sees_a_page_that_grew():
    text = read("README.md")
    assert any("characters" in p for p in problems(text.replace("## More\n", "## More\n"
                                                                 + "x" * 101 + "\n")))
    assert any("words" in p for p in problems(text.replace("## More\n", "## More\n\n"
                                                            + "word " * 121 + "\n")))
    assert any("sections" in p for p in problems(text.replace("## Licence", "## License")))
    assert any("lines" in p for p in problems(text + "\n" * 10 + "more\n" * 10))
    assert any("without a link" in p for p in problems(re.sub(
        r"\[summary\]\(results/README.md#[^)]*\)", "summary", text)))
    moved = text.replace("## Which constraint to use", "## Later").replace(
        "## More", "## Which constraint to use\n\n## More")
    assert problems(moved)


def test_every_anchor_the_readme_links_is_a_heading_there():
    text = read("README.md")
    links = re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", text)
    assert len(links) >= 6
    for path, anchor in links:
        target = path or "README.md"
        assert anchor in anchors(target), f"{target}#{anchor}"
    assert slug("Real images: MNIST 28×28") == "real-images-mnist-2828"


def test_the_licence_is_mit_and_the_readme_says_the_penalties_may_be_copied():
    assert read("LICENSE").startswith("MIT License")
    licence = read("README.md").split("## Licence", 1)[1].split("\n## ", 1)[0]
    assert "[LICENSE](LICENSE)" in licence and "copied" in licence
