"""A tcpdump-faithful text view: what ``tcpdump -r`` (4.99) prints, byte for byte.

The printer reads raw frames the way tcpdump's own printers do -- one layer
after another, each guarded by the captured length -- and prints what
tcpdump 4.99 prints for Ethernet, ARP, IPv4, ICMP echo, UDP, VXLAN/OTV, TCP
(flags, options, relative sequence numbers) and HTTP's first line (or every
line with ``-v``).  Out-of-scope payloads print the way tcpdump prints a
payload it has no dissector for; a frame cut short by the snapshot length
ends in ``[|proto]``; a record header tcpdump calls invalid (caplen 0, len 0,
len < caplen) prints its ``[Invalid header: ...]`` line; nothing raises.
A protocol tcpdump decodes but this view does not model (IPv6, VLAN tags,
MPLS, ...) prints ``[ip6 not decoded by coursekit; see tcpdump -r]`` rather
than a guess.

Link types (``Frame.linktype``, from the pcap): Ethernet (1), raw IPv4 (101,
228; ``ip:`` with ``-e``), Linux cooked v1 (113) and v2 (276; ``tcpdump -i
any``), printed as tcpdump 4.99.3 prints them -- SLL2's interface names come,
as in tcpdump, from *this* machine's ``if_indextoname``.  Any other link type
raises :class:`CourseError` naming the ones allowed.  VXLAN's inner frames
are printed in a loop, so any nesting depth prints (as tcpdump does) without
recursion.  tests/test_tcpdump_diff.py compares all of this with real
tcpdump.

Modes: ``n`` (0, 1 or 2: ``-n``/``-nn``), ``e`` (``-e``), ``v`` (``-v``).
Names come from the scenario (its hosts file and services database), never
from the machine; timestamps print at the scenario's UTC offset.

UDP 8472 is the Linux VXLAN port.  tcpdump up to 4.99.5 has no VXLAN entry
for it and decodes it as Cisco OTV (same header layout, so VNI 1 reads as
``overlay 0, instance 1``); 4.99.6 and later print ``VXLAN, ... vni 1``.
``vxlan_style="otv"`` (the article's, the default) or ``"vxlan"`` picks one.

tcpdump's relative sequence numbers: a connection enters its table at the
first ACK-bearing segment seen *in this capture*; that one prints absolute
numbers, later ones relative.  :class:`Printer` keeps that table, so feed it
the frames of one capture in order (:func:`render` does).

Taught in: 01-physical-nic (and every chapter that shows a capture).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

__all__ = ["Printer", "render", "render_lines", "Style", "parse_flags"]

TH_FIN, TH_SYN, TH_RST, TH_PUSH, TH_ACK, TH_URG, TH_ECE, TH_CWR = 1, 2, 4, 8, 16, 32, 64, 128

_HTTP_CMDS = {c.upper() for c in (
    "GET PUT COPY HEAD LOCK MOVE POLL POST BCOPY BMOVE MKCOL TRACE LABEL MERGE DELETE SEARCH UNLOCK "
    "REPORT UPDATE NOTIFY BDELETE CONNECT OPTIONS CHECKIN PROPFIND CHECKOUT CCM_POST SUBSCRIBE PROPPATCH "
    "BPROPFIND BPROPPATCH UNCHECKOUT MKACTIVITY MKWORKSPACE UNSUBSCRIBE RPC_CONNECT VERSION-CONTROL "
    "BASELINE-CONTROL").split()}
_TCPOPT_NAMES = {0: "eol", 1: "nop", 2: "mss", 3: "wscale", 4: "sackOK", 5: "sack", 6: "echo", 7: "echoreply",
                 8: "TS", 11: "cc", 12: "ccnew", 13: "", 19: "md5", 20: "scps", 28: "uto", 29: "tcp-ao",
                 30: "mptcp", 34: "tfo", 254: "exp"}
_IPPROTO = {1: "ICMP", 2: "IGMP", 4: "IPIP", 6: "TCP", 17: "UDP", 41: "IPv6", 47: "GRE", 50: "ESP", 51: "AH",
            58: "ICMPv6", 89: "OSPF", 103: "PIM", 112: "VRRP", 132: "SCTP"}
_IPOPTS = {0: "EOL", 1: "NOP", 68: "timestamp", 130: "security", 7: "RR", 137: "SSRR", 131: "LSRR", 148: "RA",
           82: "traceroute"}
_IGMPV3_REPORT = {1: "is_in", 2: "is_ex", 3: "to_in", 4: "to_ex", 5: "allow", 6: "block"}
_ETHERTYPES = {0x0800: "IPv4", 0x0806: "ARP", 0x86DD: "IPv6", 0x8100: "802.1Q"}
VXLAN_PORT, VXLAN_LINUX_PORT = 4789, 8472
NAMESERVER_PORT = 53
# print-domain.c: opcodes, rcodes and the record types the course's DNS exchanges carry
_NS_OPS = ["", " inv_q", " stat", " op3", " notify", " update", " op6", " op7", " op8", " updateA", " updateD",
           " updateDA", " updateM", " updateMA", " zoneInit", " zoneRef"]
# ns_resp[] (tcpdump 4.99.3 prints 17 and 21 without the leading space, as here)
_NS_RCODES = ["", " FormErr", " ServFail", " NXDomain", " NotImp", " Refused", " YXDomain", " YXRRSet", " NXRRSet",
              " NotAuth", " NotZone", " Resp11", " Resp12", " Resp13", " Resp14", " NoChange", " BadVers", "Resp17",
              " Resp18", " Resp19", " Resp20", "Resp21", " Resp22", " BadCookie"]
_NS_CLASSES = {1: "IN", 3: "CHAOS", 4: "HS", 255: "ANY"}
# ns_type2str[] (nameser.h's numbers)
_NS_TYPES = dict(zip(
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
     31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 99, 100, 101, 102, 103, 104, 249, 250,
     251, 252, 253, 254, 255, 256],
    "A NS MD MF CNAME SOA MB MG MR NULL WKS PTR HINFO MINFO MX TXT RP AFSDB X25 ISDN RT NSAP NSAP_PTR SIG KEY PX GPOS "
    "AAAA LOC NXT EID NIMLOC SRV ATMA NAPTR KX CERT A6 DNAME SINK OPT APL DS SSHFP IPSECKEY RRSIG NSEC DNSKEY SPF "
    "UINFO UID GID UNSPEC UNSPECA TKEY TSIG IXFR AXFR MAILB MAILA ANY URI".split()))
# link type -> printer (print-ether.c, print-raw.c, print-sll.c)
_LINK_PRINTERS = {1: "_ether", 101: "_raw", 228: "_raw_ipv4", 113: "_sll", 276: "_sll2"}
_SLL_PKTTYPES = {0: "In", 1: "B", 2: "M", 3: "P", 4: "Out"}
# ethertypes tcpdump decodes and this view does not model (it says so instead of guessing)
_NOT_DECODED = {0x86DD: "ip6", 0x8100: "vlan", 0x88A8: "vlan", 0x8035: "rarp", 0x8847: "mpls", 0x8848: "mpls",
                0x8863: "pppoe", 0x8864: "pppoe", 0x88CC: "lldp", 0x8809: "slow", 0x888E: "eapol",
                0x9000: "loopback", 0x0842: "wol", 0x22F0: "avtp", 0x88F7: "ptp", 0x8906: "fcoe"}


class _Trunc(Exception):
    """Ran past the captured bytes: tcpdump prints `` [|proto]``."""

    def __init__(self, proto: str, suffix: str = ""):
        self.proto = proto
        self.suffix = suffix


@dataclass
class Style:
    """tcpdump's command-line flags that change the text."""
    n: int = 0              # -n / -nn: no host (and port) names
    e: bool = False         # -e: link-level header
    v: int = 0              # -v
    vxlan_style: str = "otv"
    utc_offset_minutes: int = 0
    local_time: bool = False    # True: the reader's time zone (TZ), as tcpdump -r prints a pcap
    hosts: dict = field(default_factory=dict)      # "10.167.226.38" -> "xiaomi"
    services: dict = field(default_factory=dict)   # (80, "tcp") -> "http"

    def __post_init__(self):
        from .errors import CourseError
        for name, allowed in (("n", (0, 1, 2)), ("v", (0, 1)), ("e", (False, True)), ("local_time", (False, True)),
                              ("vxlan_style", ("otv", "vxlan"))):
            value = getattr(self, name)
            if isinstance(value, float) or value not in allowed or (name in ("n", "v") and isinstance(value, bool)):
                raise CourseError(name, f"{value!r:.40} is not allowed", ", ".join(map(repr, allowed)))
        m = self.utc_offset_minutes
        if not isinstance(m, int) or isinstance(m, bool) or abs(m) > 14 * 60:
            raise CourseError("utc_offset_minutes", f"{m!r:.40} is not allowed", "an integer from -840 to 840")
        if not isinstance(self.hosts, dict) or not isinstance(self.services, dict):
            raise CourseError("style", "hosts and services must be dicts", "Style.for_scenario(scenario)")

    @classmethod
    def for_scenario(cls, scenario, **kw) -> "Style":
        from .scenario import as_scenario
        scenario = as_scenario(scenario)
        return cls(utc_offset_minutes=scenario.utc_offset_minutes,
                   hosts={ip: name for ip, name in scenario.host_names},
                   services={(port, proto): name for port, proto, name in scenario.service_names}, **kw)


