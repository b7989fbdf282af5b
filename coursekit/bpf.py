"""Capture filters compiled and run by the real libpcap.

A filter expression such as ``'src 10.167.226.38 and port 8472 and udp'``
is compiled by libpcap's own ``pcap_compile`` (for link type EN10MB, the
snapshot length tcpdump uses) and each frame is tested with
``pcap_offline_filter`` -- the same code tcpdump runs.  There is no
hand-written filter language here: a bad expression fails with libpcap's own
error message.

The lesson this makes real: on ``enp4s0`` BPF looks only at the *outer*
headers, so a filter on a pod address (``'src 172.30.83.9'``) matches
nothing there, while ``'port 8472 and udp'`` matches every VXLAN frame.

libpcap comes from the PyPI ``libpcap`` package: it uses the system's
libpcap when there is one, and the copy it bundles otherwise.

Taught in: 01-physical-nic.
"""

from __future__ import annotations

import ctypes as ct
import functools
import sys

from .errors import CourseError

__all__ = ["compile_filter", "Filter", "apply_filter", "check_expression", "libpcap_version",
           "MAX_FILTER_CHARS", "MAX_FILTER_TERMS"]

_SNAPLEN = 262144
_LINKTYPE_ETHERNET = 1
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF


@functools.lru_cache(maxsize=1)
def _pcap():
    """Import the PyPI binding, falling back to its bundled libpcap."""
    try:
        import libpcap as pcap
        return pcap
    except OSError:
        pass
    # No system libpcap: point the binding at the copy it ships and retry.
    cfg = sys.modules.get("libpcap.__config__")
    for name in [m for m in sys.modules if m == "libpcap" or m.startswith("libpcap.")]:
        if name != "libpcap.__config__":
            del sys.modules[name]
    if cfg is None:
        raise CourseError("libpcap", "the libpcap Python package is not installed",
                          "pip install 'libpcap>=1.11.0b29'")
    cfg.config["LIBPCAP"] = "tcpdump"
    try:
        import libpcap as pcap
    except OSError as e:  # pragma: no cover - depends on the platform
        raise CourseError("libpcap", f"no usable libpcap ({e})", "install libpcap or the libpcap wheel") from None
    return pcap


def libpcap_version() -> str:
    """``pcap_lib_version()`` of the library in use."""
    return _pcap().lib_version().decode()


class Filter:
    """A compiled BPF program (``pcap_compile``) for Ethernet frames."""

    def __init__(self, expression: str, snaplen: int = _SNAPLEN, linktype: int = _LINKTYPE_ETHERNET):
        expression = check_expression(expression)
        pcap = _pcap()
        self.expression = expression
        self._pcap = pcap
        # pcap_open_dead takes a DLT_ value; a pcap file's LINKTYPE_RAW (101) is DLT_RAW
        self._handle = pcap.open_dead(getattr(pcap, "DLT_RAW", 12) if linktype == 101 else linktype, snaplen)
        if not self._handle:  # pragma: no cover
            raise CourseError("filter", "libpcap could not open a dead handle")
        self._prog = pcap.bpf_program()
        rc = pcap.compile(self._handle, ct.byref(self._prog), expression.encode(), 1, PCAP_NETMASK_UNKNOWN)
        if rc != 0:
            msg = pcap.geterr(self._handle).decode(errors="replace")
            pcap.close(self._handle)
            self._handle = None
            raise CourseError("filter", f"libpcap rejected {expression!r}: {msg}",
                              "a pcap-filter(7) expression, e.g. 'host 172.30.83.0 and tcp'")

    def matches(self, data: bytes, wire_len: int | None = None) -> bool:
        pcap = self._pcap
        hdr = pcap.pkthdr()
        hdr.caplen = len(data)
        hdr.len = len(data) if wire_len is None else wire_len
        buf = (ct.c_ubyte * max(1, len(data))).from_buffer_copy(data or b"\0")
        return pcap.offline_filter(ct.byref(self._prog), ct.byref(hdr), buf) != 0

    def __del__(self):
        try:
            if getattr(self, "_handle", None):
                self._pcap.freecode(ct.byref(self._prog))
                self._pcap.close(self._handle)
                self._handle = None
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


