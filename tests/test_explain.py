"""explain: the model's own captures, written every way tcpdump and Wireshark write them, give back its walk.

The round trip: for every scenario in data/, the frames the model computes at
every capture point are written as classic pcap and pcapng (µs and ns, both
byte orders), with Ethernet headers and with Linux cooked v2 headers (per
interface, and one ``-i any`` file per node), then explained with the
model's own node state (what ``coursekit collect`` would print there).  The
explanation must give back the model's walk: each segment's places in order,
request or reply, every address the NAT rules or conntrack rewrote, and the
very rule the model says did it.
"""

from __future__ import annotations

import re
import struct

import pytest

import coursekit as ck
from coursekit.capture import Frame, pcap_bytes, pcapng_bytes
from coursekit.collect import model_state_text
from coursekit.explanation import explain
from coursekit.scenario import data_dir

SCENARIOS = sorted(p.stem for p in (data_dir() / "scenarios").glob("*.yaml"))
_PKTTYPE_OUT = 4


def _points(sc):
    pts = [(n.name, i) for n in sc.nodes for i in sc.interfaces(n.name)]
    pts += [(p.name, "eth0") for p in (sc.client, sc.server) if p.name not in {n.name for n in sc.nodes}]
    return list(dict.fromkeys(pts))


def _ifindex(sc, node, iface):
    return 2 + sc.interfaces(node).index(iface)     # model_state_text: 1 lo, then interfaces in order


def _sll2(o, ifindex):
    """The frame as ``tcpdump -i any`` (DLT_LINUX_SLL2) records it: the Ethernet header becomes a cooked one."""
    f = o.frame
    pkttype = _PKTTYPE_OUT if o.direction == "out" else 0
    return struct.pack("!HHIHBB8s", (f[12] << 8) | f[13], 0, ifindex, 1, pkttype, 6, f[6:12] + b"\0\0") + f[14:]


def write_variant(sc, w, tmp, variant):
    """Write the scenario's captures as ``variant``; returns the paths."""
    paths = []
    nodes = {n.name for n in sc.nodes}
    any_frames: dict[str, list] = {}
    for node, iface in _points(sc):
        obs = w.at(node, iface)
        if not obs:
            continue
        if variant == "any" and node in nodes:
            any_frames.setdefault(node, []).extend(
                Frame(o.time_us, _sll2(o, _ifindex(sc, node, iface)), None, None, 276, "any") for o in obs)
            continue
        if variant in ("sll2", "any"):
            frames = [Frame(o.time_us, _sll2(o, 1), None, None, 276, None) for o in obs]
        else:
            frames = [Frame(o.time_us, o.frame, None, None, 1, iface) for o in obs]
        if variant.startswith("pcapng"):
            p = tmp / f"{node}-{iface}.pcapng"
            p.write_bytes(pcapng_bytes(frames, tsresol=9 if "ns" in variant else 6, big_endian="be" in variant))
        else:
            p = tmp / f"{node}-{iface}.pcap"
            p.write_bytes(pcap_bytes(frames))
        paths.append(p)
    for node, frames in any_frames.items():
        frames.sort(key=lambda f: f.time_us)
        p = tmp / f"{node}-any.pcapng"
        p.write_bytes(pcapng_bytes(frames, tsresol=9))
        paths.append(p)
    return paths


def write_state(sc, w, folder):
    folder.mkdir()
    for n in sc.nodes:
        (folder / f"{n.name}-state.txt").write_text(model_state_text(sc, n.name, w))
    return folder


_ADDR = r"(\d+\.\d+\.\d+\.\d+)(?::(\d+))?"


def model_rewrites(o):
    """(field, old, new, entry) for every address the model rewrote on the way to observation ``o``."""
    out = []
    for d in o.decisions:
        if d.stage == "nat":
            m = re.match(rf"DNAT {_ADDR} -> {_ADDR}", d.effect)
            if m:
                out.append(("dst", m.group(1), m.group(3), d.entry))
            m = re.match(rf"(?:MASQUERADE|SNAT) source {_ADDR} -> {_ADDR}", d.effect)
            if m:
                out.append(("src", m.group(1), m.group(3), d.entry))
        elif d.stage == "conntrack":
            m = re.match(rf"(source|destination) {_ADDR} -> {_ADDR}", d.effect)
            if m:
                out.append(("src" if m.group(1) == "source" else "dst", m.group(2), m.group(4), None))
    return out


def _inner_ip(frame):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN
    pkt = Ether(frame)
    if UDP in pkt and pkt[UDP].dport in (8472, 4789):
        pkt = Ether(bytes(pkt[UDP].payload)[8:])
    assert VXLAN not in pkt
    return pkt[IP]


