"""netfilter hooks as data, and the conntrack table of a namespace.

Each hook has its registered functions ordered by priority, as in the kernel
(``include/uapi/linux/netfilter_ipv4.h``: conntrack -200, DNAT -100,
filter 0, SNAT +100, conntrack confirm last)::

    PREROUTING   conntrack(-200)  nat(-100)
    INPUT        filter(0)        nat(+100)   confirm(INT_MAX)
    FORWARD      filter(0)
    OUTPUT       conntrack(-200)  nat(-100)   filter(0)
    POSTROUTING  nat(+100)        confirm(INT_MAX)

The nat table sees only the first packet of a connection (its rules are
:func:`coursekit.netfilter.traverse`); later packets of either direction
are rewritten from the conntrack entry alone.  A hook returns ``None`` to
accept, or a drop reason.

Taught in: 05-the-service (the engine behind the walk).
"""

from __future__ import annotations

from ..datapath import Decision
from ..netfilter import HOOK_TABLES, Conntrack, Tuple5, filter_verdict, hook_order, traverse
from .frame import set_tuple, tuple_of

__all__ = ["NF_HOOKS", "run_hook", "run_tunnel_hook", "ConntrackTable"]

#: what runs for each table of coursekit.netfilter.HOOK_TABLES (raw, mangle and security hold no rules here)
_TABLE_FUNCTION = {"conntrack": "conntrack", "nat (DNAT)": "nat", "nat (SNAT)": "nat", "filter": "filter",
                   "conntrack confirm": "confirm"}

#: hook -> (function, priority), in the order the kernel calls them (from coursekit.netfilter.hook_order)
NF_HOOKS = {hook: tuple((_TABLE_FUNCTION[t], prio) for t, prio in hook_order(hook) if t in _TABLE_FUNCTION)
            for hook in HOOK_TABLES}


class ConntrackTable:
    """A namespace's connection-tracking entries (``conntrack -L``)."""

    def __init__(self, ns_name: str):
        self.ns_name = ns_name
        self.entries: list[Conntrack] = []

    def find(self, t: Tuple5) -> Conntrack | None:
        for e in self.entries:
            if t == e.orig or t == e.reply:
                return e
        return None


def _conntrack(ns, hook, skb, dec, net, in_if, out_if):
    t = tuple_of(skb.data)
    skb.ct = ns.ct.find(t)
    skb.t_orig = t
    return None


def _nat(ns, hook, skb, dec, net, in_if, out_if):
    t = tuple_of(skb.data)
    pre = hook in ("PREROUTING", "OUTPUT")
    table = f"nat {hook}"
    if skb.ct is None:
        if hook not in ("PREROUTING", "OUTPUT", "POSTROUTING"):
            return None
        kw = dict(in_if=in_if, local=ns.local, marks=skb.marks)
        if pre:
            kw["pick"] = net.sc.observed.endpoint
        else:
            kw["out_if"] = out_if
            kw["masq_addr"] = ns.primary_address(out_if)
        v = traverse(ns.nat_rules, hook, t, **kw)
        net.nat_traces[(ns.name, hook)] = v
        for line in v.trace:
            eff = "matched"
            if v.rule is not None and v.rule.save() == line:
                eff = (f"DNAT {t.dst}:{t.dport} -> {v.tuple.dst}:{v.tuple.dport}" if v.nat == "DNAT" else
                       f"MASQUERADE source {t.src} -> {v.tuple.src} (address of {out_if})")
            dec.append(Decision("nat", table, line, eff))
        if v.nat is None:
            dec.append(Decision("nat", table, "(no rule rewrote the packet)",
                                "destination unchanged" if pre else "source unchanged"))
        skb.marks = v.marks
        t2 = v.tuple
    else:
        ct = skb.ct
        t2 = ct.translate(t, hook)
        if t2 != t:
            if pre:
                dec.append(Decision("conntrack", "conntrack", ct.conntrack_l(),
                                    f"destination {t.dst}:{t.dport} -> {t2.dst}:{t2.dport}"
                                    + (" (reply un-SNAT)" if not ct.is_orig(t) else " (DNAT of the connection)")))
            else:
                dec.append(Decision("conntrack", "conntrack", ct.conntrack_l(),
                                    f"source {t.src}:{t.sport} -> {t2.src}:{t2.sport}"
                                    + (" (reply un-DNAT)" if not ct.is_orig(t) else " (SNAT of the connection)")))
    if t2 != t:
        set_tuple(skb.data, t2)
    return None


def _filter(ns, hook, skb, dec, net, in_if, out_if):
    if not ns.filter_rules:
        return None
    # the verdict is a function of these alone (the rules do not change during a walk): asked once each
    key = (hook, tuple_of(skb.data), in_if, out_if, skb.marks, "NEW" if skb.ct is None else "ESTABLISHED")
    v = ns.filter_verdicts.get(key)
    if v is None:
        v = ns.filter_verdicts[key] = filter_verdict(ns.filter_rules, ns.filter_policy, hook, key[1], in_if=in_if,
                                                     out_if=out_if, marks=skb.marks, ctstate=key[5])
    net.filter_traces.setdefault((ns.name, hook), v)
    if v.verdict == "ACCEPT":
        return None                 # accepted: recorded in Walk.filter_traces, not among the frame's decisions
    by_policy = v.trace[-1].startswith("-P")
    dec.append(Decision("filter", f"filter {hook}", v.trace[-1],
                        f"{hook} policy DROP: no rule accepted the packet" if by_policy else
                        "REJECT: dropped, and the kernel answers the sender with ICMP port unreachable"
                        if v.verdict == "REJECT" else "DROP"))
    return f"{hook} policy DROP" if by_policy else f"filter {hook}: {v.trace[-1]}"


