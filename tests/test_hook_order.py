"""netfilter's hook order as data and as a picture: tables by priority, taps, br_netfilter."""

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

import coursekit as ck
from coursekit import diagrams as dg
from coursekit.netfilter import HOOK_TABLES, hook_order
from coursekit.widgets import figure_png


def test_tables_run_in_priority_order():
    assert [t for t, _ in hook_order("PREROUTING")] == ["raw", "conntrack", "mangle", "nat (DNAT)"]
    assert [t for t, _ in hook_order("POSTROUTING")] == ["mangle", "nat (SNAT)", "conntrack confirm"]
    # nat's two halves: destination NAT where packets enter, source NAT where they leave
    assert {h for h, ts in HOOK_TABLES.items() if "nat (DNAT)" in ts} == {"PREROUTING", "OUTPUT"}
    assert {h for h, ts in HOOK_TABLES.items() if "nat (SNAT)" in ts} == {"INPUT", "POSTROUTING"}
    assert {h for h, ts in HOOK_TABLES.items() if "filter" in ts} == {"INPUT", "FORWARD", "OUTPUT"}
    assert dict(hook_order("OUTPUT"))["raw"] == -300 and dict(hook_order("FORWARD"))["filter"] == 0
    with pytest.raises(ck.CourseError, match="allowed: PREROUTING"):
        hook_order("PREROUTE")


def _boxes(fig):
    """The packet's way through the picture (in, ..., out; the local branch left out), each box as its first line."""
    texts = [t for t in fig.axes[0].texts if (t.get_gid() or "").startswith("path-")]
    path = sorted(texts, key=lambda t: int(t.get_gid().split("-")[1]))
    return [t.get_text().split("\n")[0] + (" " + t.get_text().split("\n")[1] if t.get_text().startswith("tcpdump") else "")
            for t in path]


def test_br_netfilter_moves_prerouting_before_the_bridge_tap():
    on = _boxes(dg.hook_order(ingress="veth4c1a3e7", bridge="docker0", egress="flannel.1"))
    off = _boxes(dg.hook_order(ingress="veth4c1a3e7", bridge="docker0", egress="flannel.1", br_netfilter=False))
    assert on.index("PREROUTING") < on.index("tcpdump -i docker0")       # tcpdump on docker0 sees the DNAT
    assert off.index("PREROUTING") > off.index("tcpdump -i docker0")     # ... and without br_netfilter, not
    for row in (on, off):
        # the ingress tap before any hook, the egress tap after POSTROUTING
        assert row.index("tcpdump -i veth4c1a3e7") < row.index("PREROUTING")
        assert row.index("POSTROUTING") < row.index("tcpdump -i flannel.1")


def test_hook_picture_is_deterministic_and_legible():
    make = lambda: dg.hook_order(ingress="veth4c1a3e7", bridge="docker0", egress="flannel.1")  # noqa: E731
    assert figure_png(make()) == figure_png(make())
    fig = make()
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    r = canvas.get_renderer()
    for t in fig.axes[0].texts + fig.texts:
        bb = t.get_window_extent(r)
        assert bb.x0 >= -1 and bb.x1 <= fig.bbox.width + 1 and bb.y0 >= -1, t.get_text()
