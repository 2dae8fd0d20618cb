"""One TCP connection's bytes for the asyncio client, plain or through TLS."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any

from kubensage_agent.threads import in_daemon_thread
from kubensage_agent.wire.tls import ClientTls, ssl_module

if TYPE_CHECKING:
    import ssl

READ_BYTES = 256 * 1024
# Lookups abandoned at their deadline keep a thread each until the resolver answers; a
# resolver that never does must not cost a thread per reconnect.
MAX_LOOKUPS_IN_FLIGHT = 4
_lookup_slots = threading.BoundedSemaphore(MAX_LOOKUPS_IN_FLIGHT)


class Transport:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._tls: ssl.SSLObject | None = None
        self._incoming: ssl.MemoryBIO | None = None
        self._outgoing: ssl.MemoryBIO | None = None

    @classmethod
    async def connect(cls, host: str, port: int, tls: ClientTls | None) -> Transport:
        reader, writer = await asyncio.open_connection(sock=await _connected_socket(host, port))
        transport = cls(reader, writer)
        if tls is not None:
            try:
                await transport._handshake(tls, tls.server_name or host)
            except BaseException:
                transport.close()
                raise
        return transport

    async def _handshake(self, tls: ClientTls, server_name: str) -> None:
        ssl = ssl_module()
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = tls.context().wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_name
        )
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send_tls_records()
                if not await self._read_tls_records():
                    raise ConnectionError("the relay closed the connection during TLS") from None
        self._send_tls_records()

    async def receive(self) -> bytes:
        """The next bytes from the peer; b"" once it closed the connection."""
        if self._tls is None:
            return await self._reader.read(READ_BYTES)
        ssl = ssl_module()  # loaded by the handshake: a dictionary look-up
        while True:
            try:
                data = self._tls.read(READ_BYTES)
            except ssl.SSLWantReadError:
                self._send_tls_records()
                if not await self._read_tls_records():
                    return b""
                continue
            except ssl.SSLZeroReturnError:
                return b""
            self._send_tls_records()  # a key update or ticket may need an answer
            return data

    def send(self, data: bytes) -> None:
        if self._tls is None:
            self._writer.write(data)
            return
        self._tls.write(data)
        self._send_tls_records()

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        self._writer.close()

    async def _read_tls_records(self) -> bool:
        data = await self._reader.read(READ_BYTES)
        assert self._incoming is not None
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    def _send_tls_records(self) -> None:
        assert self._outgoing is not None
        if self._outgoing.pending:
            self._writer.write(self._outgoing.read())


async def _connected_socket(host: str, port: int) -> socket.socket:
    """A socket connected to the first of `host`'s addresses that answers, tried in the
    resolver's order as the loop's own connect does."""
    loop = asyncio.get_running_loop()
    failures: list[OSError] = []
    for family, kind, protocol, _, address in await _addresses(host, port):
        try:
            connection = socket.socket(family, kind, protocol)
        except OSError as exc:  # a family the node cannot use (IPv6 turned off)
            failures.append(exc)
            continue
        try:
            connection.setblocking(False)
            await loop.sock_connect(connection, address)
        except BaseException as exc:
            connection.close()
            if not isinstance(exc, OSError):
                raise
            failures.append(exc)
            continue
        return connection
    if len(failures) == 1:
        raise failures[0]
    causes = "; ".join(f"{type(failure).__name__}: {failure}" for failure in failures)
    raise OSError(f"cannot connect to {host}:{port}: {causes or 'the name has no address'}")


async def _addresses(host: str, port: int) -> list[tuple[Any, ...]]:
    """`host`'s addresses, looked up in a daemon thread rather than the loop's resolver
    pool: a lookup hung on a silent DNS server is abandoned at the caller's deadline and
    cannot hold the agent's exit, whereas that pool is joined at shutdown with no limit.
    At most MAX_LOOKUPS_IN_FLIGHT lookups wait on the resolver at once."""
    if not _lookup_slots.acquire(blocking=False):
        raise OSError(f"cannot look up {host}: {MAX_LOOKUPS_IN_FLIGHT} lookups still unanswered")

    ran = threading.Event()

    def look_up() -> list[tuple[Any, ...]]:
        ran.set()
        try:
            return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        finally:
            _lookup_slots.release()

    try:
        # a lookup failing after its caller gave up says no more than the attempt's own error
        return await in_daemon_thread(look_up, f"look up {host}", late_failure_level=logging.DEBUG)
    except RuntimeError as exc:  # no thread could be started (the process at its thread limit)
        if ran.is_set():
            raise
        _lookup_slots.release()
        raise OSError(f"cannot look up {host}: {exc}") from exc
