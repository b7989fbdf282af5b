"""Pictures: pure functions of a scenario, a walk or a frame that return a matplotlib Figure.

* :func:`topology` -- both nodes, their pods and every interface with its address.
* :func:`walk_diagram` -- the request's and the reply's hops, numbered, on the topology
  (:func:`walk_svg`: the same picture as plain SVG, for the explorer's diagram tab).
* :func:`timeline` -- the TCP conversation as one interface sees it (a sequence diagram).
* :func:`encapsulation` -- the VXLAN frame as stacked layers with their sizes.
* :func:`byte_map` -- a real frame's bytes, coloured by layer (the dissection as a picture).
* :func:`hook_order` -- netfilter's hooks and tables in order, where br_netfilter calls in and
  where tcpdump's taps sit.

* :func:`walk_svg` -- :func:`walk_diagram` as plain SVG, drawn by the same code (the explorer's tab).
* :func:`hop_map_svg` -- a small map with one hop highlighted (the stepper).

Every figure is built from data alone: no wall clock, no random ids, fonts
bundled with matplotlib (DejaVu), so the same scenario draws the same picture.
Figures are closed in pyplot before they are returned, so a notebook shows
each once, at its natural size (:class:`Picture`: 9 pt text is never shrunk
to fit a narrow notebook; the output scrolls).

Taught in: 00-the-scenario (topology), 01-physical-nic (encapsulation, byte
map), 03-docker0 (hook order), 05-the-service (walk, hook order),
06-the-whole-walk (walk, timeline).
"""

from __future__ import annotations

import io
import textwrap

import matplotlib

matplotlib.rcParams["svg.hashsalt"] = "packet-walk"     # stable ids if a figure is saved as SVG
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyBboxPatch, Rectangle  # noqa: E402

from .dissect import dissect, frame_bytes  # noqa: E402

__all__ = ["topology", "walk_diagram", "walk_svg", "drop_diagram", "timeline", "encapsulation", "byte_map", "hop_map_svg",
           "hook_order", "LAYER_COLOURS", "Picture", "figure_png", "figure_svg"]

# One colour per protocol; outer layers are the same hue, lighter.
LAYER_COLOURS = {
    "Ethernet": "#9ecae1", "IPv4": "#a1d99b", "UDP": "#fdd0a2", "TCP": "#fdae6b", "VXLAN": "#bcbddc",
    "HTTP": "#fcbba1", "Data": "#d9d9d9", "ARP": "#c7e9c0", "ICMP": "#c6dbef", "Padding": "#f0f0f0",
    "outer Ethernet": "#deebf7", "outer IPv4": "#e5f5e0", "outer UDP": "#feedde",
}
_IFACE = {"eth0": "#ffffff", "veth": "#f7f7f7", "docker0": "#9ecae1", "flannel.1": "#bcbddc", "nic": "#a1d99b"}
_REQ, _REP = "#d62728", "#1f77b4"


# ---- Chinese figure text (ck.set_language("zh")): the course's own CJK font, or English with one notice
CJK_FONT = "packet-walk-cjk.ttf"        # data/fonts: WenQuanYi Micro Hei cut to the course's characters
_SYSTEM_CJK = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Micro Hei", "Microsoft YaHei",
               "PingFang SC")
_cjk: dict = {}


def _cjk_fonts() -> list[tuple[str, set[int]]]:
    """(family, code points) of the CJK fonts matplotlib can use here: the course's first, then the system's."""
    if "fonts" in _cjk:
        return _cjk["fonts"]
    from matplotlib import font_manager, ft2font
    from .scenario import data_dir
    fonts, paths = [], []
    own = data_dir() / "fonts" / CJK_FONT
    if own.exists():
        paths.append(str(own))
    for family in _SYSTEM_CJK:
        try:
            p = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        except ValueError:
            continue
        paths.append(p)
    for p in dict.fromkeys(paths):
        try:
            f = ft2font.FT2Font(p)
        except (OSError, RuntimeError):
            continue
        if p == str(own):
            font_manager.fontManager.addfont(p)
            # it has one weight: bold labels use it at 400, which matplotlib would log for every bold text
            import logging
            logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
        fonts.append((f.family_name, set(f.get_charmap())))
    _cjk["fonts"] = fonts
    return fonts


def _use_cjk_font() -> None:
    """In Chinese, the course's CJK font as the fallback after the Latin one (for every text made from now on)."""
    from .i18n import language
    if language() != "zh":
        return
    fonts = _cjk_fonts()
    if fonts:
        _add_family(fonts[0][0])


def _add_family(family: str) -> None:
    families = list(matplotlib.rcParams["font.family"])
    if family not in families:      # a fallback after the Latin font: its glyphs only where needed
        matplotlib.rcParams["font.family"] = ["DejaVu Sans"] + [f for f in families if f not in
                                                                ("sans-serif", "DejaVu Sans")] + [family]


def _figure_text(text: str) -> str:
    """A figure's title or label in the learner's language (:mod:`coursekit.i18n`).

    Chinese only when a font here has every character (the course ships one:
    ``data/fonts/packet-walk-cjk.ttf``); otherwise the English, and one notice
    per session -- never boxes for missing glyphs.
    """
    from .i18n import language, tr_text
    if language() != "zh":
        return text
    zh = tr_text(text)
    if zh == text:
        return text
    need = {ord(c) for c in zh if ord(c) > 0x2E7F}
    for family, points in _cjk_fonts():
        if need <= points:
            _add_family(family)
            return zh
    if not _cjk.get("noticed"):
        _cjk["noticed"] = True
        import sys
        print("coursekit: no Chinese font can draw this figure's labels, so they are in English "
              "(pip install -e . ships one; or install fonts-noto-cjk)", file=sys.stderr)
    return text


