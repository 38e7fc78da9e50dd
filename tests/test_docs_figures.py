"""Figures stay true: the numbers the docs quote from committed run folders match those folders.

A page marks a table's figures with a comment right after the table (a blank line between is fine;
a table whose rows come from several run folders has one comment per folder, one after the other):

    <!-- figures docs/benchmarks/evidence/summary.json
    nq_open | never | sets/nq_open/never | pct1
    nq_open | never | sets/nq_open/never_ci | pct1
    -->

Each line: the row (the table's first cell, exactly, or its first two cells as ``first · second`` where
the first repeats, e.g. one set run with several models), the column (its header, exactly), the key path
in the JSON file (``/``-separated; ``name=value`` picks the element of a list whose ``name`` is
``value``; a number indexes a list) and the format the page writes the number in. The test formats
the JSON value and requires it in that cell, so an edited number on the page, or a rerun that moved
a figure, fails here until page and run folder agree. A pair of numbers (an ``*_ci`` interval) is
written ``[lo, hi]``. The Unicode minus and the ASCII hyphen count as the same sign. Reads files
only: no model, no network. The last test builds the site with ``mkdocs build --strict`` when mkdocs
is installed (the ``docs`` extra; a few seconds).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"<!-- figures (\S+)\n(.*?)-->", re.S)
# Pages whose main tables must carry markers (a page that loses them fails, not just passes quietly).
MARKED_PAGES = ("benchmarks.md", "triggers/semantic-entropy.md", "triggers/learned-cascade.md")

_BARE = {
    "pct1": lambda v: f"{v * 100:.1f}",
    "pct0": lambda v: f"{v * 100:.0f}",
    "pctg": lambda v: f"{round(v * 100, 4):g}",
    "pp1": lambda v: f"{v * 100:+.1f}",
    "signed3": lambda v: f"{v:+.3f}",
    "f3": lambda v: f"{v:.3f}",
    "f2": lambda v: f"{v:.2f}",
    "f1": lambda v: f"{v:.1f}",
    "int": lambda v: f"{int(v):d}",
    "text": str,  # a value the report writes as words, e.g. "too few events (2)"
}
_UNIT = {"pct1": " %", "pct0": " %", "pctg": " %", "pp1": " pp"}


def render(value, fmt: str) -> str:
    """The text a page writes for ``value`` in format ``fmt`` (an interval as ``[lo, hi]``)."""
    if fmt not in _BARE:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(_BARE)}")
    if isinstance(value, list):
        lo, hi = value
        return f"[{_BARE[fmt](lo)}, {_BARE[fmt](hi)}]"
    return _BARE[fmt](value) + _UNIT.get(fmt, "")


def lookup(data, path: str):
    for seg in path.split("/"):
        if isinstance(data, list):
            if "=" in seg:
                key, _, want = seg.partition("=")
                found = [x for x in data if isinstance(x, dict) and str(x.get(key)) == want]
                if len(found) != 1:
                    raise KeyError(f"{path}: {len(found)} elements with {key} = {want!r}")
                data = found[0]
            else:
                data = data[int(seg)]
        else:
            if seg not in data:
                raise KeyError(f"{path}: no key {seg!r} (has: {', '.join(map(str, data))})")
            data = data[seg]
    return data


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table_before(text: str, pos: int) -> tuple[list[str], dict[str, list[str]]]:
    """The Markdown table that ends right before ``pos``: its header cells and rows by first cell."""
    lines = text[:pos].rstrip("\n").split("\n")
    while lines and (not lines[-1].strip() or lines[-1].strip() == "-->"):  # a table's rows may come from
        if lines[-1].strip() == "-->":  # several run folders: one marker each, one after the other
            while lines and not lines[-1].startswith("<!-- figures "):
                lines.pop()
        lines.pop()
    table = []
    while lines and lines[-1].lstrip().startswith("|"):
        table.insert(0, lines.pop())
    if len(table) < 3:
        raise AssertionError("a figures marker must follow a table")
    header = _cells(table[0])
    rows = {}
    for line in table[2:]:
        cells = _cells(line)
        rows.setdefault(cells[0], cells)  # the first row of that name
        if len(cells) > 1:
            rows[f"{cells[0]} · {cells[1]}"] = cells  # a row named by its first two cells (one set, several models)
    return header, rows


def _norm(text: str) -> str:
    return text.replace("\u2212", "-").replace("**", "")


def collect() -> list[tuple]:
    figures = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            header, rows = table_before(text, m.start())
            for n, line in enumerate(filter(None, (l.strip() for l in m.group(2).split("\n")))):
                row, col, key, fmt = (p.strip() for p in line.split("|"))
                figures.append((page.relative_to(DOCS).as_posix(), m.group(1), header, rows, row, col, key, fmt))
    return figures


FIGURES = collect()


def test_marked_pages_carry_figures():
    pages = {f[0] for f in FIGURES}
    missing = [p for p in MARKED_PAGES if p not in pages]
    assert not missing, f"no figures markers on {missing}"
    assert len(FIGURES) >= 100, len(FIGURES)


@pytest.mark.parametrize("page,source,header,rows,row,col,key,fmt", FIGURES,
                         ids=[f"{f[0]}:{f[4]}:{f[5]}:{f[6].rsplit('/', 1)[-1]}" for f in FIGURES])
def test_figure_matches_run_folder(page, source, header, rows, row, col, key, fmt):
    path = ROOT / source
    assert path.is_file(), f"{page}: {source} does not exist"
    value = lookup(json.loads(path.read_text(encoding="utf-8")), key)
    assert value is not None, f"{page}: {source} {key} is null"
    expected = render(value, fmt)
    assert row in rows, f"{page}: no row {row!r} in the table before the marker (rows: {list(rows)})"
    assert col in header, f"{page}: no column {col!r} (columns: {header})"
    cell = _norm(rows[row][header.index(col)])
    pattern = r"(?<![\d.])" + re.escape(_norm(expected)) + r"(?![\d])"
    assert re.search(pattern, cell), (f"{page}: row {row!r}, column {col!r} reads {cell!r}; "
                                      f"{source} {key} is {value!r}, written {expected!r}")


def test_a_changed_number_is_caught():
    """The check itself: a cell whose number differs from the run folder's does not match."""
    assert render(0.1, "pct1") == "10.0 %" and render([0.0333, 0.1833], "pct1") == "[3.3, 18.3]"
    assert render(-0.2450805, "signed3") == "-0.245" and render(0.55, "pctg") == "55 %"
    pattern = r"(?<![\d.])" + re.escape("+0.133") + r"(?![\d])"
    assert re.search(pattern, "+0.133 [-0.023, +0.295]") and not re.search(pattern, "+0.134 [-0.023, +0.295]")
    assert not re.search(pattern, "+0.1334")


def test_design_citations_name_existing_sections():
    """Source files cite docs/design.md by section; every cited section is a heading there."""
    headings = set(re.findall(r"^#+ (.+)$", (DOCS / "design.md").read_text(encoding="utf-8"), re.M))
    cited = []
    for folder in ("rag", "triggers", "retrievers", "corpora", "benchmarks", "tests"):
        for src in (ROOT / folder).rglob("*.py"):
            if src.resolve() == Path(__file__).resolve():
                continue
            text = src.read_text(encoding="utf-8")
            assert "DESIGN.md" not in text, f"{src}: cites DESIGN.md; the design is docs/design.md"
            cited += [(src, s) for s in re.findall(r'docs/design\.md,\s+"([^"]+)"', text)]
    assert cited
    missing = [(str(src.relative_to(ROOT)), s) for src, s in cited if s not in headings]
    assert not missing, f"sections cited but not in docs/design.md: {missing}"


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
                    reason="mkdocs is not installed (the docs extra)")
def test_docs_build_strict(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    run = subprocess.run([mkdocs, "build", "--strict", "--quiet", "-d", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
