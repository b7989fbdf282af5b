"""The traffic case as data (Scenario.case) and the explorer's knobs for it (client, target, endpoint_node).

Moving nginx to xiaomi in the explorer must walk exactly the path the
same-node scenario file walks: the knobs are another way to write the
files in data/scenarios, never a second model.
"""

from __future__ import annotations

import itertools

import pytest

import coursekit as ck
from coursekit import explore as ex
from coursekit.scenario import scenarios

CASE = ("client", "target", "endpoint_node")


# -- the shared description ------------------------------------------------------------

@pytest.mark.parametrize("name, client, target, nodes", [
    # who calls, what it calls, and the nodes the request crosses, as each file's header says
    ("article", "pod", "service", ("xiaomi", "meizu")),
    ("same-node", "pod", "service", ("xiaomi",)),
    ("hairpin", "pod", "service", ("meizu",)),
    ("from-node", "node", "service", ("xiaomi", "meizu")),
    ("nodeport", "external", "nodeport", ("xiaomi", "meizu")),
    ("pod-to-world", "pod", "external-ip", ("xiaomi",)),
    ("pod-to-pod", "pod", "pod-ip", ("xiaomi", "meizu")),
])
def test_traffic_case_of_each_scenario(name, client, target, nodes):
    case = ck.load_scenario(name).case
    assert (case.client, case.target, case.nodes) == (client, target, nodes)
    assert case.via_service == (target in ("service", "nodeport"))
    assert case.client in case.CLIENTS and case.target in case.TARGETS


def test_the_case_orders_the_path_the_way_the_walk_crosses_it():
    """The NodePort's node comes before the server's: the request enters the cluster there."""
    sc = ck.load_scenario("nodeport")
    assert (sc.case.client_node, sc.case.entry_node, sc.case.server_node) == (None, "xiaomi", "meizu")
    w = ck.walk(sc)
    seen = [o.node for o in w.path(0) if o.node in sc.case.nodes]
    assert list(dict.fromkeys(seen)) == list(sc.case.nodes)


@pytest.mark.parametrize("name", scenarios())
def test_every_scenario_offers_its_case_knobs(name):
    """So the untouched-explorer test (test_explore) applies them to every file too."""
    sc = ck.load_scenario(name)
    keys = {c.key for c in ex.controls(sc)}
    assert {"client", "target", "endpoint_node"} <= keys
    for c in ex.controls(sc, list(CASE)):
        assert c.value in [v for _, v in c.options]               # the menu holds the scenario's own value
    assert ex.apply(sc, {k: ex.current(sc)[k] for k in CASE}) is sc


# -- the knobs reproduce the traffic-case files ----------------------------------------

def _shape(sc):
    """What the lesson reads off a walk: devices, addresses (not ports), TTL, encapsulation, drops."""
    w = ck.walk(sc)
    rows = []
    for seg in range(min(2, len(w.segments))):
        for r in ex.hop_rows(w, seg):
            rows.append((r.node, r.iface, r.direction, r.cells["source"].split(":")[0],
                         r.cells["destination"].split(":")[0], r.cells["TTL"], r.cells["encapsulation"].split(":")[0]))
    return rows, [d.reason for d in w.drops], len(w.segments)


@pytest.mark.parametrize("base, knobs, file", [
    ("article", {"endpoint_node": "xiaomi"}, "same-node"),
    ("article", {"client": "xiaomi"}, "from-node"),
    ("article", {"client": "nginx-1"}, "hairpin"),
    ("article", {"target": "pod-ip"}, "pod-to-pod"),
    ("pod-to-world", {"client": "outside", "target": "nodeport:xiaomi"}, "nodeport"),
    ("nodeport", {"client": "busybox", "target": "external:outside"}, "pod-to-world"),
    ("same-node", {"endpoint_node": "meizu"}, "article"),
    ("pod-to-pod", {"target": "service"}, "article"),
])
def test_knobs_walk_the_same_path_as_the_scenario_file(base, knobs, file):
    assert _shape(ex.apply(ck.load_scenario(base), knobs)) == _shape(ck.load_scenario(file))


