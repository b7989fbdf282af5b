"""When it breaks: fault scenarios, the kernel's retransmissions, and healthy-vs-broken by interface.

A fault scenario is a working scenario with one broken thing (``extends:``
a working one).  Some faults are plain configuration the format already has
(flannel older than v0.9.1 installs no FORWARD ACCEPT rules; a node with
``bridgeNfCallIptables: false``); the others are named by a ``fault:`` block
that the table-owning modules read, so ``bridge fdb show``, ``iptables-save``
and the walk all show the same broken state::

    fault: {kind: missing-fdb, node: xiaomi, peer: meizu}
        flannel.1 on xiaomi lacks meizu's VTEP MAC (flanneld lagging):
        coursekit.routing.fdb leaves the entry out
    fault: {kind: missing-route, node: xiaomi, peer: meizu}
        xiaomi has no route to meizu's pod subnet (flanneld failed to add it):
        coursekit.routing.routes leaves it out
    fault: {kind: udp-blocked, node: meizu, at: underlay}
        a cloud security group drops UDP <flannel port> to meizu on the wire
        (coursekit.kernel.devices.Nic.xmit asks :func:`wire_blocks`)
    fault: {kind: udp-blocked, node: meizu, at: input}
        a host firewall rule on meizu, ``-A INPUT -p udp -m udp --dport 8472 -j DROP``
        (coursekit.netfilter.filter_table; the datagram is seen on meizu's enp4s0)
    fault: {kind: no-endpoints, service: nginx}
        the Service selects no ready pod: kube-proxy writes no KUBE-SVC chain and a filter
        REJECT instead (coursekit.kubeproxy); the client gets ICMP port unreachable

:data:`FAULTS` lists every fault the course models with its fix, the words
a learner may use for it, and what to do on a real kernel to break and fix
it.  :func:`diagnose` names the fault of a scenario from its configuration;
:func:`compare` puts a healthy and a broken cluster side by side, interface
by interface; :func:`mystery` makes a broken cluster whose fault is not
named, seeded by a learner's name.

SYN retransmissions follow Linux's timers (checked on a 6.18 kernel in a
network namespace: SYNs at 0, 1.02, 3.03, 7.19, 15.2 s with
``tcp_syn_linear_timeouts=0``): the first retransmission after
``TCP_TIMEOUT_INIT`` = 1 s (``include/net/tcp.h``, since Linux 3.1; 3 s before),
each later one after twice the previous interval (``tcp_retransmit_timer``:
``icsk_rto = min(icsk_rto << 1, TCP_RTO_MAX)``), ``net.ipv4.tcp_syn_retries``
= 6 retransmissions (the default since 3.7), then ``connect()`` fails with
ETIMEDOUT at 127 s.  Linux 6.5 added ``net.ipv4.tcp_syn_linear_timeouts``
(default 4: the first retransmissions keep the 1 s interval); the article's
nodes ran CentOS 7's 3.10, which has no such sysctl, so the model uses 0.
Each retransmission is the same SYN (same ISN and options) with a new TS val
and the socket's next IP id.

Taught in: 09-when-it-breaks.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from dataclasses import dataclass

from .errors import CourseError

__all__ = ["FaultSpec", "Fault", "FAULTS", "parse_fault", "diagnose", "syn_retransmit_times",
           "add_syn_retransmissions", "compare", "Comparison", "outcome", "mystery", "Mystery", "fault_named"]

#: include/net/tcp.h: TCP_TIMEOUT_INIT ((unsigned)(1*HZ)) since 3.1; TCP_RTO_MAX ((unsigned)(120*HZ))
TCP_TIMEOUT_INIT_US = 1_000_000
TCP_RTO_MAX_US = 120_000_000
#: net.ipv4.tcp_syn_retries (TCP_SYN_RETRIES 6 since 3.7)
TCP_SYN_RETRIES = 6
#: net.ipv4.tcp_syn_linear_timeouts: 0 on the article's 3.10 kernel (the sysctl exists from 6.5, default 4)
TCP_SYN_LINEAR_TIMEOUTS = 0

_KINDS = {"missing-fdb": ("node", "peer"), "missing-route": ("node", "peer"), "udp-blocked": ("node", "port", "at"), "no-endpoints": ("service",),
          "vxlan-port": ("node", "port")}
_AT = ("underlay", "input")


@dataclass(frozen=True)
class FaultSpec:
    """The ``fault:`` block of a scenario, checked."""
    kind: str
    node: str | None = None
    peer: str | None = None
    service: str | None = None       # no-endpoints: the Service whose selector matches no pod
    port: int | None = None          # udp-blocked: the UDP port dropped (default: flannel's port)
    at: str = "underlay"             # udp-blocked: "underlay" (security group) or "input" (host firewall)


def parse_fault(raw, sc) -> FaultSpec:
    """Check a scenario's ``fault:`` block against its nodes; one CourseError naming the field otherwise."""
    if not isinstance(raw, dict):
        raise CourseError("fault", "is not a mapping", "kind, node, peer, port, at")
    kind = raw.get("kind")
    if kind not in _KINDS:
        raise CourseError("fault.kind", f"{kind!r} is not a fault the format names", ", ".join(_KINDS))
    for k in raw:
        if k != "kind" and k not in _KINDS[kind]:
            raise CourseError(f"fault.{k}", f"a {kind} fault has no {k}", ", ".join(_KINDS[kind]))
    if kind == "no-endpoints":
        svcs = [s.name for s in sc.services]
        svc = raw.get("service", sc.request.service)
        if svc not in svcs:
            raise CourseError("fault.service", f"{svc!r} is not a Service of the scenario", ", ".join(svcs))
        return FaultSpec(kind, service=svc)
    names = [n.name for n in sc.nodes]
    node = raw.get("node")
    if node not in names:
        raise CourseError("fault.node", f"{node!r} is not a node of the scenario", ", ".join(names))
    if kind == "vxlan-port":
        port = raw.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535 or port == sc.flannel.port:
            raise CourseError("fault.port", f"{port!r} is not another UDP port",
                              f"1..65535, other than flannel.port ({sc.flannel.port})")
        return FaultSpec(kind, node, port=port)
    if kind in ("missing-fdb", "missing-route"):
        peer = raw.get("peer")
        others = [n for n in names if n != node]
        if peer not in others:
            raise CourseError("fault.peer", f"{peer!r} is not another node", ", ".join(others))
        return FaultSpec(kind, node, peer=peer)
    port = raw.get("port", sc.flannel.port)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise CourseError("fault.port", f"{port!r} is not a UDP port", "1..65535")
    at = raw.get("at", "underlay")
    if at not in _AT:
        raise CourseError("fault.at", f"{at!r} is not a place a datagram can be blocked", ", ".join(_AT))
    return FaultSpec(kind, node, port=port, at=at)


