"""Explain real captures: every packet placed on its hop, every header change named.

The course's stepper, fed by what a learner captured on their own nodes.
:func:`explain` reads pcap/pcapng files (one per interface, named
``<node>-<interface>.pcap`` as the course's own, or pcapng files whose
interfaces carry names, or ``tcpdump -i any`` files), decodes every frame
down to the innermost IPv4 packet -- through Ethernet, Linux cooked (SLL,
SLL2), VLAN tags, VXLAN on any of the given UDP ports (flannel's 8472,
IANA's 4789, ...) and IP-in-IP -- and then:

1. **matches** the same packet seen at different places.  A packet keeps
   its IP id, TCP sequence and acknowledgement numbers, flags, length and
   payload through forwarding, NAT and encapsulation; its addresses, ports,
   TTL and MACs are what change.  So the key is ``(protocol, IP id, seq,
   ack, flags, payload length, first payload bytes)`` -- NAT-free by
   construction (ICMP: the echo id, which NAT rewrites, is left out);
2. **groups** packets into conversations: every address pair a matched
   packet showed is one view of the same conversation (as conntrack's
   original and reply tuples are), so a ClusterIP view and the pod IP view
   it was DNATed to end up in one conversation;
3. **orders** each packet's sightings by TTL (it only goes down) and then
   time, and names what changed between two consecutive sightings: DNAT,
   SNAT/MASQUERADE (and their conntrack reversal on replies),
   encapsulation/decapsulation, TTL, MACs, VLAN;
4. with the nodes' state (:mod:`.state`), ties each change to the entry
   that made it (a KUBE-SEP DNAT rule, a MASQUERADE rule, the FDB entry)
   and names the Service behind a ClusterIP.

What could not be decoded, matched or attributed is listed in
:attr:`Explanation.limits`, never guessed.

Taught in: 10-your-own-cluster.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CourseError, public

__all__ = ["Sighting", "Change", "Packet", "Conversation", "Explanation", "explain", "compare", "pair_conversations",
           "pair_packets", "packet_difference", "decode",
           "VXLAN_PORTS", "MAX_FRAMES"]

#: flannel/Linux default and IANA's port; a user adds others with ``vxlan_ports``.
VXLAN_PORTS = (8472, 4789)
#: every frame costs memory; a capture beyond this is cut (and the cut is listed)
MAX_FRAMES = 2_000_000
#: sightings of one key further apart than this are different packets (e.g. IP id 0 reused)
WINDOW_US = 2_000_000

_PROTO = {1: "ICMP", 6: "TCP", 17: "UDP", 4: "IPIP", 47: "GRE", 2: "IGMP", 89: "OSPF", 132: "SCTP"}
_ETHERTYPES = {0x0806: "ARP", 0x86DD: "IPv6", 0x88CC: "LLDP", 0x8035: "RARP", 0x8863: "PPPoE", 0x8864: "PPPoE",
               0x88E5: "MACsec", 0x8847: "MPLS"}
_TCP_FLAGS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"), (0x40, "E"), (0x80, "W"))


_MACS: dict = {}


def _mac(b: bytes) -> str:
    m = _MACS.get(b)
    if m is None:
        m = b.hex(":")
        if len(_MACS) < 65536:               # a capture has few MACs; a bound all the same
            _MACS[b] = m
    return m


_ip = socket.inet_ntoa
_HHHBB = struct.Struct("!HHHBB")
_TCPH = struct.Struct("!HHIIBB")


def tcp_flags(f: int) -> str:
    """tcpdump's flag letters: ``S``, ``S.``, ``P.``, ``F.``, ``R``."""
    out = "".join(ch for bit, ch in _TCP_FLAGS if f & bit and ch != ".")
    return out + ("." if f & 0x10 else "") or "none"


@dataclass(frozen=True)
class Encap:
    """One outer header pair around the packet (outermost first)."""
    kind: str              # "VXLAN" or "IPIP"
    src: str
    dst: str
    sport: int = 0
    dport: int = 0
    vni: int | None = None
    ttl: int = 0
    src_mac: str | None = None
    dst_mac: str | None = None

    def text(self) -> str:
        if self.kind == "VXLAN":
            return f"VXLAN vni {self.vni}: {self.src}.{self.sport} > {self.dst}.{self.dport}"
        return f"IP-in-IP: {self.src} > {self.dst}"


@dataclass(slots=True)
class Sighting:
    """One frame of a capture, decoded down to its innermost IPv4 packet."""
    place: str             # "meizu enp4s0": the capture's node and interface
    capture: str           # file name
    number: int            # frame number in the capture, from 1 (as tcpdump -# and Wireshark count)
    time_us: int
    src_mac: str | None
    dst_mac: str | None
    vlan: tuple
    encap: tuple           # Encap, outermost first
    src: str
    dst: str
    ttl: int
    ip_id: int
    proto: int
    sport: int
    dport: int
    flags: int             # TCP flags (0 otherwise)
    seq: int
    ack: int
    length: int            # L4 payload bytes (from the IP total length, not the snap length)
    extra: str = ""        # ICMP type/code, DNS question
    direction: str | None = None   # "In"/"Out" where the link header says (SLL, SLL2)
    key: tuple = ()
    quoted: tuple = ()     # an ICMP error's quoted packet: (proto, src, sport, dst, dport)
    cut: str = ""          # "tcp", "udp", "icmp": the snapshot length ended inside this header

    @property
    def endpoints(self) -> tuple:
        return (self.src, self.sport), (self.dst, self.dport)

    def line(self) -> str:
        """A short tcpdump-like line of the innermost packet."""
        name = _PROTO.get(self.proto, f"proto {self.proto}")
        if self.cut:                    # as tcpdump prints a header the snapshot cut: [|tcp]
            ports = self.proto in (6, 17) and (self.sport or self.dport)
            s = (f"{self.src}.{self.sport} > {self.dst}.{self.dport}" if ports else f"{self.src} > {self.dst}") + \
                f": {name} [|{self.cut}]" + (f" seq {self.seq}" if self.seq else "") + \
                f" ttl {self.ttl} id {self.ip_id}"
            return " | ".join(e.text() for e in self.encap) + " | " + s if self.encap else s
        if self.proto in (6, 17):
            s = f"{self.src}.{self.sport} > {self.dst}.{self.dport}: {name}"
        else:
            s = f"{self.src} > {self.dst}: {name}"
        if self.proto == 6:
            s += f" [{tcp_flags(self.flags)}] seq {self.seq} ack {self.ack}"
        if self.extra:
            s += f" {self.extra}"
        s += f" len {self.length} ttl {self.ttl} id {self.ip_id}"
        if self.encap:
            s = " | ".join(e.text() for e in self.encap) + " | " + s
        return s

    def to_json(self) -> dict:
        return {"place": self.place, "capture": self.capture, "frame": self.number, "time_us": self.time_us,
                "src_mac": self.src_mac, "dst_mac": self.dst_mac, "vlan": list(self.vlan),
                "encap": [e.__dict__ for e in self.encap], "src": self.src, "sport": self.sport,
                "dst": self.dst, "dport": self.dport, "proto": _PROTO.get(self.proto, self.proto),
                "ttl": self.ttl, "ip_id": self.ip_id, "line": self.line(), "direction": self.direction}


