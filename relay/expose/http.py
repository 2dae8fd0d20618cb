"""The relay's HTTP side: /metrics, /healthz and /readyz.

/metrics is the relay's own registry (encoded by prometheus_client) followed by the
nodes' cached text, in the text format 0.0.4 that every Prometheus accepts (it lists
it in its Accept header next to OpenMetrics); gzip when the scraper asks for it.
Rendering nodes once per report instead of once per scrape is what keeps a
thousand-node scrape cheap (see docs/benchmarks.md).
"""

from __future__ import annotations

import gzip
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import ThreadingWSGIServer

from relay.expose.textcache import NodeTextCache

StartResponse = Callable[..., Any]
GZIP_LEVEL = 1  # scrapes are large and frequent: speed over the last percent of size
# The classic text format, understood by every Prometheus release; metric and label names
# here are all legacy-valid, so no newer escaping scheme is involved.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _QuietHandler(WSGIRequestHandler):
    timeout = 30  # a client that stalls mid-request must not hold a thread forever

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the log; access logging stays off."""


def accepts_text(accept: str) -> bool:
    if not accept:
        return True
    kinds = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return bool(kinds & {"text/plain", "text/*", "*/*"})


def make_app(
    registry: CollectorRegistry, nodes: NodeTextCache, ready: Callable[[], bool]
) -> Callable[..., Any]:
    def metrics(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not accepts_text(environ.get("HTTP_ACCEPT", "")):
            start_response("406 Not Acceptable", [("Content-Type", "text/plain")])
            return [b"only text/plain; version=0.0.4 is served\n"]
        body = generate_latest(registry) + nodes.text().encode()
        headers = [("Content-Type", CONTENT_TYPE)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
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
