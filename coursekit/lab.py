"""The live lab: the scenario's cluster on a real Linux kernel, captured and compared with the model.

Built from the same scenario the notebooks use, out of network namespaces
and real kernel devices -- nothing is simulated::

    ns <id>busybox        ns <id>xiaomi                              ns <id>meizu                 ns <id>nginx-1
    eth0 ==veth== vethXXXX -> docker0 (bridge)                 docker0 <- vethYYYY ==veth== eth0
                              iptables-restore (the model's nat table)
                              flannel.1 (vxlan id VNI dstport P nolearning) + route/neigh/FDB
                              enp4s0 ===================veth "wire"=================== enp4s0

Any scenario the model walks is built the same way: every node, pod and external
host (``externalHosts:``) of the scenario in a namespace of its own; the underlay a
veth pair between two NICs, or a bridge in a namespace ``pwlab-<run id>-_wire``
(static FDB: each frame reaches only the NIC its MAC names, as in the model) when
external hosts join; the model's nat *and* filter tables (Docker's FORWARD policy
DROP, flannel's ACCEPT rules, KUBE-FORWARD); a default route where the scenario has
one; ``net.bridge.bridge-nf-call-iptables`` per node namespace (per network namespace
since Linux 5.3; the host's own value is never read or written); hairpin mode on the
pods' bridge ports.  The client runs where the scenario puts it (a pod, a node's own
namespace, an external host), servers wherever the model may send the request.

Naming: every namespace is ``pwlab-<run id>-<node or pod>``; the run id is the
creating process's pid in hex plus a counter, so two labs never collide and
``down`` can find every leftover of a crashed run by the ``pwlab-`` prefix.
Links are created *inside* their namespaces (``ip -n A link add … peer …
netns B``), so the host never holds one, even for an instant; no address is
routed outside the namespaces.  The host's links, routes and nat rules are
left byte-identical (a test checks it).

Neighbour caches and bridge FDBs start warm (every on-link peer's entry is
installed, and used once before the captures so that its Ethernet header is
cached), as in the article's captures; a scenario with
``neighbourCaches: cold`` starts them empty, and the ARP exchanges of the
first request are then modelled and compared like the rest.

The comparison (:func:`compare`) identifies every captured TCP segment, feeds
the model what the kernel chose on the day (client port, ISNs, windows,
window scales, segment times, outer UDP source ports, the endpoint
kube-proxy picked) and then compares every field of every frame on every
interface, except a documented list of fields the kernel chooses freely
(:data:`FREE_FIELDS`).  A frame is keyed by its segment and its sighting on that
interface (a hairpinned segment crosses a pod's eth0 twice); a segment the model
drops must show up on no interface past the drop, and the report names every
segment missing from or extra in a capture.  tcpdump runs with ``-p``: a
promiscuous bridge hands its host a copy of every frame it forwards, which would
change what the kernel does (see chapter 07).

Taught in: 07-live-lab.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import CourseError

try:
    import fcntl
except ImportError:                 # not Linux: status() says so; nothing else runs
    fcntl = None

__all__ = ["PREFIX", "FED", "FREE_FIELDS", "DNS_FREE_FIELDS", "DNS_ANSWER_FREE_FIELDS", "dns_conntrack", "Lab",
           "requirements", "status", "leftovers", "down", "compare",
           "Report", "host_snapshot"]

PREFIX = "pwlab-"
_UNDERLAY = "_wire"          # the underlay's bridge namespace (not a Kubernetes name: never a node's or pod's)
_counter = itertools.count(1)

# What the comparison first feeds the model from the lab's captures (the kernel's or the
# clock's choices on the day; :func:`observe`).  Fields that carry one of these values
# unchanged (the SYN's port and ISN, each segment's window, the wscale options, the outer
# UDP source port, a socket's first IP id) match by construction; everything derived from
# them (later sequence and acknowledgement numbers, later IP ids) is a real test.
FED = {
    "clientPort": "the client's source port (the kernel's ephemeral choice)",
    "clientISN": "busybox's initial sequence number (random per connection)",
    "serverISN": "nginx's initial sequence number",
    "wscale": "each side's window scale (follows its buffer sizes)",
    "windows": "every segment's raw window field (each kernel's buffer accounting)",
    "endpoint": "which replica kube-proxy's random rule picked",
    "vxlanSourcePort": "each node's outer UDP source port (a hash with a per-boot random seed)",
    "ipId": "each socket's first IP id (a random start per connection)",
    "times": "when each segment crossed a point on its whole path (the server node's docker0 where it can)",
    "dnsSourcePorts": "each DNS query's UDP source port (the kernel's pick for each new socket; dns: scenarios)",
    "dnsIpIds": "each DNS query socket's first IP id (random per connected socket; dns: scenarios)",
}

# Fields of a DNS datagram the kernel chooses freely, besides FREE_FIELDS.
DNS_FREE_FIELDS = {
    ("outer UDP", "sport"): "the outer source port of a DNS datagram: the kernel's flow hash (per-boot seed) of "
                            "another flow than the conversation's, whose port is fed",
    ("UDP", "chksum"): "left to checksum offload on veth: the capture shows the pseudo-header sum",
}
# ... and of an answer: CoreDNS's socket is not connected, and with path MTU discovery "want" the
# kernel ignores DF when it picks the id (ip_select_ident_segs: skb->ignore_df), so the id comes
# from its per-destination generator, keyed with a boot-time secret
DNS_ANSWER_FREE_FIELDS = {
    ("IPv4", "id"): "an answer's IP id: the kernel's per-destination generator (an unconnected socket)",
    ("IPv4", "chksum"): "follows the answer's IP id",
}

# Fields the kernel (or the clock) chooses freely; compared for presence, not value.
# The inner IP id is compared: each socket's counter starts where the lab's did
# (fed as observed.ipId) and a listener's SYN-ACK and a TIME_WAIT ACK carry 0.
FREE_FIELDS = {
    ("outer IPv4", "id"): "IP id of the outer header: a per-destination counter",
    ("outer IPv4", "chksum"): "follows the outer IP id",
    ("TCP", "chksum"): "covers the TS values (and may be left to offload on veth)",
    ("outer UDP", "chksum"): "covers the inner frame's free fields",
    ("TCP", "options:TS"): "TCP timestamps: each kernel's own clock",
    ("HTTP", "Date"): "the Date header: the wall clock",
}


def _run(cmd: list[str], what: str = "", check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise CourseError("live lab", f"{cmd[0]} is not installed", "install iproute2, iptables and tcpdump") from None
    if check and r.returncode != 0:
        raise CourseError("live lab", f"{what or ' '.join(cmd)} failed: {r.stderr.strip() or r.stdout.strip()}")
    return r


def _tool(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None)


def _child_env(**extra: str) -> dict:
    """The environment of the lab's own Python helpers: this coursekit importable, no bytecode written."""
    return dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), PYTHONDONTWRITEBYTECODE="1",
                **extra)


def _in_netns(ns: str, *cmd: str) -> list[str]:
    """The command line that runs ``cmd`` inside network namespace ``ns``.

    ``ip netns exec`` searches PATH, which for a normal user on Debian lacks
    /usr/sbin: every program is given by its full path.
    """
    return [_tool("ip") or "ip", "netns", "exec", ns, *cmd]


def _sh() -> str:
    return _tool("sh") or "/bin/sh"


def _write_proc_sys(ns: str, values: dict[str, str]) -> dict[str, str]:
    """Write /proc/sys keys inside namespace ``ns`` (no sysctl binary needed); {key: error} for failures.

    /proc/sys/net is per network namespace: a process in ``ns`` sees that namespace's keys.
    """
    script = "; ".join(f'if ! echo {v} 2>/dev/null > /proc/sys/{k.replace(".", "/")}; then echo {k}; fi'
                       for k, v in values.items())
    r = _run(_in_netns(ns, _sh(), "-c", script), check=False)
    failed = {line.strip(): "cannot write" for line in r.stdout.splitlines() if line.strip()}
    if r.returncode != 0:
        failed["ip netns exec"] = r.stderr.strip() or f"exit status {r.returncode}"
    return failed


def _warm_neighbours(sc) -> dict[str, list[tuple]]:
    """Warm caches: every on-link peer of every namespace, {owner: [(ip, mac, dev)]}.

    The model's warm caches resolve any on-link address without an ARP exchange on
    the captures (it happened before them); the lab pre-installs the same answers:
    the model's entries (:func:`coursekit.routing.neighbours`; flannel's permanent
    ones are installed with the VTEP), each pod's neighbours on its own bridge, and
    the underlay's hosts for every node and external host.
    """
    from .routing import neighbours
    out: dict[str, list[tuple]] = {}
    wire = [(n.nic.ip, n.nic.mac, n.name) for n in sc.nodes] + [(x.ip, x.mac, x.name) for x in sc.externals]
    for n in sc.nodes:
        out[n.name] = [(nb.ip, nb.mac, nb.dev) for nb in neighbours(sc, n.name) if nb.dev != sc.flannel.device]
        have = {e[0] for e in out[n.name]}
        out[n.name] += [(ip, mac, n.nic.name) for ip, mac, who in wire if who != n.name and ip not in have]
    for p in sc.pods:
        out[p.name] = [(nb.ip, nb.mac, nb.dev) for nb in neighbours(sc, p.name)]
        out[p.name] += [(q.ip, q.mac, "eth0") for q in sc.pods_on(p.node) if q.name != p.name]
    for x in sc.externals:
        out[x.name] = [(ip, mac, x.nic.name) for ip, mac, who in wire if who != x.name]
    return out


def requirements() -> list[str]:
    """What is missing to run the lab here (empty: ready)."""
    missing = []
    if sys.platform != "linux":
        return ["a Linux kernel (the lab builds network namespaces)"]
    for tool, pkg in (("ip", "iproute2"), ("bridge", "iproute2"), ("iptables-restore", "iptables"),
                      ("iptables-save", "iptables"), ("tcpdump", "tcpdump")):
        if _tool(tool) is None:
            missing.append(f"{tool} (apt install {pkg})")
    for tool, pkg in (("unshare", "util-linux"), ("nsenter", "util-linux")):
        if os.geteuid() != 0 and _tool(tool) is None:
            missing.append(f"{tool} (apt install {pkg})")
    if os.geteuid() != 0 and not missing:
        ok, why = rootless_possible()
        if not ok:
            missing.append("root, or unprivileged user namespaces, which this machine does not allow "
                           f"({why}); run with sudo, or on a machine that allows them")
    if not missing:
        missing += [f"{line} (tried in a throwaway namespace)" for line in probe()]
    return missing


def _unshare(user: bool = True) -> list[str]:
    """A private network + mount namespace (and user namespace, mapped to root, for a normal user)."""
    return [_tool("unshare") or "unshare", *(["--user", "--map-root-user"] if user else []), "--net", "--mount",
            "--fork"]


def _private_run(cmd: list[str], user: bool = True) -> list[str]:
    """``cmd`` inside :func:`_unshare`'s namespaces, with a private /run for ``ip netns``."""
    return _unshare(user) + [_sh(), "-c", 'mount -t tmpfs tmpfs /run && exec "$@"', "sh", *cmd]


def rootless_possible() -> tuple[bool, str]:
    """Can this user build the lab inside its own user + network namespace (``unshare -rn``)?"""
    if _tool("unshare") is None:
        return False, "unshare (util-linux) is not installed"
    r = _run(_private_run([_sh(), "-c", "true"]), check=False, timeout=10)
    if r.returncode != 0:
        return False, (r.stderr.strip().splitlines() or ["unshare failed"])[-1]
    return True, ""


