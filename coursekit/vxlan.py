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
* UDP checksum: computed since Linux 4.6 (commit 6ceb31ca5f65); zero
  before -- the scenario's ``flannel.udpChecksum``.

Taught in: 01-physical-nic.
"""

from __future__ import annotations

import hashlib
import ipaddress

__all__ = ["jhash_3words", "flow_hash", "udp_flow_src_port", "VXLAN_FLAGS", "VXLAN_HEADER", "inner_frame",
           "decode"]

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
