"""A seeded generator of bad scenario files, overrides and Python API calls, and a guarded runner.

Run as ``python tests/bad_inputs.py SEED COUNT WORKDIR`` (tests/test_bad_inputs.py
does): the process limits its own address space (RLIMIT_AS), runs every case
under a SIGALRM guard, and prints one JSON line per case::

    {"id": "...", "expect": "error" | "either", "outcome": "CourseError" | "accepted" | "<exception>" | "timeout"}

"expect: error" cases are inputs a real node, Kubernetes or tcpdump would
refuse (or that are not a scenario at all): accepting one is a failure.
"either" cases may be valid; they only must not raise anything but
CourseError.
"""

from __future__ import annotations

import copy
import json
import os
import random
import resource
import signal
import string
import sys
from pathlib import Path

MEMORY_LIMIT = 1536 * 1024 * 1024        # bytes of address space for the whole worker
CASE_SECONDS = 20                        # a case that spins longer (CPU time) is a hang
CASE_WALL_SECONDS = 300                  # one that waits longer (wall clock; a loaded machine is slow)

# mappings whose keys the document chooses (names, indices): a new key there is not a typo
_DICT_PARENTS = {"nodes", "pods", "workloads", "services", "labels", "vxlanSourcePort", "ipId", "tsLagTicks",
                 "hosts", "provenance"}
_LIST_VALUES = {"times", "windows", "podIPs", "ephemeralPorts"}


def _is_dict_parent(path: list[str]) -> bool:
    if not path:
        return False
    if path[-1] in _DICT_PARENTS or path == ["names", "services"]:
        return True
    return len(path) == 3 and ((path[0] == "workloads" and path[2] == "pods") or
                               (path[0] == "services" and path[2] == "ports"))


