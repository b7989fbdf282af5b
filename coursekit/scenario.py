"""The cluster as data: nodes, flannel, Docker, kube-proxy, workloads, request.

A scenario is a YAML file under ``data/scenarios/``.  It may ``extends:``
another scenario file (a deep merge: mappings merge key by key; an empty
mapping, a list or a scalar replaces what the parent had).  Workloads come from real Kubernetes manifests
(``manifests:``), parsed here, never restated.

Every key, its default and its meaning is documented in
``docs/scenario-format.md``.  Two kinds of value live in a scenario:

* **configuration** -- addresses, subnets, MTUs, VNI, port, masquerade flags:
  what an administrator chose;
* **observations** (``observed:``) -- what the kernel chose at random or what
  the clock said: the client's port, the ISNs, the TCP timestamp clocks, the
  packet times, the advertised windows, the outer UDP source port.  They are
  inputs, labelled as such, with deterministic defaults so that a fresh
  scenario still looks like Linux.

Everything else a capture shows (NAT'd addresses, TTLs, lengths, sequence
numbers, checksums, outer headers) is *computed* by the datapath.  Which
inputs the article actually printed (**observed**) and which are plausible
stand-ins (**assumed**) is the file's ``provenance:`` section
(:mod:`coursekit.provenance`).

The document's shape is checked in one place before any field is read
(:mod:`coursekit.schema`); :func:`scenario_from_dict` then checks the values,
refusing what a real node, Kubernetes or HTTP would refuse, with the reason.
Every public function that takes a scenario goes through :func:`as_scenario`.

Naming scheme (as on real nodes): the physical NIC is ``enp4s0``, the VTEP is
``flannel.<VNI>``, the bridge is ``docker0``, a pod's host-side veth is
``veth`` + 7 hex digits, and the pod's side is ``eth0``.

Taught in: 00-the-scenario.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import os
import re
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CourseError, public
from .provenance import parse_entries
from .schema import check_manifest_shape, check_scenario_shape, known_path, read_text, read_yaml, suggest
from .vxlan import VXLAN_HEADROOM

__all__ = [
    "Scenario", "Node", "Nic", "Docker", "Flannel", "KubeProxy", "Pod",
    "Service", "ServicePort", "Request", "Observed", "Timing", "ExternalHost", "HostClient", "TrafficCase",
    "load_scenario", "default_scenario", "scenario_from_dict", "raw_scenario", "as_scenario",
    "data_dir", "docker_mac", "VXLAN_OVERHEAD",
]

#: What the overlay's MTU loses to VXLAN: outer IPv4 20 + UDP 8 + VXLAN 8 + inner
#: Ethernet 14 (the kernel's ``VXLAN_HEADROOM``, flannel's ``encapOverhead``);
#: flannel.1's MTU is the NIC's minus this.  The bytes a frame grows by on the
#: wire are another sum that is also 50 here (see :func:`coursekit.vxlan.encapsulation`).
VXLAN_OVERHEAD = VXLAN_HEADROOM

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")


def data_dir() -> Path:
    """The course's ``data/`` folder (beside the ``coursekit`` package)."""
    return Path(__file__).resolve().parent.parent / "data"


# --------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Nic:
    """The node's physical NIC (``enp4s0``) on the underlay."""
    name: str
    ip: ipaddress.IPv4Address
    network: ipaddress.IPv4Network
    mac: str
    mtu: int


@dataclass(frozen=True)
class Docker:
    """docker0, set up from flannel's subnet.env by ``mk-docker-opts.sh``."""
    bridge_ip: ipaddress.IPv4Address      # --bip = FLANNEL_SUBNET (lease .1)
    mtu: int                               # --mtu (pods inherit it)
    ip_masq: bool                          # --ip-masq (Docker's MASQUERADE rule)
    bridge_mac: str


@dataclass(frozen=True)
class Node:
    """A Kubernetes node: NIC, flannel lease, VTEP and docker0."""
    name: str
    hostname: str
    nic: Nic
    subnet: ipaddress.IPv4Network          # flannel lease
    vtep_mac: str                          # flannel.<VNI>'s MAC (published in etcd)
    docker: Docker
    default_ttl: int                       # net.ipv4.ip_default_ttl
    ephemeral_ports: tuple[int, int]       # net.ipv4.ip_local_port_range
    # br_netfilter loaded and net.bridge.bridge-nf-call-iptables = 1 (what Kubernetes
    # nodes run with): iptables sees bridged frames, so DNAT happens inside docker0
    br_netfilter: bool = True
    default_route: bool = True             # "default via <underlay .1>" (defaultRoute: false removes it)
    hairpin_mode: bool = True              # pods' veth ports in hairpin mode (assumed: set by hand on this cluster)

    @property
    def vtep_ip(self) -> ipaddress.IPv4Address:
        """flannel.<VNI>'s address: the lease's network address, as a /32."""
        return self.subnet.network_address


@dataclass(frozen=True)
class Flannel:
    network: ipaddress.IPv4Network
    subnet_len: int
    backend: str
    vni: int
    port: int
    ip_masq: bool
    udp_checksum: bool                     # kernel >= 4.6 computes the outer UDP checksum
    version: str

    @property
    def device(self) -> str:
        return f"flannel.{self.vni}"


@dataclass(frozen=True)
class KubeProxy:
    mode: str
    masquerade_all: bool
    cluster_cidr: ipaddress.IPv4Network | None
    masquerade_bit: int
    version: str


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    node: str
    ip: ipaddress.IPv4Address
    mac: str
    mtu: int
    veth: str                               # host-side veth name
    veth_mac: str
    labels: tuple[tuple[str, str], ...]
    container_port: int | None = None
    path: str = ""                          # where the scenario file sets this pod (pods.x, workloads.w.pods.1, dns.server)


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    target_port: int
    protocol: str
    node_port: int | None = None            # type NodePort: the port every node opens


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    cluster_ip: ipaddress.IPv4Address
    ports: tuple[ServicePort, ...]
    selector: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Request:
    client: str                             # pod name
    service: str                            # "" when the request targets an address (ip)
    port: int
    method: str
    path: str
    user_agent: str
    ip: ipaddress.IPv4Address | None = None  # a pod's or an external host's address instead of a Service
    node: str | None = None                 # call the Service's nodePort on this node's address


@dataclass(frozen=True)
class HostClient:
    """A process in a node's own network namespace (``request.client: <node>``).

    Its address and MTU come from the route to the target at connect time
    (``ip_route_connect``: the route's ``src``, else the first address of its
    device); ``ip`` is None when the node has no route there.
    """
    name: str                              # the node's name
    node: str
    ip: ipaddress.IPv4Address | None
    mac: str
    mtu: int
    dev: str | None


@dataclass(frozen=True)
class ExternalHost:
    """A host outside the cluster, on the underlay (``externalHosts:``), with a web server."""
    name: str
    nic: Nic

    @property
    def ip(self) -> ipaddress.IPv4Address:
        return self.nic.ip

    @property
    def mac(self) -> str:
        return self.nic.mac

    @property
    def mtu(self) -> int:
        return self.nic.mtu

    @property
    def node(self) -> str:
        """A host is its own machine (not a Kubernetes node)."""
        return self.name


@dataclass(frozen=True)
class TrafficCase:
    """The shape of a scenario's request: who calls, what it calls, and the nodes in between.

    One description shared by everything that depends on the case (the
    explorer's fields, the pictures' node order), read from ``request:``.

    Taught in: 08-network-model.
    """
    client: str                  # "pod", "node" (a process in the node's own namespace), "external" (underlay host)
    target: str                  # "service" (its cluster IP), "nodeport", "pod-ip", "external-ip"
    client_node: str | None      # the node the client runs on (None: an external host)
    entry_node: str | None       # the node whose address a NodePort request calls (None otherwise)
    server_node: str | None      # the node the server runs on (None: an external host)
    nodes: tuple[str, ...]       # the nodes on the path, in reading order: the client's, the NodePort's, the server's

    CLIENTS = ("pod", "node", "external")
    TARGETS = ("service", "nodeport", "pod-ip", "external-ip")

    @property
    def via_service(self) -> bool:
        """The request goes through a Service (kube-proxy's DNAT picks the server)."""
        return self.target in ("service", "nodeport")


@dataclass(frozen=True)
class Observed:
    """Values the kernel or the clock chose: inputs, not computed."""
    client_port: int
    client_isn: int
    server_isn: int
    client_ts_offset_us: int                # TS val = (t_us + offset) // 1000
    server_ts_offset_us: int
    start_us: int                           # time of the client's SYN at the anchor
    times_us: tuple[int, ...] | None        # per-packet time at the anchor
    anchor: tuple[str, str]                 # (node, interface) the times refer to
    windows: tuple[int, ...] | None         # per-packet raw window field
    wscale: tuple[int, int]                 # (client, server) window scale their kernels chose
    endpoint: int                           # which endpoint kube-proxy's random pick chose
    vxlan_sport: dict                       # {node name: outer UDP source port}
    flow_hash_seed: int                     # the kernel's boot-time hash seed
    ip_id: dict                             # {"client"|"server"|node name: first IP id}
    nginx_mtime: int                        # index.html's mtime (Last-Modified, ETag)
    ts_lag_ticks: dict = field(default_factory=dict)  # {segment index: ticks the TS clock lagged}


