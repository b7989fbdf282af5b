"""The cluster as data: defaults, manifests, and one clear error per mistake."""

import pytest

import coursekit as ck
from coursekit.scenario import docker_mac


def test_article_defaults(article):
    assert [n.name for n in article.nodes] == ["xiaomi", "meizu"]
    assert str(article.client.ip) == "172.30.83.9"
    assert str(article.server.ip) == "172.30.20.2"      # Docker IPAM's first address on meizu
    assert article.server.node == "meizu"                # nodeName from the Deployment
    sp = article.service_port
    assert (sp.port, sp.target_port) == (4432, 80)       # from the Service manifest
    assert article.flannel.device == "flannel.1"
    assert str(article.node("xiaomi").vtep_ip) == "172.30.83.0"
    assert str(article.node("meizu").docker.bridge_ip) == "172.30.20.1"
    assert article.server.mac == "02:42:ac:1e:14:02" == docker_mac(article.server.ip)


@pytest.mark.parametrize("change,field", [
    ({"nodes.xiaomi.nic.address": "10.167.226.300/24"}, "nodes.xiaomi.nic.address"),
    ({"pods.busybox.ip": "172.30.20.9"}, "pods.busybox.ip"),              # outside xiaomi's subnet
    ({"pods.busybox.ip": "172.30.83.1"}, "pods.busybox.ip"),              # docker0's address
    ({"pods.busybox.ip": "banana"}, "pods.busybox.ip"),
    ({"nodes.meizu.subnet": "172.30.83.0/24"}, "nodes.meizu.subnet"),      # overlapping leases
    ({"nodes.meizu.subnet": "10.1.0.0/24"}, "nodes.meizu.subnet"),         # outside the network
    ({"services.nginx.clusterIP": "10.1.2.3"}, "services.nginx.clusterIP"),
    ({"request.port": 70000}, "request.port"),
    ({"request.port": 80}, "request.port"),                                 # not a Service port
    ({"flannel.port": 0}, "flannel.port"),
    ({"flannel.vni": 1 << 24}, "flannel.vni"),
    ({"nodes.xiaomi.nic.mtu": 100}, "nodes.xiaomi.nic.mtu"),               # too small for VXLAN
    ({"nodes.xiaomi.docker.mtu": 68}, "nodes.xiaomi.docker.mtu"),
    ({"pods.busybox.node": "huawei"}, "pods.busybox.node"),
    ({"workloads.nginx.node": "huawei"}, "workloads.nginx.node"),
    ({"request.client": "curl"}, "request.client"),
    ({"nodes.xiaomi.nic.mac": "01:00:5e:00:00:01"}, "nodes.xiaomi.nic.mac"),
    ({"serviceCIDR": "172.30.0.0/24"}, "serviceCIDR"),
    ({"observed.endpoint": 3}, "observed.endpoint"),
    ({"observed.times": ["2019-08-28T11:25:22+08:00"]}, "observed.times"),
    ({"observed.start": "yesterday"}, "observed.start"),
    ({"utcOffset": "+25:00"}, "utcOffset"),
    ({"kubeProxy.mode": "ipvs"}, "kubeProxy.mode"),
])
def test_errors_name_the_field(change, field):
    with pytest.raises(ck.CourseError) as e:
        sc = ck.load_scenario("article", change)
        ck.walk(sc)
    assert e.value.field == field
    assert str(e.value).startswith(field + ": ")


def test_unknown_scenario_file():
    with pytest.raises(ck.CourseError, match="no such file"):
        ck.load_scenario("no-such-scenario")


def test_with_changes_revalidates(article):
    sc = article.with_changes({"flannel.vni": 42})
    assert sc.flannel.device == "flannel.42" and sc.interfaces("meizu")[1] == "flannel.42"
    with pytest.raises(ck.CourseError):
        article.with_changes({"flannel.vni": -1})


def test_time_parsing_ignores_machine_timezone(monkeypatch):
    import time
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        sc = ck.load_scenario("article")
        assert sc.observed.times_us[0] == 1566962722220286
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
