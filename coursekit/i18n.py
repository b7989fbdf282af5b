"""The language of coursekit's learner-facing text: English (the source) or Chinese.

A learner chooses once, in one of three ways, and only these decide::

    ck.set_language("zh")          # in a notebook (the Chinese chapters do this in their first cell)
    COURSEKIT_LANG=zh jupyter lab  # in the environment, before the kernel starts
    ck.set_language("locale")      # or COURSEKIT_LANG=locale: follow LC_ALL / LC_MESSAGES / LANG

With none of them the text is English, whatever the machine's locale: the
same notebook prints the same bytes everywhere.

What changes: ``ck.check`` feedback, hints and prompts, explorer labels and
their inline errors, the stepper's captions, diagram titles and labels, and
:class:`~coursekit.errors.CourseError` messages (the prose; field paths,
values, tool output, iptables rules and commands stay verbatim).  The
Chinese text lives in ``data/i18n/zh/`` (``messages.yaml``: English template
-> Chinese template; ``exercises.yaml``: each exercise's prompt, hint and
explanation with the hash of the English it was translated from, checked by
tests/test_i18n.py).

Taught in: every Chinese chapter (``notebooks/zh/``).
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache

__all__ = ["LANGUAGES", "set_language", "language", "tr", "tr_text", "exercise_text", "source_sha"]

LANGUAGES = ("en", "zh")
_CHOICES = LANGUAGES + ("locale",)
_chosen: str | None = None          # set_language's choice; None: COURSEKIT_LANG, else English


def _from_locale() -> str:
    """The POSIX lookup order for messages: the first of LC_ALL, LC_MESSAGES, LANG that is set."""
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def _resolve(choice: str, field: str) -> str:
    from .errors import CourseError
    if not isinstance(choice, str) or choice.strip().lower() not in _CHOICES:
        raise CourseError(field, f"{choice!r} is not a language coursekit speaks", ", ".join(_CHOICES))
    choice = choice.strip().lower()
    return _from_locale() if choice == "locale" else choice


def set_language(lang: str) -> str:
    """Choose the language of coursekit's messages: ``"en"``, ``"zh"`` or ``"locale"``; returns the one in force.

    Taught in: the first cell of every Chinese chapter.
    """
    global _chosen
    resolved = _resolve(lang, "language")
    _chosen = lang.strip().lower()
    return resolved


def language() -> str:
    """The language in force: set_language's choice, else ``COURSEKIT_LANG``, else ``"en"``."""
    if _chosen is not None:
        return _resolve(_chosen, "language")
    env = os.environ.get("COURSEKIT_LANG", "")
    if env:
        return _resolve(env, "COURSEKIT_LANG")
    return "en"


def safe_language() -> str:
    """:func:`language`, or ``"en"`` when COURSEKIT_LANG holds no language (for CourseError itself)."""
    try:
        return language()
    except Exception:
        return "en"


def source_sha(text: str) -> str:
    """The hash stored beside a translation (the same as tools/zh.py's): 16 hex digits of SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@lru_cache(maxsize=1)
def _messages() -> dict[str, str]:
    import yaml
    from .scenario import data_dir
    path = data_dir() / "i18n" / "zh" / "messages.yaml"
    if not path.exists():
        return {}
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(k): str(v) for k, v in raw.items()}


_FIELD = re.compile(r"\{(\w+)\}")


@lru_cache(maxsize=1)
def _patterns() -> tuple:
    """The templates with placeholders, as regular expressions, the most literal text first."""
    out = []
    for en, zh in _messages().items():
        if not _FIELD.search(en):
            continue
        parts = _FIELD.split(en)          # literal, name, literal, name, ...
        if sum(c.isalpha() for c in "".join(parts[::2])) < 4:
            continue                      # a frame such as "{field}: {problem}" would match anything: tr() only
        rx = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
        literal = sum(len(p) for p in parts[::2])
        out.append((literal, re.compile(rx + r"\Z", re.S), zh))
    return tuple((rx, zh) for _, rx, zh in sorted(out, key=lambda t: -t[0]))


def tr_text(text: str) -> str:
    """A finished English message in the language in force.

    An exact entry of ``messages.yaml`` first; else the first template whose
    placeholders match (``"{value} is not an IPv4 address"`` translates
    ``"'10.0.0.300' is not an IPv4 address"``); the values themselves stay
    as they are.  Text no entry matches stays English.
    """
    if language() != "zh" or not isinstance(text, str) or not text:
        return text
    table = _messages()
    if text in table:
        return table[text]
    for rx, zh in _patterns():
        m = rx.match(text)
        if m:
            return zh.format(**{k: tr_text(v) for k, v in m.groupdict().items()})
    return text


def translated(text: str) -> bool:
    """Whether :func:`tr_text` finds a Chinese entry for ``text`` (for the tests)."""
    return text in _messages() or any(rx.match(text) for rx, _ in _patterns())


# ------------------------------------------------------------------ exercises

_EX_KEYS = ("prompt", "hint", "why")


def exercise_source(ex) -> str:
    """The English an exercise's translation is made from: its prompt, hint and explanation."""
    return "\n".join(getattr(ex, k) for k in _EX_KEYS)


@lru_cache(maxsize=1)
def _exercises() -> dict[str, dict]:
    import yaml
    from .scenario import data_dir
    path = data_dir() / "i18n" / "zh" / "exercises.yaml"
    if not path.exists():
        return {}
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(k): v for k, v in raw.items()}


def exercise_text(ex, key: str) -> str:
    """An exercise's ``prompt``, ``hint`` or ``why`` in the language in force."""
    english = getattr(ex, key)
    if language() != "zh" or not english:
        return english
    entry = _exercises().get(ex.id)
    return (entry or {}).get("zh", {}).get(key) or english


def tr(template: str, **values) -> str:
    """``template.format(**values)`` in the language in force.

    The English template is the key of ``data/i18n/zh/messages.yaml``; a
    template without a Chinese entry stays English (tests/test_i18n.py
    fails on every such template coursekit uses).
    """
    if language() == "zh":
        template = _messages().get(template, template)
    return template.format(**values) if values else template
