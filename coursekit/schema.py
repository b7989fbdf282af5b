"""The shape of a scenario document, and a YAML reader with bounds.

A scenario is checked in two passes, both in :mod:`coursekit.scenario`:

1. **shape** (this module, data-driven): every mapping is a mapping, every
   list a list, every value a single value, and every key is one the format
   knows -- an unknown key is an error that suggests the closest known one
   (``unknown key flannel.vnii (did you mean vni?)``).  Nothing reads a field
   before the whole document has passed.
2. **values** (``scenario_from_dict``): addresses, ranges, names, and what the
   kernel or the protocol would refuse.

:func:`read_yaml` reads a file the way a tool used by thousands of learners
must: regular files only (no folders, devices or pipes), at most
:data:`MAX_BYTES`, strict UTF-8, nesting at most :data:`MAX_DEPTH` deep, and
YAML aliases ("billion laughs") expanded to at most :data:`MAX_NODES` nodes.

Taught in: 00-the-scenario (the format is ``docs/scenario-format.md``).
"""

from __future__ import annotations

import datetime as _dt
import difflib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import CourseError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "read_text", "read_yaml", "check_scenario_shape",
           "check_manifest_shape", "suggest", "SCENARIO", "known_path"]

#: A scenario or manifest file is a few kilobytes; refuse anything past this.
MAX_BYTES = 256 * 1024
#: Mappings and lists nested deeper than this are refused (a scenario needs 5).
MAX_DEPTH = 32
#: Nodes of the document once every YAML alias is expanded (a scenario has ~300).
MAX_NODES = 20_000
#: YAML documents in one manifests file.
MAX_DOCS = 64


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------

