"""``python -m coursekit`` (or the ``coursekit`` command): captures, the tcpdump view, the live lab.

    python -m coursekit capture --node meizu --interface enp4s0 -o meizu-enp4s0.pcap
    python -m coursekit show --node meizu --interface enp4s0 -nn 'port 8472 and udp'
    python -m coursekit render meizu-enp4s0.pcap -nn -e 'tcp port 80' -v   # flags anywhere, as tcpdump
    python -m coursekit data            # rebuild everything under data/
    python -m coursekit explain node1-eth0.pcap node2-eth0.pcapng --state state/   # your own captures
    python -m coursekit collect --print > collect.sh   # a read-only script to run on each node
    python -m coursekit scenario from-state state/ -o my.yaml   # the nodes' state as a scenario
    python -m coursekit compare my.yaml captures/ --state state/   # the model beside real captures
    sudo "$(command -v coursekit)" lab all   # root from a virtual environment

Every learner mistake prints one line (``error: field: problem (allowed: ...)``)
and exits with status 2; anything else that goes wrong prints one line
("internal error, please report ...") and exits with status 70 (EX_SOFTWARE);
an interrupt exits with 130.  No traceback reaches the user.

``render`` prints times the way tcpdump does: in the reader's time zone (TZ)
-- unless the pcap is one of the scenario's own captures (every frame's time
and bytes are a frame the model computes for that scenario, as for the files
under data/captures or what ``capture`` wrote), which print at the scenario's
UTC offset, as the scenario's tcpdump did.  ``--utc-offset`` (``+08:00``,
``local`` or ``scenario``) says it explicitly.

Taught in: README (command line), 01-physical-nic.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
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


def _style(args, scenario, frames=None):
    from .tcpdump import Style
    if args.v > 1:
        raise CourseError("flags", "-vv and -vvv are not modelled", "-v")
    st = Style.for_scenario(scenario, n=min(args.n, 2), e=args.e, v=args.v, vxlan_style=args.vxlan_style)
    if frames is None:                   # `show`: the scenario's own clock
        return st
    how = getattr(args, "utc_offset", None) or "auto"
    if how == "auto":
        how = "scenario" if _is_own_capture(scenario, frames) else "local"
    if how == "local":
        st.local_time = True
    elif how != "scenario":
        from .scenario import _parse_offset
        st.utc_offset_minutes = _parse_offset(how, "--utc-offset")
    return st


def _is_own_capture(scenario, frames) -> bool:
    """Every frame (time and bytes) is one the model computes for this scenario."""
    if not frames or any(getattr(f, "linktype", 1) != 1 for f in frames):
        return False
    from .datapath import walk
    own = {(o.time_us, o.frame) for o in walk(scenario).observations}
    return all((f.time_us, f.data) in own for f in frames)


def build_data(root: Path | None = None) -> list[Path]:
    """Regenerate every capture and text view under ``data/captures`` (deterministic).

    For each scenario in ``data/scenarios``: one pcap and one tcpdump text
    per interface of each node and pod, plus each node's state
    (``ip route``, ``ip neigh``, ``bridge fdb``, ``iptables-save -t nat``).
    """
    from .capture import capture, write_pcap
    from .datapath import walk
    from .netfilter import filter_save, iptables_save, nat_table
    from .outputs import output_dir, write_file
    from .routing import bridge_fdb, ip_neigh, ip_route, route_n
    from .scenario import data_dir, load_scenario
    from .tcpdump import Style, render

    root = Path(root) if root else data_dir()
    written = []
    scen = data_dir() / "scenarios"
    # the fault scenarios (coursekit.faults) under captures/faults/<name>, their state with the filter table
    for sfile in sorted(scen.glob("*.yaml")) + sorted(scen.glob("faults/*.yaml")):
        sc = load_scenario(sfile)
        w = walk(sc)
        fault = sfile.parent.name == "faults"
        out = output_dir(root / "captures" / ("faults" if fault else "") / sc.name, "data")
        out.mkdir(parents=True, exist_ok=True)
        points = [(n.name, i) for n in sc.nodes for i in sc.interfaces(n.name)]
        points += [(p.name, "eth0") for p in (sc.client, sc.server) if p.name not in {n.name for n in sc.nodes}]
        points += [(p.name, "eth0") for p in sc.pods if (p.name, "eth0") not in points]   # e.g. the DNS server
        for node, iface in points:
            frames = capture(sc, node, iface, walk=w)
            if not frames:
                continue
            base = out / f"{node}-{iface}"
            written.append(write_pcap(base.with_suffix(".pcap"), frames))
            written.append(write_file(base.with_suffix(".txt"), render(frames, Style.for_scenario(sc)), "data"))
        for n in sc.nodes:
            rules, chains = nat_table(sc, n.name)
            text = (f"# {n.name}: ip route\n{ip_route(sc, n.name)}\n# {n.name}: route -n\n{route_n(sc, n.name)}\n"
                    f"# {n.name}: ip neigh\n{ip_neigh(sc, n.name)}\n# {n.name}: bridge fdb show dev "
                    f"{sc.flannel.device}\n{bridge_fdb(sc, n.name)}\n# {n.name}: iptables-save -t nat\n"
                    f"{iptables_save(rules, chains)}")
            if fault:
                text += f"\n# {n.name}: iptables-save -t filter\n{filter_save(sc, n.name)}"
            written.append(write_file(out / f"{n.name}-state.txt", text, "data"))
    return written


def notebooks_dir() -> Path:
    """The chapters: beside the package in a clone (editable install), else ./notebooks."""
    for d in (Path(__file__).resolve().parent.parent / "notebooks", Path.cwd() / "notebooks"):
        if any(d.glob("00-*.ipynb")):
            return d
    raise CourseError("notebooks", "no chapters found next to coursekit or in ./notebooks",
                      "run from a clone of the repository (pip install -e .)")


def open_command(chapter: str = "00", no_browser: bool = False, lang: str = "en") -> list[str]:
    """The ``jupyter lab`` command that opens a chapter (``--allow-root`` only for root).

    The chapter is JupyterLab's default URL, so the address it prints (on a
    machine without a browser, or with ``--no-browser``) opens the chapter,
    not an empty ``/lab``.  ``lang="zh"`` opens the Chinese edition (``notebooks/zh/``).
    """
    if lang not in ("en", "zh"):
        raise CourseError("lang", f"{lang!r} is not a language of the course", "en, zh")
    root = notebooks_dir()
    nb = root / "zh" if lang == "zh" else root
    if not isinstance(chapter, str) or not chapter or "/" in chapter or "\0" in chapter:
        raise CourseError("chapter", f"{chapter!r} is not a chapter",
                          ", ".join(p.name[:2] for p in sorted(nb.glob("[0-9][0-9]-*.ipynb"))))
    matches = sorted(nb.glob(f"{glob_escape(chapter)}*.ipynb")) if not chapter.endswith(".ipynb") else [nb / chapter]
    if not matches or not matches[0].exists():
        raise CourseError("chapter", f"no chapter {chapter!r}",
                          ", ".join(p.name[:2] for p in sorted(nb.glob("[0-9][0-9]-*.ipynb"))))
    rel = matches[0].relative_to(root.parent).as_posix()
    from .server import SERVER_OPTION     # kernel messages without Nagle's 40 ms waits (coursekit/server.py)
    cmd = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={root.parent}", SERVER_OPTION,
           f"--LabApp.default_url=/lab/tree/{rel}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")           # JupyterLab refuses root without it (containers, CI)
    if no_browser:
        cmd.append("--no-browser")
    return cmd


def glob_escape(text: str) -> str:
    import glob
    return glob.escape(text)


def _open(args) -> int:
    cmd = open_command(args.chapter, args.no_browser, args.lang)
    print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
    os.chdir(notebooks_dir().parent)
    if os.name == "posix":          # become JupyterLab: ^C and kill reach it, no orphaned server
        os.execv(cmd[0], cmd)
    import subprocess               # pragma: no cover - Windows
    return subprocess.call(cmd)


def _lab(args) -> int:
    from . import lab
    from .outputs import output_dir, output_file

    def say(msg):
        print(f"  {msg}", file=sys.stderr, flush=True)

    # every place the lab will write is checked before anything is built
    if args.json:
        output_file(args.json, "--json")
    if args.out:
        output_dir(args.out, "--out")
    return lab.command(args.action, args.scenario, args.out, args.json, args.cold, say, fault=args.fault)


def _own_cluster(args) -> int:
    """``explain`` and ``collect``: a learner's own captures and state (chapter 10)."""
    if args.cmd == "collect":
        from .collect import collect, collect_script
        if args.print_script:
            sys.stdout.write(collect_script())
            return 0
        if not args.out:
            raise CourseError("collect", "no --out folder given", "--out DIR, or --print for the script")
        path = collect(args.out, args.node)
        print(f"wrote {path}", file=sys.stderr)
        return 0
    from .explanation import explain
    from .outputs import output_file, write_file
    if args.json and args.json != "-":
        output_file(args.json, "--json")
    if args.max_packets < 0:
        raise CourseError("--max-packets", f"{args.max_packets} is negative", "0 or more")
    ex = explain(args.captures, state=args.state, vxlan_ports=args.vxlan_port)
    if args.json == "-":
        sys.stdout.write(ex.json() + "\n")
        return 0
    if args.json:
        write_file(args.json, ex.json() + "\n")
    sys.stdout.write(ex.text(args.max_packets))
    return 0


