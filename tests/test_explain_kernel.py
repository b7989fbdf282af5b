"""explain on the real kernel's captures: a client, a router doing kube-proxy-style DNAT and MASQUERADE, a server.

Three network namespaces (children of ``unshare --net``, gone when they exit;
nothing on the host changes): client 10.9.0.2 -- router 10.9.0.1 | 10.9.1.1 --
server 10.9.1.2.  The router's nat table sends 10.96.0.10:80 to the server's
8080 through KUBE-SERVICES -> KUBE-SVC -> KUBE-SEP chains and masquerades
what leaves by r1.  Real tcpdump captures every interface (and ``-i any`` on
the router), ``coursekit collect`` runs inside the router's namespace, and
explain must give the walk back -- with the kernel's own choices (client
port, ISNs, IP ids) it has never seen.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from coursekit.explanation import explain
from conftest import ROOT, require, require_tool

SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.9.1.2", 8080)); s.listen(1)
c, _ = s.accept(); c.recv(100); c.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\nhello"); c.close()
"""
CLIENT = """
import socket
s = socket.create_connection(("10.96.0.10", 80), timeout=5)
s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n"); print(s.recv(100)); s.close()
"""


# Until every capture holds the connection's end: each FIN of the connection and the ACK of it
# (tcpdump reads the kernel's buffer on its own time; stopping it earlier loses the last packets).
CLOSED = """
import sys, time
from scapy.all import IP, TCP, rdpcap
def closed(path):
    try:
        segs = [p[TCP] for p in rdpcap(path) if IP in p and TCP in p]
    except Exception:                    # a record still being written
        return False
    def data(t):                         # the segment's payload length, from the IP header (no padding)
        return t.underlayer.len - 4 * t.underlayer.ihl - 4 * t.dataofs
    fins = [t for t in segs if t.flags.F]
    return len(fins) >= 2 and all(any(q.sport == f.dport and q.dport == f.sport and q.flags.A
                                      and q.ack == (f.seq + data(f) + 1) % 2**32 for q in segs) for f in fins)
deadline = time.monotonic() + 120
while not all(closed(p) for p in sys.argv[1:]):
    if time.monotonic() > deadline:
        sys.exit("the captures never held the connection's end: " + " ".join(sys.argv[1:]))
    time.sleep(0.1)
"""


