"""The CLI, the data folder, pcap files and packaging."""

import os
import re
import subprocess
import sys

from pathlib import Path

import pytest
import yaml

import coursekit as ck
from coursekit.capture import parse_pcap, pcap_bytes
from coursekit.cli import build_data, main
from conftest import ROOT, require, require_tool


def run(*args):
    return subprocess.run([sys.executable, "-m", "coursekit", *args], capture_output=True, text=True, cwd=ROOT)


def test_data_is_not_stale(tmp_path):
    build_data(tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    stored = sorted(p.relative_to(ROOT / "data") for p in (ROOT / "data" / "captures").rglob("*") if p.is_file())
    assert fresh == stored, "run: python -m coursekit data"
    for rel in fresh:
        assert (tmp_path / rel).read_bytes() == (ROOT / "data" / rel).read_bytes(), f"{rel} is stale"


def test_capture_command_writes_the_same_pcap(tmp_path):
    out = tmp_path / "x.pcap"
    r = run("capture", "--node", "meizu", "--interface", "enp4s0", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == (ROOT / "data/captures/article/meizu-enp4s0.pcap").read_bytes()


def test_show_with_the_article_filter():
    r = run("show", "--node", "meizu", "--interface", "enp4s0", "src 10.167.226.38 and port 8472 and udp")
    assert r.returncode == 0
    assert r.stdout == (ROOT / "tests/golden/enp4s0-udp8472.txt").read_text()


@pytest.mark.parametrize("args,field", [
    (["show", "--node", "meizu", "--interface", "eth9"], "interface"),
    (["show", "--node", "huawei", "--interface", "eth0"], "node"),
    (["show", "--node", "meizu", "--interface", "enp4s0", "src 10.0.0.300"], "filter"),
    (["render", "/etc/hostname"], "pcap"),
    (["render", "/no/such.pcap"], "pcap"),
    (["show", "--node", "meizu", "--interface", "enp4s0", "--scenario", "nope"], "scenario"),
])
def test_errors_are_one_line(args, field):
    r = run(*args)
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {field}: ") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr


def test_truncated_pcap_is_refused_without_a_partial_result(tmp_path):
    good = (ROOT / "data/captures/article/meizu-enp4s0.pcap").read_bytes()
    bad = tmp_path / "cut.pcap"
    bad.write_bytes(good[:-7])
    r = run("render", str(bad))
    assert r.returncode == 2 and "truncated" in r.stderr and r.stdout == ""
    pcapng = tmp_path / "x.pcapng"
    pcapng.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\0" * 40)
    assert "pcapng" in run("render", str(pcapng)).stderr


def test_write_pcap_leaves_nothing_on_error(tmp_path):
    with pytest.raises(ck.CourseError):
        ck.write_pcap(tmp_path / "missing" / "x.pcap", [])
    assert list(tmp_path.iterdir()) == []


def test_pcap_round_trip(article):
    frames = ck.capture(article, "meizu", "docker0")
    _, back = parse_pcap(pcap_bytes(frames))
    assert [(f.time_us, f.data) for f in back] == [(f.time_us, f.data) for f in frames]


def test_render_equals_real_tcpdump_on_a_data_pcap():
    tcpdump = require_tool("tcpdump")
    pcap = ROOT / "data/captures/article/meizu-enp4s0.pcap"
    real = subprocess.run([tcpdump, "-nn", "-e", "-r", str(pcap)], capture_output=True, text=True,
                          env={"TZ": "UTC", "PATH": "/usr/bin:/bin"}).stdout
    assert run("render", str(pcap), "-nn", "-e", "--utc-offset", "+00:00").stdout == real


@pytest.mark.parametrize("expr", ["src 10.167.226.38 and port 8472 and udp", "host 172.30.83.0 and tcp",
                                  "dst 172.30.20.9", "tcp[tcpflags] & tcp-syn != 0", "udp dst port 8472",
                                  "greater 100", "ether src 02:42:ac:1e:14:02", "not arp and ip[8] = 62"])
def test_filters_match_what_tcpdump_keeps(tmp_path, expr):
    tcpdump = require_tool("tcpdump")
    for pcap in sorted((ROOT / "data/captures").rglob("*.pcap"))[:12]:
        out = tmp_path / "kept.pcap"
        subprocess.run([tcpdump, "-r", str(pcap), "-w", str(out), expr], capture_output=True, check=True)
        _, kept = ck.read_pcap(out)
        _, frames = ck.read_pcap(pcap)
        assert [f.data for f in ck.apply_filter(frames, expr)] == [f.data for f in kept], (pcap.name, expr)


def _environment_yml():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = {}
    for d in env:
        if isinstance(d, str):
            name, _, pin = d.partition("=")
            conda[name.strip().lower()] = pin.strip()
    pip = next(d for d in env if isinstance(d, dict))["pip"]
    return conda, pip


def test_environment_yml_and_pyproject_in_step():
    """Same packages (the course's and its tests'), and every conda pin inside pyproject's range."""
    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda, pip = _environment_yml()
    reqs = [Requirement(d) for d in project["dependencies"] + project["optional-dependencies"]["test"]]
    for r in reqs:
        if r.name == "libpcap":             # the binding is PyPI-only: a pip line
            assert any(p.startswith("libpcap") and str(r.specifier) in p for p in pip), pip
        elif r.name == "playwright":        # PyPI: comes with -e .[test]
            assert "-e .[test]" in pip
        else:
            assert r.name in conda, f"{r.name} is in pyproject.toml but not environment.yml"
            assert r.specifier.contains(conda[r.name] + ".0", prereleases=True), (r.name, conda[r.name], r.specifier)
    assert "-e .[test]" in pip


def test_environment_yml_pins_are_the_tested_set():
    """The suite runs with the pinned versions (major.minor): locally a skip says which differ; in CI
    (`.ci/run`) a failure -- pin what is tested."""
    from importlib.metadata import PackageNotFoundError, version
    conda, _ = _environment_yml()
    differ = []
    for name, pin in conda.items():
        # test tooling (pytest, hypothesis) releases often and shapes no output: the range in
        # pyproject.toml is enough; the course's packages are bounded there to the tested minor
        if name in ("python", "pip", "libpcap", "tcpdump", "pytest", "hypothesis") or not pin:
            continue
        try:
            have = version(name)
        except PackageNotFoundError:
            differ.append(f"{name} missing (pinned {pin})")
            continue
        if have.split(".")[:len(pin.split("."))] != pin.split("."):
            differ.append(f"{name} {have} (pinned {pin})")
    py = conda["python"].split(".")
    if [str(x) for x in sys.version_info[:len(py)]] != py:
        differ.append(f"python {sys.version.split()[0]} (pinned {conda['python']})")
    require(not differ, "environment.yml pins differ from this environment: " + ", ".join(differ))


def test_open_command_points_at_chapter_00_and_handles_root(monkeypatch):
    from coursekit import cli
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    cmd = cli.open_command()
    assert cmd[1:4] == ["-m", "jupyter", "lab"] and cmd[-1] == "--LabApp.default_url=/lab/tree/notebooks/00-the-scenario.ipynb"
    assert "--allow-root" not in cmd
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "--allow-root" in cli.open_command("03")
    assert cli.open_command("03")[-2].endswith("03-docker0.ipynb")
    with pytest.raises(ck.CourseError, match="no chapter '42'"):
        cli.open_command("42")
