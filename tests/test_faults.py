"""Fault scenarios: where each drop happens and why, what tcpdump and the tables show, retransmissions with
Linux's timers (checked on the real kernel), healthy-vs-broken by interface, and the mysteries."""

import os
import re
import shutil
import subprocess
import time

import pytest

import coursekit as ck
from coursekit import conversation as conv
from coursekit import faults
from coursekit.errors import CourseError
from coursekit.faults import (FAULTS, compare, diagnose, mystery, outcome, syn_retransmit_times)
from coursekit.netfilter import filter_save
from coursekit.routing import bridge_fdb, ip_neigh
from conftest import ROOT

HEALTHY = "faults/healthy"


@pytest.fixture(scope="module")
def walks():
    names = ["healthy", "forward-policy-drop", "missing-fdb", "udp-blocked", "udp-blocked-input"]
    return {n: ck.walk(ck.load_scenario(f"faults/{n}")) for n in names}


# -- the kernel's SYN timers -------------------------------------------------------------

def test_syn_retransmissions_double_from_one_second_and_give_up_at_127s():
    # tcp(7): tcp_syn_retries defaults to 6, "retrying for up to approximately 127 seconds"
    offsets, give_up = syn_retransmit_times()
    assert [o // 1_000_000 for o in offsets] == [1, 3, 7, 15, 31, 63]
    assert give_up == 127_000_000
    gaps = [b - a for a, b in zip([0] + offsets, offsets)]
    assert all(b == 2 * a for a, b in zip(gaps, gaps[1:]))


def test_linear_timeouts_keep_the_first_interval_and_add_retransmissions():
    # measured on Linux 6.18 with the defaults (tcp_syn_retries 6, tcp_syn_linear_timeouts 4): SYNs at 0, 1,
    # 2, 3, 4, 5, 7, 11, 19, 35, 67 s, connect() failed at 133.5 s; with syn_retries 2: 6 SYNs, failed at
    # 7.2 s; with 1: 3 SYNs, 3.1 s (tcp_write_timeout: retries + linear, or tcp_model_timeout's bound)
    offsets, give_up = syn_retransmit_times(linear=4)
    assert [o // 1_000_000 for o in offsets] == [1, 2, 3, 4, 5, 7, 11, 19, 35, 67] and give_up == 131_000_000
    offsets, give_up = syn_retransmit_times(retries=2, linear=4)
    assert len(offsets) + 1 == 6 and give_up == 7_000_000
    offsets, give_up = syn_retransmit_times(retries=1, linear=4)
    assert len(offsets) + 1 == 3 and give_up == 3_000_000


@pytest.mark.parametrize("bad", [dict(retries=-1), dict(linear=True), dict(rto_us=0), dict(retries="6")])
def test_timer_arguments_are_checked(bad):
    with pytest.raises(CourseError):
        syn_retransmit_times(**bad)


def _records(pcap) -> list:
    """The frames a capture holds so far ([] while its first record is being written)."""
    try:
        return ck.read_pcap(pcap)[1]
    except Exception:
        return []


def _root_with_netns() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") and shutil.which("tcpdump") and os.path.isdir("/proc/sys/net")


@pytest.mark.skipif(not _root_with_netns(), reason="needs root, ip and tcpdump (network namespaces)")
def test_the_real_kernel_retransmits_an_unanswered_syn_on_the_models_schedule(tmp_path):
    """A SYN into a silent peer, in a throw-away namespace: the spacing matches syn_retransmit_times."""
    ns = f"pwtest-syn-{os.getpid()}"
    pcap = tmp_path / "syn.pcap"
    run = lambda *a: subprocess.run(["ip", "netns", "exec", ns, *a], check=True, capture_output=True, timeout=30)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"],
                    ["ip", "addr", "add", "10.9.0.1/24", "dev", "d0"], ["ip", "link", "set", "d0", "up"],
                    ["ip", "link", "set", "d1", "up"],
                    ["ip", "neigh", "add", "10.9.0.9", "lladdr", "02:00:00:00:00:09", "dev", "d0", "nud", "permanent"],
                    ["sysctl", "-qw", "net.ipv4.tcp_syn_retries=3"]):
            run(*cmd)
        linear = "/proc/sys/net/ipv4/tcp_syn_linear_timeouts"
        has_linear = os.path.exists(linear)
        if has_linear:
            run("sysctl", "-qw", "net.ipv4.tcp_syn_linear_timeouts=0")
        dump = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", "d0", "-w", str(pcap), "-U",
                                 "--immediate-mode", "tcp"], stderr=subprocess.PIPE)
        try:
            dump.stderr.readline()                       # "listening on d0 ..."
            client = subprocess.run(["ip", "netns", "exec", ns, "python3", "-c",
                                     "import socket,errno\ns=socket.socket()\ntry:\n s.connect(('10.9.0.9',80))\n"
                                     "except OSError as e:\n print(errno.errorcode[e.errno])"],
                                    capture_output=True, text=True, timeout=60)
            # the client gave up after its last SYN: wait until tcpdump has written every one
            want, end = 1 + len(syn_retransmit_times(retries=3, linear=0)[0]), time.monotonic() + 60
            while len(_records(pcap)) < want and time.monotonic() < end:
                time.sleep(0.05)
        finally:
            dump.terminate()
            dump.wait(timeout=10)
            dump.stderr.close()
        assert client.stdout.strip() == "ETIMEDOUT"
        _, frames = ck.read_pcap(pcap)
        times = [f.time_us - frames[0].time_us for f in frames]
        offsets, _ = syn_retransmit_times(retries=3, linear=0)
        assert len(times) == 1 + len(offsets)
        for got, want in zip(times[1:], offsets):        # timer slack: jiffies and the timer wheel
            assert abs(got - want) < 400_000, (times, offsets)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


