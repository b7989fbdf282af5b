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

import functools
import ipaddress
from dataclasses import dataclass, field, replace

from .errors import public

__all__ = ["Rule", "Tuple5", "Verdict", "Conntrack", "nat_table", "traverse", "conntrack_entry", "conntrack_history",
           "tcp_track", "tcp_transition", "fill_conntrack_entries", "CONNTRACK_PENDING", "KERNEL_TCP_TIMEOUTS",
           "KUBE_PROXY_TCP_TIMEOUTS", "iptables_save", "masquerade_source", "explain_rule", "nat_explained",
           "filter_table", "filter_verdict", "FilterVerdict", "filter_save"]


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
    ctstate: str | None = None        # -m conntrack --ctstate RELATED,ESTABLISHED
    target_args: str = ""             # "--to-destination 172.30.20.2:80"
    owner: str = ""                   # who installs it: kube-proxy, docker, flannel
    ct_first: bool = False            # -m conntrack given before -m comment (kube-proxy's jump rules' extraArgs)

    def save(self) -> str:
        """The line as ``iptables-save`` prints it (iptables 1.8, either backend)."""
        return _save_line(self)

    def _save(self) -> str:
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
        if self.ctstate and self.ct_first:
            p.append(f"-m conntrack --ctstate {self.ctstate}")
        if self.comment is not None:
            p.append(f'-m comment --comment "{self.comment}"')
        if self.proto and (self.dport is not None or self.target == "DNAT"):
            p.append(f"-m {self.proto}" + (f" --dport {self.dport}" if self.dport is not None else ""))
        if self.mark:
            p.append(f"-m mark --mark {self.mark}")
        if self.ctstate and not self.ct_first:
            p.append(f"-m conntrack --ctstate {self.ctstate}")
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
                local: set[ipaddress.IPv4Address], ctstate: str | None = None) -> bool:
        def inside(addr, net):
            return addr in _network(net)
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
        if self.ctstate and ctstate not in self.ctstate.split(","):
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
            return Tuple5(t.proto, t.src, t.sport, self.reply.src, self.reply.sport) if pre else \
                Tuple5(t.proto, self.reply.dst, self.reply.dport, t.dst, t.dport)
        return Tuple5(t.proto, t.src, t.sport, self.orig.src, self.orig.sport) if pre else \
            Tuple5(t.proto, self.orig.dst, self.orig.dport, t.dst, t.dport)

    def conntrack_l(self, state: str | None = None, timeout: int | None = None, *,
                    unreplied: bool | None = None, assured: bool | None = None, mark: int = 0, use: int = 1) -> str:
        """The entry as ``conntrack -L`` (conntrack-tools 1.4) prints it.

        ``[UNREPLIED]`` sits between the tuples until a reply-direction packet
        has been seen; ``[ASSURED]`` follows them once the kernel set the bit.
        :func:`conntrack_entry` works all of these out from the conversation.
        Called without them (as a walk does while the conversation is still
        being built), it returns :data:`CONNTRACK_PENDING`, which
        :func:`fill_conntrack_entries` replaces once every moment is known.
        """
        if state is None or timeout is None or unreplied is None or assured is None:
            return CONNTRACK_PENDING
        o, r = self.orig, self.reply
        return (f"{o.proto:<8} {6 if o.proto == 'tcp' else 17} {timeout} {state} "
                f"src={o.src} dst={o.dst} sport={o.sport} dport={o.dport} "
                + ("[UNREPLIED] " if unreplied else "")
                + f"src={r.src} dst={r.dst} sport={r.sport} dport={r.dport} "
                + ("[ASSURED] " if assured else "") + f"mark={mark} use={use}")


#: A conntrack decision's entry before the walk is complete (the state depends on
#: the order in which the node sees every segment); see fill_conntrack_entries.
CONNTRACK_PENDING = "(conntrack entry)"


def masquerade_source(out_if_addr: ipaddress.IPv4Address, t: Tuple5) -> Tuple5:
    """MASQUERADE: the source becomes the egress interface's address.

    ``nf_nat_masquerade_ipv4`` takes ``inet_select_addr(out, nh, RT_SCOPE_UNIVERSE)``;
    the source port is kept unless it clashes with another connection.
    """
    return replace(t, src=out_if_addr)


@functools.lru_cache(maxsize=4096)
def _save_line(rule: Rule) -> str:
    """``Rule.save``, built once per rule (the walk prints the rules each packet matches)."""
    return rule._save()


