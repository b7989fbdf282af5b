"""Traffic case 6, DNS first: busybox resolves the Service's name through kube-dns, then calls it.

The lesson, as facts a learner can check: the pod's resolv.conf; what
busybox's uClibc-ng resolver asks (AAAA, then A; ids 2 and 3; the name as
typed first -- ndots is not read); what CoreDNS answers (AA, no RA, TTL 5,
the SOA of cluster.local for "no AAAA"); the road of each datagram (the
same as the request's); every NAT and conntrack entry on the way; and the
HTTP request afterwards, by name.  The frames are dissected with scapy's
DNS layer, an independent reader of the wire format.
"""

import ipaddress

import pytest
from scapy.layers.dns import DNS
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import coursekit as ck
from coursekit import dns
from coursekit.errors import CourseError
from coursekit.kubeproxy import endpoint_chain, service_chain


@pytest.fixture(scope="module")
def sc():
    return ck.load_scenario("dns")


@pytest.fixture(scope="module")
def w(sc):
    return ck.walk(sc)


def legs(w, i):
    """The observations of exchange i: the query's, then the answer's (each in path order)."""
    return dns.path(w, i, "query"), dns.path(w, i, "answer")


def where(obs):
    return [(o.node, o.iface, o.direction) for o in obs]


def udp(o):
    p = Ether(o.frame)
    return f"{p[IP].src}:{p[UDP].sport} > {p[IP].dst}:{p[UDP].dport}"


# -- what the pod is configured with, and what its resolver does ------------------------------------

def test_resolv_conf_is_kubelets_cluster_first(sc):
    assert dns.resolv_conf(sc) == ("nameserver 10.254.0.2\n"
                                   "search default.svc.cluster.local svc.cluster.local cluster.local\n"
                                   "options ndots:5\n")


def test_uclibc_tries_a_dotted_name_as_it_is_first_and_ignores_ndots():
    search = dns.search_list("default", "cluster.local")
    # four dots < ndots:5, yet uClibc-ng's __dns_lookup asks the name itself first (glibc and musl would not)
    assert dns.candidates("nginx.default.svc.cluster.local", search)[0] == "nginx.default.svc.cluster.local"
    assert dns.candidates("nginx", search) == ["nginx.default.svc.cluster.local", "nginx.svc.cluster.local",
                                               "nginx.cluster.local", "nginx"]
    assert dns.candidates("nginx.default", search) == ["nginx.default", "nginx.default.default.svc.cluster.local",
                                                       "nginx.default.svc.cluster.local",
                                                       "nginx.default.cluster.local"]
    assert dns.candidates("nginx.default.svc.cluster.local.", search) == ["nginx.default.svc.cluster.local"]


def test_busybox_asks_aaaa_then_a_with_ids_2_and_3(sc):
    plan = dns.plan(sc)
    assert [(q.qid, q.type_name, q.qname) for q, _a in plan] == [
        (2, "AAAA", "nginx.default.svc.cluster.local"), (3, "A", "nginx.default.svc.cluster.local")]
    assert [q.sport for q, _ in plan] == list(sc.dns.source_ports)        # the kernel's picks: inputs


def test_coredns_answers(sc):
    (_q6, aaaa), (_q4, a) = dns.plan(sc)
    assert (aaaa.rcode, aaaa.answers, len(aaaa.authority)) == (dns.NOERROR, (), 1)     # no data: SOA only
    assert a.rcode == dns.NOERROR and a.answers == (("nginx.default.svc.cluster.local", dns.T_A, 5,
                                                     ipaddress.IPv4Address("10.254.40.119").packed),)
    nx = dns.answer(sc, "nginx.svc.cluster.local", dns.T_A)
    assert nx.rcode == dns.NXDOMAIN and nx.answers == () and nx.authority[0][1] == dns.T_SOA


