"""DNS first: how busybox's ``wget`` finds a Service's cluster IP, and what the cluster DNS answers.

Traffic case 6.  Before ``wget http://nginx.default.svc.cluster.local:4432/``
can connect, the name must become an address.  Three programs decide what
crosses the wire; each is modelled from its source::

    kubelet (1.14, dnsPolicy ClusterFirst)   writes the pod's /etc/resolv.conf:
        nameserver <kube-dns cluster IP>
        search <ns>.svc.<domain> svc.<domain> <domain>
        options ndots:5
    busybox wget -> getaddrinfo(host, AF_UNSPEC, SOCK_STREAM, no flags)   (libbb/xconnect.c str2sockaddr)
        the busybox image (amd64 "latest" = uclibc variant, docker-library/official-images
        library/busybox) links uClibc-ng; its gaih_inet asks AF_INET6 first (no /etc/gai.conf:
        __gai_precedence 1), then AF_INET -- one gethostbyname2_r each, i.e. an AAAA query, then an A query
    uClibc-ng __dns_lookup (libc/inet/resolv.c, 1.0.31)   one query per candidate name:
        a name with a dot is tried as it is first, then with each search domain (ndots is not read);
        a name without a dot gets the search domains first; a trailing dot: only the name itself.
        The next candidate only after NXDOMAIN/SERVFAIL.  Each query: id = last_id + 1 (a static
        counter that starts at 1, so a fresh process asks 2, 3, ...), RD set, one question, no EDNS,
        from a new socket connect()ed to the nameserver (the kernel picks the UDP source port)
    CoreDNS 1.3.1 (Kubernetes 1.14's; the kubernetes plugin, zone <domain>; no ``ttl`` line in the
        Corefile: defaultTTL 5 s)   answers with AA set and RA clear (msg.SetReply, Authoritative;
        BackendError for "no data"/NXDOMAIN): <svc>.<ns>.svc.<domain> A -> the cluster IP; AAAA of it
        -> no data (NOERROR, the zone's SOA in authority: plugin.SOA, ns.dns.<zone>,
        hostmaster.<zone>, 7200 1800 86400 <ttl>); any other name in the zone -> NXDOMAIN with that
        SOA.  Names uncompressed (request.Scrub turns compression off while the reply fits 512
        bytes).  ``cache 30`` clamps the TTLs it passes on to [5, 30] s.

Sources read: busybox 1_31_0 libbb/xconnect.c, networking/wget.c; uClibc-ng e94e6f4 (July 2019)
libc/inet/resolv.c (__dns_lookup), getaddrinfo.c (gaih_inet); docker-library/official-images
library/busybox; coredns v1.3.1 plugin/kubernetes/{handler,kubernetes}.go, plugin/backend_lookup.go,
request/request.go, plugin/cache/cache.go.  kubelet's resolv.conf (search list, ndots:5) is as
Kubernetes documents it for ClusterFirst; its 1.14 source was not read.

Values the kernel or the cluster chose (each query's UDP source port, the
socket's first IP id, the SOA serial) are inputs of the scenario's ``dns:``
section and labelled observed/assumed there; everything else is computed.

Taught in: 08-network-model (traffic case 6, "DNS first").
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from .errors import CourseError

__all__ = ["DnsConfig", "Query", "Answer", "resolv_conf", "search_list", "candidates", "plan", "path",
           "encode_query", "encode_answer", "decode_message", "answer", "T_A", "T_AAAA", "T_SOA", "NOERROR",
           "NXDOMAIN"]

T_A, T_SOA, T_AAAA = 1, 6, 28
C_IN = 1
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3
TYPE_NAMES = {T_A: "A", T_AAAA: "AAAA", T_SOA: "SOA"}
RCODE_NAMES = {NOERROR: "NOERROR", SERVFAIL: "SERVFAIL", NXDOMAIN: "NXDOMAIN"}
#: kubelet's ClusterFirst resolv.conf option (pkg/kubelet/network/dns: ndotsDNSOption)
NDOTS = 5
#: the DNS port (NAMESERVER_PORT)
DNS_PORT = 53
#: Kubernetes 1.14's Corefile has ``cache 30``: the cache plugin rewrites every TTL of a reply it passes on to
#: the message's lowest TTL clamped to [5 s, 30 s] (plugin/cache computeTTL, dnsutil.MinimalDefaultTTL)
CACHE_MIN_TTL, CACHE_MAX_TTL = 5, 30


def wire_ttl(ttl: int) -> int:
    """The TTL busybox sees: the kubernetes plugin's, through the cache plugin's clamp."""
    return min(max(ttl, CACHE_MIN_TTL), CACHE_MAX_TTL)


@dataclass(frozen=True)
class DnsConfig:
    """The scenario's ``dns:`` section, validated."""
    name: str                          # the host the client resolves (wget's URL host)
    domain: str                        # kubelet --cluster-domain
    cluster_ip: ipaddress.IPv4Address  # kubelet --cluster-dns: the kube-dns Service's cluster IP
    server: str                        # the CoreDNS pod's name (namespace kube-system)
    source_ports: tuple[int, ...]      # the UDP port the kernel gave each query's socket (inputs)
    ip_ids: tuple[int, ...]            # each query socket's first IP id (inputs)
    ttl: int                           # the kubernetes plugin's TTL (default 5)
    soa_serial: int                    # the zone's SOA serial (CoreDNS: time of the last API change)
    start_us: int | None               # when the first query leaves the client (None: before the SYN)


