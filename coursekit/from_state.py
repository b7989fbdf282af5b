"""A real cluster's state, turned into a scenario the model can walk.

``coursekit scenario from-state DIR -o my.yaml`` (``ck.scenario_from_state``)
reads what ``coursekit collect`` gathered on each node (:mod:`.state`) and
writes a scenario file and, beside it, ``my-manifests.yaml`` with the
Services.  Every value says where it came from, in the scenario's own
``provenance:`` section (docs/scenario-format.md):

* **observed** -- printed by a command on a node: the NIC's address, MAC and
  MTU (``ip -d addr``), flannel.1's VNI, port and MAC, docker0's address,
  MAC and MTU, a pod's MAC (``ip neigh`` on the bridge) and veth (``bridge
  fdb``), a Service's cluster IP, ports and endpoints (kube-proxy's rules in
  ``iptables-save``), the request's client, target and port (``conntrack
  -L``), sysctls;
* **inferred** -- deduced from what is printed, where something else would
  print the same: a node's flannel lease from docker0's address, Docker's
  masquerade from a ``-s <lease> ! -o docker0 -j MASQUERADE`` rule, the pod
  network from kube-proxy's ``--cluster-cidr``;
* **assumed** -- no collected output says it: the Service CIDR, names the
  state does not give (pods without kubectl JSON), flannel's and
  kube-proxy's versions, the times and numbers the kernel picks for a
  connection (``observed:`` is left to the model's defaults, except the
  client port conntrack shows).

What the model cannot hold is listed in :attr:`Derived.notes` and in the
file's header, never dropped silently: a UDP Service (kube-dns: the format
builds it only from a ``dns:`` section), a bridge named ``cni0`` (the model
calls it docker0), connections beyond the first in conntrack, nodes that
disagree.

Interface naming: the NIC is the device flannel.1's ``vxlan ... dev`` names;
the bridge is ``docker0`` (or a bridge holding an address of the node's
lease); pods' host-side veths are the bridge ports ``bridge fdb`` puts
their MACs behind.

Taught in: 10-your-own-cluster.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import CourseError, public

__all__ = ["Derived", "derive", "scenario_from_state", "write_scenario"]

_OBS, _INF, _ASM = "observed", "inferred", "assumed"


@dataclass
class Derived:
    """A scenario document built from a cluster's state, with where each value came from."""
    doc: dict                                          # the scenario (``manifests:`` set by write())
    manifests: list                                    # Service documents
    provenance: dict                                   # path -> "label: why" (also doc["provenance"])
    notes: list = field(default_factory=list)          # what could not be carried into the scenario

    def assumed(self) -> list[str]:
        """The paths whose value no collected output gives (``assumed``), in order."""
        return [p for p, v in self.provenance.items() if v.startswith(_ASM)]

    def text(self) -> str:
        """A short account: what was read, what was assumed, what was left out."""
        lab = {k: [p for p, v in self.provenance.items() if v.startswith(k)] for k in (_OBS, _INF, _ASM)}
        w = [f"scenario {self.doc['name']}: {len(self.doc['nodes'])} nodes, {len(self.doc.get('pods') or {})} pods, "
             f"{len(self.manifests)} Service{'s' if len(self.manifests) != 1 else ''}; {len(lab[_OBS])} values observed, {len(lab[_INF])} inferred, "
             f"{len(lab[_ASM])} assumed"]
        for p in lab[_ASM]:
            w.append(f"  assumed {p}: {self.provenance[p].split(':', 1)[1].strip()}")
        for n in self.notes:
            w.append(f"  not carried over: {n}")
        return "\n".join(w) + "\n"

    def yaml(self, manifests_name: str) -> str:
        doc = dict(self.doc, manifests=manifests_name) if self.manifests else dict(self.doc)
        head = ["# Built by `coursekit scenario from-state` from a cluster's collected state.",
                "# provenance: says for every value whether a node printed it (observed), it",
                "# was deduced (inferred) or no output gives it (assumed)."]
        head += [f"# not carried over: {n}" for n in self.notes]
        return "\n".join(head) + "\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False,
                                                       allow_unicode=True, width=100)

    def manifests_yaml(self) -> str:
        return yaml.safe_dump_all(self.manifests, sort_keys=False, default_flow_style=False, width=100)


def _ip(x):
    return ipaddress.IPv4Address(x)


def _strict(st) -> None:
    """A line the parsers could not read is an error here: a scenario must not rest on half a table."""
    for p in st.problems:
        m = re.match(r"state (\S+) line (\d+) \((.+?)\): (.*)", p)
        if m:
            raise CourseError(f"state {m.group(1)} line {m.group(2)}", f"({m.group(3)}) {m.group(4)}",
                              "the command's own output, as coursekit collect writes it")


def _section_of(n, *words) -> tuple[str, int]:
    for cmd, where in n.where.items():
        if all(w in cmd.split() for w in words):
            return where
    return (f"{n.name}-state.txt", 0)


