"""VXLAN encapsulation as the Linux kernel does it for flannel.1.

``vxlan_xmit`` looks up the inner destination MAC in flannel.1's FDB to find
the remote node, then ``vxlan_xmit_one`` builds::

    outer Ethernet (14) | outer IPv4 (20) | UDP (8) | VXLAN (8) | inner frame
      node NIC MACs       node IPs, TTL     sport=hash(inner flow)   flags 0x08
                          64, DF clear      dport=8472 (kernel        VNI 1
                                            default, not IANA 4789)

* UDP source port: ``udp_flow_src_port`` -- a hash of the inner flow
  mapped into the ephemeral range, so one TCP connection keeps one outer
  port (ECMP-friendly) while the exact number depends on a boot-time random
  seed.  The model computes it with the kernel's formula; a scenario may pin
  an observed value.
* TTL: ``vxlan->cfg.ttl`` is 0 for flannel, so the route's hop limit
  (``net.ipv4.ip_default_ttl``, 64).  DF: not set (flannel sets no ``df``).
* UDP checksum: computed by default since Linux 4.6 (commit 6ceb31ca5f65,
  "Support outer IPv4 Tx checksums by default"); before that zero unless
  ``udpcsum`` was asked for -- the scenario's ``flannel.udpChecksum``.
  (``ip -d link`` on a 6.x kernel prints ``udpcsum`` for a device created
  without the option.)

MTU: the underlay's MTU limits the **outer IP packet**, which excludes the
outer Ethernet header and includes the inner one, so the overlay MTU is the
underlay MTU minus ``VXLAN_HEADROOM`` (20 + 8 + 8 + 14: "IP header + UDP +
VXLAN + Ethernet header") -- 1450 on a 1500 NIC, and minus
``VXLAN6_HEADROOM`` (40 + 8 + 8 + 14) over IPv6 -- 1430.  The bytes a frame
grows by on the wire are another sum that happens to be 50 too: outer
Ethernet 14 + IP 20 + UDP 8 + VXLAN 8; over an 802.1Q underlay 54, with the
MTU still 1450 (the tag is outside the MTU).  See :func:`encapsulation`.

Taught in: 01-physical-nic.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from .errors import CourseError

__all__ = ["jhash_3words", "flow_hash", "udp_flow_src_port", "VXLAN_FLAGS", "VXLAN_HEADROOM",
           "VXLAN6_HEADROOM", "Encapsulation", "encapsulation", "VXLAN_HEADER", "inner_frame", "decode"]

ETH_HLEN, VLAN_HLEN, IPV4_HLEN, IPV6_HLEN, UDP_HLEN, VXLAN_HLEN = 14, 4, 20, 40, 8, 8

#: include/net/vxlan.h: ``#define VXLAN_HEADROOM (20 + 8 + 8 + 14)`` -- what the
#: kernel subtracts from the lower device's MTU when no MTU is given (flannel
#: v0.11 gives none); flannel's ``encapOverhead = 50`` is the same number.
VXLAN_HEADROOM = IPV4_HLEN + UDP_HLEN + VXLAN_HLEN + ETH_HLEN
#: ``#define VXLAN6_HEADROOM (40 + 8 + 8 + 14)`` for an IPv6 underlay.
VXLAN6_HEADROOM = IPV6_HLEN + UDP_HLEN + VXLAN_HLEN + ETH_HLEN


@dataclass(frozen=True)
class Encapsulation:
    """What VXLAN costs on one underlay: the overlay MTU and the bytes each frame grows by."""
    underlay_mtu: int
    ip_version: int
    vlan: bool
    outer_ethernet: int       # 14, or 18 with an 802.1Q tag
    outer_ip: int             # 20 (IPv4) or 40 (IPv6)
    udp: int = UDP_HLEN
    vxlan: int = VXLAN_HLEN
    inner_ethernet: int = ETH_HLEN

    @property
    def headroom(self) -> int:
        """Bytes of the outer IP packet that are not the inner IP packet (the MTU cost)."""
        return self.outer_ip + self.udp + self.vxlan + self.inner_ethernet

    @property
    def overlay_mtu(self) -> int:
        """The largest inner IP packet: ``inner IP + headroom <= underlay MTU``."""
        return self.underlay_mtu - self.headroom

    @property
    def frame_overhead(self) -> int:
        """Bytes a frame grows by between flannel.1 and the NIC: the new outer headers."""
        return self.outer_ethernet + self.outer_ip + self.udp + self.vxlan

    def derivation(self) -> str:
        """Both sums, in words, for a chapter to print."""
        ip = f"outer IPv{self.ip_version} {self.outer_ip}"
        eth = f"outer Ethernet {self.outer_ethernet}" + (" (with an 802.1Q tag)" if self.vlan else "")
        return (f"overlay MTU: inner IP + inner Ethernet {self.inner_ethernet} + VXLAN {self.vxlan} + "
                f"UDP {self.udp} + {ip} <= underlay MTU {self.underlay_mtu}  ->  inner IP <= "
                f"{self.underlay_mtu} - {self.headroom} = {self.overlay_mtu}\n"
                f"per-frame overhead: {eth} + {ip} + UDP {self.udp} + VXLAN {self.vxlan} = "
                f"{self.frame_overhead} bytes")


def encapsulation(underlay_mtu: int = 1500, ip_version: int = 4, vlan: bool = False) -> Encapsulation:
    """The overlay MTU and per-frame overhead of VXLAN over an underlay.

    >>> encapsulation(1500).overlay_mtu, encapsulation(1500).frame_overhead
    (1450, 50)
    >>> encapsulation(1500, vlan=True).overlay_mtu, encapsulation(1500, vlan=True).frame_overhead
    (1450, 54)
    >>> encapsulation(1500, ip_version=6).overlay_mtu
    1430

    The overlay MTU is what the kernel gives a VXLAN device created without
    an MTU (``lowerdev->mtu - VXLAN_HEADROOM``, or ``VXLAN6_HEADROOM``), as
    flannel v0.11 creates flannel.1; flannel writes the same figure to
    subnet.env as ``FLANNEL_MTU`` (``MTU() = ExtIface.Iface.MTU - encapOverhead``)
    for Docker's ``--mtu``.

    Taught in: 01-physical-nic.
    """
    if isinstance(ip_version, bool) or ip_version not in (4, 6):
        raise CourseError("ip_version", f"{ip_version!r} is not an IP version", "4, 6")
    if not isinstance(vlan, bool):
        raise CourseError("vlan", f"{vlan!r} is not true or false", "True, False")
    e = Encapsulation(underlay_mtu=0, ip_version=ip_version, vlan=vlan,
                      outer_ethernet=ETH_HLEN + (VLAN_HLEN if vlan else 0),
                      outer_ip=IPV4_HLEN if ip_version == 4 else IPV6_HLEN)
    # the smallest underlay that still leaves the 68 bytes every IPv4 link must carry (RFC 791)
    low = e.headroom + 68
    if isinstance(underlay_mtu, bool) or not isinstance(underlay_mtu, int) or not low <= underlay_mtu <= 65535:
        raise CourseError("underlay_mtu", f"{underlay_mtu!r} leaves no room for an inner IPv4 packet"
                          if isinstance(underlay_mtu, int) and not isinstance(underlay_mtu, bool)
                          else f"{underlay_mtu!r} is not an MTU", f"{low}..65535")
    return Encapsulation(underlay_mtu, ip_version, vlan, e.outer_ethernet, e.outer_ip)

#: The VXLAN "I" flag: a valid VNI follows (RFC 7348).
VXLAN_FLAGS = 0x08

_M = 0xFFFFFFFF
_JHASH_INITVAL = 0xDEADBEEF


def _rol32(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def jhash_3words(a: int, b: int, c: int, initval: int) -> int:
    """The kernel's ``jhash_3words`` (Bob Jenkins' lookup3 ``__jhash_final``)."""
    a = (a + _JHASH_INITVAL + (3 << 2) + initval) & _M
    b = (b + _JHASH_INITVAL + (3 << 2) + initval) & _M
    c = (c + _JHASH_INITVAL + (3 << 2) + initval) & _M
    c ^= b; c = (c - _rol32(b, 14)) & _M
    a ^= c; a = (a - _rol32(c, 11)) & _M
    b ^= a; b = (b - _rol32(a, 25)) & _M
    c ^= b; c = (c - _rol32(b, 16)) & _M
    a ^= c; a = (a - _rol32(c, 4)) & _M
    b ^= a; b = (b - _rol32(a, 14)) & _M
    c ^= b; c = (c - _rol32(b, 24)) & _M
    return c


def flow_hash(src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address, sport: int, dport: int,
              seed: int) -> int:
    """``skb_get_hash`` of an inner TCP/UDP flow (the 3.10 kernel's symmetric form).

    Addresses and ports are put in a canonical order first, so both
    directions of a connection hash alike; a zero hash becomes 1.
    """
    s, d = int(src), int(dst)
    ps, pd = sport, dport
    if d < s or (d == s and pd < ps):
        s, d, ps, pd = d, s, pd, ps
    # keys.ports holds the two 16-bit ports in network order, read as a u32
    # on a little-endian machine
    ports = int.from_bytes(ps.to_bytes(2, "big") + pd.to_bytes(2, "big"), "little")
    dst_w = int.from_bytes(d.to_bytes(4, "big"), "little")
    src_w = int.from_bytes(s.to_bytes(4, "big"), "little")
    h = jhash_3words(dst_w, src_w, ports, seed)
    return h or 1


def udp_flow_src_port(flow: int, port_min: int, port_max: int) -> int:
    """``udp_flow_src_port``: the outer source port for an inner flow hash.

    ``hash ^= hash << 16`` mixes the high bits in, then the 32-bit hash
    scales into [min, max).
    """
    h = (flow ^ (flow << 16)) & _M
    return ((h * (port_max - port_min)) >> 32) + port_min


#: Bytes of the VXLAN header (flags, reserved, VNI, reserved).
VXLAN_HEADER = 8


def inner_frame(frame: bytes, port: int) -> bytes | None:
    """The inner Ethernet frame of an IPv4/UDP/VXLAN frame sent to UDP ``port``, or None.

    Found by offsets and the scenario's port, as the kernel's VXLAN socket
    does -- never by a table of "well-known" ports (scapy decodes VXLAN only
    on 4789, 4790, 6633, 8472 and 48879, so any other ``flannel.port``
    would go undecoded).
    """
    b = bytes(frame)
    if len(b) < 34 or b[12:14] != b"\x08\x00" or b[14] >> 4 != 4 or b[23] != 17:
        return None
    ihl = (b[14] & 0x0F) * 4
    udp = 14 + ihl
    if ihl < 20 or len(b) < udp + 8 + VXLAN_HEADER + 14:
        return None
    if int.from_bytes(b[udp + 2:udp + 4], "big") != port:
        return None
    return b[udp + 8 + VXLAN_HEADER:]


def decode(frame, port: int | None):
    """A scapy Ether of ``frame`` whose UDP payload to ``port`` is decoded as VXLAN.

    ``port=None`` leaves scapy's own guess (by well-known port), for frames
    that come without a scenario.
    """
    from scapy.layers.inet import UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN
    pkt = Ether(bytes(frame))
    if port is None or inner_frame(bytes(frame), port) is None:
        return pkt
    u = pkt.getlayer(UDP)
    if u is None or isinstance(u.payload, VXLAN):
        return pkt
    data = bytes(u.payload)
    u.remove_payload()
    u.add_payload(VXLAN(data))
    return pkt


def node_seed(seed: int, node: str) -> int:
    """Each node's kernel draws its own random seed at boot."""
    return seed ^ int.from_bytes(hashlib.sha256(node.encode()).digest()[:4], "big")
