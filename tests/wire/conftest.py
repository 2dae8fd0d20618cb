"""A real grpcio server with byte-level handlers whose request says how to answer,
and a raw TCP peer for what no gRPC server does (silence, non-gRPC replies)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

from kubensage_lab.processes import free_port

SERVICE = "test.Wire"
HOLD_SECONDS = 60.0  # a bound on a held call, should a test never stop its server
UNARY = f"/{SERVICE}/Unary"
BIDI = f"/{SERVICE}/Bidi"


def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
    """`echo:X` → X; `size:N` → N bytes; `abort:CODE:details`; `sleep:S` → sleeps S s."""
    verb, _, rest = request.partition(b":")
    if verb == b"size":
        return bytes(range(256)) * (int(rest) // 256) + b"\0" * (int(rest) % 256)
    if verb == b"abort":
        code, _, details = rest.decode().partition(":")
        context.set_trailing_metadata((("kubensage-refused", "report"),))
        context.abort(grpc.StatusCode[code], details)
    if verb == b"sleep":
        time.sleep(float(rest))
    return rest


def bidi(requests: Iterable[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for request in requests:
        yield answer(request, context)


class WireServer:
    """Answers as `answer` does; `hold` is never answered before the server stops."""

    def __init__(self, target: str) -> None:
        self.released = threading.Event()
        self.peers: set[str] = set()
        self.metadata: list[tuple[str, str]] = []
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=40),
            options=[("grpc.max_receive_message_length", 64 << 20)],
        )
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(self._unary),
            "Bidi": grpc.stream_stream_rpc_method_handler(self._bidi),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),)
        )
        self.server.add_insecure_port(target)
        self.server.start()

    def _unary(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.peers.add(context.peer())
        if request == b"hold":
            self.released.wait(HOLD_SECONDS)
        return answer(request, context)

    def _bidi(self, requests: Iterable[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        self.metadata = [(m.key, m.value) for m in context.invocation_metadata()]
        yield from bidi(requests, context)

    def stop(self) -> None:
        self.released.set()
        self.server.stop(grace=None).wait(5)


@pytest.fixture
def unix_server(tmp_path: Path) -> Iterator[tuple[str, WireServer]]:
    target = f"unix://{tmp_path}/wire.sock"
    server = WireServer(target)
    try:
        yield target, server
    finally:
        server.stop()


@pytest.fixture
def tcp_server() -> Iterator[tuple[str, WireServer]]:
    address = f"127.0.0.1:{free_port()}"
    server = WireServer(address)
    try:
        yield address, server
    finally:
        server.stop()


class RawPeer:
    """An HTTP/2 server (h2, server side) that misbehaves as `mode` says, one connection
    at a time: "silent" reads and never writes (no SETTINGS, no PING answers);
    "http503" answers HTTP 503 without grpc-status; "goaway" sends GOAWAY at the first
    request; "truncated" starts a reply message and closes the connection inside it."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            with connection:
                self._talk(connection)

    def _talk(self, connection: socket.socket) -> None:
        connection.settimeout(0.2)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        if self.mode != "silent":
            conn.initiate_connection()
            connection.sendall(conn.data_to_send())
        while not self._stop.is_set():
            try:
                data = connection.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            if self.mode == "silent":
                continue
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived) and self._reply(
                    conn, event.stream_id
                ):
                    connection.sendall(conn.data_to_send())
                    return
            connection.sendall(conn.data_to_send())

    def _reply(self, conn: h2.connection.H2Connection, stream_id: int) -> bool:
        """Answer one request; True when the connection is to be closed afterwards."""
        if self.mode == "http503":
            conn.send_headers(stream_id, [(":status", "503")], end_stream=True)
            return False
        if self.mode == "goaway":
            conn.close_connection()
            return True
        conn.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        conn.send_data(stream_id, b"\x00\x00\x00\x01\x00partial")  # announces 65,536 bytes
        return True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


@pytest.fixture
def raw_peer(request: pytest.FixtureRequest) -> Iterator[RawPeer]:
    peer = RawPeer(request.param)
    try:
        yield peer
    finally:
        peer.stop()
