"""The traffic cases side by side: who calls what, what each end sees, which NATs, how it ends.

Every value comes from a walk of the case's scenario (:func:`coursekit.walk`);
the case itself (client kind, target kind, nodes) is
:attr:`Scenario.case <coursekit.scenario.Scenario.case>`.

    >>> print(table(["article", "same-node"]))        # doctest: +SKIP

Taught in: 08-network-model.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CourseError

__all__ = ["CASES", "CaseSummary", "summary", "table"]

#: The scenarios under data/scenarios that chapter 08 walks, in its order.
CASES = ("article", "same-node", "same-node-no-br-netfilter", "hairpin", "from-node", "nodeport", "pod-to-world",
         "pod-to-pod", "pod-to-pod-flannel-ip-masq")


@dataclass(frozen=True)
class CaseSummary:
    """One traffic case, read off its walk."""
    name: str
    client: str              # "busybox 172.30.83.9 (pod on xiaomi)"
    calls: str               # the address:port the client connects to
    server: str              # who answers, address:port
    server_sees: str         # the SYN's source address:port where the server receives it ("-": never arrives)
    # the SYN-ACK's source as tcpdump shows it on the client's interface ("-": none arrives); for a process
    # on a node that is before nat's un-DNAT at INPUT, so not always what its socket reads
    client_sees: str
    vxlan: bool              # does any packet of the conversation cross the VXLAN device?
    nat: tuple               # the request SYN's translations, "<node> <chain>: <effect>"
    outcome: str             # "answered (11 segments)" or where and why the kernel dropped


def _addr(frame: bytes) -> tuple[str, str]:
    """(source, destination) as ``ip:port`` of the innermost IPv4/TCP packet of ``frame``."""
    from .dissect import dissect
    layers = {ly.key: ly.offset for ly in dissect(frame)}
    i, t = layers.get("IPv4"), layers.get("TCP")
    if i is None or t is None:
        return "-", "-"

    def ip(off):
        return ".".join(str(b) for b in frame[off:off + 4])
    port = lambda off: int.from_bytes(frame[off:off + 2], "big")          # noqa: E731
    return f"{ip(i + 12)}:{port(t)}", f"{ip(i + 16)}:{port(t + 2)}"


def _who(sc) -> str:
    c, case = sc.client, sc.case
    if case.client == "pod":
        return f"{c.name} {c.ip} (pod on {c.node})"
    if case.client == "node":
        return f"{c.name} {c.ip or '(no route)'} (a process on the node)"
    return f"{c.name} {c.ip} (host outside the cluster)"


def summary(sc, walk=None) -> CaseSummary:
    """What one case's walk shows: both ends' view of the other, VXLAN or not, the NATs, the outcome.

    ``sc``: anything :func:`~coursekit.scenario.as_scenario` accepts.

    Taught in: 08-network-model.
    """
    from .datapath import Walk, walk as _walk
    from .scenario import as_scenario
    sc = as_scenario(sc)
    if walk is not None and not isinstance(walk, Walk):
        raise CourseError("walk", f"a value of type {type(walk).__name__} is not a Walk", "None or ck.walk(scenario)")
    w = walk if walk is not None else _walk(sc)
    syn = w.path(0)
    reached = bool(syn) and syn[-1].node == sc.server.name
    server_sees = _addr(syn[-1].frame)[0] if reached else "-"
    client_sees = "-"
    answer = [o for o in w.observations if o.flow == "reply" and o.segment == 1]
    if answer and answer[-1].node == sc.client.name:
        client_sees = _addr(sorted(answer, key=lambda o: o.hop)[-1].frame)[0]
    nat = tuple(f"{o.node} {d.table.split()[-1]}: {d.effect}" for o in syn for d in o.decisions
                if d.stage == "nat" and d.effect.startswith(("DNAT", "SNAT", "MASQUERADE")))
    dev = sc.flannel.device
    vxlan = any(o.iface == dev for o in w.observations)
    if w.drops:
        d = w.drops[0]
        outcome = f"{d.flow} segment {d.segment} dropped at {d.node} {d.iface}: {d.reason}"
    else:
        outcome = f"answered ({len(w.segments)} segments)"
    return CaseSummary(sc.name, _who(sc), f"{sc.target_ip}:{sc.target_dport}", f"{sc.server.name} "
                       f"{sc.server.ip}:{sc.target_port}", server_sees, client_sees, vxlan, nat, outcome)


def table(scenarios=CASES) -> str:
    """Several cases as one text table: who calls what, what the server sees, VXLAN, the outcome.

    Taught in: 08-network-model.
    """
    if isinstance(scenarios, str) or not hasattr(scenarios, "__iter__"):
        raise CourseError("scenarios", f"{scenarios!r} is not a list of scenarios", "e.g. ['article', 'same-node']")
    rows = [("case", "client", "calls", "server sees", "VXLAN", "outcome")]
    for s in list(scenarios)[:32]:
        c = summary(s)
        rows.append((c.name, c.client, c.calls, c.server_sees, "yes" if c.vxlan else "no", c.outcome))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(v.ljust(wd) for v, wd in zip(r[:-1], widths)) + "  " + r[-1] for r in rows)
