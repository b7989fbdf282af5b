"""Routing tables, neighbour tables and the VXLAN FDB that flannel programs.

For every *remote* node flannel's vxlan backend writes three entries
(``backend/vxlan/vxlan_network.go``), shown here as ``ip`` and ``bridge``
print them on xiaomi::

    ip route     172.30.20.0/24 via 172.30.20.0 dev flannel.1 onlink
    ip neigh     172.30.20.0 dev flannel.1 lladdr <meizu's VTEP MAC> PERMANENT
    bridge fdb   <meizu's VTEP MAC> dev flannel.1 dst 10.167.226.39 self permanent

The route sends the inner packet to flannel.1 with "gateway" 172.30.20.0;
the neighbour entry turns that gateway into the remote VTEP's MAC (the inner
destination MAC); the FDB entry turns that MAC into the remote node's IP
(the outer destination).  No daemon is consulted per packet.

Taught in: 02-flannel, 03-docker0.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .errors import CourseError

__all__ = ["Route", "Neighbour", "FdbEntry", "routes", "lookup", "neighbours", "fdb",
           "ip_route", "route_n", "ip_neigh", "bridge_fdb", "interface_address", "ip_addr"]


@dataclass(frozen=True)
class Route:
    dst: ipaddress.IPv4Network
    dev: str
    via: ipaddress.IPv4Address | None = None
    onlink: bool = False
    src: ipaddress.IPv4Address | None = None   # proto kernel scope link src ...
    owner: str = ""                            # kernel, flannel, docker, admin

    def ip_route(self) -> str:
        """One line of ``ip route`` (iproute2 prints a trailing space)."""
        d = "default" if self.dst.prefixlen == 0 else str(self.dst)
        s = d
        if self.via:
            s += f" via {self.via}"
        s += f" dev {self.dev}"
        if self.src:
            s += f" proto kernel scope link src {self.src}"
        if self.onlink:
            s += " onlink"
        return s + " "


@dataclass(frozen=True)
class Neighbour:
    ip: ipaddress.IPv4Address
    dev: str
    mac: str
    permanent: bool = False
    owner: str = ""

    def ip_neigh(self) -> str:
        return f"{self.ip} dev {self.dev} lladdr {self.mac} {'PERMANENT' if self.permanent else 'REACHABLE'}"


@dataclass(frozen=True)
class FdbEntry:
    mac: str
    dev: str
    dst: ipaddress.IPv4Address
    owner: str = "flannel"

    def bridge_fdb(self, show_dev: bool = True) -> str:
        """One line of ``bridge fdb show``; ``show_dev=False`` as ``bridge fdb show dev <dev>`` prints it
        (iproute2 omits the device it was asked to filter by)."""
        dev = f" dev {self.dev}" if show_dev else ""
        return f"{self.mac}{dev} dst {self.dst} self permanent"


def _is_pod(scenario, name: str):
    for p in scenario.pods:
        if p.name == name:
            return p
    return None


def interface_address(scenario, node: str, dev: str) -> ipaddress.IPv4Address:
    """The primary IPv4 address of an interface (what MASQUERADE picks)."""
    pod = _is_pod(scenario, node)
    if pod:
        return pod.ip
    n = scenario.node(node)
    if dev == n.nic.name:
        return n.nic.ip
    if dev == scenario.flannel.device:
        return n.vtep_ip
    if dev == "docker0":
        return n.docker.bridge_ip
    raise CourseError("interface", f"{dev} on {node} has no IPv4 address", f"{n.nic.name}, flannel.N, docker0")


def routes(scenario, node: str) -> list[Route]:
    """The main routing table of a node, or of a pod (by pod name)."""
    pod = _is_pod(scenario, node)
    if pod:
        n = scenario.node(pod.node)
        return [Route(ipaddress.IPv4Network("0.0.0.0/0"), "eth0", via=n.docker.bridge_ip, owner="docker"),
                Route(n.subnet, "eth0", src=pod.ip, owner="kernel")]
    n = scenario.node(node)
    gw = n.nic.network.network_address + 1
    table = [Route(ipaddress.IPv4Network("0.0.0.0/0"), n.nic.name, via=gw, owner="admin")] if n.default_route else []
    table += [Route(n.nic.network, n.nic.name, src=n.nic.ip, owner="kernel")]
    from .faults import route_missing
    for other in scenario.nodes:
        if other.name != n.name and not route_missing(scenario, n.name, other.name):
            table.append(Route(other.subnet, scenario.flannel.device, via=other.vtep_ip, onlink=True,
                               owner="flannel"))
    table.append(Route(n.subnet, "docker0", src=n.docker.bridge_ip, owner="kernel"))
    return sorted(table, key=lambda r: (r.dst.prefixlen != 0, int(r.dst.network_address), r.dst.prefixlen))


def lookup(scenario, node: str, dst: ipaddress.IPv4Address) -> Route | None:
    """Longest-prefix match (the kernel's FIB lookup for the main table); None: no route."""
    best = None
    for r in routes(scenario, node):
        if dst in r.dst and (best is None or r.dst.prefixlen > best.dst.prefixlen):
            best = r
    return best


def neighbours(scenario, node: str) -> list[Neighbour]:
    """Neighbour entries a warm cache holds (flannel's are permanent)."""
    pod = _is_pod(scenario, node)
    if pod:
        n = scenario.node(pod.node)
        return [Neighbour(n.docker.bridge_ip, "eth0", n.docker.bridge_mac, owner="arp")]
    n = scenario.node(node)
    out = []
    for other in scenario.nodes:
        if other.name != n.name:
            out.append(Neighbour(other.nic.ip, n.nic.name, other.nic.mac, owner="arp"))
            out.append(Neighbour(other.vtep_ip, scenario.flannel.device, other.vtep_mac, permanent=True,
                                 owner="flannel"))
    for p in scenario.pods_on(n.name):
        out.append(Neighbour(p.ip, "docker0", p.mac, owner="arp"))
    return out


def neighbour(scenario, node: str, dev: str, ip: ipaddress.IPv4Address) -> Neighbour:
    for e in neighbours(scenario, node):
        if e.dev == dev and e.ip == ip:
            return e
    raise CourseError("neighbour", f"{node} has no neighbour {ip} on {dev}")


def fdb(scenario, node: str) -> list[FdbEntry]:
    """flannel.1's forwarding database: remote VTEP MAC -> remote node IP."""
    from .faults import fdb_missing
    n = scenario.node(node)
    return [FdbEntry(o.vtep_mac, scenario.flannel.device, o.nic.ip) for o in scenario.nodes
            if o.name != n.name and not fdb_missing(scenario, n.name, o.name)]


def ip_route(scenario, node: str) -> str:
    """``ip route`` on a node or in a pod."""
    return "\n".join(r.ip_route() for r in routes(scenario, node)) + "\n"


def route_n(scenario, node: str) -> str:
    """``route -n`` (net-tools): flags U (up), G (gateway)."""
    lines = ["Kernel IP routing table",
             "Destination     Gateway         Genmask         Flags Metric Ref    Use Iface"]
    for r in routes(scenario, node):
        flags = "U" + ("G" if r.via else "")
        lines.append(f"{str(r.dst.network_address):<15} {str(r.via or '0.0.0.0'):<15} "
                     f"{str(r.dst.netmask):<15} {flags:<5} {0:<6} {0:<6} {0:>3} {r.dev}")
    return "\n".join(lines) + "\n"


def ip_neigh(scenario, node: str) -> str:
    return "\n".join(e.ip_neigh() for e in neighbours(scenario, node)) + "\n"


def bridge_fdb(scenario, node: str) -> str:
    """``bridge fdb show dev flannel.1``: the device is not repeated on each line (checked against
    iproute2's ``bridge`` on a VXLAN device in a network namespace).

    Taught in: 02-flannel.
    """
    # an empty FDB prints nothing at all (not an empty line): checked on the kernel (tests/test_labfaults.py)
    return "".join(e.bridge_fdb(show_dev=False) + "\n" for e in fdb(scenario, node))


def ip_addr(scenario, node: str) -> str:
    """``ip -4 -br addr`` on a node: each interface with its IPv4 address and prefix.

    flannel.1 holds the node's subnet ``.0`` as a /32 (flannel: "so that no
    broadcast routes are created"); docker0 holds ``.1`` of the same /24
    (``--bip``, from FLANNEL_SUBNET).  A VXLAN device reports operstate
    UNKNOWN.  Taught in: 02-flannel.
    """
    n = scenario.node(node)
    rows = [("lo", "UNKNOWN", "127.0.0.1/8"),
            (n.nic.name, "UP", f"{n.nic.ip}/{n.nic.network.prefixlen}"),
            (scenario.flannel.device, "UNKNOWN", f"{n.vtep_ip}/32"),
            ("docker0", "UP", f"{n.docker.bridge_ip}/{n.subnet.prefixlen}")]
    return "".join(f"{name:<16} {state:<14} {addr} \n" for name, state, addr in rows)
