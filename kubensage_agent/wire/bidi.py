"""One bidirectional gRPC call on its own connection, for asyncio.

The agent's stream to the relay gets a connection of its own, as grpcio gave it with a
local subchannel pool: a new stream is a new TCP connection, which the load balancer may
send to another relay replica. Keepalive pings find a peer that vanished without a word.
"""

from __future__ import annotations

import asyncio
import contextlib

from kubensage_agent.wire.session import Call, Metadata, Session
from kubensage_agent.wire.status import RpcError, StatusCode
from kubensage_agent.wire.tls import ClientTls
from kubensage_agent.wire.transport import Transport
from kubensage_common.addresses import split_host_port


class CallEndedError(Exception):
    """A message was written after the call had ended; the call's status says why."""


class BidiCall:
    def __init__(
        self,
        transport: Transport,
        session: Session,
        call: Call,
        *,
        send_limit: int,
        keepalive_seconds: float,
        keepalive_timeout_seconds: float,
    ) -> None:
        self._transport = transport
        self._session = session
        self._call = call
        self._send_limit = send_limit
        self._changed = asyncio.Event()
        self._pump = asyncio.create_task(self._read_connection())
        self._keepalive = asyncio.create_task(
            self._ping_every(keepalive_seconds, keepalive_timeout_seconds)
        )

    @classmethod
    async def open(
        cls,
        address: str,
        path: str,
        *,
        metadata: Metadata = (),
        tls: ClientTls | None = None,
        gzip: bool = False,
        connect_timeout: float,
        send_limit: int,
        receive_limit: int,
        keepalive_seconds: float = 30.0,
        keepalive_timeout_seconds: float = 10.0,
    ) -> BidiCall:
        """Connect (TLS included) within `connect_timeout` and start the call.
        Raises OSError or TimeoutError when the peer cannot be reached."""
        host, port = split_host_port(address)
        try:
            transport = await asyncio.wait_for(Transport.connect(host, port, tls), connect_timeout)
        except TimeoutError as exc:
            if exc.errno is not None:  # the kernel's ETIMEDOUT says what it means
                raise
            raise TimeoutError(f"no connection within {connect_timeout:g} s") from None
        session = Session(address, receive_limit, gzip=gzip)
        call = session.open(path, metadata)
        transport.send(session.output())
        return cls(
            transport,
            session,
            call,
            send_limit=send_limit,
            keepalive_seconds=keepalive_seconds,
            keepalive_timeout_seconds=keepalive_timeout_seconds,
        )

    @property
    def ended(self) -> bool:
        return self._call.ended

    async def write(self, message: bytes) -> None:
        """Send one message; returns once HTTP/2 flow control took all of it."""
        if self._call.ended or self._call.half_close:
            raise CallEndedError
        if len(message) > self._send_limit:
            raise RpcError(
                StatusCode.RESOURCE_EXHAUSTED,
                f"message of {len(message)} bytes exceeds the {self._send_limit}-byte limit",
            )
        self._session.send(self._call, message)
        await self._flush()
        while self._session.pending(self._call) and not self._call.ended:
            await self._wait_changed()
        if self._call.ended and self._call.error is not None:
            raise CallEndedError

    async def done_writing(self) -> None:
        """Half-close: the peer sees the end of our messages."""
        self._session.half_close(self._call)
        await self._flush()

    async def read(self) -> bytes | None:
        """The next message; None once the call ended with OK. Raises the call's RpcError."""
        while not self._call.messages:
            if self._call.ended:
                if self._call.error is not None:
                    raise self._call.error
                return None
            await self._wait_changed()
        return self._call.messages.popleft()

    async def finished(self) -> RpcError | None:
        """Wait for the call's end: None for OK, else its error."""
        while not self._call.ended:
            await self._wait_changed()
        return self._call.error

    async def close(self) -> None:
        """Cancel the call if it still runs and drop the connection."""
        self._session.cancel(self._call, RpcError(StatusCode.CANCELLED, "cancelled by the agent"))
        with contextlib.suppress(OSError):
            self._transport.send(self._session.output())
        for task in (self._pump, self._keepalive):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._transport.close()

    async def _wait_changed(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()

    async def _flush(self) -> None:
        data = self._session.output()
        if data:
            try:
                self._transport.send(data)
                await self._transport.drain()
            except OSError as exc:
                self._session.lost(StatusCode.UNAVAILABLE, f"connection broke: {exc}")
                self._notify()

    async def _read_connection(self) -> None:
        try:
            while not self._session.closed:
                data = await self._transport.receive()
                if not data:
                    self._session.lost(StatusCode.UNAVAILABLE, "the relay closed the connection")
                    break
                self._session.receive(data)
                await self._flush()
                self._notify()
        except OSError as exc:
            self._session.lost(StatusCode.UNAVAILABLE, f"connection broke: {exc}")
        self._notify()

    async def _ping_every(self, interval: float, timeout: float) -> None:
        """Ping while the call runs; a ping unanswered within `timeout` ends the call."""
        while not self._session.closed:
            await asyncio.sleep(interval)
            answered = self._session.pings_answered
            self._session.ping()
            await self._flush()
            loop = asyncio.get_running_loop()
            give_up = loop.time() + timeout
            while self._session.pings_answered == answered and not self._session.closed:
                if loop.time() >= give_up:
                    self._session.lost(
                        StatusCode.UNAVAILABLE, f"keepalive ping unanswered for {timeout:g}s"
                    )
                    self._transport.close()
                    self._notify()
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait_changed(), give_up - loop.time())
