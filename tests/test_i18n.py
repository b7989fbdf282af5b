"""coursekit speaks the learner's language: chosen once, deterministic, never from the machine unless asked.

ck.set_language / COURSEKIT_LANG / the locale route (coursekit/i18n.py); the
Chinese messages (data/i18n/zh/messages.yaml), the exercises' Chinese
prompts and hints (data/i18n/zh/exercises.yaml, kept in step with the English
by a hash), the explorer's and the stepper's text, and figures drawn with the
course's CJK font -- or in English with one notice when no font can draw them.
"""

from __future__ import annotations

import re
import sys
import warnings

import pytest
import yaml

import coursekit as ck
from coursekit import i18n
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import zh  # noqa: E402

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def lang(monkeypatch):
    """Start from nothing chosen and no COURSEKIT_LANG; restore English afterwards."""
    monkeypatch.delenv("COURSEKIT_LANG", raising=False)
    monkeypatch.setattr(i18n, "_chosen", None)
    yield monkeypatch
    i18n._chosen = None


def test_english_by_default_whatever_the_machines_locale(lang):
    lang.setenv("LANG", "zh_CN.UTF-8")
    lang.setenv("LC_ALL", "zh_CN.UTF-8")
    assert ck.language() == "en"
    assert "not answered yet" in str(ck.check("00.service", None))


@pytest.mark.parametrize("env, locale, want", [
    ({"COURSEKIT_LANG": "zh"}, "C.UTF-8", "zh"),
    ({"COURSEKIT_LANG": "en"}, "zh_CN.UTF-8", "en"),
    ({"COURSEKIT_LANG": "locale"}, "zh_CN.UTF-8", "zh"),
    ({"COURSEKIT_LANG": "locale"}, "zh_TW.UTF-8", "zh"),
    ({"COURSEKIT_LANG": "locale"}, "de_DE.UTF-8", "en"),
    ({"COURSEKIT_LANG": "locale"}, "", "en"),
])
def test_the_environment_and_the_locale_route(lang, env, locale, want):
    for k, v in env.items():
        lang.setenv(k, v)
    lang.delenv("LC_ALL", raising=False)
    lang.delenv("LC_MESSAGES", raising=False)
    lang.setenv("LANG", locale)
    assert ck.language() == want


def test_lc_all_comes_before_lang(lang):
    lang.setenv("LANG", "en_US.UTF-8")
    lang.setenv("LC_ALL", "zh_CN.UTF-8")
    assert ck.set_language("locale") == "zh"


def test_set_language_wins_over_the_environment(lang):
    lang.setenv("COURSEKIT_LANG", "en")
    assert ck.set_language("zh") == "zh" and ck.language() == "zh"
    assert str(ck.check("00.service", None)).startswith("… 00.service：尚未作答。")
    ck.set_language("en")
    assert "not answered yet" in str(ck.check("00.service", None))


@pytest.mark.parametrize("bad", ["fr", "", "chinese", None, 3])
def test_a_language_coursekit_does_not_speak_is_refused(lang, bad):
    with pytest.raises(ck.CourseError) as e:
        ck.set_language(bad)
    assert e.value.field == "language" and e.value.allowed == "en, zh, locale"


def test_a_bad_coursekit_lang_is_one_message_naming_it(lang):
    lang.setenv("COURSEKIT_LANG", "klingon")
    with pytest.raises(ck.CourseError) as e:
        ck.check("00.service", None)
    assert e.value.field == "COURSEKIT_LANG"


def test_check_in_chinese(lang):
    ck.set_language("zh")
    ok = str(ck.check("00.whatif-port", "80"))
    assert ok.startswith("✔ 00.whatif-port：正确，80。") and "targetPort" in ok and CJK.search(ok)
    wrong = str(ck.check("00.service", "172.30.20.2:80"))
    assert wrong.startswith("✘ 00.service：还不对（'172.30.20.2:80'）。提示：") and "`ck.manifest_text`" in wrong
    unread = str(ck.check("00.service", "10.0.0.300:80"))
    assert "10.0.0.300 不是 IPv4 地址" in unread


@pytest.mark.parametrize("answer, right", [("否", True), ("不会,连接跟踪已经认识这个连接", True), ("不。", True),
                                           ("会", False), ("是的", False), ("no", True)])
def test_a_chinese_yes_or_no_is_read(lang, answer, right):
    assert ck.check("05.whatif-reply-masq", answer).correct is right


def test_course_errors_keep_field_values_and_rules_verbatim(lang):
    ck.set_language("zh")
    with pytest.raises(ck.CourseError) as e:
        ck.explore.apply(ck.load_scenario("article"), {"client_ip": "10.1.2.300"})
    msg = str(e.value)
    assert msg == ("客户端 pod IP：'10.1.2.300' 不是 IPv4 地址（允许的值：四个 0-255 的数，例如 10.0.0.1）"), msg
    assert e.value.field == "client pod IP"           # the attribute stays the model's name for the field
    ck.set_language("en")
    with pytest.raises(ck.CourseError) as e:
        ck.explore.apply(ck.load_scenario("article"), {"client_ip": "10.1.2.300"})
    assert str(e.value) == "client pod IP: '10.1.2.300' is not an IPv4 address (allowed: four numbers 0-255, like 10.0.0.1)"


