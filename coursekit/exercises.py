"""Exercises: predict, then check against the model.

Each exercise asks for something a learner can observe (an address, a
port, a TTL, a byte count, a rule) or predict under a changed scenario
("what if ...").  Its expected answer is *computed* from the scenario by the
same model that draws the captures -- never stored -- so an exercise stays
right when the scenario changes.  In a chapter::

    answer = None            # your prediction, e.g. "10.167.226.39"
    ck.check("01.outer-dst", answer)
    ck.check("01.outer-dst", answer, sc)     # against the scenario you are exploring

:func:`check` returns a :class:`Result` that prints one line: correct, not
yet (with a hint that points at the evidence, never at the answer), or not
answered.  Answers are read the way a person writes them: each answer *kind*
(:data:`KINDS`) has a normaliser that finds exactly one value in the text
(``"mss 1410"``, ``"50 bytes"``, ``"nat POSTROUTING"``, ``"1/3"``, the bare
hash of a chain) and refuses hedges (``"1410 or 1460"``, ``"50 60 70"``).

Every exercise names where its prompt belongs (``before``: the section
whose output reveals the answer); :func:`markdown` lists them all and is
stored as ``docs/exercises.md``.  Solutions live in ``notebooks/solutions/``.

Taught in: the exercises of every chapter.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable

from .errors import CourseError

__all__ = ["Exercise", "Result", "EXERCISES", "KINDS", "exercises", "check", "expected", "markdown",
           "read_answer"]


@dataclass(frozen=True)
class Exercise:
    """One prediction.  ``answer`` computes the expected value from a scenario."""
    id: str
    prompt: str
    answer: Callable[[Any], Any]       # scenario -> the expected answer
    kind: str                          # a key of KINDS
    hint: str                          # where to look (never the answer)
    before: str                        # the section (heading) whose output reveals the answer
    whatif: str = ""                   # the change to the scenario, in words ("" = as given)
    why: str = ""                      # shown with a correct answer
    words: tuple[str, ...] = ()        # extra words an answer may carry ("mss", "ttl", ...)
    synonyms: tuple[tuple[str, tuple[str, ...]], ...] = ()   # choice -> phrases meaning it
    port_optional: bool = False        # "endpoint": the IP alone is a right answer too

    @property
    def chapter(self) -> str:
        return self.id.split(".")[0]

    @property
    def question(self) -> str:         # the name earlier releases used
        return self.prompt


@dataclass(frozen=True)
class Result:
    id: str
    correct: bool | None               # None: not answered yet
    message: str

    def __bool__(self) -> bool:
        return bool(self.correct)

    def __repr__(self) -> str:
        return self.message

    __str__ = __repr__


# -- what the model says -----------------------------------------------------------

def _walk(sc):
    from .datapath import walk
    return walk(sc)


def _layers(frame):
    """(outer, inner): the frame's VXLAN outer packet (None when not encapsulated) and the pod's packet."""
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN
    p = Ether(frame)
    if p.haslayer(VXLAN):
        return p, p[VXLAN].payload
    return None, p


def _first(sc, node, iface, flow="request", seg=None, w=None):
    """The first frame of ``flow`` (or of segment ``seg``) that tcpdump on node/iface records."""
    for o in (w or _walk(sc)).at(node, iface):
        if (seg is None and o.flow == flow) or o.segment == seg:
            return o
    raise CourseError("exercise", f"the model records no {flow} on {node} {iface}")


def _request_at(sc, node, iface, seg=0, w=None):
    return _first(sc, node, iface, seg=seg, w=w)


def _inner(sc, node, iface, layer: str, fld: str, flow="request"):
    """A field of the pod's packet (inside any VXLAN) as the first ``flow`` packet crosses node/iface."""
    return getattr(_layers(_first(sc, node, iface, flow).frame)[1][layer], fld)


def _outer_dst(sc):
    from scapy.layers.inet import IP
    n = sc.node(sc.client.node)
    return _layers(_request_at(sc, n.name, n.nic.name).frame)[0][IP].dst


def _overhead(sc):
    sn, w = sc.node(sc.server.node), _walk(sc)
    enc = _request_at(sc, sn.name, sn.nic.name, w=w).frame
    plain = _request_at(sc, sn.name, sc.flannel.device, w=w).frame
    return len(enc) - len(plain)


def _announced_mss(sc, who: str) -> int:
    """The MSS option of ``who``'s SYN ("client") or SYN-ACK ("server"), as its own eth0 sends it."""
    from scapy.layers.inet import TCP
    pod = sc.client if who == "client" else sc.server
    o = _first(sc, pod.name, "eth0", "request" if who == "client" else "reply")
    return dict(_layers(o.frame)[1][TCP].options)["MSS"]


def _server_mss(sc):
    return _announced_mss(sc, "server")


def _largest_upload_packet(sc) -> int:
    """The largest IP packet busybox may send: Linux sizes segments to min(path MTU, peer MSS + 40)."""
    return min(sc.mtu_of(sc.client.name, "eth0"), _announced_mss(sc, "server") + 40)


def _upload_fits(sc) -> str:
    cn = sc.client.node
    return "yes" if _largest_upload_packet(sc) <= sc.mtu_of(cn, sc.flannel.device) else "no"


def _tcp_filter_count(sc):
    from .bpf import apply_filter
    from .capture import capture
    sn = sc.node(sc.server.node)
    return len(apply_filter(capture(sc, sn.name, sn.nic.name), "tcp"))


def _inner_src(sc, node, iface):
    return _inner(sc, node, iface, "IP", "src")


def _masq_hook(sc):
    for o in _walk(sc).path(0):
        for d in o.decisions:
            if d.stage == "nat" and "MASQUERADE source" in d.effect:
                return d.table.split()[-1]
    return "none"


def _otv_line(sc):
    from .capture import capture
    from .tcpdump import render
    n = sc.node(sc.client.node)
    return render(capture(sc, n.name, n.nic.name)[:1], n=2)


def _otv_instance(sc):
    m = re.search(r"(?:instance|vni) (\d+)", _otv_line(sc))
    return int(m.group(1)) if m else "none"


def _svc_chain(sc):
    """The KUBE-SVC chain that the client node's KUBE-SERVICES rule for the ClusterIP jumps to."""
    from .netfilter import nat_table
    svc = sc.service(sc.request.service)
    for r in nat_table(sc, sc.client.node)[0]:
        line = r.save()
        if line.startswith("-A KUBE-SERVICES ") and f"-d {svc.cluster_ip}/32" in line and "-j KUBE-SVC-" in line:
            return line.split("-j ")[1].split()[0]
    return "none"


def _first_probability(sc):
    from .netfilter import nat_table
    chain = _svc_chain(sc)
    for r in nat_table(sc, sc.client.node)[0]:
        line = r.save()
        if "--probability" in line and line.startswith(f"-A {chain} "):
            return line.split("--probability ")[1].split()[0]
    return "none"


def _rewrites(sc, segment=0):
    """NAT operations on one segment's path (the request's SYN by default): each change of one end (address
    and/or port) counts once."""
    from scapy.layers.inet import IP, TCP
    ends = []
    w = _walk(sc)
    for o in w.path(w.segment(segment)):
        p = _layers(o.frame)[1]
        ends.append((p[IP].src, p[TCP].sport, p[IP].dst, p[TCP].dport))
    return sum(1 for a, b in zip(ends, ends[1:]) for i in (0, 2) if (a[i], a[i + 1]) != (b[i], b[i + 1]))


def _reply_rewrites(sc):
    return _rewrites(sc, "SYN-ACK")


def _conntrack_reply_dst(sc):
    """The reply tuple's destination in the client node's conntrack entry: what the reply carries on arrival."""
    t = _walk(sc).conntrack[sc.client.node].reply
    return f"{t.dst}:{t.dport}"


def _other_client_ip(sc):
    """Another address in the client pod's subnet (its .77, or the next free one)."""
    subnet = sc.node(sc.client.node).subnet
    taken = {p.ip for p in sc.pods} | {sc.node(sc.client.node).vtep_ip, sc.node(sc.client.node).docker.bridge_ip}
    for k in range(77, 77 + 64):
        ip = subnet.network_address + k
        if ip in subnet and ip != subnet.broadcast_address and ip not in taken:
            return ip
    raise CourseError("exercise", f"subnet {subnet} has no free address for this exercise")