def _probe_script(rootless: bool) -> str:
    """What the lab needs, as one shell script of the lab's own command lines (run by :func:`probe`).

    Prints ``step: error`` for the first step that fails; nothing when all work.
    """
    import shlex
    ip, ns = _tool("ip") or "ip", f"{PREFIX}probe"
    proc = "/proc/sys/net/ipv4/ip_forward"
    # the lab's capture opens lo (tcpdump cannot drop privileges in a user namespace:
    # the rootless lab uses libpcap itself); tcpdump gets SIGINT after 1 s: status 0 if it could
    capture = ([sys.executable, str(Path(__file__).with_name("lab_capture.py")), "--check", "lo"] if rootless else
               [_tool("timeout") or "timeout", "--preserve-status", "-s", "INT", "1",
                _tool("tcpdump") or "tcpdump", "-i", "lo", "-w", os.devnull])
    steps = [
        ("ip netns add", [ip, "netns", "add", ns]),
        ("writing /proc/sys (ip_forward)", _in_netns(ns, _sh(), "-c", f"echo 1 > {proc}")),
        ("a veth pair", [ip, "-n", ns, "link", "add", "pwa", "type", "veth", "peer", "name", "pwb"]),
        ("a bridge", [ip, "-n", ns, "link", "add", "pwbr", "type", "bridge"]),
        ("a VXLAN device", [ip, "-n", ns, "link", "add", "pwvx", "type", "vxlan", "id", "1", "dstport", "8472",
                            "dev", "pwa", "nolearning"]),
        ("bridge fdb", [_tool("bridge") or "bridge", "-n", ns, "fdb", "append", "00:00:00:00:00:00", "dev", "pwvx",
                        "dst", "192.0.2.1", "self", "permanent"]),
        ("iptables-restore (nat)", _in_netns(ns, _tool("iptables-restore") or "iptables-restore", "-w")),
        ("loopback up", [ip, "-n", ns, "link", "set", "lo", "up"]),
    ]
    lines = []
    for what, cmd in steps:
        feed = " <<'EOF'\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\nEOF\n" if "iptables" in what else ""
        lines.append(f"out=$({shlex.join(cmd)} 2>&1{feed}) || {{ echo {shlex.quote(what)}: $out; exit 0; }}")
    lines.append(f"out=$({shlex.join(_in_netns(ns, *capture))} 2>&1) || {{ echo capture: $out; exit 0; }}")
    return "\n".join(lines) + "\n"