DPI = 100      # 9 pt text is 12.5 px at this resolution: 9 CSS points or more when shown at natural size


class Picture(Figure):
    """A Figure that a notebook shows at its natural size (``DPI`` pixels an inch), never shrunk.

    JupyterLab shrinks an image to the notebook's width, which turns 9 pt labels
    into 6 pt at 900 px; this one keeps its size (``unconfined``) and the
    output scrolls sideways instead.  The PNG has no timestamp; the plain text
    is matplotlib's own (``<Figure size 1000x620 with 1 Axes>``), so nbval
    compares what it compared before.
    """

    def __repr__(self) -> str:
        return super().__repr__().replace(f"<{type(self).__name__} ", "<Figure ", 1)

    def _ipython_display_(self) -> None:
        import base64
        from IPython.display import display
        w, h = (round(v * self.dpi) for v in self.get_size_inches())
        png = base64.b64encode(figure_png(self, dpi=self.dpi)).decode("ascii")      # as nbformat stores it
        display({"image/png": png, "text/plain": repr(self)},
                metadata={"image/png": {"width": w, "height": h, "unconfined": True}}, raw=True)


def figure_png(fig, dpi: int = DPI) -> bytes:
    """A figure as PNG bytes without a timestamp or software stamp (deterministic)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def figure_svg(fig) -> str:
    """A figure as inline SVG markup: text stays text (3x faster than a PNG), no date, fixed ids.

    The ``<svg>`` keeps its natural width as a CSS minimum (``min-width:720pt`` for a 10 inch
    figure), so its 9 pt labels are 9 CSS points or more however narrow the page: a narrow
    page scrolls the figure instead of shrinking it.
    """
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "packet-walk"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    head = text[:text.index(">")]
    width = head.split(' width="', 1)[1].split('"', 1)[0]
    return text.replace("<svg ", f'<svg style="min-width:{width}" ', 1)


def _figure(w: float, h: float):
    _use_cjk_font()                       # before the figure: its title's font is fixed when the axes are made
    fig = plt.figure(figsize=(w, h), dpi=DPI, FigureClass=Picture)
    plt.close(fig)                        # returned, not auto-shown: a notebook displays it once
    return fig


def _box(ax, x, y, w, h, text, colour, *, dashed=False, fontsize=9, weight="normal"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.3", linewidth=1,
                                edgecolor="#444444", facecolor=colour, linestyle="--" if dashed else "-"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, weight=weight)


def _layout(sc):
    """Box positions (x, y, w, h) of every interface, keyed by (node-or-pod, iface)."""
    # the path's nodes first (an external host is not a node; a same-node case has one), then the rest
    order = [sc.node(name) for name in sc.case.nodes]
    order += [n for n in sc.nodes if n not in order]
    width, gap = 44.0, 8.0
    boxes, nodes = {}, {}
    for i, n in enumerate(order[:2]):
        x0 = 2 + i * (width + gap)
        nodes[n.name] = (x0, 2, width, 80)
        pods = sc.pods_on(n.name)
        pw = min(18.0, (width - 4) / max(1, len(pods)) - 1.5)
        for j, p in enumerate(pods):
            px = x0 + 2 + j * (pw + 1.5) + (width - 4 - len(pods) * (pw + 1.5) + 1.5) / 2
            boxes[(p.name, "eth0")] = (px, 64, pw, 9)
            boxes[(n.name, p.veth)] = (px, 53, pw, 5)
        boxes[(n.name, "docker0")] = (x0 + 3, 41, width - 6, 6)
        boxes[(n.name, sc.flannel.device)] = (x0 + 3, 26, width - 6, 7)
        boxes[(n.name, n.nic.name)] = (x0 + 3, 8, width - 6, 7)
    return order[:2], nodes, boxes


def _pod_label(p, width: float) -> str:
    """A pod box's text: name, address, MTU; shorter when many replicas share the row."""
    if width >= 15:
        return f"pod {p.name}\neth0 {p.ip}\nMTU {p.mtu}"
    if width >= 11:
        return f"{p.name}\n{p.ip}\nMTU {p.mtu}"
    return f"{p.name.rsplit('-', 1)[-1]}\n.{str(p.ip).rsplit('.', 1)[1]}"