# --- decoding ---------------------------------------------------------------------------------

class _Other(Exception):
    """A frame that is not (or does not carry) IPv4: its kind, for the tally."""


def _link(data: bytes, linktype: int):
    """(src_mac, dst_mac, vlans, ethertype, offset, direction) of a frame's link header."""
    if linktype == 1:
        if len(data) < 14:
            raise _Other("short Ethernet frame")
        et = (data[12] << 8) | data[13]
        off, vlans = 14, []
        while et in (0x8100, 0x88A8, 0x9100) and len(vlans) < 4:
            if len(data) < off + 4:
                raise _Other("short VLAN tag")
            vlans.append(((data[off] << 8) | data[off + 1]) & 0x0FFF)
            et = (data[off + 2] << 8) | data[off + 3]
            off += 4
        return _mac(data[6:12]), _mac(data[0:6]), tuple(vlans), et, off, None
    if linktype == 113:                    # Linux cooked v1: pkttype, hatype, halen, addr[8], protocol
        if len(data) < 16:
            raise _Other("short cooked header")
        pkttype, _, halen = struct.unpack_from("!HHH", data, 0)
        src = _mac(data[6:6 + min(halen, 8)]) if halen == 6 else None
        return src, None, (), (data[14] << 8) | data[15], 16, _PKTTYPE.get(pkttype)
    if linktype == 276:                    # Linux cooked v2: protocol, reserved, ifindex, hatype, pkttype, halen, addr
        if len(data) < 20:
            raise _Other("short cooked v2 header")
        et = (data[0] << 8) | data[1]
        pkttype, halen = data[10], data[11]
        src = _mac(data[12:18]) if halen == 6 else None
        return src, None, (), et, 20, _PKTTYPE.get(pkttype)
    if linktype in (101, 228):
        if not data or data[0] >> 4 != 4:
            raise _Other("IPv6" if data and data[0] >> 4 == 6 else "raw non-IPv4")
        return None, None, (), 0x0800, 0, None
    raise _Other(f"link type {linktype}")


_PKTTYPE = {0: "In", 1: "In", 2: "In", 3: "In", 4: "Out"}   # host, broadcast, multicast, otherhost, outgoing


def sll2_ifindex(data: bytes) -> int | None:
    return struct.unpack_from("!I", data, 4)[0] if len(data) >= 20 else None


def decode(data: bytes, linktype: int = 1, vxlan_ports=VXLAN_PORTS) -> dict:
    """The innermost IPv4 packet of a frame as a dict of header fields; raises ValueError for non-IPv4.

    >>> decode(frame)["src"]          # doctest: +SKIP
    """
    try:
        return _decode(data, linktype, frozenset(vxlan_ports))
    except _Other as e:
        raise ValueError(str(e)) from None


