"""The model's prediction beside real captures, and the first place they disagree.

``coursekit compare MODEL REAL`` / :func:`compare_captures`: MODEL is the
model's side -- a scenario (a name or a ``.yaml``, e.g. one written by
``coursekit scenario from-state``), whose captures are computed at exactly
the places the real files were taken, or pcap files/folders;  REAL is the
captures of a real cluster (files or a folder).  Both sides are explained
(:mod:`.explanation`); their conversations are paired in order, and so are
their packets.  Each packet's walk -- the places it was seen, in order, and
what changed between two of them (NAT'd addresses, TTL, encapsulation) --
is set beside the other's.  What the kernel chooses freely (ports, ISNs,
IP ids, times, MACs) is not compared.

The first disagreement is the first thing to investigate: the first packet,
in time, whose walk differs, and the first hop where it does.

Taught in: 10-your-own-cluster.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CourseError, public

__all__ = ["Row", "Comparison", "compare_captures", "capture_files"]

_SUFFIXES = (".pcap", ".pcapng", ".cap")


@dataclass
class Row:
    """One packet: its walk in the model and in the real captures."""
    conversation: int
    packet: int
    what: str                       # "request [S]"
    model: list | None              # [(place, (change, ...)), ...]; None: the model has no such packet
    real: list | None
    difference: str | None = None   # None: the same walk

    @staticmethod
    def walk_text(steps) -> str:
        if steps is None:
            return "(no such packet)"
        return " > ".join(p + (f" ({'; '.join(ch)})" if ch else "") for p, ch in steps)


@dataclass
class Comparison:
    """What :func:`compare_captures` found."""
    model_name: str
    places: list                    # the places both sides have
    rows: list
    differences: list               # every difference, first first
    notes: list = field(default_factory=list)
    titles: list = field(default_factory=list)     # (conversation, model title, real title)

    @property
    def first(self) -> str | None:
        """The first disagreement, or None when the walks agree."""
        return self.differences[0] if self.differences else None

    def text(self) -> str:
        w = [f"model: {self.model_name}; compared at {len(self.places)} place{'s' if len(self.places) != 1 else ''}: "
             + ", ".join(self.places)]
        for n in self.notes:
            w.append(f"  note: {n}")
        w.append(f"first disagreement: {self.first}" if self.first else
                 "no disagreement: the real walk is the model's at every place compared")
        by_conv: dict = {}
        for r in self.rows:
            by_conv.setdefault(r.conversation, []).append(r)
        titles = {c: (m, r) for c, m, r in self.titles}
        for c, rows in by_conv.items():
            m, r = titles.get(c, ("-", "-"))
            w.append("")
            w.append(f"conversation {c}: model {m}; real {r}")
            for row in rows:
                mark = "same" if row.difference is None else "DIFFERS"
                w.append(f"  {row.packet or '-':>3} {row.what:<18} {mark}" + (f": {row.difference}" if row.difference
                                                                               else ""))
                if row.difference is None:
                    w.append(f"        {Row.walk_text(row.model)}")
                else:
                    w.append(f"        model: {Row.walk_text(row.model)}")
                    w.append(f"        real:  {Row.walk_text(row.real)}")
        if len(self.differences) > 1:
            w.append("")
            w.append(f"{len(self.differences)} differences; the first is the first thing to investigate")
        return "\n".join(w) + "\n"

    def to_json(self) -> dict:
        return {"model": self.model_name, "places": list(self.places), "notes": list(self.notes),
                "first": self.first, "differences": list(self.differences),
                "packets": [{"conversation": r.conversation, "packet": r.packet, "what": r.what,
                             "model": r.model and [[p, list(ch)] for p, ch in r.model],
                             "real": r.real and [[p, list(ch)] for p, ch in r.real],
                             "difference": r.difference} for r in self.rows]}

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text())


def capture_files(paths, what: str) -> list[Path]:
    """Paths or folders -> the capture files (a folder: its *.pcap and *.pcapng, sorted)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not isinstance(paths, (list, tuple)) or not paths:
        raise CourseError(what, f"{paths!r:.60} is not a capture, a folder or a list of them",
                          "pcap/pcapng files or a folder holding them")
    out = []
    for p in paths:
        if not isinstance(p, (str, os.PathLike)):
            raise CourseError(what, f"{p!r:.60} is not a path", "pcap/pcapng files or a folder holding them")
        p = Path(p)
        if p.is_dir():
            found = sorted(x for x in p.iterdir() if x.is_file() and x.name.endswith(_SUFFIXES))
            if not found:
                raise CourseError(what, f"no .pcap or .pcapng file in {p}", "a folder of captures")
            out += found
        elif not p.exists():
            raise CourseError(what, f"no such file or folder: {p}", "pcap/pcapng files or a folder holding them")
        else:
            out.append(p)
    return out


def _stem(p: Path) -> str:
    name = p.name
    for s in _SUFFIXES:
        if name.endswith(s):
            return name[:-len(s)]
    return name


def _is_scenario(model) -> bool:
    from .scenario import Scenario, data_dir
    if isinstance(model, (Scenario, dict)):
        return True
    if isinstance(model, (str, os.PathLike)):
        p = Path(model)
        if p.suffix in (".yaml", ".yml"):
            return True
        return not p.exists() and (data_dir() / "scenarios" / f"{model}.yaml").exists()
    return False


