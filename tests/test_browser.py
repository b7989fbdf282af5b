"""The course in a real browser: JupyterLab on loopback, headless Debian Chromium driven by Playwright.

Opens chapter 06, runs every cell, clicks row 3 of the packet list and reads
packet 3's dissection, changes the VXLAN port (OTV turns into VXLAN) and the
VNI (the interface menu offers flannel.7), types an invalid IP and reads the
inline message, draws the diagram and, at 900 px, checks that it and the
chapter's own figures keep their natural size (9 pt text, scrolling instead),
steps the stepper to both ends on its map, then switches to the dark theme and
measures the contrast of the highlights, the status line and an error message
(computed colours, WCAG 4.5:1).  Screenshots go to ``test-artifacts/browser/``.
Needs /usr/bin/chromium and playwright: skips on a laptop without them, fails
in CI.
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


def _rgba(css: str) -> tuple:
    """A computed colour: ``rgb(r, g, b)``, ``rgba(r, g, b, a)`` or ``color(srgb r g b / a)`` (color-mix)."""
    inner = css[css.index("(") + 1:css.rindex(")")]
    if css.startswith("color("):
        space, *rest = inner.replace("/", " ").split()
        assert space == "srgb", css
        vals = [float(x) for x in rest]
        return (vals[0] * 255, vals[1] * 255, vals[2] * 255, vals[3] if len(vals) > 3 else 1.0)
    vals = [float(x) for x in inner.replace("/", ",").replace(" ", ",").split(",") if x]
    return (vals[0], vals[1], vals[2], vals[3] if len(vals) > 3 else 1.0)


def _contrast(page, element, own_background: bool = True) -> float:
    """WCAG contrast of an element's computed text colour on the background it is drawn on.

    ``own_background``: the element must paint its own (a highlight); otherwise the nearest
    ancestor's opaque background counts.
    """
    from coursekit.widgets import contrast, over
    # the colours as they settle: a flash (the status line) or a theme's transition still running
    # on the element or an ancestor is waited out first, so the measure is of the steady state
    fg, bgs = element.evaluate("""async e => {
        await Promise.all(document.getAnimations().filter(a => a.effect && a.effect.target
            && a.effect.target.contains(e) && a.effect.getComputedTiming().endTime !== Infinity)
            .map(a => a.finished.catch(() => null)));
        const bgs = [];
        for (let n = e; n && n.nodeType === 1; n = n.parentElement) bgs.push(getComputedStyle(n).backgroundColor);
        return [getComputedStyle(e).color, bgs]; }""")
    layers = [_rgba(b) for b in bgs]
    if own_background:
        assert layers[0][3] > 0.99, f"the element has no opaque background of its own: {bgs[0]}"
    opaque = next((k for k, b in enumerate(layers) if b[3] > 0.99), len(layers))
    back = layers[opaque] if opaque < len(layers) else (255.0, 255.0, 255.0, 1.0)
    for b in reversed(layers[:opaque]):               # translucent layers above it, bottom up
        back = _hex_rgba(over(b, back))
    return contrast(over(_rgba(fg), back), over(back, back))


def _smallest_svg_text_px(svg) -> float:
    """The smallest text of an inline SVG as drawn on screen, in CSS px (12 px = 9 pt)."""
    return svg.evaluate("""s => { const vb = s.viewBox.baseVal, scale = s.getBoundingClientRect().width / vb.width;
        return Math.min(...[...s.querySelectorAll('text')].filter(t => t.textContent.trim())
                                .map(t => parseFloat(getComputedStyle(t).fontSize) * scale)); }""")


def _set_width(page, width: int) -> None:
    """Resize the viewport and wait until JupyterLab has laid the notebook out for it: Lumino sizes its
    panels in an animation frame after the resize, so the notebook's right edge is the sign."""
    page.set_viewport_size({"width": width, "height": 1000})
    page.wait_for_function("""w => { const p = [...document.querySelectorAll('.jp-NotebookPanel')]
            .find(n => n.offsetParent !== null);
        const r = p && p.getBoundingClientRect().right;
        return window.innerWidth === w && r <= w && r > w - 400; }""", arg=width)


def _recomputed(explorer) -> int:
    """The explorer's recompute count, as its status line shows it (``recomputed (#N, ...``)."""
    import re
    return int(re.search(r"recomputed \(#(\d+),", explorer.locator(".pw-status").inner_text()).group(1))


def _hex_rgba(h: str) -> tuple:
    return tuple(float(int(h[i:i + 2], 16)) for i in (1, 3, 5)) + (1.0,)