def topology(sc, ax=None, title: str | None = None):
    """Both nodes with pods, ``eth0``/veth/``docker0``/``flannel.1``/``enp4s0``, the Service and the wire.

    ``sc``: anything :func:`~coursekit.scenario.as_scenario` accepts.

    Taught in: 00-the-scenario.
    """
    from .scenario import as_scenario
    sc = as_scenario(sc)
    fig = None
    if ax is None:
        fig = _figure(10, 6.2)
        ax = fig.add_axes((0, 0, 1, 0.94))
    order, nodes, boxes = _layout(sc)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 96)
    ax.axis("off")
    ax.set_xticks([])                     # never drawn (axis off); matplotlib would still lay out a tick per
    ax.set_yticks([])                     # number while it places the title, a fifth of the drawing time
    dev = sc.flannel.device
    for n in order:
        x0, y0, w, h = nodes[n.name]
        ax.add_patch(Rectangle((x0, y0), w, h, facecolor="#fbfbfb", edgecolor="#888888", linewidth=1.2))
        ax.text(x0 + 1, y0 + h - 2.5, _figure_text(f"node {n.name}"), fontsize=10, weight="bold", va="top")
        ax.text(x0 + w - 1, y0 + h - 2.5, _figure_text(f"pod subnet {n.subnet}"), fontsize=9, va="top", ha="right")
        for p in sc.pods_on(n.name):
            _box(ax, *boxes[(p.name, "eth0")], _pod_label(p, boxes[(p.name, "eth0")][2]), _IFACE["eth0"], fontsize=9)
            bx, by, bw, bh = boxes[(n.name, p.veth)]
            _box(ax, bx, by, bw, bh, p.veth if bw >= 11 else p.veth[-4:], _IFACE["veth"], fontsize=9)
            ex, ey, ew, eh = boxes[(p.name, "eth0")]
            ax.plot([bx + bw / 2, bx + bw / 2], [by + bh + 0.3, ey - 0.3], color="#444444", lw=1)
            ax.plot([bx + bw / 2, bx + bw / 2], [47.3, by - 0.3], color="#444444", lw=1)
        _box(ax, *boxes[(n.name, "docker0")], f"docker0 (bridge)  {n.docker.bridge_ip}/{n.subnet.prefixlen}"
             f"  MTU {n.docker.mtu}", _IFACE["docker0"])
        _box(ax, *boxes[(n.name, dev)], f"{dev} (VXLAN, VNI {sc.flannel.vni}, UDP {sc.flannel.port})\n"
             f"{n.vtep_ip}/32  MTU {sc.mtu_of(n.name, dev)}", _IFACE["flannel.1"])
        _box(ax, *boxes[(n.name, n.nic.name)], f"{n.nic.name}  {n.nic.ip}/{n.nic.network.prefixlen}  MTU {n.nic.mtu}",
             _IFACE["nic"])
        ax.text(x0 + w / 2, 37, _figure_text("routing + netfilter (kube-proxy, Docker nat)"), ha="center", fontsize=9,
                style="italic", color="#555555")
        ax.text(x0 + w / 2, 21, _figure_text("the kernel's VXLAN driver encapsulates"), ha="center", fontsize=9,
                style="italic", color="#555555")
    # the wire
    a = boxes[(order[0].name, order[0].nic.name)]
    b = boxes[(order[1].name, order[1].nic.name)]
    ax.plot([a[0] + a[2] / 2, a[0] + a[2] / 2, b[0] + b[2] / 2, b[0] + b[2] / 2], [8, 4.5, 4.5, 8],
            color="#2ca02c", lw=2.5)
    # in the gap between the nodes, clear of the wire and of the hop arrows that cross below
    ax.text(50, 15, f"underlay\n{order[0].nic.network.network_address}\n/{order[0].nic.network.prefixlen}",
            ha="center", va="center", fontsize=9, color="#1b7a1b", linespacing=1.3)
    if sc.case.via_service:
        svc = sc.service(sc.request.service)
        port = sc.service_port
        eps = ", ".join(str(p.ip) for p in sc.endpoints(svc))
        _box(ax, 24, 87, 52, 6, f"Service {svc.name}  {svc.cluster_ip}:{port.port} -> targetPort {port.target_port}"
             f"\nendpoints {eps}  (iptables nat on every node)", "#fff7bc", dashed=True, fontsize=9)
        via = f"Service {svc.name}"
    else:                                   # a request to an address, not to a Service
        via = f"{sc.request.ip}:{sc.request.port}"
    ax.set_title(_figure_text(title) if title is not None else f"{sc.name}: {sc.client.name} -> {via} -> {sc.server.name}",
                 fontsize=11)
    return fig if fig is not None else ax.figure


def _centre(box, side: float = 0.0):
    x, y, w, h = box
    return x + w / 2 + side, y + h / 2


def walk_diagram(sc, walk=None, flow: str = "both", segment: int | None = None):
    """The hops of the request (red) and the reply (blue), numbered along their paths.

    ``segment`` picks which segments' paths to draw (default: the first of each flow).

    Taught in: 05-the-service, 06-the-whole-walk.
    """
    from .datapath import Walk, walk as _walk
    from .errors import CourseError
    from .scenario import as_scenario
    sc = as_scenario(sc)
    if walk is not None and not isinstance(walk, Walk):
        raise CourseError("walk", f"a value of type {type(walk).__name__} is not a Walk", "None or ck.walk(scenario)")
    if flow not in ("both", "request", "reply"):
        raise CourseError("flow", f"{flow!r} is not a direction", "both, request, reply")
    w = walk if walk is not None else _walk(sc)
    if segment is not None:
        w.path(segment)                      # refuses a string or an out-of-range segment, naming the range
    fig = topology(sc, title=_WALK_TITLE.format(name=sc.name))
    _draw_paths(fig.axes[0], sc, w, flow, segment)
    return fig


_WALK_TITLE = "{name}: the request (red) and the reply (blue), hop by hop"


def _draw_paths(ax, sc, w, flow, segment) -> None:
    """The request's and the reply's hops on a drawn topology: numbered markers, arrows between them."""
    _, _, boxes = _layout(sc)
    flows = ["request", "reply"] if flow == "both" else [flow]
    for fl in flows:
        segs = [s for s in range(len(w.segments)) if any(o.flow == fl and o.segment == s for o in w.observations)]
        if not segs:
            continue
        seg = segment if segment is not None and segment in segs else segs[0]
        path = w.path(seg)
        colour, left = (_REQ, True) if fl == "request" else (_REP, False)
        pts = []
        for o in path:
            if (o.node, o.iface) not in boxes:     # an external host's interface: off the two-node picture
                continue
            x, y, bw, bh = boxes[(o.node, o.iface)]
            if bw < 21:     # a pod or veth box: on its own corner, never beside it (a neighbour's place);
                # a veth's on its lower corner, so the line down to docker0 passes under its neighbours
                pts.append((x if left else x + bw, y + bh if o.iface == "eth0" else y))
                continue
            px = x + 1.8 if left else x + bw - 1.8     # a wide interface box: inside its edge, clear of the text
            pts.append((px, y + bh / 2))
        for (x1, y1), (x2, y2) in zip(pts, pts[1:]):
            if (x1, y1) != (x2, y2):
                rad = 0.0 if y1 != y2 else (0.1 if x2 > x1 else -0.18)
                ax.annotate("", xy=(x2, y2), xytext=(x1, y1),
                            arrowprops=dict(arrowstyle="->", color=colour, lw=1.4, alpha=0.85,
                                            connectionstyle=f"arc3,rad={rad}", shrinkA=6, shrinkB=6))
        for i, (x, y) in enumerate(pts, 1):
            ax.text(x, y, str(i), ha="center", va="center", fontsize=9, color="white", weight="bold",
                    bbox=dict(boxstyle="circle,pad=0.2", facecolor=colour, edgecolor="none"))


