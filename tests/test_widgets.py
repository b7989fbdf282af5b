"""The widget layer: thin, shows errors inline, keeps the last good views (no browser here)."""

from __future__ import annotations

import coursekit as ck
from coursekit import widgets as wg


def test_only_widgets_imports_ipywidgets():
    from pathlib import Path
    pkg = Path(ck.__file__).parent
    users = sorted(p.name for p in pkg.glob("*.py") if "import ipywidgets" in p.read_text())
    assert users == ["widgets.py"]


def test_explorer_updates_and_keeps_last_good_views(article):
    e = wg.explorer(article, ["vxlan_port", "client_ip"], node="meizu", iface="enp4s0")
    assert "OTV" in e.tcpdump.value
    e.controls["vxlan_port"].value = "4789"
    assert "VXLAN, flags [I]" in e.tcpdump.value and "OTV" not in e.tcpdump.value
    good = (e.tcpdump.value, e.hops.value, e.dissection.value)
    e.controls["client_ip"].value = "172.30.83.300"
    assert "client pod IP: &#x27;172.30.83.300&#x27; is not an IPv4 address" in e.errors["client_ip"].value
    assert "last good views" in e.status.value
    assert (e.tcpdump.value, e.hops.value, e.dissection.value) == good
    e.controls["client_ip"].value = "172.30.83.10"
    assert e.errors["client_ip"].value == ""
    assert "172.30.83.0.38200" in e.tcpdump.value or "38200" in e.tcpdump.value


def test_explorer_filter_error_and_interface_change(article):
    e = wg.explorer(article, ["vni"], node="meizu", iface="enp4s0", diagram=False)
    e.filter.value = "port nonsense"
    assert "libpcap rejected" in e.errors["filter"].value
    e.filter.value = "tcp"
    assert "(no packets)" in e.tcpdump.value               # the wire carries UDP
    e.filter.value = ""
    e.iface.value = "nginx-1 eth0"
    assert "172.30.20.2.80" in e.tcpdump.value


def test_explorer_plain_text_is_short_and_stable(article):
    e = wg.explorer(article, ["vni"], diagram=False)
    bundle = e._repr_mimebundle_()
    assert bundle["text/plain"] == "Explorer(article: vni)"
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_diagram_drawn_only_when_its_tab_shows(article):
    e = wg.explorer(article, ["vni"])
    assert e.diagram.value == ""
    e.tabs.selected_index = 3
    svg = e.diagram.value
    assert svg.startswith("<svg ") and "flannel.1 (VXLAN, VNI 1, UDP 8472)" in svg
    e.controls["vni"].value = "7"
    assert "VNI 7" in e.diagram.value and e.diagram.value != svg
    assert wg.figure_svg(ck.diagrams.topology(article)) == wg.figure_svg(ck.diagrams.topology(article))
    assert wg.figure_png(ck.diagrams.topology(article)) == wg.figure_png(ck.diagrams.topology(article))


def test_stepper_buttons_and_slider(article):
    s = wg.stepper(article)
    assert "request hop 1: busybox eth0" in s.title.value
    s.next.click()
    s.next.click()
    assert s.pos == 2 and s.slider.value == 3
    s.back.click()
    assert "request hop 2" in s.title.value
    s.slider.value = 20
    assert "reply hop 10: busybox eth0" in s.title.value
    s.next.click()                                     # past the end stays at the end
    assert s.pos == 19
    assert s._repr_mimebundle_()["text/plain"] == "Stepper(article: 20 hops)"
