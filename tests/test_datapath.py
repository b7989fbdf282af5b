"""Observable facts of the walk, as a learner would check them with tcpdump."""

import ipaddress

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

import coursekit as ck


def pkt(obs):
    return Ether(obs.frame)


def test_client_sends_to_the_service_ip(article_walk):
    first = pkt(article_walk.at("busybox", "eth0")[0])
    assert (first[IP].src, first[IP].dst, first[TCP].dport) == ("172.30.83.9", "10.254.40.119", 4432)
    assert first[IP].ttl == 64


def test_dnat_and_masquerade_on_flannel_1_of_xiaomi(article_walk):
    syn = pkt(article_walk.at("xiaomi", "flannel.1")[0])
    # kube-proxy's DNAT picked the endpoint; Docker's MASQUERADE picked flannel.1's address
    assert (syn[IP].dst, syn[TCP].dport) == ("172.30.20.2", 80)
    assert syn[IP].src == "172.30.83.0"
    assert syn[TCP].sport == 38200          # MASQUERADE kept the port
    assert syn[IP].ttl == 63                # 64 - 1: xiaomi routed it


def test_ttl_per_hop(article_walk):
    ttl = {(o.node, o.iface): pkt(o)[IP].ttl for o in article_walk.path(0)}
    assert ttl[("busybox", "eth0")] == 64
    assert ttl[("xiaomi", "docker0")] == 64
    assert ttl[("xiaomi", "flannel.1")] == 63
    assert ttl[("meizu", "docker0")] == 62
    assert ttl[("nginx-1", "eth0")] == 62    # 64 - 2 routed hops


def test_vxlan_on_the_wire(article, article_walk):
    for o in article_walk.at("meizu", "enp4s0"):
        p = pkt(o)
        assert p[UDP].dport == 8472
        assert p[VXLAN].vni == 1 and p[VXLAN].flags == 0x08
        assert p[IP].ttl == 64 and p[IP].flags == 0       # outer: default TTL, DF clear
        inner = Ether(bytes(p[VXLAN].payload))
        assert len(o.frame) - len(bytes(inner)) == 50     # 14 + 20 + 8 + 8
    out = [pkt(o) for o in article_walk.at("meizu", "enp4s0") if o.flow == "request"]
    assert {p[IP].src for p in out} == {"10.167.226.38"}
    assert {p[UDP].sport for p in out} == {49008}         # observed, pinned in the scenario
    assert article.mtu_of("meizu", "flannel.1") == 1450


def test_outer_source_port_is_a_stable_flow_hash():
    sc = ck.load_scenario("article-flannel")               # no pinned port
    w = ck.walk(sc)
    ports = {pkt(o)[UDP].sport for o in w.at("xiaomi", "enp4s0") if o.flow == "request"}
    assert len(ports) == 1
    (port,) = ports
    lo, hi = sc.node("xiaomi").ephemeral_ports
    assert lo <= port < hi


def test_mss_follows_each_pod_mtu(article_walk):
    syn, synack = (pkt(o) for o in article_walk.at("meizu", "docker0")[:2])
    assert dict(syn[TCP].options)["MSS"] == 1460            # busybox: MTU 1500
    assert dict(synack[TCP].options)["MSS"] == 1410         # nginx: MTU 1450


def test_reply_is_un_natted_back_to_the_service(article_walk):
    replies = [pkt(o) for o in article_walk.at("busybox", "eth0") if o.flow == "reply"]
    assert replies
    for p in replies:
        assert (p[IP].src, p[TCP].sport) == ("10.254.40.119", 4432)
        assert (p[IP].dst, p[TCP].dport) == ("172.30.83.9", 38200)
        assert p[IP].ttl == 62


def test_conntrack_entries(article_walk):
    ct = article_walk.conntrack["xiaomi"]
    assert str(ct.orig) == "172.30.83.9:38200 -> 10.254.40.119:4432"
    assert str(ct.reply) == "172.30.20.2:80 -> 172.30.83.0:38200"
    meizu = article_walk.conntrack["meizu"]
    assert not meizu.dnat and not meizu.snat               # meizu rewrites nothing


def test_decisions_name_the_entries_used(article, article_walk):
    dec = [d for o in article_walk.path(0) for d in o.decisions]
    entries = [d.entry for d in dec]
    assert "172.30.20.0/24 via 172.30.20.0 dev flannel.1 onlink" in entries
    assert f"{article.node('meizu').vtep_mac} dev flannel.1 dst 10.167.226.39 self permanent" in entries
    assert f"172.30.20.0 dev flannel.1 lladdr {article.node('meizu').vtep_mac} PERMANENT" in entries
    assert "-A POSTROUTING -s 172.30.83.0/24 ! -o docker0 -j MASQUERADE" in entries
    assert any(e.startswith("-A KUBE-SEP-") and "DNAT --to-destination 172.30.20.2:80" in e for e in entries)
    # later packets skip the nat table: conntrack rewrites them
    later = [d.stage for o in article_walk.path(2) for d in o.decisions]
    assert "nat" not in later and "conntrack" in later