def _client_moved(sc):
    """The client pod at another address of its subnet (the explorer's client_ip knob)."""
    from .explore import apply
    return apply(sc, {"client_ip": str(_other_client_ip(sc))})


def _client_nic_moved(sc):
    """The client node's NIC moved to another address of the underlay (its .60, or the next free one)."""
    n = sc.node(sc.client.node)
    taken = {m.nic.ip for m in sc.nodes}
    ip = next(n.nic.network.network_address + k for k in range(60, 60 + 64)
              if n.nic.network.network_address + k not in taken)
    return sc.with_changes({f"nodes.{n.name}.nic.address": f"{ip}/{n.nic.network.prefixlen}"})


def _reply_outer_dst(sc):
    from scapy.layers.inet import IP
    sn = sc.node(sc.server.node)
    return _layers(_first(sc, sn.name, sn.nic.name, "reply").frame)[0][IP].dst


def _dport_at_server(sc):
    return _inner(sc, sc.server.name, "eth0", "TCP", "dport")


def _reply_port_predictable(sc) -> str:
    """Walk the reply under two boot seeds of the server node's kernel: does its outer source port move?"""
    from scapy.layers.inet import UDP
    sn = sc.node(sc.server.node)
    pinned = {k: v for k, v in sc.observed.vxlan_sport.items() if k != sn.name}
    ports = set()
    for seed in (sc.observed.flow_hash_seed, sc.observed.flow_hash_seed ^ 0xFFFFFFFF):
        v = sc.with_changes({"observed.vxlanSourcePort": pinned, "observed.flowHashSeed": seed})
        ports.add(_layers(_first(v, sn.name, sn.nic.name, "reply").frame)[0][UDP].sport)
    return "yes" if len(ports) == 1 else "no"


def _reply_masqueraded_on_server(sc) -> str:
    """Does the reply leave the server node with a source other than the nginx pod's own address?"""
    src = _inner(sc, sc.server.node, sc.flannel.device, "IP", "src", flow="reply")
    return "no" if src == str(sc.server.ip) else "yes"


def _other_cluster_ip(sc):
    """An address of the Service CIDR other than the Service's own (and not its network/broadcast)."""
    cur = sc.service(sc.request.service).cluster_ip
    taken = {s.cluster_ip for s in sc.services}
    net = sc.service_cidr
    for k in range(77, 77 + 64):
        ip = net.network_address + k
        if ip in net and ip != net.broadcast_address and ip not in taken and ip != cur:
            return ip
    raise CourseError("exercise", f"serviceCIDR {net} has no free address for this exercise")


def _chain_changes_with_cluster_ip(sc) -> str:
    v = sc.with_changes({f"services.{sc.request.service}.clusterIP": str(_other_cluster_ip(sc))})
    return "no" if _svc_chain(v) == _svc_chain(sc) else "yes"


# -- the changed scenarios of the "what if" exercises ---------------------------------

def _knobs(**knobs):
    """The scenario with explorer knobs applied (coursekit.explore.apply)."""
    def change(sc):
        from .explore import apply
        return apply(sc, knobs)
    return change


def _paths(fn):
    """The scenario with ``{"dotted.path": value}`` changes computed from it."""
    def change(sc):
        return sc.with_changes(fn(sc))
    return change


def _under(change, f):
    """``f`` evaluated on the changed scenario."""
    def run(sc):
        return f(change(sc))
    return run


_NO_BR_NETFILTER = _paths(lambda sc: {f"nodes.{sc.client.node}.bridgeNfCallIptables": False})
_MASQ_ALL_NO_DOCKER = _paths(lambda sc: {"kubeProxy.masqueradeAll": True,
                                         **{f"nodes.{n.name}.docker.ipMasq": False for n in sc.nodes}})
_NO_CLIENT_MASQ = _paths(lambda sc: {f"nodes.{sc.client.node}.docker.ipMasq": False})

# -- the traffic cases of chapter 08, as "what if"s of the scenario (the explorer's case knobs) --

def _same_node(sc):
    """The Service's pods moved to the client's node."""
    from .explore import apply
    return apply(sc, {"endpoint_node": sc.case.client_node})


def _same_node_no_brnf(sc):
    return _same_node(sc).with_changes({f"nodes.{sc.case.client_node}.bridgeNfCallIptables": False})


def _hairpin(sc):
    """The endpoint pod calls its own Service (one replica: kube-proxy can only pick itself)."""
    from .explore import apply
    return apply(sc, {"client": sc.server.name, "target": "service"})


def _from_node(sc):
    """A process on the client's node calls the same target."""
    from .explore import apply
    return apply(sc, {"client": sc.case.client_node})


def _with_outside(sc):
    """``sc`` with a host on the underlay when it has none: the highest free address (assumed)."""
    if sc.externals:
        return sc
    n0 = sc.nodes[0].nic
    taken = {n.nic.ip for n in sc.nodes}
    ip = next(h for h in reversed(list(n0.network.hosts())[-64:]) if h not in taken)
    return sc.with_changes({"externalHosts": {"outside": {"nic": {"address": f"{ip}/{n0.network.prefixlen}"}}}})


def _nodeport_from_outside(sc):
    """The host outside calls the NodePort on the first node of the path."""
    from .explore import apply
    x = _with_outside(sc)
    return apply(x, {"client": x.externals[0].name, "target": f"nodeport:{sc.case.nodes[0]}"})


def _to_the_world(sc):
    from .explore import apply
    x = _with_outside(sc)
    return apply(x, {"target": f"external:{x.externals[0].name}"})


def _pod_ip(sc):
    from .explore import apply
    return apply(sc, {"target": "pod-ip"})


def _flannel_ip_masq(sc):
    """flanneld -ip-masq: mk-docker-opts.sh then gives Docker --ip-masq=false on every node."""
    return _pod_ip(sc).with_changes({"flannel.ipMasq": True,
                                     **{f"nodes.{n.name}.docker.ipMasq": False for n in sc.nodes}})


def _seen_by_server(sc):
    """The SYN's source address where the server receives it (the last hop of its path)."""
    from scapy.layers.inet import IP
    path = _walk(sc).path(0)
    if not path or path[-1].node != sc.server.name:
        raise CourseError("exercise", f"the model's SYN never reaches {sc.server.name}")
    return _layers(path[-1].frame)[1][IP].src


def _reaches_server(sc) -> str:
    path = _walk(sc).path(0)
    return "yes" if path and path[-1].node == sc.server.name else "no"


def _with_dns(sc):
    """The same cluster with kube-dns (CoreDNS on the server's node, the ``dns:`` block of
    data/scenarios/dns.yaml): wget names the Service instead of its cluster IP."""
    from .scenario import load_scenario
    block = dict(load_scenario("dns").raw["dns"])
    svc = sc.service(sc.request.service)
    block["name"] = f"{svc.name}.{svc.namespace}.svc.{block['domain']}"
    block["server"] = dict(block["server"], node=sc.server.node)
    return sc.with_changes({"dns": block, "observed.windows": None, "observed.times": None,
                            "observed.tsLagTicks": {}})


def _dns_queries(sc):
    from .datapath import walk
    return len(walk(sc).dns)


_NO_ROUTE = _paths(lambda sc: {f"nodes.{sc.case.client_node}.defaultRoute": False})
def _fault_change(kind, **extra):
    """The scenario with a ``fault:`` block between the client's node and the server's (coursekit.faults)."""
    def fields(sc):
        if kind == "missing-fdb":
            return {"fault": {"kind": kind, "node": sc.client.node, "peer": sc.server.node}}
        return {"fault": {"kind": kind, "node": sc.server.node, **extra}}
    return _paths(fields)


def _syn_count(sc):
    """SYNs (first and retransmitted) tcpdump on the client's eth0 records."""
    return sum(1 for o in _walk(sc).at(sc.client.name, "eth0") if o.flow == "request")


def _give_up_seconds(sc):
    from .faults import outcome, syn_retransmit_times
    w = _walk(sc)
    if "ETIMEDOUT" not in outcome(w):
        raise CourseError("exercise", f"{sc.name}: connect() does not time out in this scenario")
    return syn_retransmit_times()[1] // 1_000_000


def _last_client_node_iface(sc):
    """The last interface of the client's node where tcpdump sees the SYN."""
    return [o.iface for o in _walk(sc).path(0) if o.node == sc.client.node][-1]


