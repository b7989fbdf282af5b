"""Hypothesis strategies: random in-scope frames for the differential tests.

In scope (issue 3): Ethernet, ARP, IPv4 (no options, not fragmented), ICMP
echo, UDP, VXLAN on 4789 and 8472 carrying an inner frame, TCP with mss,
sackOK, TS, nop, wscale, sack blocks and eol, HTTP text on port 80, random
payloads, checksums right or wrong, and truncation by the snapshot length.
"""

from __future__ import annotations

import struct

from hypothesis import strategies as st

from coursekit.tcpdump import _cksum

# Ports with no tcpdump dissector (checked against tcpdump 4.99.3), plus 80.
SAFE_PORTS = st.one_of(st.sampled_from([80, 4432, 38200, 50350, 56252]), st.integers(32768, 48000))

mac = st.binary(min_size=6, max_size=6)
ip4 = st.binary(min_size=4, max_size=4)


def _sum16(data: bytes) -> int:
    s = _cksum(data)
    return (~s) & 0xFFFF


@st.composite
def tcp_options(draw):
    opts = b""
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["mss", "sackOK", "ts", "nop", "wscale", "sack", "eol"]))
        if kind == "mss":
            opts += struct.pack("!BBH", 2, 4, draw(st.integers(0, 65535)))
        elif kind == "sackOK":
            opts += b"\x04\x02"
        elif kind == "ts":
            opts += struct.pack("!BBII", 8, 10, draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)))
        elif kind == "nop":
            opts += b"\x01"
        elif kind == "wscale":
            opts += struct.pack("!BBB", 3, 3, draw(st.integers(0, 14)))
        elif kind == "sack":
            n = draw(st.integers(1, 3))
            opts += struct.pack("!BB", 5, 2 + 8 * n) + b"".join(
                struct.pack("!II", draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))) for _ in range(n))
        elif kind == "eol":
            opts += b"\x00"
    opts = opts[:40]
    if len(opts) % 4:
        opts += b"\x00" * (4 - len(opts) % 4)
    return opts


HTTP_TEXTS = [b"GET / HTTP/1.1\r\nHost: 10.254.40.119:4432\r\nUser-Agent: Wget\r\nConnection: close\r\n\r\n",
              b"HTTP/1.1 200 OK\r\nServer: nginx/1.17.3\r\nContent-Length: 612\r\n\r\n",
              b"POST /x HTTP/1.0\r\n\r\nbody", b"<html>\r\n</html>\r\n", b"PUT  /a\tb HTTP/1.1\nX: y\n\n",
              b"HTTP/1.1 404\r\n", b"GET /\r\x01junk"]


@st.composite
def tcp_segment(draw, src, dst):
    sport, dport = draw(SAFE_PORTS), draw(SAFE_PORTS)
    opts = draw(tcp_options())
    if draw(st.booleans()) and 80 in (sport, dport):
        payload = draw(st.sampled_from(HTTP_TEXTS))
    else:
        payload = draw(st.binary(max_size=60))
    flags = draw(st.integers(0, 255))
    hdr = struct.pack("!HHIIBBHHH", sport, dport, draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)),
                      (5 + len(opts) // 4) << 4, flags, draw(st.integers(0, 65535)), 0,
                      draw(st.integers(0, 65535))) + opts
    seg = hdr + payload
    csum = _sum16(src + dst + struct.pack("!BBH", 0, 6, len(seg)) + seg)
    if draw(st.integers(0, 9)) == 0:
        csum ^= draw(st.integers(1, 0xFFFF))
    return seg[:16] + struct.pack("!H", csum) + seg[18:]


