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
import re
from dataclasses import dataclass, field
from functools import cached_property

from .bpf import apply_filter
from .capture import capture
from .datapath import walk as _walk
from .dissect import changes, dissect, tree
from .errors import CourseError
from .tcpdump import Style, parse_flags, render_lines

__all__ = ["field_label", "Knob", "knobs", "current", "options", "Control", "controls", "apply", "warnings", "unchanged_reason", "Views",
           "views", "Row", "packet_rows", "HopRow", "hop_rows", "hop_table", "Step", "steps", "step_view",
           "interfaces", "same_interface"]


@dataclass(frozen=True)
class Knob:
    """One thing a learner may change."""
    name: str
    label: str
    kind: str                       # "ip", "port", "int", "bool", "choice", "text"
    lo: int = 0
    hi: int = 0
    help: str = ""
    node_path: str = ""             # per-node knobs: the path under nodes.<name>


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
    Knob("pod_mtu", "pod MTU", "int", 576, 65535, "docker0 and every pod's eth0 on the node (Docker's --mtu)",
         "docker.mtu"),
    Knob("node_mtu", "node MTU", "int", 118, 65535, "enp4s0; flannel.1 gets 50 less", "nic.mtu"),
    Knob("masquerade", "Docker masquerade", "bool", help="Docker's -s <subnet> ! -o docker0 -j MASQUERADE",
         node_path="docker.ipMasq"),
    Knob("replicas", "replicas", "int", 1, 16),
    Knob("cold_caches", "cold caches", "bool", help="empty neighbour caches: the first packet waits for ARP"),
    # the traffic case (:class:`~coursekit.scenario.TrafficCase`): menus built from the scenario (:func:`options`)
    Knob("client", "client", "choice", help="who calls: a pod, a process on a node (the node's own network "
         "namespace) or a host on the underlay"),
    Knob("target", "target", "choice", help="what it calls: the Service by its cluster IP, a node's NodePort, "
         "the endpoint pod's own IP, or a host outside the cluster"),
    Knob("endpoint_node", "endpoint runs on", "choice", help="the node the Service's pods (its Deployment) run on"),
]
_BY_NAME = {k.name: k for k in _KNOBS}


def knobs(names=None) -> list[Knob]:
    """The knobs, all or the ``names`` given, in a stable order."""
    if names is None:
        return list(_KNOBS)
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise CourseError("knobs", f"{names!r} is not a list of knob names", ", ".join(_BY_NAME))
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise CourseError("knob", f"unknown knob {unknown[0]!r}", ", ".join(_BY_NAME))
    return [_BY_NAME[n] for n in names]


def _nodes(sc) -> list:
    """The nodes on the path in reading order: the client's, the NodePort's, the server's (``sc.case``)."""
    return [sc.node(name) for name in sc.case.nodes]


#: The nodePort a Service without one gets when the learner picks "NodePort" (assumed: the API
#: server would pick one at random from --service-node-port-range, 30000-32767 by default).
ASSUMED_NODE_PORT = 30080


def _service(sc):
    """The Service the case knobs use: the request's, else the first one that selects a pod (None: none does)."""
    if sc.request.service:
        return sc.service(sc.request.service)
    return next((s for s in sc.services if sc.endpoints(s)), None)


def _endpoint(sc):
    """The Service's endpoint that kube-proxy's pick chose (``observed.endpoint``), or None."""
    svc = _service(sc)
    if svc is None:
        return None
    eps = sc.endpoints(svc)
    return eps[min(sc.observed.endpoint, len(eps) - 1)] if eps else None


def _workload(sc, pod) -> str | None:
    """The Deployment a pod belongs to (its pods are ``<deployment>-<i>``), None for a pod of its own."""
    if pod is None or pod.name in (sc.raw.get("pods") or {}):
        return None
    return pod.name.rsplit("-", 1)[0]


def _target_value(sc) -> str:
    case, r = sc.case, sc.request
    if case.target == "nodeport":
        return f"nodeport:{r.node}"
    if case.target == "external-ip":
        return f"external:{sc.server.name}"
    return case.target                                     # "service", "pod-ip"