def _from_state_and_compare(args) -> int:
    """``scenario from-state`` and ``compare``: a real cluster beside the model (chapter 10)."""
    from .outputs import output_file, write_file
    if args.json and args.json != "-":
        output_file(args.json, "--json")
    if args.cmd == "scenario":
        from .from_state import derive, write_scenario
        output_file(args.output, "--output")
        d = derive(args.state, args.name)
        path = write_scenario(d, args.output)
        from .from_state import load_written
        load_written(path)                               # what was written is a scenario the course accepts
        sys.stderr.write(d.text())
        print(f"wrote {path}" + (f" and {path.stem}-manifests.yaml" if d.manifests else ""), file=sys.stderr)
        return 0
    from .comparison import compare_captures
    if args.scenario is not None:
        model, real = args.scenario, args.paths
    else:
        if len(args.paths) != 2:
            raise CourseError("compare", f"{len(args.paths)} paths given", "MODEL REAL (two files or folders), or "
                              "--scenario FILE REAL...")
        model, real = args.paths
    c = compare_captures(model, real, state=args.state, model_state=args.model_state, vxlan_ports=args.vxlan_port)
    import json
    if args.json == "-":
        sys.stdout.write(json.dumps(c.to_json(), indent=1, sort_keys=True) + "\n")
    else:
        if args.json:
            write_file(args.json, json.dumps(c.to_json(), indent=1, sort_keys=True) + "\n")
        sys.stdout.write(c.text())
    return 1 if c.first else 0