def _file(n) -> str:
    """The state file a node's sections came from."""
    return next(iter(n.where.values()))[0] if n.where else f"{n.name}-state.txt"


def _need(n, what: str, have, words: tuple, allowed: str):
    if not have:
        raise CourseError(f"state {_file(n)}", f"{what}", allowed)
    return have


@public
def derive(state, name: str | None = None) -> Derived:
    """Build a scenario document from a state folder (or a loaded :class:`~coursekit.state.ClusterState`).

    >>> d = ck.from_state.derive("state/")          # doctest: +SKIP
    >>> print(d.text())

    Taught in: 10-your-own-cluster.
    """
    from .state import ClusterState, load_state
    st = state if isinstance(state, ClusterState) else load_state(state)
    _strict(st)
    if name is None:
        name = "from-state"
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z", name):
        raise CourseError("name", f"{name!r:.40} is not a scenario name", "1-64 letters, digits, '.', '_' or '-'")
    nodes = dict(st.nodes)
    if len(nodes) < 2:
        raise CourseError("state", f"{len(nodes)} node{'s' if len(nodes) != 1 else ''} in the folder "
                          f"({', '.join(nodes) or 'none'})", "the <node>-state.txt of at least two nodes")
    prov: dict = {}
    notes: list = []

    def label(path, how, why):
        prov[path] = f"{how}: {why}"

    doc: dict = {"name": name, "description": f"built from the collected state of {', '.join(nodes)}"}
    label("utcOffset", _ASM, "the state does not say the nodes' time zone; times print in UTC")

    # --- each node: NIC, flannel.1, the bridge ----------------------------------------------------
    nd: dict = {}
    vnis, ports, csums, vteps = {}, {}, {}, {}
    bridges: dict = {}
    for nname, n in nodes.items():
        if not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z", nname):
            raise CourseError(f"state {nname}", "is not a node name the scenario format takes",
                              "lower-case letters, digits, '-' and '.'")
        f = f"nodes.{nname}"
        _need(n, "no 'ip -d addr' section (the NIC, flannel.1 and docker0 come from it)", n.ifaces, ("addr",),
              "the output of ip -d addr")
        vx = [i for i in n.ifaces.values() if i.vxlan]
        if not vx:
            raise CourseError(f"state {_file(n)}", "no VXLAN device in 'ip -d addr' (no 'vxlan id N ...' line)",
                              "flannel's vxlan backend: flannel.<VNI>, printed by ip -d addr (not ip addr)")
        vt = next((i for i in vx if i.name.startswith("flannel.")), vx[0])
        if vt.name != f"flannel.{vt.vxlan['id']}":
            notes.append(f"{nname}: the VXLAN device is {vt.name}; the model names it flannel.{vt.vxlan['id']}")
        vnis[nname], ports[nname], vteps[nname] = vt.vxlan["id"], vt.vxlan["dstport"], vt
        if "udpcsum" in vt.vxlan:
            csums[nname] = vt.vxlan["udpcsum"]
        nic_name = vt.vxlan.get("dev") or next((d for net, d, via, _ in n.routes if net.prefixlen == 0), None)
        nic = n.ifaces.get(nic_name) if nic_name else None
        if nic is None or not nic.addrs:
            raise CourseError(f"state {_file(n)}", f"no address on the NIC {nic_name or '(none named)'} that "
                              f"{vt.name} sends from", "ip -d addr showing the NIC with its inet address")
        addr = next((a for a in nic.addrs if str(a.ip) == vt.vxlan.get("local")), nic.addrs[0])
        ndoc: dict = {"nic": {"name": nic.name, "address": str(addr)}}
        label(f"{f}.nic.name", _OBS, f"ip -d addr: {vt.name}'s 'vxlan ... dev {nic.name}'"
              if vt.vxlan.get("dev") else "ip route: the default route's device")
        label(f"{f}.nic.address", _OBS, f"ip -d addr: inet {addr} on {nic.name}")
        if nic.mac:
            ndoc["nic"]["mac"] = nic.mac
            label(f"{f}.nic.mac", _OBS, f"ip -d addr: link/ether of {nic.name}")
        if nic.mtu:
            ndoc["nic"]["mtu"] = nic.mtu
            label(f"{f}.nic.mtu", _OBS, f"ip -d addr: mtu of {nic.name}")
        if vt.mac:
            ndoc["vtepMac"] = vt.mac
            label(f"{f}.vtepMac", _OBS, f"ip -d addr: link/ether of {vt.name}")
        # the bridge and the node's lease
        env_sub = n.subnet_env.get("FLANNEL_SUBNET")
        br = n.ifaces.get("docker0")
        if br is None:
            cands = [i for i in n.ifaces.values() if (i.kind == "bridge" or any(
                j.master == i.name for j in n.ifaces.values())) and i.addrs]
            br = cands[0] if cands else None
        if br is None or not br.addrs:
            raise CourseError(f"state {_file(n)}", "no bridge with an address in 'ip -d addr' (docker0 or cni0)",
                              "the pods' bridge, with the first address of the node's flannel lease")
        if br.name != "docker0":
            notes.append(f"{nname}: the pods' bridge is {br.name}; the model names it docker0")
        bridges[nname] = br
        baddr = br.addrs[0]
        if env_sub:
            try:
                sub = ipaddress.IPv4Interface(env_sub).network
            except ValueError:
                f_, at = _section_of(n, "/run/flannel/subnet.env")
                raise CourseError(f"state {f_} line {at}", f"FLANNEL_SUBNET={env_sub!r} is not an address/prefix",
                                  "FLANNEL_SUBNET=172.30.83.1/24") from None
            label(f"{f}.subnet", _OBS, f"subnet.env: FLANNEL_SUBNET={env_sub}")
        else:
            sub = baddr.network
            label(f"{f}.subnet", _INF, f"{br.name}'s address {baddr} (Docker takes the lease's first address; "
                  "flannel's subnet.env would say it directly)")
        if baddr.ip != sub.network_address + 1:
            notes.append(f"{nname}: {br.name} is {baddr.ip}, the model puts it at {sub.network_address + 1}")
        ndoc["subnet"] = str(sub)
        ndoc["docker"] = {}
        if br.mtu:
            ndoc["docker"]["mtu"] = br.mtu
            label(f"{f}.docker.mtu", _OBS, f"ip -d addr: mtu of {br.name} (the model gives the pods the same)")
        if br.mac:
            ndoc["docker"]["bridgeMac"] = br.mac
            label(f"{f}.docker.bridgeMac", _OBS, f"ip -d addr: link/ether of {br.name}")
        masq = any(r.chain == "POSTROUTING" and r.target == "MASQUERADE" and r.opts.get("-s", (0, ""))[1] == str(sub)
                   and r.opts.get("-o") == (True, br.name) for r in n.nat)
        ndoc["docker"]["ipMasq"] = masq
        if n.nat:
            label(f"{f}.docker.ipMasq", _INF, f"iptables-save: {'a' if masq else 'no'} '-s {sub} ! -o {br.name} -j "
                  f"MASQUERADE' rule (Docker --ip-masq{'=false' if not masq else ''}; another tool could add it)")
        else:
            label(f"{f}.docker.ipMasq", _ASM, "no iptables-save section: Docker's rule cannot be seen")
        ndoc["defaultRoute"] = any(net.prefixlen == 0 for net, *_ in n.routes)
        label(f"{f}.defaultRoute", _OBS if n.routes else _ASM,
              "ip route: a default route" + (" is there" if ndoc["defaultRoute"] else " is missing")
              if n.routes else "no ip route section")
        hp = {i.hairpin for i in n.ifaces.values() if i.master == br.name and i.hairpin is not None}
        if len(hp) == 1:
            ndoc["hairpinMode"] = hp.pop()
            label(f"{f}.hairpinMode", _OBS, f"ip -d addr: 'hairpin {'on' if ndoc['hairpinMode'] else 'off'}' on "
                  f"{br.name}'s ports")
        else:
            label(f"{f}.hairpinMode", _ASM, "ip -d addr shows no (or mixed) hairpin settings on the bridge's ports"
                  if hp else "ip -d addr shows no bridge port details (ip addr without -d?)")
        sy = n.sysctl
        if "net.bridge.bridge-nf-call-iptables" in sy:
            v = sy["net.bridge.bridge-nf-call-iptables"]
            ndoc["bridgeNfCallIptables"] = v == "1"
            label(f"{f}.bridgeNfCallIptables", _OBS, f"sysctl: net.bridge.bridge-nf-call-iptables = {v}"
                  if v is not None else "sysctl: no net.bridge.bridge-nf-call-iptables (br_netfilter not loaded)")
        else:
            label(f"{f}.bridgeNfCallIptables", _ASM, "no sysctl section: br_netfilter taken as loaded and on")
        if (sy.get("net.ipv4.ip_default_ttl") or "").isdigit():
            ndoc["defaultTTL"] = int(sy["net.ipv4.ip_default_ttl"])
            label(f"{f}.defaultTTL", _OBS, f"sysctl: net.ipv4.ip_default_ttl = {ndoc['defaultTTL']}")
        else:
            label(f"{f}.defaultTTL", _ASM, "no sysctl section: Linux's 64")
        pr = (sy.get("net.ipv4.ip_local_port_range") or "").split()
        if len(pr) == 2 and all(x.isdigit() for x in pr):
            ndoc["ephemeralPorts"] = [int(pr[0]), int(pr[1])]
            label(f"{f}.ephemeralPorts", _OBS, f"sysctl: net.ipv4.ip_local_port_range = {pr[0]} {pr[1]}")
        else:
            label(f"{f}.ephemeralPorts", _ASM, "no sysctl section: Linux's 32768-60999")
        nd[nname] = ndoc
    doc["nodes"] = nd
    if len(set(vnis.values())) > 1 or len(set(ports.values())) > 1:
        raise CourseError("state", "the nodes' VXLAN devices disagree: " + ", ".join(
            f"{k} id {vnis[k]} dstport {ports[k]}" for k in nodes), "one VNI and one port on every node (flannel's)")

    # --- flannel ---------------------------------------------------------------------------------
    first = next(iter(nodes.values()))
    fl: dict = {"backend": "vxlan", "vni": next(iter(vnis.values())), "port": next(iter(ports.values()))}
    label("flannel", _ASM, "flannel v0.11's vxlan backend (the only version and backend the model has)")
    label("flannel.vni", _OBS, f"ip -d addr: vxlan id {fl['vni']}")
    label("flannel.port", _OBS, f"ip -d addr: dstport {fl['port']}")
    subs = [ipaddress.IPv4Network(nd[k]["subnet"]) for k in nodes]
    env_net = next((n.subnet_env.get("FLANNEL_NETWORK") for n in nodes.values() if n.subnet_env.get("FLANNEL_NETWORK")),
                   None)
    kp_cidr = next((r.opts["-s"][1] for n in nodes.values() for r in n.nat if r.chain == "KUBE-SERVICES"
                    and r.opts.get("-s", (False, ""))[0] and r.target == "KUBE-MARK-MASQ"), None)
    net = None
    for cand, how, why in ((env_net, _OBS, f"subnet.env: FLANNEL_NETWORK={env_net}"),
                           (kp_cidr, _INF, f"kube-proxy's --cluster-cidr ('! -s {kp_cidr}' in KUBE-SERVICES), "
                                           "which is usually flannel's Network")):
        if cand:
            try:
                c = ipaddress.IPv4Network(cand, strict=False)
            except ValueError:
                continue
            if all(s.subnet_of(c) for s in subs):
                net = c
                label("flannel.network", how, why)
                break
    if net is None:
        net = subs[0]
        while not all(s.subnet_of(net) for s in subs) or net.prefixlen > 16 and net.prefixlen > subs[0].prefixlen - 8:
            net = net.supernet()
            if not all(s.subnet_of(net) for s in subs) and net.prefixlen == 0:
                break
        label("flannel.network", _ASM, f"the smallest /16-or-wider range holding every node's lease ({net}); "
              "no subnet.env and no kube-proxy --cluster-cidr say it")
    fl["network"] = str(net)
    fl["subnetLen"] = subs[0].prefixlen
    label("flannel.subnetLen", _INF, f"the prefix of the nodes' leases (/{subs[0].prefixlen})")
    if len({s.prefixlen for s in subs}) > 1:
        raise CourseError("state", "the nodes' leases differ in size: " + ", ".join(str(s) for s in subs),
                          "one SubnetLen for every node (flannel's)")
    env_masq = next((n.subnet_env.get("FLANNEL_IPMASQ") for n in nodes.values() if n.subnet_env.get("FLANNEL_IPMASQ")),
                    None)
    if env_masq in ("true", "false"):
        fl["ipMasq"] = env_masq == "true"
        label("flannel.ipMasq", _OBS, f"subnet.env: FLANNEL_IPMASQ={env_masq}")
    else:
        fl["ipMasq"] = any(r.chain == "POSTROUTING" and r.target == "RETURN" and r.opts.get("-s", (0, ""))[1] == str(net)
                           and r.opts.get("-d", (0, ""))[1] == str(net) for n in nodes.values() for r in n.nat)
        label("flannel.ipMasq", _INF, f"iptables-save: flanneld -ip-masq's '-s {net} -d {net} -j RETURN' rule is "
              f"{'there' if fl['ipMasq'] else 'missing'}")
    if csums and len(set(csums.values())) == 1:
        fl["udpChecksum"] = next(iter(csums.values()))
        label("flannel.udpChecksum", _OBS, f"ip -d addr: {'' if fl['udpChecksum'] else 'no'}udpcsum")
    else:
        label("flannel.udpChecksum", _ASM, "ip -d addr prints no [no]udpcsum: Linux >= 4.6's checksum")
    doc["flannel"] = fl

    # --- kube-proxy and the Services ------------------------------------------------------------
    kp: dict = {"mode": "iptables"}
    label("kubeProxy", _ASM, "kube-proxy 1.14 in iptables mode (the only one the model has)")
    bit = None
    for n in nodes.values():
        for r in n.nat:
            if r.chain == "KUBE-MARK-MASQ" and r.target == "MARK":
                v = (r.opts.get("--set-xmark") or r.opts.get("--or-mark") or (0, ""))[1].split("/")[0]
                try:
                    m = int(v, 0)
                except ValueError:
                    continue
                if m and m & (m - 1) == 0:
                    bit = m.bit_length() - 1
        if bit is not None:
            break
    if bit is not None:
        kp["masqueradeBit"] = bit
        label("kubeProxy.masqueradeBit", _OBS, f"iptables-save: KUBE-MARK-MASQ sets mark {hex(1 << bit)}")
    svc_rules = [r for r in first.nat if r.chain == "KUBE-SERVICES" and r.target == "KUBE-MARK-MASQ" and "-d" in r.opts]
    kp["clusterCIDR"] = kp_cidr or ""
    kp["masqueradeAll"] = any("-s" not in r.opts for r in svc_rules)
    if first.nat:
        label("kubeProxy.clusterCIDR", _OBS if kp_cidr else _INF,
              f"iptables-save: '! -s {kp_cidr}' on KUBE-SERVICES' KUBE-MARK-MASQ rules" if kp_cidr else
              "iptables-save: no '! -s CIDR ... -j KUBE-MARK-MASQ' rule (kube-proxy without --cluster-cidr)")
        label("kubeProxy.masqueradeAll", _INF, "iptables-save: KUBE-MARK-MASQ for every source of a cluster IP"
              if kp["masqueradeAll"] else "iptables-save: no KUBE-MARK-MASQ for every source of a cluster IP")
    doc["kubeProxy"] = kp

    services = _services(nodes, notes)
    pods = _pods(st, nodes, nd, bridges, services, notes, prov)
    # each Service selects the pods its KUBE-SEP rules DNAT to, by a label of its own
    manifests = []
    svc_doc: dict = {}
    for (ns, sname), sv in services.items():
        key = f"svc-{sname}"[:63].rstrip("-_.")
        for ip in sv["endpoints"]:
            if ip in pods:
                pods[ip].setdefault("labels", {})[key] = "endpoint"
        if not any(ip in pods for ip in sv["endpoints"]):
            notes.append(f"Service {ns}/{sname}: no endpoint pod in the state ({', '.join(sv['endpoints']) or 'none'})"
                         " -- left out (the model needs one)")
            continue
        ports_ = []
        for pname, port, tport, nport in sv["ports"]:
            p = {"port": port, "targetPort": tport, "protocol": "TCP"}
            if pname:
                p = {"name": pname, **p}
            if nport:
                p["nodePort"] = nport
            ports_.append(p)
        spec = {"ports": ports_, "selector": {key: "endpoint"}}
        if any(x[3] for x in sv["ports"]):
            spec["type"] = "NodePort"
        manifests.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": sname, "namespace": ns},
                          "spec": spec})
        svc_doc[sname] = {"clusterIP": sv["ip"]}
        label(f"services.{sname}.clusterIP", _OBS, f"iptables-save: KUBE-SERVICES '-d {sv['ip']}/32' "
              f"(comment \"{ns}/{sname}\")")
    cips = [_ip(s["clusterIP"]) for s in svc_doc.values()]
    scidr = ipaddress.IPv4Network("10.254.0.0/16")
    if cips and not all(c in scidr for c in cips):
        scidr = ipaddress.IPv4Network(f"{cips[0]}/16", strict=False)
        while not all(c in scidr for c in cips) and scidr.prefixlen > 8:
            scidr = scidr.supernet()
    doc["serviceCIDR"] = str(scidr)
    label("serviceCIDR", _ASM, f"kube-apiserver's --service-cluster-ip-range is on no node; {scidr} holds every "
          "cluster IP seen")
    pod_names = {ip: p["_name"] for ip, p in pods.items()}
    doc["pods"] = {p.pop("_name"): p for ip, p in sorted(pods.items(), key=lambda kv: _ip(kv[0]))}
    if svc_doc:
        doc["services"] = svc_doc

    # --- the request: the first TCP connection conntrack shows --------------------------------------
    externals: dict = {}
    req, obs = _request(st, nodes, nd, pod_names, svc_doc, services, externals, notes, prov)
    if externals:
        doc["externalHosts"] = externals
    doc["request"] = req
    if req["client"] in doc["pods"] or req["client"] in externals:
        # the times the model makes up are anchored where every packet passes: the client's own interface
        obs["anchor"] = {"node": req["client"], "interface": "eth0"}
        prov["observed.anchor"] = f"{_ASM}: the model's times are anchored at the client's eth0 (on both paths)"
    if obs:
        doc["observed"] = obs
    doc["provenance"] = dict(sorted(prov.items()))
    return Derived(doc, manifests, doc["provenance"], notes)


