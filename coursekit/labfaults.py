"""Break and fix the live lab: each fault of :mod:`coursekit.faults` as the kernel commands that make it.

A fault is a change of the cluster's state, so the commands are computed as
the difference between two scenarios the model already describes: the
working one and the broken one (:func:`transition`).  Whatever the model
says the broken node has -- its iptables tables, its flannel.1 FDB, its
VXLAN device's port, its br_netfilter switch -- the lab's kernel gets, with
the commands a person would type on that node::

    iptables   each table's rules, diffed: -N new chains, -P policies, -D rules that go,
               -I CHAIN <pos> rules that come (at the place the model's table has them), -X old chains
    bridge     bridge fdb del / append <VTEP MAC> dev flannel.1 dst <node IP> self permanent
    ip link    a VXLAN device's port cannot change (vxlan_nl2conf: "Cannot change VXLAN port"):
               flannel.1 is deleted and made again, with flanneld's address, route, neighbour
               and FDB entries
    sysctl     net.bridge.bridge-nf-call-iptables in the node's namespace
    ebtables   the underlay (a security group): the lab's wire is then a bridge in a namespace of
               its own, and ``ebtables -A FORWARD -p IPv4 --ip-proto udp --ip-dport 8472 --ip-dst
               <node IP> -j DROP`` drops the datagrams to that node between the two NICs, so
               tcpdump sees them leave one node and never reach the other

After a break the kernel's state is the model's broken state (the tests read
``iptables-save``, ``bridge fdb``, ``ip -d link`` back); after a fix it is the
working one again.  :func:`broken` gives a scenario one named fault, on the
path its request takes (the client's node, the server's node, its Service).

Taught in: 09-when-it-breaks.
"""

from __future__ import annotations

import copy
import shlex

from .errors import CourseError

__all__ = ["BREAKABLE", "broken", "healthy", "working_base", "transition", "Command", "needs_switch", "apply", "command"]

#: The faults ``lab break`` applies (every fault of coursekit.faults, the host-firewall variant apart).
BREAKABLE = ("forward-policy-drop", "missing-fdb", "missing-route", "udp-blocked", "udp-blocked-input",
             "vxlan-port", "no-endpoints", "no-br-netfilter")

WIRE = "_wire"          # the underlay's bridge namespace (coursekit.lab._UNDERLAY)


def _cross_node(sc, name):
    if sc.client.node == sc.server.node:
        raise CourseError("fault", f"{name} breaks a request between two nodes; {sc.name}'s client and server "
                          f"are both on {sc.client.node}", "a scenario whose request crosses nodes (article)")


def broken(sc, name: str):
    """``sc`` with the fault ``name`` (one of :data:`BREAKABLE`) on its request's path."""
    from .faults import diagnose
    if name not in BREAKABLE:
        raise CourseError("fault", f"{name!r} is not a fault the lab can break", ", ".join(BREAKABLE))
    if diagnose(sc) != "healthy":
        raise CourseError("fault", f"the cluster is already broken ({diagnose(sc)})", "lab fix first")
    if name == "no-br-netfilter":
        if sc.client.node != sc.server.node:
            raise CourseError("fault", "br_netfilter off breaks a Service whose client and endpoint share a node; "
                              f"{sc.name}'s do not", "a same-node scenario (lab up --scenario same-node)")
        return sc.with_changes({f"nodes.{sc.client.node}.bridgeNfCallIptables": False})
    if name == "no-endpoints":
        if sc.request.ip is not None:
            raise CourseError("fault", f"{sc.name}'s request goes to an address, not a Service",
                              "a scenario whose request calls a Service (article)")
        return sc.with_changes({"fault": {"kind": "no-endpoints", "service": sc.request.service}})
    _cross_node(sc, name)
    client, server = sc.client.node, sc.server.node
    if name == "forward-policy-drop":
        return sc.with_changes({"flannel.version": "v0.8.0"})
    if name == "missing-fdb":
        return sc.with_changes({"fault": {"kind": "missing-fdb", "node": client, "peer": server}})
    if name == "missing-route":
        if sc.node(client).default_route:
            raise CourseError("fault", f"without its route to {server}'s pods, {client} would send them to its "
                              "default gateway, which the lab does not build",
                              "a scenario whose nodes have no default route (lab up --scenario faults/missing-route, "
                              "then lab fix)")
        return sc.with_changes({"fault": {"kind": "missing-route", "node": client, "peer": server}})
    if name == "vxlan-port":
        return sc.with_changes({"fault": {"kind": "vxlan-port", "node": server,
                                          "port": 4789 if sc.flannel.port != 4789 else 8472}})
    return sc.with_changes({"fault": {"kind": "udp-blocked", "node": server,
                                      "at": "input" if name == "udp-blocked-input" else "underlay"}})


