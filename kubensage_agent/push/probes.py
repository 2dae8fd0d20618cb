"""Liveness and readiness for DaemonSet probes: live while the loop turns, ready once acked.
Other pages of the health port (/status) are mounted beside them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubensage_common.httpserver import StartResponse, WsgiApp, plain


def probe_app(
    live: Callable[[], bool],
    ready: Callable[[], bool],
    pages: Mapping[str, WsgiApp] | None = None,
) -> WsgiApp:
    checks = {"/livez": live, "/healthz": live, "/readyz": ready}
    pages = pages or {}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        page = pages.get(path)
        if page is not None:
            return page(environ, start_response)
        check = checks.get(path)
        if check is None:
            return plain(start_response, "404 Not Found", b"see /livez, /readyz\n")
        if check():
            return plain(start_response, "200 OK", b"ok\n")
        return plain(start_response, "503 Service Unavailable", b"not ok\n")

    return app