def _paths(doc, prefix=()):
    """(path, value) of every node of a document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield list(prefix) + [str(k)], v
            yield from _paths(v, tuple(prefix) + (str(k),))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield list(prefix) + [str(i)], v


def _set(doc, path, value):
    d = doc
    for k in path[:-1]:
        d = d[int(k)] if isinstance(d, list) else (d[k] if k in d else d[int(k)])
    last = path[-1]
    if isinstance(d, list):
        d[int(last)] = value
    elif last in d or not last.isdigit():
        d[last] = value
    else:
        d[int(last)] = value


def _typo(rng: random.Random, key: str) -> str:
    ops = [lambda k: k[:-1] if len(k) > 1 else k + "x", lambda k: k + k[-1], lambda k: k.lower() if k != k.lower() else k.upper(),
           lambda k: k[1:] + k[0], lambda k: "_" + k, lambda k: k.replace("e", "a", 1) if "e" in k else k + "s"]
    return rng.choice(ops)(key)


def _bad_ifname(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(16, 40)))
    if kind == 1:
        return ""
    if kind == 2:
        return rng.choice([".", ".."])
    if kind == 3:
        base = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 8)))
        i = rng.randint(0, len(base))
        return base[:i] + rng.choice("/: \t\n\r%\x0b\x0c") + base[i:]
    if kind == 4:
        return rng.choice(["lo", "docker0", "flannel.1"])
    if kind == 5:
        return "é" * rng.randint(8, 10)                  # 16+ bytes in UTF-8
    return "veth" + "\x01"


def _bad_values(rng: random.Random, raw: dict) -> tuple[str, dict]:
    """One value a real node, Kubernetes or HTTP refuses, with the overrides that set it."""
    node = rng.choice(["xiaomi", "meizu"])
    other = "meizu" if node == "xiaomi" else "xiaomi"
    choices = [
        ("nic.name", lambda: {f"nodes.{node}.nic.name": _bad_ifname(rng)}),
        ("veth", lambda: {"pods.busybox.veth": _bad_ifname(rng)}),
        ("nginx veth", lambda: {"workloads.nginx.pods.1.veth": _bad_ifname(rng)}),
        ("veth clash", lambda: {"pods.busybox.veth": raw["nodes"]["xiaomi"]["nic"]["name"]}),
        ("vni", lambda: {"flannel.vni": rng.choice([rng.randint(10**7, 2**24 - 1), rng.randint(2**24, 2**40),
                                                    -rng.randint(1, 10**6)])}),
        ("loopback", lambda: {f"nodes.{node}.nic.address": f"127.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}/24"}),
        ("multicast", lambda: {f"nodes.{node}.nic.address": f"{rng.randint(224, 239)}.1.2.{rng.randint(1, 254)}/24"}),
        ("zeronet", lambda: {f"nodes.{node}.nic.address": f"0.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}/24"}),
        ("bcast", lambda: {f"nodes.{node}.nic.address": "255.255.255.255/24"}),
        ("clusterIP edge", lambda: {"services.nginx.clusterIP": rng.choice(["10.254.0.0", "10.254.255.255"])}),
        ("clusterIP outside", lambda: {"services.nginx.clusterIP": f"10.{rng.randint(0, 253)}.1.1"}),
        ("zero mac", lambda: {rng.choice([f"nodes.{node}.nic.mac", f"nodes.{node}.vtepMac", "pods.busybox.mac",
                                          f"nodes.{node}.docker.bridgeMac"]): "00:00:00:00:00:00"}),
        ("multicast mac", lambda: {f"nodes.{node}.nic.mac": f"{rng.randrange(1, 256, 2):02x}:00:5e:00:00:01"}),
        ("dup nic mac", lambda: {f"nodes.{node}.nic.mac": raw["nodes"][other]["nic"]["mac"]}),
        ("dup vtep mac", lambda: {f"nodes.{node}.vtepMac": raw["nodes"][other]["vtepMac"]}),
        ("dup pod mac", lambda: {"pods.busybox.mac": raw["nodes"]["xiaomi"]["docker"]["bridgeMac"]}),
        ("ports reversed", lambda: (lambda lo: {f"nodes.{node}.ephemeralPorts": [lo, rng.randint(1, lo - 1)]})(
            rng.randint(2, 65535))),
        ("ports range", lambda: {f"nodes.{node}.ephemeralPorts": [0, rng.choice([70000, -5])]}),
        ("svc port 0", lambda: {"services.nginx.ports.0.port": rng.choice([0, -1, 65536, 10**9])}),
        ("target 0", lambda: {"services.nginx.ports.0.targetPort": rng.choice([0, 65536])}),
        ("request port", lambda: {"request.port": rng.choice([80, 1, 65535, 4433])}),
        ("utc minutes", lambda: {"utcOffset": f"{rng.choice('+-')}{rng.randint(0, 13):02d}:{rng.randint(60, 99)}"}),
        ("utc hours", lambda: {"utcOffset": f"+{rng.randint(15, 99)}:00"}),
        ("method", lambda: {"request.method": rng.choice(["GET\r\nX-Evil: 1", "GE T", "", "GET\n", "G\x00T",
                                                          "GÉT", "GET/"])}),
        ("user agent", lambda: {"request.userAgent": "Wget" + rng.choice(["\r\nX: 1", "\n", "\r", "\x00", "\x7f", "é"])}),
        ("path", lambda: {"request.path": rng.choice(["/é", "/a b", "relative", "", "/\r\n", "/\x00",
                                                      "/" + "a" * rng.randint(1400, 5000)])}),
        ("user agent long", lambda: {"request.userAgent": "W" * rng.randint(1400, 3000)}),
        ("mtu", lambda: {f"nodes.{node}.nic.mtu": rng.choice([0, 67, 117, 65536, -1])}),
        ("docker mtu", lambda: {f"nodes.{node}.docker.mtu": rng.choice([0, 575, 65536])}),
        ("ttl", lambda: {f"nodes.{node}.defaultTTL": rng.choice([0, 1, 256, -1])}),
        ("endpoint", lambda: {"observed.endpoint": rng.choice([1, 5, -1])}),
        ("anchor", lambda: {"observed.anchor.interface": rng.choice(["eth9", "lo", ""])}),
        ("clientPort", lambda: {"observed.clientPort": rng.choice([0, 65536, -1])}),
        ("isn", lambda: {"observed.clientISN": rng.choice([-1, 2**32, 2**64])}),
        ("wscale", lambda: {"observed.wscale.client": rng.choice([15, -1, 100])}),
        ("windows count", lambda: {"observed.windows": [29200] * rng.randint(1, 10)}),
        ("times count", lambda: {"observed.times": ["2019-08-28T11:25:22+08:00"] * rng.randint(1, 10)}),
        ("time", lambda: {"observed.times.0": rng.choice(["yesterday", "2019-02-30T00:00:00+08:00",
                                                          "2019-08-28T25:00:00+08:00", "2019-08-28T11:25:22"])}),
        ("subnet", lambda: {f"nodes.{node}.subnet": rng.choice(["172.30.83.0/25", "10.0.0.0/24", "172.30.83.1/24"])}),
        ("overlap", lambda: {f"nodes.{node}.subnet": raw["nodes"][other]["subnet"]}),
        ("same ip", lambda: {f"nodes.{node}.nic.address": raw["nodes"][other]["nic"]["address"]}),
        ("pod ip", lambda: {"pods.busybox.ip": rng.choice(["172.30.83.0", "172.30.83.1", "172.30.83.255",
                                                           "172.30.20.2", "banana", "1.2.3.4"])}),
        ("service cidr", lambda: {"serviceCIDR": rng.choice(["127.0.0.0/8", "224.0.0.0/16", "172.30.0.0/24",
                                                             "10.254.0.0/31", "10.254.0.1/16"])}),
        ("network", lambda: {"flannel.network": rng.choice(["127.0.0.0/8", "224.0.0.0/8", "0.0.0.0/0"])}),
        ("caches", lambda: {"neighbourCaches": rng.choice(["Warm", "hot", ""])}),
        ("replicas", lambda: {"workloads.nginx.replicas": rng.choice([0, 17, -1])}),
        ("podIPs", lambda: {"workloads.nginx.podIPs": rng.choice([["172.30.83.5"], ["172.30.20.1"], []])}),
        ("names.services", lambda: {"names.services.otv": rng.choice(["8472", "8472/sctp", "x/udp", "0/udp"])}),
        ("hosts", lambda: {"names.hosts": {"not-an-ip": "x"}}),
        ("scenario name", lambda: {"name": rng.choice(["../../etc", "", "a/b", ".hidden", "x" * 100])}),
        ("provenance label", lambda: {"provenance.flannel.vni": rng.choice(["guessed: x", "observed", "observd: x"])}),
        ("provenance path", lambda: {"provenance": {rng.choice(["flannel.vnii", "nodes.x.nic.nme", "a..b"]): "observed: x"}}),
        ("service override", lambda: {"services.ngnix": {"clusterIP": "10.254.1.1"}}),
        ("workload override", lambda: {"workloads.ngnix": {"replicas": 1}}),
        ("timing", lambda: {"timing.wireUs": rng.choice([-1, 10**8, "fast"])}),
        ("host name", lambda: {"names.hosts": {"10.167.226.38": rng.choice(["evil\nline", "a b", "", "-x"])}}),
        ("label", lambda: {"pods.busybox.labels": {rng.choice(["a b", "", "x" * 64, "a/b/c"]): "v"}}),
        ("service name", lambda: {"names.services": {rng.choice(["o tv", "", "a\nb"]): "8472/udp"}}),
        ("version", lambda: {rng.choice(["flannel.version", "kubeProxy.version"]): rng.choice(["0.20", "v1.0", "latest"])}),
        ("bool", lambda: {rng.choice(["flannel.ipMasq", "kubeProxy.masqueradeAll", f"nodes.{node}.docker.ipMasq",
                                      "flannel.udpChecksum"]): rng.choice(["yes", 1, "true", 0])}),
    ]
    name, make = rng.choice(choices)
    return name, make()


_ODD = [-1, 0, 1, 2**64, -2**63, 1.5, float("nan"), float("inf"), "", " ", "\x00", "é", "中文", True, False, None,
        "0x10", "1e3", "10.0.0.1", "::1", "-", "9" * 30, "10.0.0.0/8", "ff:ff:ff:ff:ff:ff", "2019-08-28", "+08:00",
        "a" * 300, "\r\n", "null", "~"]


def generate(seed: int, count: int, workdir: Path) -> list[dict]:
    """``count`` cases (a mix of every kind), deterministic for a seed."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from coursekit.scenario import data_dir, raw_scenario
    rng = random.Random(seed)
    raw = raw_scenario("article")
    cases: list[dict] = []
    article = data_dir() / "scenarios" / "article.yaml"
    text = article.read_text(encoding="utf-8")

    def add(kind, cid, expect, **kw):
        cases.append({"kind": kind, "id": f"{len(cases):04d}-{cid}", "expect": expect, **kw})

    while len(cases) < count:
        r = rng.random()
        if r < 0.25:                           # a mapping or value of the wrong shape
            paths = [(p, v) for p, v in _paths(raw) if p[0] != "provenance"]
            p, v = rng.choice(paths)
            if isinstance(v, dict):
                bad = rng.choice([[], "x", 3, True, [1, 2], 2.5])
            elif isinstance(v, list):
                bad = rng.choice(["x", {}, {"a": 1}, 7])
            else:
                bad = rng.choice([{"a": 1}, [1], [[]], {"x": {"y": 1}}])
                if p[-1] in _LIST_VALUES:
                    bad = {"a": 1}
            doc = copy.deepcopy(raw)
            _set(doc, p, bad)
            add("doc", "shape:" + ".".join(p), "error", doc=_jsonable(doc))
        elif r < 0.40:                         # an unknown key (a typo) where the format's keys are fixed
            maps = [(p, v) for p, v in _paths(raw) if isinstance(v, dict) and v and not _is_dict_parent(p)
                    and p[0] not in ("provenance", "names")]
            maps.append(([], raw))
            p, v = rng.choice(maps)
            key = _typo(rng, str(rng.choice(list(v))))
            if key in v:
                continue
            doc = copy.deepcopy(raw)
            target = doc
            for k in p:
                target = target[k] if k in target else target[int(k)]
            target[key] = rng.choice([1, "x", {}])
            add("doc", "unknown:" + ".".join(p + [key]), "error", doc=_jsonable(doc))
            over_path = ".".join(p + [key])
            add("override", "unknown-override:" + over_path, "error", over={over_path: 2})
        elif r < 0.66:                         # a value the kernel, Kubernetes or HTTP refuses
            name, over = _bad_values(rng, raw)
            add("override", "value:" + name, "error", over=_jsonable(over))
        elif r < 0.78:                         # any odd single value anywhere: valid or not, never a traceback
            leaves = [(p, v) for p, v in _paths(raw) if not isinstance(v, (dict, list)) and p[0] != "provenance"]
            p, _ = rng.choice(leaves)
            doc = copy.deepcopy(raw)
            _set(doc, p, rng.choice(_ODD))
            add("doc", "fuzz:" + ".".join(p), "either", doc=_jsonable(doc))
        elif r < 0.88:                         # a file that is not a scenario, or a hostile one
            cid, expect, extra = _bad_file(rng, workdir, text, len(cases))
            add("file", cid, expect, **extra)
        else:                                  # the Python API called the way a notebook user gets it wrong
            cid, expect, extra = _bad_call(rng)
            add("api", cid, expect, **extra)
    return cases[:count]


