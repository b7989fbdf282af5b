"""The pure functions behind every explorer and the stepper (no widgets here).

An explorer is a handful of *knobs* -- the addresses and ports a learner may
change -- over a base scenario.  :func:`apply` turns knob values into a new,
validated scenario (a :class:`~coursekit.errors.CourseError` names the knob,
not the scenario path); :func:`views` recomputes every text view from it.
:mod:`coursekit.widgets` only wires these to ipywidgets, so everything here
is tested without a browser.

The stepper (:func:`steps`, :func:`step_view`) walks one request segment
and its reply hop by hop: at each hop the frame's layers, what changed since
the previous hop and the table entry that changed it.

Taught in: every chapter's explorer; 06-the-whole-walk (the stepper).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .bpf import apply_filter
from .capture import capture
from .datapath import walk as _walk
from .dissect import changes, dissect, tree
from .errors import CourseError
from .tcpdump import Style, parse_flags, render

__all__ = ["Knob", "knobs", "current", "apply", "Views", "views", "hop_table", "Step", "steps", "step_view",
           "interfaces"]


@dataclass(frozen=True)
class Knob:
    """One thing a learner may change."""
    name: str
    label: str
    kind: str                       # "ip", "port", "int", "bool", "choice", "text"
    lo: int = 0
    hi: int = 0
    help: str = ""


_KNOBS = [
    Knob("client_ip", "client pod IP", "ip", help="the busybox pod's eth0 address (inside its node's pod subnet)"),
    Knob("server_ip", "server pod IP", "ip", help="the first nginx pod's address (inside its node's pod subnet)"),
    Knob("client_node_ip", "client node IP", "ip", help="the client node's enp4s0 address"),
    Knob("server_node_ip", "server node IP", "ip", help="the server node's enp4s0 address"),
    Knob("service_ip", "Service IP", "ip", help="the Service's clusterIP (inside serviceCIDR)"),
    Knob("service_port", "Service port", "port", 1, 65535),
    Knob("target_port", "targetPort", "port", 1, 65535),
    Knob("vni", "VNI", "int", 1, (1 << 24) - 1),
    Knob("vxlan_port", "VXLAN port", "port", 1, 65535, "8472 (the kernel's default, flannel's) or 4789 (IANA)"),
    Knob("pod_mtu", "pod MTU", "int", 576, 65535, "docker0 and every pod's eth0, both nodes"),
    Knob("node_mtu", "node MTU", "int", 118, 65535, "enp4s0 on both nodes"),
    Knob("masquerade", "Docker masquerade", "bool", help="Docker's -s <subnet> ! -o docker0 -j MASQUERADE"),
    Knob("replicas", "replicas", "int", 1, 16),
    Knob("cold_caches", "cold caches", "bool", help="empty neighbour caches: the first packet waits for ARP"),
]


def knobs(names=None) -> list[Knob]:
    """The knobs, all or the ``names`` given, in a stable order."""
    if names is None:
        return list(_KNOBS)
    by = {k.name: k for k in _KNOBS}
    unknown = [n for n in names if n not in by]
    if unknown:
        raise CourseError("knob", f"unknown knob {unknown[0]!r}", ", ".join(by))
    return [by[n] for n in names]


def current(sc) -> dict:
    """The knob values of a scenario."""
    cn, sn = sc.node(sc.client.node), sc.node(sc.server.node)
    svc = sc.service(sc.request.service)
    return {
        "client_ip": str(sc.client.ip), "server_ip": str(sc.server.ip),
        "client_node_ip": str(cn.nic.ip), "server_node_ip": str(sn.nic.ip),
        "service_ip": str(svc.cluster_ip), "service_port": sc.service_port.port,
        "target_port": sc.service_port.target_port, "vni": sc.flannel.vni, "vxlan_port": sc.flannel.port,
        "pod_mtu": sn.docker.mtu, "node_mtu": sn.nic.mtu, "masquerade": cn.docker.ip_masq,
        "replicas": len(sc.endpoints(svc)), "cold_caches": sc.neighbour_caches == "cold",
    }


def _parse(k: Knob, value):
    if k.kind == "ip":
        try:
            return ipaddress.IPv4Address(str(value).strip())
        except ValueError:
            raise CourseError(k.label, f"{value!r} is not an IPv4 address", "four numbers 0-255, like 10.0.0.1") from None
    if k.kind in ("port", "int"):
        try:
            v = int(str(value).strip())
        except ValueError:
            raise CourseError(k.label, f"{value!r} is not a whole number", f"{k.lo}-{k.hi}") from None
        if not k.lo <= v <= k.hi:
            raise CourseError(k.label, f"{v} is out of range", f"{k.lo}-{k.hi}")
        return v
    if k.kind == "bool":
        return bool(value)
    return value


def apply(base, values: dict):
    """A new scenario with the knob ``values`` applied to ``base``; errors name the knob.

    >>> sc = apply(ck.load_scenario("article"), {"vxlan_port": 4789})     # doctest: +SKIP

    Taught in: every chapter's explorer.
    """
    by = {k.name: k for k in _KNOBS}
    now = current(base)
    v = {}
    for name, value in values.items():
        if name not in by:
            raise CourseError("knob", f"unknown knob {name!r}", ", ".join(by))
        v[name] = _parse(by[name], value)
    sc = base
    cname, sname = sc.client.name, sc.request.service
    cn, sn = sc.node(sc.client.node), sc.node(sc.server.node)
    workload = sc.server.name.rsplit("-", 1)[0]
    ch: dict = {}
    owner: dict = {}           # scenario path -> knob, to name the knob in an error

    def put(path, val, knob):
        ch[path] = val
        owner[path] = knob

    if "client_ip" in v:
        put(f"pods.{cname}.ip", str(v["client_ip"]), "client_ip")
    if "client_node_ip" in v:
        put(f"nodes.{cn.name}.nic.address", f"{v['client_node_ip']}/{cn.nic.network.prefixlen}", "client_node_ip")
    if "server_node_ip" in v:
        put(f"nodes.{sn.name}.nic.address", f"{v['server_node_ip']}/{sn.nic.network.prefixlen}", "server_node_ip")
    if "service_ip" in v:
        put(f"services.{sname}.clusterIP", str(v["service_ip"]), "service_ip")
    if "service_port" in v:
        put(f"services.{sname}.ports.0.port", v["service_port"], "service_port")
        put("request.port", v["service_port"], "service_port")
    if "target_port" in v:
        put(f"services.{sname}.ports.0.targetPort", v["target_port"], "target_port")
    if "vni" in v:
        put("flannel.vni", v["vni"], "vni")
    if "vxlan_port" in v:
        put("flannel.port", v["vxlan_port"], "vxlan_port")
    for n in (cn, sn):
        if "pod_mtu" in v:
            put(f"nodes.{n.name}.docker.mtu", v["pod_mtu"], "pod_mtu")
        if "node_mtu" in v:
            put(f"nodes.{n.name}.nic.mtu", v["node_mtu"], "node_mtu")
        if "masquerade" in v:
            put(f"nodes.{n.name}.docker.ipMasq", v["masquerade"], "masquerade")
    if "cold_caches" in v:
        put("neighbourCaches", "cold" if v["cold_caches"] else "warm", "cold_caches")
    replicas = v.get("replicas", now["replicas"])
    if "replicas" in v or "server_ip" in v:
        first = v.get("server_ip", ipaddress.IPv4Address(now["server_ip"]))
        ips = [str(first + i) for i in range(replicas)]
        put(f"workloads.{workload}.replicas", replicas, "replicas" if "replicas" in v else "server_ip")
        put(f"workloads.{workload}.podIPs", ips, "server_ip" if "server_ip" in v else "replicas")
    if not ch:
        return base
    try:
        from .conversation import fit_observations
        return fit_observations(sc, ch)
    except CourseError as e:
        knob = next((owner[p] for p in owner if e.field == p or e.field.startswith(p + ".")
                     or p.startswith(e.field + ".")), None)
        if knob is None and e.field.startswith(f"workloads.{workload}.podIPs"):
            knob = "server_ip"
        if knob is None:
            raise
        raise CourseError(by[knob].label, e.problem, e.allowed) from None


def interfaces(sc) -> list[tuple[str, str]]:
    """Every (node or pod, interface) where tcpdump can listen, in path order."""
    out = []
    for n in [sc.node(sc.client.node), sc.node(sc.server.node)]:
        out += [(n.name, i) for i in sc.interfaces(n.name)]
    out += [(p.name, "eth0") for p in (sc.client, sc.server)]
    return out


@dataclass
class Views:
    """Everything an explorer shows, recomputed from one scenario."""
    scenario: object
    walk: object
    node: str
    iface: str
    frames: list
    tcpdump: str
    hops: str
    dissection: str
    notes: list = field(default_factory=list)


def views(sc, node: str | None = None, iface: str | None = None, flt: str = "", flags: str = "-nn",
          frame: int = 0) -> Views:
    """Recompute the tcpdump text, hop table and dissection for one interface.

    Taught in: every chapter's explorer.
    """
    w = _walk(sc)
    node = node or sc.server.node
    iface = iface or sc.node(sc.server.node).nic.name
    if node not in {n for n, _ in interfaces(sc)}:
        raise CourseError("node", f"unknown node or pod {node!r}", ", ".join(sorted({n for n, _ in interfaces(sc)})))
    frames = apply_filter(capture(sc, node, iface, walk=w), flt)
    text = render(frames, Style.for_scenario(sc, **parse_flags(flags)))
    notes = []
    if sc.service_port.target_port != (sc.server.container_port or sc.service_port.target_port):
        notes.append(f"note: nginx listens on containerPort {sc.server.container_port}; a real pod would answer "
                     f"a SYN to port {sc.service_port.target_port} with a RST. The model follows the path only.")
    dis = tree(frames[min(frame, len(frames) - 1)]) if frames else "(no frame matches the filter)"
    return Views(sc, w, node, iface, frames, text or "(no packets)", hop_table(w, 0), dis, notes)


def hop_table(w, segment: int = 0) -> str:
    """One segment's path as a table: where, addresses, TTL, and what changed it.

    Taught in: 04-the-container, 06-the-whole-walk.
    """
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN
    rows = [("#", "where", "dir", "inner src -> dst", "TTL", "outer (VXLAN)", "decided by")]
    for o in w.path(segment):
        p = Ether(o.frame)
        outer = ""
        if p.haslayer(VXLAN):
            outer = f"{p[IP].src} -> {p[IP].dst} udp/{p[UDP].dport} vni {p[VXLAN].vni}"
            p = p[VXLAN].payload
        ip, tcp = p[IP], p[TCP]
        why = "; ".join(f"{d.stage}: {d.effect}" for d in o.decisions if d.effect != "matched") or "-"
        rows.append((str(o.hop + 1), f"{o.node} {o.iface}", o.direction, f"{ip.src}:{tcp.sport} -> {ip.dst}:{tcp.dport}",
                     str(ip.ttl), outer or "-", why))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(wd) for c, wd in zip(r[:-1], widths)) + "  " + r[-1] for r in rows)


# -- the stepper ------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    flow: str
    index: int                # 1-based within its flow
    observation: object
    previous: object          # the observation before it on the same path, or None


def steps(w, request: int = 0, reply: int | None = None) -> list[Step]:
    """The hops of one request segment and of its reply (the next server segment), in order."""
    if not 0 <= request < len(w.segments):
        raise CourseError("segment", f"no segment {request}", f"0-{len(w.segments) - 1}")
    req = w.path(request)
    if reply is None:
        reply = next((o.segment for o in sorted(w.observations, key=lambda o: o.segment)
                      if o.segment > request and o.flow != req[0].flow), None)
    out = []
    for path in (req, w.path(reply) if reply is not None else []):
        for i, o in enumerate(path):
            out.append(Step(o.flow, i + 1, o, path[i - 1] if i else None))
    return out


@dataclass
class StepView:
    title: str
    summary: str
    changes: list
    decisions: list
    layers: list
    tree: str

    def text(self) -> str:
        lines = [self.title, self.summary, "", "changed since the previous hop:"]
        lines += [f"  {c}" for c in self.changes] or ["  (nothing: the same bytes)"]
        lines += ["", "decided by:"]
        lines += [f"  [{d.stage}] {d.table}: {d.entry}\n      -> {d.effect}" for d in self.decisions] or ["  -"]
        return "\n".join(lines)


def step_view(st: Step, total: int | None = None) -> StepView:
    """What the stepper shows at one hop.

    Taught in: 06-the-whole-walk.
    """
    o = st.observation
    where = f"{o.node} {o.iface} ({'leaving' if o.direction == 'out' else 'arriving'})"
    title = f"{st.flow} hop {st.index}: {where}"
    from .tcpdump import Printer
    summary = Printer(n=2).frame(o.time_us, o.frame).split(" ", 1)[1]
    ch = changes(st.previous.frame, o.frame) if st.previous is not None else []
    layers = dissect(o.frame)
    return StepView(title, summary, [str(c) for c in ch], list(o.decisions), layers, tree(o.frame, layers=layers))
