"""Liveness and readiness for DaemonSet probes: live while the loop turns, ready once acked."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ProbeServer:
    def __init__(
        self, host: str, port: int, live: Callable[[], bool], ready: Callable[[], bool]
    ) -> None:
        checks = {"/livez": live, "/healthz": live, "/readyz": ready}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                check = checks.get(self.path)
                if check is None:
                    self.send_response(404)
                    body = b"see /livez, /readyz\n"
                else:
                    ok = check()
                    self.send_response(200 if ok else 503)
                    body = b"ok\n" if ok else b"not ok\n"
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Probes hit every few seconds; no access log."""

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="probes", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