@dataclass(frozen=True)
class Query:
    """One DNS question the resolver sends."""
    index: int
    qid: int
    qname: str                          # without the trailing dot
    qtype: int
    sport: int
    ip_id: int

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.qtype, f"Type{self.qtype}")


@dataclass(frozen=True)
class Answer:
    """What CoreDNS answers to one query."""
    rcode: int
    answers: tuple                      # ((name, type, ttl, rdata bytes), ...)
    authority: tuple
    why: str


def search_list(namespace: str, domain: str) -> list[str]:
    """kubelet's search path for a ClusterFirst pod: ``<ns>.svc.<domain> svc.<domain> <domain>``."""
    return [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]


def resolv_conf(sc, pod=None) -> str:
    """The pod's ``/etc/resolv.conf`` as kubelet 1.14 writes it (ClusterFirst; the node's own search list empty).

    Taught in: 08-network-model.
    """
    sc, d = _need_dns(sc)
    pod = pod or sc.client
    ns = getattr(pod, "namespace", "default")
    return (f"nameserver {d.cluster_ip}\nsearch {' '.join(search_list(ns, d.domain))}\n"
            f"options ndots:{NDOTS}\n")


def candidates(name: str, search: list[str]) -> list[str]:
    """The names uClibc-ng's ``__dns_lookup`` tries, in order (the next one only after NXDOMAIN).

    With a dot: the name first, then each search domain; without: the search
    domains first, the name last; ending with a dot: the name only.
    """
    if name.endswith("."):
        return [name[:-1]]
    with_search = [f"{name}.{s}" for s in search]
    return [name] + with_search if "." in name else with_search + [name]


def answer(sc, qname: str, qtype: int) -> Answer:
    """CoreDNS's kubernetes plugin (zone ``dns.domain``): the answer to one question."""
    sc, d = _need_dns(sc)
    zone = d.domain
    name = qname.rstrip(".").lower()
    soa = _soa(d)
    for svc in sc.services:
        if name == f"{svc.name}.{svc.namespace}.svc.{zone}":
            if qtype == T_A:
                return Answer(NOERROR, ((qname, T_A, wire_ttl(d.ttl), svc.cluster_ip.packed),), (),
                              f"Service {svc.namespace}/{svc.name}: A {svc.cluster_ip}, TTL {wire_ttl(d.ttl)}")
            return Answer(NOERROR, (), (soa,), f"Service {svc.namespace}/{svc.name} has no "
                          f"{TYPE_NAMES.get(qtype, qtype)} record: no data, the zone's SOA in authority")
    return Answer(NXDOMAIN, (), (soa,), f"no Service named {qname}: NXDOMAIN, the zone's SOA in authority")


