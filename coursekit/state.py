"""A real cluster's state, as its nodes print it, and which entry made a change.

``coursekit collect`` (:mod:`.collect`) writes one file per node,
``<node>-state.txt``, each a series of sections headed by the command that
printed them -- the same layout as the course's own
``data/captures/<scenario>/<node>-state.txt``::

    # xiaomi: ip -d addr
    3: flannel.1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 ...
        link/ether 8a:4e:1d:55:0b:21 brd ff:ff:ff:ff:ff:ff
        vxlan id 1 local 10.167.226.38 dev enp4s0 ... dstport 8472 ...
        inet 172.30.83.0/32 scope global flannel.1
    # xiaomi: ip route
    ...

Sections read: ``ip [-d] [-4] [-br] addr``/``link``, ``ip route``, ``ip
neigh``, ``bridge fdb``, ``iptables-save`` (the nat table),
``conntrack -L``, ``cat /run/flannel/subnet.env``; ``route -n`` and
anything else is kept as text and not used.  ``kubectl get
nodes,pods,svc,endpoints -o json`` output may sit beside them in any
``*.json`` file.  A missing section is not an error: what it would have
explained is listed as not attributed.

:func:`attribute` ties the changes :mod:`.explanation` found to entries: a DNAT
to the KUBE-SERVICES -> KUBE-SVC -> KUBE-SEP rules that lead to it, a
source rewrite to the first POSTROUTING rule that matches (evaluated as the
kernel does, in order, following jumps), an encapsulation to the FDB and
neighbour entries and the VXLAN device, a reply's reversal to conntrack.

Taught in: 10-your-own-cluster.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CourseError

__all__ = ["NodeState", "ClusterState", "load_state", "parse_state_text", "attribute", "MAX_STATE_BYTES"]

MAX_STATE_BYTES = 16 * 1024 * 1024
_HEADER = re.compile(r"^# ([A-Za-z0-9_.-]+): (.+?)\s*$")


@dataclass
class Iface:
    index: int | None
    name: str
    mac: str | None = None
    addrs: list = field(default_factory=list)       # IPv4Interface
    vxlan: dict | None = None                       # {"id": 1, "dstport": 8472, "local": ...}
    line: str = ""
    mtu: int | None = None
    master: str | None = None                       # the bridge a port belongs to
    kind: str | None = None                         # "veth", "bridge", "vxlan" (ip -d)
    hairpin: bool | None = None                     # bridge_slave ... hairpin on|off (ip -d)


@dataclass
class Rule:
    chain: str
    text: str                 # as iptables-save prints it
    opts: dict                # option -> (negated, value)
    target: str


@dataclass
class NodeState:
    name: str
    sections: dict = field(default_factory=dict)    # command -> text
    ifaces: dict = field(default_factory=dict)      # name -> Iface
    routes: list = field(default_factory=list)      # (network, dev, via, line)
    neigh: list = field(default_factory=list)       # (ip, dev, mac, line)
    fdb: list = field(default_factory=list)         # (mac, dev, dst, line)
    nat: list = field(default_factory=list)         # Rule
    conntrack: list = field(default_factory=list)   # (orig 4-tuple, reply 4-tuple, line)
    sysctl: dict = field(default_factory=dict)      # key -> value (sysctl KEY ...)
    subnet_env: dict = field(default_factory=dict)  # FLANNEL_NETWORK=... (cat /run/flannel/subnet.env)
    where: dict = field(default_factory=dict)       # command -> (file, line of its header)

    def addresses(self) -> set[str]:
        return {str(a.ip) for i in self.ifaces.values() for a in i.addrs}

    def route(self, dst: str):
        try:
            ip = ipaddress.IPv4Address(dst)
        except ValueError:
            return None
        best = None
        for net, dev, via, line in self.routes:
            if ip in net and (best is None or net.prefixlen > best[0].prefixlen):
                best = (net, dev, via, line)
        return best


@dataclass
class ClusterState:
    nodes: dict                                     # name -> NodeState
    services: list = field(default_factory=list)    # (ns/name, clusterIP, port, proto)
    pods: dict = field(default_factory=dict)        # ip -> ns/name
    problems: list = field(default_factory=list)
    pod_nodes: dict = field(default_factory=dict)   # ip -> node (kubectl spec.nodeName)
    pod_namespaces: dict = field(default_factory=dict)   # ip -> namespace (kubectl)

    def node_names(self) -> list[str]:
        return list(self.nodes) + sorted(set(self.pods.values()) - set(self.nodes))

    def vxlan_ports(self) -> set[int]:
        return {i.vxlan["dstport"] for n in self.nodes.values() for i in n.ifaces.values()
                if i.vxlan and i.vxlan.get("dstport")}

    def ifname(self, stem: str, index: int | None) -> str | None:
        """The interface with this index on the node a capture's name starts with (``-i any`` captures)."""
        for name, n in self.nodes.items():
            if stem == name or stem.startswith(name + "-"):
                for i in n.ifaces.values():
                    if i.index == index:
                        return i.name
        return None

    def node_of_ip(self, ip: str) -> str | None:
        for name, n in self.nodes.items():
            if ip in n.addresses():
                return name
        return None


