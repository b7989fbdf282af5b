"""A/B: the explorer of another checkout against this one, interleaved, on a shared (noisy) machine.

    git archive main | tar -x -C /tmp/pw-main
    python benchmarks/ab_explorer.py /tmp/pw-main

Both trees run in their own process at the same time of day, in alternating
rounds, so a neighbour's load falls on both alike; the figures are medians
of every round.  Prints one JSON object: {tree: {figure: median ms}}.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ROUND = r"""
import json, sys, time
import coursekit as ck
from coursekit import explore as ex, widgets as wg
base = ck.load_scenario("article")
out = {"pure_views": [], "widget_field_change": [], "widget_interface_change": [], "widget_diagram_first_time": [],
       "walk_new_scenario": []}
e = wg.explorer(base, ["vxlan_port", "vni"], node="meizu", iface="enp4s0")
for i in range(int(sys.argv[1])):
    sc = ex.apply(base, {"vni": 100 + i})        # a scenario an explorer change makes; its walk alone is timed
    t = time.perf_counter(); ck.walk(sc)
    out["walk_new_scenario"].append(time.perf_counter() - t)
    t = time.perf_counter(); ex.views(ex.apply(base, {"vxlan_port": 4789 + i % 2}), "meizu", "enp4s0")
    out["pure_views"].append(time.perf_counter() - t)
    t = time.perf_counter(); e.controls["vxlan_port"].value = str(4789 if i % 2 == 0 else 8472)
    out["widget_field_change"].append(time.perf_counter() - t)
    t = time.perf_counter(); e.iface.value = "meizu docker0" if i % 2 == 0 else "meizu enp4s0"
    out["widget_interface_change"].append(time.perf_counter() - t)
    e.tabs.selected_index = 0
    e.controls["vni"].value = str(2 + i)
    t = time.perf_counter(); e.tabs.selected_index = 3
    out["widget_diagram_first_time"].append(time.perf_counter() - t)
print(json.dumps(out))
"""


def compare(other: Path, rounds: int = 6, per: int = 5) -> dict:
    """{"previous": {figure: median ms}, "this": {...}} for ``other`` and this checkout, interleaved."""
    trees = {"previous": Path(other).resolve(), "this": ROOT}
    got = {name: {} for name in trees}
    for _ in range(rounds):
        for name, tree in trees.items():
            env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": "/tmp", "MPLBACKEND": "Agg"}
            res = subprocess.run([sys.executable, "-c", ROUND, str(per)], cwd=tree, env=env, check=True,
                                 capture_output=True, text=True)
            for k, xs in json.loads(res.stdout.strip().splitlines()[-1]).items():
                got[name].setdefault(k, []).extend(xs)
    return {name: {k: round(statistics.median(xs) * 1000, 1) for k, xs in d.items()} for name, d in got.items()}


def main(argv):
    rounds = int(argv[2]) if len(argv) > 2 else 6
    print(json.dumps(compare(Path(argv[1]), rounds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
