"""Dissection: every layer and field of a frame, with byte offsets.

A Wireshark-like tree built from scapy's own protocol layers: the values are
what scapy parses, the offsets and lengths are found by replaying scapy's
own field builder over the parsed packet, so they agree with the bytes by
construction (and a test rebuilds every field from its slice).  Layers after
a VXLAN header are the *inner* frame; the ones before it are *outer*::

    [ 0:14]  outer Ethernet   ─┐
    [14:34]  outer IPv4        │ 50 bytes added by flannel.1 (the kernel)
    [34:42]  outer UDP         │
    [42:50]  VXLAN            ─┘
    [50:64]  Ethernet          the pod's frame, unchanged inside
    [64:84]  IPv4
    ...

:func:`tree` and :func:`hexdump` are text (nbval-checkable); :func:`changes`
lists what differs between two frames of the same packet at two hops, which
is what the stepper highlights.

Taught in: 01-physical-nic (the VXLAN frame), 06-the-whole-walk (the stepper).
"""

from __future__ import annotations

from dataclasses import dataclass

from scapy.fields import ConditionalField, FlagValue
from scapy.layers.inet import IP, TCP, UDP  # noqa: F401  (binds the layers)
from scapy.layers.l2 import ARP, Ether  # noqa: F401
from scapy.layers.vxlan import VXLAN
from scapy.packet import NoPayload, Packet, Raw

from .errors import CourseError, public

__all__ = ["Field", "Layer", "Change", "dissect", "tree", "hexdump", "changes", "frame_bytes"]

_TITLES = {
    "Ether": "Ethernet II",
    "IP": "Internet Protocol version 4",
    "UDP": "User Datagram Protocol",
    "TCP": "Transmission Control Protocol",
    "VXLAN": "Virtual eXtensible LAN (VXLAN)",
    "ARP": "Address Resolution Protocol",
    "ICMP": "Internet Control Message Protocol",
    "Raw": "Data",
    "Padding": "Ethernet padding",
}
_SHORT = {"Ether": "Ethernet", "IP": "IPv4", "UDP": "UDP", "TCP": "TCP", "VXLAN": "VXLAN",
          "ARP": "ARP", "ICMP": "ICMP", "Raw": "Data", "Padding": "Padding"}


@dataclass(frozen=True)
class Field:
    """One header field: where it is (bits are counted from the layer's first byte) and its value."""
    name: str
    offset: int            # byte offset in the frame of the field's first byte
    bit_offset: int        # bits into that byte (0 for byte-aligned fields)
    bits: int              # length in bits
    value: str             # as scapy prints it

    @property
    def length(self) -> int:
        """Bytes the field touches."""
        return (self.bit_offset + self.bits + 7) // 8


@dataclass(frozen=True)
class Layer:
    """One protocol header (or the payload) of a frame."""
    key: str               # "outer IPv4", "IPv4", "TCP", "HTTP", ...
    title: str
    offset: int
    length: int
    inner: bool            # inside a VXLAN frame
    encapsulated: bool     # the frame carries VXLAN at all
    fields: tuple[Field, ...]
    summary: str = ""

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True)
class Change:
    """A field that differs between two views of one packet."""
    layer: str
    field: str             # "" when the whole layer was added or removed
    before: str | None     # None: the layer was added
    after: str | None      # None: the layer was removed

    def __str__(self) -> str:
        if self.before is None:
            return f"+ {self.layer} ({self.after})"
        if self.after is None:
            return f"- {self.layer} ({self.before})"
        return f"~ {self.layer} {self.field}: {self.before} -> {self.after}"


