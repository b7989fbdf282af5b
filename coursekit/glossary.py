"""The course's glossary, in English and Chinese, as data.

The terms live in ``data/glossary.yaml`` (one entry per term: the English
term, the Chinese term, a definition in each language, the chapter that
first explains it).  ``notebooks/glossary.ipynb`` renders them with
:func:`markdown`; a Chinese edition and the tests read the same table.

Taught in: every chapter (linked from each chapter's navigation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import yaml

from .errors import CourseError
from .scenario import data_dir

__all__ = ["Term", "terms", "term", "markdown", "anchor"]

_KEYS = {"term", "zh", "en", "zhDef", "chapter"}


@dataclass(frozen=True)
class Term:
    term: str        # English, as the chapters write it
    zh: str          # the Chinese term
    en: str          # definition in English
    zh_def: str      # definition in Chinese
    chapter: str     # "00".."07": where it is first explained


def anchor(name: str) -> str:
    """The glossary page's anchor for a term: ``"[ASSURED]"`` -> ``"assured"``, ``"mark 0x4000"`` -> ``"mark-0x4000"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@lru_cache(maxsize=1)
def terms() -> tuple[Term, ...]:
    """Every entry of ``data/glossary.yaml``, in file order."""
    raw = yaml.safe_load((data_dir() / "glossary.yaml").read_text(encoding="utf-8"))
    out = []
    for i, e in enumerate(raw):
        if not isinstance(e, dict) or set(e) != _KEYS:
            raise CourseError(f"glossary[{i}]", f"keys {sorted(e) if isinstance(e, dict) else e!r}",
                              ", ".join(sorted(_KEYS)))
        out.append(Term(str(e["term"]), str(e["zh"]), str(e["en"]), str(e["zhDef"]), str(e["chapter"])))
    return tuple(out)


def term(name: str) -> Term:
    """One entry, by its English term (case and punctuation ignored)."""
    for t in terms():
        if anchor(t.term) == anchor(name):
            return t
    raise CourseError("term", f"{name!r} is not in the glossary", ", ".join(t.term for t in terms()))


def markdown(lang: str = "both") -> str:
    """The glossary as Markdown: one heading per term (its anchor is :func:`anchor`), then the definitions."""
    if lang not in ("both", "en", "zh"):
        raise CourseError("lang", f"{lang!r} is not a language of the glossary", "both, en, zh")
    parts = []
    for t in sorted(terms(), key=lambda t: t.term.lower().strip("[")):
        head = f'<a id="{anchor(t.term)}"></a>\n### {t.term} · {t.zh}\n'
        body = []
        if lang in ("both", "en"):
            body.append(f"{t.en} *(chapter {t.chapter})*")
        if lang in ("both", "zh"):
            body.append(f"{t.zh_def}(第 {t.chapter} 章)")
        parts.append(head + "\n" + "\n\n".join(body))
    return "\n\n".join(parts) + "\n"