def options(sc, key: str) -> list[tuple[str, str]]:
    """The menu of a case knob (``client``, ``target``, ``endpoint_node``) over ``sc``: (label, value) pairs.

    Taught in: 08-network-model.
    """
    from .scenario import as_scenario
    sc = as_scenario(sc)
    if key == "client":
        return ([(f"{p.name} (pod on {p.node})", p.name) for p in sc.pods]
                + [(f"{n.name} (a process on the node)", n.name) for n in sc.nodes]
                + [(f"{x.name} (host {x.ip}, outside the cluster)", x.name) for x in sc.externals])
    if key == "target":
        out = []
        svc, ep = _service(sc), _endpoint(sc)
        if svc is not None:
            sp = sc.service_port if sc.case.via_service else svc.ports[0]
            out.append((f"Service {svc.name}: cluster IP {svc.cluster_ip}:{sp.port}", "service"))
            np = sp.node_port or ASSUMED_NODE_PORT
            out += [(f"NodePort on {n.name}: {n.nic.ip}:{np}" + ("" if sp.node_port else " (nodePort assumed)"),
                     f"nodeport:{n.name}") for n in sc.nodes]
        if sc.case.target == "pod-ip":
            out.append((f"pod IP of {sc.server.name}: {sc.server.ip}:{sc.request.port}", "pod-ip"))
        elif ep is not None:
            out.append((f"pod IP of {ep.name}: {ep.ip}:{sp.target_port}", "pod-ip"))
        out += [(f"{x.name}: {x.ip}:80 (a web server outside the cluster)", f"external:{x.name}") for x in sc.externals]
        return out
    if key == "endpoint_node":
        return [(f"{n.name} (pod subnet {n.subnet})", n.name) for n in sc.nodes] \
            if _workload(sc, _endpoint(sc)) is not None else []
    raise CourseError("knob", f"{key!r} has no menu", "client, target, endpoint_node")


def _node_value(n, k: Knob):
    return {"docker.mtu": n.docker.mtu, "nic.mtu": n.nic.mtu, "docker.ipMasq": n.docker.ip_masq}[k.node_path]


def current(sc) -> dict:
    """The knob values of a scenario, keyed by control (see :func:`controls`).

    A per-node knob (``pod_mtu``, ``node_mtu``, ``masquerade``) has one key per
    node, ``"pod_mtu.meizu"``, and the plain key only when every node agrees.
    """
    case = sc.case
    out = {"vni": sc.flannel.vni, "vxlan_port": sc.flannel.port, "cold_caches": sc.neighbour_caches == "cold"}
    # only the knobs this traffic case has: a node or an external host as client has no client pod IP,
    # a request to a pod IP no Service, an external server no node
    if case.client == "pod":
        out["client_ip"] = str(sc.client.ip)
    if case.client_node is not None:
        out["client_node_ip"] = str(sc.node(case.client_node).nic.ip)
    if case.server_node is not None and (case.server_node != case.client_node or "client_node_ip" not in out):
        out["server_node_ip"] = str(sc.node(case.server_node).nic.ip)
    out["client"], out["target"] = sc.request.client, _target_value(sc)
    if options(sc, "endpoint_node"):
        out["endpoint_node"] = _endpoint(sc).node
    if case.via_service:
        svc = sc.service(sc.request.service)
        out.update({"server_ip": str(sc.server.ip), "service_ip": str(svc.cluster_ip),
                    "service_port": sc.service_port.port, "target_port": sc.service_port.target_port,
                    "replicas": len(sc.endpoints(svc))})
    for k in _KNOBS:
        if k.node_path:
            vals = {n.name: _node_value(n, k) for n in _nodes(sc)}
            for name, val in vals.items():
                out[f"{k.name}.{name}"] = val
            if len(set(vals.values())) == 1:
                out[k.name] = next(iter(vals.values()))
    return out


@dataclass(frozen=True)
class Control:
    """One field of an explorer: a knob, for one node where the nodes differ."""
    key: str                 # the key :func:`apply` takes: "vni", "pod_mtu" or "pod_mtu.meizu"
    knob: Knob
    node: str | None         # the node a per-node field sets, None for both or for a global knob
    value: object            # the scenario's value
    options: tuple = ()      # a choice's menu, (label, value) pairs (:func:`options`)

    @property
    def label(self) -> str:
        from .i18n import tr_text
        return f"{tr_text(self.knob.label)} ({self.node})" if self.node else tr_text(self.knob.label)


def controls(sc, names=None) -> list[Control]:
    """The fields an explorer over ``sc`` shows for ``names``: per node where the nodes differ.

    The article's pods run at MTU 1500 on xiaomi and 1450 on meizu, so
    ``pod_mtu`` is two fields there; one field would have to show one node's
    value and apply it to both.

    Taught in: every chapter's explorer.
    """
    now = current(sc)
    out = []
    for k in knobs(names):
        if k.node_path and k.name not in now:
            out += [Control(f"{k.name}.{n.name}", k, n.name, now[f"{k.name}.{n.name}"]) for n in _nodes(sc)]
        elif k.name in now:                       # a knob this traffic case does not have is not shown
            out.append(Control(k.name, k, None, now[k.name],
                               tuple(options(sc, k.name)) if k.kind == "choice" else ()))
    return out


def _parse(k: Knob, value, label: str = ""):
    label = label or k.label
    if k.kind == "ip":
        text = str(value).strip()
        try:
            return ipaddress.IPv4Address(text)
        except ValueError:
            shown = text if len(text) <= 40 else text[:40] + "..."
            raise CourseError(label, f"{shown!r} is not an IPv4 address", "four numbers 0-255, like 10.0.0.1") \
                from None
    if k.kind in ("port", "int"):
        if isinstance(value, bool):
            raise CourseError(label, f"{value!r} is not a whole number", f"{k.lo}-{k.hi}")
        text = str(value).strip()
        if len(text) > 12 or not text.lstrip("+-").isdigit() or not text.isascii():
            shown = text if len(text) <= 20 else text[:20] + "..."
            raise CourseError(label, f"{shown!r} is not a whole number", f"{k.lo}-{k.hi}")
        v = int(text)
        if not k.lo <= v <= k.hi:
            raise CourseError(label, f"{v} is out of range", f"{k.lo}-{k.hi}")
        return v
    if k.kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off", ""):
            return False
        raise CourseError(label, f"{value!r} is not true or false", "true, false")
    if k.kind == "choice":
        if not isinstance(value, str):
            raise CourseError(label, f"{value!r} is not one of the choices", "a value from the menu")
        return value.strip()
    return value