def _iptables_restore(ns: str, table: str) -> None:
    r = subprocess.run(_in_netns(ns, _tool("iptables-restore") or "iptables-restore", "-w"), input=table,
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise CourseError("live lab", f"iptables-restore failed: {r.stderr.strip()}")


@functools.lru_cache(maxsize=4)
def _probe(rootless: bool) -> tuple[str, ...]:
    # a throwaway network + mount namespace with a private /run: never the host's
    r = subprocess.run(_private_run([_sh(), "-c", _probe_script(rootless)], user=rootless), capture_output=True,
                       text=True, timeout=60, env=_child_env())
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    if r.returncode != 0 and not lines:
        lines = [(r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]]
    return tuple(lines)


def _in_user_namespace() -> bool:
    """Root of a user namespace of our own (the rootless lab), not the machine's root?"""
    try:
        return Path("/proc/self/uid_map").read_text().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def _rootless() -> bool:
    return os.geteuid() != 0 or _in_user_namespace()


def probe() -> list[str]:
    """Build a tiny lab in a throwaway namespace (never the host's) with the lab's own helpers:
    what fails there (empty: everything the lab needs works here).  Cached per process."""
    return list(_probe(_rootless()))


def mode() -> str:
    """How the lab runs here: "root", "rootless" (a user namespace) or "unavailable"."""
    if requirements():
        return "unavailable"
    return "root" if os.geteuid() == 0 else "rootless"


def status() -> str:
    """One line: can the lab run on this machine, and if not, what to install or change."""
    missing = requirements()
    if not missing:
        how = ("as root" if os.geteuid() == 0 else
               "rootless, inside a user + network namespace of its own (unshare)")
        return (f"live lab: ready, {how}; namespaces, veth, bridge, VXLAN, /proc/sys, iptables-restore and "
                "capture tried in a throwaway namespace")
    return "live lab: not available here; missing " + "; ".join(missing)


def _netns_list() -> list[str]:
    r = _run([_tool("ip") or "ip", "netns", "list"], check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def leftovers() -> list[str]:
    """Namespaces left by any lab run (this one or a crashed earlier one)."""
    return sorted(n for n in _netns_list() if n.startswith(PREFIX))


def down(prefix: str = PREFIX) -> list[str]:
    """Kill every process in the lab's namespaces and delete them, and remove the temporary
    folders of runs that died; idempotent.  Refuses while another process builds or runs a lab.

    Taught in: 07-live-lab.
    """
    if prefix == PREFIX:
        with _state_lock():
            claims = _claims()
            live = [c for c in claims if c["alive"] and c.get("pid") != os.getpid()]
            if live:
                raise CourseError("live lab", _busy(live[0]),
                                  f"wait until it finishes, or stop it (kill {live[0].get('pid')}), then lab down")
            for c in claims:
                if not c["alive"]:
                    _remove_run_dir(c)
                    with contextlib.suppress(FileNotFoundError):
                        Path(c["file"]).unlink()
    removed = []
    ip = _tool("ip") or "ip"
    for ns in sorted(n for n in _netns_list() if n.startswith(prefix)):
        for _ in range(20):
            pids = [int(p) for p in _run([ip, "netns", "pids", ns], check=False).stdout.split() if p.isdigit()]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        _run([ip, "netns", "del", ns], check=False)
        removed.append(ns)
    return removed


def host_snapshot() -> dict[str, str]:
    """The host's links, addresses, routes and nat rules, to prove the lab left them alone."""
    ip = _tool("ip") or "ip"
    snap = {
        "links": _run([ip, "-o", "link", "show"], check=False).stdout,
        "addresses": _run([ip, "-o", "addr", "show"], check=False).stdout,
        "routes": _run([ip, "route", "show", "table", "all"], check=False).stdout,
        "rules": _run([ip, "rule", "show"], check=False).stdout,
    }
    save = _tool("iptables-save")
    if save:
        text = _run([save, "-t", "nat"], check=False).stdout
        snap["nat"] = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return snap


@dataclass
class Point:
    ns: str                  # namespace
    owner: str               # node or pod name, as the model calls it
    iface: str
    pcap: str = ""


class Lab:
    """Build, capture, request, compare, tear down.  Use it as a context manager.

    >>> with Lab(ck.load_scenario("article")) as lab:      # doctest: +SKIP
    ...     lab.up(); lab.start_captures(); lab.request(); lab.stop_captures()
    ...     print(lab.compare().text())

    Taught in: 07-live-lab.
    """

    def __init__(self, scenario, workdir: str | os.PathLike | None = None, progress=None, warm: bool | None = None):
        self.sc = scenario
        self.id = f"{PREFIX}{os.getpid():x}{next(_counter)}-"
        # the pcaps' folder: the caller's, or a temporary one made by up() and removed by down()
        self.workdir = Path(workdir) if workdir else None
        self.owns_workdir = False
        self._claim: _Claim | None = None
        self.progress = progress or (lambda msg: None)
        # warm caches unless the scenario says cold (neighbourCaches: cold), as the model does
        self.warm = warm if warm is not None else scenario.neighbour_caches == "warm"
        self.points: list[Point] = []
        self._captures: list[tuple[subprocess.Popen, Point]] = []
        self.built = False
        self.request_log = ""
        # the underlay as a bridge in a namespace of its own (a place to filter between the nodes)
        from .labfaults import needs_switch
        self.switch = needs_switch(scenario)

    # -- names -------------------------------------------------------------------
    def ns(self, name: str) -> str:
        return self.id + name

    def _ip(self, *args: str, ns: str | None = None, what: str = "") -> str:
        cmd = [_tool("ip") or "ip"] + (["-n", ns] if ns else []) + list(args)
        return _run(cmd, what).stdout

    def _exec(self, ns: str, *cmd: str, what: str = "", check: bool = True, timeout: float = 30):
        return _run(_in_netns(ns, *cmd), what, check=check, timeout=timeout)

    # -- build ---------------------------------------------------------------------
    def up(self) -> None:
        """Build the cluster; on any failure, tear down what was built and raise one clear error."""
        missing = requirements()
        if missing:
            raise CourseError("live lab", "cannot run here: missing " + "; ".join(missing))
        with _state_lock():
            refuse_if_busy()
            self._claim = _Claim(self.workdir, False)
        try:
            if self.workdir is None:
                self.workdir, self.owns_workdir = Path(tempfile.mkdtemp(prefix="packet-walk-lab-")), True
            else:
                _make_dir(self.workdir, "--out")
            self._claim.update(workdir=str(self.workdir), owned=self.owns_workdir)
            self._build()
        except BaseException:
            self.down()
            raise
        self._claim.update(phase="running")
        self.built = True

    def detach(self) -> None:
        """Leave the built lab (namespaces, pcap folder) to the CLI's saved state: ``lab down`` removes it."""
        if self._claim:
            self._claim.release()
            self._claim = None

    def _build(self) -> None:
        # a broken cluster is built working, then broken by the commands a person would type
        # (coursekit.labfaults: the difference between the two scenarios' states)
        from .labfaults import healthy
        sc = healthy(self.sc)
        nodes, pods, externals = list(sc.nodes), list(sc.pods), list(sc.externals)
        dev = sc.flannel.device
        owners = [x.name for x in nodes + pods + externals]
        # the underlay: a veth pair between two NICs, a bridge in a namespace of its own for more
        nics = [(n.name, n.nic) for n in nodes] + [(x.name, x.nic) for x in externals]
        switch = self.ns(_UNDERLAY) if len(nics) > 2 or self.switch else None
        self.progress(f"namespaces: {', '.join(self.ns(x) for x in owners + ([_UNDERLAY] if switch else []))}")
        for name in owners + ([_UNDERLAY] if switch else []):
            ns = self.ns(name)
            self._ip("netns", "add", ns, what=f"ip netns add {ns}")
            # no IPv6 chatter (router solicitations, MLD) in the captures (best effort)
            _write_proc_sys(ns, {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"})
            self._ip("link", "set", "lo", "up", ns=ns)
        for n in nodes:
            failed = _write_proc_sys(self.ns(n.name), {"net.ipv4.ip_forward": "1"})
            if failed:
                raise CourseError("live lab", f"{n.name}: cannot enable IP forwarding ({failed})")
            # br_netfilter as the scenario says (per network namespace since Linux 5.3)
            failed = _write_proc_sys(self.ns(n.name), {"net.bridge.bridge-nf-call-iptables": str(int(n.br_netfilter))})
            if failed and n.br_netfilter:
                raise CourseError("live lab", f"{n.name} needs br_netfilter (bridgeNfCallIptables: true)",
                                  "modprobe br_netfilter, or set bridgeNfCallIptables: false in the scenario")
            # off: without br_netfilter there is no key (and nothing to turn off); a key that
            # is there must read 0, or the kernel would run iptables on bridged frames after all
            now = self._exec(self.ns(n.name), _sh(), "-c", "cat /proc/sys/net/bridge/bridge-nf-call-iptables "
                             "2>/dev/null || true").stdout.strip()
            if now and now != str(int(n.br_netfilter)):
                raise CourseError("live lab", f"{n.name}: net.bridge.bridge-nf-call-iptables is {now} in its "
                                  f"namespace and cannot be set to {int(n.br_netfilter)}",
                                  "a kernel >= 5.3 (the key is per network namespace there)")
        if switch is None:
            (a, an), (b, bn) = nics
            self.progress(f"the wire: {an.name} ({a}) <-> {bn.name} ({b}), a veth pair")
            self._ip("link", "add", an.name, "address", an.mac, "mtu", str(an.mtu), "type", "veth", "peer", "name",
                     bn.name, "address", bn.mac, "mtu", str(bn.mtu), "netns", self.ns(b), ns=self.ns(a),
                     what="create the wire")
        else:
            # the model's underlay delivers a frame to the NIC its MAC names (broadcast to all):
            # a bridge that knows every NIC's port from the start (static FDB), iptables off
            self.progress(f"the wire: a bridge joining {', '.join(f'{nic.name} ({o})' for o, nic in nics)}")
            _write_proc_sys(switch, {"net.bridge.bridge-nf-call-iptables": "0"})
            self._ip("link", "add", "wire", "type", "bridge", ns=switch)
            self._ip("link", "set", "wire", "up", ns=switch)
            for i, (o, nic) in enumerate(nics):
                port = f"w{i}"
                self._ip("link", "add", port, "mtu", str(nic.mtu), "type", "veth", "peer", "name", nic.name,
                         "address", nic.mac, "mtu", str(nic.mtu), "netns", self.ns(o), ns=switch,
                         what=f"wire {o}'s {nic.name}")
                self._ip("link", "set", port, "master", "wire", "up", ns=switch)
                _run([_tool("bridge") or "bridge", "-n", switch, "fdb", "replace", nic.mac, "dev", port, "master",
                      "static"], "bridge fdb replace")
        for o, nic in nics:
            self._ip("addr", "add", f"{nic.ip}/{nic.network.prefixlen}", "dev", nic.name, ns=self.ns(o))
            self._ip("link", "set", nic.name, "up", ns=self.ns(o))
        for n in nodes:
            ns = self.ns(n.name)
            if n.default_route:
                gw = n.nic.network.network_address + 1
                self._ip("route", "add", "default", "via", str(gw), "dev", n.nic.name, ns=ns)
            self.progress(f"{n.name}: docker0 bridge {n.docker.bridge_ip}/{n.subnet.prefixlen}, MTU {n.docker.mtu}")
            self._ip("link", "add", "docker0", "address", n.docker.bridge_mac, "mtu", str(n.docker.mtu), "type", "bridge",
                     ns=ns)
            self._ip("addr", "add", f"{n.docker.bridge_ip}/{n.subnet.prefixlen}", "dev", "docker0", ns=ns)
            self._ip("link", "set", "docker0", "up", ns=ns)
            self.progress(f"{n.name}: {dev} vxlan id {sc.flannel.vni} dstport {sc.flannel.port} local {n.nic.ip}")
            self._ip("link", "add", dev, "address", n.vtep_mac, "mtu", str(n.nic.mtu - 50), "type", "vxlan",
                     "id", str(sc.flannel.vni), "dstport", str(sc.flannel.port), "local", str(n.nic.ip),
                     "dev", n.nic.name, "nolearning", *([] if sc.flannel.udp_checksum else ["noudpcsum"]), ns=ns)
            self._ip("addr", "add", f"{n.vtep_ip}/32", "dev", dev, ns=ns)
            self._ip("link", "set", dev, "up", ns=ns)
            for other in nodes:
                if other.name == n.name:
                    continue
                # what flanneld's vxlan backend programs for each remote lease
                self._ip("route", "add", str(other.subnet), "via", str(other.vtep_ip), "dev", dev, "onlink", ns=ns)
                self._ip("neigh", "replace", str(other.vtep_ip), "lladdr", other.vtep_mac, "dev", dev,
                         "nud", "permanent", ns=ns)
                _run([_tool("bridge") or "bridge", "-n", ns, "fdb", "append", other.vtep_mac, "dev", dev,
                      "dst", str(other.nic.ip), "self", "permanent"], "bridge fdb append")
        for p in pods:
            n = sc.node(p.node)
            self.progress(f"pod {p.name}: eth0 {p.ip} (MTU {p.mtu}) <-> {p.veth} on {n.name}'s docker0"
                          + (", hairpin on" if n.hairpin_mode else ""))
            pns = self.ns(p.name)
            self._ip("link", "add", p.veth, "address", p.veth_mac, "mtu", str(p.mtu), "type", "veth", "peer", "name",
                     "eth0", "address", p.mac, "mtu", str(p.mtu), "netns", pns, ns=self.ns(n.name))
            self._ip("link", "set", p.veth, "master", "docker0", "up", ns=self.ns(n.name))
            if n.hairpin_mode:                # kubelet --hairpin-mode=hairpin-veth
                self._ip("link", "set", p.veth, "type", "bridge_slave", "hairpin", "on", ns=self.ns(n.name))
            self._ip("addr", "add", f"{p.ip}/{n.subnet.prefixlen}", "dev", "eth0", ns=pns)
            self._ip("link", "set", "eth0", "up", ns=pns)
            self._ip("route", "add", "default", "via", str(n.docker.bridge_ip), "dev", "eth0", ns=pns)
        if self.warm:
            self.progress("neighbour caches and bridge FDBs: warm, as in the article's captures")
            for p in pods:
                # a bridge learns a port's MACs from the frames it receives; pods that have
                # not spoken yet would get their first frames flooded to every port
                _run([_tool("bridge") or "bridge", "-n", self.ns(p.node), "fdb", "replace", p.mac, "dev", p.veth,
                      "master", "static"], "bridge fdb replace")
            for owner, entries in _warm_neighbours(sc).items():
                for ip, mac, on in entries:
                    self._ip("neigh", "replace", str(ip), "lladdr", mac, "dev", on, "nud", "permanent",
                             ns=self.ns(owner))
            # A neighbour entry caches its Ethernet header at its first use (neigh_hh_init).
            # Until then a frame br_netfilter DNATs to a pod behind the same bridge leaves
            # through docker0's own transmit (br_nf_pre_routing_finish_bridge: neigh->output,
            # then br_nf_pre_routing_finish_bridge_slow), and tcpdump on docker0 sees it once,
            # with docker0's MAC as source.  Caches in use before the capture have it: each
            # node sends every pod of its bridge one UDP datagram and waits for its answer.
            code = ("import socket, sys\n"
                    "for a in sys.argv[1:]:\n"
                    "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                    "    s.settimeout(2)\n"
                    "    s.connect((a, 9))\n"
                    "    s.send(b'')\n"
                    "    try:\n"
                    "        s.recv(1)\n"
                    "    except OSError:\n"
                    "        pass\n"
                    "    s.close()\n")
            for n in nodes:
                on = [str(p.ip) for p in sc.pods_on(n.name)]
                if on:
                    self._exec(self.ns(n.name), sys.executable, "-c", code, *on, what="warm the neighbour entries")
        from .netfilter import filter_save, nat_save
        for n in nodes:
            nat, filt = nat_save(sc, n.name), filter_save(sc, n.name)
            self.progress(f"{n.name}: iptables-restore the model's nat table ({len(nat.splitlines())} lines) and "
                          f"filter table ({len(filt.splitlines())} lines)")
            try:
                _iptables_restore(self.ns(n.name), nat + filt)
            except CourseError as e:
                raise CourseError("live lab", f"{n.name}: {e.problem}") from None
        if sc is not self.sc:
            from .labfaults import apply, transition
            self.progress("break it: " + "; ".join(c.shell(self.id) for c in transition(sc, self.sc)))
            apply(self, transition(sc, self.sc))
        self.points = []
        for name in owners:
            for iface in sc.interfaces(name):
                self.points.append(Point(self.ns(name), name, iface))
        self.progress(f"built: {len(nodes)} nodes, {len(pods)} pods"
                      + (f", {len(externals)} external hosts" if externals else "")
                      + f", {len(self.points)} interfaces to capture")

    def iptables_save(self, node: str, table: str = "nat") -> str:
        """``iptables-save -t <table>`` in a node's namespace, without comments and with zero counters."""
        import re
        text = self._exec(self.ns(node), _tool("iptables-save"), "-t", table).stdout
        return "\n".join(re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in text.splitlines()
                         if not line.startswith("#")) + "\n"

    # -- capture ---------------------------------------------------------------------
    def start_captures(self) -> None:
        """tcpdump on every interface of both nodes and pods, to pcaps; waits until each listens."""
        if not self.built:
            raise CourseError("live lab", "the lab is not up", "call up() first")
        rootless = _in_user_namespace()
        env = _child_env()
        for pt in self.points:
            pt.pcap = str(self.workdir / f"{pt.owner}-{pt.iface}.pcap")
            if rootless:
                # libpcap itself: tcpdump cannot drop privileges in a user namespace
                cmd = _in_netns(pt.ns, sys.executable, str(Path(__file__).with_name("lab_capture.py")), pt.iface,
                                pt.pcap)
            else:
                # -p: not in promiscuous mode, as the rootless capture (libpcap's default).  A
                # promiscuous bridge passes a copy of every frame it forwards up to its host
                # (br_handle_frame_finish: local_rcv = IFF_PROMISC); a copy of a frame DNATed
                # inside the bridge is still PACKET_HOST and the host routes it out again: the
                # pod would get every segment twice.  The lab observes the kernel untouched.
                cmd = _in_netns(pt.ns, _tool("tcpdump"), "-i", pt.iface, "-w", pt.pcap, "-p",
                                "-s", "262144", "--immediate-mode", "-U", "-nn")
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
            self._captures.append((proc, pt))
        import select
        deadline = time.monotonic() + 120          # all of them; a loaded machine starts them slowly
        for proc, pt in self._captures:
            line = ""
            while "listening on" not in line:
                ready = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))[0]
                if not ready or proc.poll() is not None:
                    raise CourseError("live lab", f"the capture on {pt.owner} {pt.iface} did not start: "
                                      f"{line.strip() or ('no answer in 120 s' if not ready else proc.stderr.read().strip())}")
                line = proc.stderr.readline()
        self.progress(f"capturing on {len(self._captures)} interfaces")

    def stop_captures(self) -> list[Point]:
        _wait_complete(self.sc, {(pt.owner, pt.iface): pt.pcap for _, pt in self._captures})
        _wait_quiet([pt.pcap for _, pt in self._captures])
        for proc, _ in self._captures:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        for proc, pt in self._captures:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stderr.close()
        done = [pt for _, pt in self._captures]
        self._captures = []
        self.progress(f"captures written to {self.workdir}"
                      + (" (a temporary folder: removed when the lab goes down)" if self.owns_workdir else ""))
        return done

    # -- the request -------------------------------------------------------------------
    def _start_server(self, servers: list, env: dict, owner: str, entry: str, what: str, cfg: dict) -> None:
        """Run ``coursekit.lab.<entry>(cfg)`` in ``owner``'s namespace; return once it says "ready"."""
        proc = subprocess.Popen(_in_netns(self.ns(owner), sys.executable, "-c",
                                          f"import sys, json; from coursekit.lab import {entry}; "
                                          f"{entry}(json.loads(sys.argv[1]))", json.dumps(cfg)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        servers.append(proc)
        if proc.stdout.readline().strip() != "ready":
            proc.kill()
            _, err = proc.communicate()
            raise CourseError("live lab", f"{what} in {owner} did not start: {err.strip()}")

    def request(self, timeout: float = 600) -> str:
        """nginx's answer (233 + 612 bytes) from a server in each possible server, fetched by a busybox-like
        client in the client's namespace (a pod's, a node's own, or an external host's)."""
        sc = self.sc
        # every replica kube-proxy might pick listens; a request to an address has one server
        servers_at = [sc.server] if sc.request.ip is not None else sc.endpoints(sc.service(sc.request.service))
        env = _child_env()
        servers = []
        try:
            for p in servers_at:
                self._start_server(servers, env, p.name, "_serve", "the server",
                                   {"ip": str(p.ip), "port": sc.target_port, "scenario": sc.source, "raw": sc.raw})
            self.progress(f"server listening in {', '.join(p.name for p in servers_at)} on :{sc.target_port}")
            client = sc.client
            cfg = {"ip": str(sc.target_ip), "port": sc.target_dport, "raw": sc.raw}
            d = getattr(sc, "dns", None)
            if d is not None:                 # traffic case 6: the name first, from the cluster DNS
                dpod = sc.pod(d.server)
                self._start_server(servers, env, dpod.name, "_serve_dns", "the DNS server",
                                   {"ip": str(dpod.ip), "raw": sc.raw})
                self.progress(f"DNS server (the model's kube-dns answers) in {dpod.name} on {dpod.ip}:53/udp")
                cfg["dns"] = {"name": d.name, "domain": d.domain, "server": str(d.cluster_ip),
                              "namespace": getattr(client, "namespace", "default")}
            args = json.dumps(cfg)
            r = subprocess.run(_in_netns(self.ns(client.name), sys.executable, "-c",
                                         "import sys, json; from coursekit.lab import _fetch; "
                                         "_fetch(json.loads(sys.argv[1]))", args),
                               capture_output=True, text=True, env=env, timeout=timeout)
        finally:
            # The answer is complete (the serving replica has closed its socket; the kernel
            # finishes the close on its own); idle replicas would wait for their accept()
            # timeout while the captures run on.  Stop them at once: 5 s after a forwarded
            # packet used a neighbour entry learned from an ARP request, the kernel probes
            # it again (STALE -> DELAY -> PROBE), which the model does not follow.
            for proc in servers:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate()
        if r.returncode != 0:
            raise CourseError("live lab", f"the request from {sc.client.name} failed: {r.stderr.strip()}")
        if getattr(sc, "dns", None) is not None:
            self._save_conntrack()
        self.request_log = r.stdout.strip()
        self.progress(f"{sc.client.name}: {self.request_log}")
        return self.request_log

    def _save_conntrack(self) -> None:
        """``conntrack -L -p udp`` in every node's namespace, beside the pcaps (``<node>.conntrack``);
        :func:`compare` reads them.  Nothing is written where the conntrack tool is missing."""
        tool = _tool("conntrack")
        if tool is None or self.workdir is None:
            return
        for n in self.sc.nodes:
            r = self._exec(self.ns(n.name), tool, "-L", "-p", "udp", check=False)
            if r.returncode == 0:
                (self.workdir / f"{n.name}.conntrack").write_text(r.stdout, encoding="utf-8")

    # -- compare -----------------------------------------------------------------------
    def compare(self) -> "Report":
        if not any(pt.pcap for pt in self.points):
            raise CourseError("live lab", "nothing was captured", "start_captures(), request(), stop_captures() first")
        if not self.request_log:
            raise CourseError("live lab", "the request has not been sent yet", "request() first")
        return compare(self.sc, {(pt.owner, pt.iface): pt.pcap for pt in self.points if pt.pcap})

    # -- tear down -----------------------------------------------------------------------
    def down(self) -> list[str]:
        for proc, _ in self._captures:
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(timeout=5)
            with contextlib.suppress(Exception):
                proc.stderr.close()
        self._captures = []
        self.built = False
        removed = down(self.id)
        if self.owns_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.owns_workdir = False
        if self._claim:
            self._claim.release()
            self._claim = None
        return removed

    def __enter__(self) -> "Lab":
        self._old = {}
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError):     # not the main thread: leave handlers alone
                self._old[sig] = signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum, frame):
        self.down()
        raise SystemExit(128 + signum)

    def __exit__(self, *exc) -> None:
        self.down()
        for sig, old in getattr(self, "_old", {}).items():
            signal.signal(sig, old)


# -- who is using the lab: claims, and the state kept between CLI invocations -------------
#
# Every Lab that is building or running holds a claim: a file in state_dir()/runs,
# flock()ed while its process lives (the kernel drops the lock when the process
# dies, even by SIGKILL).  A live claim is another lab at work; a dead one is a
# crashed run whose temporary folder ``down`` removes.  ``lab up`` hands its lab
# over to state.json, which ``lab down`` clears.

def state_dir() -> Path:
    """This user's lab state: /run/packet-walk-lab for root, else $XDG_RUNTIME_DIR or /tmp (mode 0700)."""
    uid = os.geteuid()
    places = [Path("/run/packet-walk-lab")] if uid == 0 else []
    if uid != 0 and os.environ.get("XDG_RUNTIME_DIR"):
        places.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "packet-walk-lab")
    places.append(Path(tempfile.gettempdir()) / f"packet-walk-state.{uid}")
    for d in places:
        with contextlib.suppress(OSError):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = d.lstat()
            # never follow or share another user's folder
            if os.path.isdir(d) and not d.is_symlink() and st.st_uid == uid and not st.st_mode & 0o022:
                return d
    raise CourseError("live lab", "no private writable directory for the lab's state",
                      f"one of {', '.join(map(str, places))}, owned by this user, not writable by others")


@contextlib.contextmanager
def _state_lock():
    """Serialise 'is anyone busy? then claim' between processes."""
    fd = os.open(state_dir() / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class _Claim:
    """This process's claim on a lab: a locked file holding its pid, phase and pcap folder."""

    def __init__(self, workdir, owned: bool):
        d = state_dir() / "runs"
        d.mkdir(mode=0o700, exist_ok=True)
        self.path = d / f"{os.getpid()}-{next(_counter)}.json"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.record = {"pid": os.getpid(), "phase": "building", "workdir": str(workdir) if workdir else None,
                       "owned": owned}
        self.update()

    def update(self, **changes) -> None:
        self.record.update(changes)
        data = json.dumps(self.record).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _claims() -> list[dict]:
    """Every claim's record, with ``alive`` (its process still holds the lock) and ``file``."""
    out = []
    d = state_dir() / "runs"
    for f in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            fd = os.open(f, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                alive = False
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                alive = True
            try:
                rec = json.loads(os.read(fd, 65536) or b"{}")
            except ValueError:
                rec = {}
        finally:
            os.close(fd)
        out.append(dict(rec if isinstance(rec, dict) else {}, alive=alive, file=str(f)))
    return out


def _busy(claim: dict) -> str:
    what = "being built" if claim.get("phase") == "building" else "running"
    return f"another lab is {what} (pid {claim.get('pid')})"


def _remove_run_dir(rec: dict) -> None:
    """A run's temporary pcap folder, if the run made it (never a folder the user named)."""
    wd = rec.get("workdir")
    if rec.get("owned") and wd and Path(wd).name.startswith("packet-walk-lab-"):
        shutil.rmtree(wd, ignore_errors=True)


def _make_dir(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not writable")
    except OSError as e:
        raise CourseError(what, f"{path}: cannot make a folder there ({e.strerror or e})",
                          "a folder you can write to (it is created if missing)") from None


def refuse_if_busy() -> None:
    """One clear error if a lab is at work or up here: another process's, the CLI's, or leftovers."""
    live = [c for c in _claims() if c["alive"]]
    if live:
        raise CourseError("live lab", _busy(live[0]),
                          f"wait until it finishes, or stop it (kill {live[0].get('pid')}), then lab down")
    st = _read_state()
    if st is not None:
        raise CourseError("live lab", f"a lab is up (lab up, scenario {st.get('scenario')})",
                          "python -m coursekit lab capture/run/compare, or lab down first")
    old = leftovers()
    if old:
        raise CourseError("live lab", f"leftovers of an earlier run: {', '.join(old)}",
                          "run `python -m coursekit lab down` first")


def save_state(st: dict) -> Path:
    p = state_dir() / "state.json"
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(st, indent=2), encoding="utf-8")
    tmp.replace(p)
    return p


def lab_state(lab: "Lab", scenario_ref: str, **extra) -> dict:
    return {"id": lab.id, "scenario": scenario_ref, "workdir": str(lab.workdir), "owned": lab.owns_workdir,
            "warm": lab.warm, "cold": lab.sc.neighbour_caches == "cold",
            "points": [asdict(p) for p in lab.points],
            "captures": [{"pid": proc.pid, **asdict(pt)} for proc, pt in lab._captures],
            **({"fault": lab.fault_state} if getattr(lab, "fault_state", None) else {}), **extra}


def _read_state() -> dict | None:
    p = state_dir() / "state.json"
    try:
        st = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"scenario": "?", "broken": True}
    return st if isinstance(st, dict) else {"scenario": "?", "broken": True}


def load_state() -> dict:
    st = _read_state()
    if st is None:
        raise CourseError("live lab", "no lab is up", "python -m coursekit lab up")
    if st.get("broken"):
        raise CourseError("live lab", f"the saved lab state ({state_dir() / 'state.json'}) is unreadable",
                          "python -m coursekit lab down")
    return st


def clear_state() -> None:
    with contextlib.suppress(FileNotFoundError):
        (state_dir() / "state.json").unlink()


def resume(st: dict, scenario, progress=None) -> "Lab":
    """The Lab described by a saved state (its namespaces must still exist)."""
    lab = Lab(scenario, st["workdir"], progress, st.get("warm", True))
    lab.id = st["id"]
    lab.points = [Point(**p) for p in st["points"]]
    lab.request_log = st.get("request", "")
    lab.built = all(ns in _netns_list() for ns in {p.ns for p in lab.points})
    if not lab.built:
        raise CourseError("live lab", "the lab's namespaces are gone", "python -m coursekit lab down, then up")
    return lab


def _wait_quiet(pcaps: list, least: float = 0.3, quiet: float = 0.3, most: float = 5.0) -> None:
    """Wait until the captures have stopped growing (each tcpdump writes every packet at once,
    ``-U``): at least ``least`` s, then until no pcap grew for ``quiet`` s, at most ``most`` s.
    A busy machine may run a tcpdump late; SIGINT before it has read the kernel's buffer
    would lose the conversation's last packets."""
    def sizes():
        out = []
        for p in pcaps:
            try:
                out.append(os.path.getsize(p))
            except (OSError, TypeError):
                out.append(-1)
        return out
    time.sleep(least)
    start = last_change = time.monotonic()
    seen = sizes()
    while time.monotonic() - last_change < quiet and time.monotonic() - start < most:
        time.sleep(0.05)
        now = sizes()
        if now != seen:
            seen, last_change = now, time.monotonic()


def _captures_complete(sc, pcaps: dict) -> bool:
    """Whether every pcap (keyed (node or pod, interface)) already holds the conversation the model
    predicts there: :func:`observe` reads its shape, and each interface has at least the model's
    count of its TCP frames.  Anything unreadable (a record being written) is "not yet"."""
    from .capture import capture, read_pcap
    from .datapath import walk
    try:
        captured = {key: read_pcap(path)[1] for key, path in pcaps.items() if path}
        over, _ = observe(sc, captured)
        model_sc = sc.with_changes(over)
        w = walk(model_sc)
        late = {seg.index for seg in w.segments if seg.retransmission}
        for key, frames in captured.items():
            want = sum(1 for f in capture(model_sc, *key, walk=w)
                       if f.observation.flow in ("request", "reply") and f.observation.segment not in late)
            if len(_tcp_frames(frames, sc)[0]) < want:
                return False
    except Exception:  # noqa: BLE001 - a predicate while waiting; compare() reports what is wrong
        return False
    return True


def _wait_complete(sc, pcaps: dict, most: float = 20.0) -> None:
    """Wait until the captures hold the whole conversation the model predicts (at most ``most`` s;
    a kernel that sent something else is compare()'s to report).  A loaded machine runs a tcpdump
    late: stopped before it has read the kernel's buffer, it loses the last segments, and the
    conversation no longer has the model's shape (seen once in CI: 10 of 11 segments on docker0)."""
    end = time.monotonic() + most
    while not _captures_complete(sc, pcaps) and time.monotonic() < end:
        time.sleep(0.1)


def stop_pids(pids: list[int], timeout: float = 10, pcaps: list | None = None) -> None:
    """SIGINT detached tcpdumps and wait until each has flushed its pcap and exited."""
    _wait_quiet(pcaps or [])
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            time.sleep(0.05)


# -- the two programs that run inside the pods -------------------------------------------

def _serve(cfg: dict) -> None:
    """nginx 1.17.3's answer: the 233-byte header in one segment, the 612-byte body with the FIN in the next."""
    from .conversation import nginx_response_header, served_file
    from .scenario import scenario_from_dict
    sc = scenario_from_dict(cfg["raw"])
    body = served_file(sc)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((cfg["ip"], cfg["port"]))
    s.listen(1)
    # Long: the client is a new Python process, which a loaded machine may take many seconds to
    # start (15 s was too short once: the client's connect was refused).  Idle replicas are
    # killed as soon as the client is done (Lab.request).
    s.settimeout(600)
    print("ready", flush=True)
    try:
        c, _ = s.accept()
    except socket.timeout:
        return                                  # another replica got the connection
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    c.sendall(nginx_response_header(int(time.time()), len(body), sc.observed.nginx_mtime))
    # nginx's sendfile then close: the FIN rides on the body's last segment.  Cork, write,
    # close: tcp_send_fin appends the FIN to the still-queued body and pushes it.
    # Then close(), as nginx does with Connection: close: the socket is orphaned, so the
    # client's ACK of the FIN turns it into a TIME_WAIT socket (whose ACK carries IP id 0).
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    c.sendall(body)
    c.close()
    s.close()


def _fetch(cfg: dict) -> None:
    """busybox wget: one 81-byte request, read to the end, close.

    A connection the network refuses (a reset) or drops is an outcome the model
    predicts too, not a lab failure: it is printed.  The client gives up before the
    kernel's first SYN retransmission (after 1 s, ``TCP_TIMEOUT_INIT``): the model's
    retransmissions (coursekit.faults) are left out of the comparison.
    """
    from .conversation import wget_request
    from .scenario import scenario_from_dict
    sc = scenario_from_dict(cfg["raw"])
    host = cfg["ip"]
    if cfg.get("dns"):
        addr, log = _resolve(cfg["dns"])
        print("; ".join(log))
        if addr is None:
            print(f"wget: bad address '{cfg['dns']['name']}'")
            return
        cfg = dict(cfg, ip=addr)
        host = cfg["dns"]["name"]                 # wget's Host header: the URL's host as typed
    req = wget_request(f"{host}:{cfg['port']}", sc.request.path, sc.request.user_agent, sc.request.method)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # a blocking connect(), as busybox's: an ICMP error its own SYN provokes on the node arrives
    # while connect() holds the socket, and counts only as a soft error (coursekit.kernel.engine
    # ._soft_error); SO_SNDTIMEO bounds the wait (connect() then fails with EINPROGRESS)
    wait = cfg.get("connectTimeout", 0.8)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(wait), int(wait % 1 * 1e6)))
    try:
        s.connect((cfg["ip"], cfg["port"]))
    except OSError as e:
        s.close()
        why = "timed out (no answer before the first SYN retransmission)" \
            if isinstance(e, socket.timeout) or e.errno == errno.EINPROGRESS else (e.strerror or str(e))
        print(f"connect to {cfg['ip']}:{cfg['port']} failed: {why}")
        return
    s.settimeout(10)
    s.sendall(req)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    # busybox closes at once.  The kernel ACKs nginx's last segment + FIN at once only if
    # that segment is a full one (see coursekit.conversation); else this FIN carries the ACK.
    s.close()
    head, _, body = got.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode()
    print(f"sent {len(req)} bytes, got {len(head) + 4}-byte header + {len(body)}-byte body: {status}")