def _jsonable(doc):
    return json.loads(json.dumps(doc, default=str))


def _bad_file(rng: random.Random, workdir: Path, article_text: str, n: int) -> tuple[str, str, dict]:
    d = workdir / f"case{n}"
    d.mkdir(parents=True, exist_ok=True)
    f = d / "s.yaml"
    kind = rng.randrange(16)
    if kind == 0:
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4000))) + b"\xff\xfe"
        f.write_bytes(data)
        return "binary", "error", {"path": str(f)}
    if kind == 1:
        i = rng.randint(0, len(article_text))
        f.write_bytes(article_text[:i].encode() + rng.choice([b"\xff", b"\xc3\x28", b"\x80"]) + article_text[i:].encode())
        return "non-utf8", "error", {"path": str(f)}
    if kind == 2:
        width, depth = rng.randint(5, 12), rng.randint(6, 10)
        lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, depth)]
        f.write_text("\n".join(lines) + "\n")
        return "billion-laughs", "error", {"path": str(f), "bomb": True}
    if kind == 3:
        depth = rng.randint(33, 20000)
        f.write_text(rng.choice(["[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth,
                                 "".join("  " * i + "a:\n" for i in range(min(depth, 3000)))]))
        return "deep", "error", {"path": str(f)}
    if kind == 4:
        f.write_text(rng.choice(["a: &a [*a]\n", "a: &a {b: *a}\n"]))
        return "recursive-alias", "error", {"path": str(f)}
    if kind == 5:
        k = rng.randint(1, 4)
        for i in range(k):
            (d / f"c{i}.yaml").write_text(f"extends: c{(i + 1) % k}.yaml\nname: c{i}\n")
        return "extends-cycle", "error", {"path": str(d / "c0.yaml")}
    if kind == 6:
        target = rng.choice([str(d), "/dev/zero", "/dev/null", "/proc/self/mem", "/", "/dev/urandom"])
        f.write_text(f"extends: {target}\nname: x\n")
        return "extends-special", "error", {"path": str(f)}
    if kind == 7:
        target = rng.choice([str(d), "/dev/zero", "/dev/null", "3", "[a, b]", "{a: 1}", "/nonexistent/x.yaml",
                             "/dev/urandom"])
        f.write_text(article_text.replace("manifests: ../manifests/nginx.yaml", f"manifests: {target}"))
        return "manifests-special", "error", {"path": str(f)}
    if kind == 8:
        f.write_text(rng.choice(["- a\n- b\n", "42\n", "just text\n", "", "~\n", "---\n---\n", "[]\n",
                                 article_text + "\n---\nname: second\n"]))
        return "not-a-mapping", "error", {"path": str(f)}
    if kind == 9:
        f.write_text("# " + "x" * rng.randint(300_000, 600_000) + "\n" + article_text)
        return "too-big", "error", {"path": str(f)}
    if kind == 10:
        f.write_text(article_text.replace("vni: 1 ", f"vni: {'9' * rng.randint(4301, 20000)} "))
        return "huge-int", "error", {"path": str(f)}
    if kind == 11:
        f.write_text(rng.choice(["!!python/object/apply:os.system ['true']\n", "a: !!binary '%%%'\n",
                                 "a: !!set {x}\nname: q\n", "a: !custom 1\n", "? [1, 2]\n: 3\n"]))
        return "tags", "error", {"path": str(f)}
    if kind == 12:
        f.write_text(article_text.replace("flannel:\n", "flannel: {vni: 3}\nflannel:\n", 1))
        return "duplicate-key", "error", {"path": str(f)}
    if kind == 13:
        man = d / "m.yaml"
        man.write_text(rng.choice([
            "kind: Pod\nmetadata: {name: p}\n",
            "- a\n- b\n",
            "kind: Service\nmetadata: {name: nginx}\nspec: {ports: [{port: 4432, targetPort: 80}], selectr: {name: nginx1}}\n",
            "kind: Service\nmetadata: {name: nginx}\nspec: {ports: [{port: 4432, protocol: UDP}], selector: {name: nginx1}}\n",
            "kind: Deployment\nmetadata: {name: nginx}\nspec: {template: {spec: {containers: [{name: n, ports: [{containerPort: 0}]}]}}}\n",
            "kind: Service\nmetadata: {name: nginx}\nspec: {ports: [{port: 4432}, {port: 4432}], selector: {name: nginx1}}\n",
            "kind: Service\nmetadata: {name: 'Nginx X'}\nspec: {ports: [{port: 4432}], selector: {name: nginx1}}\n",
            "kind: Service\nmetadata: {name: nginx, namespace: 'a\\nb'}\nspec: {ports: [{port: 4432}], selector: {name: nginx1}}\n",
            "kind: Deployment\nmetadata: {name: nginx}\nspec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {c: d}}, spec: {nodeName: meizu, containers: [{name: n}]}}}\n",
        ]))
        f.write_text(article_text.replace("manifests: ../manifests/nginx.yaml", f"manifests: {man}"))
        return "bad-manifest", "error", {"path": str(f)}
    if kind == 14:
        os.mkfifo(d / "fifo.yaml")
        return "fifo", "error", {"path": str(d / "fifo.yaml")}
    return "missing", "error", {"path": str(d / rng.choice(["nope.yaml", "a/b.yaml", "s.yaml/x"]))}


