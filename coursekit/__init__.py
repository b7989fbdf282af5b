"""coursekit: the one helper package of the Packet Walk course.

Every chapter starts with ``import coursekit as ck``.  The pieces, one
module per concept:

* :mod:`~coursekit.scenario` -- the cluster as data (``ck.load_scenario``; every function
  that takes a scenario accepts a Scenario, a name such as ``"article"`` or a path: ``ck.as_scenario``)
* :mod:`~coursekit.schema` -- the scenario document's shape and the bounded YAML reader
* :mod:`~coursekit.provenance` -- computed, observed or assumed: where each value comes from
* :mod:`~coursekit.netfilter`, :mod:`~coursekit.kubeproxy` -- nat rules and conntrack
* :mod:`~coursekit.routing` -- routes, neighbours, flannel's FDB
* :mod:`~coursekit.vxlan` -- the kernel's encapsulation choices
* :mod:`~coursekit.conversation` -- wget and nginx's TCP exchange
* :mod:`~coursekit.datapath` -- the walk, hop by hop (``ck.walk``)
* :mod:`~coursekit.capture` -- per-interface captures and pcap files
* :mod:`~coursekit.tcpdump`, :mod:`~coursekit.bpf` -- tcpdump's text and libpcap's filters
* :mod:`~coursekit.dissect` -- every layer and field with its byte offsets (``ck.tree``)
* :mod:`~coursekit.diagrams` -- pictures (matplotlib), loaded on first use
* :mod:`~coursekit.explore`, :mod:`~coursekit.widgets` -- explorers and the stepper
* :mod:`~coursekit.textbox` -- long text (a transcript) as a scroll box that never wraps inside a word
* :mod:`~coursekit.exercises` -- predict, then ``ck.check``
* :mod:`~coursekit.lab` -- the live lab on a real kernel
* :mod:`~coursekit.glossary` -- the terms, in English and Chinese (``data/glossary.yaml``)
* :mod:`~coursekit.i18n` -- the language of the messages (``ck.set_language("zh")``, ``COURSEKIT_LANG``)
* :mod:`~coursekit.explanation`, :mod:`~coursekit.state`, :mod:`~coursekit.collect` -- your own cluster:
  real captures explained hop by hop (``ck.explain``), a node's state, the read-only collector
* :mod:`~coursekit.from_state`, :mod:`~coursekit.comparison` -- a cluster's state as a scenario
  (``ck.scenario_from_state``), the model beside real captures (``ck.compare_captures``)
"""

from .bpf import apply_filter, compile_filter
from .capture import Frame, capture, read_pcap, write_pcap
from .datapath import walk
from .dissect import changes, hexdump, tree
from .errors import CourseError, public
from .i18n import language, set_language
from .netfilter import conntrack_entry, conntrack_history, nat_save
from . import provenance  # noqa: F401  (ck.provenance.of_field / of_path)
from .scenario import as_scenario, default_scenario, describe, load_scenario, manifest_text
from .tcpdump import Style, render

__version__ = "0.1.0"

__all__ = ["CourseError", "load_scenario", "as_scenario", "default_scenario", "walk", "capture", "write_pcap", "read_pcap",
           "Frame", "render", "Style", "apply_filter", "compile_filter", "tcpdump", "tree", "hexdump", "changes", "describe",
           "manifest_text", "nat_save", "conntrack_entry", "conntrack_history", "Transcript", "check", "explain", "__version__",
           "set_language", "language"]

_LAZY = ("diagrams", "widgets", "explore", "exercises", "lab", "dissect", "glossary", "vxlan", "netfilter", "routing",
         "cases", "dns", "faults", "explanation", "state", "collect", "labfaults", "from_state", "comparison")


def __getattr__(name):
    # matplotlib and ipywidgets load only when a chapter first draws or explores
    if name in _LAZY:
        import importlib
        return importlib.import_module(f".{name}", __name__)
    if name == "check":
        from .exercises import check
        return check
    if name == "explain":
        from .explanation import explain
        return explain
    if name == "scenario_from_state":
        from .from_state import scenario_from_state
        return scenario_from_state
    if name == "compare_captures":
        from .comparison import compare_captures
        return compare_captures
    raise AttributeError(f"module 'coursekit' has no attribute {name!r}")


class Transcript(str):
    """tcpdump's text for one command; in a notebook it shows the command and a packet count."""
    command: str = ""
    packets: int = 0

    def __repr__(self) -> str:
        body = str(self) if self else ""
        return f"$ {self.command}\n{self.packets} packet{'s' if self.packets != 1 else ''}" + \
            (f"\n{body}" if body else "")

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self))

    def _repr_html_(self) -> str:
        # JupyterLab: the same text in a box that scrolls instead of wrapping or filling the page
        from .textbox import scroll_box
        head, _, body = repr(self).partition("\n")
        count, _, rest = body.partition("\n")
        return scroll_box(rest, f"{head}\n{count}")


@public
def tcpdump(scenario, node: str, interface: str, flt: str = "", flags: str = "") -> Transcript:
    """What ``tcpdump -i <interface> [flags] '<filter>'`` on a node prints for the scenario.

    >>> ck.tcpdump(sc, "meizu", "enp4s0", "src 10.167.226.38 and port 8472 and udp")  # doctest: +SKIP

    ``scenario``: anything :func:`as_scenario` accepts (a Scenario, ``"article"``, a path).

    Taught in: 01-physical-nic, 02-flannel, 03-docker0.
    """
    from .scenario import as_scenario
    from .tcpdump import parse_flags
    scenario = as_scenario(scenario)
    for name, value in (("filter", flt), ("flags", flags)):
        if not isinstance(value, str):
            raise CourseError(name, f"a value of type {type(value).__name__} is not text",
                              "a string, e.g. '' or " + ("'udp port 8472'" if name == "filter" else "'-nn -v'"))
    scenario.check_interface(node, interface)
    style = Style.for_scenario(scenario, **parse_flags(flags))
    frames = apply_filter(capture(scenario, node, interface), flt)
    t = Transcript(render(frames, style))
    t.command = " ".join(x for x in ("tcpdump -i", interface, flags, f"'{flt}'" if flt else "") if x) + f"   # on {node}"
    t.packets = len(frames)
    return t