def test_masquerade_off_keeps_the_pod_source():
    sc = ck.load_scenario("article", {"nodes.xiaomi.docker.ipMasq": False})
    syn = pkt(ck.walk(sc).at("meizu", "docker0")[0])
    assert syn[IP].src == "172.30.83.9"


def test_replicas_spread_by_statistic_rules():
    sc = ck.load_scenario("article", {"workloads.nginx.replicas": 3, "observed.endpoint": 2})
    eps = sc.endpoints(sc.service("nginx"))
    assert [str(p.ip) for p in eps] == ["172.30.20.2", "172.30.20.3", "172.30.20.4"]
    syn = pkt(ck.walk(sc).at("meizu", "docker0")[0])
    assert syn[IP].dst == "172.30.20.4"


def test_seq_and_ack_are_computed(article_walk):
    segs = article_walk.segments
    c, s = segs[0].seq, segs[1].seq
    assert segs[1].ack == c + 1
    assert [len(x.payload) for x in segs if x.payload] == [81, 233, 612]
    assert segs[-1].ack == c + 1 + 81 + 1                  # FIN consumes one
    assert segs[8].ack == s + 1 + 233 + 612 + 1


def test_http_payloads(article_walk):
    req = article_walk.segments[3].payload
    assert req.startswith(b"GET / HTTP/1.1\r\nHost: 10.254.40.119:4432\r\n")
    hdr = article_walk.segments[5].payload.decode()
    assert "Date: Wed, 28 Aug 2019 03:25:22 GMT" in hdr     # from the server's clock, in GMT
    assert 'ETag: "5d528b4c-264"' in hdr


def test_every_frame_round_trips_through_scapy(article_walk):
    for o in article_walk.observations:
        assert bytes(Ether(o.frame)) == o.frame


def test_checksums_are_correct_after_every_rewrite(article_walk):
    for o in article_walk.observations:
        p = Ether(o.frame)
        for layer in (IP, TCP):
            for q in (p, Ether(bytes(p[VXLAN].payload)) if VXLAN in p else None):
                if q is None:
                    continue
                got = q[layer].chksum
                q2 = q.copy()
                del q2[layer].chksum
                assert Ether(bytes(q2))[layer].chksum == got, (o.node, o.iface, layer.__name__)


def test_deterministic(article):
    a = [o.frame for o in ck.walk(article).observations]
    b = [o.frame for o in ck.walk(ck.load_scenario("article")).observations]
    assert a == b


def test_port_4789_changes_tcpdump_to_vxlan():
    sc = ck.load_scenario("article", {"flannel.port": 4789})
    text = ck.tcpdump(sc, "meizu", "enp4s0", "udp")
    assert "VXLAN, flags [I] (0x08), vni 1" in text and "OTV" not in text


def test_unknown_interface_error(article_walk):
    with pytest.raises(ck.CourseError, match="interface: unknown interface 'eth7' on meizu"):
        article_walk.at("meizu", "eth7")


def test_cold_caches_add_three_arp_exchanges(article):
    """neighbourCaches: cold -- the first SYN waits for ARP on each layer-2 segment (as the live lab shows)."""
    from scapy.layers.l2 import ARP, Ether
    warm = ck.walk(article)
    assert not [o for o in warm.observations if o.flow == "arp"]
    cold_sc = article.with_changes({"neighbourCaches": "cold", "workloads.nginx.replicas": 2})
    cold = ck.walk(cold_sc)
    asked = {}
    for o in cold.observations:
        if o.flow == "arp":
            a = Ether(o.frame)[ARP]
            asked.setdefault((a.op, a.psrc, a.pdst), set()).add((o.node, o.iface))
            assert len(o.frame) == 42
            if a.op == 1:
                assert Ether(o.frame).dst == "ff:ff:ff:ff:ff:ff" and a.hwdst == "00:00:00:00:00:00"
    assert set(asked) == {(1, "172.30.83.9", "172.30.83.1"), (2, "172.30.83.1", "172.30.83.9"),
                          (1, "10.167.226.38", "10.167.226.39"), (2, "10.167.226.39", "10.167.226.38"),
                          (1, "172.30.20.1", "172.30.20.2"), (2, "172.30.20.2", "172.30.20.1")}
    # the bridge floods the request to every port: both nginx pods hear it, only nginx-1 answers
    assert {("nginx-1", "eth0"), ("nginx-2", "eth0")} <= asked[(1, "172.30.20.1", "172.30.20.2")]
    assert ("nginx-2", "eth0") not in asked[(2, "172.30.20.2", "172.30.20.1")]
    # each exchange ends before the SYN crosses that segment
    # (busybox's port is in hairpin mode: the bridge floods its request back to it too)
    for node, iface, n in [("busybox", "eth0", 3), ("xiaomi", "enp4s0", 2), ("meizu", "docker0", 2)]:
        seen = cold.at(node, iface)
        syn = next(i for i, o in enumerate(seen) if o.segment == 0)
        assert [o.flow for o in seen[:syn]] == ["arp"] * n
    # the TCP frames are the warm walk's, byte for byte
    warm2 = ck.walk(article.with_changes({"workloads.nginx.replicas": 2}))
    assert [o.frame for o in cold.observations if o.flow != "arp"] == [o.frame for o in warm2.observations]


