"""The pure functions behind the explorers and the stepper, tested without widgets."""

from __future__ import annotations

import pytest

import coursekit as ck
from coursekit import explore as ex
from conftest import ROOT


def test_current_reads_the_article(article):
    now = ex.current(article)
    assert now["service_ip"] == "10.254.40.119" and now["service_port"] == 4432
    assert now["target_port"] == 80 and now["vxlan_port"] == 8472 and now["replicas"] == 1
    # the nodes differ in pod MTU (busybox's SYN says mss 1460, nginx's 1410): no single value
    assert "pod_mtu" not in now and now["pod_mtu.xiaomi"] == 1500 and now["pod_mtu.meizu"] == 1450
    assert now["node_mtu"] == 1500 and now["masquerade"] is True


def test_vxlan_port_4789_changes_tcpdump_from_otv_to_vxlan(article):
    before = ex.views(article, "meizu", "enp4s0")
    after = ex.views(ex.apply(article, {"vxlan_port": "4789"}), "meizu", "enp4s0")
    assert "OTV, flags [I] (0x08), overlay 0, instance 1" in before.tcpdump
    assert "VXLAN, flags [I] (0x08), vni 1" in after.tcpdump and "OTV" not in after.tcpdump
    assert ".4789: VXLAN" in after.tcpdump


def test_vni_and_masquerade_follow_into_every_view(article):
    v = ex.views(ex.apply(article, {"vni": 42, "masquerade": False}), "meizu", "enp4s0", flags="-nn")
    assert "instance 42" in v.tcpdump
    assert "IP 172.30.83.9.38200 > 172.30.20.2.80" in v.tcpdump      # no MASQUERADE: the pod's own source
    assert "vni 42" in v.hops


def test_service_port_and_target_port(article):
    sc = ex.apply(article, {"service_port": 8080, "target_port": 8000})
    client = ex.views(sc, "busybox", "eth0")
    assert "> 10.254.40.119.8080:" in client.tcpdump
    server = ex.views(sc, "nginx-1", "eth0")
    assert "> 172.30.20.2.8000:" in server.tcpdump
    assert any("containerPort 80" in n for n in server.notes)       # a real nginx would refuse


def test_replicas_spread_pod_addresses(article):
    sc = ex.apply(article, {"replicas": 3, "server_ip": "172.30.20.7"})
    assert [str(p.ip) for p in sc.endpoints(sc.service("nginx"))] == ["172.30.20.7", "172.30.20.8", "172.30.20.9"]


@pytest.mark.parametrize("knob,value,message", [
    ("client_ip", "172.30.83.300", "client pod IP: '172.30.83.300' is not an IPv4 address"),
    ("client_ip", "172.30.20.9", "client pod IP: 172.30.20.9 is outside xiaomi's pod subnet 172.30.83.0/24"),
    ("server_ip", "172.30.83.5", "server pod IP: 172.30.83.5 is outside meizu's pod subnet"),
    ("service_port", "70000", "Service port: 70000 is out of range (allowed: 1-65535)"),
    ("vxlan_port", "0", "VXLAN port: 0 is out of range"),
    ("vni", "abc", "VNI: 'abc' is not a whole number"),
    ("service_ip", "1.2.3.4", "Service IP: 1.2.3.4 is outside serviceCIDR 10.254.0.0/16"),
    ("server_node_ip", "10.167.226.38", "server node IP: 10.167.226.38 is also xiaomi's address"),
])
def test_bad_knob_values_name_the_knob(article, knob, value, message):
    with pytest.raises(ck.CourseError) as e:
        ex.apply(article, {knob: value})
    assert message in str(e.value)


def test_unknown_knob_and_interface(article):
    with pytest.raises(ck.CourseError, match="unknown knob 'colour'"):
        ex.apply(article, {"colour": "red"})
    with pytest.raises(ck.CourseError, match="unknown interface 'eth9'"):
        ex.views(article, "meizu", "eth9")


def test_hop_table_shows_ttl_and_outer_headers(article_walk):
    rows = ex.hop_table(article_walk, 0).splitlines()
    assert len(rows) == 11
    ttls = [r.split()[7] for r in rows[1:]]
    assert ttls == ["64", "64", "64", "63", "63", "63", "63", "62", "62", "62"]
    assert "10.167.226.38 -> 10.167.226.39 udp/8472 vni 1" in rows[5]


