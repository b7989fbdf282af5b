"""Network devices as Linux has them: what each does with a frame it sends or receives.

``xmit`` is the frame leaving by the device (tcpdump ``-Q out`` sees it
there), ``receive`` the frame arriving on it (``-Q in``).  Every transition
adds the scenario's latency for that kind of hop (``timing:``)::

    Veth    xmit -> the peer's receive                         (vethUs)
    Bridge  port receive -> FDB: own MAC -> up to the host     (bridgeUs)
                                 known MAC -> that port's xmit (bridgeUs)
                                 broadcast/unknown -> flood    (bridgeUs)
            xmit (from the host) -> FDB -> a port's xmit       (bridgeUs)
    Vxlan   xmit -> FDB(inner dst MAC) -> outer UDP -> the underlay device's xmit  (encapUs)
            receive <- the UDP socket on the VXLAN port, after decapsulation       (decapUs)
    Nic     xmit -> every NIC on the wire whose MAC matches (or all, broadcast)    (wireUs)

Taught in: 03-docker0, 02-flannel (the engine behind the walk).
"""

from __future__ import annotations

from ..datapath import Decision
from .frame import ETH_P_IP, dst_of, ethertype, mac_bytes, set_macs, tuple_of, vxlan_encap
from ..vxlan import flow_hash, node_seed, udp_flow_src_port
from .hooks import run_tunnel_hook

__all__ = ["Device", "Veth", "Bridge", "Vxlan", "Nic", "Wire"]

BROADCAST = b"\xff" * 6


class Device:
    kind = "device"

    def __init__(self, ns, name: str, mac: str, mtu: int):
        self.ns, self.name, self.mac, self.mtu = ns, name, mac, mtu
        self.mac_b = mac_bytes(mac)
        self.master: Bridge | None = None
        self.hairpin = False                              # as a bridge port: may frames leave by their ingress port?
        ns.devices[name] = self

    def __repr__(self):
        return f"<{self.kind} {self.ns.name}:{self.name}>"

    def receive(self, net, skb, t: int, dec: list) -> None:
        net.observe(self, "in", t, skb, dec)
        if self.master is not None:
            self.master.handle_frame(net, self, skb, t)
        else:
            self.ns.rx(net, self, skb, t)

    def xmit(self, net, skb, t: int, dec: list) -> None:
        raise NotImplementedError


class Veth(Device):
    """One end of a veth pair; what one end sends, the other receives."""
    kind = "veth"
    peer: "Veth"

    def _pair(self) -> tuple[str, str]:
        pod_end = self.peer if self.ns.kind == "node" else self
        host_end = self if pod_end is self.peer else self.peer
        return host_end.name, f"{pod_end.name} of {pod_end.ns.name}"

    def xmit(self, net, skb, t, dec):
        host, pod = self._pair()
        if self.ns.kind == "node":
            dec.append(Decision("veth", "veth pair", f"{host} <-> {pod}", "same frame on the other end of the pair"))
        net.observe(self, "out", t, skb, dec)
        peer = self.peer
        pd = [Decision("veth", "veth pair", f"{host} <-> {pod}",
                       "delivered to the pod" if peer.ns.kind == "pod" else "same frame on the other end of the pair")]
        if peer.ns is not self.ns:
            skb.marks = 0                   # dev_forward_skb -> skb_scrub_packet(xnet): a mark stays in its namespace
        peer.receive(net, skb, t + net.timing.veth_us, pd)


