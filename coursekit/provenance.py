"""Where every value comes from: **computed**, **observed**, **inferred** or **assumed**.

* **computed** -- the model derives it from other values by the kernel's or
  the protocol's rules (checksums, lengths, sequence numbers, NAT'd
  addresses, TTLs, the MSS from an MTU);
* **observed** -- printed in the article (its three tcpdump transcripts, its
  manifests or its text), so the scenario copies it;
* **inferred** -- deduced from what the article prints, where another
  explanation would print the same (a pod MTU read back from the MSS it
  announces: a TCPMSS clamp would give the same MSS; Docker's masquerade read
  from the masqueraded source: kube-proxy's ``--masquerade-all`` would give
  the same source; a clock offset fitted to the TS values);
* **assumed** -- a plausible stand-in for something the article does not show
  (MACs, veth names, meizu's address, IP ids, the kernel's per-boot hash
  seed, nginx's exact header lines, hop latencies).

A scenario file says which of its values are observed, inferred or assumed and why, in
its ``provenance:`` section (``path: "label: why"``; a path covers everything
under it, the longest path wins, a scenario that ``extends:`` another
replaces the parent's entries under each path it names).  A value a scenario
does not label is *assumed*: set by the file without a stated source, or the
model's default.

Two pure functions answer "which label, and why":

* :func:`of_path` -- for a scenario path (``"observed.clientPort"``);
* :func:`of_field` -- for a field of a frame at a hop (``("TCP", "window")``,
  ``("outer UDP", "sport")``), given the scenario and, for value-dependent
  fields, the walk's :class:`~coursekit.datapath.Observation`.

Taught in: 00-the-scenario (``describe``), 06-the-whole-walk (the stepper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import CourseError, public

__all__ = ["LABELS", "Provenance", "of_path", "of_field", "parse_entries"]

LABELS = ("computed", "observed", "inferred", "assumed")


@dataclass(frozen=True)
class Provenance:
    """A value's label (computed, observed, inferred or assumed), why, and the scenario path it comes from."""
    label: str
    why: str
    path: str = ""

    def __str__(self) -> str:
        return f"{self.label}: {self.why}"


def parse_entries(entries: Any, field: str = "provenance") -> tuple[tuple[str, str, str], ...]:
    """A scenario's ``provenance:`` mapping -> ``((path, label, why), ...)``; errors name the entry."""
    from .schema import known_path, suggest
    out = []
    for path, text in (entries or {}).items():
        f = f"{field}.{path}"
        if not isinstance(path, str):
            raise CourseError(f, f"{path!r} is not a scenario path", "e.g. observed.clientPort")
        try:
            known_path(path)
        except CourseError as e:
            raise CourseError(f, f"names no scenario value ({e.problem})", e.allowed) from None
        label, sep, why = str(text).partition(":")
        label = label.strip()
        if not sep or label not in LABELS or not why.strip():
            raise CourseError(f, f"{text!r} is not 'label: why'{suggest(label, LABELS) if sep else ''}",
                              "'observed: <where the article shows it>', 'inferred: <deduced from what; what else would "
                              "print the same>', 'assumed: <why this stand-in>' or 'computed: <from what>'")
        out.append((path, label, why.strip()))
    return tuple(sorted(out))


def _lookup(sc, path: str) -> Provenance | None:
    best = None
    for p, label, why in getattr(sc, "provenance", ()):
        if path == p or path.startswith(p + "."):
            if best is None or len(p) > len(best.path):
                best = Provenance(label, why, p)
    if best is not None and best.path != path:
        best = Provenance(best.label, best.why, path)
    return best


def _raw_has(raw: dict, path: str) -> bool:
    d: Any = raw
    for k in path.split("."):
        if isinstance(d, dict) and k in d:
            d = d[k]
        elif isinstance(d, dict) and k.isdigit() and int(k) in d:
            d = d[int(k)]
        elif isinstance(d, list) and k.isdigit() and int(k) < len(d):
            d = d[int(k)]
        else:
            return False
    return d is not None


