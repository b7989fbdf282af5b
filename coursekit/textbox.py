"""Long text in a notebook: one scroll box, never wrapped inside a word or a number.

JupyterLab wraps printed text anywhere (``word-break: break-all``: an address
or a sequence number split over two lines) and shows all of it, so one
tcpdump transcript or layer tree fills screens.  :func:`scroll_box` is the
HTML a course object (``ck.tcpdump``'s :class:`~coursekit.Transcript`) shows
next to its plain text: a ``<pre>`` that keeps every line whole, scrolls
sideways, and scrolls down after :data:`MAX_LINES` lines.  Its styles are
inline, so static renderers (nbviewer) and untrusted notebooks, which drop
``<style>`` elements, show the same box.  nbval compares the plain text and
this HTML, both a pure function of the text.

The one ``<style>`` it adds does the same for ``print()``'s output in the
notebooks that show a course object (JupyterLab only; ``:has``).

Taught in: 01-physical-nic (transcripts), every chapter that prints.
"""

from __future__ import annotations

import html

__all__ = ["scroll_box", "MAX_LINES", "PRINTED_TEXT_CSS"]

MAX_LINES = 24

PRINTED_TEXT_CSS = (".jp-Notebook:has(.pw-text,.pw-root) .jp-OutputArea-output[data-mime-type='text/plain']>pre,"
                    ".jp-Notebook:has(.pw-text,.pw-root) .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stdout']>pre"
                    "{word-break:normal;overflow-wrap:normal;max-height:32em;overflow:auto}")


def scroll_box(text: str, head: str = "") -> str:
    """``text`` as a scroll box (``head`` a first line outside it, e.g. the command), as HTML."""
    lines = text.count("\n") + 1 if text else 0
    tall = f"max-height:{MAX_LINES * 1.3:.1f}em;" if lines > MAX_LINES else ""
    box = ("margin:0;padding:2px 4px;white-space:pre;word-break:normal;overflow-wrap:normal;overflow:auto;"
           f"{tall}line-height:1.3;font-family:var(--jp-code-font-family,monospace);"
           "font-size:var(--jp-code-font-size,13px)")
    top = (f'<div class="pw-text-head" style="font-family:var(--jp-code-font-family,monospace);'
           f'font-size:var(--jp-code-font-size,13px);white-space:pre;overflow-x:auto">{html.escape(head)}</div>'
           if head else "")
    more = (f'<div class="pw-text-more" style="font-size:smaller;opacity:.8">{lines} lines: scroll the box</div>'
            if tall else "")
    return (f"<style>{PRINTED_TEXT_CSS}</style><div class=\"pw-text\">{top}"
            f'<pre class="pw-text-box" style="{box}">{html.escape(text)}</pre>{more}</div>')
