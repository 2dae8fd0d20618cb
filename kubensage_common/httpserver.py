"""A small threaded WSGI server in a daemon thread: the relay's /metrics and probes, and
the agent's probes. Standard library only, so the agent binary carries nothing more.

Reachable by anything on the network, so it is bounded: GET and HEAD only (405
otherwise), at most `max_connections` connections at a time (one thread each; more are
closed at once), every read under a timeout (a client that connects and says nothing,
or stalls a TLS handshake, is dropped), and a failing connection is one log line, not
a traceback.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from kubensage_common.logsetup import FirstPerKey

if TYPE_CHECKING:  # the agent runs without Python's ssl (see kubensage_agent.entry)
    import ssl

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
ALLOWED_METHODS = ("GET", "HEAD")
READ_TIMEOUT_SECONDS = 10.0
MAX_CONNECTIONS = 32


class _BoundedWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    max_connections = MAX_CONNECTIONS
    read_timeout = READ_TIMEOUT_SECONDS
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)  # replaced per server by HttpServer
    log = FirstPerKey(logging.getLogger(__name__), quiet_seconds=60.0)
    refused_connections = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.refused_connections += 1
            self.log.report(
                "busy",
                "http: %s connections open, closing new ones until some end",
                self.max_connections,
            )
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:  # the thread did not start: give its slot back
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line per client host, instead of socketserver's traceback on stderr."""
        error = sys.exc_info()[1]
        host = client_address[0] if isinstance(client_address, tuple) else str(client_address)
        if isinstance(error, TimeoutError | socket.timeout):
            what = f"timed out after {self.read_timeout:g}s"
        else:
            what = f"{type(error).__name__}: {error}"
        self.log.report(host, "http: connection from %s dropped: %s", host, what)


class _QuietHandler(WSGIRequestHandler):
    def setup(self) -> None:
        # a client that stalls mid-request (or mid-handshake) must not hold a thread
        self.request.settimeout(getattr(self.server, "read_timeout", READ_TIMEOUT_SECONDS))
        tls = sys.modules.get("ssl")  # a TLS socket exists only where ssl is loaded
        if tls is not None and isinstance(self.request, tls.SSLSocket):
            self.request.do_handshake()  # here, under the timeout, not in the accept loop
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes every few seconds would flood the log; no access logging."""


def plain(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def only_get_and_head(app: WsgiApp) -> WsgiApp:
    """405 for any other method; HEAD gets GET's headers without the body."""

    def guarded(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ALLOWED_METHODS:
            body = b"only GET and HEAD\n"
            start_response(
                "405 Method Not Allowed",
                [
                    ("Allow", ", ".join(ALLOWED_METHODS)),
                    ("Content-Type", "text/plain"),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [body]
        body_parts = app(environ, start_response)
        return [] if method == "HEAD" else body_parts

    return guarded


class HttpServer:
    def __init__(
        self,
        host: str,
        port: int,
        app: WsgiApp,
        tls: ssl.SSLContext | None = None,
        *,
        max_connections: int = MAX_CONNECTIONS,
        read_timeout: float = READ_TIMEOUT_SECONDS,
    ) -> None:
        self._server = make_server(
            host, port, only_get_and_head(app), _BoundedWSGIServer, handler_class=_QuietHandler
        )
        assert isinstance(self._server, _BoundedWSGIServer)
        self._server.max_connections = max_connections
        self._server.read_timeout = read_timeout
        self._server.slots = threading.BoundedSemaphore(max_connections)
        self._server.log = FirstPerKey(logging.getLogger(__name__), quiet_seconds=60.0)
        if tls is not None:
            # the handshake runs in the connection's thread, under its read timeout
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def refused_connections(self) -> int:
        assert isinstance(self._server, _BoundedWSGIServer)
        return self._server.refused_connections

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