def frame_bytes(frame) -> bytes:
    """The bytes of a frame given as bytes, a capture Frame, an Observation or a scapy packet."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return bytes(frame)
    if isinstance(frame, Packet):
        return bytes(frame)
    data = getattr(frame, "data", None)
    if data is None:
        data = getattr(frame, "frame", None)
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    raise CourseError("frame", f"cannot dissect a {type(frame).__name__}",
                      "bytes, a capture Frame, a walk Observation or a scapy packet")


def vxlan_port_of(frame, vxlan_port: int | None = None) -> int | None:
    """The UDP port to decode VXLAN by: the argument, else the port the walk recorded with the frame."""
    if vxlan_port is not None:
        if isinstance(vxlan_port, bool) or not isinstance(vxlan_port, int) or not 1 <= vxlan_port <= 65535:
            raise CourseError("vxlan_port", f"{vxlan_port!r} is not a UDP port", "None or 1-65535")
        return vxlan_port
    obs = getattr(frame, "observation", None) or frame
    port = getattr(obs, "vxlan_port", None)
    return port if isinstance(port, int) else None


def _bits(s) -> int:
    if isinstance(s, tuple):            # a bit field left the byte unfinished: (bytes, bitsdone, value)
        return len(s[0]) * 8 + s[1]
    return len(s) * 8


def _value(layer: Packet, fld, val) -> str:
    if fld.name == "options" and isinstance(layer, TCP):
        return _tcp_options(val)
    shown = str(fld.i2repr(layer, val))
    if isinstance(val, FlagValue):
        return f"0x{int(val):02x} ({shown or 'none'})"
    if isinstance(val, int) and not isinstance(val, bool):
        if fld.name == "type":
            return f"0x{val:04x} ({shown})"
        if shown != str(val) and not shown.startswith("0x"):
            return f"{val} ({shown})"
    return shown


def _tcp_options(opts) -> str:
    """scapy's parsed TCP options as tcpdump names them; malformed ones shown as parsed, never indexed blindly."""
    parts = []
    for item in opts:
        if not (isinstance(item, tuple) and len(item) == 2):
            parts.append(repr(item))
            continue
        name, val = item
        if name == "MSS" and isinstance(val, int):
            parts.append(f"mss {val}")
        elif name == "SAckOK":
            parts.append("sackOK")
        elif name == "Timestamp" and isinstance(val, tuple) and len(val) == 2:
            parts.append(f"TS val {val[0]} ecr {val[1]}")
        elif name == "NOP":
            parts.append("nop")
        elif name == "WScale" and isinstance(val, int):
            parts.append(f"wscale {val}")
        elif name == "EOL":
            parts.append("eol")
        else:
            parts.append(f"{name} {val!r}")
    return ", ".join(parts) if parts else "(none)"


def _payload_layer(data: bytes) -> tuple[str, str]:
    head = data[:16]
    if head.startswith((b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"HTTP/")):
        first = data.split(b"\r\n", 1)[0].decode("latin-1")
        return "HTTP", f"Hypertext Transfer Protocol: {first}"
    return "Data", "Data"


MAX_VXLAN_DEPTH = 8     # VXLAN headers dissected; a frame inside more of them is shown as data


def _header_len(layer: Packet) -> int:
    """A layer's header length from the bytes scapy gave it and its payload (fallback when replay fails)."""
    nxt = layer.payload
    own = len(getattr(layer, "original", b"") or b"")
    if isinstance(nxt, NoPayload) or type(nxt).__name__ == "Padding":
        return own
    return max(0, own - len(getattr(nxt, "original", b"") or b""))


