"""The live lab against the real kernel: it builds, captures, matches the model, and leaves nothing behind.

These need Linux, iproute2, iptables and tcpdump, and root or unprivileged user
namespaces: they skip on a laptop without them and fail in CI (CI=true), where
.ci/run installs everything.  As a normal user the lab runs rootless; the tests
that drive the Lab class directly then run themselves inside a user + network
namespace of their own (:func:`inside_own_namespace`), where they are root.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import coursekit as ck
from coursekit import lab
from coursekit.explore import apply
from coursekit.tcpdump import Style, parse_flags
from conftest import ROOT, model_pcaps, require, require_tool

USER_PATH = "/usr/local/bin:/usr/bin:/bin"          # a normal Debian user's PATH: no /usr/sbin


@pytest.fixture(scope="module")
def ready():
    """Root, or a normal user where the kernel allows user namespaces."""
    require(sys.platform == "linux", "the live lab needs Linux")
    for tool in ("ip", "bridge", "iptables-restore", "tcpdump"):
        require_tool(tool)
    require(lab.mode() != "unavailable", lab.status())
    if os.geteuid() == 0:
        lab.down()
    yield
    assert lab.leftovers() == []


def inside_own_namespace(request, tmp_path) -> bool:
    """As a normal user, run this very test inside a user + network namespace of its own
    (``unshare``, where it is root: the rootless lab's setting); True when that was done.

    Tests that drive :class:`lab.Lab` directly start with ``if inside_own_namespace(...): return``.
    """
    if os.geteuid() == 0:
        return False
    ok, why = lab.rootless_possible()
    require(ok, f"user namespaces are not allowed here: {why}")
    cmd = lab._private_run([sys.executable, "-m", "pytest", request.node.nodeid, "-q", "-p", "no:cacheprovider",
                            "-o", "addopts=", f"--basetemp={tmp_path / 'inner'}"])
    r = subprocess.run(cmd, cwd=ROOT, env=lab._child_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "1 passed" in r.stdout and "skipped" not in r.stdout, r.stdout[-2000:]
    return True


def _check(report, sc=None):
    assert report.ok, report.text()
    segments = len(ck.walk(sc or ck.load_scenario("article")).segments)
    busy = 0
    for r in report.interfaces:
        assert r.model_frames == r.lab_frames - r.unmodelled, (r.node, r.iface)
        assert not r.differences
        if r.model_frames:                       # replicas that got no connection see nothing
            assert r.model_frames == segments and r.matched > 200, (r.node, r.iface)
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
    sc = apply(article, knobs)
    _check(lab.run_all(sc, tmp_path), sc)


def test_without_br_netfilter_docker0_shows_the_service_address(ready, article, tmp_path):
    sc = article.with_changes({"nodes.xiaomi.bridgeNfCallIptables": False})
    report = lab.run_all(sc, tmp_path)
    _check(report, sc)
    text = ck.render(ck.read_pcap(tmp_path / "xiaomi-docker0.pcap")[1], n=2)
    assert "> 10.254.40.119.4432: Flags [S]" in text       # DNAT after the bridge: the real kernel agrees


def test_iptables_save_in_the_lab_is_the_models(ready, article, tmp_path, request):
    if inside_own_namespace(request, tmp_path):
        return
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


def test_twenty_up_down_cycles_leave_nothing(ready, article, tmp_path, request):
    if inside_own_namespace(request, tmp_path):
        return
    before = lab.host_snapshot()
    for i in range(20):
        with lab.Lab(article, tmp_path / str(i)) as lb:
            lb.up()
        assert lab.leftovers() == []
    assert lab.host_snapshot() == before
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "pwlab-" not in procs


def _slow_builder(tmp: Path, workdir: str | None = None) -> subprocess.Popen:
    """A process building the article's lab that stops at its fourth step (until killed: a loaded
    machine may take long over what the test does meanwhile)."""
    code = ("import time, coursekit as ck\n"
            "from coursekit import lab\n"
            "n = [0]\n"
            "def slow(msg):\n"
            "    n[0] += 1\n"
            "    print('step', n[0], flush=True)\n"
            "    if n[0] == 4: time.sleep(3600)\n"
            f"lab.Lab(ck.load_scenario('article'), {workdir!r}, slow).up()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=dict(lab._child_env(), TMPDIR=str(tmp)))
    for line in proc.stdout:
        if line.strip() == "step 4":
            break
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def _lab_folders(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.glob("packet-walk-lab-*"))


def test_sigkill_mid_setup_then_down_leaves_nothing(ready, tmp_path, request, monkeypatch):
    if inside_own_namespace(request, tmp_path):
        return
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    before = lab.host_snapshot()
    proc = _slow_builder(tmp)           # it waits at step 4: what it built so far stays as it is
    _kill(proc)
    assert lab.leftovers(), "the killed run should have left namespaces"
    assert len(_lab_folders(tmp)) == 1, "and its temporary pcap folder"
    with pytest.raises(ck.CourseError, match="leftovers of an earlier run"):
        lab.Lab(ck.load_scenario("article")).up()
    assert len(_lab_folders(tmp)) == 1                # the refused up made no folder
    lab.down()
    assert lab.down() == []                       # idempotent
    assert lab.leftovers() == []
    assert _lab_folders(tmp) == []                # down removed the dead run's folder
    assert lab.host_snapshot() == before


def test_a_second_up_while_one_builds_names_the_builder(ready, tmp_path, request, monkeypatch):
    """Not 'leftovers' (whose advice, lab down, would destroy the lab being built): the builder's pid."""
    if inside_own_namespace(request, tmp_path):
        return
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    proc = _slow_builder(tmp)
    try:
        with pytest.raises(ck.CourseError, match=rf"another lab is being built \(pid {proc.pid}\)"):
            lab.Lab(ck.load_scenario("article")).up()
        with pytest.raises(ck.CourseError, match=rf"another lab is being built \(pid {proc.pid}\)"):
            lab.down()                                # refuses to destroy it
        assert lab.leftovers()                        # still there
        env = dict(lab._child_env(), TMPDIR=str(tmp))
        r = subprocess.run([sys.executable, "-m", "coursekit", "lab", "up"], capture_output=True, text=True, env=env)
        assert r.returncode == 2 and f"another lab is being built (pid {proc.pid})" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        _kill(proc)
    lab.down()
    assert lab.leftovers() == [] and _lab_folders(tmp) == []