@dataclass(frozen=True)
class Timing:
    """Microseconds a packet spends per hop (inputs; defaults look like a LAN)."""
    veth_us: int
    bridge_us: int
    forward_us: int
    encap_us: int
    wire_us: int
    decap_us: int
    process_us: int                         # an endpoint's reaction time
    arp_us: int = 10                        # from an ARP request's arrival to its reply


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    utc_offset_minutes: int
    flannel: Flannel
    service_cidr: ipaddress.IPv4Network
    kube_proxy: KubeProxy
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]
    services: tuple[Service, ...]
    request: Request
    observed: Observed
    timing: Timing
    host_names: tuple[tuple[str, str], ...]          # (ip, name): the capturing host's hosts file
    service_names: tuple[tuple[int, str, str], ...]  # (port, proto, name): its services database
    # "warm": every neighbour cache and bridge FDB already knows its peers (the article's
    # captures); "cold": the first packet waits for ARP on each layer-2 segment
    neighbour_caches: str = "warm"
    externals: tuple[ExternalHost, ...] = ()         # hosts outside the cluster, on the underlay
    # ((scenario path, "computed"|"observed"|"assumed", why), ...): coursekit.provenance
    provenance: tuple = ()
    source: str = ""
    fault: object = None                             # coursekit.faults.FaultSpec: the one broken thing (fault:)
    raw: dict = field(default_factory=dict, compare=False, repr=False)
    dns: Any = None                                  # coursekit.dns.DnsConfig: resolve a name first (case 6)

    # --- look-ups -------------------------------------------------------
    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise CourseError("node", f"unknown node {name!r}",
                          ", ".join(n.name for n in self.nodes))

    def pod(self, name: str) -> Pod:
        for p in self.pods:
            if p.name == name:
                return p
        raise CourseError("pod", f"unknown pod {name!r}",
                          ", ".join(p.name for p in self.pods))

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise CourseError("service", f"unknown service {name!r}",
                          ", ".join(s.name for s in self.services))

    def pods_on(self, node: str) -> list[Pod]:
        return [p for p in self.pods if p.node == node]

    def endpoints(self, service: Service) -> list[Pod]:
        """Ready pods selected by the Service, in kube-proxy's order (by IP)."""
        sel = set(service.selector)
        eps = [p for p in self.pods if sel and sel <= set(p.labels)]
        return sorted(eps, key=lambda p: str(p.ip))

    @property
    def client(self) -> "Pod | HostClient":
        """Who calls: a pod, or a process on a node (then its source address comes from the route)."""
        if any(n.name == self.request.client for n in self.nodes):
            from .routing import interface_address, lookup
            n = self.node(self.request.client)
            r = lookup(self, n.name, self.target_ip)
            if r is None:
                return HostClient(n.name, n.name, None, n.nic.mac, n.nic.mtu, None)
            return HostClient(n.name, n.name, r.src or interface_address(self, n.name, r.dev),
                              n.nic.mac, self.mtu_of(n.name, r.dev), r.dev)
        x = self.external(self.request.client)
        return x if x is not None else self.pod(self.request.client)

    @property
    def server(self) -> "Pod | ExternalHost":
        """Who answers: the Service's chosen endpoint, or whoever owns ``request.ip``."""
        if self.request.ip is not None:
            return next(x for x in self.pods + self.externals if x.ip == self.request.ip)
        svc = self.service(self.request.service)
        return self.endpoints(svc)[self.observed.endpoint]

    @property
    def target_ip(self) -> ipaddress.IPv4Address:
        """The address the client connects to: the Service's cluster IP, a node's (NodePort) or ``request.ip``."""
        if self.request.ip is not None:
            return self.request.ip
        if self.request.node is not None:
            return self.node(self.request.node).nic.ip
        return self.service(self.request.service).cluster_ip

    @property
    def target_dport(self) -> int:
        """The port the client connects to: ``request.port``, or the Service port's nodePort."""
        if self.request.node is not None:
            return self.service_port.node_port
        return self.request.port

    @property
    def target_port(self) -> int:
        """The port the server listens on: the Service port's targetPort or ``request.port``."""
        return self.request.port if self.request.ip is not None else self.service_port.target_port

    @property
    def case(self) -> TrafficCase:
        """Who calls, what it calls and the nodes on the way (:class:`TrafficCase`), from ``request:``."""
        nodes = {n.name for n in self.nodes}
        r = self.request
        pod = next((p for p in self.pods if p.name == r.client), None)
        client = "node" if r.client in nodes else ("pod" if pod is not None else "external")
        client_node = r.client if client == "node" else (pod.node if pod is not None else None)
        if r.ip is not None:
            owner = next((p for p in self.pods if p.ip == r.ip), None)
            target, server_node = ("pod-ip", owner.node) if owner is not None else ("external-ip", None)
        else:
            target = "nodeport" if r.node is not None else "service"
            server_node = self.server.node
        path: list[str] = []
        for name in (client_node, r.node, server_node):
            if name in nodes and name not in path:
                path.append(name)
        return TrafficCase(client, target, client_node, r.node, server_node, tuple(path))

    def external(self, name: str) -> ExternalHost | None:
        return next((x for x in self.externals if x.name == name), None)

    @property
    def service_port(self) -> ServicePort:
        if self.request.ip is not None:
            raise CourseError("request.service", f"the request goes to {self.request.ip}, not to a Service",
                              "request.service instead of request.ip")
        svc = self.service(self.request.service)
        for sp in svc.ports:
            if sp.port == self.request.port:
                return sp
        raise CourseError("request.port", f"service {svc.name} has no port {self.request.port}",
                          ", ".join(str(p.port) for p in svc.ports))

    def check_interface(self, node: Any, iface: Any) -> None:
        """Raise :class:`CourseError` unless ``iface`` is an interface of ``node`` (a node or a pod)."""
        self.interfaces(node)
        if not isinstance(iface, str) or iface not in self.interfaces(node):
            raise CourseError("interface", f"unknown interface {iface!r} on {node}",
                              ", ".join(self.interfaces(node)))

    def interfaces(self, node: str) -> list[str]:
        """Interfaces tcpdump can listen on, on a node or inside a pod."""
        if not isinstance(node, str) or (node not in {n.name for n in self.nodes}
                                         and node not in {p.name for p in self.pods}
                                         and self.external(node) is None):
            raise CourseError("node", f"unknown node or pod {node!r}",
                              ", ".join([n.name for n in self.nodes] + [p.name for p in self.pods]
                                        + [x.name for x in self.externals]))
        for p in self.pods:
            if p.name == node:
                return ["eth0"]
        x = self.external(node)
        if x is not None:
            return [x.nic.name]
        return [self.node(node).nic.name, self.flannel.device, "docker0"] + \
            [p.veth for p in self.pods_on(node)]

    def mtu_of(self, node: str, iface: str) -> int:
        """The MTU of an interface, as ``ip link`` would show it."""
        for p in self.pods:
            if p.name == node:
                return p.mtu
        x = self.external(node)
        if x is not None:
            return x.nic.mtu
        n = self.node(node)
        if iface == n.nic.name:
            return n.nic.mtu
        if iface == self.flannel.device:
            return n.nic.mtu - VXLAN_OVERHEAD
        if iface == "docker0":
            return n.docker.mtu
        for p in self.pods_on(node):
            if p.veth == iface:
                return p.mtu
        raise CourseError("interface", f"unknown interface {iface!r} on {node}",
                          ", ".join(self.interfaces(node)))

    def with_changes(self, changes: dict) -> "Scenario":
        """A new, validated scenario with ``{"dotted.path": value}`` applied."""
        if not isinstance(changes, dict):
            raise CourseError("changes", f"a value of type {type(changes).__name__} is not a mapping",
                              '{"dotted.path": value}, e.g. {"flannel.vni": 2}')
        raw = copy.deepcopy(self.raw)
        for path, value in changes.items():
            _set_path(raw, path, value)
            _relabel(raw, path)
        return scenario_from_dict(raw, source=self.source)


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------

def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and v and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _set_path(raw: dict, path: str, value: Any) -> None:
    """Apply one ``{"dotted.path": value}`` override; the path must be one the format knows."""
    known_path(path)
    keys = path.split(".")
    d: Any = raw
    for i, k in enumerate(keys[:-1]):
        if isinstance(d, list):
            if not k.isdigit() or int(k) >= len(d):
                raise CourseError(".".join(keys[:i + 1]), f"no item {k} in a list of {len(d)}",
                                  f"0-{len(d) - 1}" if d else "(the list is empty)")
            d = d[int(k)]
            continue
        if k not in d and k.isdigit() and int(k) in d:     # YAML gave an index key as a number
            k = int(k)
        if d.get(k) is None:
            d[k] = {}
        d = d[k]
        if not isinstance(d, (dict, list)):
            raise CourseError(".".join(keys[:i + 1]), f"is the single value {d!r}; it has no {keys[i + 1]!r}",
                              "a path to a value, e.g. " + ".".join(keys[:i + 1]))
    last: Any = keys[-1]
    if isinstance(d, dict) and last not in d and last.isdigit() and int(last) in d:
        last = int(last)
    if isinstance(d, list):
        if not str(last).isdigit() or int(last) >= len(d):
            raise CourseError(path, f"no item {last} in a list of {len(d)}", f"0-{len(d) - 1}" if d else "(empty)")
        d[int(last)] = value
    else:
        d[last] = value


def _relabel(raw: dict, path: str) -> None:
    """An override replaces a value: its old provenance no longer holds (the value is now a stand-in)."""
    prov = raw.get("provenance")
    if path == "provenance" or path.startswith("provenance.") or not isinstance(prov, dict) or not prov:
        return
    for k in [k for k in prov if str(k) == path or str(k).startswith(path + ".")]:
        del prov[k]
    if any(path.startswith(str(k) + ".") for k in prov):
        prov[path] = "assumed: changed by an override, not taken from the file's source"


#: ``extends:`` chains longer than this are refused (the article's is 2).
MAX_EXTENDS = 8


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except (OSError, ValueError):          # a name too long, an embedded NUL
        return False


def _resolve(path: str | Path) -> Path:
    """A scenario name (``article``) or path -> the file to read."""
    p = Path(path)
    if p.suffix not in (".yaml", ".yml") and not _exists(p):
        p = data_dir() / "scenarios" / f"{p}.yaml"
    return p