@st.composite
def ipv4(draw, depth=0):
    src, dst = draw(ip4), draw(ip4)
    kind = draw(st.sampled_from(["tcp", "tcp", "udp", "vxlan", "icmp", "igmp", "other"] if depth == 0 else ["tcp", "icmp"]))
    options = b""
    if kind == "tcp":
        proto, payload = 6, draw(tcp_segment(src, dst))
    elif kind == "icmp":
        body = struct.pack("!BBHHH", draw(st.sampled_from([0, 8])), 0, 0, draw(st.integers(0, 65535)),
                           draw(st.integers(0, 65535))) + draw(st.binary(max_size=40))
        c = _sum16(body)
        proto, payload = 1, body[:2] + struct.pack("!H", c) + body[4:]
    elif kind in ("udp", "vxlan"):
        if kind == "vxlan":
            inner = draw(ethernet(depth + 1))
            body = bytes([draw(st.sampled_from([0x08, 0x08, 0x00, 0x0c]))]) + b"\0\0\0" + \
                draw(st.integers(0, 2**24 - 1)).to_bytes(3, "big") + b"\0" + inner
            sport, dport = draw(st.integers(32768, 60999)), draw(st.sampled_from([8472, 4789]))
        else:
            body = draw(st.binary(max_size=40))
            sport, dport = draw(SAFE_PORTS), draw(SAFE_PORTS)
        udp = struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body
        c = 0 if draw(st.booleans()) else _sum16(src + dst + struct.pack("!BBH", 0, 17, len(udp)) + udp)
        proto, payload = 17, udp[:6] + struct.pack("!H", c) + udp[8:]
    elif kind == "igmp":
        # what a Linux bridge sends when it comes up (v3 report), and the older messages,
        # with the Router Alert option IGMP carries (RFC 2113), sometimes with a value
        typ = draw(st.sampled_from([0x22, 0x22, 0x16, 0x17, 0x12, 0x11, 0x30]))
        if typ == 0x22:
            recs = b""
            n = draw(st.integers(0, 3))
            for _ in range(n):
                nsrc = draw(st.integers(0, 2))
                recs += struct.pack("!BBH4s", draw(st.integers(1, 7)), 0, nsrc, draw(ip4)) + b"".join(
                    draw(ip4) for _ in range(nsrc))
            body = struct.pack("!BBHHH", typ, 0, 0, 0, n + draw(st.sampled_from([0, 0, 1]))) + recs
        elif typ == 0x11 and draw(st.booleans()):        # an IGMPv3 query, maybe with sources
            nsrc = draw(st.integers(0, 2))
            body = struct.pack("!BBH4sBBH", typ, draw(st.sampled_from([100, 10, 200])), 0,
                               draw(st.sampled_from([b"\0" * 4, bytes([239, 1, 2, 3])])), 0, 125, nsrc) + \
                b"".join(draw(ip4) for _ in range(nsrc))
        else:
            body = struct.pack("!BBH4s", typ, draw(st.sampled_from([0, 100, 50])), 0, draw(ip4))
        c = _sum16(body) if draw(st.integers(0, 5)) else 0x1234
        proto, payload = 2, body[:2] + struct.pack("!H", c) + body[4:]
        options = draw(st.sampled_from([b"\x94\x04\x00\x00", b"\x94\x04\x00\x07", b"\x01\x01\x01\x00",
                                        b"\x94\x04\x00\x00\x01\x01\x01\x00", b"\x94\x01\x00\x00"]))
    else:
        proto, payload = draw(st.sampled_from([99, 253])), draw(st.binary(max_size=20))
    total = 20 + len(options) + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45 + len(options) // 4, draw(st.integers(0, 255)), total,
                      draw(st.integers(0, 65535)), draw(st.sampled_from([0, 0x4000])), draw(st.integers(0, 255)),
                      proto, 0, src, dst) + options
    c = _sum16(hdr)
    if draw(st.integers(0, 9)) == 0:
        c ^= draw(st.integers(1, 0xFFFF))
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload


@st.composite
def arp(draw):
    op = draw(st.sampled_from([1, 2]))
    tha = draw(st.one_of(st.just(b"\0" * 6), mac))
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + draw(mac) + draw(ip4) + tha + draw(ip4)


@st.composite
def ethernet(draw, depth=0):
    if depth == 0 and draw(st.integers(0, 5)) == 0:
        return draw(mac) + draw(mac) + b"\x08\x06" + draw(arp())
    return draw(mac) + draw(mac) + b"\x08\x00" + draw(ipv4(depth))


@st.composite
def captured_frame(draw):
    """(data, wire_len): sometimes cut short by the snapshot length."""
    frame = draw(ethernet())
    if draw(st.integers(0, 6)) == 0:
        cut = draw(st.integers(14, len(frame)))
        return frame[:cut], len(frame)
    return frame, len(frame)


# Link types other than Ethernet (issue 16): raw IPv4 (101, 228) and Linux cooked
# captures v1 (113) and v2 (276), plus Ethernet with ethertypes tcpdump has no
# dissector for, and record headers tcpdump calls invalid (caplen 0, len 0, len < caplen).
# (checked against tcpdump 4.99.3: it has no dissector and no name for these)
UNKNOWN_ETHERTYPES = st.sampled_from([0x1234, 0x5678, 0x4321, 0x7777, 0xEEEE, 0x0050, 0x0000, 0x05DC])


@st.composite
def linked_capture(draw):
    """(linktype, [(data, wire_len), ...]): one to four frames of one link type."""
    lt = draw(st.sampled_from([1, 101, 228, 113, 276]))
    return lt, draw(st.lists(linked_frame(lt), min_size=1, max_size=4))


