"""coursekit.server: the course's Jupyter server sets TCP_NODELAY on kernel websockets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("jupyter_server")

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection  # noqa: E402

from coursekit import cli  # noqa: E402
from coursekit.server import SERVER_OPTION, NoDelayChannels  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_the_option_names_a_class_jupyter_server_accepts():
    from jupyter_server.serverapp import ServerApp
    from traitlets.config import Config
    name, value = SERVER_OPTION.removeprefix("--ServerApp.").split("=", 1)
    app = ServerApp(config=Config({"ServerApp": {name: value}}))
    assert app.kernel_websocket_connection_class is NoDelayChannels
    assert issubclass(NoDelayChannels, ZMQChannelsWebsocketConnection)


def test_connect_sets_nodelay_before_the_server_connects(monkeypatch):
    calls = []

    class Handler:
        def set_nodelay(self, value):
            calls.append(("nodelay", value))

    def connect(self):
        calls.append("connect")
        return "future"
    monkeypatch.setattr(ZMQChannelsWebsocketConnection, "connect", connect)
    conn = NoDelayChannels.__new__(NoDelayChannels)
    conn._trait_values["websocket_handler"] = Handler()
    assert conn.connect() == "future"
    assert calls == [("nodelay", True), "connect"]


def test_the_course_and_the_browser_harness_both_start_jupyter_with_it(monkeypatch):
    assert SERVER_OPTION in cli.open_command("03", no_browser=True)
    sys.path.insert(0, str(ROOT / "tools"))
    import labserver
    started = []

    class Stop(Exception):
        pass

    def popen(cmd, **kw):
        started.append(cmd)
        raise Stop
    monkeypatch.setattr(labserver.subprocess, "Popen", popen)
    with pytest.raises(Stop):
        with labserver.running_lab(ROOT):
            pass
    assert SERVER_OPTION in started[0]