@functools.lru_cache(maxsize=1024)
def _network(text: str) -> ipaddress.IPv4Network:
    """A rule's ``-s``/``-d`` operand, parsed once (rules are matched for every packet at FORWARD)."""
    return ipaddress.IPv4Network(text, strict=False)


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


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.lstrip("v").split("."))


def filter_table(scenario, node: str) -> tuple[list[Rule], dict[str, str]]:
    """The filter table on ``node``: its rules, in order, and the built-in chains' policies.

    * Docker (>= 1.13 sets ``FORWARD`` to ``DROP``; the chains of Docker
      18.09, libnetwork 2019, assumed: the article does not say which Docker
      ran): ``DOCKER-USER``, ``DOCKER-ISOLATION-STAGE-1/2``, ``DOCKER`` and
      the ``docker0`` rules.
    * flannel >= v0.9.1 (``network.ForwardRules``): ``-s <network> -j ACCEPT``
      and ``-d <network> -j ACCEPT``, appended -- what lets a new connection
      from another node's pod out of ``flannel.1`` into ``docker0``.
    * kube-proxy 1.14: ``KUBE-FORWARD``, prepended: marked packets, and
      established ones to or from the cluster CIDR.
    """
    kp = scenario.kube_proxy
    bit = 1 << kp.masquerade_bit
    mark = f"0x{bit:x}/0x{bit:x}"
    rules = [Rule("FORWARD", "KUBE-FORWARD", comment="kubernetes forwarding rules", owner="kube-proxy"),
             Rule("FORWARD", "KUBE-SERVICES", comment="kubernetes service portals", ctstate="NEW", ct_first=True,
                  owner="kube-proxy"),
             Rule("FORWARD", "DOCKER-USER", owner="docker"),
             Rule("FORWARD", "DOCKER-ISOLATION-STAGE-1", owner="docker"),
             Rule("FORWARD", "ACCEPT", out_if="docker0", ctstate="RELATED,ESTABLISHED", owner="docker"),
             Rule("FORWARD", "DOCKER", out_if="docker0", owner="docker"),
             Rule("FORWARD", "ACCEPT", in_if="docker0", out_if="docker0", out_neg=True, owner="docker"),
             Rule("FORWARD", "ACCEPT", in_if="docker0", out_if="docker0", owner="docker")]
    if _version(scenario.flannel.version) >= (0, 9, 1):
        net = str(scenario.flannel.network)
        rules += [Rule("FORWARD", "ACCEPT", src=net, owner="flannel"), Rule("FORWARD", "ACCEPT", dst=net, owner="flannel")]
    rules += [Rule("DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", in_if="docker0", out_if="docker0",
                   out_neg=True, owner="docker"),
              Rule("DOCKER-ISOLATION-STAGE-1", "RETURN", owner="docker"),
              Rule("DOCKER-ISOLATION-STAGE-2", "DROP", out_if="docker0", owner="docker"),
              Rule("DOCKER-ISOLATION-STAGE-2", "RETURN", owner="docker"),
              Rule("DOCKER-USER", "RETURN", owner="docker"),
              Rule("KUBE-FORWARD", "ACCEPT", comment="kubernetes forwarding rules", mark=mark, owner="kube-proxy")]
    if kp.cluster_cidr is not None:
        cc = str(kp.cluster_cidr)
        rules += [Rule("KUBE-FORWARD", "ACCEPT", src=cc, comment="kubernetes forwarding conntrack pod source rule",
                       ctstate="RELATED,ESTABLISHED", owner="kube-proxy"),
                  Rule("KUBE-FORWARD", "ACCEPT", dst=cc, comment="kubernetes forwarding conntrack pod destination rule",
                       ctstate="RELATED,ESTABLISHED", owner="kube-proxy")]
    from .faults import input_rules
    rules = input_rules(scenario, node) + rules            # a fault scenario's host firewall rule (-I INPUT)
    from .kubeproxy import kube_proxy_filter_rules
    rules += kube_proxy_filter_rules(scenario)
    return rules, {"INPUT": "ACCEPT", "FORWARD": "DROP", "OUTPUT": "ACCEPT"}


@dataclass(frozen=True)
class FilterVerdict:
    verdict: str                       # ACCEPT or DROP
    trace: tuple[str, ...]             # every rule that matched, then "-P CHAIN POLICY" if the policy decided