def test_the_wire_format_reads_back_with_scapy(sc):
    (q6, aaaa), (q4, a) = dns.plan(sc)
    m = DNS(dns.encode_query(q4))
    assert (m.id, m.qr, m.rd, m.qdcount, m.arcount) == (3, 0, 1, 1, 0)        # RD set, no EDNS
    assert (m.qd[0].qname, m.qd[0].qtype, m.qd[0].qclass) == (b"nginx.default.svc.cluster.local.", 1, 1)
    r = DNS(dns.encode_answer(q4, a))
    assert (r.id, r.qr, r.aa, r.rd, r.ra, r.rcode) == (3, 1, 1, 1, 0, 0)     # authoritative, no recursion
    assert (r.an[0].rrname, r.an[0].ttl, r.an[0].rdata) == (b"nginx.default.svc.cluster.local.", 5, "10.254.40.119")
    n = DNS(dns.encode_answer(q6, aaaa))
    soa = n.ns[0]
    assert (n.ancount, n.nscount, soa.rrname, soa.ttl) == (0, 1, b"cluster.local.", 5)
    assert (soa.mname, soa.rname, soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum) == (
        b"ns.dns.cluster.local.", b"hostmaster.cluster.local.", 1566961200, 7200, 1800, 86400, 5)


# -- kube-proxy's UDP chains -------------------------------------------------------------------------

def test_kube_dns_chains_carry_the_names_every_cluster_has(sc):
    # the chain names seen in `iptables-save` on any cluster (they depend only on namespace/name:port + protocol)
    assert service_chain("kube-system", "kube-dns", "dns", "UDP") == "KUBE-SVC-TCOU7JCQXEZGVUNU"
    assert service_chain("kube-system", "kube-dns", "dns-tcp", "TCP") == "KUBE-SVC-ERIFXISQEP7F7OF4"
    assert service_chain("kube-system", "kube-dns", "metrics", "TCP") == "KUBE-SVC-JD5MR3NA4I4DYORP"
    text = ck.nat_save(sc, "xiaomi")
    sep = endpoint_chain("kube-system", "kube-dns", "dns", "UDP", "172.30.20.3:53")
    assert ('-A KUBE-SERVICES -d 10.254.0.2/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" '
            '-m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU') in text
    assert f"-A KUBE-SVC-TCOU7JCQXEZGVUNU -j {sep}" in text
    assert (f'-A {sep} -p udp -m comment --comment "kube-system/kube-dns:dns" -m udp -j DNAT '
            "--to-destination 172.30.20.3:53") in text


# -- the walk ------------------------------------------------------------------------------------------

ROAD = [("busybox", "eth0", "out"), ("xiaomi", "veth4c1a3e7", "in"), ("xiaomi", "docker0", "in"),
        ("xiaomi", "flannel.1", "out"), ("xiaomi", "enp4s0", "out"), ("meizu", "enp4s0", "in"),
        ("meizu", "flannel.1", "in"), ("meizu", "docker0", "out"), ("meizu", "veth2d8e61a", "out"),
        ("coredns", "eth0", "in")]


def test_each_query_takes_the_requests_road_and_each_answer_its_mirror(w):
    assert len(w.dns) == 2 and w.drops == []
    for i in range(2):
        q, a = legs(w, i)
        assert where(q) == ROAD
        assert where(a) == [(n, i_, "out" if d == "in" else "in") for n, i_, d in reversed(ROAD)]


def test_every_nat_of_a_query_and_its_answer(w):
    q, a = legs(w, 1)
    at = {(o.node, o.iface): o for o in q}
    assert udp(at["busybox", "eth0"]) == "172.30.83.9:51709 > 10.254.0.2:53"
    assert udp(at["xiaomi", "docker0"]) == "172.30.83.9:51709 > 172.30.20.3:53"       # DNAT (br_netfilter)
    assert udp(at["xiaomi", "flannel.1"]) == "172.30.83.0:51709 > 172.30.20.3:53"     # Docker's MASQUERADE
    assert udp(at["coredns", "eth0"]) == "172.30.83.0:51709 > 172.30.20.3:53"
    assert Ether(at["coredns", "eth0"].frame)[IP].ttl == 62                          # routed by both nodes
    back = {(o.node, o.iface): o for o in a}
    assert udp(back["coredns", "eth0"]) == "172.30.20.3:53 > 172.30.83.0:51709"
    assert udp(back["xiaomi", "flannel.1"]) == "172.30.20.3:53 > 172.30.83.0:51709"
    assert udp(back["xiaomi", "docker0"]) == "10.254.0.2:53 > 172.30.83.9:51709"      # un-SNAT + un-DNAT
    assert udp(back["busybox", "eth0"]) == "10.254.0.2:53 > 172.30.83.9:51709"
    effects = [d.effect for o in a for d in o.decisions]
    assert any("reply un-SNAT" in e for e in effects) and any("reply un-DNAT" in e for e in effects)
    m = DNS(bytes(Ether(back["busybox", "eth0"].frame)[UDP].payload))
    assert (m.id, m.an[0].rdata) == (3, "10.254.40.119")