def _seen_on_server_nic(sc) -> str:
    n = sc.node(sc.server.node)
    return "yes" if any(o.segment == 0 for o in _walk(sc).at(n.name, n.nic.name)) else "no"


def _diagnosis(sc) -> str:
    from .faults import diagnose
    return diagnose(sc)


def _first_gone_on_server_node(sc) -> str:
    """With flannel older than v0.9.1: the first interface of the server's node whose SYN is gone."""
    healthy = [o.iface for o in _walk(sc.with_changes({"flannel.version": "v0.9.1"})).path(0)
               if o.node == sc.server.node]
    broken = {o.iface for o in _walk(sc).path(0) if o.node == sc.server.node}
    return next(i for i in healthy if i not in broken)


def _icmp_sender(sc) -> str:
    """The node whose kernel sends the first ICMP error of the walk."""
    w = _walk(sc)
    first = next(o for o in w.observations if o.flow == "icmp" and o.direction == "out")
    return first.node


def _icmp_source_at_client(sc) -> str:
    """The source address of the first ICMP error the client receives."""
    from .kernel.frame import src_of
    w = _walk(sc)
    first = next(o for o in w.observations if o.flow == "icmp" and o.node == sc.client.name and o.direction == "in")
    return str(src_of(first.frame))


_NO_ROUTE = _paths(lambda sc: {**{f"nodes.{n.name}.defaultRoute": False for n in sc.nodes},
                               "fault": {"kind": "missing-route", "node": sc.client.node, "peer": sc.server.node}})
_NO_ENDPOINTS = _paths(lambda sc: {"fault": {"kind": "no-endpoints", "service": sc.request.service}})


_NO = ("no", ("unchanged", "the same", "same", "stays the same", "it stays the same", "does not change",
              "doesn't change", "no change", "not changed", "it does not change", "it doesn't change",
              "same name", "the same name", "stays"))
_UNPREDICTABLE = ("no", ("unpredictable", "not predictable", "cannot", "can't", "cannot be predicted",
                         "can't be predicted", "random", "it is random", "it's random", "impossible",
                         "you cannot", "you can't", "no way", "not possible"))
_NOT_MASQ = ("no", ("not masqueraded", "it is not masqueraded", "no masquerade", "no masquerading",
                    "does not masquerade", "doesn't masquerade", "it does not", "it doesn't", "meizu does not",
                    "meizu doesn't", "de-nat", "de-nats", "conntrack de-nats it"))
_FITS = (("yes", ("fits", "it fits", "fit", "does fit", "it does fit")),
         ("no", ("does not fit", "doesn't fit", "it does not fit", "it doesn't fit", "too big", "too large",
                 "too long", "it is too big", "it's too big", "exceeds", "exceeds it", "it exceeds")))


