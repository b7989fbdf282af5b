"""The traffic cases of the network model (data/scenarios), walked by coursekit.kernel.

Each test reads like the lesson: the devices a packet crosses, every NAT, and
where and why the kernel drops it.
"""

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

import coursekit as ck


def devices(w, segment):
    return [(o.node, o.iface, o.direction) for o in w.path(segment)]


def addrs(o):
    p = Ether(o.frame)
    return f"{p[IP].src}:{p[TCP].sport} > {p[IP].dst}:{p[TCP].dport}"


# -- case 2: same node -----------------------------------------------------------------

def test_same_node_request_is_dnated_and_stays_bridged():
    """br_nf_pre_routing_finish: the DNAT'd destination is behind docker0 itself, so the frame is bridged on."""
    w = ck.walk(ck.load_scenario("same-node"))
    assert devices(w, 0) == [("busybox", "eth0", "out"), ("xiaomi", "veth4c1a3e7", "in"),
                             ("xiaomi", "veth9f02b5d", "out"), ("nginx-1", "eth0", "in")]
    assert not [o for o in w.observations if o.iface in ("flannel.1", "enp4s0")]      # no VXLAN at all
    assert not w.at("xiaomi", "docker0")            # tcpdump on the bridge never sees frames bridged port to port
    syn = w.path(0)
    assert addrs(syn[1]) == "172.30.83.9:41000 > 10.254.40.119:4432"
    assert addrs(syn[2]) == "172.30.83.9:41000 > 172.30.83.2:80"      # DNAT inside the bridge (br_netfilter)
    p = Ether(syn[2].frame)
    assert (p.src, p.dst) == ("02:42:ac:1e:53:09", "02:42:ac:1e:53:02")  # busybox's MAC -> nginx's MAC
    assert p[IP].ttl == 64                                              # bridged, never routed
    assert not [d for o in syn for d in o.decisions if "MASQUERADE" in d.effect]   # ! -o docker0: no SNAT
    assert w.drops == [] and [s.label for s in w.segments][-1] == "ACK of FIN"


def test_same_node_reply_is_bridged_port_to_port_and_un_natted_by_br_netfilter():
    w = ck.walk(ck.load_scenario("same-node"))
    # nginx answers 172.30.83.9 on its own subnet: straight to busybox's MAC, bridged, never up to docker0
    assert devices(w, 1) == [("nginx-1", "eth0", "out"), ("xiaomi", "veth9f02b5d", "in"),
                             ("xiaomi", "veth4c1a3e7", "out"), ("busybox", "eth0", "in")]
    reply = w.path(1)
    assert addrs(reply[1]) == "172.30.83.2:80 > 172.30.83.9:41000"
    assert addrs(reply[2]) == "10.254.40.119:4432 > 172.30.83.9:41000"     # conntrack un-DNAT on the bridge
    assert Ether(reply[-1].frame)[IP].ttl == 64                             # bridged, not routed
    assert any("reply un-DNAT" in d.effect for d in reply[2].decisions)
    ct = w.conntrack["xiaomi"]
    assert (str(ct.orig), str(ct.reply)) == ("172.30.83.9:41000 -> 10.254.40.119:4432",
                                             "172.30.83.2:80 -> 172.30.83.9:41000")


def test_same_node_without_br_netfilter_the_client_resets_the_connection():
    w = ck.walk(ck.load_scenario("same-node-no-br-netfilter"))
    syn = w.path(0)
    # without br_netfilter the frame goes up to xiaomi, which DNATs and routes it back out of docker0
    assert [(o.node, o.iface) for o in syn] == [("busybox", "eth0"), ("xiaomi", "veth4c1a3e7"), ("xiaomi", "docker0"),
                                                ("xiaomi", "docker0"), ("xiaomi", "veth9f02b5d"), ("nginx-1", "eth0")]
    assert addrs(syn[2]) == "172.30.83.9:41000 > 10.254.40.119:4432"   # docker0 still shows the Service address
    assert addrs(syn[3]) == "172.30.83.9:41000 > 172.30.83.2:80"
    assert Ether(syn[-1].frame)[IP].ttl == 63                          # routed by xiaomi
    synack = w.path(1)
    assert addrs(synack[-1]) == "172.30.83.2:80 > 172.30.83.9:41000"      # never un-DNATed
    (drop,) = w.drops
    assert (drop.node, drop.iface, drop.segment) == ("busybox", "eth0", 1)
    assert "no socket for 172.30.83.2:80 -> 172.30.83.9:41000" in drop.reason and "RST" in drop.reason
    rst = w.segments[-1]
    assert [s.label for s in w.segments] == ["SYN", "SYN-ACK", "RST (no socket)"]
    assert rst.flags == 0x04 and rst.seq == w.segments[1].ack            # RST takes its seq from the ACK
    p = Ether(w.path(2)[0].frame)
    assert (p[IP].id, p[IP].flags, p[IP].ttl, p[TCP].options) == (0, "DF", 64, [])
    assert devices(w, 2)[-1] == ("nginx-1", "eth0", "in")


