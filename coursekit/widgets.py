"""Explorers and the stepper as ipywidgets: the only module that imports ipywidgets.

Each callback calls one pure function of :mod:`coursekit.explore` (or
:mod:`coursekit.diagrams`) and shows what it returns.  A
:class:`~coursekit.errors.CourseError` is shown once, under the field that
caused it (the field outlined); the views keep their last good content,
marked stale; no traceback reaches the learner.  Every control carries a CSS
class ``pw-<name>`` so a browser test can find it.

The explorer looks like Wireshark's three panes: a packet list (one row per
packet; click a row to dissect it), the layer tree and the bytes (click a
field to highlight its bytes).  tcpdump's own text stays in its own tab,
byte for byte.  In a notebook that shows an explorer, printed text wraps
only between words (JupyterLab breaks it anywhere, even inside a number) and
scrolls after 32 lines (:mod:`coursekit.textbox`).  Colours come from
JupyterLab's own CSS variables (:data:`PALETTE`, one choice per theme, light
and dark), each pair readable at 4.5:1 or better.

Displaying an explorer writes nothing to stdout, and its plain-text form is a
short, stable line, so nbval can check the cell.

Taught in: every chapter's explorer; 06-the-whole-walk (the stepper).
"""

from __future__ import annotations

import functools
import html
import time

import ipywidgets as W

from . import explore as ex
from .errors import CourseError
from .i18n import tr_text as _tr

__all__ = ["Explorer", "Stepper", "HopTable", "explorer", "stepper", "hops", "figure_png", "figure_svg", "PALETTE", "contrast", "css_colour", "over",
           "packet_list_html", "selection_css", "dissection_html", "hop_table_html"]

_FLAGS = ["-nn", "-nn -e", "-nn -v", "-nn -e -v", ""]


def _mix(a: str, pct: int, b: str) -> str:
    return f"color-mix(in srgb,{a} {pct}%,{b})"


# (foreground, background) per role and theme, as CSS: JupyterLab's own variables (the light
# theme's values as fallbacks, for a page without them), mixed where no variable alone reads at
# 4.5:1 (orange on white, red on #111).  tests/test_widgets.py resolves every pair against the
# installed JupyterLab themes.
_BG, _INK = "var(--jp-layout-color0,#ffffff)", "var(--jp-ui-font-color0,#000000)"
_DBG, _DINK = "var(--jp-layout-color0,#111111)", "var(--jp-ui-font-color0,#ffffff)"
_WARN = (_mix("var(--jp-warn-color0,#e65100)", 70, _INK), _mix("var(--jp-warn-color3,#ffe0b2)", 50, _BG))
_DWARN = ("var(--jp-warn-color2,#ffb74d)", _mix("var(--jp-warn-color0,#f57c00)", 20, _DBG))

PALETTE = {
    "light": {"text": (_INK, _BG),
              "muted": ("var(--jp-ui-font-color2,rgba(0,0,0,.54))", _BG),
              "error": ("var(--jp-error-color0,#b71c1c)", _BG),
              "ok": ("var(--jp-success-color0,#1b5e20)", _BG),
              "warn": _WARN,
              "changed": (_INK, _mix("var(--jp-warn-color3,#ffe0b2)", 80, _BG)),
              "selected": (_INK, "var(--jp-brand-color3,#bbdefb)"),
              "request": ("var(--jp-error-color0,#b71c1c)", _BG),
              "reply": ("var(--jp-brand-color0,#0d47a1)", _BG),
              "stale": _WARN,
              "head": (_INK, "var(--jp-layout-color2,#eeeeee)")},
    "dark": {"text": (_DINK, _DBG),
             "muted": ("var(--jp-ui-font-color2,rgba(255,255,255,.54))", _DBG),
             "error": ("var(--jp-error-color2,#e57373)", _DBG),          # error-color0 is 3.6:1 on #111
             "ok": ("var(--jp-success-color2,#81c784)", _DBG),
             "warn": _DWARN,
             "changed": (_DINK, _mix("var(--jp-warn-color0,#f57c00)", 35, _DBG)),
             "selected": (_DINK, _mix("var(--jp-brand-color0,#1976d2)", 55, _DBG)),
             "request": ("var(--jp-error-color2,#e57373)", _DBG),
             "reply": ("var(--jp-brand-color2,#64b5f6)", _DBG),
             "stale": _DWARN,
             "head": (_DINK, "var(--jp-layout-color2,#424242)")},
}


def contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    def lum(c):
        rgb = [int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    a, b = sorted((lum(fg), lum(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


_NAMED = {"white": (255, 255, 255, 1.0), "black": (0, 0, 0, 1.0), "transparent": (0, 0, 0, 0.0)}


def css_colour(expr: str, variables: dict[str, str]) -> tuple[float, float, float, float]:
    """An RGBA value of a CSS colour expression as a browser computes it, given the custom properties.

    Knows what :data:`PALETTE` and JupyterLab's themes use: ``#rgb``/``#rrggbb``, ``rgb()``/``rgba()``,
    ``white``/``black``, ``var(--x, fallback)`` and ``color-mix(in srgb, a p%, b)``.
    """
    e = expr.strip()

    def split(args):                      # top-level commas only
        out, depth, cur = [], 0, ""
        for ch in args:
            depth += ch == "("
            depth -= ch == ")"
            if ch == "," and depth == 0:
                out.append(cur)
                cur = ""
            else:
                cur += ch
        return out + [cur]
    if e.startswith("var("):
        name, *fb = split(e[4:-1])
        value = variables.get(name.strip())
        if value is None:
            if not fb:
                raise ValueError(f"{name.strip()} is not defined")
            value = ",".join(fb)
        return css_colour(value, variables)
    if e.startswith("color-mix("):
        space, a, b = split(e[10:-1])
        if space.strip() != "in srgb":
            raise ValueError(f"color-mix {space!r}")
        a, pct = a.strip().rsplit(" ", 1)
        p = float(pct.rstrip("%")) / 100
        ca, cb = css_colour(a, variables), css_colour(b, variables)
        alpha = ca[3] * p + cb[3] * (1 - p)          # premultiplied, as CSS Color 5 mixes
        if alpha == 0:
            return (0.0, 0.0, 0.0, 0.0)
        return tuple((ca[i] * ca[3] * p + cb[i] * cb[3] * (1 - p)) / alpha for i in range(3)) + (alpha,)
    if e.startswith("#"):
        h = e[1:]
        if len(h) in (3, 4):
            h = "".join(c * 2 for c in h)
        vals = [int(h[i:i + 2], 16) for i in range(0, len(h), 2)]
        return (float(vals[0]), float(vals[1]), float(vals[2]), vals[3] / 255 if len(vals) > 3 else 1.0)
    if e.startswith(("rgb(", "rgba(")):
        parts = [float(x) for x in e[e.index("(") + 1:-1].replace("/", ",").split(",")]
        return (parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else 1.0)
    if e in _NAMED:
        return tuple(float(v) for v in _NAMED[e])
    raise ValueError(f"unknown colour {expr!r}")


def over(fg: tuple, bg: tuple) -> str:
    """``fg`` composited over an opaque ``bg`` as ``#rrggbb`` (what the eye sees)."""
    a = fg[3]
    return "#" + "".join(f"{int(round(fg[i] * a + bg[i] * (1 - a))):02x}" for i in range(3))


_CJK_FONT = "Packet Walk CJK"


@functools.lru_cache(maxsize=1)
def _cjk_font_face() -> str:
    """An @font-face with the course's Chinese characters (data/fonts), or "" where the file is missing."""
    import base64
    from .scenario import data_dir
    path = data_dir() / "fonts" / "packet-walk-cjk.woff"
    try:
        data = path.read_bytes()
    except OSError:
        return ""                          # degrade: the machine's own fonts, boxes where it has none
    return (f'@font-face{{font-family:"{_CJK_FONT}";src:url(data:font/woff;base64,'
            f'{base64.b64encode(data).decode()}) format("woff");unicode-range:U+3000-303F,U+3400-4DBF,'
            f"U+4E00-9FFF,U+FF00-FFEF;font-display:swap}}")


@functools.lru_cache(maxsize=1)
def _css() -> str:
    def block(theme):
        return "".join(f"--pw-{k}:{fg};--pw-{k}-bg:{bg};" for k, (fg, bg) in PALETTE[theme].items())
    mono = "font-family:var(--jp-code-font-family,monospace);font-size:12px"
    face = _cjk_font_face()
    # the article's title and quotes in a course notebook: a fallback after the theme's own fonts
    cjk = (f'{face}\n.jp-Notebook:has(.pw-root) .jp-RenderedHTMLCommon,.pw-root{{font-family:'
           f'var(--jp-content-font-family),"{_CJK_FONT}"}}') if face else ""
    from .textbox import PRINTED_TEXT_CSS
    return f"""<style>
{cjk}
.pw-root{{{block("light")}}}
body[data-jp-theme-light="false"] .pw-root{{{block("dark")}}}
{PRINTED_TEXT_CSS}
.pw-root .widget-html-content{{line-height:1.4}}
.pw-root .pw-label .widget-html-content{{line-height:var(--jp-widgets-inline-height,28px)}}
.pw-root .pw-panes{{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}}
.pw-root .pw-tree{{flex:1 1 340px;max-height:420px;overflow:auto}}
.pw-root .pw-panes .pw-hex{{flex:0 1 530px;min-width:0;max-height:420px;overflow:auto}}
.pw-root .pw-label{{flex:0 0 180px;width:180px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}}
.pw-root .pw-fielderr{{margin-left:184px;color:var(--pw-error);background:var(--pw-error-bg);{mono}}}
.pw-root .pw-invalid input{{outline:2px solid var(--pw-error);outline-offset:-1px}}
.pw-root .pw-ok{{color:var(--pw-ok);background:var(--pw-ok-bg)}}
.pw-root .pw-err{{color:var(--pw-error);background:var(--pw-error-bg)}}
.pw-root .pw-warn{{color:var(--pw-warn);background:var(--pw-warn-bg);padding:1px 4px}}
.pw-root .pw-muted{{color:var(--pw-muted);background:var(--pw-muted-bg)}}
.pw-root .pw-why{{color:var(--pw-muted);background:var(--pw-muted-bg)}}
.pw-root pre{{{mono};line-height:1.3;margin:0;white-space:pre;overflow-x:auto;
  color:var(--pw-text);background:var(--pw-text-bg)}}
.pw-root .pw-list{{max-height:300px;overflow:auto;border:1px solid var(--jp-border-color2,#ccc)}}
.pw-root table.pw-table{{border-collapse:collapse;{mono};color:var(--pw-text);background:var(--pw-text-bg)}}
.pw-root table.pw-table th{{position:sticky;top:0;text-align:left;color:var(--pw-head);background:var(--pw-head-bg);
  padding:2px 8px;white-space:nowrap}}
.pw-root table.pw-table td{{padding:1px 8px;white-space:nowrap;vertical-align:top}}
.pw-root tr.pw-row{{cursor:pointer}}
.pw-root tr.pw-row:hover td{{text-decoration:underline dotted}}
.pw-root tr.pw-sel td{{color:var(--pw-selected);background:var(--pw-selected-bg)}}
.pw-root td.pw-changed,.pw-root .pw-change{{color:var(--pw-changed);background:var(--pw-changed-bg)}}
.pw-root .pw-tag{{font-style:italic}}
.pw-root .pw-minor{{color:var(--pw-muted);background:var(--pw-muted-bg)}}
.pw-root table.pw-table tr.pw-decisions td{{white-space:normal;color:var(--pw-muted);background:var(--pw-muted-bg);padding-left:32px}}
.pw-root .pw-stale-banner{{color:var(--pw-stale);background:var(--pw-stale-bg);border:1px dashed var(--pw-stale);
  padding:2px 6px}}
.pw-root .pw-stale .widget-tab-contents,.pw-root .pw-stale .lm-TabPanel-stackedPanel{{
  outline:2px dashed var(--pw-stale);outline-offset:-2px}}
.pw-root .pw-hex span.pw-hi{{color:var(--pw-selected);background:var(--pw-selected-bg);outline:1px solid var(--pw-selected)}}
.pw-root .pw-field{{cursor:pointer;white-space:pre;{mono}}}
.pw-root .pw-field.pw-fsel{{color:var(--pw-selected);background:var(--pw-selected-bg)}}
.pw-root details>summary{{cursor:pointer;{mono}}}
.pw-root .pw-summary{{white-space:pre-wrap;word-break:normal;overflow-wrap:normal}}
.pw-root .pw-request{{color:var(--pw-request);background:var(--pw-request-bg)}}
.pw-root .pw-reply{{color:var(--pw-reply);background:var(--pw-reply-bg)}}
.pw-root .pw-diagram,.pw-root .pw-diagram .widget-html-content{{min-width:0;max-width:100%;flex:1 1 auto}}
.pw-root .pw-figure{{overflow-x:auto;max-width:100%}}
.pw-root .pw-figure svg{{width:100%;height:auto}}
.pw-root .pw-map{{overflow-x:auto}}
.pw-root .pw-map svg{{max-width:none}}
@keyframes pw-flash-a{{from{{background:var(--pw-changed-bg)}}to{{background:transparent}}}}
@keyframes pw-flash-b{{from{{background:var(--pw-changed-bg)}}to{{background:transparent}}}}
.pw-root .pw-flash-a{{animation:pw-flash-a 0.8s ease-out}}
.pw-root .pw-flash-b{{animation:pw-flash-b 0.8s ease-out}}
</style>"""


def figure_png(fig, dpi: int = 100) -> bytes:
    """:func:`coursekit.diagrams.figure_png` (kept here for the chapters that call it from widgets)."""
    from .diagrams import figure_png as png
    return png(fig, dpi)


def figure_svg(fig) -> str:
    """:func:`coursekit.diagrams.figure_svg` (kept here for the chapters that call it from widgets)."""
    from .diagrams import figure_svg as svg
    return svg(fig)


def _e(text) -> str:
    return html.escape(str(text))


def _pre(text: str, cls: str) -> str:
    return f'<pre class="{cls}">{_e(text)}</pre>'


# -- pure HTML views (tested without a browser) ------------------------------------------

# One handler per table (not per row).  A click on a row (or Enter, or the arrow keys, as in
# Wireshark's list) moves the selection at once -- a rule in the explorer's selection <style>,
# so the list itself is not drawn again and keeps the keyboard focus -- and sets the packet No.
# field, which recomputes the dissection in Python.
_PICK = ("var s=r.closest('.pw-explorer');var st=s&&s.querySelector('.pw-selection style');"
         "if(st)st.textContent=st.textContent.replace(/data-no=\"\\d+\"/,'data-no=\"'+r.dataset.no+'\"');"
         "var i=s.querySelector('.pw-packet-no input');"
         "i.value=r.dataset.no;i.dispatchEvent(new Event('change',{bubbles:true}));")
_CLICK = "var r=event.target.closest('tr.pw-row');if(!r)return;" + _PICK
_KEYS = ("var c=event.target.closest('tr.pw-row');if(!c)return;var k=event.key,"
         "r=k==='ArrowDown'?c.nextElementSibling:k==='ArrowUp'?c.previousElementSibling:"
         "k==='Home'?c.parentNode.firstElementChild:k==='End'?c.parentNode.lastElementChild:k==='Enter'?c:null;"
         "if(!r)return;event.preventDefault();r.focus();" + _PICK)
# A click on a field highlights its bytes; no round trip to the kernel.
_MARK = ("var f=event.target.closest('.pw-field');if(!f)return;var d=f.closest('.pw-dissect'),"
         "a=+f.dataset.off,b=a+(+f.dataset.len);"
         "d.querySelectorAll('.pw-hex span').forEach(function(s,k){s.classList.toggle('pw-hi',k>=a&&k<b)});"
         "d.querySelectorAll('.pw-field').forEach(function(x){x.classList.toggle('pw-fsel',x===f)});")
_COPY = "navigator.clipboard&&navigator.clipboard.writeText(this.parentNode.querySelector('pre').textContent);"


def selection_css(scope: str, no: int) -> str:
    """The packet list's selected row, as a rule for one explorer (``scope``: its CSS class)."""
    return (f'<style>.{scope} .pw-packets tr.pw-row[data-no="{int(no)}"] td{{color:var(--pw-selected);'
            f"background:var(--pw-selected-bg)}}</style>")


def packet_list_html(rows, selected: int | None = 0) -> str:
    """The packet list: one row per packet, tcpdump's full text on hover; the selected row marked.

    ``selected=None``: no row marked in the list itself (the explorer marks it with
    :func:`selection_css`, so a new selection does not redraw the list).
    """
    if not rows:
        return '<div class="pw-muted">(no packet matches the filter)</div>'
    head = "".join(f"<th>{h}</th>" for h in ("No.", "Time", "Source", "Destination", "Protocol", "Length", "Info"))
    body = []
    for r in rows:
        cls = "pw-row pw-sel" if r.no == selected else "pw-row"
        body.append(f'<tr class="{cls}" data-no="{r.no}" title="{_e(r.line)}" tabindex="0">'
                    f'<td>{r.no}</td><td>{_e(r.time)}</td><td>{_e(r.source)}</td><td>{_e(r.destination)}</td>'
                    f'<td>{_e(r.protocol)}</td><td>{r.length}</td><td>{_e(r.info)}</td></tr>')
    return (f'<div class="pw-list"><table class="pw-table pw-packet-table" onclick="{_e(_CLICK)}" '
            f'onkeydown="{_e(_KEYS)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def dissection_html(frame: bytes, layers, line: str = "", no: int = 0, provenance=None) -> str:
    """Wireshark's lower panes: tcpdump's line (copyable), the layer tree (outer/inner), the bytes.

    ``provenance(layer key, field name)`` gives "computed"/"observed"/"assumed" ("" if unknown).
    """
    parts = [f'<div class="pw-dissect" onclick="{_e(_MARK)}">']
    if line:
        parts.append(f'<div class="pw-line"><span class="pw-muted">packet {no}, as tcpdump prints it</span> '
                     f'<button class="pw-copy" onclick="{_e(_COPY)}">copy</button>{_pre(line, "pw-fullline")}</div>')
    parts.append('<div class="pw-panes"><div class="pw-tree">')
    groups = [("outer", [ly for ly in layers if ly.encapsulated and not ly.inner]),
              ("inner", [ly for ly in layers if ly.inner]),
              ("", [ly for ly in layers if not ly.encapsulated])]
    for name, lys in groups:
        if not lys:
            continue
        if name:
            size = sum(ly.length for ly in lys)
            what = ("added by the VXLAN device (the kernel)" if name == "outer" else "the pod's frame, as it sent it")
            parts.append(f'<details open class="pw-group pw-{name}"><summary><b>{name} frame</b>: {size} bytes, '
                         f'{what}</summary>')
        for ly in lys:
            parts.append(f'<details open class="pw-layer" style="margin-left:12px"><summary>[{ly.offset}:{ly.end}] '
                         f'<b>{_e(ly.title)}</b>{(" — " + _e(ly.summary)) if ly.summary else ""}</summary>')
            for f in ly.fields:
                prov = provenance(ly.key, f.name) if provenance is not None else ""
                tag = f' <span class="pw-muted">[{_e(prov)}]</span>' if prov else ""
                parts.append(f'<div class="pw-field" style="margin-left:24px" data-off="{f.offset}" '
                             f'data-len="{f.length}">{_e(f.name)}: {_e(f.value)}{tag}</div>')
            parts.append("</details>")
        if name:
            parts.append("</details>")
    hexrows = []
    for i in range(0, len(frame), 16):
        chunk = frame[i:i + 16]
        cells = " ".join(f"<span>{b:02x}</span>" for b in chunk)
        pad = "   " * (16 - len(chunk))
        text = _e("".join(chr(c) if 32 <= c < 127 else "." for c in chunk))
        hexrows.append(f"{i:04x}  {cells}{pad}  {text}")
    parts.append(f'</div><pre class="pw-hex">{chr(10).join(hexrows)}</pre></div></div>')
    return "".join(parts)


def hop_table_html(rows) -> str:
    """The hop table: one row per hop, changed values highlighted, the deciding entries under each row."""
    cols = ex.HOP_COLUMNS
    head = "".join(f"<th>{h}</th>" for h in ("#", "where", "dir") + cols)
    body = []
    for r in rows:
        cells = "".join(f'<td class="pw-changed">{_e(r.cells[c])}</td>' if c in r.changed else f"<td>{_e(r.cells[c])}</td>"
                        for c in cols)
        body.append(f'<tr class="pw-hop"><td>{r.hop}</td><td>{_e(r.node)} {_e(r.iface)}</td>'
                    f'<td>{"leaving" if r.direction == "out" else "arriving"}</td>{cells}</tr>')
        why = [d for d in r.decisions if d.effect != "matched"]
        if why:
            items = "".join(f"<li><b>[{_e(d.stage)}]</b> {_e(d.table)}: <code>{_e(d.entry)}</code> &rarr; "
                            f"{_e(d.effect)}</li>" for d in why)
            body.append(f'<tr class="pw-decisions"><td colspan="{len(cols) + 3}"><ul style="margin:0">{items}</ul>'
                        f"</td></tr>")
    return (f'<div class="pw-list" style="max-height:none"><table class="pw-table pw-hop-table"><thead><tr>{head}'
            f'</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


class HopTable:
    """One segment's hops: an HTML table in JupyterLab, :func:`~coursekit.explore.hop_table`'s text elsewhere.

    >>> ck.widgets.hops(w, 0)          # doctest: +SKIP

    Taught in: 04-the-container, 06-the-whole-walk.
    """

    def __init__(self, walk, segment: int = 0):
        self.rows = ex.hop_rows(walk, segment)
        self.text = ex.hop_table(walk, segment)

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f'<div class="pw-root">{_css()}{hop_table_html(self.rows)}</div>'


def hops(walk, segment: int = 0) -> HopTable:
    """A :class:`HopTable` (see there)."""
    return HopTable(walk, segment)


def _provenance(sc, observation):
    """(layer key, field) -> its computed/observed/assumed label, where the provenance module knows it."""
    def label(layer, name):
        return ex.field_label(layer, name, sc, observation)
    return label


class _Widgety:
    """Displays as its widget, with a short stable text form for nbval."""
    widget: W.Widget
    label: str = ""

    def _repr_mimebundle_(self, **kw):
        bundle = self.widget._repr_mimebundle_(**kw)
        bundle["text/plain"] = self.label
        return bundle


def _scenario(scenario):
    """A Scenario from a Scenario, a name or path ("article"), or None (the article)."""
    from . import scenario as scm
    if scenario is None:
        return scm.load_scenario("article")
    as_scenario = getattr(scm, "as_scenario", None)
    if as_scenario is not None:
        return as_scenario(scenario)
    if isinstance(scenario, scm.Scenario):
        return scenario
    if isinstance(scenario, str):
        return scm.load_scenario(scenario)
    raise CourseError("scenario", f"a {type(scenario).__name__} is not a scenario",
                      "a Scenario, a scenario name like 'article', or a path to a scenario file")


def _set(widget, value) -> None:
    """Assign only when different: an unchanged view is not sent to the browser again."""
    if widget.value != value:
        widget.value = value


class Explorer(_Widgety):
    """Change addresses and ports; the packet list, tcpdump text, hops and diagram follow.

    >>> ck.widgets.explorer(sc, knobs=["vxlan_port", "vni"], node="meizu", iface="enp4s0")   # doctest: +SKIP

    Taught in: every chapter.
    """

    _made = 0

    def __init__(self, scenario=None, knobs=None, node=None, iface=None, flt: str = "", flags: str = "-nn",
                 diagram: bool = True):
        self.base = _scenario(scenario)
        if not isinstance(flt, str) or not isinstance(flags, str):
            raise CourseError("filter" if not isinstance(flt, str) else "flags", "is not text", "a string")
        self.fields = ex.controls(self.base, knobs)
        self.knobs = ex.knobs(knobs)
        # the starting interface must exist: never silently show another one
        start = ex.views(self.base, node, iface, flt, flags)
        self.controls: dict[str, W.Widget] = {}
        self.errors: dict[str, W.HTML] = {}
        rows = [W.HTML(_css())]
        for c in self.fields:
            if c.knob.kind == "bool":
                w = W.Checkbox(value=bool(c.value), description="", indent=False)
            elif c.knob.kind == "choice":          # a case knob: its menu comes from the scenario
                w = W.Dropdown(options=list(c.options), value=c.value, layout=W.Layout(width="360px"))
            else:
                w = W.Text(value=str(c.value), continuous_update=False, layout=W.Layout(width="160px"))
            w.add_class(f"pw-{c.key.replace('.', '-')}")
            if c.key != c.knob.name:
                w.add_class(f"pw-{c.knob.name}")
            self.controls[c.key] = w
            rows += self._row(c.key, c.label, c.knob.help, w)
        self.iface = W.Dropdown(layout=W.Layout(width="260px"))
        self.iface.add_class("pw-interface")
        self._menu(start.scenario, start.node, start.iface)
        self.flags = W.Dropdown(options=_FLAGS if flags in _FLAGS else _FLAGS + [flags], value=flags,
                                layout=W.Layout(width="120px"))
        self.flags.add_class("pw-flags")
        rows += self._row("interface", "tcpdump -i", "where tcpdump listens", W.HBox([self.iface, self.flags]))
        self.filter = W.Text(value=flt, continuous_update=False, placeholder=_tr("a tcpdump filter, e.g. udp port 8472"),
                             layout=W.Layout(width="340px"))
        self.filter.add_class("pw-filter")
        rows += self._row("filter", "filter", "a pcap-filter(7) expression, as tcpdump takes it", self.filter)
        self.packet = W.IntText(value=start.selected, layout=W.Layout(width="90px"))
        self.packet.add_class("pw-packet-no")
        rows += self._row("packet", "dissect packet No.", "or click a row of the packet list", self.packet)
        self.status = W.HTML("")
        self.status.add_class("pw-status")
        self.stale = W.HTML('<div class="pw-stale-banner">' + _e(_tr("stale: the tabs show the last good result, from "
                            "before the change that failed")) + "</div>", layout=W.Layout(display="none"))
        self.stale.add_class("pw-stale-note")
        self.packets = W.HTML("")
        self.packets.add_class("pw-packets")
        Explorer._made += 1                     # a class per explorer: its selection rule touches only its list
        self._scope = f"pw-x{Explorer._made}"
        self.selection = W.HTML("")
        self.selection.add_class("pw-selection")
        self.dissection = W.HTML("")
        self.dissection.add_class("pw-dissection")
        self.tcpdump = W.HTML("")
        self.tcpdump.add_class("pw-tcpdump")
        self.hops = W.HTML("")
        self.hops.add_class("pw-hops")
        tabs = [W.VBox([self.selection, self.packets, self.dissection]), self.tcpdump, self.hops]
        titles = ["packets", "tcpdump text", "hops"]
        self.diagram = None
        if diagram:
            self.diagram = W.HTML("", layout=W.Layout(width="100%"))
            self.diagram.add_class("pw-diagram")
            tabs.append(self.diagram)
            titles.append("diagram")
        self.tabs = W.Tab(children=tabs, titles=[_tr(t) for t in titles])
        self.widget = W.VBox(rows + [self.status, self.stale, self.tabs])
        self.widget.add_class("pw-explorer")
        self.widget.add_class("pw-root")
        self.widget.add_class(self._scope)
        self.scenario, self.views = self.base, None
        self.recomputed = 0
        # knob values -> (scenario, walk), the last few: an interface, filter or packet change reuses
        # the walk, and knob values seen before (4789, back to 8472) are neither applied nor walked again
        self._seen = {}
        self._diagram_for = None
        self._drawn = {}                 # knob values -> the diagram's HTML, the last few
        self.tabs.observe(lambda _change: (self._draw_hops(), self._draw_diagram()), names="selected_index")
        self.refresh()
        for w in list(self.controls.values()) + [self.iface, self.filter, self.flags]:
            w.observe(lambda _change: self.refresh(), names="value")
        self.packet.observe(lambda _change: self.refresh(), names="value")

    def _row(self, key, label, helptext, control):
        lab = W.HTML(f'<b title="{_e(_tr(helptext))}">{_e(_tr(label))}</b>')
        lab.add_class("pw-label")
        err = W.HTML("", layout=W.Layout(display="none"))
        err.add_class(f"pw-{key.replace('.', '-')}-error")
        err.add_class("pw-fielderr")
        self.errors[key] = err
        return [W.HBox([lab, control]), err]

    def _menu(self, sc, node, iface) -> None:
        opts = [f"{n} {i}" for n, i in ex.interfaces(sc)]
        value = f"{node} {iface}"
        if list(self.iface.options) != opts:
            self._rebuilding = True
            try:
                self.iface.options = opts
                self.iface.value = value if value in opts else opts[0]
            finally:
                self._rebuilding = False
        elif self.iface.value != value:
            self._rebuilding = True
            try:
                self.iface.value = value
            finally:
                self._rebuilding = False

    def _fields(self, sc) -> None:
        """Menus rebuilt from the applied scenario; a field the applied case does not have is greyed out."""
        now, before = ex.current(sc), getattr(self, "_case_now", None)
        self._case_now = now
        self._rebuilding = True
        try:
            for c in self.fields:
                w = self.controls[c.key]
                w.disabled = c.key not in now and not (c.knob.node_path and c.node is None)
                if before and c.key in now and c.key in before and str(w.value) == str(before[c.key]):
                    w.value = type(w.value)(now[c.key])     # an untouched field shows the new case's value
                if c.knob.kind == "choice" and c.key in now:
                    opts = ex.options(sc, c.key)
                    if list(w.options) != opts and w.value in [val for _, val in opts]:
                        value, w.options = w.value, opts
                        w.value = value
        finally:
            self._rebuilding = False

    @property
    def label(self) -> str:
        return f"Explorer({self.base.name}: {', '.join(k.name for k in self.knobs)})"

    def values(self) -> dict:
        return {k: c.value for k, c in self.controls.items()}

    def changed(self) -> list[str]:
        """The fields whose value differs from the scenario's."""
        now = {c.key: c.value for c in self.fields}
        return [k for k, w in self.controls.items() if str(w.value) != str(now[k])]

    def _changed_since_last(self) -> list[str]:
        last = getattr(self, "_applied", {})
        return [k for k, w in self.controls.items() if k in last and str(w.value) != str(last[k])]

    def refresh(self) -> bool:
        """Recompute every view; on error show the message once and keep the last good views, marked stale."""
        if getattr(self, "_rebuilding", False):
            return False
        t0 = time.perf_counter()
        try:
            key = tuple((k, str(w)) for k, w in self.values().items())
            seen = self._seen.get(key)
            if self.views is not None and key == getattr(self, "_applied_key", None):
                sc = self.views.scenario          # the same knobs: the same scenario, its walk reused
            elif seen is not None:
                sc = seen[0]
            else:
                sc = ex.apply(self.base, self.values())
            node, iface = self.iface.value.split(" ", 1)
            if self.views is not None and sc is not self.views.scenario:
                node, iface = ex.same_interface(self.views.scenario, sc, node, iface)
            walk = seen[1] if seen is not None and seen[0] is sc else None
            frame = self.packet.value or None
            if self.views is not None and (sc is not self.views.scenario or (node, iface) !=
                                           (self.views.node, self.views.iface)
                                           or self.filter.value != getattr(self, "_flt", None)):
                frame = None             # a new capture: dissect its first packet again
            v = ex.views(sc, node, iface, self.filter.value, self.flags.value, frame=frame, walk=walk)
            pages = self._pages(v)       # every view computed before any is sent: one burst to the browser
        except CourseError as e:
            self._show_error(e)
            return False
        except Exception as e:  # a bug must not become a traceback in front of a learner
            self._show_error(CourseError("explorer", f"internal error ({type(e).__name__}): {e}",
                                         "please report this input"))
            return False
        before, self._flt, self._applied_key = self.views, self.filter.value, key
        self._seen.pop(key, None)
        self._seen[key] = (sc, v.walk)
        while len(self._seen) > 8:
            self._seen.pop(next(iter(self._seen)))
        self.scenario, self.views = sc, v
        self._clear_errors()
        self._menu(sc, v.node, v.iface)
        self._fields(sc)
        if self.packet.value != v.selected:
            self._rebuilding = True
            try:
                self.packet.value = v.selected
            finally:
                self._rebuilding = False
        self.recomputed += 1
        ms = (time.perf_counter() - t0) * 1000
        moved = self._changed_since_last()
        self._applied = {k: w.value for k, w in self.controls.items()}
        why = ex.unchanged_reason(before, v, moved) if before is not None and moved else ""
        flash = "pw-flash-a" if self.recomputed % 2 else "pw-flash-b"
        lines = [f'<span class="pw-ok {flash}">&#10003; recomputed (#{self.recomputed}, {ms:.0f} ms): '
                 f'{len(v.frames)} packets on {_e(v.node)} {_e(v.iface)}</span>']
        if why:
            lines.append(f'<span class="pw-why">nothing on screen changed: {_e(why)}</span>')
        lines += [f'<span class="pw-warn">&#9888; {_e(w)}</span>' for w in v.warnings]
        lines += [f'<span class="pw-muted">{_e(n)}</span>' for n in v.notes]
        self._render(v, pages)
        # the status line last: the front end applies updates in order, so a status line that shows
        # this recomputation means every view above is on the page too
        self.status.value = "<br>".join(lines)
        self._draw_diagram()
        return True

    def _pages(self, v) -> dict:
        """Each text view's HTML for ``v``, by widget name, in the order they are sent."""
        cmd = f"$ tcpdump -i {v.iface} {self.flags.value}" + (f" {self.filter.value!r}" if self.filter.value else "")
        f = v.frame
        if f is None:
            dissection = '<div class="pw-muted">(no packet to dissect)</div>'
        else:
            line = next(r.line for r in v.rows if r.no == v.selected)
            # the tree with each field's provenance label, sent once (provenance dissects a frame once)
            dissection = dissection_html(f.data, v.layers, line, v.selected, _provenance(v.scenario, f.observation))
        pages = {"tcpdump": _pre(cmd, "pw-cmd") + _pre(v.tcpdump, "pw-out"),
                 "selection": selection_css(self._scope, v.selected),
                 "packets": packet_list_html(v.rows, None), "dissection": dissection}
        hops = self._hops_page(v)
        if hops is not None:
            pages["hops"] = hops
        return pages

    def _render(self, v, pages=None) -> None:
        """Send the views that changed (an unchanged one is not sent again), nothing computed in between."""
        for name, page in (pages or self._pages(v)).items():
            _set(getattr(self, name), page)

    def _draw_hops(self) -> None:
        page = self._hops_page(self.views)
        if page is not None:
            _set(self.hops, page)

    def _hops_page(self, v) -> str | None:
        # The hop table dissects every hop's frame: only when its tab shows, once per walk and segment.
        if v is None or self.tabs.selected_index != 2:
            return None
        f = v.frame
        seg = getattr(getattr(f, "observation", None), "segment", 0) if f is not None else 0
        seg = seg if isinstance(seg, int) and 0 <= seg < len(v.walk.segments) else 0
        last = getattr(self, "_hops_for", (None, None))
        if last[0] is v.walk and last[1] == seg:
            return None
        title = f'<div class="pw-muted">the path of segment {seg} (the selected packet\'s), hop by hop</div>'
        page = title + hop_table_html(ex.hop_rows(v.walk, seg))
        self._hops_for = (v.walk, seg)
        return page

    def _draw_diagram(self) -> None:
        # Drawn once per scenario into its tab even while hidden, after the status line (so after
        # every text view is on screen): opening the tab is then the browser's own tab switch, no
        # round trip to the kernel.
        if self.diagram is None or self.views is None:
            return
        if self._diagram_for is self.views.scenario:
            return
        key = getattr(self, "_applied_key", None)
        page = self._drawn.get(key)
        if page is None:                 # knob values seen before (4789, back to 8472): drawn then
            from .diagrams import walk_svg
            page = f'<div class="pw-figure">{walk_svg(self.scenario, self.views.walk)}</div>'
            self._drawn[key] = page
            while len(self._drawn) > 8:
                self._drawn.pop(next(iter(self._drawn)))
        _set(self.diagram, page)
        self._diagram_for = self.views.scenario

    def _clear_errors(self) -> None:
        for k, e in self.errors.items():
            if e.layout.display != "none":
                e.value, e.layout.display = "", "none"
        for w in list(self.controls.values()) + [self.filter, self.iface, self.packet]:
            w.remove_class("pw-invalid")
        self.stale.layout.display = "none"
        self.tabs.remove_class("pw-stale")

    def _show_error(self, e: CourseError) -> None:
        self._clear_errors()
        by_label = {c.label: c.key for c in self.fields}
        # the model names a field by its English label; the control may show it translated
        by_label.update({(f"{c.knob.label} ({c.node})" if c.node else c.knob.label): c.key for c in self.fields})
        key = by_label.get(e.field)
        if key is None and e.field in ("filter", "bpf filter", "flags"):
            key = "filter"
        if key is None and e.field in ("packet", "frame"):
            key = "packet"
        if key is None and e.field in ("interface", "node"):
            key = "interface"
        if key in self.errors:
            self.errors[key].value = f"&#9888; {_e(e)}"
            self.errors[key].layout.display = ""
            target = {"filter": self.filter, "packet": self.packet, "interface": self.iface}.get(key) \
                or self.controls.get(key)
            if target is not None:
                target.add_class("pw-invalid")
            self.status.value = '<span class="pw-err">&#9888; ' + _e(_tr("not applied: see the outlined field.")) + '</span>'
        else:
            self.status.value = f'<span class="pw-err">&#9888; {_e(e)}</span>'
        if self.views is not None:
            self.stale.layout.display = ""
            self.tabs.add_class("pw-stale")


class Stepper(_Widgety):
    """Step forward and back through every hop of a request segment and its reply, on a small map.

    Taught in: 06-the-whole-walk.
    """

    def __init__(self, scenario=None, segment: int = 0, walk=None):
        from .datapath import walk as _walk
        self.scenario = _scenario(scenario)
        self.walk = walk if walk is not None else _walk(self.scenario)
        self.steps = ex.steps(self.walk, segment)
        self.pos = 0
        self.back = W.Button(description=_tr("◀ back"), layout=W.Layout(width="90px"))
        self.back.add_class("pw-back")
        self.next = W.Button(description=_tr("next ▶"), layout=W.Layout(width="90px"))
        self.next.add_class("pw-next")
        self.slider = W.IntSlider(value=1, min=1, max=len(self.steps), description=_tr("hop"), readout=True,
                                  continuous_update=True, layout=W.Layout(width="420px"))
        self.slider.add_class("pw-hop")
        self.title = W.HTML("")
        self.title.add_class("pw-step-title")
        self.map = W.HTML("", layout=W.Layout(width="100%"))
        self.map.add_class("pw-map")
        self.body = W.HTML("", layout=W.Layout(height="380px", overflow="auto"))
        self.body.add_class("pw-step")
        self.every = W.ToggleButton(value=False, description=_tr("every layer"), layout=W.Layout(width="120px"))
        self.every.add_class("pw-every-layer")
        self.layers = W.HTML("", layout=W.Layout(display="none"))
        self.layers.add_class("pw-step-tree")
        self.back.on_click(lambda _b: self.go(self.pos - 1))
        self.next.on_click(lambda _b: self.go(self.pos + 1))
        self.slider.observe(lambda ch: self.go(ch["new"] - 1), names="value")
        self.every.observe(lambda _ch: self._layers(), names="value")
        self.widget = W.VBox([W.HTML(_css()), W.HBox([self.back, self.next, self.slider, self.every]), self.title,
                              self.map, self.body, self.layers])
        self.widget.add_class("pw-stepper")
        self.widget.add_class("pw-root")
        self.go(0)

    @property
    def label(self) -> str:
        return f"Stepper({self.scenario.name}: {len(self.steps)} hops)"

    def go(self, pos: int) -> None:
        pos = max(0, min(pos, len(self.steps) - 1))
        self.pos = pos
        if self.slider.value != pos + 1:
            self.slider.value = pos + 1
            return                       # the slider's observer comes back here
        self.back.disabled = pos == 0
        self.next.disabled = pos == len(self.steps) - 1
        st = self.steps[pos]
        v = ex.step_view(st)
        self.view = v
        flow = "pw-request" if st.flow == "request" else "pw-reply"
        from .diagrams import hop_map_svg
        hop_map = hop_map_svg(self.scenario, self.walk, st.observation)
        changed = "".join(f'<div class="{"pw-minor" if c in v.minor else "pw-change"}" '
                          f'style="font-family:var(--jp-code-font-family,monospace);font-size:12px">{_e(c)}'
                          + (f' <span class="pw-tag">[{_e(v.labels[c])}]</span>' if c in v.labels else "")
                          + "</div>" for c in v.changes) or \
            ('<div class="pw-muted" style="font-family:monospace;font-size:12px">'
             + _e(_tr("(nothing: the same bytes)")) + '</div>')
        decided = "".join(f'<div style="font-family:var(--jp-code-font-family,monospace);font-size:12px">'
                          f'<b>[{_e(d.stage)}]</b> {_e(d.table)}: {_e(d.entry)}<br>&nbsp;&nbsp;&rarr; '
                          f'{_e(d.effect)}</div>' for d in v.decisions)
        body = (f'<pre class="pw-summary pw-step-summary" data-pos="{pos + 1}">{_e(v.summary)}</pre>'
                f"<h4>{_e(_tr('changed since the previous hop'))}</h4>" + changed
                + f"<h4>{_e(_tr('decided by'))}</h4>" + (decided or "-"))
        # computed first, then sent back to back: the browser draws the hop in one frame
        self.map.value = hop_map
        self.body.value = body
        self._layers()
        # the title last: the front end applies updates in order, so a title that shows this hop
        # means its map, body and layers are on the page too
        self.title.value = (f'<b class="{flow}">{_e(_tr(v.title))}</b> '
                            f'<span class="pw-muted">({pos + 1}/{len(self.steps)})</span>')

    def _layers(self) -> None:
        if self.every.value:
            self.layers.value = _pre(self.view.tree, "pw-tree")
            self.layers.layout.display = ""
        else:
            self.layers.layout.display = "none"


def explorer(scenario=None, knobs=None, **kw) -> Explorer:
    """An :class:`Explorer` (see there)."""
    return Explorer(scenario, knobs, **kw)


def stepper(scenario=None, segment: int = 0, walk=None) -> Stepper:
    """A :class:`Stepper` (see there)."""
    return Stepper(scenario, segment, walk)


# -- chapter 10: a real capture, explained (coursekit.explanation) ------------------

def explained_html(ex, conversation: int = 1, packet: int = 1) -> str:
    """One explained packet as a table: where it was seen, its header there, what changed and which entry did it."""
    rows = []
    for r in ex.walk_rows(conversation, packet):
        changes = "".join(f'<div class="pw-change">{_e(c)}</div>' for c in r["changes"])
        by = "".join(f"<li><code>{_e(b)}</code></li>" for b in r["by"])
        rows.append(f'<tr class="pw-hop"><td>{r["n"]}</td><td>{_e(r["place"])}</td>'
                    f'<td style="font-family:var(--jp-code-font-family,monospace);font-size:12px">{_e(r["line"])}</td>'
                    f'<td>{changes}{"<ul style=margin:0>" + by + "</ul>" if by else ""}</td></tr>')
    return (f'<div class="pw-list" style="max-height:none"><table class="pw-table pw-hop-table"><thead><tr>'
            f'<th>#</th><th>where</th><th>header</th><th>changed since the previous place, and by what</th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


class ExplainedWalk(_Widgety):
    """Pick a conversation and a packet of an explanation; the table shows its walk.

    Taught in: 10-your-own-cluster.
    """

    def __init__(self, explanation, conversation: int = 1, packet: int = 1):
        from .explanation import Explanation
        if not isinstance(explanation, Explanation):
            raise CourseError("explanation", f"a {type(explanation).__name__} is not an explanation",
                              "what ck.explain returns")
        self.ex = explanation
        if not explanation.conversations:
            raise CourseError("explanation", "no conversation was found", "captures with IPv4 traffic")
        explanation.conversation(conversation)
        self.conv = W.Dropdown(options=[(f"{c.number}: {c.title}", c.number) for c in explanation.conversations],
                               value=conversation, description="conversation", layout=W.Layout(width="520px"))
        self.conv.add_class("pw-conversation")
        self.pkt = W.Dropdown(description="packet", layout=W.Layout(width="520px"))
        self.pkt.add_class("pw-packet")
        self.body = W.HTML("")
        self.body.add_class("pw-explained")
        self._packets(conversation, packet)
        self.conv.observe(lambda ch: self._packets(ch["new"], 1), names="value")
        self.pkt.observe(lambda ch: self.show(), names="value")
        self.widget = W.VBox([W.HTML(_css()), self.conv, self.pkt, self.body])
        self.widget.add_class("pw-root")
        self.show()

    def _packets(self, conversation: int, packet: int) -> None:
        c = self.ex.conversation(conversation)
        if not 1 <= packet <= len(c.packets):
            raise CourseError("packet", f"no packet {packet!r}", f"1..{len(c.packets)}")
        self.pkt.options = [(f"{i}: {p.flow} {p.summary()}", i) for i, p in enumerate(c.packets, 1)]
        self.pkt.value = packet

    @property
    def label(self) -> str:
        return f"ExplainedWalk(conversation {self.conv.value}, packet {self.pkt.value})"

    def show(self) -> None:
        if self.pkt.value is not None:
            self.body.value = explained_html(self.ex, self.conv.value, self.pkt.value)


def explained(explanation, conversation: int = 1, packet: int = 1) -> ExplainedWalk:
    """An :class:`ExplainedWalk` (see there)."""
    return ExplainedWalk(explanation, conversation, packet)
