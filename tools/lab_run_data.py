"""Regenerate data/lab-run: one live-lab run's real captures and its nodes' state.

    flock /tmp/pw-lab.lock python tools/lab_run_data.py      # as root

The live lab (coursekit.lab) builds the article's cluster on this machine's
kernel, captures on every interface, sends the request, and stops the
captures; then ``coursekit collect`` runs its read-only commands inside each
node's network namespace.  What lands in data/lab-run:

* ``captures/<owner>-<interface>.pcap`` -- observed: what tcpdump recorded on
  the real kernel (times, ports, ISNs, IP ids are the kernel's choices);
* ``state/<node>-state.txt`` -- observed: what ip, bridge, iptables-save,
  conntrack and sysctl printed in each node's namespace (interface indexes,
  conntrack timeouts, the iptables-save date line are the machine's);
* ``state/cluster.json`` -- ours: the lab has no API server; this is what
  ``kubectl get pods,svc -o json`` would list for the pods and Services the
  lab built (``coursekit.collect.model_kubectl_json``, deterministic);
* ``README.md`` -- ours, deterministic but for the kernel release it names.

Chapter 10 explains these files as "someone else's cluster".
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import coursekit as ck                                        # noqa: E402
from coursekit.collect import collect, model_kubectl_json    # noqa: E402
from coursekit.lab import Lab                                # noqa: E402

OUT = ROOT / "data" / "lab-run"
SCENARIO = "article"

README = """# One live-lab run: real captures and state

Produced by `tools/lab_run_data.py` (`flock /tmp/pw-lab.lock python tools/lab_run_data.py`, as root):
the live lab (chapter 07) built the `{scenario}` scenario's cluster in network namespaces on a
Linux {release} kernel, captured on every interface with tcpdump, sent busybox's request to
Service nginx, and then ran `coursekit collect`'s read-only commands in each node's namespace.

| file | what it is |
|---|---|
| `captures/*.pcap` | **observed**: tcpdump on the real kernel, one file per interface, named `<owner>-<interface>.pcap` |
| `state/<node>-state.txt` | **observed**: `ip -d addr`, `ip route`, `ip neigh`, `bridge fdb show`, `iptables-save -t nat`, `conntrack -L`, `sysctl` in the node's namespace after the request (`cat /run/flannel/subnet.env` fails: the lab runs no flanneld) |
| `state/cluster.json` | **ours**: the lab has no API server; what `kubectl get pods,svc -o json` would list for the pods and Services the lab built |

The kernel chose the client port, the ISNs, the IP ids and every time; running the script
again gives other values (and the same walk).  Chapter 10 explains these files as someone
else's cluster.
"""


def main() -> int:
    if os.geteuid() != 0:
        print("run as root (the live lab and iptables-save in the nodes' namespaces need it)", file=sys.stderr)
        return 2
    sc = ck.load_scenario(SCENARIO)
    tmp = Path(tempfile.mkdtemp(prefix="packet-walk-lab-run-"))
    try:
        caps = tmp / "captures"
        with Lab(sc, caps, progress=lambda m: print(f"  {m}", file=sys.stderr)) as lab:
            lab.up()
            lab.start_captures()
            lab.request()
            lab.stop_captures()
            report = lab.compare()
            for n in sc.nodes:
                collect(tmp / "state", n.name, netns=lab.ns(n.name))
        (tmp / "state" / "cluster.json").write_text(model_kubectl_json(sc))
        (tmp / "README.md").write_text(README.format(scenario=SCENARIO, release=platform.release()))
        for f in caps.iterdir():
            os.chmod(f, 0o644)
        if OUT.exists():
            shutil.rmtree(OUT)
        shutil.copytree(tmp, OUT)
        os.chmod(OUT, 0o755)                 # mkdtemp made the folder private
        print(f"wrote {OUT} ({len(list((OUT / 'captures').iterdir()))} captures); lab vs model: "
              f"{'same' if report.ok else 'differs'}", file=sys.stderr)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
