"""gRPC calls on one HTTP/2 connection, as a state machine with no I/O of its own.

The sync client (runtime) and the asyncio client (relay) both feed the bytes they read
into `Session.receive` and write out what `Session.output` returns; everything gRPC
means by those bytes lives here once: request headers, flow-controlled sending, message
splitting, and the status each call ends with.
"""

from __future__ import annotations

import collections
import contextlib
import os
import urllib.parse
from collections.abc import Iterable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from kubensage_agent.wire.messages import MessageReader, frame, timeout_header
from kubensage_agent.wire.status import (
    HTTP_STATUS_CODES,
    RESET_CODES,
    RpcError,
    StatusCode,
)
from kubensage_common.version import VERSION

USER_AGENT = f"kubensage-agent/{VERSION}"
# Our receive window per stream and for the connection: one large answer (a runtime's
# ListContainerStats at hundreds of containers) arrives without waiting on WINDOW_UPDATEs.
RECEIVE_WINDOW_BYTES = 16 * 1024 * 1024
H2_DEFAULT_WINDOW = 65_535

Metadata = tuple[tuple[str, str], ...]


def _frames_after_goaway() -> dict[Any, Any]:
    closed, inputs = h2.connection.ConnectionState.CLOSED, h2.connection.ConnectionInputs
    # everything but opening a stream
    return {(closed, i): (None, closed) for i in inputs if i != inputs.SEND_HEADERS}


class _GracefulGoaway(h2.connection.H2ConnectionStateMachine):
    """h2 takes no frame at all once a GOAWAY arrived. HTTP/2 (RFC 9113, 6.8) lets the
    streams it covers finish, and a gRPC server stopping with a grace period relies on
    that: here the closed connection still carries those streams, only new ones are refused."""

    _transitions = {
        **h2.connection.H2ConnectionStateMachine._transitions,
        **_frames_after_goaway(),
    }


class Call:
    """One call's stream: what it still has to send, what it received, how it ended."""

    def __init__(self, stream_id: int, receive_limit: int) -> None:
        self.stream_id = stream_id
        self.reader = MessageReader(receive_limit)
        self.messages: collections.deque[bytes] = collections.deque()
        self.outgoing = bytearray()
        self.half_close = False  # end our side once `outgoing` is sent
        self.headers: dict[str, str] = {}
        self.trailers: Metadata = ()
        self.error: RpcError | None = None  # the status, once ended, when not OK
        self.ended = False

    def finish(self, error: RpcError | None) -> None:
        if not self.ended:
            self.ended, self.error = True, error


