"""The TCP conversation: busybox ``wget`` asks, nginx 1.17.3 answers.

What the model computes (never pasted): the HTTP request and response bytes
(from the request settings, the served file and the clock), every sequence
and acknowledgement number, which segment carries SYN/FIN/PSH, the MSS from
each pod's MTU, the TCP timestamps from each kernel's clock, which timestamp
each side echoes, and the segment boundaries.

What the scenario supplies as *observations* (the kernel's or the clock's
choice): the client port, the ISNs, the TS clock offsets, per-packet times
and advertised windows (with Linux-like defaults).

The exchange, as in the article's captures (FACTS.md section 9)::

    client                                   server
    SYN (mss, sackOK, TS, nop, wscale)  ->
                                        <-   SYN-ACK
    ACK                                 ->
    GET / (81 bytes, Connection: close) ->
                                        <-   ACK
                                        <-   HTTP/1.1 200 OK header (233 bytes)
                                        <-   body (612 bytes) + FIN
    ACK header                          ->
    ACK body + FIN                      ->
    FIN                                 ->
                                        <-   ACK

Taught in: 01-physical-nic, 04-container.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Segment", "segments", "wget_request", "nginx_response_header", "http_date",
           "tcp_options", "served_file", "FIN", "SYN", "RST", "PSH", "ACK", "URG"]

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

_M32 = 0xFFFFFFFF
TS_OPTION_LEN = 12      # nop, nop, TS val ecr
WSCALE = 7              # Linux's choice for the default buffers of the article's kernels (observed.wscale overrides)


@dataclass
class Segment:
    """One TCP segment as its sender's kernel emits it."""
    index: int
    sender: str                      # "client" or "server"
    label: str                       # "SYN", "request", "ACK of header", ...
    flags: int
    seq: int
    ack: int
    payload: bytes
    window: int                      # the raw 16-bit window field
    mss: int | None = None           # on SYN and SYN-ACK only
    wscale: int = WSCALE             # the sender's window scale (printed on SYNs)
    trigger: int | None = None       # the segment whose arrival caused this one
    send_us: int = 0                 # when the sender emitted it
    ts_val: int = 0
    ts_ecr: int = 0
    ip_id: int = 0
    notes: list[str] = field(default_factory=list)


def served_file(scenario=None) -> bytes:
    """The file nginx serves: its default ``index.html`` (612 bytes)."""
    from .scenario import data_dir
    return (data_dir() / "www" / "index.html").read_bytes()


def wget_request(host: str, path: str = "/", user_agent: str = "Wget", method: str = "GET") -> bytes:
    """busybox ``wget``'s request: 81 bytes for ``Host: 10.254.40.119:4432``.

    busybox sends ``Connection: close``, which is why the server closes first.
    """
    return (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\n"
            f"Connection: close\r\n\r\n").encode("ascii")


def http_date(unix_seconds: int) -> str:
    """RFC 7231 IMF-fixdate, as nginx writes ``Date`` and ``Last-Modified``."""
    t = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=unix_seconds)
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return f"{days[t.weekday()]}, {t.day:02d} {months[t.month - 1]} {t.year} {t:%H:%M:%S} GMT"


def nginx_response_header(now_s: int, body_len: int, mtime_s: int, version: str = "1.17.3") -> bytes:
    """nginx's response header, its lines in nginx's order.

    The ETag is ``"<mtime hex>-<size hex>"`` (``ngx_http_set_etag``).
    """
    return (f"HTTP/1.1 200 OK\r\nServer: nginx/{version}\r\nDate: {http_date(now_s)}\r\n"
            f"Content-Type: text/html\r\nContent-Length: {body_len}\r\n"
            f"Last-Modified: {http_date(mtime_s)}\r\nConnection: close\r\n"
            f'ETag: "{mtime_s:x}-{body_len:x}"\r\nAccept-Ranges: bytes\r\n\r\n').encode("ascii")