def _services(nodes: dict, notes: list) -> dict:
    """(namespace, name) -> {ip, ports [(name, port, targetPort, nodePort)], endpoints [ip]} from kube-proxy's rules."""
    out: dict = {}
    seen_udp = set()
    for nname, n in nodes.items():
        chains: dict = {}
        for r in n.nat:
            chains.setdefault(r.chain, []).append(r)
        nodeports = {r.target: int(r.opts["--dport"][1]) for r in chains.get("KUBE-NODEPORTS", [])
                     if r.target.startswith("KUBE-SVC-") and r.opts.get("--dport", (0, ""))[1].isdigit()}
        for r in chains.get("KUBE-SERVICES", []):
            if not r.target.startswith("KUBE-SVC-") or "-d" not in r.opts:
                continue
            comment = r.opts.get("--comment", (False, ""))[1]
            m = re.match(r"^([a-z0-9-]+)/([a-z0-9-]+):?(\S*)", comment)
            if not m:
                notes.append(f"{nname}: KUBE-SERVICES rule without a 'namespace/name:port' comment: {r.text[:80]}")
                continue
            ns, sname, pname = m.groups()
            proto = r.opts.get("-p", (False, "tcp"))[1].lower()
            if proto != "tcp":
                if (ns, sname, pname) not in seen_udp:
                    seen_udp.add((ns, sname, pname))
                    notes.append(f"{proto.upper()} Service {ns}/{sname}:{pname} ({r.opts['-d'][1]}): the scenario "
                                 "format builds no UDP Service but kube-dns, from a dns: section")
                continue
            ip = r.opts["-d"][1].split("/")[0]
            port = int(r.opts.get("--dport", (0, "0"))[1])
            seps = [x.target for x in chains.get(r.target, []) if x.target.startswith("KUBE-SEP-")]
            eps, tports = [], set()
            for sep in seps:
                for x in chains.get(sep, []):
                    if x.target == "DNAT":
                        to = x.opts.get("--to-destination", (False, ""))[1]
                        eip, _, tp = to.partition(":")
                        eps.append(eip)
                        if tp.isdigit():
                            tports.add(int(tp))
            sv = out.setdefault((ns, sname), {"ip": ip, "ports": [], "endpoints": []})
            if sv["ip"] != ip:
                notes.append(f"{nname}: Service {ns}/{sname} has cluster IP {ip} here, {sv['ip']} on another node")
                continue
            if port not in {p[1] for p in sv["ports"]}:
                if len(tports) > 1:
                    notes.append(f"Service {ns}/{sname}:{port}: endpoints on different ports {sorted(tports)}; the "
                                 f"model gives one targetPort ({min(tports)})")
                sv["ports"].append((pname, port, min(tports) if tports else port, nodeports.get(r.target)))
            for e in eps:
                if e not in sv["endpoints"]:
                    sv["endpoints"].append(e)
    return out


