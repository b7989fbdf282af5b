"""The course in a real browser: JupyterLab on loopback, headless Debian Chromium driven by Playwright.

Opens chapter 06, runs every cell, changes the VXLAN port in the explorer and
watches tcpdump's line turn from OTV to VXLAN, types an invalid IP and reads
the inline message, steps the stepper.  Screenshots go to
``test-artifacts/browser/``.  Needs /usr/bin/chromium and playwright: skips
on a laptop without them, fails in CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import ROOT, require

sys.path.insert(0, str(ROOT / "tools"))
from labserver import open_and_run_all, running_lab  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHAPTER = "notebooks/06-the-whole-walk.ipynb"


@pytest.fixture(scope="module")
def lab_url():
    require(Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed (apt install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require(False, "playwright is not installed (pip install playwright; no browser download needed)")
    with running_lab(ROOT) as (base, token):
        yield f"{base}/lab/tree/{CHAPTER}?token={token}"


def test_chapter_runs_and_widgets_respond(lab_url):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stored = (ROOT / CHAPTER).read_bytes()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        open_and_run_all(page, lab_url, ARTIFACTS)
        explorer = page.locator(".pw-explorer").first
        tcpdump = explorer.locator(".pw-tcpdump")
        expect(tcpdump).to_contain_text("OTV, flags [I] (0x08), overlay 0, instance 1")
        explorer.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "explorer-8472.png"), full_page=False)

        # the VXLAN port: 8472 -> 4789 turns tcpdump's OTV line into VXLAN
        port = explorer.locator(".pw-vxlan_port input")
        port.fill("4789")
        port.press("Enter")
        expect(tcpdump).to_contain_text("VXLAN, flags [I] (0x08), vni 1")
        expect(tcpdump).not_to_contain_text("OTV")
        explorer.screenshot(path=str(ARTIFACTS / "explorer-4789.png"))

        # an invalid IP: a message next to the field, the last good view kept
        ip = explorer.locator(".pw-client_ip input")
        ip.fill("172.30.83.300")
        ip.press("Enter")
        expect(explorer.locator(".pw-client_ip-error")).to_contain_text(
            "client pod IP: '172.30.83.300' is not an IPv4 address")
        expect(tcpdump).to_contain_text("VXLAN, flags [I] (0x08), vni 1")
        expect(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "explorer-error.png"))

        # the diagram tab draws the walk
        tab = explorer.get_by_role("tab", name="diagram")
        tab.scroll_into_view_if_needed()
        tab.click()
        expect(tab).to_have_attribute("aria-selected", "true")
        svg = explorer.locator(".pw-diagram svg")
        expect(svg).to_be_visible()
        expect(svg).to_contain_text("flannel.1 (VXLAN, VNI 1, UDP 4789)")      # drawn for the new port
        assert svg.bounding_box()["width"] > 500
        explorer.screenshot(path=str(ARTIFACTS / "explorer-diagram.png"))

        # the stepper: forward twice, back once
        stepper = page.locator(".pw-stepper").first
        stepper.scroll_into_view_if_needed()
        title = stepper.locator(".pw-step-title")
        expect(title).to_contain_text("request hop 1: busybox eth0")
        stepper.locator("button.pw-next").click()
        stepper.locator("button.pw-next").click()
        expect(title).to_contain_text("request hop 3: xiaomi docker0")
        expect(stepper.locator(".pw-step")).to_contain_text("DNAT 10.254.40.119:4432 -> 172.30.20.2:80")
        stepper.locator("button.pw-back").click()
        expect(title).to_contain_text("request hop 2")
        stepper.screenshot(path=str(ARTIFACTS / "stepper.png"))

        # no Python traceback anywhere on the page
        expect(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)
        assert page.locator("text=Traceback").count() == 0
        browser.close()
    assert (ROOT / CHAPTER).read_bytes() == stored, "the browser saved over a stored notebook"