def working_base(name: str):
    """The working cluster the course breaks with fault ``name``: the article's, the same-node case for
    br_netfilter, the article's without default routes for a missing route.

    Taught in: 09-when-it-breaks.
    """
    from .scenario import load_scenario
    if name == "no-br-netfilter":
        return load_scenario("same-node")
    if name == "missing-route":
        return healthy(load_scenario("faults/missing-route"))
    return load_scenario("article")


def healthy(sc):
    """``sc`` without its fault: no ``fault:`` block, flannel's FORWARD rules (v0.9.1), br_netfilter on."""
    from .faults import diagnose
    from .scenario import scenario_from_dict
    kind = diagnose(sc)
    if kind == "healthy":
        return sc
    raw = copy.deepcopy(sc.raw)
    raw.pop("fault", None)
    out = scenario_from_dict(raw, source=sc.source)
    if kind == "forward-policy-drop":
        out = out.with_changes({"flannel.version": "v0.9.1"})
    if kind == "no-br-netfilter":
        out = out.with_changes({f"nodes.{sc.client.node}.bridgeNfCallIptables": True})
    return out


def fault_name(sc) -> str:
    """The :data:`BREAKABLE` name of the scenario's fault (``healthy`` when there is none)."""
    from .faults import diagnose
    kind = diagnose(sc)
    if kind == "udp-blocked" and sc.fault.at == "input":
        return "udp-blocked-input"
    return kind


class Command:
    """One command in one namespace of the lab (``owner``: a node's name, or the underlay's ``_wire``)."""

    def __init__(self, owner: str, argv: list[str], why: str):
        self.owner, self.argv, self.why = owner, list(argv), why

    def shell(self, prefix: str = "") -> str:
        """As a person types it: ``ip netns exec <namespace> <command>``."""
        return f"ip netns exec {prefix}{self.owner} " + shlex.join(self.argv)

    def __repr__(self) -> str:
        return f"Command({self.owner!r}, {shlex.join(self.argv)!r})"


# -- iptables: the model's tables, diffed ---------------------------------------------------

def _parse_save(text: str) -> tuple[dict, dict, list]:
    """(policies {chain: policy}, rules {chain: [spec]}, chain order) of one ``iptables-save`` table."""
    pol, rules, order = {}, {}, []
    for line in text.splitlines():
        if line.startswith(":"):
            name, policy = line[1:].split()[:2]
            pol[name] = policy
            order.append(name)
            rules.setdefault(name, [])
        elif line.startswith("-A "):
            chain, _, spec = line[3:].partition(" ")
            rules.setdefault(chain, []).append(spec)
    return pol, rules, order


def iptables_commands(owner: str, table: str, before: str, after: str) -> list[Command]:
    """The iptables commands that turn table ``before`` into ``after`` (both ``iptables-save`` texts)."""
    p0, r0, o0 = _parse_save(before)
    p1, r1, o1 = _parse_save(after)
    t = ["iptables", "-t", table]
    out = [Command(owner, t + ["-N", c], "a new chain") for c in o1 if c not in p0]
    out += [Command(owner, t + ["-P", c, p1[c]], "the chain's policy") for c in o1
            if c in p0 and p1[c] != "-" and p0[c] != p1[c]]
    # kube-proxy's order: a new chain is filled before anything jumps to it, and the jumps
    # to a chain that goes are deleted before its own rules
    new = [c for c in o1 if c not in p0]
    kept = [c for c in o0 if c in p1]
    gone = [c for c in o0 if c not in p1]
    for c in new + kept + gone:
        cur, want = list(r0.get(c, [])), r1.get(c, [])
        for spec in list(cur):
            if cur.count(spec) > want.count(spec):
                cur.remove(spec)
                out.append(Command(owner, t + ["-D", c, *shlex.split(spec)], "a rule that goes"))
        for i, spec in enumerate(want):
            if i < len(cur) and cur[i] == spec:
                continue
            cur.insert(i, spec)
            out.append(Command(owner, t + ["-I", c, str(i + 1), *shlex.split(spec)], "a rule that comes"))
        if cur != want:
            raise CourseError("fault", f"cannot turn {table} {c} into the model's by inserting and deleting")
    out += [Command(owner, t + ["-X", c], "a chain that goes") for c in o0 if c not in p1]
    return out


