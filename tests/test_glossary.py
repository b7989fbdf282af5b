"""The glossary: complete in both languages, the terms a learner meets, linked from every chapter."""

import re
import sys

import nbformat
import pytest

import coursekit as ck
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import nbtools  # noqa: E402

CJK = re.compile(r"[\u4e00-\u9fff]")

# what issue 11 asks for, and the Chinese words a Chinese edition must use for them
REQUIRED = ["VTEP", "FDB", "onlink", "neighbour states", "ECMP", "ISN", "MSS", "window scale", "BPF",
            "[ASSURED]", "mark 0x4000", "DOCKER chain", "addrtype", "hook order"]
CHINESE = {"NIC": "网卡", "bridge": "网桥", "packet": "报文", "encapsulation / decapsulation": "解封装",
           "masquerade": "地址伪装", "conntrack": "连接跟踪", "VTEP": "隧道端点"}


def test_every_entry_is_complete_in_both_languages():
    terms = ck.glossary.terms()
    assert len({t.term for t in terms}) == len(terms), "a term appears twice"
    for t in terms:
        assert t.term and t.en and not CJK.search(t.en), t.term
        assert CJK.search(t.zh) and CJK.search(t.zh_def), t.term
        assert re.fullmatch(r"0[0-7]", t.chapter), t.term
        # the Chinese definition says as much as the English: no one-word stubs
        assert len(t.zh_def) >= len(t.en) / 4, t.term


def test_the_required_terms_and_their_chinese():
    for name in REQUIRED:
        assert ck.glossary.term(name).term == name
    for name, zh in CHINESE.items():
        assert zh in ck.glossary.term(name).zh, (name, zh)


def test_each_term_is_used_in_the_chapter_that_explains_it():
    for t in ck.glossary.terms():
        nb = next(nbtools.NB.glob(f"{t.chapter}-*.ipynb"))
        text = nb.read_text(encoding="utf-8").lower()
        words = [w.strip("[]") for w in re.split(r" / ", t.term.lower())]
        linked = f"glossary.ipynb#{ck.glossary.anchor(t.term)})" in text
        mentioned = any(all(part in text for part in w.split()) for w in words)
        assert linked or mentioned, f"{t.term!r} is not mentioned in chapter {t.chapter}"


@pytest.mark.parametrize("chapter", ["00", "01", "02", "03", "04", "05", "06"])
def test_chapters_link_the_terms_they_explain(chapter):
    """Chapters 00-06 link each term they first explain to its glossary entry (07 joins when edited)."""
    text = next(nbtools.NB.glob(f"{chapter}-*.ipynb")).read_text(encoding="utf-8")
    for t in ck.glossary.terms():
        if t.chapter == chapter:
            assert f"glossary.ipynb#{ck.glossary.anchor(t.term)})" in text, t.term


def test_glossary_page_is_generated_and_linked_from_every_chapter():
    page = nbformat.read(nbtools.GLOSSARY, as_version=4)
    md = "\n".join(c.source for c in page.cells)
    for t in ck.glossary.terms():
        assert f'<a id="{ck.glossary.anchor(t.term)}"></a>' in md and t.zh in md
    for p in nbtools.chapters() + nbtools.solutions():
        nav = [c.source for c in nbformat.read(p, as_version=4).cells if "pw-nav" in c.metadata.get("tags", [])]
        assert all("glossary.ipynb)" in s for s in nav), p.name


@pytest.mark.parametrize("bad, field", [("nosuchterm", "term"), ("", "term")])
def test_unknown_terms_are_refused(bad, field):
    with pytest.raises(ck.CourseError) as e:
        ck.glossary.term(bad)
    assert e.value.field == field


def test_markdown_in_one_language():
    vtep = ck.glossary.term("VTEP")
    assert vtep.en in ck.glossary.markdown("en") and vtep.zh_def not in ck.glossary.markdown("en")
    assert vtep.zh_def in ck.glossary.markdown("zh") and vtep.en not in ck.glossary.markdown("zh")
    with pytest.raises(ck.CourseError):
        ck.glossary.markdown("fr")


@pytest.mark.parametrize("chapter", ["04", "05", "06"])
def test_later_chapters_link_terms_too(chapter):
    """Not only "bold terms are in the glossary": chapters 04-06 link terms of earlier chapters where they use them."""
    text = next(nbtools.NB.glob(f"{chapter}-*.ipynb")).read_text(encoding="utf-8")
    anchors = set(re.findall(r"glossary\.ipynb#([\w-]+)\)", text))
    assert len(anchors) >= 2, anchors
    assert anchors <= {ck.glossary.anchor(t.term) for t in ck.glossary.terms()}, "a link to no glossary entry"
