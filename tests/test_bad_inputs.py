"""Every bad scenario file, override or Python call gets one CourseError -- within time and memory.

The battery (tests/bad_inputs.py) generates 700 seeded cases: wrong shapes,
unknown keys, values the kernel/Kubernetes/HTTP refuse, hostile files
(binary, non-UTF-8, billion laughs, deep nesting, recursive aliases,
extends cycles, devices, folders, FIFOs, 600 KB, 5000-digit numbers,
duplicate keys, bad manifests) and Python API misuse.  It runs in a
subprocess that limits its own address space (RLIMIT_AS, so a bomb that
expanded would fail with MemoryError) and guards each case with SIGALRM (a
hang is reported as "timeout").  The speed itself is measured in benchmarks/,
never here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import coursekit as ck
from conftest import GOLDEN, ROOT
from coursekit import provenance as pv

CASES = 700


@pytest.fixture(scope="module")
def battery(tmp_path_factory):
    work = tmp_path_factory.mktemp("bad")
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="0")
    p = subprocess.run([sys.executable, str(ROOT / "tests" / "bad_inputs.py"), "20261129", str(CASES), str(work)],
                       capture_output=True, text=True, env=env, timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]
    return [json.loads(line) for line in p.stdout.splitlines()]


def test_battery_ran_every_case(battery):
    assert len(battery) == CASES
    kinds = {r["id"].split("-", 1)[1].split(":")[0] for r in battery}
    # every family of input is in the mix
    assert {"shape", "unknown", "unknown-override", "value", "api"} <= kinds
    assert {"billion-laughs", "deep", "extends-cycle", "binary", "non-utf8"} & kinds


def test_only_course_errors_escape_and_nothing_bad_is_accepted(battery):
    wrong = [f"{r['id']}: {r['outcome']}" for r in battery
             if r["outcome"] != "CourseError" and not (r["expect"] == "either" and r["outcome"] == "accepted")]
    assert not wrong, "\n".join(wrong[:40])


# --------------------------------------------------------------------------
# Messages a learner reads
# --------------------------------------------------------------------------

@pytest.mark.parametrize("over,field,hint", [
    ({"flannel.vnii": 2}, "flannel.vnii", "did you mean vni?"),
    ({"utcoffset": "+08:00"}, "utcoffset", "did you mean utcOffset?"),
    ({"neighborCaches": "cold"}, "neighborCaches", "did you mean neighbourCaches?"),
    ({"pods.busybox.lables": {"a": "b"}}, "pods.busybox.lables", "did you mean labels?"),
    ({"observed.clientport": 1}, "observed.clientport", "did you mean clientPort?"),
])
def test_unknown_keys_suggest_the_closest(over, field, hint):
    with pytest.raises(ck.CourseError) as e:
        ck.load_scenario("article", over)
    assert e.value.field == field
    assert hint in str(e.value)


@pytest.mark.parametrize("over,field,words", [
    ({"nodes.xiaomi.nic.name": "flannel.1"}, "nodes.xiaomi.nic.name", "already flannel's VTEP"),
    ({"pods.busybox.veth": "a/b"}, "pods.busybox.veth", "kernel refuses"),
    ({"nodes.meizu.nic.name": "x" * 16}, "nodes.meizu.nic.name", "IFNAMSIZ"),
    ({"flannel.vni": 16777215}, "flannel.vni", "16 bytes"),
    ({"nodes.meizu.nic.address": "127.0.0.2/8"}, "nodes.meizu.nic.address", "loopback"),
    ({"services.nginx.clusterIP": "10.254.255.255"}, "services.nginx.clusterIP", "broadcast"),
    ({"nodes.meizu.nic.mac": "00:1e:67:3a:52:18"}, "nodes.meizu.nic.mac", "also nodes.xiaomi.nic.mac"),
    ({"nodes.xiaomi.ephemeralPorts": [61000, 32768]}, "nodes.xiaomi.ephemeralPorts", "reversed"),
    ({"utcOffset": "+08:60"}, "utcOffset", "minutes"),
    ({"request.userAgent": "Wget\r\nX-Evil: 1"}, "request.userAgent", "CR, LF"),
    ({"request.path": "/" + "a" * 1400}, "request.path", "one segment carries at most 1398"),
])
def test_kernel_refusals_give_the_reason(over, field, words):
    with pytest.raises(ck.CourseError) as e:
        ck.load_scenario("article", over)
    assert e.value.field == field
    assert words in str(e.value)


def test_a_copied_scenario_keeps_its_manifests_and_missing_ones_show_every_path(tmp_path):
    src = ROOT / "data" / "scenarios" / "article.yaml"
    copy = tmp_path / "mine.yaml"
    shutil.copy(src, copy)
    assert str(ck.load_scenario(copy).server.ip) == "172.30.20.2"          # ../manifests/nginx.yaml from data/
    for ref in ("manifests/nginx.yaml", "nginx", "nginx.yaml"):
        copy.write_text(src.read_text(encoding="utf-8").replace("../manifests/nginx.yaml", ref), encoding="utf-8")
        assert ck.load_scenario(copy).service("nginx").ports[0].port == 4432
    copy.write_text(src.read_text(encoding="utf-8").replace("../manifests/nginx.yaml", "mine/nginx.yaml"),
                    encoding="utf-8")
    with pytest.raises(ck.CourseError) as e:
        ck.load_scenario(copy)
    assert e.value.field == "manifests"
    assert str(tmp_path / "mine" / "nginx.yaml") in str(e.value)          # the full path tried, not a basename


def test_extends_by_package_name_and_cycles(tmp_path):
    (tmp_path / "child.yaml").write_text("extends: article\nname: child\nflannel: {vni: 7}\n")
    sc = ck.load_scenario(tmp_path / "child.yaml")
    assert sc.flannel.device == "flannel.7" and sc.name == "child"
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    with pytest.raises(ck.CourseError, match=r"a.yaml -> b.yaml -> a.yaml"):
        ck.load_scenario(tmp_path / "a.yaml")


def test_api_accepts_a_name_a_path_or_a_scenario():
    sc = ck.load_scenario("article")
    path = ROOT / "data" / "scenarios" / "article.yaml"
    texts = {ck.tcpdump(x, "meizu", "enp4s0", "udp") for x in (sc, "article", str(path), path)}
    assert len(texts) == 1
    assert ck.describe("article") == ck.describe(sc)
    with pytest.raises(ck.CourseError) as e:
        ck.capture("article", "oppo", "eth0")
    assert e.value.allowed == "xiaomi, meizu, busybox, nginx-1"
    with pytest.raises(ck.CourseError) as e:
        ck.walk(ck.walk(sc))
    assert "pass its .scenario" in str(e.value)


# --------------------------------------------------------------------------
# Provenance: the labels agree with the article's transcripts
# --------------------------------------------------------------------------

def _golden_times(name: str) -> set[str]:
    return set(re.findall(r"^(?:\s*\d+ )?(\d\d:\d\d:\d\d\.\d{6}) ", (GOLDEN / name).read_text(encoding="utf-8"), re.M))


@pytest.mark.parametrize("scenario,golden", [("article", "enp4s0-udp8472.txt"), ("article-flannel", "flannel.1.txt"),
                                              ("article-docker0", "docker0.txt")])
def test_times_labelled_observed_are_exactly_the_transcripts(scenario, golden):
    sc = ck.load_scenario(scenario)
    times = sc.raw["observed"]["times"]
    observed = {t[11:26] for i, t in enumerate(times) if pv.of_path(sc, f"observed.times.{i}").label == "observed"}
    assumed = {t[11:26] for i, t in enumerate(times) if pv.of_path(sc, f"observed.times.{i}").label == "assumed"}
    assert observed == _golden_times(golden)
    assert not assumed & _golden_times(golden)
    n = len(observed)
    assert f"{n} observed" in ck.describe(sc) and (f"{len(assumed)} assumed" in ck.describe(sc) or not assumed)


@pytest.mark.parametrize("path", ["nodes.meizu.nic.address", "nodes.xiaomi.nic.mac", "nodes.meizu.vtepMac",
                                  "pods.busybox.veth", "workloads.nginx.pods.1.veth", "observed.flowHashSeed",
                                  "observed.ipId", "observed.tsLagTicks", "observed.nginxMtime", "timing.wireUs",
                                  "request.userAgent", "flannel.udpChecksum"])
def test_what_the_article_does_not_print_is_assumed(article, path):
    assert pv.of_path(article, path).label == "assumed"


def test_observed_values_appear_in_the_transcripts(article):
    gold = (GOLDEN / "enp4s0-udp8472.txt").read_text(encoding="utf-8")
    for path in ("observed.clientPort", "observed.clientISN", "observed.vxlanSourcePort.xiaomi"):
        assert pv.of_path(article, path).label == "observed"
        d = article.raw
        for k in path.split("."):
            d = d[k]
        assert str(d) in gold, path


def test_frame_fields_labels(article):
    w = ck.walk(article)
    req, rep = w.at("meizu", "enp4s0")[0], w.at("meizu", "enp4s0")[1]
    assert (req.flow, rep.flow) == ("request", "reply")
    assert pv.of_field("outer UDP", "sport", article, req).label == "observed"          # xiaomi.49008
    reply_sport = pv.of_field("outer UDP", "sport", article, rep)
    assert reply_sport.label == "assumed" and "not a prediction" in reply_sport.why
    assert pv.of_field("outer IPv4", "dst", article, req).label == "assumed"            # meizu's address
    assert pv.of_field("outer IPv4", "src", article, req).label == "observed"           # 10.167.226.38
    assert pv.of_field("TCP", "window", article, req).label == "observed"
    assert pv.of_field("TCP", "chksum").label == "computed"
    assert pv.of_field("IPv4", "id", article, req).label == "assumed"
    assert pv.of_field("IPv4", "id", article, w.path(1)[0]).label == "computed"         # the SYN-ACK's 0
    hdr = next(o for o in w.at("meizu", "docker0") if o.segment == 5)
    assert pv.of_field("HTTP", "load", article, hdr).label == "assumed"
    assert "assumed" in ck.tree(hdr, scenario=article) and "observed" in ck.tree(hdr, scenario=article)
    assert pv.of_field("Frame", "time", article, req).label == "observed"
    assert pv.of_field("Frame", "time", article, rep).label == "assumed"
