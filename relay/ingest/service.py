"""The agent stream: credentials, hello, then reports answered by acknowledgements.

The stream is served on raw bytes (relay.ingest.server registers it so), decoded here
within limits and off the event loop. A stream ends, from outside its own reading,
when its credentials are no longer accepted (checked every reload interval) or when a
newer stream takes over its node.

With remote write, every report the store accepts, current or late, is handed to the
exporter before it is acknowledged, and no report is taken while the exporter's queue
has no room: a report is acknowledged only once its samples are queued. A stream older
than its max age (with jitter) ends itself cleanly after an ack, so agents spread over
replicas added since they connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import grpc

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.logsetup import FirstPerKey
from kubensage_common.protocol import REFUSED_REPORT_METADATA
from relay.ingest.auth import (
    Authenticators,
    AuthRefusedError,
    Grant,
    Peer,
    allowed,
    describe_grants,
)
from relay.ingest.decode import DecodeError, DecodeLimits, MessageDecoder
from relay.ingest.identity import hello_problem, report_problem
from relay.selfmetrics import RelayMetrics
from relay.state.store import NodeConflictError, NodeStore, StreamClaim

logger = logging.getLogger(__name__)

HELLO_TIMEOUT_SECONDS = 30.0
DEFAULT_RELOAD_SECONDS = 60.0
# Messages this small are decoded on the event loop: a thread hop would cost more.
INLINE_DECODE_BYTES = 4096
DECODE_THREADS = 2
# Each stream's max age varies by this fraction, so agents moved together do not return together.
AGE_JITTER = 0.1
# How long an ended request stream waits to learn whether it was a half-close or a cancel:
# grpcio ends the reads of a cancelled call or a cut connection as it ends a half-close.
CANCEL_SETTLE_SECONDS = 0.2
ServicerContext = grpc.aio.ServicerContext[bytes, tm.RelayMessage]


class Exporter(Protocol):
    """Where accepted reports go for history (remote write)."""

    def wait_for_room(self) -> Awaitable[bool]: ...

    def submit(self, report: tm.Metrics) -> None: ...


class StreamEndedError(Exception):
    """Raised in a stream's handler when something outside it ended the stream."""


@dataclass
class _Ending:
    code: grpc.StatusCode
    details: str
    how: str  # the streams_closed label


class StreamControl:
    """Ends one stream from outside its handler (revocation, replacement)."""

    def __init__(self) -> None:
        self.ending: _Ending | None = None
        self._event = asyncio.Event()

    def end(self, code: grpc.StatusCode, details: str, how: str) -> None:
        if self.ending is None:
            self.ending = _Ending(code, details, how)
            self._event.set()

    def replaced(self, details: str) -> None:
        self.end(grpc.StatusCode.ABORTED, details, "replaced")

    async def wait(self) -> None:
        await self._event.wait()


@dataclass(frozen=True)
class _Stream:
    peer: Peer
    grants: list[Grant]
    hello: tm.Hello
    claim: StreamClaim
    control: StreamControl


