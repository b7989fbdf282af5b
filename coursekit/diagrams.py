"""Pictures: pure functions of a scenario, a walk or a frame that return a matplotlib Figure.

* :func:`topology` -- both nodes, their pods and every interface with its address.
* :func:`walk_diagram` -- the request's and the reply's hops, numbered, on the topology
  (:func:`walk_svg`: the same picture as plain SVG, for the explorer's diagram tab).
* :func:`timeline` -- the TCP conversation as one interface sees it (a sequence diagram).
* :func:`encapsulation` -- the VXLAN frame as stacked layers with their sizes.
* :func:`byte_map` -- a real frame's bytes, coloured by layer (the dissection as a picture).
* :func:`hook_order` -- netfilter's hooks and tables in order, where br_netfilter calls in and
  where tcpdump's taps sit.

Every figure is built from data alone: no wall clock, no random ids, fonts
bundled with matplotlib (DejaVu), so the same scenario draws the same picture.
Figures are closed in pyplot before they are returned, so a notebook shows
each once.

Taught in: 00-the-scenario (topology), 01-physical-nic (encapsulation, byte
map), 03-docker0 (hook order), 05-the-service (walk, hook order),
06-the-whole-walk (walk, timeline).
"""

from __future__ import annotations

import matplotlib

matplotlib.rcParams["svg.hashsalt"] = "packet-walk"     # stable ids if a figure is saved as SVG
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch, Rectangle  # noqa: E402

from .dissect import dissect, frame_bytes  # noqa: E402

__all__ = ["topology", "walk_diagram", "timeline", "encapsulation", "byte_map", "hop_map_svg", "hook_order",
           "LAYER_COLOURS"]

# One colour per protocol; outer layers are the same hue, lighter.
LAYER_COLOURS = {
    "Ethernet": "#9ecae1", "IPv4": "#a1d99b", "UDP": "#fdd0a2", "TCP": "#fdae6b", "VXLAN": "#bcbddc",
    "HTTP": "#fcbba1", "Data": "#d9d9d9", "ARP": "#c7e9c0", "ICMP": "#c6dbef", "Padding": "#f0f0f0",
    "outer Ethernet": "#deebf7", "outer IPv4": "#e5f5e0", "outer UDP": "#feedde",
}
_IFACE = {"eth0": "#ffffff", "veth": "#f7f7f7", "docker0": "#9ecae1", "flannel.1": "#bcbddc", "nic": "#a1d99b"}
_REQ, _REP = "#d62728", "#1f77b4"


def _figure(w: float, h: float):
    fig = plt.figure(figsize=(w, h), dpi=100)
    plt.close(fig)                        # returned, not auto-shown: a notebook displays it once
    return fig


def _box(ax, x, y, w, h, text, colour, *, dashed=False, fontsize=9, weight="normal"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.3", linewidth=1,
                                edgecolor="#444444", facecolor=colour, linestyle="--" if dashed else "-"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, weight=weight)