def _split(key):
    """``"pod_mtu.meizu"`` -> (knob, "meizu"); ``"vni"`` -> (knob, None)."""
    if not isinstance(key, str):
        raise CourseError("knob", f"{key!r} is not a knob name", ", ".join(_BY_NAME))
    name, _, node = key.partition(".")
    k = _BY_NAME.get(name)
    if k is None or (node and not k.node_path):
        raise CourseError("knob", f"unknown knob {key!r}", ", ".join(_BY_NAME))
    return k, node or None


def apply(base, values: dict):
    """A new scenario with the knob ``values`` applied to ``base``; errors name the knob.

    Only values that differ from ``base`` are applied, so an untouched explorer
    shows exactly its chapter's scenario.  Keys are :func:`controls` keys:
    ``"pod_mtu"`` sets every node, ``"pod_mtu.meizu"`` one node.  The case
    knobs (``client``, ``target``, ``endpoint_node``; values from
    :func:`options`) apply first; every other field then applies to the new
    case, and a field showing the new case's own value counts as untouched.

    >>> sc = apply(ck.load_scenario("article"), {"vxlan_port": 4789})     # doctest: +SKIP

    Taught in: every chapter's explorer.
    """
    if not isinstance(values, dict):
        raise CourseError("values", f"{type(values).__name__} is not a mapping of knob to value",
                          "a dict like {'vni': 7}")
    now = current(base)
    # the case first (who calls what, where the endpoint runs): the other fields apply to the new case
    vcase = {}
    for key in _CASE_KNOBS:
        if key in values:
            k = _BY_NAME[key]
            if key not in now:
                raise CourseError(k.label, "this traffic case has no such field",
                                  ", ".join(c.key for c in controls(base)))
            parsed = _parse(k, values[key])
            menu = [val for _, val in options(base, key)]
            if parsed not in menu:
                shown = parsed if len(parsed) <= 40 else parsed[:40] + "..."
                raise CourseError(k.label, f"{shown!r} is not one of the choices", ", ".join(menu))
            if parsed != now[key]:
                vcase[key] = parsed
    sc = _apply_case(base, vcase) if vcase else base
    now_sc = current(sc) if vcase else now
    node_names = list(dict.fromkeys(n.name for n in _nodes(base) + _nodes(sc)))
    v = {}
    for key, value in values.items():
        k, node = _split(key)
        if key in _CASE_KNOBS:
            continue
        if node is not None and node not in node_names:
            raise CourseError("knob", f"unknown node {node!r} in {key!r}", ", ".join(node_names))
        label = f"{k.label} ({node})" if node else k.label
        if key not in now and key not in now_sc and not (k.node_path and node is None and node_names):
            raise CourseError(label, "this traffic case has no such field",
                              ", ".join(c.key for c in controls(base)))
        parsed = _parse(k, value, label)
        shown = str(parsed) if k.kind == "ip" else parsed
        if shown in [w for w in (now.get(key), now_sc.get(key)) if w is not None]:
            continue                              # untouched: the scenario's (or the new case's) own value stays
        if key not in now_sc and not (k.node_path and node is None):
            raise CourseError(label, "this traffic case has no such field",
                              ", ".join(c for c in now_sc if c in _BY_NAME or "." in c))
        v[key] = parsed
    now = now_sc
    node_names = [n.name for n in _nodes(sc)] + [n for n in node_names if n not in {m.name for m in _nodes(sc)}]
    cname, sname = sc.client.name, sc.request.service
    cn = sc.node(sc.client.node) if sc.client.node in node_names else None
    sn = sc.node(sc.server.node) if sc.server.node in node_names else None
    workload = sc.server.name.rsplit("-", 1)[0]
    ch: dict = {}
    owner: dict = {}           # scenario path -> control key, to name the field in an error

    def put(path, val, key):
        ch[path] = val
        owner[path] = key

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
    for k in _KNOBS:
        if not k.node_path:
            continue
        for name in node_names:
            key = f"{k.name}.{name}" if f"{k.name}.{name}" in v else k.name
            if key in v:
                put(f"nodes.{name}.{k.node_path}", v[key], key)
    if "cold_caches" in v:
        put("neighbourCaches", "cold" if v["cold_caches"] else "warm", "cold_caches")
    if "replicas" in v or "server_ip" in v:
        replicas = v.get("replicas", now["replicas"])
        first = v.get("server_ip", ipaddress.IPv4Address(now["server_ip"]))
        ip_key = "server_ip" if "server_ip" in v else "replicas"
        if int(first) + replicas - 1 > 0xFFFFFFFF:
            raise CourseError(_BY_NAME[ip_key].label, f"{replicas} replicas from {first} run past 255.255.255.255",
                              f"addresses inside {sn.name}'s pod subnet {sn.subnet}")
        ips = [str(first + i) for i in range(replicas)]
        put(f"workloads.{workload}.replicas", replicas, "replicas" if "replicas" in v else "server_ip")
        put(f"workloads.{workload}.podIPs", ips, ip_key)
    if not ch:
        return sc
    try:
        from .conversation import fit_observations
        return fit_observations(sc, ch)
    except CourseError as e:
        key = next((owner[p] for p in owner if e.field == p or e.field.startswith(p + ".")
                    or p.startswith(e.field + ".")), None)
        if key is None and e.field.startswith(f"workloads.{workload}.podIPs"):
            key = "server_ip" if "server_ip" in v else "replicas"
        if key is None:
            raise
        k, node = _split(key)
        raise CourseError(f"{k.label} ({node})" if node else k.label, e.problem, e.allowed) from None


