"""The packet walk: every segment through every stage, both directions.

Each stage is a small pure function of a frame and a node's state that
returns the new frame and a :class:`Decision` naming the table and the entry
that shaped it.  :func:`walk` pushes every segment of the conversation
through them and records an :class:`Observation` wherever tcpdump could
listen.  The request's path (the reply's is the mirror image)::

    busybox netns          xiaomi (client node)                meizu (server node)          nginx netns
    eth0 --veth--> vethXXXX -> docker0 -> [nat, route] -> flannel.1 -> enp4s0 ==wire==>
                                                   enp4s0 -> flannel.1 -> [route] -> docker0 -> vethYYYY --veth--> eth0

Observation points, in order: the client pod's ``eth0``, its host-side veth,
the client node's ``docker0``, ``flannel.1`` and ``enp4s0``; the server
node's ``enp4s0``, ``flannel.1``, ``docker0`` and veth; the server pod's
``eth0``.  A pod is addressed by its name as the "node" (``busybox``,
``nginx-1``).

Taught in: 06-the-whole-walk (and every interface chapter).
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass, field

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vxlan import VXLAN      # built, never guessed: frames are decoded by the scenario's port
from scapy.packet import Raw

from . import conversation as conv
from .errors import CourseError, public
from .netfilter import Conntrack, Tuple5, fill_conntrack_entries, nat_table, traverse
from .routing import fdb, interface_address, lookup, neighbour
from .vxlan import VXLAN_FLAGS, flow_hash, inner_frame, node_seed, udp_flow_src_port

__all__ = ["Decision", "Observation", "Walk", "walk", "build_frame"]


@dataclass(frozen=True)
class Decision:
    """Why a frame looks the way it does at a hop."""
    stage: str            # socket, veth, bridge, nat, conntrack, route, ttl, neigh, fdb, vxlan, wire, decap
    table: str            # e.g. "nat PREROUTING", "main", "flannel.1 fdb"
    entry: str            # the rule or entry, as the real tool prints it
    effect: str           # what changed, in words


@dataclass(frozen=True)
class Observation:
    """A frame as tcpdump on ``node``/``iface`` records it."""
    node: str             # node name, or pod name for a pod's eth0
    iface: str
    direction: str        # "in" or "out" (tcpdump -Q)
    time_us: int
    frame: bytes
    segment: int          # index into Walk.segments
    flow: str             # "request" (client -> server) or "reply"
    hop: int              # position along the packet's path, 0 = the sender's eth0
    decisions: tuple[Decision, ...] = ()
    vxlan_port: int | None = None   # the scenario's VXLAN UDP port, to decode the frame by (not by scapy's guess)


#: What a learner calls a segment, mapped to the conversation's label.
_SEGMENT_ALIASES = {"get": "http request", "request": "http request", "synack": "syn-ack",
                    "syn ack": "syn-ack", "response": "http response header"}


@dataclass
class Walk:
    scenario: object
    segments: list
    observations: list[Observation]
    conntrack: dict = field(default_factory=dict)     # node name -> Conntrack
    nat_traces: dict = field(default_factory=dict)    # (node, hook) -> Verdict of the first packet

    def at(self, node: str, iface: str) -> list[Observation]:
        """What tcpdump on ``node``/``iface`` records, in time order."""
        sc = self.scenario
        if iface not in sc.interfaces(node):
            raise CourseError("interface", f"unknown interface {iface!r} on {node}",
                              ", ".join(sc.interfaces(node)))
        obs = [o for o in self.observations if o.node == node and o.iface == iface]
        return sorted(obs, key=lambda o: (o.time_us, o.segment))

    def segment(self, name: int | str) -> int:
        """The index of a segment named by its label (``"SYN"``, ``"GET"``, ``"HTTP response header"``).

        Labels are the conversation's own (:func:`coursekit.conversation.segments`),
        matched without regard to case; ``"GET"``/``"request"`` mean the HTTP
        request and ``"response"`` the response header.  An index is returned as is.
        """
        n = len(self.segments)
        if isinstance(name, bool) or not isinstance(name, (int, str)):
            raise CourseError("segment", f"{name!r} is neither a segment label nor an index",
                              "a label such as 'SYN' or 'GET', or 0.." + str(n - 1))
        if isinstance(name, int):
            if not 0 <= name < n:
                raise CourseError("segment", f"no segment {name}", f"0..{n - 1}")
            return name
        key = _SEGMENT_ALIASES.get(name.strip().lower(), name.strip().lower())
        hits = [s.index for s in self.segments if s.label.lower() == key]
        labels = list(dict.fromkeys(s.label for s in self.segments))
        if not hits:
            raise CourseError("segment", f"no segment labelled {name!r}", ", ".join(labels))
        if len(hits) > 1:
            raise CourseError("segment", f"{len(hits)} segments are labelled {name!r} (indices "
                              f"{', '.join(map(str, hits))})", "one of those indices")
        return hits[0]

    def path(self, segment: int | str, start: tuple[str, str] | None = None,
             stop: tuple[str, str] | None = None) -> list[Observation]:
        """Every observation of one segment, hop by hop; ``start``/``stop`` (node, interface) cut it, both included.

        >>> w.path("SYN", start=("meizu", "flannel.1"), stop=("nginx-1", "eth0"))   # doctest: +SKIP

        Taught in: 02-flannel, 03-docker0, 06-the-whole-walk.
        """
        obs = sorted((o for o in self.observations if o.segment == self.segment(segment)), key=lambda o: o.hop)
        where = [(o.node, o.iface) for o in obs]
        lo, hi = 0, len(obs)
        for i, (point, what) in enumerate(((start, "start"), (stop, "stop"))):
            if point is None:
                continue
            point = self._point(point, what)
            if point not in where:
                raise CourseError(what, f"{point[0]} {point[1]} is not on this segment's path",
                                  ", ".join(f"{a} {b}" for a, b in where))
            if i == 0:
                lo = where.index(point)
            else:
                hi = where.index(point) + 1
        if lo >= hi:
            raise CourseError("stop", "the stop comes before the start on this path",
                              ", ".join(f"{a} {b}" for a, b in where[lo:]))
        return obs[lo:hi]

    def find(self, segment: int | str, at: tuple[str, str]) -> Observation:
        """The one observation of ``segment`` (a label or index) at ``at`` = (node, interface).

        >>> w.find(segment="GET", at=("meizu", "enp4s0"))     # doctest: +SKIP

        Taught in: 01-physical-nic, 02-flannel, 03-docker0.
        """
        node, iface = self._point(at, "at")
        self.at(node, iface)                   # an unknown interface gets its own message
        idx = self.segment(segment)
        hits = [o for o in self.observations if o.segment == idx and (o.node, o.iface) == (node, iface)]
        if not hits:
            seen = [(o.node, o.iface) for o in self.path(idx)]
            raise CourseError("at", f"segment {idx} ({self.segments[idx].label}) is not seen on {node} {iface}",
                              ", ".join(f"{a} {b}" for a, b in seen))
        return hits[0]

    def _point(self, point, what: str) -> tuple[str, str]:
        if not (isinstance(point, (tuple, list)) and len(point) == 2 and all(isinstance(x, str) for x in point)):
            raise CourseError(what, f"{point!r} is not a (node, interface) pair", "e.g. ('meizu', 'enp4s0')")
        names = [n.name for n in self.scenario.nodes] + [p.name for p in self.scenario.pods]
        if point[0] not in names:
            raise CourseError(what, f"unknown node or pod {point[0]!r}", ", ".join(names))
        return tuple(point)


def build_frame(src_mac: str, dst_mac: str, t: Tuple5, ttl: int, ip_id: int, seg, df: bool = True) -> Ether:
    """An Ethernet/IPv4/TCP frame with every field set (no scapy defaults reach a capture)."""
    tcp = TCP(sport=t.sport, dport=t.dport, seq=seg.seq, ack=seg.ack, dataofs=None, reserved=0,
              flags=seg.flags, window=seg.window, urgptr=0, options=conv.tcp_options(seg))
    ip = IP(version=4, ihl=5, tos=0, id=ip_id, flags="DF" if df else 0, frag=0, ttl=ttl, proto=6,
            src=str(t.src), dst=str(t.dst))
    pkt = Ether(src=src_mac, dst=dst_mac, type=0x0800) / ip / tcp
    if seg.payload:
        pkt = pkt / Raw(seg.payload)
    return pkt


def _csum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(memoryview(data).cast("H"))          # native order; folded and swapped below
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    total = ~total & 0xFFFF
    return int.from_bytes(total.to_bytes(2, sys.byteorder), "big")


def _with(pkt: Ether, *, src_mac=None, dst_mac=None, t: Tuple5 | None = None, ttl=None) -> Ether:
    """A copy of a frame with L2/L3/L4 fields rewritten and the IP and TCP checksums recomputed.

    Works on the bytes, as the kernel does, rather than rebuilding every scapy layer.
    """
    b = bytearray(bytes(pkt))
    if dst_mac:
        b[0:6] = bytes.fromhex(dst_mac.replace(":", ""))
    if src_mac:
        b[6:12] = bytes.fromhex(src_mac.replace(":", ""))
    ihl = (b[14] & 0x0F) * 4
    l4 = 14 + ihl
    total = int.from_bytes(b[16:18], "big")
    if t is not None:
        b[26:30] = t.src.packed
        b[30:34] = t.dst.packed
        b[l4:l4 + 2] = t.sport.to_bytes(2, "big")
        b[l4 + 2:l4 + 4] = t.dport.to_bytes(2, "big")
    if ttl is not None:
        b[22] = ttl
    b[24:26] = b"\0\0"
    b[24:26] = _csum(bytes(b[14:l4])).to_bytes(2, "big")
    seg_end = 14 + total
    b[l4 + 16:l4 + 18] = b"\0\0"
    pseudo = bytes(b[26:34]) + bytes([0, 6]) + (seg_end - l4).to_bytes(2, "big")
    b[l4 + 16:l4 + 18] = _csum(pseudo + bytes(b[l4:seg_end])).to_bytes(2, "big")
    return Ether(bytes(b))


def _tuple_of(pkt: Ether) -> Tuple5:
    return Tuple5("tcp", ipaddress.IPv4Address(pkt[IP].src), pkt[TCP].sport,
                  ipaddress.IPv4Address(pkt[IP].dst), pkt[TCP].dport)


class _Node:
    """A node's mutable state during the walk: conntrack and IP id counters."""

    def __init__(self, sc, name: str):
        self.sc, self.name = sc, name
        self.n = sc.node(name)
        self.rules, self.chains = nat_table(sc, name)
        self.local = {self.n.nic.ip, self.n.vtep_ip, self.n.docker.bridge_ip}
        self.ct: Conntrack | None = None
        self._pre = None        # PREROUTING already done by br_netfilter for the frame in flight
        self.outer_id = sc.observed.ip_id.get(name, int.from_bytes(name.encode()[:2].ljust(2, b"\0"), "big"))

    # -- the IP layer of a node: PREROUTING, routing, forwarding, POSTROUTING
    def prerouting(self, pkt: Ether, in_if: str, decisions: list[Decision], nat_traces: dict) -> Ether:
        """nat PREROUTING (first packet) or conntrack (later ones); returns the frame with its new destination.

        Called by the bridge when br_netfilter hands bridged frames to iptables
        (``net.bridge.bridge-nf-call-iptables = 1``), else by :meth:`forward`.
        """
        sc = self.sc
        t = _tuple_of(pkt)
        new = self.ct is None
        if new:
            v = traverse(self.rules, "PREROUTING", t, in_if=in_if, local=self.local, pick=sc.observed.endpoint)
            nat_traces[(self.name, "PREROUTING")] = v
            for line in v.trace:
                decisions.append(Decision("nat", "nat PREROUTING", line,
                                          f"DNAT {t.dst}:{t.dport} -> {v.tuple.dst}:{v.tuple.dport}"
                                          if v.rule is not None and v.rule.save() == line else "matched"))
            if v.nat is None:
                decisions.append(Decision("nat", "nat PREROUTING", "(no rule rewrote the packet)",
                                          "destination unchanged"))
            t2, marks = v.tuple, v.marks
        else:
            t2 = self.ct.translate(t, "PREROUTING")
            marks = 0
            if t2 != t:
                decisions.append(Decision("conntrack", "conntrack", self.ct.conntrack_l(),
                                          f"destination {t.dst}:{t.dport} -> {t2.dst}:{t2.dport}"
                                          + (" (reply un-SNAT)" if not self.ct.is_orig(t) else " (DNAT of the connection)")))
        self._pre = (t, t2, marks, new)
        return _with(pkt, t=t2) if t2 != t else pkt

    def forward(self, pkt: Ether, in_if: str, decisions: list[Decision], nat_traces: dict) -> tuple[Ether, str]:
        sc, n = self.sc, self.n
        if self._pre is None:
            self.prerouting(pkt, in_if, decisions, nat_traces)
        t, t2, marks, new = self._pre
        self._pre = None
        route = lookup(sc, self.name, t2.dst)
        decisions.append(Decision("route", "main", route.ip_route().strip(),
                                  f"{t2.dst} leaves by {route.dev}" + (f" via {route.via}" if route.via else "")))
        if t2.dst in self.local:
            raise CourseError("route", f"{t2.dst} is local to {self.name}; the model follows forwarded traffic")
        ttl = pkt[IP].ttl - 1
        decisions.append(Decision("ttl", "ip_forward", "net.ipv4.ip_forward = 1", f"TTL {pkt[IP].ttl} -> {ttl}"))
        out_if = route.dev
        if new:
            v = traverse(self.rules, "POSTROUTING", t2, out_if=out_if, marks=marks, local=self.local,
                         masq_addr=interface_address(sc, self.name, out_if))
            nat_traces[(self.name, "POSTROUTING")] = v
            for line in v.trace:
                eff = "matched"
                if v.rule is not None and v.rule.save() == line:
                    eff = f"MASQUERADE source {t2.src} -> {v.tuple.src} (address of {out_if})"
                decisions.append(Decision("nat", "nat POSTROUTING", line, eff))
            if v.nat is None:
                decisions.append(Decision("nat", "nat POSTROUTING", "(no rule rewrote the packet)",
                                          "source unchanged"))
            t3 = v.tuple
            self.ct = Conntrack(orig=t, reply=t3.inverted(), node=self.name)
            decisions.append(Decision("conntrack", "conntrack", self.ct.conntrack_l("SYN_SENT", 120),
                                      "new connection tracked; later packets skip the nat table"))
        else:
            t3 = self.ct.translate(t2, "POSTROUTING")
            if t3 != t2:
                decisions.append(Decision("conntrack", "conntrack", self.ct.conntrack_l(),
                                          f"source {t2.src}:{t2.sport} -> {t3.src}:{t3.sport}"
                                          + (" (reply un-DNAT)" if not self.ct.is_orig(t2) else " (SNAT of the connection)")))
        gw = route.via or t3.dst
        nb = neighbour(sc, self.name, out_if, gw)
        src_mac = n.vtep_mac if out_if == sc.flannel.device else (n.docker.bridge_mac if out_if == "docker0" else n.nic.mac)
        decisions.append(Decision("neigh", f"{out_if} neighbours", nb.ip_neigh(),
                                  f"destination MAC {nb.mac}, source MAC {src_mac} ({out_if})"))
        return _with(pkt, src_mac=src_mac, dst_mac=nb.mac, t=t3, ttl=ttl), out_if

    def encapsulate(self, inner: Ether, decisions: list[Decision]) -> Ether:
        sc, n = self.sc, self.n
        entry = next(e for e in fdb(sc, self.name) if e.mac == inner[Ether].dst)
        decisions.append(Decision("fdb", f"{sc.flannel.device} fdb", entry.bridge_fdb(),
                                  f"inner destination MAC {entry.mac} lives behind {entry.dst}"))
        remote = next(o for o in sc.nodes if o.nic.ip == entry.dst)
        t = _tuple_of(inner)
        if self.name in sc.observed.vxlan_sport:
            from .provenance import of_path
            sport = sc.observed.vxlan_sport[self.name]
            how = f"outer source port {sport} ({of_path(sc, f'observed.vxlanSourcePort.{self.name}').label})"
        else:
            h = flow_hash(t.src, t.dst, t.sport, t.dport, node_seed(sc.observed.flow_hash_seed, self.name))
            sport = udp_flow_src_port(h, *n.ephemeral_ports)
            how = (f"outer source port {sport} = udp_flow_src_port(hash of {t}); the kernel keys that hash "
                   "with a random per-boot seed, so the number is a stand-in, not a prediction")
        route = lookup(sc, self.name, remote.nic.ip)
        nb = neighbour(sc, self.name, route.dev, remote.nic.ip)
        ip_id = self.outer_id & 0xFFFF
        self.outer_id += 1
        outer = (Ether(src=n.nic.mac, dst=nb.mac, type=0x0800)
                 / IP(version=4, ihl=5, tos=inner[IP].tos & 0x3, id=ip_id, flags=0, frag=0, ttl=n.default_ttl,
                      proto=17, src=str(n.nic.ip), dst=str(remote.nic.ip))
                 / UDP(sport=sport, dport=sc.flannel.port, chksum=None if sc.flannel.udp_checksum else 0)
                 / VXLAN(flags=VXLAN_FLAGS, vni=sc.flannel.vni)
                 / inner)
        raw = bytes(outer)
        decisions.append(Decision("vxlan", "vxlan_xmit_one",
                                  f"{sc.flannel.device}: vxlan id {sc.flannel.vni} dstport {sc.flannel.port} "
                                  f"local {n.nic.ip} dev {n.nic.name} nolearning",
                                  f"+{len(raw) - len(bytes(inner))} bytes: outer {n.nic.ip} -> {remote.nic.ip}, UDP {sport} -> "
                                  f"{sc.flannel.port}, VNI {sc.flannel.vni}, TTL {n.default_ttl}, DF clear; {how}"))
        decisions.append(Decision("route", "main", route.ip_route().strip(), f"outer packet leaves by {route.dev}"))
        decisions.append(Decision("neigh", f"{route.dev} neighbours", nb.ip_neigh(), f"outer destination MAC {nb.mac}"))
        return Ether(raw)


