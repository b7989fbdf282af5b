"""Collect a node's state for ``explain --state``: read-only commands, one file per node.

``coursekit collect --print`` prints a POSIX shell script to run on each
node (as root, so that iptables-save and conntrack can read the kernel's
tables); it only *reads*: every command below lists or dumps, none adds,
deletes or flushes anything (``conntrack -L`` may make the kernel load
nf_conntrack_netlink, where nothing loaded it yet).  It writes ``<node>-state.txt`` in the current
folder, one section per command, headed ``# <node>: <command>`` (the layout
of the course's own ``data/captures/<scenario>/<node>-state.txt``)::

    # xiaomi: ip -d addr
    # xiaomi: ip route
    # xiaomi: ip neigh
    # xiaomi: bridge fdb show
    # xiaomi: iptables-save -t nat
    # xiaomi: iptables-save -t filter
    # xiaomi: conntrack -L
    # xiaomi: cat /run/flannel/subnet.env
    # xiaomi: sysctl net.bridge.bridge-nf-call-iptables net.ipv4.ip_default_ttl ...

``coursekit collect -o DIR`` runs the same commands on this machine
itself (no shell; a command that is missing or refused leaves its section
holding the error).  ``kubectl get nodes,pods,svc,endpoints -o json >
cluster.json`` beside the files names Pods and Services.

:func:`model_state_text` prints the same sections for a node of a course
scenario, computed by the model -- what collect would have printed there
(interface indexes are assumed: 1 lo, then the order of
:meth:`Scenario.interfaces`; the bridge's FDB lists every pod, as a bridge
that has heard each of them).

Taught in: 10-your-own-cluster.
"""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

from .errors import CourseError

__all__ = ["COMMANDS", "collect_script", "collect", "model_state_text", "model_kubectl_json", "write_model_state"]

#: (section command, argv) -- read-only, every one
COMMANDS = (
    ("ip -d addr", ["ip", "-d", "addr"]),
    ("ip route", ["ip", "route"]),
    ("ip neigh", ["ip", "neigh"]),
    ("bridge fdb show", ["bridge", "fdb", "show"]),
    ("iptables-save -t nat", ["iptables-save", "-t", "nat"]),
    ("iptables-save -t filter", ["iptables-save", "-t", "filter"]),
    ("conntrack -L", ["conntrack", "-L"]),
    ("cat /run/flannel/subnet.env", ["cat", "/run/flannel/subnet.env"]),
    ("sysctl net.bridge.bridge-nf-call-iptables net.ipv4.ip_default_ttl net.ipv4.ip_local_port_range",
     ["sysctl", "net.bridge.bridge-nf-call-iptables", "net.ipv4.ip_default_ttl", "net.ipv4.ip_local_port_range"]),
)


def collect_script() -> str:
    """The shell script ``coursekit collect --print`` prints (read-only; run it on each node as root)."""
    lines = ["#!/bin/sh",
             "# Packet Walk: collect this node's network state for `coursekit explain --state DIR`.",
             "# Read-only: it lists and dumps tables and changes no rule, route or setting (conntrack -L",
             "# may make the kernel load its netlink module, if nothing on the node has yet).",
             'node=${1:-$(hostname -s)}',
             'out="$node-state.txt"',
             ': > "$out"']
    for title, argv in COMMANDS:
        lines.append(f'echo "# $node: {title}" >> "$out"; {" ".join(argv)} >> "$out" 2>&1 || true; '
                     f'echo >> "$out"')
    lines.append('echo "wrote $out"   # and, where kubectl works: '
                 'kubectl get nodes,pods,svc,endpoints -A -o json > cluster.json')
    return "\n".join(lines) + "\n"


