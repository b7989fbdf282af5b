"""Every section of a chapter runs on its own after the chapter's setup cell.

A learner who opens a chapter, runs its first code cell and then jumps to any
section must not meet a NameError: each section's cells use only what the
setup cell defines (``ck``, ``sc``, ``w``) or what the section defines itself.
"""

import sys

import nbformat
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import nbtools  # noqa: E402

# Chapter 07's sections are self-contained too, but one of them runs the live lab
# (root, minutes, the lab lock): nbval runs it in order, under the lock.
SELF_CONTAINED = ("00", "01", "02", "03", "04", "05", "06", "08")


def _sections(path):
    """(heading, [code sources]) per '## ' section, and the setup code (the first code cell)."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup, sections, current = code[0].source, [], None
    for c in nb.cells:
        if c.cell_type == "markdown" and any(line.startswith("## ") for line in c.source.splitlines()):
            current = (next(line for line in c.source.splitlines() if line.startswith("## ")), [])
            sections.append(current)
        elif c.cell_type == "code" and current is not None and c is not code[0]:
            current[1].append(c.source)
    return setup, [s for s in sections if s[1]]


CASES = [(p, head) for p in nbtools.chapters() if p.name[:2] in SELF_CONTAINED for head, _ in _sections(p)[1]]


@pytest.mark.parametrize("path, heading", CASES, ids=[f"{p.name[:2]} {h[3:40]}" for p, h in CASES])
def test_section_runs_after_the_setup_cell_alone(path, heading):
    setup, sections = _sections(path)
    ns: dict = {}
    exec(compile(setup, f"{path.name}:setup", "exec"), ns)
    for src in dict(sections)[heading]:
        exec(compile(src, f"{path.name}:{heading}", "exec"), ns)
