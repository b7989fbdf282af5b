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
    assert c.first.startswith("conversation 1 packet 1 (request [S]): arriving at xiaomi docker0, expected DNAT "
                              "10.254.40.119 -> 172.30.20.2, captured no change")
    assert c.rows[0].difference == "walk differs"


def test_two_sets_of_captures_and_a_missing_masquerade():
    c = compare_captures(CAP / "pod-to-pod", CAP / "pod-to-pod-flannel-ip-masq")
    assert "expected SNAT 172.30.83.9 -> 172.30.83.0" in c.first and "captured" in c.first
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
    assert "expected SNAT" in json.loads(r.stdout)["first"]
    r = run("compare", str(CAP / "pod-to-pod"))
    assert r.returncode == 2 and r.stderr.startswith("error: compare: 1 paths given") and r.stderr.count("\n") == 1
