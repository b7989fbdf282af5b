"""Explorers and the stepper as ipywidgets: the only module that imports ipywidgets.

Each callback calls one pure function of :mod:`coursekit.explore` (or
:mod:`coursekit.diagrams`) and shows what it returns.  A
:class:`~coursekit.errors.CourseError` is shown next to the field that caused
it, and the views keep their last good content; no traceback reaches the
learner.  Every control carries a CSS class ``pw-<name>`` so a browser test
can find it.

Displaying an explorer writes nothing to stdout, and its plain-text form is a
short, stable line, so nbval can check the cell.

Taught in: every chapter's explorer; 06-the-whole-walk (the stepper).
"""

from __future__ import annotations

import html
import io

import ipywidgets as W

from . import explore as ex
from .errors import CourseError

__all__ = ["Explorer", "Stepper", "explorer", "stepper", "figure_png", "figure_svg"]

_FLAGS = ["-nn", "-nn -e", "-nn -v", "-nn -e -v", ""]


def figure_png(fig, dpi: int = 85) -> bytes:
    """A figure as PNG bytes without a timestamp or software stamp (deterministic)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def figure_svg(fig) -> str:
    """A figure as inline SVG markup: text stays text (3x faster than a PNG), no date, fixed ids."""
    import matplotlib
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "packet-walk"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _pre(text: str, cls: str) -> str:
    return (f'<pre class="{cls}" style="font-size:11px;line-height:1.25;margin:0;white-space:pre;'
            f'overflow-x:auto">{html.escape(text)}</pre>')


def _error(msg: str) -> str:
    return f'<span class="pw-error" style="color:#b00020">&#9888; {html.escape(msg)}</span>' if msg else ""


class _Widgety:
    """Displays as its widget, with a short stable text form for nbval."""
    widget: W.Widget
    label: str = ""

    def _repr_mimebundle_(self, **kw):
        bundle = self.widget._repr_mimebundle_(**kw)
        bundle["text/plain"] = self.label
        return bundle


class Explorer(_Widgety):
    """Change addresses and ports; the tcpdump view, hop table, dissection and diagram follow.

    >>> ck.widgets.explorer(sc, knobs=["vxlan_port", "vni"], node="meizu", iface="enp4s0")   # doctest: +SKIP

    Taught in: every chapter.
    """

    def __init__(self, scenario=None, knobs=None, node=None, iface=None, flt: str = "", flags: str = "-nn",
                 diagram: bool = True):
        from .scenario import load_scenario
        self.base = scenario if scenario is not None else load_scenario("article")
        self.knobs = ex.knobs(knobs)
        now = ex.current(self.base)
        self.controls: dict[str, W.Widget] = {}
        self.errors: dict[str, W.HTML] = {}
        rows = []
        for k in self.knobs:
            if k.kind == "bool":
                c = W.Checkbox(value=bool(now[k.name]), description="", indent=False)
            else:
                c = W.Text(value=str(now[k.name]), continuous_update=False, layout=W.Layout(width="150px"))
            c.add_class(f"pw-{k.name}")
            self.controls[k.name] = c
            self.errors[k.name] = W.HTML("")
            self.errors[k.name].add_class(f"pw-{k.name}-error")
            rows.append(W.HBox([W.HTML(f'<b title="{html.escape(k.help)}">{html.escape(k.label)}</b>',
                                       layout=W.Layout(width="140px")), c, self.errors[k.name]]))
        opts = [f"{n} {i}" for n, i in ex.interfaces(self.base)]
        start = f"{node or self.base.server.node} {iface or self.base.node(self.base.server.node).nic.name}"
        self.iface = W.Dropdown(options=opts, value=start if start in opts else opts[0], layout=W.Layout(width="260px"))
        self.iface.add_class("pw-interface")
        self.filter = W.Text(value=flt, continuous_update=False, placeholder="a tcpdump filter, e.g. udp port 8472",
                             layout=W.Layout(width="340px"))
        self.filter.add_class("pw-filter")
        self.flags = W.Dropdown(options=_FLAGS if flags in _FLAGS else _FLAGS + [flags], value=flags,
                                layout=W.Layout(width="120px"))
        self.flags.add_class("pw-flags")
        self.errors["filter"] = W.HTML("")
        self.errors["filter"].add_class("pw-filter-error")
        rows.append(W.HBox([W.HTML("<b>tcpdump -i</b>", layout=W.Layout(width="140px")), self.iface, self.flags]))
        rows.append(W.HBox([W.HTML("<b>filter</b>", layout=W.Layout(width="140px")), self.filter,
                            self.errors["filter"]]))
        self.status = W.HTML("")
        self.status.add_class("pw-status")
        self.tcpdump = W.HTML("")
        self.tcpdump.add_class("pw-tcpdump")
        self.hops = W.HTML("")
        self.hops.add_class("pw-hops")
        self.dissection = W.HTML("")
        self.dissection.add_class("pw-dissection")
        tabs = [self.tcpdump, self.hops, self.dissection]
        titles = ["tcpdump", "hops", "dissection"]
        self.diagram = None
        if diagram:
            self.diagram = W.HTML("", layout=W.Layout(width="100%", max_width="900px"))
            self.diagram.add_class("pw-diagram")
            tabs.append(self.diagram)
            titles.append("diagram")
        self.tabs = W.Tab(children=tabs, titles=titles)
        self.widget = W.VBox(rows + [self.status, self.tabs])
        self.widget.add_class("pw-explorer")
        self.scenario = self.base
        self.views = None
        self._diagram_stale = True
        self.tabs.observe(lambda _change: self._draw_diagram(), names="selected_index")
        self.refresh()
        for c in list(self.controls.values()) + [self.iface, self.filter, self.flags]:
            c.observe(lambda _change: self.refresh(), names="value")

    @property
    def label(self) -> str:
        return f"Explorer({self.base.name}: {', '.join(k.name for k in self.knobs)})"

    def values(self) -> dict:
        return {k: c.value for k, c in self.controls.items()}

    def refresh(self) -> bool:
        """Recompute every view; on error show the message and keep the last good views."""
        for e in self.errors.values():
            e.value = ""
        try:
            sc = ex.apply(self.base, self.values())
            node, iface = self.iface.value.split(" ", 1)
            v = ex.views(sc, node, iface, self.filter.value, self.flags.value)
        except CourseError as e:
            self._show_error(e)
            return False
        except Exception as e:  # a bug must not become a traceback in front of a learner
            self.status.value = _error(f"internal error ({type(e).__name__}): {e}")
            return False
        self.scenario, self.views = sc, v
        self.tcpdump.value = _pre(f"$ tcpdump -i {iface} {self.flags.value} {self.filter.value!r}\n" if self.filter.value
                                  else f"$ tcpdump -i {iface} {self.flags.value}\n", "pw-cmd") + _pre(v.tcpdump, "pw-out")
        self.hops.value = _pre(v.hops, "pw-hop-table")
        self.dissection.value = _pre(v.dissection, "pw-tree")
        self.status.value = ("<br>".join(html.escape(n) for n in v.notes)
                             or f'<span class="pw-ok" style="color:#2e7d32">&#10003; {len(v.frames)} packets on '
                             f'{html.escape(node)} {html.escape(iface)}</span>')
        self._diagram_stale = True
        self._draw_diagram()
        return True

    def _draw_diagram(self) -> None:
        # Drawing costs more than every text view together: only when it shows.
        if self.diagram is None or not self._diagram_stale or self.tabs.selected_index != 3:
            return
        from .diagrams import walk_diagram
        svg = figure_svg(walk_diagram(self.scenario, self.views.walk))
        self.diagram.value = svg.replace("<svg ", '<svg style="width:100%;height:auto" ', 1)
        self._diagram_stale = False

    def _show_error(self, e: CourseError) -> None:
        by_label = {k.label: k.name for k in self.knobs}
        name = by_label.get(e.field, "filter" if e.field in ("filter", "bpf filter") else None)
        if name in self.errors:
            self.errors[name].value = _error(str(e))
        self.status.value = _error(str(e) + " — showing the last good views")


class Stepper(_Widgety):
    """Step forward and back through every hop of a request segment and its reply.

    Taught in: 06-the-whole-walk.
    """

    def __init__(self, scenario=None, segment: int = 0, walk=None):
        from .datapath import walk as _walk
        from .scenario import load_scenario
        self.scenario = scenario if scenario is not None else load_scenario("article")
        self.walk = walk if walk is not None else _walk(self.scenario)
        self.steps = ex.steps(self.walk, segment)
        self.pos = 0
        self.back = W.Button(description="◀ back", layout=W.Layout(width="90px"))
        self.back.add_class("pw-back")
        self.next = W.Button(description="next ▶", layout=W.Layout(width="90px"))
        self.next.add_class("pw-next")
        self.slider = W.IntSlider(value=1, min=1, max=len(self.steps), description="hop", readout=True,
                                  continuous_update=True, layout=W.Layout(width="420px"))
        self.slider.add_class("pw-hop")
        self.title = W.HTML("")
        self.title.add_class("pw-step-title")
        self.body = W.HTML("")
        self.body.add_class("pw-step")
        self.back.on_click(lambda _b: self.go(self.pos - 1))
        self.next.on_click(lambda _b: self.go(self.pos + 1))
        self.slider.observe(lambda ch: self.go(ch["new"] - 1), names="value")
        self.widget = W.VBox([W.HBox([self.back, self.next, self.slider]), self.title, self.body])
        self.widget.add_class("pw-stepper")
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
        v = ex.step_view(self.steps[pos])
        colour = "#d62728" if self.steps[pos].flow == "request" else "#1f77b4"
        self.title.value = (f'<b style="color:{colour}">{html.escape(v.title)}</b> '
                            f'<span style="color:#666">({pos + 1}/{len(self.steps)})</span>')
        changed = "".join(f'<div style="background:#fff3cd;font-family:monospace;font-size:11px">'
                          f'{html.escape(c)}</div>' for c in v.changes) or \
            '<div style="font-family:monospace;font-size:11px;color:#666">(nothing: the same bytes)</div>'
        decided = "".join(f'<div style="font-family:monospace;font-size:11px"><b>[{html.escape(d.stage)}]</b> '
                          f'{html.escape(d.table)}: {html.escape(d.entry)}<br>&nbsp;&nbsp;&rarr; '
                          f'{html.escape(d.effect)}</div>' for d in v.decisions)
        self.body.value = (_pre(v.summary, "pw-step-summary") + "<h4>changed since the previous hop</h4>" + changed
                           + "<h4>decided by</h4>" + (decided or "-")
                           + "<details><summary>every layer</summary>" + _pre(v.tree, "pw-step-tree") + "</details>")


def explorer(scenario=None, knobs=None, **kw) -> Explorer:
    """An :class:`Explorer` (see there)."""
    return Explorer(scenario, knobs, **kw)


def stepper(scenario=None, segment: int = 0, walk=None) -> Stepper:
    """A :class:`Stepper` (see there)."""
    return Stepper(scenario, segment, walk)