class _SvgAxes:
    """Just enough of a matplotlib Axes for :func:`topology` and :func:`_draw_paths`, written as plain SVG.

    The same drawing code, so the explorer's picture is the notebook's, without matplotlib's text
    layout (about a second on a busy machine, a few milliseconds here).  Units are points, as in
    :func:`figure_svg`, for a 10 x 6.2 inch figure whose axes fill the lower 94 %.
    """

    W, H, TOP = 720.0, 446.4, 0.94

    def __init__(self):
        self.out: list[str] = []
        self.figure = self
        self.xlim, self.ylim = (0.0, 1.0), (0.0, 1.0)
        self.title = ("", 11)

    def set_xlim(self, a, b):
        self.xlim = (a, b)

    def set_ylim(self, a, b):
        self.ylim = (a, b)

    def axis(self, _):
        pass

    def set_xticks(self, _):
        pass

    def set_yticks(self, _):
        pass

    def set_title(self, text, fontsize=11):
        self.title = (text, fontsize)

    def X(self, x):
        return (x - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * self.W

    def Y(self, y):
        return self.H - (y - self.ylim[0]) / (self.ylim[1] - self.ylim[0]) * self.H * self.TOP

    @staticmethod
    def _colour(c):
        from matplotlib.colors import to_hex
        return to_hex(c)

    def add_patch(self, p):
        x, y, w, h = p.get_x(), p.get_y(), p.get_width(), p.get_height()
        pad, rx = 0.0, 0.0
        if isinstance(p, FancyBboxPatch):
            pad = p.get_boxstyle().pad
            rx = pad * self.W / (self.xlim[1] - self.xlim[0])
        dash = ' stroke-dasharray="4 2"' if p.get_linestyle() in ("--", "dashed") else ""
        x0, y0 = self.X(x - pad), self.Y(y + h + pad)
        self.out.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{self.X(x + w + pad) - x0:.1f}" '
                        f'height="{self.Y(y - pad) - y0:.1f}" rx="{rx:.1f}" fill="{self._colour(p.get_facecolor())}" '
                        f'stroke="{self._colour(p.get_edgecolor())}" stroke-width="{p.get_linewidth():g}"{dash}/>')

    def plot(self, xs, ys, color="#000000", lw=1.0):
        pts = " ".join(f"{self.X(x):.1f},{self.Y(y):.1f}" for x, y in zip(xs, ys))
        self.out.append(f'<polyline points="{pts}" fill="none" stroke="{self._colour(color)}" stroke-width="{lw:g}"/>')

    def text(self, x, y, s, ha="left", va="baseline", fontsize=10, weight="normal", style="normal",
             color="#000000", linespacing=1.2, bbox=None):
        import html as _html
        lines = str(s).split("\n")
        block = (len(lines) - 1) * fontsize * linespacing + fontsize
        top = {"center": self.Y(y) - block / 2, "top": self.Y(y), "bottom": self.Y(y) - block}.get(va, self.Y(y) - block)
        if bbox is not None:                     # a hop marker: a disc behind the number
            r = max(0.6 * fontsize, 0.32 * fontsize * len(str(s))) + bbox.get("pad", 0.2) * fontsize
            if "boxstyle" in bbox:
                r += float(str(bbox["boxstyle"]).split("pad=")[-1]) * fontsize - 0.2 * fontsize
            self.out.append(f'<circle cx="{self.X(x):.1f}" cy="{self.Y(y):.1f}" r="{r:.1f}" '
                            f'fill="{self._colour(bbox.get("facecolor", "#ffffff"))}"/>')
        anchor = {"center": "middle", "left": "start", "right": "end"}[ha]
        spans = "".join(f'<tspan x="{self.X(x):.1f}" y="{top + 0.78 * fontsize + k * fontsize * linespacing:.1f}">'
                        f"{_html.escape(line).replace('  ', chr(0xa0) + ' ')}</tspan>"    # SVG collapses spaces
                        for k, line in enumerate(lines))
        extra = (' font-weight="bold"' if weight == "bold" else "") + (' font-style="italic"' if style == "italic" else "")
        self.out.append(f'<text text-anchor="{anchor}" font-size="{fontsize:g}" fill="{self._colour(color)}"'
                        f"{extra}>{spans}</text>")

    def annotate(self, _text, xy, xytext, arrowprops):
        import math
        (x1, y1), (x2, y2) = (self.X(xytext[0]), -self.Y(xytext[1])), (self.X(xy[0]), -self.Y(xy[1]))
        rad = float(arrowprops.get("connectionstyle", "arc3,rad=0").split("rad=")[-1])
        cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)     # matplotlib's arc3

        def toward(ax_, ay, bx, by, d):
            n = math.hypot(bx - ax_, by - ay) or 1.0
            return ax_ + (bx - ax_) * d / n, ay + (by - ay) * d / n
        x1, y1 = toward(x1, y1, cx, cy, arrowprops.get("shrinkA", 2))
        x2, y2 = toward(x2, y2, cx, cy, arrowprops.get("shrinkB", 2))
        colour = self._colour(arrowprops.get("color", "#000000"))
        lw, alpha = arrowprops.get("lw", 1.0), arrowprops.get("alpha", 1.0)
        ang = math.atan2(y2 - cy, x2 - cx) if (cx, cy) != (x2, y2) else math.atan2(y2 - y1, x2 - x1)
        head = [(x2 - 5 * math.cos(ang + s), y2 - 5 * math.sin(ang + s)) for s in (0.45, -0.45)]
        d = (f"M{x1:.1f},{-y1:.1f} Q{cx:.1f},{-cy:.1f} {x2:.1f},{-y2:.1f} "
             f"M{head[0][0]:.1f},{-head[0][1]:.1f} L{x2:.1f},{-y2:.1f} L{head[1][0]:.1f},{-head[1][1]:.1f}")
        self.out.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="{lw:g}" '
                        f'stroke-opacity="{alpha:g}"/>')

    def svg(self) -> str:
        import html as _html
        text, size = self.title
        title = (f'<text x="{self.W / 2:.1f}" y="{self.H * (1 - self.TOP) - 6:.1f}" text-anchor="middle" '
                 f'font-size="{size:g}">{_html.escape(text)}</text>')
        return (f'<svg style="min-width:{self.W:g}pt" xmlns="http://www.w3.org/2000/svg" width="{self.W:g}pt" '
                f'height="{self.H:g}pt" viewBox="0 0 {self.W:g} {self.H:g}" role="img" '
                f'font-family="DejaVu Sans, Bitstream Vera Sans, Verdana, sans-serif">'
                f'<rect width="{self.W:g}" height="{self.H:g}" fill="#ffffff"/>{title}{"".join(self.out)}</svg>')


