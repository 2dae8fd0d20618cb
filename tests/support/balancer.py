"""A TCP balancer in front of relay replicas, spreading new connections as kube-proxy does.

Each new connection goes to the next backend in turn (a backend that refuses is
skipped); a connection stays on its backend for its whole life, which is why a
long-lived gRPC stream never moves unless one side ends it. Backends can be added
while it runs, like endpoints of a Service after a scale-out.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from kubensage_lab.processes import free_port

CONNECT_TIMEOUT_SECONDS = 2.0
CHUNK = 65536


class RoundRobinBalancer:
    def __init__(self) -> None:
        self.port = free_port()
        self._backends: list[tuple[str, int]] = []
        self._next = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.5)
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name="balancer", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, host: str, port: int) -> None:
        with self._lock:
            self._backends.append((host, port))

    def _candidates(self) -> Iterator[tuple[str, int]]:
        with self._lock:
            backends = list(self._backends)
            start = self._next
            self._next += 1
        for index in range(len(backends)):
            yield backends[(start + index) % len(backends)]

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        for backend in self._candidates():
            try:
                upstream = socket.create_connection(backend, timeout=CONNECT_TIMEOUT_SECONDS)
            except OSError:
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
            self._pipe(client, upstream)
            return
        client.close()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        """Copy one direction until either side closes; then close both."""
        try:
            while not self._stopping.is_set():
                data = source.recv(CHUNK)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._sockets.difference_update((source, target))

    def __enter__(self) -> RoundRobinBalancer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