_CASE_KNOBS = ("endpoint_node", "client", "target")


def _apply_case(base, v: dict):
    """``base`` with the case knobs in ``v`` applied: the workload moved, the request rewritten.

    The new case is another connection: the base's per-packet observations
    (times, the outer source port, TS lags) belong to the old one and are
    dropped; the clock is read at the server's interface, which every request
    that arrives crosses.
    """
    from .conversation import fit_observations
    r = base.request
    svc, ep = _service(base), _endpoint(base)
    client = v.get("client", r.client)
    target = v.get("target", _target_value(base))
    http = {"method": r.method, "path": r.path, "userAgent": r.user_agent}
    observed = {"observed.times": None, "observed.vxlanSourcePort": {}, "observed.tsLagTicks": {}}
    ch: dict = {}
    if svc is not None:
        sp = base.service_port if base.case.via_service else svc.ports[0]
    if "endpoint_node" in v:
        w = _workload(base, ep)
        ch[f"workloads.{w}.node"] = v["endpoint_node"]
        ch[f"workloads.{w}.podIPs"] = None            # Docker's IPAM on the new node's bridge
    if target.startswith("external:"):
        x = base.external(target.split(":", 1)[1])
        port = r.port if base.case.target == "external-ip" else 80
        request = {"client": client, "service": None, "ip": str(x.ip), "port": port, **http}
        server = (x.name, x.nic.name)
    elif target == "pod-ip" and base.case.target == "pod-ip" and "endpoint_node" not in v:
        request = {"client": client, "service": None, "ip": str(r.ip), "port": r.port, **http}
        server = (base.server.name, "eth0")
    else:
        request = {"client": client, "service": svc.name, "port": sp.port, **http}
        server = (ep.name, "eth0")
        if target.startswith("nodeport:"):
            request["node"] = target.split(":", 1)[1]
            if sp.node_port is None:
                ch[f"services.{svc.name}.ports.{svc.ports.index(sp)}.nodePort"] = ASSUMED_NODE_PORT
    if server[0] == client and (target == "pod-ip" or target.startswith("external:")):
        # connect() to one's own address is delivered through lo, which no capture here shows
        raise CourseError(_BY_NAME["target"].label, f"{client} would call its own address: the kernel delivers "
                          "that through lo and no interface of the model sees it",
                          "another client or another target")
    anchor = {"observed.anchor": {"node": server[0], "interface": server[1]}}
    owner = {"request.client": "client", "workloads": "endpoint_node", "services": "target", "request": "target"}
    try:
        sc = fit_observations(base, {**ch, "request": request, **observed, **anchor})
        if target == "pod-ip" and request.get("service"):
            # the endpoint's address, where it now runs, as Docker's IPAM gave it
            port = r.port if base.case.target == "pod-ip" else sp.target_port
            moved = next(p for p in sc.pods if p.name == ep.name)
            sc = fit_observations(sc, {"request": {"client": client, "service": None, "ip": str(moved.ip),
                                                   "port": port, **http}})
    except CourseError as e:
        key = next((owner[p] for p in owner if (e.field == p or e.field.startswith(p + ".")) and owner[p] in v),
                   next(k for k in _CASE_KNOBS if k in v))
        raise CourseError(_BY_NAME[key].label, e.problem, e.allowed) from None
    return sc


def warnings(sc) -> list[str]:
    """Consequences a learner should notice that no capture of this connection shows.

    Taught in: 01-physical-nic, 03-docker0 (the explorers' status line).
    """
    from .scenario import VXLAN_OVERHEAD
    out = []
    for n in _nodes(sc):
        room = n.nic.mtu - VXLAN_OVERHEAD
        if n.docker.mtu > room:
            out.append(f"{n.name}: pod MTU {n.docker.mtu} + {VXLAN_OVERHEAD} exceeds the node's MTU {n.nic.mtu}: "
                       f"packets over {room} bytes will not fit the overlay ({sc.flannel.device} MTU {room})")
    return out