def walk_svg(sc, walk=None, flow: str = "both", segment: int | None = None) -> str:
    """:func:`walk_diagram`'s picture as inline SVG, drawn by the same code without matplotlib's renderer.

    Milliseconds instead of most of a second: the explorer's diagram tab.  A light card in
    both themes, its natural width a CSS minimum (it scrolls rather than shrink its 9 pt text).

    Taught in: every chapter's explorer (the diagram tab).
    """
    from .datapath import walk as _walk
    from .scenario import as_scenario
    from .datapath import Walk
    from .errors import CourseError
    sc = as_scenario(sc)
    if walk is not None and not isinstance(walk, Walk):
        raise CourseError("walk", f"a {type(walk).__name__} is not a walk", "ck.walk(scenario), or None")
    w = walk if walk is not None else _walk(sc)
    ax = _SvgAxes()
    topology(sc, ax=ax, title=_WALK_TITLE.format(name=sc.name))
    _draw_paths(ax, sc, w, flow, segment)
    return ax.svg()


def drop_diagram(sc, walk=None):
    """The request's path (red) up to where the kernel dropped it, the drop marked with a cross and its reason.

    A healthy walk draws as :func:`walk_diagram` does (the request only).

    Taught in: 09-when-it-breaks.
    """
    from .datapath import walk as _walk
    from .scenario import as_scenario
    sc = as_scenario(sc)
    w = walk if walk is not None else _walk(sc)
    fig = walk_diagram(sc, w, flow="request", segment=0)
    ax = fig.axes[0]
    drops = [d for d in w.drops if d.segment == 0]
    if not drops:
        ax.set_title(_figure_text(f"{sc.name}: the request reaches its socket"), fontsize=10)
        return fig
    d = drops[0]
    _, _, boxes = _layout(sc)
    where = boxes.get((d.node, d.iface))
    if where is None:                       # a socket or a device off the picture: the sender's own box
        where = boxes.get((w.path(0)[-1].node, w.path(0)[-1].iface)) if w.path(0) else None
    if where is not None:
        x, y, bw, bh = where
        ax.text(x + bw - 2.5, y + bh / 2, "\u2718", ha="center", va="center", fontsize=26, color=_REQ,
                weight="bold", zorder=10)
    reason = d.reason if len(d.reason) <= 90 else d.reason[:87] + "..."
    ax.set_title(_figure_text(f"{sc.name}: dropped at {d.node} {d.iface}\n{reason}"), fontsize=10)
    return fig