class Bridge(Device):
    """A Linux bridge (``docker0``): FDB learning, forwarding, flooding, and the host's port."""
    kind = "bridge"

    def __init__(self, ns, name, mac, mtu, br_netfilter: bool):
        super().__init__(ns, name, mac, mtu)
        self.ports: list[Device] = []
        self.fdb: dict[bytes, Device] = {}          # learned: MAC -> port
        self.br_netfilter = br_netfilter

    def add_port(self, dev: Device) -> None:
        dev.master = self
        self.ports.append(dev)

    def fdb_show(self, mac: str) -> str:
        return f"{mac} dev {self.name} master {self.name} permanent"

    def handle_frame(self, net, port, skb, t):
        """``br_handle_frame``: learn the source, then deliver up, forward or flood."""
        d = skb.data
        src, dst = bytes(d[6:12]), bytes(d[0:6])
        if src != self.mac_b:
            self.fdb[src] = port
        tb = t + net.timing.bridge_us
        nf = self.br_netfilter and ethertype(d) == ETH_P_IP and self.ns.ct is not None
        if dst == self.mac_b:
            dec = [Decision("bridge", f"{self.name} fdb", self.fdb_show(self.mac),
                            "destination MAC is the bridge's own: up to the host's IP stack")]
            if nf:
                dec.append(Decision("bridge", "br_netfilter", "net.bridge.bridge-nf-call-iptables = 1",
                                    f"iptables PREROUTING runs inside the bridge, before tcpdump on {self.name} "
                                    "sees the frame"))
                before = dst_of(d)
                why = self.ns.prerouting(net, skb, self.name, dec)
                if why:
                    return net.drop(self, why, dec)
                after = dst_of(d)
                route = self.ns.route(after) if after != before else None
                if route is not None and route.dev == self.name:
                    # br_nf_pre_routing_finish: the new destination is behind this bridge, so the
                    # frame is not passed up but bridged on ("bridged_dnat"), to the new MAC
                    nb = self.ns.resolve(net, self, after)
                    if nb is None:
                        return net.drop(port, f"neighbour {after} unresolved on {self.name}", dec)
                    dec.append(Decision("bridge", "br_netfilter", self.ns.route_line(route),
                                        f"DNAT to {after}, which is behind {self.name} itself: the frame stays "
                                        f"bridged, destination MAC {nb.mac} (not routed: TTL unchanged)"))
                    set_macs(d, dst=nb.mac)
                    skb.pre_done = False
                    dec[0] = Decision("bridge", f"{self.name} fdb", self.fdb_show(self.mac),
                                      "destination MAC is the bridge's own: meant for the host's IP stack")
                    dec[1] = Decision("bridge", "br_netfilter", "net.bridge.bridge-nf-call-iptables = 1",
                                      "iptables PREROUTING runs inside the bridge first")
                    return self._forward(net, port, skb, tb, dec, hooks=("FORWARD", "POSTROUTING"))
            self._up(net, skb, tb, dec)
            return
        if dst[0] & 1:                                   # broadcast/multicast: the host and every other port
            self._up(net, skb.copy(), tb, [])
            for p in self.ports:
                # br_flood -> should_deliver: the ingress port too when it is in hairpin mode
                if p is not port or p.hairpin:
                    p.xmit(net, skb.copy(), tb, [])
            return
        self._forward(net, port, skb, tb, [], hooks=("PREROUTING", "FORWARD", "POSTROUTING") if nf else ())

    def _forward(self, net, port, skb, tb, dec, hooks) -> None:
        """``br_forward``: to the port the FDB names (flooded if unknown); never back out of the ingress
        port unless it is in hairpin mode; br_netfilter runs iptables on the way (``hooks``)."""
        dst = bytes(skb.data[0:6])
        out = self.fdb.get(dst)
        if out is None:
            for p in self.ports:
                if p is not port or p.hairpin:
                    p.xmit(net, skb.copy(), tb, dec + [Decision(
                        "bridge", f"{self.name} fdb", f"{dst.hex(':')} (not learned)",
                        "unknown unicast: flooded to every port")])
            return
        if out is port and not port.hairpin:
            dec.append(Decision("bridge", f"{self.name} fdb", f"{dst.hex(':')} dev {out.name} master {self.name}",
                                f"the destination is behind the ingress port {out.name} and hairpin mode is off: "
                                "dropped"))
            return net.drop(port, f"{self.name}: destination behind the ingress port {out.name} (hairpin off)", dec)
        dec.append(Decision("bridge", f"{self.name} fdb", f"{dst.hex(':')} dev {out.name} master {self.name}",
                            f"bridged to {out.name}" + (" (hairpin: back out of the port it came in by)"
                                                        if out is port else "")))
        if hooks and "PREROUTING" in hooks:
            dec.append(Decision("bridge", "br_netfilter", "net.bridge.bridge-nf-call-iptables = 1",
                                "iptables PREROUTING, FORWARD and POSTROUTING run on the bridged frame"))
        if hooks:
            # iptables sees a bridged frame with the bridge as in and out device (-m physdev names the ports)
            why = self.ns.bridged(net, skb, self.name, self.name, dec, hooks)
            if why:
                return net.drop(port, why, dec)
        out.xmit(net, skb, tb, dec)

    def _up(self, net, skb, t, dec):
        net.observe(self, "in", t, skb, dec)
        self.ns.rx(net, self, skb, t)

    def xmit(self, net, skb, t, dec):
        """``br_dev_xmit``: the host sends through the bridge; the FDB picks the port."""
        net.observe(self, "out", t, skb, dec)
        tb = t + net.timing.bridge_us
        dst = bytes(skb.data[0:6])
        out = None if dst[0] & 1 else self.fdb.get(dst)
        if out is not None:
            out.xmit(net, skb, tb, [])
            return
        for p in self.ports:
            p.xmit(net, skb.copy(), tb, [])


class Nic(Device):
    """A physical NIC on the underlay (``enp4s0``)."""
    kind = "nic"
    wire: "Wire"

    def xmit(self, net, skb, t, dec):
        net.observe(self, "out", t, skb, dec)
        dst = bytes(skb.data[0:6])
        tw = t + net.timing.wire_us
        got = False
        for other in self.wire.nics:
            if other is not self and (dst == other.mac_b or dst[0] & 1):
                from ..faults import wire_blocks
                why = wire_blocks(net.sc, bytes(skb.data), other.ns.name)
                if why:                                   # a fault scenario: filtered between the nodes
                    got = True
                    net.drop(self, why, [Decision("wire", "underlay", f"{self.ns.name}:{self.name} -> "
                                                  f"{other.ns.name}:{other.name}", why)])
                    continue
                got = True
                skb.marks = 0                     # a mark never leaves its host
                other.receive(net, skb.copy() if dst[0] & 1 else skb, tw,
                              [Decision("wire", "underlay", f"{self.ns.name}:{self.name} -> {other.ns.name}:{other.name}",
                                        "same bytes on the wire")])
        if not got:
            net.drop(self, f"no host with MAC {dst.hex(':')} on the underlay", [])