# -- everything else ---------------------------------------------------------------------------

def _flannel_device(sc, node, port: int) -> list[Command]:
    """flannel.1 on ``node`` made again with ``port``: the device, then what flanneld programs per lease."""
    from .faults import fdb_missing
    n = sc.node(node)
    dev = sc.flannel.device
    cmds = [Command(node, ["ip", "link", "del", dev], "a VXLAN device's port cannot be changed"),
            Command(node, ["ip", "link", "add", dev, "address", n.vtep_mac, "mtu", str(n.nic.mtu - 50), "type",
                           "vxlan", "id", str(sc.flannel.vni), "dstport", str(port), "local", str(n.nic.ip),
                           "dev", n.nic.name, "nolearning", *([] if sc.flannel.udp_checksum else ["noudpcsum"])],
                    f"flannel.1 on UDP {port}"),
            Command(node, ["ip", "addr", "add", f"{n.vtep_ip}/32", "dev", dev], "flanneld: the lease's .0/32"),
            Command(node, ["ip", "link", "set", dev, "up"], "")]
    for other in sc.nodes:
        if other.name == node:
            continue
        cmds += [Command(node, ["ip", "route", "add", str(other.subnet), "via", str(other.vtep_ip), "dev", dev,
                                "onlink"], f"flanneld: {other.name}'s subnet"),
                 Command(node, ["ip", "neigh", "replace", str(other.vtep_ip), "lladdr", other.vtep_mac, "dev", dev,
                                "nud", "permanent"], f"flanneld: {other.name}'s VTEP MAC")]
        if not fdb_missing(sc, node, other.name):
            cmds.append(_fdb(sc, node, other, "append"))
    return cmds


def _fdb(sc, node, other, verb: str) -> Command:
    argv = ["bridge", "fdb", verb, other.vtep_mac, "dev", sc.flannel.device, "dst", str(other.nic.ip)]
    if verb == "append":
        argv += ["self", "permanent"]
    return Command(node, argv, f"{other.name}'s VTEP behind {other.nic.ip}" if verb == "append" else
                   f"flannel.1 forgets where {other.name}'s VTEP is")


def _underlay_rule(sc) -> list[str] | None:
    f = sc.fault
    if f is None or f.kind != "udp-blocked" or f.at != "underlay":
        return None
    return ["FORWARD", "-p", "IPv4", "--ip-dst", str(sc.node(f.node).nic.ip), "--ip-proto", "udp",
            "--ip-dport", str(f.port), "-j", "DROP"]


def needs_switch(sc) -> bool:
    """Whether the lab's underlay must be a bridge (a place between the nodes to filter on)."""
    return _underlay_rule(sc) is not None


def transition(before, after) -> list[Command]:
    """The commands that turn the cluster ``before`` into ``after`` (two scenarios of the same cluster)."""
    from .faults import fdb_missing, route_missing, vxlan_port
    from .netfilter import filter_save, nat_save
    out: list[Command] = []
    rebuilt = set()
    for n in after.nodes:
        if vxlan_port(before, n.name) != vxlan_port(after, n.name):
            out += _flannel_device(after, n.name, vxlan_port(after, n.name))
            rebuilt.add(n.name)
    for n in after.nodes:
        if before.node(n.name).br_netfilter != n.br_netfilter:
            out.append(Command(n.name, ["sysctl", "-w", f"net.bridge.bridge-nf-call-iptables={int(n.br_netfilter)}"],
                               "br_netfilter: iptables on bridged frames"))
        for other in after.nodes:
            if other.name == n.name or n.name in rebuilt:
                continue
            was, now = fdb_missing(before, n.name, other.name), fdb_missing(after, n.name, other.name)
            if was != now:
                out.append(_fdb(after, n.name, other, "append" if was else "del"))
            was, now = route_missing(before, n.name, other.name), route_missing(after, n.name, other.name)
            if was != now:
                out.append(Command(n.name, ["ip", "route", "add" if was else "del", str(other.subnet), "via",
                                            str(other.vtep_ip), "dev", after.flannel.device, "onlink"],
                                   f"flanneld's route to {other.name}'s pods"))
        for table, save in (("nat", nat_save), ("filter", filter_save)):
            out += iptables_commands(n.name, table, save(before, n.name), save(after, n.name))
    r0, r1 = _underlay_rule(before), _underlay_rule(after)
    if r0 != r1:
        if r0:
            out.append(Command(WIRE, ["ebtables", "-D", *r0], "the underlay lets the datagrams through again"))
        if r1:
            out.append(Command(WIRE, ["ebtables", "-A", *r1], "a security group between the nodes"))
    return out