def filter_verdict(rules: list[Rule], policies: dict, hook: str, t: Tuple5, *, in_if=None, out_if=None,
                   marks: int = 0, ctstate: str = "NEW") -> FilterVerdict:
    """Walk a packet through one chain of the filter table: the first ACCEPT or DROP wins, else the policy.

    ``rules``: the table's rules in order, or already grouped ``{chain: [rules]}``.
    """
    if isinstance(rules, dict):
        by_chain = rules
    else:
        by_chain = {}
        for r in rules:
            by_chain.setdefault(r.chain, []).append(r)
    trace: list[str] = []

    def run(chain: str, depth: int = 0) -> str | None:
        for r in by_chain.get(chain, []):
            if not r.matches(t, out_if, in_if, marks, set(), ctstate):
                continue
            trace.append(r.save())
            if r.target in ("ACCEPT", "DROP", "REJECT"):
                return r.target
            if r.target == "RETURN":
                return None
            if depth < 16 and r.target in by_chain:        # a jump; an empty user chain (DOCKER) returns at once
                v = run(r.target, depth + 1)
                if v:
                    return v
        return None

    v = run(hook)
    if v is None:
        v = policies.get(hook, "ACCEPT")
        trace.append(f"-P {hook} {v}")
    return FilterVerdict(v, tuple(trace))


def filter_save(scenario, node: str) -> str:
    """``iptables-save -t filter`` on ``node``, as the model builds it."""
    rules, policies = filter_table(scenario, node)
    builtin = ("INPUT", "FORWARD", "OUTPUT")
    user = sorted(({r.chain for r in rules} | {r.target for r in rules if r.target.startswith(("DOCKER", "KUBE-"))})
                  - set(builtin))
    lines = ["*filter"] + [f":{c} {policies.get(c, 'ACCEPT')} [0:0]" for c in builtin]
    lines += [f":{c} - [0:0]" for c in user]
    for c in list(builtin) + user:
        lines.extend(r.save() for r in rules if r.chain == c)
    return "\n".join(lines + ["COMMIT"]) + "\n"


# --- TCP connection tracking: the kernel's state machine ----------------------
#
# net/netfilter/nf_conntrack_proto_tcp.c (the same table from Linux 3.10 to 6.x):
# tcp_conntrack_names[], tcp_timeouts[] and tcp_conntracks[dir][index][state].

TCP_STATES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
              "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2")

#: tcp_timeouts[] in seconds: the kernel's defaults (sysctl net.netfilter.nf_conntrack_tcp_timeout_*)
KERNEL_TCP_TIMEOUTS = {"SYN_SENT": 120, "SYN_RECV": 60, "ESTABLISHED": 5 * 24 * 3600, "FIN_WAIT": 120,
                       "CLOSE_WAIT": 60, "LAST_ACK": 30, "TIME_WAIT": 120, "CLOSE": 10, "SYN_SENT2": 120,
                       "RETRANS": 300, "UNACK": 300}

#: What kube-proxy 1.14 writes over them at start-up (cmd/kube-proxy/app/server.go, "Tune conntrack";
#: defaults in pkg/proxy/apis/config/v1alpha1/defaults.go: --conntrack-tcp-timeout-established=24h,
#: --conntrack-tcp-timeout-close-wait=1h).
KUBE_PROXY_TCP_TIMEOUTS = {**KERNEL_TCP_TIMEOUTS, "ESTABLISHED": 24 * 3600, "CLOSE_WAIT": 3600}

# tcp_conntracks[dir][index][old state]; columns sNO sSS sSR sES sFW sCW sLA sTW sCL sS2;
# "IV" = invalid (state unchanged, packet not tracked), "IG" = ignored (state unchanged).
_ROWS = ("syn", "synack", "fin", "ack", "rst", "none")
_TABLE = {
    "ORIGINAL": {
        "syn":    "SS SS IG IG IG IG IG SS SS S2",
        "synack": "IV IV SR IV IV IV IV IV IV SR",
        "fin":    "IV IV FW FW LA LA LA TW CL IV",
        "ack":    "ES IV ES ES CW CW TW TW CL IV",
        "rst":    "IV CL CL CL CL CL CL CL CL CL",
        "none":   "IV IV IV IV IV IV IV IV IV IV",
    },
    "REPLY": {
        "syn":    "IV S2 IV IV IV IV IV SS IV S2",
        "synack": "IV SR IG IG IG IG IG IG IG SR",
        "fin":    "IV IV FW FW LA LA LA TW CL IV",
        "ack":    "IV IG SR ES CW CW TW TW CL IG",
        "rst":    "IV CL CL CL CL CL CL CL CL CL",
        "none":   "IV IV IV IV IV IV IV IV IV IV",
    },
}
_ABBR = {"NO": "NONE", "SS": "SYN_SENT", "SR": "SYN_RECV", "ES": "ESTABLISHED", "FW": "FIN_WAIT",
         "CW": "CLOSE_WAIT", "LA": "LAST_ACK", "TW": "TIME_WAIT", "CL": "CLOSE", "S2": "SYN_SENT2",
         "IV": None, "IG": None}
