"""Start JupyterLab on loopback for a browser (the browser test and the benchmarks).

A private config/data/settings directory keeps the user's own JupyterLab out of
it; autosave is off so a browser never writes over the stored outputs nbval
checks; ``--allow-root`` only when running as root.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from coursekit.server import SERVER_OPTION

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_lab(root: Path = ROOT, timeout: float = 90, options=(SERVER_OPTION,)):
    """Yield ``(base_url, token)`` of a JupyterLab serving ``root``; stop it afterwards.

    ``options``: the server's options beyond these (the course's own, as ``coursekit open`` passes).
    """
    token = secrets.token_hex(16)
    port = _free_port()
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
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={port}",
               "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--ServerApp.port_retries=0", *options]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        with open(home / "jupyter.log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + timeout
            try:
                while True:
                    try:
                        urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).read()
                        break
                    except OSError:
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


def open_and_run_all(page, url: str, artifacts: Path | None = None) -> None:
    """Open a notebook, let its kernel start, run every cell; waits for the first explorer."""
    page.goto(url)
    page.locator(".jp-NotebookPanel").first.wait_for()
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first
    for _ in range(600):             # JupyterLab may ask which kernel to start: accept python3
        if page.locator(".jp-Dialog button.jp-mod-accept").count():
            page.locator(".jp-Dialog button.jp-mod-accept").first.click()
        if idle.count() and not page.locator(".jp-Dialog").count():
            break
        page.wait_for_timeout(200)
    page.wait_for_timeout(3000)      # "idle" shows before the kernel's channels are up
    explorer = page.locator(".pw-explorer").first
    for attempt in range(4):
        try:
            page.get_by_role("menuitem", name="Run", exact=True).click(timeout=15_000)
            page.get_by_text("Run All Cells", exact=True).click(timeout=15_000)
            explorer.wait_for(timeout=30_000)
            return
        except Exception:
            # a menu left open or a dialog in front: record it, close it, try again
            if artifacts is not None:
                page.screenshot(path=str(artifacts / f"run-all-{attempt}.png"))
            page.keyboard.press("Escape")
            if page.locator(".jp-Dialog").count():
                page.locator(".jp-Dialog button.jp-mod-accept").first.click(timeout=5_000)
    raise RuntimeError("Run All Cells never produced the explorer")
