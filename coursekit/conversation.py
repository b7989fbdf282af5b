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
                                        <-   ACK (from TIME_WAIT: IP id 0)

Three details follow the kernel, not a fixed script (net/ipv4/tcp_output.c,
tcp_input.c, tcp_minisocks.c):

* A write that leaves in several segments carries PSH on its last segment
  only (``tcp_push`` marks the tail skb; ``tcp_fragment`` and GSO clear PSH on
  every piece but the last).  With a pod MTU below 664 nginx's body is two
  segments: ``[.]`` then ``[FP.]``.
* The FIN puts the client in delayed-ACK ("pingpong") mode (``tcp_fin``).  The
  ACK of the last data segment then leaves (when wget reads it, ``tcp_cleanup_rbuf``,
  or at once, ``__tcp_ack_snd_check``) only if more than a full segment is
  unacknowledged (``rcv_nxt - rcv_wup > rcv_mss``, the FIN counting one), i.e. if
  that segment is at least the client's estimate of the server's MSS
  (``tcp_measure_rcv_mss``).  Otherwise it waits for the delayed-ACK timer (40 ms
  at least), busybox's close comes first, and its FIN carries the ACK.
* nginx has closed its socket, so once the client's separate ACK of the FIN
  arrives the server's socket becomes a TIME_WAIT socket (``tcp_time_wait``
  from FIN_WAIT1, as an orphan); its ACK of the client's FIN is sent by
  ``tcp_v4_timewait_ack`` through the per-namespace control socket
  (``ip_send_unicast_reply``), which has no peer address, so
  ``ip_select_ident`` gives it IP id 0, like a listener's SYN-ACK.  When the
  client's FIN itself acknowledged the server's FIN, the full socket answers
  (``tcp_fin`` in FIN_WAIT2) and the id continues the socket's counter.

Taught in: 01-physical-nic, 04-container.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Segment", "segments", "wget_request", "nginx_response_header", "http_date",
           "tcp_options", "served_file", "client_rcv_mss", "fit_observations", "FIN", "SYN", "RST", "PSH", "ACK", "URG"]

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
    # "socket" (a connected socket: its IP id counter), or "listener" (SYN-ACK from a
    # request sock) or "time-wait" (tcp_v4_timewait_ack): both carry IP id 0
    sent_from: str = "socket"
    notes: list[str] = field(default_factory=list)
    retransmission: int = 0          # n: the n-th retransmission of an unanswered segment (coursekit.faults)


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
    # wget's Host header is the URL's host as typed: the name it resolved first (dns:), else the address
    host = scenario.dns.name if getattr(scenario, "dns", None) is not None else scenario.target_ip
    request = wget_request(f"{host}:{scenario.target_dport}", scenario.request.path,
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
    segs[synack].sent_from = "listener"
    add("client", "ACK (handshake done)", ACK, c + 1, s + 1, win=c_win, trigger=synack)
    req = add("client", "HTTP request", PSH | ACK, c + 1, s + 1, request, win=c_win)
    c_next = c + 1 + len(request)
    add("server", "ACK of request", ACK, s + 1, c_next, win=s_win, trigger=req)
    # the header in one write, the body by sendfile; nginx closes (Connection: close).
    # PSH marks the last segment of each write (tcp_push); the FIN rides the body's last.
    writes = [[b"\0" * header_len], [body[i:i + s_smss] for i in range(0, len(body), s_smss)]]
    s_seq = s + 1
    data_idx = []
    for w, pieces in enumerate(writes):
        for k, chunk in enumerate(pieces):
            end_of_write = k == len(pieces) - 1
            last = w == len(writes) - 1 and end_of_write
            label = "HTTP response header" if w == 0 else "HTTP response body" + (" + FIN" if last else "")
            flags = ACK | (PSH if end_of_write else 0) | (FIN if last else 0)
            data_idx.append(add("server", label, flags, s_seq, c_next, chunk, win=s_win))
            s_seq += len(chunk)
    s_fin_end = s_seq + 1
    # The client ACKs each data segment at once (quick-ACK mode) until the FIN
    # arrives; the FIN's segment is ACKed at once only if it is at least the
    # client's receive-MSS estimate, else busybox's FIN carries the ACK.
    rcv_mss = client_rcv_mss(c_mss - TS_OPTION_LEN, s_smss, [segs[i] for i in data_idx])
    fin_acks_last = len(segs[data_idx[-1]].payload) < rcv_mss
    for k, i in enumerate(data_idx):
        last = k == len(data_idx) - 1
        if last and fin_acks_last:
            break
        end = (segs[i].seq + len(segs[i].payload) + (1 if last else 0))
        add("client", "ACK of " + ("body + FIN" if last else ("header" if k == 0 else "body")),
            ACK, c_next, end, win=c_win, trigger=i)
    fin = add("client", "FIN" + (" (ACKs the body + FIN)" if fin_acks_last else ""), FIN | ACK, c_next, s_fin_end,
              win=c_win, trigger=data_idx[-1] if fin_acks_last else None)
    ack = add("server", "ACK of FIN", ACK, s_fin_end, c_next + 1, win=s_win, trigger=fin)
    if not fin_acks_last:
        segs[ack].sent_from = "time-wait"    # the orphaned socket went FIN_WAIT2 -> TIME_WAIT on the ACK

    if o.windows is not None:
        if len(o.windows) != len(segs):
            from .errors import CourseError
            raise CourseError("observed.windows", f"{len(o.windows)} windows for {len(segs)} segments",
                              f"exactly {len(segs)} values, one per segment")
        for sg, w in zip(segs, o.windows):
            sg.window = w
    return segs


def client_rcv_mss(advmss: int, mss_cache: int, received: list[Segment]) -> int:
    """The client's estimate of the server's segment size when the last one arrives.

    ``advmss`` is the client's own MSS less the TS option (``tcp_rcv_synsent_state_process``),
    ``mss_cache`` what it sends.  ``tcp_initialize_rcv_mss`` starts from min(advmss, mss_cache, 536); then
    ``tcp_measure_rcv_mss`` raises it to each segment at least that long (capped
    at advmss).  A shorter segment counts only if it is not a remnant
    (no PSH/FIN) and the previous one had the same size.
    """
    rcv_mss = max(min(advmss, mss_cache, 536), 88)
    last_size = 0
    for sg in received:
        n, previous, last_size = len(sg.payload), last_size, 0
        if n >= rcv_mss:
            rcv_mss = min(n, advmss)
        elif n + 20 + TS_OPTION_LEN >= 536 + 20 or (n + 20 + TS_OPTION_LEN >= 88 + 20
                                                      and not sg.flags & (FIN | SYN | PSH | URG)):
            last_size = n
            if n == previous:
                rcv_mss = n
    return rcv_mss


def fit_observations(scenario, changes: dict):
    """``scenario.with_changes(changes)``; if the changes (a smaller pod MTU splitting the body,
    say) give the conversation another number of segments, without the per-segment
    observations (times, windows, TS lags): they were observed on another conversation,
    and the model's defaults apply.

    Taught in: every chapter's explorer.
    """
    from .errors import CourseError
    try:
        return scenario.with_changes(changes)
    except CourseError as e:
        o = scenario.observed
        if e.field not in ("observed.windows", "observed.times") or (o.windows is None and o.times_us is None):
            raise
    return scenario.with_changes({**changes, "observed.windows": None, "observed.times": None,
                                  "observed.tsLagTicks": {}})


def response_date_index(segs: list[Segment]) -> int:
    """The segment that carries nginx's header (its send time is the ``Date``)."""
    return next(s.index for s in segs if s.label == "HTTP response header")