# Why a knob may leave one interface's capture untouched.
_UNSEEN = {
    "node_mtu": "the node MTU sets enp4s0 and {dev} only; the SYNs' MSS come from the pod MTUs, which Docker's "
                "--mtu pinned, and no packet of this connection is larger than the smallest MTU on its path",
    "pod_mtu": "no packet of this connection is large enough to meet the MTU, and the MSS shows only in the SYNs "
               "(filtered out?)",
    "vni": "the VNI is only in the outer VXLAN header: capture on enp4s0 to see it",
    "vxlan_port": "the VXLAN port is only in the outer UDP header: capture on enp4s0 to see it",
    "client_node_ip": "node addresses are only in the outer headers: capture on enp4s0 to see them",
    "server_node_ip": "node addresses are only in the outer headers: capture on enp4s0 to see them",
    "masquerade": "Docker's MASQUERADE rewrites the source when the packet leaves through {dev}: the client pod's "
                  "side sees the packet before it, and the reply is un-NATed before it gets back there",
    "service_ip": "the Service address is DNATed away on the client's node: the server's side never sees it",
    "service_port": "the Service port is DNATed away on the client's node: the server's side never sees it",
    "cold_caches": "ARP stays on its own layer-2 segment: this interface has no neighbour to ask",
}


def unchanged_reason(before: "Views", after: "Views", changed: list) -> str:
    """One sentence saying why a recompute left this view as it was ("" if it changed).

    Taught in: every chapter's explorer.
    """
    if before.tcpdump != after.tcpdump or before.node != after.node or before.iface != after.iface:
        return ""
    same_bytes = [f.data for f in before.frames] == [f.data for f in after.frames]
    names = [_split(c)[0].name for c in changed]
    if not names:
        return "nothing to change: every field has the scenario's value"
    if not same_bytes:
        return ("tcpdump's lines read the same, but the bytes differ (checksums, TTLs or MACs it does not "
                "print with these flags): see the dissection, or add -v / -e")
    dev = after.scenario.flannel.device
    why = [_UNSEEN[n].format(dev=dev) for n in dict.fromkeys(names) if n in _UNSEEN]
    where = f"{after.node} {after.iface}"
    return (f"the capture on {where} is byte-identical: " + "; ".join(why)) if why else \
        f"the capture on {where} is byte-identical: none of the changed fields reaches it"


def interfaces(sc) -> list[tuple[str, str]]:
    """Every (node or pod, interface) where tcpdump can listen, in path order."""
    out = []
    for n in _nodes(sc):
        out += [(n.name, i) for i in sc.interfaces(n.name)]
    out += [(p.name, "eth0") for p in sc.pods if p.node in {n.name for n in _nodes(sc)}]
    return out


def same_interface(old, new, node: str, iface: str) -> tuple[str, str]:
    """The interface of ``new`` that plays the role ``(node, iface)`` played in ``old``.

    ``flannel.1`` becomes ``flannel.7`` after VNI 7; a pod or veth that is gone
    falls back to the server node's NIC.
    """
    menu = interfaces(new)
    if (node, iface) in menu:
        return node, iface
    if iface == old.flannel.device:
        return node, new.flannel.device
    for p in old.pods:
        if p.node == node and p.veth == iface:
            try:
                return node, new.pod(p.name).veth
            except CourseError:
                break
    nodes = _nodes(new)                     # the server's node, else the client's (an external server)
    sn = next((n for n in nodes if n.name == new.server.node), nodes[0] if nodes else None)
    return (sn.name, sn.nic.name) if sn is not None else menu[0]


@dataclass(frozen=True)
class Row:
    """One line of the packet list, as Wireshark's columns name it."""
    no: int                  # position in the whole capture, 1-based (a filter hides rows, never renumbers)
    time: str                # seconds since the capture's first packet
    source: str              # the innermost IP (or ARP) source: the pod's packet inside VXLAN
    destination: str
    protocol: str            # "TCP", "HTTP", "ARP"; "TCP in VXLAN" when encapsulated
    length: int              # bytes on the wire
    info: str                # ports and tcpdump's text after the addresses
    line: str                # tcpdump's own output for this packet, with the explorer's flags
    encapsulated: bool


_IP_LINE = re.compile(r"^IP (\d+\.\d+\.\d+\.\d+)(?:\.(\d+))? > (\d+\.\d+\.\d+\.\d+)(?:\.(\d+))?: (.*)$")


