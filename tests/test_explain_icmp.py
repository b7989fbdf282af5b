"""ICMP errors are attached to the connection they report (the quoted header), through NAT."""

from __future__ import annotations

from scapy.all import ICMP, IP, TCP, UDP, Ether, wrpcap

from coursekit.explanation import explain

MAC = dict(src="02:42:ac:1e:53:09", dst="02:42:5b:d1:7c:0e", type=0x800)


def _write(path, packets):
    frames = []
    for t, p in packets:
        f = Ether(**MAC) / p
        f.time = t
        frames.append(f)
    wrpcap(str(path), frames)


def _syn(src, sport, dst, dport, ttl):
    return IP(src=src, dst=dst, id=4242, ttl=ttl) / TCP(sport=sport, dport=dport, flags="S", seq=1000)


def test_an_error_through_nat_joins_its_connection(tmp_path):
    client = _syn("172.30.83.9", 40000, "10.254.40.119", 4432, 64)       # busybox's view
    wire = _syn("172.30.83.0", 40000, "172.30.20.2", 80, 63)             # after DNAT and MASQUERADE on xiaomi
    # meizu reports the SYN it got; busybox gets the error with the header it quotes rewritten back by
    # xiaomi's conntrack (nf_nat_icmp_reply_translation; the outer source here is test input)
    err_far = IP(src="172.30.20.0", dst="172.30.83.0", id=777, ttl=64) / ICMP(type=3, code=1) / bytes(wire)[:28]
    err_near = IP(src="10.254.40.119", dst="172.30.83.9", id=777, ttl=63) / ICMP(type=3, code=1) / bytes(client)[:28]
    other = IP(src="172.30.83.9", dst="10.167.226.50", id=9, ttl=64) / UDP(sport=5353, dport=53) / (b"x" * 12)
    _write(tmp_path / "busybox-eth0.pcap", [(1.0, client), (1.002, err_near), (1.003, other)])
    _write(tmp_path / "xiaomi-flannel.1.pcap", [(1.0001, wire), (1.0015, IP(bytes(err_far)))])
    ex = explain(sorted(tmp_path.glob("*.pcap")))
    tcp = [c for c in ex.conversations if c.proto == 6]
    assert len(tcp) == 1 and len(ex.conversations) == 2            # the error is no conversation of its own
    err = [p for p in tcp[0].packets if p.flow == "icmp error"]
    assert len(err) == 1 and err[0].places == ["xiaomi flannel.1", "busybox eth0"]   # TTL 64, then 63
    kinds = [c.kind for c in err[0].changes[0]]
    assert kinds == ["un-SNAT", "un-DNAT", "TTL", "quoted"]
    quoted = err[0].changes[0][-1]
    assert (quoted.old, quoted.new) == ("172.30.83.0:40000 > 172.30.20.2:80", "172.30.83.9:40000 > 10.254.40.119:4432")
    assert "unreachable code 1 for TCP 172.30.83.9.40000 > 10.254.40.119.4432" in ex.text()


def test_an_error_alone_names_the_connection_it_quotes(tmp_path):
    wire = _syn("172.30.83.0", 40000, "172.30.20.2", 80, 63)
    err = IP(src="172.30.20.0", dst="172.30.83.0", id=777, ttl=64) / ICMP(type=11, code=0) / bytes(wire)[:28]
    _write(tmp_path / "meizu-enp4s0.pcap", [(1.0, err)])
    ex = explain(tmp_path / "meizu-enp4s0.pcap")
    (c,) = ex.conversations
    assert c.proto == 6 and c.title == "TCP 172.30.83.0:40000 -> 172.30.20.2:80"
    assert c.packets[0].flow == "icmp error" and "time exceeded" in c.packets[0].summary()


def test_a_cut_error_is_still_an_icmp_packet(tmp_path):
    err = IP(src="172.30.20.0", dst="172.30.83.0", id=777, ttl=64) / ICMP(type=3, code=3) / b"\x45\x00"
    _write(tmp_path / "meizu-enp4s0.pcap", [(1.0, err)])
    (c,) = explain(tmp_path / "meizu-enp4s0.pcap").conversations
    assert c.proto == 1 and c.packets[0].sightings[0].quoted == ()


# --- review s5 of chapter 10: retransmissions, a short snapshot, -i any with the v1 cooked header ----------

def _synack(ts):
    return IP(src="172.30.20.2", dst="172.30.83.9", id=0, ttl=64, flags="DF") / TCP(
        sport=80, dport=40000, flags="SA", seq=5000, ack=1001, options=[("Timestamp", (ts, 7))])


