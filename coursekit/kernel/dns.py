"""Traffic case 6 in the engine: the resolver's datagrams, each walked like any packet.

Every query of :func:`coursekit.dns.plan` leaves busybox's namespace from a
UDP socket connected to the kube-dns cluster IP; the engine routes it as it
routes a TCP segment (br_netfilter, kube-proxy's UDP chains, conntrack, the
masquerade, VXLAN); CoreDNS's unconnected socket on :53 takes it and its
answer comes back through the same conntrack entries (un-DNAT, un-SNAT).

Times: the exchanges run back to back (an answer, the resolver's reaction
``timing.processUs``, the next query), and the last answer reaches busybox
``processUs`` before wget's SYN leaves -- so the whole resolution sits just
before the TCP conversation on the walk's clock.

Observations of the datagrams carry ``segment=-1`` and ``flow="dns"``: they
are in every capture, but not segments of the TCP conversation.

Taught in: 08-network-model (traffic case 6).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import dns
from ..datapath import Decision, Observation
from ..netfilter import CONNTRACK_PENDING, Tuple5
from .frame import udp_frame

__all__ = ["DnsExchange", "resolve"]

_ZERO = "00:00:00:00:00:00"
#: nf_conntrack_udp_timeout: an entry's timeout until its flow has been a "stream"
UDP_TIMEOUT = 30
#: nf_conntrack_udp_timeout_stream: once a packet crosses an entry that has seen a reply (Linux 3.10's
#: udp_packet; later kernels extend only after the flow is 2 s old)
UDP_TIMEOUT_STREAM = 180


@dataclass(frozen=True)
class DnsExchange:
    """One query and its answer, on the walk's clock."""
    query: dns.Query
    answer: dns.Answer
    query_us: int                      # the query leaves busybox's socket
    answer_us: int | None              # the answer leaves CoreDNS's socket (None: the query was dropped)
    done_us: int | None                # the answer reaches busybox's socket
    query_tuple: Tuple5                # as busybox sends it
    served_tuple: Tuple5 | None        # as CoreDNS receives it (after DNAT and masquerade)
    conntrack: dict                    # node -> coursekit.netfilter.Conntrack of this datagram's flow
    nat_traces: dict                   # (node, hook) -> Verdict (the query's rules)


def _ct_line(ct, replied: bool, stream: bool = False) -> str:
    """``conntrack -L`` (conntrack-tools 1.4) for a UDP entry.

    The first answer clears ``[UNREPLIED]`` but does not make the entry
    ``[ASSURED]`` (udp_packet runs before nf_conntrack_in sets IPS_SEEN_REPLY,
    so the answer refreshes the 30 s timeout; only a later packet would
    extend it to the stream timeout).
    """
    o, r = ct.orig, ct.reply
    return (f"udp      17 {UDP_TIMEOUT_STREAM if stream else UDP_TIMEOUT} src={o.src} dst={o.dst} sport={o.sport} "
            f"dport={o.dport} " + ("" if replied else "[UNREPLIED] ")
            + f"src={r.src} dst={r.dst} sport={r.sport} dport={r.dport} " + ("[ASSURED] " if stream else "")
            + "mark=0 use=1")


def _entries(net, sport: int) -> dict:
    """Each node's conntrack entry of the query from ``sport`` (a port used again reuses its entry)."""
    out = {}
    for n, ns in net.nss.items():
        if ns.ct is not None:
            for e in ns.ct.entries:
                if e.orig.proto == "udp" and e.orig.sport == sport and e.orig.dport == dns.DNS_PORT:
                    out[n] = e
    return out


def _fill(obs: list, cts: dict, replied, stream) -> list:
    """(time, Observation) with each pending conntrack decision given this flow's ``conntrack -L`` line
    (``replied(entry)``: has the entry seen an answer? ``stream(entry)``: and now a packet after it?)."""
    out = []
    for t, o in obs:
        if any(d.entry == CONNTRACK_PENDING for d in o.decisions) and o.node in cts:
            e = cts[o.node]
            line = _ct_line(e, replied(e), stream(e))
            o = replace(o, decisions=tuple(replace(d, entry=line) if d.entry == CONNTRACK_PENDING else d
                                           for d in o.decisions))
        out.append((t, o))
    return out


