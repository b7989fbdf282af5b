"""The hop table names the filter table's FORWARD verdict where a node forwards the connection's first packet.

Docker >= 1.13 sets FORWARD's policy to DROP; on meizu the SYN from flannel.1 to docker0 passes only by
flannel >= v0.9.1's `-s <network> -j ACCEPT` (coursekit.netfilter.filter_table).  Without that rule the SYN
never reaches docker0.
"""

import coursekit as ck


def _row(table: str, where: str) -> str:
    return next(line for line in table.splitlines() if f" {where} " in line)


def test_the_syn_is_accepted_by_flannels_rule_on_meizu_and_dockers_on_xiaomi(article_walk):
    t = ck.explore.hop_table(article_walk, "SYN")
    assert "filter FORWARD: ACCEPT by -A FORWARD -s 172.30.0.0/16 -j ACCEPT" in _row(t, "meizu docker0")
    assert "filter FORWARD: ACCEPT by -A FORWARD -i docker0 ! -o docker0 -j ACCEPT" in _row(t, "xiaomi flannel.1")
    # only routed hops pass FORWARD: a bridge or the wire never shows a verdict
    assert t.count("filter FORWARD") == 2


def test_later_packets_show_no_first_packet_verdict(article_walk):
    assert "filter FORWARD" not in ck.explore.hop_table(article_walk, "SYN-ACK")


def test_without_flannels_forward_rules_the_syn_stops_at_meizus_flannel_1(article):
    old = article.with_changes({"flannel.version": "v0.9.0"})
    w = ck.walk(old)
    last = w.path("SYN")[-1]
    assert (last.node, last.iface) == ("meizu", "flannel.1")
    assert w.filter_traces[("meizu", "FORWARD")].verdict == "DROP"
