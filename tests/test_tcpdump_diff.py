"""Differential: coursekit's text equals real tcpdump's, packet for packet.

Every pcap under data/ and a stream of random in-scope frames are printed by
`tcpdump -r` (TZ=UTC) and by coursekit in -nn, -nn -e and -nn -v.  CI
installs Debian's tcpdump; locally these skip when it is missing.
"""

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coursekit as ck
from coursekit.capture import Frame, parse_pcap, pcap_bytes
from coursekit.tcpdump import Style, parse_flags, render
from conftest import ROOT, require_tool
from packets import captured_frame, dns_frame, linked_capture

MODES = [["-nn"], ["-nn", "-e"], ["-nn", "-v"], ["-nnev"]]
COUNT = {"packets": 0, "differ": 0}


def real_tcpdump(pcap: Path, flags, flt: str = "") -> str:
    tcpdump = require_tool("tcpdump")
    env = {"TZ": "UTC", "PATH": os.environ.get("PATH", "/usr/bin"), "LC_ALL": "C"}
    cmd = [tcpdump, "-r", str(pcap), *flags] + ([flt] if flt else [])
    res = subprocess.run(cmd, capture_output=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout.decode("utf-8", "replace")


def ours(frames, flags) -> str:
    return render(frames, Style(**parse_flags(flags)))


def data_pcaps():
    return sorted((ROOT / "data" / "captures").rglob("*.pcap"))


def test_there_are_data_pcaps():
    assert len(data_pcaps()) >= 30


@pytest.mark.parametrize("flags", MODES, ids=" ".join)
def test_every_data_pcap(flags):
    require_tool("tcpdump")
    for pcap in data_pcaps():
        _, frames = ck.read_pcap(pcap)
        expected = real_tcpdump(pcap, flags)
        got = ours(frames, flags)
        COUNT["packets"] += len(frames)
        assert got == expected, pcap.name


def _same_as_tcpdump(tmp_path_factory, name, fr, mode):
    """Write ``fr`` as a pcap, print it with real tcpdump and with ours in ``mode``: the same text."""
    path = tmp_path_factory.mktemp("diff") / f"{name}.pcap"
    path.write_bytes(pcap_bytes(fr))
    expected = real_tcpdump(path, mode)
    got = ours(parse_pcap(path.read_bytes())[1], mode)
    COUNT["packets"] += len(fr)
    if got != expected:
        COUNT["differ"] += len(fr)
    assert got == expected


@settings(max_examples=int(os.environ.get("DIFF_EXAMPLES", "300")), deadline=None,
          derandomize=os.environ.get("DIFF_RANDOM") != "1",   # CI: the same examples every run
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames=st.lists(captured_frame(), min_size=1, max_size=8), mode=st.sampled_from(MODES))
def test_random_frames(tmp_path_factory, frames, mode):
    require_tool("tcpdump")
    fr = [Frame(1566962722_000000 + i * 1000, d, w) for i, (d, w) in enumerate(frames)]
    _same_as_tcpdump(tmp_path_factory, "random", fr, mode)


@settings(max_examples=int(os.environ.get("DIFF_EXAMPLES", "300")), deadline=None,
          derandomize=os.environ.get("DIFF_RANDOM") != "1",
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cap=linked_capture(), mode=st.sampled_from(MODES))
def test_random_frames_of_every_link_type(tmp_path_factory, cap, mode):
    """Raw IPv4, Linux cooked v1/v2, unknown ethertypes and invalid record headers, as tcpdump prints them."""
    require_tool("tcpdump")
    lt, frames = cap
    fr = [Frame(1566962722_000000 + i * 1000, d, w, None, lt) for i, (d, w) in enumerate(frames)]
    _same_as_tcpdump(tmp_path_factory, "linked", fr, mode)


@settings(max_examples=int(os.environ.get("DIFF_EXAMPLES", "300")), deadline=None,
          derandomize=os.environ.get("DIFF_RANDOM") != "1",
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames=st.lists(dns_frame(), min_size=1, max_size=6), mode=st.sampled_from(MODES))
def test_random_dns_messages(tmp_path_factory, frames, mode):
    """Traffic case 6: queries and answers (ids, flags, rcodes, counts, A/AAAA/SOA, compressed names)
    print as tcpdump prints them."""
    require_tool("tcpdump")
    fr = [Frame(1566962722_000000 + i * 1000, d) for i, d in enumerate(frames)]
    _same_as_tcpdump(tmp_path_factory, "dns", fr, mode)


def test_report_counts():
    """Print how many packets the differential run compared (for the issue note)."""
    print(f"\ndifferential: {COUNT['packets']} packets compared, {COUNT['differ']} differed")


def test_vxlan_nested_1300_deep_prints_as_tcpdump(tmp_path):
    """The inner frame is printed in a loop: any depth prints, as tcpdump's does, without recursion."""
    import struct
    require_tool("tcpdump")

    def eth_ip(proto, payload):
        return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, b"\n\0\0\1", b"\n\0\0\2") + payload

    frame = eth_ip(1, struct.pack("!BBHHH", 8, 0, 0, 1, 1))
    for _ in range(1300):                       # as deep as IPv4's 16-bit total length allows
        vx = b"\x08\0\0\0\0\0\x01\0" + frame
        frame = eth_ip(17, struct.pack("!HHHH", 40000, 4789, 8 + len(vx), 0) + vx)
    path = tmp_path / "deep.pcap"
    path.write_bytes(pcap_bytes([Frame(1566962722_000000, frame)]))
    expected = real_tcpdump(path, ["-nn"])
    assert expected.count("VXLAN") == 1300
    assert ours(parse_pcap(path.read_bytes())[1], ["-nn"]) == expected