@st.composite
def linked_frame(draw, lt):
    """(data, wire_len) of a frame of link type ``lt``."""
    eth = draw(ethernet())
    proto = eth[12:14]
    if lt not in (101, 228) and draw(st.integers(0, 4)) == 0:
        proto = struct.pack("!H", draw(UNKNOWN_ETHERTYPES))
        if lt == 1 and proto[0] < 0x06:     # <= 1500 is an 802.3 length on Ethernet: tcpdump reads LLC
            proto = b"\x12\x34"
        eth = eth[:12] + proto + draw(st.binary(max_size=40))
    if lt == 1:
        frame = eth
    elif lt in (101, 228):
        frame = eth[14:]
        if frame and draw(st.integers(0, 6)) == 0:
            frame = bytes([(draw(st.sampled_from([0, 5, 7, 15])) << 4) | (frame[0] & 15)]) + frame[1:]
    elif lt == 113:
        frame = struct.pack("!HHH8s", draw(st.sampled_from([0, 1, 2, 3, 4, 7])), 1,
                            draw(st.sampled_from([6, 6, 4, 0])), draw(st.binary(min_size=8, max_size=8))) + \
            proto + eth[14:]
    else:
        frame = proto + struct.pack("!HIHBB8s", 0, draw(st.sampled_from([1, 1, 99999])), 1,
                                    draw(st.sampled_from([0, 1, 2, 3, 4, 7])), draw(st.sampled_from([6, 6, 4, 0])),
                                    draw(st.binary(min_size=8, max_size=8))) + eth[14:]
    wire = len(frame)
    shape = draw(st.integers(0, 9))
    if shape == 0:
        frame = frame[:draw(st.integers(0, len(frame)))]          # cut by the snapshot length
    elif shape == 1:
        wire = draw(st.sampled_from([0, max(0, len(frame) - 3)]))  # a header tcpdump calls invalid
    return frame, wire


# --- DNS over UDP 53 (traffic case 6) ------------------------------------------------------------
_LABELS = st.one_of(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12),
                    st.binary(min_size=1, max_size=6))          # any byte: tcpdump's M- and ^ escapes


def _dns_name(labels) -> bytes:
    return b"".join(bytes([len(x)]) + (x.encode() if isinstance(x, str) else x) for x in labels) + b"\0"


@st.composite
def dns_message(draw):
    """A DNS query or response as resolvers and CoreDNS send them: any id and flags, one question (or none,
    or two), A/AAAA/SOA records, names plain or compressed to the question's (a pointer to offset 12)."""
    qname = draw(st.lists(_LABELS, min_size=0, max_size=5))
    flags = draw(st.integers(0, 0xFFFF))
    response = bool(flags & 0x8000)
    qd = draw(st.sampled_from([1, 1, 1, 0, 2]))
    records = []
    if response:
        for _ in range(draw(st.integers(0, 3))):
            owner = draw(st.sampled_from([b"\xc0\x0c", b"\xc0\x0c", b"\xc1\x00", b"\x80\x00"])) \
                if qd and draw(st.booleans()) else _dns_name(draw(st.lists(_LABELS, max_size=4)))
            typ = draw(st.sampled_from([1, 28, 6]))
            if typ == 1:
                rdata = draw(ip4)
            elif typ == 28:
                rdata = draw(st.binary(min_size=16, max_size=16))
            else:
                rdata = (_dns_name(draw(st.lists(_LABELS, max_size=3))) + _dns_name(draw(st.lists(_LABELS, max_size=3)))
                         + struct.pack("!IIIII", *(draw(st.integers(0, 2**32 - 1)) for _ in range(5))))
            records.append(owner + struct.pack("!HHIH", typ, draw(st.sampled_from([1, 1, 3])),
                                               draw(st.integers(0, 2**32 - 1)), len(rdata)) + rdata)
    an = draw(st.integers(0, len(records)))
    question = _dns_name(qname) + struct.pack("!HH", draw(st.sampled_from([1, 28, 6, 255])),
                                              draw(st.sampled_from([1, 1, 1, 3])))
    ancount, nscount = (an, len(records) - an) if response else (draw(st.sampled_from([0, 0, 1])), 0)
    return struct.pack("!HHHHHH", draw(st.integers(0, 0xFFFF)), flags, qd, ancount, nscount, 0) + \
        question * qd + b"".join(records)


@st.composite
def dns_frame(draw):
    """Ethernet/IPv4/UDP carrying a DNS message to or from port 53, checksum right."""
    msg = draw(dns_message())
    src, dst = draw(ip4), draw(ip4)
    eph = draw(st.integers(32768, 48000))
    sport, dport = (eph, 53) if draw(st.booleans()) else (53, eph)
    udp = struct.pack("!HHHH", sport, dport, 8 + len(msg), 0) + msg
    c = _sum16(src + dst + struct.pack("!BBH", 0, 17, len(udp)) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), draw(st.integers(0, 0xFFFF)), 0x4000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _sum16(ip)) + ip[12:]
    return draw(mac) + draw(mac) + b"\x08\x00" + ip + udp
