"""kube-proxy in iptables mode (Kubernetes 1.14's ``proxier.go``), as rules.

Chain names are kube-proxy's own hashes (``servicePortChainName``,
``servicePortEndpointChainName``)::

    KUBE-SVC-<16>  base32(sha256("<ns>/<svc>:<portName>" + "tcp"))[:16]
    KUBE-SEP-<16>  base32(sha256("<ns>/<svc>:<portName>" + "tcp" + "<ip>:<port>"))[:16]

so ``default/kubernetes`` port ``https`` is ``KUBE-SVC-NPX46M4PTMTKRN6Y`` on
every cluster.  For each Service port: a ``KUBE-SERVICES`` rule for the
cluster IP (preceded by a ``KUBE-MARK-MASQ`` rule for off-cluster sources when
``clusterCIDR`` is set, or for everything with ``masqueradeAll``), one
``KUBE-SVC`` chain that spreads connections with ``-m statistic --mode random
--probability 1/(n-i)``, and one ``KUBE-SEP`` chain per endpoint that marks
hairpin traffic and DNATs.

Taught in: 05-the-service.
"""

from __future__ import annotations

import base64
import hashlib

from .netfilter import Rule

__all__ = ["service_chain", "endpoint_chain", "kube_proxy_rules", "kube_proxy_filter_rules", "service_port_name"]