def _decode(data: bytes, linktype: int, ports: frozenset, depth: int = 0) -> dict:
    src_mac, dst_mac, vlans, et, off, direction = _link(data, linktype)
    encap: list = []
    while True:
        if et != 0x0800:
            raise _Other(_ETHERTYPES.get(et, f"ethertype 0x{et:04x}"))
        if len(data) < off + 20:
            raise _Other("short IPv4 header")
        vihl = data[off]
        if vihl >> 4 != 4 or (vihl & 15) < 5:
            raise _Other("corrupt IPv4 header")
        ihl = (vihl & 15) * 4
        tot, ip_id, frag, ttl, proto = _HHHBB.unpack_from(data, off + 2)
        src, dst = _ip(data[off + 12:off + 16]), _ip(data[off + 16:off + 20])
        l4 = off + ihl
        end = min(len(data), off + max(tot, ihl))      # padding is not payload; the snap length cuts
        payload_total = max(0, tot - ihl)
        if frag & 0x1FFF:                               # a non-first fragment: no L4 header
            raise _Other("IPv4 fragment")
        if proto == 4 and len(encap) < 4:               # IP-in-IP
            encap.append(Encap("IPIP", src, dst, ttl=ttl, src_mac=src_mac, dst_mac=dst_mac))
            off, et = l4, 0x0800
            continue
        if proto == 17 and end >= l4 + 8 + 16 and len(encap) < 4:
            sport, dport = struct.unpack_from("!HH", data, l4)
            if (dport in ports or sport in ports) and data[l4 + 8] & 0x08:
                vni = int.from_bytes(data[l4 + 12:l4 + 15], "big")
                encap.append(Encap("VXLAN", src, dst, sport, dport, vni, ttl, src_mac, dst_mac))
                inner = l4 + 16
                src_mac, dst_mac = _mac(data[inner + 6:inner + 12]), _mac(data[inner:inner + 6])
                et = (data[inner + 12] << 8) | data[inner + 13]
                off = inner + 14
                while et in (0x8100, 0x88A8) and len(data) >= off + 4:
                    et = (data[off + 2] << 8) | data[off + 3]
                    off += 4
                continue
        break
    d = {"src_mac": src_mac, "dst_mac": dst_mac, "vlan": vlans, "encap": tuple(encap), "src": src, "dst": dst,
         "ttl": ttl, "ip_id": ip_id, "proto": proto, "sport": 0, "dport": 0, "flags": 0, "seq": 0, "ack": 0,
         "length": payload_total, "extra": "", "direction": direction}
    if proto == 6 and end >= l4 + 20:
        sport, dport, seq, ack, offres, flags = _TCPH.unpack_from(data, l4)
        hl = (offres >> 4) * 4
        pay = l4 + hl
        d.update(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, length=max(0, payload_total - hl))
        # the TCP timestamp tells a retransmission (same seq, ack, flags; IP id 0 on a SYN-ACK) from the original
        d["key"] = (6, ip_id, seq, ack, flags, d["length"], zlib.crc32(data[pay:min(end, pay + 16)]),
                    _tsval(data, l4 + 20, min(end, pay)))
    elif proto in (6, 17, 1) and end < l4 + {6: 20, 17: 8, 1: 8}[proto]:
        # the snapshot length (-s) ends inside the header: keep what was captured, invent nothing
        got = max(0, end - l4)
        d["cut"] = {6: "tcp", 17: "udp", 1: "icmp"}[proto]
        if proto in (6, 17) and got >= 4:
            d["sport"], d["dport"] = struct.unpack_from("!HH", data, l4)
        if proto == 6 and got >= 8:
            d["seq"] = struct.unpack_from("!I", data, l4 + 4)[0]
        d["length"] = payload_total
        d["key"] = (proto, ip_id, "cut", src, dst, d["sport"], d["seq"], payload_total)
    elif proto == 17 and end >= l4 + 8:
        sport, dport, ulen = struct.unpack_from("!HHH", data, l4)
        pay = l4 + 8
        d.update(sport=sport, dport=dport, length=max(0, payload_total - 8))
        if 53 in (sport, dport) and end >= pay + 12:
            d["extra"] = _dns(data, pay, end)
        d["key"] = (17, ip_id, d["length"], zlib.crc32(data[pay:min(end, pay + 16)]))
    elif proto == 1 and end >= l4 + 8:
        typ, code, _, ident, seqn = struct.unpack_from("!BBHHH", data, l4)
        d["length"] = max(0, payload_total - 8)
        d["extra"] = _ICMP.get(typ, f"type {typ} code {code}")
        if typ in (0, 8):
            d["extra"] += f" id {ident} seq {seqn}"
            d["sport"] = d["dport"] = ident          # conntrack's "port" for echo
        pay = l4 + 8
        q = _quoted(data, pay, end) if typ in _ICMP_ERRORS else None
        if q is not None:
            # an error quotes the packet that caused it (RFC 792: its IP header and 8 bytes); NAT rewrites
            # the quoted addresses on the way back (nf_nat_icmp_reply_translation), never its IP id or seq
            qproto, qsrc, qsport, qdst, qdport, qid, qseq = q
            d["quoted"] = (qproto, qsrc, qsport, qdst, qdport)
            d["extra"] += (f" code {code} for {_PROTO.get(qproto, qproto)} {qsrc}.{qsport} > {qdst}.{qdport}"
                           if qproto in (6, 17) else f" code {code} for {_PROTO.get(qproto, qproto)} {qsrc} > {qdst}")
            d["key"] = (1, ip_id, typ, code, d["length"], qproto, qid, qseq)
        else:
            d["key"] = (1, ip_id, typ, code, seqn, d["length"], zlib.crc32(data[pay:min(end, pay + 16)]))
    else:
        # no ports, no NAT to see through: IGMP reports with IP id 0 on two nodes are two packets
        d["key"] = (proto, ip_id, payload_total, zlib.crc32(data[l4:min(end, l4 + 16)]), src, dst)
    return d


def _tsval(data: bytes, off: int, end: int) -> int | None:
    """The TS val of a TCP timestamp option (RFC 7323, kind 8), or None."""
    while off < end:
        kind = data[off]
        if kind == 0:
            return None
        if kind == 1:
            off += 1
            continue
        if off + 1 >= end or data[off + 1] < 2:
            return None
        if kind == 8 and data[off + 1] == 10 and off + 6 <= end:
            return struct.unpack_from("!I", data, off + 2)[0]
        off += data[off + 1]
    return None


_ICMP = {0: "echo reply", 3: "unreachable", 8: "echo request", 11: "time exceeded", 5: "redirect",
         12: "parameter problem", 4: "source quench"}
_ICMP_ERRORS = (3, 4, 5, 11, 12)


def _quoted(data: bytes, off: int, end: int):
    """The quoted IPv4 header and first 8 bytes of an ICMP error: (proto, src, sport, dst, dport, IP id, seq)."""
    if end < off + 20 or data[off] >> 4 != 4:
        return None
    ihl = (data[off] & 15) * 4
    if ihl < 20 or end < off + ihl:
        return None
    qid = (data[off + 4] << 8) | data[off + 5]
    qproto = data[off + 9]
    src, dst = _ip(data[off + 12:off + 16]), _ip(data[off + 16:off + 20])
    sport = dport = seq = 0
    l4 = off + ihl
    if qproto in (6, 17) and end >= l4 + 4:
        sport, dport = struct.unpack_from("!HH", data, l4)
        if qproto == 6 and end >= l4 + 8:
            seq = struct.unpack_from("!I", data, l4 + 4)[0]
    elif qproto == 1 and end >= l4 + 8:
        sport = dport = struct.unpack_from("!H", data, l4 + 4)[0]
    return qproto, src, sport, dst, dport, qid, seq