def collect(out_dir, node: str | None = None, timeout: float = 20.0, netns: str | None = None) -> Path:
    """Run the read-only commands here and write ``<node>-state.txt`` into ``out_dir``.

    ``netns``: run them inside this named network namespace (``ip netns exec``),
    as the live lab's nodes are (tools/lab_run_data.py).

    Taught in: 10-your-own-cluster.
    """
    from .outputs import output_dir, write_file
    node = node or socket.gethostname().split(".")[0]
    if not isinstance(node, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,63}", node):
        raise CourseError("node", f"{node!r:.60} is not a node name", "letters, digits, '.', '_' and '-'")
    d = output_dir(out_dir, "--out")
    d.mkdir(parents=True, exist_ok=True)
    parts = []
    if netns is not None and (not isinstance(netns, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", netns)):
        raise CourseError("netns", f"{netns!r:.60} is not a namespace name", "a name ip netns list shows")
    for title, argv in COMMANDS:
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        try:
            r = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
            text = (r.stdout + r.stderr).decode("utf-8", "replace")
        except FileNotFoundError:
            text = f"{argv[0]}: command not found\n"
        except subprocess.TimeoutExpired:
            text = f"{argv[0]}: no answer in {timeout:g} s\n"
        except OSError as e:
            text = f"{argv[0]}: {e.strerror or e}\n"
        parts.append(f"# {node}: {title}\n{text.rstrip()}\n")
    return write_file(d / f"{node}-state.txt", "\n".join(parts) + "\n")


def _ip_d_addr(sc, node: str) -> str:
    n = sc.node(node)
    rows = [f"1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000\n"
            f"    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00 promiscuity 0\n"
            f"    inet 127.0.0.1/8 scope host lo\n"]
    bcast = lambda i: str(i.network.broadcast_address)      # noqa: E731
    import ipaddress
    for idx, name in enumerate(sc.interfaces(node), 2):
        if name == n.nic.name:
            net = ipaddress.IPv4Interface(f"{n.nic.ip}/{n.nic.network.prefixlen}")
            rows.append(f"{idx}: {name}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu {n.nic.mtu} state UP\n"
                        f"    link/ether {n.nic.mac} brd ff:ff:ff:ff:ff:ff promiscuity 0\n"
                        f"    inet {net} brd {bcast(net)} scope global {name}\n")
        elif name == sc.flannel.device:
            rows.append(f"{idx}: {name}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu {sc.mtu_of(node, name)} "
                        f"state UNKNOWN\n"
                        f"    link/ether {n.vtep_mac} brd ff:ff:ff:ff:ff:ff promiscuity 0\n"
                        f"    vxlan id {sc.flannel.vni} local {n.nic.ip} dev {n.nic.name} srcport 0 0 "
                        f"dstport {sc.flannel.port} nolearning ageing 300 "
                        f"{'' if sc.flannel.udp_checksum else 'no'}udpcsum\n"
                        f"    inet {n.subnet.network_address}/32 scope global {name}\n")
        elif name == "docker0":
            net = ipaddress.IPv4Interface(f"{n.docker.bridge_ip}/{n.subnet.prefixlen}")
            rows.append(f"{idx}: docker0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu {n.docker.mtu} state UP\n"
                        f"    link/ether {n.docker.bridge_mac} brd ff:ff:ff:ff:ff:ff promiscuity 0\n"
                        f"    bridge forward_delay 1500 hello_time 200 max_age 2000\n"
                        f"    inet {net} brd {bcast(net)} scope global docker0\n")
        else:
            pod = next((p for p in sc.pods_on(node) if p.veth == name), None)
            mac = pod.veth_mac if pod is not None else f"ee:ee:ee:ee:ee:{idx:02x}"
            rows.append(f"{idx}: {name}@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu {sc.mtu_of(node, name)} "
                        f"master docker0 state UP\n"
                        f"    link/ether {mac} brd ff:ff:ff:ff:ff:ff promiscuity 1\n"
                        f"    veth\n"
                        f"    bridge_slave state forwarding priority 32 cost 2 hairpin "
                        f"{'on' if n.hairpin_mode else 'off'}\n")
    return "".join(rows)


def model_state_text(scenario, node: str, walk=None) -> str:
    """What ``collect`` would write on a node of a course scenario, computed by the model.

    The veth MACs and every interface index are assumed (the scenario does
    not say them); conntrack is the table after the conversation's last
    segment.

    Taught in: 10-your-own-cluster.
    """
    from .datapath import walk as _walk
    from .netfilter import conntrack_entry, iptables_save, nat_table
    from .routing import bridge_fdb, ip_neigh, ip_route
    from .scenario import as_scenario
    sc = as_scenario(scenario)
    if not isinstance(node, str) or node not in {n.name for n in sc.nodes}:
        raise CourseError("node", f"{node!r:.60} is not a node of {sc.name}", ", ".join(n.name for n in sc.nodes))
    w = walk if walk is not None else _walk(sc)
    rules, chains = nat_table(sc, node)
    try:
        ct = conntrack_entry(w, node, after=len(w.segments) - 1)
    except CourseError:
        ct = ""
    ct = str(ct) if ct else ""
    n = sc.node(node)
    ports = "".join(f"{p.mac} dev {p.veth} master docker0\n{p.veth_mac} dev {p.veth} master docker0 permanent\n"
                    for p in sc.pods_on(node))
    lo, hi = n.ephemeral_ports
    env = (f"FLANNEL_NETWORK={sc.flannel.network}\nFLANNEL_SUBNET={n.docker.bridge_ip}/{n.subnet.prefixlen}\n"
           f"FLANNEL_MTU={n.nic.mtu - 50}\nFLANNEL_IPMASQ={str(sc.flannel.ip_masq).lower()}\n")
    sysctl = f"net.bridge.bridge-nf-call-iptables = {int(n.br_netfilter)}\n"
    sysctl += f"net.ipv4.ip_default_ttl = {n.default_ttl}\nnet.ipv4.ip_local_port_range = {lo}\t{hi}\n"
    parts = [("ip -d addr", _ip_d_addr(sc, node)), ("ip route", ip_route(sc, node)),
             ("ip neigh", ip_neigh(sc, node)), (f"bridge fdb show dev {sc.flannel.device}", bridge_fdb(sc, node)),
             ("bridge fdb show br docker0", ports),
             ("iptables-save -t nat", iptables_save(rules, chains)), ("conntrack -L", ct or ""),
             ("cat /run/flannel/subnet.env", env), (COMMANDS[-1][0], sysctl)]
    return "".join(f"# {node}: {t}\n{body.rstrip()}\n\n" for t, body in parts)


def model_kubectl_json(scenario) -> str:
    """What ``kubectl get pods,svc -A -o json`` would list for a scenario's pods and Services (the fields
    coursekit reads: names, namespaces, nodes, pod IPs, cluster IPs, ports, selectors).

    Taught in: 10-your-own-cluster.
    """
    import json
    from .scenario import as_scenario
    sc = as_scenario(scenario)
    items = []
    for p in sorted(sc.pods, key=lambda p: (p.namespace, p.name)):
        items.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": p.name, "namespace": p.namespace,
                                                                       "labels": dict(p.labels)},
                      "spec": {"nodeName": p.node}, "status": {"podIP": str(p.ip),
                                                               "hostIP": str(sc.node(p.node).nic.ip)}})
    for s in sorted(sc.services, key=lambda s: (s.namespace, s.name)):
        ports = []
        for sp in s.ports:
            d = {"name": sp.name, "port": sp.port, "protocol": sp.protocol, "targetPort": sp.target_port}
            if sp.node_port:
                d["nodePort"] = sp.node_port
            ports.append(d)
        items.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": s.name, "namespace": s.namespace},
                      "spec": {"clusterIP": str(s.cluster_ip), "ports": ports, "selector": dict(s.selector),
                               "type": "NodePort" if any(sp.node_port for sp in s.ports) else "ClusterIP"}})
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=1, sort_keys=True) + "\n"


def write_model_state(scenario, folder) -> list[Path]:
    """Write :func:`model_state_text` of every node into ``folder`` as ``<node>-state.txt``, and
    :func:`model_kubectl_json` as ``cluster.json``; returns the files.

    Taught in: 10-your-own-cluster.
    """
    from .datapath import walk as _walk
    from .outputs import output_dir, write_file
    from .scenario import as_scenario
    sc = as_scenario(scenario)
    d = output_dir(folder, "folder")
    d.mkdir(parents=True, exist_ok=True)
    w = _walk(sc)
    return [write_file(d / f"{n.name}-state.txt", model_state_text(sc, n.name, w)) for n in sc.nodes] + \
        [write_file(d / "cluster.json", model_kubectl_json(sc))]