def _fields(layer: Packet, off: int, data: bytes) -> tuple[list[Field], int]:
    """Every field with its offset, found by replaying scapy's builder; the header length.

    A header scapy parses but cannot rebuild (TCP options with impossible
    lengths, say) keeps the fields replayed so far and shows the rest of its
    bytes as one ``undecoded`` field: never an exception, never a read past
    the bytes there are.
    """
    fields: list[Field] = []
    s: bytes | tuple = b""
    try:
        for fld in layer.fields_desc:
            if isinstance(fld, ConditionalField) and not fld._evalcond(layer):
                continue
            val = layer.getfieldval(fld.name)
            before = _bits(s)
            s = fld.addfield(layer, s, val)
            after = _bits(s)
            if after == before:
                continue
            fields.append(Field(fld.name, off + before // 8, before % 8, after - before, _value(layer, fld, val)))
        hlen = _bits(s) // 8
        if hlen <= _header_len(layer):
            return fields, hlen
    except Exception:  # noqa: BLE001 - scapy's builders raise anything on malformed values
        pass
    hlen = min(_header_len(layer), len(data) - off)
    done = (fields[-1].offset + fields[-1].length - off) if fields else 0
    fields = [f for f in fields if f.offset + f.length <= off + hlen]
    if done < hlen:
        fields.append(Field("undecoded", off + done, 0, (hlen - done) * 8,
                            f"{hlen - done} bytes scapy cannot rebuild: {data[off + done:off + hlen][:24].hex()}"
                            + (" ..." if hlen - done > 24 else "")))
    return fields, hlen


@public
def dissect(frame, vxlan_port: int | None = None) -> list[Layer]:
    """The layers of an Ethernet frame, outermost first, with every field's offset.

    VXLAN is decoded on ``vxlan_port`` (default: the scenario's port recorded
    with a walk's frame; for bare bytes, scapy's well-known VXLAN ports).

    VXLAN's inner frame is dissected in a loop, not by recursion: frames nested
    more than ``MAX_VXLAN_DEPTH`` deep show the rest as data.

    >>> [l.key for l in dissect(w.at("meizu", "enp4s0")[0])]        # doctest: +SKIP
    ['outer Ethernet', 'outer IPv4', 'outer UDP', 'VXLAN', 'Ethernet', 'IPv4', 'TCP']

    Taught in: 01-physical-nic.
    """
    port = vxlan_port_of(frame, vxlan_port)
    data = frame_bytes(frame)
    if len(data) < 14:
        raise CourseError("frame", f"{len(data)} bytes is shorter than an Ethernet header", "14 bytes or more")
    got = _DISSECTED.get((data, port))
    if got is not None:
        return list(got)
    layers = _dissect(data, port)
    if len(_DISSECTED) >= 256:          # bounded: the frames of a few walks
        _DISSECTED.clear()
    _DISSECTED[(data, port)] = tuple(layers)
    return layers


#: (frame bytes, VXLAN port) -> its layers (immutable): the explorer, the stepper and provenance ask again
_DISSECTED: dict[tuple[bytes, int | None], tuple[Layer, ...]] = {}


def _dissect(data: bytes, port: int | None) -> list[Layer]:
    from .vxlan import inner_frame
    # the scenario's port decides (vxlan.inner_frame, by offsets), not scapy's table of well-known ports
    by_port = port is not None and inner_frame(data, port) is not None
    found: list[tuple] = []             # (key parts..., fields) before the keys are known
    deferred: list[list[Packet]] = []   # each level's trailing padding, emitted innermost first
    cls, start, end, depth = Ether, 0, len(data), 0
    while True:
        try:
            layer = cls(data[start:end], stop_dissection_after=VXLAN)
        except Exception:  # noqa: BLE001 - as scapy does for a payload it cannot parse: raw data
            layer = Raw(data[start:end])
        if by_port and depth == 0:
            u = layer.getlayer(UDP)
            if u is not None and not isinstance(u.payload, VXLAN):
                payload = bytes(u.payload)
                u.remove_payload()
                u.add_payload(VXLAN(payload, stop_dissection_after=VXLAN))
        off = start
        nxt = None
        tail: list[Packet] = []
        while not isinstance(layer, NoPayload):
            name = type(layer).__name__
            if nxt is None and isinstance(layer, Raw) and isinstance(layer.underlayer, VXLAN):
                if depth + 1 >= MAX_VXLAN_DEPTH:
                    load = bytes(layer.load)
                    found.append(("Data", f"Data: a frame inside more than {MAX_VXLAN_DEPTH} VXLAN headers "
                                          "(not dissected)", off, len(load), depth + 1, False,
                                  (Field("load", off, 0, len(load) * 8, _show(load)),), f"{len(load)} bytes"))
                    off += len(load)
                    nxt = False
                else:
                    nxt = (layer.underlayer.guess_payload_class(bytes(layer.load)), off, off + len(layer.load))
                layer = layer.payload
                continue
            if nxt is not None:
                tail.append(layer)      # the outer frame's padding, after its inner frame
                layer = layer.payload
                continue
            if isinstance(layer, Raw) or name == "Padding":
                load = bytes(layer.load)
                key, title = ("Padding", _TITLES["Padding"]) if name == "Padding" else _payload_layer(load)
                found.append((key, title, off, len(load), depth, False,
                              (Field("load", off, 0, len(load) * 8, _show(load)),), f"{len(load)} bytes"))
                off += len(load)
                layer = layer.payload
                continue
            fields, hlen = _fields(layer, off, data)
            found.append((_SHORT.get(name, name), _TITLES.get(name, layer.name), off, hlen, depth,
                          isinstance(layer, VXLAN), tuple(fields), _summary(layer)))
            off += hlen
            layer = layer.payload
        deferred.append(tail)
        if not nxt:
            break
        cls, start, end = nxt
        depth += 1
        if not isinstance(cls, type) or not issubclass(cls, Packet):
            cls = Raw
    for tail in reversed(deferred):
        for pad in tail:
            load = bytes(getattr(pad, "load", b""))
            off = found[-1][2] + found[-1][3] if found else 0
            found.append(("Padding", _TITLES["Padding"], off, len(load), 0, False,
                          (Field("load", off, 0, len(load) * 8, _show(load)),), f"{len(load)} bytes"))
    encapsulated = any(f[5] for f in found)
    layers = []
    for short, title, off, length, d, is_vxlan, fields, summary in found:
        if d == 0:
            key = "outer " + short if encapsulated and not is_vxlan and short not in ("Padding", "Data", "HTTP") \
                else short
        elif d == 1 and not is_vxlan:
            key = short
        else:
            key = f"{short} (level {d + 1 if is_vxlan else d})"
        layers.append(Layer(key, title, off, length, d > 0, encapsulated, fields, summary))
    return layers


def _summary(layer: Packet) -> str:
    if isinstance(layer, Ether):
        return f"{layer.src} > {layer.dst}"
    if isinstance(layer, IP):
        return f"{layer.src} > {layer.dst}, TTL {layer.ttl}, id {layer.id}, length {layer.len}"
    if isinstance(layer, UDP):
        return f"port {layer.sport} > {layer.dport}, length {layer.len}"
    if isinstance(layer, TCP):
        return f"port {layer.sport} > {layer.dport}, flags {layer.flags}, seq {layer.seq}, ack {layer.ack}"
    if isinstance(layer, VXLAN):
        return f"VNI {layer.vni}"
    if isinstance(layer, ARP):
        return f"{'request' if layer.op == 1 else 'reply'} {layer.psrc} > {layer.pdst}"
    return ""


def _show(data: bytes, limit: int = 48) -> str:
    text = data[:limit].decode("latin-1")
    text = "".join(c if 32 <= ord(c) < 127 else {"\r": "\\r", "\n": "\\n"}.get(c, ".") for c in text)
    return f'"{text}"' + (" ..." if len(data) > limit else "")


@public
def tree(frame, title: str = "", layers: list[Layer] | None = None, scenario=None) -> str:
    """The frame as a Wireshark-like text tree: layers, their byte ranges, every field.

    ``layers`` is :func:`dissect`'s result when the caller already has it.
    With ``scenario`` (and a frame from the walk), each field gets a tag
    column: ``computed``, ``observed`` or ``assumed``
    (:func:`coursekit.provenance.of_field`).

    Taught in: 01-physical-nic.
    """
    if not isinstance(title, str):
        raise CourseError("title", f"a value of type {type(title).__name__} is not text", "a string")
    data = frame_bytes(frame)
    if layers is not None and (not isinstance(layers, (list, tuple)) or not all(isinstance(x, Layer) for x in layers)):
        raise CourseError("layers", f"{type(layers).__name__} is not dissect()'s result", "dissect(frame), or None")
    layers = layers if layers is not None else dissect(frame)
    lines = [title or f"Frame: {len(data)} bytes"]
    for i, ly in enumerate(layers):
        if ly.inner and (i == 0 or not layers[i - 1].inner):
            lines.append(f"  ── inner frame: {len(data) - ly.offset} bytes, as the sending node's VTEP encapsulated it "
                         "(after that node's routing and NAT) ──")
        lines.append(f"[{ly.offset:4}:{ly.end:<4}] {ly.key:<15} {ly.title}" + (f" — {ly.summary}" if ly.summary else ""))
        for f in ly.fields:
            pos = f"{f.offset}" + (f".{f.bit_offset}" if f.bit_offset or f.bits % 8 else "")
            size = f"{f.bits // 8}B" if f.bits % 8 == 0 and f.bit_offset == 0 else f"{f.bits}b"
            tag = ""
            if scenario is not None:
                from .provenance import of_field
                tag = f"{of_field(ly.key, f.name, scenario, getattr(frame, 'observation', None) or frame).label:<9} "
            lines.append(f"    {pos:>7} {size:>5}  {tag}{f.name:<10} {f.value}")
    return "\n".join(lines)


@public
def hexdump(frame, width: int = 16) -> str:
    """The frame's bytes in hex, one block per layer, each line starting at its frame offset.

    Taught in: 01-physical-nic.
    """
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= 64:
        raise CourseError("width", f"{width!r} is not a number of bytes per line", "1-64 (16 is usual)")
    data = frame_bytes(frame)
    lines = []
    for ly in dissect(frame):
        lines.append(f"{ly.key} [{ly.offset}:{ly.end}] {ly.length} bytes")
        chunk = data[ly.offset:ly.end]
        for i in range(0, len(chunk), width):
            part = chunk[i:i + width]
            text = "".join(chr(c) if 32 <= c < 127 else "." for c in part)
            lines.append(f"  {ly.offset + i:04x}  {part.hex(' '):<{width * 3 - 1}}  {text}")
    return "\n".join(lines)


@public
def changes(before, after) -> list[Change]:
    """What differs between two frames of one packet: changed fields, layers added or removed.

    >>> changes(path[3].frame, path[4].frame)        # doctest: +SKIP
    [Change(layer='outer Ethernet', ...), ...]       # flannel.1 -> enp4s0: 50 bytes added

    Taught in: 06-the-whole-walk (the stepper).
    """
    # Inner layers are keyed like a plain frame's ("IPv4"), so the pod's
    # packet compares with itself across encapsulation.
    a = {ly.key: ly for ly in dissect(before)}
    b = {ly.key: ly for ly in dissect(after, vxlan_port_of(before))}
    out: list[Change] = []
    for key, ly in b.items():
        if key not in a:
            out.append(Change(key, "", None, f"{ly.length} bytes: {ly.summary}"))
            continue
        old = {f.name: f.value for f in a[key].fields}
        for f in ly.fields:
            if old.get(f.name) != f.value:
                out.append(Change(key, f.name, old.get(f.name), f.value))
    for key, ly in a.items():
        if key not in b:
            out.append(Change(key, "", f"{ly.length} bytes: {ly.summary}", None))
    return out