def test_stepper_request_then_reply(article_walk):
    st = ex.steps(article_walk, 0)
    assert len(st) == 20
    assert [s.flow for s in st] == ["request"] * 10 + ["reply"] * 10
    bridge = ex.step_view(st[2])                            # xiaomi docker0: br_netfilter runs the DNAT
    assert any("DNAT" in d.effect for d in bridge.decisions)
    assert "~ IPv4 dst: 10.254.40.119 -> 172.30.20.2" in bridge.changes
    v = ex.step_view(st[3])                                 # xiaomi flannel.1
    assert "request hop 4: xiaomi flannel.1 (leaving)" == v.title
    assert any("MASQUERADE" in d.effect for d in v.decisions)
    assert "~ IPv4 src: 172.30.83.9 -> 172.30.83.0" in v.changes
    enc = ex.step_view(st[4])
    assert enc.changes[0].startswith("+ outer Ethernet (14 bytes")
    assert any(d.stage == "fdb" for d in enc.decisions)
    back = ex.step_view(st[17])                             # reply on xiaomi, un-NATed by conntrack
    assert any(d.stage == "conntrack" for d in back.decisions)
    assert "IP 10.254.40.119.4432 > 172.30.83.9.38200" in ex.step_view(st[19]).summary
    assert "(nothing" in ex.step_view(st[5]).text()         # the wire changes no byte


def test_stepper_segment_out_of_range(article_walk):
    with pytest.raises(ck.CourseError, match="no segment 99"):
        ex.steps(article_walk, 99)
    for bad in ("1", None, 1.0, True, -1):
        with pytest.raises(ck.CourseError, match="segment"):
            ex.steps(article_walk, bad)
    with pytest.raises(ck.CourseError, match="reply: no segment 40"):
        ex.steps(article_walk, 0, 40)
    assert ex.steps(article_walk, "SYN") == ex.steps(article_walk, 0)          # labels, as Walk.path takes them
    assert ex.hop_table(article_walk, "SYN-ACK") == ex.hop_table(article_walk, 1)
    assert ex.hop_rows(article_walk, "GET") == ex.hop_rows(article_walk, 3)


# -- honest knobs -------------------------------------------------------------------

def test_pod_mtu_is_one_field_per_node_where_the_nodes_differ(article):
    fields = {c.key: c for c in ex.controls(article, ["pod_mtu", "node_mtu", "vni"])}
    assert list(fields) == ["pod_mtu.xiaomi", "pod_mtu.meizu", "node_mtu", "vni"]
    assert fields["pod_mtu.xiaomi"].value == 1500 and fields["pod_mtu.meizu"].value == 1450
    assert fields["pod_mtu.meizu"].label == "pod MTU (meizu)"
    sc = ex.apply(article, {"pod_mtu.meizu": 1400})
    assert sc.node("xiaomi").docker.mtu == 1500 and sc.node("meizu").docker.mtu == 1400
    syn = ex.views(sc, "busybox", "eth0").tcpdump.splitlines()
    assert "mss 1460" in syn[0] and "mss 1360" in syn[1]          # 1400 - 40 on meizu only
    both = ex.apply(article, {"pod_mtu": 1400})
    assert {n.docker.mtu for n in both.nodes} == {1400}


def test_untouched_explorer_shows_busybox_mss_1460(article):
    values = {c.key: c.value for c in ex.controls(article)}
    v = ex.views(ex.apply(article, values), "meizu", "enp4s0")
    assert "mss 1460" in v.rows[0].line and "mss 1410" in v.rows[1].line


def _captures(sc):
    from coursekit.capture import pcap_bytes
    w = ck.walk(sc)
    return {(n, i): pcap_bytes(ck.capture(sc, n, i, walk=w)) for n, i in ex.interfaces(sc)}


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "data" / "scenarios").glob("*.yaml")))
def test_initial_values_give_byte_identical_captures(name):
    """What an untouched explorer shows is exactly the scenario, for every scenario in data/."""
    sc = ck.load_scenario(name)
    values = {c.key: c.value for c in ex.controls(sc)}
    # as the widget holds them: text fields give strings, checkboxes booleans
    typed = {k: (v if isinstance(v, bool) else str(v)) for k, v in values.items()}
    for vals in (values, typed):
        assert ex.apply(sc, vals) is sc
    # and applying the same values one knob at a time onto a scenario built afresh changes no byte
    fresh = ck.load_scenario(name)
    assert _captures(ex.apply(fresh, typed)) == _captures(sc)


def test_node_mtu_1400_warns_and_says_why_the_capture_did_not_change(article):
    before = ex.views(article, "meizu", "enp4s0")
    sc = ex.apply(article, {"node_mtu": 1400})
    after = ex.views(sc, "meizu", "enp4s0")
    assert after.tcpdump == before.tcpdump                          # the pinned pod MTUs win
    room = 1400 - 50
    assert f"meizu: pod MTU 1450 + 50 exceeds the node's MTU 1400: packets over {room} bytes will not fit " \
           "the overlay" in " ".join(after.warnings)
    why = ex.unchanged_reason(before, after, ["node_mtu"])
    assert "byte-identical" in why and "pinned" in why


