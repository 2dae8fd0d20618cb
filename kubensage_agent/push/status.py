"""GET /status on the health port: the last report the agent built, and its own figures.

It answers from what the push loop already has: the report is serialized (protobuf JSON
with proto field names, the `collect --format json` form) once per report and only when
someone asks, never collected on request. Reports hold pod names, images and check
output, so only loopback peers are answered unless --status-remote is set: the port
itself must stay reachable by the kubelet's probes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from google.protobuf import json_format

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.addresses import is_loopback
from kubensage_common.httpserver import StartResponse, WsgiApp, plain


class StatusPage:
    """Holds the newest report and renders /status from it and the agent's figures."""

    def __init__(self, figures: Callable[[], dict[str, Any]]) -> None:
        self._figures = figures
        self._report: tm.Metrics | None = None
        self._rendered: tuple[int, bytes] | None = None  # (sequence, report JSON)
        self._lock = threading.Lock()

    def remember(self, report: tm.Metrics) -> None:
        """Called by the push loop with every report it built (never mutated afterwards)."""
        with self._lock:
            self._report = report

    def _report_json(self) -> bytes:
        with self._lock:
            report, rendered = self._report, self._rendered
        if report is None:
            return b"null"
        if rendered is None or rendered[0] != report.sequence:
            text = json_format.MessageToJson(report, preserving_proto_field_name=True)
            rendered = (report.sequence, text.encode())
            with self._lock:
                self._rendered = rendered
        return rendered[1]

    def body(self) -> bytes:
        figures = json.dumps(self._figures(), indent=2, sort_keys=True).encode()
        return b'{\n"agent": ' + figures + b',\n"report": ' + self._report_json() + b"\n}\n"


def status_app(page: StatusPage, allow_remote: bool) -> WsgiApp:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not allow_remote and not is_loopback(environ.get("REMOTE_ADDR", "")):
            return plain(
                start_response,
                "403 Forbidden",
                b"/status answers loopback peers only (see --status-remote)\n",
            )
        body = page.body()
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]

    return app