def load_state(path) -> ClusterState:
    """Read a state folder (``<node>-state.txt`` files and optional kubectl ``*.json``).

    Taught in: 10-your-own-cluster.
    """
    if isinstance(path, bytes) or not isinstance(path, (str, Path)) and not hasattr(path, "__fspath__"):
        raise CourseError("state", f"{path!r:.60} is not a path", "a folder written by coursekit collect")
    p = Path(path)
    if not p.is_dir():
        raise CourseError("state", f"{p} is not a folder" if p.exists() else f"no such folder: {p}",
                          "a folder of <node>-state.txt files (coursekit collect)")
    st = ClusterState({})
    files = sorted(x for x in p.iterdir() if x.is_file())
    txt = [f for f in files if f.name.endswith(("-state.txt", ".state"))]
    if not txt:
        st.problems.append(f"state {p}: no <node>-state.txt file, so no change is attributed to an entry")
    for f in txt:
        text = _read(f)
        for node in parse_state_text(text, f.name, st.problems):
            if node.name in st.nodes:                    # two files of one node: merge
                old = st.nodes[node.name]
                for k in ("routes", "neigh", "fdb", "nat", "conntrack"):
                    getattr(old, k).extend(getattr(node, k))
                old.ifaces.update(node.ifaces)
                old.sections.update(node.sections)
            else:
                st.nodes[node.name] = node
    for f in files:
        if f.suffix == ".json":
            _kubectl(_read(f), f.name, st)
    for n in st.nodes.values():
        missing = [what for what, have in (("ip addr", n.ifaces), ("ip route", n.routes),
                                           ("iptables-save", n.nat)) if not have]
        if missing:
            st.problems.append(f"state {n.name}: no {', '.join(missing)} section (changes it would explain "
                               "stay unattributed)")
    return st


def _read(f: Path) -> str:
    try:
        with open(f, "rb") as fh:
            data = fh.read(MAX_STATE_BYTES + 1)
    except OSError as e:
        raise CourseError("state", f"cannot read {f}: {e.strerror or e}") from None
    if len(data) > MAX_STATE_BYTES:
        raise CourseError("state", f"{f.name} is larger than {MAX_STATE_BYTES // 2**20} MiB",
                          "the output of coursekit collect")
    return data.decode("utf-8", "replace")


def parse_state_text(text: str, name: str = "state", problems: list | None = None) -> list[NodeState]:
    """Split a state file into its nodes' sections and parse each one."""
    problems = problems if problems is not None else []
    nodes: dict[str, NodeState] = {}
    cur, cmd, buf, at = None, None, [], 0

    def flush():
        if cur is not None and cmd is not None:
            n = nodes.setdefault(cur, NodeState(cur))
            n.where[cmd] = (name, at)
            _section(n, cmd, "\n".join(buf), problems, (name, at))

    for i, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line)
        if m:
            flush()
            cur, cmd, buf, at = m.group(1), m.group(2), [], i
        elif cur is not None:
            buf.append(line)
    flush()
    if not nodes:
        problems.append(f"state {name}: no '# <node>: <command>' section")
    return list(nodes.values())


class _Lines:
    """A section's lines with their place in the file, and the problems found in them."""

    def __init__(self, n: NodeState, cmd: str, text: str, problems: list, where: tuple):
        self.n, self.cmd, self.text, self.problems = n, cmd, text, problems
        self.file, self.at = where

    def __iter__(self):
        for j, line in enumerate(self.text.splitlines(), 1):
            yield j, line

    def bad(self, j: int, line: str, expected: str) -> None:
        """One line that is not what the command prints: named by file, line and what was expected."""
        if len(self.problems) < 1000:
            self.problems.append(f"state {self.file} line {self.at + j} ({self.cmd}): {line.strip()[:60]!r} is "
                                 f"not {expected}")