def test_moving_nginx_to_xiaomi_the_vxlan_hop_disappears(article):
    before = ck.walk(article)
    assert before.at("meizu", "enp4s0") and before.at("xiaomi", "flannel.1")
    sc = ex.apply(article, {"endpoint_node": "xiaomi"})
    assert sc.case.nodes == ("xiaomi",) and sc.server.node == "xiaomi"
    assert str(sc.server.ip) == "172.30.83.2"              # Docker's IPAM: .1 is docker0, .2 the first container
    w = ck.walk(sc)
    assert not [o for o in w.observations if o.iface in ("enp4s0", "flannel.1")]
    assert ("flannel.1" not in {o.iface for o in w.observations}) and w.drops == []
    # every interface the explorer offers is on the new case's single node or one of its pods
    assert {n for n, _ in ex.interfaces(sc)} == {"xiaomi", "busybox", "nginx-1"}


# -- every value gets a walk or one message ---------------------------------------------

def _check(sc, values):
    try:
        s = ex.apply(sc, values)
    except ck.CourseError as e:
        assert e.field in ("client", "target", "endpoint runs on") and "\n" not in str(e) and len(str(e)) < 400
        return "message"
    w = ck.walk(s)
    v = ex.views(s, walk=w)
    assert v.hops.startswith("#")
    if not w.path(0):                     # never sent (no route): the hop table says where and why
        assert w.drops and "(no hop: the segment never left its socket" in v.hops
    assert s.case.client == {"pod": "pod", "node": "node"}.get(s.case.client, "external")
    return "drop" if w.drops else "walk"


@pytest.mark.parametrize("name", ["article", "pod-to-world"])
def test_every_combination_of_the_case_knobs_walks_or_says_why(name):
    sc = ck.load_scenario(name)
    menus = [[v for _, v in ex.options(sc, k)] for k in CASE]
    seen = {_check(sc, dict(zip(CASE, combo))) for combo in itertools.product(*menus)}
    assert {"walk", "message"} <= seen
    if sc.externals:
        assert "drop" in seen            # an external client cannot reach a cluster IP or a pod IP: dropped


@pytest.mark.parametrize("name", scenarios())
def test_every_single_case_knob_value_walks_or_says_why(name):
    sc = ck.load_scenario(name)
    for k in CASE:
        for _, value in ex.options(sc, k):
            _check(sc, {k: value})


def test_an_external_host_cannot_reach_a_cluster_ip():
    """The underlay host has no route to the Service CIDR: the kernel drops the SYN where it starts."""
    w = ck.walk(ex.apply(ck.load_scenario("pod-to-world"), {"client": "outside", "target": "service"}))
    assert w.drops and w.drops[0].node == "outside" and "no route to 10.254.40.119" in w.drops[0].reason
    assert w.path(0) == [] and ex.hop_rows(w, 0) == []


def test_a_value_outside_the_menu_names_the_field(article):
    with pytest.raises(ck.CourseError, match=r"^client: 'oppo' is not one of the choices \(allowed: busybox, "):
        ex.apply(article, {"client": "oppo"})
    with pytest.raises(ck.CourseError, match=r"^target: .*\(allowed: service, nodeport:xiaomi, nodeport:meizu, pod-ip\)$"):
        ex.apply(article, {"target": "external:outside"})
    with pytest.raises(ck.CourseError, match=r"^endpoint runs on: 7 is not one of the choices"):
        ex.apply(article, {"endpoint_node": 7})


def test_options_answer_any_input_with_a_menu_or_one_message(article):
    assert [v for _, v in ex.options("article", "endpoint_node")] == ["xiaomi", "meizu"]
    for sc, key in ((article, "vni"), (article, 7), ([], "client"), ("no-such-scenario", "client")):
        with pytest.raises(ck.CourseError):
            ex.options(sc, key)


def test_calling_ones_own_address_is_a_message_not_a_walk():
    with pytest.raises(ck.CourseError, match=r"^target: nginx-1 would call its own address"):
        ex.apply(ck.load_scenario("pod-to-pod"), {"client": "nginx-1"})


def test_a_field_the_new_case_does_not_have(article):
    # a process on the node has no pod IP to change
    with pytest.raises(ck.CourseError, match=r"^client pod IP: this traffic case has no such field"):
        ex.apply(article, {"client": "xiaomi", "client_ip": "172.30.83.10"})
    # untouched, the field is simply not applied
    assert ex.apply(article, {"client": "xiaomi", "client_ip": "172.30.83.9"}).case.client == "node"


def test_other_fields_apply_to_the_new_case(article):
    """After the move the server IP field means the pod on xiaomi; the old value counts as untouched."""
    moved = ex.apply(article, {"endpoint_node": "xiaomi"})
    assert ex.apply(article, {"endpoint_node": "xiaomi", "server_ip": "172.30.20.2"}).server.ip == moved.server.ip
    assert str(ex.apply(article, {"endpoint_node": "xiaomi", "server_ip": "172.30.83.20"}).server.ip) == "172.30.83.20"
    with pytest.raises(ck.CourseError, match=r"^server pod IP: "):
        ex.apply(article, {"endpoint_node": "xiaomi", "server_ip": "172.30.20.20"})


