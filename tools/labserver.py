"""Start JupyterLab on loopback for a browser (the browser test and the benchmarks).

A private config/data/settings directory keeps the user's own JupyterLab out of
it; autosave is off so a browser never writes over the stored outputs nbval
checks; ``--allow-root`` only when running as root.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from coursekit.server import SERVER_OPTION

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def running_lab(root: Path = ROOT, timeout: float = 300, options=(SERVER_OPTION,)):
    """Yield ``(base_url, token)`` of a JupyterLab serving ``root``; stop it afterwards.

    ``options``: the server's options beyond these (the course's own, as ``coursekit open`` passes).
    The server picks a free port itself (port 0) and says which in its runtime file, in a
    runtime folder of its own: no port chosen here that another process could take meanwhile.
    """
    import json
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="packet-walk-jupyter-") as tmp:
        home = Path(tmp)
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
                   JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
        for plugin, text in (("docmanager-extension/plugin", '{"autosave": false}'),
                             ("apputils-extension/notification", '{"fetchNews": "false", "checkForUpdates": false}')):
            f = home / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text)
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.port=0",
               "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--ServerApp.port_retries=0", "--LabApp.expose_app_in_browser=True", *options]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        with open(home / "jupyter.log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
            deadline = time.monotonic() + timeout
            try:
                while True:
                    try:
                        info = json.loads(next((home / "runtime").glob("jpserver-*.json")).read_text())
                        base = f"http://127.0.0.1:{info['port']}"
                        urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).read()
                        break
                    except (OSError, StopIteration, ValueError, KeyError):
                        if proc.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError("JupyterLab did not start:\n"
                                               + (home / "jupyter.log").read_text()[-3000:]) from None
                        time.sleep(0.5)
                yield base, token
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


# JupyterLab's own state, through window.jupyterapp (--LabApp.expose_app_in_browser): the notebook's
# session has a kernel whose connection is up and which is idle -- or a dialog asks which kernel
_READY = """path => { const app = window.jupyterapp;
    if (document.querySelector('.jp-Dialog button.jp-mod-accept')) return 'dialog';
    if (!app) return false;
    const w = [...app.shell.widgets('main')].find(w => w.context && w.context.path === path);
    const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
    return !!(k && k.connectionStatus === 'connected' && k.status === 'idle') && 'ready'; }"""
# every code cell has run: none is queued or running ("[*]"), and the first explorer is on the page
_STARTED = """() => !!document.querySelector('.pw-explorer')
    || [...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')].some(p => p.textContent.includes('[*]'))"""
_DONE = """() => !!document.querySelector('.pw-explorer')
    && ![...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')].some(p => p.textContent.includes('[*]'))"""


def _start_session(page, url: str) -> str:
    """Start the notebook's kernel through the server's REST API before the page opens it (JupyterLab
    then joins the running session instead of choosing a kernel); the notebook's path."""
    import json
    from urllib.parse import parse_qs, urlsplit
    u = urlsplit(url)
    path = u.path.split("/lab/tree/", 1)[1]
    token = parse_qs(u.query)["token"][0]
    nb = json.loads((ROOT / path).read_text(encoding="utf-8")) if (ROOT / path).exists() else {}
    kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name", "python3")
    r = page.request.post(f"{u.scheme}://{u.netloc}/api/sessions", headers={"Authorization": f"token {token}"},
                          data={"path": path, "type": "notebook", "name": Path(path).name,
                                "kernel": {"name": kernel}})
    if not r.ok:
        raise RuntimeError(f"the server did not start a kernel for {path}: {r.status} {r.text()[:300]}")
    return path


def open_and_run_all(page, url: str, artifacts: Path | None = None, timeout_ms: int = 600_000) -> None:
    """Open a notebook, let its kernel start, run every cell; returns once every cell has run.

    Waits on conditions, never on the clock: JupyterLab's own session for the notebook has a
    connected, idle kernel (the status bar shows "Idle" before that; a Run All then runs nothing);
    then Run All Cells (the command the Run menu calls) until no cell is queued or running and
    the first explorer is on the page.
    """
    path = _start_session(page, url)
    page.goto(url)
    seen = []
    while True:
        state = page.wait_for_function(_READY, arg=path, timeout=timeout_ms).json_value()
        if state == "ready":
            break
        # a dialog (JupyterLab may ask which kernel to start while it has not yet seen the running
        # session, and close the question itself once it has): record it, accept it if still there
        if len(seen) >= 5:
            raise RuntimeError(f"JupyterLab keeps asking: {seen}")
        try:
            seen.append(page.locator(".jp-Dialog").first.inner_text(timeout=5_000)[:200])
            if artifacts is not None:
                page.screenshot(path=str(artifacts / f"dialog-{len(seen)}.png"))
            page.locator(".jp-Dialog button.jp-mod-accept").first.click(timeout=5_000)
        except Exception:               # it closed itself: ask JupyterLab again
            pass
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    try:
        page.wait_for_function(_STARTED, timeout=timeout_ms)
        page.wait_for_function(_DONE, timeout=timeout_ms)
    except Exception:
        if artifacts is not None:
            page.screenshot(path=str(artifacts / "run-all.png"))
        raise
