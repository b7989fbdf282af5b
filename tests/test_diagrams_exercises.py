"""Pictures are deterministic and legible; exercises check against computed answers."""

from __future__ import annotations

import pytest

import coursekit as ck
from coursekit import diagrams as dg
from coursekit import exercises as X
from coursekit.explore import apply
from coursekit.widgets import figure_png


@pytest.mark.parametrize("make", [
    lambda sc, w: dg.topology(sc),
    lambda sc, w: dg.walk_diagram(sc, w),
    lambda sc, w: dg.timeline(w.at("meizu", "docker0")),
    lambda sc, w: dg.encapsulation(w.at("meizu", "enp4s0")[3]),
    lambda sc, w: dg.byte_map(w.at("meizu", "enp4s0")[3]),
])
def test_figures_are_deterministic(article, article_walk, make):
    assert figure_png(make(article, article_walk)) == figure_png(make(article, article_walk))


def test_topology_text_shows_addresses(article):
    fig = dg.topology(apply(article, {"replicas": 2}))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("eth0 172.30.20.3" in t for t in texts)            # the second replica is drawn
    assert any("flannel.1 (VXLAN, VNI 1, UDP 8472)" in t for t in texts)
    assert any("endpoints 172.30.20.2, 172.30.20.3" in t for t in texts)


def test_text_fits_inside_the_figure(article, article_walk):
    """Legible at notebook width: no label runs off the canvas."""
    for fig in (dg.topology(article), dg.walk_diagram(article, article_walk),
                dg.timeline(article_walk.at("meizu", "docker0"))):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        r = canvas.get_renderer()
        W, H = fig.bbox.width, fig.bbox.height
        for ax in fig.axes:
            for t in ax.texts:
                bb = t.get_window_extent(r)
                assert bb.x0 >= -1 and bb.x1 <= W + 1 and bb.y0 >= -1 and bb.y1 <= H + 1, t.get_text()


def _figures(article, walk):
    three = apply(article, {"replicas": 3})
    return [dg.topology(article), dg.walk_diagram(article, walk), dg.walk_diagram(three),
            dg.timeline(walk.at("meizu", "docker0")), dg.encapsulation(walk.at("meizu", "enp4s0")[3]),
            dg.byte_map(walk.at("meizu", "enp4s0")[3]),
            dg.hook_order(ingress="veth4c1a3e7", bridge="docker0", egress="flannel.1"),
            dg.hook_order(ingress="veth4c1a3e7", bridge="docker0", egress="flannel.1", br_netfilter=False),
            dg.hook_order()]


def test_text_is_at_least_9_points(article, article_walk):
    """Shown at their natural width (the explorer's minimum), every label is 9 pt or more."""
    for fig in _figures(article, article_walk):
        assert fig.get_figwidth() <= 10
        for t in fig.findobj(lambda o: hasattr(o, "get_fontsize") and hasattr(o, "get_text")):
            if t.get_text().strip():
                assert t.get_fontsize() >= 9, (t.get_text(), t.get_fontsize())