# -- each fault: where it drops and why ----------------------------------------------------

@pytest.mark.parametrize("name, node, iface, reason", [
    ("forward-policy-drop", "meizu", "flannel.1", "FORWARD policy DROP"),
    ("missing-fdb", "xiaomi", "flannel.1", "no VXLAN FDB entry"),
    ("udp-blocked", "xiaomi", "enp4s0", "the underlay drops UDP port 8472 to meizu"),
    ("udp-blocked-input", "meizu", "enp4s0", "filter INPUT: -A INPUT -p udp -m udp --dport 8472 -j DROP"),
])
def test_each_fault_drops_every_syn_at_one_place(walks, name, node, iface, reason):
    w = walks[name]
    assert len(w.drops) == 7 and {(d.node, d.iface) for d in w.drops} == {(node, iface)}
    assert all(d.reason.startswith(reason) for d in w.drops)
    assert [d.segment for d in w.drops] == list(range(7))
    assert diagnose(w.scenario) == FAULTS[name.replace("-input", "")].name
    assert "ETIMEDOUT" in outcome(w)
    assert not [o for o in w.observations if o.node == "nginx-1"]


def test_the_healthy_cluster_is_answered(walks):
    w = walks["healthy"]
    assert w.drops == [] and diagnose(w.scenario) == "healthy"
    assert [s.label for s in w.segments][-1] == "ACK of FIN"


def test_retransmitted_syns_are_the_same_syn_with_new_timestamps_and_ip_ids(walks):
    w = walks["missing-fdb"]
    sc = w.scenario
    syns = w.at("busybox", "eth0")
    offsets, _ = syn_retransmit_times()
    assert [o.time_us - syns[0].time_us for o in syns[1:]] == offsets
    seqs = {int.from_bytes(o.frame[38:42], "big") for o in syns}
    assert seqs == {sc.observed.client_isn} and all(o.frame[47] == conv.SYN for o in syns)
    ids = [int.from_bytes(o.frame[18:20], "big") for o in syns]
    assert ids == [(ids[0] + i) & 0xFFFF for i in range(7)]          # the connected socket's counter
    ts = [s.ts_val for s in w.segments]
    assert [b - a for a, b in zip(ts, ts[1:])] == [o // 1000 for o in
                                                    [offsets[0]] + [b - a for a, b in zip(offsets, offsets[1:])]]


def test_a_reset_is_not_retransmitted():
    w = ck.walk(ck.load_scenario("same-node-no-br-netfilter"))
    assert not any(s.retransmission for s in w.segments)
    assert any(s.flags & conv.RST for s in w.segments)


# -- what tcpdump shows ---------------------------------------------------------------------