def _section(n: NodeState, cmd: str, text: str, problems: list, where: tuple = ("state", 0)) -> None:
    n.sections[cmd] = text
    words = cmd.split()
    lines = _Lines(n, cmd, text, problems, where)
    if words[:1] == ["ip"] and any(w in ("addr", "address", "a", "link", "l") for w in words[1:3] + words[2:4]):
        _ip_addr(n, lines)
    elif words[:1] == ["ip"] and any(w in ("route", "r", "ro") for w in words[1:4]):
        _ip_route(n, lines)
    elif words[:1] == ["ip"] and any(w in ("neigh", "neighbour", "n") for w in words[1:4]):
        _ip_neigh(n, lines)
    elif words[:2] == ["bridge", "fdb"]:
        _fdb(n, lines, cmd)
    elif words[:1] == ["iptables-save"]:
        _iptables(n, lines)
    elif words[:1] == ["conntrack"]:
        _conntrack(n, lines)
    elif words[:1] == ["sysctl"]:
        _sysctl(n, lines)
    elif words[:2] == ["cat", "/run/flannel/subnet.env"]:
        for j, line in lines:
            k, eq, v = line.strip().partition("=")
            if eq and re.fullmatch(r"[A-Z_]+", k):
                n.subnet_env[k] = v.strip()
            elif line.strip() and not _is_error(line):
                lines.bad(j, line, "a KEY=value line of flannel's subnet.env")
    elif not (words[:2] == ["route", "-n"] or words[:1] == ["kubectl"]):
        problems.append(f"state {n.name}: section '{cmd[:60]}' is not read (read: ip addr, ip route, "
                        "ip neigh, bridge fdb, iptables-save, conntrack -L, sysctl, subnet.env)")


def _is_error(line: str) -> bool:
    """What collect writes in a section whose command failed (``conntrack: command not found``...)."""
    low = line.lower()
    return any(w in low for w in ("not found", "no such file", "permission denied", "operation not permitted",
                                  "cannot ", "no answer in", "error", "usage:"))


_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


def _ip_addr(n: NodeState, lines: _Lines) -> None:
    cur = None
    for j, line in lines:
        m = re.match(r"^(\d+): ([^:@\s]+)(?:@\S+)?:", line)
        if m:
            cur = n.ifaces.setdefault(m.group(2), Iface(int(m.group(1)), m.group(2)))
            cur.index = int(m.group(1))
            cur.line = line.strip()
            w = line.split()
            if "mtu" in w and w.index("mtu") + 1 < len(w) and w[w.index("mtu") + 1].isdigit():
                cur.mtu = int(w[w.index("mtu") + 1])
            if "master" in w and w.index("master") + 1 < len(w):
                cur.master = w[w.index("master") + 1]
            continue
        s = line.split()
        if not s:
            continue
        if cur is None or not line[:1].isspace():       # ip -br addr: name state addr...
            if len(s) >= 2 and not line[:1].isspace() and re.fullmatch(r"[^\s/:]{1,15}(@\S+)?", s[0]):
                cur = n.ifaces.setdefault(s[0].split("@")[0], Iface(None, s[0].split("@")[0]))
                for w in s[2:]:
                    try:
                        if "/" in w and "." in w:
                            cur.addrs.append(ipaddress.IPv4Interface(w))
                        elif _MAC.fullmatch(w):
                            cur.mac = w.lower()
                    except ValueError:
                        lines.bad(j, line, "an interface line (an address such as 10.0.0.1/24)")
            elif not _is_error(line):
                lines.bad(j, line, "an interface line ('N: NAME: <FLAGS> mtu ...')")
            continue
        try:
            if s[0] == "link/ether" and len(s) > 1:
                if not _MAC.fullmatch(s[1]):
                    raise ValueError(s[1])
                cur.mac = s[1].lower()
            elif s[0] == "inet" and len(s) > 1:
                cur.addrs.append(ipaddress.IPv4Interface(s[1]))
            elif s[0] in ("veth", "bridge", "vxlan", "dummy") and cur.kind is None:
                cur.kind = s[0]
            if s[0] == "bridge_slave" and "hairpin" in s and s.index("hairpin") + 1 < len(s):
                cur.hairpin = s[s.index("hairpin") + 1] == "on"
            if s[0] == "vxlan" and "id" in s:
                v = {"id": int(s[s.index("id") + 1])}
                for k in ("dstport", "local", "dev"):
                    if k in s and s.index(k) + 1 < len(s):
                        v[k] = s[s.index(k) + 1]
                v["dstport"] = int(v.get("dstport", 8472))    # iproute2 prints dstport; the kernel default is 8472
                if "noudpcsum" in s or "udpcsum" in s:        # iproute2: "[no]udpcsum"
                    v["udpcsum"] = "udpcsum" in s
                cur.vxlan = v
                cur.line = f"{cur.name}: {line.strip()}"
        except (ValueError, IndexError):
            lines.bad(j, line, f"a detail line of {cur.name} (link/ether MAC, inet ADDRESS/PREFIX, vxlan id N ...)")


