"""Exercises: predict, then check against the model.

Each exercise asks for something a learner can observe (an address, a
port, a TTL, a byte count, a rule).  Its expected answer is *computed* from
the scenario by the same model that draws the captures -- never stored --
so an exercise stays right when the scenario changes.  In a chapter::

    answer = None            # your prediction, e.g. "10.167.226.39"
    ck.check("01.outer-dst", answer)

:func:`check` returns a :class:`Result` that prints one line: correct, not
yet (with a hint), or not answered.  Solutions live in ``notebooks/solutions/``.

Taught in: the exercises at the end of every chapter.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Callable

from .errors import CourseError

__all__ = ["Exercise", "Result", "EXERCISES", "exercises", "check", "expected"]


@dataclass(frozen=True)
class Exercise:
    id: str
    question: str
    answer: Callable[[Any], Any]      # scenario -> the expected answer
    kind: str                          # "ip", "int", "text", "endpoint"
    hint: str


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


def _request_at(sc, node, iface, seg=0, w=None):
    return next(o for o in (w or _walk(sc)).at(node, iface) if o.segment == seg)


def _request_inner(sc, node, iface, layer: str, field: str):
    """A field of the pod's packet (inside any VXLAN) as the request crosses ``node``/``iface``."""
    return getattr(_layers(_request_at(sc, node, iface).frame)[1][layer], field)


def _outer_dst(sc):
    from scapy.layers.inet import IP
    n = sc.node(sc.client.node)
    return _layers(_request_at(sc, n.name, n.nic.name).frame)[0][IP].dst


def _overhead(sc):
    sn, w = sc.node(sc.server.node), _walk(sc)
    enc = _request_at(sc, sn.name, sn.nic.name, w=w).frame
    plain = _request_at(sc, sn.name, sc.flannel.device, w=w).frame
    return len(enc) - len(plain)


def _server_mss(sc):
    from scapy.layers.inet import TCP
    o = next(o for o in _walk(sc).at(sc.server.name, "eth0") if o.flow == "reply")
    return dict(_layers(o.frame)[1][TCP].options)["MSS"]


def _tcp_filter_count(sc):
    from .bpf import apply_filter
    from .capture import capture
    sn = sc.node(sc.server.node)
    return len(apply_filter(capture(sc, sn.name, sn.nic.name), "tcp"))


def _inner_src(sc, node, iface):
    return _request_inner(sc, node, iface, "IP", "src")


def _masq_hook(sc):
    w = _walk(sc)
    for o in w.path(0):
        for d in o.decisions:
            if d.stage == "nat" and "MASQUERADE source" in d.effect:
                return d.table.split()[-1]
    return "none"


def _udp_name(sc):
    from .tcpdump import render
    from .capture import capture
    n = sc.node(sc.client.node)
    text = render(capture(sc, n.name, n.nic.name)[:1], n=2)
    return text.split(": ", 1)[1].split(",", 1)[0]


def _ttl_at(sc, node, iface):
    return _request_inner(sc, node, iface, "IP", "ttl")


def _dst_mac_at(sc, node, iface):
    return _request_inner(sc, node, iface, "Ether", "dst")


def _svc_chain(sc):
    from .kubeproxy import service_chain
    svc = sc.service(sc.request.service)
    return service_chain(svc.namespace, svc.name, sc.service_port.name, sc.service_port.protocol)


def _reply_src_in_client(sc):
    from scapy.layers.inet import IP, TCP
    o = next(o for o in _walk(sc).at(sc.client.name, "eth0") if o.flow == "reply")
    inner = _layers(o.frame)[1]
    return f"{inner[IP].src}:{inner[TCP].sport}"


def _first_probability(sc):
    from .netfilter import nat_table
    rules, _ = nat_table(sc, sc.client.node)
    for r in rules:
        line = r.save()
        if "--probability" in line and _svc_chain(sc) in line.split(" -j ")[0]:
            return line.split("--probability ")[1].split()[0]
    return "none"


def _ttl_drops(sc):
    from scapy.layers.inet import IP
    ttls = [_layers(o.frame)[1][IP].ttl for o in _walk(sc).path(0)]
    return sum(1 for a, b in zip(ttls, ttls[1:]) if b < a)


def _rewrites(sc):
    from scapy.layers.inet import IP, TCP
    path = _walk(sc).path(0)
    ends = []
    for o in path:
        p = _layers(o.frame)[1]
        ends.append((p[IP].src, p[TCP].sport, p[IP].dst, p[TCP].dport))
    return sum(1 for a, b in zip(ends, ends[1:]) for i in (0, 2) if (a[i], a[i + 1]) != (b[i], b[i + 1]))


def _variant(**knobs):
    def wrap(f):
        def run(sc):
            from .explore import apply
            return f(apply(sc, knobs))
        return run
    return wrap


