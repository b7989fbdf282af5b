"""Captures: what tcpdump records on an interface, and pcap files.

:func:`capture` returns the frames tcpdump on one interface of a node (or a
pod's ``eth0``) would record, in time order, each keeping its provenance.
:func:`write_pcap` writes them as a classic pcap (the frames' link type,
EN10MB for the model's, microsecond stamps, snaplen 262144) byte-identically
on every run -- the timestamps come from the model, never from the wall
clock -- and writes atomically, so an error never leaves half a file (the
place is checked by :mod:`.outputs`: never a folder, a device, /proc or
/sys).  :func:`read_pcap` reads a classic pcap (either byte order, micro-
or nanosecond) of at most 64 MiB with a link type the tcpdump view prints
(Ethernet, raw IPv4, Linux cooked v1/v2; each Frame keeps it) and refuses
anything else -- pcapng, a truncated or corrupt file, another link type, an
endless input such as /dev/zero -- with one clear message.

Taught in: 01-physical-nic (and every chapter that opens a capture).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from .errors import CourseError, public

__all__ = ["Frame", "capture", "write_pcap", "read_pcap", "parse_pcap", "pcap_bytes", "LINKTYPE_ETHERNET",
           "LINKTYPES", "SNAPLEN", "MAX_PCAP_BYTES"]

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
    """Read a classic pcap: ``(linktype, frames)``.  Errors name the file and the problem.

    Reads at most :data:`MAX_PCAP_BYTES` (+1 to notice a bigger file), from a
    regular file or not (``/dev/stdin``, a FIFO): an endless input is refused,
    never read to the end.

    Taught in: 01-physical-nic.
    """
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
    return parse_pcap(data, p.name)


def parse_pcap(data: bytes, name: str = "pcap") -> tuple[int, list[Frame]]:
    """Parse classic pcap bytes (either byte order, µs or ns stamps, a link type in :data:`LINKTYPES`)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CourseError("pcap", f"{type(data).__name__} is not bytes", "the bytes of a pcap file")
    data = bytes(data)
    if len(data) > MAX_PCAP_BYTES:
        raise CourseError("pcap", f"{name} is larger than {MAX_PCAP_BYTES // 2**20} MiB", _MAX_PCAP_TEXT)
    if len(data) < 24:
        raise CourseError("pcap", f"{name} is too short to be a pcap file ({len(data)} bytes)",
                          "a pcap file starts with a 24-byte header")
    magic = data[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        raise CourseError("pcap", f"{name} is pcapng, which this reader does not open",
                          "classic pcap: save with tcpdump -w, or convert with editcap -F pcap")
    kinds = {b"\xd4\xc3\xb2\xa1": ("<", 1), b"\xa1\xb2\xc3\xd4": (">", 1),
             b"\x4d\x3c\xb2\xa1": ("<", 1000), b"\xa1\xb2\x3c\x4d": (">", 1000)}
    if magic not in kinds:
        raise CourseError("pcap", f"{name} is not a pcap file (magic {magic.hex()})",
                          "a classic pcap file (magic a1b2c3d4 or a1b23c4d)")
    e, div = kinds[magic]
    _, vmaj, vmin, _, _, snaplen, linkfield = struct.unpack(e + "IHHiIII", data[:24])
    if vmaj != 2:
        raise CourseError("pcap", f"{name} has pcap version {vmaj}.{vmin}", "version 2.4")
    linktype = linkfield & 0x03FFFFFF          # the upper bits carry the FCS length (pcap-savefile(5))
    if linkfield != linktype or linktype not in LINKTYPES:
        raise linktype_error(linkfield if linkfield != linktype and linktype in LINKTYPES else linktype)
    frames = []
    off, n = 24, 0
    while off < len(data):
        if off + 16 > len(data):
            raise CourseError("pcap", f"{name} is truncated in the header of packet {n + 1}",
                              "a complete file (was the capture interrupted?)")
        sec, frac, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        if incl > max(snaplen, SNAPLEN) or off + incl > len(data):
            raise CourseError("pcap", f"{name} is truncated or corrupt in packet {n + 1} "
                              f"({incl} bytes announced, {len(data) - off} left)", "a complete file")
        if frac >= 1_000_000 * div:
            raise CourseError("pcap", f"{name} is corrupt in packet {n + 1} (sub-second field {frac})",
                              f"below {1_000_000 * div}")
        frames.append(Frame(sec * 1_000_000 + frac // div, data[off:off + incl], orig, None, linktype))
        off += incl
        n += 1
    return linktype, frames