def _dns(data: bytes, pay: int, end: int) -> str:
    """``DNS A? kubernetes.default.svc.`` -- the first question, bounded by the captured bytes."""
    try:
        txid, fl, qd = struct.unpack_from("!HHH", data, pay)
        off, labels = pay + 12, []
        while off < end and data[off] and len(labels) < 64:
            n = data[off]
            if n & 0xC0 or off + 1 + n > end:
                break
            labels.append(data[off + 1:off + 1 + n].decode("ascii", "replace"))
            off += 1 + n
        qtype = struct.unpack_from("!H", data, off + 1)[0] if off + 3 <= end else 0
        qname = ".".join(labels) + "."
        kind = {1: "A", 28: "AAAA", 33: "SRV", 12: "PTR", 5: "CNAME"}.get(qtype, str(qtype))
        return f"DNS {'response' if fl & 0x8000 else 'query'} {txid} {kind}? {qname}" if qd else f"DNS {txid}"
    except struct.error:
        return "DNS (cut)"


# --- the explanation --------------------------------------------------------------------------

@dataclass
class Change:
    """What differs between two consecutive sightings of one packet, and what made it (with state)."""
    kind: str              # DNAT, SNAT, un-DNAT, un-SNAT, encapsulation, decapsulation, TTL, MAC, VLAN
    old: str
    new: str
    text: str
    by: list = field(default_factory=list)     # entries from the state that explain it ("node: entry")

    def to_json(self) -> dict:
        return {"kind": self.kind, "old": self.old, "new": self.new, "text": self.text, "by": list(self.by)}


@dataclass
class Packet:
    """One packet of a conversation with every place it was seen, in path order."""
    key: tuple
    sightings: list
    flow: str = "?"        # "request" (from the initiator) or "reply"; "?" when it cannot be told
    changes: list = field(default_factory=list)   # changes[i]: from sightings[i] to sightings[i+1]

    @property
    def places(self) -> list[str]:
        return [s.place for s in self.sightings]

    def summary(self) -> str:
        s = self.sightings[0]
        if s.cut:
            return f"{_PROTO.get(s.proto, s.proto)} [|{s.cut}]" + (f" seq {s.seq}" if s.seq else "")
        if s.proto == 6:
            return f"[{tcp_flags(s.flags)}] seq {s.seq} ack {s.ack} len {s.length}"
        return f"{_PROTO.get(s.proto, s.proto)} {s.extra + ' ' if s.extra else ''}len {s.length}"


@dataclass
class Conversation:
    """Every packet of one connection (or UDP/ICMP exchange), through all its NAT views."""
    number: int
    proto: int
    views: list            # ((src, sport), (dst, dport)) as the initiator's packets showed them
    packets: list
    service: str | None = None
    conntrack: list = field(default_factory=list)   # "node: conntrack -L line" matching a view

    @property
    def title(self) -> str:
        (a, ap), (b, bp) = self.views[0]
        name = _PROTO.get(self.proto, f"proto {self.proto}")
        if self.proto in (6, 17):
            return f"{name} {a}:{ap} -> {b}:{bp}"
        return f"{name} {a} -> {b}"


@dataclass
class Explanation:
    """What :func:`explain` found: conversations, and an honest list of what it could not place."""
    captures: list                     # (name, place(s), frames read)
    conversations: list
    limits: list                       # what could not be read, decoded, matched or attributed
    other: dict                        # frames that are not IPv4, by kind ("ARP": 4)

    def conversation(self, n: int) -> Conversation:
        for c in self.conversations:
            if c.number == n:
                return c
        raise CourseError("conversation", f"no conversation {n!r}",
                          f"1..{len(self.conversations)}" if self.conversations else "none were found")

    def text(self, max_packets: int = 12) -> str:
        return render_text(self, max_packets)

    def walk_rows(self, conversation: int = 1, packet: int = 1) -> list[dict]:
        """One packet's walk as rows (place, header line, changes, entries): what the widget shows."""
        c = self.conversation(conversation)
        if isinstance(packet, bool) or not isinstance(packet, int) or not 1 <= packet <= len(c.packets):
            raise CourseError("packet", f"no packet {packet!r} in conversation {c.number}", f"1..{len(c.packets)}")
        p = c.packets[packet - 1]
        rows = []
        for i, s in enumerate(p.sightings):
            step = p.changes[i - 1] if i else []
            rows.append({"n": i + 1, "place": s.place, "line": s.line(), "changes": [ch.text for ch in step],
                         "by": [b for ch in step for b in ch.by]})
        return rows

    def to_json(self) -> dict:
        return {
            "captures": [{"name": n, "places": p, "frames": k} for n, p, k in self.captures],
            "conversations": [{
                "number": c.number, "title": c.title, "service": c.service, "conntrack": c.conntrack,
                "views": [[f"{a}:{ap}", f"{b}:{bp}"] for (a, ap), (b, bp) in c.views],
                "packets": [{"flow": p.flow, "summary": p.summary(), "places": p.places,
                             "sightings": [s.to_json() for s in p.sightings],
                             "changes": [[ch.to_json() for ch in step] for step in p.changes]}
                            for p in c.packets]} for c in self.conversations],
            "limits": list(self.limits), "other": dict(self.other)}

    def json(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True)

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text())


def _place_of(stem: str, iface: str | None, nodes: list[str], st=None) -> str:
    """``meizu-enp4s0`` -> ``meizu enp4s0``; a pcapng interface name, when given, is the interface.

    With the node's state, a name a file could not carry whole (``meizu-flannel.pcap`` for
    flannel.1) is the one interface of that node whose name it begins.
    """
    node = None
    for n in sorted(nodes, key=len, reverse=True):
        if stem == n or stem.startswith(n + "-"):
            node, rest = n, stem[len(n) + 1:]
            break
    if node is None:
        node, _, rest = stem.rpartition("-") if "-" in stem else (stem, "", "")
        node, rest = (node, rest) if node else (stem, "")
    if iface and not iface.startswith("#"):
        rest = iface
    ns = st.nodes.get(node) if st is not None else None
    if ns is not None and rest and rest not in ns.ifaces:
        like = [n for n in ns.ifaces if n.startswith(rest + ".")]
        if len(like) == 1:
            rest = like[0]
    return f"{node} {rest}".strip()


