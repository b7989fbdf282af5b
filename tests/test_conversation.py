"""The TCP conversation's kernel details (net/ipv4/tcp_output.c, tcp_input.c, tcp_minisocks.c, ip_output.c).

Each was seen on a real kernel in the live lab (tests/test_lab.py compares them there);
these check the model's rule on its own, without a lab.
"""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

import coursekit as ck
from coursekit import conversation as conv
from coursekit.explore import apply

F, S, P, A = conv.FIN, conv.SYN, conv.PSH, conv.ACK


def _server_data(segs):
    return [(s.flags, len(s.payload)) for s in segs if s.sender == "server" and s.payload]


def test_article_one_body_segment_keeps_psh_and_its_own_ack(article):
    segs = conv.segments(article)
    assert _server_data(segs) == [(P | A, 233), (F | P | A, 612)]
    # 612 bytes >= the client's receive-MSS estimate (536 at first, then 612): the ACK leaves at once
    assert [s.label for s in segs if s.sender == "client"][-2:] == ["ACK of body + FIN", "FIN"]
    assert segs[-1].sent_from == "time-wait" and segs[1].sent_from == "listener"
    assert len(segs) == 11


def test_a_split_write_has_psh_on_its_last_segment_only(article):
    sc = apply(article, {"pod_mtu": 600})                 # MSS 560, 548 after the TS option
    assert _server_data(conv.segments(sc)) == [(P | A, 233), (A, 548), (F | P | A, 64)]


def test_a_short_last_segment_with_the_fin_is_acked_by_the_clients_fin(article):
    sc = apply(article, {"pod_mtu": 600})
    segs = conv.segments(sc)
    fin_end = segs[-1].seq                              # the server's last ACK sits at its FIN + 1
    acks_of_fin = [s for s in segs if s.sender == "client" and s.ack == fin_end]
    assert [s.flags for s in acks_of_fin] == [F | A]     # no separate ACK: the FIN carries it
    assert segs[-1].sent_from == "socket"                # the full socket answers from FIN_WAIT2
    assert len(segs) == 12


def test_client_receive_mss_estimate_follows_tcp_measure_rcv_mss():
    seg = lambda n, flags=A: conv.Segment(0, "server", "", flags, 0, 0, b"x" * n, 0)   # noqa: E731
    assert conv.client_rcv_mss(1398, 1398, []) == 536                          # TCP_MSS_DEFAULT caps the start
    assert conv.client_rcv_mss(500, 488, []) == 488                            # a small MSS starts lower
    assert conv.client_rcv_mss(1398, 1398, [seg(233, P | A), seg(612, F | P | A)]) == 612
    assert conv.client_rcv_mss(536, 524, [seg(524), seg(88, F | P | A)]) == 524
    assert conv.client_rcv_mss(1398, 1398, [seg(300), seg(300)]) == 300      # two equal non-PSH segments
    assert conv.client_rcv_mss(1398, 1398, [seg(300, P | A), seg(300, P | A)]) == 536   # remnants do not count
    assert conv.client_rcv_mss(1398, 1398, [seg(2000)]) == 1398                # capped at advmss


def _ids(sc, owner="nginx-1", iface="eth0"):
    out = []
    for f in ck.capture(sc, owner, iface):
        p = Ether(f.data)
        if p.haslayer(TCP):
            out.append((p[TCP].sport == 80, str(p[TCP].flags), p[IP].id))
    return out


def test_time_wait_ack_carries_ip_id_zero_the_full_socket_counts_on(article):
    ids = _ids(article)
    server = [(f, i) for srv, f, i in ids if srv]
    assert server[0] == ("SA", 0) and server[-1] == ("A", 0)                  # listener, TIME_WAIT
    counted = [i for f, i in server[1:-1]]
    assert counted == list(range(counted[0], counted[0] + len(counted)))
    folded = [(f, i) for srv, f, i in _ids(apply(article, {"pod_mtu": 600})) if srv]
    assert folded[-1][1] == folded[-2][1] + 1 != 0


def test_the_folded_fin_leaves_after_the_last_segment_arrives(article):
    w = ck.walk(apply(article, {"pod_mtu": 600}))
    last_data = max((s for s in w.segments if s.sender == "server" and s.payload), key=lambda s: s.seq)
    fin = next(s for s in w.segments if s.sender == "client" and s.flags & F)
    assert fin.trigger == last_data.index
    arrived = max(o.time_us for o in w.observations if o.segment == last_data.index)
    assert fin.send_us >= arrived