class Wire:
    """The underlay's layer-2 segment: every node's NIC."""

    def __init__(self):
        self.nics: list[Nic] = []


class Vxlan(Device):
    """A VXLAN device (``flannel.1``): ``vxlan_xmit`` and the receive side of ``vxlan_rcv``."""
    kind = "vxlan"

    def __init__(self, ns, name, mac, mtu, vni: int, port: int, local, lower: Nic, udp_csum: bool):
        super().__init__(ns, name, mac, mtu)
        self.vni, self.port, self.local, self.lower, self.udp_csum = vni, port, local, lower, udp_csum
        self.fdb: dict[bytes, object] = {}               # inner MAC -> routing.FdbEntry
        self.outer_id = 0
        self._seed = None                                # this node's flow-hash seed, once known
        self._observed_sport = None                      # (port, how) when the scenario gives it

    def _outer_sport(self, sc, t5) -> tuple[int, str]:
        """The outer UDP source port and how it was found."""
        ns = self.ns
        if ns.name in sc.observed.vxlan_sport:
            if self._observed_sport is None:
                from ..provenance import of_path
                sport = sc.observed.vxlan_sport[ns.name]
                self._observed_sport = (sport, f"outer source port {sport} "
                                               f"({of_path(sc, f'observed.vxlanSourcePort.{ns.name}').label})")
            return self._observed_sport
        if self._seed is None:
            self._seed = node_seed(sc.observed.flow_hash_seed, ns.name)
        h = flow_hash(t5.src, t5.dst, t5.sport, t5.dport, self._seed)
        sport = udp_flow_src_port(h, *ns.ephemeral_ports)
        return sport, (f"outer source port {sport} = udp_flow_src_port(hash of {t5}); the kernel keys that hash "
                       "with a random per-boot seed, so the number is a stand-in, not a prediction")

    def xmit(self, net, skb, t, dec):
        net.observe(self, "out", t, skb, dec)
        ns, sc = self.ns, net.sc
        dec = []
        inner = bytes(skb.data)
        entry = self.fdb.get(inner[0:6])
        if entry is None:
            return net.drop(self, "no VXLAN FDB entry", [Decision(
                "fdb", f"{self.name} fdb", f"{inner[0:6].hex(':')} (no entry)",
                "vxlan_xmit: no destination for the inner MAC; dropped")])
        dec.append(Decision("fdb", f"{self.name} fdb", entry.bridge_fdb(),
                            f"inner destination MAC {entry.mac} lives behind {entry.dst}"))
        sport, how = self._outer_sport(sc, tuple_of(inner))
        route = ns.route(entry.dst)
        if route is None:
            return net.drop(self, f"no route to the remote VTEP {entry.dst}", dec)
        ttl = ns.default_ttl
        vx = len(dec)
        dec.append(None)                                  # the encapsulation's decision, once its size is known
        out = ns.devices[route.dev]
        dec.append(Decision("route", "main", self.ns.route_line(route), f"outer packet leaves by {route.dev}"))
        nb = ns.resolve(net, out, route.via or entry.dst, entry.dst)
        if nb is None:
            del dec[vx]
            return net.drop(self, f"neighbour {route.via or entry.dst} unresolved", dec)
        dec.append(Decision("neigh", f"{route.dev} neighbours", self.ns.neigh_line(nb), f"outer destination MAC {nb.mac}"))
        ip_id = self.outer_id & 0xFFFF
        self.outer_id += 1
        outer = vxlan_encap(inner, src_mac=out.mac, dst_mac=nb.mac, src_ip=self.local, dst_ip=entry.dst,
                            ip_id=ip_id, tos=inner[15] & 0x3, ttl=ttl, sport=sport, dport=self.port,
                            vni=self.vni, udp_csum=self.udp_csum)
        dec[vx] = Decision("vxlan", "vxlan_xmit_one",
                           f"{self.name}: vxlan id {self.vni} dstport {self.port} "
                           f"local {self.local} dev {self.lower.name} nolearning",
                           f"+{len(outer) - len(inner)} bytes: outer {self.local} -> {entry.dst}, UDP {sport} -> "
                           f"{self.port}, VNI {self.vni}, TTL {ttl}, DF clear; {how}")
        # udp_tunnel_xmit_skb -> ip_local_out: the host's OUTPUT and POSTROUTING (nat, filter) see it
        oskb = skb.replace(outer)
        for hook in ("OUTPUT", "POSTROUTING"):
            why = run_tunnel_hook(ns, hook, oskb, dec, net, out_if=route.dev)
            if why:
                return net.drop(self, why, dec)
        out.xmit(net, oskb, t + net.timing.encap_us, dec)