def _resolve(d: dict) -> tuple[str | None, list[str]]:
    """A scripted resolver, not busybox: the queries :mod:`coursekit.dns` says busybox's uClibc-ng
    sends, sent the way it sends them, and the address from the real answers.

    getaddrinfo(AF_UNSPEC): AAAA first, then A; each walks the candidate names
    (:func:`coursekit.dns.candidates` of kubelet's search list) until an answer is
    not NXDOMAIN/SERVFAIL; every query from a new UDP socket connect()ed to the
    nameserver (the kernel picks the port and the first IP id), ids counting
    from 2.  The answers come from the lab's server over the real datapath.
    """
    from . import dns
    cands = dns.candidates(d["name"], dns.search_list(d["namespace"], d["domain"]))
    qid, log, addr = 1, [], None
    for qtype in (dns.T_AAAA, dns.T_A):
        for name in cands:
            qid = (qid + 1) & 0xFFFF
            q = dns.Query(0, qid, name, qtype, 0, 0)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            try:
                s.connect((d["server"], dns.DNS_PORT))
                s.send(dns.encode_query(q))
                reply = dns.decode_message(s.recv(4096))
            except (OSError, ValueError) as e:
                log.append(f"{q.type_name}? {name}: no answer ({e})")
                return None, log
            finally:
                s.close()
            log.append(f"{q.type_name}? {name}: {dns.RCODE_NAMES.get(reply['rcode'], reply['rcode'])}, "
                       f"{len(reply['answers'])} answers")
            for _n, typ, _ttl, rdata in reply["answers"]:
                if typ == dns.T_A and len(rdata) == 4 and addr is None:
                    addr = socket.inet_ntoa(rdata)
            if reply["rcode"] not in (dns.NXDOMAIN, dns.SERVFAIL):
                break
    return addr, log


