"""The packet walk: every segment through every device, both directions.

:func:`walk` hands the scenario to :mod:`coursekit.kernel`, which builds it
into namespaces and devices and routes each segment the way the kernel does;
this module keeps what the course reads: an :class:`Observation` wherever
tcpdump could listen, each with the :class:`Decision` s (table, entry as the
real tool prints it, effect) made since the previous one.  For the article
the request's path is (the reply's is its mirror image)::

    busybox netns          xiaomi (client node)                meizu (server node)          nginx netns
    eth0 --veth--> vethXXXX -> docker0 -> [nat, route] -> flannel.1 -> enp4s0 ==wire==>
                                                   enp4s0 -> flannel.1 -> [route] -> docker0 -> vethYYYY --veth--> eth0

That path is not written down anywhere: it comes out of the routes,
neighbour and FDB tables and netfilter rules.  A pod is addressed by its name
as the "node" (``busybox``, ``nginx-1``).

Taught in: 06-the-whole-walk (and every interface chapter).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from . import conversation as conv
from .errors import CourseError, public
from .netfilter import Tuple5

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
    drops: list = field(default_factory=list)         # coursekit.kernel.Drop: where and why a packet died
    filter_traces: dict = field(default_factory=dict)  # (node, hook) -> FilterVerdict of the first packet
    dns: list = field(default_factory=list)           # coursekit.kernel.dns.DnsExchange: the name resolved first

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
        if lo >= hi and obs:                    # no observation at all: the segment never left its socket
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
        names = [n.name for n in self.scenario.nodes] + [p.name for p in self.scenario.pods] + \
            [x.name for x in getattr(self.scenario, "externals", ())]
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


@public
def walk(scenario) -> Walk:
    """Follow every segment of the conversation device by device; record every observation.

    The path is computed by :mod:`coursekit.kernel` from the scenario's
    devices, routes, neighbour and FDB tables and netfilter rules, as the
    kernel decides it; a packet the kernel would drop ends in
    :attr:`Walk.drops` with its reason.

    >>> w = walk(load_scenario("article"))       # doctest: +SKIP
    >>> [str(o.frame[26:30]) for o in w.at("meizu", "docker0")]  # inner sources

    ``scenario``: anything :func:`~coursekit.scenario.as_scenario` accepts
    (a Scenario, a name such as ``"article"``, a path).

    Taught in: 06-the-whole-walk.
    """
    from .kernel.engine import walk as _engine_walk
    from .scenario import as_scenario
    return _engine_walk(as_scenario(scenario))


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
