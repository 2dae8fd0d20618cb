"""The relay's HTTP side: /metrics, /healthz, /readyz, and the fleet page (/ and
/api/v1/agents, see fleet.py).

/metrics is the relay's own registry (encoded by prometheus_client) followed by the
nodes' cached text, in the text format 0.0.4 that every Prometheus accepts (it lists
it in its Accept header next to OpenMetrics); gzip when the scraper asks for it.
Rendering nodes once per report instead of once per scrape is what keeps a
thousand-node scrape cheap (see docs/benchmarks.md).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from kubensage_common.httpserver import StartResponse, WsgiApp, plain
from relay.expose.fleet import fleet_routes
from relay.expose.textcache import NodeTextCache
from relay.state.store import NodeStore

GZIP_LEVEL = 1  # scrapes are large and frequent: speed over the last percent of size
# The classic text format, understood by every Prometheus release; metric and label names
# here are all legacy-valid, so no newer escaping scheme is involved.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def accepts_text(accept: str) -> bool:
    if not accept:
        return True
    kinds = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return bool(kinds & {"text/plain", "text/*", "*/*"})


def make_app(
    registry: CollectorRegistry,
    store: NodeStore,
    nodes: NodeTextCache | None,
    ready: Callable[[], bool],
) -> WsgiApp:
    """`nodes` None: /metrics serves the relay's own health only (remote write carries the
    rest); the fleet page lists the store's nodes either way."""

    def metrics(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not accepts_text(environ.get("HTTP_ACCEPT", "")):
            return plain(
                start_response, "406 Not Acceptable", b"only text/plain; version=0.0.4 is served\n"
            )
        body = generate_latest(registry)
        if nodes is not None:
            body += nodes.text().encode()
        headers = [("Content-Type", CONTENT_TYPE)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    pages = fleet_routes(store)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        page = pages.get(path)
        if page is not None:
            return page(environ, start_response)
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            return plain(start_response, "200 OK", b"ok\n")
        if path == "/readyz":
            if ready():
                return plain(start_response, "200 OK", b"ready\n")
            return plain(start_response, "503 Service Unavailable", b"not ready\n")
        return plain(start_response, "404 Not Found", b"see /, /metrics, /healthz, /readyz\n")

    return app