def _pods(st, nodes, nd, bridges, services, notes, prov) -> dict:
    """ip -> pod document (with ``_name``) for every pod address the state shows behind a node's bridge."""
    found: dict = {}                                  # ip -> (node, why)
    for nname, n in nodes.items():
        sub = ipaddress.IPv4Network(nd[nname]["subnet"])
        br = bridges[nname].name
        reserved = {sub.network_address, sub.network_address + 1, sub.broadcast_address}
        for ip, dev, mac, line in n.neigh:
            if dev == br and _ip(ip) in sub and _ip(ip) not in reserved:
                found.setdefault(ip, (nname, f"ip neigh on {nname}: {line}"))
    for sv in services.values():
        for e in sv["endpoints"]:
            for nname in nodes:
                if _ip(e) in ipaddress.IPv4Network(nd[nname]["subnet"]):
                    found.setdefault(e, (nname, f"a KUBE-SEP rule DNATs to {e}"))
    for n in nodes.values():
        for orig, reply, line in n.conntrack:
            for a in (orig[0], orig[2], reply[0], reply[2]):
                for nname in nodes:
                    s = ipaddress.IPv4Network(nd[nname]["subnet"])
                    if _ip(a) in s and _ip(a) not in (s.network_address, s.network_address + 1):
                        found.setdefault(a, (nname, f"conntrack on {n.name}: {line[:80]}"))
    for ip, pname in st.pods.items():
        for nname in nodes:
            if _ip(ip) in ipaddress.IPv4Network(nd[nname]["subnet"]):
                found.setdefault(ip, (nname, f"kubectl: Pod {pname}"))
    pods: dict = {}
    used = set()
    for ip in sorted(found, key=_ip):
        nname, why = found[ip]
        n = nodes[nname]
        br = bridges[nname].name
        name = st.pods.get(ip)
        if name and re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z", name) and name not in used | set(nodes):
            how_name = (_OBS, "kubectl: the Pod with this podIP")
        else:
            name = "pod-" + ip.replace(".", "-")
            how_name = None
        used.add(name)
        f = f"pods.{name}"
        p: dict = {"_name": name, "node": nname, "ip": ip}
        prov[f] = f"{_ASM}: the pod's name and namespace (no kubectl JSON names {ip})" if how_name is None else \
            f"{_OBS}: {how_name[1]}"
        prov[f + ".node"] = f"{_INF}: {ip} is in {nname}'s lease {nd[nname]['subnet']}"
        prov[f + ".ip"] = f"{_OBS}: {why}"
        mac = next((m for a, dev, m, _ in n.neigh if a == ip and dev == br), None)
        if mac:
            p["mac"] = mac
            prov[f + ".mac"] = f"{_OBS}: ip neigh on {nname}: {ip} lladdr {mac}"
        else:
            prov[f + ".mac"] = f"{_ASM}: no neighbour entry for {ip}; Docker's 02:42:<ip>"
        veth = next((dev for m, dev, dst, line in n.fdb if mac and m == mac and "master" in line.split()
                     and dev in n.ifaces and n.ifaces[dev].master == br), None) if mac else None
        if veth:
            p["veth"] = veth
            prov[f + ".veth"] = f"{_OBS}: bridge fdb on {nname}: {mac} dev {veth} master {br}"
            if n.ifaces[veth].mac:
                p["vethMac"] = n.ifaces[veth].mac
                prov[f + ".vethMac"] = f"{_OBS}: ip -d addr: link/ether of {veth}"
        else:
            prov[f + ".veth"] = f"{_ASM}: no bridge fdb entry puts {mac or ip} behind a port of {br}"
        ns = getattr(st, "pod_namespaces", {}).get(ip)
        if ns:
            p["namespace"] = ns
        pods[ip] = p
    return pods