def _soa(d: DnsConfig) -> tuple:
    # plugin/backend_lookup.go SOA(): ns.dns.<zone>, hostmaster.<zone>, refresh 7200, retry 1800,
    # expire 86400, minimum = the plugin's TTL; the record's own TTL is min(300, that TTL)
    rdata = (_name_bytes(f"ns.dns.{d.domain}") + _name_bytes(f"hostmaster.{d.domain}")
             + struct.pack("!IIIII", d.soa_serial, 7200, 1800, 86400, d.ttl))
    return (d.domain, T_SOA, wire_ttl(min(300, d.ttl)), rdata)


def plan(sc, check_ports: bool = True) -> list[tuple[Query, Answer]]:
    """Every query busybox sends and the answer each gets, in order.

    getaddrinfo asks AF_INET6 then AF_INET; each family walks the candidate
    names until one is not NXDOMAIN.  ``check_ports``: refuse a scenario whose
    ``dns.sourcePorts`` does not give one port per query.

    Taught in: 08-network-model.
    """
    sc, d = _need_dns(sc)
    cands = candidates(d.name, search_list(getattr(sc.client, "namespace", "default"), d.domain))
    out: list[tuple[Query, Answer]] = []
    qid = 1                                             # uClibc-ng: static uint16_t last_id = 1
    for qtype in (T_AAAA, T_A):
        for name in cands:
            if name.lower() != d.domain and not name.lower().endswith("." + d.domain):
                raise CourseError("dns.name", f"the resolver would ask for {name!r}, outside {d.domain}: CoreDNS "
                                  "forwards that upstream, which is not modelled",
                                  f"a name that resolves inside {d.domain}, e.g. nginx or "
                                  f"nginx.default.svc.{d.domain}")
            qid = (qid + 1) & 0xFFFF
            i = len(out)
            q = Query(i, qid, name, qtype, d.source_ports[i] if i < len(d.source_ports) else 0,
                      d.ip_ids[i] if i < len(d.ip_ids) else 0)
            a = answer(sc, name, qtype)
            out.append((q, a))
            if a.rcode not in (NXDOMAIN, SERVFAIL):
                break
    if check_ports and len(d.source_ports) != len(out):
        raise CourseError("dns.sourcePorts", f"{len(d.source_ports)} ports for {len(out)} queries",
                          f"exactly {len(out)} ports, one per query")
    return out


def resolved(sc) -> ipaddress.IPv4Address | None:
    """The IPv4 address getaddrinfo returns (the A answer), or None."""
    for q, a in plan(sc, check_ports=False):
        for _n, t, _ttl, rdata in a.answers:
            if t == T_A:
                return ipaddress.IPv4Address(rdata)
    return None


def path(walk, exchange: int = 0, leg: str = "query") -> list:
    """The observations of one DNS datagram, hop by hop: ``leg`` ``"query"`` or ``"answer"`` of
    ``walk.dns[exchange]``.

    >>> [(o.node, o.iface) for o in ck.dns.path(w, 1, "answer")]    # doctest: +SKIP

    Taught in: 08-network-model.
    """
    ex = getattr(walk, "dns", None)
    if not ex:
        raise CourseError("walk", "this walk resolved no name", "ck.walk of a scenario with a dns: section")
    if isinstance(exchange, bool) or not isinstance(exchange, int) or not 0 <= exchange < len(ex):
        raise CourseError("exchange", f"{exchange!r} is not an exchange of this walk", f"0..{len(ex) - 1}")
    if leg not in ("query", "answer"):
        raise CourseError("leg", f"{leg!r} is not a leg", "query, answer")
    e = ex[exchange]
    lo, hi = (e.query_us, e.answer_us) if leg == "query" else (e.answer_us, e.done_us)
    if lo is None:
        return []
    hi = hi if hi is not None else lo + 10**9
    inside = (lambda t: lo <= t < hi) if leg == "query" else (lambda t: lo <= t <= hi)
    return sorted((o for o in walk.observations if o.flow == "dns" and inside(o.time_us)), key=lambda o: o.hop)