_M32 = 0xFFFFFFFF


def tcp_transition(direction: str, flags: int, state: str) -> str | None:
    """``tcp_conntracks[dir][get_conntrack_index(th)][state]``: the next state, or None (invalid/ignored).

    >>> tcp_transition("REPLY", 0x01 | 0x10, "ESTABLISHED")      # nginx's FIN
    'FIN_WAIT'
    """
    syn, ack, fin, rst = flags & 0x02, flags & 0x10, flags & 0x01, flags & 0x04
    row = "rst" if rst else ("synack" if syn and ack else "syn") if syn else "fin" if fin else "ack" if ack else "none"
    return _ABBR[_TABLE[direction][row].split()[TCP_STATES.index(state)]]


@dataclass(frozen=True)
class TcpTrackStep:
    """What one segment did to a node's conntrack entry (``nf_conntrack_tcp_packet``)."""
    segment: int
    time_us: int            # when the node's conntrack saw it
    direction: str          # ORIGINAL or REPLY
    old: str
    new: str
    timeout: int            # seconds the entry now has to live
    why: str                # which timeout the kernel picked, and why
    unreplied: bool         # IPS_SEEN_REPLY not yet set
    assured: bool           # IPS_ASSURED set


def _after(a: int, b: int) -> bool:
    """The kernel's ``after(a, b)`` on 32-bit sequence numbers."""
    return 0 < ((a - b) & _M32) < 0x80000000


def tcp_track(events, timeouts: dict | None = None) -> list[TcpTrackStep]:
    """Run the kernel's TCP conntrack over ``(time_us, segment)`` pairs in the order a node saw them.

    ``segment`` has ``index``, ``sender`` ("client" = the ORIGINAL direction),
    ``flags``, ``seq``, ``ack`` and ``payload``.  Modelled from
    ``nf_conntrack_tcp_packet``: the state table; ``[UNREPLIED]`` until the
    first reply-direction packet (``IPS_SEEN_REPLY``, set after the state
    update); ``[ASSURED]`` on a valid ACK that moves SYN_RECV or ESTABLISHED
    to ESTABLISHED once a reply was seen; the timeout of the new state,
    except that data not yet acknowledged in either direction caps it at
    ``UNACK`` (``IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED``) and a RST gives
    ``CLOSE``.  Window checks are not modelled: the model's conversation is
    always in window.  A segment the table calls invalid or ignored leaves
    the entry as it was (and is not listed).
    """
    to = timeouts or KUBE_PROXY_TCP_TIMEOUTS
    state, seen_reply, assured = "NONE", False, False
    td_end = {"ORIGINAL": None, "REPLY": None}           # highest seq + len (+SYN/FIN) sent
    unacked = {"ORIGINAL": False, "REPLY": False}        # IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED
    steps: list[TcpTrackStep] = []
    for t, seg in events:
        d = "ORIGINAL" if seg.sender == "client" else "REPLY"
        other = "REPLY" if d == "ORIGINAL" else "ORIGINAL"
        new = tcp_transition(d, seg.flags, state)
        if new is None:
            continue
        if state == "NONE" and new != "SYN_SENT":
            continue                                      # nf_conntrack_tcp_loose pick-up: not modelled
        end = (seg.seq + len(seg.payload) + (1 if seg.flags & 0x02 else 0) + (1 if seg.flags & 0x01 else 0)) & _M32
        if td_end[d] is None:
            td_end[d] = end                               # tcp_new / tcp_init_sender: no data flag
        elif _after(end, td_end[d]):
            td_end[d] = end
            unacked[d] = True
        if seg.flags & 0x10 and td_end[other] is not None and seg.ack == td_end[other]:
            unacked[other] = False
        old, state = state, new
        if seg.flags & 0x04:
            timeout, why = to["CLOSE"], "a RST: the CLOSE timeout"
        elif (unacked["ORIGINAL"] or unacked["REPLY"]) and to[new] > to["UNACK"]:
            timeout, why = to["UNACK"], f"data not yet acknowledged: UNACK ({to['UNACK']} s) instead of {new}"
        else:
            timeout, why = to[new], f"the {new} timeout"
        if not seen_reply:
            if seg.flags & 0x04:                          # the only reply is a RST: the entry is deleted
                steps.append(TcpTrackStep(seg.index, t, d, old, new, 0, "the only reply was a RST: entry deleted",
                                          True, False))
                return steps
        elif not assured and old in ("SYN_RECV", "ESTABLISHED") and new == "ESTABLISHED":
            assured = True
        if d == "REPLY":
            seen_reply = True                             # nf_conntrack_in sets it after the protocol update
        steps.append(TcpTrackStep(seg.index, t, d, old, new, timeout, why, not seen_reply, assured))
    return steps


