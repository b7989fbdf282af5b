"""netfilter's nat table and conntrack, as data.

A :class:`Rule` is one line of ``iptables-save -t nat``; :func:`nat_table`
builds a node's whole nat table from the scenario -- kube-proxy's chains
(:mod:`coursekit.kubeproxy`), Docker's ``MASQUERADE`` rule and, when enabled,
flannel's ``-ip-masq`` rules -- and :func:`traverse` walks a packet's 5-tuple
through a hook (PREROUTING, OUTPUT, POSTROUTING) the way the kernel does:
rules in order, jumps into user chains, RETURN, the first NAT target wins.

nat rules see only the *first* packet of a connection.  That packet creates a
:class:`Conntrack` entry holding the original and the reply tuple; every
later packet of either direction is rewritten from that entry alone (the
reply is "un-NATed": ``nf_nat_packet`` inverts the manipulation for the reply
direction).  That is why the reply from nginx reaches busybox with source
10.254.40.119:4432 although no rule mentions it.

Taught in: 05-the-service, 02-flannel (MASQUERADE).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

from .errors import public

__all__ = ["Rule", "Tuple5", "Verdict", "Conntrack", "nat_table", "traverse",
           "iptables_save", "masquerade_source"]


@dataclass(frozen=True)
class Tuple5:
    """What NAT rewrites: protocol, source and destination address and port."""
    proto: str
    src: ipaddress.IPv4Address
    sport: int
    dst: ipaddress.IPv4Address
    dport: int

    def __str__(self) -> str:
        return f"{self.src}:{self.sport} -> {self.dst}:{self.dport}"

    def inverted(self) -> "Tuple5":
        return Tuple5(self.proto, self.dst, self.dport, self.src, self.sport)


@dataclass(frozen=True)
class Rule:
    """One ``-A CHAIN ...`` line of a nat table.

    Only the matches the course's datapath needs are modelled; each renders
    exactly as ``iptables-save`` prints it.
    """
    chain: str
    target: str
    src: str | None = None            # "172.30.0.0/16"
    src_neg: bool = False
    dst: str | None = None
    dst_neg: bool = False
    in_if: str | None = None
    out_if: str | None = None
    out_neg: bool = False
    proto: str | None = None          # "tcp"
    comment: str | None = None
    dport: int | None = None
    probability: float | None = None  # -m statistic --mode random
    mark: str | None = None           # -m mark --mark 0x4000/0x4000
    addrtype_local: bool = False      # -m addrtype --dst-type LOCAL
    target_args: str = ""             # "--to-destination 172.30.20.2:80"
    owner: str = ""                   # who installs it: kube-proxy, docker, flannel

    def save(self) -> str:
        """The line as ``iptables-save`` prints it (iptables 1.8, either backend)."""
        p = [f"-A {self.chain}"]
        if self.src:
            p.append(("! " if self.src_neg else "") + f"-s {self.src}")
        if self.dst:
            p.append(("! " if self.dst_neg else "") + f"-d {self.dst}")
        if self.in_if:
            p.append(f"-i {self.in_if}")
        if self.out_if:
            p.append(("! " if self.out_neg else "") + f"-o {self.out_if}")
        if self.proto:
            p.append(f"-p {self.proto}")
        if self.comment is not None:
            p.append(f'-m comment --comment "{self.comment}"')
        if self.proto and (self.dport is not None or self.target == "DNAT"):
            p.append(f"-m {self.proto}" + (f" --dport {self.dport}" if self.dport is not None else ""))
        if self.mark:
            p.append(f"-m mark --mark {self.mark}")
        if self.addrtype_local:
            p.append("-m addrtype --dst-type LOCAL")
        if self.probability is not None:
            # The kernel stores the probability as a 31-bit fraction;
            # iptables-save prints it back with %.11f.
            stored = int(self.probability * 0x80000000) / 0x80000000
            p.append(f"-m statistic --mode random --probability {stored:.11f}")
        p.append(f"-j {self.target}" + (f" {self.target_args}" if self.target_args else ""))
        return " ".join(p)

    # --- matching ----------------------------------------------------------
    def matches(self, t: Tuple5, out_if: str | None, in_if: str | None, marks: int,
                local: set[ipaddress.IPv4Address]) -> bool:
        def inside(addr, net):
            return addr in ipaddress.IPv4Network(net, strict=False)
        if self.src and inside(t.src, self.src) == self.src_neg:
            return False
        if self.dst and inside(t.dst, self.dst) == self.dst_neg:
            return False
        if self.in_if and in_if != self.in_if:
            return False
        if self.out_if and (out_if == self.out_if) == self.out_neg:
            return False
        if self.proto and t.proto != self.proto:
            return False
        if self.dport is not None and t.dport != self.dport:
            return False
        if self.mark:
            value, mask = (int(x, 16) for x in self.mark.split("/"))
            if marks & mask != value:
                return False
        if self.addrtype_local and t.dst not in local:
            return False
        return True


@dataclass(frozen=True)
class Verdict:
    """What one hook did to the first packet of a connection."""
    tuple: Tuple5
    marks: int
    trace: tuple[str, ...]             # every rule that matched, in order (iptables-save text)
    nat: str | None = None             # "DNAT" / "MASQUERADE"
    rule: Rule | None = None           # the rule that rewrote the tuple


@dataclass
class Conntrack:
    """One connection-tracking entry (``conntrack -L`` shows it)."""
    orig: Tuple5
    reply: Tuple5
    node: str
    nat: list[str] = field(default_factory=list)

    @property
    def dnat(self) -> bool:
        return self.reply.src != self.orig.dst or self.reply.sport != self.orig.dport

    @property
    def snat(self) -> bool:
        return self.reply.dst != self.orig.src or self.reply.dport != self.orig.sport

    def is_orig(self, t: Tuple5) -> bool:
        """Does a packet travel in the connection's original direction?

        NAT rewrites the destination before routing and the source after it,
        so until POSTROUTING the source still identifies the direction.
        """
        return (t.src, t.sport) == (self.orig.src, self.orig.sport)

    def translate(self, t: Tuple5, hook: str) -> Tuple5:
        """Rewrite a packet of the connection at a hook, from this entry alone.

        Original direction: the destination becomes the reply's source
        (before routing), the source becomes the reply's destination (after
        routing).  Reply direction: the inverse -- the "un-NAT".
        """
        pre = hook in ("PREROUTING", "OUTPUT")
        if self.is_orig(t):
            return replace(t, dst=self.reply.src, dport=self.reply.sport) if pre else \
                replace(t, src=self.reply.dst, sport=self.reply.dport)
        return replace(t, dst=self.orig.src, dport=self.orig.sport) if pre else \
            replace(t, src=self.orig.dst, sport=self.orig.dport)

    def conntrack_l(self, state: str = "ESTABLISHED", timeout: int = 431999) -> str:
        """The entry as ``conntrack -L`` prints it."""
        o, r = self.orig, self.reply
        # Before the first reply the entry is [UNREPLIED] (printed between the
        # tuples); once the handshake completes it is [ASSURED] (after them).
        unreplied = state == "SYN_SENT"
        return (f"{o.proto:<8} {6 if o.proto == 'tcp' else 17} {timeout} {state} "
                f"src={o.src} dst={o.dst} sport={o.sport} dport={o.dport} "
                + ("[UNREPLIED] " if unreplied else "")
                + f"src={r.src} dst={r.dst} sport={r.sport} dport={r.dport} "
                + ("" if unreplied else "[ASSURED] ") + "mark=0 use=1")


def masquerade_source(out_if_addr: ipaddress.IPv4Address, t: Tuple5) -> Tuple5:
    """MASQUERADE: the source becomes the egress interface's address.

    ``nf_nat_masquerade_ipv4`` takes ``inet_select_addr(out, nh, RT_SCOPE_UNIVERSE)``;
    the source port is kept unless it clashes with another connection.
    """
    return replace(t, src=out_if_addr)


_BUILTIN = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")


def traverse(rules: list[Rule], hook: str, t: Tuple5, *, out_if: str | None = None,
             in_if: str | None = None, marks: int = 0, local: set | None = None,
             pick: int = 0, masq_addr: ipaddress.IPv4Address | None = None) -> Verdict:
    """Walk the first packet of a connection through one nat hook.

    ``pick`` stands in for the kernel's random numbers in
    ``-m statistic --mode random``: kube-proxy gives endpoint *i* of *n* the
    probability 1/(n-i) (so each is equally likely overall); which one a
    connection got is an observation, so the walk takes its index: the
    ``pick``-th statistic rule of a chain matches, the ones before it do not,
    and past the last one the unconditional rule catches the packet.
    """
    local = local or set()
    trace: list[str] = []
    by_chain: dict[str, list[Rule]] = {}
    for r in rules:
        by_chain.setdefault(r.chain, []).append(r)

    def run(chain: str, t: Tuple5, marks: int, depth: int = 0):
        stat_seen = 0
        for r in by_chain.get(chain, []):
            lucky = True
            if r.probability is not None:
                lucky = stat_seen == pick
                stat_seen += 1
            if not (lucky and r.matches(t, out_if, in_if, marks, local)):
                continue
            trace.append(r.save())
            if r.target == "RETURN":
                return t, marks, None, None
            if r.target == "MARK":
                _, arg = r.target_args.split(" ", 1)
                value, mask = (int(x, 16) for x in arg.split("/"))
                marks = (marks & ~mask) ^ value if "--set-xmark" in r.target_args else marks | value
                continue
            if r.target == "DNAT":
                ip, port = r.target_args.split()[-1].split(":")
                return replace(t, dst=ipaddress.IPv4Address(ip), dport=int(port)), marks, "DNAT", r
            if r.target == "MASQUERADE":
                if masq_addr is None:
                    raise ValueError("MASQUERADE needs the egress interface's address")
                return masquerade_source(masq_addr, t), marks, "MASQUERADE", r
            if r.target in by_chain or r.target.startswith(("KUBE-", "DOCKER", "FLANNEL")):
                nt, marks, nat, rule = run(r.target, t, marks, depth + 1)
                if nat:
                    return nt, marks, nat, rule
                continue
        return t, marks, None, None

    nt, marks, nat, rule = run(hook, t, marks)
    return Verdict(tuple=nt, marks=marks, trace=tuple(trace), nat=nat, rule=rule)


def iptables_save(rules: list[Rule], chains: list[str]) -> str:
    """The nat table as ``iptables-save -t nat`` prints it (counters zero, no header comments)."""
    lines = ["*nat"]
    for c in _BUILTIN:
        lines.append(f":{c} ACCEPT [0:0]")
    for c in sorted(set(chains) - set(_BUILTIN)):
        lines.append(f":{c} - [0:0]")
    order = list(_BUILTIN) + sorted(set(chains) - set(_BUILTIN))
    for c in order:
        lines.extend(r.save() for r in rules if r.chain == c)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def nat_table(scenario, node: str) -> tuple[list[Rule], list[str]]:
    """Every nat rule on ``node``, in order, and the user chains that exist."""
    from .kubeproxy import kube_proxy_rules
    n = scenario.node(node)
    rules: list[Rule] = []
    kp_rules, kp_chains = kube_proxy_rules(scenario)
    # kube-proxy prepends its jumps (EnsureRule(Prepend)), so they come first.
    rules += [r for r in kp_rules if r.chain in _BUILTIN]
    # Docker (libnetwork setupIPTablesInternal / bridge driver)
    rules.append(Rule("PREROUTING", "DOCKER", addrtype_local=True, owner="docker"))
    rules.append(Rule("OUTPUT", "DOCKER", dst="127.0.0.0/8", dst_neg=True, addrtype_local=True, owner="docker"))
    if n.docker.ip_masq:
        rules.append(Rule("POSTROUTING", "MASQUERADE", src=str(n.subnet), out_if="docker0", out_neg=True,
                          owner="docker"))
    if scenario.flannel.ip_masq:
        net, sn = str(scenario.flannel.network), str(n.subnet)
        rules += [
            Rule("POSTROUTING", "RETURN", src=net, dst=net, owner="flannel"),
            Rule("POSTROUTING", "MASQUERADE", src=net, dst="224.0.0.0/4", dst_neg=True, owner="flannel"),
            Rule("POSTROUTING", "RETURN", src=net, src_neg=True, dst=sn, owner="flannel"),
            Rule("POSTROUTING", "MASQUERADE", src=net, src_neg=True, dst=net, owner="flannel"),
        ]
    rules.append(Rule("DOCKER", "RETURN", in_if="docker0", owner="docker"))
    rules += [r for r in kp_rules if r.chain not in _BUILTIN]
    return rules, kp_chains + ["DOCKER"]


@public
def nat_save(scenario, node: str) -> str:
    """``iptables-save -t nat`` on ``node``, as the model builds it.

    ``scenario``: anything :func:`~coursekit.scenario.as_scenario` accepts.

    Taught in: 05-the-service.
    """
    from .scenario import as_scenario
    scenario = as_scenario(scenario)
    rules, chains = nat_table(scenario, node)
    return iptables_save(rules, chains)


# --------------------------------------------------------------------------
# Hook order: which tables run where, in which order
# --------------------------------------------------------------------------

#: ``include/uapi/linux/netfilter_ipv4.h`` ``NF_IP_PRI_*``: at one hook, lower runs first.
NF_IP_PRI = {"raw": -300, "conntrack": -200, "mangle": -150, "nat (DNAT)": -100, "filter": 0,
             "security": 50, "nat (SNAT)": 100, "conntrack confirm": 2**31 - 1}

#: The IPv4 hooks with the tables (and conntrack) registered on each, in priority
#: order: raw and conntrack on PREROUTING/OUTPUT (``ipv4_conntrack_in``/``_local``),
#: nat's destination half on PREROUTING/OUTPUT and its source half on
#: INPUT/POSTROUTING, conntrack's confirmation last on INPUT and POSTROUTING
#: (``ipv4_confirm``).  nat chains are consulted for a connection's first packet only.
HOOK_TABLES = {
    "PREROUTING": ("raw", "conntrack", "mangle", "nat (DNAT)"),
    "INPUT": ("mangle", "filter", "security", "nat (SNAT)", "conntrack confirm"),
    "FORWARD": ("mangle", "filter", "security"),
    "OUTPUT": ("raw", "conntrack", "mangle", "nat (DNAT)", "filter", "security"),
    "POSTROUTING": ("mangle", "nat (SNAT)", "conntrack confirm"),
}


def hook_order(hook: str) -> list[tuple[str, int]]:
    """The tables at one IPv4 hook with their priorities, in the order the kernel runs them.

    >>> hook_order("PREROUTING")
    [('raw', -300), ('conntrack', -200), ('mangle', -150), ('nat (DNAT)', -100)]

    Taught in: 03-docker0, 05-the-service.
    """
    from .errors import CourseError
    if hook not in HOOK_TABLES:
        raise CourseError("hook", f"unknown hook {hook!r}", ", ".join(HOOK_TABLES))
    return sorted(((t, NF_IP_PRI[t]) for t in HOOK_TABLES[hook]), key=lambda x: x[1])