def test_no_run_leaves_a_temporary_folder(ready, article, tmp_path, monkeypatch):
    """lab all / run_all without --out, a refused up, compare before the request: no folder stays."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    seen = []
    report = lab.run_all(article, progress=seen.append)
    assert report.ok, report.text()
    assert any("captures written to" in m for m in seen), seen
    assert _lab_folders(tmp) == []
    monkeypatch.setattr(lab, "requirements", lambda: ["tcpdump (apt install tcpdump)"])
    with pytest.raises(ck.CourseError, match="cannot run here"):
        lab.Lab(article).up()
    assert _lab_folders(tmp) == []
    env = dict(lab._child_env(), TMPDIR=str(tmp), PATH=USER_PATH)
    r = subprocess.run([sys.executable, "-m", "coursekit", "lab", "all"], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert _lab_folders(tmp) == []


def test_cli_all_and_status(ready, tmp_path):
    """With a normal user's PATH (no /usr/sbin, where sysctl and iptables live on Debian)."""
    env = dict(lab._child_env(), PATH=USER_PATH)
    r = subprocess.run([sys.executable, "-m", "coursekit", "lab", "all", "--out", str(tmp_path / "p"),
                        "--json", str(tmp_path / "r.json")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "fields compared by value, all equal" in r.stdout
    assert "building" in r.stderr or "namespaces:" in r.stderr          # progress is shown
    assert (tmp_path / "r.json").read_text().count('"ok": true') >= 1
    r = subprocess.run([sys.executable, "-m", "coursekit", "lab", "status"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "ready" in r.stdout


def test_status_tries_what_the_lab_needs(ready, tmp_path):
    """status builds a tiny lab in a throwaway namespace: a broken iptables-restore is reported, not 'ready'."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "iptables-restore").write_text("#!/bin/sh\necho 'iptables-restore v1.8.9 (nf_tables): table nat broken' >&2\n"
                                           "exit 1\n")
    (fake / "iptables-restore").chmod(0o755)
    env = dict(lab._child_env(), PATH=f"{fake}:{os.environ.get('PATH', USER_PATH)}")
    r = subprocess.run([sys.executable, "-m", "coursekit", "lab", "status"], capture_output=True, text=True, env=env)
    assert r.returncode == 1, r.stdout
    assert "not available" in r.stdout and "iptables-restore (nat)" in r.stdout and "table nat broken" in r.stdout
    assert lab.probe() == []                      # the real tools work
    assert lab.leftovers() == []                  # the probe's namespace was never the host's


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
    assert frames[("xiaomi", "enp4s0")] == frames[("meizu", "docker0")] == 13
    # busybox's broadcast ARP request comes back to it: the bridge floods to the ingress port
    # too when that port is in hairpin mode (br_flood -> should_deliver), as the kernel does
    assert frames[("busybox", "eth0")] == 14
    off = sc.with_changes({"nodes.xiaomi.hairpinMode": False})
    assert len(ck.capture(off, "busybox", "eth0")) == 13
    assert frames[("xiaomi", "flannel.1")] == 11                    # no ARP on the VTEP: flannel's entries
    if replicas == 3:                # the ARP request is flooded to every pod; one answers and serves
        pods = sorted(frames[(f"nginx-{i}", "eth0")] for i in (1, 2, 3))
        assert pods == [1, 1, 13]
    assert all("ARP" not in r.unmodelled_kinds for r in report.interfaces)


def _removed_the_article_labs_namespaces(r) -> None:
    """`lab down` of the article's lab names what it removed: each node, each pod, and the underlay's bridge."""
    import re
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"removed (\d+) namespaces: (.*)", r.stdout)
    assert m, r.stdout
    owners = {name.split("-", 2)[2] for name in m.group(2).split(", ")}
    assert owners == {"xiaomi", "meizu", "busybox", "nginx-1", lab._UNDERLAY} and int(m.group(1)) == 5, r.stdout


def _step_by_step(tmp_path, env):
    """lab up | capture | compare (too early) | run | compare | down, state kept between the invocations."""
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "coursekit", "lab", *args], capture_output=True, text=True,
                              env=env, timeout=300)

    try:
        r = cli("up", "--cold", "--out", str(tmp_path))
        assert r.returncode == 0, r.stderr
        assert "neighbour caches" not in r.stderr                  # cold: nothing pre-installed
        r = cli("up")
        assert r.returncode == 2 and "a lab is up" in r.stderr     # refuses to build over a running lab
        assert cli("capture").returncode == 0
        r = cli("compare")
        assert r.returncode == 2 and "the request has not been sent yet" in r.stderr and "run first" in r.stderr
        r = cli("run")
        assert r.returncode == 0 and "233-byte header + 612-byte body" in r.stdout, r.stderr
        r = cli("compare", "--json", str(tmp_path / "r.json"))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "fields compared by value, all equal" in r.stdout and "ARP exchanges" in r.stdout
        assert len(list(tmp_path.glob("*.pcap"))) == 10
    finally:
        r = cli("down")
    _removed_the_article_labs_namespaces(r)
    assert lab.leftovers() == []
    assert "removed 0 namespaces" in cli("down").stdout


def _lab_processes(user: str | None = None) -> list[str]:
    ps = subprocess.run(["ps", "-o", "args", *(["-u", user] if user else ["-e"])], capture_output=True,
                        text=True).stdout
    return [line for line in ps.splitlines() if "coursekit" in line and ("_hold" in line or "lab_capture" in line
                                                                        or "pwlab-" in line)]


def test_cli_step_by_step_with_cold_caches(ready, tmp_path):
    """As root the namespaces hang off the host; as a normal user they live in a holder's user namespace."""
    _step_by_step(tmp_path, dict(lab._child_env(), PATH=USER_PATH))
    assert _lab_processes(None if os.geteuid() == 0 else str(os.getuid())) == []


def test_rootless_cli_step_by_step_as_a_normal_user(ready, tmp_path):
    """Root runs the step-by-step CLI as 'nobody' (rootless: holder + nsenter), when nobody can run this Python.

    PW_TEST_USER_PYTHON names a Python that user can run (with this coursekit's dependencies).
    """
    if os.geteuid() != 0:
        pytest.skip("run as a normal user already: test_cli_step_by_step_with_cold_caches takes the rootless path")
    ok, why = lab.rootless_possible()
    require(ok, f"user namespaces are not allowed here: {why}")
    import shutil
    import tempfile
    python = os.environ.get("PW_TEST_USER_PYTHON", sys.executable)
    pythonpath, bundle = str(ROOT), None
    probe = subprocess.run(["runuser", "-u", "nobody", "--", python, "-c", "import coursekit.lab, scapy, libpcap"],
                           capture_output=True, text=True, env=lab._child_env(), cwd="/")
    if probe.returncode != 0:
        # this checkout or its venv is not readable by 'nobody' (CI's checkout under a 0700
        # home): give it a readable copy of exactly what the lab imports
        bundle = _bundle_for_nobody()
        pythonpath = str(bundle)
        python = next((py for py in (os.path.realpath(sys.executable),
                                     shutil.which(f"python{sys.version_info[0]}.{sys.version_info[1]}", path=USER_PATH))
                       if py and subprocess.run(["runuser", "-u", "nobody", "--", py, "-c", ""],
                                                capture_output=True).returncode == 0), None)
        assert python, f"no Python {sys.version_info[0]}.{sys.version_info[1]} that 'nobody' can run"
        probe = subprocess.run(["runuser", "-u", "nobody", "--", "env", f"PYTHONPATH={pythonpath}", python, "-c",
                                "import coursekit.lab, scapy, libpcap"],
                               capture_output=True, text=True, env=lab._child_env(), cwd="/")
        assert probe.returncode == 0, probe.stderr[-500:]
    out = Path(tempfile.mkdtemp(prefix="pw-as-nobody-", dir="/tmp"))      # tmp_path is root's (0700)
    os.chown(out, 65534, 65534)
    wrapper = tmp_path / "as-nobody"
    wrapper.write_text(f'#!/bin/sh\nexec runuser -u nobody -- env PATH={USER_PATH} PYTHONPATH={pythonpath} '
                       f'TMPDIR=/tmp {python} "$@"\n')
    wrapper.chmod(0o755)
    try:
        _step_by_step_as(wrapper, out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if bundle:
            shutil.rmtree(bundle, ignore_errors=True)
    assert _lab_processes("nobody") == []
    assert lab.leftovers() == []


def _bundle_for_nobody() -> Path:
    """A world-readable folder with this coursekit, its data and the site-packages modules the lab
    imports (found by importing them here), for a Python run as 'nobody'."""
    import shutil
    import tempfile
    code = ("import sys, coursekit.lab, coursekit.cli, scapy.all, libpcap\n"
            "sp = [p for p in sys.path if p.endswith('site-packages')]\n"
            "print('\\n'.join(sorted({getattr(m, '__file__', None) or '' for m in list(sys.modules.values())\n"
            "                          if any((getattr(m, '__file__', None) or '').startswith(p) for p in sp)})))\n")
    files = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd="/", env=dict(os.environ, PYTHONPATH=str(ROOT))).stdout.split()
    site = [p for p in sys.path if p.endswith("site-packages")]
    top = set()
    for f in files:
        base = next(p for p in site if f.startswith(p))
        top.add(Path(base) / Path(f).relative_to(base).parts[0])
    bundle = Path(tempfile.mkdtemp(prefix="pw-nobody-python-", dir="/tmp"))
    for src in top:
        if "__editable__" in src.name or src.name == "coursekit":
            continue
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, bundle / src.name)
        if src.is_dir():                            # a package's compiled helpers live beside it
            for sib in src.parent.glob(src.name + "*.so"):
                shutil.copy2(sib, bundle / sib.name)
    for extra in Path(site[0]).glob("*__mypyc*.so"):
        shutil.copy2(extra, bundle / extra.name)
    for meta in Path(site[0]).glob("*.dist-info"):  # packages that read their own metadata (pkg_about)
        if not (bundle / meta.name).exists():
            shutil.copytree(meta, bundle / meta.name)
    shutil.copytree(ROOT / "coursekit", bundle / "coursekit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data", bundle / "data")
    for p in [bundle, *bundle.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644 | (p.stat().st_mode & 0o111))
    return bundle


def _step_by_step_as(wrapper: Path, out: Path) -> None:
    def cli(*args):
        return subprocess.run([str(wrapper), "-m", "coursekit", "lab", *args], capture_output=True, text=True,
                              timeout=300, cwd="/")
    try:
        r = cli("up", "--out", str(out))
        assert r.returncode == 0, r.stderr
        assert lab.leftovers() == []                   # nothing on the host: inside the holder's namespaces
        assert cli("capture").returncode == 0
        r = cli("compare")
        assert r.returncode == 2 and "run first" in r.stderr, r.stderr
        r = cli("run")
        assert r.returncode == 0 and "233-byte header + 612-byte body" in r.stdout, r.stderr
        r = cli("compare")
        assert r.returncode == 0 and "fields compared by value, all equal" in r.stdout, r.stdout + r.stderr
        assert len(list(out.glob("*.pcap"))) == 10
    finally:
        r = cli("down")
    _removed_the_article_labs_namespaces(r)
    assert "removed 0 namespaces" in cli("down").stdout


def test_compare_before_the_request_says_run_first(ready, article, tmp_path, request):
    if inside_own_namespace(request, tmp_path):
        return
    with lab.Lab(article, tmp_path) as lb:
        lb.up()
        lb.start_captures()
        with pytest.raises(ck.CourseError, match="request has not been sent yet"):
            lb.compare()
        lb.stop_captures()


# -- TCP details the real kernel decides (see coursekit.conversation) -------------------------

def _tcp(pcap: Path, server_port: int):
    """(sender, flags, payload length, ack, IP id) of every TCP segment in a pcap."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    out = []
    for f in ck.read_pcap(pcap)[1]:
        p = Ether(f.data)
        if p.haslayer(TCP):
            out.append(("server" if p[TCP].sport == server_port else "client", str(p[TCP].flags),
                        len(p[TCP].payload), p[TCP].ack, p[IP].id))
    return out


def test_kernel_psh_on_the_last_segment_of_a_write_and_the_fin_acks_a_short_last_segment(ready, article, tmp_path):
    """Pod MTU 600: nginx's 612-byte body leaves as 548 + 64 bytes.  The kernel sets PSH on the 64 only,
    sends no separate ACK for the 64 + FIN (busybox's FIN carries it), and the server's last ACK
    comes from its full socket (IP id continues).  The model matches every field, IP id included."""
    sc = apply(article, {"pod_mtu": 600})
    report = lab.run_all(sc, tmp_path)
    _check(report, sc)
    segs = _tcp(tmp_path / "busybox-eth0.pcap", sc.request.port)
    data = [(f, n) for who, f, n, _, _ in segs if who == "server" and n]
    assert data == [("PA", 233), ("A", 548), ("FPA", 64)]
    fin_end = next(a for who, f, _, a, _ in segs if who == "client" and "F" in f)
    assert [f for who, f, _, a, _ in segs if who == "client" and a == fin_end] == ["FA"]    # no separate ACK
    ids = [i for who, f, _, _, i in segs if who == "server" and f != "SA"]
    assert ids[-1] == ids[-2] + 1 != 0
    assert sum(r.matched for r in report.interfaces) > 3000


def test_kernel_time_wait_ack_has_ip_id_zero_and_the_comparison_checks_it(ready, article, tmp_path, monkeypatch):
    """The article's shape: the client ACKs the body + FIN apart, so nginx's closed socket is in TIME_WAIT
    when the client's FIN arrives; that ACK carries IP id 0.  A model that went on counting is caught."""
    report = lab.run_all(article, tmp_path)
    _check(report)
    segs = _tcp(tmp_path / "busybox-eth0.pcap", article.request.port)
    assert [f for who, f, n, _, _ in segs if who == "client" and not n][-2:] == ["A", "FA"]
    last = segs[-1]
    assert last[0] == "server" and last[1] == "A" and last[4] == 0
    assert ("IPv4", "id") not in lab.FREE_FIELDS
    from coursekit import conversation
    real = conversation.segments

    def counting(scenario):
        segs = real(scenario)
        for s in segs:
            if s.sent_from == "time-wait":
                s.sent_from = "socket"                # the old model: the socket's counter goes on
        return segs

    monkeypatch.setattr(conversation, "segments", counting)
    pcaps = {(r.node, r.iface): str(tmp_path / f"{r.node}-{r.iface}.pcap") for r in report.interfaces}
    wrong = lab.compare(article, pcaps)
    assert not wrong.ok
    assert all(any("IPv4 id" in d for d in r.differences) for r in wrong.interfaces if r.model_frames)


def test_kernel_one_byte_last_segment(ready, article, tmp_path):
    """Pod MTU 663: the body leaves as 611 + 1 bytes; still no separate ACK, PSH on the 1-byte segment."""
    sc = apply(article, {"pod_mtu": 663})
    report = lab.run_all(sc, tmp_path)
    _check(report, sc)
    data = [(f, n) for who, f, n, _, _ in _tcp(tmp_path / "nginx-1-eth0.pcap", 80) if who == "server" and n]
    assert data == [("PA", 233), ("A", 611), ("FPA", 1)]


def test_bad_output_places_get_one_line(ready, tmp_path):
    """--out under a file or in /proc, --json into a folder or a missing one: one line, no traceback, no run."""
    (tmp_path / "file").write_text("x")
    env = dict(lab._child_env(), PATH=USER_PATH)
    for args, field in ((["--out", str(tmp_path / "file" / "sub")], "--out"), (["--out", "/proc/pw-lab"], "--out"),
                        (["--json", str(tmp_path)], "--json"), (["--json", str(tmp_path / "no" / "r.json")], "--json")):
        r = subprocess.run([sys.executable, "-m", "coursekit", "lab", "all", *args], capture_output=True, text=True,
                           env=env, timeout=300)
        assert r.returncode == 2 and f"error: {field}:" in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert lab.leftovers() == []


# -- every traffic case of data/scenarios on the real kernel (one run each) --------------------

TRAFFIC_CASES = ["article", "same-node", "same-node-no-br-netfilter", "hairpin", "from-node", "nodeport",
                 "pod-to-world", "pod-to-pod", "pod-to-pod-flannel-ip-masq", "dns"]


def _busy(report) -> set:
    return {(r.node, r.iface) for r in report.interfaces if r.lab_frames - r.unmodelled}


@pytest.mark.parametrize("name", TRAFFIC_CASES)
def test_every_traffic_case_matches_the_model_on_the_real_kernel(ready, tmp_path, name):
    """The lab builds the case as the model does (host-namespace client, external host on the
    underlay, NodePort, filter table, br_netfilter on/off, hairpin) and the kernel's captures
    equal the model's on every interface, including where the model drops or resets."""
    sc = ck.load_scenario(name)
    w = ck.walk(sc)
    report = lab.run_all(sc, tmp_path)
    assert report.ok, report.text()
    # the interfaces the kernel used are exactly those the model's path crosses
    assert _busy(report) == {(o.node, o.iface) for o in w.observations}, report.text()
    assert {(r.node, r.iface) for r in report.interfaces} == {(x, i) for x in [n.name for n in sc.nodes]
                                                              + [p.name for p in sc.pods]
                                                              + [e.name for e in sc.externals]
                                                              for i in sc.interfaces(x)}
    for d in w.drops:
        assert f"The model drops segment {d.segment} ({w.segments[d.segment].label}) at {d.node} {d.iface}" \
            in report.text() and "no capture of the kernel shows it past that point" in report.text()
    if name == "same-node":                    # bridged port to port: docker0 itself sees nothing
        assert ("xiaomi", "docker0") not in _busy(report) and ("xiaomi", "enp4s0") not in _busy(report)
    if name == "hairpin":                      # out of nginx-1's port and back in by the same port
        assert next(r for r in report.interfaces if r.iface == "veth9f02b5d").model_frames == 2 * len(w.segments)
    if name == "same-node-no-br-netfilter":    # busybox resets the SYN-ACK it never asked for
        assert [s.label for s in w.segments] == ["SYN", "SYN-ACK", "RST (no socket)"]


@pytest.mark.parametrize("changes,where", [
    ({"flannel.version": "v0.8.0"}, ("meizu", "flannel.1")),          # no flannel FORWARD rules: policy DROP
    ({"nodes.meizu.hairpinMode": False}, ("meizu", "veth9f02b5d")),   # the bridge will not send it back
], ids=["forward-policy-drop", "hairpin-off"])
def test_a_dropped_syn_appears_nowhere_past_the_drop_on_the_real_kernel(ready, tmp_path, changes, where):
    name = "hairpin" if "nodes.meizu.hairpinMode" in changes else "article"
    sc = ck.load_scenario(name, changes)
    w = ck.walk(sc)
    # the SYN and its retransmissions (coursekit.faults), each dropped at the same place
    assert {(d.node, d.iface) for d in w.drops} == {where} and w.drops[0].segment == 0
    assert [s.retransmission for s in w.segments] == list(range(len(w.drops)))
    report = lab.run_all(sc, tmp_path)
    assert report.ok, report.text()
    assert f"The model's {len(w.drops) - 1} retransmissions of the unanswered SYN" in report.text()
    assert _busy(report) == {(o.node, o.iface) for o in w.observations}
    assert "no capture of the kernel shows it past that point" in report.text()
    assert "not seen (no SYN-ACK" in str(report.fed["serverISN"])


@pytest.mark.parametrize("name", TRAFFIC_CASES)
def test_the_comparison_reads_every_case_back_from_the_models_own_pcaps(tmp_path, name):
    """No kernel needed: the model's captures, compared as if the lab had made them, agree."""
    sc = ck.load_scenario(name)
    report = lab.compare(sc, model_pcaps(sc, tmp_path))
    assert report.ok, report.text()


def test_a_missing_or_doubled_sighting_is_named_not_counted(tmp_path):
    """The hairpin case crosses nginx-1's eth0 twice per segment; take one sighting away and add a copy of
    another: the report names both (segment, label, which sighting), never a bare count."""
    from coursekit.capture import read_pcap
    sc = ck.load_scenario("hairpin")
    pcaps = model_pcaps(sc, tmp_path)
    path = pcaps[("nginx-1", "eth0")]
    frames = read_pcap(path)[1]
    w = ck.walk(sc)
    # frames 0 and 1 are the SYN out and the SYN back in (masqueraded); drop the second, double the GET
    get = w.segment("GET")
    kept = [f for k, f in enumerate(frames) if k != 1]
    gets = [f for f in frames if f.data == next(o.frame for o in w.at("nginx-1", "eth0") if o.segment == get)]
    ck.write_pcap(path, kept + gets)
    report = lab.compare(sc, pcaps)
    assert not report.ok
    text = report.text()
    assert "the model's segment 0 (SYN) (sighting 2) not in the lab's capture" in text, text
    assert f"the lab's segment {get} (HTTP request) (sighting 3) not in the model" in text, text


def test_a_hairpin_port_gets_its_own_broadcast_back_in_the_model():
    """br_flood delivers to every port that should_deliver allows: the ingress port too when it is
    in hairpin mode.  busybox's ARP request for its gateway comes back to it (the kernel agrees:
    test_cold_caches_arp_matches_the_model)."""
    sc = ck.load_scenario("article", {"neighbourCaches": "cold"})
    arp = [(o.direction, o.frame[21]) for o in ck.walk(sc).at("busybox", "eth0") if o.flow == "arp"]
    assert arp == [("out", 1), ("in", 1), ("in", 2)]          # request out, the request back, the reply
    off = ck.load_scenario("article", {"neighbourCaches": "cold", "nodes.xiaomi.hairpinMode": False})
    assert [(o.direction, o.frame[21]) for o in ck.walk(off).at("busybox", "eth0") if o.flow == "arp"] == \
        [("out", 1), ("in", 2)]


# -- traffic case 6 on the real kernel: the DNS conversations, then the request ------------------

def _dns_sightings(report) -> int:
    return sum(1 for r in report.interfaces for d in r.differences if "DNS" in d)


def test_dns_case_lab_compare_on_the_real_kernel(ready, tmp_path):
    """``lab up / capture / run / compare`` on the DNS case: the lab's kube-dns answers in the CoreDNS
    pod, the queries cross kube-proxy's UDP chains and the masquerade, every DNS datagram is compared
    field by field on every interface it crosses, and each query's conntrack entry on both nodes
    equals the model's.  The model's own wrong answer (another TTL) is caught."""
    from coursekit import dns
    out = tmp_path / "pcaps"
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def step(*args):
        return subprocess.run([sys.executable, "-m", "coursekit", "lab", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    try:
        for args in (["up", "--scenario", "dns", "--out", str(out)], ["capture"], ["run"],
                     ["compare", "--json", str(tmp_path / "r.json")]):
            r = step(*args)
            assert r.returncode == 0, (args, r.stdout[-3000:], r.stderr[-2000:])
            if args[0] == "run":         # the scripted resolver's log: AAAA, then A, from the real answers
                assert "AAAA? nginx.default.svc.cluster.local: NOERROR, 0 answers; " \
                       "A? nginx.default.svc.cluster.local: NOERROR, 1 answers" in r.stdout, r.stdout
            if args[0] == "compare":
                assert "all equal" in r.stdout and "DIFFERENT" not in r.stdout, r.stdout
    finally:
        assert step("down").returncode == 0
    assert lab.leftovers() == []
    sc = ck.load_scenario("dns")
    pcaps = {(x, i): str(out / f"{x}-{i}.pcap") for x in [n.name for n in sc.nodes] + [p.name for p in sc.pods]
             for i in sc.interfaces(x)}
    report = lab.compare(sc, pcaps)
    assert report.ok, report.text()
    # the queries on the wire, as uClibc-ng sends them: ids 2 and 3, AAAA then A, one socket (port) each
    frames = ck.read_pcap(out / "busybox-eth0.pcap")[1]
    queries = [lab._dns_key(f.data, sc.flannel.port) for f in frames]
    assert [q for q in queries if q] == [("dns", 2, "query"), ("dns", 2, "answer"), ("dns", 3, "query"),
                                         ("dns", 3, "answer")]
    assert len(set(report.fed["dnsSourcePorts"])) == 2
    # CoreDNS saw the masqueraded source (172.30.83.0) and busybox got the answer from the cluster IP
    text = ck.render(ck.read_pcap(out / "coredns-eth0.pcap")[1], n=2)
    assert "172.30.83.0." in text and "> 172.30.20.3.53: 2+ AAAA? nginx.default.svc.cluster.local." in text
    assert "10.254.0.2.53 > 172.30.83.9." in ck.render(frames, n=2)
    # one entry per query on each node, equal to the model's (DNAT on xiaomi, both un-NATed by the answer)
    assert len(report.conntrack) == 2 * len(dns.plan(sc)) and all(c.ok for c in report.conntrack)
    assert {c.node for c in report.conntrack} == {"xiaomi", "meizu"}
    # every interface the DNS datagrams cross compares them: the CoreDNS pod's two included
    assert {(r.node, r.iface) for r in report.interfaces if r.model_frames} >= {("coredns", "eth0"),
                                                                               ("meizu", "veth2d8e61a")}
    # a model that answers with another TTL differs from the kernel's captures, where the answer crosses
    wrong = lab.compare(sc.with_changes({"dns.ttl": 9}), pcaps)
    assert not wrong.ok and _dns_sightings(wrong) >= 10, wrong.text()
    # a conntrack entry the kernel does not have is named
    (out / "meizu.conntrack").write_text("", encoding="utf-8")
    gone = lab.compare(sc, pcaps)
    assert not gone.ok and "(no such entry)" in gone.text()


# -- the outer VXLAN datagram crosses the host's netfilter hooks (nat and filter) ------------------

def _host_firewall(monkeypatch, node: str, rule):
    """A host firewall rule on ``node`` in the model's filter table (and so in the lab's)."""
    from coursekit import faults
    monkeypatch.setattr(faults, "input_rules", lambda sc, n: [rule] if n == node else [])


@pytest.mark.parametrize("chain,node,where", [("OUTPUT", "xiaomi", ("xiaomi", "flannel.1")),
                                              ("INPUT", "meizu", ("meizu", "enp4s0"))])
def test_a_filter_rule_on_the_vxlan_port_drops_the_outer_datagram_where_the_kernel_does(
        ready, article, tmp_path, request, monkeypatch, chain, node, where):
    """``-A OUTPUT -p udp --dport 8472 -j DROP`` on the sending node drops the SYN's VXLAN datagram after
    flannel.1 (ip_local_out), ``-A INPUT ...`` on the receiving one before the VXLAN socket: the model
    drops it there, and the kernel's captures show it nowhere past that point."""
    if inside_own_namespace(request, tmp_path):
        return
    from coursekit.netfilter import Rule
    _host_firewall(monkeypatch, node, Rule(chain, "DROP", proto="udp", dport=8472, owner="admin"))
    sc = article.with_changes({"observed.clientPort": 41001})          # a scenario of its own (no cached walk)
    w = ck.walk(sc)
    assert {(d.node, d.iface) for d in w.drops} == {where}
    assert w.drops[0].reason == f"filter {chain}: -A {chain} -p udp -m udp --dport 8472 -j DROP"
    with lab.Lab(sc, tmp_path) as lb:
        lb.up()
        assert f"-A {chain} -p udp -m udp --dport 8472 -j DROP" in lb.iptables_save(node, "filter")
        lb.start_captures()
        lb.request()
        lb.stop_captures()
        report = lb.compare()
    assert report.ok, report.text()
    assert _busy(report) == {(o.node, o.iface) for o in w.observations}, report.text()
    assert "no capture of the kernel shows it past that point" in report.text()


@pytest.mark.parametrize("name", ["from-node", "nodeport"])
def test_kube_proxys_mark_masquerades_the_outer_datagram_too(ready, tmp_path, request, name):
    """kube-proxy 1.14 marks the first packet (KUBE-MARK-MASQ); the mark survives the encapsulation
    (skb_scrub_packet keeps it within one namespace), so KUBE-POSTROUTING's MASQUERADE matches the
    SYN on flannel.1 *and* its outer datagram on enp4s0: the kernel's rule counter says 2, as the model."""
    if inside_own_namespace(request, tmp_path):
        return
    sc = ck.load_scenario(name)
    w = ck.walk(sc)
    masq = [(o.iface, d.entry) for o in w.observations for d in o.decisions
            if o.node == "xiaomi" and d.table == "nat POSTROUTING" and "KUBE-POSTROUTING" in d.entry
            and "MASQUERADE" in d.entry]
    assert {i for i, _ in masq} == {"flannel.1", "enp4s0"} and len(masq) == 2, masq
    with lab.Lab(sc, tmp_path) as lb:
        lb.up()
        lb.start_captures()
        lb.request()
        lb.stop_captures()
        counted = lb._exec(lb.ns("xiaomi"), lab._tool("iptables"), "-w", "-t", "nat", "-L", "KUBE-POSTROUTING",
                           "-v", "-x", "-n").stdout
        report = lb.compare()
    assert report.ok, report.text()
    row = next(line.split() for line in counted.splitlines() if "MASQUERADE" in line)
    assert int(row[0]) == len(masq), counted
