"""Packet Walk benchmarks: medians and ratios, written to benchmarks/results.{json,md}.

    python benchmarks/run.py              # everything (a few minutes)
    python benchmarks/run.py explorer import render   # some
    python benchmarks/run.py --md         # results.md again from results.json (e.g. after editing its baseline)

Benchmarks, not tests: nothing here passes or fails; the figures go in the
project notes.  Each measures one thing a learner or CI waits for, against a
floor that says what "fast" means for it:

* ``nbval``     -- the whole course under nbval vs as many bare notebooks that only import the dependencies
* ``import``    -- ``import coursekit`` as a process vs ``import scapy.all``
* ``explorer``  -- field change -> every view recomputed (pure, then through the widget: a value never applied
  before, and values seen before), median and p95
* ``explorer_ab`` -- the same, this checkout against ``main``, interleaved (fair when the machine is busy)
* ``browser``   -- field change in JupyterLab/Chromium -> every view updated on screen, timed in the page (needs chromium)
* ``browser_ab`` -- the same, this checkout against ``main`` (its coursekit and server options), interleaved
* ``walk``      -- one whole walk of the article (``ck.walk``, coursekit.kernel) vs the ten-hop walk it replaced (tests/oldwalk.py)
* ``data``      -- ``python -m coursekit data`` (every capture of every scenario)
* ``render``    -- ``coursekit render`` of a 100k-packet pcap vs ``tcpdump -r`` of the same file
* ``explain``   -- ``coursekit explain`` of a 100k-packet capture (and two of them matched) vs ``tcpdump -r``
* ``scenario`` -- ``load_scenario("article")`` (bounded read, shape, values) vs ``yaml.safe_load`` of the
  same file; how long refusing a billion-laughs file and a 20,000-deep file takes
* ``footprint`` -- venv size of ``pip install .`` vs jupyterlab + scapy + matplotlib alone
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
OUT = Path(__file__).resolve().parent


def _median(xs):
    return statistics.median(xs)


def _p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def _timed(cmd, n=5, **kw):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        out.append(time.perf_counter() - t)
    return out


def bench_import():
    py = sys.executable
    ck = _timed([py, "-c", "import coursekit"], 7, cwd=ROOT)
    sc = _timed([py, "-c", "import scapy.all"], 7)
    return {"coursekit_s": _median(ck), "scapy_all_s": _median(sc), "ratio": _median(ck) / _median(sc), "runs": 7}


def bench_explorer(n=200):
    import coursekit as ck
    from coursekit import explore as ex
    from coursekit import widgets as wg
    from coursekit.diagrams import walk_diagram, walk_svg
    base = ck.load_scenario("article")
    changes = [{"vxlan_port": 4789}, {"vxlan_port": 8472}, {"vni": 7}, {"client_ip": "172.30.83.20"},
               {"masquerade": False}, {"service_port": 8080}, {"replicas": 2}]
    pure = []
    for i in range(n):
        t = time.perf_counter()
        sc = ex.apply(base, changes[i % len(changes)])
        ex.views(sc, "meizu", "enp4s0", "", "-nn")
        pure.append(time.perf_counter() - t)
    diag, figure = [], []
    for i in range(30):
        sc = ex.apply(base, changes[i % len(changes)])
        w = ck.walk(sc)
        t = time.perf_counter()
        walk_svg(sc, w)                         # what the explorer's diagram tab shows
        diag.append(time.perf_counter() - t)
        if i < 10:
            t = time.perf_counter()
            wg.figure_svg(walk_diagram(sc, w))  # the same picture as a matplotlib figure (the chapters' static one)
            figure.append(time.perf_counter() - t)
    # a value never applied before (VNI 100, 101, ...): applied, walked and every text view drawn
    text_only = wg.explorer(base, ["vxlan_port", "vni", "client_ip"], node="meizu", iface="enp4s0", diagram=False)
    widget = []
    for i in range(100):
        t = time.perf_counter()
        text_only.controls["vni"].value = str(100 + i)
        widget.append(time.perf_counter() - t)
    e = wg.explorer(base, ["vxlan_port", "vni", "client_ip"], node="meizu", iface="enp4s0")
    fresh_diag = []
    for i in range(30):
        t = time.perf_counter()
        e.controls["vni"].value = str(200 + i)          # the diagram is drawn too (into its tab, shown or not)
        fresh_diag.append(time.perf_counter() - t)
    # back and forth between two values: the explorer keeps the last few scenarios, walks and drawings
    seen = []
    values = ["4789", "8472"]
    for i in range(100):
        t = time.perf_counter()
        e.controls["vxlan_port"].value = values[i % 2]
        seen.append(time.perf_counter() - t)
    # not a knob: the interface, the filter, the packet -- the walk is reused
    iface, rows = [], []
    for i in range(60):
        t = time.perf_counter()
        e.iface.value = "meizu docker0" if i % 2 == 0 else "meizu enp4s0"
        iface.append(time.perf_counter() - t)
    for i in range(60):
        t = time.perf_counter()
        e.packet.value = 1 + i % 11
        rows.append(time.perf_counter() - t)
    e.tabs.selected_index = 3
    widget_diag = []
    for i in range(30):
        t = time.perf_counter()
        e.controls["vni"].value = str(300 + i)
        widget_diag.append(time.perf_counter() - t)
    # the diagram tab opened for the first time after a change (the cost a learner waits for)
    first = []
    for i in range(20):
        e.tabs.selected_index = 0
        e.controls["vni"].value = str(2 + i)
        t = time.perf_counter()
        e.tabs.selected_index = 3
        first.append(time.perf_counter() - t)
    ms = 1000
    return {"pure_views_median_ms": _median(pure) * ms, "pure_views_p95_ms": _p95(pure) * ms, "pure_runs": n,
            "diagram_svg_median_ms": _median(diag) * ms, "diagram_svg_p95_ms": _p95(diag) * ms,
            "diagram_matplotlib_median_ms": _median(figure) * ms,
            "widget_text_views_median_ms": _median(widget) * ms, "widget_text_views_p95_ms": _p95(widget) * ms,
            "widget_with_diagram_new_value_median_ms": _median(fresh_diag) * ms,
            "widget_seen_before_median_ms": _median(seen[2:]) * ms,
            "widget_interface_change_median_ms": _median(iface) * ms,
            "widget_packet_click_median_ms": _median(rows) * ms,
            "widget_with_diagram_tab_median_ms": _median(widget_diag) * ms,
            "widget_with_diagram_tab_p95_ms": _p95(widget_diag) * ms,
            "widget_diagram_first_time_median_ms": _median(first) * ms}


def bench_walk(n=100):
    import coursekit as ck
    sys.path.insert(0, str(ROOT / "tests"))
    import oldwalk
    sc = ck.load_scenario("article")
    cold = sc.with_changes({"neighbourCaches": "cold"})
    # what an explorer change walks: a scenario just made (and validated) from the article, a new one each time
    fresh = [sc.with_changes({"flannel.vni": 2 + i}) for i in range(n)]
    out = {"load_average_1min_before": os.getloadavg()[0]}
    for name, fn, ss in (("engine", ck.walk, [sc]), ("engine_new_scenario", ck.walk, fresh),
                         ("engine_cold", ck.walk, [cold]), ("ten_hop", oldwalk.walk, [sc])):
        fn(ss[0])
        xs, cpu = [], []
        for i in range(n):
            s = ss[i % len(ss)]
            t, c = time.perf_counter(), time.process_time()
            fn(s)
            xs.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        out[f"{name}_median_ms"] = _median(xs) * 1000
        out[f"{name}_p95_ms"] = _p95(xs) * 1000
        # CPU time of this process: what the walk costs, less the waiting on a shared, loaded machine
        out[f"{name}_cpu_median_ms"] = _median(cpu) * 1000
    out["ratio"] = out["engine_median_ms"] / out["ten_hop_median_ms"]
    out["cpu_ratio"] = out["engine_cpu_median_ms"] / out["ten_hop_cpu_median_ms"]
    out["runs"] = n
    out["load_average_1min"] = os.getloadavg()[0]
    return out


# In the page: the time from the learner's input event (keydown or pointerdown) to each awaited text
# appearing in the explorer (a MutationObserver, no polling), and to the next frame after the last
# one (requestAnimationFrame, then a task: the frame that shows it has been produced).  Playwright's
# own waiting polls the whole notebook's DOM on the page's main thread (querySelectorAll; 0.6 s of
# main-thread time over 10 changes in a CPU profile), so it is used only between measurements.
_ARM = r"""
(want) => {
  const root = document.querySelector('.pw-explorer');
  const marks = {};
  let t0 = null;
  const input = () => { if (t0 === null) t0 = performance.now(); };
  document.addEventListener('keydown', input, true);
  document.addEventListener('pointerdown', input, true);
  window.__pwDone = new Promise(resolve => {
    const check = () => {
      for (const [name, [sel, text]] of Object.entries(want)) {
        if (marks[name] === undefined) {
          const el = root.querySelector(sel);
          if (el && el.textContent.includes(text)) marks[name] = performance.now();
        }
      }
      if (t0 !== null && Object.keys(want).every(k => marks[k] !== undefined)) {
        mo.disconnect();
        document.removeEventListener('keydown', input, true);
        document.removeEventListener('pointerdown', input, true);
        requestAnimationFrame(() => setTimeout(() => {
          const out = {painted: performance.now() - t0};
          for (const k of Object.keys(marks)) out[k] = marks[k] - t0;
          resolve(out);
        }, 0));
      }
    };
    const mo = new MutationObserver(check);
    mo.observe(root, {subtree: true, childList: true, characterData: true, attributes: true});
  });
}
"""


def browser_timings(root: Path = ROOT, n: int = 20, options=None) -> dict:
    """Field change, row click and diagram tab in JupyterLab/Chromium, timed in the page (``_ARM``).

    ``root``: the checkout the server and its kernels run (its coursekit); ``options``: the
    server's extra options (None: tools/labserver.py's own).
    """
    from labserver import open_and_run_all, running_lab
    from playwright.sync_api import sync_playwright
    out = {}
    kw = {} if options is None else {"options": options}
    with running_lab(root, **kw) as (base, token), sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        open_and_run_all(page, f"{base}/lab/tree/notebooks/06-the-whole-walk.ipynb?token={token}")
        explorer = page.locator(".pw-explorer").first
        explorer.scroll_into_view_if_needed()
        status = explorer.locator(".pw-status")

        def count():
            status.filter(has_text="recomputed (#").wait_for()      # between measurements only
            return int(status.inner_text().split("#", 1)[1].split(",", 1)[0])

        def quiet():
            # a learner reads before the next change: the last change's 0.8 s flash has ended
            page.evaluate("() => Promise.all(document.querySelector('.pw-explorer')"
                          ".getAnimations({subtree: true}).map(a => a.finished))")

        def timed(action, want):
            quiet()
            page.evaluate(_ARM, want)
            action()
            return page.evaluate("() => window.__pwDone")

        def change(field, value):
            """Type ``value`` into ``field`` and press Enter: ms to every view (the status line last) on screen."""
            box = explorer.locator(f".pw-{field} input")
            box.fill(value)
            n_next = count() + 1
            got = timed(lambda: box.press("Enter"), {"status": [".pw-status", f"recomputed (#{n_next},"]})
            kernel = float(status.inner_text().split(f"#{n_next}, ", 1)[1].split(" ms", 1)[0])
            return got, kernel

        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")

        def counters():
            return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        # a value never applied before: the kernel applies and walks it (VNI 100, 101, ...)
        fresh, kernel = [], []
        before = counters()
        for i in range(n):
            got, k = change("vni", str(100 + i))
            fresh.append(got)
            kernel.append(k)
        after = counters()
        out.update({f"per_change_browser_{k[:-8].lower()}_ms": round((after[k] - before[k]) * 1000 / n, 1)
                    for k in ("RecalcStyleDuration", "LayoutDuration", "ScriptDuration")})
        change("vni", "1")
        # back and forth between two ports (values seen before after the first two)
        toggled = [change("vxlan_port", "4789" if i % 2 == 0 else "8472")[0] for i in range(n)]
        # a click on a row -> that packet's dissection on screen
        rows = []
        for i in range(n):
            no = 2 + i % 9
            row = explorer.locator(f".pw-packets tr.pw-row[data-no='{no}']")
            rows.append(timed(row.click, {"dissection": [".pw-dissection", f"packet {no}, as tcpdump prints it"]}))
        # the diagram tab, the first time after a change
        diagram = []
        for i in range(8):
            explorer.get_by_role("tab", name="packets").click()
            change("vni", str(10 + i))
            tab = explorer.get_by_role("tab", name="diagram")
            diagram.append(timed(tab.click, {"svg": [".pw-diagram svg", f"VNI {10 + i},"]}))
        browser.close()

    def med(xs, k="painted"):
        return round(_median([x[k] for x in xs]), 1)

    def p95(xs, k="painted"):
        return round(_p95([x[k] for x in xs]), 1)
    out.update({"roundtrip_median_ms": med(fresh), "roundtrip_p95_ms": p95(fresh),
                "roundtrip_dom_median_ms": med(fresh, "status"), "roundtrip_kernel_median_ms": _median(kernel),
                "roundtrip_seen_before_median_ms": med(toggled[2:]), "roundtrip_seen_before_p95_ms": p95(toggled[2:]),
                "row_click_median_ms": med(rows), "diagram_first_time_median_ms": med(diagram),
                "diagram_first_time_p95_ms": p95(diagram), "runs": n})
    return out


def bench_browser(n=20):
    if not Path("/usr/bin/chromium").exists():
        return {"skipped": "/usr/bin/chromium not installed"}
    return {**browser_timings(ROOT, n), "load_average_1min_after": round(os.getloadavg()[0], 1)}


def bench_browser_ab(ref="main", rounds=2, n=10):
    """The browser figures of ``ref`` (its coursekit, its server options) and of this checkout, interleaved."""
    if not Path("/usr/bin/chromium").exists():
        return {"skipped": "/usr/bin/chromium not installed"}
    got = {"this": [], ref: []}
    with tempfile.TemporaryDirectory(prefix="pw-ab-") as tmp:
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        # the server options the other checkout's tools/labserver.py passes
        text = (Path(tmp) / "tools" / "labserver.py").read_text()
        other = None if "SERVER_OPTION" in text else ()
        saved = os.environ.get("PYTHONPATH")
        try:
            for _ in range(rounds):
                for name, tree, opts in (("this", ROOT, None), (ref, Path(tmp), other)):
                    os.environ["PYTHONPATH"] = str(tree)         # the kernels import that checkout's coursekit
                    got[name].append(browser_timings(tree, n, opts))
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
    out = {"ref": ref, "rounds": rounds, "runs_per_round": n}
    for k in got["this"][0]:
        if k.endswith("_ms"):
            for name in ("this", ref):
                out[k if name == "this" else f"{k[:-3]}_{ref}_ms"] = round(_median([g[k] for g in got[name]]), 1)
    return out


def bench_explorer_ab(ref="main"):
    """The explorer of ``ref`` (a git ref) and of this checkout, interleaved (fair on a busy machine)."""
    from ab_explorer import compare
    with tempfile.TemporaryDirectory(prefix="pw-ab-") as tmp:
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        got = compare(Path(tmp))
    load = os.getloadavg()[0]
    out = {"ref": ref, "load_average": round(load, 1)}
    for k in got["this"]:
        out[f"{k}_median_ms"] = got["this"][k]
        out[f"{k}_{ref}_median_ms"] = got["previous"][k]
    return out


def bench_data():
    from coursekit.cli import build_data
    times = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            files = build_data(Path(tmp))
            times.append(time.perf_counter() - t)
    return {"median_s": _median(times), "files": len(files), "runs": 3}


def bench_render(packets=100_000):
    import coursekit as ck
    from coursekit.capture import Frame, write_pcap
    sc = ck.load_scenario("article")
    one = [f for n in ("enp4s0", "flannel.1", "docker0") for f in ck.capture(sc, "meizu", n)]
    frames, t0 = [], one[0].time_us
    for i in range(packets):
        f = one[i % len(one)]
        frames.append(Frame(t0 + i * 100, f.data))
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "big.pcap"
        write_pcap(pcap, frames)
        ours = _timed([sys.executable, "-m", "coursekit", "render", str(pcap), "-nn"], 1, cwd=ROOT)
        tcpdump = shutil.which("tcpdump") or "/usr/sbin/tcpdump"
        real = _timed([tcpdump, "-r", str(pcap), "-nn"], 3) if os.path.exists(tcpdump) else None
        size = pcap.stat().st_size
    out = {"packets": packets, "pcap_bytes": size, "coursekit_s": ours[0], "coursekit_pkts_per_s": packets / ours[0]}
    if real:
        out.update({"tcpdump_s": _median(real), "ratio": ours[0] / _median(real)})
    return out


def bench_nbval(runs=3):
    py = sys.executable
    books = sorted((ROOT / "notebooks").rglob("*.ipynb"))
    course = _timed([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
                     "-o", "addopts=", *map(str, books)], runs, cwd=ROOT)
    import nbformat
    with tempfile.TemporaryDirectory() as tmp:
        bare = []
        for i in range(len(books)):
            nb = nbformat.v4.new_notebook()
            # what coursekit itself imports: scapy's layers (not scapy.all), matplotlib, ipywidgets, libpcap, yaml
            nb.cells = [nbformat.v4.new_code_cell(
                "import scapy.layers.inet, scapy.layers.l2, scapy.layers.vxlan, matplotlib.pyplot, ipywidgets, "
                "libpcap, yaml")]
            p = Path(tmp) / f"bare{i:02d}.ipynb"
            nbformat.write(nb, p)
            bare.append(str(p))
        floor = _timed([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
                        "-o", "addopts=", "--rootdir", tmp, *bare], runs, cwd=tmp)
    return {"notebooks": len(books), "course_median_s": _median(course), "bare_floor_median_s": _median(floor),
            "ratio": _median(course) / _median(floor), "runs": runs}


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def bench_footprint():
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in (("coursekit", [str(ROOT)]), ("jupyterlab_scapy_matplotlib",
                                                         ["jupyterlab", "scapy", "matplotlib"])):
            venv = Path(tmp) / name
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            before = _du(venv)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args], check=True,
                           stdout=subprocess.DEVNULL)
            out[f"{name}_mb"] = _du(venv) / 1e6
            out[f"{name}_venv_base_mb"] = before / 1e6
    out["ratio"] = out["coursekit_mb"] / out["jupyterlab_scapy_matplotlib_mb"]
    return out


def bench_scenario(n=20):
    import yaml

    import coursekit as ck
    path = ROOT / "data" / "scenarios" / "article.yaml"
    text = path.read_text(encoding="utf-8")

    def runs(fn, k):
        out = []
        for _ in range(k):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return _median(out)

    def refused(p):
        try:
            ck.load_scenario(p)
        except ck.CourseError:
            return
        raise AssertionError(f"{p} was accepted")

    with tempfile.TemporaryDirectory() as d:
        bomb, deep = Path(d) / "bomb.yaml", Path(d) / "deep.yaml"
        bomb.write_text("a0: &a0 [" + ", ".join(["lol"] * 10) + "]\n" + "".join(
            f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 9)))
        deep.write_text("[" * 20000 + "]" * 20000)
        return {"load_article_s": runs(lambda: ck.load_scenario("article"), n),
                "yaml_safe_load_s": runs(lambda: yaml.safe_load(text), n),
                "refuse_billion_laughs_s": runs(lambda: refused(bomb), 5),
                "refuse_20000_deep_s": runs(lambda: refused(deep), 5), "runs": n}


def bench_explain():
    """``coursekit explain`` of a 100k-packet capture vs ``tcpdump -r`` (benchmarks/explain.py)."""
    sys.path.insert(0, str(OUT))
    from explain import bench_explain as run
    return run()


BENCHES = {"import": bench_import, "walk": bench_walk, "explorer": bench_explorer, "explorer_ab": bench_explorer_ab,
           "browser": bench_browser, "browser_ab": bench_browser_ab, "data": bench_data, "scenario": bench_scenario,
           "render": bench_render, "nbval": bench_nbval, "footprint": bench_footprint, "explain": bench_explain}


def main(argv):
    names = argv[1:] or list(BENCHES)
    results_file = OUT / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    if names == ["--md"]:                       # results.md again from results.json, nothing measured
        names = []
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHES)} (or --md)", file=sys.stderr)
        return 2
    results["machine"] = {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": os.cpu_count()}
    for name in names:
        print(f"-- {name}", flush=True)
        t = time.perf_counter()
        if name in results:
            results.setdefault("previous", {})[name] = results[name]
        load = os.getloadavg()[0]
        results[name] = BENCHES[name]()
        results[name]["bench_wall_s"] = round(time.perf_counter() - t, 1)
        # a shared machine: the 1-minute load average when the benchmark started and when it ended
        results[name]["load_1min_start"] = round(load, 2)
        results[name]["load_1min_end"] = round(os.getloadavg()[0], 2)
        print(json.dumps(results[name], indent=2), flush=True)
    results_file.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    # "baseline": figures a later session compares against (kept by hand in results.json: {"label", bench: {...}})
    base = results.get("baseline") or {}
    label = base.get("label", "baseline")
    lines = ["# Benchmark results", "", f"Machine: {results['machine']}", "",
             "Medians unless the name says otherwise; the machine is shared (2 cores), so each benchmark "
             "records the 1-minute load average at its start and end.", "",
             f"| benchmark | figure | value | previous run | {label} | value / {label} |", "|---|---|---|---|---|---|"]

    def fmt(v):
        return "" if v is None else (round(v, 3) if isinstance(v, float) else v)

    def ratio(v, b):
        ok = isinstance(v, (int, float)) and isinstance(b, (int, float)) and not isinstance(v, bool) and b
        return f"{v / b:.2f}" if ok else ""
    for name in BENCHES:
        before = results.get("previous", {}).get(name) or {}
        then = base.get(name) or {}
        for k, v in (results.get(name) or {}).items():
            lines.append(f"| {name} | {k} | {fmt(v)} | {fmt(before.get(k))} | {fmt(then.get(k))} | "
                         f"{ratio(v, then.get(k)) if k.endswith('_ms') else ''} |")
    notes = results.get("notes") or []           # what a reader needs to compare the figures (kept in results.json)
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    (OUT / "results.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