def _layout(sc):
    """Box positions (x, y, w, h) of every interface, keyed by (node-or-pod, iface)."""
    client, server = sc.client, sc.server
    names = {n.name for n in sc.nodes}        # an external host is not a node; a same-node case has one
    order = []
    for name in (client.node, getattr(sc.request, "node", None), server.node):
        if name in names and all(o.name != name for o in order):
            order.append(sc.node(name))
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
        ax.text(x0 + 1, y0 + h - 2.5, f"node {n.name}", fontsize=10, weight="bold", va="top")
        ax.text(x0 + w - 1, y0 + h - 2.5, f"pod subnet {n.subnet}", fontsize=9, va="top", ha="right")
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
        ax.text(x0 + w / 2, 37, "routing + netfilter (kube-proxy, Docker nat)", ha="center", fontsize=9,
                style="italic", color="#555555")
        ax.text(x0 + w / 2, 21, "the kernel's VXLAN driver encapsulates", ha="center", fontsize=9,
                style="italic", color="#555555")
    # the wire
    a = boxes[(order[0].name, order[0].nic.name)]
    b = boxes[(order[1].name, order[1].nic.name)]
    ax.plot([a[0] + a[2] / 2, a[0] + a[2] / 2, b[0] + b[2] / 2, b[0] + b[2] / 2], [8, 4.5, 4.5, 8],
            color="#2ca02c", lw=2.5)
    # in the gap between the nodes, clear of the wire and of the hop arrows that cross below
    ax.text(50, 15, f"underlay\n{order[0].nic.network.network_address}\n/{order[0].nic.network.prefixlen}",
            ha="center", va="center", fontsize=9, color="#1b7a1b", linespacing=1.3)
    if sc.request.ip is None and sc.request.service:
        svc = sc.service(sc.request.service)
        port = sc.service_port
        eps = ", ".join(str(p.ip) for p in sc.endpoints(svc))
        _box(ax, 24, 87, 52, 6, f"Service {svc.name}  {svc.cluster_ip}:{port.port} -> targetPort {port.target_port}"
             f"\nendpoints {eps}  (iptables nat on every node)", "#fff7bc", dashed=True, fontsize=9)
        via = f"Service {svc.name}"
    else:                                   # a request to an address, not to a Service
        via = f"{sc.request.ip}:{sc.request.port}"
    ax.set_title(title if title is not None else f"{sc.name}: {sc.client.name} -> {via} -> {sc.server.name}",
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
    fig = topology(sc, title=f"{sc.name}: the request (red) and the reply (blue), hop by hop")
    ax = fig.axes[0]
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
           f'style="max-width:100%;height:auto;font-family:var(--jp-ui-font-family,sans-serif);font-size:11px">']
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


__all__ += ["walk_svg"]