def packet_rows(all_frames, shown, lines: list[str], style=None) -> list[Row]:
    """The packet list of ``shown`` (a filtered subset of ``all_frames``) with tcpdump's ``lines``.

    Columns come from tcpdump's ``-nn`` reading of each frame (its innermost
    line: the pod's packet inside VXLAN), so the list and the text agree.
    ``style``: the :class:`~coursekit.tcpdump.Style` that printed ``lines``;
    when it is ``-nn`` alone, a line's text after the timestamp is that reading
    already, and the frame is not printed again.

    Taught in: every chapter's explorer.
    """
    from .tcpdump import Printer
    if len(lines) != len(shown):
        raise CourseError("lines", f"{len(lines)} lines for {len(shown)} frames", "one line per frame")
    index = {id(f): i for i, f in enumerate(all_frames)}
    t0 = all_frames[0].time_us if all_frames else 0
    printer = Printer(n=2)                   # tcpdump -nn over the same frames: same relative numbers
    # only the timestamp (the time zone) tells -nn's lines from Printer(n=2)'s
    plain = style is not None and (style.n, style.e, style.v, style.vxlan_style, style.local_time) == \
        (printer.style.n, printer.style.e, printer.style.v, printer.style.vxlan_style, printer.style.local_time)
    rows = []
    for f, line in zip(shown, lines):
        if plain and getattr(f, "linktype", 1) == 1:
            text = line.split(" ", 1)[1]
        else:
            text = printer.frame(f.time_us, f.data, f.wire_len).split(" ", 1)[1]
        parts = text.split("\n")
        inner = parts[-1].strip()
        encapsulated = len(parts) > 1 and parts[0].startswith("IP ") and inner.startswith(("IP ", "ARP"))
        src = dst = ""
        info, proto = inner, inner.split(",", 1)[0].split(" ", 1)[0]
        m = _IP_LINE.match(inner)
        if m:
            src, sport, dst, dport, rest = m.groups()
            proto = "HTTP" if ": HTTP" in rest else ("TCP" if rest.startswith("Flags") else
                                                      ("UDP" if rest.startswith("UDP") else "IPv4"))
            info = (f"{sport} \u2192 {dport} " if sport and dport else "") + rest
        else:
            if inner.startswith("ARP, "):
                proto, info = "ARP", inner[len("ARP, "):]
                start = 14 + (50 if encapsulated else 0)               # the (innermost) ARP body
                arp = f.data[start:start + 28]
                if len(arp) == 28:
                    src, dst = str(ipaddress.IPv4Address(arp[14:18])), str(ipaddress.IPv4Address(arp[24:28]))
        no = index.get(id(f), -1) + 1
        rows.append(Row(no, f"{(f.time_us - t0) / 1e6:.6f}", src, dst, proto + (" in VXLAN" if encapsulated else ""),
                        f.wire_len, info, line, encapsulated))
    return rows


@dataclass
class Views:
    """Everything an explorer shows, recomputed from one scenario."""
    scenario: object
    walk: object
    node: str
    iface: str
    frames: list             # the frames the filter lets through
    tcpdump: str             # tcpdump's text, byte for byte
    dissection: str          # the selected packet as a text tree
    notes: list = field(default_factory=list)
    rows: list = field(default_factory=list)          # the packet list (:class:`Row`)
    selected: int = 0        # the dissected packet's No. (0: none)
    layers: list = field(default_factory=list)        # its :func:`~coursekit.dissect.dissect` layers
    warnings: list = field(default_factory=list)      # consequences no capture shows (:func:`warnings`)

    @cached_property
    def hops(self) -> str:
        """The request's first segment as a text table (:func:`hop_table`), computed when asked for."""
        return hop_table(self.walk, 0)

    @property
    def frame(self):
        """The selected (dissected) frame, or None."""
        return next((f for f, r in zip(self.frames, self.rows) if r.no == self.selected), None)


def views(sc, node: str | None = None, iface: str | None = None, flt: str = "", flags: str = "-nn",
          frame: int | None = None, walk=None) -> Views:
    """Recompute the packet list, tcpdump text, hop table and dissection for one interface.

    ``frame`` is the No. of the packet to dissect (as in the packet list);
    default: the first one shown.  ``walk`` is ``walk(sc)`` when the caller
    already has it.

    Taught in: every chapter's explorer.
    """
    for name, val in (("node", node), ("interface", iface), ("filter", flt), ("flags", flags)):
        if val is not None and not isinstance(val, str):
            raise CourseError(name, f"{val!r} is not text", "a string")
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int)):
        raise CourseError("packet", f"{frame!r} is not a packet number", "a whole number from the packet list")
    menu = interfaces(sc)
    if not node:                   # the server's node; an external server: the last node on the path
        nodes = _nodes(sc)
        node = sc.server.node if any(n.name == sc.server.node for n in nodes) else \
            (nodes[-1].name if nodes else menu[0][0])
    where = sorted({n for n, _ in menu})
    if node not in where:
        raise CourseError("node", f"unknown node or pod {node!r}", ", ".join(where))
    on_node = [i for n, i in menu if n == node]
    iface = iface or (sc.node(node).nic.name if node in {n.name for n in sc.nodes} else on_node[0])
    if iface not in on_node:
        raise CourseError("interface", f"unknown interface {iface!r} on {node}", ", ".join(on_node))
    w = walk if walk is not None else _walk(sc)
    everything = capture(sc, node, iface, walk=w)
    frames = apply_filter(everything, flt)
    style = Style.for_scenario(sc, **parse_flags(flags))
    lines = render_lines(frames, style)
    text = "".join(line + "\n" for line in lines)
    rows = packet_rows(everything, frames, lines, style)
    notes = []
    if sc.case.via_service and sc.service_port.target_port != (sc.server.container_port or sc.service_port.target_port):
        notes.append(f"note: nginx listens on containerPort {sc.server.container_port}; a real pod would answer "
                     f"a SYN to port {sc.service_port.target_port} with a RST. The model follows the path only.")
    for d in w.drops[:2]:                 # a drop is an outcome: say where the packet ended and why
        notes.append(f"the kernel drops the {d.flow}'s segment {d.segment} at {d.node} {d.iface}: {d.reason}")
    selected, layers, dis = 0, [], "(no frame matches the filter)"
    if rows:
        nos = [r.no for r in rows]
        if frame is None or frame == 0:
            frame = nos[0]
        if frame not in nos:
            shown = f"{nos[0]}-{nos[-1]}" if nos == list(range(nos[0], nos[-1] + 1)) else ", ".join(map(str, nos))
            raise CourseError("packet", f"packet {frame} is not in the list", shown)
        selected = frame
        f = frames[nos.index(frame)]
        layers = dissect(f)
        dis = tree(f, layers=layers)
    return Views(sc, w, node, iface, frames, text or "(no packets)", dis, notes, rows, selected, layers,
                 warnings(sc))