def apply(lab, commands: list[Command], say=None) -> None:
    """Run ``commands`` in the lab's namespaces (one clear error naming the command that failed)."""
    from . import lab as _lab
    for c in commands:
        ns = lab.ns(c.owner)
        if c.owner == WIRE and ns not in _lab._netns_list():
            raise CourseError("live lab", "this lab's underlay is a plain veth pair: there is no place between "
                              "the nodes to filter on", "python -m coursekit lab down, then lab up (which builds "
                              "the underlay as a bridge)")
        if say:
            say(c.shell(lab.id))
        if c.argv[:2] == ["sysctl", "-w"]:           # /proc/sys itself: no procps needed
            key, _, value = c.argv[2].partition("=")
            failed = _lab._write_proc_sys(ns, {key: value})
            if failed:
                raise CourseError("live lab", f"{c.shell(lab.id)} failed: {failed}",
                                  "a kernel with br_netfilter (modprobe br_netfilter), >= 5.3")
            continue
        argv = list(c.argv)
        argv[0] = _lab._tool(argv[0]) or (_lab._tool("ebtables-nft") if argv[0] == "ebtables" else None) or argv[0]
        lab._exec(ns, *argv, what=c.shell(lab.id))


# -- ICMP errors in the comparison -------------------------------------------------------------

def _icmp_at(data: bytes, off: int, depth: int = 0) -> bool:
    if len(data) < off + 14 + 20 or data[off + 12:off + 14] != b"\x08\x00":
        return False
    ip = off + 14
    ihl = (data[ip] & 0x0F) * 4
    proto = data[ip + 9]
    if proto == 1:
        return len(data) > ip + ihl and data[ip + ihl] in (3, 11, 12)
    if proto == 17 and depth == 0 and len(data) >= ip + ihl + 16:
        return _icmp_at(data, ip + ihl + 16, 1) if data[ip + ihl + 8] & 0x08 else False
    return False


def is_icmp_error(data: bytes) -> bool:
    """An Ethernet frame carrying an ICMP error (destination unreachable, time exceeded, parameter
    problem), on its own or inside a VXLAN datagram."""
    return _icmp_at(data, 0)


# The fields of an ICMP error the kernel chooses: its own IP id (no DF: __ip_select_ident's
# hash) and the checksums over it; inside the quoted datagram, what is free in the datagram
# itself (an outer VXLAN header's id and checksums, TCP timestamps and checksum).
_QUOTED_FREE = {("TCP", "chksum"), ("TCP", "options:TS"), ("TCPerror", "chksum"), ("TCPerror", "options:TS"),
                ("outer UDP", "chksum"), ("outer UDPerror", "chksum"), ("UDPerror", "chksum")}
_AS_FED = {("TCPerror", "sport"): ("TCP", "sport"), ("TCPerror", "dport"): ("TCP", "dport"),
           ("TCPerror", "seq"): ("TCP", "seq"), ("TCPerror", "window"): ("TCP", "window"),
           ("IPerror", "id"): ("IPv4", "id"), ("outer UDPerror", "sport"): ("outer UDP", "sport")}


def _icmp_fields(data: bytes) -> tuple[dict, set]:
    import re
    from .lab import _field_values
    vals = _field_values(data)
    for key in [k for k in vals if k == ("TCPerror", "options")]:
        vals[("TCPerror", "options:TS")] = vals[key]
        vals[key] = re.sub(r"TS val \d+ ecr \d+", "TS val * ecr *", vals[key])
    own = "outer IPv4" if ("outer ICMP", "type") in vals else "IPv4"
    icmp = "outer ICMP" if own == "outer IPv4" else "ICMP"
    free = {(own, "id"), (own, "chksum"), (icmp, "chksum")} | _QUOTED_FREE
    if ("outer UDPerror", "dport") in vals or ("UDPerror", "dport") in vals:
        err_ip = "outer IPerror" if ("outer IPerror", "id") in vals else "IPerror"
        free |= {(err_ip, "id"), (err_ip, "chksum")}       # a VXLAN datagram's outer header
    return vals, free