# -- what the table owners and the engine ask ---------------------------------------

def fdb_missing(sc, node: str, peer: str) -> bool:
    """Does the scenario's fault remove ``peer``'s entry from ``node``'s flannel.1 FDB?"""
    f = sc.fault
    return f is not None and f.kind == "missing-fdb" and f.node == node and f.peer == peer


def route_missing(sc, node: str, peer: str) -> bool:
    """Does the scenario's fault remove ``node``'s route to ``peer``'s pod subnet (flanneld failed to add it)?"""
    f = sc.fault
    return f is not None and f.kind == "missing-route" and f.node == node and f.peer == peer


def vxlan_port(sc, node: str) -> int:
    """The UDP port ``node``'s flannel.1 sends to and listens on (``dstport``): flannel's, unless the fault
    gives that node another one."""
    f = sc.fault
    if f is not None and f.kind == "vxlan-port" and f.node == node:
        return f.port
    return sc.flannel.port


def vxlan_details(sc, node: str) -> str:
    """The ``vxlan`` line of ``ip -d link show flannel.1`` (iproute2 6.1's format, checked on a VXLAN device
    made as flannel makes it: ``id <VNI> local <node IP> dev <NIC> nolearning``, dstport as configured)."""
    n = sc.node(node)
    csum = "udpcsum" if sc.flannel.udp_checksum else "noudpcsum"
    return (f"    vxlan id {sc.flannel.vni} local {n.nic.ip} dev {n.nic.name} srcport 0 0 dstport {vxlan_port(sc, node)} "
            f"nolearning ttl auto ageing 300 {csum} noudp6zerocsumtx noudp6zerocsumrx")