class IngestService:
    def __init__(
        self,
        store: NodeStore,
        metrics: RelayMetrics,
        settings: tm.Settings | None = None,
        limits: DecodeLimits | None = None,
        auth: Authenticators | None = None,
        *,
        reload_seconds: float = DEFAULT_RELOAD_SECONDS,
        exporter: Exporter | None = None,
        max_stream_age_seconds: float = 0.0,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.settings = settings
        self.limits = limits if limits is not None else DecodeLimits()
        self.decoder = MessageDecoder(self.limits)
        self.auth = auth if auth is not None else Authenticators(())
        self.reload_seconds = reload_seconds
        self.exporter = exporter
        self.max_stream_age_seconds = max_stream_age_seconds
        self._decode_pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode")
        self._peer_log = FirstPerKey(logger)

    def close(self) -> None:
        self._decode_pool.shutdown(wait=False, cancel_futures=True)

    def _stream_deadline(self) -> float:
        """When a stream ends itself (after an ack), so agents spread over new replicas."""
        if self.max_stream_age_seconds <= 0:
            return float("inf")
        jitter = random.uniform(1 - AGE_JITTER, 1 + AGE_JITTER)
        return time.monotonic() + self.max_stream_age_seconds * jitter

    async def Stream(self, _requests: object, context: ServicerContext) -> None:  # noqa: N802
        peer = Peer.from_context(context)
        grants = await self._authenticate(peer, context)
        hello = await self._hello(context)
        node = hello.node_name
        if not allowed(grants, node):
            self.metrics.auth_failures.labels("wrong_node").inc()
            details = f"{describe_grants(grants)}: not for node {node}"
            self._peer_log.report(_host(peer), "refused %s: %s", peer.address, details)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, details)
        control = StreamControl()
        try:
            opened = self.store.open_stream(hello, control.replaced)
        except NodeConflictError as exc:
            self.metrics.node_takeovers.labels("refused").inc()
            key = f"{node}/{hello.agent_id}"  # it retries with backoff: say it once
            self._peer_log.report(
                key, "refused agent %s for node %s: %s", hello.agent_id, node, exc
            )
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        if opened.replaced is not None:
            self.metrics.node_takeovers.labels("replaced").inc()
            logger.info(
                "agent %s takes node %s over from agent %s", hello.agent_id, node, opened.replaced
            )
        if opened.sequence_reset:
            self.metrics.sequence_resets.inc()
            logger.info(
                "agent %s came back with sequence %s below the one remembered: new numbering",
                hello.agent_id,
                hello.last_sequence,
            )
        await self._serve(context, _Stream(peer, grants, hello, opened.claim, control))

    async def _authenticate(self, peer: Peer, context: ServicerContext) -> list[Grant]:
        try:
            return await self.auth.authenticate(peer)
        except AuthRefusedError as exc:
            self.metrics.auth_failures.labels(exc.reason).inc()
            self._peer_log.report(_host(peer), "refused stream from %s: %s", peer.address, exc)
            await context.abort(exc.code, f"{exc.reason}: {exc}")

    async def _hello(self, context: ServicerContext) -> tm.Hello:
        try:
            first = await asyncio.wait_for(context.read(), HELLO_TIMEOUT_SECONDS)
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no hello in time")
        if not isinstance(first, bytes):  # EOF
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "stream ended before a hello")
        message = await self._decode(first, context, report=False)
        if not message.HasField("hello"):
            self.metrics.rejected.labels("no_hello").inc()
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the first message must be a hello naming agent_id and node_name",
            )
        problem = hello_problem(message.hello)
        if problem is not None:
            self.metrics.decode_errors.labels("bad_hello").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        return message.hello

    async def _decode(
        self, data: bytes, context: ServicerContext, *, report: bool = True
    ) -> tm.AgentMessage:
        try:
            if len(data) <= INLINE_DECODE_BYTES:
                decoded = self.decoder.decode(data)
            else:
                loop = asyncio.get_running_loop()
                decoded = await loop.run_in_executor(self._decode_pool, self.decoder.decode, data)
        except DecodeError as exc:
            self.metrics.decode_errors.labels(exc.reason).inc()
            host = context.peer().rsplit(":", 1)[0]
            self._peer_log.report(host, "refused a message from %s: %s", context.peer(), exc)
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{exc.reason}: {exc}",
                (REFUSED_REPORT_METADATA,) if report else (),
            )
        for what, count in decoded.cuts.items():
            self.metrics.truncations.labels(what).inc(count)
        return decoded.message

    async def _serve(self, context: ServicerContext, stream: _Stream) -> None:
        peer, hello, claim, control = stream.peer, stream.hello, stream.claim, stream.control
        node = hello.node_name
        self.metrics.connected_agents.inc()
        logger.info(
            "agent %s on node %s connected from %s (%s)",
            hello.agent_id,
            node,
            peer.address,
            describe_grants(stream.grants),
        )
        watcher = asyncio.create_task(self._revalidate(peer, node, control)) if self.auth else None
        ended = asyncio.create_task(control.wait())
        accepted, how = 0, "lost"
        deadline = self._stream_deadline()
        try:
            if self.settings is not None:
                await context.write(tm.RelayMessage(settings=self.settings))
            while (data := await _next(context, ended)) is not None:
                message = await self._decode(data, context)
                if not message.HasField("report"):
                    self.metrics.rejected.labels("invalid").inc()
                    continue
                if self.exporter is not None and not await self.exporter.wait_for_room():
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "remote-write queue full")
                if self._ingest(message.report, hello, claim):
                    accepted += 1
                await context.write(tm.RelayMessage(ack=tm.Ack(sequence=message.report.sequence)))
                if time.monotonic() >= deadline:
                    self.metrics.streams_rotated.inc()
                    break
            else:
                await asyncio.sleep(CANCEL_SETTLE_SECONDS)
            how = "lost" if context.cancelled() else "clean"
        except StreamEndedError:
            assert control.ending is not None
            how = control.ending.how
            logger.info("ending the stream of node %s: %s", node, control.ending.details)
            await context.abort(control.ending.code, control.ending.details)
        except grpc.aio.AbortError:
            how = "invalid" if how == "lost" else how
            raise
        finally:
            for task in (watcher, ended):
                if task is not None:
                    task.cancel()
            self.store.close_stream(claim, clean=how == "clean")
            self.metrics.connected_agents.dec()
            self.metrics.streams_closed.labels(how).inc()
            logger.info(
                "stream of node %s closed %s after %s accepted reports (highest sequence %s)",
                node,
                how,
                accepted,
                self.store.highest_sequence(hello.agent_id),
            )

    async def _revalidate(self, peer: Peer, node: str, control: StreamControl) -> None:
        """Check the stream's credentials again every reload interval; end it when refused."""
        while True:
            await asyncio.sleep(self.reload_seconds)
            try:
                grants = await self.auth.authenticate(peer)
            except AuthRefusedError as exc:
                if exc.code == grpc.StatusCode.UNAVAILABLE:
                    continue  # the authority is unreachable: keep what was granted
                self.metrics.auth_failures.labels(exc.reason).inc()
                control.end(exc.code, f"credentials no longer accepted: {exc}", "revoked")
                return
            if not allowed(grants, node):
                self.metrics.auth_failures.labels("wrong_node").inc()
                details = f"{describe_grants(grants)}: no longer for node {node}"
                control.end(grpc.StatusCode.PERMISSION_DENIED, details, "revoked")
                return

    def _ingest(self, report: tm.Metrics, hello: tm.Hello, claim: StreamClaim) -> bool:
        started = time.perf_counter()
        try:
            reason = report_problem(report, hello)
            if reason is not None:
                self.metrics.rejected.labels(reason).inc()
                return False
            outcome = self.store.accept(report, claim)
            if not outcome.accepted:
                self.metrics.rejected.labels(outcome.value).inc()
                return False
            if self.exporter is not None:
                self.exporter.submit(report)
            if outcome.late:
                self.metrics.late.labels(outcome.value).inc()
                return True
            self.metrics.received.inc()
            age = time.time() - report.collected_at_unix_nanos / 1e9
            self.metrics.report_age.observe(max(age, 0.0))
            return True
        finally:
            self.metrics.ingest_duration.observe(time.perf_counter() - started)


async def _next(context: ServicerContext, ended: asyncio.Task[None]) -> bytes | None:
    """The stream's next message, None at its end; StreamEndedError when ended from outside."""
    read = asyncio.ensure_future(context.read())
    await asyncio.wait({read, ended}, return_when=asyncio.FIRST_COMPLETED)
    if not read.done():
        read.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await read
        raise StreamEndedError
    data: object = read.result()
    return data if isinstance(data, bytes) else None  # anything else is EOF


def _host(peer: Peer) -> str:
    return peer.address.rsplit(":", 1)[0]
