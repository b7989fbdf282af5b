"""The conntrack entry, derived from the conversation with the kernel's TCP state machine.

Expected values come from net/netfilter/nf_conntrack_proto_tcp.c (state table,
tcp_timeouts[]), kube-proxy 1.14's defaults (ESTABLISHED 24 h, CLOSE_WAIT 1 h)
and conntrack-tools 1.4.7's output on a real kernel in a network namespace
(a DNAT + MASQUERADE router, as on xiaomi; Linux 6.18, timeouts set as kube-proxy sets them):

    tcp      6 119 SYN_SENT src=10.0.1.2 dst=10.99.0.1 sport=52596 dport=4432 [UNREPLIED] src=10.0.2.2 dst=10.0.2.1 sport=80 dport=52596 mark=0 use=1
    tcp      6 86399 ESTABLISHED src=10.0.1.2 dst=10.99.0.1 sport=41774 dport=4432 src=10.0.2.2 dst=10.0.2.1 sport=80 dport=41774 [ASSURED] mark=0 use=1
    tcp      6 3599 CLOSE_WAIT ... [ASSURED] mark=0 use=1     (server closed, client had not)
    tcp      6 119 TIME_WAIT ... [ASSURED] mark=0 use=1       (both closed)
"""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace as NS

import pytest

import coursekit as ck
from coursekit import conversation as conv
from coursekit.netfilter import (KERNEL_TCP_TIMEOUTS, KUBE_PROXY_TCP_TIMEOUTS, Conntrack, Tuple5,
                                 conntrack_entry, conntrack_history, tcp_track, tcp_transition)

A = ipaddress.IPv4Address


def test_the_printed_line_has_conntrack_tools_shape():
    ct = Conntrack(Tuple5("tcp", A("10.0.1.2"), 52596, A("10.99.0.1"), 4432),
                   Tuple5("tcp", A("10.0.2.2"), 80, A("10.0.2.1"), 52596), node="r")
    assert ct.conntrack_l("SYN_SENT", 119, unreplied=True, assured=False) == (
        "tcp      6 119 SYN_SENT src=10.0.1.2 dst=10.99.0.1 sport=52596 dport=4432 [UNREPLIED] "
        "src=10.0.2.2 dst=10.0.2.1 sport=80 dport=52596 mark=0 use=1")
    assert ct.conntrack_l("ESTABLISHED", 86399, unreplied=False, assured=True) == (
        "tcp      6 86399 ESTABLISHED src=10.0.1.2 dst=10.99.0.1 sport=52596 dport=4432 "
        "src=10.0.2.2 dst=10.0.2.1 sport=80 dport=52596 [ASSURED] mark=0 use=1")


@pytest.mark.parametrize("direction, flags, old, new", [
    ("ORIGINAL", conv.SYN, "NONE", "SYN_SENT"),
    ("REPLY", conv.SYN | conv.ACK, "SYN_SENT", "SYN_RECV"),
    ("ORIGINAL", conv.ACK, "SYN_RECV", "ESTABLISHED"),
    ("REPLY", conv.FIN | conv.ACK | conv.PSH, "ESTABLISHED", "FIN_WAIT"),
    ("ORIGINAL", conv.ACK, "FIN_WAIT", "CLOSE_WAIT"),
    ("ORIGINAL", conv.FIN | conv.ACK, "CLOSE_WAIT", "LAST_ACK"),
    ("REPLY", conv.ACK, "LAST_ACK", "TIME_WAIT"),
    ("ORIGINAL", conv.RST, "ESTABLISHED", "CLOSE"),
    ("ORIGINAL", conv.ACK, "SYN_SENT", None),            # an ACK before any SYN-ACK is invalid
    ("REPLY", conv.SYN | conv.ACK, "ESTABLISHED", None),  # a late SYN-ACK is ignored
])
def test_state_table(direction, flags, old, new):
    assert tcp_transition(direction, flags, old) == new


def test_timeouts_are_the_kernels_and_kube_proxys():
    assert KERNEL_TCP_TIMEOUTS["ESTABLISHED"] == 432000          # 5 DAYS: the article-era 431999
    assert KUBE_PROXY_TCP_TIMEOUTS["ESTABLISHED"] == 86400       # --conntrack-tcp-timeout-established=24h
    assert KUBE_PROXY_TCP_TIMEOUTS["CLOSE_WAIT"] == 3600         # --conntrack-tcp-timeout-close-wait=1h
    assert KUBE_PROXY_TCP_TIMEOUTS["TIME_WAIT"] == 120


@pytest.fixture(scope="module")
def w():
    return ck.walk(ck.load_scenario("article"))


def test_the_article_connection_step_by_step(w):
    steps = tcp_track_of(w, "xiaomi")
    assert [s.new for s in steps] == ["SYN_SENT", "SYN_RECV", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED",
                                      "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT"]
    assert [s.timeout for s in steps] == [120, 60, 86400, 300, 86400, 300, 120, 300, 3600, 30, 120]
    assert [s.unreplied for s in steps] == [True] + [False] * 10
    assert [s.assured for s in steps] == [False, False] + [True] * 9


def tcp_track_of(w, node):
    from coursekit.netfilter import _moments
    return tcp_track(_moments(w, node))


