"""Captures: what tcpdump records on an interface, and pcap files.

:func:`capture` returns the frames tcpdump on one interface of a node (or a
pod's ``eth0``) would record, in time order, each keeping its provenance.
:func:`write_pcap` writes them as a classic pcap (the frames' link type,
EN10MB for the model's, microsecond stamps, snaplen 262144) byte-identically
on every run -- the timestamps come from the model, never from the wall
clock -- and writes atomically, so an error never leaves half a file (the
place is checked by :mod:`.outputs`: never a folder, a device, /proc or
/sys).  :func:`read_pcap` reads a classic pcap (either byte order, micro-
or nanosecond) or a pcapng file (tcpdump's and Wireshark's format: several
sections and interfaces, each interface with its own link type, time
resolution ``if_tsresol`` and offset ``if_tsoffset``; enhanced, simple and
obsolete packet blocks) of at most 64 MiB with a link type the tcpdump view
prints (Ethernet, raw IPv4, Linux cooked v1/v2; each Frame keeps it, and its
pcapng interface name) and refuses anything else -- a truncated or corrupt
file, another link type, an endless input such as /dev/zero -- with one
clear message.  :func:`read_capture` reads the same files but keeps what it
could read before a problem (``CaptureFile.problem``), for ``explain``.

Taught in: 01-physical-nic (and every chapter that opens a capture).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from .errors import CourseError, public

__all__ = ["Frame", "capture", "capture_any", "write_pcap", "read_pcap", "parse_pcap", "pcap_bytes", "LINKTYPE_ETHERNET",
           "LINKTYPES", "SNAPLEN", "MAX_PCAP_BYTES", "CaptureFile", "read_capture", "parse_capture", "pcapng_bytes"]

LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
# the link types the tcpdump view prints (tcpdump's names)
LINKTYPES = {1: "EN10MB", 101: "RAW", 113: "LINUX_SLL", 228: "IPV4", 276: "LINUX_SLL2"}
# a course capture is a few kB; this bounds what a stray file (or /dev/zero) can cost
MAX_PCAP_BYTES = 64 * 1024 * 1024
_MAX_PCAP_TEXT = "at most 64 MiB (cut it with editcap -c or tcpdump -c)"


def linktype_error(linktype) -> CourseError:
    allowed = ", ".join(f"{n} ({name})" for n, name in LINKTYPES.items())
    return CourseError("pcap", f"link type {linktype} not supported", allowed)


@dataclass(frozen=True)
class Frame:
    """One captured frame: time (µs since the epoch), bytes, original length, link type."""
    time_us: int
    data: bytes
    orig_len: int | None = None
    observation: object = None          # the datapath Observation it came from, if any
    linktype: int = LINKTYPE_ETHERNET   # the pcap's link type (read_pcap sets it)
    interface: str | None = None        # pcapng: the interface's if_name (or "#<id>" without one)

    def __post_init__(self):
        if isinstance(self.data, (bytearray, memoryview)):
            object.__setattr__(self, "data", bytes(self.data))
        if not isinstance(self.data, bytes):
            raise CourseError("Frame.data", f"{type(self.data).__name__} is not bytes", "the frame's bytes")
        for name, value, low in (("time_us", self.time_us, None), ("orig_len", self.orig_len, 0),
                                 ("linktype", self.linktype, 0)):
            if name == "orig_len" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or (low is not None and value < low):
                raise CourseError(f"Frame.{name}", f"{value!r:.40} is not {'an integer' if low is None else 'a whole number'}",
                                  "µs since the epoch" if name == "time_us" else "an integer >= 0")

        if self.interface is not None and not isinstance(self.interface, str):
            raise CourseError("Frame.interface", f"{self.interface!r:.40} is not a name", "None or an interface name")

    @property
    def wire_len(self) -> int:
        return self.orig_len if self.orig_len is not None else len(self.data)


@public
def capture(scenario, node: str, interface: str, walk=None) -> list[Frame]:
    """The frames tcpdump on ``node``'s ``interface`` records, in order.

    >>> frames = capture(load_scenario("article"), "meizu", "enp4s0")   # doctest: +SKIP

    ``scenario``: anything :func:`~coursekit.scenario.as_scenario` accepts;
    ``node``: a node or a pod name (a pod's only interface is ``eth0``);
    ``walk``: a :class:`~coursekit.datapath.Walk` of the same scenario, to
    reuse instead of walking again.

    Taught in: 01-physical-nic.
    """
    from .datapath import Walk, walk as _walk
    from .scenario import as_scenario
    sc = as_scenario(scenario)
    if walk is not None and not isinstance(walk, Walk):
        raise CourseError("walk", f"a {type(walk).__name__} is not a Walk", "None or the result of ck.walk(scenario)")
    if walk is not None and walk.scenario != sc:
        raise CourseError("walk", f"this walk is of scenario {walk.scenario.name!r}, not of the one given",
                          "None or ck.walk(scenario) of the same scenario")
    sc.check_interface(node, interface)
    w = walk if walk is not None else _walk(sc)
    return [Frame(o.time_us, o.frame, None, o) for o in w.at(node, interface)]


def capture_any(scenario, node: str, walk=None) -> list[Frame]:
    """What ``tcpdump -i any`` on a node records (libpcap >= 1.10: LINUX_SLL2), computed by the model.

    Every interface's frames in time order, each with a cooked v2 header instead
    of Ethernet: the protocol, the interface *index* (as :func:`coursekit.collect.
    model_state_text` numbers them, assumed: 1 lo, then the node's interfaces in
    order), ARPHRD_ETHER, the packet type (4 outgoing, else 0 to this host) and
    the source MAC only.  A forwarded packet is there once per interface it
    crosses.  Write it with ``pcapng_bytes(frames)``.

    Taught in: 10-your-own-cluster.
    """
    from .datapath import walk as _walk
    from .scenario import as_scenario
    sc = as_scenario(scenario)
    if not isinstance(node, str) or node not in {n.name for n in sc.nodes}:
        raise CourseError("node", f"{node!r:.60} is not a node of {sc.name}", ", ".join(n.name for n in sc.nodes))
    w = walk if walk is not None else _walk(sc)
    out = []
    for idx, iface in enumerate(sc.interfaces(node), 2):
        for o in w.at(node, iface):
            f = o.frame
            head = struct.pack("!HHIHBB8s", (f[12] << 8) | f[13], 0, idx, 1, 4 if o.direction == "out" else 0, 6,
                               f[6:12] + b"\0\0")
            out.append(Frame(o.time_us, head + f[14:], None, o, 276, "any"))
    out.sort(key=lambda f: f.time_us)          # stable: one time, the order of the interfaces
    return out


def _linktype_of(frames) -> int:
    kinds = {getattr(f, "linktype", LINKTYPE_ETHERNET) for f in frames}
    if len(kinds) > 1:
        raise CourseError("frames", f"frames of link types {sorted(kinds)} in one pcap", "frames of one link type")
    return kinds.pop() if kinds else LINKTYPE_ETHERNET


def pcap_bytes(frames: list[Frame], snaplen: int = SNAPLEN, linktype: int | None = None) -> bytes:
    """A classic pcap (little-endian, microseconds) of ``frames``; the link type is theirs unless given."""
    if not isinstance(frames, (list, tuple)):
        raise CourseError("frames", f"a value of type {type(frames).__name__} is not a list of frames",
                          "a list of ck.Frame (from ck.capture or ck.read_pcap)")
    for i, f in enumerate(frames):
        if not isinstance(f, Frame):
            hint = " (wrap bytes as ck.Frame(time_us, data))" if isinstance(f, (bytes, bytearray)) else ""
            raise CourseError(f"frames[{i}]", f"a value of type {type(f).__name__} is not a Frame{hint}",
                              "ck.Frame (from ck.capture or ck.read_pcap)")
    if linktype is None:
        linktype = _linktype_of(frames)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)]
    for f in frames:
        sec, usec = divmod(f.time_us, 1_000_000)
        data = f.data[:snaplen]
        out.append(struct.pack("<IIII", sec, usec, len(data), f.wire_len))
        out.append(data)
    return b"".join(out)


@public
def write_pcap(path: str | os.PathLike, frames: list[Frame]) -> Path:
    """Write a classic pcap atomically; refuses folders, devices, /proc and /sys (see :mod:`.outputs`).

    Taught in: 01-physical-nic.
    """
    from .outputs import output_file, write_file
    output_file(path)                   # before any work: a bad place fails fast
    return write_file(path, pcap_bytes(frames))


def read_pcap(path: str | os.PathLike) -> tuple[int, list[Frame]]:
    """Read a classic pcap or pcapng file: ``(linktype, frames)``.  Errors name the file and the problem.

    Reads at most :data:`MAX_PCAP_BYTES` (+1 to notice a bigger file), from a
    regular file or not (``/dev/stdin``, a FIFO): an endless input is refused,
    never read to the end.

    Taught in: 01-physical-nic.
    """
    data, p = _read_bounded(path)
    return parse_pcap(data, p.name)


def parse_pcap(data: bytes, name: str = "pcap") -> tuple[int, list[Frame]]:
    """Parse classic pcap or pcapng bytes (see :func:`parse_capture`); any problem raises.

    The link type returned is the file's (pcapng: its first interface's);
    every Frame carries its own.
    """
    cap = parse_capture(data, name)
    if cap.problem is not None:
        raise cap.problem
    return cap.linktype, cap.frames


@dataclass(frozen=True)
class CaptureFile:
    """What :func:`read_capture` could read from one file, and the first problem that stopped it."""
    name: str
    format: str                       # "pcap" or "pcapng"
    linktype: int                     # classic: the file's; pcapng: the first interface's
    frames: list
    interfaces: tuple = ()            # pcapng: (if_name or "#id", linktype) per interface
    problem: CourseError | None = None
    skipped: dict | None = None       # pcapng: frames not read, by reason ("link type 105": 3)


def read_capture(path: str | os.PathLike) -> CaptureFile:
    """Read a classic pcap or pcapng file, keeping the frames read before any problem.

    A file that cannot be opened, or is not a capture at all, still raises;
    a truncated or corrupt one returns what came before the damage, with the
    problem in ``CaptureFile.problem`` (one :class:`CourseError`).

    Taught in: 10-your-own-cluster.
    """
    data, p = _read_bounded(path)
    return parse_capture(data, p.name)


def _read_bounded(path) -> tuple[bytes, Path]:
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise CourseError("pcap", f"{path!r} is not a path", "a str or pathlib.Path naming a pcap file")
    p = Path(path)
    if "\0" in str(p):
        raise CourseError("pcap", "the path contains a NUL byte", "a pcap file")
    try:
        with open(p, "rb") as fh:
            data = fh.read(MAX_PCAP_BYTES + 1)
    except FileNotFoundError:
        raise CourseError("pcap", f"no such file: {p}") from None
    except IsADirectoryError:
        raise CourseError("pcap", f"{p} is a folder, not a pcap file") from None
    except OSError as e:
        raise CourseError("pcap", f"cannot read {p}: {e.strerror or e}") from None
    if len(data) > MAX_PCAP_BYTES:
        raise CourseError("pcap", f"{p} is larger than {MAX_PCAP_BYTES // 2**20} MiB", _MAX_PCAP_TEXT)
    return data, p


def parse_capture(data: bytes, name: str = "pcap") -> CaptureFile:
    """Parse classic pcap or pcapng bytes; a damaged file keeps the frames before the damage.

    Not a capture at all (too short, unknown magic, unsupported version or
    classic link type) raises :class:`CourseError`.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CourseError("pcap", f"{type(data).__name__} is not bytes", "the bytes of a pcap file")
    data = bytes(data)
    if len(data) > MAX_PCAP_BYTES:
        raise CourseError("pcap", f"{name} is larger than {MAX_PCAP_BYTES // 2**20} MiB", _MAX_PCAP_TEXT)
    if data[:4] == PCAPNG_SHB:
        return _parse_pcapng(data, name)
    if len(data) < 24:
        raise CourseError("pcap", f"{name} is too short to be a pcap file ({len(data)} bytes)",
                          "a pcap file starts with a 24-byte header")
    magic = data[:4]
    kinds = {b"\xd4\xc3\xb2\xa1": ("<", 1), b"\xa1\xb2\xc3\xd4": (">", 1),
             b"\x4d\x3c\xb2\xa1": ("<", 1000), b"\xa1\xb2\x3c\x4d": (">", 1000)}
    if magic not in kinds:
        raise CourseError("pcap", f"{name} is not a pcap file (magic {magic.hex()})",
                          "a classic pcap file (magic a1b2c3d4 or a1b23c4d) or pcapng (0a0d0d0a)")
    e, div = kinds[magic]
    _, vmaj, vmin, _, _, snaplen, linkfield = struct.unpack(e + "IHHiIII", data[:24])
    if vmaj != 2:
        raise CourseError("pcap", f"{name} has pcap version {vmaj}.{vmin}", "version 2.4")
    linktype = linkfield & 0x03FFFFFF          # the upper bits carry the FCS length (pcap-savefile(5))
    if linkfield != linktype or linktype not in LINKTYPES:
        raise linktype_error(linkfield if linkfield != linktype and linktype in LINKTYPES else linktype)
    frames = []
    off, n = 24, 0
    problem = None
    hdr = struct.Struct(e + "IIII")
    limit = max(snaplen, SNAPLEN)
    size = len(data)
    while off < size:
        if off + 16 > size:
            problem = CourseError("pcap", f"{name} is truncated in the header of packet {n + 1}",
                                  "a complete file (was the capture interrupted?)")
            break
        sec, frac, incl, orig = hdr.unpack_from(data, off)
        off += 16
        if incl > limit or off + incl > size:
            problem = CourseError("pcap", f"{name} is truncated or corrupt in packet {n + 1} "
                                  f"({incl} bytes announced, {size - off} left)", "a complete file")
            break
        if frac >= 1_000_000 * div:
            problem = CourseError("pcap", f"{name} is corrupt in packet {n + 1} (sub-second field {frac})",
                                  f"below {1_000_000 * div}")
            break
        frames.append(Frame(sec * 1_000_000 + frac // div, data[off:off + incl], orig, None, linktype))
        off += incl
        n += 1
    return CaptureFile(name, "pcap", linktype, frames, (), problem)


# --- pcapng (draft-ietf-opsawg-pcapng) ---------------------------------------------------------

PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_BOM = 0x1A2B3C4D


def _pcapng_options(body: bytes, e: str) -> dict[int, bytes]:
    """Options of a block (code -> first value); stops at opt_endofopt or the end."""
    out, off = {}, 0
    while off + 4 <= len(body):
        code, length = struct.unpack_from(e + "HH", body, off)
        off += 4
        if code == 0:
            break
        out.setdefault(code, body[off:off + length])
        off += (length + 3) & ~3
    return out


def _tsresol(raw: bytes | None) -> tuple[int, int]:
    """if_tsresol as a fraction (units per second): 10^-n, or 2^-n with the top bit set; default µs."""
    if not raw:
        return 1_000_000, 0
    v = raw[0]
    exp = v & 0x7F
    if exp > 60:                               # beyond any clock: corrupt
        raise ValueError(v)
    return (2 ** exp if v & 0x80 else 10 ** exp), 0


def _parse_pcapng(data: bytes, name: str) -> CaptureFile:
    frames: list[Frame] = []
    ifaces: list[tuple] = []                   # this section's: (name, linktype, units/s, offset s, snaplen)
    all_ifaces: list[tuple] = []
    skipped: dict[str, int] = {}
    problem = None
    e = "<"
    off, size, nblock = 0, len(data), 0

    def bad(what: str) -> CourseError:
        return CourseError("pcap", f"{name} (pcapng) {what}", "a complete pcapng file")

    while off < size:
        nblock += 1
        if off + 12 > size:
            problem = bad(f"is truncated in block {nblock}")
            break
        if data[off:off + 4] == PCAPNG_SHB:
            if off + 12 > size:
                problem = bad(f"is truncated in block {nblock}")
                break
            bom = data[off + 8:off + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                e = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                e = ">"
            else:
                if not frames and off == 0:
                    raise CourseError("pcap", f"{name} is not a pcapng file (byte-order magic {bom.hex()})",
                                      "a pcapng section header (1a2b3c4d)")
                problem = bad(f"is corrupt in block {nblock} (byte-order magic {bom.hex()})")
                break
            ifaces = []                        # interface ids are per section
        btype, blen = struct.unpack_from(e + "II", data, off)
        if blen < 12 or blen % 4 or off + blen > size:
            problem = bad(f"is truncated or corrupt in block {nblock} ({blen} bytes announced, "
                          f"{size - off} left)")
            break
        (trailer,) = struct.unpack_from(e + "I", data, off + blen - 4)
        if trailer != blen:
            problem = bad(f"is corrupt in block {nblock} (lengths {blen} and {trailer} differ)")
            break
        body = data[off + 8:off + blen - 4]
        off += blen
        if btype == 0x0A0D0D0A:
            if len(body) < 16:
                problem = bad(f"is corrupt in block {nblock} (section header of {blen} bytes)")
                break
            major = struct.unpack_from(e + "H", body, 4)[0]
            if major != 1:
                problem = bad(f"has section version {major} in block {nblock} (allowed: 1)")
                break
        elif btype == 1:                       # Interface Description Block
            if len(body) < 8:
                problem = bad(f"is corrupt in block {nblock} (interface description of {blen} bytes)")
                break
            lt, _, snap = struct.unpack_from(e + "HHI", body, 0)
            opts = _pcapng_options(body[8:], e)
            try:
                units, _ = _tsresol(opts.get(9))
            except ValueError:
                problem = bad(f"is corrupt in block {nblock} (if_tsresol {opts[9][0]})")
                break
            tsoff = struct.unpack(e + "q", opts[14])[0] if len(opts.get(14, b"")) == 8 else 0
            ifname = opts.get(2, b"").split(b"\0")[0].decode("utf-8", "replace") or f"#{len(ifaces)}"
            ifaces.append((ifname, lt, units, tsoff, snap))
            all_ifaces.append((ifname, lt))
        elif btype in (6, 2, 3):               # Enhanced, obsolete, Simple Packet Block
            if btype == 3:
                if len(body) < 4:
                    problem = bad(f"is corrupt in block {nblock} (simple packet block of {blen} bytes)")
                    break
                ifid, ts, incl = 0, None, None
                (orig,) = struct.unpack_from(e + "I", body, 0)
                start = 4
            else:
                if len(body) < 20:
                    problem = bad(f"is corrupt in block {nblock} (packet block of {blen} bytes)")
                    break
                if btype == 6:
                    ifid, hi, lo, incl, orig = struct.unpack_from(e + "IIIII", body, 0)
                else:
                    ifid, _, hi, lo, incl, orig = struct.unpack_from(e + "HHIIII", body, 0)
                ts = (hi << 32) | lo
                start = 20
            if ifid >= len(ifaces):
                problem = bad(f"is corrupt in block {nblock} (packet of interface {ifid}, "
                              f"{len(ifaces)} described)")
                break
            ifname, lt, units, tsoff, snap = ifaces[ifid]
            if incl is None:                   # simple packet: the rest, up to the snap length
                incl = min(orig, snap or orig, len(body) - start)
            if incl > len(body) - start:
                problem = bad(f"is truncated or corrupt in block {nblock} ({incl} bytes announced, "
                              f"{len(body) - start} in the block)")
                break
            if lt not in LINKTYPES:
                key = f"link type {lt} on {ifname}"
                skipped[key] = skipped.get(key, 0) + 1
                continue
            if ts is None:
                time_us = 0
            elif units == 1_000_000:
                time_us = ts + tsoff * 1_000_000
            else:
                time_us = ts * 1_000_000 // units + tsoff * 1_000_000
            frames.append(Frame(time_us, body[start:start + incl], orig, None, lt, ifname))
        # other blocks (name resolution, statistics, decryption secrets, custom) carry no packets
    if not all_ifaces and problem is None and not frames:
        problem = CourseError("pcap", f"{name} (pcapng) describes no interface", "a pcapng file with packets")
    usable = [lt for _, lt in all_ifaces if lt in LINKTYPES]
    if all_ifaces and not usable and problem is None:
        problem = linktype_error(all_ifaces[0][1])
    linktype = usable[0] if usable else (all_ifaces[0][1] if all_ifaces else LINKTYPE_ETHERNET)
    return CaptureFile(name, "pcapng", linktype, frames, tuple(all_ifaces), problem, skipped or None)


def pcapng_bytes(frames: list[Frame], snaplen: int = SNAPLEN, tsresol: int = 6,
                 big_endian: bool = False) -> bytes:
    """A pcapng file of ``frames``: one interface per (interface name, link type), as tcpdump -w writes.

    ``tsresol``: the interfaces' if_tsresol (6 = µs, 9 = ns).  Used by the
    tests and by ``explain`` users who want the format Wireshark saves.
    """
    if not isinstance(frames, (list, tuple)) or not all(isinstance(f, Frame) for f in frames):
        raise CourseError("frames", "not a list of frames", "a list of ck.Frame")
    if not isinstance(tsresol, int) or isinstance(tsresol, bool) or not 0 <= tsresol <= 9:
        raise CourseError("tsresol", f"{tsresol!r} is not 0..9", "0..9 (6 = microseconds, 9 = nanoseconds)")
    e = ">" if big_endian else "<"

    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)

    def opt(code: int, value: bytes) -> bytes:
        return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)

    out = [block(0x0A0D0D0A, struct.pack(e + "IHHq", _BOM, 1, 0, -1))]
    ids: dict = {}
    scale = 10 ** tsresol
    for f in frames:
        key = (f.interface, f.linktype)
        if key not in ids:
            ids[key] = len(ids)
            opts = b""
            if f.interface:
                opts += opt(2, f.interface.encode())
            if tsresol != 6:
                opts += opt(9, bytes([tsresol]))
            opts += opt(0, b"") if opts else b""
            out.append(block(1, struct.pack(e + "HHI", f.linktype, 0, snaplen) + opts))
        ts = f.time_us * scale // 1_000_000
        data = f.data[:snaplen]
        out.append(block(6, struct.pack(e + "IIIII", ids[key], ts >> 32, ts & 0xFFFFFFFF, len(data), f.wire_len)
                         + data))
    return b"".join(out)