@dataclass(frozen=True)
class ConntrackEntry:
    """A node's conntrack entry for the connection at one moment."""
    node: str
    conn: Conntrack
    step: TcpTrackStep          # the last segment that updated it
    remaining: int              # seconds left, as conntrack -L prints them

    @property
    def state(self) -> str:
        return self.step.new

    def line(self) -> str:
        """The entry as ``conntrack -L`` prints it."""
        return self.conn.conntrack_l(self.state, self.remaining, unreplied=self.step.unreplied,
                                     assured=self.step.assured)

    def __str__(self) -> str:
        return self.line()


def _need_walk(walk) -> None:
    from .errors import CourseError
    if not all(hasattr(walk, a) for a in ("observations", "segments", "conntrack", "scenario")):
        raise CourseError("walk", f"{type(walk).__name__} is not a walk", "w = ck.walk(sc)")


def _moments(walk, node: str):
    """``(time_us, segment)`` for every segment, when ``node``'s conntrack sees it.

    That is where the packet enters the node's IP layer: from a pod through
    the bridge (``docker0``, where br_netfilter or the bridge's own input
    runs PREROUTING), or decapsulated out of ``flannel.1``.
    """
    sc = walk.scenario
    ingress = {"docker0", sc.flannel.device}
    first: dict[int, int] = {}
    for o in walk.observations:
        # (or, for paths the engine computes beyond the article's -- a frame bridged port to
        # port, a host's own socket -- the first sighting on the node that carries conntrack's work)
        if o.node == node and o.segment >= 0 and (
                (o.direction == "in" and o.iface in ingress)
                or any(d.stage in ("conntrack", "nat") for d in o.decisions)):
            first[o.segment] = min(first.get(o.segment, o.time_us), o.time_us)
    # segments seen at the same microsecond (zero hop latencies) keep the conversation's order
    return sorted(((first[s.index], s) for s in walk.segments if s.index in first),
                  key=lambda m: (m[0], m[1].index))


@public
def conntrack_entry(walk, node: str, *, after: int | None = None, at_us: int | None = None,
                    timeouts: dict | None = None) -> "ConntrackEntry | None":
    """``node``'s conntrack entry for the walk's connection at one moment, derived from the conversation.

    The moment is either ``after=<segment index or label>`` (just after that segment
    crossed ``node``'s conntrack) or ``at_us=<time>`` (microseconds on the
    walk's clock; ``walk.segments[i].send_us`` are on the same clock).
    ``None`` means ``conntrack -L`` lists nothing: before the SYN, or after
    the entry's timeout ran out.  ``timeouts`` defaults to the kernel's
    defaults with kube-proxy 1.14's two changes (ESTABLISHED 86400 s,
    CLOSE_WAIT 3600 s); pass :data:`KERNEL_TCP_TIMEOUTS` for a node without
    kube-proxy.  The remaining time counts down in whole seconds
    (``nf_ct_expires(ct) / HZ``, rounded down).

    Taught in: 05-the-service.
    """
    from .errors import CourseError
    _need_walk(walk)
    if node not in walk.conntrack:
        raise CourseError("node", f"{node!r} tracks no connection in this walk", ", ".join(sorted(walk.conntrack)))
    if (after is None) == (at_us is None):
        raise CourseError("moment", "give exactly one of after=<segment index> or at_us=<time>",
                          "after=0..%d, or at_us=<microseconds>" % (len(walk.segments) - 1))
    steps = tcp_track(_moments(walk, node), timeouts)
    if isinstance(after, str) and hasattr(walk, "segment"):
        after = walk.segment(after)                       # a label: "GET", "SYN-ACK", "ACK of FIN"
    if after is not None:
        if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after < len(walk.segments):
            raise CourseError("after", f"{after!r} is not a segment of this conversation",
                              f"0..{len(walk.segments) - 1}")
        at = next((s.time_us for s in steps if s.segment == after), None)
        if at is None:
            times = dict((seg.index, t) for t, seg in _moments(walk, node))
            if after not in times:
                raise CourseError("after", f"segment {after} does not cross {node}'s conntrack",
                                  ", ".join(map(str, sorted(times))))
            at = times[after]
        at_us = at
    elif not isinstance(at_us, int) or isinstance(at_us, bool):
        raise CourseError("at_us", f"{at_us!r} is not a time in microseconds", "an integer")
    return _entry_at(walk, node, steps, at_us)


