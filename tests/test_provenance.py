"""Four labels: computed, observed (printed in the article), inferred (deduced from it, other explanations
possible) and assumed (a stand-in).  An inference is never presented as an observation."""

import pytest

import coursekit as ck
from conftest import ROOT
from coursekit import provenance as pv


# Values the article does not print but that are read back from what it prints (FACTS §2, §5, §9):
# the pod MTUs from the MSS (a TCPMSS clamp would announce the same), Docker's masquerade from the source
# 172.30.83.0 (kube-proxy --masquerade-all would give the same), the TS clocks fitted to the TS values.
INFERRED = ["nodes.xiaomi.docker.ipMasq", "nodes.xiaomi.docker.mtu", "nodes.meizu.docker.mtu",
            "observed.clientTSOffsetUs", "observed.serverTSOffsetUs"]
OBSERVED = ["observed.clientPort", "observed.clientISN", "observed.vxlanSourcePort.xiaomi", "pods.busybox.ip"]


@pytest.mark.parametrize("path", INFERRED)
def test_inferences_are_labelled_inferred(article, path):
    assert pv.of_path(article, path).label == "inferred"


@pytest.mark.parametrize("path", OBSERVED)
def test_what_the_article_prints_stays_observed(article, path):
    assert pv.of_path(article, path).label == "observed"


@pytest.mark.parametrize("name", ["article-flannel", "article-docker0"])
def test_fitted_clocks_are_inferred_in_every_transcript(name):
    sc = ck.load_scenario(name)
    assert {pv.of_path(sc, f"observed.{k}TSOffsetUs").label for k in ("client", "server")} == {"inferred"}


def test_describe_groups_the_inferred_values(article):
    text = ck.describe(article)
    observed = text.split("\n  observed\n")[1].split("\n  inferred\n")[0]
    inferred = text.split("\n  inferred\n")[1].split("\n  assumed\n")[0]
    assert "docker.ipMasq" in inferred and "docker.ipMasq" not in observed
    assert "docker.mtu" in inferred and "docker.mtu" not in observed
    # an inference says what else would print the same
    assert "--masquerade-all" in inferred and "TCPMSS" in inferred


def test_a_frame_field_copied_from_an_inferred_value_is_inferred(article_walk, article):
    """The request's MSS is computed from the pod MTU; the MTU itself is inferred, and the tree shows four labels."""
    get = article_walk.find(segment="GET", at=("meizu", "enp4s0"))
    labels = {line.split()[2] for line in ck.tree(get, scenario=article).splitlines() if line.startswith("    ")}
    assert labels <= set(pv.LABELS) and {"computed", "observed", "assumed"} <= labels


def test_a_scenario_may_label_a_value_inferred_and_nothing_else_new():
    assert pv.parse_entries({"observed.clientPort": "inferred: from the ACK"}) == \
        (("observed.clientPort", "inferred", "from the ACK"),)
    with pytest.raises(ck.CourseError, match="inferred"):
        pv.parse_entries({"observed.clientPort": "guessed: x"})


@pytest.mark.parametrize("path", sorted((ROOT / "data" / "scenarios").rglob("*.yaml")),
                         ids=lambda p: str(p.relative_to(ROOT / "data" / "scenarios")))
def test_every_pods_mac_has_a_label(path):
    """A pod's MAC (and its veth's) is traced to where the scenario sets the pod: pods.x,
    workloads.w.pods.N, or dns.server for the DNS pod (which a name like "coredns" once broke)."""
    from coursekit.provenance import _mac_path
    sc = ck.as_scenario(path)
    for p in sc.pods:
        for mac, key in ((p.mac, ".mac"), (p.veth_mac, ".vethMac")):
            where = _mac_path(sc, mac)
            assert where is not None and where.endswith(key), (p.name, where)
            assert ck.provenance.of_path(sc, where).label in ("computed", "observed", "assumed")