class _Union:
    def __init__(self):
        self.parent: dict = {}

    def find(self, x):
        p = self.parent.setdefault(x, x)
        while p != self.parent[p]:
            self.parent[p] = self.parent[self.parent[p]]
            p = self.parent[p]
        self.parent[x] = p
        return p

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _view(s: Sighting) -> tuple:
    if s.quoted:                        # an ICMP error belongs to the connection it reports
        qproto, qsrc, qsport, qdst, qdport = s.quoted
        a, b = (qsrc, qsport), (qdst, qdport)
        return (qproto,) + ((a, b) if a <= b else (b, a))
    a, b = s.endpoints
    return (s.proto,) + ((a, b) if a <= b else (b, a))


@public
def explain(captures, state=None, vxlan_ports=None, names=None) -> Explanation:
    """Explain captures from several interfaces or nodes: conversations, hops and what changed.

    >>> ex = ck.explain(["meizu-enp4s0.pcap", "xiaomi-enp4s0.pcap"], state="state/")   # doctest: +SKIP
    >>> print(ex.text())

    ``captures``: a path or a list of paths (classic pcap or pcapng); each
    file's place is its name (``<node>-<interface>.pcap``), or a pcapng
    interface's name; ``names`` maps a path to a place (``"meizu enp4s0"``)
    instead.  ``state``: a folder from ``coursekit collect`` (see
    :mod:`.state`), or a loaded :class:`~coursekit.state.ClusterState`.
    ``vxlan_ports``: UDP ports to decode as VXLAN besides 8472 and 4789 (and
    the ports of the VXLAN devices the state describes).

    Taught in: 10-your-own-cluster.
    """
    from .capture import read_capture
    from .state import ClusterState, load_state
    if isinstance(captures, (str, os.PathLike)):
        captures = [captures]
    if not isinstance(captures, (list, tuple)) or not captures:
        raise CourseError("captures", "no capture given" if isinstance(captures, (list, tuple)) else
                          f"{captures!r:.40} is not a path or a list of paths", "a pcap/pcapng path or a list of them")
    if len(captures) > 256:
        raise CourseError("captures", f"{len(captures)} files", "at most 256 captures")
    if names is not None and not isinstance(names, dict):
        raise CourseError("names", f"a {type(names).__name__} is not a mapping", "{path: 'node interface'}")
    st = state if isinstance(state, ClusterState) or state is None else load_state(state)
    ports = set(VXLAN_PORTS)
    if vxlan_ports is not None:
        if isinstance(vxlan_ports, int) and not isinstance(vxlan_ports, bool):
            vxlan_ports = [vxlan_ports]
        if not isinstance(vxlan_ports, (list, tuple, set)) or not all(
                isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in vxlan_ports):
            raise CourseError("vxlan_ports", f"{vxlan_ports!r:.60} is not a list of ports", "UDP ports 1..65535")
        ports |= set(vxlan_ports)
    limits: list[str] = []
    if st is not None:
        ports |= set(st.vxlan_ports())
        limits += st.problems
    nodes = st.node_names() if st is not None else []
    sightings: list[Sighting] = []
    other: dict[str, int] = {}
    caps = []
    total = 0
    unreadable = []
    for path in captures:
        try:
            cap = read_capture(path)
        except CourseError as e:
            if any(w in e.problem for w in ("no such file", "is a folder", "cannot read", "not a path", "NUL")):
                raise                            # a typo in a path: say so, explain nothing
            unreadable.append(e)                 # not a capture, or nothing usable in it: the others still count
            limits.append(f"{Path(str(path)).name}: not explained: {e.problem}"
                          + (f" (allowed: {e.allowed})" if e.allowed else ""))
            continue
        stem = Path(str(path)).name
        for suffix in (".pcapng", ".pcap", ".cap", ".gz"):
            if stem.endswith(suffix):
                stem = stem[:-len(suffix)]
        fixed = names.get(path, names.get(str(path))) if names else None
        if cap.problem is not None:
            limits.append(f"{cap.name}: {cap.problem} -- explained the {len(cap.frames)} frames before it")
        for what, n in (cap.skipped or {}).items():
            limits.append(f"{cap.name}: {n} frames skipped ({what} is not decoded)")
        seen_places = []
        places: dict = {}
        fports = frozenset(ports)
        frames = cap.frames
        if total + len(frames) > MAX_FRAMES:
            limits.append(f"{cap.name}: cut after {MAX_FRAMES - total} frames (at most {MAX_FRAMES} in all)")
            frames = frames[:max(0, MAX_FRAMES - total)]
        total += len(frames)
        for i, f in enumerate(frames, 1):
            iface = f.interface
            if f.linktype == 276 and (iface == "any" or iface is None and stem.endswith("any")):
                # tcpdump -i any: the cooked v2 header names the interface by its index
                idx = sll2_ifindex(f.data)
                iface = (st.ifname(fixed or stem, idx) if st is not None else None) or f"if{idx}"
            place = places.get(iface)
            if place is None:
                place = places[iface] = fixed or _place_of(stem, iface, nodes, st)
            try:
                d = _decode(f.data, f.linktype, fports)
            except _Other as e:
                k = str(e)
                other[k] = other.get(k, 0) + 1
                continue
            s = Sighting(place, cap.name, i, f.time_us, **d)
            if place not in seen_places:
                seen_places.append(place)
            sightings.append(s)
        if stem.endswith("any") and any(f.linktype == 113 for f in frames):
            limits.append(f"{cap.name}: Linux cooked v1 (LINUX_SLL: tcpdump -i any with libpcap < 1.10, e.g. "
                          "CentOS 7's) records no interface: every frame is placed at one place, so the hops "
                          "inside the node cannot be told apart (capture per interface, or tcpdump -y LINUX_SLL2)")
        caps.append((cap.name, seen_places, len(cap.frames)))
    if unreadable and not caps:
        raise unreadable[0] if len(unreadable) == 1 else CourseError(
            "captures", f"none of the {len(unreadable)} files is a capture this reader opens ({unreadable[0]})",
            "classic pcap or pcapng with Ethernet, raw IPv4 or Linux cooked (SLL, SLL2) frames")
    return _assemble(caps, sightings, limits, other, st)