def _script(out, py):
    # waits on conditions, never on the clock: a namespace exists once /proc says so, a tcpdump
    # listens once it says so, the server once ss lists its socket, the captures once they hold the end
    return f"""
set -e
ip link set lo up
unshare --net sleep infinity & C=$!
unshare --net sleep infinity & S=$!
trap 'kill $C $S 2>/dev/null || true' EXIT
until [ "$(readlink /proc/$C/ns/net)" != "$(readlink /proc/$$/ns/net)" ] \\
      && [ "$(readlink /proc/$S/ns/net)" != "$(readlink /proc/$$/ns/net)" ]; do sleep 0.05; done
ip link add r0 type veth peer name c0 netns $C
ip link add r1 type veth peer name s0 netns $S
ip addr add 10.9.0.1/24 dev r0; ip link set r0 up
ip addr add 10.9.1.1/24 dev r1; ip link set r1 up
sysctl -qw net.ipv4.ip_forward=1
nsenter -t $C -n sh -c 'ip link set lo up; ip addr add 10.9.0.2/24 dev c0; ip link set c0 up; ip route add default via 10.9.0.1'
nsenter -t $S -n sh -c 'ip link set lo up; ip addr add 10.9.1.2/24 dev s0; ip link set s0 up; ip route add default via 10.9.1.1'
iptables -t nat -N KUBE-SERVICES; iptables -t nat -N KUBE-SVC-TEST; iptables -t nat -N KUBE-SEP-TEST
iptables -t nat -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
iptables -t nat -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "web/front: cluster IP" -m tcp --dport 80 -j KUBE-SVC-TEST
iptables -t nat -A KUBE-SVC-TEST -j KUBE-SEP-TEST
iptables -t nat -A KUBE-SEP-TEST -p tcp -m tcp -j DNAT --to-destination 10.9.1.2:8080
iptables -t nat -A POSTROUTING -s 10.9.0.0/24 -o r1 -j MASQUERADE
nsenter -t $C -n tcpdump -i c0 -U --immediate-mode -w {out}/client-c0.pcap tcp 2>{out}/t1.err & P1=$!
tcpdump -i r0 -U --immediate-mode -w {out}/router-r0.pcap tcp 2>{out}/t2.err & P2=$!
tcpdump -i any -U --immediate-mode -w {out}/router-any.pcap tcp 2>{out}/t3.err & P3=$!
nsenter -t $S -n tcpdump -i s0 -U --immediate-mode -w {out}/server-s0.pcap tcp 2>{out}/t4.err & P4=$!
for e in t1 t2 t3 t4; do
    until grep -q "listening on" {out}/$e.err; do kill -0 $P1 $P2 $P3 $P4; sleep 0.05; done
done
nsenter -t $S -n {py} {out}/server.py & SV=$!
until nsenter -t $S -n ss -Hltn 'sport = :8080' | grep -q .; do kill -0 $SV; sleep 0.05; done
nsenter -t $C -n {py} {out}/client.py
wait $SV
{py} {out}/closed.py {out}/client-c0.pcap {out}/router-r0.pcap {out}/router-any.pcap {out}/server-s0.pcap
{py} -m coursekit collect -o {out}/state --node router
kill $P1 $P2 $P3 $P4; wait $P1 $P2 $P3 $P4 || true
rm -f {out}/t1.err {out}/t2.err {out}/t3.err {out}/t4.err
"""


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    require(os.geteuid() == 0, "creating network namespaces and nat rules needs root")
    for tool in ("unshare", "nsenter", "ip", "iptables", "tcpdump"):
        require_tool(tool)
    out = tmp_path_factory.mktemp("kernel")
    os.chmod(out, 0o777)                                  # tcpdump may drop privileges to its own user
    (out / "server.py").write_text(SERVER)
    (out / "client.py").write_text(CLIENT)
    (out / "closed.py").write_text(CLOSED)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run(["unshare", "--net", "sh", "-c", _script(out, sys.executable)], capture_output=True,
                       text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def test_the_kernels_walk_is_explained_with_the_rules_that_made_it(real):
    files = sorted(real.glob("*.pcap"))
    ex = explain(files, state=real / "state")
    assert len(ex.conversations) == 1, [c.title for c in ex.conversations]
    c = ex.conversations[0]
    assert c.title.startswith("TCP 10.9.0.2:") and c.title.endswith(" -> 10.96.0.10:80")
    assert c.service.startswith("web/front")
    syn = c.packets[0]
    assert syn.flow == "request" and syn.sightings[0].flags == 0x02
    # every place, in path order; the -i any file names its interfaces through the router's ip -d addr
    distinct = list(dict.fromkeys(syn.places))
    assert distinct == ["client c0", "router r0", "router r1", "server s0"], syn.places
    assert sorted(syn.places) == sorted(["client c0", "router r0", "router r0", "router r1", "server s0"])
    changes = {ch.kind: ch for step in syn.changes for ch in step}
    assert (changes["DNAT"].old, changes["DNAT"].new) == ("10.96.0.10:80", "10.9.1.2:8080")
    assert "router: -A KUBE-SEP-TEST -p tcp -m tcp -j DNAT --to-destination 10.9.1.2:8080" in changes["DNAT"].by
    assert changes["SNAT"].new.startswith("10.9.1.1:")                   # MASQUERADE: r1's address
    assert changes["SNAT"].by == ["router: -A POSTROUTING -s 10.9.0.0/24 -o r1 -j MASQUERADE"]
    assert (changes["TTL"].old, changes["TTL"].new) == ("64", "63")
    # the reply is rewritten back by the router's conntrack entry, which collect listed
    reply = next(p for p in c.packets if p.flow == "reply")
    back = {ch.kind: ch for step in reply.changes for ch in step}
    assert {"un-DNAT", "un-SNAT"} <= set(back)
    assert any("conntrack" in b and "dport=80" in b for b in back["un-DNAT"].by), back["un-DNAT"].by
    # every packet of the connection was seen at the client and at the server
    assert all({"client c0", "server s0"} <= set(p.places) for p in c.packets)