def test_pod_mtu_9000_on_a_1500_underlay_warns(article):
    sc = ex.apply(article, {"pod_mtu.meizu": 9000, "pod_mtu.xiaomi": 1450})
    w = ex.warnings(sc)
    assert len(w) == 1 and w[0].startswith("meizu: pod MTU 9000 + 50 exceeds the node's MTU 1500")
    assert ex.warnings(ex.apply(article, {"pod_mtu": 1450})) == []


def test_unchanged_reason_is_empty_when_the_view_changed(article):
    before = ex.views(article, "meizu", "enp4s0")
    after = ex.views(ex.apply(article, {"vni": 7}), "meizu", "enp4s0")
    assert ex.unchanged_reason(before, after, ["vni"]) == ""
    inside = ex.views(ex.apply(article, {"vni": 7}), "nginx-1", "eth0")
    why = ex.unchanged_reason(ex.views(article, "nginx-1", "eth0"), inside, ["vni"])
    assert "only in the outer VXLAN header" in why


def test_menus_follow_the_applied_scenario(article):
    three = ex.apply(article, {"replicas": 3})
    menu = ex.interfaces(three)
    veths = [p.veth for p in three.pods_on("meizu")]
    assert len(veths) == 3 and all(("meizu", v) in menu for v in veths)
    assert ("nginx-3", "eth0") in menu
    seven = ex.apply(article, {"vni": 7})
    assert ("meizu", "flannel.7") in ex.interfaces(seven) and ("meizu", "flannel.1") not in ex.interfaces(seven)
    assert ex.same_interface(article, seven, "meizu", "flannel.1") == ("meizu", "flannel.7")
    assert ex.same_interface(three, article, "meizu", veths[2]) == ("meizu", "enp4s0")


def test_unknown_node_is_an_error_not_another_node(article):
    with pytest.raises(ck.CourseError, match="unknown node or pod 'oppo'"):
        ex.views(article, "oppo", "enp4s0")
    with pytest.raises(ck.CourseError, match="unknown interface 'eth0' on meizu"):
        ex.views(article, "meizu", "eth0")
    with pytest.raises(ck.CourseError, match="unknown node 'oppo'"):
        ex.apply(article, {"pod_mtu.oppo": 1400})


def test_broadcast_server_ip_with_replicas_names_the_field(article):
    with pytest.raises(ck.CourseError) as e:
        ex.apply(article, {"server_ip": "255.255.255.255", "replicas": 2})
    assert str(e.value).startswith("server pod IP: ")
    assert "internal" not in str(e.value)


# -- the packet list ------------------------------------------------------------------

def test_packet_rows_are_wireshark_columns_over_tcpdump_lines(article):
    v = ex.views(article, "meizu", "enp4s0")
    lines = v.tcpdump.splitlines()
    assert len(v.rows) == 11 and [r.no for r in v.rows] == list(range(1, 12))
    syn = v.rows[0]
    assert (syn.source, syn.destination, syn.protocol) == ("172.30.83.0", "172.30.20.2", "TCP in VXLAN")
    assert syn.time == "0.000000" and syn.length == 124 and syn.info.startswith("38200 \u2192 80 Flags [S], seq ")
    assert syn.line == lines[0] + "\n" + lines[1]                 # tcpdump's own text, two lines for VXLAN
    get = v.rows[3]
    assert get.protocol == "HTTP in VXLAN" and get.info.endswith("HTTP: GET / HTTP/1.1")
    # times are seconds since the first packet, from the model's microseconds
    t = [f.time_us for f in v.frames]
    assert v.rows[1].time == f"{(t[1] - t[0]) / 1e6:.6f}"


def test_a_filter_hides_rows_but_keeps_their_numbers(article):
    v = ex.views(article, "busybox", "eth0", flt="tcp[13] & 1 != 0")          # FIN segments
    assert [r.no for r in v.rows] == [7, 10] and v.selected == 7
    assert "Flags [F" in v.rows[0].info
    with pytest.raises(ck.CourseError, match="packet 3 is not in the list"):
        ex.views(article, "busybox", "eth0", flt="tcp[13] & 1 != 0", frame=3)


def test_dissection_follows_the_selected_packet(article):
    v = ex.views(article, "meizu", "enp4s0", frame=3)
    assert v.selected == 3 and v.frame is v.frames[2]
    assert v.dissection == ck.tree(v.frames[2])
    assert [ly.key for ly in v.layers][:4] == ["outer Ethernet", "outer IPv4", "outer UDP", "VXLAN"]


