"""The live lab against the real kernel: it builds, captures, matches the model, and leaves nothing behind.

These need root, iproute2, iptables and tcpdump: they skip on a laptop
without them and fail in CI (CI=true), where .ci/run installs everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import coursekit as ck
from coursekit import lab
from coursekit.explore import apply
from coursekit.tcpdump import Style, parse_flags
from conftest import ROOT, require, require_tool


@pytest.fixture(scope="module")
def ready():
    require(sys.platform == "linux", "the live lab needs Linux")
    require(os.geteuid() == 0, "the live lab needs root")
    for tool in ("ip", "bridge", "iptables-restore", "tcpdump"):
        require_tool(tool)
    lab.down()
    yield
    assert lab.leftovers() == []


def _check(report):
    assert report.ok, report.text()
    busy = 0
    for r in report.interfaces:
        assert r.model_frames == r.lab_frames - r.unmodelled, (r.node, r.iface)
        assert not r.differences
        if r.model_frames:                       # replicas that got no connection see nothing
            assert r.model_frames == 11 and r.matched > 200, (r.node, r.iface)
            busy += 1
    assert busy == 10                            # eth0, veth, docker0, flannel.1, enp4s0 on each side


def test_article_lab_matches_the_model_on_every_interface(ready, article, tmp_path):
    report = lab.run_all(article, tmp_path)
    _check(report)
    names = {(r.node, r.iface) for r in report.interfaces}
    assert {("meizu", "enp4s0"), ("meizu", "flannel.1"), ("meizu", "docker0"), ("busybox", "eth0"),
            ("nginx-1", "eth0")} <= names
    assert len(names) == 10
    assert '"ok": true' in report.to_json()


@pytest.mark.parametrize("knobs", [
    {"vxlan_port": 4789},
    {"vni": 42, "client_ip": "172.30.83.20", "server_node_ip": "10.167.226.77"},
    {"masquerade": False},
    {"replicas": 3},
    {"service_ip": "10.254.1.2", "service_port": 8080, "pod_mtu": 1400},
], ids=["port-4789", "addresses-vni", "no-masquerade", "replicas-3", "service-mtu"])
def test_varied_scenarios_match(ready, article, tmp_path, knobs):
    _check(lab.run_all(apply(article, knobs), tmp_path))


def test_without_br_netfilter_docker0_shows_the_service_address(ready, article, tmp_path):
    sc = article.with_changes({"nodes.xiaomi.bridgeNfCallIptables": False})
    report = lab.run_all(sc, tmp_path)
    _check(report)
    text = ck.render(ck.read_pcap(tmp_path / "xiaomi-docker0.pcap")[1], n=2)
    assert "> 10.254.40.119.4432: Flags [S]" in text       # DNAT after the bridge: the real kernel agrees


def test_iptables_save_in_the_lab_is_the_models(ready, article, tmp_path):
    with lab.Lab(article, tmp_path) as lb:
        lb.up()
        for node in ("xiaomi", "meizu"):
            assert lb.iptables_save(node) == ck.nat_save(article, node)


def test_render_of_lab_pcaps_equals_tcpdump(ready, article, tmp_path):
    tcpdump = require_tool("tcpdump")
    lab.run_all(article, tmp_path)
    pcaps = sorted(tmp_path.glob("*.pcap"))
    assert len(pcaps) == 10
    for p in pcaps:
        for flags in (["-nn"], ["-nn", "-e", "-v"]):
            real = subprocess.run([tcpdump, "-r", str(p), *flags], capture_output=True, text=True,
                                  env=dict(os.environ, TZ="UTC")).stdout
            ours = ck.render(ck.read_pcap(p)[1], Style(utc_offset_minutes=0, **parse_flags(flags)))
            assert ours == real, p.name


def test_host_is_left_byte_identical(ready, article, tmp_path):
    before = lab.host_snapshot()
    lab.run_all(apply(article, {"replicas": 2}), tmp_path)
    assert lab.host_snapshot() == before


def test_twenty_up_down_cycles_leave_nothing(ready, article, tmp_path):
    before = lab.host_snapshot()
    for i in range(20):
        with lab.Lab(article, tmp_path / str(i)) as lb:
            lb.up()
        assert lab.leftovers() == []
    assert lab.host_snapshot() == before
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "pwlab-" not in procs


def test_sigkill_mid_setup_then_down_leaves_nothing(ready, tmp_path):
    before = lab.host_snapshot()
    code = ("import time, coursekit as ck\n"
            "from coursekit import lab\n"
            "n = [0]\n"
            "def slow(msg):\n"
            "    n[0] += 1\n"
            "    print('step', n[0], flush=True)\n"
            "    if n[0] == 4: time.sleep(60)\n"
            f"lab.Lab(ck.load_scenario('article'), {str(tmp_path)!r}, slow).up()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    for line in proc.stdout:
        if line.strip() == "step 4":
            break
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert lab.leftovers(), "the killed run should have left namespaces"
    with pytest.raises(ck.CourseError, match="leftovers of an earlier run"):
        lab.Lab(ck.load_scenario("article"), tmp_path).up()
    lab.down()
    assert lab.down() == []                       # idempotent
    assert lab.leftovers() == []
    assert lab.host_snapshot() == before


def test_cli_all_and_status(ready, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "coursekit", "lab", "all", "--out", str(tmp_path / "p"),
                        "--json", str(tmp_path / "r.json")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "fields compared by value, all equal" in r.stdout
    assert "building" in r.stderr or "namespaces:" in r.stderr          # progress is shown
    assert (tmp_path / "r.json").read_text().count('"ok": true') >= 1
    r = subprocess.run([sys.executable, "-m", "coursekit", "lab", "status"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "ready" in r.stdout


def test_without_root_one_clear_line(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(lab, "rootless_possible", lambda: (True, ""))
    assert lab.status().startswith("live lab: ready, rootless")
    assert lab.mode() == "rootless"
    monkeypatch.setattr(lab, "rootless_possible", lambda: (False, "unshare: Operation not permitted"))
    assert any("root, or unprivileged user namespaces" in m for m in lab.requirements())
    assert lab.mode() == "unavailable"
    assert lab.status().startswith("live lab: not available here; missing")
    with pytest.raises(ck.CourseError, match="cannot run here"):
        lab.Lab(ck.load_scenario("article")).up()


@pytest.fixture(scope="module")
def any_mode():
    """Root, or a normal user where the kernel allows user namespaces."""
    require(sys.platform == "linux", "the live lab needs Linux")
    for tool in ("ip", "bridge", "iptables-restore", "tcpdump", "unshare"):
        require_tool(tool)
    require(lab.mode() != "unavailable", lab.status())


def test_rootless_path_user_namespace_and_libpcap_capture(any_mode, article, tmp_path):
    """The rootless mode: the whole lab inside unshare --user --net --mount, captured by libpcap.

    Run here as root (CI), the same code path a normal user takes; it never sees the host's netns.
    """
    ok, why = lab.rootless_possible()
    require(ok, f"user namespaces are not allowed here: {why}")
    before = lab.host_snapshot()
    report = lab._run_rootless(article, tmp_path, None, True)
    _check(report)
    assert lab.host_snapshot() == before
    assert lab.leftovers() == []                 # its namespaces died with its user namespace


@pytest.mark.parametrize("replicas", [1, 3])
def test_cold_caches_arp_matches_the_model(ready, article, tmp_path, replicas):
    """Empty neighbour caches and FDBs: the kernel's ARP exchanges are the model's, field by field."""
    sc = apply(article, {"cold_caches": True, "replicas": replicas})
    report = lab.run_all(sc, tmp_path)
    assert report.ok, report.text()
    frames = {(r.node, r.iface): r.model_frames for r in report.interfaces}
    assert frames[("busybox", "eth0")] == frames[("xiaomi", "enp4s0")] == frames[("meizu", "docker0")] == 13
    assert frames[("xiaomi", "flannel.1")] == 11                    # no ARP on the VTEP: flannel's entries
    if replicas == 3:                # the ARP request is flooded to every pod; one answers and serves
        pods = sorted(frames[(f"nginx-{i}", "eth0")] for i in (1, 2, 3))
        assert pods == [1, 1, 13]
    assert all("ARP" not in r.unmodelled_kinds for r in report.interfaces)


def test_cli_step_by_step_with_cold_caches(ready, tmp_path):
    """lab up | capture | run | compare | down, state kept between the invocations."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "coursekit", "lab", *args], capture_output=True, text=True,
                              env=env, timeout=120)

    try:
        r = cli("up", "--cold", "--out", str(tmp_path))
        assert r.returncode == 0, r.stderr
        assert "neighbour caches" not in r.stderr                  # cold: nothing pre-installed
        assert cli("up").returncode == 2                           # refuses to build over a running lab
        assert cli("capture").returncode == 0
        r = cli("run")
        assert r.returncode == 0 and "233-byte header + 612-byte body" in r.stdout, r.stderr
        r = cli("compare", "--json", str(tmp_path / "r.json"))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "fields compared by value, all equal" in r.stdout and "ARP exchanges" in r.stdout
        assert len(list(tmp_path.glob("*.pcap"))) == 10
    finally:
        r = cli("down")
    assert r.returncode == 0 and "removed 4 namespaces" in r.stdout
    assert lab.leftovers() == []
    assert "removed 0 namespaces" in cli("down").stdout