def resolve(sc, net, end_us: int):
    """Walk every DNS exchange through ``net``; ``(observations, drops, exchanges)`` on the walk's clock.

    ``end_us``: when the TCP conversation's SYN leaves (the resolution ends
    ``timing.processUs`` before it).
    """
    from .engine import Drop
    d = sc.dns
    client, server = sc.client, sc.pod(d.server)
    cns, sns = net.nss[client.name], net.nss[server.name]
    net.udp_listen.setdefault(server.name, set()).add((server.ip, dns.DNS_PORT))
    proc = sc.timing.process_us
    rel_obs: list = []                  # (relative time, Observation without time)
    rel_drops: list = []
    rel_ex: list = []
    t = 0
    answered: set = set()               # id() of the entries an answer has crossed
    for q, a in dns.plan(sc):
        qt = Tuple5("udp", client.ip, q.sport, d.cluster_ip, dns.DNS_PORT)
        net.conns.setdefault(client.name, {})[(qt.src, qt.sport, qt.dst, qt.dport)] = qt
        payload = dns.encode_query(q)
        frame = udp_frame(_ZERO, _ZERO, qt, cns.default_ttl, q.ip_id, payload)
        dec = [Decision("socket", "udp", f"{q.qid}+ {q.type_name}? {q.qname}. ({len(payload)} bytes)",
                        f"{client.name}'s resolver (uClibc-ng __dns_lookup) asks {d.cluster_ip}:53 from a new "
                        f"socket: UDP source port {q.sport} (the kernel's pick, an input), query id {q.qid} "
                        f"(uClibc-ng's counter: the process's query number + 1)")]
        rec = net.send(client.name, frame, dec)
        cts = _entries(net, q.sport)
        traces = dict(net.nat_traces)
        q_obs = _observations(rec, "query")
        # a port used again (within the entry's timeout) reuses the entry: the query after its answer
        # makes it a stream
        was = {id(e) for e in cts.values()} & answered
        rel_obs += [(t + rt, o) for rt, o in _fill(q_obs, cts, lambda e: id(e) in answered,
                                                   lambda e: id(e) in was)]
        rel_obs += [(t + rt, o) for rt, o in _arp(net, rec)]
        got = net.udp_received.get(server.name, [])
        if rec.delivered is None or not got:
            rel_drops += [(t, r) for r in rec.drops]
            rel_ex.append((t, None, None, q, a, qt, None, cts, traces))
            break
        served = got.pop()
        t_answer = t + rec.obs[rec.delivered][3] + proc
        rt5 = served.inverted()
        payload = dns.encode_answer(q, a)
        frame = udp_frame(_ZERO, _ZERO, rt5, sns.default_ttl, 0, payload)
        flags = "*-" + ("" if a.rcode == dns.NOERROR else f" {dns.RCODE_NAMES[a.rcode]}")
        dec = [Decision("socket", "udp", f"{q.qid} {flags} {len(a.answers)}/{len(a.authority)}/0 "
                        f"({len(payload)} bytes)",
                        f"CoreDNS (kubernetes plugin, zone {d.domain}): {a.why}; authoritative (AA), recursion "
                        f"not offered (RA clear); sent from its unconnected socket: DF set, and an IP id from the "
                        f"kernel's per-destination generator (random start; 0 here is a stand-in)")]
        rec2 = net.send(server.name, frame, dec)
        a_obs = _observations(rec2, "answer")
        answered.update(id(e) for e in cts.values())
        rel_obs += [(t_answer + rt, o) for rt, o in _fill(a_obs, cts, lambda e: True, lambda e: id(e) in was)]
        rel_obs += [(t_answer + rt, o) for rt, o in _arp(net, rec2)]
        if rec2.delivered is None:
            rel_drops += [(t_answer, r) for r in rec2.drops]
            rel_ex.append((t, t_answer, None, q, a, qt, served, cts, traces))
            break
        done = t_answer + rec2.obs[rec2.delivered][3]
        rel_ex.append((t, t_answer, done, q, a, qt, served, cts, traces))
        t = done + proc
    # the nat/filter "first packet" views and conntrack's main entry stay the HTTP connection's
    net.nat_traces.clear()
    net.filter_traces.clear()
    net.conntrack.clear()
    end = t if not rel_drops else t + proc
    shift = end_us - end
    obs = [replace(o, time_us=shift + rt) for rt, o in rel_obs]
    drops = [Drop(n, i, r, -1, "dns", shift + rt, dec) for rt, (n, i, r, dec) in rel_drops]
    ex = [DnsExchange(q, a, shift + t0, None if ta is None else shift + ta, None if td is None else shift + td,
                      qt, served, cts, traces) for t0, ta, td, q, a, qt, served, cts, traces in rel_ex]
    return obs, drops, ex


def _observations(rec, what: str) -> list:
    """The recording's sightings as (relative time, Observation); hop 0 is the sender's own device."""
    return [(t, Observation(node=ns, iface=dev, direction=d, time_us=0, frame=frame, segment=-1, flow="dns",
                            hop=h, decisions=dec))
            for h, (ns, dev, d, t, frame, dec) in enumerate(rec.obs)]


def _arp(net, rec) -> list:
    """ARP a datagram waited for (cold caches), timed as the engine times it for segments."""
    out = []
    for arp_rec, rtt, anchor, what in net.arp_done:
        base = rec.obs[anchor][3] - rtt - 1 if anchor < len(rec.obs) else 0
        for ns, dev, d, t, frame, _dec in arp_rec.obs:
            entry, effect = what[frame[21]]
            out.append((base + t, Observation(ns, dev, d, 0, frame, -1, "arp", -1,
                                              (Decision("neigh", f"{dev} neighbours", entry, effect),))))
    net.arp_done.clear()
    return out