def _serve_dns(cfg: dict) -> None:
    """The lab's kube-dns: a UDP server on the CoreDNS pod's :53 answering exactly what the model's
    CoreDNS answers (:func:`coursekit.dns.answer`, :func:`coursekit.dns.encode_answer`), from an
    unconnected socket, as CoreDNS does.  Runs until it is killed."""
    from . import dns
    from .scenario import scenario_from_dict
    sc = scenario_from_dict(cfg["raw"])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((cfg["ip"], dns.DNS_PORT))
    print("ready", flush=True)
    while True:
        msg, peer = s.recvfrom(4096)
        try:
            m = dns.decode_message(msg)
        except ValueError:
            continue
        if m["qr"]:
            continue
        q = dns.Query(0, m["id"], m["qname"], m["qtype"], 0, 0)
        s.sendto(dns.encode_answer(q, dns.answer(sc, m["qname"], m["qtype"])), peer)


# -- comparison ------------------------------------------------------------------------

@dataclass
class InterfaceResult:
    node: str
    iface: str
    lab_frames: int
    model_frames: int
    unmodelled: int                      # ARP, IGMP, IPv6: not part of the model
    unmodelled_kinds: dict = field(default_factory=dict)
    fields: int = 0
    matched: int = 0
    free: int = 0
    fed: int = 0                         # equal because they carry a value fed from the lab (below)
    differences: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences and self.lab_frames - self.unmodelled == self.model_frames


@dataclass
class Report:
    scenario: str
    fed: dict
    interfaces: list
    notes: list = field(default_factory=list)
    conntrack: list = field(default_factory=list)      # ConntrackResult: the DNS flows' UDP entries

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.interfaces) and all(c.ok for c in self.conntrack)

    def text(self) -> str:
        fields = sum(r.fields for r in self.interfaces)
        free = sum(r.free for r in self.interfaces)
        fed = sum(r.fed for r in self.interfaces)
        lines = [f"live lab vs model, scenario {self.scenario}: "
                 + (f"{fields - free - fed} fields compared by value, all equal; {fed} more equal by construction "
                    f"(they carry a value fed from the lab: client port, ISNs, windows, outer source ports, first "
                    f"IP ids); {free} free fields present in both" if self.ok else "DIFFERENCES"),
                 "fed to the model from the lab first (the kernel's free choices): "
                 + ", ".join(f"{k}={v}" for k, v in self.fed.items() if k != "times"), ""]
        head = f"{'node':<9} {'interface':<12} {'frames lab/model':>16} {'fields':>7} {'match':>7} {'fed':>5} {'free':>6} {'differ':>6}  other"
        lines.append(head)
        for r in self.interfaces:
            lines.append(f"{r.node:<9} {r.iface:<12} {f'{r.lab_frames - r.unmodelled}/{r.model_frames}':>16} "
                         f"{r.fields:>7} {r.matched:>7} {r.fed:>5} {r.free:>6} {len(r.differences):>6}  "
                         + (", ".join(f"{v} {k}" for k, v in sorted(r.unmodelled_kinds.items())) + " (not modelled)"
                            if r.unmodelled else ""))
        for r in self.interfaces:
            for d in r.differences[:10]:
                lines.append(f"  {r.node} {r.iface}: {d}")
        if self.conntrack:
            lines += ["", "conntrack -L -p udp, the DNS queries' entries (the timeout column counts down: not compared):"]
            for c in self.conntrack:
                lines.append(f"  {c.node:<9} {'equal' if c.ok else 'DIFFERENT'}: model {c.model}")
                if not c.ok:
                    lines.append(f"  {'':<9} {'':<9}  lab   {c.lab or '(no such entry)'}")
        lines += ["", "not compared by value (the kernel's or the clock's choice):"]
        lines += [f"  {k[0]} {k[1]}: {v}" for k, v in FREE_FIELDS.items()]
        lines += self.notes
        return "\n".join(lines)

    def to_json(self) -> str:
        d = {"scenario": self.scenario, "ok": self.ok, "fed": self.fed, "notes": self.notes,
             "free_fields": {f"{a} {b}": v for (a, b), v in FREE_FIELDS.items()},
             "interfaces": [dict(asdict(r), ok=r.ok) for r in self.interfaces],
             "conntrack": [dict(asdict(c), ok=c.ok) for c in self.conntrack]}
        return json.dumps(d, indent=2, sort_keys=True)


@dataclass
class ConntrackResult:
    """One DNS query's conntrack entry on one node: the model's line and the kernel's."""
    node: str
    model: str
    lab: str | None

    @property
    def ok(self) -> bool:
        return self.lab is not None and _ct_fields(self.lab) == _ct_fields(self.model)


def _ct_fields(line: str) -> list[str]:
    """A ``conntrack -L`` line without its timeout (the third column, counting down)."""
    f = line.split()
    return f[:2] + f[3:]


def dns_conntrack(w) -> list[tuple[str, object, str]]:
    """What ``conntrack -L -p udp`` shows for a walk's DNS queries once the resolution is over:
    ``(node, entry, line)`` per query and node (the lab compares these with the kernel's).

    Taught in: 07-live-lab.
    """
    from .kernel.dns import _ct_line
    out = []
    ports = [e.query.sport for e in w.dns]
    for i, e in enumerate(w.dns):
        reused = e.query.sport in ports[i + 1:]
        for node, ct in sorted(e.conntrack.items()):
            out.append((node, ct, _ct_line(ct, e.done_us is not None, reused)))
    return out


def _compare_conntrack(sc, w, folder: Path) -> list:
    """Each DNS exchange's entry on each node (:func:`dns_conntrack`) against the kernel's
    ``conntrack -L -p udp`` read after the request (``<node>.conntrack`` beside the pcaps)."""
    out = []
    for node, ct, model in dns_conntrack(w):
        path = folder / f"{node}.conntrack"
        if not path.is_file():
            continue
        want = f"src={ct.orig.src} dst={ct.orig.dst} sport={ct.orig.sport} dport={ct.orig.dport} "
        lab = next((line.strip() for line in path.read_text(encoding="utf-8").splitlines() if want in line), None)
        out.append(ConntrackResult(node, model, lab))
    return out


def _dns_key(data: bytes, port: int):
    """``("dns", query id, "query" | "answer")`` for an IPv4/UDP datagram from or to port 53 (inside
    VXLAN on ``port`` too), else None: how a DNS sighting is keyed in the lab and in the model."""
    from .dns import DNS_PORT
    from .vxlan import inner_frame
    b = inner_frame(data, port) or bytes(data)
    if len(b) < 34 or b[12:14] != b"\x08\x00" or b[14] >> 4 != 4 or b[23] != 17:
        return None
    l4 = 14 + (b[14] & 0x0F) * 4
    if len(b) < l4 + 8 + 12 or DNS_PORT not in (int.from_bytes(b[l4:l4 + 2], "big"),
                                                int.from_bytes(b[l4 + 2:l4 + 4], "big")):
        return None
    msg = b[l4 + 8:]
    return ("dns", int.from_bytes(msg[0:2], "big"), "answer" if msg[2] & 0x80 else "query")


def _arp_key(data: bytes) -> tuple:
    """An ARP frame's (operation, sender IP, target IP)."""
    import ipaddress
    return (int.from_bytes(data[20:22], "big"), str(ipaddress.IPv4Address(data[28:32])),
            str(ipaddress.IPv4Address(data[38:42])))


def _arp_name(key) -> str:
    (op, spa, tpa), k = key
    return (f"who-has {tpa} tell {spa}" if op == 1 else f"{spa} is-at (to {tpa})") + ("" if k == 0 else
                                                                                      f" (sighting {k + 1})")


def _dns_name(w, key) -> str:
    (_, qid, leg), k = key
    ex = next((e for e in w.dns if e.query.qid == qid), None)
    what = f"{ex.query.type_name}? {ex.query.qname}" if ex else "no query of the model's"
    return f"DNS {leg} {qid} ({what})" + ("" if k == 0 else f" (sighting {k + 1})")


def _tcp_frames(frames, sc, kinds: dict | None = None):
    """(modelled, unmodelled count) frames: IPv4 TCP, or VXLAN on the scenario's port carrying it.

    ``kinds`` collects what the unmodelled frames were (ARP, IGMP, IPv6, ...).
    """
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import ARP, Ether
    from .labfaults import is_icmp_error
    keep, other = [], 0
    for f in frames:
        if is_icmp_error(f.data):          # compared on their own (coursekit.labfaults.compare_icmp)
            continue
        p = Ether(f.data)
        if p.haslayer(TCP) and p.haslayer(IP) and (not p.haslayer(UDP) or p[UDP].dport == sc.flannel.port):
            keep.append(f)
            continue
        other += 1
        if kinds is not None:
            kind = ("ARP" if p.haslayer(ARP) else "IPv6" if p.type == 0x86DD else
                    "IGMP" if p.haslayer(IP) and p[IP].proto == 2 else p.lastlayer().name)
            kinds[kind] = kinds.get(kind, 0) + 1
    return keep, other