def compare_icmp(r, lab_frames, model_frames, over) -> None:
    """The ICMP errors on one interface: as many in the lab as in the model, each field equal (or free).

    Adds to the interface's result ``r`` (a :class:`coursekit.lab.InterfaceResult`) as the TCP
    comparison does.  Taught in: 09-when-it-breaks.
    """
    from .lab import _fed_value
    lab_icmp = [f for f in lab_frames if is_icmp_error(f.data)]
    if len(lab_icmp) != len(model_frames):
        r.differences.append(f"ICMP errors: {len(lab_icmp)} in the lab's capture, {len(model_frames)} in the model")
    for i, (a, b) in enumerate(zip(lab_icmp, model_frames)):
        fa, free = _icmp_fields(a.data)
        fb, _ = _icmp_fields(b.data)
        for key in sorted(set(fa) | set(fb)):
            r.fields += 1
            if key in free:
                if (key in fa) == (key in fb):
                    r.free += 1
                else:
                    r.differences.append(f"ICMP error {i + 1}: {key[0]} {key[1]} present in only one")
            elif fa.get(key) == fb.get(key):
                if _fed_value(_AS_FED.get(key, key), fa.get(key), over):
                    r.fed += 1
                else:
                    r.matched += 1
            else:
                r.differences.append(f"ICMP error {i + 1}: {key[0]} {key[1]}: lab {fa.get(key)} model {fb.get(key)}")


# -- python -m coursekit lab break NAME / lab fix ---------------------------------------------

def scenario_in(st: dict, base):
    """The cluster a running lab is now (its saved state's ``fault``: a name, ``healthy``, or as built)."""
    f = st.get("fault")
    if not f:
        return base
    return healthy(base) if f == "healthy" else broken(healthy(base), f)


def _prediction(sc) -> list[str]:
    from .datapath import walk
    from .faults import outcome
    w = walk(sc)
    lines = [f"the model predicts: {outcome(w)}"]
    if w.drops:
        d = w.drops[0]
        lines.append(f"  the SYN stops at {d.node} {d.iface}: {d.reason}")
    return lines


def command(action: str, name: str | None, say=None) -> int:
    """``lab break NAME`` / ``lab fix`` on the lab ``lab up`` built: print and run the commands."""
    import os
    from . import lab as L
    from .scenario import load_scenario
    if action == "break" and not name:
        raise CourseError("fault", "no fault named", ", ".join(BREAKABLE))
    if action == "fix" and name:
        raise CourseError("fault", f"lab fix takes no name (it repairs what is broken), got {name!r}", "lab fix")
    if os.geteuid() != 0 and os.environ.get("PW_LAB_INSIDE") != "1":
        st = L._read_state()
        if st is None or "holder" not in st:
            raise CourseError("live lab", "no lab is up", "python -m coursekit lab up")
        if not L._holder_alive(st):
            raise CourseError("live lab", f"the rootless lab's namespaces are gone (holder pid {st['holder']} exited)",
                              "python -m coursekit lab down, then up")
        return L._enter(st["holder"], ["lab", action] + ([name] if name else []))
    st = L.load_state()
    if st.get("captures"):
        raise CourseError("live lab", "the captures are running", f"python -m coursekit lab run first, then {action}")
    base = load_scenario(st["scenario"], {"neighbourCaches": "cold"} if st.get("cold") else None)
    now = scenario_in(st, base)
    if action == "break":
        target, new = broken(now, name), name
    else:
        if fault_name(now) == "healthy":
            raise CourseError("fault", "the lab's cluster is not broken", "python -m coursekit lab break NAME")
        target, new = healthy(now), "healthy"
    lb = L.resume(st, base, say)
    cmds = transition(now, target)
    print(f"{action} {name or fault_name(now)}: {len(cmds)} command{'s' * (len(cmds) != 1)}")
    apply(lb, cmds, say=lambda line: print(f"  {line}"))
    st = dict(st, fault=new, request="")
    L.save_state(st)
    for line in _prediction(target):
        print(line)
    print("next: python -m coursekit lab capture, then run, then compare (the model's broken cluster)"
          if action == "break" else "next: python -m coursekit lab capture, then run, then compare")
    return 0