def read_text(path: Path, what: str, limit: int = MAX_BYTES) -> str:
    """A regular file's text: bounded read, strict UTF-8; every failure is one CourseError naming ``what``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CourseError(what, f"no such file: {path}") from None
    except NotADirectoryError:
        raise CourseError(what, f"no such file: {path} (a part of the path is a file, not a folder)") from None
    except PermissionError:
        raise CourseError(what, f"{path} cannot be read (permission denied)") from None
    except (OSError, ValueError) as e:          # name too long, embedded NUL, loops of links
        raise CourseError(what, f"{str(path)[:200]!r} cannot be opened ({getattr(e, 'strerror', None) or e})") \
            from None
    if stat.S_ISDIR(st.st_mode):
        raise CourseError(what, f"{path} is a folder", "a .yaml file")
    if not stat.S_ISREG(st.st_mode):
        raise CourseError(what, f"{path} is not a regular file (a device, pipe or socket)", "a .yaml file")
    if st.st_size > limit:
        raise CourseError(what, f"{path} is {st.st_size} bytes, larger than {limit // 1024} KiB",
                          f"a file of at most {limit // 1024} KiB")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)           # bounded, even if the file grows meanwhile
    except OSError as e:
        raise CourseError(what, f"{path} cannot be read ({e.strerror or e})") from None
    if len(data) > limit:
        raise CourseError(what, f"{path} is larger than {limit // 1024} KiB", f"a file of at most {limit // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise CourseError(what, f"{path} is not UTF-8 text (byte 0x{data[e.start]:02x} at line {line})",
                          "a YAML text file in UTF-8") from None


class _Limit(Exception):
    def __init__(self, problem: str, mark=None):
        super().__init__(problem)
        self.problem, self.mark = problem, mark


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a nesting limit (its composer recurses once per level)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Limit(f"is nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(root) -> int:
    """Nodes of a composed YAML graph with every alias expanded; refuses a recursive alias."""
    memo: dict[int, int] = {}
    busy: set[int] = set()
    # iterative post-order walk: a deep graph must not exhaust Python's stack
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        k = id(node)
        if done:
            busy.discard(k)
            if isinstance(node, yaml.MappingNode):
                kids = [x for pair in node.value for x in pair]
            elif isinstance(node, yaml.SequenceNode):
                kids = node.value
            else:
                kids = []
            size = 1 + len(str(node.value)) // 1024 if not kids and isinstance(node, yaml.ScalarNode) else 1
            size += sum(memo[id(c)] for c in kids)
            memo[k] = size
            if size > MAX_NODES:
                raise _Limit(f"expands to more than {MAX_NODES} values (YAML aliases repeating aliases?)",
                             node.start_mark)
            continue
        if k in memo:
            continue
        if k in busy:
            raise _Limit("has an alias that refers to itself (a recursive structure)", node.start_mark)
        busy.add(k)
        stack.append((node, True))
        if isinstance(node, yaml.MappingNode):
            keys = [a.value for a, _ in node.value if isinstance(a, yaml.ScalarNode) and a.tag != "tag:yaml.org,2002:merge"]
            seen: set = set()
            dup = next((x for x in keys if x in seen or seen.add(x)), None)
            if dup is not None:
                raise _Limit(f"has the key {dup!r} twice in one mapping (YAML would keep only the last)",
                             node.start_mark)
            for a, b in node.value:
                stack.extend(((a, False), (b, False)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((c, False) for c in node.value)
    return memo[id(root)]


def read_yaml(path: Path, what: str, many: bool = False) -> Any:
    """The YAML document in ``path`` (``many``: the list of documents), within every bound above."""
    text = read_text(path, what)
    loader = _BoundedLoader(text)
    docs: list = []
    try:
        while loader.check_node():
            if len(docs) >= (MAX_DOCS if many else 1):
                raise _Limit(f"has more than {MAX_DOCS if many else 1} YAML document(s)"
                             + ("" if many else " (a scenario is one mapping; '---' starts another)"))
            node = loader.get_node()
            _expanded_size(node)
            docs.append(loader.construct_document(node))
    except _Limit as e:
        where = f" (line {e.mark.line + 1})" if e.mark is not None else ""
        raise CourseError(what, f"{path.name} {e.problem}{where}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or getattr(e, "context", None) or ""
        raise CourseError(what, f"{path} is not valid YAML{where}" + (f": {problem}" if problem else "")) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        # e.g. an integer of more than 4300 digits, a !!binary that is not base64
        why = "a number with more than 4300 digits" if "digits" in str(e) else str(e)[:100]
        raise CourseError(what, f"{path} has a value YAML cannot build ({why})") from None
    finally:
        loader.dispose()
    if many:
        return docs
    if not docs or docs[0] is None:
        raise CourseError(what, f"{path} is empty", "a YAML mapping of the scenario's keys")
    return docs[0]


# --------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Value:
    """A single value (a string, number, boolean or time); ``null`` means "the default"."""
    nullable: bool = True


@dataclass(frozen=True)
class Map:
    """A mapping with known keys."""
    keys: dict
    nullable: bool = True           # ``section:`` left empty means "all defaults"
    open: bool = False              # extra keys allowed (Kubernetes fields the model does not read)


@dataclass(frozen=True)
class Dict:
    """A mapping from names the document chooses (node names, labels) to one shape."""
    value: Any
    key: str = "name"               # "name", "index" (0, 1, "2"), "any"
    nullable: bool = True


@dataclass(frozen=True)
class List:
    item: Any
    length: int | None = None
    nullable: bool = True


V = Value()
_NIC = Map({"name": V, "address": V, "mac": V, "mtu": V}, nullable=False)
_DOCKER = Map({"mtu": V, "ipMasq": V, "bridgeMac": V})
_POD_OVER = Map({"veth": V, "mac": V, "vethMac": V}, nullable=False)

#: The scenario document (docs/scenario-format.md lists every key).
SCENARIO = Map({
    "name": V, "description": V, "utcOffset": V, "neighbourCaches": V, "manifests": V, "extends": V,
    "flannel": Map({"network": V, "subnetLen": V, "backend": V, "vni": V, "port": V, "ipMasq": V,
                    "udpChecksum": V, "version": V}, nullable=False),
    "serviceCIDR": V,
    "kubeProxy": Map({"mode": V, "masqueradeAll": V, "clusterCIDR": V, "masqueradeBit": V, "version": V}),
    "nodes": Dict(Map({"nic": _NIC, "subnet": V, "vtepMac": V, "docker": _DOCKER, "hostname": V,
                       "defaultTTL": V, "ephemeralPorts": List(V, length=2), "bridgeNfCallIptables": V,
                       "defaultRoute": V, "hairpinMode": V},
                      nullable=False), nullable=False),
    "pods": Dict(Map({"node": V, "ip": V, "veth": V, "mac": V, "vethMac": V, "namespace": V,
                      "labels": Dict(V, key="any")}, nullable=False)),
    "workloads": Dict(Map({"replicas": V, "node": V, "podIPs": List(V), "pods": Dict(_POD_OVER, key="index")},
                          nullable=False)),
    "services": Dict(Map({"clusterIP": V, "ports": Dict(Map({"port": V, "targetPort": V, "nodePort": V},
                                                            nullable=False),
                                                        key="index")}, nullable=False)),
    "request": Map({"client": V, "service": V, "port": V, "method": V, "path": V, "userAgent": V,
                    "ip": V, "node": V}, nullable=False),
    "externalHosts": Dict(Map({"nic": _NIC}, nullable=False)),
    # traffic case 6: the client resolves a name through kube-dns first (coursekit.dns)
    "dns": Map({"name": V, "domain": V, "clusterIP": V, "ttl": V, "soaSerial": V,
                "server": Map({"name": V, "node": V, "ip": V, "veth": V, "mac": V, "vethMac": V}),
                "sourcePorts": List(V), "ipIds": List(V)}),
    "observed": Map({
        "clientPort": V, "clientISN": V, "serverISN": V, "clientTSOffsetUs": V, "serverTSOffsetUs": V,
        "start": V, "times": List(V), "anchor": Map({"node": V, "interface": V}), "windows": List(V),
        "wscale": Map({"client": V, "server": V}), "endpoint": V, "vxlanSourcePort": Dict(V),
        "flowHashSeed": V, "ipId": Dict(V), "nginxMtime": V, "tsLagTicks": Dict(V, key="index")}),
    "timing": Map({k: V for k in ("vethUs", "bridgeUs", "forwardUs", "encapUs", "wireUs", "decapUs",
                                  "processUs", "arpUs")}),
    "names": Map({"hosts": Dict(V, key="any"), "services": Dict(V, key="any")}),
    # the one broken thing of a fault scenario (coursekit.faults; docs/scenario-format.md)
    "fault": Map({"kind": V, "node": V, "peer": V, "port": V, "at": V, "service": V}),
    # {scenario path: "label: why"}: see coursekit.provenance
    "provenance": Dict(V, key="any"),
}, nullable=False)

_ANY = Map({}, open=True)
_META = Map({"name": V, "namespace": V, "labels": Dict(V, key="any"), "annotations": _ANY, "uid": V,
             "generateName": V, "resourceVersion": V, "creationTimestamp": V}, nullable=False)
_CONTAINER = Map({
    "name": V, "image": V, "imagePullPolicy": V, "command": List(V), "args": List(V), "workingDir": V,
    "ports": List(Map({"containerPort": V, "name": V, "protocol": V}, nullable=False)),
    "env": List(_ANY), "envFrom": List(_ANY), "resources": _ANY,
    "volumeMounts": List(_ANY), "livenessProbe": _ANY, "readinessProbe": _ANY, "startupProbe": _ANY,
    "lifecycle": _ANY, "securityContext": _ANY, "stdin": V, "tty": V, "terminationMessagePath": V,
    "terminationMessagePolicy": V}, nullable=False)
_POD_SPEC = Map({
    "nodeName": V, "containers": List(_CONTAINER, nullable=False), "initContainers": List(_ANY),
    "volumes": List(_ANY), "restartPolicy": V, "terminationGracePeriodSeconds": V, "dnsPolicy": V,
    "nodeSelector": Dict(V, key="any"), "serviceAccountName": V, "serviceAccount": V, "securityContext": _ANY,
    "imagePullSecrets": List(_ANY), "affinity": _ANY, "tolerations": List(_ANY), "schedulerName": V,
    "priorityClassName": V}, nullable=False)
#: The subset of Kubernetes' Deployment and Service the model reads; other
#: Kubernetes fields that do not change the packets are allowed as they are.
MANIFESTS = {
    "Deployment": Map({
        "apiVersion": V, "kind": V, "metadata": _META, "status": _ANY,
        "spec": Map({"selector": Map({"matchLabels": Dict(V, key="any")}, nullable=False),
                     "replicas": V, "strategy": _ANY, "minReadySeconds": V, "revisionHistoryLimit": V,
                     "progressDeadlineSeconds": V, "paused": V,
                     "template": Map({"metadata": _META, "spec": _POD_SPEC}, nullable=False)}, nullable=False),
    }, nullable=False),
    "Service": Map({
        "apiVersion": V, "kind": V, "metadata": _META, "status": _ANY,
        "spec": Map({"ports": List(Map({"port": V, "targetPort": V, "name": V, "protocol": V, "nodePort": V},
                                       nullable=False), nullable=False),
                     "selector": Dict(V, key="any"), "type": V, "clusterIP": V, "sessionAffinity": V},
                    nullable=False),
    }, nullable=False),
}


def suggest(word: str, known) -> str:
    """`` (did you mean X?)`` for the closest known word, or ``""``."""
    known = [str(k) for k in known]
    low = {k.lower(): k for k in known}
    if str(word).lower() in low:
        return f" (did you mean {low[str(word).lower()]}?)"
    m = difflib.get_close_matches(str(word), known, n=1, cutoff=0.6)
    return f" (did you mean {m[0]}?)" if m else ""


_SCALARS = (str, int, float, bool, _dt.date, _dt.datetime)


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, (bytes, bytearray)):
        return "binary data"
    if isinstance(v, _SCALARS):
        return f"the value {v!r}"[:80]
    return f"a {type(v).__name__}"


def _check(doc: Any, shape: Any, path: str) -> None:
    name = path or "scenario"
    if doc is None:
        if getattr(shape, "nullable", True):
            return
        raise CourseError(name, "is empty (null)", _expect(shape))
    if isinstance(shape, Value):
        if not isinstance(doc, _SCALARS):
            raise CourseError(name, f"is {_kind(doc)}, not a single value", "a string, number or true/false")
        return
    if isinstance(shape, List):
        if not isinstance(doc, list):
            raise CourseError(name, f"is {_kind(doc)}, not a list", _expect(shape))
        if shape.length is not None and len(doc) != shape.length:
            raise CourseError(name, f"has {len(doc)} items", f"a list of exactly {shape.length}")
        for i, item in enumerate(doc):
            _check(item, shape.item, f"{path}.{i}")
        return
    if not isinstance(doc, dict):
        raise CourseError(name, f"is {_kind(doc)}, not a mapping", _expect(shape))
    if isinstance(shape, Dict):
        for k, v in doc.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise CourseError(f"{name}", f"has the key {_kind(k)}", "names (text)")
            if shape.key == "name" and not isinstance(k, str):
                raise CourseError(f"{path}.{k}", f"the key {k!r} is not a name", "a name such as meizu or nginx")
            if shape.key == "index" and not (isinstance(k, int) or (isinstance(k, str) and k.isdigit())):
                raise CourseError(f"{path}.{k}", f"the key {k!r} is not an index", "0, 1, 2, ...")
            _check(v, shape.value, f"{path}.{k}")
        return
    for k, v in doc.items():
        if k not in shape.keys:
            if shape.open:
                continue
            full = f"{path}.{k}" if path else str(k)
            raise CourseError(full, f"unknown key{suggest(k, shape.keys)}", ", ".join(shape.keys))
        _check(v, shape.keys[k], f"{path}.{k}" if path else k)


def _expect(shape: Any) -> str:
    if isinstance(shape, Map):
        return "a mapping of " + ", ".join(shape.keys) if shape.keys else "a mapping"
    if isinstance(shape, Dict):
        return "a mapping of names to settings"
    if isinstance(shape, List):
        return "a list" + (f" of {shape.length}" if shape.length else "")
    return "a single value"


def check_scenario_shape(raw: Any) -> None:
    """Raise :class:`CourseError` unless ``raw`` has the scenario's shape (unknown keys included)."""
    _check(raw, SCENARIO, "")