def test_tcpdump_shows_seven_syns_up_to_the_drop_and_nothing_after(walks):
    sc = ck.load_scenario("faults/missing-fdb")
    text = ck.tcpdump(sc, "xiaomi", "flannel.1", flags="-nn")
    assert text.packets == 7 and str(text).count("Flags [S]") == 7
    assert ck.tcpdump(sc, "xiaomi", "enp4s0").packets == 0
    stamps = re.findall(r"^(\d\d:\d\d:\d\d)\.", str(ck.tcpdump(sc, "busybox", "eth0", flags="-nn")), re.M)
    assert stamps == ["11:40:00", "11:40:01", "11:40:03", "11:40:07", "11:40:15", "11:40:31", "11:41:03"]
    sc = ck.load_scenario("faults/udp-blocked-input")
    assert ck.tcpdump(sc, "meizu", "enp4s0").packets == 7        # tcpdump taps before netfilter
    assert ck.tcpdump(sc, "meizu", "flannel.1").packets == 0


def test_fault_captures_are_in_data_for_the_real_tcpdump_comparison():
    # tests/test_tcpdump_diff.py prints every pcap under data/captures with the real tcpdump
    pcaps = sorted((ROOT / "data" / "captures" / "faults").rglob("*.pcap"))
    names = {p.parent.name for p in pcaps}
    assert {"healthy", "forward-policy-drop", "missing-fdb", "udp-blocked", "udp-blocked-input"} <= names
    _, frames = ck.read_pcap(ROOT / "data" / "captures" / "faults" / "missing-fdb" / "busybox-eth0.pcap")
    assert len(frames) == 7


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
def test_real_tcpdump_prints_the_retransmissions_as_the_model_does(tmp_path):
    sc = ck.load_scenario("faults/forward-policy-drop")
    frames = ck.capture(sc, "meizu", "enp4s0")
    path = ck.write_pcap(tmp_path / "x.pcap", frames)
    env = {"TZ": "UTC", "PATH": os.environ.get("PATH", "/usr/bin"), "LC_ALL": "C"}
    real = subprocess.run(["tcpdump", "-r", str(path), "-nn"], capture_output=True, env=env, timeout=60).stdout.decode()
    ours = ck.render(frames, ck.Style(n=2))
    assert real == ours and real.count("Flags [S]") == 7


# -- the tables show the broken entry ---------------------------------------------------------

def test_missing_fdb_shows_in_bridge_fdb_but_not_in_ip_neigh():
    ok, bad = ck.load_scenario(HEALTHY), ck.load_scenario("faults/missing-fdb")
    mac = ok.node("meizu").vtep_mac
    assert mac in bridge_fdb(ok, "xiaomi") and mac not in bridge_fdb(bad, "xiaomi")
    assert ip_neigh(ok, "xiaomi") == ip_neigh(bad, "xiaomi")      # flannel's ARP entry is still there
    assert bridge_fdb(ok, "meizu") == bridge_fdb(bad, "meizu")


def test_filter_tables_show_the_missing_and_the_extra_rule():
    ok = filter_save(ck.load_scenario(HEALTHY), "meizu")
    fwd = filter_save(ck.load_scenario("faults/forward-policy-drop"), "meizu")
    assert "-A FORWARD -s 172.30.0.0/16 -j ACCEPT\n" in ok and "-A FORWARD -s 172.30.0.0/16" not in fwd
    assert ":FORWARD DROP [0:0]" in fwd
    inp = filter_save(ck.load_scenario("faults/udp-blocked-input"), "meizu")
    assert "-A INPUT -p udp -m udp --dport 8472 -j DROP\n" in inp and "-A INPUT -p udp" not in ok
    assert "-A INPUT -p udp" not in filter_save(ck.load_scenario("faults/udp-blocked-input"), "xiaomi")


def test_conntrack_on_the_dropping_node_lists_nothing(walks):
    w = walks["forward-policy-drop"]
    assert "meizu" not in w.conntrack and "xiaomi" in w.conntrack
    assert "no entry" in ck.conntrack_history(w, "meizu")


# -- healthy vs broken ------------------------------------------------------------------------