# -- case 8: pod to pod by IP, the Kubernetes network model ---------------------------

def test_pod_to_pod_with_the_articles_configuration_hides_the_client():
    w = ck.walk(ck.load_scenario("pod-to-pod"))
    syn = {(o.node, o.iface): o for o in w.path(0)}
    assert addrs(syn[("busybox", "eth0")]) == "172.30.83.9:42000 > 172.30.20.2:80"
    assert addrs(syn[("nginx-1", "eth0")]) == "172.30.83.0:42000 > 172.30.20.2:80"   # not busybox's address
    masq = [d.entry for o in w.path(0) for d in o.decisions if "MASQUERADE source" in d.effect]
    assert masq == ["-A POSTROUTING -s 172.30.83.0/24 ! -o docker0 -j MASQUERADE"]    # Docker's rule, not kube-proxy's
    assert not [d for o in w.path(0) for d in o.decisions if "DNAT" in d.effect]      # no Service: no DNAT
    back = {(o.node, o.iface): o for o in w.path(1)}
    assert addrs(back[("busybox", "eth0")]) == "172.30.20.2:80 > 172.30.83.9:42000"   # un-SNATed on xiaomi


def test_pod_to_pod_with_flannel_ip_masq_keeps_the_real_address():
    w = ck.walk(ck.load_scenario("pod-to-pod-flannel-ip-masq"))
    for o in w.path(0):
        if o.iface != "enp4s0":
            assert addrs(o) == "172.30.83.9:42000 > 172.30.20.2:80", (o.node, o.iface)
    entries = [d.entry for o in w.path(0) for d in o.decisions]
    assert "-A POSTROUTING -s 172.30.0.0/16 -d 172.30.0.0/16 -j RETURN" in entries     # flannel's first rule
    assert not [e for e in entries if "MASQUERADE" in e]
    assert not w.conntrack["xiaomi"].snat and not w.conntrack["meizu"].snat


# -- case 7: out to the world ------------------------------------------------------------

def test_pod_to_the_world_is_masqueraded_to_the_nodes_address():
    sc = ck.load_scenario("pod-to-world")
    w = ck.walk(sc)
    assert devices(w, 0) == [("busybox", "eth0", "out"), ("xiaomi", "veth4c1a3e7", "in"),
                             ("xiaomi", "docker0", "in"), ("xiaomi", "enp4s0", "out"), ("outside", "eth0", "in")]
    syn = w.path(0)
    assert addrs(syn[3]) == "10.167.226.38:43000 > 10.167.226.50:80"        # MASQUERADE to enp4s0's address
    assert Ether(syn[3].frame).dst == sc.external("outside").mac           # straight to the host: same underlay
    assert not [o for o in w.observations if o.iface == "flannel.1"]
    assert any("(address of enp4s0)" in d.effect for d in syn[3].decisions)
    back = w.path(1)
    assert addrs(back[-1]) == "10.167.226.50:80 > 172.30.83.9:43000"
    assert Ether(back[-1].frame)[IP].ttl == 63                             # routed once, by xiaomi
    assert w.segments[3].payload.startswith(b"GET / HTTP/1.1\r\nHost: 10.167.226.50:80\r\n")


def test_request_ip_must_belong_to_someone(article):
    import pytest
    with pytest.raises(ck.CourseError, match=r"request\.ip: no pod or external host has 10\.1\.2\.3"):
        ck.load_scenario("pod-to-world", {"request.ip": "10.1.2.3"})
    with pytest.raises(ck.CourseError, match=r"request\.ip: give either request\.service or request\.ip"):
        ck.load_scenario("pod-to-world", {"request.service": "nginx"})
    with pytest.raises(ck.CourseError, match=r"externalHosts\.outside\.nic\.address: 192\.168\.1\.5/24 is not a host"):
        ck.load_scenario("pod-to-world", {"externalHosts.outside.nic.address": "192.168.1.5/24"})