def hop_table(w, segment: int = 0) -> str:
    """One segment's path as a table: where, addresses, TTL, and what changed it.

    Taught in: 04-the-container, 06-the-whole-walk.
    """
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.vxlan import VXLAN

    from .vxlan import decode
    segment = w.segment(segment)                    # a label ("SYN") or an index; refused with the allowed
    rows = [("#", "where", "dir", "inner src -> dst", "TTL", "outer (VXLAN)", "decided by")]
    verdicts = _forward_verdicts(w)
    for o in w.path(segment):
        p = decode(o.frame, getattr(o, "vxlan_port", None))         # VXLAN by the scenario's port
        outer = ""
        if p.haslayer(VXLAN):
            outer = f"{p[IP].src} -> {p[IP].dst} udp/{p[UDP].dport} vni {p[VXLAN].vni}"
            p = p[VXLAN].payload
        ip, tcp = p[IP], p[TCP]
        why = []
        for d in o.decisions:
            if d.effect != "matched":
                why.append(f"{d.stage}: {d.effect}")
            if d.stage == "ttl" and verdicts.get(o.node, (None,))[0] == segment:
                v = verdicts[o.node][1]
                why.append(f"filter FORWARD: {v.verdict} by {v.trace[-1]}")
        why = "; ".join(why) or "-"
        rows.append((str(o.hop + 1), f"{o.node} {o.iface}", o.direction, f"{ip.src}:{tcp.sport} -> {ip.dst}:{tcp.dport}",
                     str(ip.ttl), outer or "-", why))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    text = "\n".join("  ".join(c.ljust(wd) for c, wd in zip(r[:-1], widths)) + "  " + r[-1] for r in rows)
    if len(rows) == 1:                              # not one hop: say where and why it ended
        why = next((f"{d.node}: {d.reason}" for d in w.drops if d.segment == segment), "nothing was sent")
        text += f"\n(no hop: the segment never left its socket -- {why})"
    return text


def _forward_verdicts(w) -> dict:
    """node -> (segment, FilterVerdict): the filter table's FORWARD verdict for the first packet the node
    forwarded (the walk records that packet's; later ones pass by conntrack's ESTABLISHED rules)."""
    out: dict = {}
    traces = getattr(w, "filter_traces", {}) or {}
    for o in sorted(w.observations, key=lambda o: o.segment):
        v = traces.get((o.node, "FORWARD"))
        if v is not None and o.node not in out and any(d.stage == "ttl" for d in o.decisions):
            out[o.node] = (o.segment, v)
    return out


@dataclass(frozen=True)
class HopRow:
    """One hop of a segment's path: the fields that matter, which of them changed, and why."""
    hop: int                 # 1-based
    node: str
    iface: str
    direction: str           # "in" / "out"
    cells: dict              # column -> value (see HOP_COLUMNS)
    changed: frozenset       # columns that differ from the previous hop
    decisions: tuple         # the datapath Decisions at this hop


HOP_COLUMNS = ("src MAC", "dst MAC", "source", "destination", "TTL", "length", "encapsulation")