def _request(st, nodes, nd, pod_names, svc_doc, services, externals, notes, prov) -> tuple[dict, dict]:
    node_ip = {nd[k]["nic"]["address"].split("/")[0]: k for k in nodes}
    svc_by_ip = {(services[k]["ip"]): k for k in services if k[1] in svc_doc}
    entries = []
    for nname, n in nodes.items():
        for orig, reply, line in n.conntrack:
            if line.split()[0] in ("tcp", "ipv4") and " tcp " in f" {line} ":
                entries.append((nname, orig, reply, line))
    chosen = None
    for nname, orig, reply, line in entries:
        src, sport, dst, dport = orig
        if src in pod_names or src in node_ip or _on_underlay(src, nd):
            chosen = (nname, orig, reply, line)
            break
    if chosen is None:
        # a pod that no Service DNATs to calls the first Service (a Service's own pod would hairpin)
        backs = {e for sv in services.values() for e in sv["endpoints"]}
        client = next((nm for ip, nm in pod_names.items() if ip not in backs),
                      next(iter(pod_names.values()), next(iter(nodes))))
        if svc_doc:
            sname = next(iter(svc_doc))
            req = {"client": client, "service": sname}
        else:
            target = next((ip for ip, nm in pod_names.items() if nm != client), None)
            if target is None:
                raise CourseError("state", "no Service, no second pod and no connection in conntrack: nothing to "
                                  "request", "a state with kube-proxy's rules, pods, or a conntrack -L entry")
            req = {"client": client, "ip": target, "port": 80}
        prov["request"] = f"{_ASM}: conntrack -L shows no TCP connection; a request from {client} picked"
        prov["observed.clientPort"] = f"{_ASM}: no connection in conntrack -L; the model picks the port"
        return req, {}
    nname, (src, sport, dst, dport), reply, line = chosen
    # the same connection on another node: its original tuple is this one's reply, reversed (after NAT)
    conns = _connections(entries)
    if conns > 1:
        notes.append(f"conntrack: {conns} TCP connections; the scenario's request is the first one "
                     f"({src}:{sport} > {dst}:{dport} on {nname})")
    why = f"conntrack -L on {nname}: {line[:110]}"
    if src in pod_names:
        client = pod_names[src]
    elif src in node_ip:
        client = node_ip[src]
    else:
        client = _external(src, nodes, nd, externals, prov)
    req: dict = {"client": client}
    obs: dict = {"clientPort": sport}
    prov["request.client"] = f"{_OBS}: {why}"
    prov["observed.clientPort"] = f"{_OBS}: the connection's source port ({why})"
    prov["request.method"] = f"{_ASM}: conntrack does not show the HTTP request; a GET /"
    if dst in svc_by_ip:
        ns, sname = svc_by_ip[dst]
        req.update(service=sname, port=dport)
        prov["request.service"] = f"{_OBS}: {why}"
        prov["request.port"] = f"{_OBS}: {why}"
        eps = sorted(services[(ns, sname)]["endpoints"], key=str)
        if reply[0] in eps and len(eps) > 1:
            obs["endpoint"] = eps.index(reply[0])
            prov["observed.endpoint"] = f"{_OBS}: conntrack's reply comes from {reply[0]}"
    elif dst in node_ip:
        hit = [(k, p) for k, sv in services.items() if k[1] in svc_doc for p in sv["ports"] if p[3] == dport]
        if not hit:
            raise CourseError("state", f"conntrack's connection to {dst}:{dport} ({node_ip[dst]}) is to no NodePort "
                              "kube-proxy's rules show", "a connection to a Service, a NodePort, a pod or a host")
        (ns, sname), p = hit[0]
        req.update(service=sname, port=p[1], node=node_ip[dst])
        prov["request"] = f"{_OBS}: {why} (NodePort {dport} of {ns}/{sname})"
    else:
        if dst not in pod_names:
            if not _on_underlay(dst, nd):
                raise CourseError("state", f"conntrack's connection goes to {dst}, which is no pod, Service, node "
                                  "or host on the nodes' network", "a connection inside the cluster's networks")
            _external(dst, nodes, nd, externals, prov)
        req.update(ip=dst, port=dport)
        prov["request.ip"] = f"{_OBS}: {why}"
        prov["request.port"] = f"{_OBS}: {why}"
    return req, obs


