"""The widget layer: thin, shows errors inline, keeps the last good views (no browser here)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    assert e.hops.value == ""                      # drawn when its tab shows
    e.tabs.selected_index = 2
    assert "10.167.226.39:4789" in e.hops.value
    good = (e.tcpdump.value, e.hops.value, e.dissection.value, e.packets.value)
    e.controls["client_ip"].value = "172.30.83.300"
    msg = "client pod IP: &#x27;172.30.83.300&#x27; is not an IPv4 address"
    assert msg in e.errors["client_ip"].value and e.errors["client_ip"].layout.display == ""
    assert msg not in e.status.value and "outlined field" in e.status.value       # the message once
    assert "pw-invalid" in e.controls["client_ip"]._dom_classes
    assert e.stale.layout.display == "" and "pw-stale" in e.tabs._dom_classes   # last good result, marked
    assert (e.tcpdump.value, e.hops.value, e.dissection.value, e.packets.value) == good
    e.controls["client_ip"].value = "172.30.83.10"
    assert e.errors["client_ip"].value == "" and e.errors["client_ip"].layout.display == "none"
    assert "pw-invalid" not in e.controls["client_ip"]._dom_classes and e.stale.layout.display == "none"
    assert "172.30.83.0.38200" in e.tcpdump.value or "38200" in e.tcpdump.value


def test_explorer_filter_error_and_interface_change(article):
    e = wg.explorer(article, ["vni"], node="meizu", iface="enp4s0", diagram=False)
    e.filter.value = "port nonsense"
    assert "libpcap rejected" in e.errors["filter"].value
    assert "pw-invalid" in e.filter._dom_classes
    e.filter.value = "tcp"
    assert "(no packets)" in e.tcpdump.value               # the wire carries UDP
    assert "no packet matches the filter" in e.packets.value
    e.filter.value = ""
    e.iface.value = "nginx-1 eth0"
    assert "172.30.20.2.80" in e.tcpdump.value


def test_explorer_plain_text_is_short_and_stable(article):
    e = wg.explorer(article, ["vni"], diagram=False)
    bundle = e._repr_mimebundle_()
    assert bundle["text/plain"] == "Explorer(article: vni)"
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_diagram_drawn_before_its_tab_shows_once_per_scenario(article):
    e = wg.explorer(article, ["vni"])
    svg = e.diagram.value                                   # drawn already: opening the tab needs no kernel
    e.tabs.selected_index = 3
    assert e.diagram.value is svg
    assert svg.startswith('<div class="pw-figure"><svg ') and "flannel.1 (VXLAN, VNI 1, UDP 8472)" in svg
    e.filter.value = "tcp"                                  # same scenario: the diagram is not drawn again
    assert e.diagram.value is svg
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
    assert not s.back.disabled and not s.next.disabled
    s.slider.value = 20
    assert "reply hop 10: busybox eth0" in s.title.value
    assert s.next.disabled and not s.back.disabled       # the last hop: next is disabled
    s.next.click()                                     # past the end stays at the end
    assert s.pos == 19
    s.slider.value = 1
    assert s.back.disabled
    assert s._repr_mimebundle_()["text/plain"] == "Stepper(article: 20 hops)"


def test_untouched_explorer_is_the_chapter_scenario(article):
    e = wg.explorer(article, ["vxlan_port", "vni", "node_mtu", "pod_mtu"], node="meizu", iface="enp4s0",
                    diagram=False)
    assert e.scenario is article                                   # nothing applied
    assert e.controls["pod_mtu.xiaomi"].value == "1500" and e.controls["pod_mtu.meizu"].value == "1450"
    assert "mss 1460" in e.views.rows[0].line and "mss 1410" in e.views.rows[1].line
    assert "xiaomi: pod MTU 1500 + 50 exceeds the node&#x27;s MTU 1500" in e.status.value


def test_node_mtu_change_shows_a_recompute_and_why_nothing_changed(article):
    e = wg.explorer(article, ["node_mtu", "pod_mtu"], node="meizu", iface="enp4s0", diagram=False)
    packets = e.packets.value
    assert "recomputed (#1" in e.status.value
    e.controls["node_mtu"].value = "1400"
    assert e.packets.value == packets
    assert "recomputed (#2" in e.status.value and "nothing on screen changed" in e.status.value
    assert "pinned" in e.status.value
    assert "meizu: pod MTU 1450 + 50 exceeds the node&#x27;s MTU 1400" in e.status.value
    e.filter.value = "udp"                      # not a knob: no explanation owed, and none about node MTU
    assert "recomputed (#3" in e.status.value and "nothing on screen changed" not in e.status.value


def test_menus_follow_replicas_and_vni(article):
    e = wg.explorer(article, ["replicas", "vni"], node="meizu", iface="flannel.1", diagram=False)
    e.controls["replicas"].value = "3"
    veths = [p.veth for p in e.scenario.pods_on("meizu")]
    assert len(veths) == 3 and all(f"meizu {v}" in e.iface.options for v in veths)
    e.controls["vni"].value = "7"
    assert "meizu flannel.7" in e.iface.options and "meizu flannel.1" not in e.iface.options
    assert e.iface.value == "meizu flannel.7" and "pw-invalid" not in e.iface._dom_classes


def test_click_a_row_dissects_that_packet(article):
    e = wg.explorer(article, ["vni"], node="meizu", iface="enp4s0", diagram=False)
    assert e.views.selected == 1 and 'data-no="1"' in e.packets.value
    assert f'.{e._scope} .pw-packets tr.pw-row[data-no="1"] td' in e.selection.value
    listed = e.packets.value
    e.packet.value = 4                                       # what a click on row 4 sets
    assert e.views.selected == 4
    assert f'.{e._scope} .pw-packets tr.pw-row[data-no="4"] td' in e.selection.value
    assert e.packets.value is listed and 'class="pw-row pw-sel"' not in listed     # the list is not drawn again
    assert "HTTP: GET / HTTP/1.1" in e.dissection.value and "packet 4, as tcpdump prints it" in e.dissection.value
    e.packet.value = 40
    assert "packet 40 is not in the list" in e.errors["packet"].value
    e.packet.value = 2
    assert e.errors["packet"].value == "" and e.views.selected == 2


def test_explorer_refuses_an_unknown_node():
    import pytest
    with pytest.raises(ck.CourseError, match="unknown node or pod 'oppo'"):
        wg.explorer(None, ["vni"], node="oppo", diagram=False)
    with pytest.raises(ck.CourseError, match="unknown knob 'vnii'"):
        wg.explorer("article", ["vnii"], diagram=False)
    with pytest.raises(ck.CourseError, match="scenario"):
        wg.explorer(42, ["vni"], diagram=False)
    with pytest.raises(ck.CourseError, match="scenario"):
        wg.stepper([1, 2])
    assert wg.explorer("article", ["vni"], diagram=False).base.name == "article"


def test_internal_errors_never_reach_the_learner(article):
    e = wg.explorer(article, ["server_ip", "replicas"], node="meizu", iface="enp4s0", diagram=False)
    e.controls["replicas"].value = "2"
    e.controls["server_ip"].value = "255.255.255.255"
    assert "internal error" not in e.status.value
    assert "server pod IP" in e.errors["server_ip"].value


def test_packet_list_html_rows(article):
    v = ck.explore.views(article, "meizu", "enp4s0")
    page = wg.packet_list_html(v.rows, 3)
    assert page.count('class="pw-row') == 11 and page.count('class="pw-row pw-sel"') == 1
    # the full tcpdump line on hover, escaped
    import html
    assert f'title="{html.escape(v.rows[0].line)}"' in page
    assert "<th>No.</th><th>Time</th><th>Source</th><th>Destination</th><th>Protocol</th>" in page


def test_dissection_html_has_byte_offsets_for_every_field(article):
    v = ck.explore.views(article, "meizu", "enp4s0", frame=4)
    page = wg.dissection_html(v.frame.data, v.layers, "x", 4)
    fields = [f for ly in v.layers for f in ly.fields]
    assert page.count('class="pw-field"') == len(fields)
    vni = next(f for ly in v.layers if ly.key == "VXLAN" for f in ly.fields if f.name == "vni")
    assert f'data-off="{vni.offset}" data-len="{vni.length}"' in page
    assert page.count("<span>") == len(v.frame.data)            # one span per byte to highlight
    assert "outer frame</b>: 50 bytes" in page


def test_hops_tab_follows_the_selected_packet(article):
    e = wg.explorer(article, ["vni"], node="meizu", iface="enp4s0", diagram=False)
    e.tabs.selected_index = 2
    assert "the path of segment 0" in e.hops.value
    e.packet.value = 2                                   # the SYN-ACK: the reply's path
    assert "the path of segment 1" in e.hops.value and "nginx-1 eth0" in e.hops.value


def test_hop_table_html_highlights_changes(article_walk):
    page = wg.hop_table_html(ck.explore.hop_rows(article_walk, 0))
    assert page.count('class="pw-hop"') == 10
    assert '<td class="pw-changed">172.30.20.2:80</td>' in page        # DNAT at xiaomi docker0
    assert "DNAT" in page and 'class="pw-decisions"' in page


def _jupyterlab_themes():
    """{theme name: {custom property: value}} of the installed JupyterLab (its material palette included)."""
    import re
    import sys
    share = Path(sys.prefix) / "share" / "jupyter" / "lab"
    prop = re.compile(r"(--[\w-]+)\s*:\s*([^;}]+)")
    material = {}
    for js in (share / "static").glob("*.js"):
        text = js.read_text(errors="replace")
        if "--md-red-700" in text:
            material.update({k: v.strip() for k, v in prop.findall(text) if k.startswith("--md-")})
    themes = {}
    for css in sorted((share / "themes" / "@jupyterlab").glob("theme-*-extension/index.css")):
        variables = dict(material)
        variables.update({k: v.strip() for k, v in prop.findall(css.read_text())})
        themes[css.parent.name] = variables
    return themes


def test_palette_reads_at_4_5_in_every_installed_jupyterlab_theme():
    """Each role's colours, resolved as the browser does from JupyterLab's own variables."""
    from conftest import require
    themes = _jupyterlab_themes()
    require({"theme-light-extension", "theme-dark-extension"} <= set(themes), "JupyterLab's themes are not installed")
    checked = 0
    for name, variables in themes.items():
        palette = wg.PALETTE["light" if "light" in name else "dark"]
        page = wg.css_colour("var(--jp-layout-color0)", variables)
        for role, (fg, bg) in palette.items():
            back = wg.over(wg.css_colour(bg, variables), page)
            ink = wg.over(wg.css_colour(fg, variables), wg.css_colour(back, {}))
            ratio = wg.contrast(ink, back)
            assert ratio >= 4.5, (name, role, ink, back, round(ratio, 2))
            checked += 1
    assert checked >= 2 * len(wg.PALETTE["light"])
    # the checks can fail: white on #fff3cd (last session's dark highlight), the dark theme's error-color0 on #111
    dark = themes["theme-dark-extension"]
    assert wg.contrast("#ffffff", "#fff3cd") < 1.2
    assert wg.contrast(wg.over(wg.css_colour("var(--jp-error-color0)", dark), (0, 0, 0, 1)),
                       wg.over(wg.css_colour("var(--jp-layout-color0)", dark), (0, 0, 0, 1))) < 4.5


def test_palette_fallbacks_read_at_4_5_outside_jupyterlab():
    """A page without JupyterLab's variables (a static renderer) uses the fallbacks: light."""
    for role, (fg, bg) in wg.PALETTE["light"].items():
        back = wg.over(wg.css_colour(bg, {}), (255, 255, 255, 1))
        ink = wg.over(wg.css_colour(fg, {}), wg.css_colour(back, {}))
        assert wg.contrast(ink, back) >= 4.5, (role, ink, back)


