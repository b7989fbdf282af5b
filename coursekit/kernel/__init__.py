"""A kernel-faithful datapath: the scenario as namespaces and devices, routed as Linux does.

::

    kernel/
      frame.py      bytes: offsets, incremental checksums (RFC 1624), VXLAN encapsulation
      hooks.py      netfilter hooks as data (priority order), nat via coursekit.netfilter, conntrack table
      devices.py    veth, bridge (FDB, flooding, br_netfilter), VXLAN (FDB, encap), NIC and the wire
      namespace.py  the IP layer: receive, forward, local delivery, output, neighbours/ARP
      topology.py   the scenario -> namespaces and devices (tables from routing/netfilter/kubeproxy)
      engine.py     the walk loop: sockets send, devices hand frames on, observations and drops

Each module imports only from those above it (and from the course's
table-owning modules: routing, netfilter, kubeproxy, vxlan, conversation).

Taught in: 06-the-whole-walk.
"""

from .engine import Drop, Net, walk

__all__ = ["Drop", "Net", "walk"]