def test_two_moments_mid_transfer_and_after_close(w):
    get = w.segments[3]
    assert get.label == "HTTP request"
    mid = conntrack_entry(w, "xiaomi", after=3)
    assert mid.state == "ESTABLISHED" and mid.remaining == 300          # the GET is not yet acknowledged
    assert "[ASSURED]" in mid.line() and "[UNREPLIED]" not in mid.line()
    assert mid.line().startswith("tcp      6 300 ESTABLISHED src=172.30.83.9 dst=10.254.40.119 sport=38200 dport=4432 "
                                 "src=172.30.20.2 dst=172.30.83.0 sport=80 dport=38200 ")
    last = max(s.time_us for s in tcp_track_of(w, "xiaomi"))
    after_close = conntrack_entry(w, "xiaomi", at_us=last + 1_000_000)
    assert after_close.state == "TIME_WAIT" and after_close.remaining == 119
    assert conntrack_entry(w, "xiaomi", at_us=last + 120_000_000) is None       # expired: nothing listed
    assert conntrack_entry(w, "xiaomi", at_us=w.segments[0].send_us - 1) is None  # before the SYN


def test_before_the_reply_the_entry_is_unreplied(w):
    e = conntrack_entry(w, "xiaomi", after=0)
    assert e.state == "SYN_SENT" and "[UNREPLIED] src=172.30.20.2" in e.line() and "[ASSURED]" not in e.line()


def test_meizu_tracks_the_same_states_without_nat(w):
    e = conntrack_entry(w, "meizu", after=10)
    assert e.state == "TIME_WAIT"
    assert "src=172.30.83.0 dst=172.30.20.2 sport=38200 dport=80 src=172.30.20.2 dst=172.30.83.0" in e.line()


def test_without_kube_proxy_the_kernel_default_applies(w):
    e = conntrack_entry(w, "xiaomi", after=2, timeouts=KERNEL_TCP_TIMEOUTS)
    assert e.remaining == 432000


def test_a_rst_as_the_only_reply_deletes_the_entry():
    syn = NS(index=0, sender="client", flags=conv.SYN, seq=100, ack=0, payload=b"")
    rst = NS(index=1, sender="server", flags=conv.RST | conv.ACK, seq=0, ack=101, payload=b"")
    steps = tcp_track([(0, syn), (10, rst)])
    assert steps[-1].timeout == 0


def test_stepper_decisions_show_the_derived_entry(w):
    lines = [d.entry for o in w.path(1) for d in o.decisions if d.stage == "conntrack"]
    assert lines and all(" SYN_RECV " in x for x in lines)
    assert not any("431999" in d.entry for o in w.observations for d in o.decisions)
    from coursekit.netfilter import CONNTRACK_PENDING
    assert w.conntrack["xiaomi"].conntrack_l() == CONNTRACK_PENDING            # no state without a moment
    assert not any(d.entry == CONNTRACK_PENDING for o in w.observations for d in o.decisions)


def test_history_names_the_timeout_chosen(w):
    text = conntrack_history(w, "xiaomi")
    assert "UNACK (300 s)" in text and "LAST_ACK -> TIME_WAIT" in text


@pytest.mark.parametrize("kw, field", [({}, "moment"), ({"after": 3, "at_us": 5}, "moment"),
                                       ({"after": 99}, "after"), ({"after": "no such segment"}, "segment"), ({"after": 2.0}, "after"),
                                       ({"at_us": 1.5}, "at_us")])
def test_bad_moments_get_one_message(w, kw, field):
    with pytest.raises(ck.CourseError) as e:
        conntrack_entry(w, "xiaomi", **kw)
    assert e.value.field == field


def test_unknown_node(w):
    with pytest.raises(ck.CourseError) as e:
        conntrack_entry(w, "busybox", after=0)
    assert e.value.field == "node"


def test_every_nat_rule_is_explained_and_the_first_packets_path_is_starred(w):
    from coursekit.netfilter import nat_explained
    sc = w.scenario
    text = nat_explained(sc, "xiaomi", w)
    rules = [ln for ln in ck.nat_save(sc, "xiaomi").splitlines() if ln.startswith("-A ")]
    assert len(rules) == 16 and text.count("\n") == 2 * len(rules) - 1
    assert "(not explained)" not in text
    starred = [ln.split(None, 3)[3] for ln in text.splitlines() if ln[3:4] == "*"]
    assert "-A POSTROUTING -s 172.30.83.0/24 ! -o docker0 -j MASQUERADE" in starred
    assert any("DNAT --to-destination 172.30.20.2:80" in x for x in starred)
    assert not any("KUBE-MARK-MASQ" in x.split(" -j ")[-1] for x in starred)   # the pod is not marked


@pytest.mark.parametrize("changes", [{"replicas": 3}, {"masquerade": False}])
def test_variants_are_explained_too(w, changes):
    from coursekit.netfilter import nat_explained
    sc = ck.explore.apply(w.scenario, changes)
    assert "(not explained)" not in nat_explained(sc, "xiaomi")
    assert "(not explained)" not in nat_explained(sc.with_changes({"flannel.ipMasq": True}), "meizu")


def test_a_moment_can_be_named_by_the_segment_label(w):
    assert conntrack_entry(w, "xiaomi", after="GET") == conntrack_entry(w, "xiaomi", after=w.segment("GET"))


def test_a_scenario_instead_of_a_walk_gets_one_message(w):
    for call in (lambda: conntrack_entry(w.scenario, "xiaomi", after=0), lambda: conntrack_history(w.scenario, "xiaomi"),
                 lambda: conntrack_entry(w, "xiaomi", moment=3)):
        with pytest.raises(ck.CourseError):
            call()


def test_segments_at_the_same_microsecond_keep_the_conversations_order():
    """Zero hop latencies put several segments at one moment: the entry still follows the conversation
    (found by hypothesis in test_scenario_walks: the tie used to compare Segment objects)."""
    zero = {k: 0 for k in ("vethUs", "bridgeUs", "forwardUs", "encapUs", "wireUs", "decapUs", "processUs", "arpUs")}
    sc = ck.load_scenario("article", {"observed.times": None, "timing": zero})
    w = ck.walk(sc)
    assert "TIME_WAIT" in str(ck.conntrack_entry(w, "xiaomi", after=len(w.segments) - 1))
