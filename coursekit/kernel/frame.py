"""Frames as bytes: the offsets the kernel reads and the rewrites it makes.

Everything here works on ``bytes``/``bytearray`` of an Ethernet frame
(14-byte header, IPv4, then TCP or UDP).  NAT and TTL rewrites update the
checksums incrementally (RFC 1624, ``csum_replace4``/``inet_proto_csum_replace4``
in the kernel) instead of recomputing them; VXLAN encapsulation builds the
outer headers with full checksums (RFC 1071), as ``udp_tunnel_xmit_skb``
does.  scapy is not used here.

Taught in: 06-the-whole-walk (the engine behind the walk).
"""

from __future__ import annotations

import ipaddress
import struct
import sys

from ..netfilter import Tuple5

__all__ = ["csum", "csum_update", "tuple_of", "set_tuple", "set_macs", "dec_ttl", "vxlan_encap",
           "vxlan_header", "ETH_P_IP", "ETH_P_ARP", "mac_bytes", "mac_str", "udp_frame"]

ETH_HLEN = 14
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
IPPROTO_TCP, IPPROTO_UDP = 6, 17
_PROTO = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp"}
_PROTO_NUM = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP}


class _Addr(ipaddress.IPv4Address):
    """An IPv4Address that formats itself once (a walk prints the same few addresses in every decision).

    Equal to, hashes like, and prints like the IPv4Address it stands for.
    """
    __slots__ = ("_text", "_hash")

    def __hash__(self) -> int:
        try:
            return self._hash
        except AttributeError:
            self._hash = ipaddress.IPv4Address.__hash__(self)
            return self._hash

    __eq__ = ipaddress.IPv4Address.__eq__             # (a class defining __hash__ keeps its parent's __eq__)

    def __str__(self) -> str:
        try:
            return self._text
        except AttributeError:                      # made by ipaddress itself (``a + 1``)
            self._text = ipaddress.IPv4Address.__str__(self)
            return self._text

    def __format__(self, fmt: str) -> str:
        return str(self) if not fmt else ipaddress.IPv4Address.__format__(self, fmt)

    def __repr__(self) -> str:
        return f"IPv4Address('{self}')"

    def __reduce__(self):
        return ipaddress.IPv4Address, (int(self),)


_ADDR: dict[bytes, ipaddress.IPv4Address] = {}


def addr(b) -> ipaddress.IPv4Address:
    """The IPv4 address in 4 bytes (memoised: a walk meets the same few addresses again and again)."""
    b = bytes(b)
    a = _ADDR.get(b)
    if a is None:
        if len(_ADDR) > 4096:
            _ADDR.clear()
        a = _ADDR[b] = _Addr(b)
        str(a)
    return a


def src_of(b) -> ipaddress.IPv4Address:
    return addr(b[26:30])


def dst_of(b) -> ipaddress.IPv4Address:
    return addr(b[30:34])


_MAC: dict[str, bytes] = {}


def mac_bytes(mac: str) -> bytes:
    b = _MAC.get(mac)
    if b is None:
        if len(_MAC) > 4096:
            _MAC.clear()
        b = _MAC[mac] = bytes.fromhex(mac.replace(":", ""))
    return b


def mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def csum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(memoryview(data).cast("H"))          # native order; folded and swapped below
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    total = ~total & 0xFFFF
    return int.from_bytes(total.to_bytes(2, sys.byteorder), "big")


def csum_update(c: int, old: bytes, new: bytes) -> int:
    """RFC 1624 eqn. 3: ``HC' = ~(~HC + ~m + m')`` over 16-bit words."""
    s = ~c & 0xFFFF
    for i in range(0, len(old), 2):
        s += (~((old[i] << 8) | old[i + 1]) & 0xFFFF) + ((new[i] << 8) | new[i + 1])
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ethertype(b) -> int:
    return (b[12] << 8) | b[13]


def l4_offset(b) -> int:
    return ETH_HLEN + (b[14] & 0x0F) * 4


_TUPLES: dict[bytes, Tuple5] = {}


def tuple_of(b) -> Tuple5:
    """The 5-tuple conntrack keys on (TCP and UDP; other protocols get ports 0).

    Memoised by its 13 bytes (protocol, addresses, ports): a walk's packets share a few tuples.
    """
    proto = b[23]
    l4 = ETH_HLEN + (b[14] & 0x0F) * 4
    key = bytes(b[23:24] + b[26:34] + b[l4:l4 + 4]) if proto in _PROTO else bytes(b[23:24] + b[26:34])
    t = _TUPLES.get(key)
    if t is None:
        src = addr(b[26:30])
        dst = addr(b[30:34])
        if proto in _PROTO:
            t = Tuple5(_PROTO[proto], src, (b[l4] << 8) | b[l4 + 1], dst, (b[l4 + 2] << 8) | b[l4 + 3])
        else:
            t = Tuple5(str(proto), src, 0, dst, 0)
        if len(_TUPLES) > 4096:
            _TUPLES.clear()
        _TUPLES[key] = t
    return t


def _l4_csum_off(b) -> int | None:
    proto, l4 = b[23], l4_offset(b)
    if proto == IPPROTO_TCP:
        return l4 + 16
    if proto == IPPROTO_UDP:
        return l4 + 6 if (b[l4 + 6] or b[l4 + 7]) else None    # 0: no checksum (UDP over IPv4)
    return None