_ROUTE_SKIP = ("broadcast", "local", "unreachable", "blackhole", "prohibit", "throw", "multicast", "anycast", "nat")


def _ip_route(n: NodeState, lines: _Lines) -> None:
    for j, line in lines:
        s = line.split()
        if not s or s[0] in _ROUTE_SKIP or line[:1].isspace() and s[0] == "nexthop":
            continue
        try:
            net = ipaddress.IPv4Network("0.0.0.0/0" if s[0] == "default" else s[0], strict=False)
            dev = s[s.index("dev") + 1] if "dev" in s else None
            via = s[s.index("via") + 1] if "via" in s else None
            if via is not None:
                ipaddress.IPv4Address(via)
            if dev is None and via is None:
                raise ValueError("no dev, no via")
        except (ValueError, IndexError):
            if not _is_error(line):
                lines.bad(j, line, "a route ('PREFIX|default [via GATEWAY] dev DEVICE ...')")
            continue
        n.routes.append((net, dev, via, line.strip()))


def _ip_neigh(n: NodeState, lines: _Lines) -> None:
    for j, line in lines:
        s = line.split()
        if not s:
            continue
        if len(s) >= 5 and "lladdr" in s and "dev" in s and s.index("lladdr") + 1 < len(s) and \
                s.index("dev") + 1 < len(s) and _MAC.fullmatch(s[s.index("lladdr") + 1]):
            try:
                ipaddress.IPv4Address(s[0])
            except ValueError:
                if ":" not in s[0]:                 # an IPv6 neighbour is fine, and not used
                    lines.bad(j, line, "a neighbour ('ADDRESS dev DEVICE lladdr MAC STATE')")
                continue
            n.neigh.append((s[0], s[s.index("dev") + 1], s[s.index("lladdr") + 1].lower(), line.strip()))
        elif ("lladdr" in s or not (len(s) >= 3 and s[1] == "dev")) and not _is_error(line):
            lines.bad(j, line, "a neighbour ('ADDRESS dev DEVICE lladdr MAC STATE')")


def _fdb(n: NodeState, lines: _Lines, cmd: str) -> None:
    words = cmd.split()
    default_dev = words[words.index("dev") + 1] if "dev" in words and words.index("dev") + 1 < len(words) else None
    for j, line in lines:
        s = line.split()
        if not s:
            continue
        if not _MAC.fullmatch(s[0]):
            if not _is_error(line):
                lines.bad(j, line, "an FDB entry ('MAC dev DEVICE [dst ADDRESS] [master BRIDGE] ...')")
            continue
        dev = s[s.index("dev") + 1] if "dev" in s and s.index("dev") + 1 < len(s) else default_dev
        dst = s[s.index("dst") + 1] if "dst" in s and s.index("dst") + 1 < len(s) else None
        n.fdb.append((s[0].lower(), dev, dst, line.strip() if "dev" in s or not dev else
                      f"{s[0]} dev {dev} {' '.join(s[1:])}"))


_NEG_OPTS = {"-s", "--source", "-d", "--destination", "-p", "--protocol", "-i", "--in-interface", "-o",
             "--out-interface", "--dport", "--sport", "--dst-type", "--src-type", "--mark"}
_ALIASES = {"--source": "-s", "--destination": "-d", "--protocol": "-p", "--in-interface": "-i",
            "--out-interface": "-o", "--jump": "-j", "--destination-port": "--dport", "--source-port": "--sport"}


