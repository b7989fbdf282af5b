"""The walk loop: send each segment from its socket and follow it device by device.

There are no hop numbers here.  A segment leaves its socket through its
namespace's :meth:`~coursekit.kernel.namespace.Namespace.output`; each
device's ``xmit``/``receive`` asks the next one what it does with the frame,
until a socket takes it or the kernel would drop it (a :class:`Drop` with
its reason).  Every ``xmit``/``receive`` is an observation point, with the
decisions made since the previous one.

Times: the path of the conversation's first segment in each direction is
probed first (on a scratch copy of the graph) to learn each hop's latency;
:func:`coursekit.datapath._schedule` turns those into send times and TCP
timestamps; then every segment is walked for real.

Taught in: 06-the-whole-walk.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct
from dataclasses import dataclass

from .. import conversation as conv
from ..datapath import Decision, Observation, Walk, build_frame
from ..errors import CourseError
from ..netfilter import Tuple5
from .frame import mac_bytes, tcp_frame, tuple_of
from .topology import build, per_scenario, tables

__all__ = ["Drop", "Net", "Skb", "walk"]


@dataclass(frozen=True)
class Drop:
    """Where the kernel would drop a packet, and why."""
    node: str
    iface: str
    reason: str
    segment: int
    flow: str
    time_us: int
    decisions: tuple[Decision, ...] = ()


class Skb:
    """A frame in flight with the kernel's per-packet state (``struct sk_buff``)."""
    __slots__ = ("data", "ct", "t_orig", "marks", "pre_done")

    def __init__(self, data):
        self.data = bytearray(data)
        self.ct = None
        self.t_orig = None
        self.marks = 0
        self.pre_done = False

    def copy(self) -> "Skb":
        s = Skb(self.data)
        s.ct, s.t_orig, s.marks, s.pre_done = self.ct, self.t_orig, self.marks, self.pre_done
        return s

    def replace(self, data) -> "Skb":
        """Encapsulation/decapsulation: new bytes, conntrack state scrubbed (``skb_scrub_packet``); the mark
        stays (it is cleared only when the tunnel crosses into another namespace, ``xnet``)."""
        s = Skb(data)
        s.marks = self.marks
        return s


class _Recording:
    def __init__(self):
        self.obs: list[tuple] = []        # (ns, dev, direction, t, frame, decisions)
        self.delivered: int | None = None
        self.drops: list[tuple] = []
        self.rst = None                   # (ns, tuple, flags, seq, ack, length, t): a segment no socket wanted
        self.refused = None               # (ns, ICMP type, code): an ICMP error ended the sender's connect()


def _arp_frame(op: int, src_mac: str, dst_mac: str, psrc, pdst, target_mac: str) -> bytes:
    """An ARP request (broadcast, target MAC zero, as Linux sends it) or reply, 42 bytes."""
    return (mac_bytes(dst_mac) + mac_bytes(src_mac) + b"\x08\x06"
            + struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac_bytes(src_mac) + psrc.packed
            + mac_bytes(target_mac) + pdst.packed)