def test_every_frame_of_every_case_parses_with_valid_checksums():
    from scapy.layers.inet import UDP
    from scapy.layers.vxlan import VXLAN
    from coursekit.kernel.frame import csum
    for name in ("same-node", "same-node-no-br-netfilter", "pod-to-pod", "pod-to-pod-flannel-ip-masq",
                 "pod-to-world"):
        w = ck.walk(ck.load_scenario(name))
        for o in w.observations:
            frames = [o.frame]
            p = Ether(o.frame)
            if UDP in p and p[UDP].dport == 8472:
                frames.append(bytes(p[VXLAN].payload))
            for f in frames:
                q = Ether(f)
                assert csum(f[14:34]) == 0, (name, o.node, o.iface)
                got = q[TCP].chksum if TCP in q and UDP not in q else None
                if got is not None:
                    del q[TCP].chksum
                    assert Ether(bytes(q))[TCP].chksum == got, (name, o.node, o.iface)


# -- the filter table: Docker's FORWARD policy DROP ----------------------------------

def test_without_flannels_forward_rules_docker_drops_the_new_connection_on_meizu():
    """flannel < v0.9.1 installed no FORWARD rules; Docker >= 1.13 sets FORWARD to DROP."""
    ok = ck.walk(ck.load_scenario("article"))
    assert ok.filter_traces[("meizu", "FORWARD")].trace[-1] == "-A FORWARD -s 172.30.0.0/16 -j ACCEPT"
    assert ok.filter_traces[("xiaomi", "FORWARD")].trace[-1] == "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT"
    w = ck.walk(ck.load_scenario("article", {"flannel.version": "v0.8.0"}))
    drop = w.drops[0]
    assert (drop.node, drop.iface, drop.reason, drop.segment) == ("meizu", "flannel.1", "FORWARD policy DROP", 0)
    assert drop.decisions[-1].entry == "-P FORWARD DROP"
    assert [(o.node, o.iface) for o in w.path(0)][-1] == ("meizu", "flannel.1")     # never reaches docker0
    # nothing answers: the client's kernel retransmits the SYN (coursekit.faults), each dropped the same way
    assert [s.label for s in w.segments] == ["SYN"] + [f"SYN (retransmission {n})" for n in range(1, 7)]
    assert {(d.node, d.reason) for d in w.drops} == {("meizu", "FORWARD policy DROP")} and len(w.drops) == 7
    assert not [o for o in w.observations if o.node == "nginx-1"]