def _model_files(sc, real: list[Path], tmp: Path, notes: list) -> list[Path]:
    """The scenario's captures at the places the real files were taken (``<owner>-<interface>``)."""
    from .capture import capture, write_pcap
    from .datapath import walk
    w = walk(sc)
    owners = [n.name for n in sc.nodes] + [p.name for p in sc.pods] + [x.name for x in sc.externals]
    out = []
    for f in real:
        stem = _stem(f)
        owner = next((o for o in sorted(owners, key=len, reverse=True) if stem.startswith(o + "-")), None)
        iface = stem[len(owner) + 1:] if owner else None
        if owner is not None and iface not in sc.interfaces(owner):
            like = [i for i in sc.interfaces(owner) if i.startswith(iface + ".")]   # meizu-flannel for flannel.1
            iface = like[0] if len(like) == 1 else iface
        if owner is None or iface not in sc.interfaces(owner):
            notes.append(f"{f.name}: the scenario has no {'owner' if owner is None else 'interface'} for it "
                         f"(named <node or pod>-<interface>; {sc.name} has {', '.join(owners)}) -- not compared")
            continue
        frames = capture(sc, owner, iface, walk=w)
        out.append(write_pcap(tmp / f.name, frames))        # the real file's name: the same place on both sides
    return out


@public
def compare_captures(model, real, state=None, model_state=None, vxlan_ports=None) -> Comparison:
    """The model's walk beside the real one, packet by packet, and the first disagreement.

    >>> c = ck.compare_captures("my-cluster.yaml", "captures/", state="state/")   # doctest: +SKIP
    >>> print(c.text()); c.first

    ``model``: a scenario (name, ``.yaml`` path, or a loaded one) -- its
    captures are computed at the places the real files name -- or capture
    files/folders.  ``real``: capture files or a folder.  ``state`` and
    ``model_state``: state folders for either side's explanation (they
    only add attribution; the comparison does not need them).

    Taught in: 10-your-own-cluster.
    """
    from .explanation import _brief, _shape, compare, explain, packet_difference, pair_conversations, pair_packets
    from .scenario import as_scenario
    real_files = capture_files(real, "real")
    notes: list = []
    with tempfile.TemporaryDirectory(prefix="packet-walk-compare-") as tmp:
        if _is_scenario(model):
            sc = as_scenario(model, "model")
            model_files = _model_files(sc, real_files, Path(tmp), notes)
            name = f"scenario {sc.name}"
            if not model_files:
                raise CourseError("real", "no real capture is named after a place of the scenario",
                                  "files named <node or pod>-<interface>.pcap, e.g. " +
                                  f"{sc.nodes[0].name}-{sc.nodes[0].nic.name}.pcap")
        else:
            model_files = capture_files(model, "model")
            name = ", ".join(f.name for f in model_files[:4]) + (" ..." if len(model_files) > 4 else "")
            rs, ms = {_stem(f) for f in real_files}, {_stem(f) for f in model_files}
            for f in model_files:
                if _stem(f) not in rs:
                    notes.append(f"{f.name}: no real capture at this place -- left out of the model's side")
            model_files = [f for f in model_files if _stem(f) in rs]
            for f in real_files:
                if _stem(f) not in ms:
                    notes.append(f"{f.name}: the model has no capture at this place -- not compared")
            real_files = [f for f in real_files if _stem(f) in ms]
            if not model_files:
                raise CourseError("model", "no model capture has the name of a real one",
                                  "captures named <node or pod>-<interface> on both sides")
        em = explain(model_files, state=model_state, vxlan_ports=vxlan_ports)
    er = explain(real_files, state=state, vxlan_ports=vxlan_ports)
    diffs = compare(em, er)
    rows, titles = [], []
    pairs = pair_conversations(em, er)
    other = [cr for cm, cr in pairs if cm is None]
    if other:
        notes.append(f"{len(other)} captured conversation{'s' if len(other) != 1 else ''} the model does not "
                     "predict (other traffic, not compared): " + "; ".join(c.title for c in other[:6])
                     + (" ..." if len(other) > 6 else ""))
    for i, (cm, cr) in enumerate([p for p in pairs if p[0] is not None]):
        titles.append((i + 1, cm.title, cr.title if cr else "(not captured)"))
        if cr is None:
            for j, a in enumerate(cm.packets, 1):
                rows.append(Row(i + 1, j, f"{a.flow} {_brief(a)}", _shape(a), None, "not captured"))
            continue
        for j, a, b in pair_packets(cm, cr):
            p = a or b
            what = f"{p.flow} {_brief(p)}"
            sa, sb = (_shape(a) if a else None), (_shape(b) if b else None)
            if a is None or b is None:
                diff = "only in the " + ("real captures" if a is None else "model")
            else:
                diff = packet_difference(a, b)
            rows.append(Row(i + 1, j if j is not None else 0, what, sa, sb, diff))
    places = sorted({s.place for c in er.conversations for p in c.packets for s in p.sightings}
                    & {s.place for c in em.conversations for p in c.packets for s in p.sightings})
    return Comparison(name, places, rows, diffs, notes, titles)