def _crossings(fig):
    """(label, line) pairs where a drawn line passes through a label's box."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.patches import FancyArrowPatch
    FigureCanvasAgg(fig).draw()
    r = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_text().strip() and not t.get_text().isdigit()]   # hop markers sit on lines
    paths = [ln.get_path().transformed(ln.get_transform()) for ln in ax.lines]
    paths += [p.get_path().transformed(p.get_transform()) for p in ax.patches if isinstance(p, FancyArrowPatch)]
    paths += [c.arrow_patch.get_path().transformed(c.arrow_patch.get_transform())
              for c in ax.texts if getattr(c, "arrow_patch", None) is not None]
    out = []
    for t in labels:
        bb = t.get_window_extent(r).padded(-1)
        for path in paths:
            for poly in path.to_polygons(closed_only=False):
                import numpy as np
                pts = np.asarray(poly)
                for (x1, y1), (x2, y2) in zip(pts, pts[1:]):
                    n = max(2, int(max(abs(x2 - x1), abs(y2 - y1)) // 2))
                    xs, ys = np.linspace(x1, x2, n), np.linspace(y1, y2, n)
                    if np.any((xs > bb.x0) & (xs < bb.x1) & (ys > bb.y0) & (ys < bb.y1)):
                        out.append(t.get_text())
                        break
    return sorted(set(out))


def test_no_label_is_crossed_by_a_line(article, article_walk):
    assert _crossings(dg.walk_diagram(article, article_walk)) == []
    for bridge, on in ((None, True), ("docker0", True), ("docker0", False)):
        assert _crossings(dg.hook_order(ingress="veth4c1a3e7", bridge=bridge, egress="flannel.1", br_netfilter=on)) == []
    assert _crossings(dg.walk_diagram(apply(article, {"replicas": 3}))) == []
    assert _crossings(dg.topology(article)) == []


def test_reply_markers_sit_at_the_pod_that_served(article):
    """With 3 replicas the reply's first marker is on nginx-1's box (it served), not beside it on nginx-2."""
    sc = apply(article, {"replicas": 3})
    fig = dg.walk_diagram(sc)
    ax = fig.axes[0]
    _, _, boxes = dg._layout(sc)
    served = boxes[(sc.server.name, "eth0")]
    others = [boxes[(p.name, "eth0")] for p in sc.pods_on(sc.server.node) if p.name != sc.server.name]
    blue = [t for t in ax.texts if t.get_text() == "1" and t.get_bbox_patch().get_facecolor()[2] > 0.5]
    (x, y), = [t.get_position() for t in blue]
    sx, sy, sw, sh = served
    assert sx <= x <= sx + sw and sy <= y <= sy + sh + 0.01
    assert all(not (ox <= x <= ox + ow) for ox, _, ow, _ in others)


def test_encapsulation_sizes(article_walk):
    fig = dg.encapsulation(article_walk.at("meizu", "enp4s0")[3])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "+50 bytes of encapsulation" in texts
    assert "outer\nEthernet\n14 B" in texts and "VXLAN\n8 B" in texts and "HTTP\n81 B" in texts


def test_every_exercise_has_an_answer_and_checks(article):
    for e in X.EXERCISES:
        want = X.expected(e.id, article)
        assert want not in (None, "", "none"), e.id
        assert ck.check(e.id, want).correct is True
        assert ck.check(e.id, None).correct is None
        assert ck.check(e.id, "certainly wrong").correct is False


def test_exercise_answers_follow_the_scenario(article):
    other = apply(article, {"server_node_ip": "10.167.226.77", "masquerade": False})
    assert X.expected("01.outer-dst", other) == "10.167.226.77"
    assert X.expected("04.nginx-sees", other) == "172.30.83.9"
    assert ck.check("01.outer-dst", "10.167.226.77", other)


def test_unknown_exercise():
    with pytest.raises(ck.CourseError, match="no exercise '09.x'"):
        ck.check("09.x", 1)


def test_figure_text_colours_are_readable():
    """Figures are light cards in both themes: every text colour they use reads at 4.5:1 on its background."""
    from coursekit.widgets import contrast
    assert contrast("#ffffff", dg._REQ) >= 4.5 and contrast("#ffffff", dg._REP) >= 4.5     # hop numbers
    assert contrast(dg._REQ, "#ffffff") >= 4.5 and contrast(dg._REP, "#ffffff") >= 4.5     # timeline labels
    assert all(contrast("#000000", c) >= 4.5 for c in list(dg.LAYER_COLOURS.values()) + list(dg._IFACE.values()))
    assert contrast("#555555", "#fbfbfb") >= 4.5 and contrast("#1b7a1b", "#ffffff") >= 4.5


def test_hop_map_marks_one_box(article, article_walk):
    steps = ck.explore.steps(article_walk, 0)
    for st in (steps[0], steps[4], steps[-1]):
        svg = dg.hop_map_svg(article, article_walk, st.observation)
        assert svg.startswith("<svg ") and svg.count("pw-map-here") == 1
        o = st.observation
        assert f'class="pw-map-box pw-map-here" data-where="{o.node} {o.iface}"' in svg


def test_a_notebook_shows_every_figure_at_its_natural_size(article, article_walk):
    """Never shrunk to the notebook's width (JupyterLab's default): 9 pt stays 12.5 px, the output scrolls."""
    from unittest import mock
    for fig in _figures(article, article_walk):
        assert isinstance(fig, dg.Picture) and fig.dpi == dg.DPI >= 96            # 9 pt >= 12 px = 9 CSS pt
        with mock.patch("IPython.display.display") as shown:
            fig._ipython_display_()
        (bundle,), kw = shown.call_args
        meta = kw["metadata"]["image/png"]
        assert meta["unconfined"] is True
        assert (meta["width"], meta["height"]) == tuple(round(v * dg.DPI) for v in fig.get_size_inches())
        import base64
        import struct
        png = base64.b64decode(bundle["image/png"])
        assert png.startswith(b"\x89PNG") and bundle["text/plain"].startswith("<Figure size ")
        assert struct.unpack(">II", png[16:24]) == (meta["width"], meta["height"])


def test_svg_figures_keep_their_natural_width(article, article_walk):
    svg = dg.figure_svg(dg.walk_diagram(article, article_walk))
    head = svg[:svg.index(">")]
    assert head.startswith('<svg style="min-width:720pt" ') and ' width="720pt"' in head


def test_hop_map_text_is_12_px_and_fits_its_boxes(article):
    three = apply(article, {"replicas": 3})
    w = ck.walk(three)
    svg = dg.hop_map_svg(three, w, w.path(0)[0])
    assert "font-size:12px" in svg and "font-size:11px" not in svg
    import re
    for box, label in re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)"[^>]*/><text[^>]*>([^<]*)</text>', svg):
        assert len(label) * 7 <= float(box) - 6 or len(label) <= 4, (label, box)


def _svg_texts(svg):
    import re
    return sorted(re.findall(r"<tspan [^>]*>([^<]*)</tspan>", svg) + re.findall(r'font-size="11">([^<]*)</text>', svg))


@pytest.mark.parametrize("changes", [{}, {"replicas": 3}, {"vni": 7, "vxlan_port": 4789}])
def test_the_explorers_svg_is_the_notebooks_picture(article, changes):
    """walk_svg draws with walk_diagram's own code: the same labels, the same markers at the same places."""
    import html
    import re
    sc = apply(article, changes) if changes else article
    w = ck.walk(sc)
    fig = dg.walk_diagram(sc, w)
    svg = dg.walk_svg(sc, w)
    ax = fig.axes[0]
    lines = sorted(line for t in ax.texts for line in t.get_text().split("\n") if t.get_text().strip())
    assert sorted(html.unescape(t).replace("\xa0", " ") for t in _svg_texts(svg)) == sorted(lines + [ax.get_title()])
    shim = dg._SvgAxes()
    shim.set_xlim(*ax.get_xlim())
    shim.set_ylim(*ax.get_ylim())
    markers = sorted((round(shim.X(t.get_position()[0]), 1), round(shim.Y(t.get_position()[1]), 1))
                     for t in ax.texts if t.get_text().isdigit())
    circles = sorted((float(x), float(y)) for x, y in re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', svg))
    assert circles == markers and len(markers) == 20
    sizes = [float(s) for s in re.findall(r'font-size="([\d.]+)"', svg)]
    assert min(sizes) >= 9 and svg.startswith('<svg style="min-width:720pt" ')     # 9 pt at natural width