def _parsers(prog: str) -> tuple[argparse.ArgumentParser, dict]:
    ap = argparse.ArgumentParser(prog=prog, description="Packet Walk course kit")
    sub = ap.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("capture", help="write the pcap tcpdump would record on an interface")
    c.add_argument("--node", required=True, help="node (xiaomi, meizu) or pod (busybox, nginx-1)")
    c.add_argument("--interface", required=True, help="enp4s0, flannel.1, docker0, veth..., eth0")
    c.add_argument("-o", "--output", required=True, help="the pcap file to write (a new or regular file)")
    c.add_argument("--scenario", default="article", help="scenario name or YAML file (default: article)")

    s = sub.add_parser("show", help="print what tcpdump on an interface would print")
    s.add_argument("--node", required=True)
    s.add_argument("--interface", required=True)
    s.add_argument("--scenario", default="article")
    _tcpdump_flags(s)

    r = sub.add_parser("render", help="print a pcap as tcpdump -r would")
    r.add_argument("pcap")
    r.add_argument("--scenario", default="article", help="names (hosts, services) from this scenario")
    r.add_argument("--utc-offset", default=None,
                   help="times at this offset (+08:00), 'local' (TZ, as tcpdump) or 'scenario'; default: "
                        "the scenario's offset for its own captures, local time for any other pcap")
    _tcpdump_flags(r)

    lb = sub.add_parser("lab", help="the live lab: the scenario on this machine's kernel (root, or rootless "
                                    "where user namespaces are allowed)")
    lb.add_argument("action", choices=["up", "capture", "run", "compare", "down", "all", "status", "break", "fix"],
                    help="up: build; capture: start tcpdump everywhere; run: send the request (and stop the "
                         "captures); compare: lab vs model; down: remove everything; all: up..down in one go; "
                         "break NAME: break the running lab (a fault of chapter 09); fix: repair it")
    lb.add_argument("fault", nargs="?", default=None,
                    help="with break: forward-policy-drop, missing-fdb, udp-blocked, udp-blocked-input, vxlan-port, "
                         "no-endpoints, no-br-netfilter")
    lb.add_argument("--scenario", default="article")
    lb.add_argument("--out", default=None, help="where the pcaps go (default: a new temporary directory)")
    lb.add_argument("--json", default=None, help="also write the comparison as JSON to this file")
    lb.add_argument("--cold", action="store_true",
                    help="empty neighbour caches and bridge FDBs (neighbourCaches: cold): ARP shows up, in the model too")

    o = sub.add_parser("open", help="open the course in JupyterLab at chapter 00")
    o.add_argument("chapter", nargs="?", default="00", help="chapter number or notebook (default: 00)")
    o.add_argument("--no-browser", action="store_true", help="print the chapter's URL instead of opening a browser")
    o.add_argument("--lang", default="en", help="en (default) or zh: the Chinese edition, notebooks/zh/ (中文版)")

    ex = sub.add_parser("explain", help="explain real captures: conversations, hops, what changed and why")
    ex.add_argument("captures", nargs="+", help="pcap or pcapng files, named <node>-<interface>.pcap")
    ex.add_argument("--state", default=None, help="a folder of <node>-state.txt files (coursekit collect)")
    ex.add_argument("--vxlan-port", type=int, action="append", default=None,
                    help="also decode this UDP port as VXLAN (8472 and 4789 always are)")
    ex.add_argument("--json", default=None, help="write the explanation as JSON to this file ('-': stdout)")
    ex.add_argument("--max-packets", type=int, default=12, help="packets shown per conversation (default 12)")

    co = sub.add_parser("collect", help="gather this node's state (read-only) for explain --state")
    co.add_argument("--print", action="store_true", dest="print_script",
                    help="print a read-only shell script to run on each node instead")
    co.add_argument("-o", "--out", default=None, help="the folder to write <node>-state.txt into")
    co.add_argument("--node", default=None, help="the node's name (default: this host's short name)")

    sn = sub.add_parser("scenario", help="scenario tools: from-state builds one from a cluster's collected state")
    sn.add_argument("action", choices=["from-state"], help="from-state: the state folder as a scenario file")
    sn.add_argument("state", help="a folder of <node>-state.txt files (coursekit collect), and cluster.json")
    sn.add_argument("-o", "--output", required=True, help="the scenario file to write (.yaml); the Services go "
                                                          "beside it in <name>-manifests.yaml")
    sn.add_argument("--name", default=None, help="the scenario's name (default: from-state)")
    sn.add_argument("--json", default=None, help=argparse.SUPPRESS)

    cp = sub.add_parser("compare", help="the model's walk beside real captures; the first disagreement")
    cp.add_argument("paths", nargs="+", help="MODEL REAL: capture files or folders; with --scenario, only REAL")
    cp.add_argument("--scenario", default=None, help="the model is this scenario (name or .yaml): its captures "
                                                     "at the places the real files name")
    cp.add_argument("--state", default=None, help="the real cluster's state folder (adds the entries behind changes)")
    cp.add_argument("--model-state", default=None, help=argparse.SUPPRESS)
    cp.add_argument("--vxlan-port", type=int, action="append", default=None,
                    help="also decode this UDP port as VXLAN (8472 and 4789 always are)")
    cp.add_argument("--json", default=None, help="write the comparison as JSON to this file ('-': stdout)")

    d = sub.add_parser("data", help="rebuild everything under data/captures")
    d.add_argument("--root", default=None, help=argparse.SUPPRESS)
    return ap, {"show": s, "render": r}


