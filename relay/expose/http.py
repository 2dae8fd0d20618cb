"""The relay's HTTP side: /metrics (gzip and OpenMetrics negotiated by prometheus_client),
/healthz and /readyz."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

StartResponse = Callable[..., Any]


class _QuietHandler(WSGIRequestHandler):
    timeout = 30  # a client that stalls mid-request must not hold a thread forever

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the log; access logging stays off."""


def make_app(registry: CollectorRegistry, ready: Callable[[], bool]) -> Callable[..., Any]:
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            is_ready = ready()
            start_response(
                "200 OK" if is_ready else "503 Service Unavailable",
                [("Content-Type", "text/plain")],
            )
            return [b"ready\n" if is_ready else b"not ready\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"see /metrics, /healthz, /readyz\n"]

    return app


class HttpServer:
    def __init__(
        self, host: str, port: int, app: Callable[..., Any], tls: ssl.SSLContext | None = None
    ) -> None:
        self._server = make_server(
            host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler
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
