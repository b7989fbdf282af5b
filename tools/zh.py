"""The Chinese edition: translation catalogues -> notebooks/zh/ (docs/translating.md says how to translate).

    python tools/nbtools.py zh                 # build notebooks/zh/ from the catalogues, execute, store outputs
    python tools/nbtools.py zh 03 05           # only these chapters (and their solutions, if translated)
    python tools/nbtools.py zh --no-execute    # build without running (a quick look at the text)
    python tools/nbtools.py zh --stale         # list cells whose translation is missing or out of date
    python tools/nbtools.py zh --sync 03       # add empty entries for new cells, drop removed ones
    python tools/nbtools.py zh --done 03 cell-07 [cell-..]   # a stale cell was re-translated: record today's English
    python tools/nbtools.py zh --punct [03]    # full-width Chinese punctuation in the translations' prose

The English notebooks are the source.  Each translated notebook has one
catalogue, ``i18n/zh/<notebook stem>.yaml`` (solutions under
``i18n/zh/solutions/``): one entry per markdown cell, keyed by the cell's
``id``, holding the English it was translated from (``en``), that text's
hash (``sha``) and the translation (``zh``).  A cell is *stale* when the
notebook's English no longer hashes to ``sha`` (someone edited it after it
was translated), *missing* when it has no entry or an empty ``zh``, and an
entry is *orphaned* when its cell is gone.  tests/test_zh.py fails on any of
these for every notebook that has a catalogue.

The build copies the English notebook, replaces each markdown cell by its
translation (navigation cells are generated in Chinese), adds
``ck.set_language("zh")`` to the first code cell, points relative links to
pages that have no Chinese version at the English ones, and executes it.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

import nbtools

ROOT = nbtools.ROOT
NB = nbtools.NB
CATALOG = ROOT / "i18n" / "zh"
OUT = NB / "zh"
README_ZH = ROOT / "README.zh.md"
TAG = nbtools.TAG
SET_LANGUAGE = 'ck.set_language("zh")'
HEADER = ("# 中文译文 (Chinese translation) of notebooks/{path}\n"
          "# Edit only `zh:`.  `en:` is the English this translation was made from and `sha:` its hash;\n"
          "# `python tools/nbtools.py zh --stale` lists cells whose English changed since.\n"
          "# Format and workflow: docs/translating.md\n")


def sha(text: str) -> str:
    """The hash stored beside a translation: the first 16 hex digits of SHA-256 of the English source."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------- catalogues

def catalog_path(nb_path: Path) -> Path:
    rel = nb_path.relative_to(NB)
    return CATALOG / rel.with_suffix(".yaml")


def notebook_for(cat_path: Path) -> Path:
    return NB / cat_path.relative_to(CATALOG).with_suffix(".ipynb")


def catalogues() -> list[Path]:
    return sorted(CATALOG.glob("[0-9][0-9]-*.yaml")) + sorted((CATALOG / "solutions").glob("[0-9][0-9]-*.yaml"))


def translated() -> list[Path]:
    """English notebooks that have a catalogue (chapters first, then solutions)."""
    return [notebook_for(c) for c in catalogues()]