def _hops(sc, client, server):
    """The observation points of the request path, with the latency to reach each."""
    tm = sc.timing
    cn, sn = sc.node(client.node), sc.node(server.node)
    dev = sc.flannel.device
    return [
        (client.name, "eth0", "out", 0),
        (cn.name, client.veth, "in", tm.veth_us),
        (cn.name, "docker0", "in", tm.bridge_us),
        (cn.name, dev, "out", tm.forward_us),
        (cn.name, cn.nic.name, "out", tm.encap_us),
        (sn.name, sn.nic.name, "in", tm.wire_us),
        (sn.name, dev, "in", tm.decap_us),
        (sn.name, "docker0", "out", tm.forward_us),
        (sn.name, server.veth, "out", tm.bridge_us),
        (server.name, "eth0", "in", tm.veth_us),
    ]


def _reverse(hops):
    """The reply's path: the same points backwards, directions swapped."""
    rev = list(reversed(hops))
    lat = [h[3] for h in hops]
    out = []
    for i, (node, iface, d, _) in enumerate(rev):
        out.append((node, iface, "out" if d == "in" else "in", 0 if i == 0 else lat[len(hops) - i]))
    return out


@public
def walk(scenario) -> Walk:
    """Follow every segment of the conversation hop by hop; record every observation.

    >>> w = walk(load_scenario("article"))       # doctest: +SKIP
    >>> [str(o.frame[26:30]) for o in w.at("meizu", "docker0")]  # inner sources

    ``scenario``: anything :func:`~coursekit.scenario.as_scenario` accepts
    (a Scenario, a name such as ``"article"``, a path).

    Taught in: 06-the-whole-walk.
    """
    from .scenario import as_scenario
    sc = as_scenario(scenario)
    client, server = sc.client, sc.server
    req_hops = _hops(sc, client, server)
    rep_hops = _reverse(req_hops)
    cum_req = _cumulative(req_hops)
    cum_rep = _cumulative(rep_hops)
    segs = conv.segments(sc)
    _schedule(sc, segs, cum_req, cum_rep, req_hops, rep_hops)

    nodes = {n.name: _Node(sc, n.name) for n in sc.nodes}
    ids = {"client": sc.observed.ip_id.get("client", 0x1d2c), "server": sc.observed.ip_id.get("server", 0x5a17)}
    observations: list[Observation] = []
    nat_traces: dict = {}
    svc = sc.service(sc.request.service)
    for seg in segs:
        if seg.sender == "client":
            t = Tuple5("tcp", client.ip, sc.observed.client_port, svc.cluster_ip, sc.request.port)
            hops, cum, me = req_hops, cum_req, client
        else:
            # the server answers the (translated) peer it saw
            ct = nodes[server.node].ct
            if ct is None:
                raise AssertionError("server speaks before the connection exists")
            t = ct.reply
            t = Tuple5("tcp", server.ip, t.sport, t.dst, t.dport)
            hops, cum, me = rep_hops, cum_rep, server
        if seg.sent_from != "socket":
            ip_id = 0                     # a listener's SYN-ACK, a TIME_WAIT ACK: no socket counter (ip_select_ident)
        else:
            ip_id = ids[seg.sender] & 0xFFFF
            ids[seg.sender] += 1
        gw = sc.node(me.node).docker.bridge_mac
        pkt = Ether(bytes(build_frame(me.mac, gw, t, 64, ip_id, seg)))
        flow = "request" if seg.sender == "client" else "reply"
        # 0: sender's eth0
        first = [Decision("socket", "tcp", f"{seg.label}: seq {seg.seq} ack {seg.ack} len {len(seg.payload)}",
                          f"{me.name} sends {t}"),
                 Decision("route", f"{me.name} main", f"default via {sc.node(me.node).docker.bridge_ip} dev eth0",
                          "to the gateway (docker0)"),
                 Decision("neigh", f"{me.name} eth0 neighbours",
                          f"{sc.node(me.node).docker.bridge_ip} dev eth0 lladdr {gw} REACHABLE",
                          f"destination MAC {gw} (docker0)")]
        cur = pkt
        for h, (node, iface, d, _) in enumerate(hops):
            dec: list[Decision] = []
            if h == 0:
                dec = first
            elif h in (1, 8):
                dec = [Decision("veth", "veth pair", f"{iface} <-> eth0 of {me.name if h == 1 else hops[9][0]}",
                                "same frame on the other end of the pair")]
            elif h == 2:
                dec = [Decision("bridge", "docker0 fdb", f"{sc.node(node).docker.bridge_mac} dev docker0 master docker0 permanent",
                                "destination MAC is the bridge's own: up to the host's IP stack")]
                if sc.node(node).br_netfilter:
                    dec.append(Decision("bridge", "br_netfilter", "net.bridge.bridge-nf-call-iptables = 1",
                                        "iptables PREROUTING runs inside the bridge, before tcpdump on docker0 sees the frame"))
                    cur = nodes[node].prerouting(cur, "docker0", dec, nat_traces)
            elif h == 3:
                cur, _ = nodes[node].forward(cur, "docker0", dec, nat_traces)
            elif h == 4:
                cur = nodes[node].encapsulate(cur, dec)
            elif h == 5:
                dec = [Decision("wire", "underlay", f"{hops[4][0]}:{hops[4][1]} -> {node}:{iface}", "same bytes on the wire")]
            elif h == 6:
                inner = inner_frame(bytes(cur), sc.flannel.port)
                dec = [Decision("decap", "vxlan_rcv", f"UDP {sc.flannel.port} socket of {sc.flannel.device}, VNI {sc.flannel.vni}",
                                f"outer Ethernet/IP/UDP/VXLAN ({len(bytes(cur)) - len(bytes(inner))} bytes) removed")]
                cur = Ether(bytes(inner))
            elif h == 7:
                cur, _ = nodes[node].forward(cur, sc.flannel.device, dec, nat_traces)
            elif h == 9:
                dec = [Decision("veth", "veth pair", f"{hops[8][1]} <-> eth0 of {node}", "delivered to the pod")]
            observations.append(Observation(node=node, iface=iface, direction=d,
                                            time_us=seg.send_us + cum[h], frame=bytes(cur), segment=seg.index,
                                            flow=flow, hop=h, decisions=tuple(dec), vxlan_port=sc.flannel.port))
    if sc.neighbour_caches == "cold":
        observations.extend(_arp_exchanges(sc, segs[0].send_us, cum_req))
    w = Walk(scenario=sc, segments=segs, observations=observations,
             conntrack={k: v.ct for k, v in nodes.items() if v.ct is not None}, nat_traces=nat_traces)
    fill_conntrack_entries(w)          # the entries' states need every segment's moment
    return w