@pytest.mark.parametrize("broken, first", [
    ("faults/forward-policy-drop", ("meizu", "docker0")),
    ("faults/missing-fdb", ("xiaomi", "enp4s0")),
    ("faults/udp-blocked", ("meizu", "enp4s0")),
    ("faults/udp-blocked-input", ("meizu", "flannel.1")),
])
def test_compare_names_the_first_interface_where_they_differ(broken, first):
    c = compare(HEALTHY, broken)
    assert (c.first.node, c.first.iface) == first and c.first.syn == "absent"
    before = c.rows[:c.rows.index(c.first)]
    assert before and all(r.syn == "same" for r in before)
    assert "<- first difference" in str(c)


def test_compare_same_node_without_br_netfilter_shows_the_syn_on_docker0():
    c = compare("same-node", "same-node-no-br-netfilter")
    assert c.first is not None and c.first.syn in ("extra", "differs")
    assert any(r.iface == "docker0" and r.syn == "extra" for r in c.rows)   # routed, not bridged


def test_a_cluster_compared_with_itself_has_no_difference():
    c = compare(HEALTHY, HEALTHY)
    assert c.first is None and all(r.syn == "same" and r.healthy == r.broken for r in c.rows)


def test_the_drop_diagram_marks_the_drop():
    pytest.importorskip("matplotlib")
    fig = ck.diagrams.drop_diagram("faults/missing-fdb")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "\u2718" in texts and "dropped at xiaomi flannel.1" in fig.axes[0].get_title()
    import matplotlib.pyplot as plt
    plt.close(fig)


# -- the fault: block is checked --------------------------------------------------------------

@pytest.mark.parametrize("fault, field", [
    ({"kind": "cable-cut", "node": "xiaomi"}, "fault.kind"),
    ({"kind": "missing-fdb", "node": "xiaomi", "peer": "xiaomi"}, "fault.peer"),
    ({"kind": "missing-fdb", "node": "nowhere", "peer": "meizu"}, "fault.node"),
    ({"kind": "missing-fdb", "node": "xiaomi", "peer": "meizu", "port": 1}, "fault.port"),
    ({"kind": "udp-blocked", "node": "meizu", "port": 70000}, "fault.port"),
    ({"kind": "udp-blocked", "node": "meizu", "port": True}, "fault.port"),
    ({"kind": "udp-blocked", "node": "meizu", "at": "router"}, "fault.at"),
    ({"kind": "udp-blocked", "node": "meizu", "colour": 1}, "fault.colour"),
    ("missing-fdb", "fault"),
])
def test_a_bad_fault_block_is_one_message_naming_the_field(fault, field):
    with pytest.raises(CourseError) as e:
        ck.load_scenario(HEALTHY, {"fault": fault})
    assert e.value.field == field


def test_blocking_another_port_changes_nothing():
    w = ck.walk(ck.load_scenario(HEALTHY, {"fault": {"kind": "udp-blocked", "node": "meizu", "port": 4789}}))
    assert w.drops == [] and [s.label for s in w.segments][-1] == "ACK of FIN"


# -- mysteries ----------------------------------------------------------------------------------

def test_a_mystery_is_the_same_for_the_same_learner_and_varies_across_a_class():
    a, b = mystery("Ana"), mystery(" ana ")
    assert a.scenario == b.scenario and a.tcpdump("busybox", "eth0") == b.tcpdump("busybox", "eth0")
    class_ = [mystery(n) for n in ["ana", "bo", "chen", "dara", "eli", "fay", "gus", "hui", "ines", "jo", "kai",
                                   "lin", "mo", "ned", "ola", "pia", "qiu", "raf", "sol", "tao"]]
    assert len({diagnose(m.scenario) for m in class_}) >= 4
    assert len({m.tcpdump("busybox", "eth0") for m in class_}) == len(class_)
    assert all(diagnose(m.scenario) != "healthy" and "fault" not in m.scenario.name for m in class_)