def _block(dumper, s: str):
    style = "|" if "\n" in s else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(str, _block)


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def read_catalog(path: Path) -> dict[str, dict]:
    """id -> {"sha", "en", "zh"}; a malformed file names itself and the entry."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict) or set(raw) != {"notebook", "cells"} or not isinstance(raw["cells"], list):
        raise SystemExit(f"{_name(path)}: expected the keys notebook and cells (a list)")
    out = {}
    for i, e in enumerate(raw["cells"]):
        if not isinstance(e, dict) or set(e) != {"id", "sha", "en", "zh"}:
            raise SystemExit(f"{_name(path)}: cells[{i}] must have exactly id, sha, en, zh")
        if e["id"] in out:
            raise SystemExit(f"{_name(path)}: cell id {e['id']} appears twice")
        out[str(e["id"])] = {"sha": str(e["sha"]), "en": str(e["en"] or ""), "zh": str(e["zh"] or "")}
    return out


def write_catalog(path: Path, nb_path: Path, entries: dict[str, dict]) -> None:
    cells = [{"id": k, "sha": v["sha"], "en": v["en"], "zh": v["zh"]} for k, v in entries.items()]
    rel = nb_path.relative_to(NB).as_posix()
    text = HEADER.format(path=rel) + yaml.dump({"notebook": rel, "cells": cells}, Dumper=_Dumper,
                                               allow_unicode=True, sort_keys=False, width=100000)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def markdown_cells(nb) -> list:
    """The translatable cells: every markdown cell but the generated navigation."""
    return [c for c in nb.cells if c.cell_type == "markdown" and TAG not in c.metadata.get("tags", [])]


# ---------------------------------------------------------------- staleness

@dataclass(frozen=True)
class Problem:
    notebook: str      # e.g. "03-docker0.ipynb" or "solutions/03-solutions.ipynb"
    cell: str          # the cell id
    kind: str          # "missing", "stale" or "orphaned"
    excerpt: str       # the start of the English cell (or of the orphaned entry)
    diff: str = ""     # stale: what changed in the English since it was translated

    def __str__(self) -> str:
        what = {"missing": "has no translation", "stale": "English changed since it was translated",
                "orphaned": "translation of a cell that no longer exists"}[self.kind]
        return f"{self.notebook} {self.cell}: {what}: {self.excerpt!r}"


def _excerpt(text: str) -> str:
    one = " ".join(text.split())
    return one if len(one) <= 60 else one[:57] + "..."


def problems(nb_path: Path) -> list[Problem]:
    """What keeps one translated notebook from being complete and current."""
    rel = nb_path.relative_to(NB).as_posix()
    entries = read_catalog(catalog_path(nb_path))
    out = []
    cells = markdown_cells(nbtools._read(nb_path))
    for c in cells:
        e = entries.get(c.id)
        if e is None or not e["zh"].strip():
            out.append(Problem(rel, c.id, "missing", _excerpt(c.source)))
        elif e["sha"] != sha(c.source):
            diff = "\n".join(difflib.unified_diff(e["en"].splitlines(), c.source.splitlines(),
                                                  "translated from", "English now", lineterm="", n=0))
            out.append(Problem(rel, c.id, "stale", _excerpt(c.source), diff))
    ids = {c.id for c in cells}
    out += [Problem(rel, k, "orphaned", _excerpt(e["en"])) for k, e in entries.items() if k not in ids]
    return out


def all_problems() -> list[Problem]:
    return [p for nb in translated() for p in problems(nb)]


def sync(nb_path: Path) -> tuple[int, int]:
    """Add empty entries for cells without one, drop entries whose cell is gone; order as the notebook."""
    cat = catalog_path(nb_path)
    entries = read_catalog(cat) if cat.exists() else {}
    cells = markdown_cells(nbtools._read(nb_path))
    new = {}
    for c in cells:
        new[c.id] = entries.get(c.id) or {"sha": sha(c.source), "en": c.source, "zh": ""}
    added = sum(1 for c in cells if c.id not in entries)
    dropped = sum(1 for k in entries if k not in new)
    write_catalog(cat, nb_path, new)
    return added, dropped


def done(nb_path: Path, ids: list[str]) -> None:
    """Record today's English for cells whose translation has been brought up to date."""
    cat = catalog_path(nb_path)
    entries = read_catalog(cat)
    cells = {c.id: c for c in markdown_cells(nbtools._read(nb_path))}
    for i in ids:
        if i not in cells or i not in entries:
            raise SystemExit(f"{nb_path.name}: no translated markdown cell {i}")
        entries[i]["en"], entries[i]["sha"] = cells[i].source, sha(cells[i].source)
    write_catalog(cat, nb_path, entries)


# ---------------------------------------------------------------- build