def _iptables(n: NodeState, lines: _Lines) -> None:
    table, opened, last = None, 0, 0
    for j, line in lines:
        last = j
        if line.startswith("*"):
            if table is not None:
                lines.bad(j, line, f"a new table before the COMMIT of *{table} (iptables-save ends each table "
                                   "with COMMIT)")
            table, opened = line[1:].strip(), j
        elif line.strip() == "COMMIT":
            if table is None:
                lines.bad(j, line, "a COMMIT after a '*table' line")
            table = None
        elif line.startswith("-A "):
            if table is None:
                lines.bad(j, line, "a rule inside a table ('*nat' ... 'COMMIT')")
                continue
            if table != "nat":
                continue
            try:
                toks = shlex.split(line)
            except ValueError:
                lines.bad(j, line, "a complete rule (an unclosed quote: the file is cut?)")
                continue
            if len(toks) < 2:
                lines.bad(j, line, "a rule ('-A CHAIN ... -j TARGET')")
                continue
            opts: dict = {}
            neg = False
            i = 2
            while i < len(toks):
                t = _ALIASES.get(toks[i], toks[i])
                if t == "!":
                    neg = True
                    i += 1
                    continue
                if t.startswith("-") and i + 1 < len(toks) and not toks[i + 1].startswith("-"):
                    opts.setdefault(t, (neg, toks[i + 1]))
                    i += 2
                elif t.startswith("-"):
                    opts.setdefault(t, (neg, ""))
                    i += 1
                else:
                    i += 1
                neg = False
            n.nat.append(Rule(toks[1], line.strip(), opts, opts.get("-j", (False, ""))[1]))
        elif line.strip() and not line.startswith((":", "#")) and not _is_error(line):
            lines.bad(j, line, "an iptables-save line ('*table', ':CHAIN POLICY', '-A ...', 'COMMIT')")
    if table is not None:
        lines.bad(opened, f"*{table}", "a complete table: no COMMIT follows it (the output is cut short?)")


def _sysctl(n: NodeState, lines: _Lines) -> None:
    for j, line in lines:
        k, eq, v = line.partition("=")
        if eq and re.fullmatch(r"\s*[a-z0-9_.-]+\s*", k):
            n.sysctl[k.strip()] = " ".join(v.split())
        elif "cannot stat" in line and "/proc/sys/" in line:      # the key does not exist (module not loaded)
            key = line.split("/proc/sys/", 1)[1].split(":")[0].replace("/", ".")
            n.sysctl[key] = None
        elif line.strip() and not _is_error(line):
            lines.bad(j, line, "a 'key = value' line of sysctl")


_CT = re.compile(r"src=(\S+) dst=(\S+) (?:sport=(\d+) dport=(\d+)|type=\d+ code=\d+ id=(\d+))")


def _conntrack(n: NodeState, lines: _Lines) -> None:
    for j, line in lines:
        m = list(_CT.finditer(line))
        if len(m) >= 2:
            t = [(x.group(1), int(x.group(3) or x.group(5) or 0), x.group(2), int(x.group(4) or x.group(5) or 0))
                 for x in m[:2]]
            n.conntrack.append((t[0], t[1], line.strip()))
        elif line.strip() and not line.startswith("conntrack v") and not _is_error(line) and \
                not line.split()[0] in ("ipv4", "ipv6", "unknown") + tuple(_PROTO_NAMES):
            lines.bad(j, line, "a conntrack entry ('PROTO NUM TIMEOUT [STATE] src=... dst=... sport=... dport=... "
                               "src=... dst=...')")
        elif line.strip() and line.split()[0] in ("ipv4",) + tuple(_PROTO_NAMES) and "src=" not in line:
            lines.bad(j, line, "a complete conntrack entry (no src=...: the line is cut?)")


_PROTO_NAMES = ("tcp", "udp", "icmp", "sctp", "dccp", "gre", "udplite")


def _kubectl(text: str, name: str, st: ClusterState) -> None:
    try:
        doc = json.loads(text)
    except ValueError as e:
        st.problems.append(f"state {name}: not JSON ({str(e)[:60]})")
        return
    items = doc.get("items", [doc]) if isinstance(doc, dict) else []
    if not isinstance(items, list):
        st.problems.append(f"state {name}: 'items' is not a list (kubectl get ... -o json writes one)")
        return

    def obj(x):
        return x if isinstance(x, dict) else {}
    for it in items:
        if not isinstance(it, dict):
            continue
        kind, meta, spec = it.get("kind"), obj(it.get("metadata")), obj(it.get("spec"))
        ident = f"{meta.get('namespace', 'default')}/{meta.get('name', '?')}"
        if kind == "Service":
            ports = spec.get("ports") if isinstance(spec.get("ports"), list) else []
            for port in map(obj, ports):
                if isinstance(spec.get("clusterIP"), str) and spec["clusterIP"] not in ("None", ""):
                    st.services.append((ident, spec["clusterIP"], port.get("port"), port.get("protocol", "TCP")))
        elif kind == "Pod":
            ip = obj(it.get("status")).get("podIP")
            if isinstance(ip, str) and not spec.get("hostNetwork"):
                st.pods[ip] = str(meta.get("name", "?"))
                st.pod_namespaces[ip] = str(meta.get("namespace", "default"))
                if isinstance(spec.get("nodeName"), str):
                    st.pod_nodes[ip] = spec["nodeName"]


