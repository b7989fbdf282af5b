"""The lab's reading of a kernel conversation, without a kernel: the model's own captures
stand in for the lab's pcaps, then one segment is taken away.  No root needed."""

import pytest

import coursekit as ck
from coursekit.capture import capture
from coursekit.datapath import walk
from coursekit.explore import interfaces
from coursekit.lab import ConversationShape, _wait_quiet, observe


def _captured(sc):
    w = walk(sc)
    return w, {key: capture(sc, *key, walk=w) for key in interfaces(sc)}


def test_the_models_own_captures_are_read_back_as_its_observations():
    sc = ck.load_scenario("article")
    _, captured = _captured(sc)
    over, fed = observe(sc, captured)
    assert over["observed.clientPort"] == sc.observed.client_port
    assert over["observed.clientISN"] == sc.observed.client_isn
    assert over["observed.serverISN"] == sc.observed.server_isn


@pytest.mark.parametrize("which", ["ACK of request", "ACK of header", "ACK of body + FIN"])
def test_a_segment_the_kernel_did_not_send_is_named(which):
    sc = ck.load_scenario("article")
    w, captured = _captured(sc)
    seg = next(s for s in w.segments if s.label == which)
    anchor = (sc.server.node, "docker0")
    keep = [f for f in captured[anchor] if f.observation.segment != seg.index]
    assert len(keep) == len(captured[anchor]) - 1
    captured[anchor] = keep
    with pytest.raises(ConversationShape) as e:
        observe(sc, captured)
    assert f"not seen: {seg.index + 1} {seg.sender} {which}" in str(e.value)
    assert f"{len(w.segments) - 1} of {len(w.segments)} segments" in str(e.value)


def test_waiting_for_quiet_captures_returns_once_nothing_grows(tmp_path):
    p = tmp_path / "x.pcap"
    p.write_bytes(b"x")
    import time
    t = time.monotonic()
    _wait_quiet([str(p), None, str(tmp_path / "missing")], least=0.05, quiet=0.1, most=2)
    assert 0.15 <= time.monotonic() - t < 1.5


def test_run_all_runs_the_exchange_again_once_and_says_so(monkeypatch):
    from coursekit import lab
    calls = []

    class FakeLab:
        def __init__(self, *a):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            calls.append("down")

        def up(self):
            calls.append("up")

        start_captures = request = stop_captures = lambda self: None

        def compare(self):
            if calls.count("up") == 1:
                raise ConversationShape("live lab", "9 of 10 segments identified; not seen: 5 server ACK of request")
            return lab.Report("article", {}, [], [])

    monkeypatch.setattr(lab, "requirements", lambda: [])
    monkeypatch.setattr(lab, "Lab", FakeLab)
    monkeypatch.setattr(lab.os, "geteuid", lambda: 0)
    said = []
    report = lab.run_all(ck.load_scenario("article"), progress=said.append)
    assert calls == ["up", "down", "up", "down"]
    assert any("not seen: 5 server ACK of request" in n for n in report.notes)
    assert any("running the exchange again" in s for s in said)

    def always(self):
        raise ConversationShape("live lab", "different")
    monkeypatch.setattr(FakeLab, "compare", always)
    with pytest.raises(ck.CourseError, match="first attempt: different"):
        lab.run_all(ck.load_scenario("article"))


@pytest.mark.parametrize("name,field", [("faults/missing-fdb", "fault")])
def test_what_the_lab_cannot_build_yet_is_refused_before_anything_is_set_up(name, field):
    from coursekit import lab
    with pytest.raises(ck.CourseError) as e:
        lab.run_all(ck.load_scenario(name))
    assert e.value.field == field and "does not" in str(e.value)


def test_the_report_counts_fed_values_apart_from_derived_ones():
    """The model's own pcaps compared with the model: the fields that only carry a value fed
    from the lab (client port, ISNs, windows, outer source ports, first IP ids) are counted
    apart from the fields the model derived."""
    import tempfile
    from pathlib import Path
    from coursekit.capture import write_pcap
    from coursekit.lab import compare
    sc = ck.load_scenario("article")
    w, captured = _captured(sc)
    with tempfile.TemporaryDirectory() as d:
        pcaps = {}
        for (owner, iface), frames in captured.items():
            pcaps[(owner, iface)] = str(Path(d) / f"{owner}-{iface}.pcap")
            write_pcap(pcaps[(owner, iface)], frames)
        report = compare(sc, pcaps)
    assert report.ok, report.text()
    fed = sum(r.fed for r in report.interfaces)
    matched = sum(r.matched for r in report.interfaces)
    # every segment's window is fed: at least one fed field per frame; the derived ones outnumber them
    frames = sum(r.model_frames for r in report.interfaces)
    assert frames <= fed < matched
    assert f"{fed} more equal by construction" in report.text()
    assert f"{sum(r.fields for r in report.interfaces) - sum(r.free for r in report.interfaces) - fed} fields " \
           "compared by value, all equal" in report.text()
