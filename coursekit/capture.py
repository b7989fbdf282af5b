"""Captures: what tcpdump records on an interface, and pcap files.

:func:`capture` returns the frames tcpdump on one interface of a node (or a
pod's ``eth0``) would record, in time order, each keeping its provenance.
:func:`write_pcap` writes them as a classic pcap (link type EN10MB,
microsecond stamps, snaplen 262144) byte-identically on every run -- the
timestamps come from the model, never from the wall clock -- and writes
atomically, so an error never leaves half a file.  :func:`read_pcap` reads
any classic pcap (either byte order, micro- or nanosecond) and refuses
anything else with one clear message.

Taught in: 01-physical-nic (and every chapter that opens a capture).
"""

from __future__ import annotations

import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import CourseError, public

__all__ = ["Frame", "capture", "write_pcap", "read_pcap", "pcap_bytes", "LINKTYPE_ETHERNET", "SNAPLEN"]

LINKTYPE_ETHERNET = 1
SNAPLEN = 262144


@dataclass(frozen=True)
class Frame:
    """One captured frame: time (µs since the epoch), bytes, original length."""
    time_us: int
    data: bytes
    orig_len: int | None = None
    observation: object = None          # the datapath Observation it came from, if any

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


def pcap_bytes(frames: list[Frame], snaplen: int = SNAPLEN, linktype: int = LINKTYPE_ETHERNET) -> bytes:
    if not isinstance(frames, (list, tuple)):
        raise CourseError("frames", f"a value of type {type(frames).__name__} is not a list of frames",
                          "a list of ck.Frame (from ck.capture or ck.read_pcap)")
    for i, f in enumerate(frames):
        if not isinstance(f, Frame):
            hint = " (wrap bytes as ck.Frame(time_us, data))" if isinstance(f, (bytes, bytearray)) else ""
            raise CourseError(f"frames[{i}]", f"a value of type {type(f).__name__} is not a Frame{hint}",
                              "ck.Frame (from ck.capture or ck.read_pcap)")
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)]
    for f in frames:
        sec, usec = divmod(f.time_us, 1_000_000)
        data = f.data[:snaplen]
        out.append(struct.pack("<IIII", sec, usec, len(data), f.wire_len))
        out.append(data)
    return b"".join(out)


@public
def write_pcap(path: str | os.PathLike, frames: list[Frame]) -> Path:
    """Write a classic pcap atomically (a temporary file renamed into place)."""
    path = Path(path)
    data = pcap_bytes(frames)
    if path.parent and not path.parent.exists():
        raise CourseError("output", f"folder {path.parent} does not exist", "an existing folder")
    fd, tmp = tempfile.mkstemp(prefix=".ck-", suffix=".pcap", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def read_pcap(path: str | os.PathLike) -> tuple[int, list[Frame]]:
    """Read a classic pcap: ``(linktype, frames)``.  Errors name the file and the problem."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise CourseError("pcap", f"no such file: {p}") from None
    except IsADirectoryError:
        raise CourseError("pcap", f"{p} is a folder, not a pcap file") from None
    return parse_pcap(data, p.name)


def parse_pcap(data: bytes, name: str = "pcap") -> tuple[int, list[Frame]]:
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
    _, vmaj, vmin, _, _, snaplen, linktype = struct.unpack(e + "IHHiIII", data[:24])
    if vmaj != 2:
        raise CourseError("pcap", f"{name} has pcap version {vmaj}.{vmin}", "version 2.4")
    frames = []
    off, n = 24, 0
    while off < len(data):
        if off + 16 > len(data):
            raise CourseError("pcap", f"{name} is truncated in the header of packet {n + 1}",
                              "a complete file (was the capture interrupted?)")
        sec, frac, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        if incl > max(snaplen, 262144) or off + incl > len(data):
            raise CourseError("pcap", f"{name} is truncated or corrupt in packet {n + 1} "
                              f"({incl} bytes announced, {len(data) - off} left)", "a complete file")
        frames.append(Frame(sec * 1_000_000 + frac // div, data[off:off + incl], orig))
        off += incl
        n += 1
    return linktype, frames
