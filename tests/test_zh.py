"""The Chinese edition (notebooks/zh/) stays in step with the English source.

Every notebook with a catalogue under i18n/zh/ must have a current
translation of each markdown cell; the built notebooks must be what the
catalogues and today's English code cells give; and the mechanism itself
must notice an edit, a new cell and a removed one.  nbval re-executes the
built notebooks like the English ones (they live under notebooks/).
"""

from __future__ import annotations

import re
import sys

import nbformat
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import nbtools  # noqa: E402
import zh  # noqa: E402

TRANSLATED = zh.translated()
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_the_chapters_00_to_07_are_translated():
    names = {p.name[:2] for p in TRANSLATED if p.parent == nbtools.NB}
    assert {f"{i:02d}" for i in range(8)} <= names, sorted(names)


@pytest.mark.parametrize("path", TRANSLATED, ids=lambda p: p.relative_to(nbtools.NB).as_posix())
def test_every_markdown_cell_has_a_current_translation(path):
    found = zh.problems(path)
    assert not found, ("translations to do (python tools/nbtools.py zh --stale):\n"
                       + "\n".join(str(p) for p in found))


@pytest.mark.parametrize("path", TRANSLATED, ids=lambda p: p.relative_to(nbtools.NB).as_posix())
def test_each_entry_records_the_english_it_was_made_from(path):
    for cid, e in zh.read_catalog(zh.catalog_path(path)).items():
        assert e["sha"] == zh.sha(e["en"]), f"{path.name} {cid}: sha is not the hash of en (edit zh only)"
        assert CJK.search(e["zh"]), f"{path.name} {cid}: the translation has no Chinese"


@pytest.mark.parametrize("path", TRANSLATED, ids=lambda p: p.relative_to(nbtools.NB).as_posix())
def test_chinese_punctuation_in_chinese_prose(path):
    """，：；？（） after a Chinese character, not ASCII (python tools/nbtools.py zh --punct fixes it)."""
    for cid, e in zh.read_catalog(zh.catalog_path(path)).items():
        assert not zh.punctuation_problems(e["zh"]), (cid, zh.punctuation_problems(e["zh"]))


@pytest.mark.parametrize("text, want", [
    ("**你将动手**:加载场景,阅读(manifest)", "**你将动手**：加载场景，阅读（manifest）"),
    ("见 `a, b` 和 `IP:端口`?", "见 `a, b` 和 `IP:端口`？"),
    ("> 首先我们先创建一组资源,包括一个deployment", "> 首先我们先创建一组资源,包括一个deployment"),
    ("规则 -s 10.0.0.0/8 ! -o docker0 在 1,2 号", "规则 -s 10.0.0.0/8 ! -o docker0 在 1,2 号"),
    ("[集群 IP(ClusterIP)](glossary.ipynb#clusterip)", "[集群 IP（ClusterIP）](glossary.ipynb#clusterip)"),
    ('略过:"和前面的比较类似"', "略过：“和前面的比较类似”"),
    ("plain English, (untouched): yes?", "plain English, (untouched): yes?"),
])
def test_punctuate(text, want):
    assert zh.punctuate(text) == want
    assert zh.punctuate(want) == want


def test_the_built_notebooks_are_up_to_date():
    bad = zh.out_of_date()
    assert not bad, "run python tools/nbtools.py zh: " + ", ".join(str(p.relative_to(ROOT)) for p in bad)


@pytest.mark.parametrize("path", TRANSLATED, ids=lambda p: p.relative_to(nbtools.NB).as_posix())
def test_same_code_cells_executed_in_chinese(path):
    en = nbformat.read(path, as_version=4)
    built = nbformat.read(zh.OUT / path.relative_to(nbtools.NB), as_version=4)
    assert [c.get("id") for c in en.cells] == [c.get("id") for c in built.cells]
    en_code = [c.source for c in en.cells if c.cell_type == "code"]
    zh_code = [c.source for c in built.cells if c.cell_type == "code"]
    first = zh_code[0].split("\n")
    assert any(line.startswith(zh.SET_LANGUAGE) for line in first), "the first code cell chooses Chinese"
    assert "\n".join(line for line in first if not line.startswith(zh.SET_LANGUAGE)) == en_code[0]
    assert zh_code[1:] == en_code[1:]
    counts = [c.execution_count for c in built.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), "not executed top to bottom: python tools/nbtools.py zh"
    for c in built.cells:
        for o in c.get("outputs", []):
            assert o.output_type != "error", f"{o.ename}: {o.evalue}"
            assert not (o.output_type == "stream" and o.name == "stderr"), o.text