def test_filter_table_as_iptables_save_prints_it(article):
    from coursekit.netfilter import filter_save
    text = filter_save(article, "meizu")
    assert text.startswith("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n")
    assert "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n" in text
    assert ('-A KUBE-FORWARD -s 172.30.0.0/16 -m comment --comment "kubernetes forwarding conntrack pod source rule" '
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n") in text
    assert text.count(":FORWARD") == 1 and text.endswith("COMMIT\n")


def test_flannel_version_is_checked(article):
    import pytest
    with pytest.raises(ck.CourseError, match=r"flannel\.version: 'latest' is not modelled"):
        article.with_changes({"flannel.version": "latest"})


# -- case 4: from the node ----------------------------------------------------------------

def test_from_the_node_source_is_chosen_by_the_route_then_marked_dnated_and_masqueraded():
    sc = ck.load_scenario("from-node")
    assert str(sc.client.ip) == "10.167.226.38"                 # the default route's device, enp4s0
    w = ck.walk(sc)
    first = w.path(0)[0]
    assert (first.node, first.iface, first.direction) == ("xiaomi", "flannel.1", "out")   # no veth, no docker0
    assert addrs(first) == "172.30.83.0:44000 > 172.30.20.2:80"  # DNAT in nat OUTPUT, then MASQUERADE
    entries = [d.entry for d in first.decisions]
    assert entries[1] == "default via 10.167.226.1 dev enp4s0"   # the route at connect(): picks the source
    assert any("! -s 172.30.0.0/16" in e and e.endswith("-j KUBE-MARK-MASQ") for e in entries)  # off-cluster source
    assert "172.30.20.0/24 via 172.30.20.0 dev flannel.1 onlink" in entries       # routed again after DNAT
    masq = [d for d in first.decisions if d.effect.startswith("MASQUERADE")]
    assert masq[0].entry.startswith("-A KUBE-POSTROUTING") and "(address of flannel.1)" in masq[0].effect
    assert Ether(first.frame)[IP].ttl == 64                      # sent, not forwarded, by xiaomi
    ct = w.conntrack["xiaomi"]
    assert (str(ct.orig), str(ct.reply)) == ("10.167.226.38:44000 -> 10.254.40.119:4432",
                                             "172.30.20.2:80 -> 172.30.83.0:44000")
    back = w.path(1)[-1]
    assert (back.node, back.iface) == ("xiaomi", "flannel.1")
    assert "delivered to the socket in xiaomi's own namespace" in [d.effect for d in back.decisions]
    assert w.drops == [] and [s.label for s in w.segments][-1] == "ACK of FIN"


def test_a_node_without_a_default_route_cannot_reach_a_cluster_ip():
    sc = ck.load_scenario("from-node", {"nodes.xiaomi.defaultRoute": False})
    assert sc.client.ip is None
    w = ck.walk(sc)
    (drop,) = w.drops
    assert (drop.node, drop.reason) == ("xiaomi", "no route to 10.254.40.119")
    assert w.observations == [] and [s.label for s in w.segments] == ["SYN"]


# -- case 3: hairpin ------------------------------------------------------------------------

def test_hairpin_marks_dnats_and_masquerades_inside_docker0():
    w = ck.walk(ck.load_scenario("hairpin"))
    assert devices(w, 0) == [("nginx-1", "eth0", "out"), ("meizu", "veth9f02b5d", "in"),
                             ("meizu", "veth9f02b5d", "out"), ("nginx-1", "eth0", "in")]   # back out of its own port
    syn = w.path(0)
    assert addrs(syn[0]) == "172.30.20.2:45000 > 10.254.40.119:4432"
    assert addrs(syn[2]) == "172.30.20.1:45000 > 172.30.20.2:80"      # DNAT to itself, masqueraded to docker0's address
    entries = [d.entry for d in syn[2].decisions]
    assert "-A KUBE-SEP-U64KZY7QGGSLLWGD -s 172.30.20.2/32 -m comment --comment \"default/nginx:\" -j KUBE-MARK-MASQ" \
        in entries                                                      # hairpin: the source is the endpoint
    assert any("hairpin" in d.effect for d in syn[2].decisions)
    assert any(d.entry.startswith("-A KUBE-POSTROUTING") and "(address of docker0)" in d.effect
               for d in syn[2].decisions)
    reply = w.path(1)
    assert addrs(reply[-1]) == "10.254.40.119:4432 > 172.30.20.2:45000"   # un-SNAT and un-DNAT: the socket's peer
    assert w.drops == [] and [s.label for s in w.segments][-1] == "ACK of FIN"


def test_hairpin_mode_off_drops_at_the_bridge():
    w = ck.walk(ck.load_scenario("hairpin", {"nodes.meizu.hairpinMode": False}))
    drop = w.drops[0]
    assert len(w.drops) == 7                      # the SYN and its six retransmissions (coursekit.faults)
    assert (drop.node, drop.iface, drop.segment) == ("meizu", "veth9f02b5d", 0)
    assert "hairpin off" in drop.reason
    assert devices(w, 0)[-1] == ("meizu", "veth9f02b5d", "in")


# -- case 5: NodePort from outside ---------------------------------------------------------

def test_nodeport_from_outside_is_marked_dnated_masqueraded_and_carried_by_vxlan():
    sc = ck.load_scenario("nodeport")
    w = ck.walk(sc)
    assert devices(w, 0)[:4] == [("outside", "eth0", "out"), ("xiaomi", "enp4s0", "in"),
                                 ("xiaomi", "flannel.1", "out"), ("xiaomi", "enp4s0", "out")]
    syn = w.path(0)
    assert addrs(syn[0]) == "10.167.226.50:46000 > 10.167.226.38:30080"
    assert addrs(syn[2]) == "172.30.83.0:46000 > 172.30.20.2:80"          # DNAT + MASQUERADE to flannel.1's address
    entries = [d.entry for d in syn[2].decisions]
    assert ('-A KUBE-NODEPORTS -p tcp -m comment --comment "default/nginx:" -m tcp --dport 30080 -j KUBE-MARK-MASQ'
            in entries)
    assert any(e.startswith("-A KUBE-SERVICES") and "--dst-type LOCAL -j KUBE-NODEPORTS" in e for e in entries)
    fw = w.filter_traces[("xiaomi", "FORWARD")]
    assert fw.trace[-1] == ('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" '
                            "-m mark --mark 0x4000/0x4000 -j ACCEPT")                 # the mark lets it through
    back = w.path(1)
    assert (back[-1].node, addrs(back[-1])) == ("outside", "10.167.226.38:30080 > 10.167.226.50:46000")
    assert [o.node for o in back].count("xiaomi") == 3                      # back through xiaomi, not straight out
    assert w.segments[3].payload.startswith(b"GET / HTTP/1.1\r\nHost: 10.167.226.38:30080\r\n")
    assert w.drops == []


def test_nodeport_needs_a_nodeport(article):
    import pytest
    with pytest.raises(ck.CourseError, match=r"request\.node: service nginx port 4432 has no nodePort"):
        article.with_changes({"request.node": "xiaomi"})
    with pytest.raises(ck.CourseError, match=r"services\.nginx\.ports\.0\.nodePort: 80 is out of range"):
        article.with_changes({"services.nginx.ports.0.nodePort": 80})
