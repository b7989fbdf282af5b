"""The course's JupyterLab server: kernel websockets without Nagle's delay.

An explorer change makes the kernel send a burst of small messages (status
busy, the echoed value, the packet list, the tcpdump text, the dissection,
the status line, status idle).  Jupyter Server writes them to the browser's
websocket with Nagle's algorithm on (tornado's default; tcp(7), ``TCP_NODELAY``:
"data is buffered until there is a sufficient amount to send out"), so a
message after the first waits until the browser acknowledges the first, and
the browser's TCP delays that ACK (tcp(7), ``TCP_QUICKACK``; tornado's
``WebSocketHandler.set_nodelay`` names the same interaction).  Measured here
(tcpdump on loopback, benchmarks/results.md notes): the ACK came 42 ms after
the first segment and nothing was sent meanwhile, two or three times per change.

:class:`NoDelayChannels` is Jupyter Server's own connection class with
``TCP_NODELAY`` set when the websocket opens; it is chosen with the server's
``kernel_websocket_connection_class`` option (:data:`SERVER_OPTION`), which
``python -m coursekit open`` passes, and so do the browser test and the
benchmarks (tools/labserver.py).  Nothing else changes: the same messages,
in the same order.

Imported only by the Jupyter server process.  Taught in: none (the course's
plumbing).
"""

from __future__ import annotations

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

__all__ = ["NoDelayChannels", "SERVER_OPTION"]

SERVER_OPTION = "--ServerApp.kernel_websocket_connection_class=coursekit.server.NoDelayChannels"


class NoDelayChannels(ZMQChannelsWebsocketConnection):
    """Jupyter Server's kernel websocket connection, with ``TCP_NODELAY`` on its socket."""

    def connect(self):
        # called from the handler's open(): the websocket is established (tornado's condition)
        self.websocket_handler.set_nodelay(True)
        return super().connect()
