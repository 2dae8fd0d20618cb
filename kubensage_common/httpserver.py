"""A small threaded WSGI server in a daemon thread: the relay's /metrics and probes, and
the agent's probes. Standard library only, so the agent binary carries nothing more."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

if TYPE_CHECKING:
    import ssl

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    timeout = 30  # a client that stalls mid-request must not hold a thread forever

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes every few seconds would flood the log; no access logging."""


def plain(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class HttpServer:
    def __init__(
        self, host: str, port: int, app: WsgiApp, tls: ssl.SSLContext | None = None
    ) -> None:
        self._server = make_server(
            host, port, app, _ThreadingWSGIServer, handler_class=_QuietHandler
        )
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
