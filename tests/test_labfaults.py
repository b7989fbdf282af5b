"""Breaking and fixing the live lab (coursekit.labfaults): the commands, the comparison, the real kernel.

The first tests need no kernel: the commands turn the model's working tables into its
broken ones and back, and the comparison reads each fault back from the model's own
captures.  The rest build the lab (root, or rootless where user namespaces are
allowed; they fail in CI, CI=true, when the lab cannot run): each fault's kernel
matches the model interface by interface, the kernel's state after ``break`` is the
model's broken state and after ``fix`` the working one, and the CLI does it step by step.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

import coursekit as ck
from coursekit import faults, lab, labfaults
from coursekit.errors import CourseError
from conftest import ROOT, model_pcaps
from test_lab import inside_own_namespace, ready  # noqa: F401 - the lab tests' fixture


FAULT_FILES = ["faults/missing-fdb", "faults/missing-route", "faults/udp-blocked", "faults/udp-blocked-input", "faults/vxlan-port",
               "faults/no-endpoints", "faults/forward-policy-drop"]


# -- the commands, without a kernel ---------------------------------------------------------------

def _canon(spec: str) -> str:
    return shlex.join(shlex.split(spec))


def _tables(save: str):
    pol, rules, _ = labfaults._parse_save(save)
    return pol, {c: [_canon(r) for r in rs] for c, rs in rules.items()}


def _replay(save: str, commands):
    """Apply iptables -N/-P/-D/-I/-X commands to an iptables-save text, as iptables would."""
    pol, rules = _tables(save)
    for c in commands:
        op, chain, *rest = c.argv[3:]
        if op == "-N":
            assert chain not in pol
            pol[chain], rules[chain] = "-", []
        elif op == "-X":
            assert rules[chain] == [] and not any(r.endswith(f"-j {chain}") for rs in rules.values() for r in rs)
            del pol[chain], rules[chain]
        elif op == "-P":
            pol[chain] = rest[0]
        elif op == "-D":
            rules[chain].remove(shlex.join(rest))          # iptables -D: the first rule that equals it
        else:
            assert op == "-I" and 1 <= int(rest[0]) <= len(rules[chain]) + 1
            rules[chain].insert(int(rest[0]) - 1, shlex.join(rest[1:]))
    return pol, rules


@pytest.mark.parametrize("name", labfaults.BREAKABLE)
def test_break_and_fix_commands_turn_the_models_tables_into_each_other(name):
    sc = labfaults.working_base(name)
    bad = labfaults.broken(sc, name)
    assert labfaults.fault_name(bad) == name and labfaults.fault_name(sc) == "healthy"
    good = labfaults.healthy(bad)
    assert labfaults.fault_name(good) == "healthy"
    for before, after in ((sc, bad), (bad, good)):
        cmds = labfaults.transition(before, after)
        assert cmds, name                                          # every fault changes something
        for n in sc.nodes:
            for table, save in (("nat", ck.nat_save), ("filter", ck.netfilter.filter_save)):
                mine = [c for c in cmds if c.owner == n.name and c.argv[:3] == ["iptables", "-t", table]]
                b, a = save(before, n.name), save(after, n.name)
                assert _replay(b, mine) == _tables(a), (name, n.name, table)
                assert bool(mine) == (_tables(b) != _tables(a))
    # the working cluster again: the same state as before the break
    for n in sc.nodes:
        assert ck.netfilter.filter_save(good, n.name) == ck.netfilter.filter_save(sc, n.name)
        assert ck.nat_save(good, n.name) == ck.nat_save(sc, n.name)
        assert ck.routing.bridge_fdb(good, n.name) == ck.routing.bridge_fdb(sc, n.name)


def test_each_fault_is_the_one_its_commands_make():
    sc = ck.load_scenario("article")
    shell = {name: "\n".join(c.shell("pwlab-x-") for c in labfaults.transition(sc, labfaults.broken(sc, name)))
             for name in labfaults.BREAKABLE if name not in ("no-br-netfilter", "missing-route")}
    meizu = sc.node("meizu")
    assert shell["missing-fdb"] == (f"ip netns exec pwlab-x-xiaomi bridge fdb del {meizu.vtep_mac} dev flannel.1 "
                                    f"dst {meizu.nic.ip}")
    assert shell["udp-blocked-input"] == ("ip netns exec pwlab-x-meizu iptables -t filter -I INPUT 1 -p udp -m udp "
                                          "--dport 8472 -j DROP")
    assert shell["udp-blocked"] == (f"ip netns exec pwlab-x-_wire ebtables -A FORWARD -p IPv4 --ip-dst {meizu.nic.ip} "
                                    "--ip-proto udp --ip-dport 8472 -j DROP")
    assert "iptables -t filter -D FORWARD -s 172.30.0.0/16 -j ACCEPT" in shell["forward-policy-drop"]
    assert "dstport 4789" in shell["vxlan-port"] and "ip link del flannel.1" in shell["vxlan-port"]
    assert "REJECT --reject-with icmp-port-unreachable" in shell["no-endpoints"]
    mr = ck.load_scenario("faults/missing-route")
    assert [c.shell("p-") for c in labfaults.transition(mr, labfaults.healthy(mr))] == [
        "ip netns exec p-xiaomi ip route add 172.30.20.0/24 via 172.30.20.0 dev flannel.1 onlink"]
    nbn = labfaults.transition(ck.load_scenario("same-node"), labfaults.broken(ck.load_scenario("same-node"),
                                                                                "no-br-netfilter"))
    assert [c.shell("p-") for c in nbn] == ["ip netns exec p-xiaomi sysctl -w net.bridge.bridge-nf-call-iptables=0"]


@pytest.mark.parametrize("name,base,problem", [
    ("no-such-fault", "article", "is not a fault the lab can break"),
    ("no-br-netfilter", "article", "share a node"),
    ("missing-fdb", "same-node", "between two nodes"),
    ("udp-blocked", "faults/missing-fdb", "already broken"),
    ("missing-route", "article", "default gateway"),
])
def test_a_fault_that_cannot_be_broken_there_is_one_message(name, base, problem):
    with pytest.raises(CourseError) as e:
        labfaults.broken(ck.load_scenario(base), name)
    assert problem in str(e.value)


def _first_try(w, o) -> bool:
    """Whether an observation comes before the first SYN retransmission (the lab's client gives up then)."""
    late = [s.send_us for s in w.segments if s.retransmission]
    if o.segment >= 0 and w.segments[o.segment].retransmission:
        return False
    return not late or o.time_us < min(late)


@pytest.mark.parametrize("name", FAULT_FILES)
def test_the_comparison_reads_each_fault_back_from_the_models_own_pcaps(tmp_path, name):
    sc = ck.load_scenario(name)
    report = lab.compare(sc, model_pcaps(sc, tmp_path, keep=_first_try))
    assert report.ok, report.text()
    assert "no capture of the kernel shows it past that point" in report.text()


def test_an_icmp_error_the_kernel_did_not_send_is_named(tmp_path):
    from coursekit.capture import read_pcap
    sc = ck.load_scenario("faults/vxlan-port")
    pcaps = model_pcaps(sc, tmp_path, keep=_first_try)
    path = pcaps[("xiaomi", "enp4s0")]
    frames = read_pcap(path)[1]
    assert [labfaults.is_icmp_error(f.data) for f in frames] == [False, True]
    ck.write_pcap(path, frames[:1])
    report = lab.compare(sc, pcaps)
    assert not report.ok
    assert "xiaomi enp4s0: ICMP errors: 0 in the lab's capture, 1 in the model" in report.text()
    # and one with a wrong field: the port the datagram was sent to
    bad = bytearray(frames[1].data)
    quoted_dport = 14 + 20 + 8 + 20 + 2
    assert bad[quoted_dport:quoted_dport + 2] == (8472).to_bytes(2, "big")
    bad[quoted_dport:quoted_dport + 2] = (4789).to_bytes(2, "big")
    ck.write_pcap(path, [frames[0], type(frames[1])(frames[1].time_us, bytes(bad))])
    text = lab.compare(sc, pcaps).text()
    assert "ICMP error 1: outer UDPerror dport: lab 4789" in text, text


def test_cli_lab_break_needs_a_name_and_other_actions_take_none():
    for args, msg in ((["lab", "break"], "no fault named"), (["lab", "status", "missing-fdb"], "takes no name"),
                      (["lab", "fix", "missing-fdb"], "takes no name")):
        r = subprocess.run([sys.executable, "-m", "coursekit", *args], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


# -- the real kernel ------------------------------------------------------------------------------

def _busy(report) -> set:
    return {(r.node, r.iface) for r in report.interfaces if r.lab_frames - r.unmodelled}


@pytest.mark.parametrize("name", FAULT_FILES[:-1])          # forward-policy-drop: tests/test_lab.py
def test_each_fault_on_the_real_kernel_matches_the_model(ready, name):  # noqa: F811
    """Built working, broken by labfaults' commands; what tcpdump records on every interface is the
    model's, the dropped SYN appears on no interface past the drop, ICMP errors field by field."""
    sc = ck.load_scenario(name)
    w = ck.walk(sc)
    said = []
    report = lab.run_all(sc, progress=said.append)
    assert report.ok, report.text()
    # busybox's blocking connect(): an error its own node sends comes while connect() holds the socket,
    # a soft error (the model retransmits the SYN after 1 s); nothing ends it before the lab gives up
    assert any("busybox: connect to 10.254.40.119:4432 failed: timed out" in m for m in said), said
    first_try = [o for o in w.observations if _first_try(w, o)]
    assert _busy(report) == {(o.node, o.iface) for o in first_try}, report.text()
    d = w.drops[0]
    assert f"The model drops segment 0 (SYN) at {d.node} {d.iface}" in report.text()
    assert "no capture of the kernel shows it past that point" in report.text()
    icmp = {(o.node, o.iface) for o in first_try if o.flow == "icmp"}
    assert icmp == ({("meizu", "enp4s0"), ("xiaomi", "enp4s0")} if name == "faults/vxlan-port" else
                    {("xiaomi", "docker0"), ("xiaomi", "veth4c1a3e7"), ("busybox", "eth0")}
                    if name in ("faults/no-endpoints", "faults/missing-route") else set())


def _kernel_state(lb, sc) -> dict:
    out = {}
    for n in sc.nodes:
        ns = lb.ns(n.name)
        out[n.name] = {"nat": lb.iptables_save(n.name, "nat"), "filter": lb.iptables_save(n.name, "filter"),
                       "fdb": lb._exec(ns, lab._tool("bridge"), "fdb", "show", "dev", sc.flannel.device).stdout,
                       "vxlan": next(line for line in lb._exec(ns, lab._tool("ip"), "-d", "link", "show",
                                                               sc.flannel.device).stdout.splitlines()
                                     if "vxlan id" in line)}
    if lb.ns(labfaults.WIRE) in lab._netns_list():
        out["wire"] = lb._exec(lb.ns(labfaults.WIRE), lab._tool("ebtables") or lab._tool("ebtables-nft"),
                               "-L", "FORWARD").stdout
    return out


def test_after_break_the_kernels_state_is_the_models_and_after_fix_the_working_one(ready, tmp_path, request):  # noqa: F811
    if inside_own_namespace(request, tmp_path):
        return
    sc = ck.load_scenario("article")
    with lab.Lab(sc, tmp_path) as lb:
        lb.switch = True
        lb.up()
        working = _kernel_state(lb, sc)
        for n in sc.nodes:
            assert working[n.name]["filter"] == ck.netfilter.filter_save(sc, n.name)
            assert working[n.name]["fdb"] == ck.routing.bridge_fdb(sc, n.name)
        for name in labfaults.BREAKABLE:
            if name in ("no-br-netfilter", "missing-route"):       # another base (test_cli_... has it)
                continue
            bad = labfaults.broken(sc, name)
            labfaults.apply(lb, labfaults.transition(sc, bad))
            state = _kernel_state(lb, sc)
            for n in sc.nodes:
                assert state[n.name]["nat"] == ck.nat_save(bad, n.name), (name, n.name)
                assert state[n.name]["filter"] == ck.netfilter.filter_save(bad, n.name), (name, n.name)
                assert state[n.name]["fdb"] == ck.routing.bridge_fdb(bad, n.name), (name, n.name)
                assert f"dstport {faults.vxlan_port(bad, n.name)} " in state[n.name]["vxlan"], (name, n.name)
            blocked = "--ip-dport 8472 -j DROP" in state["wire"]
            assert blocked == (name == "udp-blocked"), state["wire"]
            labfaults.apply(lb, labfaults.transition(bad, labfaults.healthy(bad)))
            assert _kernel_state(lb, sc) == working, name


def _cli(*args, ok=True):
    r = subprocess.run([sys.executable, "-m", "coursekit", "lab", *args], cwd=ROOT, capture_output=True, text=True,
                       env=lab._child_env(), timeout=300)
    if ok:
        assert r.returncode == 0, (args, r.stdout[-3000:], r.stderr[-3000:])
    return r


def test_cli_break_capture_run_compare_fix(ready, tmp_path):  # noqa: F811
    """A learner's session: lab up, break the underlay, see it, fix it, see it work."""
    try:
        _cli("up", "--out", str(tmp_path / "p"))
        r = _cli("break", "udp-blocked")
        assert "ebtables -A FORWARD -p IPv4 --ip-dst 10.167.226.39 --ip-proto udp --ip-dport 8472 -j DROP" in r.stdout
        assert "the SYN stops at xiaomi enp4s0" in r.stdout
        assert "already broken" in _cli("break", "missing-fdb", ok=False).stderr
        _cli("capture")
        assert "timed out" in _cli("run").stdout
        r = _cli("compare")
        assert "all equal" in r.stdout and "no capture of the kernel shows it past that point" in r.stdout
        assert "ebtables -D FORWARD" in _cli("fix").stdout
        assert "not broken" in _cli("fix", ok=False).stderr
        _cli("capture")
        assert "200 OK" in _cli("run").stdout
        r = _cli("compare")
        assert "all equal" in r.stdout and "The model drops" not in r.stdout
    finally:
        _cli("down")
    assert lab.leftovers() == []