def test_css_colour_resolves_like_a_browser():
    v = {"--a": "var(--b, #ff0000)", "--c": "rgba(0,0,0,.5)"}
    assert wg.css_colour("var(--a)", v) == (255.0, 0.0, 0.0, 1.0)               # --b missing: the fallback
    assert wg.over(wg.css_colour("color-mix(in srgb,#ffffff 25%,#000000)", {}), (0, 0, 0, 1)) == "#404040"
    assert wg.over(wg.css_colour("var(--c)", v), (255, 255, 255, 1)) == "#808080"
    with pytest.raises(ValueError):
        wg.css_colour("var(--nothing)", {})


def test_stepper_every_layer_stays_open_and_map_moves(article):
    s = wg.stepper(article)
    assert 'class="pw-map-box pw-map-here" data-where="busybox eth0"' in s.map.value
    s.every.value = True
    s.next.click()
    assert s.layers.layout.display == "" and "Frame:" in s.layers.value
    assert 'data-where="xiaomi veth4c1a3e7"' in s.map.value and s.map.value.count("pw-map-here") == 1
    assert 'class="pw-map-box pw-map-here" data-where="xiaomi veth4c1a3e7"' in s.map.value
    s.next.click()
    assert s.layers.layout.display == ""
    s.go(3)
    assert "pw-minor" in s.body.value                               # checksums greyed
    assert s.body.value.index("pw-minor") > s.body.value.rindex("pw-change\"")


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(typed=st.lists(st.tuples(st.sampled_from(["server_ip", "replicas", "vni", "pod_mtu.meizu", "filter",
                                                 "packet"]),
                                st.one_of(st.text(max_size=20), st.integers(-3, 99999).map(str),
                                          st.sampled_from(["255.255.255.255", "172.30.20.250", "16", "0", "7",
                                                           "port 80", "tcp[13] & 2 != 0", "arp"]))),
                      min_size=1, max_size=4))