LINK = re.compile(r"(\]\()([^)\s#]+)([^)]*\))|(\b(?:src|href)=\")([^\"#]+)")


def _relink(text: str, out_dir: Path, en_dir: Path, built: set[Path]) -> str:
    """A relative link that has no Chinese target points at the English page instead."""
    def fix(m):
        pre, target, post = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), "")
        if re.match(r"[a-z]+:", target) or target.startswith("/"):
            return m.group(0)
        mine = (out_dir / target).resolve()
        if mine in built or mine.exists():
            return m.group(0)
        if (en_dir / target).exists():
            return pre + Path(os.path.relpath(en_dir / target, out_dir)).as_posix() + post
        return m.group(0)
    return LINK.sub(fix, text)


def zh_title(nb_path: Path) -> str:
    """The Chinese chapter title: the first ``# `` heading of the translated first markdown cell."""
    nb = nbtools._read(nb_path)
    entries = read_catalog(catalog_path(nb_path))
    for c in markdown_cells(nb):
        m = re.search(r"^# (.+)$", entries.get(c.id, {}).get("zh", ""), re.M)
        return m.group(1).strip() if m else nbtools.title_and_line(nb)[0]
    return "?"


def _zh_line(nb_path: Path) -> str:
    entries = read_catalog(catalog_path(nb_path))
    for c in markdown_cells(nbtools._read(nb_path)):
        text = entries.get(c.id, {}).get("zh", "")
        m = re.search(r"^# (.+)$", text, re.M)
        return " ".join(text[m.end():].strip().split("\n\n")[0].split()) if m else ""
    return ""


def _first_code_sets_language(nb) -> None:
    for c in nb.cells:
        if c.cell_type == "code":
            lines = c.source.split("\n")
            at = next((i + 1 for i, l in enumerate(lines) if l.strip() == "import coursekit as ck"), None)
            if at is None:
                lines.insert(0, "import coursekit as ck")
                at = 1
            lines.insert(at, SET_LANGUAGE + "   # 学习者看到的提示、反馈和图中文字用中文")
            c.source = "\n".join(lines)
            return


def chapter_targets() -> dict[str, Path]:
    """Chapter number -> the page a Chinese reader should get: the Chinese one if it exists, else English."""
    out = {}
    for p in nbtools.chapters():
        out[p.name[:2]] = (OUT / p.name) if catalog_path(p).exists() else p
    return out


def _nav(nb_path: Path, out_dir: Path) -> tuple[str, str]:
    if nb_path.parent.name == "solutions":
        ch = next((p for p in nbtools.chapters() if p.name[:2] == nb_path.name[:2]), None)
        back = chapter_targets()[ch.name[:2]] if ch else None
        link = (f"[← 回到本章]({os.path.relpath(back, out_dir)}) · " if back else "") + \
            f"[术语表]({os.path.relpath(OUT / 'glossary.ipynb', out_dir)})"
        return f"<small>Packet Walk · 习题解答 · {link}</small>", f"<small>{link}</small>"
    chs = nbtools.chapters()
    targets = chapter_targets()
    i = [p.name for p in chs].index(nb_path.name)

    def label(p):
        return f"{p.name[:2]} {zh_title(p)[3:] if catalog_path(p).exists() else nbtools.title_and_line(nbtools._read(p))[0][3:]}"
    prev = f"[← {label(chs[i - 1])}]({os.path.relpath(targets[chs[i - 1].name[:2]], out_dir)})" if i > 0 else ""
    nxt = f"[{label(chs[i + 1])} →]({os.path.relpath(targets[chs[i + 1].name[:2]], out_dir)})" if i + 1 < len(chs) else ""
    top = " · ".join(x for x in (prev, f"[目录]({os.path.relpath(README_ZH, out_dir)}#章节)",
                                 "[术语表](glossary.ipynb)", nxt) if x)
    sol = NB / "solutions" / (nb_path.name[:3] + "solutions.ipynb")
    bottom = top
    if sol.exists():
        target = OUT / "solutions" / sol.name if catalog_path(sol).exists() else sol
        bottom += f" · [习题解答]({os.path.relpath(target, out_dir)})"
    return f"<small>Packet Walk · 第 {nb_path.name[:2]} 章 · {top}</small>", f"<small>{bottom}</small>"