def test_arp_rows_with_cold_caches(article):
    v = ex.views(ex.apply(article, {"cold_caches": True}), "xiaomi", "docker0", flt="arp")
    assert v.rows and all(r.protocol == "ARP" for r in v.rows)
    assert (v.rows[0].source, v.rows[0].destination) == ("172.30.83.9", "172.30.83.1")
    assert v.rows[0].info.startswith("Request who-has 172.30.83.1 tell 172.30.83.9")


# -- the hop table and the stepper ----------------------------------------------------------

def test_hop_rows_mark_what_each_hop_changed(article_walk):
    rows = ex.hop_rows(article_walk, 0)
    assert [r.cells["TTL"] for r in rows] == ["64", "64", "64", "63", "63", "63", "63", "62", "62", "62"]
    dnat = rows[2]
    assert dnat.changed == {"destination"} and dnat.cells["destination"] == "172.30.20.2:80"
    assert {"source", "TTL", "src MAC", "dst MAC"} <= rows[3].changed
    assert rows[4].changed == {"encapsulation", "length"} and int(rows[4].cells["length"]) == 74 + 50
    assert rows[4].cells["encapsulation"].startswith("VXLAN VNI 1: 10.167.226.38:49008 \u2192 10.167.226.39:8472")
    assert rows[5].changed == frozenset()                        # the wire changes no byte
    assert any(d.stage == "fdb" for d in rows[4].decisions)
    with pytest.raises(ck.CourseError, match="no segment 99"):
        ex.hop_rows(article_walk, 99)


def test_stepper_lists_checksums_last(article_walk):
    st = ex.steps(article_walk, 0)
    v = ex.step_view(st[3])                          # SNAT: source, TTL, checksums
    sums = [c for c in v.changes if "chksum" in c]
    assert sums and v.changes[-len(sums):] == sums and set(sums) == v.minor
    assert v.where == ("xiaomi", "flannel.1")


# -- every input gets an answer ------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_VALUE = st.one_of(st.integers(-5, 70000), st.integers(), st.text(max_size=30), st.booleans(), st.none(),
                   st.sampled_from(["172.30.20.250", "255.255.255.255", "0.0.0.0", "172.30.83.1", "10.254.0.0",
                                    "1e3", " 80 ", "0x50", "\u0661\u0662", "9" * 40, "-1", "4789", "1400", "9000"]))
_KEYS = st.sampled_from([k.name for k in ex.knobs()] + ["pod_mtu.xiaomi", "pod_mtu.meizu", "node_mtu.oppo",
                                                         "vni.meizu", "colour", 7])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=st.dictionaries(_KEYS, _VALUE, max_size=4), frame=st.one_of(st.none(), st.integers(-2, 30)),
       where=st.sampled_from([("meizu", "enp4s0"), ("xiaomi", "flannel.1"), ("nginx-1", "eth0"),
                              ("busybox", "eth0"), ("oppo", "eth0"), ("meizu", "flannel.7")]),
       flt=st.sampled_from(["", "tcp", "udp port 8472", "port nonsense", "arp", "tcp[13] & 1 != 0", "ip and ("]),
       flags=st.sampled_from(["-nn", "", "-nn -e -v", "-x", "--bogus", "-vvv"]))
def test_every_knob_value_gets_a_view_or_one_message(article, values, frame, where, flt, flags):
    try:
        sc = ex.apply(article, values)
        v = ex.views(sc, *where, flt=flt, flags=flags, frame=frame)
    except ck.CourseError as e:
        assert e.field and "\n" not in str(e) and len(str(e)) < 400
        return
    assert v.selected in [r.no for r in v.rows] if v.rows else v.selected == 0
    assert v.hops.startswith("#") and ex.hop_rows(v.walk, 0)


def test_hop_rows_and_stepper_decode_vxlan_on_any_port(article):
    sc = ex.apply(article, {"vxlan_port": 5555})
    w = ck.walk(sc)
    rows = ex.hop_rows(w, 0)
    assert rows[4].cells["encapsulation"].startswith("VXLAN VNI 1: 10.167.226.38:")
    assert rows[4].cells["encapsulation"].split(" \u2192 ")[1].startswith("10.167.226.39:5555")
    assert rows[4].cells["source"] == "172.30.83.0:38200"              # the inner packet, found by the port
    enc = ex.step_view(ex.steps(w, 0)[4])
    assert enc.changes[0].startswith("+ outer Ethernet") and "VXLAN" in [ly.key for ly in enc.layers]
    v = ex.views(sc, "meizu", "enp4s0")
    assert "VXLAN" in [ly.key for ly in v.layers]
    assert "10.167.226.38 -> 10.167.226.39 udp/5555 vni 1" in v.hops