_SCENARIOS = ["None", "b'article'", "['article']", "3", "3.5", "object()", "''", "'nope'", "'/'", "'/dev/zero'",
              "'\\0'", "'x' * 5000", "{'name': 'x'}", "{}", "set()", "ck.walk('article')", "bytearray(b'a')"]
_NODES = ["None", "'oppo'", "3", "''", "'MEIZU'", "b'meizu'", "['meizu']"]
_IFACES = ["None", "'eth9'", "3", "''", "'enp4s0 '", "b'enp4s0'", "'flannel.2'"]
_FRAMES = ["None", "3", "'abc'", "b''", "b'\\0' * 5", "[1]", "object()", "{'data': b''}"]


def _bad_call(rng: random.Random) -> tuple[str, str, dict]:
    c = rng.choice
    S, N, I, F = _SCENARIOS, _NODES, _IFACES, _FRAMES
    calls = [
        lambda: "ck.walk(%s)" % c(S),
        lambda: "ck.describe(%s)" % c(S),
        lambda: "ck.manifest_text(%s)" % c(S),
        lambda: "ck.nat_save(%s, 'xiaomi')" % c(S),
        lambda: "ck.nat_save('article', %s)" % c(N),
        lambda: "ck.capture(%s, 'meizu', 'enp4s0')" % c(S),
        lambda: "ck.capture('article', %s, 'enp4s0')" % c(N),
        lambda: "ck.capture('article', 'meizu', %s)" % c(I),
        lambda: "ck.capture('article', 'meizu', 'enp4s0', walk=%s)" % c(["3", "ck.walk('article-flannel')", "[]"]),
        lambda: "ck.tcpdump('article', 'meizu', 'enp4s0', flags=%s)" % c(["None", "3", "[1]", "'-q'", "'-vv'"]),
        lambda: "ck.tcpdump('article', 'meizu', 'enp4s0', %s)" % c(["None", "3", "b'tcp'"]),
        lambda: "ck.tcpdump('article', %s, %s)" % (c(N), c(I)),
        lambda: "ck.tree(%s)" % c(F),
        lambda: "ck.hexdump(%s)" % c(F),
        lambda: "ck.hexdump(ck.capture('article', 'meizu', 'docker0')[0], width=%s)"
                % c(["0", "-1", "65", "'16'", "None", "1.5", "True"]),
        lambda: "ck.changes(%s, %s)" % (c(F), c(F)),
        lambda: "ck.walk('article').path(%s)" % c(["'1'", "1.0", "-1", "11", "10**9", "None", "True"]),
        lambda: "ck.walk('article').at(%s, 'eth0')" % c(N),
        lambda: "ck.load_scenario('article', %s)" % c(["[]", "'x'", "3", "{'flannel.vnii': 2}", "{'': 1}",
                                                       "{'a..b': 1}", "{'flannel.vni.x': 1}", "{3: 1}",
                                                       "{'observed.times.99': 1}"]),
        lambda: "ck.load_scenario(%s)" % c(S[1:]),
        lambda: "ck.%s('article', colour='red')" % c(["walk", "describe", "capture", "tcpdump", "tree", "load_scenario"]),
        lambda: "ck.%s()" % c(["walk", "describe", "capture", "tcpdump", "nat_save"]),
        lambda: "ck.as_scenario(%s)" % c(S),
        lambda: "ck.Style.for_scenario(%s)" % c(S),
        lambda: "ck.diagrams.walk_diagram('article', flow=%s)" % c(["'up'", "None", "3"]),
        lambda: "ck.write_pcap('{tmp}/x.pcap', %s)" % c(["[b'abc']", "None", "b'abc'", "[None]", "3"]),
        lambda: "ck.provenance.of_field(%s, 'window')" % c(["'TCPX'", "None", "3"]),
        lambda: "ck.provenance.of_path('article', %s)" % c(["'flannel.vnii'", "''", "None", "'a..b'", "3"]),
        lambda: "ck.load_scenario('article').with_changes(%s)" % c(["[]", "{'nodes.oppo.nic': 1}",
                                                                     "{'pods.busybox.nope': 1}"]),
    ]
    code = c(calls)()
    return "api:" + code[:60], "error", {"code": code}