# libpcap's optimiser is superlinear in the number of terms: 400 ORed `host`
# terms take 10 s and a few thousand never finish (tcpdump hangs the same way).
# Within these bounds the slowest filter measured compiles in about 1.5 s.
MAX_FILTER_CHARS = 1024
MAX_FILTER_TERMS = 64
_ALLOWED = "a pcap-filter(7) expression, e.g. 'host 172.30.83.0 and tcp'"


def check_expression(expression) -> str:
    """The expression as libpcap will see it, or :class:`CourseError` (type, control characters, size)."""
    if isinstance(expression, (list, tuple)):
        if not all(isinstance(x, str) for x in expression):
            raise CourseError("filter", "a list with something other than text in it", _ALLOWED)
        expression = " ".join(expression)
    if expression is None:
        return ""
    if not isinstance(expression, str):
        raise CourseError("filter", f"{type(expression).__name__} {expression!r:.40} is not text", _ALLOWED)
    bad = sorted({c for c in expression if (ord(c) < 0x20 and c not in "\t\n\r") or ord(c) == 0x7F})
    if bad:
        # a NUL would silently end the filter inside libpcap: refuse it, never truncate
        raise CourseError("filter", f"control character {bad[0]!r} in the filter", _ALLOWED + " (printable text)")
    expression = expression.strip()
    if len(expression) > MAX_FILTER_CHARS:
        raise CourseError("filter", f"{len(expression)} characters long",
                          f"at most {MAX_FILTER_CHARS} characters (libpcap's optimiser hangs on huge filters)")
    import re
    terms = len(re.findall(r"\b(?:and|or)\b|&&|\|\|", expression)) + 1
    if terms > MAX_FILTER_TERMS:
        raise CourseError("filter", f"{terms} terms joined by and/or",
                          f"at most {MAX_FILTER_TERMS} (libpcap's optimiser hangs on huge filters)")
    return expression


@functools.lru_cache(maxsize=64)
def _compiled(expression: str, linktype: int) -> Filter:
    return Filter(expression, linktype=linktype)


def compile_filter(expression: str, linktype: int = _LINKTYPE_ETHERNET) -> Filter:
    """Compile once, reuse: explorers re-filter on every change.

    Taught in: 01-physical-nic.
    """
    from .capture import LINKTYPES, linktype_error
    if linktype not in LINKTYPES:
        raise linktype_error(linktype)
    expression = check_expression(expression)
    if not expression:
        raise CourseError("filter", "an empty filter", _ALLOWED)
    return _compiled(expression, linktype)


def apply_filter(frames, expression: str | list[str] | None):
    """The frames a capture filter lets through (all of them for an empty filter).

    The filter is compiled for the frames' link type (Ethernet for the model's
    captures; a pcap's own for ``ck.read_pcap``'s frames).

    Taught in: 01-physical-nic.
    """
    expression = check_expression(expression)
    if isinstance(frames, (str, bytes, bytearray)) or not hasattr(frames, "__iter__"):
        raise CourseError("frames", f"{type(frames).__name__} is not a list of Frames", "what ck.capture returns")
    frames = list(frames)
    if not expression:
        return frames
    kinds = {getattr(f, "linktype", _LINKTYPE_ETHERNET) for f in frames}
    if len(kinds) > 1:
        raise CourseError("frames", f"frames of link types {sorted(kinds)} together", "frames of one capture")
    f = compile_filter(expression, kinds.pop() if kinds else _LINKTYPE_ETHERNET)
    out = []
    for fr in frames:
        data = getattr(fr, "data", None)
        if not isinstance(data, (bytes, bytearray)):
            raise CourseError("frames", f"a {type(fr).__name__} is not a capture Frame", "what ck.capture returns")
        if f.matches(bytes(data), fr.wire_len):
            out.append(fr)
    return out
