"""A remote-write receiver whose answers a test scripts (500, 429 with Retry-After, 400...).

It decodes what it takes exactly as a receiver must (snappy block format, then a
prompb WriteRequest) and keeps every request, so tests can check headers, bodies and
retries. Real receivers (VictoriaMetrics, Prometheus) are used by the integration
tests; this one exists for the answers they cannot be made to give on demand.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cramjam

from kubensage_api.prometheus import remote_pb2


@dataclass(frozen=True)
class Script:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass
class Received:
    at: float
    status: int
    headers: dict[str, str]
    request: remote_pb2.WriteRequest | None
    error: str = ""


@dataclass
class _State:
    script: deque[Script] = field(default_factory=deque)
    default: Script = field(default_factory=lambda: Script(204))
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the relay's shards use it
    state: _State

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        request, error = None, ""
        try:
            request = remote_pb2.WriteRequest()
            request.ParseFromString(bytes(cramjam.snappy.decompress_raw(raw)))
        except Exception as exc:  # a bad body is what this receiver reports, not a crash
            request, error = None, repr(exc)
        with self.state.lock:
            answer = self.state.script.popleft() if self.state.script else self.state.default
            if error and answer.status < 300:
                answer = Script(400, body=f"bad body: {error}".encode())
            self.state.received.append(
                Received(time.time(), answer.status, dict(self.headers.items()), request, error)
            )
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)


class ScriptedReceiver:
    def __init__(self, tls: ssl.SSLContext | None = None, port: int = 0) -> None:
        self.state = _State()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_port}/api/v1/write"

    def answer(self, *scripts: Script) -> None:
        """The next requests get these answers, in order; then the default."""
        with self.state.lock:
            self.state.script.extend(scripts)

    def always(self, script: Script) -> None:
        with self.state.lock:
            self.state.default = script

    @property
    def received(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.received)

    def taken(self) -> list[remote_pb2.TimeSeries]:
        """Series of every request answered with a 2xx."""
        return [
            series
            for r in self.received
            if r.request is not None and 200 <= r.status < 300
            for series in r.request.timeseries
        ]

    def __enter__(self) -> ScriptedReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