def build(nb_path: Path) -> tuple[Path, str]:
    """The Chinese notebook for one English notebook (text only; outputs are the English ones until executed)."""
    en = nbtools._read(nb_path)
    entries = read_catalog(catalog_path(nb_path))
    out_path = OUT / nb_path.relative_to(NB)
    built = {(OUT / p.relative_to(NB)).resolve() for p in translated()} | {(OUT / "glossary.ipynb").resolve()}
    nb = copy.deepcopy(en)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
        elif TAG not in c.metadata.get("tags", []):
            e = entries.get(c.id)
            text = e["zh"] if e and e["zh"].strip() else c.source       # missing: English (the test fails)
            c.source = _relink(text, out_path.parent, nb_path.parent, built)
    _first_code_sets_language(nb)
    nb.metadata.setdefault("language_info", {})
    nav = [c for c in nb.cells if TAG in c.metadata.get("tags", [])]
    top, bottom = _nav(nb_path, out_path.parent)
    if nav:
        nav[0].source = top
        nav[-1].source = bottom
    return out_path, nbformat.writes(nb) + "\n"


def glossary_notebook() -> str:
    """notebooks/zh/glossary.ipynb: the course glossary, Chinese first."""
    sys.path.insert(0, str(ROOT))
    from coursekit import glossary
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    intro = ("# 术语表 (Glossary)\n\n课程中用到的每个术语:中文名、英文原词和解释。括号里的章节号是它第一次被讲解的地方。"
             "词条保存在 `data/glossary.yaml` 中,本页由 `python tools/nbtools.py zh` 生成,请不要手工修改。")
    cells = [nbformat.v4.new_markdown_cell(intro)]
    for t in sorted(glossary.terms(), key=lambda t: t.term.lower().strip("[")):
        cells.append(nbformat.v4.new_markdown_cell(
            f'<a id="{glossary.anchor(t.term)}"></a>\n### {t.zh} · {t.term}\n\n{t.zh_def}(第 {t.chapter} 章)\n\n'
            f"*{t.en}*"))
    for i, c in enumerate(cells):
        c["id"] = f"cell-{i + 1:02d}"
    top = nbformat.v4.new_markdown_cell("<small>Packet Walk · 术语表 · [目录](../../README.zh.md#章节) · "
                                        f"[English](../glossary.ipynb)</small>")
    top.metadata["tags"] = [TAG]
    top["id"] = "cell-00"
    nb.cells = [top] + cells
    return nbformat.writes(nb) + "\n"


START, END = "<!-- chapters:start (generated by tools/nbtools.py zh) -->", "<!-- chapters:end -->"


def readme_map() -> str:
    rows = ["| 章节 | 你将学到什么 |", "|---|---|"]
    for p in nbtools.chapters():
        if catalog_path(p).exists():
            rows.append(f"| [{zh_title(p)}](notebooks/zh/{p.name}) | {_zh_line(p)} |")
        else:
            t, line = nbtools.title_and_line(nbtools._read(p))
            rows.append(f"| [{t}](notebooks/{p.name}) (英文,尚未翻译) | {line} |")
    rows += ["", "课程中的每个术语(中英对照):[术语表](notebooks/zh/glossary.ipynb)。"]
    return "\n".join(rows)


def planned(paths: list[Path]) -> dict[Path, str]:
    """Every file the build writes (text only), with what it should hold."""
    out = dict(build(p) for p in paths)
    out[OUT / "glossary.ipynb"] = glossary_notebook()
    if README_ZH.exists():
        readme = README_ZH.read_text(encoding="utf-8")
        if START in readme and END in readme:
            a, rest = readme.split(START, 1)
            _, b = rest.split(END, 1)
            out[README_ZH] = a + START + "\n" + readme_map() + "\n" + END + b
    return out