def test_conntrack_tracks_each_query_as_its_own_udp_flow(w):
    e = w.dns[0]
    ct = e.conntrack["xiaomi"]
    assert (str(ct.orig), str(ct.reply)) == ("172.30.83.9:45328 -> 10.254.0.2:53", "172.30.20.3:53 -> 172.30.83.0:45328")
    assert str(w.dns[1].conntrack["xiaomi"].orig) == "172.30.83.9:51709 -> 10.254.0.2:53"
    q, a = legs(w, 0)
    lines = [d.entry for o in q + a for d in o.decisions if d.stage == "conntrack" and o.node == "xiaomi"]
    assert lines[0] == ("udp      17 30 src=172.30.83.9 dst=10.254.0.2 sport=45328 dport=53 [UNREPLIED] "
                        "src=172.30.20.3 dst=172.30.83.0 sport=53 dport=45328 mark=0 use=1")
    assert "[UNREPLIED]" not in lines[-1] and "[ASSURED]" not in lines[-1]   # the first answer only clears UNREPLIED
    # the walk's own conntrack view stays the HTTP connection's
    assert str(w.conntrack["xiaomi"].orig) == "172.30.83.9:41962 -> 10.254.40.119:4432"


def test_the_resolution_ends_before_the_syn_and_the_request_names_the_host(sc, w):
    assert w.dns[0].query_us < w.dns[0].done_us < w.dns[1].query_us < w.dns[1].done_us
    assert w.dns[1].done_us + sc.timing.process_us == w.segments[0].send_us
    assert b"\r\nHost: nginx.default.svc.cluster.local:4432\r\n" in w.segments[3].payload
    syn = w.path("SYN")
    assert Ether(syn[0].frame)[IP].dst == "10.254.40.119"                           # the address it resolved


def test_every_capture_shows_both_conversations(sc, w):
    for node, iface in [("busybox", "eth0"), ("xiaomi", "flannel.1"), ("meizu", "enp4s0"), ("meizu", "docker0")]:
        text = ck.tcpdump(sc, node, iface, "", "-nn")
        assert "2+ AAAA? nginx.default.svc.cluster.local. (49)" in text, (node, iface)
        assert "3*- 1/0/0 A 10.254.40.119 (96)" in text, (node, iface)
        assert "Flags [P.], seq 1:100, ack 1" in text, (node, iface)           # the 99-byte GET, by name


def test_the_other_scenarios_resolve_nothing(article_walk):
    assert article_walk.dns == [] and not [o for o in article_walk.observations if o.flow == "dns"]


# -- the scenario's dns: section ----------------------------------------------------------------------

@pytest.mark.parametrize("changes,field", [
    ({"dns.nmae": "x"}, "dns.nmae"),
    ({"dns.clusterIP": "10.99.0.2"}, "dns.clusterIP"),
    ({"dns.clusterIP": "10.254.40.119"}, "dns.clusterIP"),
    ({"dns.server.node": "huawei"}, "dns.server.node"),
    ({"dns.sourcePorts": [45328]}, "dns.sourcePorts"),
    ({"dns.sourcePorts": [45328, 51709, 40000]}, "dns.sourcePorts"),
    ({"dns.sourcePorts": [80, 51709]}, "dns.sourcePorts.0"),
    ({"dns.name": "kubernetes.default.svc.cluster.local"}, "dns.name"),
    ({"dns.name": "nginx.default"}, "dns.name"),
    ({"dns.name": "nginx..svc"}, "dns.name"),
    ({"dns.ttl": 3601}, "dns.ttl"),
    ({"request.client": "xiaomi"}, "dns"),
])
def test_bad_dns_sections_get_one_message_naming_the_field(sc, changes, field):
    with pytest.raises(CourseError) as e:
        sc.with_changes(changes)
    assert e.value.field == field