class Session:
    """The HTTP/2 connection's state and its calls; `output()` after every change."""

    def __init__(self, authority: str, receive_limit: int, *, gzip: bool = False) -> None:
        self.authority = authority
        self.receive_limit = receive_limit
        self.gzip = gzip
        self.calls: dict[int, Call] = {}
        self.closed_reason = ""  # set once the connection can carry no more calls
        self.draining_reason = ""  # set once the peer takes no new calls (graceful GOAWAY)
        self.pings_answered = 0
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self._h2 = h2.connection.H2Connection(config)
        self._h2.state_machine = _GracefulGoaway()
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW_BYTES,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            },
        )
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(RECEIVE_WINDOW_BYTES - H2_DEFAULT_WINDOW)

    @property
    def closed(self) -> bool:
        return bool(self.closed_reason)

    @property
    def accepting(self) -> bool:
        """Whether the connection takes new calls."""
        return not (self.closed_reason or self.draining_reason)

    def can_open(self) -> bool:
        if not self.accepting:
            return False
        limit = self._h2.remote_settings.max_concurrent_streams
        return self._h2.open_outbound_streams < limit

    def open(self, path: str, metadata: Metadata = (), timeout: float | None = None) -> Call:
        """Start a call: its request headers are in the next `output()`."""
        if not self.accepting:
            raise RpcError(StatusCode.UNAVAILABLE, self.closed_reason or self.draining_reason)
        stream_id = self._h2.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", self.authority),
            ("te", "trailers"),
            ("content-type", "application/grpc"),
            ("user-agent", USER_AGENT),
            ("grpc-accept-encoding", "identity,gzip"),
        ]
        if self.gzip:
            headers.append(("grpc-encoding", "gzip"))
        if timeout is not None:
            headers.append(("grpc-timeout", timeout_header(timeout)))
        headers.extend(metadata)
        self._h2.send_headers(stream_id, headers)
        call = Call(stream_id, self.receive_limit)
        self.calls[stream_id] = call
        return call

    def send(self, call: Call, payload: bytes, *, half_close: bool = False) -> None:
        """Queue one message (and maybe the end of our side); sent as flow control allows."""
        if call.ended or call.half_close:
            raise RpcError(StatusCode.INTERNAL, "message sent on a finished call")
        call.outgoing += frame(payload, self.gzip)
        call.half_close = half_close
        self._send_pending()

    def half_close(self, call: Call) -> None:
        """End our side of the call once everything queued on it is sent."""
        if not call.ended and not call.half_close:
            call.half_close = True
            self._send_pending()

    def cancel(self, call: Call, error: RpcError) -> None:
        """End a call from our side: the peer is told with RST_STREAM(CANCEL)."""
        if call.ended:
            return
        call.finish(error)
        if not self.closed:
            # the peer may have closed its side already
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self._h2.reset_stream(call.stream_id, h2.errors.ErrorCodes.CANCEL)
        self.calls.pop(call.stream_id, None)

    def ping(self) -> None:
        self._h2.ping(os.urandom(8))

    def pending(self, call: Call) -> int:
        """Bytes of the call not yet handed to HTTP/2 (waiting for flow-control window)."""
        return len(call.outgoing)

    def output(self) -> bytes:
        return self._h2.data_to_send()

    def receive(self, data: bytes) -> None:
        """Feed bytes read from the connection; calls finish as their streams end."""
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.lost(StatusCode.INTERNAL, f"HTTP/2 protocol error from the peer: {exc}")
            return
        for event in events:
            self._handle(event)
        self._send_pending()

    def lost(self, code: StatusCode, reason: str) -> None:
        """The connection is gone: every call not yet ended ends with `code`."""
        if not self.closed_reason:
            self.closed_reason = reason
        for call in self.calls.values():
            call.finish(RpcError(code, reason))
        self.calls.clear()

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ConnectionTerminated):
            self._goaway(event)
        elif isinstance(event, h2.events.PingAckReceived):
            self.pings_answered += 1
        stream_id = getattr(event, "stream_id", None)
        call = self.calls.get(stream_id) if stream_id else None
        if call is None:
            return
        if isinstance(event, h2.events.ResponseReceived):
            call.headers = dict(_str_pairs(event.headers))
            call.reader.gzip = call.headers.get("grpc-encoding") == "gzip"
        elif isinstance(event, h2.events.DataReceived):
            self._h2.acknowledge_received_data(event.flow_controlled_length, call.stream_id)
            self._take_messages(call, event.data)
        elif isinstance(event, h2.events.TrailersReceived):
            call.trailers = tuple(_str_pairs(event.headers))
        elif isinstance(event, h2.events.StreamEnded):
            call.finish(_final_status(call))
            self.calls.pop(call.stream_id, None)
        elif isinstance(event, h2.events.StreamReset):
            code = RESET_CODES.get(event.error_code, StatusCode.INTERNAL)
            call.finish(RpcError(code, f"stream reset by the peer ({event.error_code!s})"))
            self.calls.pop(call.stream_id, None)

    def _goaway(self, event: h2.events.ConnectionTerminated) -> None:
        """The peer takes no new calls; without an error, the calls it covers go on."""
        reason = f"the peer is closing the connection (GOAWAY {event.error_code!s})"
        if event.error_code != h2.errors.ErrorCodes.NO_ERROR:
            self.lost(StatusCode.UNAVAILABLE, reason)
            return
        self.draining_reason = reason
        last = event.last_stream_id if event.last_stream_id is not None else 0
        for call in [c for c in self.calls.values() if c.stream_id > last]:
            call.finish(RpcError(StatusCode.UNAVAILABLE, reason + ": call not processed"))
            self.calls.pop(call.stream_id, None)

    def _take_messages(self, call: Call, data: bytes) -> None:
        if call.ended:
            return
        if call.headers.get(":status") != "200":
            return  # not gRPC: the status decides, the body is not read
        try:
            call.messages.extend(call.reader.feed(data))
        except RpcError as exc:
            self.cancel(call, exc)

    def _send_pending(self) -> None:
        if self.closed:
            return
        for call in list(self.calls.values()):
            self._send_some(call)

    def _send_some(self, call: Call) -> None:
        try:
            while call.outgoing:
                window = self._h2.local_flow_control_window(call.stream_id)
                size = min(window, self._h2.max_outbound_frame_size, len(call.outgoing))
                if size <= 0:
                    return  # the rest goes when the peer opens its window
                chunk = bytes(call.outgoing[:size])
                del call.outgoing[:size]
                self._h2.send_data(call.stream_id, chunk)
            if call.half_close:
                self._h2.end_stream(call.stream_id)
                call.half_close = False
                call.outgoing = bytearray()
        except h2.exceptions.StreamClosedError:
            call.outgoing.clear()  # the peer ended the stream; its status follows


def _str_pairs(headers: Iterable[tuple[str | bytes, str | bytes]]) -> list[tuple[str, str]]:
    return [
        (k if isinstance(k, str) else k.decode(), v if isinstance(v, str) else v.decode())
        for k, v in headers
    ]


def _final_status(call: Call) -> RpcError | None:
    """How a call that ended cleanly at the HTTP/2 level ended for gRPC."""
    if call.error is not None:
        return call.error
    # a reply with no messages carries its status in the headers ("trailers-only")
    fields = dict(call.trailers) if call.trailers else call.headers
    status = fields.get("grpc-status")
    if status is None:
        http_status = call.headers.get(":status", "")
        code = StatusCode.INTERNAL
        if http_status.isdigit():
            code = HTTP_STATUS_CODES.get(int(http_status), StatusCode.UNKNOWN)
        return RpcError(code, f"reply without grpc-status (HTTP {http_status or 'none'})")
    try:
        code = StatusCode(int(status))
    except ValueError:
        code = StatusCode.UNKNOWN
    details = urllib.parse.unquote(fields.get("grpc-message", ""))
    trailers = call.trailers or tuple(call.headers.items())
    if code != StatusCode.OK:
        return RpcError(code, details, trailers)
    if call.reader.partial:
        return RpcError(StatusCode.INTERNAL, "stream ended inside a message")
    return None