def _assemble(caps, sightings, limits, other, st) -> Explanation:
    # 1. the same packet at different places: one key, sightings close in time
    groups: dict[tuple, list] = {}
    for s in sightings:
        groups.setdefault(s.key, []).append(s)
    packets: list[Packet] = []
    for key, ss in groups.items():
        ss.sort(key=lambda s: s.time_us)
        run = [ss[0]]
        for s in ss[1:]:
            # a retransmission is the same packet again: seen again, unchanged, by a capture that already saw
            # it, it starts a new one (a hairpinned packet passes a place twice, but rewritten; two files of
            # one place, say -i any and -i r0, each see it once)
            again = any(r.place == s.place and r.capture == s.capture and r.endpoints == s.endpoints
                        and r.ttl == s.ttl for r in run)
            if again or s.time_us - run[-1].time_us > WINDOW_US:
                packets.append(Packet(key, run))
                run = []
            run.append(s)
        packets.append(Packet(key, run))
    order = {id(s): i for i, s in enumerate(sightings)}
    for p in packets:                   # path order: TTL only goes down; then time, then input order
        p.sightings.sort(key=lambda s: (-s.ttl, s.time_us, order[id(s)]))
    # 2. conversations: every view a packet showed belongs to the same one
    uf = _Union()
    for p in packets:
        views = {_view(s) for s in p.sightings}
        first = next(iter(views))
        uf.find(first)
        for v in views:
            uf.union(first, v)
    convs: dict = {}
    for p in packets:
        convs.setdefault(uf.find(_view(p.sightings[0])), []).append(p)
    out = []
    for pk in convs.values():
        pk.sort(key=lambda p: (p.sightings[0].time_us, p.key))
        out.append(_conversation(pk))
    out.sort(key=lambda c: (c.packets[0].sightings[0].time_us, c.title))
    for i, c in enumerate(out, 1):
        c.number = i
    # 3. what changed between sightings, and (with state) why
    for c in out:
        for p in c.packets:
            p.changes = [_changes(a, b, p.flow) for a, b in zip(p.sightings, p.sightings[1:])]
        if st is not None:
            from .state import attribute
            attribute(c, st)
    if sightings:
        places = sorted({s.place for s in sightings})
        single = [p for c in out for p in c.packets if len({s.place for s in p.sightings}) == 1]
        if len(places) > 1 and single:
            limits.append(f"{len(single)} of {len(packets)} packets were seen at one place only (no other "
                          "capture saw them: the path's other hops were not captured, or they are other traffic)")
    for k, n in sorted(other.items()):
        if k.startswith(("short", "corrupt")):
            limits.append(f"{n} frames not decoded: {k}")
    cut: dict = {}
    for s in sightings:
        if s.cut:
            cut[s.cut] = cut.get(s.cut, 0) + 1
    for k, n in sorted(cut.items()):
        limits.append(f"{n} frame{'s' if n != 1 else ''} cut by the snapshot length (-s) inside the {k.upper()} "
                      "header: shown as far as captured, not matched with other places (capture with -s 0 or "
                      "a larger -s)")
    return Explanation(caps, out, limits, dict(sorted(other.items())))


def _conversation(pk: list) -> Conversation:
    errors = [p for p in pk if p.sightings[0].quoted]
    for p in errors:
        p.flow = "icmp error"
    own = [p for p in pk if not p.sightings[0].quoted]
    if not own:                         # only errors were captured: the connection is what they quote
        views = list(dict.fromkeys(((q[1], q[2]), (q[3], q[4])) for p in pk for q in [p.sightings[0].quoted]))
        return Conversation(0, pk[0].sightings[0].quoted[0], views, pk)
    proto = own[0].sightings[0].proto
    # the initiator: a SYN without ACK if there is one, else the first packet seen
    first = next((p for p in own if proto == 6 and p.sightings[0].flags & 0x12 == 0x02), own[0])
    req: set = {s.endpoints for s in first.sightings}
    first.flow = "request"
    changed = True
    while changed:
        changed = False
        for p in pk:
            if p.flow != "?":
                continue
            eps = {s.endpoints for s in p.sightings}
            if eps & req:
                p.flow = "request"
            elif {(b, a) for a, b in eps} & req:
                p.flow = "reply"
            else:
                continue
            if p.flow == "request":
                req |= eps
            else:
                req |= {(b, a) for a, b in eps}
            changed = True
    views = list(dict.fromkeys(s.endpoints for s in first.sightings))
    for e in sorted(req - set(views)):
        views.append(e)
    return Conversation(0, proto, views, pk)


def _ek(e: Encap) -> tuple:
    """An outer header without its MACs: a cooked (-i any) capture of it has no destination MAC to compare."""
    return (e.kind, e.src, e.dst, e.sport, e.dport, e.vni, e.ttl)


