"""A kernel-faithful datapath: the scenario as namespaces and devices, routed as Linux does.

::

    kernel/
      frame.py      bytes: offsets, incremental checksums (RFC 1624), TCP frames, VXLAN encapsulation
      hooks.py      netfilter hooks as data (priority order): conntrack, nat and filter tables
                    (rules from coursekit.netfilter/kubeproxy), confirm; the conntrack table
      devices.py    veth, bridge (FDB learning, flooding, hairpin, br_netfilter incl. bridged DNAT),
                    VXLAN (FDB, encapsulation through the host's routing), NIC and the underlay wire
      namespace.py  the IP layer: receive, forward (TTL, MTU/DF, FORWARD), local delivery (VXLAN
                    socket: decapsulation by port and VNI), output (route, source address, OUTPUT,
                    reroute after DNAT), neighbours and ARP
      topology.py   the scenario -> namespaces and devices (nodes, pods, external hosts)
      engine.py     the walk loop: sockets send, devices hand frames on; observations, drops, RST
      dns.py        traffic case 6: the resolver's queries and CoreDNS's answers, walked before the request

Drops are outcomes with reasons (``Walk.drops``): no route, neighbour
unresolved, TTL expired, DF larger than the egress MTU, FORWARD policy DROP,
no VXLAN FDB entry, unknown VNI, hairpin off, no socket (answered by RST).

Each module imports only from those above it (and from the course's
table-owning modules: routing, netfilter, kubeproxy, vxlan, conversation).

Taught in: 06-the-whole-walk.
"""

from .engine import Drop, Net, walk

__all__ = ["Drop", "Net", "walk"]