def test_every_widget_input_gets_an_answer(article, typed):
    """Whatever is typed, the explorer shows a view or one message: never an internal error."""
    e = wg.explorer(article, ["server_ip", "replicas", "vni", "pod_mtu"], node="meizu", iface="enp4s0",
                    diagram=False)
    for key, value in typed:
        if key == "filter":
            e.filter.value = value
        elif key == "packet":
            try:
                e.packet.value = int(value)
            except ValueError:
                continue
        else:
            e.controls[key].value = value
        assert "internal error" not in e.status.value, (key, value, e.status.value)
        shown = [k for k, w in e.errors.items() if w.layout.display != "none"]
        assert len(shown) <= 1                                    # one message, under one field
        if shown:
            assert "outlined field" in e.status.value


def test_the_cjk_fallback_font_covers_every_chinese_character_of_the_course():
    """Machines without a CJK font still draw the article's title and quotes (tools/cjk_font.py adds any new one)."""
    import re
    from fontTools.ttLib import TTFont
    from conftest import ROOT
    font = ROOT / "data" / "fonts" / "packet-walk-cjk.woff"
    have = {chr(u) for u in TTFont(font).getBestCmap()}
    cjk = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
    # the Chinese edition (notebooks/zh) is read on machines with a CJK font; its figures use
    # data/fonts/packet-walk-cjk.ttf (tests/test_i18n.py)
    files = [p for p in (ROOT / "notebooks").rglob("*.ipynb") if "zh" not in p.relative_to(ROOT).parts]
    files += [ROOT / "README.md"] + list((ROOT / "docs").rglob("*.md"))
    used = {c for f in files for c in cjk.findall(f.read_text(encoding="utf-8"))}
    assert used and used <= have, "missing: " + "".join(sorted(used - have))
    assert "packet-walk-cjk" not in wg._css() and 'font-family:"Packet Walk CJK"' in wg._css()
    assert font.stat().st_size < 64_000