def _connections(entries: list) -> int:
    """How many distinct connections the nodes' conntrack entries are (one connection, seen on two nodes, is one)."""
    groups: list[set] = []
    for _, o, r, _ in entries:
        keys = {o, (r[2], r[3], r[0], r[1])}
        hit = [g for g in groups if g & keys]
        for g in hit:
            keys |= g
            groups.remove(g)
        groups.append(keys)
    return len(groups)


def _on_underlay(ip: str, nd: dict) -> bool:
    net = ipaddress.IPv4Interface(next(iter(nd.values()))["nic"]["address"]).network
    return _ip(ip) in net


def _external(ip: str, nodes, nd, externals, prov) -> str:
    name = "host-" + ip.replace(".", "-")
    if name in externals:
        return name
    net = ipaddress.IPv4Interface(next(iter(nd.values()))["nic"]["address"]).network
    nic = {"name": "eth0", "address": f"{ip}/{net.prefixlen}"}
    mac = next((m for n in nodes.values() for a, dev, m, _ in n.neigh if a == ip), None)
    if mac:
        nic["mac"] = mac
    externals[name] = {"nic": nic}
    prov[f"externalHosts.{name}"] = (f"{_INF}: a host on the nodes' network that took part in the connection "
                                     "(conntrack -L)")
    prov[f"externalHosts.{name}.nic.name"] = f"{_ASM}: the host's own interface is not in the nodes' state"
    prov[f"externalHosts.{name}.nic.mtu"] = f"{_ASM}: the host's own interface is not in the nodes' state"
    prov[f"externalHosts.{name}.nic.mac"] = f"{_OBS}: ip neigh: {ip} lladdr {mac}" if mac else \
        f"{_ASM}: no node has a neighbour entry for {ip}"
    return name