# --------------------------------------------------------------------------
# The guarded runner
# --------------------------------------------------------------------------

class Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise Timeout()


def run(cases: list[dict], workdir: Path) -> list[dict]:
    import coursekit as ck
    import coursekit.provenance  # noqa: F401  (ck.provenance in the API calls)
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGPROF, _alarm)
    out = []
    for c in cases:
        # CPU time for a spin (other processes' load does not count), the wall clock for a block
        signal.setitimer(signal.ITIMER_PROF, CASE_SECONDS)
        signal.alarm(CASE_WALL_SECONDS)
        try:
            if c["kind"] == "doc":
                ck.as_scenario(c["doc"])
            elif c["kind"] == "override":
                ck.load_scenario("article", c["over"])
            elif c["kind"] == "file":
                ck.load_scenario(c["path"])
            else:
                eval(c["code"].replace("{tmp}", str(workdir)), {"ck": ck})    # noqa: S307 (the test's own code)
            outcome = "accepted"
        except ck.CourseError as e:
            outcome = "CourseError"
            if "\n" in str(e) or len(str(e)) > 2000:
                outcome = f"unreadable CourseError ({len(str(e))} chars)"
        except Timeout:
            outcome = "timeout"
        except BaseException as e:                # noqa: BLE001 (the point of the battery)
            outcome = f"{type(e).__name__}: {str(e)[:200]}"
        finally:
            signal.alarm(0)
            signal.setitimer(signal.ITIMER_PROF, 0)
        out.append({"id": c["id"], "expect": c["expect"], "outcome": outcome})
    return out


def main() -> None:
    seed, count, workdir = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    cases = generate(seed, count, workdir)
    for r in run(cases, workdir):
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