def _is_arp(data: bytes) -> bool:
    return len(data) >= 14 and data[12:14] == b"\x08\x06"


def _inner(data: bytes):
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN
    p = Ether(data)
    return p[VXLAN].payload if p.haslayer(VXLAN) else p


def _segment_index(segs, isn_c: int, isn_s: int) -> dict:
    """The model's segments keyed like :func:`_signature` keys a captured one."""
    def rel(s):
        mine, peer = (isn_c, isn_s) if s.sender == "client" else (isn_s, isn_c)
        return ((s.seq - mine) & 0xFFFFFFFF, (s.ack - peer) & 0xFFFFFFFF if s.flags & 0x10 else 0)
    return {(s.sender, s.flags, len(s.payload), *rel(s)): s.index for s in segs}


def _signature(tcp, isn_c: int, isn_s: int, client_port: int):
    sender = "client" if tcp.sport == client_port else "server"
    base_s, base_a = (isn_c, isn_s) if sender == "client" else (isn_s, isn_c)
    return (sender, int(tcp.flags), len(tcp.payload), (tcp.seq - base_s) & 0xFFFFFFFF,
            (tcp.ack - base_a) & 0xFFFFFFFF if tcp.flags & 0x10 else 0)


class ConversationShape(CourseError):
    """The kernel's segments are not the model's (one missing, merged or extra)."""


def _first_segment(frames, flags: int, ack: int | None = None):
    """The first TCP header with exactly ``flags`` (and acknowledging ``ack``) among captured frames."""
    from scapy.layers.inet import TCP
    for f in frames:
        tcp = _inner(f.data)[TCP]
        if tcp.flags == flags and (ack is None or tcp.ack == ack):
            return tcp
    return None


def _anchor(sc, w) -> tuple[str, str] | None:
    """Where the lab's times are read: a point that sees every segment of the walk ``w``.

    The server node's docker0 when every segment crosses it (the article's cases), else
    the scenario's anchor, else the first such point in the explorer's order.
    """
    seen: dict = {}
    for o in w.observations:
        if o.segment >= 0:
            seen.setdefault((o.node, o.iface), set()).add(o.segment)
    every = set(range(len(w.segments)))
    full = sorted((k for k, v in seen.items() if v == every), key=lambda k: _order(sc, k))
    for pref in ((sc.server.node, "docker0"), tuple(sc.observed.anchor)):
        if pref in full:
            return pref
    return full[0] if full else None


def observe(sc, captured: dict) -> tuple[dict, dict]:
    """Read what the kernel chose from the lab's captures (frames keyed (node or pod, interface)):
    overrides for the scenario, and a summary.

    The client's SYN is read where the model first sees it (the client pod's eth0, a
    node's flannel.1 for a process on the node, an external host's NIC); the rest at a
    point that sees every segment of the conversation the model predicts (:func:`_anchor`),
    which may end early (a drop, a reset).  A conversation of another shape there (a
    segment missing, merged or extra) raises :class:`ConversationShape`, naming them.
    """
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from .conversation import segments
    from .datapath import walk
    base = walk(sc)
    if not base.observations:
        # nothing leaves the client (connect() fails in the model: no route); nothing to read
        return {}, {}
    first = min((o for o in base.observations if o.segment == 0), key=lambda o: o.hop)
    where = (first.node, first.iface)
    frames, _ = _tcp_frames(captured.get(where, []), sc)
    syn = _first_segment(frames, 0x02)
    if syn is None:
        raise CourseError("live lab", f"no SYN on {where[0]} {where[1]}: the request did not leave {sc.client.name}")
    cport, isn_c = syn.sport, syn.seq
    synack = _first_segment(frames, 0x12, (isn_c + 1) & 0xFFFFFFFF)
    for key in sorted(captured, key=lambda k: _order(sc, k)):
        if synack is None:
            synack = _first_segment(_tcp_frames(captured[key], sc)[0], 0x12, (isn_c + 1) & 0xFFFFFFFF)
    # no SYN-ACK anywhere: the model must drop the SYN too (the comparison checks it)
    isn_s = synack.seq if synack is not None else sc.observed.server_isn
    ws = (dict(syn.options).get("WScale", 0),
          dict(synack.options).get("WScale", 0) if synack is not None else sc.observed.wscale[1])
    # which endpoint answered (kube-proxy's random pick with several replicas)
    eps = sc.endpoints(sc.service(sc.request.service)) if sc.request.ip is None else [sc.server]
    endpoint = 0
    for i, p in enumerate(eps):
        f = captured.get((p.name, sc.interfaces(p.name)[0]))
        if f and any(_inner(x.data)[TCP].flags == 0x12 and _inner(x.data)[IP].src == str(p.ip)
                     for x in _tcp_frames(f, sc)[0]):
            endpoint = i                    # this one answered
    dns_over = _observe_dns(sc, captured.get(where, []))
    probe = sc.with_changes({"observed.clientPort": cport, "observed.clientISN": isn_c, "observed.serverISN": isn_s,
                             "observed.wscale": {"client": ws[0], "server": ws[1]}, "observed.windows": None,
                             "observed.endpoint": endpoint, "observed.times": None, "observed.tsLagTicks": {},
                             **dns_over})
    pw = walk(probe)
    # as the model ends it (a drop, a reset); without the retransmissions of an unanswered SYN,
    # which come after the lab's client gave up (see compare)
    segs = [s for s in pw.segments if not s.retransmission]
    n_all = len(segments(probe))            # observed.times/windows are given for the whole conversation
    sig_index = _segment_index(segs, isn_c, isn_s)
    anchor = _anchor(probe, pw) or where
    times: dict[int, int] = {}
    windows: dict[int, int] = {}
    ids: dict[int, int] = {}
    unknown = []
    for f in _tcp_frames(captured.get(anchor, []), sc)[0]:
        inner = _inner(f.data)
        tcp = inner[TCP]
        sig = _signature(tcp, isn_c, isn_s, cport)
        if sig not in sig_index:
            unknown.append(sig)
            continue
        times.setdefault(sig_index[sig], f.time_us)
        windows.setdefault(sig_index[sig], tcp.window)
        ids.setdefault(sig_index[sig], inner[IP].id)
    if unknown or len(times) != len(segs):
        missing = [f"{s.index + 1} {s.sender} {s.label}" for s in segs if s.index not in times]
        raise ConversationShape(
            "live lab", f"the kernel's conversation does not have the model's shape: "
            f"{len(times)} of {len(segs)} segments identified on {anchor[0]} {anchor[1]}"
            + (f"; not seen: {', '.join(missing)}" if missing else "")
            + (f"; unexpected (sender, flags, length, rel. seq, rel. ack): {unknown[:3]}" if unknown else ""))
    sports = {}
    for n in probe.nodes:
        for f in captured.get((n.name, n.nic.name), []):
            p = Ether(f.data)
            # the conversation's flow (a DNS datagram's outer port hashes another flow)
            if p.haslayer(UDP) and p[UDP].dport == probe.flannel.port and p[IP].src == str(n.nic.ip) \
                    and _dns_key(f.data, probe.flannel.port) is None:
                sports[n.name] = p[UDP].sport
                break
    # segments the conversation never reaches (after a drop or a reset) get the last
    # time seen: observed.times and .windows are given for the whole conversation
    last = max(times.values())
    tus = [times.get(i, last) for i in range(n_all)]
    wins = [windows.get(i, 0) for i in range(n_all)]
    iso = [_iso(t) for t in tus]
    # each connected socket's first IP id (its counter: random at connect/accept); the
    # model counts on from there, and gives 0 where no socket counter is used
    first_id = {}
    for who in ("client", "server"):
        first = next((s.index for s in segs if s.sender == who and s.sent_from == "socket"), None)
        if first is not None:
            first_id[who] = ids[first]
    over = {"observed.clientPort": cport, "observed.clientISN": isn_c, "observed.serverISN": isn_s,
            "observed.wscale": {"client": ws[0], "server": ws[1]},
            "observed.windows": wins, "observed.endpoint": endpoint,
            "observed.times": iso, "observed.anchor": {"node": anchor[0], "interface": anchor[1]},
            "observed.tsLagTicks": {}, "observed.vxlanSourcePort": sports, "observed.ipId": dict(sc.observed.ip_id, **first_id),
            "utcOffset": "+00:00", **dns_over,
            # hop latencies are free (and jitter on a real kernel): zero keeps every
            # observed time causal, and each sender's order is what is compared
            "timing": {k: 0 for k in ("vethUs", "bridgeUs", "forwardUs", "encapUs", "wireUs", "decapUs",
                                      "processUs")}}
    unseen = "not seen (no SYN-ACK: the scenario's value)"
    values = {"clientPort": cport, "clientISN": isn_c, "serverISN": isn_s if synack is not None else unseen,
              "wscale": list(ws) if synack is not None else [ws[0], unseen],
              "windows": [windows[i] for i in range(len(segs))], "endpoint": str(eps[endpoint].ip),
              "vxlanSourcePort": sports, "ipId": first_id,
              "times": f"{len(segs)} segment times at {anchor[0]} {anchor[1]}"}
    if dns_over:
        values.update(dnsSourcePorts=dns_over["dns.sourcePorts"], dnsIpIds=dns_over["dns.ipIds"])
    fed = {k: values[k] for k in FED if k in values}   # the report names exactly what FED documents
    return over, fed


def _observe_dns(sc, frames) -> dict:
    """A dns: scenario's queries as the client sent them (where the model first sees the request):
    each one's UDP source port and IP id, the kernel's picks, as overrides of ``dns.sourcePorts``
    and ``dns.ipIds``; {} for a scenario without dns:."""
    if getattr(sc, "dns", None) is None:
        return {}
    from . import dns
    ports, ids = [], []
    for f in frames:
        key = _dns_key(f.data, sc.flannel.port)
        if key and key[2] == "query":
            b = _inner_bytes(f.data, sc.flannel.port)
            l4 = 14 + (b[14] & 0x0F) * 4
            ports.append(int.from_bytes(b[l4:l4 + 2], "big"))
            ids.append(int.from_bytes(b[18:20], "big"))
    want = len(dns.plan(sc, check_ports=False))
    if len(ports) != want:
        raise CourseError("live lab", f"the client sent {len(ports)} DNS queries, the model's resolver {want}")
    return {"dns.sourcePorts": ports, "dns.ipIds": ids}


def _inner_bytes(data: bytes, port: int) -> bytes:
    from .vxlan import inner_frame
    return inner_frame(data, port) or bytes(data)


def _iso(us: int) -> str:
    import datetime as _dt
    t = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(microseconds=us)
    return t.isoformat()


def _field_values(data: bytes) -> dict:
    """Every field of a frame, keyed (layer, field); free fields marked, TS and Date masked."""
    from .dissect import dissect
    out = {}
    for ly in dissect(data):
        for f in ly.fields:
            val = f.value
            if ly.key in ("TCP",) and f.name == "options":
                import re
                masked = re.sub(r"TS val \d+ ecr \d+", "TS val * ecr *", val)
                out[(ly.key, "options:TS")] = val
                val = masked
            if ly.key == "Data":                  # a payload the dissector shows shortened: all its bytes
                val = data[ly.offset:ly.end].hex()
            if ly.key == "HTTP":
                raw = data[ly.offset:ly.end]
                import re
                date = re.search(rb"\r\nDate: [^\r]*", raw)
                if date:
                    out[("HTTP", "Date")] = date.group(0).decode()
                    raw = raw.replace(date.group(0), b"\r\nDate: *")
                val = raw.hex()
            out[(ly.key, f.name)] = val
    return out