def _arp_frame(op: int, src_mac: str, dst_mac: str, psrc, pdst, target_mac: str = "00:00:00:00:00:00") -> bytes:
    """An ARP request (broadcast, target MAC zero, as Linux sends it) or reply (unicast), 42 bytes."""
    return bytes(Ether(src=src_mac, dst=dst_mac, type=0x0806)
                 / ARP(hwtype=1, ptype=0x0800, hwlen=6, plen=4, op=op, hwsrc=src_mac, psrc=str(psrc),
                       hwdst=target_mac, pdst=str(pdst)))


def _arp_exchanges(sc, syn_send_us: int, cum) -> list[Observation]:
    """With cold caches, the SYN waits for ARP on each layer-2 segment it crosses.

    Three exchanges, each finished just before the SYN crosses that segment:
    the client pod asks for its gateway (docker0), the client node asks for the
    server node on the underlay, the server node's docker0 asks for the pod.  A
    request is broadcast, so every port of a bridge sees it; the reply is
    unicast.  Nobody asks back: a node that answers learns the asker's MAC
    from the request itself (``neigh_event_ns``).
    """
    tm = sc.timing
    client, server = sc.client, sc.server
    cn, sn = sc.node(client.node), sc.node(server.node)
    bcast, out = "ff:ff:ff:ff:ff:ff", []

    def add(points, frame, base, what, dec):
        for owner, iface, d, dt in points:
            out.append(Observation(owner, iface, d, base + dt, frame, -1, "arp", -1,
                                   (Decision("neigh", f"{iface} neighbours", what, dec),)))

    def pods_flooded(node, skip, t):
        return [pt for p in sc.pods_on(node.name) if p.name != skip
                for pt in ((node.name, p.veth, "out", t), (p.name, "eth0", "in", t + tm.veth_us))]

    # 1. busybox -> its gateway, docker0 (the SYN waits at hop 0)
    rtt = 2 * (tm.veth_us + tm.bridge_us) + tm.arp_us
    t = syn_send_us + cum[0] - rtt - 1
    gw = cn.docker.bridge_ip
    add([(client.name, "eth0", "out", 0), (cn.name, client.veth, "in", tm.veth_us),
         (cn.name, "docker0", "in", tm.veth_us + tm.bridge_us)]
        + pods_flooded(cn, client.name, tm.veth_us + tm.bridge_us),
        _arp_frame(1, client.mac, bcast, client.ip, gw), t,
        f"{gw} dev eth0 INCOMPLETE", f"no MAC for the gateway {gw}: ARP request, broadcast")
    t2 = t + tm.veth_us + tm.bridge_us + tm.arp_us
    add([(cn.name, "docker0", "out", 0), (cn.name, client.veth, "out", tm.bridge_us),
         (client.name, "eth0", "in", tm.bridge_us + tm.veth_us)],
        _arp_frame(2, cn.docker.bridge_mac, client.mac, gw, client.ip, client.mac), t2,
        f"{gw} dev eth0 lladdr {cn.docker.bridge_mac} REACHABLE", "docker0 answers with its MAC")
    # 2. the client node -> the server node on the underlay (the outer packet waits at hop 4)
    rtt = 2 * tm.wire_us + tm.arp_us
    t = syn_send_us + cum[4] - rtt - 1
    add([(cn.name, cn.nic.name, "out", 0), (sn.name, sn.nic.name, "in", tm.wire_us)],
        _arp_frame(1, cn.nic.mac, bcast, cn.nic.ip, sn.nic.ip), t,
        f"{sn.nic.ip} dev {cn.nic.name} INCOMPLETE", f"no MAC for {sn.nic.ip}: ARP request on the underlay")
    add([(sn.name, sn.nic.name, "out", 0), (cn.name, cn.nic.name, "in", tm.wire_us)],
        _arp_frame(2, sn.nic.mac, cn.nic.mac, sn.nic.ip, cn.nic.ip, cn.nic.mac), t + tm.wire_us + tm.arp_us,
        f"{sn.nic.ip} dev {cn.nic.name} lladdr {sn.nic.mac} REACHABLE", f"{sn.name} answers")
    # 3. the server node's docker0 -> the pod (the SYN waits at hop 7)
    rtt = 2 * (tm.bridge_us + tm.veth_us) + tm.arp_us
    t = syn_send_us + cum[7] - rtt - 1
    add([(sn.name, "docker0", "out", 0)] + pods_flooded(sn, "", tm.bridge_us),
        _arp_frame(1, sn.docker.bridge_mac, bcast, sn.docker.bridge_ip, server.ip), t,
        f"{server.ip} dev docker0 INCOMPLETE", f"no MAC for {server.ip}: ARP request, flooded to every port")
    t2 = t + tm.bridge_us + tm.veth_us + tm.arp_us
    add([(server.name, "eth0", "out", 0), (sn.name, server.veth, "in", tm.veth_us),
         (sn.name, "docker0", "in", tm.veth_us + tm.bridge_us)],
        _arp_frame(2, server.mac, sn.docker.bridge_mac, server.ip, sn.docker.bridge_ip, sn.docker.bridge_mac), t2,
        f"{server.ip} dev docker0 lladdr {server.mac} REACHABLE", f"{server.name} answers")
    return out


