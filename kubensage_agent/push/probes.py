"""Liveness and readiness for DaemonSet probes: live while the loop turns, ready once acked."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kubensage_common.httpserver import StartResponse, WsgiApp, plain


def probe_app(live: Callable[[], bool], ready: Callable[[], bool]) -> WsgiApp:
    checks = {"/livez": live, "/healthz": live, "/readyz": ready}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        check = checks.get(environ.get("PATH_INFO", ""))
        if check is None:
            return plain(start_response, "404 Not Found", b"see /livez, /readyz\n")
        if check():
            return plain(start_response, "200 OK", b"ok\n")
        return plain(start_response, "503 Service Unavailable", b"not ok\n")

    return app