def test_a_name_without_a_dot_gets_the_search_list_first(sc):
    s2 = sc.with_changes({"dns.name": "nginx"})
    assert [(q.type_name, q.qname) for q, _ in dns.plan(s2)] == [
        ("AAAA", "nginx.default.svc.cluster.local"), ("A", "nginx.default.svc.cluster.local")]
    assert b"Host: nginx:4432\r\n" in ck.walk(s2).segments[3].payload


def test_coredns_on_the_clients_node_keeps_the_queries_off_the_overlay(sc):
    s2 = sc.with_changes({"dns.server.node": "xiaomi"})
    w2 = ck.walk(s2)
    q, a = legs(w2, 1)
    assert q[-1].node == "coredns" and not [o for o in q + a if o.iface in ("flannel.1", "enp4s0")]
    assert udp(q[-1]) == "172.30.83.9:51709 > 172.30.83.2:53"        # DNAT in the bridge, no masquerade


def test_a_dropped_query_means_no_connection(sc):
    """flannel before v0.9.1 adds no FORWARD ACCEPT: Docker's FORWARD policy DROP kills the query on meizu,
    getaddrinfo fails and wget never sends its SYN."""
    w2 = ck.walk(sc.with_changes({"flannel.version": "v0.9.0"}))
    assert [(d.node, d.iface, d.reason, d.flow) for d in w2.drops] == [
        ("meizu", "flannel.1", "FORWARD policy DROP", "dns")]
    assert w2.segments == [] and w2.dns[0].answer_us is None and len(w2.dns) == 1
    assert not [o for o in w2.observations if o.node == "coredns"]


def test_cold_caches_arp_during_the_first_query_not_the_syn(sc):
    s2 = sc.with_changes({"neighbourCaches": "cold"})
    w2 = ck.walk(s2)
    arp = [o for o in w2.observations if o.flow == "arp"]
    # busybox's gateway and meizu's underlay address are learned for the first query ...
    # (in hairpin mode docker0 floods busybox's broadcast back out of its own port too: br_flood ->
    # should_deliver, so busybox's eth0 sees its request twice)
    hairpin = s2.node(s2.client.node).hairpin_mode
    for node, iface in [("busybox", "eth0"), ("xiaomi", "enp4s0")]:
        n = 3 if hairpin and node == "busybox" else 2
        assert [o.time_us < w2.dns[0].query_us + 100 for o in arp if (o.node, o.iface) == (node, iface)] == [True] * n
    # ... so only the nginx pod, never asked for before, is resolved when the SYN arrives on meizu (the
    # request broadcast on docker0 reaches every port, CoreDNS's too)
    late = {(o.node, o.iface) for o in arp if o.time_us > w2.segments[0].send_us}
    assert late == {("meizu", "docker0"), ("meizu", "veth9f02b5d"), ("nginx-1", "eth0"),
                    ("meizu", "veth2d8e61a"), ("coredns", "eth0")}
    lines = [x for x in ck.tcpdump(s2, "busybox", "eth0", "", "-nn").splitlines() if x[:2].isdigit()]
    assert "ARP, Request who-has 172.30.83.1 tell 172.30.83.9" in lines[0] and "ARP, Reply" in lines[1 + hairpin]
    if hairpin:
        assert lines[1][16:] == lines[0][16:]               # its own request, reflected
    assert "2+ AAAA?" in lines[2 + hairpin]