def test_neighbour_caches_must_be_warm_or_cold(article):
    with pytest.raises(ck.CourseError, match="neighbourCaches: 'lukewarm' is not a cache state"):
        article.with_changes({"neighbourCaches": "lukewarm"})


# -- named lookups: a learner names a segment and a place, never a list index

def test_find_names_the_segment_and_the_place(article_walk):
    get = article_walk.find(segment="GET", at=("meizu", "enp4s0"))
    assert (get.node, get.iface, get.flow) == ("meizu", "enp4s0", "request")
    assert bytes(pkt(get)[TCP].payload).startswith(b"GET / HTTP/1.1\r\n")
    # the same segment by its label, in any case, or by its index
    assert article_walk.find("http request", ("meizu", "enp4s0")) is get
    assert article_walk.find(get.segment, ("meizu", "enp4s0")) is get
    synack = article_walk.find("SYN-ACK", ("xiaomi", "flannel.1"))
    assert pkt(synack)[TCP].flags == "SA" and synack.flow == "reply"


def test_path_cut_by_named_points(article_walk):
    hops = article_walk.path("SYN", start=("meizu", "flannel.1"), stop=("nginx-1", "eth0"))
    assert [(o.node, o.iface) for o in hops] == [("meizu", "flannel.1"), ("meizu", "docker0"),
                                                 ("meizu", "veth9f02b5d"), ("nginx-1", "eth0")]
    assert article_walk.path("SYN") == article_walk.path(0)


@pytest.mark.parametrize("kwargs, field", [
    (dict(segment="GTE", at=("meizu", "enp4s0")), "segment"),
    (dict(segment=99, at=("meizu", "enp4s0")), "segment"),
    (dict(segment=True, at=("meizu", "enp4s0")), "segment"),
    (dict(segment="SYN", at=("meizu", "eth9")), "interface"),
    (dict(segment="SYN", at="meizu enp4s0"), "at"),
    (dict(segment="SYN", at=("nowhere", "eth0")), "at"),
])
def test_find_refuses_with_one_message(article_walk, kwargs, field):
    with pytest.raises(ck.CourseError) as e:
        article_walk.find(**kwargs)
    assert e.value.field == field and e.value.allowed


def test_path_refuses_a_place_off_the_path_and_find_an_ambiguous_label(article_walk):
    with pytest.raises(ck.CourseError, match="stop comes before the start"):
        article_walk.path("SYN", start=("meizu", "docker0"), stop=("xiaomi", "docker0"))
    with pytest.raises(ck.CourseError, match="not on this segment's path"):
        article_walk.path("SYN", start=("meizu", "enp4s0"), stop=("busybox", "eth7"))
    # with 576-byte pods the 612-byte body needs two segments, each with its own label
    sc = ck.load_scenario("article").with_changes({"observed.windows": None, "observed.times": None})
    small = ck.walk(ck.explore.apply(sc, {"pod_mtu": 576}))
    body = small.find("HTTP response body", ("meizu", "docker0"))
    last = small.find("HTTP response body + FIN", ("meizu", "docker0"))
    assert last.segment == body.segment + 1 and pkt(last)[TCP].flags.F and not pkt(body)[TCP].flags.F
    # a label two segments share is refused, naming both indices
    import dataclasses
    twice = dataclasses.replace(article_walk, segments=article_walk.segments + [article_walk.segments[0]])
    with pytest.raises(ck.CourseError, match="2 segments are labelled 'SYN'") as e:
        twice.segment("SYN")
    assert e.value.field == "segment"


def test_172_30_83_0_is_flannel_1_not_docker0(article, article_walk):
    """The article's section 二 summary calls 172.30.83.0 docker0's address: it is flannel.1's /32."""
    rows = {line.split()[0]: line.split()[2] for line in ck.routing.ip_addr(article, "xiaomi").splitlines()}
    assert rows["flannel.1"] == "172.30.83.0/32"
    assert rows["docker0"] == "172.30.83.1/24"
    syn = pkt(article_walk.find("SYN", ("meizu", "flannel.1")))
    assert syn[IP].src == rows["flannel.1"].split("/")[0]
