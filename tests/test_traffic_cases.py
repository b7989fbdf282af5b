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

def test_same_node_request_goes_up_through_docker0_and_back_down():
    w = ck.walk(ck.load_scenario("same-node"))
    assert devices(w, 0) == [("busybox", "eth0", "out"), ("xiaomi", "veth4c1a3e7", "in"),
                             ("xiaomi", "docker0", "in"), ("xiaomi", "docker0", "out"),
                             ("xiaomi", "veth9f02b5d", "out"), ("nginx-1", "eth0", "in")]
    assert not [o for o in w.observations if o.iface in ("flannel.1", "enp4s0")]      # no VXLAN at all
    syn = w.path(0)
    assert addrs(syn[1]) == "172.30.83.9:41000 > 10.254.40.119:4432"
    assert addrs(syn[2]) == "172.30.83.9:41000 > 172.30.83.2:80"      # DNAT inside the bridge (br_netfilter)
    assert Ether(syn[-1].frame)[IP].ttl == 63                         # routed once, by xiaomi
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
    # the DNAT now happens when xiaomi routes the packet: docker0 still shows the Service address
    assert addrs(syn[2]) == "172.30.83.9:41000 > 10.254.40.119:4432"
    assert addrs(syn[3]) == "172.30.83.9:41000 > 172.30.83.2:80"
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
