"""kube-proxy's chains: hashed names, rule text, probabilities."""

import coursekit as ck
from coursekit.kubeproxy import endpoint_chain, service_chain
from coursekit.netfilter import iptables_save, nat_table


def test_the_name_every_cluster_shows():
    assert service_chain("default", "kubernetes", "https") == "KUBE-SVC-NPX46M4PTMTKRN6Y"


def test_nat_table_of_the_article(article):
    rules, chains = nat_table(article, "xiaomi")
    text = iptables_save(rules, chains)
    svc = service_chain("default", "nginx", "")
    sep = endpoint_chain("default", "nginx", "", "TCP", "172.30.20.2:80")
    assert f"-A KUBE-SERVICES -d 10.254.40.119/32 -p tcp -m comment --comment \"default/nginx: cluster IP\" " \
           f"-m tcp --dport 4432 -j {svc}" in text
    assert "-A KUBE-SERVICES ! -s 172.30.0.0/16 -d 10.254.40.119/32 -p tcp" in text
    assert f"-A {svc} -j {sep}" in text                          # one endpoint: no statistic match
    assert f"-A {sep} -p tcp -m comment --comment \"default/nginx:\" -m tcp -j DNAT --to-destination 172.30.20.2:80" in text
    assert "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000" in text
    assert "-A POSTROUTING -s 172.30.83.0/24 ! -o docker0 -j MASQUERADE" in text
    assert text.startswith("*nat\n:PREROUTING ACCEPT [0:0]") and text.endswith("COMMIT\n")


def test_three_replicas_probabilities():
    sc = ck.load_scenario("article", {"workloads.nginx.replicas": 3})
    rules, chains = nat_table(sc, "xiaomi")
    svc = service_chain("default", "nginx", "")
    lines = [r.save() for r in rules if r.chain == svc]
    assert len(lines) == 3
    assert "--probability 0.33332999982" in lines[0]            # 0.33333 as the kernel stores it
    assert "--probability 0.50000000000" in lines[1]
    assert "statistic" not in lines[2]


def test_flannel_ip_masq_rules():
    sc = ck.load_scenario("article", {"flannel.ipMasq": True})
    text = iptables_save(*nat_table(sc, "xiaomi"))
    assert "-A POSTROUTING -s 172.30.0.0/16 -d 172.30.0.0/16 -j RETURN" in text
    assert "-A POSTROUTING -s 172.30.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE" in text
