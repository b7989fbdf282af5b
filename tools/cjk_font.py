"""Make data/fonts/packet-walk-cjk.woff: the Chinese characters the course shows, and no others.

    apt install fonts-wqy-microhei      # WenQuanYi Micro Hei (Apache-2.0), any Debian
    python tools/cjk_font.py [ARTICLE_TEXT ...]

It also writes data/fonts/packet-walk-cjk.ttf, the same font cut to every
character of the Chinese edition too (i18n/zh, data/i18n/zh, notebooks/zh):
coursekit.diagrams draws Chinese figure text with it (matplotlib reads TTF,
not WOFF), so figures look the same on every machine; tests/test_i18n.py
fails when a Chinese text uses a character it lacks.

A learner's machine without a CJK font draws the article's title and quotes
as boxes.  The explorer's style sheet embeds this subset (under 64 KB) as a
fallback font, so they render as text wherever an explorer is shown.  The
characters are every CJK character in the notebooks, coursekit, README.md
and docs/, plus those of any text files given (the article, for quotes still
to come); tests/test_widgets.py fails when a notebook uses one that is
missing, and this script adds it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "data" / "fonts" / "packet-walk-cjk.woff"
TTF = ROOT / "data" / "fonts" / "packet-walk-cjk.ttf"
SOURCE = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


def zh_chars() -> set[str]:
    """Every CJK character of the Chinese edition and of coursekit's Chinese messages."""
    files = list((ROOT / "i18n").rglob("*.yaml")) + list((ROOT / "data" / "i18n").rglob("*.yaml"))
    files += list((ROOT / "notebooks" / "zh").rglob("*.ipynb")) + [ROOT / "data" / "glossary.yaml"]
    return {c for f in files if f.exists() for c in CJK.findall(f.read_text(errors="replace"))}


def course_chars(extra=()) -> set[str]:
    files = [p for p in (ROOT / "notebooks").rglob("*.ipynb") if "zh" not in p.relative_to(ROOT).parts]
    files += list((ROOT / "coursekit").rglob("*.py"))
    files += [ROOT / "README.md"] + list((ROOT / "docs").rglob("*.md")) + [Path(p) for p in extra]
    return {c for f in files if f.exists() for c in CJK.findall(f.read_text(errors="replace"))}


def main(argv) -> int:
    chars = course_chars(argv[1:])
    if OUT.exists():                      # keep what an earlier run covered: quotes may come back
        from fontTools.ttLib import TTFont
        chars |= {chr(u) for u in TTFont(OUT).getBestCmap()}
    write(chars, OUT, "woff")
    write(chars | zh_chars() | set("，。：；（）、“”！？"), TTF, None)
    return 0


def write(chars: set[str], out: Path, flavor) -> None:
    from fontTools import subset
    from fontTools.ttLib import TTCollection
    font = TTCollection(str(SOURCE)).fonts[0]
    opts = subset.Options()
    opts.hinting, opts.desubroutinize, opts.notdef_outline = False, True, True
    opts.name_IDs, opts.drop_tables = ["*"], opts.drop_tables + ["FFTM"]
    sub = subset.Subsetter(opts)
    sub.populate(unicodes=sorted(ord(c) for c in chars))
    sub.subset(font)
    font.flavor = flavor
    # fixed timestamps: the same characters give the same bytes
    font.recalcTimestamp = False
    font["head"].created = font["head"].modified = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    font.save(str(out), reorderTables=True)
    print(f"{out.relative_to(ROOT)}: {len(chars)} characters, {out.stat().st_size} bytes")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