def test_a_retransmitted_synack_is_a_packet_of_its_own(tmp_path):
    # Linux sends a SYN-ACK with IP id 0; its retransmission 1 s later has the same seq, ack, flags and length
    _write(tmp_path / "nginx-eth0.pcap", [(1.0, _synack(100)), (2.0, _synack(1100)), (3.0, _synack(2100))])
    _write(tmp_path / "busybox-eth0.pcap", [(1.0001, _synack(100)), (3.0001, _synack(2100))])
    (c,) = explain(sorted(tmp_path.glob("*.pcap"))).conversations
    assert [p.places for p in c.packets] == [["nginx eth0", "busybox eth0"], ["nginx eth0"],
                                              ["nginx eth0", "busybox eth0"]]


def test_a_retransmission_without_timestamps_is_not_seen_twice_at_one_place(tmp_path):
    def bare():
        return IP(src="172.30.20.2", dst="172.30.83.9", id=0, ttl=64) / TCP(sport=80, dport=40000, flags="SA",
                                                                             seq=5000, ack=1001)
    _write(tmp_path / "nginx-eth0.pcap", [(1.0, bare()), (1.5, bare())])
    _write(tmp_path / "busybox-eth0.pcap", [(1.0001, bare())])
    (c,) = explain(sorted(tmp_path.glob("*.pcap"))).conversations
    assert all(len(set(p.places)) == len(p.places) for p in c.packets) and len(c.packets) == 2


def test_a_short_snapshot_is_said_and_nothing_is_invented(tmp_path):
    from scapy.all import PcapWriter, conf
    frame = bytes(Ether(**MAC) / IP(src="172.30.83.0", dst="172.30.20.2", id=5, ttl=63) /
                  TCP(sport=38200, dport=80, flags="S", seq=154323928))
    w = PcapWriter(str(tmp_path / "meizu-flannel.1.pcap"), linktype=1, sync=True)
    q = conf.raw_layer(frame[:14 + 20 + 8])                   # -s 42: ports and seq, no flags
    q.time, q.wirelen = 1.0, len(frame)
    w.write(q)
    w.close()
    ex = explain(tmp_path / "meizu-flannel.1.pcap")
    s = ex.conversations[0].packets[0].sightings[0]
    assert (s.sport, s.dport, s.seq, s.cut) == (38200, 80, 154323928, "tcp")
    assert "[|tcp]" in s.line() and "[none]" not in ex.text()
    assert any("cut by the snapshot length (-s) inside the TCP header" in x for x in ex.limits)


def test_any_with_the_v1_cooked_header_says_it_has_no_interface(tmp_path):
    from scapy.all import CookedLinux, PcapWriter
    w = PcapWriter(str(tmp_path / "xiaomi-any.pcap"), linktype=113, sync=True)
    p = CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02\x42\xac\x1e\x53\x09\x00\x00", proto=0x800) / \
        _syn("172.30.83.9", 40000, "10.254.40.119", 4432, 64)
    p.time = 1.0
    w.write(p)
    w.close()
    ex = explain(tmp_path / "xiaomi-any.pcap")
    assert ex.captures[0][1] == ["xiaomi any"]
    assert any("Linux cooked v1" in x and "records no interface" in x for x in ex.limits)


def test_the_models_any_capture_is_placed_by_the_states_interface_indexes(tmp_path):
    from coursekit.capture import capture_any, pcapng_bytes
    from coursekit.collect import write_model_state
    from conftest import ROOT
    write_model_state("article", tmp_path / "state")
    (tmp_path / "xiaomi-any.pcapng").write_bytes(pcapng_bytes(capture_any("article", "xiaomi"), tsresol=9))
    ex = explain([ROOT / "data/captures/article/busybox-eth0.pcap", tmp_path / "xiaomi-any.pcapng",
                  ROOT / "data/captures/article/meizu-enp4s0.pcap"], state=tmp_path / "state")
    syn = ex.conversation(1).packets[0]
    assert syn.places == ["busybox eth0", "xiaomi veth4c1a3e7", "xiaomi docker0", "xiaomi flannel.1", "xiaomi enp4s0",
                          "meizu enp4s0"]
    assert syn.changes[-1] == []            # the wire: the same outer headers, although one side has no dst MAC
    # a cooked header keeps the source MAC only: no MAC change can be shown inside xiaomi
    assert all(ch.kind != "MAC" for step in syn.changes[1:] for ch in step)
    assert [ch.kind for ch in syn.changes[1]] == ["DNAT"]