def service_endpoints(sc, svc) -> list:
    """The Service's endpoints as kube-proxy sees them: none when the fault empties its selector's match."""
    f = sc.fault
    if f is not None and f.kind == "no-endpoints" and f.service == svc.name:
        return []
    return sc.endpoints(svc)


def input_rules(sc, node: str) -> list:
    """Filter INPUT rules the fault adds on ``node`` (a host firewall dropping the VXLAN port)."""
    from .netfilter import Rule
    f = sc.fault
    if f is not None and f.kind == "udp-blocked" and f.at == "input" and f.node == node:
        return [Rule("INPUT", "DROP", proto="udp", dport=f.port, owner="admin")]
    return []


def wire_blocks(sc, frame: bytes, to_node: str) -> str | None:
    """Why the underlay drops ``frame`` on its way to ``to_node`` (a security group), or None."""
    f = sc.fault
    if f is None or f.kind != "udp-blocked" or f.at != "underlay" or f.node != to_node:
        return None
    if len(frame) < 38 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    l4 = 14 + (frame[14] & 0xF) * 4
    if (frame[l4 + 2] << 8) | frame[l4 + 3] != f.port:
        return None
    return f"the underlay drops UDP port {f.port} to {to_node} (a security group or firewall between the nodes)"


# -- the faults the course models ----------------------------------------------------

@dataclass(frozen=True)
class Fault:
    name: str
    title: str
    scenario: str                    # data/scenarios/<scenario>.yaml: the broken cluster
    healthy: str                     # the working case it breaks
    fix: str
    words: tuple[str, ...]           # phrases that name the fault or its fix (lower case)
    break_on_kernel: str             # what a live lab does, in which namespace
    fix_on_kernel: str


FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("forward-policy-drop", "FORWARD policy DROP without flannel's ACCEPT rules",
          "faults/forward-policy-drop", "faults/healthy",
          "add flannel's FORWARD rules (-s/-d <cluster network> -j ACCEPT): flannel >= v0.9.1 installs them",
          ("forward-policy-drop", "forward policy drop", "forward policy", "policy drop", "forward drop",
           "iptables forward", "forward chain", "filter forward", "docker forward policy",
           "forward accept", "iptables -p forward accept", "upgrade flannel", "flannel 0.9.1",
           "flannel v0.9.1", "flannel's forward rules", "flannel forward rules", "-a forward", "-i forward"),
          "ip netns exec <meizu> iptables -D FORWARD -s 172.30.0.0/16 -j ACCEPT; "
          "ip netns exec <meizu> iptables -D FORWARD -d 172.30.0.0/16 -j ACCEPT "
          "(the policy is already DROP, as Docker >= 1.13 sets it)",
          "ip netns exec <meizu> iptables -A FORWARD -s 172.30.0.0/16 -j ACCEPT; "
          "ip netns exec <meizu> iptables -A FORWARD -d 172.30.0.0/16 -j ACCEPT"),
    Fault("missing-fdb", "flannel.1 has no FDB entry for the other node's VTEP",
          "faults/missing-fdb", "faults/healthy",
          "add the FDB entry (bridge fdb append <VTEP MAC> dev flannel.1 dst <node IP> self permanent), "
          "or restart flanneld so it programs it",
          ("missing-fdb", "missing fdb", "fdb", "fdb entry", "no fdb entry", "vxlan fdb", "bridge fdb",
           "flannel fdb", "flanneld lagging", "restart flanneld", "bridge fdb append", "bridge fdb add"),
          "ip netns exec <xiaomi> bridge fdb del <meizu VTEP MAC> dev flannel.1 dst <meizu IP>",
          "ip netns exec <xiaomi> bridge fdb append <meizu VTEP MAC> dev flannel.1 dst <meizu IP> self permanent"),
    Fault("missing-route", "a node has no route to another node's pod subnet",
          "faults/missing-route", "faults/healthy",
          "add the route (ip route add <subnet> via <subnet>.0 dev flannel.1 onlink), or restart flanneld so it "
          "programs it",
          ("missing-route", "missing route", "no route", "route missing", "ip route add", "pod cidr route",
           "subnet route", "network unreachable", "route to", "add the route", "add a route"),
          "ip netns exec <xiaomi> ip route del 172.30.20.0/24 via 172.30.20.0 dev flannel.1 onlink",
          "ip netns exec <xiaomi> ip route add 172.30.20.0/24 via 172.30.20.0 dev flannel.1 onlink"),
    Fault("udp-blocked", "the VXLAN UDP port is blocked between the nodes",
          "faults/udp-blocked", "faults/healthy",
          "allow UDP <flannel port> between the nodes (the security group, or the host firewall's INPUT rule)",
          ("udp-blocked", "udp blocked", "8472 blocked", "4789 blocked", "vxlan blocked", "vxlan port blocked",
           "udp port blocked", "security group", "firewall", "allow udp", "open udp", "open 8472",
           "allow 8472", "open the vxlan port", "allow the vxlan port", "underlay firewall", "input drop",
           "-d input"),
          "underlay: a filter between the nodes (the lab's wire is a bridge in a namespace of its own: "
          "ebtables -A FORWARD -p IPv4 --ip-dst <meizu IP> --ip-proto udp --ip-dport 8472 -j DROP); host firewall: "
          "ip netns exec <meizu> iptables -I INPUT -p udp -m udp --dport 8472 -j DROP",
          "remove that rule (iptables -D INPUT -p udp -m udp --dport 8472 -j DROP)"),
    Fault("vxlan-port", "the nodes' VXLAN devices use different UDP ports",
          "faults/vxlan-port", "faults/healthy",
          "give every node's flannel.1 the same dstport (flannel's Port setting, or the kernel's 8472 on all)",
          ("vxlan-port", "vxlan port", "dstport", "port mismatch", "different port", "wrong port", "4789",
           "same port", "flannel port", "same dstport"),
          "ip netns exec <meizu> ip link del flannel.1; ip netns exec <meizu> ip link add flannel.1 type vxlan "
          "id 1 dstport 4789 local <meizu IP> dev enp4s0 nolearning (then its address, route, neighbour and FDB "
          "entries again)",
          "recreate meizu's flannel.1 with dstport 8472"),
    Fault("no-endpoints", "the Service selects no ready pod: kube-proxy REJECTs its ClusterIP",
          "faults/no-endpoints", "faults/healthy",
          "make the Service's selector match the pods' labels (kubectl get endpoints shows none), "
          "or get its pods Ready",
          ("no-endpoints", "no endpoints", "endpoints", "selector", "labels", "label", "has no endpoints",
           "kubectl get endpoints", "reject", "no ready pod",
           "no pods", "scale up", "readiness"),
          "on every node: iptables -t nat -D KUBE-SERVICES <the nginx ClusterIP rules>, its KUBE-SVC and KUBE-SEP "
          "chains flushed and deleted (-X); iptables -I KUBE-SERVICES 1 -d 10.254.40.119/32 -p tcp -m comment "
          "--comment \"default/nginx: has no endpoints\" -m tcp --dport 4432 -j REJECT --reject-with "
          "icmp-port-unreachable (coursekit.labfaults computes each command)",
          "undo those rules (kube-proxy does it when the Service has endpoints again)"),
    Fault("no-br-netfilter", "br_netfilter off on a node whose pod calls a Service served on the same node",
          "same-node-no-br-netfilter", "same-node",
          "modprobe br_netfilter; sysctl -w net.bridge.bridge-nf-call-iptables=1",
          ("no-br-netfilter", "br_netfilter", "br netfilter", "bridge-nf-call-iptables", "bridge nf call iptables",
           "bridge netfilter", "modprobe br_netfilter", "net.bridge.bridge-nf-call-iptables"),
          "ip netns exec <xiaomi> sysctl -w net.bridge.bridge-nf-call-iptables=0",
          "ip netns exec <xiaomi> sysctl -w net.bridge.bridge-nf-call-iptables=1"),
)}