def _find_file(ref: Any, base: Path, what: str, folder: str) -> Path:
    """``extends:``/``manifests:`` -> a file: relative to the scenario, else the package's ``data/<folder>``.

    A scenario copied out of ``data/scenarios`` keeps working: ``../manifests/nginx.yaml``,
    ``manifests/nginx.yaml`` and ``nginx`` all name the packaged file.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise CourseError(what, f"is {ref!r}, not a file name", "a path relative to the scenario file, or a "
                          f"file under the course's data/{folder} (e.g. " +
                          ("'article.yaml')" if folder == "scenarios" else "'nginx.yaml')"))
    if "\0" in ref or len(ref) > 4096:
        raise CourseError(what, "is not a usable file name", "a path")
    first = (base / ref) if not Path(ref).is_absolute() else Path(ref)
    tried = [first]
    if not Path(ref).is_absolute():
        d = data_dir()
        tried += [d / "scenarios" / ref, d / ref, d / folder / ref, d / folder / f"{ref}.yaml"]
    for t in tried:
        try:
            if t.exists():
                return t.resolve()
        except (OSError, ValueError):
            continue
    seen = []
    for t in tried:
        if str(t) not in seen:
            seen.append(str(t))
    raise CourseError(what, f"no such file: {seen[0]}" + (f" (also tried {', '.join(seen[1:])})" if seen[1:] else ""),
                      f"a path relative to {base}, or a name under {data_dir() / folder}")


def raw_scenario(path: str | Path, _chain: tuple = ()) -> dict:
    """The scenario file as a dict, with ``extends:`` applied (shape not yet checked)."""
    p = _resolve(path) if not _chain else Path(path)
    what = "extends" if _chain else "scenario"
    if not _chain and not _exists(p):
        names = ", ".join(scenarios())
        shown = str(path) if len(str(path)) <= 200 else str(path)[:200] + "..."
        where = str(p.absolute()) if len(str(p)) <= 300 else "(name too long)"
        raise CourseError("scenario", f"no scenario named {shown!r} (no such file: {where})",
                          f"{names}, or a path to a .yaml file")
    raw = read_yaml(p, what)
    if not isinstance(raw, dict):
        raise CourseError(what, f"{p} is {type(raw).__name__}, not a YAML mapping",
                          "a mapping of the scenario's keys (name:, flannel:, nodes:, ...)")
    try:
        key = p.resolve()
    except (OSError, RuntimeError):
        key = p
    if key in _chain:
        raise CourseError("extends", "extends itself: " + " -> ".join(x.name for x in _chain + (key,)),
                          "a chain of scenario files without a loop")
    if len(_chain) >= MAX_EXTENDS:
        raise CourseError("extends", f"more than {MAX_EXTENDS} files deep", f"at most {MAX_EXTENDS}")
    parent = raw.pop("extends", None)
    if parent is not None:
        base = raw_scenario(_find_file(parent, p.parent, "extends", "scenarios"), _chain + (key,))
        # a child's provenance entry for a path replaces the parent's entries under it
        mine = raw.get("provenance") if isinstance(raw.get("provenance"), dict) else {}
        if mine and isinstance(base.get("provenance"), dict):
            base["provenance"] = {k: v for k, v in base["provenance"].items()
                                  if not any(str(k) == m or str(k).startswith(f"{m}.") for m in mine)}
        raw = _deep_merge(base, raw)
    if raw.get("manifests") is not None and not (isinstance(raw["manifests"], str)
                                                 and Path(raw["manifests"]).is_absolute()):
        raw["manifests"] = str(_find_file(raw["manifests"], p.parent, "manifests", "manifests"))
    return raw


@public
def load_scenario(path: str | Path = "article", overrides: dict | None = None) -> Scenario:
    """Load and validate a scenario by name (``"article"``) or path.

    >>> s = load_scenario("article")
    >>> str(s.server.ip), s.flannel.port
    ('172.30.20.2', 8472)

    Taught in: 00-the-scenario.
    """
    if not isinstance(path, (str, os.PathLike)) or isinstance(os.fspath(path), bytes):
        raise CourseError("scenario", f"a value of type {type(path).__name__} is not a scenario name or path",
                          ", ".join(scenarios()) + ", or a path to a .yaml file")
    if overrides is not None and not isinstance(overrides, dict):
        raise CourseError("overrides", f"a value of type {type(overrides).__name__} is not a mapping",
                          '{"dotted.path": value}, e.g. {"flannel.vni": 2}')
    raw = raw_scenario(path)
    for k, v in (overrides or {}).items():
        _set_path(raw, k, v)
        _relabel(raw, k)
    return scenario_from_dict(raw, source=str(_resolve(path)))


def default_scenario() -> Scenario:
    """The article's cluster (``data/scenarios/article.yaml``)."""
    return load_scenario("article")


#: What every public function that takes a scenario accepts (the message of its error).
SCENARIO_ALLOWED = ("a Scenario (ck.load_scenario(...)), the name of a scenario under data/scenarios "
                    "(e.g. 'article'), a path to a scenario .yaml file, or a mapping with a scenario's keys")


def scenarios() -> list[str]:
    """The names of the scenarios that ship with the course (``data/scenarios/*.yaml``)."""
    return sorted(p.stem for p in (data_dir() / "scenarios").glob("*.yaml"))


@public
def as_scenario(value: Any, field: str = "scenario", default: str | None = None) -> Scenario:
    """The one way a public function turns its ``scenario`` argument into a :class:`Scenario`.

    Accepted: a :class:`Scenario` (returned as is); a scenario name such as
    ``"article"`` (``data/scenarios/article.yaml``); a path (``str`` or
    :class:`os.PathLike`) to a scenario file; a mapping with a scenario's keys
    (validated like a file).  ``None`` means ``default`` when the caller has
    one (e.g. ``default="article"``) and is an error otherwise.  Anything else
    -- bytes, a list, a number, a Walk -- raises :class:`CourseError` naming
    ``field`` and listing what is allowed.

    >>> as_scenario("article").name
    'article'

    Taught in: 00-the-scenario (every ``ck.`` function that takes a scenario calls it).
    """
    if isinstance(value, Scenario):
        return value
    if value is None:
        if default is not None:
            return load_scenario(default)
        raise CourseError(field, "is None, not a scenario", SCENARIO_ALLOWED)
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if isinstance(text, bytes):
            raise CourseError(field, "a bytes path is not a scenario name", SCENARIO_ALLOWED)
        if not text.strip():
            raise CourseError(field, "is an empty name", ", ".join(scenarios()) + ", or a path to a .yaml file")
        return load_scenario(text)
    if isinstance(value, dict):
        return scenario_from_dict(value, source="(a mapping)")
    what = type(value).__name__
    hint = ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        hint = " (decode it, or save it to a .yaml file and give the path)"
    elif hasattr(value, "scenario") and isinstance(getattr(value, "scenario"), Scenario):
        hint = f" (this {what} has one: pass its .scenario)"
    raise CourseError(field, f"a value of type {what} is not a scenario{hint}", SCENARIO_ALLOWED)


# --------------------------------------------------------------------------
# Validation helpers: each names the field and what is allowed
# --------------------------------------------------------------------------

def _get(d: dict, key: str, path: str, default: Any = ...) -> Any:
    if not isinstance(d, dict):
        raise CourseError(path, "must be a mapping")
    if key in d and d[key] is not None:
        return d[key]
    if default is ...:
        raise CourseError(f"{path}.{key}" if path else key, "is required")
    return default


def _ip(value: Any, field: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value).strip())
    except ValueError:
        raise CourseError(field, f"{value!r} is not an IPv4 address",
                          "four numbers 0-255 separated by dots, e.g. 172.30.83.9") from None


