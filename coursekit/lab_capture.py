"""The rootless lab's capture: libpcap to a pcap, immediate mode, flushed per packet, stops on SIGINT.

Run as a script (``python lab_capture.py IFACE PATH``, or ``--check IFACE``) inside a pod's or node's
namespace: it imports only ctypes and libpcap, not coursekit, so ten of them
start in well under a second.  (In a user namespace tcpdump cannot hand its
savefile to the 'tcpdump' user it drops to, so the lab uses libpcap itself,
the library tcpdump uses.)

Taught in: 07-live-lab.
"""

from __future__ import annotations

import ctypes as ct
import select
import signal
import sys


def capture(iface: str, path: str, check: bool = False) -> None:
    """Capture on ``iface`` into ``path`` until SIGINT; ``check``: only open the interface, then exit."""
    import libpcap as pcap
    err = ct.create_string_buffer(pcap.PCAP_ERRBUF_SIZE)
    h = pcap.create(iface.encode(), err)
    if not h:
        sys.exit(f"pcap_create: {err.value.decode()}")
    pcap.set_snaplen(h, 262144)
    pcap.set_immediate_mode(h, 1)
    pcap.set_timeout(h, 50)
    if pcap.activate(h) < 0:
        sys.exit(f"pcap_activate: {pcap.geterr(h).decode()}")
    if check:
        pcap.close(h)
        return
    d = pcap.dump_open(h, path.encode())
    if not d:
        sys.exit(f"pcap_dump_open: {pcap.geterr(h).decode()}")
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    user = ct.cast(d, ct.POINTER(ct.c_ubyte))
    cb = pcap.pcap_handler(lambda _u, hdr, data: pcap.dump(user, hdr, data))
    # non-blocking dispatch after select(): a blocked pcap_dispatch would never
    # return to Python to see the SIGINT
    pcap.setnonblock(h, 1, err)
    fd = pcap.get_selectable_fd(h)
    print(f"listening on {iface} (libpcap)", file=sys.stderr, flush=True)
    while not stop:
        select.select([fd], [], [], 0.05)
        pcap.dispatch(h, -1, cb, None)
        pcap.dump_flush(d)
    pcap.dispatch(h, -1, cb, None)
    pcap.dump_close(d)
    pcap.close(h)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--check"]:
        capture(sys.argv[2], "", check=True)
    else:
        capture(sys.argv[1], sys.argv[2])