def test_hops_display_html_in_lab_and_the_text_table_elsewhere(article_walk):
    h = wg.hops(article_walk, 0)
    assert repr(h) == ck.explore.hop_table(article_walk, 0)          # what nbval and a terminal see
    page = h._repr_html_()
    assert page.count('class="pw-hop"') == 10 and "<style>" in page


def test_provenance_labels_in_the_stepper_and_the_dissection(article):
    """Each changed field and each dissected field says whether it is computed, observed or assumed."""
    from coursekit import provenance
    s = wg.stepper(article)
    s.go(3)                                                     # SNAT at xiaomi flannel.1
    v = s.view
    assert v.labels["~ IPv4 src: 172.30.83.9 -> 172.30.83.0"] == provenance.of_field(
        "IPv4", "src", article, s.steps[3].observation).label == "computed"
    assert "172.30.83.0 <span class=\"pw-tag\">[computed]</span>" in s.body.value
    e = wg.explorer(article, ["vni"], node="meizu", iface="enp4s0", diagram=False)
    sport = provenance.of_field("outer UDP", "sport", article, e.views.frame.observation).label
    assert sport == "observed"                                   # 49008: printed in the article
    assert f"sport: 49008 <span class=\"pw-muted\">[{sport}]</span>" in e.dissection.value


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "data" / "scenarios").glob("*.yaml")))
def test_every_traffic_case_gets_an_explorer_a_stepper_and_its_pictures(name):
    """External clients and servers, node clients, pod-IP targets: only the fields the case has, never an error."""
    from coursekit import diagrams, explore, widgets
    sc = ck.load_scenario(name)
    keys = [c.key for c in explore.controls(sc)]
    assert len(keys) == len(set(keys)) and keys
    assert explore.apply(sc, explore.current(sc)) is sc            # untouched: the scenario itself
    widgets.explorer(sc)
    widgets.stepper(sc)
    diagrams.topology(sc)
    diagrams.walk_diagram(sc)
    if sc.request.ip is not None:                                  # no Service: no Service fields, and asking says so
        assert "service_ip" not in keys
        with pytest.raises(ck.CourseError, match="no such field"):
            explore.apply(sc, {"service_ip": "10.254.0.9"})