def _net(value: Any, field: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(str(value).strip(), strict=True)
    except ValueError:
        raise CourseError(field, f"{value!r} is not an IPv4 network",
                          "an address with its host bits zero and a prefix, e.g. 172.30.0.0/16") from None


def _iface(value: Any, field: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Network]:
    try:
        itf = ipaddress.IPv4Interface(str(value).strip())
    except ValueError:
        raise CourseError(field, f"{value!r} is not an IPv4 address with prefix",
                          "e.g. 10.167.226.38/24") from None
    return itf.ip, itf.network


def _int(value: Any, field: str, lo: int, hi: int, what: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            else:
                raise ValueError
        except ValueError:
            raise CourseError(field, f"{value!r} is not a whole number", f"{lo}-{hi}") from None
    if not lo <= value <= hi:
        raise CourseError(field, f"{value} is out of range{(' for ' + what) if what else ''}", f"{lo}-{hi}")
    return value


def _port(value: Any, field: str) -> int:
    return _int(value, field, 1, 65535, "a TCP/UDP port")


def _bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    raise CourseError(field, f"{value!r} is not a boolean", "true or false")


def _mac(value: Any, field: str) -> str:
    m = str(value).strip().lower()
    if not _MAC_RE.match(m):
        raise CourseError(field, f"{value!r} is not a MAC address", "six hex bytes, e.g. 02:42:ac:1e:53:09")
    if int(m[:2], 16) & 1:
        raise CourseError(field, f"{value!r} is a multicast MAC address", "a unicast MAC (first byte even)")
    return m


def _name(value: Any, field: str) -> str:
    v = str(value)
    if not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z", v):
        raise CourseError(field, f"{value!r} is not a valid name", "lower-case letters, digits, '-' and '.'")
    return v


#: Bytes in an interface name: the kernel's IFNAMSIZ (16) less the NUL.
IFNAME_MAX = 15


def _ifname(value: Any, field: str) -> str:
    """An interface name the kernel accepts (``dev_valid_name`` in net/core/dev.c), or CourseError."""
    v = value if isinstance(value, str) else str(value)
    allowed = "1-15 bytes, not . or .., without '/', ':', '%' or white space (dev_valid_name)"
    if not v:
        raise CourseError(field, "is empty; the kernel refuses an empty interface name", allowed)
    if len(v.encode("utf-8")) > IFNAME_MAX:
        raise CourseError(field, f"{v!r} is {len(v.encode('utf-8'))} bytes; the kernel refuses names of "
                          f"IFNAMSIZ (16) bytes or more", allowed)
    if v in (".", ".."):
        raise CourseError(field, f"{v!r} is refused by the kernel (it names a folder in /sys/class/net)", allowed)
    bad = next((c for c in v if c in "/:" or c.isspace() or c == "\xa0"), None)
    if bad is not None:
        raise CourseError(field, f"{v!r} contains {bad!r}, which the kernel refuses in an interface name", allowed)
    if "%" in v:
        raise CourseError(field, f"{v!r} contains '%': the kernel treats it as a template and picks a number "
                          "(dev_alloc_name)", allowed)
    if any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise CourseError(field, f"{v!r} contains a control character", allowed)
    return v


def _unicast_host(ip: ipaddress.IPv4Address, field: str, what: str = "a node") -> None:
    """Refuse addresses no host interface carries as its own unicast address."""
    allowed = f"a unicast address for {what} (not 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4 or 255.255.255.255)"
    if ip in ipaddress.IPv4Network("127.0.0.0/8"):
        raise CourseError(field, f"{ip} is a loopback address (127.0.0.0/8): it never leaves a host", allowed)
    if ip.is_multicast:
        raise CourseError(field, f"{ip} is a multicast address (224.0.0.0/4)", allowed)
    if ip in ipaddress.IPv4Network("0.0.0.0/8"):
        raise CourseError(field, f"{ip} is in 0.0.0.0/8 ('this network'), which the kernel does not route", allowed)
    if ip == ipaddress.IPv4Address("255.255.255.255"):
        raise CourseError(field, f"{ip} is the limited broadcast address", allowed)


def _unicast_net(net: ipaddress.IPv4Network, field: str) -> None:
    for bad, why in (("127.0.0.0/8", "loopback"), ("224.0.0.0/4", "multicast"), ("0.0.0.0/8", "'this network'"),
                     ("240.0.0.0/4", "reserved")):
        if net.overlaps(ipaddress.IPv4Network(bad)):
            raise CourseError(field, f"{net} overlaps the {why} range {bad}", "a private unicast range, e.g. 172.30.0.0/16")


_TCHAR = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")          # RFC 9110 token
_PATH = re.compile(r"^/[\x21-\x7e]*\Z")                          # origin-form, visible ASCII
_FIELD_VALUE = re.compile(r"^[\x20-\x7e]*\Z")                     # printable ASCII, no CR/LF


def _http(request_method: str, path: str, ua: str) -> None:
    if not _TCHAR.match(request_method):
        raise CourseError("request.method", f"{request_method!r} is not an HTTP method (a token: letters, digits, "
                          "no spaces or control characters)", "e.g. GET, HEAD, POST")
    if not _PATH.match(path):
        bad = next((c for c in path if not 0x21 <= ord(c) <= 0x7e), None)
        raise CourseError("request.path", f"{path!r} " + ("does not start with '/'" if not path.startswith("/") else
                          f"contains {bad!r}, which cannot go on an HTTP request line"),
                          "'/' then visible ASCII; percent-encode anything else (%20 for a space)")
    if not _FIELD_VALUE.match(ua):
        bad = next(c for c in ua if not 0x20 <= ord(c) <= 0x7e)
        raise CourseError("request.userAgent", f"{ua!r} contains {bad!r}: a header value cannot carry CR, LF or "
                          "other control or non-ASCII characters (it would inject or break header lines)",
                          "printable ASCII, e.g. Wget")


_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")                  # DNS-1123 label
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?\Z")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?\Z")


def _k8s_name(value: Any, field: str) -> str:
    """A Kubernetes object name or namespace (DNS-1123 label: what the API server accepts)."""
    v = value if isinstance(value, str) else ""
    if not _K8S_NAME.match(v) or len(v) > 63:
        raise CourseError(field, f"{value!r} is not a Kubernetes name",
                          "1-63 lower-case letters, digits and '-', starting and ending with a letter or digit")
    return v


def _labels(labels: Any, field: str) -> tuple[tuple[str, str], ...]:
    out = []
    for k, v in (labels or {}).items():
        k, v = str(k), "" if v is None else str(v)
        if not _LABEL_KEY.match(k) or len(k.rsplit("/", 1)[-1]) > 63:
            raise CourseError(f"{field}.{k}", f"{k!r} is not a label key", "e.g. app or example.com/name")
        if not _LABEL_VALUE.match(v) or len(v) > 63:
            raise CourseError(f"{field}.{k}", f"{v!r} is not a label value",
                              "up to 63 letters, digits, '-', '_' and '.'")
        out.append((k, v))
    return tuple(sorted(out))


def _modelled(value: Any, field: str, pattern: str, allowed: str) -> str:
    v = str(value)
    if not re.match(pattern + r"\Z", v):
        raise CourseError(field, f"{v!r} is not modelled (the model follows one version's behaviour)", allowed)
    return v


def _stable(*parts: Any) -> bytes:
    """Deterministic bytes for a default that the real system picks at random."""
    return hashlib.sha256("/".join(map(str, parts)).encode()).digest()


def _local_mac(*parts: Any, prefix: bytes = b"") -> str:
    b = bytearray(prefix + _stable("mac", *parts)[: 6 - len(prefix)])
    if not prefix:
        b[0] = (b[0] & 0xFC) | 0x02     # locally administered, unicast
    return ":".join(f"{x:02x}" for x in b)


def docker_mac(ip: ipaddress.IPv4Address) -> str:
    """Docker's container MAC: ``02:42`` followed by the IPv4 address (libnetwork ``GenerateMACFromIP``)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?"
                      r"(Z|[+-]\d{2}:\d{2})\Z")


def _time(value: Any, field: str) -> int:
    """An ISO 8601 time with an explicit offset -> integer microseconds since the epoch.

    Integer arithmetic only, so the result never depends on the machine's time zone.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return _int(value, field, 0, 2**62)
    import datetime as _dt
    if isinstance(value, _dt.datetime):
        value = value.isoformat()
    m = _TIME_RE.match(str(value).strip())
    if not m:
        raise CourseError(field, f"{value!r} is not a time", "ISO 8601 with an offset, e.g. 2019-08-28T11:25:22.220286+08:00")
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    frac = int((m.group(7) or "0").ljust(6, "0"))
    try:
        days = (_dt.date(y, mo, d) - _dt.date(1970, 1, 1)).days
    except ValueError:
        raise CourseError(field, f"{value!r} is not a calendar date", "a real date") from None
    if h > 23 or mi > 59 or sec > 59:
        raise CourseError(field, f"{value!r} is not a time of day", "00:00:00-23:59:59")
    off = 0 if m.group(8) == "Z" else _parse_offset(m.group(8), field)
    return ((days * 86400 + h * 3600 + mi * 60 + sec - off * 60) * 1_000_000) + frac


def _parse_offset(value: Any, field: str) -> int:
    m = re.match(r"^(?:UTC)?([+-])(\d{2}):(\d{2})\Z", str(value).strip())
    if not m:
        raise CourseError(field, f"{value!r} is not a UTC offset", "e.g. +08:00 or -05:30")
    if int(m.group(3)) > 59:
        raise CourseError(field, f"{value!r} has {m.group(3)} minutes", "minutes 00-59, e.g. +08:00 or +05:30")
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    if minutes > 14 * 60:
        raise CourseError(field, f"{value!r} is out of range", "-14:00 to +14:00")
    return minutes if m.group(1) == "+" else -minutes


# --------------------------------------------------------------------------
# Manifests
# --------------------------------------------------------------------------

_MANIFESTS: dict[tuple[str, str], list] = {}       # (path, text) -> its YAML documents


def _manifest_docs(p: Path) -> list:
    """The manifests' documents; parsed once per file content (every explorer change re-validates them)."""
    text = read_text(p, "manifests")
    key = (str(p), text)
    docs = _MANIFESTS.get(key)
    if docs is None:
        docs = read_yaml(p, "manifests", many=True)
        if read_text(p, "manifests") == text:            # unchanged while it was parsed
            if len(_MANIFESTS) >= 16:
                _MANIFESTS.clear()
            _MANIFESTS[key] = docs
    return copy.deepcopy(docs)


def _parse_manifests(path: str) -> tuple[list[dict], list[dict]]:
    p = Path(path)
    docs = _manifest_docs(p)
    deployments, services = [], []
    for i, d in enumerate(docs):
        if d is None:                      # an empty document between two '---'
            continue
        kind = check_manifest_shape(d, i, p)
        (deployments if kind == "Deployment" else services).append(d)
    return deployments, services


# --------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------

def scenario_from_dict(raw: dict, source: str = "") -> Scenario:
    """Validate a scenario mapping; raise :class:`CourseError` on the first problem.

    The whole document's shape (every key known, every mapping a mapping) is
    checked first (:mod:`coursekit.schema`), then the values.
    """
    check_scenario_shape(raw)
    raw = copy.deepcopy(raw)
    if raw.get("extends") is not None:
        raise CourseError("extends", "only a scenario file can extend another",
                          "load the file with ck.load_scenario, or merge the parent yourself")
    name = str(_get(raw, "name", "", "scenario"))
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z", name):
        raise CourseError("name", f"{name!r} is not a scenario name (it names a folder under data/captures)",
                          "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    utc = _parse_offset(_get(raw, "utcOffset", "", "+00:00"), "utcOffset")

    # flannel ------------------------------------------------------------
    fr = _get(raw, "flannel", "")
    network = _net(_get(fr, "network", "flannel"), "flannel.network")
    subnet_len = _int(_get(fr, "subnetLen", "flannel", 24), "flannel.subnetLen",
                      network.prefixlen + 1, 30, "a lease inside flannel.network")
    backend = str(_get(fr, "backend", "flannel", "vxlan"))
    if backend != "vxlan":
        raise CourseError("flannel.backend", f"{backend!r} is not modelled", "vxlan")
    flannel = Flannel(
        network=network, subnet_len=subnet_len, backend=backend,
        vni=_int(_get(fr, "vni", "flannel", 1), "flannel.vni", 0, (1 << 24) - 1, "a VXLAN network identifier"),
        port=_port(_get(fr, "port", "flannel", 8472), "flannel.port"),
        ip_masq=_bool(_get(fr, "ipMasq", "flannel", False), "flannel.ipMasq"),
        udp_checksum=_bool(_get(fr, "udpChecksum", "flannel", True), "flannel.udpChecksum"),
        # v0.8-v0.11 differ, for the model, in one thing: from v0.9.1 flanneld adds
        # FORWARD -s/-d <network> -j ACCEPT (network.ForwardRules); see netfilter.filter_table
        version=_modelled(_get(fr, "version", "flannel", "v0.11.0"), "flannel.version",
                          r"v?0\.(8|9|10|11)(\.\d+)?",
                          "v0.11.0 (the version the article's install guide uses); v0.8-v0.10 for the FORWARD "
                          "rules flanneld adds only from v0.9.1"),
    )
    if len(flannel.device) > IFNAME_MAX:
        raise CourseError("flannel.vni", f"VNI {flannel.vni} makes the device name {flannel.device!r} "
                          f"{len(flannel.device)} bytes; the kernel refuses interface names over {IFNAME_MAX}",
                          "0-9999999 (flannel names its device flannel.<VNI>)")
    _unicast_net(network, "flannel.network")

    service_cidr = _net(_get(raw, "serviceCIDR", "", "10.254.0.0/16"), "serviceCIDR")
    _unicast_net(service_cidr, "serviceCIDR")
    if service_cidr.prefixlen > 30:
        raise CourseError("serviceCIDR", f"{service_cidr} has no room for a cluster IP", "a /30 or larger")
    if service_cidr.overlaps(network):
        raise CourseError("serviceCIDR", f"{service_cidr} overlaps the pod network {network}",
                          "a range apart from flannel.network")

    kr = _get(raw, "kubeProxy", "", {})
    mode = str(_get(kr, "mode", "kubeProxy", "iptables"))
    if mode != "iptables":
        raise CourseError("kubeProxy.mode", f"{mode!r} is not modelled", "iptables")
    cc = _get(kr, "clusterCIDR", "kubeProxy", str(network))
    kube_proxy = KubeProxy(
        mode=mode,
        masquerade_all=_bool(_get(kr, "masqueradeAll", "kubeProxy", False), "kubeProxy.masqueradeAll"),
        cluster_cidr=_net(cc, "kubeProxy.clusterCIDR") if cc else None,
        masquerade_bit=_int(_get(kr, "masqueradeBit", "kubeProxy", 14), "kubeProxy.masqueradeBit", 0, 31),
        version=_modelled(_get(kr, "version", "kubeProxy", "1.14"), "kubeProxy.version", r"v?1\.14(\.\d+)?",
                          "1.14 (the version the article's install guide uses)"),
    )

    # nodes --------------------------------------------------------------
    nr = _get(raw, "nodes", "")
    if not isinstance(nr, dict) or len(nr) < 2:
        raise CourseError("nodes", "needs at least two nodes", "a mapping of node name to settings")
    nodes: list[Node] = []
    for nname, nd in nr.items():
        nname = _name(nname, "nodes")
        f = f"nodes.{nname}"
        nic_r = _get(nd, "nic", f)
        ip, net = _iface(_get(nic_r, "address", f + ".nic"), f + ".nic.address")
        _unicast_host(ip, f + ".nic.address")
        if net.prefixlen == 32:
            raise CourseError(f + ".nic.address", f"a /32 underlay leaves {ip} no neighbour on the link",
                              "a prefix of /31 or shorter that holds both nodes")
        if net.prefixlen < 31 and (ip == net.network_address or ip == net.broadcast_address):
            raise CourseError(f + ".nic.address", f"{ip} is the network or broadcast address of {net}",
                              f"{net[1]}-{net[-2]}")
        nic = Nic(name=_ifname(_get(nic_r, "name", f + ".nic", "enp4s0"), f + ".nic.name"), ip=ip, network=net,
                  mac=_mac(_get(nic_r, "mac", f + ".nic", _local_mac(nname, "nic")), f + ".nic.mac"),
                  mtu=_int(_get(nic_r, "mtu", f + ".nic", 1500), f + ".nic.mtu", 68 + VXLAN_OVERHEAD, 65535,
                           f"an underlay that carries VXLAN ({VXLAN_OVERHEAD} bytes of overhead)"))
        subnet = _net(_get(nd, "subnet", f), f + ".subnet")
        if not subnet.subnet_of(network):
            raise CourseError(f + ".subnet", f"{subnet} is not inside flannel.network {network}",
                              f"a /{subnet_len} inside {network}")
        if subnet.prefixlen != subnet_len:
            raise CourseError(f + ".subnet", f"{subnet} is not a /{subnet_len} (flannel.subnetLen)",
                              f"a /{subnet_len} inside {network}")
        dr = _get(nd, "docker", f, {})
        dmtu = _int(_get(dr, "mtu", f + ".docker", nic.mtu - VXLAN_OVERHEAD), f + ".docker.mtu", 576, 65535,
                    "a pod interface")
        docker = Docker(bridge_ip=subnet.network_address + 1, mtu=dmtu,
                        ip_masq=_bool(_get(dr, "ipMasq", f + ".docker", True), f + ".docker.ipMasq"),
                        bridge_mac=_mac(_get(dr, "bridgeMac", f + ".docker",
                                             _local_mac(nname, "docker0", prefix=b"\x02\x42")),
                                        f + ".docker.bridgeMac"))
        lo, hi = _get(nd, "ephemeralPorts", f, [32768, 60999])
        lo, hi = _port(lo, f + ".ephemeralPorts.0"), _port(hi, f + ".ephemeralPorts.1")
        if lo > hi:
            raise CourseError(f + ".ephemeralPorts", f"[{lo}, {hi}] is reversed; the kernel refuses it (EINVAL)",
                              "[low, high] with low <= high, e.g. [32768, 60999]")
        nodes.append(Node(
            name=nname, hostname=_name(_get(nd, "hostname", f, nname), f + ".hostname"),
            nic=nic, subnet=subnet,
            vtep_mac=_mac(_get(nd, "vtepMac", f, _local_mac(nname, "vtep")), f + ".vtepMac"),
            docker=docker,
            default_ttl=_int(_get(nd, "defaultTTL", f, 64), f + ".defaultTTL", 2, 255),
            ephemeral_ports=(lo, hi),
            br_netfilter=_bool(_get(nd, "bridgeNfCallIptables", f, True), f + ".bridgeNfCallIptables"),
            default_route=_bool(_get(nd, "defaultRoute", f, True), f + ".defaultRoute"),
            hairpin_mode=_bool(_get(nd, "hairpinMode", f, True), f + ".hairpinMode"),
        ))
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            if a.subnet.overlaps(b.subnet):
                raise CourseError(f"nodes.{b.name}.subnet", f"{b.subnet} overlaps {a.name}'s {a.subnet}",
                                  "one distinct lease per node")
            if a.nic.ip == b.nic.ip:
                raise CourseError(f"nodes.{b.name}.nic.address", f"{b.nic.ip} is also {a.name}'s address",
                                  "one address per node")
            if a.nic.network != b.nic.network:
                raise CourseError(f"nodes.{b.name}.nic.address",
                                  f"{b.nic.ip} is not on {a.name}'s underlay {a.nic.network}",
                                  "all nodes on one layer-2 underlay")
    for n in nodes:
        if n.nic.ip in network or n.nic.ip in service_cidr:
            raise CourseError(f"nodes.{n.name}.nic.address",
                              f"{n.nic.ip} is inside the pod or service network", "an underlay address")
    node_by = {n.name: n for n in nodes}

    # pods and workloads ---------------------------------------------------
    pods: list[Pod] = []
    used: dict[str, str] = {}

    def add_pod(pname: str, ns: str, node: str, ip: ipaddress.IPv4Address, f: str,
                labels: dict, cport: int | None, pr: dict, of: str = "") -> None:
        of = of or f                      # where the pod's own settings (veth, MACs) were written
        if node not in node_by:
            raise CourseError(f + ".node", f"unknown node {node!r}", ", ".join(node_by))
        n = node_by[node]
        if ip not in n.subnet:
            raise CourseError(f + ".ip", f"{ip} is outside {node}'s pod subnet {n.subnet}",
                              f"{n.subnet[2]}-{n.subnet[-2]}")
        if ip in (n.subnet.network_address, n.subnet.network_address + 1, n.subnet.broadcast_address):
            raise CourseError(f + ".ip", f"{ip} is reserved on {node} (flannel.1, docker0 or broadcast)",
                              f"{n.subnet[2]}-{n.subnet[-2]}")
        if str(ip) in used:
            raise CourseError(f + ".ip", f"{ip} is already used by pod {used[str(ip)]}", "one address per pod")
        used[str(ip)] = pname
        veth = pr.get("veth")
        veth = _ifname(veth, of + ".veth") if veth is not None else "veth" + _stable("veth", node, pname).hex()[:7]
        pods.append(Pod(
            name=pname, namespace=ns, node=node, ip=ip,
            mac=_mac(pr.get("mac") or docker_mac(ip), of + ".mac"),
            mtu=n.docker.mtu, veth=veth,
            veth_mac=_mac(pr.get("vethMac") or _local_mac(node, pname, "veth"), of + ".vethMac"),
            labels=_labels(labels, f + ".labels"),
            container_port=cport, path=of))

    for pname, pr in (_get(raw, "pods", "", {}) or {}).items():
        f = f"pods.{pname}"
        add_pod(_name(pname, "pods"), _k8s_name(pr.get("namespace") or "default", f + ".namespace"),
                str(_get(pr, "node", f)),
                _ip(_get(pr, "ip", f), f + ".ip"), f, pr.get("labels") or {}, None, pr)

    services: list[Service] = []
    manifests = raw.get("manifests")
    if manifests is not None and not (isinstance(manifests, str) and Path(manifests).is_absolute()):
        # a mapping given directly (not a file): manifests relative to the working folder or data/
        manifests = raw["manifests"] = str(_find_file(manifests, Path.cwd(), "manifests", "manifests"))
    wl = raw.get("workloads") or {}
    if manifests:
        deployments, svc_docs = _parse_manifests(manifests)
        seen_deployments: set = set()
        for dep in deployments:
            md = dep.get("metadata") or {}
            dname = _k8s_name(md.get("name"), "manifests: Deployment metadata.name")
            ns = _k8s_name(md.get("namespace") or "default", f"manifests: Deployment {dname} metadata.namespace")
            spec = dep.get("spec") or {}
            tmpl = (spec.get("template") or {})
            tspec = tmpl.get("spec") or {}
            labels = (tmpl.get("metadata") or {}).get("labels") or {}
            f = f"workloads.{dname}"
            w = wl.get(dname) or {}
            replicas = _int(w.get("replicas", spec.get("replicas", 1)), f + ".replicas", 1, 16)
            node = str(w.get("node", tspec.get("nodeName") or ""))
            if not node:
                raise CourseError(f + ".node", "the Deployment has no nodeName; say where its pods run",
                                  ", ".join(node_by))
            if node not in node_by:
                raise CourseError(f + ".node", f"unknown node {node!r}", ", ".join(node_by))
            cports = [_port(p.get("containerPort"), f"{f}.containers.{ci}.ports.{pi}.containerPort")
                      for ci, c in enumerate(tspec.get("containers") or []) for pi, p in enumerate(c.get("ports") or [])]
            if not tspec.get("containers"):
                raise CourseError(f + ".containers", "the Deployment has no containers", "at least one container")
            sel = ((spec.get("selector") or {}).get("matchLabels") or {})
            if not sel or not set((str(k), str(v)) for k, v in sel.items()) <= \
                    set((str(k), str(v)) for k, v in labels.items()):
                raise CourseError(f + ".selector", "spec.selector.matchLabels does not match the template's labels "
                                  "(Kubernetes refuses the Deployment)", "matchLabels that the pod template carries")
            if dname in {d for d in seen_deployments}:
                raise CourseError(f, "two Deployments with this name", "one Deployment per name")
            seen_deployments.add(dname)
            ips = w.get("podIPs")
            if ips is None:
                # Docker's IPAM hands out the bridge subnet in order after the
                # gateway (.1): the first container on meizu gets .2.
                taken = {str(p.ip) for p in pods}
                cand = (h for h in node_by[node].subnet.hosts() if h != node_by[node].docker.bridge_ip
                        and str(h) not in taken)
                ips = [str(x) for x, _ in zip(cand, range(replicas))]
            if not isinstance(ips, list):
                raise CourseError(f + ".podIPs", f"is {ips!r}, not a list", "a list of pod addresses")
            if len(ips) < replicas:
                raise CourseError(f + ".podIPs", f"{len(ips)} addresses for {replicas} replicas",
                                  "one address per replica")
            for i in range(replicas):
                add_pod(f"{dname}-{i + 1}", ns, node, _ip(ips[i], f"{f}.podIPs.{i}"), f"{f}.podIPs.{i}",
                        labels, cports[0] if cports else None,
                        (w.get("pods") or {}).get(i + 1) or (w.get("pods") or {}).get(str(i + 1)) or {},
                        f"{f}.pods.{i + 1}")
        for sd in svc_docs:
            md = sd.get("metadata") or {}
            sname = _k8s_name(md.get("name"), "manifests: Service metadata.name")
            f = f"services.{sname}"
            over = (raw.get("services") or {}).get(sname) or {}
            spec = sd.get("spec") or {}
            ports = []
            for j, p in enumerate(spec.get("ports") or []):
                pover = over.get("ports") if isinstance(over.get("ports"), dict) else {}
                po = pover.get(j) or pover.get(str(j)) or {}     # YAML gives 0, a dotted override "0"
                port = _port(po.get("port", p.get("port")), f"{f}.ports.{j}.port")
                tp = _port(po.get("targetPort", p.get("targetPort", port)), f"{f}.ports.{j}.targetPort")
                proto = str(p.get("protocol", "TCP"))
                if proto != "TCP":
                    raise CourseError(f"{f}.ports.{j}.protocol", f"{proto!r} is not modelled"
                                      + (" (Kubernetes spells it TCP)" if proto.upper() == "TCP" else ""), "TCP")
                if port in {x.port for x in ports}:
                    raise CourseError(f"{f}.ports.{j}.port", f"port {port} is listed twice (Kubernetes refuses a "
                                      "duplicate Service port)", "one entry per port")
                np_ = po.get("nodePort", p.get("nodePort"))
                np_ = None if np_ is None else _int(np_, f"{f}.ports.{j}.nodePort", 30000, 32767,
                                                    "the default --service-node-port-range")
                ports.append(ServicePort(name=str(p.get("name") or ""), port=port, target_port=tp, protocol=proto,
                                         node_port=np_))
            if not ports:
                raise CourseError(f + ".ports", "the Service has no ports (Kubernetes refuses it)", "at least one port")
            if len(ports) > 1 and len({x.name for x in ports}) < len(ports) or \
                    len(ports) > 1 and any(not x.name for x in ports):
                raise CourseError(f + ".ports", "a Service with several ports needs a distinct name for each "
                                  "(Kubernetes refuses it)", "name: on every port")
            stype = str(spec.get("type") or "ClusterIP")
            if stype not in ("ClusterIP", "NodePort"):
                raise CourseError(f + ".type", f"{stype!r} is not modelled", "ClusterIP, NodePort")
            if sname in {x.name for x in services}:
                raise CourseError(f, "two Services with this name", "one Service per name")
            cip = _ip(_get(over, "clusterIP", f), f + ".clusterIP")
            if cip not in service_cidr or cip in (service_cidr.network_address, service_cidr.broadcast_address):
                where = "outside" if cip not in service_cidr else "the network or broadcast address of"
                raise CourseError(f + ".clusterIP", f"{cip} is {where} serviceCIDR {service_cidr}",
                                  f"{service_cidr[1]}-{service_cidr[-2]}")
            if cip in {x.cluster_ip for x in services}:
                raise CourseError(f + ".clusterIP", f"{cip} is already another Service's", "one cluster IP per Service")
            sns = _k8s_name(md.get("namespace") or "default", f"manifests: Service {sname} metadata.namespace")
            services.append(Service(name=sname, namespace=sns, cluster_ip=cip,
                                    ports=tuple(ports),
                                    selector=_labels(spec.get("selector"), f + ".selector")))

    dns = _parse_dns(raw, add_pod, pods, services, service_cidr, node_by)

    # request ----------------------------------------------------------------
    rr = _get(raw, "request", "")
    client = str(_get(rr, "client", "request"))
    # external hosts (on the underlay) ------------------------------------------
    externals: list[ExternalHost] = []
    underlay = nodes[0].nic.network
    for xname, xr in (_get(raw, "externalHosts", "", {}) or {}).items():
        xname = _name(xname, "externalHosts")
        f = f"externalHosts.{xname}"
        if xname in node_by or xname in {p.name for p in pods}:
            raise CourseError(f, f"{xname!r} is already a node or a pod", "a name of its own")
        nic_r = _get(xr, "nic", f)
        ip, net = _iface(_get(nic_r, "address", f + ".nic"), f + ".nic.address")
        if net != underlay or ip in (net.network_address, net.broadcast_address):
            raise CourseError(f + ".nic.address", f"{ip}/{net.prefixlen} is not a host on the underlay {underlay}",
                              f"{underlay[1]}-{underlay[-2]}/{underlay.prefixlen}")
        if ip in {n.nic.ip for n in nodes} | {x.ip for x in externals}:
            raise CourseError(f + ".nic.address", f"{ip} is already taken on the underlay", "a free address")
        externals.append(ExternalHost(xname, Nic(
            name=str(_get(nic_r, "name", f + ".nic", "eth0")), ip=ip, network=net,
            mac=_mac(_get(nic_r, "mac", f + ".nic", _local_mac(xname, "nic")), f + ".nic.mac"),
            mtu=_int(_get(nic_r, "mtu", f + ".nic", 1500), f + ".nic.mtu", 576, 65535))))

    if client not in {p.name for p in pods} | set(node_by) | {x.name for x in externals}:
        raise CourseError("request.client", f"unknown pod, node or external host {client!r}",
                          ", ".join([p.name for p in pods] + list(node_by) + [x.name for x in externals]))
    target_ip = None
    via = rr.get("node")
    if via is not None and str(via) not in node_by:
        raise CourseError("request.node", f"unknown node {via!r}", ", ".join(node_by))
    if rr.get("ip") is not None:
        if rr.get("service") is not None:
            raise CourseError("request.ip", "give either request.service or request.ip, not both",
                              "a Service name, or a pod's or external host's address")
        target_ip = _ip(rr["ip"], "request.ip")
        owners = {x.ip: x for x in list(pods) + externals}
        if target_ip not in owners:
            raise CourseError("request.ip", f"no pod or external host has {target_ip}",
                              ", ".join(str(a) for a in owners))
        sname, svc = "", None
        rport = _port(_get(rr, "port", "request", 80), "request.port")
    else:
        sname = str(_get(rr, "service", "request"))
        if sname not in {s.name for s in services}:
            raise CourseError("request.service", f"unknown service {sname!r}", ", ".join(s.name for s in services))
        svc = next(s for s in services if s.name == sname)
        rport = _port(_get(rr, "port", "request", svc.ports[0].port if svc.ports else 80), "request.port")
        if rport not in {p.port for p in svc.ports}:
            raise CourseError("request.port", f"service {sname} does not listen on {rport}",
                              ", ".join(str(p.port) for p in svc.ports))
        if via is not None and next(p for p in svc.ports if p.port == rport).node_port is None:
            raise CourseError("request.node", f"service {sname} port {rport} has no nodePort",
                              f"services.{sname}.ports.N.nodePort set, or no request.node")
    request = Request(client=client, service=sname, port=rport,
                      method=str(_get(rr, "method", "request", "GET")), path=str(_get(rr, "path", "request", "/")),
                      user_agent=str(_get(rr, "userAgent", "request", "Wget")), ip=target_ip,
                      node=None if via is None else str(via))
    _http(request.method, request.path, request.user_agent)

    # observed -----------------------------------------------------------------
    o = _get(raw, "observed", "", {})
    cnode = next((p.node for p in pods if p.name == client), client)
    if svc is not None:
        eps = sorted([p for p in pods if set(svc.selector) and set(svc.selector) <= set(p.labels)],
                     key=lambda p: str(p.ip))
        if not eps:
            raise CourseError(f"services.{sname}.selector", "selects no pod", "labels of a Deployment's pods")
        endpoint = _int(_get(o, "endpoint", "observed", 0), "observed.endpoint", 0, len(eps) - 1,
                        "an index into the Service's endpoints")
        default_anchor = {"node": eps[endpoint].node, "interface": "docker0"}
    else:
        endpoint = 0
        default_anchor = {"node": client, "interface": "eth0"}
    lo, hi = node_by[cnode].ephemeral_ports if cnode in node_by else (32768, 60999)
    anchor = _get(o, "anchor", "observed", default_anchor)
    times = o.get("times")
    windows = o.get("windows")
    observed = Observed(
        client_port=_int(_get(o, "clientPort", "observed", lo + int.from_bytes(_stable("port", name)[:2], "big") % (hi - lo + 1)),
                         "observed.clientPort", 1, 65535, "a TCP port"),
        client_isn=_int(_get(o, "clientISN", "observed", int.from_bytes(_stable("isn", "c", name)[:4], "big")),
                        "observed.clientISN", 0, 2**32 - 1),
        server_isn=_int(_get(o, "serverISN", "observed", int.from_bytes(_stable("isn", "s", name)[:4], "big")),
                        "observed.serverISN", 0, 2**32 - 1),
        client_ts_offset_us=_int(_get(o, "clientTSOffsetUs", "observed", 0), "observed.clientTSOffsetUs", -2**62, 2**62),
        server_ts_offset_us=_int(_get(o, "serverTSOffsetUs", "observed", 0), "observed.serverTSOffsetUs", -2**62, 2**62),
        start_us=_time(_get(o, "start", "observed", "2019-08-28T12:00:00+08:00"), "observed.start"),
        times_us=tuple(_time(t, f"observed.times.{i}") for i, t in enumerate(times)) if times else None,
        anchor=(str(_get(anchor, "node", "observed.anchor")), str(_get(anchor, "interface", "observed.anchor"))),
        windows=tuple(_int(w, f"observed.windows.{i}", 0, 65535) for i, w in enumerate(windows)) if windows else None,
        wscale=(_int(_get(o.get("wscale") or {}, "client", "observed.wscale", 7), "observed.wscale.client", 0, 14),
                _int(_get(o.get("wscale") or {}, "server", "observed.wscale", 7), "observed.wscale.server", 0, 14)),
        endpoint=endpoint,
        vxlan_sport={str(k): _port(v, f"observed.vxlanSourcePort.{k}") for k, v in (o.get("vxlanSourcePort") or {}).items()},
        flow_hash_seed=_int(_get(o, "flowHashSeed", "observed", 0x5EED), "observed.flowHashSeed", 0, 2**32 - 1),
        ip_id={str(k): _int(v, f"observed.ipId.{k}", 0, 65535) for k, v in (o.get("ipId") or {}).items()},
        nginx_mtime=_int(_get(o, "nginxMtime", "observed", 1565690700), "observed.nginxMtime", 0, 2**33),
        ts_lag_ticks={_int(k, "observed.tsLagTicks", 0, 999): _int(v, f"observed.tsLagTicks.{k}", 0, 1000)
                      for k, v in (o.get("tsLagTicks") or {}).items()},
    )
    for k in observed.vxlan_sport:
        if k not in node_by:
            raise CourseError(f"observed.vxlanSourcePort.{k}", f"unknown node {k!r}", ", ".join(node_by))

    tr = _get(raw, "timing", "", {})
    timing = Timing(**{k: _int(_get(tr, c, "timing", d), f"timing.{c}", 0, 10**7) for k, c, d in [
        ("veth_us", "vethUs", 1), ("bridge_us", "bridgeUs", 2), ("forward_us", "forwardUs", 5),
        ("encap_us", "encapUs", 3), ("wire_us", "wireUs", 40), ("decap_us", "decapUs", 3),
        ("process_us", "processUs", 40), ("arp_us", "arpUs", 10)]})

    names = raw.get("names") or {}
    hosts = names.get("hosts")
    if hosts is None:
        hosts = {str(n.nic.ip): n.hostname for n in nodes}
    for k, v in hosts.items():
        if not _HOSTNAME.match(str(v)) or len(str(v)) > 253:
            raise CourseError(f"names.hosts.{k}", f"{v!r} is not a host name", "letters, digits, '-' and '.'")
    host_names = tuple(sorted((str(_ip(k, f"names.hosts.{k}")), str(v)) for k, v in hosts.items()))
    svcs = names.get("services", {"http": "80/tcp", "otv": "8472/udp"})
    service_names = []
    for sn, spec in svcs.items():
        m = re.match(r"^(\d+)/(tcp|udp)\Z", str(spec))
        if not m:
            raise CourseError(f"names.services.{sn}", f"{spec!r} is not port/protocol", "e.g. 80/tcp")
        if not re.match(r"^[A-Za-z0-9][-A-Za-z0-9_.+]{0,31}\Z", str(sn)):
            raise CourseError(f"names.services.{sn}", f"{sn!r} is not a service name", "e.g. http, otv")
        service_names.append((_port(int(m.group(1)), f"names.services.{sn}"), m.group(2), str(sn)))

    caches = str(raw.get("neighbourCaches", "warm"))
    if caches not in ("warm", "cold"):
        raise CourseError("neighbourCaches", f"{caches!r} is not a cache state", "warm, cold")
    sc = Scenario(
        name=name, description=str(raw.get("description", "")).strip(), utc_offset_minutes=utc,
        flannel=flannel, service_cidr=service_cidr, kube_proxy=kube_proxy, nodes=tuple(nodes),
        pods=tuple(pods), services=tuple(services), request=request, observed=observed, timing=timing,
        host_names=host_names, service_names=tuple(sorted(service_names)), neighbour_caches=caches,
        externals=tuple(externals), provenance=parse_entries(raw.get("provenance")), source=source, raw=raw,
        dns=dns)
    if raw.get("fault") is not None:
        from .faults import parse_fault
        sc = dataclasses.replace(sc, fault=parse_fault(raw["fault"], sc))
    # anchor must be a real interface
    if sc.observed.anchor[1] not in sc.interfaces(sc.observed.anchor[0]):
        raise CourseError("observed.anchor.interface", f"unknown interface {sc.observed.anchor[1]!r}",
                          ", ".join(sc.interfaces(sc.observed.anchor[0])))
    _cross_checks(sc, raw)
    if dns is not None:
        _check_dns(sc)
    return sc


def _parse_dns(raw: dict, add_pod, pods: list, services: list, service_cidr, node_by: dict):
    """``dns:``: kube-dns (a CoreDNS pod in kube-system and its Service) and what the client resolves.

    The Service is CoreDNS's add-on manifest of Kubernetes 1.14 (ports dns 53/UDP,
    dns-tcp 53/TCP, metrics 9153/TCP; selector k8s-app: kube-dns); the pod gets
    the next free address of its node, as Docker's IPAM hands it out.
    """
    dr = raw.get("dns")
    if dr is None:
        return None
    from .dns import DnsConfig
    f = "dns"
    sr = _get(dr, "server", f, {}) or {}
    node = str(_get(sr, "node", f + ".server"))
    if node not in node_by:
        raise CourseError(f + ".server.node", f"unknown node {node!r}", ", ".join(node_by))
    sname = _name(_get(sr, "name", f + ".server", "coredns"), f + ".server.name")
    if sname in {p.name for p in pods} or sname in node_by:
        raise CourseError(f + ".server.name", f"{sname!r} is already a pod or a node", "a name of its own")
    ip = sr.get("ip")
    if ip is None:
        taken = {str(p.ip) for p in pods}
        n = node_by[node]
        ip = next((h for h in n.subnet.hosts() if h != n.docker.bridge_ip and str(h) not in taken), None)
        if ip is None:
            raise CourseError(f + ".server.ip", f"{node}'s pod subnet has no free address", "a free address")
    add_pod(sname, "kube-system", node, _ip(ip, f + ".server.ip"), f + ".server", {"k8s-app": "kube-dns"}, 53, sr)
    domain = str(_get(dr, "domain", f, "cluster.local")).rstrip(".").lower()
    if not _HOSTNAME.match(domain) or len(domain) > 200 or ".." in domain:
        raise CourseError(f + ".domain", f"{domain!r} is not a DNS domain", "e.g. cluster.local")
    cip = _ip(_get(dr, "clusterIP", f, str(service_cidr.network_address + 10)), f + ".clusterIP")
    if cip not in service_cidr or cip in (service_cidr.network_address, service_cidr.broadcast_address):
        raise CourseError(f + ".clusterIP", f"{cip} is not a usable address of serviceCIDR {service_cidr}",
                          f"{service_cidr[1]}-{service_cidr[-2]}")
    if cip in {x.cluster_ip for x in services}:
        raise CourseError(f + ".clusterIP", f"{cip} is already another Service's", "one cluster IP per Service")
    if "kube-dns" in {x.name for x in services}:
        raise CourseError(f, "the manifests already define a Service kube-dns", "no kube-dns in the manifests")
    services.append(Service(name="kube-dns", namespace="kube-system", cluster_ip=cip, ports=(
        ServicePort("dns", 53, 53, "UDP"), ServicePort("dns-tcp", 53, 53, "TCP"),
        ServicePort("metrics", 9153, 9153, "TCP")), selector=(("k8s-app", "kube-dns"),)))
    name = str(_get(dr, "name", f))
    labels = name.rstrip(".").split(".")
    if not name or len(name) > 200 or not all(re.match(r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?\Z", x)
                                             for x in labels):
        raise CourseError(f + ".name", f"{name!r} is not a host name", "e.g. nginx.default.svc.cluster.local or nginx")
    ports = dr.get("sourcePorts") or []
    ids = dr.get("ipIds") or []
    return DnsConfig(
        name=name, domain=domain, cluster_ip=cip, server=sname,
        source_ports=tuple(_int(p, f"{f}.sourcePorts.{i}", 1024, 65535, "a UDP source port the kernel picks")
                           for i, p in enumerate(ports)),
        ip_ids=tuple(_int(x, f"{f}.ipIds.{i}", 0, 65535) for i, x in enumerate(ids)),
        ttl=_int(_get(dr, "ttl", f, 5), f + ".ttl", 0, 3600, "the kubernetes plugin's ttl (0-3600)"),
        soa_serial=_int(_get(dr, "soaSerial", f, 0), f + ".soaSerial", 0, 2**32 - 1),
        start_us=None)


def _check_dns(sc: Scenario) -> None:
    """The name must resolve, inside the cluster zone, to the address the request then connects to."""
    from .dns import plan, resolved
    d = sc.dns
    if not hasattr(sc.client, "namespace"):
        raise CourseError("dns", f"the client {sc.client.name} is not a pod (only a pod's resolv.conf is modelled)",
                          "request.client: a pod")
    ip = resolved(sc)                                 # every name asked inside the zone
    if ip is None:
        raise CourseError("dns.name", f"{d.name} does not resolve (no Service of that name)",
                          ", ".join(f"{s.name}.{s.namespace}.svc.{d.domain}" for s in sc.services))
    if sc.request.ip is not None or sc.request.node is not None or ip != sc.target_ip:
        raise CourseError("dns.name", f"{d.name} resolves to {ip}, but the request goes to {sc.target_ip}",
                          "the name of request.service's Service")
    plan(sc)                                          # one source port per query



def _cross_checks(sc: Scenario, raw: dict) -> None:
    """What a real node or Kubernetes would refuse once every part is known."""
    node_names = {n.name for n in sc.nodes}
    for p in sc.pods:
        if p.name in node_names:
            raise CourseError(f"pods.{p.name}", f"pod {p.name!r} has a node's name; the course names interfaces "
                              "by node or pod, so the two must differ", "a name no node has")
    # overrides must name something that exists
    for sname, over in (raw.get("services") or {}).items():
        if sname not in {s.name for s in sc.services}:
            raise CourseError(f"services.{sname}", f"no Service {sname!r} in the manifests{suggest(sname, [s.name for s in sc.services])}",
                              ", ".join(s.name for s in sc.services) or "(no manifests)")
        svc = sc.service(sname)
        for j in ((over or {}).get("ports") or {}):
            if int(j) >= len(svc.ports):
                raise CourseError(f"services.{sname}.ports.{j}", f"the Service has {len(svc.ports)} port(s)",
                                  f"0-{len(svc.ports) - 1}")
    deps = {p.name.rsplit("-", 1)[0] for p in sc.pods if p.name not in (raw.get("pods") or {})}
    for wname, w in (raw.get("workloads") or {}).items():
        if wname not in deps:
            raise CourseError(f"workloads.{wname}", f"no Deployment {wname!r} in the manifests{suggest(wname, deps)}",
                              ", ".join(sorted(deps)) or "(no manifests)")
        n = len([p for p in sc.pods if p.name.rsplit("-", 1)[0] == wname and p.name not in (raw.get("pods") or {})])
        for i in ((w or {}).get("pods") or {}):
            if not 1 <= int(i) <= n:
                raise CourseError(f"workloads.{wname}.pods.{i}", f"the Deployment has {n} replica(s)", f"1-{n}")
    # devices on one node: the kernel refuses a second device with a name (EEXIST)
    for n in sc.nodes:
        owners = {"lo": "the loopback device", sc.flannel.device: "flannel's VTEP", "docker0": "Docker's bridge"}
        for name, f, what in [(n.nic.name, f"nodes.{n.name}.nic.name", "the NIC")] + \
                [(p.veth, f"pods.{p.name}.veth" if p.name in (raw.get("pods") or {}) else
                  "dns.server.veth" if sc.dns is not None and p.name == sc.dns.server else
                  f"workloads.{p.name.rsplit('-', 1)[0]}.pods.{p.name.rsplit('-', 1)[1]}.veth", f"{p.name}'s veth")
                 for p in sc.pods_on(n.name)]:
            if name in owners:
                raise CourseError(f, f"{name!r} is already {owners[name]} on {n.name} (the kernel refuses a second "
                                  "device of one name: File exists)", "a name no other device on the node has")
            owners[name] = what
    # MACs: unique on each layer-2 segment, never all zero
    segments: dict[str, list[tuple[str, str]]] = {"underlay": [], "flannel": []}
    for x in sc.externals:
        segments["underlay"].append((x.nic.mac, f"externalHosts.{x.name}.nic.mac"))
    for n in sc.nodes:
        segments["underlay"].append((n.nic.mac, f"nodes.{n.name}.nic.mac"))
        segments["flannel"].append((n.vtep_mac, f"nodes.{n.name}.vtepMac"))
        seg = segments.setdefault(f"{n.name} docker0", [])
        seg.append((n.docker.bridge_mac, f"nodes.{n.name}.docker.bridgeMac"))
        for p in sc.pods_on(n.name):
            seg += [(p.mac, f"pods.{p.name}.mac"), (p.veth_mac, f"pods.{p.name}.vethMac")]
    for where, macs in segments.items():
        seen: dict[str, str] = {}
        for mac, f in macs:
            if mac == "00:00:00:00:00:00":
                raise CourseError(f, "00:00:00:00:00:00 is not a usable MAC address (the kernel refuses it)",
                                  "a unicast MAC, e.g. 02:42:ac:1e:53:09")
            if mac in seen:
                raise CourseError(f, f"{mac} is also {seen[mac]} on the {where} segment", "one MAC per device on a segment")
            seen[mac] = f
    # the conversation's segments and their times (what the walk would refuse, refused now)
    from .conversation import segments
    from .kernel.engine import schedule
    schedule(sc, segments(sc))
    # the request must fit one segment: the model sends it in one write
    from .conversation import TS_OPTION_LEN, wget_request
    req = wget_request(f"{sc.target_ip}:{sc.target_dport}", sc.request.path, sc.request.user_agent,
                       sc.request.method)
    room = min(sc.client.mtu, sc.server.mtu) - 40 - TS_OPTION_LEN
    if len(req) > room:
        raise CourseError("request.path", f"the request is {len(req)} bytes; one segment carries at most {room} "
                          f"(MSS {min(sc.client.mtu, sc.server.mtu) - 40} less 12 bytes of TCP timestamps), and the "
                          "model sends the request in one segment", f"a path and User-Agent that fit {room} bytes")


# --------------------------------------------------------------------------
# Views of the scenario for a chapter
# --------------------------------------------------------------------------

@public
def manifest_text(sc) -> str:
    """The Kubernetes manifests the scenario's workloads come from, verbatim.

    ``sc``: anything :func:`as_scenario` accepts.

    Taught in: 00-the-scenario.
    """
    sc = as_scenario(sc)
    path = sc.raw.get("manifests")
    if not path:
        return "(this scenario declares its pods directly, without manifests)"
    return read_text(Path(path), "manifests")


def _short(value: Any, limit: int = 40) -> str:
    text = str(value) if not isinstance(value, (dict, list)) else ("{...}" if isinstance(value, dict) else "[...]")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def provenance_lines(sc) -> list[str]:
    """The scenario's labelled values, grouped: observed (printed in the article), inferred (deduced from it),
    then assumed (stand-ins)."""
    from .provenance import _raw_has
    out = ["where the values come from (computed: derived by the model; observed: printed in the article; "
           "inferred: deduced from what it prints, other explanations possible; assumed: a plausible stand-in):"]
    for label in ("observed", "inferred", "assumed", "computed"):
        rows = [(p, why) for p, lb, why in sc.provenance if lb == label]
        if not rows:
            continue
        out.append(f"  {label}")
        for path, why in rows:
            d: Any = sc.raw
            for k in path.split("."):
                d = d.get(k, d.get(int(k)) if k.isdigit() else None) if isinstance(d, dict) else \
                    (d[int(k)] if isinstance(d, list) and k.isdigit() and int(k) < len(d) else None)
            if path == "manifests" and isinstance(d, str):
                d = Path(d).name                   # never a machine's absolute path
            shown = f" = {_short(d)}" if _raw_has(sc.raw, path) and not isinstance(d, (dict, list)) else ""
            out.append(f"    {path}{shown}: {why}")
    out.append("  assumed: every value not listed above (the file's own or the model's default)")
    out.append("  computed: every address after NAT, TTL, length, checksum, seq/ack, MSS and outer header")
    return out


@public
def describe(sc) -> str:
    """The cluster as a few tables: nodes, pods, the Service, the request and the observed inputs.

    ``sc``: anything :func:`as_scenario` accepts.

    Taught in: 00-the-scenario.
    """
    sc = as_scenario(sc)
    lines = [f"scenario {sc.name}: flannel {sc.flannel.backend} VNI {sc.flannel.vni} UDP {sc.flannel.port}, "
             f"pod network {sc.flannel.network}, serviceCIDR {sc.service_cidr}", "", "nodes"]
    for n in sc.nodes:
        lines.append(f"  {n.name:<8} {n.nic.name} {n.nic.ip}/{n.nic.network.prefixlen} (MTU {n.nic.mtu})  "
                     f"pod subnet {n.subnet}  docker0 {n.docker.bridge_ip} (MTU {n.docker.mtu})  "
                     f"{sc.flannel.device} {n.vtep_ip}")
    lines += ["", "pods"]
    for p in sc.pods:
        lines.append(f"  {p.name:<8} on {p.node:<8} eth0 {str(p.ip):<13} MAC {p.mac}  host side {p.veth}")
    lines += ["", "services"]
    for s in sc.services:
        ports = ", ".join(f"{p.port}->{p.target_port}/{p.protocol}" for p in s.ports)
        eps = ", ".join(str(p.ip) for p in sc.endpoints(s))
        lines.append(f"  {s.name:<8} clusterIP {s.cluster_ip}  ports {ports}  endpoints {eps}")
    r, o = sc.request, sc.observed
    if sc.externals:
        lines += ["", "external hosts (on the underlay)"]
    for x in sc.externals:
        lines.append(f"  {x.name:<8} {x.nic.name} {x.ip}/{x.nic.network.prefixlen} MAC {x.mac}")
    target = (f"{r.service} {sc.target_ip}" if r.ip is None and r.node is None else
              f"{r.ip} ({sc.server.name})" if r.ip is not None else f"{r.service} via {r.node} {sc.target_ip}")
    lines += ["", f"request: {r.client} -> {target}:{sc.target_dport}  "
                  f"{r.method} {r.path} (User-Agent: {r.user_agent})"]
    lines += ["", "inputs chosen by the kernel or the clock on the day (not computed):",
              f"  client port {o.client_port}, client ISN {o.client_isn}, server ISN {o.server_isn}, "
              f"outer source ports {dict(o.vxlan_sport) or '(computed from the flow hash)'}"]
    if o.times_us:
        from .provenance import of_path
        labels = [of_path(sc, f"observed.times.{i}").label for i in range(len(o.times_us))]
        counts = ", ".join(f"{labels.count(k)} {k}" for k in ("observed", "inferred", "assumed")
                           if labels.count(k))
        lines.append(f"  segment times at {o.anchor[0]} {o.anchor[1]}: {counts}")
    else:
        lines.append(f"  segment times at {o.anchor[0]} {o.anchor[1]}: modelled from observed.start and timing")
    lines += ["", *provenance_lines(sc)]
    return "\n".join(lines)
