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

__all__ = ["compile_filter", "Filter", "apply_filter", "libpcap_version"]

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
        pcap = _pcap()
        self.expression = expression
        self._pcap = pcap
        self._handle = pcap.open_dead(linktype, snaplen)
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


@functools.lru_cache(maxsize=64)
def compile_filter(expression: str) -> Filter:
    """Compile once, reuse: explorers re-filter on every change."""
    return Filter(expression)


def apply_filter(frames, expression: str | list[str] | None):
    """The frames a capture filter lets through (all of them for an empty filter)."""
    if isinstance(expression, (list, tuple)):
        expression = " ".join(expression)
    if not expression or not expression.strip():
        return list(frames)
    f = compile_filter(expression.strip())
    return [fr for fr in frames if f.matches(fr.data, fr.wire_len)]