@public
def of_path(scenario, path: str) -> Provenance:
    """The label of one scenario value, and why.

    >>> of_path(ck.load_scenario("article"), "observed.clientPort").label     # doctest: +SKIP
    'observed'

    ``scenario``: anything :func:`~coursekit.scenario.as_scenario` accepts.

    Taught in: 00-the-scenario.
    """
    from .schema import known_path
    from .scenario import as_scenario
    sc = as_scenario(scenario)
    known_path(path)
    found = _lookup(sc, path)
    if found is not None:
        return found
    if _raw_has(sc.raw, path):
        return Provenance("assumed", "set in the scenario (its file or an override) without a stated source", path)
    return Provenance("assumed", "the model's default (docs/scenario-format.md), not checked against a capture",
                      path)


# --------------------------------------------------------------------------
# Fields of a frame
# --------------------------------------------------------------------------

_COMPUTED = {
    ("Ethernet", "type"): "the EtherType of what follows",
    ("IPv4", "version"): "IPv4", ("IPv4", "ihl"): "header length: no IP options",
    ("IPv4", "len"): "the packet's length", ("IPv4", "proto"): "the protocol that follows",
    ("IPv4", "chksum"): "RFC 1071 checksum of the header, recomputed after every rewrite",
    ("IPv4", "frag"): "not fragmented", ("IPv4", "options"): "none",
    ("IPv4", "tos"): "0 (the outer header copies the inner ECN bits)",
    ("IPv4", "flags"): "Linux sets DF on TCP (path MTU discovery); flannel's VTEP leaves it clear on the outer header",
    ("UDP", "len"): "the datagram's length",
    ("UDP", "chksum"): "RFC 768 checksum over the pseudo-header (0 when flannel.udpChecksum is false)",
    ("VXLAN", "flags"): "0x08, the I flag: a VNI follows (RFC 7348)",
    ("TCP", "dataofs"): "header length from the options", ("TCP", "reserved"): "0",
    ("TCP", "flags"): "which segment of the conversation this is (SYN, PSH, FIN ...)",
    ("TCP", "chksum"): "RFC 1071 checksum over the pseudo-header, recomputed after NAT",
    ("TCP", "urgptr"): "0",
    ("Padding", "load"): "zero bytes up to Ethernet's 60-byte minimum",
}
for _f in ("hwtype", "ptype", "hwlen", "plen", "op", "hwsrc", "psrc", "hwdst", "pdst"):
    _COMPUTED[("ARP", _f)] = "the ARP exchange the kernel sends when a neighbour cache is cold"
for _f in ("reserved0", "reserved1", "reserved2", "NextProtocol", "gpflags", "gpid"):
    _COMPUTED[("VXLAN", _f)] = "0 (reserved)"


def _mac_path(sc, mac: str) -> str | None:
    for n in sc.nodes:
        for path, value in ((f"nodes.{n.name}.nic.mac", n.nic.mac), (f"nodes.{n.name}.vtepMac", n.vtep_mac),
                            (f"nodes.{n.name}.docker.bridgeMac", n.docker.bridge_mac)):
            if value == mac:
                return path
    for p in sc.pods:
        base = _pod_path(sc, p)
        if p.mac == mac:
            return base + ".mac"
        if p.veth_mac == mac:
            return base + ".vethMac"
    return None


def _pod_path(sc, pod) -> str:
    return pod.path or f"pods.{pod.name}"


def _ip_path(sc, ip: str) -> tuple[str | None, str]:
    for n in sc.nodes:
        if str(n.nic.ip) == ip:
            return f"nodes.{n.name}.nic.address", "copied"
        if str(n.vtep_ip) == ip:
            return f"nodes.{n.name}.subnet", f"the address of {sc.flannel.device} on {n.name} (its lease's network address)"
        if str(n.docker.bridge_ip) == ip:
            return f"nodes.{n.name}.subnet", f"docker0's address on {n.name} (its lease's .1)"
    for p in sc.pods:
        if str(p.ip) == ip:
            if p.name in (sc.raw.get("pods") or {}):
                return f"pods.{p.name}.ip", "copied"
            w = p.name.rsplit("-", 1)[0]
            path = f"workloads.{w}.podIPs"
            if _lookup(sc, path) is not None or _raw_has(sc.raw, path):
                return path, "copied"
            return path, f"{p.name}'s address in Docker's IPAM order (.2 upwards)"
    for s in sc.services:
        if str(s.cluster_ip) == ip:
            return f"services.{s.name}.clusterIP", "copied"
    return None, ""


_FIELDS: dict = {}        # (frame bytes, VXLAN port) -> {(layer, field): value}: a stepper asks per field