def test_links_in_the_chinese_notebooks_resolve():
    for p in sorted(zh.OUT.rglob("*.ipynb")):
        for c in nbformat.read(p, as_version=4).cells:
            if c.cell_type != "markdown":
                continue
            for target in re.findall(r"\]\(([^)\s#]+)[^)]*\)", c.source):
                if re.match(r"[a-z]+:", target):
                    continue
                assert (p.parent / target).exists(), f"{p.relative_to(ROOT)} {c.get('id')}: {target}"


# ---------------------------------------------------------------- the mechanism itself

@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A one-chapter course in a temporary folder, with its catalogue."""
    nbdir, cat = tmp_path / "notebooks", tmp_path / "i18n" / "zh"
    nbdir.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 00 Title\n\nFirst line."),
                nbformat.v4.new_code_cell("import coursekit as ck\nprint(1)"),
                nbformat.v4.new_markdown_cell("The bridge forwards frames.")]
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    path = nbdir / "00-title.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setattr(zh, "NB", nbdir)
    monkeypatch.setattr(zh, "CATALOG", cat)
    monkeypatch.setattr(zh, "OUT", nbdir / "zh")
    monkeypatch.setattr(nbtools, "NB", nbdir)
    zh.sync(path)
    entries = zh.read_catalog(zh.catalog_path(path))
    entries["cell-00"]["zh"] = "# 00 标题\n\n第一行。"
    entries["cell-02"]["zh"] = "网桥转发帧。"
    zh.write_catalog(zh.catalog_path(path), path, entries)
    return path


def test_a_complete_catalogue_has_no_problems(sandbox):
    assert zh.problems(sandbox) == []
    out, text = zh.build(sandbox)
    built = nbformat.reads(text, as_version=4)
    assert [c.source for c in built.cells if c.cell_type == "markdown"] == ["# 00 标题\n\n第一行。", "网桥转发帧。"]
    assert built.cells[1].source.startswith("import coursekit as ck\n" + zh.SET_LANGUAGE)


def test_an_edited_english_cell_makes_its_translation_stale(sandbox):
    nb = nbformat.read(sandbox, as_version=4)
    nb.cells[2].source = "The bridge forwards frames by MAC."
    nbformat.write(nb, sandbox)
    (p,) = zh.problems(sandbox)
    assert (p.kind, p.notebook, p.cell) == ("stale", "00-title.ipynb", "cell-02")
    assert "by MAC" in p.excerpt and "+The bridge forwards frames by MAC." in p.diff
    assert "00-title.ipynb cell-02" in str(p) and "English changed" in str(p)
    zh.done(sandbox, ["cell-02"])                   # the translator re-translated it
    assert zh.problems(sandbox) == []


def test_new_and_removed_cells_are_found(sandbox):
    nb = nbformat.read(sandbox, as_version=4)
    new = nbformat.v4.new_markdown_cell("A new paragraph.")
    new["id"] = "cell-09"
    nb.cells = nb.cells[:2] + [new]                  # cell-02 removed, cell-09 added
    nbformat.write(nb, sandbox)
    found = {(p.kind, p.cell) for p in zh.problems(sandbox)}
    assert found == {("missing", "cell-09"), ("orphaned", "cell-02")}
    assert zh.sync(sandbox) == (1, 1)
    assert {(p.kind, p.cell) for p in zh.problems(sandbox)} == {("missing", "cell-09")}


def test_a_malformed_catalogue_is_refused(sandbox):
    cat = zh.catalog_path(sandbox)
    cat.write_text(cat.read_text(encoding="utf-8").replace("zh: ", "chinese: ", 1), encoding="utf-8")
    with pytest.raises(SystemExit, match="exactly id, sha, en, zh"):
        zh.read_catalog(cat)


def test_the_chinese_readme_is_linked_and_its_links_resolve():
    assert "(README.zh.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    text = zh.README_ZH.read_text(encoding="utf-8")
    assert "python -m coursekit open --lang zh" in text and "urlpath=lab/tree/notebooks/zh/00-" in text
    for target in re.findall(r"\]\(([^)\s#]+)[^)]*\)", text):
        if not re.match(r"[a-z]+:", target):
            assert (ROOT / target).exists(), target


def test_open_lang_zh_opens_the_chinese_chapter():
    from coursekit import cli
    assert cli.open_command("00", lang="zh")[-2 if cli.os.geteuid() == 0 else -1].endswith(
        "/lab/tree/notebooks/zh/00-the-scenario.ipynb")
    import coursekit as ck
    with pytest.raises(ck.CourseError) as e:
        cli.open_command("00", lang="fr")
    assert e.value.field == "lang"


# ---------------------------------------------------------------- terms (docs/translating.md, data/glossary.yaml)

def _terms_table() -> list[tuple[str, str, list[str]]]:
    text = (ROOT / "docs" / "translating.md").read_text(encoding="utf-8")
    block = text.split("<!-- terms:start -->", 1)[1].split("<!-- terms:end -->", 1)[0]
    rows = []
    for line in block.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((cells[0], cells[1], [a.strip() for a in cells[2].split(",") if a.strip()]))
    return rows


def _prose(text: str) -> str:
    """A translation without code, link targets and the article's quoted lines (kept verbatim)."""
    text = re.sub(r"```.*?```|`[^`\n]*`|\]\([^)]*\)", " ", text, flags=re.S)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


