"""Dissection: offsets agree with the bytes, layers are where a networking engineer expects them."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vxlan import VXLAN

import coursekit as ck
from coursekit.dissect import changes, dissect, hexdump, tree


def _vxlan_request(walk, sc):
    return next(o for o in walk.at("meizu", "enp4s0") if o.segment == 3)


def test_vxlan_frame_layers_and_offsets(article, article_walk):
    o = _vxlan_request(article_walk, article)
    layers = dissect(o)
    assert [ly.key for ly in layers] == ["outer Ethernet", "outer IPv4", "outer UDP", "VXLAN",
                                         "Ethernet", "IPv4", "TCP", "HTTP"]
    assert [(ly.offset, ly.length) for ly in layers[:5]] == [(0, 14), (14, 20), (34, 8), (42, 8), (50, 14)]
    assert layers[-1].length == 81                       # busybox wget's request
    assert layers[-1].end == len(o.frame)
    assert [ly.inner for ly in layers] == [False] * 4 + [True] * 4


@pytest.mark.parametrize("iface", ["enp4s0", "flannel.1", "docker0"])
def test_every_field_value_matches_its_bytes(article_walk, iface):
    """Each byte-aligned field's slice, parsed by scapy alone, gives the field's value."""
    for o in article_walk.at("meizu", iface):
        data = o.frame
        for ly in dissect(data):
            covered = sum(f.bits for f in ly.fields)
            assert covered == ly.length * 8, (ly.key, covered, ly.length)
            for f in ly.fields:
                assert f.offset + f.length <= len(data)
        pkt = Ether(data)
        ip = dissect(data)
        by = {ly.key: {f.name: f for f in ly.fields} for ly in ip}
        inner_ip = pkt[VXLAN].payload[IP] if pkt.haslayer(VXLAN) else pkt[IP]
        src = by["IPv4"]["src"]
        assert data[src.offset:src.offset + 4] == bytes(map(int, inner_ip.src.split(".")))
        ttl = by["IPv4"]["ttl"]
        assert data[ttl.offset] == inner_ip.ttl
        if pkt.haslayer(VXLAN):
            vni = by["VXLAN"]["vni"]
            assert int.from_bytes(data[vni.offset:vni.offset + 3], "big") == pkt[VXLAN].vni
            dport = by["outer UDP"]["dport"]
            assert int.from_bytes(data[dport.offset:dport.offset + 2], "big") == 8472


def test_bit_fields_have_bit_offsets(article_walk):
    ly = next(ly for ly in dissect(article_walk.at("meizu", "docker0")[0]) if ly.key == "IPv4")
    f = {x.name: x for x in ly.fields}
    assert (f["version"].bit_offset, f["version"].bits) == (0, 4)
    assert (f["ihl"].bit_offset, f["ihl"].bits) == (4, 4)
    assert (f["flags"].bits, f["frag"].bits) == (3, 13)
    assert f["flags"].value == "0x02 (DF)"             # the pod's TCP sets DF


def test_tree_and_hexdump_text(article_walk):
    o = _vxlan_request(article_walk, None)
    t = tree(o)
    assert "── inner frame: 147 bytes" in t
    # the inner frame is what xiaomi's VTEP encapsulated, not what busybox sent: masqueraded, routed once
    assert "as the pod sent it" not in t and "VTEP encapsulated it" in t
    assert "172.30.83.0 > 172.30.20.2, TTL 63" in t and "172.30.83.9" not in t
    assert "vni        0x1" in t
    assert "TS val" in t
    h = hexdump(o)
    assert h.splitlines()[0] == "outer Ethernet [0:14] 14 bytes"
    assert "VXLAN [42:50] 8 bytes" in h
    assert "  002a  08 00 00 00 00 00 01 00" in h             # flags I, VNI 1, at offset 42


def test_changes_across_a_routed_hop_and_encapsulation(article_walk):
    path = article_walk.path(0)
    veth, docker0, flannel, enp = path[1], path[2], path[3], path[4]
    # br_netfilter: the DNAT happens inside the bridge, before tcpdump on docker0 sees the frame
    dnat = {(c.layer, c.field): c for c in changes(veth.frame, docker0.frame)}
    assert dnat[("IPv4", "dst")].after == "172.30.20.2" and dnat[("TCP", "dport")].after == "80 (http)"
    assert ("IPv4", "ttl") not in dnat                           # not routed yet
    ch = {(c.layer, c.field): c for c in changes(docker0.frame, flannel.frame)}
    assert ch[("IPv4", "ttl")].before == "64" and ch[("IPv4", "ttl")].after == "63"
    assert ch[("IPv4", "src")].after == "172.30.83.0"           # MASQUERADE
    assert ("IPv4", "dst") not in ch
    assert ("TCP", "seq") not in ch
    added = changes(flannel.frame, enp.frame)
    assert [c.layer for c in added] == ["outer Ethernet", "outer IPv4", "outer UDP", "VXLAN"]
    assert all(c.before is None for c in added)
    assert changes(enp.frame, path[5].frame) == []              # the wire changes nothing


def test_arp_and_padding():
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff", type=0x0806)
                  / ARP(op=1, hwsrc="02:00:00:00:00:01", psrc="10.0.0.1", hwdst="00:00:00:00:00:00",
                        pdst="10.0.0.2")) + b"\0" * 18
    keys = [ly.key for ly in dissect(frame)]
    assert keys == ["Ethernet", "ARP", "Padding"]
    assert dissect(frame)[1].length == 28


def test_bad_input_is_a_course_error():
    with pytest.raises(ck.CourseError, match="frame: 3 bytes"):
        dissect(b"abc")
    with pytest.raises(ck.CourseError, match="cannot dissect a int"):
        tree(5)


def test_udp_checksum_field_present(article_walk):
    o = article_walk.at("meizu", "enp4s0")[0]
    f = {x.name: x for x in next(ly for ly in dissect(o) if ly.key == "outer UDP").fields}
    assert int(f["chksum"].value, 16) == Ether(o.frame)[UDP].chksum != 0
    assert Ether(o.frame)[TCP].sport == 38200