@pytest.mark.parametrize("ttl,wire", [(5, 5), (0, 5), (3, 5), (30, 30), (3600, 30)])
def test_the_cache_plugin_clamps_the_ttl_on_the_wire(sc, ttl, wire):
    (_q6, aaaa), (_q4, a) = dns.plan(sc.with_changes({"dns.ttl": ttl}))
    assert a.answers[0][2] == wire and aaaa.authority[0][2] == wire
    assert aaaa.authority[0][3][-4:] == ttl.to_bytes(4, "big")          # the SOA's minimum keeps the plugin's ttl


def test_dns_path_refuses_what_is_not_an_exchange(w, article_walk):
    for args, field in [((article_walk,), "walk"), ((w, 2), "exchange"), ((w, True), "exchange"),
                        ((w, 0, "reply"), "leg")]:
        with pytest.raises(CourseError) as e:
            dns.path(*args)
        assert e.value.field == field


def test_the_functions_take_a_scenario_name_too():
    assert dns.resolv_conf("dns").startswith("nameserver 10.254.0.2\n")
    with pytest.raises(CourseError) as e:
        dns.plan("article")
    assert e.value.field == "dns"


# -- property: whatever the dns: section and the cluster, a walk or one message -----------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from coursekit.tcpdump import _cksum  # noqa: E402


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["nginx", "nginx.default.svc.cluster.local", "nginx.default.svc.cluster.local.",
                             "NGINX.default.svc.cluster.local"]),
       node=st.sampled_from(["xiaomi", "meizu"]), ttl=st.integers(0, 3600),
       ports=st.lists(st.integers(1024, 65535), min_size=2, max_size=2),
       caches=st.sampled_from(["warm", "cold"]), brnf=st.booleans(), flannel=st.sampled_from(["v0.11.0", "v0.9.0"]))
def test_any_accepted_dns_section_walks_to_an_answer_or_a_drop(sc, name, node, ttl, ports, caches, brnf, flannel):
    s2 = sc.with_changes({"dns.name": name, "dns.server.node": node, "dns.ttl": ttl, "dns.sourcePorts": ports,
                          "neighbourCaches": caches, "nodes.xiaomi.bridgeNfCallIptables": brnf,
                          "flannel.version": flannel})
    w2 = ck.walk(s2)
    done = [e for e in w2.dns if e.done_us is not None]
    assert len(done) == 2 or [d for d in w2.drops if d.flow == "dns"]
    for o in w2.observations:
        if o.flow != "dns":
            continue
        p = Ether(o.frame)
        while p[UDP].dport == s2.flannel.port or p[UDP].sport == s2.flannel.port:     # VXLAN: the inner frame
            p = Ether(bytes(p[UDP].payload)[8:])
        ip = bytes(p[IP])[:20]
        assert _cksum(ip) in (0, 0xFFFF)                                           # the IP checksum holds
        u = bytes(p[UDP])
        pseudo = (ipaddress.IPv4Address(p[IP].src).packed + ipaddress.IPv4Address(p[IP].dst).packed
                  + b"\0\x11" + len(u).to_bytes(2, "big"))
        assert _cksum(pseudo + u) in (0, 0xFFFF)                                   # and the UDP one, after NAT
        m = DNS(bytes(p[UDP].payload))
        assert m.qd[0].qname.decode().lower() == "nginx.default.svc.cluster.local."
    for e in done:
        if e.query.qtype == dns.T_A:
            assert e.answer.answers[0][2] == dns.wire_ttl(ttl)


def test_a_source_port_used_again_reuses_the_conntrack_entry(sc):
    w2 = ck.walk(sc.with_changes({"dns.sourcePorts": [40000, 40000]}))
    assert w2.dns[0].conntrack["xiaomi"] is w2.dns[1].conntrack["xiaomi"]
    q, _a = legs(w2, 1)
    line = next(d.entry for o in q for d in o.decisions if d.stage == "conntrack" and o.node == "xiaomi")
    # the entry had its answer: this query makes the flow a stream (Linux 3.10: ASSURED, 180 s)
    assert line.startswith("udp      17 180 ") and "[UNREPLIED]" not in line and "[ASSURED]" in line
    assert udp(q[-1]) == "172.30.83.0:40000 > 172.30.20.3:53"
