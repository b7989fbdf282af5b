"""The kernel-faithful engine (coursekit.kernel): same observations as the article's walk, and the graph's behaviour."""

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

import coursekit as ck
from coursekit import kernel

# The scenarios and variants the existing tests and explorer knobs walk.
VARIANTS = [
    ("article", {}),
    ("article-docker0", {}),
    ("article-flannel", {}),
    ("article", {"nodes.xiaomi.docker.ipMasq": False}),
    ("article", {"workloads.nginx.replicas": 3, "observed.endpoint": 2}),
    ("article", {"workloads.nginx.replicas": 2}),
    ("article", {"flannel.port": 4789}),
    ("article", {"flannel.port": 4790}),
    ("article", {"flannel.vni": 42}),
    ("article", {"flannel.ipMasq": True}),
    ("article", {"flannel.ipMasq": True, "nodes.xiaomi.docker.ipMasq": False, "nodes.meizu.docker.ipMasq": False}),
    ("article", {"flannel.udpChecksum": False}),
    ("article", {"kubeProxy.masqueradeAll": True}),
    ("article", {"nodes.xiaomi.bridgeNfCallIptables": False}),
    ("article", {"nodes.meizu.bridgeNfCallIptables": False}),
    # the ten-hop oracle never modelled hairpin ports, which get their own broadcasts back
    # (br_flood -> should_deliver; tests/test_lab.py checks it on the kernel): off for it
    ("article", {"neighbourCaches": "cold", "workloads.nginx.replicas": 2, "nodes.xiaomi.hairpinMode": False}),
    ("article", {"neighbourCaches": "cold", "nodes.xiaomi.hairpinMode": False}),
    ("article-flannel", {"neighbourCaches": "cold", "nodes.xiaomi.hairpinMode": False}),
    ("article", {"pods.busybox.ip": "172.30.83.20"}),
    ("article", {"nodes.xiaomi.docker.mtu": 1400, "nodes.meizu.docker.mtu": 1400}),
]


def _key(o):
    return (o.node, o.iface, o.direction, o.time_us, o.segment, o.flow, o.hop)


def reference_walk(sc):
    """The hard-coded ten-hop walk that preceded the engine, kept in the tests as the oracle."""
    import oldwalk
    return oldwalk.walk(sc)


@pytest.mark.parametrize("name,changes", VARIANTS, ids=[f"{n}{c or ''}" for n, c in VARIANTS])
def test_engine_reproduces_the_ten_hop_walk(name, changes):
    sc = ck.load_scenario(name, changes)
    old, new = reference_walk(sc), kernel.walk(sc)
    assert [_key(o) for o in new.observations] == [_key(o) for o in old.observations]
    outer = []
    for a, b in zip(old.observations, new.observations):
        assert b.frame == a.frame, (a.node, a.iface, a.segment)
        # the oracle never ran the host's hooks on the outer VXLAN datagram (hooks.run_tunnel_hook)
        extra = [d for d in b.decisions if "the outer VXLAN datagram" in d.effect]
        outer += [(b.node, b.iface, b.segment) for d in extra]
        assert [d for d in b.decisions if d not in extra] == list(a.decisions), (a.node, a.iface, a.segment)
    # only a packet kube-proxy marked (masqueradeAll: the SYN) takes its mark into the outer datagram,
    # which KUBE-POSTROUTING then masquerades too (to the address it already has)
    assert outer == ([("xiaomi", "enp4s0", 0)] if changes.get("kubeProxy.masqueradeAll") else [])
    assert {k: (str(v.orig), str(v.reply)) for k, v in new.conntrack.items()} == \
        {k: (str(v.orig), str(v.reply)) for k, v in old.conntrack.items()}
    assert {k: (v.tuple, v.trace, v.nat) for k, v in new.nat_traces.items()} == \
        {k: (v.tuple, v.trace, v.nat) for k, v in old.nat_traces.items()}
    assert new.drops == []