def hop_map_svg(sc, walk, at, width: int = 640) -> str:
    """A small map of every interface as inline SVG, the hop ``at`` (an Observation) highlighted.

    Plain SVG without matplotlib (a millisecond, not 70), coloured by the
    explorer's CSS variables (``--pw-*``), with fallbacks for a plain page.

    Taught in: 06-the-whole-walk (the stepper).
    """
    import html as _html
    _, nodes, boxes = _layout(sc)
    top, bottom = 84.0, 2.0
    sx, sy = width / 100.0, 3.0
    height = int((top - bottom) * sy) + 4

    def X(x):
        return round(x * sx, 1)

    def Y(y):
        return round((top - y) * sy + 2, 1)

    path = [(o.node, o.iface) for o in walk.path(at.segment)] if at.segment >= 0 else []
    colour = "var(--pw-request,#b71c1c)" if at.flow == "request" else "var(--pw-reply,#0d47a1)"
    out = [f'<svg class="pw-hopmap" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="the hop on the cluster map" '
           f'style="font-family:var(--jp-ui-font-family,sans-serif);font-size:12px">']
    for name, (x, y, w, h) in nodes.items():
        out.append(f'<rect x="{X(x)}" y="{Y(min(y + h, top))}" width="{X(w)}" height="{round((min(y + h, top) - y) * sy, 1)}" '
                   f'fill="none" stroke="var(--pw-muted,#595959)" stroke-dasharray="4 3"/>'
                   f'<text x="{X(x + 1)}" y="{Y(min(y + h, top)) + 13}" fill="var(--pw-text,#1f1f1f)" '
                   f'font-weight="bold">node {_html.escape(name)}</text>')
    pts = [boxes[k] for k in path if k in boxes]
    if len(pts) > 1:
        line = " ".join(f"{X(x + w / 2)},{Y(y + h / 2)}" for x, y, w, h in pts)
        out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5" '
                   f'stroke-dasharray="5 3" opacity="0.8"/>')
    for (owner, iface), (x, y, w, h) in boxes.items():
        here = (owner, iface) == (at.node, at.iface)
        label = f"{owner} {iface}" if iface == "eth0" else iface
        room = X(w) - 6                      # 12 px text: about 7 px a character; shorter where it would not fit
        if len(label) * 7 > room:
            label = owner if iface == "eth0" else iface
        if len(label) * 7 > room:
            label = (owner.rsplit("-", 1)[-1] if iface == "eth0" else iface[-4:])
        fill = "var(--pw-selected-bg,#cfe3ff)" if here else "var(--pw-text-bg,#ffffff)"
        stroke = "var(--pw-selected,#0b1f3a)" if here else "var(--pw-muted,#595959)"
        text = "var(--pw-selected,#0b1f3a)" if here else "var(--pw-text,#1f1f1f)"
        cls = "pw-map-box pw-map-here" if here else "pw-map-box"
        bold = ' font-weight="bold"' if here else ""
        out.append(f'<g class="{cls}" data-where="{_html.escape(owner)} {_html.escape(iface)}">'
                   f'<title>{_html.escape(owner)} {_html.escape(iface)}</title>'
                   f'<rect x="{X(x)}" y="{Y(y + h)}" width="{X(w)}" height="{round(h * sy, 1)}" rx="3" fill="{fill}" '
                   f'stroke="{stroke}" stroke-width="{3 if here else 1}"/>'
                   f'<text x="{X(x + w / 2)}" y="{Y(y + h / 2) + 4}" text-anchor="middle" fill="{text}"'
                   f'{bold}>{_html.escape(label)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def _tcp_label(frame: bytes, isn: dict) -> tuple[str, str, str]:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    p = Ether(frame)
    if not p.haslayer(TCP):
        return "", "", p.summary()
    ip, tcp = p[TCP].underlayer, p[TCP]
    if not isinstance(ip, IP):
        ip = p[IP]
    key = (ip.src, tcp.sport)
    flags = str(tcp.flags)
    if "S" in flags:
        isn[key] = tcp.seq
    rel = tcp.seq - isn.get(key, tcp.seq)
    peer = (ip.dst, tcp.dport)
    ack = (tcp.ack - isn[peer]) if "A" in flags and peer in isn else tcp.ack
    n = len(tcp.payload)
    text = f"[{flags}] seq {rel % (1 << 32)}" + (f":{(rel + n) % (1 << 32)}" if n else "")
    if "A" in flags:
        text += f" ack {ack % (1 << 32)}"
    text += f" win {tcp.window}" + (f" len {n}" if n else "")
    if n and bytes(tcp.payload)[:4] in (b"GET ", b"HTTP"):
        text += "  " + bytes(tcp.payload).split(b"\r\n", 1)[0].decode("latin-1")
    return f"{ip.src}:{tcp.sport}", f"{ip.dst}:{tcp.dport}", text


def timeline(frames, title: str = ""):
    """A sequence diagram of the TCP conversation in ``frames`` (a capture or ``walk.at(...)``).

    Left is whoever sent the first frame, right its peer; sequence numbers are
    relative to each side's SYN, as tcpdump prints them.

    Taught in: 06-the-whole-walk.
    """
    from .errors import CourseError
    if isinstance(frames, (str, bytes)) or not hasattr(frames, "__iter__"):
        raise CourseError("frames", f"a {type(frames).__name__} is not a list of frames",
                          "a capture or walk.at(node, interface)")
    frames = list(frames)
    datas = [frame_bytes(f) for f in frames]
    times = [getattr(f, "time_us", None) for f in frames]
    isn: dict = {}
    rows = [_tcp_label(d, isn) for d in datas]
    ends = []
    for s, d, _ in rows:
        for e in (s, d):
            if e and e not in ends:
                ends.append(e)
    left, right = (ends + ["", ""])[:2]
    fig = _figure(10, 0.42 * len(rows) + 1.3)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96 - 0.5 / (0.42 * len(rows) + 1.3)))
    n = len(rows)
    ax.set_xlim(0, 100)
    ax.set_ylim(n + 0.5, -0.9)
    ax.axis("off")
    ax.plot([12, 12], [-0.3, n], color="#444444", lw=1)
    ax.plot([88, 88], [-0.3, n], color="#444444", lw=1)
    ax.text(12, -0.6, left, ha="center", fontsize=9, weight="bold")
    ax.text(88, -0.6, right, ha="center", fontsize=9, weight="bold")
    t0 = next((t for t in times if t is not None), None)
    for i, (s, d, text) in enumerate(rows):
        y = i + 0.5
        fwd = s == left
        x1, x2 = (12, 88) if fwd else (88, 12)
        colour = _REQ if fwd else _REP
        ax.annotate("", xy=(x2, y + 0.25), xytext=(x1, y - 0.15),
                    arrowprops=dict(arrowstyle="->", color=colour, lw=1.2))
        ax.text(50, y - 0.12, text, ha="center", va="bottom", fontsize=9, color=colour,
                bbox=dict(facecolor="white", edgecolor="none", pad=0.5))
        if t0 is not None and times[i] is not None:
            ax.text(1, y, f"+{(times[i] - t0) / 1000:.3f} ms", fontsize=9, va="center", color="#555555")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def encapsulation(frame, title: str = ""):
    """The frame as stacked layers with their sizes; a VXLAN frame's inner frame is expanded below.

    Taught in: 01-physical-nic.
    """
    layers = dissect(frame)
    total = len(frame_bytes(frame))
    fig = _figure(10, 2.8)
    ax = fig.add_axes((0.01, 0.02, 0.98, 0.84))
    ax.set_xlim(0, total)
    ax.set_ylim(0, 10)
    ax.axis("off")
    outer = [ly for ly in layers if not ly.inner]
    inner = [ly for ly in layers if ly.inner]

    def row(lys, y, h):
        for ly in lys:
            ax.add_patch(Rectangle((ly.offset, y), ly.length, h, facecolor=LAYER_COLOURS.get(ly.key, "#eeeeee"),
                                   edgecolor="#333333", linewidth=1))
            wide = ly.length >= 0.05 * total
            # a narrow layer's label turns 90 degrees; its row already says outer or inner
            label = f"{ly.key}\n{ly.length} B".replace("outer ", "outer\n" if wide else "")
            ax.text(ly.offset + ly.length / 2, y + h / 2, label, ha="center", va="center",
                    fontsize=9, rotation=0 if wide else 90)

    if inner:
        row(outer, 6, 3)
        start = inner[0].offset
        ax.add_patch(Rectangle((start, 6), total - start, 3, facecolor="#ffffff", edgecolor="#333333",
                               linewidth=1, hatch="//"))
        ax.text(start + (total - start) / 2, 7.5, _figure_text(f"inner frame, {total - start} B (as the sending VTEP encapsulated it)"),
                ha="center", va="center", fontsize=9, bbox=dict(facecolor="white", edgecolor="none"))
        ax.plot([start, start], [6, 4], color="#888888", lw=0.8, ls=":")
        ax.plot([total, total], [6, 4], color="#888888", lw=0.8, ls=":")
        row(inner, 1, 3)
        overhead = start
        ax.text(overhead / 2, 9.6, _figure_text(f"+{overhead} bytes of encapsulation"), ha="center", fontsize=9, weight="bold")
    else:
        row(outer, 4, 3)
    fig.suptitle(_figure_text(title or f"{total}-byte frame, layer by layer"), fontsize=10)
    return fig