def text_of(nb_text: str) -> list[tuple[str, str, str]]:
    """What the build decides (cell ids, types and sources), outputs aside: for comparing with a built file."""
    nb = nbformat.reads(nb_text, as_version=4)
    return [(c.get("id", ""), c.cell_type, c.source) for c in nb.cells]


def out_of_date() -> list[Path]:
    bad = []
    for p, text in planned(translated()).items():
        if not p.exists():
            bad.append(p)
        elif p.suffix == ".ipynb":
            if text_of(p.read_text(encoding="utf-8")) != text_of(text):
                bad.append(p)
        elif p.read_text(encoding="utf-8") != text:
            bad.append(p)
    return bad


def _select(args: list[str]) -> list[Path]:
    if not args:
        return translated()
    out = []
    for a in args:
        found = [p for p in translated() if p.name[:2] == a] if re.fullmatch(r"\d\d", a) else \
            [p for p in translated() if p.name == Path(a).name]
        if not found:
            raise SystemExit(f"no catalogue for {a} under {CATALOG.relative_to(ROOT)} "
                             f"(start one: python tools/nbtools.py zh --sync {a})")
        out += found
    return out


def _english(arg: str) -> list[Path]:
    if re.fullmatch(r"\d\d", arg):
        return [p for p in nbtools.chapters() if p.name[:2] == arg]
    if re.fullmatch(r"\d\ds", arg):                  # "03s": the solutions of chapter 03
        return [p for p in nbtools.solutions() if p.name[:2] == arg[:2]]
    return [Path(arg).resolve()]


def main(args: list[str]) -> int:
    if args[:1] == ["--stale"]:
        found = [p for p in all_problems() if not args[1:] or p.notebook[:2] in args[1:]
                 or p.notebook.split("/")[-1][:2] in args[1:]]
        for p in found:
            print(p)
            if p.diff:
                print("    " + p.diff.replace("\n", "\n    "))
        print(f"{len(found)} cell(s) to translate" if found else "every translated cell is current")
        return 1 if found else 0
    if args[:1] == ["--sync"]:
        for a in args[1:]:
            for p in _english(a):
                added, dropped = sync(p)
                print(f"{catalog_path(p).relative_to(ROOT)}: {added} new cell(s), {dropped} dropped")
        return 0
    if args[:1] == ["--punct"]:            # Chinese punctuation in the translations (docs/translating.md)
        for p in _select(args[1:]):
            print(f"{catalog_path(p).relative_to(ROOT)}: {punctuate_catalog(p)} cell(s) changed")
        return 0
    if args[:1] == ["--done"]:
        (p,) = _english(args[1])[:1] or [None]
        done(p, args[2:])
        return 0
    execute = "--no-execute" not in args
    paths = _select([a for a in args if not a.startswith("--")])
    for p, text in planned(paths).items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        print(f"wrote {p.relative_to(ROOT)}")
    if execute:
        nbtools.execute([OUT / p.relative_to(NB) for p in paths])
    bad = [x for p in paths for x in problems(p)]
    for x in bad:
        print(f"warning: {x}")
    return 1 if bad else 0


# ---------------------------------------------------------------- Chinese punctuation

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff"
_CJKP = "\u3001\u3002\u300a\u300b\u201c\u201d\uff08\uff09\uff0c\uff1a\uff1b\uff1f\uff01"
# what is never touched: code fences, inline code, link targets, HTML tags, URLs, the article's quoted lines
_PROTECT = re.compile(r"```.*?```|`[^`\n]*`|\]\([^)]*\)|<[^>\n]*>|https?://\S+|^>.*$", re.S | re.M)
_FULL = {",": "\uff0c", ";": "\uff1b", ":": "\uff1a", "?": "\uff1f", "!": "\uff01"}


def _is_han(c: str) -> bool:
    return bool(c) and (re.match(f"[{_HAN}]", c) is not None or c in _CJKP)


