"""The lab's reading of a kernel conversation, without a kernel: the model's own captures
stand in for the lab's pcaps, then one segment is taken away.  No root needed."""

from pathlib import Path

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


class _Clock:
    """time.monotonic and time.sleep on a clock the test moves: no wall-clock bound in a test
    (a loaded machine stretches real sleeps).  ``grow``: a pcap that grows while the clock is below."""

    def __init__(self, grow=None, until=0.0):
        self.now, self.grow, self.until = 100.0, grow, until

    def monotonic(self):
        return self.now

    def sleep(self, s):
        self.now += s
        if self.grow is not None and self.now < self.until:
            with open(self.grow, "ab") as f:
                f.write(b"x")


def test_waiting_for_quiet_captures_returns_once_nothing_grows(tmp_path, monkeypatch):
    from coursekit import lab
    p = tmp_path / "x.pcap"
    p.write_bytes(b"x")
    clock = _Clock()
    monkeypatch.setattr(lab, "time", clock)
    _wait_quiet([str(p), None, str(tmp_path / "missing")], least=0.05, quiet=0.1, most=2)
    assert 0.15 <= clock.now - 100 < 0.15 + 0.05 + 1e-9        # least, then quiet (one poll's grain)
    # a pcap still growing: waited for until it stops (1 s), then quiet
    clock = _Clock(grow=p, until=101.0)
    monkeypatch.setattr(lab, "time", clock)
    _wait_quiet([str(p)], least=0.05, quiet=0.1, most=2)
    assert 1.1 - 1e-9 <= clock.now - 100 < 1.1 + 0.1
    # one that never stops: given up after least + most
    clock = _Clock(grow=p, until=1e9)
    monkeypatch.setattr(lab, "time", clock)
    _wait_quiet([str(p)], least=0.05, quiet=0.1, most=2)
    assert 2.05 - 1e-9 <= clock.now - 100 < 2.05 + 0.1


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


def test_captures_are_complete_only_once_every_interface_holds_its_conversation(tmp_path):
    """What stopping the captures waits for (lab._wait_complete): the model's own pcaps are complete;
    without the last segment on one interface (a tcpdump that has not read it yet) they are not."""
    from coursekit.capture import write_pcap
    from coursekit.lab import _captures_complete
    sc = ck.load_scenario("article")
    w, captured = _captured(sc)
    pcaps = {}
    for (owner, iface), frames in captured.items():
        pcaps[(owner, iface)] = str(tmp_path / f"{owner}-{iface}.pcap")
        write_pcap(pcaps[(owner, iface)], frames)
    assert _captures_complete(sc, pcaps)
    last = w.segments[-1].index
    for key in [(sc.client.name, "eth0"), (sc.server.node, "docker0")]:
        frames = captured[key]
        write_pcap(pcaps[key], [f for f in frames if f.observation.segment != last])
        assert not _captures_complete(sc, pcaps), key
        write_pcap(pcaps[key], frames)
        assert _captures_complete(sc, pcaps)
    half = tmp_path / "half.pcap"                       # a record being written
    half.write_bytes(Path(pcaps[key]).read_bytes()[:100])
    assert not _captures_complete(sc, {**pcaps, key: str(half)})