# --- attribution --------------------------------------------------------------------------------

def _match_net(value: str, ip: str) -> bool:
    try:
        return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        return False


def _cond(rule: Rule, pkt: dict, node: NodeState) -> bool | None:
    """Does the rule's match part hold for the packet?  None: it depends on what the captures cannot show."""
    verdict: bool | None = True
    for opt, (neg, val) in rule.opts.items():
        r: bool | None
        if opt == "-s":
            r = _match_net(val, pkt["src"])
        elif opt == "-d":
            r = _match_net(val, pkt["dst"])
        elif opt == "-p":
            r = val.lower() in (pkt["proto"], {"tcp": "6", "udp": "17", "icmp": "1"}.get(pkt["proto"], "?"))
        elif opt == "--dport":
            r = pkt["proto"] in ("tcp", "udp") and str(pkt["dport"]) == val
        elif opt == "--sport":
            r = pkt["proto"] in ("tcp", "udp") and str(pkt["sport"]) == val
        elif opt == "-o":
            r = None if pkt.get("out") is None else _ifmatch(val, pkt["out"])
        elif opt == "-i":
            r = None if pkt.get("in") is None else _ifmatch(val, pkt["in"])
        elif opt == "--dst-type":
            r = (pkt["dst"] in node.addresses()) if val == "LOCAL" and node.ifaces else None
        elif opt == "--mark":
            r = None if pkt.get("mark") is None else _mark_match(val, pkt["mark"])
        elif opt in ("--probability", "--src-type", "--ctstate", "--state"):
            r = None
        else:
            continue
        if r is not None and neg:
            r = not r
        if r is False:
            return False
        if r is None:
            verdict = None
    return verdict


def _mark_match(val: str, mark: int) -> bool | None:
    try:
        v, _, m = val.partition("/")
        return (mark & int(m or "0xffffffff", 0)) == int(v, 0)
    except ValueError:
        return None


def _mark_set(node: NodeState, chain: str) -> int | None:
    """The mark a chain such as KUBE-MARK-MASQ sets (``MARK --set-xmark V/M`` or ``--or-mark V``)."""
    for r in node.nat:
        if r.chain == chain and r.target == "MARK":
            for opt in ("--set-xmark", "--or-mark", "--set-mark"):
                if opt in r.opts:
                    try:
                        return int(r.opts[opt][1].split("/")[0], 0)
                    except ValueError:
                        return None
    return None


def _mark_of(node: NodeState, pkt: dict, new_dst: str | None) -> int | None:
    """The packet's mark after nat PREROUTING/OUTPUT, or None when it cannot be told.

    Follows the rules in order up to the DNAT to ``new_dst`` (the KUBE-SEP chain actually taken);
    a KUBE-MARK-MASQ jump whose conditions hold sets the mark.
    """
    mark, unsure = 0, False
    sep_of = {r.chain for r in node.nat if r.target == "DNAT" and new_dst is not None
              and r.opts.get("--to-destination", (False, ""))[1].split(":")[0] == new_dst}
    for top in ("PREROUTING", "OUTPUT"):
        for r, holds in _traverse(node, top, pkt):
            if r.target == "DNAT" and r.chain in sep_of:
                return None if unsure else mark
            if r.chain.startswith("KUBE-SEP-") and r.chain not in sep_of:
                continue
            v = _mark_set(node, r.target)
            if v is not None:
                if holds:
                    mark |= v
                else:
                    unsure = True
    return None if unsure else mark