def visible(o, rewrites):
    """The rewrites a capture at ``o`` shows (a rewrite on local delivery happens after the last capture)."""
    ip = _inner_ip(o.frame)
    return [r for r in rewrites if getattr(ip, r[0]) == r[2]]


def explained_rewrites(step):
    out = []
    for ch in step:
        if ch.kind in ("DNAT", "un-SNAT", "SNAT", "un-DNAT"):
            field = "dst" if ch.kind in ("DNAT", "un-SNAT") else "src"
            out.append((field, ch.old.split(":")[0], ch.new.split(":")[0], ch))
    return out


@pytest.mark.parametrize("variant", ["pcap", "pcapng-ns-be", "sll2", "any"])
@pytest.mark.parametrize("name", SCENARIOS)
def test_the_models_captures_explained_give_back_its_walk(name, variant, tmp_path):
    sc = ck.load_scenario(name)
    w = ck.walk(sc)
    state = write_state(sc, w, tmp_path / "state")
    paths = write_variant(sc, w, tmp_path, variant)
    ex = explain(paths, state=state)
    nodes = {n.name for n in sc.nodes}
    # every segment is one packet of one conversation, seen where the model says, in its order
    # the name lookups first (case 6: one UDP conversation per query, each from its own socket)
    lookups = [c for c in ex.conversations if c.proto == 17]
    assert len(lookups) == len(w.dns or []), [c.title for c in ex.conversations]
    assert all(c.title.endswith(f"-> {sc.dns.cluster_ip}:53") for c in lookups), [c.title for c in lookups]
    packets = {}
    tcp = [c for c in ex.conversations if c.proto == 6]
    for c in tcp:
        for p in c.packets:
            packets[p.sightings[0].ip_id, p.sightings[0].seq, p.sightings[0].ack, p.sightings[0].flags] = (c, p)
    assert len(tcp) == 1 and len(ex.conversations) == 1 + len(lookups), [c.title for c in ex.conversations]
    assert len(packets) == len(w.segments)
    for seg in w.segments:
        path = w.path(seg.index)
        if not path:
            continue
        key = None
        for k, (c, p) in packets.items():
            if any(s.place == f"{path[0].node} {path[0].iface}" and s.time_us == path[0].time_us for s in p.sightings):
                key = k
        assert key is not None, (seg.label, path[0].node, path[0].iface)
        c, p = packets[key]
        assert p.places == [f"{o.node} {o.iface}" for o in path], seg.label
        assert p.flow == path[0].flow, seg.label
        for i, o in enumerate(path[1:]):
            want = sorted(r[:3] for r in visible(o, model_rewrites(o)))
            got = explained_rewrites(p.changes[i])
            assert sorted(g[:3] for g in got) == want, (seg.label, o.node, o.iface)
            for field, old, new, entry in visible(o, model_rewrites(o)):
                if entry is None:
                    continue                      # conntrack: the entry is tied by the tuple (below)
                ch = next(g[3] for g in got if g[:3] == (field, old, new))
                node = o.node if o.node in nodes else None
                assert any(b.endswith(entry) and (node is None or b.startswith(node + ":")) for b in ch.by), \
                    (seg.label, o.node, o.iface, entry, ch.by)
        # encapsulation and decapsulation where the model adds and removes the 50 bytes
        for i, o in enumerate(path[1:]):
            kinds = {ch.kind for ch in p.changes[i]}
            assert ("encapsulation" in kinds) == any(d.stage == "vxlan" for d in o.decisions), (seg.label, o.iface)
            assert ("decapsulation" in kinds) == any(d.stage == "decap" for d in o.decisions), (seg.label, o.iface)
    assert not [x for x in ex.limits if "could not" in x or "corrupt" in x or "truncated" in x]


def test_the_service_behind_the_cluster_ip_is_named(tmp_path):
    sc = ck.load_scenario("article")
    w = ck.walk(sc)
    ex = explain(write_variant(sc, w, tmp_path, "pcap"), state=write_state(sc, w, tmp_path / "state"))
    svc = sc.services[0]
    assert ex.conversations[0].service.startswith(f"default/{svc.name}")
    # kubectl's JSON wins over the rule's comment
    (tmp_path / "state" / "cluster.json").write_text(
        '{"kind": "List", "items": [{"kind": "Service", "metadata": {"namespace": "web", "name": "front"}, '
        f'"spec": {{"clusterIP": "{svc.cluster_ip}", "ports": [{{"port": {svc.ports[0].port}}}]}}}}]}}')
    ex = explain(write_variant(sc, w, tmp_path, "pcap"), state=tmp_path / "state")
    assert ex.conversations[0].service == f"web/front:{svc.ports[0].port}"
