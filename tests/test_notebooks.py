"""The chapters as a learner gets them: executed, deterministic, navigable, with checked exercises.

nbval (``--nbval`` in pytest's addopts) re-executes every notebook and
compares each stored output strictly: a stale output fails there.  These
tests add what nbval does not check.
"""

from __future__ import annotations

import re
import sys

import nbformat
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import nbtools  # noqa: E402

CHAPTERS = nbtools.chapters()
ALL = CHAPTERS + nbtools.solutions()
MACHINE = [
    (re.compile(r"/(home|root|tmp|work|Users)/"), "a path of this machine"),
    (re.compile(r"\bat 0x[0-9a-f]{6,}"), "a memory address"),
    (re.compile(r"\b20(2[0-9]|3[0-9])-\d\d-\d\d"), "a date from the wall clock (captures are from 2019)"),
    (re.compile(r"\bWidget\(|model_id"), "a widget's repr"),
]


def _read(p):
    return nbformat.read(p, as_version=4)


def _text(out) -> str:
    if out.output_type == "stream":
        return out.text
    return "\n".join(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))


def test_the_chapters_are_all_there():
    names = [p.name for p in CHAPTERS]
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(len(names))]
    assert all(re.fullmatch(r"\d\d-[a-z0-9-]+\.ipynb", n) for n in names)
    assert len(names) >= 7


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_executed_in_order_without_errors(path):
    nb = _read(path)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert None not in counts, "unexecuted cells: run python tools/nbtools.py execute"
    assert counts == list(range(1, len(counts) + 1)), "cells were not run top to bottom in one kernel"
    for c in nb.cells:
        for o in c.get("outputs", []):
            assert o.output_type != "error", f"{o.ename}: {o.evalue}"
            assert not (o.output_type == "stream" and o.name == "stderr"), o.text


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_outputs_do_not_depend_on_the_machine(path):
    for c in _read(path).cells:
        for o in c.get("outputs", []):
            for rx, what in MACHINE:
                m = rx.search(_text(o))
                assert not m, f"output contains {what}: {m.group(0)!r}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_widget_ids_are_stable(path):
    """Re-executing a notebook gives the same bytes: widget model ids are named, not random."""
    for i, c in enumerate(_read(path).cells):
        for k, o in enumerate(c.get("outputs", [])):
            view = o.get("data", {}).get(nbtools.WIDGET_MIME)
            if view:
                assert view["model_id"] == f"{path.stem}-cell{i:02d}-{k}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_printed_text_is_one_output_per_stream(path):
    """The kernel flushes printed text in pieces that vary from run to run; the stored notebook
    joins them (nbtools.execute), or re-executing would change its bytes."""
    nb = _read(path)
    for k, c in enumerate(nb.cells):
        outs = c.get("outputs", [])
        split = [a.name for a, b in zip(outs, outs[1:])
                 if a.output_type == b.output_type == "stream" and a.name == b.name]
        assert not split, f"cell {k} ({c.get('id')}): its {split[0]} is stored in pieces"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_shape(path):
    nb = _read(path)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert "**What you'll learn**" in md and "**What you need**" in md
    assert "## Summary" in md
    assert code[0].startswith("import coursekit as ck")
    for src in code:
        assert "import *" not in src
        assert len(src.splitlines()) <= 10, f"a cell is logic, not a few calls:\n{src}"
        lines = src.splitlines()
        for i, line in enumerate(lines):
            if "NBVAL_" in line:
                # nbval needs the marker alone on its line; the reason is the next comment
                assert re.fullmatch(r"#\s*NBVAL_[A-Z_]+", line.strip()), f"not an nbval marker line: {line}"
                assert i + 1 < len(lines) and re.match(r"#\s*\S.{15,}", lines[i + 1].strip()), \
                    f"an nbval marker without its reason: {line}"
    if not path.name.startswith("07"):
        checks = [s for s in code if "ck.check(" in s]
        assert len(checks) >= 2, "at least 2 exercises per chapter"
        assert any("ck.widgets." in s for s in code), "every chapter has an explorer"


# Chapters whose exercises are all placed before the section that reveals their
# answer (each exercise names that section: coursekit.exercises, ``before``).
PREDICT_FIRST = ("00", "01", "02", "03", "04", "05", "06", "07", "08")


@pytest.mark.parametrize("path", [p for p in CHAPTERS if p.name[:2] in PREDICT_FIRST], ids=lambda p: p.name)
def test_every_exercise_is_asked_before_its_answer_is_shown(path):
    from coursekit import exercises as X
    nb = _read(path)
    heads: dict[str, int] = {}
    asked: dict[str, int] = {}
    for i, c in enumerate(nb.cells):
        if c.cell_type == "markdown":
            for line in c.source.splitlines():
                if line.startswith("#"):
                    heads.setdefault(line.strip(), i)
        else:
            for eid in re.findall(r'ck\.check\("([\w.-]+)"', c.source):
                assert eid not in asked, f"{eid} is asked twice"
                asked[eid] = i
    mine = {e.id: e for e in X.EXERCISES if e.chapter == path.name[:2]}
    assert set(asked) == set(mine), f"missing {sorted(set(mine) - set(asked))}, foreign {sorted(set(asked) - set(mine))}"
    for eid, cell in asked.items():
        before = mine[eid].before
        assert before in heads, f"{eid}: no heading {before!r}"
        assert cell < heads[before], f"{eid} is asked after {before!r}, which shows its answer"


def test_every_exercise_has_a_checked_solution():
    asked = set()
    for p in CHAPTERS:
        for c in _read(p).cells:
            asked |= set(re.findall(r'ck\.check\("([\w.-]+)"', c.source)) if c.cell_type == "code" else set()
    solved = {}
    for p in nbtools.solutions():
        for c in _read(p).cells:
            if c.cell_type == "code":
                for eid in re.findall(r'ck\.check\("([\w.-]+)"', c.source):
                    solved[eid] = "".join(_text(o) for o in c.outputs)
    assert asked, "no exercises found"
    assert asked <= set(solved), f"exercises without a solution: {sorted(asked - set(solved))}"
    for eid, out in solved.items():
        assert out.startswith(f"✔ {eid}: correct"), out


def test_unanswered_exercises_say_so():
    for p in CHAPTERS:
        for c in _read(p).cells:
            if c.cell_type == "code" and "ck.check(" in c.source:
                assert "not answered yet" in "".join(_text(o) for o in c.outputs)


def test_navigation_and_chapter_map_are_generated():
    assert nbtools.stale() == [], "run: python tools/nbtools.py nav"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for p in CHAPTERS:
        assert f"](notebooks/{p.name})" in readme