def check_manifest_shape(doc: Any, index: int, path: Path) -> str:
    """Check one manifest document; return its kind.  Field names say which document."""
    where = f"manifests[{index}]"
    if not isinstance(doc, dict):
        raise CourseError(where, f"{path.name} document {index + 1} is {_kind(doc)}, not a mapping",
                          "a Kubernetes object (Deployment or Service)")
    kind = doc.get("kind")
    if kind not in MANIFESTS:
        raise CourseError(f"{where}.kind", f"kind {kind!r} is not modelled{suggest(str(kind), MANIFESTS)}",
                          ", ".join(MANIFESTS))
    _check(doc, MANIFESTS[kind], f"{where}({kind})")
    return kind


def known_path(dotted: str) -> None:
    """Raise :class:`CourseError` unless ``dotted`` names a place in the scenario document (an override)."""
    if not isinstance(dotted, str) or not dotted or any(not p for p in dotted.split(".")):
        raise CourseError("override", f"{dotted!r} is not a dotted path", "e.g. flannel.vni or nodes.meizu.nic.mtu")
    shape: Any = SCENARIO
    done = []
    for part in dotted.split("."):
        here = ".".join(done + [part])
        if isinstance(shape, Map):
            if shape.open:
                return
            if part not in shape.keys:
                raise CourseError(here, f"unknown key{suggest(part, shape.keys)}", ", ".join(shape.keys))
            shape = shape.keys[part]
        elif isinstance(shape, Dict):
            shape = shape.value
        elif isinstance(shape, List):
            if not part.isdigit():
                raise CourseError(here, f"{part!r} is not a list index", "0, 1, 2, ...")
            shape = shape.item
        else:
            raise CourseError(here, f"{'.'.join(done)} is a single value; it has no {part!r}",
                              ".".join(done))
        done.append(part)