def _hash16(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def service_port_name(namespace: str, name: str, port_name: str) -> str:
    """``ServicePortName.String()``: ``"<ns>/<name>:<portName>"``."""
    return f"{namespace}/{name}:{port_name}"


def service_chain(namespace: str, name: str, port_name: str, protocol: str = "TCP") -> str:
    """kube-proxy's ``KUBE-SVC-`` chain for a Service port.

    >>> service_chain("default", "kubernetes", "https")
    'KUBE-SVC-NPX46M4PTMTKRN6Y'
    """
    return "KUBE-SVC-" + _hash16(service_port_name(namespace, name, port_name) + protocol.lower())


def endpoint_chain(namespace: str, name: str, port_name: str, protocol: str, endpoint: str) -> str:
    """kube-proxy's ``KUBE-SEP-`` chain for one endpoint (``"ip:port"``)."""
    return "KUBE-SEP-" + _hash16(service_port_name(namespace, name, port_name) + protocol.lower() + endpoint)


def kube_proxy_rules(scenario) -> tuple[list[Rule], list[str]]:
    """kube-proxy's nat rules (the same on every node) and its chains."""
    kp = scenario.kube_proxy
    bit = 1 << kp.masquerade_bit
    # kube-proxy writes fmt.Sprintf("%#08x/%#08x"); the kernel stores numbers,
    # and iptables-save prints them back as 0x%x -- the form shown here.
    mark = f"0x{bit:x}/0x{bit:x}"
    drop = 1 << 15
    rules = [
        Rule("PREROUTING", "KUBE-SERVICES", comment="kubernetes service portals", owner="kube-proxy"),
        Rule("OUTPUT", "KUBE-SERVICES", comment="kubernetes service portals", owner="kube-proxy"),
        Rule("POSTROUTING", "KUBE-POSTROUTING", comment="kubernetes postrouting rules", owner="kube-proxy"),
        Rule("KUBE-MARK-DROP", "MARK", target_args=f"--set-xmark 0x{drop:x}/0x{drop:x}", owner="kube-proxy"),
        Rule("KUBE-MARK-MASQ", "MARK", target_args=f"--set-xmark {mark}", owner="kube-proxy"),
        Rule("KUBE-POSTROUTING", "MASQUERADE", comment="kubernetes service traffic requiring SNAT",
             mark=mark, owner="kube-proxy"),
    ]
    chains = ["KUBE-MARK-DROP", "KUBE-MARK-MASQ", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-SERVICES"]
    from .faults import service_endpoints
    for svc in sorted(scenario.services, key=lambda s: (s.namespace, s.name)):
        eps = service_endpoints(scenario, svc)
        for sp in svc.ports:
            if not eps:
                continue         # proxier.go: no KUBE-SVC chain; a filter REJECT (kube_proxy_filter_rules)
            spn = service_port_name(svc.namespace, svc.name, sp.name)
            proto = sp.protocol.lower()
            svc_chain = service_chain(svc.namespace, svc.name, sp.name, sp.protocol)
            chains.append(svc_chain)
            cip = f"{svc.cluster_ip}/32"
            common = dict(dst=cip, proto=proto, comment=f"{spn} cluster IP", dport=sp.port, owner="kube-proxy")
            if kp.masquerade_all:
                rules.append(Rule("KUBE-SERVICES", "KUBE-MARK-MASQ", **common))
            elif kp.cluster_cidr is not None:
                rules.append(Rule("KUBE-SERVICES", "KUBE-MARK-MASQ", src=str(kp.cluster_cidr), src_neg=True,
                                  **common))
            rules.append(Rule("KUBE-SERVICES", svc_chain, **common))
            if sp.node_port is not None:
                # proxier.go: NodePort traffic is always marked for SNAT (the service is not OnlyLocal)
                npc = dict(proto=proto, comment=spn, dport=sp.node_port, owner="kube-proxy")
                rules.append(Rule("KUBE-NODEPORTS", "KUBE-MARK-MASQ", **npc))
                rules.append(Rule("KUBE-NODEPORTS", svc_chain, **npc))
            n = len(eps)
            for i, ep in enumerate(eps):
                epstr = f"{ep.ip}:{sp.target_port}"
                sep = endpoint_chain(svc.namespace, svc.name, sp.name, sp.protocol, epstr)
                chains.append(sep)
                prob = 1.0 / (n - i) if i < n - 1 else None
                # kube-proxy writes "%0.5f"; the kernel keeps that value.
                rules.append(Rule(svc_chain, sep, probability=float(f"{prob:0.5f}") if prob else None,
                                  owner="kube-proxy"))
                rules.append(Rule(sep, "KUBE-MARK-MASQ", src=f"{ep.ip}/32", comment=spn, owner="kube-proxy"))
                rules.append(Rule(sep, "DNAT", proto=proto, comment=spn, target_args=f"--to-destination {epstr}",
                                  owner="kube-proxy"))
    rules.append(Rule("KUBE-SERVICES", "KUBE-NODEPORTS",
                      comment="kubernetes service nodeports; NOTE: this must be the last rule in this chain",
                      addrtype_local=True, owner="kube-proxy"))
    return rules, chains


def kube_proxy_filter_rules(scenario) -> list[Rule]:
    """kube-proxy 1.14's filter-table rules: its jumps (``iptablesJumpChains``, prepended) and a REJECT for
    every Service port without endpoints (``"%s has no endpoints"``, ``-j REJECT``: iptables' default
    ``--reject-with icmp-port-unreachable``).  ``KUBE-FORWARD`` is :func:`coursekit.netfilter.filter_table`'s.

    Taught in: 09-when-it-breaks.
    """
    from .faults import service_endpoints
    new = dict(ctstate="NEW", ct_first=True, owner="kube-proxy")
    rules = [Rule("INPUT", "KUBE-SERVICES", comment="kubernetes service portals", **new),
             Rule("INPUT", "KUBE-EXTERNAL-SERVICES", comment="kubernetes externally-visible service portals", **new),
             Rule("OUTPUT", "KUBE-SERVICES", comment="kubernetes service portals", **new)]
    for svc in sorted(scenario.services, key=lambda s: (s.namespace, s.name)):
        if service_endpoints(scenario, svc):
            continue
        for sp in svc.ports:
            spn = service_port_name(svc.namespace, svc.name, sp.name)
            rules.append(Rule("KUBE-SERVICES", "REJECT", dst=f"{svc.cluster_ip}/32", proto=sp.protocol.lower(),
                              comment=f"{spn} has no endpoints", dport=sp.port,
                              target_args="--reject-with icmp-port-unreachable", owner="kube-proxy"))
    return rules