def byte_map(frame, title: str = "", width: int = 16):
    """Every byte of the frame in hex, coloured by the layer it belongs to.

    Taught in: 01-physical-nic.
    """
    data = frame_bytes(frame)
    layers = dissect(data)
    rows = (len(data) + width - 1) // width
    fig = _figure(10, 0.28 * rows + 1.2)
    ax = fig.add_axes((0.06, 0.02, 0.70, 0.98 - 0.6 / (0.28 * rows + 1.2)))
    ax.set_xlim(0, width)
    ax.set_ylim(rows, 0)
    ax.axis("off")
    owner = [None] * len(data)
    for ly in layers:
        for i in range(ly.offset, min(ly.end, len(data))):
            owner[i] = ly.key
    for i, b in enumerate(data):
        r, c = divmod(i, width)
        ax.add_patch(Rectangle((c, r), 1, 1, facecolor=LAYER_COLOURS.get(owner[i], "#eeeeee"),
                               edgecolor="white", linewidth=0.6))
        ax.text(c + 0.5, r + 0.55, f"{b:02x}", ha="center", va="center", fontsize=9, family="monospace")
    for r in range(rows):
        ax.text(-0.2, r + 0.55, f"{r * width:04x}", ha="right", va="center", fontsize=9, family="monospace")
    seen = []
    for ly in layers:
        if ly.key not in [s[0] for s in seen]:
            seen.append((ly.key, ly))
    lx = fig.add_axes((0.78, 0.02, 0.21, 0.9))
    lx.axis("off")
    lx.set_xlim(0, 1)
    lx.set_ylim(len(seen) + 0.5, -0.5)
    for k, (key, ly) in enumerate(seen):
        lx.add_patch(Rectangle((0, k - 0.35), 0.12, 0.7, facecolor=LAYER_COLOURS.get(key, "#eeeeee"),
                               edgecolor="#333333", linewidth=0.6))
        lx.text(0.16, k, f"{key} [{ly.offset}:{ly.end}]", va="center", fontsize=9)
    fig.suptitle(_figure_text(title or f"{len(data)} bytes, coloured by layer"), fontsize=10)
    return fig


_HOOK, _TAP, _BRIDGE = "#fff2cc", "#fde0dd", "#deebf7"


