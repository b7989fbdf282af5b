"""The scenario as a graph of namespaces and devices (mininet's ``Node``/``Intf``/``Link``).

Naming, as on real nodes::

    node netns <node>:  enp4s0 (NIC, on the underlay wire)  flannel.<VNI> (VXLAN, /32)
                        docker0 (bridge)  veth<7 hex> (bridge ports, host ends of the pods' veths)
    pod netns <pod>:    eth0 (veth, peer of its host end)
    host netns <name>:  eth0 (NIC on the underlay wire): an external host (``externalHosts:``)

Tables come from the modules that own them: routes, neighbours and the VXLAN
FDB from :mod:`coursekit.routing`, nat rules from :mod:`coursekit.netfilter`
(kube-proxy's from :mod:`coursekit.kubeproxy`).  With ``neighbourCaches:
cold`` only permanent entries exist (flannel's) and bridges have learned
nothing.

Taught in: 06-the-whole-walk (the engine behind the walk).
"""

from __future__ import annotations

import weakref

from .. import routing
from ..netfilter import filter_table, nat_table
from .devices import Bridge, Nic, Veth, Vxlan, Wire
from .frame import mac_bytes
from .namespace import Namespace

__all__ = ["build", "links", "tables", "per_scenario"]

_MEMO: dict[int, tuple] = {}          # id(scenario) -> (weak reference, {what: value})


def per_scenario(sc, what, compute):
    """``compute()``, once per scenario object: for what depends on the scenario alone.

    A Scenario is immutable (a change makes a new one), so a value computed
    from it holds as long as it lives; the entry goes with the scenario.
    """
    got = _MEMO.get(id(sc))
    if got is None or got[0]() is not sc:
        key = id(sc)
        try:
            ref = weakref.ref(sc, lambda _r, key=key: _MEMO.pop(key, None))
        except TypeError:                                 # not weakly referenceable: no memo
            return compute()
        got = _MEMO[key] = (ref, {})
    memo = got[1]
    if what not in memo:
        memo[what] = compute()
    return memo[what]


def tables(sc) -> dict:
    """Each node's netfilter tables: nat rules, filter rules by chain and chain policies (once per scenario)."""
    return per_scenario(sc, "tables", lambda: {n.name: (nat_table(sc, n.name)[0],) + filter_table(sc, n.name)
                                               for n in sc.nodes})


def _tables_of(sc, table: str, name: str) -> tuple:
    """``routing.routes``/``neighbours`` of one namespace, once per scenario (their entries are immutable)."""
    return per_scenario(sc, (table, name), lambda: tuple(getattr(routing, table)(sc, name)))


def build(sc, warm: bool = True, nf: dict | None = None) -> tuple[dict[str, Namespace], Wire]:
    """Every namespace of the cluster, wired together (``nf``: :func:`tables`, if already built)."""
    nf = nf or tables(sc)
    nss: dict[str, Namespace] = {}
    wire = Wire()
    fl = sc.flannel
    for n in sc.nodes:
        ns = Namespace(n.name, "node", default_ttl=n.default_ttl, forwarding=True, netfilter=True,
                       ephemeral_ports=n.ephemeral_ports)
        nss[n.name] = ns
        nic = Nic(ns, n.nic.name, n.nic.mac, n.nic.mtu)
        nic.wire = wire
        wire.nics.append(nic)
        ns.add_address(nic.name, f"{n.nic.ip}/{n.nic.network.prefixlen}")
        from ..faults import vxlan_port
        vx = Vxlan(ns, fl.device, n.vtep_mac, sc.mtu_of(n.name, fl.device), fl.vni, vxlan_port(sc, n.name), n.nic.ip,
                   nic, fl.udp_checksum)
        vx.outer_id = sc.observed.ip_id.get(n.name, int.from_bytes(n.name.encode()[:2].ljust(2, b"\0"), "big"))
        ns.add_address(vx.name, f"{n.vtep_ip}/32")
        ns.udp_tunnels[vx.port] = vx
        for e in _tables_of(sc, "fdb", n.name):
            vx.fdb[mac_bytes(e.mac)] = e
        br = Bridge(ns, "docker0", n.docker.bridge_mac, n.docker.mtu, n.br_netfilter)
        ns.add_address(br.name, f"{n.docker.bridge_ip}/{n.subnet.prefixlen}")
        for p in sc.pods_on(n.name):
            pns = Namespace(p.name, "pod")
            nss[p.name] = pns
            host = Veth(ns, p.veth, p.veth_mac, p.mtu)
            pod = Veth(pns, "eth0", p.mac, p.mtu)
            host.peer, pod.peer = pod, host
            br.add_port(host)
            host.hairpin = n.hairpin_mode
            if warm:
                br.fdb[mac_bytes(p.mac)] = host
            pns.add_address("eth0", f"{p.ip}/{n.subnet.prefixlen}")
            pns.routes = list(_tables_of(sc, "routes", p.name))
            pns.neigh = {(e.dev, e.ip): e for e in _tables_of(sc, "neighbours", p.name) if warm or e.permanent}
        ns.routes = list(_tables_of(sc, "routes", n.name))
        ns.neigh = {(e.dev, e.ip): e for e in _tables_of(sc, "neighbours", n.name) if warm or e.permanent}
        nat, rules, policy = nf[n.name]
        ns.nat_rules, ns.filter_policy = list(nat), dict(policy)     # the namespace's own copies
        ns.filter_rules = {}
        for r in rules:                                   # grouped by chain once, not per packet
            ns.filter_rules.setdefault(r.chain, []).append(r)
    for x in sc.externals:
        ns = Namespace(x.name, "host", ephemeral_ports=(32768, 60999))
        nss[x.name] = ns
        nic = Nic(ns, x.nic.name, x.nic.mac, x.nic.mtu)
        nic.wire = wire
        wire.nics.append(nic)
        ns.add_address(nic.name, f"{x.nic.ip}/{x.nic.network.prefixlen}")
        ns.routes = [routing.Route(x.nic.network, nic.name, src=x.nic.ip, owner="kernel")]
    return nss, wire


def links(nss: dict[str, Namespace]) -> list[str]:
    """The graph's links, one line each (mininet's ``net.links``)."""
    out = []
    for ns in nss.values():
        for d in ns.devices.values():
            if isinstance(d, Veth) and ns.kind == "node":
                out.append(f"{ns.name}:{d.name} <-> {d.peer.ns.name}:{d.peer.name} (veth)")
            if d.master is not None:
                out.append(f"{ns.name}:{d.name} -> {ns.name}:{d.master.name} (bridge port)")
            if isinstance(d, Vxlan):
                out.append(f"{ns.name}:{d.name} -> {ns.name}:{d.lower.name} (VXLAN VNI {d.vni}, UDP {d.port})")
            if isinstance(d, Nic):
                out.append(f"{ns.name}:{d.name} -- underlay")
    return out