def tcp_options(seg: Segment) -> list[tuple[str, object]]:
    """Linux's option layout: SYNs carry mss, sackOK, TS, nop, wscale; others nop, nop, TS."""
    if seg.flags & SYN:
        return [("MSS", seg.mss), ("SAckOK", b""), ("Timestamp", (seg.ts_val, seg.ts_ecr)),
                ("NOP", None), ("WScale", seg.wscale)]
    return [("NOP", None), ("NOP", None), ("Timestamp", (seg.ts_val, seg.ts_ecr))]


def segments(scenario) -> list[Segment]:
    """The conversation's segments in the order their senders emit them.

    Times and timestamps are filled in by :func:`coursekit.datapath.walk`,
    which knows how long each hop takes; payloads that depend on the clock
    (nginx's ``Date``) are built there too.
    """
    o = scenario.observed
    client, server = scenario.client, scenario.server
    c_mss, s_mss = client.mtu - 40, server.mtu - 40
    c, s = o.client_isn, o.server_isn
    request = wget_request(f"{scenario.target_ip}:{scenario.target_dport}", scenario.request.path,
                           scenario.request.user_agent, scenario.request.method)
    body = served_file(scenario)
    header_len = len(nginx_response_header(0, len(body), o.nginx_mtime))
    # each side sends at most the peer's MSS (capped by its own), minus the TS option
    s_smss = min(c_mss, s_mss) - TS_OPTION_LEN
    c_syn_win = min(65535, 20 * c_mss)
    s_syn_win = min(65535, 20 * (s_mss - TS_OPTION_LEN))
    c_ws, s_ws = o.wscale
    c_win = math.ceil(c_syn_win / (1 << c_ws))
    s_win = math.ceil(s_syn_win / (1 << s_ws))

    segs: list[Segment] = []

    def add(sender, label, flags, seq, ack, payload=b"", win=0, mss=None, trigger=None):
        ws = c_ws if sender == "client" else s_ws
        segs.append(Segment(len(segs), sender, label, flags, seq & _M32, ack & _M32, payload, win, mss, ws, trigger))
        return len(segs) - 1

    syn = add("client", "SYN", SYN, c, 0, win=c_syn_win, mss=c_mss)
    synack = add("server", "SYN-ACK", SYN | ACK, s, c + 1, win=s_syn_win, mss=s_mss, trigger=syn)
    add("client", "ACK (handshake done)", ACK, c + 1, s + 1, win=c_win, trigger=synack)
    req = add("client", "HTTP request", PSH | ACK, c + 1, s + 1, request, win=c_win)
    c_next = c + 1 + len(request)
    add("server", "ACK of request", ACK, s + 1, c_next, win=s_win, trigger=req)
    # the header in one write, the body by sendfile; nginx closes (Connection: close)
    chunks = [b"\0" * header_len]
    for i in range(0, len(body), s_smss):
        chunks.append(body[i:i + s_smss])
    s_seq = s + 1
    data_idx = []
    for k, chunk in enumerate(chunks):
        last = k == len(chunks) - 1
        label = "HTTP response header" if k == 0 else "HTTP response body" + (" + FIN" if last else "")
        data_idx.append(add("server", label, PSH | ACK | (FIN if last else 0), s_seq, c_next, chunk, win=s_win))
        s_seq += len(chunk)
    s_fin_end = s_seq + 1
    for k, i in enumerate(data_idx):
        last = k == len(data_idx) - 1
        end = (segs[i].seq + len(segs[i].payload) + (1 if last else 0))
        add("client", "ACK of " + ("body + FIN" if last else ("header" if k == 0 else "body")),
            ACK, c_next, end, win=c_win, trigger=i)
    fin = add("client", "FIN", FIN | ACK, c_next, s_fin_end, win=c_win)
    add("server", "ACK of FIN", ACK, s_fin_end, c_next + 1, win=s_win, trigger=fin)

    if o.windows is not None:
        if len(o.windows) != len(segs):
            from .errors import CourseError
            raise CourseError("observed.windows", f"{len(o.windows)} windows for {len(segs)} segments",
                              f"exactly {len(segs)} values, one per segment")
        for sg, w in zip(segs, o.windows):
            sg.window = w
    return segs


def response_date_index(segs: list[Segment]) -> int:
    """The segment that carries nginx's header (its send time is the ``Date``)."""
    return next(s.index for s in segs if s.label == "HTTP response header")