def walk_svg(sc, walk=None, title: str | None = None) -> str:
    """:func:`walk_diagram` as plain inline SVG, drawn without matplotlib (for the explorer's diagram tab).

    The same layout (:func:`_layout`), boxes, labels, colours, paths and hop
    numbers as the figure; text stays text.  A few milliseconds instead of a
    matplotlib drawing, so the tab follows a field change at once.

    Taught in: every chapter's explorer (the diagram tab).
    """
    import html as _html
    import math
    from .datapath import Walk, walk as _walk
    from .errors import CourseError
    from .scenario import as_scenario
    sc = as_scenario(sc)
    if walk is not None and not isinstance(walk, Walk):
        raise CourseError("walk", f"a value of type {type(walk).__name__} is not a Walk", "None or ck.walk(scenario)")
    w = walk if walk is not None else _walk(sc)
    order, nodes, boxes = _layout(sc)
    W, H = 1000, 620                       # the figure's 10 x 6.2 inches at 100 dpi
    top = H * 0.06                         # the title's band; the drawing is the axes' 0..100 x 0..96
    sy = (H - top) / 96

    def X(x):
        return round(x * W / 100, 1)

    def Y(y):
        return round(top + (96 - y) * sy, 1)

    def esc(s):
        return _html.escape(str(s))

    out = [f'<svg class="pw-walksvg" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
           f'height="{H}" role="img" aria-label="the walk on the cluster" '
           'style="font-family:DejaVu Sans,Bitstream Vera Sans,sans-serif;background:#ffffff">',
           f'<rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff"/>']

    def text(x, y, s, size=9, anchor="middle", valign="center", weight="normal", style="normal",
             colour="#000000", spacing=1.2):
        lines = str(s).split("\n")
        px = round(size * 100 / 72, 1)
        if valign == "center":
            first = -(len(lines) - 1) / 2 * spacing
        elif valign == "top":
            first = 0.8
        else:
            first = -(len(lines) - 1) * spacing
        spans = "".join(f'<tspan x="{X(x)}" dy="{(first if i == 0 else spacing):.2f}em">{esc(t)}</tspan>'
                        for i, t in enumerate(lines))
        base = ' dominant-baseline="central"' if valign == "center" else ""
        out.append(f'<text y="{Y(y)}" font-size="{px}" text-anchor="{anchor}" font-weight="{weight}" '
                   f'font-style="{style}" fill="{colour}"{base}>{spans}</text>')

    def box(x, y, bw, bh, s, colour, dashed=False):
        pad = 0.3
        dash = ' stroke-dasharray="6 3"' if dashed else ""
        out.append(f'<rect x="{X(x - pad)}" y="{Y(y + bh + pad)}" width="{X(bw + 2 * pad)}" '
                   f'height="{round((bh + 2 * pad) * sy, 1)}" rx="3" fill="{colour}" stroke="#444444" '
                   f'stroke-width="1"{dash}/>')
        text(x + bw / 2, y + bh / 2, s)

    def line(pts, colour="#444444", lw=1.0):
        p = " ".join(f"{X(a)},{Y(b)}" for a, b in pts)
        out.append(f'<polyline points="{p}" fill="none" stroke="{colour}" stroke-width="{lw}"/>')

    dev = sc.flannel.device
    for n in order:
        x0, y0, nw, nh = nodes[n.name]
        out.append(f'<rect x="{X(x0)}" y="{Y(y0 + nh)}" width="{X(nw)}" height="{round(nh * sy, 1)}" '
                   'fill="#fbfbfb" stroke="#888888" stroke-width="1.2"/>')
        text(x0 + 1, y0 + nh - 2.5, f"node {n.name}", size=10, anchor="start", valign="top", weight="bold")
        text(x0 + nw - 1, y0 + nh - 2.5, f"pod subnet {n.subnet}", anchor="end", valign="top")
        for p in sc.pods_on(n.name):
            box(*boxes[(p.name, "eth0")], _pod_label(p, boxes[(p.name, "eth0")][2]), _IFACE["eth0"])
            bx, by, bw, bh = boxes[(n.name, p.veth)]
            box(bx, by, bw, bh, p.veth if bw >= 11 else p.veth[-4:], _IFACE["veth"])
            ey = boxes[(p.name, "eth0")][1]
            line([(bx + bw / 2, by + bh + 0.3), (bx + bw / 2, ey - 0.3)])
            line([(bx + bw / 2, 47.3), (bx + bw / 2, by - 0.3)])
        box(*boxes[(n.name, "docker0")], f"docker0 (bridge)  {n.docker.bridge_ip}/{n.subnet.prefixlen}"
            f"  MTU {n.docker.mtu}", _IFACE["docker0"])
        box(*boxes[(n.name, dev)], f"{dev} (VXLAN, VNI {sc.flannel.vni}, UDP {sc.flannel.port})\n"
            f"{n.vtep_ip}/32  MTU {sc.mtu_of(n.name, dev)}", _IFACE["flannel.1"])
        box(*boxes[(n.name, n.nic.name)], f"{n.nic.name}  {n.nic.ip}/{n.nic.network.prefixlen}  MTU {n.nic.mtu}",
            _IFACE["nic"])
        text(x0 + nw / 2, 37, "routing + netfilter (kube-proxy, Docker nat)", style="italic", colour="#555555",
             valign="bottom")
        text(x0 + nw / 2, 21, "the kernel's VXLAN driver encapsulates", style="italic", colour="#555555",
             valign="bottom")
    if len(order) > 1:
        a = boxes[(order[0].name, order[0].nic.name)]
        b = boxes[(order[1].name, order[1].nic.name)]
        line([(a[0] + a[2] / 2, 8), (a[0] + a[2] / 2, 4.5), (b[0] + b[2] / 2, 4.5), (b[0] + b[2] / 2, 8)],
             "#2ca02c", 2.5)
        text(50, 15, f"underlay\n{order[0].nic.network.network_address}\n/{order[0].nic.network.prefixlen}",
             colour="#1b7a1b", spacing=1.3)
    if sc.request.ip is None and sc.request.service:
        svc = sc.service(sc.request.service)
        port = sc.service_port
        eps = ", ".join(str(p.ip) for p in sc.endpoints(svc))
        box(24, 87, 52, 6, f"Service {svc.name}  {svc.cluster_ip}:{port.port} -> targetPort {port.target_port}"
            f"\nendpoints {eps}  (iptables nat on every node)", "#fff7bc", dashed=True)
    title = title if title is not None else f"{sc.name}: the request (red) and the reply (blue), hop by hop"
    out.append(f'<text x="{W / 2}" y="{round(top - 8, 1)}" font-size="{round(11 * 100 / 72, 1)}" '
               f'text-anchor="middle">{esc(title)}</text>')
    # the first segment of each flow, numbered hop by hop (as walk_diagram draws them)
    marks = []
    for fl in ("request", "reply"):
        segs = [s for s in range(len(w.segments)) if any(o.flow == fl and o.segment == s for o in w.observations)]
        if not segs:
            continue
        colour, left = (_REQ, True) if fl == "request" else (_REP, False)
        out.append(f'<defs><marker id="pw-arrow-{fl}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="4" '
                   f'markerHeight="4" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10" fill="none" '
                   f'stroke="{colour}" stroke-width="1.6"/></marker></defs>')
        pts = []
        for o in w.path(segs[0]):
            if (o.node, o.iface) not in boxes:
                continue
            x, y, bw, bh = boxes[(o.node, o.iface)]
            if bw < 21:
                pts.append((x if left else x + bw, y + bh if o.iface == "eth0" else y))
                continue
            pts.append((x + 1.8 if left else x + bw - 1.8, y + bh / 2))
        for (x1, y1), (x2, y2) in zip(pts, pts[1:]):
            if (x1, y1) == (x2, y2):
                continue
            ax, ay, bx2, by2 = X(x1), Y(y1), X(x2), Y(y2)
            d = math.hypot(bx2 - ax, by2 - ay)
            s = min(10.0, d / 3)                  # shrinkA/shrinkB: clear of the hop numbers
            ux, uy = (bx2 - ax) / d, (by2 - ay) / d
            ax, ay, bx2, by2 = ax + ux * s, ay + uy * s, bx2 - ux * s, by2 - uy * s
            rad = 0.0 if y1 != y2 else (0.1 if x2 > x1 else -0.18)
            if rad:
                mx, my = (ax + bx2) / 2, (ay + by2) / 2
                # arc3 in display coordinates (y up), written in the SVG's (y down)
                cx, cy = mx - rad * (by2 - ay), my + rad * (bx2 - ax)
                path = f"M{ax:.1f},{ay:.1f} Q{cx:.1f},{cy:.1f} {bx2:.1f},{by2:.1f}"
            else:
                path = f"M{ax:.1f},{ay:.1f} L{bx2:.1f},{by2:.1f}"
            out.append(f'<path class="pw-hop-arrow" d="{path}" fill="none" stroke="{colour}" stroke-width="1.9" '
                       f'stroke-opacity="0.85" marker-end="url(#pw-arrow-{fl})"/>')
        for i, (x, y) in enumerate(pts, 1):
            marks.append(f'<g class="pw-hop-no"><circle cx="{X(x)}" cy="{Y(y)}" r="9" fill="{colour}"/>'
                         f'<text x="{X(x)}" y="{Y(y)}" font-size="12.5" font-weight="bold" fill="#ffffff" '
                         f'text-anchor="middle" dominant-baseline="central">{i}</text></g>')
    out += marks
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
        ax.text(start + (total - start) / 2, 7.5, f"inner frame, {total - start} B (the pod's packet)",
                ha="center", va="center", fontsize=9, bbox=dict(facecolor="white", edgecolor="none"))
        ax.plot([start, start], [6, 4], color="#888888", lw=0.8, ls=":")
        ax.plot([total, total], [6, 4], color="#888888", lw=0.8, ls=":")
        row(inner, 1, 3)
        overhead = start
        ax.text(overhead / 2, 9.6, f"+{overhead} bytes of encapsulation", ha="center", fontsize=9, weight="bold")
    else:
        row(outer, 4, 3)
    fig.suptitle(title or f"{total}-byte frame, layer by layer", fontsize=10)
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
    fig.suptitle(title or f"{len(data)} bytes, coloured by layer", fontsize=10)
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

    def hook_text(hook):
        return hook + "\n" + "\n".join(f"{t} {p}" if p < 10**6 else t for t, p in tables(hook))

    top = [("in", f"frame arrives\non {ingress}", "#ffffff"),
           ("tap", f"tcpdump -i\n{ingress}\nsees it here", _TAP)]
    if bridge and br_netfilter:
        top += [("bridge", f"bridge {bridge}\n(frame for its MAC:\nup to the host)\nbr_netfilter runs\nPREROUTING here", _BRIDGE),
                ("PREROUTING", hook_text("PREROUTING"), _HOOK),
                ("tap", f"tcpdump -i\n{bridge}\nsees it here\n(ip_rcv skips\nPREROUTING now)", _TAP)]
    elif bridge:
        top += [("bridge", f"bridge {bridge}\n(frame for its MAC:\nup to the host)\nno br_netfilter", _BRIDGE),
                ("tap", f"tcpdump -i\n{bridge}\nsees it here", _TAP),
                ("PREROUTING", hook_text("PREROUTING"), _HOOK)]
    else:
        top += [("PREROUTING", hook_text("PREROUTING"), _HOOK)]
    top += [("route", "routing\ndecision", "#eeeeee"), ("FORWARD", hook_text("FORWARD"), _HOOK),
            ("POSTROUTING", hook_text("POSTROUTING"), _HOOK),
            ("tap", f"tcpdump -i\n{egress}\nsees it here\n(after the qdisc)", _TAP),
            ("out", f"frame leaves\nby {egress}", "#ffffff")]
    w, gap = 10.0, 2.2
    width = len(top) * (w + gap)
    fig = _figure(12, 4.4)
    ax = fig.add_axes((0.005, 0.07, 0.99, 0.83))
    ax.set_xlim(0, width)
    ax.set_ylim(0, 50)
    ax.axis("off")
    y, h = 31, 15
    x_of = {}
    for i, (key, text, colour) in enumerate(top):
        x = 1 + i * (w + gap)
        x_of.setdefault(key, x)
        _box(ax, x, y, w, h, text, colour, dashed=key == "tap", fontsize=6.5,
             weight="bold" if key in ("PREROUTING", "FORWARD", "POSTROUTING") else "normal")
        if i:
            ax.annotate("", (x - 0.35, y + h / 2), (x - gap + 0.35, y + h / 2),
                        arrowprops=dict(arrowstyle="->", color="#444444", lw=1))
    # the local branch: routing -> INPUT -> socket -> OUTPUT -> (routing) -> POSTROUTING
    yb, hb = 1, 15
    xr, xf, xp = x_of["route"], x_of["FORWARD"], x_of["POSTROUTING"]
    _box(ax, xr, yb, w, hb, hook_text("INPUT"), _HOOK, fontsize=6.5, weight="bold")
    _box(ax, xf, yb, w, hb, "a local socket\n(this host)", "#ffffff", fontsize=6.5)
    _box(ax, xp, yb, w, hb, hook_text("OUTPUT"), _HOOK, fontsize=6.5, weight="bold")
    arrow = dict(arrowstyle="->", color="#444444", lw=1)
    ax.annotate("", (xr + w / 2, yb + hb + 0.3), (xr + w / 2, y - 0.6), arrowprops=arrow)
    ax.text(xr + w / 2 + 0.4, (y + yb + hb) / 2, "for this host", fontsize=6, va="center")
    ax.annotate("", (xf - 0.35, yb + hb / 2), (xr + w + 0.35, yb + hb / 2), arrowprops=arrow)
    ax.annotate("", (xp - 0.35, yb + hb / 2), (xf + w + 0.35, yb + hb / 2), arrowprops=arrow)
    ax.annotate("", (xp + w / 2, y - 0.6), (xp + w / 2, yb + hb + 0.3), arrowprops=arrow)
    ax.text(xp + w / 2 + 0.4, (y + yb + hb) / 2, "routed", fontsize=6, va="center")
    ax.text(xf + w / 2, y + h + 1.2, "not for this host: forwarded", ha="center", fontsize=6)
    note = ("Each hook runs its tables in priority order (lower first; NF_IP_PRI_* in netfilter_ipv4.h); "
            "nat chains see a connection's first packet only, conntrack rewrites the rest.\n"
            "Red: where tcpdump's AF_PACKET tap copies the frame (net/core/dev.c): on the way in before "
            "the bridge and before ip_rcv's PREROUTING, on the way out after POSTROUTING.")
    fig.suptitle(title or f"netfilter hook order: in by {ingress}"
                 + (f" (a port of {bridge}" + (", br_netfilter on)" if br_netfilter else ", br_netfilter off)")
                    if bridge else "") + f", out by {egress}", fontsize=10)
    fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=6.5, color="#444444")
    return fig