def compare(sc, pcaps: dict) -> Report:
    """Compare the lab's pcaps (keyed (node or pod, interface)) with the model, field by field.

    Taught in: 07-live-lab.
    """
    from .capture import capture, read_pcap
    from .datapath import walk
    captured = {key: read_pcap(path)[1] for key, path in pcaps.items()}
    over, fed = observe(sc, captured)
    model_sc = sc.with_changes(over)
    w = walk(model_sc)
    # The lab's client gives up before the kernel's first SYN retransmission (1 s): the model's
    # retransmissions of an unanswered SYN come later, and are not compared.
    late = {seg.index for seg in w.segments if seg.retransmission}
    index = _segment_index([seg for seg in w.segments if seg.index not in late],
                           over["observed.clientISN"], over["observed.serverISN"])
    sender_of = {seg.index: seg.sender for seg in w.segments}
    cold = sc.neighbour_caches == "cold"
    # ICMP errors answering the late retransmissions come late too
    cut = min((w.segments[i].send_us for i in late), default=1 << 62)
    results = []
    _lab_keys, _model_keys = {}, {}
    port = sc.flannel.port
    for owner, iface in sorted(captured, key=lambda k: _order(sc, k)):
        lab_all = captured[(owner, iface)]
        kinds: dict = {}
        # the DNS datagrams of a dns: scenario are modelled (flow "dns"): keyed by query id and leg
        lab_dns = [f for f in lab_all if _dns_key(f.data, port) is not None] if w.dns else []
        lab, other = _tcp_frames([f for f in lab_all if not (w.dns and _dns_key(f.data, port))], sc, kinds)
        model_all = [f for f in capture(model_sc, owner, iface, walk=w) if f.observation.segment not in late
                     and not (f.observation.flow == "icmp" and f.observation.time_us >= cut)]
        model = [f for f in model_all if f.observation.flow not in ("arp", "icmp", "dns")]
        model_dns = [f for f in model_all if f.observation.flow == "dns"]
        lab_arp = [f for f in lab_all if _is_arp(f.data)]
        if cold:                               # ARP is part of the model then
            other -= len(lab_arp)
            kinds.pop("ARP", None)
        r = InterfaceResult(owner, iface, len(lab_all), len(model_all), other, kinds)
        if cold:
            model_arp = [f for f in model_all if f.observation.flow == "arp"]
            if len(lab_arp) != len(model_arp):
                r.differences.append(f"ARP: {len(lab_arp)} frames in the lab, {len(model_arp)} in the model")
            # keyed by (operation, sender, target) and sighting, not by position: with several flows (a
            # dns: scenario's queries, then the request) how their ARP exchanges interleave is timing
            la = _by_sighting((_arp_key(f.data), f) for f in lab_arp)
            ma = _by_sighting((_arp_key(f.data), f) for f in model_arp)
            for k in ma:
                if k in la:
                    _compare_fields(r, la[k].data, ma[k].data, f"ARP {_arp_name(k)}")
                elif len(lab_arp) == len(model_arp):
                    r.differences.append(f"the model's ARP {_arp_name(k)} not in the lab's capture")
        lab_by = _by_segment(lab, index, over)
        model_by = _by_sighting((f.observation.segment, f) for f in model)
        missing = [k for k in model_by if k not in lab_by]
        extra = [k for k in lab_by if k not in model_by]
        _lab_keys[(owner, iface)], _model_keys[(owner, iface)] = list(lab_by), list(model_by)
        if missing:
            r.differences.append("the model's " + "; ".join(_sighting_name(w, k) for k in missing)
                                 + " not in the lab's capture")
        if extra:
            r.differences.append("the lab's " + "; ".join(_sighting_name(w, k) for k in extra)
                                 + " not in the model")
        # each sender's segments must appear in the model's order; how the two
        # directions interleave on an interface follows the timing (a free field)
        for sender in ("client", "server"):
            lo = [k for k in lab_by if isinstance(k[0], int) and sender_of[k[0]] == sender]
            mo = [k for k in model_by if isinstance(k[0], int) and sender_of[k[0]] == sender]
            if [k for k in lo if k in mo] != [k for k in mo if k in lo]:
                r.differences.append(f"{sender} segments out of order: lab {[k[0] for k in lo]}, "
                                     f"model {[k[0] for k in mo]}")
        for key in (k for k in model_by if k in lab_by):
            what = f"segment {key[0]}" + (f" (sighting {key[1] + 1})" if key[1] else "")
            _compare_fields(r, lab_by[key].data, model_by[key].data, what, over)
        from .labfaults import compare_icmp
        compare_icmp(r, lab_all, [f for f in model_all if f.observation.flow == "icmp"], over)
        if lab_dns or model_dns:
            _compare_dns(r, w, lab_dns, model_dns, port, over)
        results.append(r)
    notes = []
    if cold:
        notes.append("Cold caches: the ARP exchanges on each layer-2 segment are modelled and compared too.")
    if any(r.unmodelled for r in results):
        notes.append("Frames that are not the TCP conversation (the bridge's IGMP report when it comes up"
                     + (")" if cold else ", ARP with cold caches)")
                     + " are counted apart: the model follows the conversation"
                     + ("." if cold else " with warm neighbour caches."))
    if late:
        first = min(w.segments[i].send_us for i in late) - w.segments[0].send_us
        notes.append(f"The model's {len(late)} retransmissions of the unanswered SYN (the first {first / 1e6:g} s "
                     "after it) come after the lab's client gave up: not compared.")
    for d in (d for d in w.drops if d.segment not in late):
        seen = [f"{r.node} {r.iface}" for r in results
                if any(isinstance(k[0], int) and k[0] == d.segment and
                       not any(m for m in _model_keys.get((r.node, r.iface), ()) if m[0] == d.segment)
                       for k in _lab_keys.get((r.node, r.iface), ()))]
        notes.append(f"The model drops segment {d.segment} ({w.segments[d.segment].label}) at {d.node} {d.iface}: "
                     f"{d.reason}; " + (f"the kernel's captures show it past that point on {', '.join(seen)}."
                                        if seen else "no capture of the kernel shows it past that point."))
    ct = []
    if w.dns:
        folders = {Path(p).parent for p in pcaps.values()}
        ct = [c for f in sorted(folders) for c in _compare_conntrack(model_sc, w, f)]
        notes.append(f"DNS: {len(w.dns)} queries, each compared on every interface it crosses (keyed by query id); "
                     "the client is a scripted resolver sending the queries coursekit.dns says busybox (uClibc-ng) "
                     "sends, the server answers what the model's CoreDNS answers.")
        notes += [f"DNS datagrams, not compared by value: {a} {b}: {v}" for (a, b), v in
                  list(DNS_FREE_FIELDS.items()) + list(DNS_ANSWER_FREE_FIELDS.items())]
        if not ct:
            notes.append("DNS: no conntrack -L output beside the pcaps (the lab writes <node>.conntrack where the "
                         "conntrack tool is installed): entries not compared.")
    return Report(sc.name, fed, results, notes, ct)


def _compare_dns(r: InterfaceResult, w, lab: list, model: list, port: int, over: dict) -> None:
    """The DNS datagrams on one interface: every sighting the model has, in the resolver's order,
    every field (the outer source port free: :data:`DNS_FREE_FIELDS`)."""
    rank = {e.query.qid: i for i, e in enumerate(w.dns)}
    ld = _by_sighting((_dns_key(f.data, port), f) for f in lab)
    md = _by_sighting((_dns_key(f.data, port), f) for f in model)
    missing = [k for k in md if k not in ld]
    extra = [k for k in ld if k not in md]
    if missing:
        r.differences.append("the model's " + "; ".join(_dns_name(w, k) for k in missing) + " not in the lab's capture")
    if extra:
        r.differences.append("the lab's " + "; ".join(_dns_name(w, k) for k in extra) + " not in the model")
    order = sorted(md, key=lambda k: (rank.get(k[0][1], -1), k[0][2] == "answer", k[1]))
    if [k for k in ld if k in md] != [k for k in order if k in ld]:
        r.differences.append("DNS datagrams out of the resolver's order: lab "
                             + ", ".join(_dns_name(w, k) for k in ld) + "; model " + ", ".join(_dns_name(w, k) for k in order))
    for key in (k for k in order if k in ld):
        free = {**DNS_FREE_FIELDS, **(DNS_ANSWER_FREE_FIELDS if key[0][2] == "answer" else {})}
        _compare_fields(r, ld[key].data, md[key].data, _dns_name(w, key), over, free)


def _fed_value(key, value, over: dict | None) -> bool:
    """Whether an equal field only carries a value the model was fed from the lab (equal by
    construction, so its equality proves nothing): the windows, the outer UDP source ports,
    the client port, the ISNs themselves, each socket's first IP id."""
    if over is None:
        return False
    if key in (("TCP", "window"), ("outer UDP", "sport")):
        return True
    v = str(value).split(" ")[0]
    if key in (("TCP", "sport"), ("TCP", "dport")):
        return v == str(over["observed.clientPort"])
    if key == ("TCP", "seq"):
        return v in (str(over["observed.clientISN"]), str(over["observed.serverISN"]))
    if key == ("IPv4", "id"):
        return v in {str(i) for i in over["observed.ipId"].values()} | {str(i) for i in over.get("dns.ipIds", ())}
    if key in (("UDP", "sport"), ("UDP", "dport")):
        return v in {str(p) for p in over.get("dns.sourcePorts", ())}
    return False


def _compare_fields(r: InterfaceResult, lab: bytes, model: bytes, what: str, over: dict | None = None,
                    free: dict | None = None) -> None:
    """Every field of two frames: equal (derived by the model, or fed from the lab), free (the
    kernel's choice: present in both; ``free``: more such fields for these frames), or a difference."""
    fa, fb = _field_values(lab), _field_values(model)
    for key in sorted(set(fa) | set(fb)):
        r.fields += 1
        if key in FREE_FIELDS or (free and key in free):
            if (key in fa) == (key in fb):
                r.free += 1
            else:
                r.differences.append(f"{what}: {key[0]} {key[1]} present in only one")
        elif fa.get(key) == fb.get(key):
            if _fed_value(key, fa.get(key), over):
                r.fed += 1
            else:
                r.matched += 1
        else:
            r.differences.append(f"{what}: {key[0]} {key[1]}: lab {fa.get(key)} model {fb.get(key)}")


def _by_sighting(pairs) -> dict:
    """{(segment, k): frame}: the k-th sighting (0, 1, ...) of each segment on one interface, in order.

    A hairpinned segment crosses a pod's eth0 and its veth twice, once each way."""
    out, n = {}, {}
    for seg, f in pairs:
        k = n.get(seg, 0)
        n[seg] = k + 1
        out[(seg, k)] = f
    return out


def _by_segment(frames, index: dict, over: dict) -> dict:
    """Lab frames keyed (the model's segment index, sighting) (:func:`_by_sighting`);
    a frame that is no model segment is keyed by its signature."""
    from scapy.layers.inet import TCP
    isn_c, isn_s, cport = over["observed.clientISN"], over["observed.serverISN"], over["observed.clientPort"]

    def key(f):
        sig = _signature(_inner(f.data)[TCP], isn_c, isn_s, cport)
        return index.get(sig, ("unknown", sig))
    return _by_sighting((key(f), f) for f in frames)


def _sighting_name(w, key) -> str:
    """A sighting as the report names it: 'segment 7 (ACK of header)', or what an unknown segment was."""
    seg, k = key
    nth = "" if k == 0 else f" (sighting {k + 1})"
    if isinstance(seg, int):
        return f"segment {seg} ({w.segments[seg].label}){nth}"
    sender, flags, length, rseq, rack = seg[1]
    names = "".join(n for bit, n in ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x20, "U"))
                    if flags & bit) + ("." if flags & 0x10 else "")
    return (f"{sender} segment [{names or 'none'}] seq +{rseq} ack +{rack} length {length}{nth} "
            "(no segment of the model's conversation)")


def _order(sc, key):
    from .explore import interfaces
    pts = interfaces(sc)
    return pts.index(key) if key in pts else len(pts)


