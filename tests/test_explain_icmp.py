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