def test_path_is_a_lookup_in_the_graph(article):
    """The request's path comes out of the devices, routes and tables: ten observation points."""
    w = kernel.walk(article)
    path = [(o.node, o.iface, o.direction) for o in w.path(0)]
    assert path == [("busybox", "eth0", "out"), ("xiaomi", "veth4c1a3e7", "in"), ("xiaomi", "docker0", "in"),
                    ("xiaomi", "flannel.1", "out"), ("xiaomi", "enp4s0", "out"), ("meizu", "enp4s0", "in"),
                    ("meizu", "flannel.1", "in"), ("meizu", "docker0", "out"), ("meizu", "veth9f02b5d", "out"),
                    ("nginx-1", "eth0", "in")]
    reply = [(o.node, o.iface) for o in w.path(1)]
    assert reply == [(n, i) for n, i, _ in reversed(path)]


def test_graph_links(article):
    net = kernel.Net(article)
    from coursekit.kernel.topology import links
    text = links(net.nss)
    assert "xiaomi:veth4c1a3e7 <-> busybox:eth0 (veth)" in text
    assert "meizu:flannel.1 -> meizu:enp4s0 (VXLAN VNI 1, UDP 8472)" in text


def test_incremental_checksums_match_a_full_recompute(article):
    from coursekit.kernel.frame import csum, set_tuple, tuple_of
    from coursekit.netfilter import Tuple5
    import ipaddress
    frame = bytearray(kernel.walk(article).observations[0].frame)
    t = tuple_of(frame)
    set_tuple(frame, Tuple5("tcp", ipaddress.IPv4Address("10.0.0.1"), 1, ipaddress.IPv4Address("192.168.255.254"), 65535))
    p = Ether(bytes(frame))
    assert (p[IP].src, p[TCP].sport, p[IP].dst, p[TCP].dport) == ("10.0.0.1", 1, "192.168.255.254", 65535)
    ip_ck, tcp_ck = p[IP].chksum, p[TCP].chksum
    del p[IP].chksum, p[TCP].chksum
    q = Ether(bytes(p))
    assert (q[IP].chksum, q[TCP].chksum) == (ip_ck, tcp_ck)
    assert csum(bytes(frame[14:34])) == 0            # a valid IP header sums to zero
    assert t.dst == ipaddress.IPv4Address("10.254.40.119")


def test_unknown_vni_is_a_drop_with_a_reason(article):
    """The sending node's VNI differs from the receiver's: meizu's VXLAN socket drops the datagram."""
    net = kernel.Net(article)
    net.nss["meizu"].udp_tunnels[8472].vni = 2
    from coursekit.kernel.engine import _conversation
    from coursekit import conversation as conv
    recs = []
    _conversation(article, net, conv.segments(article), lambda s, r: recs.append(r) or False)
    (rec,) = recs
    assert rec.delivered is None
    (node, iface, reason, _dec), = rec.drops
    assert (node, iface) == ("meizu", "enp4s0") and "VNI 1 unknown" in reason
    assert [o[:3] for o in rec.obs][-1] == ("meizu", "enp4s0", "in")


def test_no_fdb_entry_is_a_drop(article):
    net = kernel.Net(article)
    net.nss["xiaomi"].devices["flannel.1"].fdb.clear()
    from coursekit.kernel.engine import _conversation
    from coursekit import conversation as conv
    recs = []
    _conversation(article, net, conv.segments(article), lambda s, r: recs.append(r) or False)
    (node, iface, reason, _), = recs[0].drops
    assert (node, iface, reason) == ("xiaomi", "flannel.1", "no VXLAN FDB entry")


def test_tcp_frames_as_bytes_equal_scapys_build(article_walk):
    """The engine writes a segment's first frame as bytes; scapy's build of the same fields is identical."""
    from coursekit import conversation as conv
    from coursekit.datapath import build_frame
    from coursekit.kernel.frame import tcp_frame, tuple_of
    for o in article_walk.observations:
        if o.hop != 0:
            continue
        seg = article_walk.segments[o.segment]
        p = Ether(o.frame)
        t = tuple_of(o.frame)
        want = bytes(build_frame(p.src, p.dst, t, p[IP].ttl, p[IP].id, seg))
        assert tcp_frame(p.src, p.dst, t, p[IP].ttl, p[IP].id, seg, conv.tcp_options(seg)) == want
        assert want == o.frame