EXERCISES = [
    Exercise("00.service", "Which IP:port does busybox connect to?",
             lambda sc: f"{sc.service(sc.request.service).cluster_ip}:{sc.request.port}", "endpoint",
             "busybox calls the Service, not a pod: look at the Service manifest."),
    Exercise("00.backend", "Which pod IP:port finally answers?",
             lambda sc: f"{sc.server.ip}:{sc.service_port.target_port}", "endpoint",
             "The Service's targetPort on the pod that its selector picks."),
    Exercise("01.outer-dst", "On enp4s0, what is the outer destination IP of the request?",
             _outer_dst, "ip", "The VXLAN packet goes to the node that hosts the pod, not to the pod."),
    Exercise("01.overhead", "How many bytes does the encapsulation add to each frame?",
             _overhead, "int", "Count outer Ethernet, IP, UDP and VXLAN headers."),
    Exercise("01.mss", "Which MSS does nginx announce in its SYN-ACK?",
             _server_mss, "int", "MSS = the pod's MTU minus 40 bytes of IP and TCP headers."),
    Exercise("01.tcp-filter", "How many packets does `tcpdump -i enp4s0 tcp` show on meizu?",
             _tcp_filter_count, "int", "BPF looks at the outer headers: what protocol is on the wire?"),
    Exercise("02.inner-src", "On meizu's flannel.1, what source IP does the request carry?",
             lambda sc: _inner_src(sc, sc.server.node, sc.flannel.device), "ip",
             "Something on xiaomi rewrote the source before encapsulation."),
    Exercise("02.masq-hook", "In which nat chain was the source rewritten (PREROUTING or POSTROUTING)?",
             _masq_hook, "text", "Source NAT happens after the routing decision, when the egress interface is known."),
    Exercise("02.vxlan-name", "With flannel's port set to 4789, what does tcpdump call the UDP payload?",
             _variant(vxlan_port=4789)(_udp_name), "text", "tcpdump decodes by port: 4789 is IANA's VXLAN port."),
    Exercise("03.ttl", "What is the request's TTL on meizu's docker0?",
             lambda sc: _ttl_at(sc, sc.server.node, "docker0"), "int",
             "The pod sends 64; every routed hop (not a bridge) takes one."),
    Exercise("03.dst-mac", "On meizu's docker0, what is the request's destination MAC?",
             lambda sc: _dst_mac_at(sc, sc.server.node, "docker0"), "mac",
             "Docker derives a container's MAC from its IP: 02:42 then the four address bytes."),
    Exercise("04.nginx-sees", "Which client IP does nginx see (and log)?",
             lambda sc: _inner_src(sc, sc.server.name, "eth0"), "ip",
             "Nothing on meizu rewrites the source; what left xiaomi arrives."),
    Exercise("04.nginx-sees-nomasq", "With Docker's masquerade switched off, which client IP does nginx see?",
             _variant(masquerade=False)(lambda sc: _inner_src(sc, sc.server.name, "eth0")), "ip",
             "Without MASQUERADE, no rule rewrites the source."),
    Exercise("04.ttl-pod", "What TTL does the request have when it reaches nginx's eth0?",
             lambda sc: _ttl_at(sc, sc.server.name, "eth0"), "int", "Count the routers between the two pods."),
    Exercise("05.svc-chain", "What is the name of the Service's KUBE-SVC chain?",
             _svc_chain, "text", "sha256 of 'namespace/name:port-name' + 'tcp', base32, first 16 characters."),
    Exercise("05.reply-src", "Which IP:port does busybox see as the source of the reply?",
             _reply_src_in_client, "endpoint", "conntrack reverses the DNAT on the way back."),
    Exercise("05.probability", "With 3 replicas, what --probability does the first KUBE-SEP jump carry?",
             _variant(replicas=3)(_first_probability), "text",
             "1/3, printed as iptables-save prints the kernel's fixed-point value."),
    Exercise("06.ttl-drops", "At how many hops along the request's path does the TTL drop?",
             _ttl_drops, "int", "Bridges and VXLAN do not decrement the inner TTL; routing does."),
    Exercise("06.rewrites", "How many times is an address:port of the request rewritten on its way?",
             _rewrites, "int", "Count DNAT and MASQUERADE: each rewrites one end of the connection."),
]


def exercises(chapter: str | None = None) -> list[Exercise]:
    """All exercises, or those of one chapter ("01")."""
    return [e for e in EXERCISES if chapter is None or e.id.split(".")[0] == chapter]


def _find(ex_id: str) -> Exercise:
    for e in EXERCISES:
        if e.id == ex_id:
            return e
    raise CourseError("exercise", f"no exercise {ex_id!r}", ", ".join(e.id for e in EXERCISES))


def _norm(kind: str, value: Any) -> str:
    s = str(value).strip().strip("'\"")
    if kind == "ip":
        try:
            return str(ipaddress.IPv4Address(s))
        except ValueError:
            return s
    if kind == "int":
        try:
            return str(int(s.split()[0]))
        except (ValueError, IndexError):
            return s
    if kind == "mac":
        return s.lower().replace("-", ":")
    if kind == "endpoint":
        return s.replace(" ", "")
    return s.lower()


def expected(ex_id: str, scenario=None) -> Any:
    """The answer the model computes for an exercise (what :func:`check` compares with)."""
    from .scenario import load_scenario
    return _find(ex_id).answer(scenario if scenario is not None else load_scenario("article"))


def check(ex_id: str, answer: Any, scenario=None) -> Result:
    """Compare a prediction with what the model computes; print one line.

    Taught in: the exercises of every chapter.
    """
    e = _find(ex_id)
    if answer is None or answer is ...:
        return Result(e.id, None, f"… {e.id}: not answered yet. {e.question} Replace None with your prediction.")
    want = expected(ex_id, scenario)
    if _norm(e.kind, answer) == _norm(e.kind, want):
        return Result(e.id, True, f"✔ {e.id}: correct, {want}.")
    return Result(e.id, False, f"✘ {e.id}: not yet ({answer!r}). Hint: {e.hint}")