def set_tuple(b: bytearray, t: Tuple5) -> None:
    """Rewrite addresses and ports (NAT), updating the IP and L4 checksums incrementally."""
    l4 = l4_offset(b)
    old_ip = bytes(b[26:34])
    new_ip = t.src.packed + t.dst.packed
    old_ports = bytes(b[l4:l4 + 4])
    new_ports = t.sport.to_bytes(2, "big") + t.dport.to_bytes(2, "big") if b[23] in _PROTO else old_ports
    if old_ip == new_ip and old_ports == new_ports:
        return
    c = (b[24] << 8) | b[25]
    c = csum_update(c, old_ip, new_ip)
    b[24], b[25] = c >> 8, c & 0xFF
    off = _l4_csum_off(b)
    b[26:34] = new_ip
    b[l4:l4 + 4] = new_ports
    if off is not None:
        c = (b[off] << 8) | b[off + 1]
        c = csum_update(c, old_ip + old_ports, new_ip + new_ports)
        if c == 0 and b[23] == IPPROTO_UDP:
            c = 0xFFFF
        b[off], b[off + 1] = c >> 8, c & 0xFF


def set_macs(b: bytearray, src: str | None = None, dst: str | None = None) -> None:
    if dst:
        b[0:6] = mac_bytes(dst)
    if src:
        b[6:12] = mac_bytes(src)


def dec_ttl(b: bytearray) -> int:
    """``ip_decrease_ttl``: TTL - 1 and the IP checksum updated; returns the new TTL."""
    old = bytes(b[22:24])
    b[22] -= 1
    c = csum_update((b[24] << 8) | b[25], old, bytes(b[22:24]))
    b[24], b[25] = c >> 8, c & 0xFF
    return b[22]


def vxlan_header(vni: int) -> bytes:
    """RFC 7348: flags (I) | reserved 24 | VNI 24 | reserved 8."""
    return b"\x08\0\0\0" + vni.to_bytes(3, "big") + b"\0"


def vxlan_encap(inner: bytes, *, src_mac: str, dst_mac: str, src_ip: ipaddress.IPv4Address,
                dst_ip: ipaddress.IPv4Address, ip_id: int, tos: int, ttl: int, sport: int, dport: int,
                vni: int, udp_csum: bool) -> bytes:
    """Outer Ethernet/IPv4/UDP/VXLAN around ``inner`` (``vxlan_build_skb`` + ``udp_tunnel_xmit_skb``)."""
    udp_len = 8 + 8 + len(inner)
    iph = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + udp_len, ip_id, 0, ttl, IPPROTO_UDP, 0,
                                src_ip.packed, dst_ip.packed))
    iph[10:12] = csum(bytes(iph)).to_bytes(2, "big")
    payload = vxlan_header(vni) + inner
    ck = 0
    if udp_csum:
        pseudo = src_ip.packed + dst_ip.packed + struct.pack("!BBH", 0, IPPROTO_UDP, udp_len)
        ck = csum(pseudo + struct.pack("!HHHH", sport, dport, udp_len, 0) + payload) or 0xFFFF
    return (mac_bytes(dst_mac) + mac_bytes(src_mac) + b"\x08\x00" + bytes(iph)
            + struct.pack("!HHHH", sport, dport, udp_len, ck) + payload)


_OPT = {"NOP": lambda v: b"\x01", "EOL": lambda v: b"\x00",
        "MSS": lambda v: struct.pack("!BBH", 2, 4, v), "WScale": lambda v: struct.pack("!BBB", 3, 3, v),
        "SAckOK": lambda v: b"\x04\x02", "Timestamp": lambda v: struct.pack("!BBII", 8, 10, *v)}


def tcp_frame(src_mac: str, dst_mac: str, t: Tuple5, ttl: int, ip_id: int, seg, options, df: bool = True) -> bytes | None:
    """An Ethernet/IPv4/TCP frame as bytes, every field set (what ``datapath.build_frame`` builds with scapy).

    ``None`` for an option this encoder does not know (the caller then asks scapy).
    """
    try:
        opts = b"".join(_OPT[k](v) for k, v in options)
    except KeyError:
        return None
    opts += b"\0" * (-len(opts) % 4)
    payload = seg.payload or b""
    hl = 20 + len(opts)
    tcp = bytearray(struct.pack("!HHIIBBHHH", t.sport, t.dport, seg.seq, seg.ack, (hl // 4) << 4 | (seg.flags >> 8),
                                seg.flags & 0xFF, seg.window, 0, 0) + opts + payload)
    pseudo = t.src.packed + t.dst.packed + struct.pack("!BBH", 0, IPPROTO_TCP, len(tcp))
    tcp[16:18] = csum(pseudo + bytes(tcp)).to_bytes(2, "big")
    iph = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), ip_id, 0x4000 if df else 0, ttl,
                                IPPROTO_TCP, 0, t.src.packed, t.dst.packed))
    iph[10:12] = csum(bytes(iph)).to_bytes(2, "big")
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + b"\x08\x00" + bytes(iph) + bytes(tcp)


def udp_frame(src_mac: str, dst_mac: str, t: Tuple5, ttl: int, ip_id: int, payload: bytes, df: bool = True) -> bytes:
    """An Ethernet/IPv4/UDP datagram as bytes, every field set, UDP checksum computed (RFC 768)."""
    udp_len = 8 + len(payload)
    pseudo = t.src.packed + t.dst.packed + struct.pack("!BBH", 0, IPPROTO_UDP, udp_len)
    ck = csum(pseudo + struct.pack("!HHHH", t.sport, t.dport, udp_len, 0) + payload) or 0xFFFF
    iph = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ip_id, 0x4000 if df else 0, ttl,
                                IPPROTO_UDP, 0, t.src.packed, t.dst.packed))
    iph[10:12] = csum(bytes(iph)).to_bytes(2, "big")
    return (mac_bytes(dst_mac) + mac_bytes(src_mac) + b"\x08\x00" + bytes(iph)
            + struct.pack("!HHHH", t.sport, t.dport, udp_len, ck) + payload)