def diagnose(sc) -> str:
    """The fault a scenario's configuration has (a name of :data:`FAULTS`), or ``"healthy"``.

    Computed from the configuration, not from a label: flannel older than
    v0.9.1 with Docker's FORWARD policy DROP, a node without br_netfilter
    whose client and endpoint share it, or the ``fault:`` block.
    """
    from .netfilter import _version
    if sc.fault is not None:
        return sc.fault.kind
    if _version(sc.flannel.version) < (0, 9, 1) and sc.client.node != sc.server.node:
        return "forward-policy-drop"
    if sc.client.node == sc.server.node and not sc.node(sc.client.node).br_netfilter \
            and getattr(sc.client, "kind", "pod") == "pod":
        return "no-br-netfilter"
    return "healthy"


def fault_named(text: str) -> str | None:
    """The fault a learner's words name (by its name, a symptom word or its fix), or None."""
    t = " ".join(str(text).lower().replace("_", "_").split())
    hits = set()
    for f in FAULTS.values():
        for w in f.words:
            if w in t:
                hits.add(f.name)
    return hits.pop() if len(hits) == 1 else None


# -- retransmissions ------------------------------------------------------------------

def syn_retransmit_times(retries: int = TCP_SYN_RETRIES, linear: int = TCP_SYN_LINEAR_TIMEOUTS,
                         rto_us: int = TCP_TIMEOUT_INIT_US) -> tuple[list[int], int]:
    """Offsets (µs after the first SYN) of each retransmitted SYN, and when ``connect()`` gives up.

    The k-th retransmission waits ``rto * 2**max(0, k - 1 - linear)`` after
    the previous one (capped at TCP_RTO_MAX).  At each expiry ``tcp_write_timeout``
    fails the connection if ``retries + linear`` retransmissions are done (the
    ``linear`` ones are extra, in SYN_SENT only) or if ``tcp_model_timeout``'s bound
    has passed: ``(2**(retries + 1) - 1) * rto`` (127 s for 6), linear beyond
    TCP_RTO_MAX.  ``linear`` is 0 on kernels before 6.5; with 6.5's default of 4 a
    SYN is retransmitted at 1, 2, 3, 4, 5, 7, 11, 19, 35 and 67 s and connect()
    fails at 131 s (measured on a 6.18 kernel: 133.5 s, timer slack included).

    >>> syn_retransmit_times()
    ([1000000, 3000000, 7000000, 15000000, 31000000, 63000000], 127000000)
    """
    for name, v, lo, hi in (("retries", retries, 0, 255), ("linear", linear, 0, 255), ("rto_us", rto_us, 1, 10**9)):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise CourseError(name, f"{v!r} is out of range", f"an integer {lo}..{hi}")
    thresh = (TCP_RTO_MAX_US // rto_us).bit_length() - 1           # ilog2(TCP_RTO_MAX / rto)
    bound = ((2 << retries) - 1) * rto_us if retries <= thresh else \
        ((2 << thresh) - 1) * rto_us + (retries - thresh) * TCP_RTO_MAX_US
    out, t, k = [], 0, 1
    while True:
        t += min(rto_us * 2 ** max(0, k - 1 - linear), TCP_RTO_MAX_US)
        if len(out) >= retries + linear or t >= bound:
            return out, t
        out.append(t)
        k += 1


def add_syn_retransmissions(sc, segs, count: int | None = None) -> None:
    """After a SYN nobody answered: the client's retransmissions, each a new segment (same ISN, new TS val);
    ``count`` of them (all by default: until connect() gives up)."""
    from . import conversation as conv
    first = segs[0]
    times, _give_up = syn_retransmit_times()
    times = times[:count]
    offset = sc.observed.client_ts_offset_us
    for n, dt in enumerate(times, 1):
        s = dataclasses.replace(first, index=len(segs), label=f"SYN (retransmission {n})", notes=[])
        s.send_us = first.send_us + dt
        s.ts_val = ((s.send_us + offset) // 1000) & 0xFFFFFFFF
        s.ts_ecr = 0
        s.retransmission = n
        assert s.flags == conv.SYN
        segs.append(s)


def outcome(walk) -> str:
    """What the client's ``connect()`` ends with, as the walk shows it."""
    segs = walk.segments
    rst = [s for s in segs if s.flags & 0x04]
    if rst:
        if rst[0].sender == "client":
            # the RST answers a SYN-ACK no socket of the client asked for: it resets the server's half-open
            # connection, not the client's (a 6.18 kernel: the SYN is retransmitted, each round the same)
            _t, give_up = syn_retransmit_times()
            return ("the client's kernel resets a SYN-ACK from a peer it never called; its own connect() "
                    "keeps retransmitting the SYN and fails with ETIMEDOUT (Connection timed out) "
                    f"{give_up // 1_000_000} s after the first SYN")
        return "the client receives a reset: connect() fails with ECONNREFUSED (Connection refused)"
    client = walk.scenario.client.name
    icmp = [o for o in walk.observations if o.flow == "icmp" and o.node == client and o.direction == "in"]
    if icmp:
        d = icmp[0].frame
        code = d[14 + (d[14] & 0xF) * 4 + 1]
        what, errno = {0: ("network", "ENETUNREACH (Network is unreachable)"),
                       1: ("host", "EHOSTUNREACH (No route to host)")}.get(
            code, ("port", "ECONNREFUSED (Connection refused)"))
        rtx = [s for s in segs if getattr(s, "retransmission", 0)]
        if rtx:
            return (f"an ICMP {what} unreachable answers the SYN, while connect() still holds the socket (the "
                    f"kernel keeps it as a soft error); the SYN is retransmitted after "
                    f"{(rtx[0].send_us - segs[0].send_us) / 1e6:g} s, and its ICMP error ends connect() with {errno}")
        return f"an ICMP {what} unreachable answers the SYN: connect() fails at once with {errno}"
    rtx = [s for s in segs if getattr(s, "retransmission", 0)]
    if rtx:
        _t, give_up = syn_retransmit_times()
        return (f"no answer: the SYN is retransmitted {len(rtx)} times and connect() fails with ETIMEDOUT "
                f"(Connection timed out) {give_up // 1_000_000} s after the first SYN")
    if not walk.drops:
        return "the request is answered"
    return "the conversation stops at the drop"


# -- healthy vs broken ------------------------------------------------------------------

def _signature(frame: bytes, style) -> str:
    """tcpdump's -nn -e line without its time and TCP timestamp values (what a person compares)."""
    import re
    from .capture import Frame
    from .tcpdump import render_lines
    line = render_lines([Frame(0, frame)], style)[0]
    line = line.split(" ", 1)[1]                                 # the timestamp
    return re.sub(r"TS val \d+ ecr \d+", "TS val _ ecr _", line)


@dataclass(frozen=True)
class Row:
    node: str
    iface: str
    direction: str
    healthy: int           # frames tcpdump records there in the healthy cluster
    broken: int
    syn: str               # "same", "differs", "absent" (only healthy), "extra" (only broken)

    def __str__(self) -> str:
        what = {"same": "the same SYN", "differs": "a different SYN", "absent": "the SYN is missing",
                "extra": "a SYN the healthy cluster never shows there"}[self.syn]
        return (f"{self.node} {self.iface} ({self.direction}): {what}; frames healthy {self.healthy}, "
                f"broken {self.broken}")


@dataclass(frozen=True)
class Comparison:
    healthy: str
    broken: str
    rows: tuple[Row, ...]
    first: Row | None              # the first interface, along the path, where the two differ

    def __str__(self) -> str:
        head = f"{'where':<24} {'dir':<4} {'healthy':>7} {'broken':>7}  the SYN"
        lines = [f"healthy: {self.healthy}   broken: {self.broken}", head]
        for r in self.rows:
            mark = "  <- first difference" if r is self.first else ""
            lines.append(f"{r.node + ' ' + r.iface:<24} {r.direction:<4} {r.healthy:>7} {r.broken:>7}  {r.syn}{mark}")
        return "\n".join(lines)

    __repr__ = __str__


def compare(healthy, broken) -> Comparison:
    """Healthy and broken cluster, interface by interface: frames per interface and the first SYN.

    Rows follow the broken SYN's path, then the interfaces only the healthy
    one reaches; a SYN is "the same" when tcpdump -nn -e prints the same line
    (apart from the time and the TCP timestamp values).

    Taught in: 09-when-it-breaks.
    """
    from .datapath import Walk, walk as _walk
    from .scenario import as_scenario
    from .tcpdump import Style
    ws = []
    for x in (healthy, broken):
        ws.append(x if isinstance(x, Walk) else _walk(as_scenario(x)))
    wh, wb = ws
    style = Style(n=2, e=True)

    def syn_path(w):
        return [(o.node, o.iface, o.direction, _signature(o.frame, style)) for o in w.path(0)]

    ph, pb = syn_path(wh), syn_path(wb)
    points = [p[:3] for p in pb] + [p[:3] for p in ph if p[:3] not in [q[:3] for q in pb]]
    sig_h = {p[:3]: p[3] for p in ph}
    sig_b = {p[:3]: p[3] for p in pb}

    def count(w, pt):
        return sum(1 for o in w.observations if (o.node, o.iface, o.direction) == pt)

    rows = []
    for pt in points:
        if pt in sig_h and pt in sig_b:
            syn = "same" if sig_h[pt] == sig_b[pt] else "differs"
        else:
            syn = "absent" if pt in sig_h else "extra"
        rows.append(Row(pt[0], pt[1], pt[2], count(wh, pt), count(wb, pt), syn))
    first = next((r for r in rows if r.syn != "same"), None)
    return Comparison(wh.scenario.name, wb.scenario.name, tuple(rows), first)


# -- mysteries --------------------------------------------------------------------------

#: The faults a mystery draws from, with the parameters that vary (seeded).
MYSTERY_FAULTS = ("forward-policy-drop", "missing-fdb", "udp-blocked", "udp-blocked-input", "no-br-netfilter",
                  "no-endpoints", "vxlan-port")


def _seed(learner) -> int:
    if isinstance(learner, bool) or not isinstance(learner, (str, int)):
        raise CourseError("learner", f"a value of type {type(learner).__name__} is not a name or number",
                          "your name (text) or a number")
    text = str(learner).strip().lower()
    if not text or len(text) > 200:
        raise CourseError("learner", "is empty or longer than 200 characters", "your name or a number")
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


@dataclass
class Mystery:
    """A broken cluster whose fault is not named: what a person on the nodes could observe."""
    learner: str
    scenario: object               # the broken Scenario (its name hides the fault)
    walk: object

    def interfaces(self) -> list[tuple[str, str]]:
        """Where tcpdump can listen, in the order the method follows (the client's side first)."""
        sc = self.scenario
        out = [(sc.client.name, "eth0")]
        nodes = [sc.client.node] + [n.name for n in sc.nodes if n.name != sc.client.node]
        for n in nodes:
            node = sc.node(n)
            ifs = ["docker0", sc.flannel.device, node.nic.name] if n == sc.client.node else \
                [node.nic.name, sc.flannel.device, "docker0"]
            out += [(n, i) for i in ifs]
        out += [(p.name, "eth0") for p in sc.pods if p.name != sc.client.name and p.name == sc.server.name]
        return out

    def tcpdump(self, node: str, iface: str):
        """``tcpdump -nn -i <iface>`` on ``node`` (or in a pod), for the whole failed attempt (a Transcript:
        ``repr`` shows the command and the packet count)."""
        from . import tcpdump as _tcpdump
        return _tcpdump(self.scenario, node, iface, flags="-nn")

    def tables(self, node: str) -> str:
        """What ``ip route``, ``ip neigh show dev flannel.1``, ``bridge fdb show dev flannel.1`` and
        ``iptables-save -t filter`` print on ``node``."""
        from . import routing
        from .netfilter import filter_save
        sc = self.scenario
        fl = sc.flannel.device
        neigh = "".join(e.ip_neigh() + "\n" for e in routing.neighbours(sc, node) if e.dev == fl)
        return (f"$ ip route\n{routing.ip_route(sc, node)}"
                f"$ ip -d link show {fl} | grep vxlan\n{vxlan_details(sc, node)}\n"
                f"$ ip neigh show dev {fl}\n{neigh}"
                f"$ bridge fdb show dev {fl}\n{routing.bridge_fdb(sc, node)}"
                f"$ iptables-save -t filter\n{filter_save(sc, node)}"
                f"$ sysctl net.bridge.bridge-nf-call-iptables\nnet.bridge.bridge-nf-call-iptables = "
                f"{int(sc.node(node).br_netfilter)}\n")

    def symptom(self) -> str:
        """What the person who called for help reports: what busybox wget printed, and when."""
        import re
        sc = self.scenario
        text = outcome(self.walk)
        if text == "the request is answered":
            said = "the page arrives"
        else:
            err = re.findall(r"\(([A-Z][a-z][^)]*)\)", text)
            segs = self.walk.segments
            rtx = [s for s in segs if getattr(s, "retransmission", 0)]
            after = syn_retransmit_times()[1] if "ETIMEDOUT" in text else \
                (rtx[-1].send_us - segs[0].send_us if rtx else 0)
            said = (f"`wget: can't connect to remote host ({sc.target_ip}): {err[-1] if err else 'failed'}`, "
                    + (f"after {after / 1e6:g} s" if after else "at once"))
        return f"`wget http://{sc.target_ip}:{sc.target_dport}/` in pod {sc.client.name} on {sc.client.node}: {said}."

    def hint(self, step: int = 0) -> str:
        """Where to listen next: the interfaces in the method's order, one more per step."""
        seen = {(o.node, o.iface) for o in self.walk.path(0)}
        order = self.interfaces()
        last = None
        for i, pt in enumerate(order):
            if pt in seen:
                last = i
        if step <= 0:
            return (f"Start where the request starts: tcpdump on {order[0][0]} {order[0][1]}, then follow "
                    "the request interface by interface.")
        k = min(step, len(order) - 1)
        nxt = order[k]
        if last is not None and k > last:
            return (f"The request is not seen on {nxt[0]} {nxt[1]}. Read the tables of the node where it was "
                    f"last seen, {order[last][0]} ({order[last][1]}): which entry should have sent it on?")
        return f"Listen on {nxt[0]} {nxt[1]} next: is the request there, and does it look as it should?"


_MYSTERY_BASES = {"forward-policy-drop": "faults/forward-policy-drop", "missing-fdb": "faults/missing-fdb",
                  "udp-blocked": "faults/udp-blocked", "udp-blocked-input": "faults/udp-blocked-input",
                  "no-br-netfilter": "same-node-no-br-netfilter", "no-endpoints": "faults/no-endpoints",
                  "vxlan-port": "faults/vxlan-port"}


def mystery(learner) -> Mystery:
    """A broken cluster for one learner (a name or a number): a fault and its parameters, seeded.

    The fault, the client port, the ISN, the VNI and the Service's port vary with ``learner``, so
    neighbours in a classroom get different captures (and often a different fault).  Check the
    diagnosis with ``ck.check("09.mystery", answer, m.scenario)``.

    Taught in: 09-when-it-breaks.
    """
    from .scenario import raw_scenario, scenario_from_dict, _resolve
    seed = _seed(learner)
    kind = MYSTERY_FAULTS[seed % len(MYSTERY_FAULTS)]
    r = seed // len(MYSTERY_FAULTS)
    raw = copy.deepcopy(raw_scenario(_MYSTERY_BASES[kind]))
    obs = raw.setdefault("observed", {})
    obs["clientPort"] = 32768 + r % 28232
    r //= 28232
    obs["clientISN"] = r % (1 << 32)
    r >>= 32
    raw["flannel"]["vni"] = 1 + r % 16
    r //= 16
    raw["name"] = f"mystery-{str(learner).strip().lower()[:40]}"
    raw["description"] = "a broken cluster: find out what is wrong"
    sc = scenario_from_dict(raw, source="mystery")          # the file name would name the fault
    from .datapath import walk as _walk
    return Mystery(str(learner), sc, _walk(sc))