def _hop_cells(obs) -> dict:
    """The columns of one hop, read from the frame's bytes at the offsets :func:`dissect` found."""
    layers = {ly.key: ly.offset for ly in dissect(obs)}        # VXLAN decoded by the walk's port
    frame = obs.frame

    def mac(off):
        return ":".join(f"{b:02x}" for b in frame[off:off + 6])

    def ip(off):
        return str(ipaddress.IPv4Address(frame[off:off + 4]))

    def u16(off):
        return int.from_bytes(frame[off:off + 2], "big")

    cells = dict.fromkeys(HOP_COLUMNS, "-")
    cells["length"] = str(len(frame))
    if "Ethernet" in layers:
        e = layers["Ethernet"]
        cells["src MAC"], cells["dst MAC"] = mac(e + 6), mac(e)
    if "IPv4" in layers:
        i = layers["IPv4"]
        ports = ("", "")
        if "TCP" in layers or "UDP" in layers:
            t = layers.get("TCP", layers.get("UDP"))
            ports = (f":{u16(t)}", f":{u16(t + 2)}")
        cells["source"], cells["destination"] = ip(i + 12) + ports[0], ip(i + 16) + ports[1]
        cells["TTL"] = str(frame[i + 8])
    if "VXLAN" in layers:
        o, u, v, e = layers["outer IPv4"], layers["outer UDP"], layers["VXLAN"], layers["outer Ethernet"]
        cells["encapsulation"] = (f"VXLAN VNI {int.from_bytes(frame[v + 4:v + 7], 'big')}: {ip(o + 12)}:{u16(u)} "
                                  f"\u2192 {ip(o + 16)}:{u16(u + 2)}, TTL {frame[o + 8]}, "
                                  f"MACs {mac(e + 6)} \u2192 {mac(e)}")
    return cells


def hop_rows(w, segment: int = 0) -> list[HopRow]:
    """One segment's path as rows of the fields that matter; ``changed`` marks what the hop rewrote.

    Taught in: every chapter's explorer (the hops tab), 06-the-whole-walk.
    """
    segment = w.segment(segment)
    rows, prev = [], None
    for o in w.path(segment):
        cells = _hop_cells(o)
        changed = frozenset(c for c in HOP_COLUMNS if prev is not None and prev[c] != cells[c])
        rows.append(HopRow(o.hop + 1, o.node, o.iface, o.direction, cells, changed, tuple(o.decisions)))
        prev = cells
    return rows


# -- the stepper ------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    flow: str
    index: int                # 1-based within its flow
    observation: object
    previous: object          # the observation before it on the same path, or None
    scenario: object = None   # the walk's scenario (for provenance labels)


def steps(w, request: int = 0, reply: int | None = None) -> list[Step]:
    """The hops of one request segment and of its reply (the next server segment), in order."""
    request = w.segment(request)                    # a label ("SYN") or an index
    if reply is not None:
        try:
            reply = w.segment(reply)
        except CourseError as e:
            raise CourseError("reply", e.problem, e.allowed) from None
    req = w.path(request)
    if reply is None:
        reply = next((o.segment for o in sorted(w.observations, key=lambda o: o.segment)
                      if o.segment > request and o.flow != req[0].flow), None)
    out = []
    for path in (req, w.path(reply) if reply is not None else []):
        for i, o in enumerate(path):
            out.append(Step(o.flow, i + 1, o, path[i - 1] if i else None, w.scenario))
    return out


@dataclass
class StepView:
    title: str
    summary: str
    changes: list            # what changed since the previous hop; checksum updates last
    decisions: list
    layers: list
    tree: str
    minor: frozenset = frozenset()   # the entries of ``changes`` that only follow others (checksums)
    where: tuple = ()                # (node or pod, interface) of this hop, for the map
    labels: dict = field(default_factory=dict)   # change -> computed/observed/assumed, where known

    def text(self) -> str:
        lines = [self.title, self.summary, "", "changed since the previous hop:"]
        lines += [f"  {c}" for c in self.changes] or ["  (nothing: the same bytes)"]
        lines += ["", "decided by:"]
        lines += [f"  [{d.stage}] {d.table}: {d.entry}\n      -> {d.effect}" for d in self.decisions] or ["  -"]
        return "\n".join(lines)


def field_label(layer: str, name: str, scenario=None, observation=None) -> str:
    """"computed", "observed" or "assumed" for a field of a frame at a hop ("" where unknown).

    Asks :mod:`coursekit.provenance` where it exists.

    Taught in: 06-the-whole-walk (the stepper and the dissection show it).
    """
    try:
        from . import provenance
    except ImportError:
        return ""
    try:
        return provenance.of_field(layer, name, scenario, observation).label
    except CourseError:
        return ""


def step_view(st: Step, total: int | None = None) -> StepView:
    """What the stepper shows at one hop.

    Taught in: 06-the-whole-walk.
    """
    o = st.observation
    where = f"{o.node} {o.iface} ({'leaving' if o.direction == 'out' else 'arriving'})"
    title = f"{st.flow} hop {st.index}: {where}"
    from .tcpdump import Printer
    summary = Printer(n=2).frame(o.time_us, o.frame).split(" ", 1)[1]
    ch = changes(st.previous, o) if st.previous is not None else []
    # A checksum changes because another field did: list it last, as a consequence.
    ch = sorted(ch, key=lambda c: c.field == "chksum")
    minor = frozenset(str(c) for c in ch if c.field == "chksum")
    layers = dissect(o)
    sc = st.scenario
    labels = {str(c): lab for c in ch if c.field and (lab := field_label(c.layer, c.field, sc, o))}
    return StepView(title, summary, [str(c) for c in ch], list(o.decisions), layers, tree(o.frame, layers=layers),
                    minor, (o.node, o.iface), labels)