def _changes(a: Sighting, b: Sighting, flow: str) -> list[Change]:
    out = []
    if [_ek(e) for e in a.encap] != [_ek(e) for e in b.encap]:
        k = 0                                   # outer layers both share, counted from the inside
        while k < min(len(a.encap), len(b.encap)) and _ek(a.encap[-1 - k]) == _ek(b.encap[-1 - k]):
            k += 1
        for e in a.encap[:len(a.encap) - k]:
            out.append(Change("decapsulation", e.text(), "", f"decapsulated: {e.text()} removed"))
        added = [Change("encapsulation", "", e.text(), f"encapsulated: {e.text()}") for e in b.encap[:len(b.encap) - k]]
    else:
        added = []
    (sa, spa), (da, dpa) = a.endpoints
    (sb, spb), (db, dpb) = b.endpoints
    ports = a.proto in (6, 17)
    fmt = (lambda ip, p: f"{ip}:{p}") if ports else (lambda ip, p: ip)
    if flow == "icmp error":            # conntrack rewrites an error back, as a reply of its connection
        flow = "reply"
    if (da, dpa) != (db, dpb):
        kind = {"request": "DNAT", "reply": "un-SNAT"}.get(flow, "destination NAT")
        why = {"DNAT": "destination rewritten (DNAT)", "un-SNAT": "destination restored by conntrack (reply of a SNATed "
               "connection)"}.get(kind, "destination rewritten")
        out.append(Change(kind, fmt(da, dpa), fmt(db, dpb), f"{why}: {fmt(da, dpa)} -> {fmt(db, dpb)}"))
    if (sa, spa) != (sb, spb):
        kind = {"request": "SNAT", "reply": "un-DNAT"}.get(flow, "source NAT")
        why = {"SNAT": "source rewritten (SNAT/MASQUERADE)", "un-DNAT": "source restored by conntrack (reply of a "
               "DNATed connection)"}.get(kind, "source rewritten")
        out.append(Change(kind, fmt(sa, spa), fmt(sb, spb), f"{why}: {fmt(sa, spa)} -> {fmt(sb, spb)}"))
    if a.ttl != b.ttl:
        hops = a.ttl - b.ttl
        out.append(Change("TTL", str(a.ttl), str(b.ttl),
                          f"TTL {a.ttl} -> {b.ttl} (routed {hops} time{'s' if hops != 1 else ''})"))
    if a.src_mac and b.src_mac and a.dst_mac and b.dst_mac and (a.src_mac, a.dst_mac) != (b.src_mac, b.dst_mac):
        out.append(Change("MAC", f"{a.src_mac} > {a.dst_mac}", f"{b.src_mac} > {b.dst_mac}",
                          f"MACs {a.src_mac} > {a.dst_mac} -> {b.src_mac} > {b.dst_mac}"))
    if a.quoted != b.quoted and a.quoted and b.quoted:
        fq = (lambda q: f"{q[1]}:{q[2]} > {q[3]}:{q[4]}") if a.quoted[0] in (6, 17) else (lambda q: f"{q[1]} > {q[3]}")
        out.append(Change("quoted", fq(a.quoted), fq(b.quoted), f"the quoted packet rewritten as its connection's "
                          f"NAT (conntrack translates an ICMP error): {fq(a.quoted)} -> {fq(b.quoted)}"))
    if a.vlan != b.vlan:
        out.append(Change("VLAN", str(list(a.vlan)), str(list(b.vlan)), f"VLAN {list(a.vlan)} -> {list(b.vlan)}"))
    return out + added          # the kernel rewrites and routes the inner packet first, then encapsulates it


# --- text -------------------------------------------------------------------------------------

def render_text(ex: Explanation, max_packets: int = 12) -> str:
    """The walk of every conversation: places, lines and changes, then the limits."""
    if not isinstance(max_packets, int) or isinstance(max_packets, bool) or max_packets < 0:
        raise CourseError("max_packets", f"{max_packets!r} is not a count", "an integer >= 0")
    w = []
    w.append(f"{len(ex.captures)} capture{'s' if len(ex.captures) != 1 else ''}: " +
             "; ".join(f"{n} ({k} frames{', ' + ', '.join(p) if p else ''})" for n, p, k in ex.captures))
    if ex.other:
        w.append("not IPv4 (not walked): " + ", ".join(f"{n} {k}" for k, n in ex.other.items()))
    for c in ex.conversations:
        w.append("")
        places = list(dict.fromkeys(pl for p in c.packets for pl in p.places))
        head = f"conversation {c.number}: {c.title}"
        if c.service:
            head += f"  (Service {c.service})"
        w.append(head)
        w.append(f"  {len(c.packets)} packet{'s' if len(c.packets) != 1 else ''}, seen at {len(places)} place{'s' if len(places) != 1 else ''}: "
                 + ", ".join(places))
        if len(c.views) > 1:
            w.append("  views: " + "; ".join(f"{a}:{ap} > {b}:{bp}" for (a, ap), (b, bp) in c.views))
        for line in c.conntrack:
            w.append(f"  conntrack {line}")
        shown = c.packets if len(c.packets) <= max_packets else c.packets[:max_packets]
        for i, p in enumerate(shown, 1):
            w.append(f"  packet {i} ({p.flow}) {p.summary()}")
            for j, s in enumerate(p.sightings):
                if j:
                    for ch in p.changes[j - 1]:
                        w.append(f"        ~ {ch.text}")
                        for b in ch.by:
                            w.append(f"            by {b}")
                w.append(f"    {j + 1:>2}. {s.place:<22} #{s.number:<5} {s.line()}")
        if len(shown) < len(c.packets):
            w.append(f"  ... {len(c.packets) - len(shown)} more packets (every one in --json)")
    if ex.limits:
        w.append("")
        w.append("could not match or attribute:")
        w += [f"  - {x}" for x in ex.limits]
    return "\n".join(w) + "\n"


# --- model and capture side by side -----------------------------------------------------------