EXERCISES = [
    # -- 00 the scenario
    Exercise("00.service", "Which IP:port does busybox connect to?",
             lambda sc: f"{sc.service(sc.request.service).cluster_ip}:{sc.request.port}", "endpoint",
             "busybox calls the Service, not a pod: look at the Service manifest (`ck.manifest_text`) and "
             "the request in `ck.describe(sc)`.",
             before="## The path, as the article writes it"),
    Exercise("00.backend", "Which pod finally answers? Give its IP (and port, if you like).",
             lambda sc: f"{sc.server.ip}:{sc.service_port.target_port}", "endpoint",
             "Follow the Service's selector to a pod in `ck.describe(sc)`, and the Service's targetPort.",
             before="## The path, as the article writes it", port_optional=True),
    Exercise("00.whatif-port", "What if the Service's port were 8080 (and busybox called port 8080)? On which "
             "TCP port would nginx receive the request?",
             _under(_knobs(service_port=8080), _dport_at_server), "int",
             "Which field of the Service does kube-proxy's DNAT take the pod's port from? Look at the "
             "Service manifest (`ck.manifest_text`).",
             before="## The path, as the article writes it", whatif="Service port 8080",
             why="kube-proxy DNATs to the endpoint's targetPort, whatever port the Service listens on.",
             words=("port", "tcp", "dport", "targetport")),
    # -- 01 the physical NIC
    Exercise("01.outer-dst", "On meizu's enp4s0, what is the outer destination IP of the request?",
             _outer_dst, "ip",
             "The VXLAN packet goes to the node that hosts the pod, not to the pod: look at flannel's FDB "
             "entry on xiaomi (`bridge fdb show dev flannel.1`).",
             before="## 1. Listening for the pod addresses — nothing"),
    Exercise("01.overhead", "How many bytes does the encapsulation add to each frame?",
             _overhead, "int", "Compare one request's frame length on meizu's enp4s0 and on its flannel.1: "
             "count outer Ethernet, IP, UDP and VXLAN headers (`ck.tree`).",
             before="## The VXLAN frame, layer by layer", words=("b", "byte", "bytes", "octets", "extra", "more")),
    Exercise("01.mss", "Which MSS does nginx announce in its SYN-ACK?",
             _server_mss, "int", "MSS = the MTU of nginx's eth0 minus 40 bytes of IP and TCP headers: look at "
             "meizu's docker0 MTU in `ck.describe(sc)`.",
             before="## 50 bytes, MTU 1450, MSS 1410 vs 1460", words=("mss", "b", "bytes", "byte")),
    Exercise("01.tcp-filter", "How many packets does `tcpdump -i enp4s0 tcp` show on meizu? (inside the model, "
             "where only the overlay's traffic crosses enp4s0)",
             _tcp_filter_count, "int", "BPF looks at the outer headers: what protocol does `tcpdump -i enp4s0` "
             "print first on each line?",
             before="## 4. The same with `tcp` — nothing", words=("packets", "packet", "frames", "none")),
    Exercise("01.whatif-mss", "What if every pod on both nodes had MTU 1500 (the node NICs stay at 1500, so "
             "flannel.1 stays at 1450)? Which MSS would nginx announce in its SYN-ACK?",
             _under(_knobs(pod_mtu=1500), _server_mss), "int",
             "The MSS option comes from the MTU of the sender's own eth0, not from flannel.1: subtract the IP "
             "and TCP headers.",
             before="## 50 bytes, MTU 1450, MSS 1410 vs 1460", whatif="pod MTU 1500 on both nodes",
             why="Each side announces its own eth0 MTU minus 40; neither sees flannel.1's smaller MTU.",
             words=("mss", "b", "bytes", "byte")),
    Exercise("01.whatif-upload", "In that cluster (pods at MTU 1500, flannel.1 at 1450), busybox uploads 10 kB. "
             "How many bytes long is the largest IP packet it sends?",
             _under(_knobs(pod_mtu=1500), _largest_upload_packet), "int",
             "Linux sizes a segment by the smaller of its own MTU and the MSS the peer announced plus 40 "
             "(look at the SYN-ACK's options in `ck.tcpdump(sc, 'busybox', 'eth0')`).",
             before="## 50 bytes, MTU 1450, MSS 1410 vs 1460", whatif="pod MTU 1500 on both nodes",
             why="Both ends announce 1460, so nothing shrinks the segments below the pod MTU.",
             words=("b", "byte", "bytes", "octets", "ip", "packet")),
    Exercise("01.whatif-fits", "And does that packet fit through flannel.1 without fragmentation (yes/no)? "
             "(What the kernel then does with it is not modelled here.)",
             _under(_knobs(pod_mtu=1500), _upload_fits), "choice",
             "Compare the largest packet with flannel.1's MTU: `ip link show flannel.1` (node NIC MTU minus the "
             "encapsulation).",
             before="## 50 bytes, MTU 1450, MSS 1410 vs 1460", whatif="pod MTU 1500 on both nodes",
             why="flannel.1's MTU is the node's MTU minus 50; a pod MTU above it lets TCP build packets the "
                 "overlay cannot carry whole.",
             synonyms=_FITS),
    Exercise("01.whatif-reply-port", "Can you predict the outer UDP source port of nginx's reply on meizu's "
             "enp4s0 from the inner packet alone (yes/no)?",
             _reply_port_predictable, "choice",
             "The kernel hashes the inner flow to choose the port: with which key? Look at the section on the "
             "outer source port and at `observed.flowHashSeed` in `ck.describe(sc)`.",
             before="## The outer source port", whatif="meizu rebooted (another hash seed)",
             why="udp_flow_src_port hashes the inner flow with a random seed drawn at each boot: the model's "
                 "port is a plausible stand-in, not a prediction.",
             synonyms=(_UNPREDICTABLE,)),
    # -- 02 flannel
    Exercise("02.whatif-client-src", "What if busybox had another address in xiaomi's pod subnet, say "
             "172.30.83.77? Which source IP would the request carry on meizu's flannel.1?",
             _under(_client_moved, lambda sc: _inner_src(sc, sc.server.node, sc.flannel.device)), "ip",
             "Something on xiaomi rewrote the source before encapsulation, and took the new one from an "
             "interface, not from the pod: look at xiaomi's nat table (`ck.nat_save(sc, 'xiaomi')`) and at "
             "the addresses of its interfaces (`ck.routing.ip_addr(sc, 'xiaomi')`).",
             before="## Why the source is `172.30.83.0`", whatif="busybox at the subnet's .77",
             why="MASQUERADE takes the address of the interface the packet leaves by (flannel.1's /32), "
                 "whatever the pod's own address."),
    Exercise("02.masq-hook", "In which nat chain was the source rewritten (PREROUTING or POSTROUTING)?",
             _masq_hook, "hook",
             "Source NAT happens after the routing decision, when the egress interface is known: find the "
             "MASQUERADE rule in `ck.nat_save(sc, 'xiaomi')`.",
             before="## Why the source is `172.30.83.0`"),
    Exercise("02.whatif-reply-outer-dst", "What if xiaomi's NIC had the address 10.167.226.60 (and xiaomi's "
             "flanneld published that in its lease)? Which outer destination IP would nginx's reply carry on "
             "meizu's enp4s0?",
             _under(_client_nic_moved, _reply_outer_dst), "ip",
             "The reply leaves meizu by its flannel.1, towards xiaomi's VTEP MAC; which of meizu's entries "
             "maps that MAC to an outer address, and where did meizu's flanneld get the address? Compare "
             "xiaomi's own entry (`ck.routing.bridge_fdb(sc, 'xiaomi')`).",
             before="## Explore", whatif="xiaomi's NIC at 10.167.226.60",
             why="meizu's FDB entry for xiaomi's VTEP MAC holds the PublicIP that xiaomi's lease publishes in "
                 "etcd: the outer destination follows the lease, not the pod."),
    Exercise("02.whatif-vni", "What if flannel's network config set VNI 7? What would the VTEP device on each "
             "node be called?",
             _under(_knobs(vni=7), lambda sc: sc.flannel.device), "word",
             "flanneld names the device after the VNI: look at `ip -d link show` in the section on what "
             "flanneld programs (`ck.describe(sc)` shows the VNI).",
             before="## What flanneld programs", whatif="VNI 7", words=("device", "interface", "vtep", "dev")),
    # -- 03 docker0
    Exercise("03.ttl", "What is the request's TTL on meizu's docker0?",
             lambda sc: _inner(sc, sc.server.node, "docker0", "IP", "ttl"), "int",
             "The pod sends its default TTL; every routed hop (not a bridge) takes one: count the routers "
             "before meizu's docker0 (`-v` shows the TTL).",
             before="## `-v`: the TTL", words=("ttl", "hops")),
    Exercise("03.dst-mac", "On meizu's docker0, what is the request's destination MAC?",
             lambda sc: _inner(sc, sc.server.node, "docker0", "Ether", "dst"), "mac",
             "Docker (in 2019) derived a container's MAC from its IP: 02:42 then the address bytes in hex; or read the "
             "neighbour table on meizu (`ip neigh show dev docker0`).",
             before="## `-e`: the MACs of a routed hop"),
    Exercise("03.whatif-no-brnf", "What if br_netfilter were not loaded on xiaomi (no "
             "net.bridge.bridge-nf-call-iptables)? Which destination IP would tcpdump on xiaomi's docker0 show "
             "for the request?",
             _under(_NO_BR_NETFILTER, lambda sc: _inner(sc, sc.client.node, "docker0", "IP", "dst")), "ip",
             "br_netfilter lets iptables' PREROUTING (and kube-proxy's DNAT) run while the frame is still "
             "being bridged; without it, where does DNAT happen relative to docker0's tap?",
             before="## Without br_netfilter", whatif="xiaomi without br_netfilter",
             why="Without br_netfilter the bridge hands docker0 the frame untouched; DNAT runs later, in IP "
                 "PREROUTING."),
    # -- 04 the container
    Exercise("04.nginx-sees", "Which client IP does nginx see (and log)?",
             lambda sc: _inner_src(sc, sc.server.name, "eth0"), "ip",
             "Nothing on meizu rewrites the source; what left xiaomi arrives: look at the request on meizu's "
             "flannel.1.",
             before="## Inside the nginx pod"),
    Exercise("04.nginx-sees-nomasq", "With Docker's masquerade switched off, which client IP does nginx see?",
             _under(_knobs(masquerade=False), lambda sc: _inner_src(sc, sc.server.name, "eth0")), "ip",
             "Without Docker's MASQUERADE, does any rule in `ck.nat_save(sc, 'xiaomi')` still match the "
             "request?",
             before="## The client address nginx sees", whatif="Docker --ip-masq=false"),
    Exercise("04.ttl-pod", "What TTL does the request have when it reaches nginx's eth0?",
             lambda sc: _inner(sc, sc.server.name, "eth0", "IP", "ttl"), "int",
             "Count the routers between the two pods (`ck.tcpdump(sc, 'nginx-1', 'eth0', flags='-v')`).",
             before="## TTL 64, 63, 62", words=("ttl", "hops")),
    Exercise("04.whatif-masq-all", "What if Docker's masquerade were off on both nodes, but kube-proxy ran with "
             "--masquerade-all? Which client IP would nginx see?",
             _under(_MASQ_ALL_NO_DOCKER, lambda sc: _inner_src(sc, sc.server.name, "eth0")), "ip",
             "--masquerade-all marks every packet to a ClusterIP; KUBE-POSTROUTING masquerades marked packets "
             "to an address of the interface they leave by: which interface does the request leave xiaomi by?",
             before="## The client address nginx sees", whatif="kube-proxy --masquerade-all, Docker --ip-masq=false",
             why="kube-proxy's MASQUERADE, like Docker's, takes the egress device's address: flannel.1's /32."),
    # -- 05 the service
    Exercise("05.svc-chain", "What is the name of the Service's KUBE-SVC chain? (the full name or its "
             "16-character hash)",
             _svc_chain, "chain",
             "kube-proxy names the chain after the Service port, not its address: sha256 of "
             "'namespace/name:port-name' + 'tcp', base32, first 16 characters (`coursekit.kubeproxy.service_chain`).",
             before="## xiaomi's nat table"),
    Exercise("05.ct-reply-dst", "xiaomi's conntrack entry records, besides the request, the reply direction "
             "as the reply will arrive, before conntrack un-NATs it. Which destination IP:port does it expect "
             "nginx's reply to carry?",
             _conntrack_reply_dst, "endpoint",
             "nginx answers the packet it received: which source address and port did the request carry when "
             "it left xiaomi (after DNAT and MASQUERADE)? Look at `ck.nat_save(sc, 'xiaomi')` and the request "
             "on meizu's flannel.1.",
             before="## Every later packet: conntrack",
             why="The reply tuple is the request's tuple after NAT, reversed; a reply that matches it is "
                 "un-SNATed back to busybox and un-DNATed to the Service.",
             words=("dport", "reply", "conntrack")),
    Exercise("05.probability", "With 3 replicas, what --probability does the first KUBE-SEP jump carry?",
             _under(_knobs(replicas=3), _first_probability), "probability",
             "kube-proxy gives the i-th of n endpoints 1/(n-i) of what is left; try the explorer with "
             "3 replicas and read the KUBE-SVC chain in the nat table.",
             before="## Several replicas: probabilities", whatif="3 nginx replicas"),
    Exercise("05.whatif-clusterip", "What if the Service got another ClusterIP? Would its KUBE-SVC chain's "
             "name change (yes/no)?",
             _chain_changes_with_cluster_ip, "choice",
             "What does kube-proxy hash to name the chain? Look at the arguments of "
             "`coursekit.kubeproxy.service_chain`.",
             before="## xiaomi's nat table", whatif="another ClusterIP",
             why="servicePortChainName hashes namespace/name:port-name and the protocol; the address is not "
                 "part of it.",
             synonyms=(_NO,)),
    Exercise("05.whatif-reply-masq", "meizu has Docker's rule `-s <its pod subnet> ! -o docker0 -j MASQUERADE` "
             "too, and nginx's reply leaves meizu by flannel.1. Is the reply's source masqueraded on meizu "
             "(yes/no)?",
             _reply_masqueraded_on_server, "choice",
             "nat rules run for a connection's first packet only; whose first packet is the SYN? Look at "
             "meizu's conntrack entry and the reply on meizu's flannel.1.",
             before="## Every later packet: conntrack", whatif="the reply",
             why="The reply belongs to a connection conntrack already knows: no nat rule runs for it; "
                 "conntrack only undoes the translations the connection's first packet got.",
             synonyms=(_NOT_MASQ,)),
    # -- 06 the whole walk
    Exercise("06.reply-ttl", "nginx sends its SYN-ACK with TTL 64. What TTL does it have when it reaches "
             "busybox's eth0?",
             lambda sc: _inner(sc, sc.client.name, "eth0", "IP", "ttl", flow="reply"), "int",
             "Bridges, veths and VXLAN leave the inner TTL alone; which nodes route the reply on its way back? "
             "(`ck.explore.hop_table(w, 'SYN-ACK')` shows the TTL column.)",
             before="## Step through it", words=("ttl", "hops")),
    Exercise("06.reply-rewrites", "How many NAT operations rewrite nginx's reply (its SYN-ACK) on its way back "
             "to busybox? (conntrack's un-NATs count; a change of an address and its port together counts once.)",
             _reply_rewrites, "int",
             "No nat rule runs for a reply, but conntrack undoes every translation the request got: how many "
             "did the request get, and on which node? (`ck.explore.hop_table(w, 'SYN-ACK')`)",
             before="## Step through it", words=("times", "rewrites", "nat", "operations", "translations")),
    Exercise("06.whatif-rewrites-nomasq", "What if Docker's masquerade were off on both nodes: how many NAT "
             "operations would rewrite the request then?",
             _under(_knobs(masquerade=False), _rewrites), "int",
             "Which of the request's translations came from kube-proxy and which from Docker? Compare "
             "`ck.nat_save(sc, 'xiaomi')` with the explorer's masquerade switched off.",
             before="## Explore everything at once", whatif="Docker --ip-masq=false",
             words=("times", "rewrites", "nat", "operations", "translations")),
    # -- 07 the live lab
    Exercise("07.lab-nomasq", "Break one thing: run the lab (`python -m coursekit lab all --scenario FILE`) with "
             "a scenario that extends the article's and sets `nodes: {xiaomi: {docker: {ipMasq: false}}}` (Docker's "
             "masquerade rule on xiaomi is gone). Which inner source IP will tcpdump on meizu's flannel.1 show for "
             "the request?",
             _under(_NO_CLIENT_MASQ, lambda sc: _inner_src(sc, sc.server.node, sc.flannel.device)), "ip",
             "Which rule rewrote the source in the article's lab? Look at `ck.nat_save(sc, 'xiaomi')` and ask "
             "what else could change it.",
             before="## Run it and compare", whatif="xiaomi's Docker --ip-masq=false"),
    Exercise("07.lab-vni", "Run the lab with a scenario that extends the article's and sets `flannel: {vni: 42}`. "
             "What number will `tcpdump -i enp4s0` on meizu print after `instance` in the OTV line?",
             _under(_knobs(vni=42), _otv_instance), "int",
             "tcpdump's OTV printer reads the VXLAN header's VNI field as its instance: which VNI does flannel "
             "give the device?",
             before="## Run it and compare", whatif="VNI 42", words=("instance", "vni")),
    # -- 08 the network model: eight ways in
    Exercise("08.same-node-ttl", "Move nginx to busybox's node. What TTL does nginx's eth0 see on busybox's SYN?",
             _under(_same_node, lambda sc: _inner(sc, sc.server.name, "eth0", "IP", "ttl")), "int",
             "Only routing decrements the TTL. With br_netfilter, is this DNAT'd frame routed, or bridged from "
             "one port of docker0 to another?",
             before="## Same node: the VXLAN hop disappears", whatif="nginx on busybox's node",
             words=("ttl",)),
    Exercise("08.no-brnf-reply-src", "Same node, with br_netfilter off (bridge-nf-call-iptables = 0). Which source "
             "IP does busybox's eth0 see on nginx's SYN-ACK?",
             _under(_same_node_no_brnf, lambda sc: _inner(sc, sc.client.name, "eth0", "IP", "src", flow="reply")),
             "ip", "nginx answers an address on its own subnet: which devices carry the SYN-ACK, and does any of "
             "them hand it to conntrack to undo the DNAT?",
             before="## Same node without br_netfilter", whatif="nginx on busybox's node, br_netfilter off"),
    Exercise("08.hairpin-src", "nginx-1 calls its own Service and kube-proxy picks nginx-1 itself. Which source IP "
             "does nginx-1 see on the SYN it receives?",
             _under(_hairpin, _seen_by_server), "ip",
             "The KUBE-SEP chain marks a packet from the endpoint itself; MASQUERADE takes an address of the "
             "device the packet leaves by. Which device is that here?",
             before="## Hairpin: a pod calls itself through its Service", whatif="nginx-1 is the client",
             words=("docker0", "bridge")),
    Exercise("08.node-src", "A process on xiaomi itself (curl on the node) calls the Service. Which source IP "
             "does nginx see?",
             _under(_from_node, _seen_by_server), "ip",
             "Which address does connect() choose from the route to the cluster IP, is it inside the cluster "
             "CIDR, and by which device does the DNAT'd packet leave xiaomi?",
             before="## From the node", whatif="a process on the client's node is the client"),
    Exercise("08.no-default-route", "Now take away xiaomi's default route. Does curl on the node still reach "
             "nginx through the cluster IP (yes/no)?",
             _under(lambda sc: _NO_ROUTE(_from_node(sc)), _reaches_server), "choice",
             "The DNAT in nat OUTPUT happens after connect() has chosen a route for the cluster IP: which route "
             "covers the Service CIDR?",
             before="## From the node", whatif="a process on the node, no default route",
             synonyms=(("no", ("it does not", "it doesn't", "unreachable", "no route", "network is unreachable",
                               "connect fails", "it fails")),)),
    Exercise("08.nodeport-src", "A host on the underlay, outside the cluster, calls the NodePort on xiaomi's "
             "address. Which source IP does nginx see?",
             _under(_nodeport_from_outside, _seen_by_server), "ip",
             "KUBE-NODEPORTS marks every NodePort packet for SNAT; which device does the packet leave xiaomi by, "
             "and what is that device's address?",
             before="## NodePort from outside", whatif="a host on the underlay calls xiaomi's NodePort"),
    Exercise("08.world-src", "busybox fetches a page from a web server on the underlay, outside the cluster. "
             "Which source IP does that server see?",
             _under(_to_the_world, _seen_by_server), "ip",
             "Docker's rule matches its subnet leaving by any device but docker0; MASQUERADE takes an address "
             "of the egress device. Which device routes to the underlay?",
             before="## Out to the world", whatif="busybox calls a host on the underlay",
             words=("xiaomi", "enp4s0")),
    Exercise("08.p2p-src", "busybox calls nginx's pod IP directly, no Service. Which source IP does nginx see?",
             _under(_pod_ip, _seen_by_server), "ip",
             "Without a Service kube-proxy rewrites nothing. Which other nat rule on xiaomi matches a packet from "
             "busybox that leaves by flannel.1?",
             before="## Pod to pod: the model's rule", whatif="busybox calls nginx's pod IP"),
    Exercise("08.whatif-ipmasq", "Same call, with flannel's recommended setup: flanneld -ip-masq (so Docker gets "
             "--ip-masq=false). Which source IP does nginx see now?",
             _under(_flannel_ip_masq, _seen_by_server), "ip",
             "flannel's first POSTROUTING rule returns early for a packet from the pod network to the pod "
             "network, and Docker's rule is gone: does anything rewrite the source?",
             before="## Pod to pod: the model's rule", whatif="busybox calls nginx's pod IP; flanneld -ip-masq",
             words=("busybox",)),
    Exercise("08.dns-queries", "Now busybox calls nginx by name: wget http://nginx.default.svc.cluster.local:4432. "
             "The pod's /etc/resolv.conf lists three search domains and says options ndots:5. How many DNS "
             "queries does busybox send before its SYN?",
             _under(_with_dns, _dns_queries), "int",
             "busybox links uClibc-ng: does its resolver read ndots at all? And getaddrinfo with AF_UNSPEC asks "
             "for which record types?",
             before="## DNS first", whatif="wget names the Service; kube-dns runs CoreDNS on nginx's node",
             words=("queries", "query")),
    # -- 09 when it breaks
    Exercise("09.syn-count", "Suppose flannel.1 on busybox's node had no FDB entry for nginx's node. How many SYNs "
             "would tcpdump on busybox's eth0 print before wget gives up?",
             _under(_fault_change("missing-fdb"), _syn_count), "int",
             "Nothing answers a SYN that is dropped: the client's kernel sends it again when its retransmission "
             "timer fires, net.ipv4.tcp_syn_retries times.",
             before="## Silence has a rhythm", whatif="no FDB entry for the server's node on the client's flannel.1",
             words=("syns", "syn", "packets", "times", "segments")),
    Exercise("09.give-up", "In that cluster, how many seconds after the first SYN does connect() fail?",
             _under(_fault_change("missing-fdb"), _give_up_seconds), "int",
             "The first retransmission waits 1 s, and each wait doubles; after the last retransmission the "
             "kernel waits once more before it gives up.",
             before="## Silence has a rhythm", whatif="no FDB entry for the server's node on the client's flannel.1",
             words=("s", "seconds", "sec", "secs", "after")),
    Exercise("09.last-seen-fdb", "In that cluster, which interface of busybox's node is the last one where "
             "tcpdump sees the SYN? (Its name only.)",
             _under(_fault_change("missing-fdb"), _last_client_node_iface), "word",
             "tcpdump on a device sees what is handed to its driver; the VXLAN driver looks up its FDB after that.",
             before="## Fault: no FDB entry", whatif="no FDB entry for the server's node on the client's flannel.1",
             words=("interface", "on", "device")),
    Exercise("09.input-sees", "Suppose nginx's node had a host firewall rule `-I INPUT -p udp -m udp --dport 8472 "
             "-j DROP`. Would tcpdump on that node's enp4s0 see the VXLAN datagram?",
             _under(_fault_change("udp-blocked", at="input"), _seen_on_server_nic), "choice",
             "Where does tcpdump tap an incoming frame: before or after netfilter's hooks?",
             before="## Fault: UDP 8472 blocked", whatif="a host INPUT rule dropping UDP 8472 on the server's node"),
    Exercise("09.forward-gone", "With flannel older than v0.9.1 under Docker's FORWARD policy DROP, which is the "
             "first interface of nginx's node where tcpdump no longer sees the SYN?",
             _under(_paths(lambda sc: {"flannel.version": "v0.8.0"}), _first_gone_on_server_node), "word",
             "Which interfaces does a forwarded packet cross on nginx's node, and where between them does filter "
             "FORWARD run?",
             before="## Fault: no FDB entry", whatif="flannel v0.8.0: no FORWARD ACCEPT rules",
             words=("interface", "on", "device")),
    Exercise("09.vxlan-port-icmp", "Suppose nginx's node's flannel.1 listened on UDP 4789 while busybox's node sends "
             "to 8472. Which node's kernel sends an ICMP error?",
             _under(_fault_change("vxlan-port", port=4789), _icmp_sender), "word",
             "Which node's UDP layer receives a datagram on a port where no socket listens?",
             before="## Fault: no endpoints", whatif="the server node's flannel.1 on UDP 4789",
             words=("node", "the", "on")),
    Exercise("09.no-endpoints-syns", "Suppose the Service's selector matched no ready pod. How many SYNs would "
             "tcpdump on busybox's eth0 print before wget gives up?",
             _under(_NO_ENDPOINTS, _syn_count), "int",
             "kube-proxy's REJECT answers at once, on busybox's own node, while busybox's connect() still holds "
             "its socket: does that first error end the connection?",
             before="## Fault: br_netfilter off on the same node", whatif="the Service has no endpoints",
             words=("syns", "syn", "packets", "times", "segments")),
    Exercise("09.no-route-from", "Suppose busybox's node had no route to nginx's pod subnet (and no default route). "
             "From which address does the ICMP error busybox receives come?",
             _under(_NO_ROUTE, _icmp_source_at_client), "ip",
             "Where is the route looked up, before or after DNAT? And conntrack treats the error as a reply of the "
             "connection it quotes.",
             before="## Fault: no route to the other node's pods", whatif="no route to the server node's pod subnet",
             words=("from", "source", "src")),
    Exercise("09.mystery", "What is broken in this cluster? Name the fault, or the fix.",
             _diagnosis, "fault",
             "Follow the request interface by interface (m.hint(1), m.hint(2), ...): where is it last seen? Then "
             "read that node's tables (m.tables(node)) for the entry that should have sent it on.",
             before="## Summary"),
    # -- 10 your own cluster
    Exercise("10.syn-places", "Explain all ten of the article's captures together: at how many places will the "
             "SYN be seen?",
             lambda sc: len(_walk(sc).path(0)), "int",
             "One file per interface: on how many of them does the SYN pass on its way from busybox to nginx "
             "(chapter 06's hop table)?",
             before="## Explain", words=("places", "captures", "interfaces", "files", "times")),
    Exercise("10.dnat-node", "With only busybox's eth0 and meizu's enp4s0 captured, the SYN's destination changes "
             "between the two. Which node's rules rewrote it?",
             lambda sc: _dnat_node(sc), "word",
             "kube-proxy installs the same rules on every node: whose nat PREROUTING does the packet meet first?",
             before="## Explain", words=("node", "rules", "by")),
]


