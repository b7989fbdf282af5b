"""A network namespace: its devices, addresses, routes, neighbours, netfilter and sockets.

The IP layer as the kernel runs it::

    receive:  PREROUTING -> route -> local? INPUT -> socket (TCP, or the VXLAN UDP socket)
                                   \\-> FORWARD -> POSTROUTING -> neighbour -> device xmit
    send:     socket -> route (source address) -> OUTPUT -> POSTROUTING -> neighbour -> xmit

A node's namespace has netfilter (nat rules from :mod:`coursekit.netfilter`)
and conntrack; a pod's has neither.  A drop is an outcome with a reason,
never an exception.

Taught in: 06-the-whole-walk (the engine behind the walk).
"""

from __future__ import annotations

import ipaddress
import struct

from ..datapath import Decision
from ..routing import Neighbour
from .frame import (ETH_P_ARP, ETH_P_IP, csum, dec_ttl, dst_of, ethertype, l4_offset, mac_bytes, mac_str,
                    set_macs, src_of)
from .hooks import ConntrackTable, run_hook, run_tunnel_hook

__all__ = ["Namespace"]


class Namespace:
    def __init__(self, name: str, kind: str, *, default_ttl: int = 64, forwarding: bool = False,
                 netfilter: bool = False, ephemeral_ports=(32768, 60999)):
        self.name, self.kind = name, kind
        self.devices: dict = {}
        self.addrs: dict[str, list[ipaddress.IPv4Interface]] = {}
        self.routes = []
        self.neigh: dict[tuple[str, ipaddress.IPv4Address], Neighbour] = {}
        self.default_ttl = default_ttl
        self.forwarding = forwarding
        self.ephemeral_ports = ephemeral_ports
        self.ct = ConntrackTable(name) if netfilter else None
        self.nat_rules: list = []
        self.filter_rules: dict = {}                     # chain -> rules, in order
        self.filter_policy: dict = {}
        self.filter_verdicts: dict = {}                  # (hook, tuple, in, out, marks, ctstate) -> FilterVerdict
        self.udp_tunnels: dict[int, object] = {}        # UDP port -> VXLAN device
        self.tunnel_ct: list = []                        # conntrack entries of the outer VXLAN flows (hooks.py)
        self.sockets = None                              # set by the engine: a Sockets view
        self.local: set[ipaddress.IPv4Address] = set()

    def __repr__(self):
        return f"<netns {self.name}>"

    @property
    def routes(self) -> list:
        """The main table; assign a new list to change it (lookups are remembered until then)."""
        return self._routes

    @routes.setter
    def routes(self, value: list) -> None:
        self._routes = value
        self._fib: dict = {}                             # destination -> route (fib_lookup's answer)
        self._lines: dict = {}                           # id(route or neighbour) -> (it, the line the tool prints)

    def route_line(self, route) -> str:
        """``ip route``'s line for ``route``, without the trailing space (formatted once per route)."""
        got = self._lines.get(id(route))
        if got is None or got[0] is not route:
            got = self._lines[id(route)] = (route, route.ip_route().strip())
        return got[1]

    def neigh_line(self, nb) -> str:
        """``ip neigh``'s line for ``nb`` (formatted once per entry)."""
        got = self._lines.get(id(nb))
        if got is None or got[0] is not nb:
            got = self._lines[id(nb)] = (nb, nb.ip_neigh())
        return got[1]

    # -- configuration -----------------------------------------------------
    def add_address(self, dev: str, iface: str) -> None:
        itf = ipaddress.IPv4Interface(iface)
        self.addrs.setdefault(dev, []).append(itf)
        self.local.add(itf.ip)

    def primary_address(self, dev: str) -> ipaddress.IPv4Address | None:
        """``inet_select_addr``: the device's first address (what MASQUERADE picks)."""
        a = self.addrs.get(dev)
        return a[0].ip if a else None

    def route(self, dst: ipaddress.IPv4Address):
        """Longest-prefix match in the main table (``fib_lookup``)."""
        try:
            return self._fib[dst]
        except KeyError:
            pass
        best = None
        for r in self._routes:
            if dst in r.dst and (best is None or r.dst.prefixlen > best.dst.prefixlen):
                best = r
        if len(self._fib) > 1024:
            self._fib.clear()
        self._fib[dst] = best
        return best

    def owner_of_mac(self, mac: str) -> str:
        for d in self.devices.values():
            if d.mac == mac:
                return d.name
        return mac

    # -- neighbours --------------------------------------------------------
    def resolve(self, net, dev, gw: ipaddress.IPv4Address, pkt_src=None) -> Neighbour | None:
        """The neighbour entry for ``gw`` on ``dev``; with a cold cache, ARP for it first."""
        nb = self.neigh.get((dev.name, gw))
        if nb is None and dev.kind in ("nic", "bridge", "veth"):
            src = pkt_src if pkt_src in self.local else self.primary_address(dev.name)
            net.arp(self, dev, gw, src)
            nb = self.neigh.get((dev.name, gw))
        return nb

    def arp_rcv(self, net, dev, skb, t) -> None:
        d = skb.data
        op, sha, spa, tpa = struct.unpack_from("!H6s4s6x4s", d, 20)
        spa, tpa = ipaddress.IPv4Address(spa), ipaddress.IPv4Address(tpa)
        if op == 1 and tpa in self.local:
            # neigh_event_ns: the asker's address is learned from the request itself
            self.neigh[(dev.name, spa)] = Neighbour(spa, dev.name, mac_str(sha), owner="arp")
            net.arp_reply(self, dev, tpa, spa, mac_str(sha), t + net.timing.arp_us)
        elif op == 2 and (dev.name, spa) in net.arp_waiting.get(self.name, set()):
            self.neigh[(dev.name, spa)] = Neighbour(spa, dev.name, mac_str(sha), owner="arp")
            net.arp_answered(t)

    # -- receive -----------------------------------------------------------
    def rx(self, net, dev, skb, t) -> None:
        et = ethertype(skb.data)
        if et == ETH_P_ARP:
            return self.arp_rcv(net, dev, skb, t)
        if et != ETH_P_IP:
            return net.drop(dev, f"ethertype 0x{et:04x} not handled", [])
        self.ip_rcv(net, dev, skb, t)

    def _tunnel(self, skb) -> object | None:
        d = skb.data
        if d[23] != 17:
            return None
        l4 = l4_offset(d)
        port = (d[l4 + 2] << 8) | d[l4 + 3]
        vx = self.udp_tunnels.get(port)
        if vx is not None and dst_of(d) in self.local:
            return vx
        return None

    def prerouting(self, net, skb, in_if: str, dec: list):
        why = run_hook(self, "PREROUTING", skb, dec, net, in_if=in_if)
        skb.pre_done = True
        return why

    def ip_rcv(self, net, dev, skb, t) -> None:
        dec: list = []
        vx = self._tunnel(skb)
        d0 = skb.data
        icmp_err = d0[23] == 1 and d0[14 + (d0[14] & 0xF) * 4] in (3, 4, 5, 11, 12)
        # an ICMP error is RELATED to the connection it quotes: no nat rule runs for it, and no rule here
        # filters it, so it passes the hooks unrecorded (as the engine's own ICMP errors leave)
        if not skb.pre_done and not icmp_err:
            # the outer VXLAN datagram crosses PREROUTING like any datagram (hooks.run_tunnel_hook)
            why = (self.prerouting(net, skb, dev.name, dec) if vx is None else
                   run_tunnel_hook(self, "PREROUTING", skb, dec, net, in_if=dev.name))
            if why:
                return net.drop(dev, why, dec)
            if vx is not None:
                vx = self._tunnel(skb)                  # a DNAT may have sent it elsewhere
        skb.pre_done = False
        dst = dst_of(skb.data)
        if vx is not None:
            # ... and INPUT before the VXLAN socket: a host firewall on the port (coursekit.faults)
            why = run_tunnel_hook(self, "INPUT", skb, dec, net, in_if=dev.name, port=vx.port)
            if why:
                return net.drop(dev, why, dec)
            return self.vxlan_rcv(net, vx, skb, t)
        if dst in self.local:
            return self.local_deliver(net, dev, skb, t, dec)
        if not self.forwarding:
            return net.drop(dev, f"{dst} is not local and forwarding is off", dec)
        self.forward(net, dev, skb, t, dec)

    def vxlan_rcv(self, net, vx, skb, t) -> None:
        d = skb.data
        off = l4_offset(d) + 8
        vni = int.from_bytes(d[off + 4:off + 7], "big")
        if not d[off] & 0x08 or vni != vx.vni:
            return net.drop(vx.lower, f"VNI {vni} unknown on UDP port {vx.port}",
                            [Decision("decap", "vxlan_rcv", f"UDP {vx.port} socket, VNI {vni}",
                                      f"no VXLAN device with VNI {vni}: dropped")])
        inner = bytes(d[off + 8:])
        dec = [Decision("decap", "vxlan_rcv", f"UDP {vx.port} socket of {vx.name}, VNI {vx.vni}",
                        f"outer Ethernet/IP/UDP/VXLAN ({len(d) - len(inner)} bytes) removed")]
        vx.receive(net, skb.replace(inner), t + net.timing.decap_us, dec)

    def local_deliver(self, net, dev, skb, t, dec) -> None:
        d = skb.data
        if not (d[23] == 1 and d[14 + (d[14] & 0xF) * 4] in (3, 4, 5, 11, 12)):
            why = run_hook(self, "INPUT", skb, dec, net, in_if=dev.name)
            if why:
                return net.drop(dev, why, dec)
        net.deliver(self, dev, skb, t, dec)

    def forward(self, net, in_dev, skb, t, dec) -> None:
        d = skb.data
        dst = dst_of(d)
        route = self.route(dst)
        if route is None:
            dec.append(Decision("route", "main", "(no route)", f"no route to {dst}: ICMP network unreachable"))
            net.drop(in_dev, "no route", dec)
            # ip_route_input_slow: RTN_UNREACHABLE -> ip_error -> icmp_send(ICMP_DEST_UNREACH, ICMP_NET_UNREACH)
            # (the unreachable route is RTCF_LOCAL: the error's source is the address the packet was sent to)
            net.icmp_error(self, skb, t + net.timing.forward_us, 3, 0)
            return
        dec.append(Decision("route", "main", self.route_line(route),
                            f"{dst} leaves by {route.dev}" + (f" via {route.via}" if route.via else "")))
        ttl = d[22]
        if ttl <= 1:
            dec.append(Decision("ttl", "ip_forward", f"TTL {ttl}", "TTL expired in transit: ICMP time exceeded"))
            return net.drop(in_dev, "TTL expired", dec)
        new = dec_ttl(d)
        dec.append(Decision("ttl", "ip_forward", "net.ipv4.ip_forward = 1", f"TTL {ttl} -> {new}"))
        out = self.devices[route.dev]
        why = run_hook(self, "FORWARD", skb, dec, net, in_if=in_dev.name, out_if=out.name)
        if why:
            net.drop(in_dev, why, dec)
            if "-j REJECT" in why:                      # ipt_REJECT: nf_send_unreach -> icmp_send
                net.icmp_error(self, skb, t + net.timing.forward_us, 3, 3)
            return
        self._finish_output(net, out, route, skb, t + net.timing.forward_us, dec, in_dev)

    def _finish_output(self, net, out, route, skb, t, dec, where) -> None:
        d = skb.data
        total = (d[16] << 8) | d[17]
        if total > out.mtu and d[20] & 0x40:
            dec.append(Decision("mtu", f"{out.name} mtu", f"mtu {out.mtu}",
                                f"{total} bytes with DF set: ICMP fragmentation needed (mtu {out.mtu})"))
            return net.drop(where, f"DF packet of {total} bytes larger than {out.name}'s MTU {out.mtu}: "
                                   "ICMP fragmentation needed", dec)
        why = run_hook(self, "POSTROUTING", skb, dec, net, out_if=out.name)
        if why:
            return net.drop(where, why, dec)
        dst = dst_of(d)
        gw = route.via or dst
        nb = self.resolve(net, out, gw, src_of(d))
        if nb is None:
            dec.append(Decision("neigh", f"{out.name} neighbours", f"{gw} dev {out.name} FAILED",
                                "no answer to ARP: dropped"))
            return net.drop(where, f"neighbour {gw} unresolved on {out.name}", dec)
        dec.append(Decision("neigh", f"{out.name} neighbours", self.neigh_line(nb),
                            f"destination MAC {nb.mac}, source MAC {out.mac} ({out.name})"))
        set_macs(d, src=out.mac, dst=nb.mac)
        out.xmit(net, skb, t, dec)

    def bridged(self, net, skb, in_if: str, out_if: str, dec: list,
                hooks=("PREROUTING", "FORWARD", "POSTROUTING")):
        """br_netfilter on a bridged frame: iptables' PREROUTING, FORWARD and POSTROUTING."""
        kws = {"PREROUTING": dict(in_if=in_if), "FORWARD": dict(in_if=in_if, out_if=out_if),
               "POSTROUTING": dict(out_if=out_if)}
        for hook in hooks:
            why = run_hook(self, hook, skb, dec, net, **kws[hook])
            if why:
                return why
        return None

    # -- send --------------------------------------------------------------
    def output(self, net, skb, dec, t: int = 0) -> None:
        """A local socket sends: route, OUTPUT, POSTROUTING, neighbour, device."""
        d = skb.data
        dst = dst_of(d)
        route = self.route(dst)
        if route is None:
            dec.append(Decision("route", f"{self.name} main", "(no route)",
                                f"connect() fails: network unreachable ({dst}); nothing is sent"))
            return net.drop(None, f"no route to {dst}", dec, ns=self)
        out = self.devices[route.dev]
        gw = route.via or dst
        if route.via:
            eff = f"to the gateway ({self._owner_name(net, route.via)})"
        else:
            eff = f"{dst} is on-link on {route.dev}"
        if self.kind == "node":
            eff += f"; source address {src_of(d)} chosen from this route at connect()"
        dec.append(Decision("route", f"{self.name} main", self.route_line(route), eff))
        if self.ct is not None:
            why = run_hook(self, "OUTPUT", skb, dec, net, out_if=out.name)
            if why:
                return net.drop(None, why, dec, ns=self)
            new_dst = dst_of(d)
            if new_dst != dst:                      # DNAT in OUTPUT: route again (ip_route_me_harder)
                route = self.route(new_dst)
                if route is None:
                    return net.drop(None, f"no route to {new_dst}", dec, ns=self)
                out = self.devices[route.dev]
                dst, gw = new_dst, route.via or new_dst
                dec.append(Decision("route", f"{self.name} main", self.route_line(route),
                                    f"rerouted after DNAT: {dst} leaves by {route.dev}"
                                    + (f" via {route.via}" if route.via else "")))
        if self.ct is not None:
            why = run_hook(self, "POSTROUTING", skb, dec, net, out_if=out.name)
            if why:
                return net.drop(None, why, dec, ns=self)
        nb = self.resolve(net, out, gw, src_of(d))
        if nb is None:
            dec.append(Decision("neigh", f"{self.name} {out.name} neighbours", f"{gw} dev {out.name} FAILED",
                                "no answer to ARP: dropped"))
            return net.drop(None, f"neighbour {gw} unresolved on {out.name}", dec, ns=self)
        dec.append(Decision("neigh", f"{self.name} {out.name} neighbours", self.neigh_line(nb),
                            f"destination MAC {nb.mac} ({net.mac_owner(nb.mac, self)})"))
        set_macs(d, src=out.mac, dst=nb.mac)
        out.xmit(net, skb, t, dec)

    def _owner_name(self, net, ip) -> str:
        return net.addr_owner(ip)

    # -- ICMP errors the kernel sends -------------------------------------------------
    def icmp_error(self, net, skb, t: int, typ: int, code: int) -> None:
        """``icmp_send``: an ICMP error about ``skb`` back to its sender, routed like any local packet.

        Source: for a packet that was not addressed to this host, the address the route back
        chooses (``saddr = 0``, then the route's ``src``); TOS 0xc0 (``IPTOS_PREC_INTERNETCONTROL``);
        no DF (the ICMP socket's ``IP_PMTUDISC_DONT``); the quoted packet as it stood, up to 576
        bytes in all.  Its IP id comes from the kernel's hashed counters (``ip_select_ident``):
        not predictable, so the model writes 0, a stand-in.  The error crosses no rule that
        rewrites it (conntrack treats it as RELATED), so it passes the hooks unrecorded.
        """
        d = bytes(skb.data)
        no_route = code == 0 and self.route(dst_of(d)) is None
        ct = getattr(skb, "ct", None)
        t0 = ct.orig if ct is not None else getattr(skb, "t_orig", None)
        if t0 is not None and d[23] in (6, 17) and src_of(d) == t0.src and dst_of(d) != t0.dst:
            # nf_nat_icmp_reply_translation (the error is RELATED to the connection, confirmed or
            # not): the quoted packet gets its DNAT undone, the address the sender called
            # (checked on a 6.18 kernel: an unreachable DNATed SYN is quoted with its original
            # destination, and the error comes from that address)
            d = _undo_dnat(d, t0.dst, t0.dport)
        orig_src, orig_dst = src_of(d), dst_of(d)
        route = self.route(orig_src)
        if route is None:
            return
        # ip_error's route is RTCF_LOCAL, so __icmp_send keeps saddr = the packet's destination
        src = orig_dst if orig_dst in self.local or no_route else (route.src or self.primary_address(route.dev))
        total_orig = (d[16] << 8) | d[17]
        quoted = d[14:14 + min(total_orig, 576 - 28)]
        icmp = bytearray(struct.pack("!BBHI", typ, code, 0, 0) + quoted)
        struct.pack_into("!H", icmp, 2, csum(bytes(icmp)))
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(icmp), 0, 0, self.default_ttl, 1, 0,
                                   src.packed, orig_src.packed))
        struct.pack_into("!H", ip, 10, csum(bytes(ip)))
        out = self.devices[route.dev]
        gw = route.via or orig_src
        nb = self.resolve(net, out, gw, src)
        if nb is None:
            return
        frame = bytearray(mac_bytes(nb.mac) + mac_bytes(out.mac) + b"\x08\x00") + ip + icmp
        kind = {0: "network", 1: "host", 3: "port"}.get(code, f"code {code}")
        dec = [Decision("icmp", "icmp_send", f"ICMP type {typ} code {code} ({kind} unreachable) to {orig_src}",
                        f"from {src}, the address of {route.dev} on the route back; quotes the "
                        f"{len(quoted)}-byte packet it answers")]
        out.xmit(net, type(skb)(frame), t, dec)


def _undo_dnat(d: bytes, dst, dport: int) -> bytes:
    """A frame whose IPv4 destination and L4 destination port are put back to ``dst``:``dport``, with the
    IP header checksum and the TCP/UDP checksum recomputed (what the kernel's incremental update gives)."""
    b = bytearray(d)
    ihl = (b[14] & 0xF) * 4
    b[30:34] = dst.packed
    b[24:26] = b"\0\0"
    struct.pack_into("!H", b, 24, csum(bytes(b[14:14 + ihl])))
    l4 = 14 + ihl
    struct.pack_into("!H", b, l4 + 2, dport)
    proto = b[23]
    at = l4 + (16 if proto == 6 else 6)
    total = (b[16] << 8) | b[17]
    seg = bytes(b[l4:14 + total])
    if proto == 6 or b[at:at + 2] != b"\0\0":
        b[at:at + 2] = b"\0\0"
        pseudo = bytes(b[26:34]) + bytes([0, proto]) + struct.pack("!H", len(seg))
        c = csum(pseudo + bytes(b[l4:14 + total]))
        struct.pack_into("!H", b, at, c if proto == 6 or c else 0xFFFF)
    return bytes(b)