class Net:
    """The cluster's namespaces and the state of one walk (conntrack, caches, sockets)."""

    def __init__(self, sc, warm: bool = True, nf: dict | None = None):
        self.sc, self.timing, self.warm = sc, sc.timing, warm
        self.nss, self.wire = build(sc, warm, nf)
        self.nat_traces: dict = {}
        self.filter_traces: dict = {}            # (node, hook) -> FilterVerdict of the first packet seen there
        self.conntrack: dict = {}
        self.rec = _Recording()
        self.arp_waiting: dict[str, set] = {}
        self.arp_done: list = []               # (recording, rtt, anchor index in the segment's recording)
        self._deferred: list = []
        self.icmp_done: list = []              # recordings of ICMP errors the kernel sent
        self.refused_any = False               # an ICMP error ended a connect()
        self.refused_from = None               # the namespace whose kernel sent that ICMP error
        self._rtt = None
        self.listen: dict[str, set] = {}       # ns -> {(ip, port)}
        self.conns: dict[str, dict] = {}       # ns -> {(lip, lport, rip, rport): tuple as received}
        self.accepted: dict[str, list] = {}    # ns -> the connections its listener accepted (tuple as received)
        self.udp_listen: dict[str, set] = {}   # ns -> {(ip, port)}: unconnected UDP sockets (CoreDNS on :53)
        self.udp_received: dict[str, list] = {}  # ns -> the datagrams those sockets took (tuple as received)
        self._mac_owner = {}
        self._addr_owner = {}
        for ns in self.nss.values():
            for d in ns.devices.values():
                self._mac_owner.setdefault(d.mac, (ns, d.name))
            for dev, addrs in ns.addrs.items():
                for a in addrs:
                    self._addr_owner.setdefault(a.ip, dev)

    def mac_owner(self, mac: str, asker=None) -> str:
        """The device a MAC belongs to: its name for a pod's own node (its gateway), else ``dev of netns``."""
        if mac not in self._mac_owner:
            return mac
        ns, dev = self._mac_owner[mac]
        return dev if ns.kind == "node" and getattr(asker, "kind", "") == "pod" else f"{dev} of {ns.name}"

    def addr_owner(self, ip) -> str:
        return self._addr_owner.get(ip, str(ip))

    # -- what devices report ---------------------------------------------------
    def observe(self, dev, direction: str, t: int, skb, dec: list) -> None:
        self.rec.obs.append((dev.ns.name, dev.name, direction, t, bytes(skb.data), tuple(dec)))

    def drop(self, dev, reason: str, dec: list, ns=None) -> None:
        node = dev.ns.name if dev is not None else ns.name
        iface = dev.name if dev is not None else "(socket)"
        self.rec.drops.append((node, iface, reason, tuple(dec)))

    def _delivered(self, ns, t5, dec) -> None:
        self.rec.delivered = len(self.rec.obs) - 1
        if ns.kind != "pod" and self.rec.obs:
            # a host's socket: what INPUT did after tcpdump saw the frame goes with that last sighting
            last = self.rec.obs[-1]
            self.rec.obs[-1] = last[:5] + (last[5] + tuple(dec) + (
                Decision("socket", "tcp", f"{t5.dst}:{t5.dport} <- {t5.src}:{t5.sport}",
                         f"delivered to the socket in {ns.name}'s own namespace"),),)

    def deliver(self, ns, dev, skb, t, dec) -> None:
        d = skb.data
        t5 = tuple_of(d)
        key = (t5.dst, t5.dport, t5.src, t5.sport)
        conns = self.conns.setdefault(ns.name, {})
        if d[23] == 1 and d[14 + (d[14] & 0xF) * 4] == 3:
            # an ICMP destination unreachable quoting one of this namespace's connections: tcp_v4_err
            # (a hard error in SYN_SENT: connect() fails; port unreachable = ECONNREFUSED)
            q = 14 + (d[14] & 0xF) * 4 + 8
            qt = tuple_of(bytes(14) + d[q:])
            if (qt.src, qt.sport, qt.dst, qt.dport) in conns:
                self.rec.refused = (ns.name, 3, d[14 + (d[14] & 0xF) * 4 + 1])
                self.refused_any = True
                code = d[14 + (d[14] & 0xF) * 4 + 1]
                dec.append(Decision("socket", "tcp_v4_err", f"ICMP unreachable for {qt}",
                                    f"connect() fails: {_CONNECT_ERRNO.get(code, 'an error')}"))
                return self._delivered(ns, t5, dec)
        if key in conns:
            return self._delivered(ns, t5, dec)
        flags = d[14 + (d[14] & 0xF) * 4 + 13] if t5.proto == "tcp" else 0
        if t5.proto == "tcp" and flags & conv.SYN and (t5.dst, t5.dport) in self.listen.get(ns.name, set()):
            conns[key] = t5
            self.accepted.setdefault(ns.name, []).append(t5)
            return self._delivered(ns, t5, dec)
        if t5.proto == "udp" and (t5.dst, t5.dport) in self.udp_listen.get(ns.name, set()):
            self.udp_received.setdefault(ns.name, []).append(t5)
            return self._delivered(ns, t5, dec)
        self.drop(dev, f"no socket for {t5}: the kernel answers with RST" if t5.proto == "tcp"
                  else f"no socket for {t5}: ICMP port unreachable", dec)
        if t5.proto == "udp" and ns.kind == "node":
            # __udp4_lib_rcv: no socket -> icmp_send(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH)
            self.icmp_error(ns, skb, t + self.timing.process_us // 4, 3, 3)
        if t5.proto == "tcp" and not flags & conv.RST:
            l4 = 14 + (d[14] & 0xF) * 4
            seq, ack = struct.unpack_from("!II", d, l4 + 4)
            length = ((d[16] << 8) | d[17]) - (d[14] & 0xF) * 4 - (d[l4 + 12] >> 4) * 4
            self.rec.rst = (ns.name, t5.inverted(), flags, seq, ack,
                            length + bool(flags & conv.SYN) + bool(flags & conv.FIN), t)

    # -- ARP (cold neighbour caches) -------------------------------------------
    def arp(self, ns, dev, ip, src) -> None:
        """Resolve ``ip`` on ``dev``: an ARP request, broadcast, and the answer it gets."""
        main = self.rec
        self.rec = _Recording()
        self.arp_waiting.setdefault(ns.name, set()).add((dev.name, ip))
        self._rtt = None
        dev.xmit(self, Skb(_arp_frame(1, dev.mac, "ff:ff:ff:ff:ff:ff", src, ip, "00:00:00:00:00:00")), 0, [])
        while self._deferred:
            rns, rdev, psrc, pdst, dmac, t = self._deferred.pop(0)
            self._responder = (rns, rdev)
            rdev.xmit(self, Skb(_arp_frame(2, rdev.mac, dmac, psrc, pdst, dmac)), t, [])
        self.arp_waiting[ns.name].discard((dev.name, ip))
        arp_rec, self.rec = self.rec, main
        if self._rtt is not None and not self.warm:      # warm caches: that ARP happened before the capture
            nb = ns.neigh[(dev.name, ip)]
            via = any(r.via == ip for r in ns.routes)
            ask = (f"no MAC for the gateway {ip}: ARP request, broadcast" if via else
                   f"no MAC for {ip}: ARP request on the underlay" if dev.kind == "nic" else
                   f"no MAC for {ip}: ARP request, flooded to every port" if dev.kind == "bridge" else
                   f"no MAC for {ip}: ARP request, broadcast")
            rns, rdev = self._responder
            ans = f"{rdev.name} answers with its MAC" if rdev.kind == "bridge" else f"{rns.name} answers"
            what = {1: (f"{ip} dev {dev.name} INCOMPLETE", ask), 2: (nb.ip_neigh(), ans)}
            self.arp_done.append((arp_rec, self._rtt, len(main.obs), what))

    def icmp_error(self, ns, skb, t, typ, code) -> None:
        """``icmp_send`` from ``ns``: recorded apart from the segment it answers (like ARP), delivered at once."""
        main = self.rec
        self.rec = _Recording()
        ns.icmp_error(self, skb, t, typ, code)
        icmp_rec, self.rec = self.rec, main
        if icmp_rec.refused and self.refused_from is None:
            self.refused_from = ns.name
        main.refused = icmp_rec.refused
        self.icmp_done.append(icmp_rec)

    def arp_reply(self, ns, dev, psrc, pdst, dst_mac, t) -> None:
        self._deferred.append((ns, dev, psrc, pdst, dst_mac, t))

    def arp_answered(self, t) -> None:
        self._rtt = t

    # -- sending ------------------------------------------------------------------
    def send(self, ns_name: str, frame: bytes, dec: list) -> _Recording:
        self.rec = _Recording()
        ns = self.nss[ns_name]
        ns.output(self, Skb(frame), dec)
        return self.rec


_ZERO = "00:00:00:00:00:00"


def _reset(sc, segs, cause, rst) -> conv.Segment:
    """``tcp_v4_send_reset``: the answer to a segment no socket wants.

    If the segment carried an ACK the reset takes its sequence number from
    that ACK; otherwise it acknowledges everything the segment occupied.
    """
    ns, t, flags, seq, ack, length, t_arrive = rst
    sender = "client" if ns == sc.client.name else "server"
    # tcp_v4_send_reset answers from the namespace's control socket: no
    # timestamps, DF set and IP id 0 (ip_select_ident_segs: DF, no connected
    # socket), TTL net.ipv4.ip_default_ttl
    if flags & conv.ACK:
        s = conv.Segment(len(segs), sender, "RST (no socket)", conv.RST, ack, 0, b"", 0)
    else:
        s = conv.Segment(len(segs), sender, "RST (no socket)", conv.RST | conv.ACK, 0, (seq + length) & 0xFFFFFFFF,
                         b"", 0)
    s.send_us = cause.send_us + t_arrive
    s.sent_from = "reset"                               # the namespace's control socket, not a connection's
    segs.append(s)
    return s


def _first_frame(sc, net, seg, sender, t: Tuple5, ip_id: int) -> tuple[bytes, list]:
    me = sc.client if sender == "client" else sc.server
    opts = [] if seg.flags & conv.RST else conv.tcp_options(seg)
    ttl = net.nss[me.name].default_ttl
    frame = tcp_frame(_ZERO, _ZERO, t, ttl, ip_id, seg, opts)
    if frame is None:                                  # an option the byte encoder does not know
        frame = bytes(build_frame(_ZERO, _ZERO, t, ttl, ip_id, seg))
    dec = [Decision("socket", "tcp", f"{seg.label}: seq {seg.seq} ack {seg.ack} len {len(seg.payload)}",
                    f"{me.name} sends {t}")]
    return frame, dec


def _conversation(sc, net, segs, on_segment) -> None:
    """Send every segment from its socket, each as its sender's kernel would."""
    client, server = sc.client, sc.server
    ids = {"client": sc.observed.ip_id.get("client", 0x1d2c), "server": sc.observed.ip_id.get("server", 0x5a17)}
    # a host process with no route to the target has no source address: connect() fails in output
    ct = Tuple5("tcp", client.ip or ipaddress.IPv4Address("0.0.0.0"), sc.observed.client_port, sc.target_ip,
                sc.target_dport)
    net.conns.setdefault(client.name, {})[(ct.src, ct.sport, ct.dst, ct.dport)] = ct
    net.listen.setdefault(server.name, set()).add((server.ip, sc.target_port))
    for seg in segs:
        if seg.sender == "client":
            t, ns = ct, client.name
        else:
            accepted = net.accepted.get(server.name)
            if not accepted:
                break                                  # the SYN never reached nginx
            peer = accepted[0]                         # the segment nginx accepted, as it arrived
            t, ns = peer.inverted(), server.name
        if seg.sent_from != "socket":
            ip_id = 0                                  # a listener's SYN-ACK, a TIME_WAIT ACK: no socket counter
        else:
            ip_id = ids[seg.sender] & 0xFFFF
            ids[seg.sender] += 1
        frame, dec = _first_frame(sc, net, seg, seg.sender, t, ip_id)
        rec = net.send(ns, frame, dec)
        go = on_segment(seg, rec)
        if not go and rec.rst is None and all(s.retransmission for s in segs[seg.index + 1:]):
            continue                                   # dropped: the sender's retransmission timer tries again
        if rec.rst is not None or not go:
            del segs[seg.index + 1:]                   # the conversation ends here
        if rec.rst is not None:
            rst = _reset(sc, segs, seg, rec.rst)
            on_segment(rst, net.send(rec.rst[0], *_first_frame(sc, net, rst, rst.sender, rec.rst[1], 0)))
            break
        if not go:
            break


def _probe(sc, segs, nf=None):
    """The request's and the reply's path with each hop's latency (scratch graph, warm caches).

    Once per scenario and first two segments: validating a scenario probes it
    (``scenario._cross_checks``), and its walk needs the same paths.
    """
    if nf is not None and nf is not tables(sc):
        return _probe_paths(sc, segs, nf)
    first = [dataclasses.replace(s, notes=list(s.notes)) for s in segs[:2]]
    got = per_scenario(sc, "probe", list)                 # [(the two segments as probed, paths)]
    for done, paths in got:
        if done == first:
            return paths
    paths = _probe_paths(sc, segs, nf)
    got.append((first, paths))
    return paths


def _probe_paths(sc, segs, nf):
    net = Net(sc, warm=True, nf=nf)
    paths = {}

    def take(seg, rec):
        if seg.sender not in paths:
            end = rec.delivered if rec.delivered is not None else len(rec.obs) - 1
            out, prev = [], 0
            for ns, dev, d, t, _f, _dec in rec.obs[:end + 1]:
                out.append((ns, dev, d, t - prev))
                prev = t
            paths[seg.sender] = out
        return len(paths) < 2
    _conversation(sc, net, segs[:2], take)
    return paths.get("client", []), paths.get("server", []), net.refused_any, _soft_error(sc, net)


def _soft_error(sc, net) -> bool:
    """Whether the ICMP error that refuses the client's SYN reaches its socket as a *soft* error.

    An error sent by the client pod's own node is made and delivered in the softirq that
    connect()'s own transmit runs (veth -> bridge -> forward -> icmp_send -> veth), while a
    blocking connect() (busybox wget's) still holds the socket lock: ``tcp_v4_err`` then only
    records ``sk_err_soft`` (net/ipv4/tcp_ipv4.c; the same branch in 3.10).  The SYN is
    retransmitted after 1 s, from the timer, and that SYN's error ends connect().  Checked on
    a 6.18 kernel, warm caches: a same-node REJECT and a missing route both failed a blocking
    connect() after 1.03 s (the second SYN's error); a non-blocking connect() (poll) failed
    at once, as it did with the pod's receive steered to another CPU by RPS.
    """
    return (net.refused_any and net.refused_from == getattr(sc.client, "node", None)
            and getattr(sc.client, "kind", "pod") == "pod" and sc.neighbour_caches == "warm")


def schedule(sc, segs, nf: dict | None = None) -> bool:
    """Send times, TCP timestamps and nginx's Date for ``segs``, from the paths the engine probes.

    A conversation whose SYN never reaches the server is cut to that one segment;
    if it dies before the anchor, its time is taken where it was first seen.
    True when that SYN was sent and nothing answered it (the kernel will retransmit it).
    """
    from ..datapath import _cumulative, _schedule
    req_hops, rep_hops, answered, soft = _probe(sc, segs, nf)
    timed, lost = sc, not rep_hops
    if lost:
        # The SYN never reaches the server: the conversation is that one segment.
        # If it dies before the anchor, its time is taken where it was first seen.
        o = sc.observed
        if not req_hops:                           # not even sent (connect() failed)
            del segs[1:]
            segs[0].send_us = o.times_us[0] if o.times_us else o.start_us
        else:
            rep_hops = req_hops
            anchor = o.anchor if any((n, i) == o.anchor for n, i, _d, _l in req_hops) else req_hops[0][:2]
            timed = dataclasses.replace(sc, observed=dataclasses.replace(o, anchor=anchor))
    if req_hops:
        _schedule(timed, segs, _cumulative(req_hops), _cumulative(rep_hops), req_hops, rep_hops)
    if lost:
        del segs[1:]
    if lost and req_hops and answered and soft:
        return 1                                  # one retransmission: its error is the hard one
    return bool(lost and req_hops and not answered)


#: icmp_err_convert: what connect() fails with for an ICMP destination unreachable code
_CONNECT_ERRNO = {0: "ENETUNREACH (Network is unreachable)", 1: "EHOSTUNREACH (No route to host)",
                  3: "ECONNREFUSED (Connection refused)"}


def walk(sc) -> Walk:
    """Follow every segment of the conversation through the graph; record every observation.

    Taught in: 06-the-whole-walk.
    """
    segs = conv.segments(sc)
    nf = tables(sc)
    retransmit = schedule(sc, segs, nf)
    if retransmit and segs[0].flags == conv.SYN:
        from ..faults import add_syn_retransmissions
        add_syn_retransmissions(sc, segs, None if retransmit is True else retransmit)
    net = Net(sc, warm=sc.neighbour_caches == "warm", nf=nf)
    observations: list[Observation] = []
    arp_obs: list[Observation] = []
    drops: list[Drop] = []
    exchanges: list = []
    if getattr(sc, "dns", None) is not None:           # traffic case 6: the name is resolved first
        from .dns import resolve
        dns_obs, dns_drops, exchanges = resolve(sc, net, segs[0].send_us if segs else 0)
        observations += dns_obs
        drops += dns_drops
        if dns_drops:
            del segs[:]                                # getaddrinfo failed: wget never connects

    def take(seg, rec):
        flow = "request" if seg.sender == "client" else "reply"
        for h, (ns, dev, d, t, frame, dec) in enumerate(rec.obs):
            observations.append(Observation(node=ns, iface=dev, direction=d, time_us=seg.send_us + t, frame=frame,
                                            segment=seg.index, flow=flow, hop=h, decisions=dec,
                                            vxlan_port=sc.flannel.port))
        for arp_rec, rtt, anchor, what in net.arp_done:
            base = seg.send_us + rec.obs[anchor][3] - rtt - 1
            for ns, dev, d, t, frame, _dec in arp_rec.obs:
                entry, effect = what[frame[21]]
                arp_obs.append(Observation(ns, dev, d, base + t, frame, -1, "arp", -1,
                                           (Decision("neigh", f"{dev} neighbours", entry, effect),)))
        net.arp_done.clear()
        for icmp_rec in net.icmp_done:
            for ns, dev, d, t, frame, dec in icmp_rec.obs:
                arp_obs.append(Observation(ns, dev, d, seg.send_us + t, frame, -1, "icmp", -1, dec))
        net.icmp_done.clear()
        for node, iface, reason, dec in rec.drops:
            drops.append(Drop(node, iface, reason, seg.index, flow, seg.send_us, dec))
        return not rec.drops or rec.delivered is not None
    _conversation(sc, net, segs, take)
    from ..netfilter import fill_conntrack_entries
    w = Walk(scenario=sc, segments=segs, observations=observations + arp_obs,
             conntrack=dict(net.conntrack), nat_traces=net.nat_traces, drops=drops,
             filter_traces=net.filter_traces, dns=exchanges)
    fill_conntrack_entries(w)          # the entries' states need every segment's moment
    return w
