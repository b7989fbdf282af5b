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
numbers, checksums, outer headers) is *computed* by the datapath.

Naming scheme (as on real nodes): the physical NIC is ``enp4s0``, the VTEP is
``flannel.<VNI>``, the bridge is ``docker0``, a pod's host-side veth is
``veth`` + 7 hex digits, and the pod's side is ``eth0``.

Taught in: 00-the-scenario.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import CourseError
from .vxlan import VXLAN_HEADROOM

__all__ = [
    "Scenario", "Node", "Nic", "Docker", "Flannel", "KubeProxy", "Pod",
    "Service", "ServicePort", "Request", "Observed", "Timing",
    "load_scenario", "default_scenario", "scenario_from_dict", "raw_scenario",
    "data_dir", "docker_mac", "VXLAN_OVERHEAD",
]

#: Bytes VXLAN adds on the wire: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
#: (the kernel's ``VXLAN_HEADROOM``, flannel's ``encapOverhead``).
VXLAN_OVERHEAD = VXLAN_HEADROOM   # the kernel's 20 + 8 + 8 + 14: flannel.1's MTU is the NIC's minus this

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


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


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    target_port: int
    protocol: str


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
    service: str
    port: int
    method: str
    path: str
    user_agent: str


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
    source: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)

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
    def client(self) -> Pod:
        return self.pod(self.request.client)

    @property
    def server(self) -> Pod:
        svc = self.service(self.request.service)
        return self.endpoints(svc)[self.observed.endpoint]

    @property
    def service_port(self) -> ServicePort:
        svc = self.service(self.request.service)
        for sp in svc.ports:
            if sp.port == self.request.port:
                return sp
        raise CourseError("request.port", f"service {svc.name} has no port {self.request.port}",
                          ", ".join(str(p.port) for p in svc.ports))

    def interfaces(self, node: str) -> list[str]:
        """Interfaces tcpdump can listen on, on a node or inside a pod."""
        for p in self.pods:
            if p.name == node:
                return ["eth0"]
        self.node(node)
        return [self.node(node).nic.name, self.flannel.device, "docker0"] + \
            [p.veth for p in self.pods_on(node)]

    def mtu_of(self, node: str, iface: str) -> int:
        """The MTU of an interface, as ``ip link`` would show it."""
        for p in self.pods:
            if p.name == node:
                return p.mtu
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
        raw = copy.deepcopy(self.raw)
        for path, value in changes.items():
            _set_path(raw, path, value)
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
    keys = path.split(".")
    d = raw
    for k in keys[:-1]:
        if isinstance(d, list):
            d = d[int(k)]
            continue
        d = d.setdefault(k, {})
    if isinstance(d, list):
        d[int(keys[-1])] = value
    else:
        d[keys[-1]] = value


def _read_yaml(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CourseError(what, f"no such file: {path.name}") from None
    try:
        return list(yaml.safe_load_all(text)) if what == "manifests" else yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise CourseError(what, f"{path.name} is not valid YAML{where}") from None


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix not in (".yaml", ".yml") and not p.exists():
        p = data_dir() / "scenarios" / f"{p}.yaml"
    return p


def raw_scenario(path: str | Path) -> dict:
    """The scenario file as a dict, with ``extends:`` applied (not validated)."""
    p = _resolve(path)
    raw = _read_yaml(p, "scenario")
    if not isinstance(raw, dict):
        raise CourseError("scenario", f"{p.name} must be a YAML mapping")
    parent = raw.pop("extends", None)
    if parent:
        base = raw_scenario(p.parent / parent)
        raw = _deep_merge(base, raw)
    if "manifests" in raw and not Path(raw["manifests"]).is_absolute():
        raw["manifests"] = str((p.parent / raw["manifests"]).resolve())
    return raw


def load_scenario(path: str | Path = "article", overrides: dict | None = None) -> Scenario:
    """Load and validate a scenario by name (``"article"``) or path.

    >>> s = load_scenario("article")
    >>> str(s.server.ip), s.flannel.port
    ('172.30.20.2', 8472)

    Taught in: 00-the-scenario.
    """
    raw = raw_scenario(path)
    for k, v in (overrides or {}).items():
        _set_path(raw, k, v)
    return scenario_from_dict(raw, source=str(_resolve(path)))


def default_scenario() -> Scenario:
    """The article's cluster (``data/scenarios/article.yaml``)."""
    return load_scenario("article")


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
    if not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", v):
        raise CourseError(field, f"{value!r} is not a valid name", "lower-case letters, digits, '-' and '.'")
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
                      r"(Z|[+-]\d{2}:\d{2})$")


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
    m = re.match(r"^(?:UTC)?([+-])(\d{2}):(\d{2})$", str(value).strip())
    if not m:
        raise CourseError(field, f"{value!r} is not a UTC offset", "e.g. +08:00 or -05:30")
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    if minutes > 14 * 60:
        raise CourseError(field, f"{value!r} is out of range", "-14:00 to +14:00")
    return minutes if m.group(1) == "+" else -minutes