def test_a_transcript_shows_as_a_scroll_box_that_never_wraps(article):
    """The same text as nbval's text/plain, in a box that scrolls rather than wraps or fills the page."""
    import html
    from coursekit import textbox
    t = ck.tcpdump(article, "meizu", "enp4s0", "udp", "-nn -e -v")
    page = t._repr_html_()
    head, count, body = repr(t).split("\n", 2)
    assert f">{html.escape(head)}\n{count}</div>" in page
    assert f">{html.escape(body)}</pre>" in page and html.escape(str(t)) in page    # every line, whole
    box = page[page.index('<pre class="pw-text-box"'):]
    assert "white-space:pre;" in box and "word-break:normal" in box and "break-all" not in page
    assert len(body.splitlines()) > textbox.MAX_LINES and "max-height:" in box and "overflow:auto" in box
    short = ck.tcpdump(article, "meizu", "enp4s0", "dst 172.30.20.9")
    assert "max-height" not in short._repr_html_()[short._repr_html_().index("<pre"):]      # short: no scroll box
    assert short._repr_html_() == short._repr_html_()                                      # deterministic


def test_printed_text_is_limited_in_course_notebooks_only():
    from coursekit import textbox
    css = textbox.PRINTED_TEXT_CSS
    assert css.startswith(".jp-Notebook:has(.pw-text,.pw-root)") and "max-height:32em" in css and "overflow:auto" in css
    assert "application/vnd.jupyter.stdout" in css and "word-break:normal" in css
    assert css in wg._css() and css in textbox.scroll_box("x")


def test_no_redraw_of_a_view_that_did_not_change(article):
    """A knob that leaves the packets alone sends neither the packet list nor the dissection again."""
    e = wg.explorer(article, ["node_mtu", "vni"], node="meizu", iface="enp4s0", diagram=False)
    sent = []
    for name in ("packets", "dissection", "tcpdump"):
        getattr(e, name).observe(lambda ch, name=name: sent.append(name), names="value")
    e.controls["node_mtu"].value = "1400"                  # the pinned pod MTU wins: the same packets
    assert "recomputed (#2" in e.status.value and sent == []
    e.controls["vni"].value = "7"                          # the VNI is in every outer frame
    assert sent.count("tcpdump") == 1 and sent.count("packets") == 1
    assert 1 <= sent.count("dissection") <= 2              # the tree at once, then with provenance labels


def test_a_diagram_seen_before_is_not_drawn_again(article, monkeypatch):
    from coursekit import diagrams
    drawn = []
    real = diagrams.walk_svg
    monkeypatch.setattr(diagrams, "walk_svg", lambda *a, **k: drawn.append(1) or real(*a, **k))
    e = wg.explorer(article, ["vni"], node="meizu", iface="enp4s0")
    e.tabs.selected_index = 3
    first = e.diagram.value
    e.controls["vni"].value = "7"
    assert "VNI 7" in e.diagram.value and len(drawn) == 2
    e.controls["vni"].value = "1"                          # back to the chapter's value: the first drawing
    assert e.diagram.value is first and len(drawn) == 2


def test_each_explorer_marks_only_its_own_list(article):
    a = wg.explorer(article, ["vni"], node="meizu", iface="enp4s0", diagram=False)
    b = wg.explorer(article, ["vni"], node="meizu", iface="enp4s0", diagram=False)
    assert a._scope != b._scope and a._scope in a.widget._dom_classes
    assert wg.selection_css(a._scope, 3).startswith(f'<style>.{a._scope} .pw-packets tr.pw-row[data-no="3"] td{{')