def write_scenario(derived: Derived, out) -> Path:
    """Write the scenario (and ``<stem>-manifests.yaml`` beside it, when there are Services); returns its path.

    Taught in: 10-your-own-cluster.
    """
    from .outputs import output_file, write_file
    if not isinstance(derived, Derived):
        raise CourseError("derived", f"a {type(derived).__name__} is not a derived scenario", "what derive() returns")
    path = output_file(out, "--output")
    if path.suffix not in (".yaml", ".yml"):
        raise CourseError("--output", f"{path.name} does not end in .yaml", "a .yaml file name")
    man = path.with_name(path.stem + "-manifests.yaml")
    if derived.manifests:
        write_file(man, derived.manifests_yaml())
    write_file(path, derived.yaml(man.name))
    return path


@public
def scenario_from_state(state, out=None, name: str | None = None):
    """A real cluster's collected state as a scenario the model walks; written to ``out`` when given.

    >>> sc = ck.scenario_from_state("state/", "my-cluster.yaml")    # doctest: +SKIP
    >>> ck.walk(sc)

    Without ``out`` the files go to a new temporary folder (the scenario
    keeps naming its manifests file there).  ``ck.from_state.derive(state)`` gives the
    document and its provenance without loading it.

    Taught in: 10-your-own-cluster.
    """
    import atexit
    import shutil
    import tempfile
    d = derive(state, name)
    if out is None:                       # removed when the Python process (the notebook's kernel) exits
        folder = Path(tempfile.mkdtemp(prefix="packet-walk-from-state-"))
        atexit.register(shutil.rmtree, folder, True)
        out = folder / f"{d.doc['name']}.yaml"
    return load_written(write_scenario(d, out))


def load_written(path):
    """Load a scenario from-state wrote; what the model cannot build is said as such, naming the file."""
    from .scenario import load_scenario
    try:
        return load_scenario(path)
    except CourseError as e:
        raise CourseError(e.field, f"{e.problem} (in {Path(path).name}, built from the state: the model cannot "
                          "build this cluster as it is)", e.allowed) from None
