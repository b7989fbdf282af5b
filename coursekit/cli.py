"""``python -m coursekit``: captures, the tcpdump view and the data folder from a shell.

    python -m coursekit capture --node meizu --interface enp4s0 -o meizu-enp4s0.pcap
    python -m coursekit show --node meizu --interface enp4s0 -nn 'port 8472 and udp'
    python -m coursekit render meizu-enp4s0.pcap -nn -e
    python -m coursekit data            # rebuild everything under data/

Every learner mistake prints one line (``error: field: problem (allowed: ...)``)
and exits with status 2; no traceback.

Taught in: README (command line), 01-physical-nic.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from .errors import CourseError

__all__ = ["main", "build_data"]


def _tcpdump_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", action="count", default=0, help="don't convert addresses (-n) / and ports (-nn) to names")
    p.add_argument("-e", action="store_true", help="print the link-level header")
    p.add_argument("-v", action="count", default=0, help="verbose: the IP header and checksums")
    p.add_argument("--vxlan-style", choices=["otv", "vxlan"], default="otv",
                   help="how UDP 8472 prints: tcpdump <= 4.99.5 (otv, default) or >= 4.99.6 (vxlan)")
    p.add_argument("filter", nargs="*", help="a pcap-filter(7) expression, e.g. 'host 172.30.83.0 and tcp'")


def _style(args, scenario):
    from .tcpdump import Style
    if args.v > 1:
        raise CourseError("flags", "-vv and -vvv are not modelled", "-v")
    st = Style.for_scenario(scenario, n=min(args.n, 2), e=args.e, v=args.v, vxlan_style=args.vxlan_style)
    if getattr(args, "utc_offset", None) is not None:
        from .scenario import _parse_offset
        st.utc_offset_minutes = _parse_offset(args.utc_offset, "--utc-offset")
    return st


def build_data(root: Path | None = None) -> list[Path]:
    """Regenerate every capture and text view under ``data/captures`` (deterministic).

    For each scenario in ``data/scenarios``: one pcap and one tcpdump text
    per interface of each node and pod, plus each node's state
    (``ip route``, ``ip neigh``, ``bridge fdb``, ``iptables-save -t nat``).
    """
    from .capture import capture, write_pcap
    from .datapath import walk
    from .netfilter import iptables_save, nat_table
    from .routing import bridge_fdb, ip_neigh, ip_route, route_n
    from .scenario import data_dir, load_scenario
    from .tcpdump import Style, render

    root = Path(root) if root else data_dir()
    written = []
    for sfile in sorted((data_dir() / "scenarios").glob("*.yaml")):
        sc = load_scenario(sfile)
        w = walk(sc)
        out = root / "captures" / sc.name
        out.mkdir(parents=True, exist_ok=True)
        points = [(n.name, i) for n in sc.nodes for i in sc.interfaces(n.name)]
        points += [(p.name, "eth0") for p in (sc.client, sc.server)]
        for node, iface in points:
            frames = capture(sc, node, iface, walk=w)
            if not frames:
                continue
            base = out / f"{node}-{iface}"
            written.append(write_pcap(base.with_suffix(".pcap"), frames))
            base.with_suffix(".txt").write_text(render(frames, Style.for_scenario(sc)), encoding="utf-8")
            written.append(base.with_suffix(".txt"))
        for n in sc.nodes:
            rules, chains = nat_table(sc, n.name)
            text = (f"# {n.name}: ip route\n{ip_route(sc, n.name)}\n# {n.name}: route -n\n{route_n(sc, n.name)}\n"
                    f"# {n.name}: ip neigh\n{ip_neigh(sc, n.name)}\n# {n.name}: bridge fdb show dev "
                    f"{sc.flannel.device}\n{bridge_fdb(sc, n.name)}\n# {n.name}: iptables-save -t nat\n"
                    f"{iptables_save(rules, chains)}")
            p = out / f"{n.name}-state.txt"
            p.write_text(text, encoding="utf-8")
            written.append(p)
    return written


def notebooks_dir() -> Path:
    """The chapters: beside the package in a clone (editable install), else ./notebooks."""
    for d in (Path(__file__).resolve().parent.parent / "notebooks", Path.cwd() / "notebooks"):
        if any(d.glob("00-*.ipynb")):
            return d
    raise CourseError("notebooks", "no chapters found next to coursekit or in ./notebooks",
                      "run from a clone of the repository (pip install -e .)")


def open_command(chapter: str = "00", no_browser: bool = False) -> list[str]:
    """The ``jupyter lab`` command that opens a chapter (``--allow-root`` only for root)."""
    import os
    nb = notebooks_dir()
    matches = sorted(nb.glob(f"{chapter}*.ipynb")) if not chapter.endswith(".ipynb") else [nb / chapter]
    if not matches or not matches[0].exists():
        raise CourseError("chapter", f"no chapter {chapter!r}",
                          ", ".join(p.name[:2] for p in sorted(nb.glob("[0-9][0-9]-*.ipynb"))))
    cmd = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={nb.parent}",
           str(matches[0].relative_to(nb.parent))]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")           # JupyterLab refuses root without it (containers, CI)
    if no_browser:
        cmd.append("--no-browser")
    return cmd


def _open(args) -> int:
    import subprocess
    cmd = open_command(args.chapter, args.no_browser)
    print("$ " + " ".join(cmd[1:]), file=sys.stderr)
    return subprocess.call(cmd, cwd=notebooks_dir().parent)


def _lab(args) -> int:
    from . import lab

    def say(msg):
        print(f"  {msg}", file=sys.stderr, flush=True)

    return lab.command(args.action, args.scenario, args.out, args.json, args.cold, say)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m coursekit", description="Packet Walk course kit")
    sub = ap.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("capture", help="write the pcap tcpdump would record on an interface")
    c.add_argument("--node", required=True, help="node (xiaomi, meizu) or pod (busybox, nginx-1)")
    c.add_argument("--interface", required=True, help="enp4s0, flannel.1, docker0, veth..., eth0")
    c.add_argument("-o", "--output", required=True, help="the pcap file to write")
    c.add_argument("--scenario", default="article", help="scenario name or YAML file (default: article)")

    s = sub.add_parser("show", help="print what tcpdump on an interface would print")
    s.add_argument("--node", required=True)
    s.add_argument("--interface", required=True)
    s.add_argument("--scenario", default="article")
    _tcpdump_flags(s)

    r = sub.add_parser("render", help="print a pcap as tcpdump -r would")
    r.add_argument("pcap")
    r.add_argument("--scenario", default="article", help="names (hosts, services) and time zone from this scenario")
    r.add_argument("--utc-offset", default=None, help="print times at this offset, e.g. +00:00")
    _tcpdump_flags(r)

    lb = sub.add_parser("lab", help="the live lab: the scenario on this machine's kernel (root, or rootless "
                                    "where user namespaces are allowed)")
    lb.add_argument("action", choices=["up", "capture", "run", "compare", "down", "all", "status"],
                    help="up: build; capture: start tcpdump everywhere; run: send the request (and stop the "
                         "captures); compare: lab vs model; down: remove everything; all: up..down in one go")
    lb.add_argument("--scenario", default="article")
    lb.add_argument("--out", default=None, help="where the pcaps go (default: a new temporary directory)")
    lb.add_argument("--json", default=None, help="also write the comparison as JSON to this file")
    lb.add_argument("--cold", action="store_true",
                    help="empty neighbour caches and bridge FDBs (neighbourCaches: cold): ARP shows up, in the model too")

    o = sub.add_parser("open", help="open the course in JupyterLab at chapter 00")
    o.add_argument("chapter", nargs="?", default="00", help="chapter number or notebook (default: 00)")
    o.add_argument("--no-browser", action="store_true", help="print the URL instead of opening a browser")

    d = sub.add_parser("data", help="rebuild everything under data/captures")
    d.add_argument("--root", default=None, help=argparse.SUPPRESS)

    args = ap.parse_args(argv)
    try:
        return _run(args)
    except CourseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # pragma: no cover - `| head`
        return 0


def _run(args) -> int:
    from .bpf import apply_filter
    from .capture import Frame, capture, read_pcap, write_pcap
    from .scenario import load_scenario
    from .tcpdump import render

    if args.cmd == "data":
        files = build_data(Path(args.root) if args.root else None)
        print(f"wrote {len(files)} files")
        return 0
    if args.cmd == "lab":
        return _lab(args)
    if args.cmd == "open":
        return _open(args)
    sc = load_scenario(args.scenario)
    if args.cmd == "capture":
        frames = capture(sc, args.node, args.interface)
        write_pcap(args.output, frames)
        print(f"{args.output}: {len(frames)} packets on {args.node} {args.interface}", file=sys.stderr)
        return 0
    style = _style(args, sc)
    if args.cmd == "show":
        frames = capture(sc, args.node, args.interface)
    else:
        linktype, frames = read_pcap(args.pcap)
        if linktype != 1:
            raise CourseError("pcap", f"{args.pcap} has link type {linktype}", "1 (EN10MB, Ethernet)")
        frames = [Frame(f.time_us, f.data, f.orig_len) for f in frames]
    frames = apply_filter(frames, args.filter)
    sys.stdout.write(render(frames, style))
    return 0