def test_one_chinese_term_per_concept():
    """No variant the terms table rules out appears in a translation (outside code and article quotes)."""
    rows = _terms_table()
    assert len(rows) >= 30
    found = []
    for path in TRANSLATED:
        for cid, e in zh.read_catalog(zh.catalog_path(path)).items():
            prose = _prose(e["zh"])
            found += [f"{path.name} {cid}: {bad!r} (use {use!r} for {en!r})"
                      for en, use, avoid in rows for bad in avoid if bad in prose]
    assert not found, "\n".join(found)


def test_glossary_links_use_the_glossarys_chinese_term():
    """A link to a glossary entry shows that entry's Chinese term (data/glossary.yaml), as the glossary page does."""
    import coursekit as ck
    by_anchor = {ck.glossary.anchor(t.term): t for t in ck.glossary.terms()}
    bad = []
    for path in TRANSLATED:
        for cid, e in zh.read_catalog(zh.catalog_path(path)).items():
            for label, anchor in re.findall(r"\[((?:[^\[\]]|\[[^\]]*\])+)\]\(glossary\.ipynb#([\w-]+)\)", e["zh"]):
                t = by_anchor.get(anchor)
                assert t is not None, f"{path.name} {cid}: no glossary entry #{anchor}"
                cores = [re.sub(r"[(（].*?[)）]", "", part).strip() for part in t.zh.split(" / ")]
                if not any(core and core in label for core in cores):
                    bad.append(f"{path.name} {cid}: [{label}] -> #{anchor}: the glossary says {t.zh!r}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", TRANSLATED, ids=lambda p: p.relative_to(nbtools.NB).as_posix())
def test_chinese_outputs_say_nothing_about_this_machine(path):
    """As tests/test_notebooks.py asks of the English chapters: no paths, addresses or dates of this machine."""
    import test_notebooks
    built = nbformat.read(zh.OUT / path.relative_to(nbtools.NB), as_version=4)
    for c in built.cells:
        for o in c.get("outputs", []):
            text = test_notebooks._text(o)
            for rx, what in test_notebooks.MACHINE:
                assert not rx.search(text), f"{path.name} {c.get('id')}: {what}"


@pytest.mark.parametrize("path", TRANSLATED, ids=lambda p: p.relative_to(nbtools.NB).as_posix())
def test_chinese_printed_text_is_one_output_per_stream(path):
    """As the English chapters (tests/test_notebooks.py): re-executing must give the same bytes."""
    built = nbformat.read(zh.OUT / path.relative_to(nbtools.NB), as_version=4)
    for c in built.cells:
        outs = c.get("outputs", [])
        assert not [a for a, b in zip(outs, outs[1:]) if a.output_type == b.output_type == "stream"
                    and a.name == b.name], f"{path.name} {c.get('id')}: printed text stored in pieces"