def test_check_accepts_the_fault_by_name_or_fix_and_refuses_the_others():
    fixes = {"forward-policy-drop": "iptables -A FORWARD -s 172.30.0.0/16 -j ACCEPT",
             "missing-fdb": "bridge fdb append the VTEP MAC to flannel.1", "udp-blocked": "open UDP 8472 in the "
             "security group", "no-br-netfilter": "modprobe br_netfilter",
             "no-endpoints": "fix the Service's selector so it matches the pods",
             "vxlan-port": "give both flannel.1 devices the same dstport"}
    seen = set()
    for i in range(120):
        m = mystery(i)
        kind = diagnose(m.scenario)
        if kind in seen:
            continue
        seen.add(kind)
        assert ck.check("09.mystery", kind, m.scenario).correct
        assert ck.check("09.mystery", fixes[kind], m.scenario).correct
        for other in set(fixes) - {kind}:
            assert ck.check("09.mystery", other, m.scenario).correct is False
        assert ck.check("09.mystery", "fdb or firewall, maybe", m.scenario).correct is False
    assert seen == set(fixes)


def test_hints_point_at_the_next_interface_and_then_at_the_tables():
    m = next(mystery(i) for i in range(60) if diagnose(mystery(i).scenario) == "missing-fdb")
    order = m.interfaces()
    assert "busybox eth0" in m.hint(0)
    assert f"{order[1][0]} {order[1][1]}" in m.hint(1)
    assert "not seen on xiaomi enp4s0" in m.hint(3) and "tables" in m.hint(3)
    assert "bridge fdb show dev" in m.tables("xiaomi")


@pytest.mark.parametrize("bad", ["", None, True, 1.5, "x" * 300])
def test_a_mystery_needs_a_name_or_number(bad):
    with pytest.raises(CourseError):
        mystery(bad)


def test_chapter_09_exercises_compute_their_answers():
    assert ck.exercises.expected("09.syn-count") == 7
    assert ck.exercises.expected("09.give-up") == 127
    assert ck.exercises.expected("09.last-seen-fdb") == "flannel.1"
    assert ck.exercises.expected("09.input-sees") == "yes"
    assert ck.exercises.expected("09.mystery") == "healthy"
    assert ck.check("09.mystery", "nothing is wrong").correct


# -- no endpoints: kube-proxy's REJECT and the ICMP error -------------------------------------

def test_no_endpoints_rejects_in_forward_and_writes_no_service_chain():
    sc = ck.load_scenario("faults/no-endpoints")
    text = filter_save(sc, "xiaomi")
    # proxier.go (1.14): "%s has no endpoints", -j REJECT; jumps from INPUT, FORWARD, OUTPUT for NEW connections
    assert ('-A KUBE-SERVICES -d 10.254.40.119/32 -p tcp -m comment --comment "default/nginx: has no endpoints" '
            "-m tcp --dport 4432 -j REJECT --reject-with icmp-port-unreachable\n") in text
    assert ('-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
            "-j KUBE-SERVICES\n") in text
    assert "has no endpoints" not in filter_save(ck.load_scenario(HEALTHY), "xiaomi")
    assert "KUBE-SVC-" not in ck.nat_save(sc, "xiaomi") and "KUBE-SVC-" in ck.nat_save(ck.load_scenario(HEALTHY), "xiaomi")


def test_the_rejected_syn_is_answered_with_icmp_port_unreachable_and_retransmitted_once():
    """The first error comes while busybox's blocking connect() holds the socket: a soft error (a 6.18
    kernel: connect() failed after 1.03 s, the second SYN's error; the review's repro and the lab agree)."""
    sc = ck.load_scenario("faults/no-endpoints")
    w = ck.walk(sc)
    assert [s.label for s in w.segments] == ["SYN", "SYN (retransmission 1)"] and len(w.drops) == 2
    assert w.segments[1].send_us - w.segments[0].send_us == 1_000_000
    assert w.drops[0].node == "xiaomi" and "-j REJECT" in w.drops[0].reason
    icmp = [o for o in w.at("busybox", "eth0") if o.flow == "icmp"]
    o = icmp[0]
    assert len(icmp) == 2
    f = o.frame
    assert f[23] == 1 and f[34:36] == bytes([3, 3])                      # destination unreachable, port
    assert f[15] == 0xC0 and f[20] & 0x40 == 0                           # TOS internet control, no DF
    assert ".".join(map(str, f[26:30])) == "172.30.83.1"                 # docker0's address, on the route back
    assert f[42 + 8] == 63                                               # the quoted SYN, TTL already decremented
    assert "Connection refused" in outcome(w) and "soft error" in outcome(w)
    text = str(ck.tcpdump(sc, "busybox", "eth0", flags="-nn"))
    assert "IP 172.30.83.1 > 172.30.83.9: ICMP 10.254.40.119 tcp port 4432 unreachable, length 68" in text
    assert ck.tcpdump(sc, "xiaomi", "flannel.1").packets == 0