def _punct_plain(t: str) -> str:
    """``t`` with every protected span replaced by one private-use character (never Han)."""
    out = list(t)
    n = len(t)

    def prev_sig(i):
        j = i - 1
        while j >= 0 and t[j] in " *_":
            j -= 1
        return t[j] if j >= 0 else ""

    def next_sig(i):
        j = i + 1
        while j < n and t[j] in " *_":
            j += 1
        return t[j] if j < n else ""

    def han_before(i, reach=8):
        j = i - 1
        while j >= 0 and i - j <= reach and t[j] not in "\n.,;:!?" :
            if _is_han(t[j]):
                return True
            j -= 1
        return False

    line_has_han = {}
    for i, c in enumerate(t):
        if c in _FULL:
            if c == ":" and t[i + 1:i + 3] == "//":
                continue
            p, q = prev_sig(i), next_sig(i)
            if c == "!" and not _is_han(p):
                continue                          # "! -o docker0": a rule's negation, not an exclamation
            if c in "?!":
                start = t.rfind("\n", 0, i) + 1
                if start not in line_has_han:
                    line_has_han[start] = bool(re.search(f"[{_HAN}]", t[start:t.find("\n", i) if "\n" in t[i:] else n]))
                if line_has_han[start] and not (i + 1 < n and re.match("[A-Za-z0-9]", t[i + 1])):
                    out[i] = _FULL[c]
            elif c == "," and i + 1 < n and t[i + 1] not in " \n" and not (t[i - 1:i].isdigit() and t[i + 1].isdigit()) \
                    and re.search(f"[{_HAN}]", t[t.rfind("\n", 0, i) + 1:t.find("\n", i) if "\n" in t[i:] else n]):
                out[i] = _FULL[c]
            elif _is_han(p) or (_is_han(q) and not (c == ":" and t[i - 1:i].isalnum())):
                out[i] = _FULL[c]
        elif c == "(":
            depth, j = 0, i
            while j < n:
                if t[j] == "(":
                    depth += 1
                elif t[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j < n and (han_before(i) or re.search(f"[{_HAN}]", t[i:j])):
                out[i], out[j] = "\uff08", "\uff09"
    s = "".join(out)
    s = re.sub(r" *([\uff0c\uff1b\uff1a\uff1f\uff01\uff08\uff09\u3001\u3002]) *", r"\1", s)
    # "..." around Chinese -> “...”
    s = re.sub(f'"([^"\\n]*[{_HAN}][^"\\n]*)"', "\u201c\\1\u201d", s)
    return s


def punctuate(text: str) -> str:
    """Chinese punctuation in Chinese prose (,:;?! and parentheses next to Chinese become full-width);
    code, link targets, HTML, URLs and the article's quoted lines stay as they are."""
    spans = []

    def hide(m):
        spans.append(m.group(0))
        return chr(0xE000 + len(spans) - 1)
    s = _punct_plain(_punct_plain(_PROTECT.sub(hide, text)))     # twice: a mark made full-width counts as Chinese
    return re.sub("[\ue000-\uf8ff]", lambda m: spans[ord(m.group(0)) - 0xE000], s)


def punctuation_problems(text: str) -> list[str]:
    """ASCII ,;:?! or ( ) right after a Chinese character, outside code: what punctuate() would change."""
    found = []
    plain = _PROTECT.sub(" ", text)
    for m in re.finditer(f"[{_HAN}][,;?!()]|[{_HAN}]:(?!//)", plain):
        found.append(plain[max(0, m.start() - 12):m.end() + 12].replace("\n", " "))
    return found


def punctuate_catalog(nb_path: Path) -> int:
    cat = catalog_path(nb_path)
    entries = read_catalog(cat)
    changed = 0
    for e in entries.values():
        new = punctuate(e["zh"])
        changed += new != e["zh"]
        e["zh"] = new
    write_catalog(cat, nb_path, entries)
    return changed