def _dnat_node(sc):
    """The node whose nat rules DNAT the first request (chapter 10)."""
    for o in _walk(sc).path(0):
        if any(d.stage == "nat" and d.effect.startswith("DNAT") for d in o.decisions):
            return o.node
    return "none"


# -- reading an answer ----------------------------------------------------------------

_MAX_TEXT = 2000          # longer answers are not a prediction anyone typed
_ECHO = 60                # characters of the answer echoed in a message


class _Unreadable(Exception):
    """The answer cannot be read as one value of the exercise's kind (why, in words)."""


_FILLER = {"the", "a", "an", "it", "is", "its", "it's", "answer", "my", "of", "will", "be", "would", "was",
           "on", "at", "in", "value", "equals"}
_HEDGES = {"or", "maybe", "perhaps", "probably", "possibly", "either", "unsure", "approximately", "about",
           "around", "roughly", "between", "not", "guess", "depends"}

_IP = r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}"
_NUM = r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]*\d)"


def _words(rest: str) -> list[str]:
    return [w for w in re.split(r"[\s,;:=()\[\]{}'\"`!?/]+|(?<!\w)-(?!\w)|\.(?=\s|$)", rest) if w]


def _leftover(rest: str, allowed: set[str]) -> None:
    """Refuse words other than fillers: hedges, a second value, anything we cannot vouch for."""
    for w in _words(rest.lower()):
        w = w.strip(".-+")
        if not w:
            continue
        if w in _HEDGES:
            raise _Unreadable("give one answer, without hedging")
        if w not in allowed and w not in _FILLER:
            raise _Unreadable(f"not sure what {w[:20]!r} means here; answer with one value")


