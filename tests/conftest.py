"""Shared test helpers.

``require(...)``: a test that needs a real component (tcpdump, root, iproute2,
chromium) skips with a reason on a laptop without it, and FAILS in CI
(CI=true), where .ci/run installs everything.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Hypothesis: no wall-clock checks (a loaded machine is slow: no per-example deadline, no "data
# generation too slow"), and in CI the same examples every run (what a CI failure shows is
# reproducible); a test's own @settings still wins for what it sets.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("packet-walk", deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          derandomize=IN_CI)
settings.load_profile("packet-walk")


def model_pcaps(sc, folder, keep=None) -> dict:
    """The model's own captures of every interface (nodes, pods, external hosts), written as the lab's
    pcaps would be: {(owner, interface): path}.  ``keep(walk, observation)`` leaves frames out."""
    import coursekit as ck
    w = ck.walk(sc)
    out = {}
    for x in [n.name for n in sc.nodes] + [p.name for p in sc.pods] + [e.name for e in sc.externals]:
        for i in sc.interfaces(x):
            frames = [f for f in ck.capture(sc, x, i, walk=w) if keep is None or keep(w, f.observation)]
            path = Path(folder) / f"{x}-{i}.pcap"
            ck.write_pcap(path, frames)
            out[(x, i)] = str(path)
    return out


def require(ok: bool, why: str) -> None:
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI must have this real component: {why}")
    pytest.skip(why)


def require_tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    require(path is not None, f"{name} is not installed")
    return path


@pytest.fixture(scope="session")
def article():
    import coursekit as ck
    return ck.load_scenario("article")


@pytest.fixture(scope="session")
def article_walk(article):
    import coursekit as ck
    return ck.walk(article)
