"""explain and the capture reader on what real captures are like: damaged, mixed, partial, odd encapsulations.

Every input gets an answer: the frames and conversations that could be read,
and one short line for what could not -- never a traceback, a hang or a
silently wrong walk.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN

import coursekit as ck
from coursekit.capture import Frame, parse_capture, parse_pcap, pcap_bytes, pcapng_bytes, read_capture
from coursekit.explanation import decode, explain
from conftest import ROOT

ART = ROOT / "data" / "captures" / "article"
M1, M2, M3, M4 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03", "02:00:00:00:00:04"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "coursekit", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def frames_of(path):
    return ck.read_pcap(path)[1]


def write(path, frames, ng=False):
    path.write_bytes(pcapng_bytes(frames) if ng else pcap_bytes(frames))
    return path


# --- the reader ---------------------------------------------------------------------------------

def test_classic_pcap_in_both_byte_orders_and_nanoseconds_reads_the_same_frames():
    data = (ART / "meizu-enp4s0.pcap").read_bytes()
    base = parse_capture(data).frames
    n = (len(data) - 24)
    for e in ("<", ">"):
        for magic, scale in ((0xA1B2C3D4, 1), (0xA1B23C4D, 1000)):
            out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, 1)]
            for f in base:
                sec, us = divmod(f.time_us, 1_000_000)
                out.append(struct.pack(e + "IIII", sec, us * scale, len(f.data), f.wire_len) + f.data)
            back = parse_capture(b"".join(out)).frames
            assert [(f.time_us, f.data) for f in back] == [(f.time_us, f.data) for f in base], (e, scale)
    assert n > 0


def test_pcapng_keeps_each_interfaces_link_type_name_and_resolution():
    eth = frames_of(ART / "meizu-enp4s0.pcap")
    a = [Frame(f.time_us, f.data, None, None, 1, "enp4s0") for f in eth]
    b = [Frame(f.time_us + 7, f.data[14:], None, None, 101, "tun0") for f in eth]
    for tsresol in (6, 9, 3):
        for be in (False, True):
            cap = parse_capture(pcapng_bytes(a + b, tsresol=tsresol, big_endian=be))
            assert cap.problem is None and cap.format == "pcapng"
            assert cap.interfaces == (("enp4s0", 1), ("tun0", 101))
            got = [(f.interface, f.linktype, f.time_us) for f in cap.frames]
            unit = 10 ** (6 - tsresol) if tsresol < 6 else 1
            assert got == [(f.interface, f.linktype, f.time_us // unit * unit) for f in a + b]


def test_pcapng_binary_time_resolution_and_offset():
    """if_tsresol with the top bit set is 2^-n; if_tsoffset adds whole seconds (pcapng draft, section 4.2)."""
    body = struct.pack("<HHI", 1, 0, 65535) + struct.pack("<HH", 9, 1) + bytes([0x80 | 10]) + b"\0\0\0" + \
        struct.pack("<HHq", 14, 8, 100) + struct.pack("<HH", 0, 0)
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<II", 1, len(body) + 12) + body + struct.pack("<I", len(body) + 12)
    pkt = bytes(Ether(src=M1, dst=M2) / IP(src="10.0.0.1", dst="10.0.0.2", id=1) / UDP(sport=1, dport=2))
    pad = pkt + b"\0" * (-len(pkt) % 4)
    ts = 3 * 1024 + 512                              # 3.5 s in 1/1024 s
    epb = struct.pack("<IIIIIII", 6, 32 + len(pad), 0, ts >> 32, ts & 0xFFFFFFFF, len(pkt), len(pkt)) + pad + \
        struct.pack("<I", 32 + len(pad))
    cap = parse_capture(shb + idb + epb)
    assert cap.problem is None
    assert cap.frames[0].time_us == 103_500_000


@pytest.mark.parametrize("cut", [30, 100, 500])
def test_a_truncated_capture_keeps_what_came_before(tmp_path, cut):
    for ng in (False, True):
        data = (pcapng_bytes(frames_of(ART / "meizu-enp4s0.pcap")) if ng
                else (ART / "meizu-enp4s0.pcap").read_bytes())
        p = tmp_path / ("cut.pcapng" if ng else "cut.pcap")
        p.write_bytes(data[:len(data) - cut])
        cap = read_capture(p)
        assert cap.problem is not None and "truncated" in str(cap.problem)
        assert 0 < len(cap.frames) < 11
        with pytest.raises(ck.CourseError, match="truncated"):
            ck.read_pcap(p)
        ex = explain([p])
        assert ex.conversations and any("truncated" in x and "before it" in x for x in ex.limits)


def _block(btype, body, blen=None, trailer=None):
    n = len(body) + 12
    return struct.pack("<II", btype, blen or n) + body + struct.pack("<I", trailer or n)


SHB = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
IDB = _block(1, struct.pack("<HHI", 1, 0, 262144))


@pytest.mark.parametrize("data,words", [
    (SHB + _block(1, struct.pack("<HHI", 1, 0, 0), trailer=99), "lengths"),
    (SHB + IDB + struct.pack("<II", 6, 0xFFFFFFF0) + b"\0" * 40, "announced"),
    (SHB + IDB + struct.pack("<II", 6, 8) + b"\0" * 8, "announced"),
    (SHB + IDB + _block(6, struct.pack("<IIIII", 3, 0, 0, 4, 4) + b"abcd"), "interface 3"),
    (SHB + IDB + _block(6, struct.pack("<IIIII", 0, 0, 0, 4000, 4000) + b"abcd"), "announced"),
    (SHB + _block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 9, 1) + b"\x7f\0\0\0"), "if_tsresol"),
    (SHB[:8] + b"\x11\x22\x33\x44" + SHB[12:], "byte-order"),
    (SHB, "no interface"),
    (SHB + _block(1, struct.pack("<HHI", 105, 0, 0)), "link type 105"),
], ids=["trailer", "huge", "short", "no-interface", "overlong-packet", "tsresol", "bom", "empty", "linktype"])
def test_corrupt_pcapng_gets_one_message(data, words):
    with pytest.raises(ck.CourseError, match=words) as e:
        parse_pcap(data, "x.pcapng")
    assert "\n" not in str(e.value) and len(str(e.value)) < 400


def test_an_interface_of_another_link_type_is_skipped_and_said(tmp_path):
    eth = [Frame(f.time_us, f.data, None, None, 1, "eth0") for f in frames_of(ART / "meizu-enp4s0.pcap")]
    wifi = [Frame(1, b"\0" * 40, None, None, 105, "wlan0")]
    p = tmp_path / "meizu-enp4s0.pcapng"
    p.write_bytes(pcapng_bytes(wifi + eth))
    cap = read_capture(p)
    assert cap.problem is None and len(cap.frames) == 11 and cap.skipped == {"link type 105 on wlan0": 1}
    ex = explain([p])
    assert any("link type 105 on wlan0" in x for x in ex.limits)


def test_a_file_that_is_no_capture_is_listed_and_the_others_explained(tmp_path):
    bad = tmp_path / "notes.pcap"
    bad.write_text("hello, not a capture at all\n")
    wifi = tmp_path / "wifi.pcap"
    wifi.write_bytes(pcap_bytes([Frame(0, b"\0" * 30)], linktype=105))
    ex = explain([bad, wifi, ART / "meizu-enp4s0.pcap"])
    assert len(ex.conversations) == 1
    assert any(x.startswith("notes.pcap: not explained") for x in ex.limits)
    assert any(x.startswith("wifi.pcap: not explained: link type 105") for x in ex.limits)
    with pytest.raises(ck.CourseError, match="link type 105"):
        explain([wifi])
    with pytest.raises(ck.CourseError, match="no such file"):
        explain([tmp_path / "typo.pcap", ART / "meizu-enp4s0.pcap"])


def test_mutated_captures_never_crash(tmp_path):
    rnd = random.Random(14)
    seeds = [(ART / "xiaomi-enp4s0.pcap").read_bytes(), pcapng_bytes(frames_of(ART / "xiaomi-enp4s0.pcap"))]
    for i in range(300):
        data = bytearray(rnd.choice(seeds))
        for _ in range(rnd.randint(1, 8)):
            pos = rnd.randrange(len(data))
            data[pos] = rnd.randrange(256)
        if rnd.random() < 0.3:
            data = data[:rnd.randrange(len(data))]
        p = tmp_path / f"m{i % 3}.pcap"
        p.write_bytes(bytes(data))
        try:
            ex = explain([p])
        except ck.CourseError as e:
            assert "\n" not in str(e)
            continue
        ex.text()
        json.loads(ex.json())


def test_the_cli_gives_one_line_for_a_bad_capture(tmp_path):
    r = cli("explain", str(tmp_path / "missing.pcap"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no such file" in r.stderr
    r = cli("explain", "/dev/zero")
    assert r.returncode == 2 and "64 MiB" in r.stderr and r.stderr.count("\n") == 1


# --- what real captures hold --------------------------------------------------------------------

def _pkt(src, dst, sport, dport, proto="tcp", ttl=64, ip_id=1, seq=1000, ack=0, flags="S", payload=b"",
         smac=M1, dmac=M2):
    l4 = TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags) if proto == "tcp" else \
        UDP(sport=sport, dport=dport)
    return Ether(src=smac, dst=dmac) / IP(src=src, dst=dst, ttl=ttl, id=ip_id) / l4 / payload


def test_unrelated_traffic_is_tallied_and_the_walk_is_unchanged(tmp_path):
    noise = [Ether(src=M1, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.167.226.1", pdst="10.167.226.39"),
             Ether(src=M1, dst="01:00:5e:00:00:01") / IP(src="10.167.226.1", dst="224.0.0.1", proto=2) / b"\x11\0\0\0",
             Ether(src=M1, dst=M2) / IPv6(src="fe80::1", dst="ff02::1") / UDP(sport=546, dport=547),
             _pkt("10.167.226.5", "10.167.226.39", 51000, 22, flags="PA", payload=b"SSH-2.0-OpenSSH_9.6\r\n"),
             _pkt("10.167.226.38", "10.167.226.39", 52000, 10250, ip_id=9, flags="S")]
    clean = frames_of(ART / "meizu-enp4s0.pcap")
    t0 = clean[0].time_us
    mixed = sorted(clean + [Frame(t0 + 3 + i, bytes(p)) for i, p in enumerate(noise)], key=lambda f: f.time_us)
    paths = [write(tmp_path / "meizu-enp4s0.pcap", mixed), ART / "xiaomi-enp4s0.pcap", ART / "busybox-eth0.pcap"]
    ex = explain(paths)
    ref = explain([ART / "meizu-enp4s0.pcap", ART / "xiaomi-enp4s0.pcap", ART / "busybox-eth0.pcap"])
    nginx = [c for c in ex.conversations if c.title == ref.conversations[0].title]
    assert len(nginx) == 1 and [p.places for p in nginx[0].packets] == [p.places for p in ref.conversations[0].packets]
    assert ex.other == {"ARP": 1, "IPv6": 1}
    titles = {c.title for c in ex.conversations}
    assert {"TCP 10.167.226.5:51000 -> 10.167.226.39:22", "TCP 10.167.226.38:52000 -> 10.167.226.39:10250",
            "IGMP 10.167.226.1 -> 224.0.0.1"} <= titles
    assert any("seen at one place only" in x for x in ex.limits)


def test_captures_from_one_node_only(tmp_path):
    files = sorted(ART.glob("xiaomi-*.pcap"))
    ex = explain(files)
    assert len(ex.conversations) == 1
    for p in ex.conversations[0].packets:
        assert {pl.split()[0] for pl in p.places} == {"xiaomi"}
        assert len(p.places) == 4


def test_dns_through_a_cluster_ip_and_icmp_through_masquerade(tmp_path):
    q = DNS(id=4242, rd=1, qd=DNSQR(qname="nginx.default.svc.cluster.local", qtype="A"))
    pod = Ether(src=M1, dst=M2) / IP(src="172.30.83.9", dst="10.254.0.2", ttl=64, id=0) / \
        UDP(sport=40000, dport=53) / q
    node = Ether(src=M3, dst=M4) / IP(src="172.30.83.9", dst="172.30.20.5", ttl=63, id=0) / \
        UDP(sport=40000, dport=53) / q
    ping = Ether(src=M1, dst=M2) / IP(src="172.30.83.9", dst="8.8.8.8", ttl=64, id=77) / ICMP(id=5, seq=1) / (b"x" * 56)
    out = Ether(src=M3, dst=M4) / IP(src="10.167.226.38", dst="8.8.8.8", ttl=63, id=77) / ICMP(id=31000, seq=1) / \
        (b"x" * 56)
    a = write(tmp_path / "busybox-eth0.pcap", [Frame(10, bytes(pod)), Frame(20, bytes(ping))])
    b = write(tmp_path / "xiaomi-enp4s0.pcap", [Frame(15, bytes(node)), Frame(25, bytes(out))])
    ex = explain([a, b])
    dns, icmp = ex.conversations
    assert dns.title == "UDP 172.30.83.9:40000 -> 10.254.0.2:53"
    first = dns.packets[0]
    assert "DNS query 4242 A? nginx.default.svc.cluster.local." in first.sightings[0].line()
    assert [(c.kind, c.old, c.new) for c in first.changes[0] if c.kind == "DNAT"] == \
        [("DNAT", "10.254.0.2:53", "172.30.20.5:53")]
    assert icmp.proto == 1 and icmp.packets[0].places == ["busybox eth0", "xiaomi enp4s0"]
    assert [(c.kind, c.new) for c in icmp.packets[0].changes[0] if c.kind == "SNAT"] == [("SNAT", "10.167.226.38")]


def test_vlan_tags_ip_in_ip_and_vxlan_on_a_port_the_user_names(tmp_path):
    inner = _pkt("172.30.83.9", "172.30.20.2", 38000, 80, ttl=63, ip_id=5)
    tagged = Ether(src=M1, dst=M2) / Dot1Q(vlan=100) / inner[IP]
    ipip = Ether(src=M3, dst=M4) / IP(src="10.0.0.1", dst="10.0.0.2", proto=4, id=9, ttl=64) / inner[IP]
    vx = Ether(src=M3, dst=M4) / IP(src="10.0.0.1", dst="10.0.0.2", id=10) / UDP(sport=50000, dport=9999) / \
        VXLAN(flags=0x08, vni=7) / inner
    files = [write(tmp_path / "a-eth0.pcap", [Frame(1, bytes(inner))]),
             write(tmp_path / "a-vlan100.pcap", [Frame(2, bytes(tagged))]),
             write(tmp_path / "a-tunl0.pcap", [Frame(3, bytes(ipip))]),
             write(tmp_path / "a-eth1.pcap", [Frame(4, bytes(vx))])]
    ex = explain(files)
    places = ex.conversations[0].packets[0].places
    assert places == ["a eth0", "a vlan100", "a tunl0"]            # 9999 is not VXLAN unless named
    ex = explain(files, vxlan_ports=[9999])
    p = ex.conversations[0].packets[0]
    assert p.places == ["a eth0", "a vlan100", "a tunl0", "a eth1"]
    kinds = [[c.kind for c in step] for step in p.changes]
    assert kinds[0] == ["VLAN"] and kinds[1][-1] == "encapsulation"          # rewrite first, then encapsulate
    assert kinds[2][0] == "decapsulation" and kinds[2][-1] == "encapsulation"
    assert p.sightings[3].encap[0].vni == 7 and p.sightings[2].encap[0].kind == "IPIP"
    assert decode(bytes(vx), 1, [9999])["encap"][0].dport == 9999


def test_sll_v1_captures_decode_and_say_the_direction():
    f = frames_of(ART / "meizu-enp4s0.pcap")[0].data
    sll = struct.pack("!HHH8sH", 4, 1, 6, f[6:12] + b"\0\0", 0x0800) + f[14:]
    d = decode(sll, 113)
    assert d["direction"] == "Out" and d["encap"][0].vni == 1 and d["src"] == "172.30.83.0"


# --- state ----------------------------------------------------------------------------------------

def test_a_state_folder_with_missing_and_odd_files(tmp_path):
    st = tmp_path / "state"
    st.mkdir()
    (st / "xiaomi-state.txt").write_text("# xiaomi: ip route\n172.30.20.0/24 via 172.30.20.0 dev flannel.1 onlink\n"
                                         "# xiaomi: ip neigh\nthis is not a neighbour line\n")
    (st / "meizu-state.txt").write_text("no headers here\n")
    (st / "cluster.json").write_text("{not json")
    ex = explain([ART / "busybox-eth0.pcap", ART / "meizu-enp4s0.pcap"], state=st)
    assert len(ex.conversations) == 1
    text = "\n".join(ex.limits)
    assert "xiaomi: no ip addr, iptables-save section" in text
    assert "meizu-state.txt: no '# <node>: <command>' section" in text
    assert "cluster.json: not JSON" in text
    ch = [c for step in ex.conversations[0].packets[0].changes for c in step if c.kind == "DNAT"][0]
    assert ch.by and ch.by[0].startswith("(no rule in the state explains this DNAT")
    with pytest.raises(ck.CourseError, match="no such folder"):
        explain([ART / "busybox-eth0.pcap"], state=tmp_path / "nope")
    with pytest.raises(ck.CourseError, match="not a folder"):
        explain([ART / "busybox-eth0.pcap"], state=ART / "busybox-eth0.pcap")


def test_the_cli_explains_as_text_and_json_and_is_deterministic(tmp_path):
    files = [str(p) for p in sorted(ART.glob("*.pcap"))]
    a = cli("explain", *files, "--json", "-")
    b = cli("explain", *files, "--json", "-")
    assert a.returncode == 0 and a.stdout == b.stdout
    doc = json.loads(a.stdout)
    assert len(doc["conversations"]) == 1 and len(doc["conversations"][0]["packets"]) == 11
    t = cli("explain", *files, "--max-packets", "1")
    assert t.returncode == 0 and "conversation 1: TCP 172.30.83.9:38200 -> 10.254.40.119:4432" in t.stdout
    assert "... 10 more packets" in t.stdout


def test_collect_prints_a_read_only_script():
    r = cli("collect", "--print")
    assert r.returncode == 0
    body = [line for line in r.stdout.splitlines() if not line.startswith("#")]
    for word in (" -F", " -X", " -D", "; iptables ", "flush", " del ", " add ", " rm ", "sysctl -w", " -w ", " -D "):
        assert all(word not in line for line in body), word
    for cmd in ("ip -d addr", "ip route", "ip neigh", "bridge fdb show", "iptables-save -t nat", "conntrack -L"):
        assert cmd in r.stdout
    r = cli("collect")
    assert r.returncode == 2 and "--out" in r.stderr


def test_mutated_state_files_never_crash(tmp_path):
    from coursekit.collect import model_state_text
    good = model_state_text("article", "xiaomi")
    rnd = random.Random(10)
    junk = ["", "ip", "-A", "!", "dev", "via", "lladdr", "dst", "src=", "'", '"', "999.1.1.1/99", "/", ":", "*nat",
            "vxlan id x dstport y", "0: x: <>", "inet zz", "\x00", "é"]
    for i in range(150):
        lines = good.splitlines()
        for _ in range(rnd.randint(1, 12)):
            k = rnd.randrange(len(lines))
            words = lines[k].split(" ")
            words[rnd.randrange(len(words))] = rnd.choice(junk)
            lines[k] = " ".join(words)
        st = tmp_path / f"s{i % 2}"
        st.mkdir(exist_ok=True)
        (st / "xiaomi-state.txt").write_text("\n".join(lines))
        (st / "k.json").write_text(rnd.choice(['{"items": 3}', '{"items": [{"kind": "Service", "spec": []}]}',
                                               '[1, 2]', '{"kind": "Pod", "status": {"podIP": 5}}', "{}"]))
        try:
            ex = explain([ART / "busybox-eth0.pcap", ART / "xiaomi-enp4s0.pcap"], state=st)
        except ck.CourseError as e:
            assert "\n" not in str(e)
            continue
        ex.text()