def _one(pattern: str, text: str, what: str, flags=re.I) -> tuple[str, str]:
    found = re.findall(pattern, text, flags)
    if not found:
        raise _Unreadable(f"no {what} found")
    if len(set(m.lower() for m in found)) > 1:
        raise _Unreadable(f"one {what}, please (this names {len(found)})")
    return found[0], re.sub(pattern, " ", text, flags=flags)


def _ip(text: str, ex: Exercise) -> str:
    m, rest = _one(_IP, text, "IPv4 address")
    try:
        ip = str(ipaddress.IPv4Address(m))
    except ValueError:
        raise _Unreadable(f"{m} is not an IPv4 address") from None
    _leftover(rest, {"ip", "ipv4", "address", "addr", "source", "src", "destination", "dst", "from", "to",
                     "host", "client", "pod", "node", *ex.words})
    return ip


def _endpoint(text: str, ex: Exercise) -> str:
    m, rest = _one(_IP, text, "IPv4 address")
    try:
        ip = str(ipaddress.IPv4Address(m))
    except ValueError:
        raise _Unreadable(f"{m} is not an IPv4 address") from None
    ports = re.findall(r"\d+", rest)
    if not ports:
        if ex.port_optional:
            _leftover(rest, {"ip", "ipv4", "address", "pod", "nginx", "port", *ex.words})
            return ip
        raise _Unreadable("give the address and the port, like 10.0.0.1:80")
    if len(set(ports)) > 1:
        raise _Unreadable("one port, please")
    if len(ports[0]) > 5 or not 0 < int(ports[0]) < 65536:
        raise _Unreadable("a port is 1-65535")
    rest = re.sub(r"\d+", " ", rest)
    _leftover(rest, {"ip", "ipv4", "address", "port", "tcp", "pod", "nginx", "service", "source", "src",
                     "destination", "dst", "from", "to", *ex.words})
    return f"{ip}:{int(ports[0])}"


