"""Unary calls to the container runtime on one kept-open connection, from a plain thread.

The collection cycle runs in a worker thread and asks the runtime a handful of questions,
sometimes one per pod at once; they share one HTTP/2 connection and one deadline, the
answers are read as they come, and a runtime that never answers costs the deadline.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Sequence

from kubensage_agent.wire.session import Call, Session
from kubensage_agent.wire.status import RpcError, StatusCode

READ_BYTES = 256 * 1024


def parse_target(target: str) -> tuple[int, str | tuple[str, int]]:
    """`unix:///path`, `unix:/path` or `host:port` as a socket family and address."""
    if target.startswith("unix://"):
        return socket.AF_UNIX, target[len("unix://") :]
    if target.startswith("unix:"):
        return socket.AF_UNIX, target[len("unix:") :]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"not a unix socket or host:port: {target!r}")
    return socket.AF_INET6 if ":" in host else socket.AF_INET, (host.strip("[]"), int(port))


class UnaryChannel:
    """Calls to one target; the connection is opened on first use and after it broke."""

    def __init__(self, target: str, receive_limit: int) -> None:
        self.family, self.address = parse_target(target)
        self.authority = "localhost" if self.family == socket.AF_UNIX else target
        self.receive_limit = receive_limit
        self._socket: socket.socket | None = None
        self._session: Session | None = None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = self._session = None

    def call_many(
        self, path: str, payloads: Sequence[bytes], timeout: float, in_flight: int
    ) -> list[bytes | RpcError]:
        """`path` once per payload, at most `in_flight` at once, all within `timeout`
        seconds: each answer's bytes, or the RpcError that call ended with."""
        deadline = time.monotonic() + timeout
        try:
            session = self._connected(deadline)
        except RpcError as exc:
            return [exc] * len(payloads)
        results: list[bytes | RpcError | None] = [None] * len(payloads)
        waiting = list(range(len(payloads)))
        running: dict[int, Call] = {}
        while (waiting or running) and not session.closed:
            if waiting and not running and not session.accepting:
                break  # draining: what was not sent goes on a new connection next time
            while waiting and len(running) < in_flight and session.can_open():
                index = waiting.pop(0)
                call = session.open(path, timeout=deadline - time.monotonic())
                session.send(call, payloads[index], half_close=True)
                running[index] = call
            if not self._exchange(session, deadline):
                break
            for index, call in list(running.items()):
                if call.ended:
                    results[index] = _answer(call)
                    del running[index]
        for index, call in running.items():
            session.cancel(call, RpcError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded"))
            results[index] = call.error
        if not session.accepting:
            unsent = RpcError(
                StatusCode.UNAVAILABLE, session.closed_reason or session.draining_reason
            )
            self._flush(session, deadline)
            self.close()
        else:
            self._flush(session, deadline)  # the cancellations
            unsent = RpcError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before the call")
        return [unsent if r is None else r for r in results]

    def _connected(self, deadline: float) -> Session:
        if self._session is not None and self._socket is not None and self._still_open():
            return self._session
        self.close()
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.connect(self.address)
        except OSError as exc:
            sock.close()
            raise RpcError(
                StatusCode.UNAVAILABLE, f"cannot connect to {self.address}: {exc}"
            ) from exc
        self._socket = sock
        self._session = Session(self.authority, self.receive_limit)
        return self._session

    def _still_open(self) -> bool:
        """Take in what the peer sent while we were idle (PING, GOAWAY, EOF)."""
        assert self._socket is not None and self._session is not None
        try:
            while select.select([self._socket], [], [], 0)[0]:
                data = self._socket.recv(READ_BYTES)
                if not data:
                    return False
                self._session.receive(data)
        except OSError:
            return False
        return self._session.accepting

    def _exchange(self, session: Session, deadline: float) -> bool:
        """Send what is pending, then wait for bytes until `deadline`. False when time is
        up; when the connection breaks, the calls end with why."""
        if not self._flush(session, deadline):
            return not session.closed
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        assert self._socket is not None
        try:
            self._socket.settimeout(remaining)
            data = self._socket.recv(READ_BYTES)
        except TimeoutError:
            return False
        except OSError as exc:
            session.lost(StatusCode.UNAVAILABLE, f"connection to {self.address} broke: {exc}")
            return True
        if not data:
            session.lost(StatusCode.UNAVAILABLE, f"{self.address} closed the connection")
            return True
        session.receive(data)
        return True

    def _flush(self, session: Session, deadline: float) -> bool:
        """Write what the session has for the peer; False when it could not all go."""
        data = session.output()
        if not data or self._socket is None:
            return True
        try:
            self._socket.settimeout(max(deadline - time.monotonic(), 0.001))
            self._socket.sendall(data)
        except TimeoutError:
            # part of a frame may be out: the connection cannot carry another call
            session.lost(StatusCode.DEADLINE_EXCEEDED, f"{self.address} stopped reading")
            return False
        except OSError as exc:
            session.lost(StatusCode.UNAVAILABLE, f"connection to {self.address} broke: {exc}")
            return False
        return True


def _answer(call: Call) -> bytes | RpcError:
    if call.error is not None:
        return call.error
    if len(call.messages) != 1:
        return RpcError(
            StatusCode.INTERNAL, f"unary call answered with {len(call.messages)} messages"
        )
    return call.messages[0]