# --- wire format (RFC 1035) ---------------------------------------------------

def _name_bytes(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        b = label.encode("ascii")
        out += bytes([len(b)]) + b
    return out + b"\0"


def encode_query(q: Query) -> bytes:
    """uClibc-ng's query: id, flags RD (0x0100), QDCOUNT 1, one question, no EDNS."""
    return struct.pack("!HHHHHH", q.qid, 0x0100, 1, 0, 0, 0) + _name_bytes(q.qname) + struct.pack("!HH", q.qtype, C_IN)


def encode_answer(q: Query, a: Answer) -> bytes:
    """CoreDNS's reply: QR, AA, RD copied, RA clear; the question echoed; names written uncompressed."""
    flags = 0x8000 | 0x0400 | 0x0100 | a.rcode
    out = struct.pack("!HHHHHH", q.qid, flags, 1, len(a.answers), len(a.authority), 0)
    out += _name_bytes(q.qname) + struct.pack("!HH", q.qtype, C_IN)
    for name, typ, ttl, rdata in a.answers + a.authority:
        out += _name_bytes(name) + struct.pack("!HHIH", typ, C_IN, ttl, len(rdata)) + rdata
    return out


def _read_name(msg: bytes, off: int, hops: int = 0) -> tuple[str, int]:
    """A name at ``off`` (labels, or a compression pointer); (name without the dot, offset after it)."""
    labels = []
    while True:
        if off >= len(msg):
            raise ValueError("name runs past the message")
        n = msg[off]
        if n & 0xC0 == 0xC0:                     # RFC 1035 4.1.4: a pointer ends the name
            if hops > 16 or off + 1 >= len(msg):
                raise ValueError("bad compression pointer")
            rest, _ = _read_name(msg, ((n & 0x3F) << 8) | msg[off + 1], hops + 1)
            return ".".join(labels + ([rest] if rest else [])), off + 2
        if n == 0:
            return ".".join(labels), off + 1
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n


def decode_message(msg: bytes) -> dict:
    """An RFC 1035 message read back: id, flags, rcode, the question, and the answer records.

    ``{"id", "qr", "flags", "rcode", "qname", "qtype", "answers": [(name, type, ttl, rdata)]}``;
    ValueError for bytes that are no DNS message.  Used by the live lab's resolver
    and server (07-live-lab) to read what came over the wire.
    """
    msg = bytes(msg)
    if len(msg) < 12:
        raise ValueError("shorter than a DNS header")
    qid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    off, qname, qtype = 12, "", 0
    for _ in range(qd):
        qname, off = _read_name(msg, off)
        qtype, _cls = struct.unpack("!HH", msg[off:off + 4])
        off += 4
    answers = []
    for _ in range(an):
        name, off = _read_name(msg, off)
        typ, _cls, ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        answers.append((name, typ, ttl, msg[off:off + rdlen]))
        off += rdlen
    return {"id": qid, "qr": bool(flags & 0x8000), "flags": flags, "rcode": flags & 0xF, "qname": qname,
            "qtype": qtype, "answers": answers}


def _need_dns(sc):
    from .scenario import as_scenario
    sc = as_scenario(sc)
    d = getattr(sc, "dns", None)
    if d is None:
        raise CourseError("dns", "this scenario resolves no name", "a scenario with a dns: section (e.g. 'dns')")
    return sc, d
