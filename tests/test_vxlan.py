"""VXLAN's cost: the overlay MTU and the bytes a frame grows by are two different sums.

The underlay MTU limits the outer IP packet (outer Ethernet excluded, inner
Ethernet included), so the MTU cost is IP + UDP + VXLAN + inner Ethernet, the
kernel's VXLAN_HEADROOM; the frame grows by outer Ethernet + IP + UDP + VXLAN.
Both are 50 over plain IPv4 Ethernet, which is why they are easy to confuse:
an 802.1Q tag or an IPv6 underlay pulls them apart.
"""

import os
import subprocess

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

import coursekit as ck
from coursekit.vxlan import VXLAN6_HEADROOM, VXLAN_HEADROOM, encapsulation
from conftest import require, require_tool


@pytest.mark.parametrize("mtu, ipv, vlan, overlay, overhead", [
    (1500, 4, False, 1450, 50),     # the article: flannel.1 MTU 1450, frames +50
    (1500, 4, True, 1450, 54),      # 802.1Q: the tag is outside the MTU, inside the frame
    (1500, 6, False, 1430, 70),     # IPv6 underlay: 40-byte outer header
    (1500, 6, True, 1430, 74),
    (9000, 4, False, 8950, 50),     # jumbo frames
    (1400, 4, False, 1350, 50),     # chapter 01's "node MTU 1400"
])
def test_overlay_mtu_and_frame_overhead(mtu, ipv, vlan, overlay, overhead):
    e = encapsulation(mtu, ip_version=ipv, vlan=vlan)
    assert (e.overlay_mtu, e.frame_overhead) == (overlay, overhead)
    # the outer IP packet of a full-size inner packet is exactly the underlay MTU
    assert overlay + e.inner_ethernet + e.vxlan + e.udp + e.outer_ip == mtu


def test_kernel_headroom_constants():
    assert VXLAN_HEADROOM == 20 + 8 + 8 + 14 == 50
    assert VXLAN6_HEADROOM == 40 + 8 + 8 + 14 == 70


def test_the_derivation_names_both_sums():
    text = encapsulation(1500, vlan=True).derivation()
    assert "inner IP <= 1500 - 50 = 1450" in text
    assert "outer Ethernet 18 (with an 802.1Q tag)" in text and "= 54 bytes" in text


@pytest.mark.parametrize("kwargs, field", [
    (dict(underlay_mtu=117), "underlay_mtu"),
    (dict(underlay_mtu="1500"), "underlay_mtu"),
    (dict(underlay_mtu=True), "underlay_mtu"),
    (dict(underlay_mtu=70000), "underlay_mtu"),
    (dict(ip_version=5), "ip_version"),
    (dict(vlan="yes"), "vlan"),
])
def test_encapsulation_refuses_with_one_message(kwargs, field):
    with pytest.raises(ck.CourseError) as e:
        encapsulation(**kwargs)
    assert e.value.field == field and e.value.allowed


def test_the_model_uses_the_same_sums(article, article_walk):
    """flannel.1's MTU in the scenario and the bytes the walk adds are the derivation's."""
    e = encapsulation(article.mtu_of("meizu", "enp4s0"))
    assert article.mtu_of("meizu", "flannel.1") == e.overlay_mtu
    for o in article_walk.at("meizu", "enp4s0"):
        p = Ether(o.frame)
        if VXLAN in p:
            assert len(o.frame) - len(bytes(p[VXLAN].payload)) == e.frame_overhead
            inner_ip = Ether(bytes(p[VXLAN].payload))[IP]
            assert p[IP].len == inner_ip.len + e.headroom        # what the underlay MTU limits
    small = ck.explore.apply(article, {"node_mtu": 1400})
    assert small.mtu_of("xiaomi", "flannel.1") == encapsulation(1400).overlay_mtu == 1350


def _ip(ns, *args):
    return subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True, timeout=20)


def test_the_kernel_derives_the_same_mtu():
    """A VXLAN device made as flannel v0.11 makes flannel.1 (no MTU given) on a real kernel.

    Over an IPv4 lower device the kernel gives 1450, over IPv6 1430 -- the
    same figures :func:`encapsulation` computes.  An 802.1Q device keeps its
    parent's MTU (1500), so a VXLAN on it gets 1450 too, when the kernel has
    the 8021q module.
    """
    require(os.geteuid() == 0, "creating a network namespace needs root")
    require_tool("ip")
    ns = f"pwtest-vxlan-{os.getpid()}"
    assert subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode == 0
    try:
        for args in (["link", "add", "u0", "mtu", "1500", "type", "veth", "peer", "name", "u1"],
                     ["link", "set", "u0", "up"], ["addr", "add", "10.9.0.1/24", "dev", "u0"],
                     ["addr", "add", "fd00::1/64", "dev", "u0", "nodad"],
                     ["link", "add", "flannel.1", "type", "vxlan", "id", "1", "local", "10.9.0.1", "dev", "u0",
                      "dstport", "8472", "nolearning"],
                     ["link", "add", "vx6", "type", "vxlan", "id", "2", "local", "fd00::1", "dev", "u0",
                      "dstport", "8472", "nolearning"]):
            r = _ip(ns, *args)
            assert r.returncode == 0, r.stderr
        mtu = {d: int(_ip(ns, "link", "show", d).stdout.split(" mtu ")[1].split()[0]) for d in ("flannel.1", "vx6")}
        assert mtu == {"flannel.1": encapsulation(1500).overlay_mtu, "vx6": encapsulation(1500, 6).overlay_mtu}
        # a kernel VXLAN device made without "noudpcsum" computes the outer UDP checksum (Linux >= 4.6)
        assert " udpcsum " in _ip(ns, "-d", "link", "show", "flannel.1").stdout
        # the UDP socket on 8472 belongs to the kernel's VXLAN driver: ss names no process (article 二.3
        # says "the port flannel listens on"; no flanneld runs here at all)
        assert _ip(ns, "link", "set", "flannel.1", "up").returncode == 0
        ss = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hulpn"], capture_output=True, text=True, timeout=20)
        lines = [ln for ln in ss.stdout.splitlines() if ":8472 " in ln]
        assert lines and not any("users:" in ln for ln in lines), ss.stdout
        vlan = _ip(ns, "link", "add", "link", "u0", "name", "u0.10", "type", "vlan", "id", "10")
        if vlan.returncode == 0:
            assert _ip(ns, "addr", "add", "10.9.1.1/24", "dev", "u0.10").returncode == 0
            assert _ip(ns, "link", "add", "vxq", "type", "vxlan", "id", "3", "local", "10.9.1.1", "dev", "u0.10",
                       "dstport", "8472", "nolearning").returncode == 0
            out = _ip(ns, "link", "show", "vxq").stdout
            assert f" mtu {encapsulation(1500, vlan=True).overlay_mtu} " in out
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