def _shape(p: Packet) -> list:
    """A packet's walk without the values the kernel picks freely (ports, ISNs, IP ids, times)."""
    steps = []
    for i, s in enumerate(p.sightings):
        out = []
        for c in (p.changes[i - 1] if i else []):
            if c.kind in ("encapsulation", "decapsulation"):
                out.append(f"{c.kind} {(c.new or c.old).split(' ')[0]}")
            elif c.kind != "MAC":
                out.append(f"{c.kind} {c.old.split(':')[0]} -> {c.new.split(':')[0]}")
        steps.append((s.place, tuple(out)))
    return steps


def pair_conversations(expected: Explanation, actual: Explanation) -> list[tuple]:
    """(expected, actual) conversations side by side: each model conversation with the first captured one of
    the same protocol between the same addresses in any of its views (ports are the kernel's choice, NAT changes
    the addresses), else the same protocol from the same client; what is left over is paired with None, the model's first, then the capture's."""
    free = list(actual.conversations)
    pairs = []

    def addrs(c):
        return {(a, b) for (a, _), (b, _) in c.views}
    for ce in expected.conversations:
        (a, _), (b, _) = ce.views[0]
        hit = next((c for c in free if c.proto == ce.proto and addrs(c) & addrs(ce)), None)
        if hit is None:
            hit = next((c for c in free if c.proto == ce.proto and c.views[0][0][0] == a), None)
        if hit is not None:
            free.remove(hit)
        pairs.append((ce, hit))
    return pairs + [(None, c) for c in free]


@public
def compare(expected: Explanation, actual: Explanation) -> list[str]:
    """Where ``actual`` (a real capture, explained) departs from ``expected`` (the model's), first difference first.

    Conversations are paired by protocol and addresses (:func:`pair_conversations`; a captured
    conversation the model does not predict is other traffic, not a difference), their packets by
    their role in the connection (:func:`pair_packets`); each packet's places and the
    addresses its changes rewrote are compared, not what the kernel chooses freely (ports,
    ISNs, IP ids, times).  An empty list: the same walk.

    >>> ck.explanation.compare(ck.explain(model_pcaps), ck.explain(real_pcaps))   # doctest: +SKIP

    Taught in: 10-your-own-cluster.
    """
    for name, ex in (("expected", expected), ("actual", actual)):
        if not isinstance(ex, Explanation):
            raise CourseError(name, f"a {type(ex).__name__} is not an explanation", "what ck.explain returns")
    out = []
    for ce, ca in pair_conversations(expected, actual):
        if ca is None:
            out.append(f"conversation {ce.number}: {ce.title} expected, not captured")
            continue
        if ce is None:
            continue                    # other traffic the model does not predict: not a disagreement
        for i, pe, pa in pair_packets(ce, ca):
            if pe is None:
                out.append(f"conversation {ce.number}: captured {pa.flow} {_brief(pa)} that the model does not "
                           "send")
                continue
            what = f"conversation {ce.number} packet {i} ({pe.flow} {_brief(pe)})"
            if pa is None:
                out.append(f"{what}: not captured")
                continue
            d = packet_difference(pe, pa)
            if d:
                out.append(f"{what}: {d}")
    return out


def _brief(p: Packet) -> str:
    return p.summary().split(" seq")[0].split(" len")[0]


def _role(p: Packet, isn: dict):
    """A TCP segment's place in its connection, free of the kernel's choices: flow, flags, relative seq/ack, length."""
    s = p.sightings[0]
    mine, other = ("request", "reply") if p.flow == "request" else ("reply", "request")
    rel = (s.seq - isn.get(mine, s.seq)) % 2**32
    ack = (s.ack - isn.get(other, s.ack)) % 2**32 if s.flags & 0x10 else 0
    return (p.flow, s.flags, rel, ack, s.length)


def _isns(c: Conversation) -> dict:
    out = {}
    for p in c.packets:
        s = p.sightings[0]
        if s.flags & 0x02 and p.flow in ("request", "reply"):
            out.setdefault(p.flow, s.seq)
    return out


def pair_packets(ce: Conversation, ca: Conversation) -> list[tuple]:
    """(n, expected packet, captured packet): TCP segments paired by their role in the connection (flow, flags,
    sequence and acknowledgement numbers relative to the ISNs, length), so a kernel that sends two segments in
    the other order still pairs them; other protocols in order within each direction.  ``n`` counts the
    model's packets; captured packets the model does not send come last, with None."""
    free = list(ca.packets)
    out = []
    ie, ia = _isns(ce), _isns(ca)
    for n, pe in enumerate(ce.packets, 1):
        if ce.proto == 6 and ca.proto == 6:
            want = _role(pe, ie)
            hit = next((pa for pa in free if _role(pa, ia) == want), None)
        else:
            hit = next((pa for pa in free if pa.flow == pe.flow), None)
        if hit is not None:
            free.remove(hit)
        out.append((n, pe, hit))
    return out + [(None, None, pa) for pa in free]


def packet_difference(pe: Packet, pa: Packet) -> str | None:
    """The first place where a captured packet's walk departs from the model's, or None."""
    if pe.flow != pa.flow or pe.sightings[0].flags != pa.sightings[0].flags:
        return f"captured {pa.flow} {_brief(pa)}"
    se, sa = _shape(pe), _shape(pa)
    for j, (a, b) in enumerate(zip(se, sa)):
        if a[0] != b[0]:
            return f"hop {j + 1} expected at {a[0]}, captured at {b[0]}"
        if a[1] != b[1]:
            missing = [c for c in a[1] if c not in b[1]]
            extra = [c for c in b[1] if c not in a[1]]
            what = "; ".join(([f"missing {'; '.join(missing)}"] if missing else []) +
                             ([f"unexpected {'; '.join(extra)}"] if extra else []))
            return (f"arriving at {a[0]}: {what or 'the same changes in another order'} "
                    f"(expected: {', '.join(a[1]) or 'no change'}; captured: {', '.join(b[1]) or 'no change'})")
    if len(se) != len(sa):
        return (f"{len(se)} places expected ({', '.join(x[0] for x in se)}), "
                f"{len(sa)} captured ({', '.join(x[0] for x in sa)})")
    return None
