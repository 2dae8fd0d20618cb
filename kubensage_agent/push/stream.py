"""One agent's stream to the relay: hello, reports oldest first, acks and settings back.

On any break the stream is rebuilt after a jittered backoff and every report not yet
acknowledged is sent again, oldest first; the relay drops repeats by sequence number.
When the relay ends the stream cleanly (it does so at its max connection age, so agents
spread over the replicas behind a load balancer), a new stream on a new connection
follows after a short random pause instead of the error backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from loguru import logger

from kubensage_agent.push.queue import ReportQueue
from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_api.telemetry import telemetry_pb2_grpc
from kubensage_common.backoff import Backoff

IngestCall = grpc.aio.StreamStreamCall[tm.AgentMessage, tm.RelayMessage]
CONNECT_TIMEOUT_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 2.0
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
        credentials: grpc.ChannelCredentials | None = None,
        server_name: str | None = None,
        token_file: Path | None = None,
    ) -> None:
        self.relay_address = relay_address
        self.hello = hello
        self.queue = queue
        self.on_settings = on_settings
        self.max_message_bytes = max_message_bytes
        self.credentials = credentials
        self.server_name = server_name
        self.token_file = token_file
        self.reconnects_total = 0
        self.acked_any = False
        self.highest_acked = 0
        self._backoff = Backoff()
        self._stopping = False
        self._call: IngestCall | None = None

    async def run(self) -> None:
        """Keep a stream up until `stop()`; never raises for relay trouble."""
        first = True
        while not self._stopping:
            if not first:
                self.reconnects_total += 1
            first = False
            try:
                await self._one_stream()
                if not self._stopping:
                    logger.info("relay {} ended the stream; reconnecting", self.relay_address)
                    await asyncio.sleep(random.uniform(0, ROTATION_PAUSE_SECONDS))
                continue
            except grpc.aio.AioRpcError as exc:
                problem = f"stream broke: {exc.code().name} {exc.details()}"
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    problem = f"refused our credentials ({exc.details()}); check --token-file"
            except asyncio.InvalidStateError:
                # the relay ended the call (e.g. refused our token) while we were writing
                problem = "ended the stream while we were writing"
            except (OSError, TimeoutError, grpc.aio.UsageError) as exc:
                problem = f"unreachable: {exc!r}"
            if self._stopping:
                break
            logger.warning("relay {} {}; reconnecting", self.relay_address, problem)
            await asyncio.sleep(self._backoff.next_delay())

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        """Read the token at every connect, so a rotated token is picked up without a restart."""
        if self.token_file is None:
            return ()
        token = self.token_file.read_text().strip()
        return (("authorization", f"Bearer {token}"),)

    def _channel(self, options: list[tuple[str, Any]]) -> grpc.aio.Channel:
        if self.credentials is None:
            return grpc.aio.insecure_channel(
                self.relay_address, options=options, compression=grpc.Compression.Gzip
            )
        if self.server_name:
            options = [*options, ("grpc.ssl_target_name_override", self.server_name)]
        return grpc.aio.secure_channel(
            self.relay_address,
            self.credentials,
            options=options,
            compression=grpc.Compression.Gzip,
        )

    async def _one_stream(self) -> None:
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", 4 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            # a new stream gets a new connection, which the load balancer may send elsewhere
            ("grpc.use_local_subchannel_pool", 1),
        ]
        metadata = self._metadata()
        async with self._channel(options) as channel:
            await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_SECONDS)
            # grpc.aio allows the write()/read() style without an iterator; the stubs do not
            call = telemetry_pb2_grpc.IngestStub(channel).Stream(  # type: ignore[call-arg]
                metadata=metadata
            )
            self._call = call
            try:
                await call.write(tm.AgentMessage(hello=self.hello()))
                reader = asyncio.create_task(self._read(call))
                try:
                    await self._write(call, reader)
                finally:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                        await reader
            finally:
                self._call = None

    async def _write(
        self,
        call: IngestCall,
        reader: asyncio.Task[None],
    ) -> None:
        sent_upto = self.highest_acked
        while not self._stopping:
            report = self.queue.after(sent_upto)
            if report is None:
                waiter = asyncio.create_task(self.queue.wait_changed())
                done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    waiter.cancel()
                    reader.result()  # re-raises the stream's error, if it ended with one
                    return
                continue
            await call.write(tm.AgentMessage(report=report))
            sent_upto = report.sequence

    async def _read(self, call: IngestCall) -> None:
        async for message in call:
            if message.HasField("ack"):
                self.highest_acked = max(self.highest_acked, message.ack.sequence)
                self.queue.ack(message.ack.sequence)
                if not self.acked_any:
                    logger.info("relay {} acknowledged the first report", self.relay_address)
                self.acked_any = True
                self._backoff.reset()
            elif message.HasField("settings"):
                self.on_settings(message.settings)

    async def flush_and_close(self, grace_seconds: float) -> bool:
        """Wait (bounded) until everything queued is acknowledged, then end the stream cleanly."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while len(self.queue) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        flushed = len(self.queue) == 0
        self._stopping = True
        call = self._call
        if call is not None:
            # half-close, then let the relay end the stream so it sees a clean close
            with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError, TimeoutError):
                await call.done_writing()
                await asyncio.wait_for(call.code(), CLOSE_TIMEOUT_SECONDS)
        self.queue.wake()
        return flushed