def _entry_at(walk, node: str, steps: list, at_us: int) -> "ConntrackEntry | None":
    """The entry after the last of ``steps`` (:func:`tcp_track`) at or before ``at_us``; None if none or expired."""
    done = [s for s in steps if s.time_us <= at_us]
    if not done:
        return None
    last = done[-1]
    left_us = last.timeout * 1_000_000 - (at_us - last.time_us)
    if left_us <= 0:
        return None
    return ConntrackEntry(node, walk.conntrack[node], last, left_us // 1_000_000)


@public
def conntrack_history(walk, node: str, timeouts: dict | None = None) -> str:
    """One line per segment: how ``node``'s conntrack entry changed and the timeout it got.

    Taught in: 05-the-service.
    """
    _need_walk(walk)
    out = [f"{'seg':>3}  {'dir':<8}  {'state':<27}  {'timeout':>7}  flags"]
    if node not in walk.conntrack and _moments(walk, node):
        # the packets were dropped before conntrack confirmed an entry (POSTROUTING/INPUT never reached)
        return out[0] + f"\n(no entry: {node} dropped every packet before its conntrack confirmed the connection)"
    for s in tcp_track(_moments(walk, node), timeouts):
        label = walk.segments[s.segment].label
        flags = "[UNREPLIED]" if s.unreplied else ("[ASSURED]" if s.assured else "")
        out.append(f"{s.segment:>3}  {s.direction:<8}  {s.old + ' -> ' + s.new:<27}  {s.timeout:>7}  "
                   f"{flags:<11}  {label}: {s.why}")
    return "\n".join(out)


# --- the nat table, rule by rule ------------------------------------------------

def explain_rule(r: Rule) -> str:
    """Who writes one nat rule and what it is for, in one line (sources: kube-proxy 1.14's
    proxier.go, kubelet's kubelet_network_linux.go, libnetwork's bridge driver, flannel's iptables.go)."""
    c, t = r.chain, r.target
    if t == "KUBE-SERVICES" and c == "PREROUTING":
        return "every packet arriving at this node (from its pods, from the wire) is checked against the Services"
    if t == "KUBE-SERVICES" and c == "OUTPUT":
        return "so are packets from this node's own processes"
    if t == "KUBE-POSTROUTING":
        return "after routing: masquerade what was marked for it (see KUBE-POSTROUTING)"
    if t == "DOCKER" and c == "PREROUTING":
        return "Docker: packets for one of this node's own addresses go to DOCKER (published ports, none here)"
    if t == "DOCKER" and c == "OUTPUT":
        return "Docker: the same for this node's own processes, loopback excluded"
    if c == "DOCKER" and t == "RETURN":
        return "Docker: packets coming from the bridge skip the published-port DNATs"
    if t == "MASQUERADE" and r.owner == "docker":
        return (f"Docker --ip-masq: a pod packet from {r.src} leaving by any interface but {r.out_if} "
                "gets that interface's address as its source")
    if r.owner == "flannel":
        return {("RETURN", False): "flannel -ip-masq: pod to pod stays unmasqueraded",
                ("MASQUERADE", False): "flannel -ip-masq: pod to outside the pod network is masqueraded",
                ("RETURN", True): "flannel -ip-masq: outside to this node's pods is left alone",
                ("MASQUERADE", True): "flannel -ip-masq: outside to other pods is masqueraded"}[(t, r.src_neg)]
    if c == "KUBE-MARK-DROP":
        return ("kubelet (--iptables-drop-bit=15): set packet mark 0x8000, which filter's KUBE-FIREWALL drops; "
                "kube-proxy jumps here only for LoadBalancer source ranges and Local services without local pods")
    if c == "KUBE-MARK-MASQ":
        return ("kubelet and kube-proxy (--iptables-masquerade-bit=14): set packet mark 0x4000 "
                "on this packet (not on the connection: conntrack -L's mark= stays 0)")
    if c == "KUBE-POSTROUTING":
        return "a packet carrying mark 0x4000 is masqueraded"
    if c.startswith("KUBE-SEP-") and t == "KUBE-MARK-MASQ":
        return ("hairpin: the endpoint itself called the Service and got itself; without SNAT it would "
                "answer itself directly and the reply would miss the un-DNAT")
    if c.startswith("KUBE-SEP-") and t == "DNAT":
        return f"the DNAT: destination becomes the endpoint {r.target_args.split()[-1]}"
    if c == "KUBE-SERVICES" and t == "KUBE-MARK-MASQ":
        return ("mark for SNAT every packet to the Service"
                if not r.src else f"mark for SNAT a packet to the Service from outside the cluster CIDR {r.src}")
    if c == "KUBE-SERVICES" and t.startswith("KUBE-SVC-"):
        return f"the Service: destination {r.dst} port {r.dport} goes to its chain"
    if t == "KUBE-NODEPORTS":
        return "NodePort Services: anything for this node's own addresses (must stay last)"
    if c.startswith("KUBE-SVC-") and t.startswith("KUBE-SEP-"):
        if r.probability is None:
            return "pick an endpoint: the last (or only) one takes whatever is left"
        return f"pick an endpoint: this one with probability {r.probability:g} of what is left"
    return "(not explained)"


@public
def nat_explained(scenario, node: str, walk=None) -> str:
    """``iptables-save -t nat`` on ``node``, rule by rule: number, owner, whether the request's
    first packet matched it (``*``), the rule, and what it is for.

    Taught in: 05-the-service.
    """
    rules, chains = nat_table(scenario, node)
    by_text = {r.save(): r for r in rules}
    hit = set()
    if walk is not None:
        hit = {line for (n, _), v in walk.nat_traces.items() if n == node for line in v.trace}
    order = [ln for ln in iptables_save(rules, chains).splitlines() if ln.startswith("-A ")]
    out = []
    for i, line in enumerate(order, 1):
        r = by_text[line]
        who = r.owner if r.chain != "KUBE-MARK-DROP" else "kubelet"
        out.append(f"{i:>2} {'*' if line in hit else ' '} {who:<10} {line}\n"
                   f"{'':>15}{explain_rule(r)}")
    return "\n".join(out)


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


def fill_conntrack_entries(walk) -> None:
    """Give each conntrack decision of a finished walk the entry as ``conntrack -L`` shows it
    just after that segment crossed that node (in place)."""
    from dataclasses import replace as _replace
    tracked: dict = {}              # node -> ({segment: moment}, steps): one tcp_track per node, not per decision
    lines: dict = {}                # (node, segment) -> the entry's line
    for i, o in enumerate(walk.observations):
        if any(d.entry == CONNTRACK_PENDING for d in o.decisions):
            line = lines.get((o.node, o.segment))
            if line is None:
                if o.node not in tracked and o.node in walk.conntrack:
                    moments = _moments(walk, o.node)
                    tracked[o.node] = ({seg.index: t for t, seg in moments}, tcp_track(moments))
                times, steps = tracked.get(o.node, ({}, []))
                # as conntrack_entry(walk, o.node, after=o.segment), which also says why when there is no moment
                at = next((s.time_us for s in steps if s.segment == o.segment), times.get(o.segment))
                e = _entry_at(walk, o.node, steps, at) if at is not None else \
                    conntrack_entry(walk, o.node, after=o.segment)
                line = lines[(o.node, o.segment)] = e.line() if e is not None else "(no entry)"
            walk.observations[i] = _replace(o, decisions=tuple(
                _replace(d, entry=line) if d.entry == CONNTRACK_PENDING else d for d in o.decisions))