def hook_order(ingress: str = "enp4s0", egress: str = "flannel.1", bridge: str | None = None,
               br_netfilter: bool = True, title: str = ""):
    """netfilter's IPv4 hooks for a packet that arrives on ``ingress`` and leaves by ``egress``.

    Each hook lists its tables in priority order (``NF_IP_PRI_*``: raw -300,
    conntrack -200, mangle -150, nat DNAT -100, filter 0, security 50, nat
    SNAT 100).  The red boxes are where ``tcpdump -i <dev>`` sees the frame:
    on the way in, the AF_PACKET tap runs in ``__netif_receive_skb_core``
    before the bridge's rx_handler and before ``ip_rcv`` (so before
    PREROUTING); on the way out, ``dev_queue_xmit_nit`` runs in
    ``dev_hard_start_xmit``, after POSTROUTING and the qdisc.  With a
    ``bridge`` (``ingress`` is then one of its ports), br_netfilter
    (``net.bridge.bridge-nf-call-iptables = 1``) runs iptables PREROUTING
    inside the bridge, *before* the bridge device's own tap; without it,
    PREROUTING runs after that tap, in ``ip_rcv``.

    Taught in: 03-docker0, 05-the-service, 06-the-whole-walk.
    """
    from .netfilter import hook_order as tables

    HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")

    def hook_text(hook):
        return hook + "\n" + "\n".join(f"{t} {p}" if p < 10**6 else t for t, p in tables(hook))

    first = [("in", f"frame arrives\non {ingress}", "#ffffff"),
             ("tap", f"tcpdump -i\n{ingress}\nsees it here", _TAP)]
    if bridge and br_netfilter:
        first += [("bridge", f"bridge {bridge}\n(frame for its MAC:\nup to the host)\nbr_netfilter runs\n"
                             "PREROUTING here", _BRIDGE),
                  ("PREROUTING", hook_text("PREROUTING"), _HOOK),
                  ("tap", f"tcpdump -i\n{bridge}\nsees it here\n(ip_rcv skips\nPREROUTING now)", _TAP)]
    elif bridge:
        first += [("bridge", f"bridge {bridge}\n(frame for its MAC:\nup to the host)\nno br_netfilter", _BRIDGE),
                  ("tap", f"tcpdump -i\n{bridge}\nsees it here", _TAP),
                  ("PREROUTING", hook_text("PREROUTING"), _HOOK)]
    else:
        first += [("PREROUTING", hook_text("PREROUTING"), _HOOK)]
    # Three rows read like lines of text, so 9 pt labels fit a notebook's width: the way in; then
    # routing and the forwarded path out; under them the local branch (INPUT, a socket, OUTPUT).
    second = [("route", "routing\ndecision", "#eeeeee"), ("FORWARD", hook_text("FORWARD"), _HOOK),
              ("POSTROUTING", hook_text("POSTROUTING"), _HOOK),
              ("tap", f"tcpdump -i\n{egress}\nsees it here\n(after the qdisc)", _TAP),
              ("out", f"frame leaves\nby {egress}", "#ffffff")]
    third = [("INPUT", hook_text("INPUT"), _HOOK), ("socket", "a local socket\n(this host)", "#ffffff"),
             ("OUTPUT", hook_text("OUTPUT"), _HOOK)]
    note = textwrap.fill("Each hook runs its tables in priority order (lower first; NF_IP_PRI_* in netfilter_ipv4.h); "
                         "nat chains see a connection's first packet only, conntrack rewrites the rest.", 118) + "\n" + \
        textwrap.fill("Red, dashed: where tcpdump's AF_PACKET tap copies the frame (net/core/dev.c): on the way in "
                      "before the bridge and before ip_rcv's PREROUTING, on the way out after POSTROUTING.", 118)
    # units of 0.1 inch both ways; a text line at 9 pt is 1.5 units
    cols, w, gap, left = 5, 16.6, 2.75, 2.6
    def height(row):
        return 1.55 * max(t.count("\n") + 1 for _, t, _ in row) + 1.6
    heights = [height(first), height(second), height(third)]
    rowgap, title_h, note_h = 5.5, 5.0, 1.55 * (note.count("\n") + 1) + 2.5
    total = title_h + sum(heights) + 2 * rowgap + note_h
    fig = _figure(10, total / 10)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, total)
    ax.axis("off")
    tops = [total - title_h]
    tops += [tops[0] - heights[0] - rowgap, tops[0] - heights[0] - heights[1] - 2 * rowgap]
    arrow = dict(arrowstyle="->", color="#444444", lw=1)
    x_of = {}

    def row(boxes, r, gid, start=0):
        h = heights[r]
        y = tops[r] - h
        for i, (key, text, colour) in enumerate(boxes):
            x = left + i * (w + gap)
            x_of.setdefault((r, key), x)
            _box(ax, x, y, w, h, text, colour, dashed=key == "tap", fontsize=9,
                 weight="bold" if key in HOOKS else "normal")
            ax.texts[-1].set_gid(f"{gid}-{start + i}")      # the reading order, for a test
            if i:
                ax.annotate("", (x - 0.45, y + h / 2), (x - gap + 0.45, y + h / 2), arrowprops=arrow)
        return y, h

    y1, h1 = row(first, 0, "path")
    y2, h2 = row(second, 1, "path", len(first))
    y3, h3 = row(third, 2, "local")
    # the line break of the way in: down from its last box, back left, down into routing
    xl = left + (len(first) - 1) * (w + gap) + w / 2
    xr = left + w / 2
    ym = y1 - 1.3
    ax.plot([xl, xl, xr], [y1 - 0.5, ym, ym], color="#444444", lw=1)
    ax.annotate("", (xr, y2 + h2 + 0.5), (xr, ym), arrowprops=arrow)
    ax.text(left + (w + gap) + w / 2, y2 + h2 + 1.3, _figure_text("not for this host: forwarded"), ha="center", va="bottom",
            fontsize=9)
    # the local branch: routing -> INPUT -> socket -> OUTPUT -> (routing) -> POSTROUTING
    ax.annotate("", (xr, y3 + h3 + 0.5), (xr, y2 - 0.5), arrowprops=arrow)
    ax.text(xr + 0.8, (y2 + y3 + h3) / 2, _figure_text("for this host"), fontsize=9, va="center")
    xp = left + 2 * (w + gap) + w / 2
    ax.annotate("", (xp, y2 - 0.5), (xp, y3 + h3 + 0.5), arrowprops=arrow)
    ax.text(xp + 0.8, (y2 + y3 + h3) / 2, _figure_text("routed"), fontsize=9, va="center")
    ax.text(50, total - title_h / 2, title or f"netfilter hook order: in by {ingress}"
            + (f" (a port of {bridge}" + (", br_netfilter on)" if br_netfilter else ", br_netfilter off)")
               if bridge else "") + f", out by {egress}", ha="center", va="center", fontsize=11)
    ax.text(left, 0.8, note, ha="left", va="bottom", fontsize=9, color="#444444", linespacing=1.25)
    return fig
