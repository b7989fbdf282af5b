"""Benchmark: ``coursekit explain`` of a 100k-packet capture vs ``tcpdump -r`` of the same file.

    python benchmarks/explain.py            # writes benchmarks/explain-results.json
    python benchmarks/run.py explain        # the same, inside the suite's results

The capture: the article's request as meizu's enp4s0 saw it (VXLAN, 11
frames a connection), repeated as 9,091 connections -- each with its own
client port and IP ids, so that every connection is a conversation of its
own -- in one classic pcap of 100,001 frames; and the same connections on
xiaomi's enp4s0 in a second file, so that ``explain`` also matches every
packet across two captures (200k frames).  Checksums are left as they were
(neither tool checks them without -v).

Figures: frames/s of ``explain`` in-process (read + decode + match + group +
attribute-free walk), of the whole command (``python -m coursekit explain
--json``, import included), and of ``tcpdump -nn -r`` (median of 3).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = Path(__file__).resolve().parent


def _connections(frames, n):
    """``n`` copies of a connection's frames, each copy with its own client port and IP ids (inner header)."""
    out = []
    t0 = frames[0].time_us
    from coursekit.capture import Frame
    for c in range(n):
        port = 20000 + c % 40000
        for i, f in enumerate(frames):
            d = bytearray(f.data)
            ip = 50 + 14                                   # Ethernet + IP + UDP + VXLAN + inner Ethernet
            d[ip + 4:ip + 6] = ((c * 16 + i) & 0xFFFF).to_bytes(2, "big")
            tcp = ip + 20
            sport = int.from_bytes(d[tcp:tcp + 2], "big")
            at = tcp if sport != 80 else tcp + 2           # the client's port, whichever way the packet goes
            d[at:at + 2] = port.to_bytes(2, "big")
            out.append(Frame(t0 + c * 1000 + (f.time_us - t0) // 1000, bytes(d)))
    return out


def bench_explain(packets: int = 100_000) -> dict:
    import coursekit as ck
    from coursekit.capture import write_pcap
    from coursekit.explanation import explain
    meizu = ck.read_pcap(ROOT / "data" / "captures" / "article" / "meizu-enp4s0.pcap")[1]
    xiaomi = ck.read_pcap(ROOT / "data" / "captures" / "article" / "xiaomi-enp4s0.pcap")[1]
    n = packets // len(meizu) + 1
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "meizu-enp4s0.pcap", Path(tmp) / "xiaomi-enp4s0.pcap"
        write_pcap(a, _connections(meizu, n))
        write_pcap(b, _connections(xiaomi, n))
        frames = n * len(meizu)
        t = time.perf_counter()
        ex = explain([a])
        one = time.perf_counter() - t
        assert len(ex.conversations) == n, len(ex.conversations)
        t = time.perf_counter()
        ex2 = explain([a, b])
        two = time.perf_counter() - t
        assert len(ex2.conversations) == n and all(len(p.places) == 2 for p in ex2.conversations[0].packets)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "coursekit", "explain", str(a), "--json", "-"], check=True,
                       cwd=ROOT, stdout=subprocess.DEVNULL)
        cmd = time.perf_counter() - t
        tcpdump = shutil.which("tcpdump") or "/usr/sbin/tcpdump"
        real = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([tcpdump, "-nn", "-r", str(a)], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            real.append(time.perf_counter() - t)
        size = a.stat().st_size
    r = statistics.median(real)
    return {"frames": frames, "pcap_bytes": size, "conversations": n,
            "explain_one_file_s": round(one, 3), "explain_frames_per_s": round(frames / one),
            "explain_two_files_s": round(two, 3), "explain_two_files_frames_per_s": round(2 * frames / two),
            "command_json_s": round(cmd, 3), "tcpdump_r_s": round(r, 3), "tcpdump_frames_per_s": round(frames / r),
            "ratio_explain_vs_tcpdump": round(one / r, 2), "load_average_1min": round(os.getloadavg()[0], 1),
            "cpus": os.cpu_count()}


if __name__ == "__main__":
    res = bench_explain()
    print(json.dumps(res, indent=2))
    (OUT / "explain-results.json").write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