def run_all(sc, workdir=None, progress=None, warm: bool | None = None) -> Report:
    """Up, capture, request, compare, down: the whole lab in one call (what chapter 07 runs).

    As root the namespaces hang off the host; as a normal user the same lab runs
    inside a user + network namespace of its own (``unshare``), where the kernel allows it.
    Without ``workdir`` the pcaps go to a temporary folder that is removed afterwards.
    """
    missing = requirements()
    if missing:
        raise CourseError("live lab", "cannot run here: missing " + "; ".join(missing))
    if warm is None:
        warm = sc.neighbour_caches == "warm"
    first = None
    for attempt in (1, 2):
        try:
            if os.geteuid() != 0:
                report = _run_rootless(sc, workdir, progress, warm)
            else:
                with Lab(sc, workdir, progress, warm) as lab:
                    lab.up()
                    lab.start_captures()
                    lab.request()
                    lab.stop_captures()
                    report = lab.compare()
        except ConversationShape as e:
            # A real kernel's timing may send a conversation of another shape (an ACK
            # merged into the next segment, say); say so, and run the exchange once more.
            if attempt == 2:
                raise CourseError("live lab", f"{e.problem} (and on the first attempt: {first.problem})") from None
            first = e
            if progress:
                progress(f"attempt 1: {e.problem}; running the exchange again")
            continue
        if first is not None:
            report.notes.append(f"Attempt 1 was not compared: {first.problem}. "
                                "The kernel's timing chose another conversation; attempt 2 is the one above.")
        return report


def _run_rootless(sc, workdir, progress, warm) -> Report:
    with _state_lock():
        refuse_if_busy()
        claim = _Claim(workdir, False)
    owned = workdir is None
    try:
        workdir = Path(tempfile.mkdtemp(prefix="packet-walk-lab-")) if owned else Path(workdir)
        claim.update(workdir=str(workdir), owned=owned, phase="running")
        if not owned:
            _make_dir(workdir, "--out")
        code = ("import json, sys\n"
                "from coursekit import lab\n"
                "from coursekit.scenario import scenario_from_dict\n"
                "cfg = json.loads(sys.argv[1])\n"
                "sc = scenario_from_dict(cfg['raw'], cfg['source'])\n"
                "with lab.Lab(sc, cfg['workdir'], lambda m: print(m, flush=True), cfg['warm']) as lb:\n"
                "    lb.up(); lb.start_captures(); lb.request(); lb.stop_captures()\n"
                "    print('POINTS ' + json.dumps([[p.owner, p.iface, p.pcap] for p in lb.points]), flush=True)\n")
        args = json.dumps({"raw": sc.raw, "source": sc.source, "workdir": str(workdir), "warm": warm})
        proc = subprocess.Popen(_private_run([sys.executable, "-c", code, args]), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=_child_env(PW_LAB_ROOTLESS="1"))
        points = None
        with proc:
            for line in proc.stdout:
                if line.startswith("POINTS "):
                    points = json.loads(line[7:])
                elif progress:
                    progress(line.rstrip())
            err = proc.stderr.read()
        if proc.returncode != 0 or points is None:
            last = err.strip().splitlines()[-1] if err.strip() else f"exit status {proc.returncode}"
            raise CourseError("live lab", f"the rootless lab failed: {last.removeprefix('coursekit.errors.CourseError: ')}")
        return compare(sc, {(o, i): p for o, i, p in points})
    finally:
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)
        claim.release()


# -- the rootless lab step by step: a holder process keeps the user namespace alive -------
#
# ``lab up`` as a normal user starts a holder (``setsid -f unshare --user --net --mount``,
# a private /run) and builds the lab inside it with the root code path; every later
# step re-runs the same command inside with ``nsenter``; ``lab down`` removes the
# namespaces inside, then ends every process of that user namespace (the namespaces
# die with the last one).  The holder's pid is in the state file.

def _hold() -> None:
    """The holder: say who we are, then wait (the namespaces live as long as we do)."""
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    print(f"holding {os.getpid()}", flush=True)
    os.close(1)
    while True:
        signal.pause()


def _start_holder() -> int:
    setsid = _tool("setsid") or "setsid"
    cmd = [setsid, "-f", *_private_run([sys.executable, "-c", "from coursekit.lab import _hold; _hold()"])]
    with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=_child_env(PW_LAB_ROOTLESS="1")) as proc:
        line = proc.stdout.readline()
        err = proc.stderr.read() if not line else ""
    if not line.startswith("holding "):
        raise CourseError("live lab", f"could not start the rootless lab's namespace: {err.strip() or 'no answer'}")
    return int(line.split()[1])


def _user_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/user")
    except OSError:
        return None


def _holder_alive(st: dict) -> bool:
    pid, ns = st.get("holder"), st.get("userns")
    return bool(pid) and _user_ns(pid) == ns and ns != _user_ns(os.getpid())


def _enter(pid: int, argv: list[str]) -> int:
    """Run ``python -m coursekit`` with ``argv`` inside the holder's namespaces; its exit status."""
    cmd = [_tool("nsenter") or "nsenter", "-t", str(pid), "-U", "-m", "-n", "--preserve-credentials",
           sys.executable, "-m", "coursekit", *argv]
    return subprocess.call(cmd, env=_child_env(PW_LAB_ROOTLESS="1", PW_LAB_INSIDE="1"), cwd="/")


def _end_user_ns(st: dict) -> None:
    """SIGKILL every process in the holder's user namespace (all of them are this user's lab)."""
    ns = st.get("userns")
    if not ns or ns == _user_ns(os.getpid()):
        return
    for _ in range(50):
        pids = [int(d) for d in os.listdir("/proc") if d.isdigit() and _user_ns(int(d)) == ns]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


# -- the CLI: python -m coursekit lab up|capture|run|compare|down|all|status ----------------

def command(action: str, scenario: str = "article", out: str | None = None, json_path: str | None = None,
            cold: bool = False, say=None, fault: str | None = None) -> int:
    """One ``lab`` command; returns the exit status.  As a normal user the steps run in a holder's namespaces."""
    from .scenario import load_scenario
    say = say or (lambda msg: None)
    if fault is not None and action not in ("break", "fix"):
        raise CourseError("lab action", f"{action} takes no name (got {fault!r})", "lab break NAME")
    if action in ("break", "fix"):                 # coursekit.labfaults: break a running lab, or repair it
        from .labfaults import command as fault_command
        return fault_command(action, fault, say)
    overrides = {"neighbourCaches": "cold"} if cold else None

    def write_json(report):
        if json_path:                  # never onto a device, a folder or /proc (coursekit.outputs)
            from .outputs import write_file
            write_file(json_path, report.to_json(), "--json")

    if json_path:                      # before a run, not after it
        from .outputs import output_file
        output_file(json_path, "--json")
    if action == "status":
        print(status())
        left = leftovers()
        if left:
            print(f"leftovers: {', '.join(left)} (python -m coursekit lab down)")
        live = [c for c in _claims() if c["alive"]] if sys.platform == "linux" else []
        if live:
            print(_busy(live[0]))
        return 0 if not requirements() else 1
    if action == "all":
        report = run_all(load_scenario(scenario, overrides), out, say)
        print(report.text())
        write_json(report)
        return 0 if report.ok else 1
    if os.geteuid() != 0 and os.environ.get("PW_LAB_INSIDE") != "1":
        return _rootless_command(action, scenario, out, json_path, cold)
    if action == "down":
        st = _read_state() or {}
        if st.get("captures"):
            stop_pids([c["pid"] for c in st["captures"]], timeout=3)
        removed = down()
        _remove_run_dir(st)
        clear_state()
        print(f"removed {len(removed)} namespaces" + (f": {', '.join(removed)}" if removed else ""))
        return 0
    if action == "up":
        missing = requirements()
        if missing:
            raise CourseError("live lab", "cannot run here: missing " + "; ".join(missing))
        sc = load_scenario(scenario, overrides)
        lb = Lab(sc, out, say)
        lb.switch = True                # the underlay as a bridge: lab break udp-blocked filters there
        try:
            lb.up()
            save_state(lab_state(lb, scenario))
        except BaseException:
            lb.down()
            raise
        lb.detach()
        print(f"lab up: {len(lb.points)} interfaces; next: python -m coursekit lab capture")
        return 0
    st = load_state()
    sc = load_scenario(st["scenario"], {"neighbourCaches": "cold"} if st.get("cold") else None)
    lb = resume(st, sc, say)
    lb.owns_workdir = st.get("owned", False)
    from .labfaults import scenario_in
    sc, lb.fault_state = scenario_in(st, sc), st.get("fault")      # after lab break / lab fix
    if action == "capture":
        if st.get("captures"):
            raise CourseError("live lab", "the captures are already running", "python -m coursekit lab run")
        lb.start_captures()
        for proc, _ in lb._captures:
            proc.stderr.close()            # tcpdump keeps running after we exit
        save_state(lab_state(lb, st["scenario"], request=""))
        lb._captures = []
        print(f"capturing on {len(st['points'])} interfaces; next: python -m coursekit lab run")
        return 0
    if action == "run":
        log = lb.request()
        print(log)
        pids = [c["pid"] for c in st.get("captures", [])]
        if pids:
            _wait_complete(lb.sc, {(pt.owner, pt.iface): pt.pcap for pt in lb.points if pt.pcap})
            stop_pids(pids, pcaps=[pt.pcap for pt in lb.points if pt.pcap])
        # points keep their pcap paths; no capture runs now
        save_state(lab_state(lb, st["scenario"], request=log if pids else ""))
        print(f"pcaps in {lb.workdir}; next: python -m coursekit lab compare" if pids else
              "nothing was capturing; next: python -m coursekit lab capture, then run")
        return 0
    if action == "compare":
        pcaps = {(p.owner, p.iface): p.pcap for p in lb.points if p.pcap and Path(p.pcap).exists()}
        if not pcaps:
            raise CourseError("live lab", "no captures yet", "python -m coursekit lab capture, then run")
        if not st.get("request"):
            raise CourseError("live lab", "the request has not been sent yet", "python -m coursekit lab run first")
        report = compare(sc, pcaps)
        print(report.text())
        write_json(report)
        return 0 if report.ok else 1
    raise CourseError("lab action", f"unknown action {action!r}",
                      "up, capture, run, compare, down, all, status, break, fix")


def _rootless_command(action: str, scenario: str, out, json_path, cold: bool) -> int:
    """A normal user's step: build, enter or end the holder's namespaces."""
    argv = ["lab", action]
    if json_path:
        argv += ["--json", os.path.abspath(json_path)]
    st = _read_state()
    if action == "down":
        removed_ns = 0
        if st and _holder_alive(st):
            removed_ns = _enter(st["holder"], ["lab", "down"]) == 0
        if st:
            _end_user_ns(st)
            _remove_run_dir(st)
        down()                                   # dead runs' temporary folders
        clear_state()
        if not removed_ns:
            print("removed 0 namespaces")
        return 0
    if action == "up":
        missing = requirements()
        if missing:
            raise CourseError("live lab", "cannot run here: missing " + "; ".join(missing))
        with _state_lock():
            refuse_if_busy()
            claim = _Claim(out, False)
        workdir, owned = (Path(out), False) if out else (Path(tempfile.mkdtemp(prefix="packet-walk-lab-")), True)
        st = {"scenario": os.path.abspath(scenario) if os.path.isfile(scenario) else scenario,
              "workdir": str(workdir), "owned": owned}
        try:
            claim.update(workdir=str(workdir), owned=owned)
            if not owned:
                _make_dir(workdir, "--out")
            st["holder"] = _start_holder()
            st["userns"] = _user_ns(st["holder"])
            claim.update(holder=st["holder"])
            rc = _enter(st["holder"], ["lab", "up", "--scenario", st["scenario"], "--out", str(workdir)]
                        + (["--cold"] if cold else []))
            if rc != 0:
                raise SystemExit(rc)
            save_state(st)
        except BaseException as e:
            _end_user_ns(st)
            _remove_run_dir(st)
            if isinstance(e, SystemExit):
                return int(e.code or 2)
            raise
        finally:
            claim.release()
        return 0
    if st is None or "holder" not in st:
        raise CourseError("live lab", "no lab is up", "python -m coursekit lab up")
    if not _holder_alive(st):
        raise CourseError("live lab", f"the rootless lab's namespaces are gone (holder pid {st['holder']} exited)",
                          "python -m coursekit lab down, then up")
    return _enter(st["holder"], argv)