def parse_flags(flags: list[str] | str) -> dict:
    """``["-nn", "-e", "-v"]`` -> ``{"n": 2, "e": True, "v": 1}``; rejects what tcpdump would not take here."""
    from .errors import CourseError
    if flags is None:
        flags = []
    if isinstance(flags, str):
        flags = flags.split()
    if not isinstance(flags, (list, tuple)) or not all(isinstance(f, str) for f in flags):
        raise CourseError("flags", f"{flags!r:.40} is not text", "-n, -nn, -e, -v and combinations like -nnev")
    out = {"n": 0, "e": False, "v": 0}
    for f in flags:
        if not f.startswith("-") or len(f) < 2:
            raise CourseError("flags", f"{f!r} is not a tcpdump flag", "-n, -nn, -e, -v and combinations like -nnev")
        for ch in f[1:]:
            if ch == "n":
                out["n"] = min(2, out["n"] + 1)
            elif ch == "e":
                out["e"] = True
            elif ch == "v":
                if out["v"] >= 1:
                    raise CourseError("flags", "-vv and -vvv are not modelled", "-v")
                out["v"] = 1
            else:
                raise CourseError("flags", f"-{ch} is not modelled", "-n, -nn, -e, -v")
    return out


def _cksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


class _Buf:
    """The captured bytes of one frame; reads past them raise :class:`_Trunc`."""

    def __init__(self, data: bytes):
        self.data = data

    def need(self, off: int, n: int, proto: str) -> bytes:
        if off + n > len(self.data):
            raise _Trunc(proto)
        return self.data[off:off + n]

    def u8(self, off, proto):
        return self.need(off, 1, proto)[0]

    def u16(self, off, proto):
        return struct.unpack("!H", self.need(off, 2, proto))[0]

    def u24(self, off, proto):
        return int.from_bytes(self.need(off, 3, proto), "big")

    def u32(self, off, proto):
        return struct.unpack("!I", self.need(off, 4, proto))[0]


