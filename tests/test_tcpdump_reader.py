"""What depends on the machine that *reads* a capture, checked against real tcpdump.

Chapter 01 says: the time a line starts with is the reader's local time (a
pcap stores UTC seconds), and the lower-case port name (``meizu.otv``) comes
from the reader's services database, while the upper-case ``OTV,`` is
tcpdump's decoder for UDP 8472.  Both are checked here on this machine.
"""

import os
import socket
import subprocess

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

import coursekit as ck
from coursekit.capture import Frame
from coursekit.tcpdump import Style, render
from conftest import ROOT, require_tool


def _run(args, tz):
    env = {"TZ": tz, "PATH": os.environ.get("PATH", "/usr/bin"), "LC_ALL": "C"}
    res = subprocess.run([require_tool("tcpdump"), *args], capture_output=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout.decode()


def test_the_readers_zone_decides_the_printed_time():
    pcap = ROOT / "data" / "captures" / "article" / "meizu-enp4s0.pcap"
    first = {tz: _run(["-nn", "-c", "1", "-r", str(pcap)], tz).split()[0] for tz in ("UTC", "CST-8")}
    assert first == {"UTC": "03:25:22.220286", "CST-8": "11:25:22.220286"}      # CST-8: POSIX for UTC+8
    # the model prints what a reader in the scenario's utcOffset would see
    for offset, tz in (("+00:00", "UTC"), ("+08:00", "CST-8")):
        sc = ck.load_scenario("article").with_changes({"utcOffset": offset})
        assert str(ck.tcpdump(sc, "meizu", "enp4s0", "udp", "-nn")).split()[0] == first[tz]


def test_port_names_come_from_the_readers_services_database(tmp_path):
    """``OTV,`` is tcpdump's decoder for 8472; the name before it is this host's /etc/services entry (or none)."""
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x0800)
                  / IP(src="127.0.0.1", dst="127.0.0.1", id=1, flags=0, ttl=64)
                  / UDP(sport=49008, dport=8472, chksum=0) / VXLAN(flags=0x08, vni=1)
                  / Ether(src="02:00:00:00:00:03", dst="02:00:00:00:00:04", type=0x0806) / (b"\0" * 28))
    frames = [Frame(1566962722220286, frame, len(frame), None)]
    pcap = tmp_path / "otv.pcap"
    ck.write_pcap(pcap, frames)
    real = _run(["-r", str(pcap)], "UTC")        # names on: 127.0.0.1 resolves from /etc/hosts
    try:
        name = socket.getservbyport(8472, "udp")
    except OSError:
        name = None                              # Debian and Ubuntu: no entry, tcpdump prints the number
    host = real.split()[2].rsplit(".", 1)[0]     # what this host calls 127.0.0.1
    style = Style(hosts={"127.0.0.1": host}, services={(8472, "udp"): name} if name else {})
    assert render(frames, style) == real
    assert f".{name or 8472}: OTV, flags [I] (0x08), overlay 0, instance 1" in real
