"""The model beside real captures (coursekit.comparison, `coursekit compare`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from coursekit.comparison import compare_captures
from coursekit.errors import CourseError
from conftest import ROOT

CAP = ROOT / "data" / "captures"


def test_a_scenario_agrees_with_its_own_captures():
    c = compare_captures("article", CAP / "article")
    assert c.first is None and c.differences == []
    assert len(c.places) == 10 and all(r.difference is None for r in c.rows)
    assert "no disagreement" in c.text()


def test_only_the_places_captured_are_compared(tmp_path):
    for f in ("busybox-eth0.pcap", "meizu-enp4s0.pcap"):
        shutil.copy(CAP / "article" / f, tmp_path / f)
    c = compare_captures("article", tmp_path)
    assert c.places == ["busybox eth0", "meizu enp4s0"] and c.first is None
    assert c.rows[0].model == [("busybox eth0", ()), ("meizu enp4s0", (
        "DNAT 10.254.40.119 -> 172.30.20.2", "SNAT 172.30.83.9 -> 172.30.83.0", "TTL 64 -> 63",
        "encapsulation VXLAN"))]


def test_the_first_disagreement_is_the_missing_dnat():
    # the model calls the Service; the real cluster's client called the pod directly
    c = compare_captures("article", CAP / "pod-to-pod")
    assert c.first.startswith("conversation 1 packet 1 (request [S]): arriving at xiaomi docker0: missing DNAT "
                              "10.254.40.119 -> 172.30.20.2 (expected: DNAT 10.254.40.119 -> 172.30.20.2; "
                              "captured: no change)")
    assert c.rows[0].difference.startswith("arriving at xiaomi docker0: missing DNAT")


def test_two_sets_of_captures_and_a_missing_masquerade():
    c = compare_captures(CAP / "pod-to-pod", CAP / "pod-to-pod-flannel-ip-masq")
    assert "arriving at xiaomi flannel: missing SNAT 172.30.83.9 -> 172.30.83.0 (expected: SNAT" in c.first
    j = c.to_json()
    assert j["first"] == c.first and j["packets"][0]["model"][0] == ["busybox eth0", []]


def test_a_capture_of_a_place_the_model_lacks_is_a_note(tmp_path):
    shutil.copy(CAP / "article" / "busybox-eth0.pcap", tmp_path / "busybox-eth0.pcap")
    shutil.copy(CAP / "article" / "busybox-eth0.pcap", tmp_path / "worker3-ens5.pcap")
    c = compare_captures("article", tmp_path)
    assert any(n.startswith("worker3-ens5.pcap: the scenario has no owner") for n in c.notes)
    (tmp_path / "busybox-eth0.pcap").unlink()
    with pytest.raises(CourseError, match="no real capture is named after a place"):
        compare_captures("article", tmp_path)
    with pytest.raises(CourseError, match="no such file or folder"):
        compare_captures("article", tmp_path / "nope")


def run(*args):
    return subprocess.run([sys.executable, "-m", "coursekit", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_exit_status_says_whether_they_agree(tmp_path):
    r = run("compare", "--scenario", "article", str(CAP / "article"))
    assert r.returncode == 0, r.stderr
    r = run("compare", str(CAP / "pod-to-pod"), str(CAP / "pod-to-pod-flannel-ip-masq"), "--json", "-")
    assert r.returncode == 1
    assert "missing SNAT" in json.loads(r.stdout)["first"]
    r = run("compare", str(CAP / "pod-to-pod"))
    assert r.returncode == 2 and r.stderr.startswith("error: compare: 1 paths given") and r.stderr.count("\n") == 1


LAB = ROOT / "data" / "lab-run"


def test_the_shipped_lab_run_is_the_model_of_its_own_state(tmp_path):
    """The live lab's real captures beside the walk of the scenario its nodes' state describes."""
    from coursekit.from_state import derive, write_scenario
    d = derive(LAB / "state", name="lab-run")
    sc = ck_load(write_scenario(d, tmp_path / "lab.yaml"))
    c = compare_captures(sc, LAB / "captures", state=LAB / "state")
    assert c.first is None, c.text()
    assert len(c.places) == 10 and len([r for r in c.rows if r.difference is None]) == 11
    # the client port is the kernel's (conntrack -L in the lab), not a model default
    from coursekit.capture import read_pcap
    from coursekit.explanation import decode
    _, frames = read_pcap(LAB / "captures" / "busybox-eth0.pcap")
    syn = next(decode(f.data) for f in frames if decode_ok(f.data) and decode(f.data)["flags"] == 0x02)
    assert sc.raw["observed"]["clientPort"] == syn["sport"]


def test_the_shipped_lab_run_is_explained_with_its_state():
    from coursekit.explanation import explain
    ex = explain(sorted((LAB / "captures").glob("*.pcap")), state=LAB / "state")
    tcp = [c for c in ex.conversations if c.proto == 6]
    assert len(tcp) == 1 and len(tcp[0].packets) == 11 and tcp[0].service.startswith("default/nginx")
    syn = tcp[0].packets[0]
    kinds = [[ch.kind for ch in step] for step in syn.changes]
    dnat = next(ch for step in syn.changes for ch in step if ch.kind == "DNAT")
    assert any("KUBE-SEP-" in b and "DNAT --to-destination 172.30.20.2:80" in b for b in dnat.by)
    assert ["encapsulation"] in kinds and ["decapsulation"] in kinds


def ck_load(path):
    from coursekit.scenario import load_scenario
    return load_scenario(path)


def decode_ok(data):
    from coursekit.explanation import decode
    try:
        return decode(data)["proto"] == 6
    except ValueError:
        return False
