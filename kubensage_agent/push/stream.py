"""One agent's stream to the relay: hello, reports oldest first, acks and settings back.

On any break the stream is rebuilt after a jittered backoff and every report not yet
acknowledged is sent again, oldest first; the relay drops repeats by sequence number.
A report the relay refuses as such (too large, or undecodable: it says so in the
trailing metadata) is dropped and counted, so one bad report cannot block the queue.
When the token file changes (a projected ServiceAccount token is rotated) the stream
is ended cleanly and opened again with the new token, before the old one expires.
When the relay ends the stream cleanly (it does so at its max connection age, so agents
spread over the replicas behind a load balancer), a new stream on a new connection
follows after a short random pause instead of the error backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

from google.protobuf.message import DecodeError

from kubensage_agent.push.queue import ReportQueue
from kubensage_agent.wire.bidi import BidiCall, CallEndedError
from kubensage_agent.wire.status import RpcError, StatusCode
from kubensage_agent.wire.tls import ClientTls
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.backoff import Backoff
from kubensage_common.protocol import REFUSED_REPORT_METADATA

logger = logging.getLogger(__name__)

STREAM_PATH = "/kubensage.telemetry.v1.Ingest/Stream"
CONNECT_TIMEOUT_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 2.0
RECEIVE_LIMIT_BYTES = 4 * 1024 * 1024  # acks and settings: small
REFUSALS = {
    StatusCode.UNAUTHENTICATED: "refused our credentials ({}); check --token-file",
    StatusCode.PERMISSION_DENIED: "refused to take reports for this node ({}); check "
    "--node-name and which nodes the credentials are for",
    StatusCode.FAILED_PRECONDITION: "refused this agent ({})",
    StatusCode.ABORTED: "ended the stream ({})",
}


def refused_a_report(exc: RpcError) -> bool:
    """Whether the relay ended the stream because of the report it was reading."""
    if exc.code == StatusCode.RESOURCE_EXHAUSTED:
        return True  # larger than the relay accepts (only a report can be)
    if exc.code != StatusCode.INVALID_ARGUMENT:
        return False
    return REFUSED_REPORT_METADATA in exc.trailers


# Pause before reconnecting after the relay ended a stream cleanly: enough to spread a
# fleet rotated at once, far below one collection interval.
ROTATION_PAUSE_SECONDS = 0.5


class StreamSender:
    def __init__(
        self,
        relay_address: str,
        hello: Callable[[], tm.Hello],
        queue: ReportQueue,
        on_settings: Callable[[tm.Settings], None],
        max_message_bytes: int,
        *,
        tls: ClientTls | None = None,
        token_file: Path | None = None,
    ) -> None:
        self.relay_address = relay_address
        self.hello = hello
        self.queue = queue
        self.on_settings = on_settings
        self.max_message_bytes = max_message_bytes
        self.tls = tls
        self.token_file = token_file
        self.reconnects_total = 0
        self.refused_total = 0
        self.acked_any = False
        self.highest_acked = 0
        # for /status: since when the current stream is up, the last ack, the last failure
        self.connected_since: float | None = None
        self.last_ack_unix: float | None = None
        self.last_problem = ""
        self._backoff = Backoff()
        self._stopping = False
        self._call: BidiCall | None = None
        self._token = ""

    async def run(self) -> None:
        """Keep a stream up until `flush_and_close`; never raises for relay trouble."""
        first = True
        while not self._stopping:
            if not first:
                self.reconnects_total += 1
            first = False
            try:
                if await self._one_stream():
                    logger.info("token file changed; reconnecting with the new token")
                    continue
                if not self._stopping:
                    logger.info("relay %s ended the stream; reconnecting", self.relay_address)
                    await asyncio.sleep(random.uniform(0, ROTATION_PAUSE_SECONDS))
                continue
            except RpcError as exc:
                problem = self._problem(exc)
            except (OSError, TimeoutError) as exc:
                problem = f"unreachable: {exc!r}"
            if self._stopping:
                break
            self.last_problem = problem
            logger.warning("relay %s %s; reconnecting", self.relay_address, problem)
            await asyncio.sleep(self._backoff.next_delay())

    def _problem(self, exc: RpcError) -> str:
        if refused_a_report(exc):
            self._drop_refused()
        template = REFUSALS.get(exc.code, "stream broke: " + exc.code.name + " {}")
        return template.format(exc.details)

    def _drop_refused(self) -> None:
        """The relay refused the oldest report it had not acknowledged: sending it again
        would be refused again, forever."""
        refused = self.queue.after(self.highest_acked)
        if refused is None:
            return
        self.queue.ack(refused.sequence)
        self.refused_total += 1
        logger.warning(
            "relay %s refused report %s (%s bytes); dropped",
            self.relay_address,
            refused.sequence,
            refused.ByteSize(),
        )

    def _read_token(self) -> str:
        assert self.token_file is not None
        return self.token_file.read_text().strip()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        """Read the token at every connect, so a rotated token is picked up without a restart."""
        if self.token_file is None:
            return ()
        self._token = self._read_token()
        return (("authorization", f"Bearer {self._token}"),)

    def _token_rotated(self) -> bool:
        if self.token_file is None:
            return False
        try:
            return self._read_token() != self._token
        except OSError:
            return False  # mid-rotation: look again at the next report

    async def _one_stream(self) -> bool:
        """One stream until it ends; True when it was ended to pick up a rotated token."""
        call = await BidiCall.open(
            self.relay_address,
            STREAM_PATH,
            metadata=self._metadata(),
            tls=self.tls,
            gzip=True,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            send_limit=self.max_message_bytes,
            receive_limit=RECEIVE_LIMIT_BYTES,
        )
        self._call = call
        try:
            await call.write(tm.AgentMessage(hello=self.hello()).SerializeToString())
            self.connected_since = time.time()
            reader = asyncio.create_task(self._read(call))
            try:
                return await self._write(call, reader)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, RpcError):
                    await reader
        except CallEndedError:  # the relay ended the stream while we wrote
            error = await call.finished()
            if error is not None:
                raise error from None
            return False
        finally:
            self._call = None
            self.connected_since = None
            await call.close()

    async def _write(self, call: BidiCall, reader: asyncio.Task[None]) -> bool:
        """Send reports as they come; True when the stream ended to pick up a rotated token."""
        sent_upto = self.highest_acked
        while not self._stopping:
            if self._token_rotated():
                await _close_cleanly(call, reader)
                return True
            report = self.queue.after(sent_upto)
            if report is None:
                waiter = asyncio.create_task(self.queue.wait_changed())
                done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    waiter.cancel()
                    reader.result()  # re-raises the stream's error, if it ended with one
                    return False
                continue
            await call.write(tm.AgentMessage(report=report).SerializeToString())
            sent_upto = report.sequence
        await _close_cleanly(call, reader)
        return False

    async def _read(self, call: BidiCall) -> None:
        while (payload := await call.read()) is not None:
            try:
                message = tm.RelayMessage.FromString(payload)
            except DecodeError as exc:
                raise RpcError(StatusCode.INTERNAL, f"undecodable relay message: {exc}") from exc
            if message.HasField("ack"):
                self.highest_acked = max(self.highest_acked, message.ack.sequence)
                self.last_ack_unix = time.time()
                self.queue.ack(message.ack.sequence)
                if not self.acked_any:
                    logger.info("relay %s acknowledged the first report", self.relay_address)
                self.acked_any = True
                self._backoff.reset()
            elif message.HasField("settings"):
                self.on_settings(message.settings)

    async def flush_and_close(self, grace_seconds: float) -> bool:
        """Wait (bounded) until everything queued is acknowledged, then have the writer end
        the stream cleanly (it runs in `run`, which must still be running)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while len(self.queue) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        flushed = len(self.queue) == 0
        self._stopping = True
        self.queue.wake()  # the writer notices the stop and closes the stream cleanly
        call = self._call
        if call is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.finished(), CLOSE_TIMEOUT_SECONDS)
        return flushed


async def _close_cleanly(call: BidiCall, reader: asyncio.Task[None]) -> None:
    """Half-close, then wait (bounded) for the relay to end the stream, so it counts the
    close as clean; dropping the connection first would look like a lost agent."""
    await call.done_writing()
    with contextlib.suppress(TimeoutError, RpcError):
        await asyncio.wait_for(asyncio.shield(reader), CLOSE_TIMEOUT_SECONDS)