def test_the_stepper_caption_in_chinese(lang):
    w = ck.walk("article")
    st = ck.explore.steps(w)[0]
    title = ck.explore.step_view(st).title
    ck.set_language("zh")
    assert title == "request hop 1: busybox eth0 (leaving)"
    assert i18n.tr_text(title) == "请求第 1 跳：busybox eth0（发出）"


# ---------------------------------------------------------------- the catalogues

def _messages():
    return yaml.safe_load((ROOT / "data" / "i18n" / "zh" / "messages.yaml").read_text(encoding="utf-8"))


def test_every_message_keeps_its_placeholders_and_uses_chinese_punctuation():
    for en, text in _messages().items():
        assert sorted(re.findall(r"\{(\w+)\}", en)) == sorted(re.findall(r"\{(\w+)\}", text)), en
        assert not zh.punctuation_problems(text), (en, zh.punctuation_problems(text))


def _translated_chapters() -> set[str]:
    return {p.name[:2] for p in zh.translated()}


def test_every_exercise_of_a_translated_chapter_has_a_current_translation():
    table = yaml.safe_load((ROOT / "data" / "i18n" / "zh" / "exercises.yaml").read_text(encoding="utf-8"))
    problems = []
    for e in ck.exercises.EXERCISES:
        if e.chapter not in _translated_chapters():
            continue
        entry = table.get(e.id)
        if entry is None:
            problems.append(f"{e.id}: no translation: {e.prompt[:50]!r}")
        elif entry["sha"] != i18n.source_sha(i18n.exercise_source(e)):
            problems.append(f"{e.id}: the English changed since it was translated: {e.prompt[:50]!r}")
        else:
            assert {k for k in ("prompt", "hint", "why") if getattr(e, k)} == set(entry["zh"]), e.id
            assert all(CJK.search(v) for v in entry["zh"].values()), e.id
    assert not problems, "data/i18n/zh/exercises.yaml:\n" + "\n".join(problems)


def test_the_chinese_prompts_are_the_ones_the_chapters_print(lang):
    """``ck.check(id, None)`` in a Chinese chapter prints the Chinese prompt."""
    ck.set_language("zh")
    for e in ck.exercises.EXERCISES:
        if e.chapter in _translated_chapters():
            assert CJK.search(str(ck.check(e.id, None))), e.id


# ---------------------------------------------------------------- figures

def _shipped_font_points() -> set[int]:
    from matplotlib import ft2font
    return set(ft2font.FT2Font(str(ROOT / "data" / "fonts" / "packet-walk-cjk.ttf")).get_charmap())


def test_the_shipped_font_draws_every_chinese_message_and_chapter():
    """No tofu: every character of the Chinese text the course can draw is in data/fonts/packet-walk-cjk.ttf
    (python tools/cjk_font.py adds what is missing)."""
    points = _shipped_font_points()
    texts = list(_messages().values()) + [p.read_text(encoding="utf-8") for p in (ROOT / "i18n").rglob("*.yaml")]
    missing = {c for t in texts for c in t if 0x3000 <= ord(c) <= 0x9fff and ord(c) not in points}
    missing |= {c for t in texts for c in t if 0xff00 <= ord(c) <= 0xffef and ord(c) not in points}
    assert not missing, "run python tools/cjk_font.py: " + "".join(sorted(missing))


def test_chinese_figures_render_without_missing_glyphs(lang):
    ck.set_language("zh")
    sc = ck.load_scenario("article")
    w = ck.walk(sc)
    frame = w.at("meizu", "enp4s0")[0] if hasattr(w, "at") else None
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # matplotlib warns "Glyph ... missing from font(s)"
        figs = [ck.diagrams.topology(sc), ck.diagrams.walk_diagram(sc, w), ck.diagrams.drop_diagram(sc, w)]
        titles = [t for f in figs for t in (f.axes[0].get_title(),)]
        for f in figs:
            ck.diagrams.figure_png(f)
            ck.diagrams.figure_svg(f)
        if frame is not None:
            enc = ck.diagrams.encapsulation(frame)
            ck.diagrams.figure_png(enc)
            titles.append(enc._suptitle.get_text())
    assert any("请求（红）和应答（蓝）" in t for t in titles), titles
    assert all(CJK.search(t) or "->" in t for t in titles), titles


def test_without_a_chinese_font_labels_fall_back_to_english_with_one_notice(lang, capsys):
    from coursekit import diagrams
    ck.set_language("zh")
    lang.setitem(diagrams._cjk, "fonts", [])
    lang.setitem(diagrams._cjk, "noticed", False)
    sc = ck.load_scenario("article")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = diagrams.walk_diagram(sc)
        b = diagrams.walk_diagram(sc)
    assert a.axes[0].get_title() == "article: the request (red) and the reply (blue), hop by hop"
    assert b.axes[0].get_title() == a.axes[0].get_title()
    err = capsys.readouterr().err
    assert err.count("no Chinese font") == 1, err


def test_a_chinese_title_on_the_first_figure_of_a_session_has_its_glyphs():
    """The axes' title is made with the figure: the CJK font must be in place before, not when the title is set."""
    import subprocess
    code = ("import warnings, coursekit as ck\n"
            "warnings.simplefilter('error')\n"
            "ck.set_language('zh')\n"
            "f = ck.diagrams.walk_diagram('article')\n"
            "ck.diagrams.figure_png(f)\n"
            "print(f.axes[0].get_title())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and not out.stderr, out.stderr
    assert "请求" in out.stdout