_NUMBER_WORDS = {"zero": 0, "none": 0, "nothing": 0, "no": 0, "one": 1, "once": 1, "two": 2, "twice": 2,
                 "three": 3, "thrice": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                 "ten": 10}


def _int(text: str, ex: Exercise) -> str:
    if re.search(r"\d{31}", text):
        raise _Unreadable("that number is far too long")
    if re.search(r"(?<![\w.])-\s*\d", text):
        raise _Unreadable("a count or a size is not negative")
    text = re.sub(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", " ", text.lower())     # "mss1410", "50b"
    text = re.sub(r"\b(%s)\b" % "|".join(_NUMBER_WORDS), lambda m: str(_NUMBER_WORDS[m.group(1)]), text)
    m, rest = _one(_NUM, text, "number")
    if "." in m:
        if Fraction(m).denominator != 1:
            raise _Unreadable(f"a whole number, please (not {m})")
        m = m.split(".")[0]
    _leftover(rest, {*ex.words})
    return str(int(m))


def _mac(text: str, ex: Exercise) -> str:
    h = r"[0-9a-f]"
    pat = (rf"(?<![\w:.-])(?:{h}{{2}}(?:[:-]{h}{{2}}){{5}}|{h}{{4}}\.{h}{{4}}\.{h}{{4}}|{h}{{12}})(?![\w:.-])")
    m, rest = _one(pat, text, "MAC address")
    digits = re.sub(r"[^0-9a-f]", "", m.lower())
    _leftover(rest, {"mac", "address", "ether", "ethernet", "hw", "dst", "destination", "lladdr", *ex.words})
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def _probability(text: str, ex: Exercise) -> Fraction:
    t = text.replace("--probability", " ").replace("one in three", "1 in 3")
    pat = r"(?<![\w.])(?:\d+\s*/\s*\d+|\d+\s+in\s+\d+|\d*\.?\d+\s*%|\d*\.\d+|\d+)(?![\w.]*\d)"
    if re.search(r"\d{31}", t):
        raise _Unreadable("that number is far too long")
    m, rest = _one(pat, t, "probability")
    m = re.sub(r"\s+", " ", m.strip())
    try:
        if "/" in m or " in " in m:
            a, b = re.split(r"\s*/\s*| in ", m)
            v = Fraction(int(a), int(b))
        elif m.endswith("%"):
            v = Fraction(m[:-1].strip()) / 100
        else:
            v = Fraction(m)
    except (ValueError, ZeroDivisionError):
        raise _Unreadable(f"{m} is not a probability") from None
    if not 0 <= v <= 1:
        raise _Unreadable("a probability lies between 0 and 1")
    _leftover(rest, {"probability", "p", "chance", *ex.words})
    return v


def _chain(text: str, ex: Exercise) -> str:
    m, rest = _one(r"(?<![\w-])(?:kube-(?:svc|sep)-)?[a-z2-7]{16}(?![\w-])", text, "chain name (or 16-character hash)")
    if m.lower().startswith("kube-sep-"):
        raise _Unreadable("that is an endpoint (KUBE-SEP) chain")
    _leftover(rest, {"chain", "-j", "j", "jump", "name", "hash", "kube-svc", "nat", "table", *ex.words})
    return m.upper()[-16:]


_HOOKS = ("prerouting", "input", "forward", "output", "postrouting")


def _hook(text: str, ex: Exercise) -> str:
    t = text.lower()
    t = re.sub(r"nf_(?:inet|ip)_", "", t)
    t = re.sub(r"\b(pre|post)[\s_-]+routing\b", r"\1routing", t)
    m, rest = _one(r"(?<![\w-])(?:%s)(?![\w-])" % "|".join(_HOOKS), t, "chain (PREROUTING, INPUT, FORWARD, "
                   "OUTPUT or POSTROUTING)")
    _leftover(rest, {"nat", "table", "chain", "hook", "-t", "t", "-a", "a", "iptables", "netfilter", "the",
                     "in", "of", *ex.words})
    return m.upper()


def _word(text: str, ex: Exercise) -> str:
    """One name (``VXLAN``); every other word must be a filler."""
    names = re.findall(r"[a-z][\w.-]*", text.lower())
    core = [w.strip(".-") for w in names if w.strip(".-") not in _FILLER and w.strip(".-") not in ex.words and
            w.strip(".-") not in {"tcpdump", "calls", "call", "says", "prints", "print", "shows", "as", "decodes"}]
    if not core:
        raise _Unreadable("no name found")
    if any(w in _HEDGES for w in core):
        raise _Unreadable("give one answer, without hedging")
    if len(set(core)) > 1:
        raise _Unreadable(f"one name, please (this names {len(set(core))})")
    return core[0].upper()


_GENERIC = {"yes": ("yes", "y", "yep", "yeah", "true", "correct", "it does", "does",
                    "是", "是的", "会", "能", "可以", "对"),                      # the Chinese edition's learners
            "no": ("no", "n", "nope", "false", "it does not", "it doesn't", "does not", "doesn't",
                   "否", "不", "不会", "不能", "不可以", "不是", "不对")}


def _choice(text: str, ex: Exercise) -> str:
    """A choice (yes/no) said in a few words, optionally followed by a reason: "No, conntrack de-NATs it"."""
    phrases: dict[str, set[str]] = {k: set(v) for k, v in _GENERIC.items()}
    for value, words in ex.synonyms:
        phrases.setdefault(value, set()).update(words)
    t = re.sub(r"\s+", " ", text.lower()).strip()
    # the longest phrase the answer starts with, followed by the end, a separator or a reason
    best = None
    for v, ps in phrases.items():
        for p in ps:
            m = re.match(re.escape(p) + r"(?=$|[\s,;:.!?\u2014\u2013()\uff0c\u3002\uff1a\uff1b\uff01\uff1f\uff08-])", t)
            if m and (best is None or len(p) > len(best[1])):
                best = (v, p)
    if best is None:
        if any(w in _HEDGES for w in re.findall(r"[a-z']+", t)):
            raise _Unreadable("give one answer, without hedging")
        raise _Unreadable("start with " + " or ".join(sorted(phrases)) + " (then say why, if you like)")
    value, tail = best[0], t[len(best[1]):]
    tail_words = set(re.findall(r"[a-z']+", tail))
    if tail_words & {"maybe", "perhaps", "probably", "possibly", "unsure", "depends", "or"} or "not sure" in tail \
            or "?" in tail:
        raise _Unreadable("give one answer, without hedging")
    if tail_words & ({"yes", "no"} - {value}):
        raise _Unreadable("one answer, please: this says both")
    return value


_HEALTHY = ("healthy", "nothing", "nothing is broken", "nothing is wrong", "no fault", "it works", "works")


def _fault(text: str, ex: Exercise) -> str:
    """A fault of coursekit.faults.FAULTS named by its name, a word for it, or its fix (or "healthy")."""
    from .faults import FAULTS, fault_named
    t = " ".join(text.lower().split())
    if any(w in _HEDGES for w in re.findall(r"[a-z']+", t)):
        raise _Unreadable("give one answer, without hedging")
    if t.strip(" .!") in _HEALTHY:
        return "healthy"
    name = fault_named(t)
    if name is None:
        raise _Unreadable("name one fault or its fix, e.g. " + ", ".join(FAULTS))
    return name


KINDS: dict[str, Callable] = {
    "ip": _ip, "endpoint": _endpoint, "int": _int, "mac": _mac, "probability": _probability,
    "chain": _chain, "hook": _hook, "choice": _choice, "word": _word, "fault": _fault,
}
"""Answer kind -> normaliser(text, exercise): the one canonical value the text names, or _Unreadable."""


def _echo(value: Any) -> str:
    """A short, safe rendering of what the learner gave (never the whole of a huge answer)."""
    try:
        if isinstance(value, str):
            s = str.__str__(value)
            r = repr(s[:_ECHO])
            return r + (f" … ({len(s)} characters)" if len(s) > _ECHO else "")
        if isinstance(value, int) and not isinstance(value, bool):
            if value.bit_length() > 100:
                return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
            return repr(int(value))
        r = object.__repr__(value) if type(value).__repr__ is object.__repr__ else repr(value)
        r = str.__str__(r) if isinstance(r, str) else type(value).__name__
    except Exception:              # an object whose __repr__ fails: name its type
        return f"a {type(value).__name__}"
    return r[:_ECHO] + (" …" if len(r) > _ECHO else "")


def _as_text(value: Any, ex: Exercise) -> str:
    """The answer as text, or _Unreadable (also when the value's own methods fail)."""
    try:
        return _to_text(value, ex)
    except _Unreadable:
        raise
    except Exception:
        raise _Unreadable(f"a {type(value).__name__} that cannot be read as an answer") from None


def _to_text(value: Any, ex: Exercise) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        if value.bit_length() > 100:
            raise _Unreadable("that number is far too long")
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Unreadable(f"{value} is not a value this exercise can have")
        if ex.kind == "probability":
            return repr(value)
        if value.is_integer() and abs(value) < 1e30:
            return str(int(value))
        return repr(value)
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}" if abs(value.numerator) < 10**30 and \
            value.denominator < 10**30 else "?"
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value[:_MAX_TEXT + 1])
        try:
            value = b.decode("utf-8")
        except UnicodeDecodeError:
            raise _Unreadable("bytes that are not UTF-8 text") from None
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if isinstance(value, tuple) and ex.kind == "endpoint" and len(value) == 2:
        return f"{_to_text(value[0], ex)}:{_to_text(value[1], ex)}"
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        raise _Unreadable(f"one answer, not a {type(value).__name__} of candidates")
    if isinstance(value, str):
        s = str.__str__(value)
    else:
        try:
            s = str(value)
        except Exception:
            raise _Unreadable(f"a {type(value).__name__} that cannot be shown as text") from None
        if not isinstance(s, str):
            raise _Unreadable(f"a {type(value).__name__} that cannot be shown as text")
        s = str.__str__(s)
    if len(s) > _MAX_TEXT:
        raise _Unreadable(f"an answer of {len(s)} characters is not one value")
    return s.strip().strip("'\"`").strip()