def _confirm(ns, hook, skb, dec, net, in_if, out_if):
    if skb.ct is not None:
        return None
    t = tuple_of(skb.data)
    ct = Conntrack(orig=skb.t_orig, reply=t.inverted(), node=ns.name)
    ns.ct.entries.append(ct)
    net.conntrack.setdefault(ns.name, ct)
    dec.append(Decision("conntrack", "conntrack", ct.conntrack_l("SYN_SENT", 120),
                        "new connection tracked; later packets skip the nat table"))
    skb.ct = ct
    return None


_FUNCS = {"conntrack": _conntrack, "nat": _nat, "filter": _filter, "confirm": _confirm}


def run_hook(ns, hook: str, skb, dec: list, net, in_if: str | None = None, out_if: str | None = None):
    """Call every function registered at ``hook`` in priority order; ``None`` or a drop reason."""
    if ns.ct is None:
        return None
    for fn, _prio in NF_HOOKS[hook]:
        why = _FUNCS[fn](ns, hook, skb, dec, net, in_if, out_if)
        if why:
            return why
    return None


def run_tunnel_hook(ns, hook: str, skb, dec: list, net, in_if: str | None = None, out_if: str | None = None,
                    port: int | None = None):
    """The host's hooks on an outer VXLAN datagram: ``None`` or a drop reason.

    The kernel sends it as any locally generated datagram (``udp_tunnel_xmit_skb`` ->
    ``ip_local_out``: OUTPUT, then POSTROUTING) and receives it as any datagram for a
    local socket (PREROUTING, then INPUT before ``vxlan_rcv``), so nat and filter rules
    on the underlay apply to it -- and the inner packet's mark comes along
    (``skb_scrub_packet`` keeps ``skb->mark`` within one namespace): kube-proxy 1.14's
    ``KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE`` matches the outer
    datagram of a marked packet too.  Checked on a real kernel (tests/test_kernel_tunnel_hooks.py).

    Its conntrack entries (each direction hashes its own outer source port, so
    ``conntrack -L`` shows each ``[UNREPLIED]``) are kept in ``ns.tunnel_ct``, apart from
    the table the course's views print.  Nothing is recorded on the frame unless a
    rule rewrites the datagram or drops it.
    """
    if ns.ct is None:
        return None
    for fn, _prio in NF_HOOKS[hook]:
        t = tuple_of(skb.data)
        if fn == "conntrack":
            skb.ct = next((e for e in ns.tunnel_ct if t == e.orig or t == e.reply), None)
            skb.t_orig = t
        elif fn == "nat":
            if skb.ct is not None:                      # later datagrams of the flow: the entry's NAT alone
                t2 = skb.ct.translate(t, hook)
                if t2 != t:
                    set_tuple(skb.data, t2)
                    dec.append(Decision("conntrack", "conntrack", f"outer flow {skb.ct.orig}",
                                        f"the outer datagram rewritten as its flow's first one: {t} -> {t2}"))
                continue
            if hook not in ("PREROUTING", "OUTPUT", "POSTROUTING"):
                continue
            pre = hook in ("PREROUTING", "OUTPUT")
            kw = dict(in_if=in_if, local=ns.local, marks=skb.marks)
            if not pre:
                kw.update(out_if=out_if, masq_addr=ns.primary_address(out_if))
            v = traverse(ns.nat_rules, hook, t, **kw)
            skb.marks = v.marks
            if v.nat is not None and v.rule is not None:
                mark = f"; the inner packet's mark {skb.marks:#x} came along" if skb.marks else ""
                same = (v.tuple.src, v.tuple.sport) == (t.src, t.sport)
                dec.append(Decision("nat", f"nat {hook}", v.rule.save(),
                                    (f"{v.nat} matches the outer VXLAN datagram {t.src}:{t.sport} -> "
                                     f"{t.dst}:{t.dport}{mark}: its source is already {out_if}'s address, "
                                     "so nothing changes" if same else
                                     f"{v.nat} of the outer VXLAN datagram: {t.src}:{t.sport} -> {v.tuple.dst}:"
                                     f"{v.tuple.dport} becomes {v.tuple.src}:{v.tuple.sport} -> {v.tuple.dst}:"
                                     f"{v.tuple.dport}{mark}") if not pre else
                                    f"{v.nat} of the outer VXLAN datagram: destination {t.dst}:{t.dport} -> "
                                    f"{v.tuple.dst}:{v.tuple.dport}"))
                set_tuple(skb.data, v.tuple)
        elif fn == "filter":
            if not ns.filter_rules:
                continue
            key = ("tunnel", hook, t, in_if, out_if, skb.marks)     # asked once each, as _filter does
            v = ns.filter_verdicts.get(key)
            if v is None:
                v = ns.filter_verdicts[key] = filter_verdict(ns.filter_rules, ns.filter_policy, hook, t, in_if=in_if,
                                                             out_if=out_if, marks=skb.marks, ctstate="NEW")
            if v.verdict != "ACCEPT":
                where = (f"before the UDP {port} socket gets it" if hook == "INPUT" else
                         f"before it leaves {out_if}" if out_if else "")
                dec.append(Decision("filter", f"filter {hook}", v.trace[-1],
                                    f"the VXLAN datagram is dropped {where}".rstrip()))
                return f"{hook} policy DROP" if v.trace[-1].startswith("-P") else f"filter {hook}: {v.trace[-1]}"
        elif fn == "confirm" and skb.ct is None:
            skb.ct = Conntrack(orig=skb.t_orig, reply=t.inverted(), node=ns.name)
            ns.tunnel_ct.append(skb.ct)
    return None