def _cumulative(hops):
    out, acc = [], 0
    for h in hops:
        acc += h[3]
        out.append(acc)
    return out


def _schedule(sc, segs, cum_req, cum_rep, req_hops, rep_hops) -> None:
    """Send times, TCP timestamps and nginx's Date for every segment."""
    o, tm = sc.observed, sc.timing
    anchor = o.anchor
    try:
        a_req = next(i for i, h in enumerate(req_hops) if (h[0], h[1]) == anchor)
        a_rep = next(i for i, h in enumerate(rep_hops) if (h[0], h[1]) == anchor)
    except StopIteration:
        raise CourseError("observed.anchor", f"{anchor[0]}:{anchor[1]} is not on the path between the pods",
                          ", ".join(f"{h[0]}:{h[1]}" for h in req_hops)) from None
    one_way = {"client": cum_req[-1], "server": cum_rep[-1]}
    to_anchor = {"client": cum_req[a_req], "server": cum_rep[a_rep]}
    if o.times_us is not None:
        if len(o.times_us) != len(segs):
            raise CourseError("observed.times", f"{len(o.times_us)} times for {len(segs)} segments",
                              f"exactly {len(segs)} times, one per segment")
        for s, t in zip(segs, o.times_us):
            s.send_us = t - to_anchor[s.sender]
    else:
        for s in segs:
            if s.index == 0:
                s.send_us = o.start_us - to_anchor["client"]
            elif s.trigger is not None:
                tr = segs[s.trigger]
                s.send_us = tr.send_us + one_way[tr.sender] + tm.process_us
            else:
                s.send_us = segs[s.index - 1].send_us + max(1, tm.process_us // 4)
    arrive = {s.index: s.send_us + one_way[s.sender] for s in segs}
    offset = {"client": o.client_ts_offset_us, "server": o.server_ts_offset_us}
    for s in segs:
        # a 1000 Hz tick clock (jiffies); a tickless kernel's clock can lag a tick
        s.ts_val = ((s.send_us + offset[s.sender]) // 1000 - o.ts_lag_ticks.get(s.index, 0)) & 0xFFFFFFFF
        if s.flags == conv.SYN:
            s.ts_ecr = 0
        else:
            heard = [p for p in segs if p.sender != s.sender and arrive[p.index] <= s.send_us]
            if not heard:
                raise CourseError("observed.times", f"segment {s.index} ({s.label}) is sent before anything from "
                                  "its peer arrived", "times in causal order")
            s.ts_ecr = max(heard, key=lambda p: (arrive[p.index], p.index)).ts_val
    hdr = conv.response_date_index(segs)
    body_len = len(conv.served_file(sc))
    segs[hdr].payload = conv.nginx_response_header(segs[hdr].send_us // 1_000_000, body_len, o.nginx_mtime)