def _ifmatch(pattern: str, name: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("+") else name == pattern


def _traverse(node: NodeState, chain: str, pkt: dict, depth: int = 0):
    """Rules of ``chain`` in order, following jumps: yields (rule, holds) for every target reached."""
    if depth > 16:
        return
    chains = {r.chain for r in node.nat}
    for r in node.nat:
        if r.chain != chain:
            continue
        holds = _cond(r, pkt, node)
        if holds is False:
            continue
        if r.target in chains:
            yield r, holds
            yield from _traverse(node, r.target, pkt, depth + 1)
            continue
        yield r, holds
        if holds and r.target in ("RETURN",):
            return


def _dnat_rules(node: NodeState, pkt: dict, new_ip: str, new_port: int | None) -> list[str]:
    for top in ("PREROUTING", "OUTPUT"):
        path: list[Rule] = []
        for r, holds in _traverse(node, top, pkt):
            if r.target == "DNAT":
                to = r.opts.get("--to-destination", (False, ""))[1]
                ip, _, port = to.partition(":")
                if ip.split("-")[0] == new_ip and (not port or new_port is None or port == str(new_port)):
                    keep = [x for x in path if x.target == r.chain or x.target.startswith(("KUBE-SVC", "KUBE-SEP",
                                                                                         "KUBE-EXT", "KUBE-FW",
                                                                                         "KUBE-NODEPORTS"))]
                    return [x.text for x in _chain_to(keep, r)] + [r.text]
            path.append(r)
    return []


def _chain_to(path: list[Rule], rule: Rule) -> list[Rule]:
    """The jumps that lead to ``rule``'s chain, outermost first."""
    out, want = [], rule.chain
    for r in reversed(path):
        if r.target == want:
            out.append(r)
            want = r.chain
    return list(reversed(out))


def _snat_rule(node: NodeState, pkt: dict, new_ip: str) -> list[str]:
    maybe = None
    for r, holds in _traverse(node, "POSTROUTING", pkt):
        if r.target in ("MASQUERADE", "SNAT"):
            if r.target == "SNAT":
                to = r.opts.get("--to-source", (False, ""))[1].split(":")[0]
                if to.split("-")[0] != new_ip:
                    continue
            elif node.ifaces and new_ip not in node.addresses():
                continue
            if holds:
                return [r.text]
            if maybe is None:
                maybe = r
        elif holds and r.target in ("RETURN", "ACCEPT") and r.chain == "POSTROUTING":
            break
    if maybe is not None:
        note = " (if the packet was marked: KUBE-MARK-MASQ)" if "--mark" in maybe.opts else \
            " (its conditions depend on what the captures do not show)"
        return [maybe.text + note]
    return []


def _node_of(place: str, st: ClusterState) -> str | None:
    name = place.split(" ")[0]
    return name if name in st.nodes else None


def _home(ip: str, st: ClusterState) -> str | None:
    """The node a pod address lives on: a directly connected route to it that is not the uplink or a VTEP."""
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        return None
    for name, n in st.nodes.items():
        uplink = {dev for net, dev, via, _ in n.routes if net.prefixlen == 0}
        vteps = {i.name for i in n.ifaces.values() if i.vxlan}
        for net, dev, via, _ in n.routes:
            if via is None and net.prefixlen and addr in net and dev not in uplink | vteps:
                return name
    return None


def _order(a, b, st: ClusterState) -> list[str]:
    """Nodes where a change between sightings ``a`` and ``b`` may have been made, likeliest first.

    Whatever changed inside a packet that got encapsulated was done by the node that encapsulated it
    (the outer source); after a decapsulation, by the outer destination; else the capture's node, then
    the node a pod address lives on.
    """
    first = []
    if b.encap and not a.encap:
        first.append(st.node_of_ip(b.encap[0].src))
    if a.encap and not b.encap:
        first.append(st.node_of_ip(a.encap[0].dst))
    first += [_node_of(a.place, st), _node_of(b.place, st)]
    first += [_home(x, st) for x in (a.src, a.dst, b.src, b.dst)]
    order = [x for x in dict.fromkeys(first) if x]
    return order + [x for x in st.nodes if x not in order]


def attribute(conv, st: ClusterState) -> None:
    """Fill ``Change.by`` of every change of a conversation from the state; name its Service.

    Taught in: 10-your-own-cluster.
    """
    from .explanation import _PROTO
    proto = _PROTO.get(conv.proto, str(conv.proto)).lower()
    # the Service: kubectl first, else kube-proxy's own comment on the ClusterIP rule
    for (a, ap), (b, bp) in conv.views:
        for ident, ip, port, _ in st.services:
            if ip == b and (port == bp or conv.proto not in (6, 17)):
                conv.service = f"{ident}:{port}"
        if conv.service is None:
            for n in st.nodes.values():
                for r in n.nat:
                    if r.chain == "KUBE-SERVICES" and "-d" in r.opts and _match_net(r.opts["-d"][1], b) and \
                            r.opts["-d"][1].endswith("/32") and r.opts.get("--dport", (0, str(bp)))[1] == str(bp):
                        c = r.opts.get("--comment", (False, ""))[1]
                        if c:
                            conv.service = c.replace(" cluster IP", "").rstrip(":") + f" (ClusterIP {b}:{bp}, " \
                                "named by kube-proxy's rule comment)"
                            break
                if conv.service:
                    break
        if conv.service:
            break
    views = {(a, ap, b, bp) for (a, ap), (b, bp) in conv.views}
    for name, n in st.nodes.items():
        for orig, reply, line in n.conntrack:
            if orig in views or (reply[0], reply[1], reply[2], reply[3]) in {(b, bp, a, ap) for a, ap, b, bp in views}:
                conv.conntrack.append(f"{name}: {line}")
    for p in conv.packets:
        for i, step in enumerate(p.changes):
            a, b = p.sightings[i], p.sightings[i + 1]
            order = _order(a, b, st)
            for ch in step:
                _attribute_change(ch, a, b, proto, order, st)


def _attribute_change(ch, a, b, proto: str, order: list[str], st: ClusterState) -> None:
    pkt = {"src": a.src, "dst": a.dst, "sport": a.sport, "dport": a.dport, "proto": proto}
    if ch.kind == "DNAT":
        for name in order:
            n = st.nodes[name]
            pkt["in"] = a.place.split(" ", 1)[1] if _node_of(a.place, st) == name and " " in a.place else None
            rules = _dnat_rules(n, pkt, b.dst, b.dport if proto in ("tcp", "udp") else None)
            if rules:
                ch.by += [f"{name}: {r}" for r in rules]
                return
    elif ch.kind == "SNAT":
        for name in order:
            n = st.nodes[name]
            q = dict(pkt, dst=b.dst, dport=b.dport)        # POSTROUTING sees the packet after DNAT
            r = n.route(b.dst)                               # -o is the routed device (a bridge, not its port)
            q["out"] = r[1] if r else None
            q["mark"] = _mark_of(n, pkt, b.dst)
            rules = _snat_rule(n, q, b.src)
            if rules:
                ch.by += [f"{name}: {r}" for r in rules]
                return
    elif ch.kind in ("un-DNAT", "un-SNAT"):
        for name in order:
            for orig, reply, line in st.nodes[name].conntrack:
                if orig == (reply[2], reply[3], reply[0], reply[1]):
                    continue                             # this node's entry does no NAT
                if (reply[0], reply[1]) in ((a.src, a.sport), (a.dst, a.dport)) and \
                        (reply[2], reply[3]) in ((a.src, a.sport), (a.dst, a.dport)):
                    ch.by.append(f"{name}: conntrack {line}")
                    return
        ch.by.append("conntrack: the reply of a NATed connection is rewritten back by its conntrack entry "
                     "(no conntrack -L line in the state shows it)")
        return
    elif ch.kind == "encapsulation" and b.encap:
        e = b.encap[0]
        name = st.node_of_ip(e.src) or (order[0] if order else None)
        if name is None:
            return
        n = st.nodes[name]
        for mac, dev, dst, line in n.fdb:
            if dst == e.dst and (b.dst_mac is None or mac == b.dst_mac):
                ch.by.append(f"{name}: bridge fdb {line}")
                for ip, ndev, nmac, nline in n.neigh:
                    if nmac == mac and ndev == dev:
                        ch.by.append(f"{name}: ip neigh {nline}")
                dv = n.ifaces.get(dev)
                if dv and dv.vxlan:
                    ch.by.append(f"{name}: {dv.line}")
                break
        r = n.route(b.dst)
        if r:
            ch.by.append(f"{name}: ip route {r[3]}")
        return
    elif ch.kind == "decapsulation" and a.encap:
        e = a.encap[0]
        name = st.node_of_ip(e.dst)
        if name:
            n = st.nodes[name]
            for dv in n.ifaces.values():
                if dv.vxlan and (dv.vxlan.get("id") == e.vni) and dv.vxlan.get("dstport") == e.dport:
                    ch.by.append(f"{name}: {dv.line}")
        return
    elif ch.kind == "TTL":
        for name in order:
            r = st.nodes[name].route(b.dst)
            if r and st.nodes[name].routes:
                ch.by.append(f"{name}: ip route {r[3]}")
                return
        return
    elif ch.kind == "MAC":
        for name in order:
            for ip, dev, mac, line in st.nodes[name].neigh:
                if mac == b.dst_mac:
                    ch.by.append(f"{name}: ip neigh {line}")
                    return
        return
    if not ch.by and ch.kind in ("DNAT", "SNAT"):
        ch.by.append(f"(no rule in the state explains this {ch.kind}: "
                     f"{'no iptables-save section' if not any(st.nodes[x].nat for x in order) else 'no rule matches'})")