# --------------------------------------------------------------------------
# Manifests
# --------------------------------------------------------------------------

def _parse_manifests(path: str) -> tuple[list[dict], list[dict]]:
    docs = [d for d in _read_yaml(Path(path), "manifests") if d]
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    services = [d for d in docs if d.get("kind") == "Service"]
    return deployments, services


# --------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------

def scenario_from_dict(raw: dict, source: str = "") -> Scenario:
    """Validate a scenario mapping; raise :class:`CourseError` on the first problem."""
    raw = copy.deepcopy(raw)
    name = str(_get(raw, "name", "", "scenario"))
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
        vni=_int(_get(fr, "vni", "flannel", 1), "flannel.vni", 1, (1 << 24) - 1, "a VXLAN network identifier"),
        port=_port(_get(fr, "port", "flannel", 8472), "flannel.port"),
        ip_masq=_bool(_get(fr, "ipMasq", "flannel", False), "flannel.ipMasq"),
        udp_checksum=_bool(_get(fr, "udpChecksum", "flannel", True), "flannel.udpChecksum"),
        version=str(_get(fr, "version", "flannel", "v0.11.0")),
    )

    service_cidr = _net(_get(raw, "serviceCIDR", "", "10.254.0.0/16"), "serviceCIDR")
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
        version=str(_get(kr, "version", "kubeProxy", "1.14")),
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
        if ip == net.network_address or ip == net.broadcast_address:
            raise CourseError(f + ".nic.address", f"{ip} is the network or broadcast address of {net}",
                              f"{net[1]}-{net[-2]}")
        nic = Nic(name=str(_get(nic_r, "name", f + ".nic", "enp4s0")), ip=ip, network=net,
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
        nodes.append(Node(
            name=nname, hostname=_name(_get(nd, "hostname", f, nname), f + ".hostname"),
            nic=nic, subnet=subnet,
            vtep_mac=_mac(_get(nd, "vtepMac", f, _local_mac(nname, "vtep")), f + ".vtepMac"),
            docker=docker,
            default_ttl=_int(_get(nd, "defaultTTL", f, 64), f + ".defaultTTL", 2, 255),
            ephemeral_ports=(_port(lo, f + ".ephemeralPorts"), _port(hi, f + ".ephemeralPorts")),
            br_netfilter=_bool(_get(nd, "bridgeNfCallIptables", f, True), f + ".bridgeNfCallIptables"),
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
                labels: dict, cport: int | None, pr: dict) -> None:
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
        veth = pr.get("veth") or "veth" + _stable("veth", node, pname).hex()[:7]
        if not re.match(r"^[a-zA-Z0-9_.-]{1,15}$", veth):
            raise CourseError(f + ".veth", f"{veth!r} is not a Linux interface name", "1-15 letters, digits, . _ -")
        pods.append(Pod(
            name=pname, namespace=ns, node=node, ip=ip,
            mac=_mac(pr.get("mac") or docker_mac(ip), f + ".mac"),
            mtu=n.docker.mtu, veth=veth,
            veth_mac=_mac(pr.get("vethMac") or _local_mac(node, pname, "veth"), f + ".vethMac"),
            labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
            container_port=cport))

    for pname, pr in (_get(raw, "pods", "", {}) or {}).items():
        f = f"pods.{pname}"
        add_pod(_name(pname, "pods"), str(pr.get("namespace", "default")), str(_get(pr, "node", f)),
                _ip(_get(pr, "ip", f), f + ".ip"), f, pr.get("labels") or {}, None, pr)

    services: list[Service] = []
    manifests = raw.get("manifests")
    wl = raw.get("workloads") or {}
    if manifests:
        deployments, svc_docs = _parse_manifests(manifests)
        for dep in deployments:
            md = dep.get("metadata") or {}
            dname = str(md.get("name"))
            ns = str(md.get("namespace", "default"))
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
            cports = [p.get("containerPort") for c in tspec.get("containers") or [] for p in c.get("ports") or []]
            ips = w.get("podIPs")
            if ips is None:
                # Docker's IPAM hands out the bridge subnet in order after the
                # gateway (.1): the first container on meizu gets .2.
                taken = {str(p.ip) for p in pods}
                cand = (h for h in node_by[node].subnet.hosts() if h != node_by[node].docker.bridge_ip
                        and str(h) not in taken)
                ips = [str(next(cand)) for _ in range(replicas)]
            if len(ips) < replicas:
                raise CourseError(f + ".podIPs", f"{len(ips)} addresses for {replicas} replicas",
                                  "one address per replica")
            for i in range(replicas):
                add_pod(f"{dname}-{i + 1}", ns, node, _ip(ips[i], f"{f}.podIPs.{i}"), f"{f}.podIPs.{i}",
                        labels, cports[0] if cports else None,
                        (w.get("pods") or {}).get(i + 1) or (w.get("pods") or {}).get(str(i + 1)) or {})
        for sd in svc_docs:
            md = sd.get("metadata") or {}
            sname = str(md.get("name"))
            f = f"services.{sname}"
            over = (raw.get("services") or {}).get(sname) or {}
            spec = sd.get("spec") or {}
            ports = []
            for j, p in enumerate(spec.get("ports") or []):
                pover = over.get("ports") if isinstance(over.get("ports"), dict) else {}
                po = pover.get(j) or pover.get(str(j)) or {}     # YAML gives 0, a dotted override "0"
                port = _port(po.get("port", p.get("port")), f"{f}.ports.{j}.port")
                tp = _port(po.get("targetPort", p.get("targetPort", port)), f"{f}.ports.{j}.targetPort")
                ports.append(ServicePort(name=str(p.get("name") or ""), port=port, target_port=tp,
                                         protocol=str(p.get("protocol", "TCP")).upper()))
            cip = _ip(_get(over, "clusterIP", f), f + ".clusterIP")
            if cip not in service_cidr:
                raise CourseError(f + ".clusterIP", f"{cip} is outside serviceCIDR {service_cidr}",
                                  f"{service_cidr[1]}-{service_cidr[-2]}")
            services.append(Service(name=sname, namespace=str(md.get("namespace", "default")), cluster_ip=cip,
                                    ports=tuple(ports),
                                    selector=tuple(sorted((str(k), str(v)) for k, v in
                                                          (spec.get("selector") or {}).items()))))

    # request ----------------------------------------------------------------
    rr = _get(raw, "request", "")
    client = str(_get(rr, "client", "request"))
    if client not in {p.name for p in pods}:
        raise CourseError("request.client", f"unknown pod {client!r}", ", ".join(p.name for p in pods))
    sname = str(_get(rr, "service", "request"))
    if sname not in {s.name for s in services}:
        raise CourseError("request.service", f"unknown service {sname!r}", ", ".join(s.name for s in services))
    svc = next(s for s in services if s.name == sname)
    rport = _port(_get(rr, "port", "request", svc.ports[0].port if svc.ports else 80), "request.port")
    if rport not in {p.port for p in svc.ports}:
        raise CourseError("request.port", f"service {sname} does not listen on {rport}",
                          ", ".join(str(p.port) for p in svc.ports))
    request = Request(client=client, service=sname, port=rport,
                      method=str(_get(rr, "method", "request", "GET")), path=str(_get(rr, "path", "request", "/")),
                      user_agent=str(_get(rr, "userAgent", "request", "Wget")))

    # observed -----------------------------------------------------------------
    o = _get(raw, "observed", "", {})
    cnode = next(p for p in pods if p.name == client).node
    eps = sorted([p for p in pods if set(svc.selector) and set(svc.selector) <= set(p.labels)], key=lambda p: str(p.ip))
    if not eps:
        raise CourseError(f"services.{sname}.selector", "selects no pod", "labels of a Deployment's pods")
    endpoint = _int(_get(o, "endpoint", "observed", 0), "observed.endpoint", 0, len(eps) - 1,
                    "an index into the Service's endpoints")
    if eps[endpoint].node == cnode:
        raise CourseError("observed.endpoint",
                          f"endpoint {eps[endpoint].ip} runs on the client's node {cnode}; this course follows "
                          "traffic between nodes", "an endpoint on another node")
    lo, hi = node_by[cnode].ephemeral_ports
    anchor = _get(o, "anchor", "observed", {"node": eps[endpoint].node, "interface": "docker0"})
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
    host_names = tuple(sorted((str(_ip(k, f"names.hosts.{k}")), str(v)) for k, v in hosts.items()))
    svcs = names.get("services", {"http": "80/tcp", "otv": "8472/udp"})
    service_names = []
    for sn, spec in svcs.items():
        m = re.match(r"^(\d+)/(tcp|udp)$", str(spec))
        if not m:
            raise CourseError(f"names.services.{sn}", f"{spec!r} is not port/protocol", "e.g. 80/tcp")
        service_names.append((_port(int(m.group(1)), f"names.services.{sn}"), m.group(2), str(sn)))

    caches = str(raw.get("neighbourCaches", "warm"))
    if caches not in ("warm", "cold"):
        raise CourseError("neighbourCaches", f"{caches!r} is not a cache state", "warm, cold")
    sc = Scenario(
        name=name, description=str(raw.get("description", "")).strip(), utc_offset_minutes=utc,
        flannel=flannel, service_cidr=service_cidr, kube_proxy=kube_proxy, nodes=tuple(nodes),
        pods=tuple(pods), services=tuple(services), request=request, observed=observed, timing=timing,
        host_names=host_names, service_names=tuple(sorted(service_names)), neighbour_caches=caches,
        source=source, raw=raw)
    # anchor must be a real interface
    if sc.observed.anchor[1] not in sc.interfaces(sc.observed.anchor[0]):
        raise CourseError("observed.anchor.interface", f"unknown interface {sc.observed.anchor[1]!r}",
                          ", ".join(sc.interfaces(sc.observed.anchor[0])))
    return sc



# --------------------------------------------------------------------------
# Views of the scenario for a chapter
# --------------------------------------------------------------------------

def manifest_text(sc: Scenario) -> str:
    """The Kubernetes manifests the scenario's workloads come from, verbatim.

    Taught in: 00-the-scenario.
    """
    path = sc.raw.get("manifests")
    if not path:
        return "(this scenario declares its pods directly, without manifests)"
    return Path(path).read_text(encoding="utf-8")


def describe(sc: Scenario) -> str:
    """The cluster as a few tables: nodes, pods, the Service, the request and the observed inputs.

    Taught in: 00-the-scenario.
    """
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
    lines += ["", f"request: {r.client} -> {r.service} {sc.service(r.service).cluster_ip}:{r.port}  "
                  f"{r.method} {r.path} (User-Agent: {r.user_agent})",
              "", "observed inputs (chosen by the kernel or the clock on the day, not computed):",
              f"  client port {o.client_port}, client ISN {o.client_isn}, server ISN {o.server_isn}, "
              f"outer source ports {dict(o.vxlan_sport) or '(computed)'}",
              f"  segment times anchored at {o.anchor[0]} {o.anchor[1]}"
              + (f" ({len(o.times_us)} observed times)" if o.times_us else " (modelled)")]
    return "\n".join(lines)