def _parse(argv: list[str], prog: str) -> argparse.Namespace:
    ap, intermixed = _parsers(prog)
    if argv and argv[0] in intermixed:
        # tcpdump's users put flags after the filter: `render x.pcap 'tcp port 80' -nn -v`
        args = intermixed[argv[0]].parse_intermixed_args(argv[1:])
        args.cmd = argv[0]
        return args
    return ap.parse_args(argv)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The command line; returns the exit status (0 ok, 1 lab or compare mismatch, 2 usage or learner error, 70 bug).

    Taught in: README (command line).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = prog or os.path.basename(sys.argv[0] or "coursekit")
    if prog in ("__main__.py", "-c", ""):
        prog = "python -m coursekit"
    try:
        args = _parse(argv, prog)
        return _run(args)
    except SystemExit as e:                 # argparse: usage error (2) or --help (0)
        return e.code if isinstance(e.code, int) else 2
    except CourseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:                 # `| head`: stop quietly, as tcpdump does
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except BaseException as e:  # noqa: BLE001 - the top-level guard: no traceback reaches a user
        what = f"{type(e).__name__}: {e}"
        print(f"internal error, please report (with the command you ran): {what[:300]}", file=sys.stderr)
        return 70


def _run(args) -> int:
    from .bpf import apply_filter
    from .capture import capture, read_pcap, write_pcap
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
    if args.cmd in ("explain", "collect"):
        return _own_cluster(args)
    if args.cmd in ("scenario", "compare"):
        return _from_state_and_compare(args)
    if args.cmd == "capture":
        from .outputs import output_file
        output_file(args.output, "--output")            # a bad place fails before any work
    if args.cmd == "render":
        _, frames = read_pcap(args.pcap)                # a bad file fails before the scenario loads
    sc = load_scenario(args.scenario)
    if args.cmd == "capture":
        frames = capture(sc, args.node, args.interface)
        write_pcap(args.output, frames)
        print(f"{args.output}: {len(frames)} packets on {args.node} {args.interface}", file=sys.stderr)
        return 0
    if args.cmd == "show":
        frames = capture(sc, args.node, args.interface)
        style = _style(args, sc)
    else:
        style = _style(args, sc, frames)
    text = render(apply_filter(frames, args.filter), style)
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0