def read_answer(ex_id: str, answer: Any):
    """The canonical value ``check`` compares for ``answer`` (CourseError when it cannot be read)."""
    e = _find(ex_id)
    try:
        return _canon(e, _as_text(answer, e))
    except _Unreadable as u:
        raise CourseError(e.id, f"cannot read {_echo(answer)}: {u}") from None


def _canon(e: Exercise, text: str):
    return KINDS[e.kind](text, e)


def _same(e: Exercise, got, want) -> bool:
    if e.kind == "probability":
        return abs(got - want) <= Fraction(1, 200)
    if e.kind == "endpoint" and e.port_optional and ":" not in got:
        return got == want.split(":")[0]
    return got == want


# -- look-ups ------------------------------------------------------------------------

def exercises(chapter: str | None = None) -> list[Exercise]:
    """All exercises, or those of one chapter ("01")."""
    return [e for e in EXERCISES if chapter is None or e.chapter == chapter]


def _find(ex_id: Any) -> Exercise:
    if not isinstance(ex_id, str):
        raise CourseError("exercise", f"an exercise id is a string, not {_echo(ex_id)}",
                          "ids like '01.mss': see ck.exercises.exercises()")
    ex_id = str.__str__(ex_id)
    for e in EXERCISES:
        if e.id == ex_id:
            return e
    key = ex_id.strip().lower()[:40]
    for e in EXERCISES:
        if e.id == key:
            return e
    chapter = key.split(".")[0]
    same = [e.id for e in EXERCISES if e.chapter == chapter]
    close = difflib.get_close_matches(key, [e.id for e in EXERCISES], n=4, cutoff=0.6)
    if same:
        allowed = ", ".join(same)
        near = f" (did you mean {close[0]}?)" if close else ""
        raise CourseError("exercise", f"no exercise {_echo(ex_id)} in chapter {chapter}{near}", allowed)
    chapters = sorted({e.chapter for e in EXERCISES})
    near = f"; did you mean {', '.join(close)}?" if close else ""
    raise CourseError("exercise", f"no exercise {_echo(ex_id)}{near}",
                      f"ids '<chapter>.<name>' of chapters {', '.join(chapters)}")


def _as_scenario(x):
    """A Scenario from a Scenario, a scenario name or a path (None: the article's)."""
    from .scenario import as_scenario
    return as_scenario(x, "scenario", default="article")


_CACHE: dict = {}          # (exercise id, id(scenario)) -> (scenario, answer); the scenario is kept alive
_ARTICLE: list = []


def _scenario_or_article(scenario):
    if scenario is not None:
        return _as_scenario(scenario)
    if not _ARTICLE:
        _ARTICLE.append(_as_scenario(None))
    return _ARTICLE[0]


def _expected(e: Exercise, sc) -> Any:
    key = (e.id, id(sc))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is sc:
        return hit[1]
    value = e.answer(sc)
    if len(_CACHE) >= 256:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (sc, value)
    return value


def expected(ex_id: str, scenario=None) -> Any:
    """The answer the model computes for an exercise (what :func:`check` compares with)."""
    e = _find(ex_id)
    return _expected(e, _scenario_or_article(scenario))


def check(ex_id: str, answer: Any, scenario=None) -> Result:
    """Compare a prediction with what the model computes; print one line.

    ``scenario`` is the one the notebook explores (a Scenario, a name or a
    path); without it, the article's.  A "what if" exercise changes that
    scenario as its prompt says.

    Taught in: the exercises of every chapter.
    """
    from .i18n import exercise_text as _t, tr, tr_text
    e = _find(ex_id)
    sc = _scenario_or_article(scenario)
    if answer is None or answer is ...:
        return Result(e.id, None, tr("… {id}: not answered yet. {prompt} Replace None with your prediction.",
                                     id=e.id, prompt=_t(e, "prompt")))
    try:
        text = _as_text(answer, e)
        if not text:
            raise _Unreadable("the answer is empty")
        got = _canon(e, text)
    except _Unreadable as u:
        return Result(e.id, False, tr("✘ {id}: not yet ({answer}: {problem}). Hint: {hint}", id=e.id,
                                      answer=_echo(answer), problem=tr_text(str(u)), hint=_t(e, "hint")))
    want = _expected(e, sc)
    if _same(e, got, _canon(e, str(want))):
        why = f" {_t(e, 'why')}" if e.why else ""
        return Result(e.id, True, tr("✔ {id}: correct, {want}.{why}", id=e.id, want=want, why=why))
    return Result(e.id, False, tr("✘ {id}: not yet ({answer}). Hint: {hint}", id=e.id, answer=_echo(answer),
                                  hint=_t(e, "hint")))


def markdown(scenario=None) -> str:
    """Every exercise as a markdown list: id, prompt, where it belongs, the article's answer.

    Stored as ``docs/exercises.md`` (a test keeps it up to date).
    """
    out = ["# Exercises", "",
           "Generated from `coursekit/exercises.py` by `coursekit.exercises.markdown()`; do not edit by hand.",
           "Each prompt goes in its chapter *before* the section named in \"before\", so the learner predicts",
           "before the answer is on the screen.  Answers are computed by the model for the article's scenario;",
           "\"what if\" exercises change that scenario as stated.", ""]
    for ch in sorted({e.chapter for e in EXERCISES}):
        out += [f"## Chapter {ch}", ""]
        for e in exercises(ch):
            out.append(f"- **{e.id}** ({e.kind}{'; what if: ' + e.whatif if e.whatif else ''}): {e.prompt}")
            out.append(f"  - before: `{e.before}`")
            out.append(f"  - answer (article): `{expected(e.id, scenario)}`" + (f" -- {e.why}" if e.why else ""))
        out.append("")
    return "\n".join(out)
