"""The pure functions behind the explorers and the stepper, tested without widgets."""

from __future__ import annotations

import pytest

import coursekit as ck
from coursekit import explore as ex


def test_current_reads_the_article(article):
    now = ex.current(article)
    assert now["service_ip"] == "10.254.40.119" and now["service_port"] == 4432
    assert now["target_port"] == 80 and now["vxlan_port"] == 8472 and now["replicas"] == 1
    assert now["pod_mtu"] == 1450 and now["node_mtu"] == 1500 and now["masquerade"] is True


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
