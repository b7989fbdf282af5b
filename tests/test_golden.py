"""Golden: the article's three tcpdump transcripts, reproduced byte for byte.

The scenario files hold only observations (client ports, ISNs, TS clocks,
packet times, windows, node names); every other character is computed.
The transcripts live in tests/golden/ as expected outputs -- never read by
coursekit.
"""

import re
from pathlib import Path

import pytest

import coursekit as ck
from conftest import GOLDEN, ROOT

CASES = [
    # scenario, interface on meizu, the article's filter, transcript
    ("article", "enp4s0", "src 10.167.226.38 and port 8472 and udp", "enp4s0-udp8472.txt"),
    ("article-flannel", "flannel.1", "host 172.30.83.0 and tcp", "flannel.1.txt"),
    ("article-docker0", "docker0", "host 172.30.83.0 and tcp", "docker0.txt"),
]


def expected(name: str) -> str:
    """The packet lines of a transcript.

    docker0.txt carries the blog's line numbers (" 1 ", " 2 ", ...) and the
    flannel.1/docker0 transcripts include the shell prompt and tcpdump's two
    stderr lines ("verbose output suppressed", "listening on"): those are
    not packet output, so they are dropped here.
    """
    lines = []
    for line in (GOLDEN / name).read_text(encoding="utf-8").splitlines():
        line = re.sub(r"^\s*\d+ (?=\S)", "", line) if name == "docker0.txt" else line
        if not line.strip() or line.startswith(("[wlh@", "tcpdump:", "listening on")):
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("scenario,iface,flt,gold", CASES)
def test_transcript_reproduced(scenario, iface, flt, gold):
    sc = ck.load_scenario(scenario)
    assert ck.tcpdump(sc, "meizu", iface, flt) == expected(gold)


@pytest.mark.parametrize("scenario,iface,flt,gold", CASES)
def test_filter_hides_something_or_nothing_as_the_article_says(scenario, iface, flt, gold):
    sc = ck.load_scenario(scenario)
    everything = ck.capture(sc, "meizu", iface)
    kept = ck.apply_filter(everything, flt)
    if iface == "enp4s0":
        # src 10.167.226.38 keeps only xiaomi -> meizu: the 5 server segments are hidden
        assert (len(everything), len(kept)) == (11, 6)
    else:
        assert len(kept) == len(everything) == 11


def test_article_filters_that_showed_nothing(article):
    frames = ck.capture(article, "meizu", "enp4s0")
    for flt in ["dst 172.30.20.9", "src 172.30.83.9", "dst 10.254.40.119",
                "src 10.167.226.38 and port 8472 and tcp"]:
        assert ck.apply_filter(frames, flt) == [], flt
    # ...while the nginx pod's real address is inside every frame, BPF never looks there
    assert all(bytes([172, 30, 20, 2]) in f.data for f in frames)


def test_golden_copies_are_the_article_as_copied():
    """The transcripts are expected outputs: SHA256SUMS (taken when they were copied from the article)
    catches any later edit, without needing anything outside this repository."""
    import hashlib
    sums = dict(reversed(line.split()) for line in (GOLDEN / "SHA256SUMS").read_text().splitlines() if line)
    assert sorted(sums) == sorted(gold for *_, gold in CASES)
    for name, digest in sums.items():
        assert hashlib.sha256((GOLDEN / name).read_bytes()).hexdigest() == digest, name


def test_coursekit_contains_no_transcript():
    text = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "coursekit").rglob("*.py"))
    for _, _, _, gold in CASES:
        for line in expected(gold).splitlines():
            for number in re.findall(r"\b\d{7,}\b", line):   # ISNs, TS values
                assert number not in text, (gold, number)