def test_no_endpoints_first_differs_at_docker0_where_dnat_did_not_happen():
    c = compare(HEALTHY, "faults/no-endpoints")
    assert (c.first.node, c.first.iface, c.first.syn) == ("xiaomi", "docker0", "differs")


# -- the VXLAN port differs between the nodes ----------------------------------------------------

def test_a_vxlan_port_mismatch_gets_icmp_port_unreachable_on_the_underlay_and_the_client_retransmits():
    sc = ck.load_scenario("faults/vxlan-port")
    w = ck.walk(sc)
    assert len(w.segments) == 7 and "ETIMEDOUT" in outcome(w)
    assert {(d.node, d.iface) for d in w.drops} == {("meizu", "enp4s0")}
    assert all("10.167.226.39:8472: ICMP port unreachable" in d.reason for d in w.drops)
    text = str(ck.tcpdump(sc, "xiaomi", "enp4s0", flags="-nn"))
    # the quoted datagram: outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 + the SYN 60 = 110, plus 8
    assert text.count("IP 10.167.226.39 > 10.167.226.38: ICMP 10.167.226.39 udp port 8472 unreachable, length 118") == 7
    assert ck.tcpdump(sc, "meizu", "flannel.1").packets == 0
    assert not [o for o in w.at("busybox", "eth0") if o.flow == "icmp"]        # the client hears nothing
    assert (compare(HEALTHY, sc).first.node, compare(HEALTHY, sc).first.iface) == ("meizu", "flannel.1")


def test_ip_d_link_shows_the_port_each_node_uses():
    from coursekit.faults import vxlan_details
    sc = ck.load_scenario("faults/vxlan-port")
    assert "dstport 4789 nolearning" in vxlan_details(sc, "meizu")
    assert "dstport 8472 nolearning" in vxlan_details(sc, "xiaomi")
    assert vxlan_details(ck.load_scenario(HEALTHY), "meizu").startswith(
        "    vxlan id 1 local 10.167.226.39 dev enp4s0 srcport 0 0 dstport 8472 nolearning ttl auto ageing 300 udpcsum")


@pytest.mark.parametrize("port", [8472, 0, "4789", True])
def test_a_vxlan_port_fault_needs_another_port(port):
    with pytest.raises(CourseError) as e:
        ck.load_scenario(HEALTHY, {"fault": {"kind": "vxlan-port", "node": "meizu", "port": port}})
    assert e.value.field == "fault.port"


def test_missing_route_the_error_comes_from_the_address_the_client_called():
    """No route for a DNATed SYN (a 6.18 kernel, checked in two namespaces): ip_error answers with ICMP
    network unreachable from the *original* destination, quoting the SYN un-DNATed and with its TTL not
    yet decremented; busybox's connect() fails at once with ENETUNREACH."""
    sc = ck.load_scenario("faults/missing-route")
    w = ck.walk(sc)
    assert [s.label for s in w.segments] == ["SYN", "SYN (retransmission 1)"]   # the first error is soft
    assert (w.drops[0].node, w.drops[0].iface, w.drops[0].reason) == ("xiaomi", "docker0", "no route")
    assert "ENETUNREACH (Network is unreachable)" in faults.outcome(w)
    text = str(ck.tcpdump(sc, "busybox", "eth0", flags="-nn -v"))
    assert "10.254.40.119 > 172.30.83.9: ICMP net 10.254.40.119 unreachable, length 68" in text
    quoted = text.split("unreachable, length 68")[1]
    assert "ttl 64" in quoted and "172.30.83.9.45310 > 10.254.40.119.4432: Flags [S]" in quoted
    assert "172.30.20.0/24" not in ck.routing.ip_route(sc, "xiaomi")
    assert "172.30.83.0/24" in ck.routing.ip_route(sc, "meizu")
    assert faults.diagnose(sc) == "missing-route" and faults.fault_named("add the route back") == "missing-route"