def _field_value(obs, layer: str, field: str) -> str | None:
    from .dissect import dissect, vxlan_port_of
    frame = getattr(obs, "frame", obs)
    key = (bytes(frame), vxlan_port_of(obs)) if isinstance(frame, (bytes, bytearray)) else None
    values = _FIELDS.get(key) if key is not None else None
    if values is None:
        values = {}
        for ly in dissect(obs):
            for f in ly.fields:
                values.setdefault((ly.key, f.name), f.value)
        if key is not None:
            if len(_FIELDS) >= 256:         # bounded: the frames of a few walks
                _FIELDS.clear()
            _FIELDS[key] = values
    return values.get((layer, field))


def _from(sc, path: str, how: str, label_if_derived: str = "computed") -> Provenance:
    origin = of_path(sc, path)
    if how == "copied":
        return Provenance(origin.label, f"= {path} ({origin.why})", path)
    return Provenance(label_if_derived, f"{how}; from {path} ({origin.label}: {origin.why})", path)


@public
def of_field(layer: str, field: str, scenario=None, observation=None) -> Provenance:
    """The label of one field of a frame at a hop, and why.

    ``layer`` is a :func:`~coursekit.dissect.dissect` layer key (``"outer UDP"``,
    ``"IPv4"``, ``"TCP"``, ``"HTTP"`` ...; ``"Frame"`` for the capture time),
    ``field`` a field name as the dissection shows it (``"sport"``,
    ``"window"``, ``"load"``, ``"time"``).  Without ``scenario`` only labels
    that hold for every scenario are given; value-dependent fields (MACs,
    addresses, ports, windows, times) need the ``observation`` too.

    >>> of_field("TCP", "chksum").label
    'computed'

    Taught in: 06-the-whole-walk (the stepper shows the label beside each field).
    """
    if not isinstance(layer, str) or not isinstance(field, str):
        raise CourseError("layer", f"{layer!r}/{field!r} is not a layer and field name", "e.g. ('TCP', 'window')")
    outer = layer.startswith("outer ")
    base = layer[6:] if outer else layer
    if (base, field) in _COMPUTED:
        return Provenance("computed", _COMPUTED[(base, field)])
    known = {"Ethernet", "IPv4", "UDP", "VXLAN", "TCP", "HTTP", "Data", "ARP", "Padding", "Frame"}
    if base not in known:
        raise CourseError("layer", f"unknown layer {layer!r}", ", ".join(sorted(known)))
    sc = None
    if scenario is not None:
        from .scenario import as_scenario
        sc = as_scenario(scenario)
    need = "needs the scenario and the observation (the value decides)"
    if base == "IPv4" and field == "ttl":
        why = "the sender's net.ipv4.ip_default_ttl less one per routed hop"
        if sc is not None:
            why += f" (the start value: {of_path(sc, 'nodes.' + sc.nodes[0].name + '.defaultTTL')})"
        return Provenance("computed", why)
    if base == "IPv4" and field == "id" and observation is not None and not layer.startswith("outer") \
            and _field_value(observation, "IPv4", "id") == "0" and "SA" in (_field_value(observation, "TCP", "flags") or ""):
        return Provenance("computed", "0: Linux sends a listener's SYN-ACK with IP id 0")
    if base == "IPv4" and field == "id":
        return Provenance("assumed", "each sender's first IP id is a stand-in (observed.ipId or a fixed default; "
                          "tcpdump without -v does not print it); later ids count up from it, a SYN-ACK carries 0",
                          "observed.ipId")
    if base == "TCP" and field in ("seq", "ack"):
        why = "relative position in the byte stream plus the initial sequence numbers"
        if sc is not None:
            why += f" (observed.clientISN {of_path(sc, 'observed.clientISN').label}, " \
                   f"observed.serverISN {of_path(sc, 'observed.serverISN').label})"
        return Provenance("computed", why)
    if base == "TCP" and field == "options":
        why = "mss = pod MTU - 40; TS val from each kernel's TS clock; wscale from observed.wscale"
        if sc is not None:
            why += (f" (TS clock offsets {of_path(sc, 'observed.clientTSOffsetUs').label}; "
                    f"tsLagTicks {of_path(sc, 'observed.tsLagTicks').label}; "
                    f"wscale {of_path(sc, 'observed.wscale').label})")
        return Provenance("computed", why)
    if base == "VXLAN" and field == "vni":
        return _from(sc, "flannel.vni", "copied") if sc is not None else Provenance("assumed", need)
    if base in ("HTTP", "Data") and field == "load":
        flow = getattr(observation, "flow", None)
        if flow == "request":
            ua = of_path(sc, "request.userAgent").label if sc is not None else "?"
            return Provenance("computed", "busybox wget's request, built from request.method, request.path, the "
                              f"Service's address and request.userAgent ({ua})", "request")
        if flow == "reply":
            return Provenance("assumed", "nginx 1.17.3's response, reconstructed: header lines in nginx's order "
                              "with the Date from the clock and Last-Modified/ETag from observed.nginxMtime "
                              "(assumed), body nginx's default index.html; the article shows only the lengths "
                              "(233 and 612 bytes)", "observed.nginxMtime")
        return Provenance("assumed", "payload: " + need)
    if sc is None or observation is None:
        return Provenance("assumed", need)

    value = _field_value(observation, layer, field)
    if base == "Ethernet" and field in ("src", "dst"):
        if value == "ff:ff:ff:ff:ff:ff":
            return Provenance("computed", "broadcast: an ARP request")
        path = _mac_path(sc, value or "")
        return _from(sc, path, "copied") if path else Provenance("assumed", f"MAC {value}: not in the scenario")
    if base == "IPv4" and field in ("src", "dst"):
        path, how = _ip_path(sc, (value or "").split(" ")[0])
        if path is None:
            return Provenance("computed", f"{value}: rewritten on the way (see this hop's decisions)")
        return _from(sc, path, how)
    if base == "UDP" and field == "dport":
        return _from(sc, "flannel.port", "copied")
    if base == "UDP" and field == "sport":
        sender = next((n.name for n in sc.nodes if str(n.nic.ip) == _field_value(observation, "outer IPv4", "src")),
                      None)
        if sender is not None and sender in sc.observed.vxlan_sport:
            return _from(sc, f"observed.vxlanSourcePort.{sender}", "copied")
        seed = of_path(sc, "observed.flowHashSeed")
        return Provenance("assumed", "udp_flow_src_port: a hash of the inner flow keyed with the kernel's random "
                          f"per-boot seed (observed.flowHashSeed, {seed.label}): a stand-in, not a prediction",
                          "observed.flowHashSeed")
    if base == "TCP" and field in ("sport", "dport"):
        port = int((value or "0").split(" ")[0])
        if port == sc.observed.client_port:
            return _from(sc, "observed.clientPort", "copied")
        svc = sc.service(sc.request.service)
        for j, sp in enumerate(svc.ports):
            if port == sp.port:
                return Provenance(of_path(sc, f"services.{svc.name}.ports.{j}.port").label,
                                  f"the Service's port ({sp.port}, from the manifests)", f"services.{svc.name}.ports")
            if port == sp.target_port:
                return Provenance("computed", f"DNAT to the Service's targetPort {sp.target_port} (from the manifests)",
                                  f"services.{svc.name}.ports")
        return Provenance("computed", f"port {port}: rewritten by NAT (see this hop's decisions)")
    if base == "TCP" and field == "window":
        seg = getattr(observation, "segment", -1)
        if sc.observed.windows is not None and seg >= 0:
            return _from(sc, f"observed.windows.{seg}", "copied")
        return Provenance("computed", "Linux-like: 20 MSS on a SYN, scaled by wscale after it", "observed.windows")
    if base == "Frame" and field == "time":
        seg = getattr(observation, "segment", -1)
        at_anchor = (observation.node, observation.iface) == tuple(sc.observed.anchor)
        if sc.observed.times_us is not None and seg >= 0:
            origin = of_path(sc, f"observed.times.{seg}")
            if at_anchor:
                return Provenance(origin.label, f"= observed.times.{seg} ({origin.why})", f"observed.times.{seg}")
            return Provenance("computed", f"observed.times.{seg} ({origin.label}) at {sc.observed.anchor[1]} on "
                              f"{sc.observed.anchor[0]}, moved by the hop latencies (timing.*, "
                              f"{of_path(sc, 'timing').label})", "timing")
        return Provenance("assumed", "the causal model: observed.start and the hop latencies (timing.*), "
                          "stand-ins", "timing")
    return Provenance("assumed", f"{layer}.{field}: no rule says where it comes from")
