"""Whatever the scenario validator accepts, the model walks, captures and renders.

A property test over random *valid* scenarios (hypothesis): every value a
scenario file can change, drawn from the range the validator allows; each
accepted scenario is walked, captured on every interface of every node and
pod, rendered with tcpdump's flags, dissected frame by frame, described and
its nat table printed -- with no exception at all.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coursekit as ck
from coursekit.tcpdump import Style, parse_flags

IFNAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-@+=,",
                 min_size=1, max_size=15).filter(lambda s: s not in (".", "..", "lo", "docker0")
                                                 and not s.startswith("flannel."))
TOKEN = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh!#$%&'*+.^_`|~0123456789-", min_size=1, max_size=12)
PATH = st.text(alphabet=[chr(c) for c in range(0x21, 0x7f)], max_size=60).map(lambda s: "/" + s)
UA = st.text(alphabet=[chr(c) for c in range(0x20, 0x7f)], max_size=40)
MTU = st.integers(576, 9000)


@st.composite
def overrides(draw) -> dict:
    o: dict = {"observed.times": None, "observed.windows": None, "observed.tsLagTicks": {}}
    maybe = lambda: draw(st.booleans())       # noqa: E731
    if maybe():
        o["flannel.port"] = draw(st.integers(1, 65535))
    if maybe():
        o["flannel.vni"] = draw(st.integers(0, 9_999_999))
    o["flannel.udpChecksum"] = draw(st.booleans())
    o["flannel.ipMasq"] = draw(st.booleans())
    o["kubeProxy.masqueradeAll"] = draw(st.booleans())
    o["neighbourCaches"] = draw(st.sampled_from(["warm", "cold"]))
    for n in ("xiaomi", "meizu"):
        if maybe():
            nic_mtu = draw(st.integers(626, 9000))
            o[f"nodes.{n}.nic.mtu"] = nic_mtu
            o[f"nodes.{n}.docker.mtu"] = draw(st.integers(576, 9000))
        if maybe():
            o[f"nodes.{n}.nic.name"] = draw(IFNAME)
            if n == "meizu":                      # the article's times are anchored on meizu's NIC
                o["observed.anchor.interface"] = o[f"nodes.{n}.nic.name"]
        o[f"nodes.{n}.defaultTTL"] = draw(st.integers(2, 255))
        o[f"nodes.{n}.docker.ipMasq"] = draw(st.booleans())
        o[f"nodes.{n}.bridgeNfCallIptables"] = draw(st.booleans())
        if maybe():
            lo = draw(st.integers(1, 65535))
            o[f"nodes.{n}.ephemeralPorts"] = [lo, draw(st.integers(lo, 65535))]
    if maybe():
        o["nodes.meizu.nic.address"] = f"10.167.226.{draw(st.integers(1, 254))}/24"
    if maybe():                      # another addressing plan altogether
        net = ipaddress.IPv4Network(f"10.{draw(st.integers(0, 255))}.0.0/16")
        slen = draw(st.integers(20, 28))
        subnets = list(net.subnets(new_prefix=slen))
        a, b = draw(st.lists(st.integers(0, len(subnets) - 1), min_size=2, max_size=2, unique=True))
        under = ipaddress.IPv4Network(f"192.168.{draw(st.integers(0, 255))}.0/{draw(st.integers(16, 30))}", strict=False)
        hosts = [under.network_address + 1, under.network_address + 2]
        svc = ipaddress.IPv4Network(f"172.{draw(st.integers(16, 31))}.0.0/{draw(st.integers(12, 24))}", strict=False)
        o.update({"flannel.network": str(net), "flannel.subnetLen": slen, "kubeProxy.clusterCIDR": str(net),
                  "nodes.xiaomi.subnet": str(subnets[a]), "nodes.meizu.subnet": str(subnets[b]),
                  "nodes.xiaomi.nic.address": f"{hosts[0]}/{under.prefixlen}",
                  "nodes.meizu.nic.address": f"{hosts[1]}/{under.prefixlen}",
                  "pods.busybox.ip": str(subnets[a][draw(st.integers(2, subnets[a].num_addresses - 2))]),
                  "serviceCIDR": str(svc), "services.nginx.clusterIP": str(svc[draw(st.integers(1, 200))]),
                  "names.hosts": None})
    if maybe():
        o["pods.busybox.veth"] = draw(IFNAME)
    if maybe():
        o["workloads.nginx.pods.1.veth"] = draw(IFNAME)
    replicas = draw(st.integers(1, 3))
    o["workloads.nginx.replicas"] = replicas
    o["observed.endpoint"] = draw(st.integers(0, replicas - 1))
    if maybe():
        port = draw(st.integers(1, 65535))
        o["services.nginx.ports.0.port"] = port
        o["request.port"] = port
        o["services.nginx.ports.0.targetPort"] = draw(st.integers(1, 65535))
    if maybe() and "serviceCIDR" not in o:
        o["services.nginx.clusterIP"] = str(ipaddress.IPv4Address("10.254.0.1") + draw(st.integers(0, 65532)))
    if maybe():
        o["request.method"] = draw(TOKEN)
        o["request.path"] = draw(PATH)
        o["request.userAgent"] = draw(UA)
    o["observed.clientPort"] = draw(st.integers(1, 65535))
    o["observed.clientISN"] = draw(st.integers(0, 2**32 - 1))
    o["observed.serverISN"] = draw(st.integers(0, 2**32 - 1))
    o["observed.wscale"] = {"client": draw(st.integers(0, 14)), "server": draw(st.integers(0, 14))}
    o["observed.vxlanSourcePort"] = draw(st.sampled_from([{}, {"xiaomi": 1}, {"meizu": 65535, "xiaomi": 4789}]))
    o["observed.ipId"] = draw(st.sampled_from([{}, {"client": 65535, "server": 0, "xiaomi": 65535}]))
    if maybe():
        o["utcOffset"] = draw(st.sampled_from(["+00:00", "-14:00", "+14:00", "+05:45", "-03:30"]))
    if maybe():
        o["timing"] = {k: draw(st.integers(0, 2000)) for k in
                       ("vethUs", "bridgeUs", "forwardUs", "encapUs", "wireUs", "decapUs", "processUs", "arpUs")}
    return o


def exercise(sc) -> int:
    """Everything a learner can look at, on every interface; returns how many frames were seen."""
    w = ck.walk(sc)
    seen = 0
    owners = [n.name for n in sc.nodes] + [p.name for p in sc.pods]
    for owner in owners:
        for iface in sc.interfaces(owner):
            frames = ck.capture(sc, owner, iface, walk=w)
            for flags in ("", "-nn -e -v"):
                ck.render(frames, Style.for_scenario(sc, **parse_flags(flags)))
            for f in frames[:4]:
                ck.tree(f)
                ck.hexdump(f)
            if frames:                            # every field of a frame has a provenance label
                assert all(word in ("computed", "observed", "inferred", "assumed") for word in
                           (line.split()[2] for line in ck.tree(frames[0], scenario=sc).splitlines()
                            if line.startswith("    ")))
            seen += len(frames)
    for seg in range(len(w.segments)):
        path = w.path(seg)
        for a, b in zip(path, path[1:]):
            ck.changes(a, b)
    ck.describe(sc)
    for n in sc.nodes:
        ck.nat_save(sc, n.name)
    return seen


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(overrides())
def test_valid_scenarios_walk_capture_and_render(over):
    try:
        sc = ck.load_scenario("article", over)
    except ck.CourseError:
        from hypothesis import reject
        reject()
    assert exercise(sc) > 0


@pytest.mark.parametrize("over", [
    {"flannel.port": 5000}, {"flannel.port": 53}, {"flannel.port": 80}, {"flannel.vni": 0},
    {"flannel.vni": 9_999_999},
    {"nodes.xiaomi.nic.name": "eth0", "nodes.meizu.nic.name": "ens3", "observed.anchor.interface": "ens3"},
])
def test_examples_that_crashed_before(over):
    sc = ck.load_scenario("article", over)
    assert exercise(sc) > 0
    # the walk decoded VXLAN by the scenario's port: the inner frame reached the server pod
    w = ck.walk(sc)
    assert len(w.at(sc.server.name, "eth0")) == len(w.at(sc.client.name, "eth0"))


def test_vxlan_on_any_port_is_dissected_by_the_scenarios_port():
    sc = ck.load_scenario("article", {"flannel.port": 5000})
    f = ck.capture(sc, "meizu", "enp4s0")[0]
    keys = [ly.key for ly in ck.dissect.dissect(f)]
    assert keys[:5] == ["outer Ethernet", "outer IPv4", "outer UDP", "VXLAN", "Ethernet"]
    # bare bytes carry no scenario: a non-standard port stays plain UDP, as in Wireshark
    assert "VXLAN" not in [ly.key for ly in ck.dissect.dissect(f.data)]
    assert "VXLAN" in [ly.key for ly in ck.dissect.dissect(f.data, vxlan_port=5000)]