class Printer:
    """tcpdump's printers over one capture (keeps the relative-seq table)."""

    def __init__(self, style: Style | None = None, **kw):
        from .errors import CourseError
        if style is not None and not isinstance(style, Style):
            raise CourseError("style", f"{type(style).__name__} is not a Style", "ck.Style(n=2, e=True, v=1) or None")
        if style is not None and kw:
            raise CourseError("style", f"both a Style and {', '.join(kw)}", "one or the other")
        unknown = sorted(set(kw) - set(Style.__dataclass_fields__))
        if unknown:
            raise CourseError(unknown[0], "unknown option", ", ".join(Style.__dataclass_fields__))
        self.style = style or Style(**kw)
        self._seq: dict = {}
        self._inner: tuple[int, int] | None = None

    # --- names ------------------------------------------------------------
    def host(self, raw4: bytes) -> str:
        ip = str(ipaddress.IPv4Address(raw4))
        if self.style.n:
            return ip
        return self.style.hosts.get(ip, ip)

    def port(self, p: int, proto: str) -> str:
        if self.style.n:
            return str(p)
        return self.style.services.get((p, proto), str(p))

    def timestamp(self, time_us: int) -> str:
        if self.style.local_time:
            import time
            offset_s = time.localtime(time_us // 1_000_000).tm_gmtoff or 0     # per packet: DST as tcpdump
            t = time_us + offset_s * 1_000_000
        else:
            t = time_us + self.style.utc_offset_minutes * 60_000_000
        sec, us = divmod(t, 1_000_000)
        day = sec % 86400
        return f"{day // 3600:02d}:{day // 60 % 60:02d}:{day % 60:02d}.{us:06d} "

    # --- entry point --------------------------------------------------------
    def frame(self, time_us: int, data: bytes, wire_len: int | None = None, linktype: int = 1) -> str:
        """The text tcpdump prints for one frame (without the final newline).

        ``linktype`` is the pcap's (1 Ethernet, 101/228 raw IPv4, 113/276 Linux
        cooked v1/v2); any other raises :class:`CourseError`.
        """
        wire_len = len(data) if wire_len is None else wire_len
        bad = _invalid_header(len(data), wire_len)
        if bad:
            return bad
        link = _LINK_PRINTERS.get(linktype)
        if link is None:
            from .capture import linktype_error
            raise linktype_error(linktype)
        out: list[str] = [self.timestamp(time_us)]
        b = _Buf(data)
        try:
            getattr(self, link)(b, 0, wire_len, out)
            while self._inner is not None:       # VXLAN's inner frame: a loop, not recursion
                off, length = self._inner
                self._inner = None
                self._ether(b, off, length, out)
        except _Trunc as t:
            out.append(f" [|{t.proto}]{t.suffix}")
        finally:
            self._inner = None
        return "".join(out)

    # --- raw IP (print-raw.c, print-ip.c's ipN_print) --------------------------
    def _raw(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        if self.style.e:
            out.append("ip: ")
        if len(b.data) - off < 1:
            raise _Trunc("ip")
        version = b.data[off] >> 4
        if version == 4:
            self._ip(b, off, length, out)
        elif version == 6:
            b.need(off, 40, "ip6")
            out.append("IP6 " if not self.style.e else "")
            self._not_decoded(b, off, "ip6", out)
        else:
            out.append(f"unknown ip {version}")

    def _raw_ipv4(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        # LINKTYPE_IPV4 goes through the same raw printer in tcpdump 4.99
        self._raw(b, off, length, out)

    # --- Linux cooked captures (print-sll.c) ------------------------------------
    def _sll(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        if len(b.data) - off < 16:
            raise _Trunc("sll")
        pkttype, _hatype, halen = struct.unpack("!HHH", b.data[off:off + 6])
        addr, etype = b.data[off + 6:off + 14], b.u16(off + 14, "sll")
        head = f"{_SLL_PKTTYPES.get(pkttype, '?'):>3} " + (f"{_mac(addr[:6])} " if halen == 6 else "")
        self._cooked(b, off + 16, length - 16, etype, head, length, out)

    def _sll2(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        if len(b.data) - off < 20:
            raise _Trunc("sll2")
        etype, _res, ifindex, _hatype, pkttype, halen = struct.unpack("!HHIHBB", b.data[off:off + 12])
        addr = b.data[off + 12:off + 20]
        out.append(f"{_ifname(ifindex):<5} {_SLL_PKTTYPES.get(pkttype, '?'):<3} ")
        head = f"ifindex {ifindex} " + (f"{_mac(addr[:6])} " if halen == 6 else "")
        self._cooked(b, off + 20, length - 20, etype, head, length, out)

    def _cooked(self, b, off, length, etype, head, full, out):
        if etype <= 1500:
            name = {1: "802.3", 4: "802.2"}.get(etype, f"ethertype Unknown (0x{etype:04x})")
        else:
            name = f"ethertype {_ETHERTYPES.get(etype, 'Unknown')} (0x{etype:04x})"
        if self.style.e or (etype > 1500 and not self._decodes(etype)):
            out.append(f"{head}{name}, length {full}: ")
        self._payload(b, off, length, etype, out)

    @staticmethod
    def _decodes(etype: int) -> bool:
        """An ethertype this view prints a line for (IPv4, ARP, or a "not decoded" note)."""
        return etype in (0x0800, 0x0806) or etype in _NOT_DECODED

    def _payload(self, b: _Buf, off: int, length: int, etype: int, out: list[str]) -> None:
        """What an Ethernet or cooked header carries, by its ethertype; the bytes of anything else."""
        if etype == 0x0800:
            self._ip(b, off, length, out)
        elif etype == 0x0806:
            self._arp(b, off, length, out)
        elif etype in _NOT_DECODED:
            self._not_decoded(b, off, _NOT_DECODED[etype], out)
        else:
            out.append(_hexdump(b.data[off:off + max(0, min(length, len(b.data) - off))]))

    def _not_decoded(self, b: _Buf, off: int, proto: str, out: list[str]) -> None:
        """A protocol tcpdump decodes and this view does not model: say so, never guess."""
        out.append(f"[{proto} not decoded by coursekit; see tcpdump -r]")

    # --- Ethernet -------------------------------------------------------------
    def _ether(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        caplen = len(b.data) - off
        if caplen < 14:
            raise _Trunc("ether")
        if length < 14:
            out.append(f"[|ether]")
            return
        dst, src = b.data[off:off + 6], b.data[off + 6:off + 12]
        etype = b.u16(off + 12, "ether")
        name = _ETHERTYPES.get(etype, "Unknown")
        if self.style.e or not self._decodes(etype):   # ether_print shows the header of what it cannot decode
            out.append(f"{_mac(src)} > {_mac(dst)}, ")
            out.append(f"ethertype {name} (0x{etype:04x}), length {length}: ")
        self._payload(b, off + 14, length - 14, etype, out)

    # --- ARP --------------------------------------------------------------------
    def _arp(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        hrd, pro = b.u16(off, "arp"), b.u16(off + 2, "arp")
        hln, pln, op = b.u8(off + 4, "arp"), b.u8(off + 5, "arp"), b.u16(off + 6, "arp")
        b.need(off + 8, 2 * hln + 2 * pln, "arp")        # tcpdump checks the target address first
        if not self.style.e:
            out.append("ARP, ")
        if pro not in (0x0800, 0x1000) or pln != 4 or hln == 0 or self.style.v:
            hname = "Ethernet" if hrd == 1 else f"Unknown Hardware ({hrd})"
            pname = _ETHERTYPES.get(pro, f"Unknown Protocol (0x{pro:04x})")
            out.append(f"{hname} (len {hln}), {pname} (len {pln})")
            if pro not in (0x0800, 0x1000) or pln != 4 or hln != 6:
                out.append(f", length {length}")
                return
            out.append(", ")
        if hrd != 1 or hln != 6:
            out.append(f", length {length}")
            return
        need = b.need(off + 8, 20, "arp")
        sha, spa, tha, tpa = need[0:6], need[6:10], need[10:16], need[16:20]
        if op == 1:
            out.append(f"Request who-has {self.host(tpa)}")
            if any(tha):
                out.append(f" ({_mac(tha)})")
            out.append(f" tell {self.host(spa)}")
        elif op == 2:
            out.append(f"Reply {self.host(spa)} is-at {_mac(sha)}")
        else:
            out.append(f"Unknown ({op})")  # pragma: no cover - out of scope
        out.append(f", length {length}")

    # --- IPv4 -------------------------------------------------------------------
    def _ip(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        vh = b.u8(off, "ip")
        if vh >> 4 != 4:
            out.append("IP6, wrong link-layer encapsulation" if vh >> 4 == 6 else f"IP{vh >> 4}")
            out.append(" (invalid)")
            return
        if not self.style.e:
            out.append("IP ")
        b.need(off, 20, "ip")
        if length < 20:
            out.append(f"truncated-ip {length}")
            return
        hlen = (vh & 0x0F) * 4
        if hlen < 20:
            out.append(f"bad-hlen {hlen}")
            return
        tos = b.u8(off + 1, "ip")
        total = b.u16(off + 2, "ip")
        ident = b.u16(off + 4, "ip")
        frag = b.u16(off + 6, "ip")
        ttl = b.u8(off + 8, "ip")
        proto = b.u8(off + 9, "ip")
        src, dst = b.data[off + 12:off + 16], b.data[off + 16:off + 20]
        if total > length:
            out.append(f"[total length {total} > length {length}] (invalid) ")
        if total < hlen:
            out.append(f"bad-len {total}")
            return
        length = total
        truncated = False
        if self.style.v:
            out.append(f"(tos 0x{tos:x}")
            out.append({0: "", 1: ",ECT(1)", 2: ",ECT(0)", 3: ",CE"}[tos & 3])
            if ttl >= 1:
                out.append(f", ttl {ttl}")
            fl = [n for bit, n in ((0x2000, "+"), (0x4000, "DF"), (0x8000, "rsvd")) if frag & bit]
            out.append(f", id {ident}, offset {(frag & 0x1FFF) * 8}, flags [{', '.join(fl) or 'none'}], "
                       f"proto {_IPPROTO.get(proto, 'unknown')} ({proto}), length {total}")
            if hlen > 20:
                out.append(", options (")
                try:
                    self._ipopts(b, off + 20, hlen - 20, out)
                except _OptTrunc:
                    out.append(" [truncated-option]")
                    truncated = True
                out.append(")")
            if off + hlen <= len(b.data):
                s = _cksum(b.data[off:off + hlen])
                if s != 0xFFFF and s != 0:
                    field = b.u16(off + 10, "ip")
                    out.append(f", bad cksum {field:x} (->{_fix(field, b.data[off:off + hlen]):x})!")
            out.append(")\n    ")
            if truncated:
                out.append(f"{self.host(src)} > {self.host(dst)}: ")
                raise _Trunc("ip")
        length -= hlen
        if frag & 0x1FFF:
            out.append(f"{self.host(src)} > {self.host(dst)}: ip-proto-{proto}")
            return
        poff = off + hlen
        if proto not in (6, 17, 33, 132):      # TCP, UDP, DCCP and SCTP print their own addresses
            out.append(f"{self.host(src)} > {self.host(dst)}: ")
        if poff > len(b.data):                  # options cut by the snaplen
            out.append(f" [remaining caplen({len(b.data) - off}) < header length({hlen})]")
            raise _Trunc("ip")
        if proto == 6:
            self._tcp(b, poff, length, src, dst, out, frag & 0x2000)
        elif proto == 17:
            self._udp(b, poff, length, src, dst, out, frag & 0x2000)
        elif proto == 1:
            self._icmp(b, poff, length, out, frag & 0x2000)
        elif proto == 2:
            self._igmp(b, poff, length, out)
        else:
            out.append(f" ip-proto-{proto} {length}")

    def _ipopts(self, b: _Buf, off: int, n: int, out: list[str]) -> None:
        """print-ip.c ``ip_optprint``: names, and the Router Alert value (IGMP carries RA).

        Timestamp and record-route contents are not decoded (their names are printed).
        """
        sep = ""
        while n > 0:
            out.append(sep)
            code = b.u8(off, "ip")
            out.append(_IPOPTS.get(code, f"unknown {code}"))
            sep = ","
            if code in (0, 1):
                olen = 1
            else:
                olen = b.u8(off + 1, "ip")
                if olen < 2:
                    out.append(f" [bad length {olen}]")
                    break
            if olen > n:
                out.append(f" [bad length {olen}]")
                break
            if off + olen > len(b.data):        # ND_TCHECK_LEN: ip_optprint returns -1
                raise _OptTrunc()
            if code == 0:
                break
            if code == 148:
                if olen < 4:
                    out.append(f" [bad length {olen}]")
                else:
                    val = b.u16(off + 2, "ip")
                    if val:
                        out.append(f" value {val}")
            off += olen
            n -= olen

    # --- IGMP (print-igmp.c) --------------------------------------------------------
    def _igmpv3_report(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        if length < 16 or length & 3:
            out.append(f" [invalid len {length}]")
            return
        groups = b.u16(off + 6, "igmp")
        out.append(f", {groups} group record(s)")
        if not self.style.v:
            return
        g = 8
        for _ in range(groups):
            if length < g + 8:
                out.append(" [invalid number of groups]")
                return
            out.append(f" [gaddr {self.host(b.need(off + g + 4, 4, 'igmp'))}")
            rtype = b.u8(off + g, "igmp")
            out.append(" " + _IGMPV3_REPORT.get(rtype, f" [v3-report-#{rtype}]"))
            nsrcs = b.u16(off + g + 2, "igmp")
            if length < g + 8 + (nsrcs << 2):
                out.append(f" [invalid number of sources {nsrcs}]")
                return
            if self.style.v == 1:
                out.append(f", {nsrcs} source(s)")
            else:
                out.append(" {" + "".join(f" {self.host(b.need(off + g + 8 + 4 * j, 4, 'igmp'))}"
                                          for j in range(nsrcs)) + " }")
            g += 8 + (nsrcs << 2)
            out.append("]")

    def _igmpv3_query(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        out.append(" v3")
        if length & 3:
            out.append(f" [invalid len {length}]")
            return
        mrc = b.u8(off + 1, "igmp")
        mrt = mrc if mrc < 128 else ((mrc & 0x0F) | 0x10) << (((mrc & 0x70) >> 4) + 3)
        if mrc != 100:
            out.append(" [max resp time " + (f"{mrt * 0.1:.1f}s" if mrt < 600 else _relts(mrt // 10)) + "]")
        if b.u32(off + 4, "igmp") == 0:
            return
        out.append(f" [gaddr {self.host(b.need(off + 4, 4, 'igmp'))}")
        nsrcs = b.u16(off + 10, "igmp")
        if nsrcs:
            if length < 12 + (nsrcs << 2):
                out.append(" [invalid number of sources]")
            elif self.style.v > 1:
                out.append(" {" + "".join(f" {self.host(b.need(off + 12 + 4 * j, 4, 'igmp'))}"
                                          for j in range(nsrcs)) + " }")
            else:
                out.append(f", {nsrcs} source(s)")
        out.append("]")

    def _igmp(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        typ = b.u8(off, "igmp")
        if typ == 0x11:
            out.append("igmp query")
            if length >= 12:
                self._igmpv3_query(b, off, length, out)
            else:
                mrt = b.u8(off + 1, "igmp")
                if mrt:
                    out.append(" v2" + (f" [max resp time {mrt}]" if mrt != 100 else ""))
                else:
                    out.append(" v1")
                if b.u32(off + 4, "igmp"):
                    out.append(f" [gaddr {self.host(b.need(off + 4, 4, 'igmp'))}]")
                if length != 8:
                    out.append(f" [len {length}]")
        elif typ == 0x12:
            out.append(f"igmp v1 report {self.host(b.need(off + 4, 4, 'igmp'))}")
        elif typ == 0x16:
            out.append(f"igmp v2 report {self.host(b.need(off + 4, 4, 'igmp'))}")
        elif typ == 0x17:
            out.append(f"igmp leave {self.host(b.need(off + 4, 4, 'igmp'))}")
        elif typ == 0x22:
            out.append("igmp v3 report")
            self._igmpv3_report(b, off, length, out)
        else:
            out.append(f"igmp-{typ}")
        if self.style.v and length >= 4 and off + length <= len(b.data):
            if _cksum(b.data[off:off + length]) not in (0, 0xFFFF):
                out.append(f" bad igmp cksum {b.u16(off + 2, 'igmp'):x}!")

    # --- ICMP -------------------------------------------------------------------
    def _icmp(self, b: _Buf, off: int, length: int, out: list[str], fragmented: int) -> None:
        typ, code = b.u8(off, "icmp"), b.u8(off + 1, "icmp")
        quoted = None
        if typ in (0, 8):
            ident, seq = b.u16(off + 4, "icmp"), b.u16(off + 6, "icmp")
            out.append(f"ICMP echo {'reply' if typ == 0 else 'request'}, id {ident}, seq {seq}, length {length}")
        elif typ == 3 and code == 3 and off + 28 <= len(b.data):
            # print-icmp.c ICMP_UNREACH_PORT: the quoted packet's destination, protocol and port
            q = off + 8
            qp, qh = b.u8(q + 9, "icmp"), (b.u8(q, "icmp") & 0x0F) * 4
            qdst = b.data[q + 16:q + 20]
            dport = b.u16(q + qh + 2, "icmp") if q + qh + 4 <= len(b.data) else 0
            what = (f"tcp port {self.port(dport, 'tcp')}" if qp == 6 else
                    f"udp port {self.port(dport, 'udp')}" if qp == 17 else f"protocol {qp} port {dport}")
            out.append(f"ICMP {self.host(qdst)} {what} unreachable, length {length}")
            quoted = q
        elif typ == 3 and code in (0, 1) and off + 28 <= len(b.data):
            # print-icmp.c ICMP_UNREACH_NET / ICMP_UNREACH_HOST: "net %s unreachable", "host %s unreachable"
            q = off + 8
            out.append(f"ICMP {'net' if code == 0 else 'host'} {self.host(b.data[q + 16:q + 20])} unreachable, "
                       f"length {length}")
            quoted = q
        else:
            out.append(f"ICMP type-#{typ}, length {length}")
        if self.style.v and not fragmented and off + length <= len(b.data):
            s = _cksum(b.data[off:off + length])
            if s != 0xFFFF and s != 0:
                field = b.u16(off + 2, "icmp")
                out.append(f" (wrong icmp cksum {field:x} (->{_fix(field, b.data[off:off + length]):x})!)")
        if self.style.v and quoted is not None:
            # ICMP_ERRTYPE with -v: the quoted packet, printed by ip_print after a newline and a tab
            out.append("\n\t")
            self._ip(b, quoted, b.u16(quoted + 2, "icmp"), out)

    # --- UDP --------------------------------------------------------------------
    def _udp(self, b: _Buf, off: int, length: int, src: bytes, dst: bytes, out: list[str], mf: int) -> None:
        if off + 4 > len(b.data):
            out.append(f"{self.host(src)} > {self.host(dst)}: ")
            raise _Trunc("udp")
        sport, dport = b.u16(off, "udp"), b.u16(off + 2, "udp")
        addrs = f"{self.host(src)}.{self.port(sport, 'udp')} > {self.host(dst)}.{self.port(dport, 'udp')}: "
        if length < 8:
            out.append(addrs + f"truncated-udp {length}")
            return
        if off + 6 > len(b.data):
            out.append(addrs)
            raise _Trunc("udp")
        ulen = b.u16(off + 4, "udp")
        if ulen < 8:
            out.append(addrs + f"truncated-udplength {ulen}")
            return
        ulen -= 8
        length -= 8
        if ulen < length:
            length = ulen
        out.append(addrs)
        if off + 8 > len(b.data):
            raise _Trunc("udp")
        poff = off + 8
        if NAMESERVER_PORT in (sport, dport):
            self._domain(b, poff, length, out)
        elif VXLAN_LINUX_PORT in (sport, dport):
            if self.style.vxlan_style == "vxlan":
                self._vxlan(b, poff, length, out)
            else:
                self._otv(b, poff, length, out)
        elif VXLAN_PORT in (sport, dport):
            self._vxlan(b, poff, length, out)
        else:
            out.append(f"UDP, length {length}")

    # --- DNS (print-domain.c, 4.99) ----------------------------------------------
    def _domain(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        """``domain_print``: id, flags, counts, the question (query) or the answers (response), ``(length)``.

        The record types this view decodes are the ones the course's exchanges
        carry (A, AAAA, SOA, names); a record of another type prints as
        ``[<type> not decoded by coursekit; see tcpdump -r]``.
        """
        if length < 12:
            out.append(f"domain [length {length} < 12] (invalid)")
            return
        b.need(off, 12, "domain")
        ident, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", b.data, off)
        opcode, rcode = (flags >> 11) & 0xF, flags & 0xF
        cp = off + 12
        if flags & 0x8000:
            out.append(f"{ident}{_NS_OPS[opcode]}{_NS_RCODES[rcode]}"
                       f"{'*' if flags & 0x0400 else ''}{'' if flags & 0x0080 else '-'}"
                       f"{'|' if flags & 0x0200 else ''}{'$' if flags & 0x0020 else ''}")
            if qd != 1:
                out.append(f" [{qd}q]")
            for i in range(qd):
                if i:
                    out.append(",")
                cp = self._dns_skip(b, cp, off)
                if cp is None:
                    raise _Trunc("domain")
                cp += 4
            out.append(f" {an}/{ns}/{ar}")
            for i in range(an):
                if i:
                    if cp >= len(b.data):              # while (cp < snapend && ancount): else [|domain]
                        raise _Trunc("domain")
                    out.append(",")
                cp = self._dns_rr(b, cp, off, out)
        else:
            out.append(f"{ident}{_NS_OPS[opcode]}{'+' if flags & 0x0100 else ''}{'%' if flags & 0x0010 else ''}")
            if flags & 0x6cf:
                out.append(f" [b2&3=0x{flags:x}]")
            if opcode == 1:
                if qd:
                    out.append(f" [{qd}q]")
                if an != 1:
                    out.append(f" [{an}a]")
            else:
                if an:
                    out.append(f" [{an}a]")
                if qd != 1:
                    out.append(f" [{qd}q]")
            if ns:
                out.append(f" [{ns}n]")
            if ar:
                out.append(f" [{ar}au]")
            for i in range(qd):
                if i and cp >= len(b.data):
                    raise _Trunc("domain")
                end = self._dns_skip(b, cp, off)
                if end is None:
                    raise _Trunc("domain")
                qtype, qclass = b.u16(end, "domain"), b.u16(end + 2, "domain")
                out.append(f" {_NS_TYPES.get(qtype, f'Type{qtype}')}")
                if qclass != 1:
                    out.append(f" {_NS_CLASSES.get(qclass, f'(Class {qclass})')}")
                out.append("? ")
                self._dns_name(b, cp, off, out)
                cp = end + 4
        out.append(f" ({length})")

    def _dns_skip(self, b: _Buf, cp: int, base: int) -> int | None:
        """``ns_nskip``: past one name (a pointer ends it); None where tcpdump's returns NULL."""
        while True:
            if cp >= len(b.data):
                return None
            n = b.data[cp]
            if n & 0xC0 == 0xC0:
                return cp + 2
            if n & 0xC0:                                  # EDNS0 extended or reserved label types
                return None
            cp += 1 + n
            if n == 0:
                return cp

    def _dns_name(self, b: _Buf, cp: int, base: int, out: list[str]) -> int:
        """``fqdn_print``: each label and a dot, following compression pointers (only backwards, as
        tcpdump requires: ``<BAD PTR>``); a name that is only the root prints ``.``.  Returns where it ends."""
        n = b.u8(cp, "domain")
        if n == 0:
            out.append(".")
            return cp + 1
        end, max_offset = None, cp - base
        while n:
            if n & 0xC0 == 0xC0:
                if end is None:
                    end = cp + 2
                offset = ((n & 0x3F) << 8) | b.u8(cp + 1, "domain")
                if offset >= max_offset:
                    out.append("<BAD PTR>")
                    raise _Trunc("domain")
                max_offset = offset
                cp = base + offset
            elif n & 0xC0:
                out.append("<BAD LABEL TYPE>" if n & 0xC0 == 0x80 else f"<ELT {n & 0x3F}>")
                raise _Trunc("domain")
            else:
                raw = b.need(cp + 1, n, "domain")
                out.append("".join(map(_safe, raw)) + ".")          # nd_printn: M- and ^ escapes
                cp += 1 + n
            n = b.u8(cp, "domain")
        return end if end is not None else cp + 1

    def _dns_rr(self, b: _Buf, cp: int, base: int, out: list[str]) -> int:
        """``ns_rprint``: (the owner with -v,) the type, and the data of A, AAAA and SOA (with -v) records."""
        if self.style.v:
            out.append(" ")
            cp = self._dns_name(b, cp, base, out)
        else:
            cp = self._dns_skip(b, cp, base)
        if cp is None or cp + 10 > len(b.data):
            return len(b.data)                        # tcpdump returns snapend: nothing more is printed
        typ, cls = b.u16(cp, "domain"), b.u16(cp + 2, "domain")
        rdlen = b.u16(cp + 8, "domain")
        cp += 10
        if cls != 1 and typ != 41:
            out.append(f" {_NS_CLASSES.get(cls, f'(Class {cls})')}")
        out.append(f" {_NS_TYPES.get(typ, f'Type{typ}')}")
        b.need(cp, rdlen, "domain")
        if typ == 1:
            out.append(" " + str(ipaddress.IPv4Address(b.need(cp, 4, "domain"))))
        elif typ == 28:
            out.append(" " + str(ipaddress.IPv6Address(b.need(cp, 16, "domain"))))
        elif typ == 6:
            if self.style.v:
                out.append(" ")
                p = self._dns_name(b, cp, base, out)
                out.append(" ")
                p = self._dns_name(b, p, base, out)
                out.append(" " + " ".join(map(str, struct.unpack_from("!IIIII", b.need(p, 20, "domain")))))
        else:
            out.append(f" [{_NS_TYPES.get(typ, typ)} not decoded by coursekit; see tcpdump -r]")
        return cp + rdlen

    def _vxlan(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        out.append("VXLAN")
        if length < 8:
            out.append(" (invalid)")
            return
        flags = b.u8(off, "vxlan")
        out.append(f", flags [{'I' if flags & 0x08 else 'invalid'}] (0x{flags:02x}), ")
        vni = b.u24(off + 4, "vxlan")
        out.append(f"vni {vni}\n")
        b.need(off + 7, 1, "vxlan")      # the reserved byte must be there too (tcpdump 4.99.3)
        self._inner = (off + 8, length - 8)     # printed by frame()'s loop: nesting never recurses

    def _otv(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        out.append("OTV, ")
        if length < 8:
            out.append(f"[length {length} < 8] (invalid)")
            return
        flags = b.u8(off, "otv")
        out.append(f"flags [{'I' if flags & 0x08 else '.'}] (0x{flags:02x}), ")
        out.append(f"overlay {b.u24(off + 1, 'otv')}, ")
        out.append(f"instance {b.u24(off + 4, 'otv')}\n")
        b.u8(off + 7, "otv")
        self._inner = (off + 8, length - 8)

    # --- TCP --------------------------------------------------------------------
    def _tcp(self, b: _Buf, off: int, length: int, src: bytes, dst: bytes, out: list[str], mf: int) -> None:
        if off + 4 > len(b.data):
            out.append(f"{self.host(src)} > {self.host(dst)}:")
            raise _Trunc("tcp")
        sport, dport = b.u16(off, "tcp"), b.u16(off + 2, "tcp")
        out.append(f"{self.host(src)}.{self.port(sport, 'tcp')} > {self.host(dst)}.{self.port(dport, 'tcp')}: ")
        hlen = (b.u8(off + 12, "tcp") >> 4) * 4
        if hlen < 20:
            out.append(f" tcp {length - hlen} [bad hdr length {hlen} - too short, < 20]")
            return
        b.need(off, 20, "tcp")
        seq, ack = b.u32(off + 4, "tcp"), b.u32(off + 8, "tcp")
        flags = b.u8(off + 13, "tcp")
        win, urp = b.u16(off + 14, "tcp"), b.u16(off + 18, "tcp")
        names = "".join(n for bit, n in ((TH_FIN, "F"), (TH_SYN, "S"), (TH_RST, "R"), (TH_PUSH, "P"),
                                         (TH_ACK, "."), (TH_URG, "U"), (TH_ECE, "E"), (TH_CWR, "W"))
                        if flags & bit)
        out.append(f"Flags [{names or 'none'}]")
        thseq = thack = 0
        rev = 0
        if flags & TH_ACK:
            rev = 1 if sport > dport or (sport == dport and src > dst) else 0
            key = (dst, src, dport, sport) if rev else (src, dst, sport, dport)
            entry = self._seq.get(key)
            if entry is None or flags & TH_SYN:
                if rev:
                    entry = [(ack - 1) & 0xFFFFFFFF, seq]
                else:
                    entry = [seq, (ack - 1) & 0xFFFFFFFF]
                self._seq[key] = entry
            else:
                if rev:
                    seq = (seq - entry[1]) & 0xFFFFFFFF
                    ack = (ack - entry[0]) & 0xFFFFFFFF
                else:
                    seq = (seq - entry[0]) & 0xFFFFFFFF
                    ack = (ack - entry[1]) & 0xFFFFFFFF
            thseq, thack = entry
        if hlen > length:
            out.append(f" [bad hdr length {hlen} - too long, > {length}]")
            return
        if self.style.v and not mf and off + length <= len(b.data):
            pseudo = src + dst + struct.pack("!BBH", 0, 6, length)
            s = _cksum(pseudo + b.data[off:off + length])
            field = b.u16(off + 16, "tcp")
            if s == 0xFFFF:
                out.append(f", cksum 0x{field:04x} (correct)")
            else:
                out.append(f", cksum 0x{field:04x} (incorrect -> 0x{_fix(field, pseudo + b.data[off:off + length]):04x})")
        length -= hlen
        if length > 0 or flags & (TH_SYN | TH_FIN | TH_RST):
            out.append(f", seq {seq}")
            if length > 0:
                out.append(f":{(seq + length) & 0xFFFFFFFF}")
        if flags & TH_ACK:
            out.append(f", ack {ack}")
        out.append(f", win {win}")
        if flags & TH_URG:
            out.append(f", urg {urp}")
        if hlen > 20:
            if not self._tcpopts(b, off + 20, hlen - 20, out, rev, thseq, thack):
                return
        out.append(f", length {length}")
        if length <= 0:
            return
        poff = off + hlen
        if poff > len(b.data):          # the header itself was cut by the snaplen
            out.append(f" [remaining caplen({max(0, len(b.data) - off)}) < header length({hlen})]")
            raise _Trunc("tcp")
        if flags & TH_RST and self.style.v:
            self._rst_data(b, poff, length, out)
            return
        if 80 in (sport, dport) or 8080 in (sport, dport):
            out.append(": ")
            self._http(b, poff, length, out)

    def _tcpopts(self, b: _Buf, off: int, hlen: int, out: list[str], rev: int, thseq: int, thack: int) -> bool:
        out.append(", options [")
        ch = ""
        try:
            while hlen > 0:
                out.append(ch)
                opt = b.u8(off, "tcp")
                off += 1
                if opt in (0, 1):
                    ln = 1
                else:
                    ln = b.u8(off, "tcp")
                    off += 1
                    if ln < 2 or ln > hlen:
                        raise _BadOpt
                    hlen -= 1
                hlen -= 1
                datalen = 0

                def lencheck(n):
                    if n > hlen:
                        raise _BadOpt
                    if off + n > len(b.data):
                        # LENCHECK's "goto trunc" (not a GET longjmp): tcp_print's
                        # trunc label adds ">" once an option was printed
                        raise _Trunc("tcp", ">" if ch else "")

                out.append(_TCPOPT_NAMES.get(opt, f"unknown-{opt}"))
                if opt == 2:
                    datalen = 2
                    lencheck(2)
                    out.append(f" {b.u16(off, 'tcp')}")
                elif opt == 3:
                    datalen = 1
                    lencheck(1)
                    out.append(f" {b.u8(off, 'tcp')}")
                elif opt == 5:
                    datalen = ln - 2
                    if datalen % 8:
                        out.append(" invalid sack")
                    else:
                        out.append(f" {datalen // 8} ")
                        for i in range(0, datalen, 8):
                            lencheck(i + 4)
                            s = b.u32(off + i, "tcp")
                            lencheck(i + 8)
                            e = b.u32(off + i + 4, "tcp")
                            if rev:
                                s, e = (s - thseq) & 0xFFFFFFFF, (e - thseq) & 0xFFFFFFFF
                            else:
                                s, e = (s - thack) & 0xFFFFFFFF, (e - thack) & 0xFFFFFFFF
                            out.append(f"{{{s}:{e}}}")
                elif opt in (6, 7, 11, 12, 13):
                    datalen = 4
                    lencheck(4)
                    out.append(f" {b.u32(off, 'tcp')}")
                elif opt == 8:
                    datalen = 8
                    lencheck(8)
                    out.append(f" val {b.u32(off, 'tcp')} ecr {b.u32(off + 4, 'tcp')}")
                elif opt in (0, 1, 4):
                    pass
                else:
                    datalen = ln - 2
                    if datalen:
                        out.append(" 0x")
                    for i in range(datalen):
                        lencheck(i + 1)
                        out.append(f"{b.u8(off + i, 'tcp'):02x}")
                off += datalen
                hlen -= datalen
                datalen += 1
                if opt not in (0, 1):
                    datalen += 1
                if datalen != ln:
                    out.append(f"[len {ln}]")
                ch = ","
                if opt == 0:
                    break
        except _BadOpt:
            out.append("[bad opt]")
            out.append("]")
            return False
        out.append("]")
        return True

    def _rst_data(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        avail = b.data[off:off + length]
        out.append(" [RST" if len(avail) == length else " [!RST")
        if length > 30:                      # MAX_RST_DATA_LEN
            length = 30
            out.append("+")
        out.append(" ")
        out.append("".join(_safe(c) for c in avail[:length]))
        out.append("]")

    # --- HTTP ---------------------------------------------------------------------
    def _http(self, b: _Buf, off: int, length: int, out: list[str]) -> None:
        data = b.data[off:off + length]
        captured = len(data)
        tok, idx = _fetch_token(data, 0, length, captured)
        show = False
        if idx:
            if tok.upper() in _HTTP_CMDS:
                show = True
            tok, idx = _fetch_token(data, idx, length, captured)
            if idx and len(tok) == 3 and tok.isdigit() and tok.isascii():
                show = True
        out.append("HTTP")
        if not show:
            return
        if self.style.v:
            out.append(f", length: {length}")
            i = 0
            while i < length:
                eol = _txt_line(data, "\n\t", i, length, out)
                if not eol:
                    break
                i = eol
        else:
            _txt_line(data, ": ", 0, length, out)


class _OptTrunc(Exception):
    """An IP option cut by the snaplen (tcpdump prints ``[truncated-option]``)."""


class _BadOpt(Exception):
    pass


def _fix(field: int, covered: bytes) -> int:
    """The checksum that would make ``covered`` sum correctly (tcpdump's ``in_cksum_shouldbe``)."""
    s = _cksum(covered)                 # includes the current field
    # remove the field from the one's-complement sum, then complement
    t = s + ((~field) & 0xFFFF)
    t = (t & 0xFFFF) + (t >> 16)
    t = (t & 0xFFFF) + (t >> 16)
    return (~t) & 0xFFFF


def _fetch_token(data: bytes, idx: int, length: int, captured: int) -> tuple[str, int]:
    tok = []
    while idx < length:
        if idx >= captured:
            return "", 0
        c = data[idx]
        if c >= 0x80:
            return "", 0
        if c in b" \t\r\n":
            break
        if not 0x20 <= c < 0x7F:
            return "", 0
        if len(tok) + 2 > 129:
            return "", 0
        tok.append(chr(c))
        idx += 1
    if not tok:
        return "", 0
    while idx < length:
        if idx >= captured:
            break
        c = data[idx]
        if c in b"\r\n":
            break
        if not 0x20 <= c < 0x7F:
            break
        if c not in b" \t":
            break
        idx += 1
    return "".join(tok), idx


def _txt_line(data: bytes, prefix: str, idx: int, length: int, out: list[str]) -> int:
    start = idx
    while idx < length:
        if idx >= len(data):
            raise _Trunc("http")
        c = data[idx]
        if c == 0x0A:
            out.append(prefix + data[start:idx].decode("ascii"))
            return idx + 1
        if c == 0x0D:
            if idx + 1 >= length:
                return 0
            if idx + 1 >= len(data):
                raise _Trunc("http")
            if data[idx + 1] == 0x0A:
                out.append(prefix + data[start:idx].decode("ascii"))
                return idx + 2
            return 0
        if not (0x20 <= c < 0x7F) and c != 0x09:
            return 0
        idx += 1
    # printable to the end but no line ending: tcpdump treats it as truncated
    out.append(prefix + data[start:idx].decode("ascii") + " [|http]")
    return 0


def _safe(c: int) -> str:
    if c < 0x80 and (0x20 <= c < 0x7F):
        return chr(c)
    if c < 0x80:
        return "^" + chr(c ^ 0x40)
    return "M-" + _safe(c & 0x7F)


def _relts(secs: int) -> str:
    """util-print.c ``unsigned_relts_print``: 100 -> "1m40s"."""
    if secs == 0:
        return "0s"
    out = []
    for unit, n in (("y", 31536000), ("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= n:
            out.append(f"{secs // n}{unit}")
            secs %= n
    return "".join(out)


def _invalid_header(caplen: int, length: int) -> str:
    """print.c ``pretty_print_packet``: a record header tcpdump refuses to dissect."""
    bad = []
    if caplen == 0:
        bad.append(" caplen==0")
    if length == 0:
        bad.append(" len==0")
    elif length < caplen:
        bad.append(f" len({length}) < caplen({caplen})")
    return "[Invalid header:" + ",".join(bad) + "]" if bad else ""


def _ifname(ifindex: int) -> str:
    """SLL2's interface, named as tcpdump names it: by *this* machine's ``if_indextoname``."""
    import socket
    try:
        return socket.if_indextoname(ifindex)
    except (OSError, OverflowError, ValueError):
        return "?"


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _hexdump(data: bytes) -> str:
    """tcpdump's default payload dump (``hex_and_ascii_print``) for an unknown protocol."""
    lines = []
    for i in range(0, len(data), 16):
        chunk = data[i:i + 16]
        words = "".join(" " + chunk[j:j + 2].hex() for j in range(0, len(chunk), 2))
        text = "".join(chr(c) if 0x21 <= c < 0x7F else "." for c in chunk)     # ND_ASCII_ISGRAPH
        lines.append(f"\n\t0x{i:04x}: {words:<40}  {text}")
    return "".join(lines)


def render_lines(frames, style: Style | None = None, **kw) -> list[str]:
    """One string per frame, as ``tcpdump -r`` prints them (each may span lines).

    Each frame prints by its own link type (``Frame.linktype``, set by
    :func:`~coursekit.capture.read_pcap`): Ethernet, raw IPv4 or Linux cooked.
    """
    from .errors import CourseError
    p = Printer(style, **kw)
    if isinstance(frames, (str, bytes, bytearray)) or not hasattr(frames, "__iter__"):
        raise CourseError("frames", f"{type(frames).__name__} is not a list of Frames",
                          "what ck.capture or ck.read_pcap returns")
    out = []
    for f in frames:
        data, t = getattr(f, "data", None), getattr(f, "time_us", None)
        if not isinstance(data, (bytes, bytearray)) or not isinstance(t, int):
            raise CourseError("frames", f"a {type(f).__name__} is not a capture Frame",
                              "what ck.capture or ck.read_pcap returns")
        out.append(p.frame(t, bytes(data), f.wire_len, getattr(f, "linktype", 1)))
    return out


def render(frames, style: Style | None = None, **kw) -> str:
    """The whole text tcpdump prints on stdout for these frames.

    Taught in: 01-physical-nic.
    """
    lines = render_lines(frames, style, **kw)
    return "".join(line + "\n" for line in lines)