def test_a_nodeport_the_service_lacks_is_given_and_labelled_assumed(article):
    label = dict((v, lab) for lab, v in ex.options(article, "target"))["nodeport:meizu"]
    assert label.endswith(f":{ex.ASSUMED_NODE_PORT} (nodePort assumed)")
    sc = ex.apply(article, {"target": "nodeport:meizu"})
    assert (sc.target_ip, sc.target_dport) == (sc.node("meizu").nic.ip, ex.ASSUMED_NODE_PORT)
    assert sc.case.nodes == ("xiaomi", "meizu")      # busybox's node, then meizu (whose address it calls)
    assert ck.load_scenario("nodeport").service_port.node_port == ex.ASSUMED_NODE_PORT   # the same stand-in


# -- the widget: menus and fields follow the applied case --------------------------------

def test_explorer_greys_out_what_the_case_lacks_and_rebuilds_menus(article):
    e = ck.widgets.explorer(article, knobs=["client", "target", "endpoint_node", "server_ip", "pod_mtu"],
                            node="meizu", iface="enp4s0")
    assert not e.controls["pod_mtu.meizu"].disabled
    e.controls["endpoint_node"].value = "xiaomi"
    assert "recomputed" in e.status.value and e.scenario.server.node == "xiaomi"
    assert e.controls["pod_mtu.meizu"].disabled                          # meizu is off the path now
    assert e.controls["server_ip"].value == "172.30.83.2"                # the field shows the new case
    assert ("pod IP of nginx-1: 172.30.83.2:80", "pod-ip") in e.controls["target"].options
    e.controls["client"].value = "nginx-1"
    e.controls["target"].value = "pod-ip"
    assert "outlined" in e.status.value and "its own address" in e.errors["target"].value


# -- the cases side by side (coursekit.cases) ---------------------------------------------

@pytest.mark.parametrize("name, seen_by_server, vxlan", [
    # the address each server sees, as the kernel's rules give it (not read off the model)
    ("article", lambda sc: sc.node("xiaomi").vtep_ip, True),                 # Docker's MASQUERADE on flannel.1
    ("same-node", lambda sc: sc.client.ip, False),                           # bridged, nothing masquerades
    ("hairpin", lambda sc: sc.node("meizu").docker.bridge_ip, False),        # KUBE-MARK-MASQ, out by docker0
    ("from-node", lambda sc: sc.node("xiaomi").vtep_ip, True),               # off-cluster source, flannel.1
    ("nodeport", lambda sc: sc.node("xiaomi").vtep_ip, True),                # KUBE-NODEPORTS marks everything
    ("pod-to-world", lambda sc: sc.node("xiaomi").nic.ip, False),            # Docker's rule, out by enp4s0
    ("pod-to-pod", lambda sc: sc.node("xiaomi").vtep_ip, True),              # the article breaks the model
    ("pod-to-pod-flannel-ip-masq", lambda sc: sc.client.ip, True),           # -s n -d n -j RETURN
])
def test_case_summary_says_what_the_server_sees(name, seen_by_server, vxlan):
    sc = ck.load_scenario(name)
    c = ck.cases.summary(sc)
    assert c.server_sees.split(":")[0] == str(seen_by_server(sc)) and c.vxlan is vxlan
    assert c.outcome.startswith("answered") and c.calls == f"{sc.target_ip}:{sc.target_dport}"


def test_case_summary_of_a_failure_says_where_and_why():
    c = ck.cases.summary("same-node-no-br-netfilter")
    assert c.client_sees.startswith("172.30.83.2:")            # nginx's own address: no un-DNAT on the bridge
    assert "dropped at busybox eth0" in c.outcome and "RST" in c.outcome
    assert ck.cases.summary("from-node").nat[0].startswith("xiaomi OUTPUT: DNAT")      # a local process: nat OUTPUT


def test_cases_table_lists_every_case_once_and_refuses_non_lists():
    lines = ck.cases.table().splitlines()
    assert [ln.split()[0] for ln in lines[1:]] == list(ck.cases.CASES)
    for bad in ("article", 7, None):
        with pytest.raises(ck.CourseError, match="^scenarios: "):
            ck.cases.table(bad)
    with pytest.raises(ck.CourseError, match="^walk: "):
        ck.cases.summary("article", walk="not a walk")