def test_chapter_runs_and_widgets_respond(lab_url):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stored = (ROOT / CHAPTER).read_bytes()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        # expect() has a timeout of its own (5 s), which a loaded machine exceeds (a theme's stylesheet
        # took longer once): every wait in this test waits as long as its actions do
        expect.set_options(timeout=120_000)
        open_and_run_all(page, lab_url, ARTIFACTS)
        explorer = page.locator(".pw-explorer").first
        tcpdump = explorer.locator(".pw-tcpdump")
        expect(tcpdump).to_contain_text("OTV, flags [I] (0x08), overlay 0, instance 1")
        explorer.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "explorer-8472.png"), full_page=False)

        # the packet list: one row per packet; clicking row 3 dissects packet 3
        rows = explorer.locator(".pw-packets tr.pw-row")
        expect(rows).to_have_count(11)
        row3 = explorer.locator(".pw-packets tr.pw-row[data-no='3']")
        row3.click()
        dissection = explorer.locator(".pw-dissection")
        expect(dissection).to_contain_text("packet 3, as tcpdump prints it")
        expect(dissection.locator(".pw-fullline")).to_contain_text("Flags [.], ack 1, win 229")
        # the selected row, and only it, is marked (its own background, readable)
        marked = rows.evaluate_all("rs => rs.map(r => getComputedStyle(r.cells[0]).backgroundColor)")
        assert [k for k, bg in enumerate(marked) if bg == marked[2]] == [2], marked
        assert _contrast(page, row3.locator("td").first) >= 4.5
        # the keyboard, as in Wireshark's list: down twice, up once; the list keeps the focus
        for key, no in (("ArrowDown", 4), ("ArrowDown", 5), ("ArrowUp", 4)):
            page.keyboard.press(key)
            expect(dissection).to_contain_text(f"packet {no}, as tcpdump prints it")
            expect(explorer.locator(".pw-packet-no input")).to_have_value(str(no))
        assert page.evaluate("document.activeElement.dataset.no") == "4"
        row3.click()
        expect(dissection).to_contain_text("packet 3, as tcpdump prints it")
        # no row is wrapped: every row is one line high
        heights = rows.evaluate_all("rs => rs.map(r => r.getBoundingClientRect().height)")
        assert max(heights) < 1.6 * min(heights), heights
        # a field click highlights its bytes: the VNI is 3 bytes
        dissection.locator(".pw-field", has_text="vni:").first.click()
        expect(dissection.locator(".pw-hex span.pw-hi")).to_have_count(3)
        explorer.screenshot(path=str(ARTIFACTS / "explorer-packet-3.png"))

        # the hops tab: one row per hop of the selected packet's segment, changed values marked
        explorer.get_by_role("tab", name="hops").click()
        hops = explorer.locator(".pw-hops")
        expect(hops.locator("tr.pw-hop")).to_have_count(10)
        expect(hops.locator("td.pw-changed").first).to_be_visible()
        expect(hops).to_contain_text("the path of segment 2")          # packet 3 is the third segment
        explorer.screenshot(path=str(ARTIFACTS / "explorer-hops.png"))
        explorer.get_by_role("tab", name="packets").click()

        # the VXLAN port: 8472 -> 4789 turns tcpdump's OTV line into VXLAN
        port = explorer.locator(".pw-vxlan_port input")
        port.fill("4789")
        port.press("Enter")
        expect(tcpdump).to_contain_text("VXLAN, flags [I] (0x08), vni 1")
        expect(tcpdump).not_to_contain_text("OTV")
        expect(explorer.locator(".pw-status")).to_contain_text("recomputed (#")

        # a knob that changes the interface menu: VNI 7 -> flannel.7 offered, flannel.1 gone
        menu = explorer.locator(".pw-interface select")
        assert "meizu flannel.1" in menu.evaluate("s => [...s.options].map(o => o.value).join('|')")
        vni = explorer.locator(".pw-vni input")
        vni.fill("7")
        vni.press("Enter")
        expect(menu.locator("option", has_text="meizu flannel.7")).to_have_count(1)
        expect(menu.locator("option", has_text="meizu flannel.1")).to_have_count(0)
        menu.select_option("meizu flannel.7")
        expect(explorer.locator(".pw-status")).to_contain_text("packets on meizu flannel.7")
        expect(explorer.locator(".pw-interface-error")).to_be_hidden()
        expect(tcpdump).to_contain_text("$ tcpdump -i flannel.7 -nn")
        menu.select_option("meizu enp4s0")
        expect(tcpdump).to_contain_text("$ tcpdump -i enp4s0 -nn")

        # an invalid IP: the message once, under its field; the last good view kept and marked stale
        ip = explorer.locator(".pw-client_ip input")
        ip.fill("172.30.83.300")
        ip.press("Enter")
        message = "client pod IP: '172.30.83.300' is not an IPv4 address"
        expect(explorer.locator(".pw-client_ip-error")).to_contain_text(message)
        expect(explorer.get_by_text(message)).to_have_count(1)
        expect(explorer.locator(".pw-stale-note")).to_be_visible()
        assert _contrast(page, explorer.locator(".pw-client_ip-error .widget-html-content"), own_background=False) >= 4.5
        assert _contrast(page, explorer.locator(".pw-stale-banner")) >= 4.5
        expect(tcpdump).to_contain_text("VXLAN, flags [I] (0x08), vni 7")
        expect(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)
        # the label column is fixed: a long message does not squeeze it, and labels are one line
        labels = explorer.locator(".pw-label").evaluate_all(
            "ls => ls.map(l => [l.getBoundingClientRect().width, l.getBoundingClientRect().height])")
        assert len({round(w) for w, _ in labels}) == 1 and max(h for _, h in labels) < 30, labels
        page.screenshot(path=str(ARTIFACTS / "explorer-error.png"))
        ip.fill("172.30.83.9")
        ip.press("Enter")
        expect(explorer.locator(".pw-stale-note")).to_be_hidden()

        # the diagram tab draws the walk
        tab = explorer.get_by_role("tab", name="diagram")
        tab.scroll_into_view_if_needed()
        tab.click()
        expect(tab).to_have_attribute("aria-selected", "true")
        svg = explorer.locator(".pw-diagram svg")
        expect(svg).to_be_visible()
        expect(svg).to_contain_text("flannel.7 (VXLAN, VNI 7, UDP 4789)")      # drawn for the new port
        assert svg.bounding_box()["width"] > 500
        explorer.screenshot(path=str(ARTIFACTS / "explorer-diagram.png"))
        # at 900 px the diagram keeps its width and scrolls rather than shrink its text
        _set_width(page, 900)
        assert _smallest_svg_text_px(svg) >= 12 - 0.01                   # 9 CSS points
        figure = explorer.locator(".pw-figure")
        assert figure.evaluate("e => e.scrollWidth > e.clientWidth")
        explorer.screenshot(path=str(ARTIFACTS / "explorer-diagram-900.png"))
        # the chapter's own figures (PNG): shown at their natural size, the output scrolls sideways
        images = page.locator(".jp-OutputArea-output img")
        assert images.count() >= 2
        for k in range(images.count()):
            img = images.nth(k)
            img.scroll_into_view_if_needed()
            natural, shown, scrolls = img.evaluate("""async i => { await i.decode(); return [i.naturalWidth, i.getBoundingClientRect().width,
                i.closest('.jp-OutputArea-output').scrollWidth > i.closest('.jp-OutputArea-output').clientWidth]; }""")
            assert abs(shown - natural) < 1 and natural >= 900 and scrolls, (k, natural, shown, scrolls)
        page.locator(".jp-OutputArea-output img").last.screenshot(path=str(ARTIFACTS / "figure-900.png"))
        _set_width(page, 1400)

        # the stepper: back disabled at the start, forward twice, back once, the map follows
        stepper = page.locator(".pw-stepper").first
        stepper.scroll_into_view_if_needed()
        title = stepper.locator(".pw-step-title")
        expect(title).to_contain_text("request hop 1: busybox eth0")
        back, nxt = stepper.locator("button.pw-back"), stepper.locator("button.pw-next")
        expect(back).to_be_disabled()
        here = stepper.locator(".pw-map .pw-map-here")
        expect(here).to_have_attribute("data-where", "busybox eth0")
        assert _smallest_svg_text_px(stepper.locator(".pw-map svg")) >= 12 - 0.01
        body_height = stepper.locator(".pw-step").bounding_box()["height"]
        nxt.click()
        nxt.click()
        expect(title).to_contain_text("request hop 3: xiaomi docker0")
        expect(here).to_have_attribute("data-where", "xiaomi docker0")
        expect(stepper.locator(".pw-step")).to_contain_text("DNAT 10.254.40.119:4432 -> 172.30.20.2:80")
        import re
        expect(stepper.locator(".pw-step .pw-change").first).to_contain_text(     # provenance label
            re.compile(r"\[(computed|observed|assumed)\]"))
        assert stepper.locator(".pw-step").bounding_box()["height"] == body_height       # stable height
        stepper.locator(".pw-every-layer").click()
        expect(stepper.locator(".pw-step-tree")).to_be_visible()
        back.click()
        expect(title).to_contain_text("request hop 2")
        expect(stepper.locator(".pw-step-tree")).to_be_visible()                    # stays open
        stepper.screenshot(path=str(ARTIFACTS / "stepper.png"))
        for k in range(3, 21):                         # to the last hop, one click at a time
            nxt.click()
            expect(title).to_contain_text(f"({k}/20)")
        expect(nxt).to_be_disabled()
        expect(title).to_contain_text("reply hop 10: busybox eth0")
        expect(here).to_have_attribute("data-where", "busybox eth0")
        back.click()
        expect(title).to_contain_text("(19/20)")
        back.click()
        expect(title).to_contain_text("(18/20)")
        expect(stepper.locator(".pw-step-summary[data-pos='18']")).to_have_count(1)   # the body of hop 18 is shown
        expect(stepper.locator(".pw-change").first).to_be_visible()
        light = [_contrast(page, el) for el in stepper.locator(".pw-change").all()]
        assert light and min(light) >= 4.5, light

        # the dark theme: the same highlights stay readable
        page.get_by_role("menuitem", name="Settings", exact=True).click()
        page.get_by_text("Theme", exact=True).hover()
        page.get_by_text("JupyterLab Dark", exact=True).click()
        # JupyterLab marks the body once the theme's stylesheet has loaded; _contrast waits out transitions
        expect(page.locator("body[data-jp-theme-light='false']")).to_have_count(1)
        dark = [_contrast(page, el) for el in stepper.locator(".pw-change").all()]
        assert dark and min(dark) >= 4.5, dark
        # the rest of the stepper's text on the notebook's own (dark) background
        for sel in (".pw-step-title b", ".pw-step-title .pw-muted", ".pw-step .pw-minor", ".pw-step h4"):
            el = stepper.locator(sel).first
            assert _contrast(page, el, own_background=False) >= 4.5, sel
        stepper.screenshot(path=str(ARTIFACTS / "stepper-dark.png"))
        explorer.scroll_into_view_if_needed()
        explorer.get_by_role("tab", name="packets").click()
        row2 = explorer.locator(".pw-packets tr.pw-row[data-no='2']")
        n = _recomputed(explorer)
        row2.click()
        expect(explorer.locator(".pw-dissection")).to_contain_text("packet 2, as tcpdump prints it")
        # the status line is redrawn after the dissection: measure the new one, not one about to go
        expect(explorer.locator(".pw-status")).to_contain_text(f"recomputed (#{n + 1},")
        assert _contrast(page, row2.locator("td").first) >= 4.5
        for el in (explorer.locator(".pw-status .pw-ok").first, explorer.locator(".pw-packets td").first,
                   explorer.locator(".pw-label b").first):
            assert _contrast(page, el, own_background=False) >= 4.5
        # an error in the dark: its red reads at 4.5:1 (JupyterLab's own error red is 3.6:1 on #111)
        ip.fill("172.30.83.300")
        ip.press("Enter")
        err = explorer.locator(".pw-client_ip-error .widget-html-content")
        expect(err).to_contain_text(message)
        assert _contrast(page, err, own_background=False) >= 4.5
        explorer.screenshot(path=str(ARTIFACTS / "explorer-dark-error.png"))
        ip.fill("172.30.83.9")
        ip.press("Enter")
        expect(explorer.locator(".pw-stale-note")).to_be_hidden()
        explorer.screenshot(path=str(ARTIFACTS / "explorer-dark.png"))

        # printed text outputs wrap between words only, never inside a number, and scroll when long
        for mime in ("text/plain", "application/vnd.jupyter.stdout"):
            out = page.locator(f".jp-OutputArea-output[data-mime-type='{mime}'] pre").first
            style = out.evaluate("e => { const s = getComputedStyle(e); return [s.wordBreak, s.maxHeight, s.overflowY]; }")
            assert style[0] == "normal" and style[1] != "none" and style[2] == "auto", (mime, style)

        # the embedded CJK fallback font decodes and covers the article's title
        status = page.evaluate("""async () => {
            const f = [...document.fonts].find(f => f.family.replace(/"/g, '') === 'Packet Walk CJK');
            if (!f) return 'missing';
            await f.load();
            return f.status + ' ' + document.fonts.check('16px "Packet Walk CJK"', '网络模型解析之实践');
        }""")
        assert status == "loaded true", status

        # no Python traceback anywhere on the page
        expect(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)
        assert page.locator("text=Traceback").count() == 0
        browser.close()
    assert (ROOT / CHAPTER).read_bytes() == stored, "the browser saved over a stored notebook"
