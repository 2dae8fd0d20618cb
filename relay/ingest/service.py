"""The agent stream: hello, then reports answered by acknowledgements (and settings when set)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import grpc
from loguru import logger

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_api.telemetry import telemetry_pb2_grpc
from relay.export.exporter import Exporter
from relay.ingest.auth import TokenFile
from relay.ingest.limits import ReportLimits, enforce_limits
from relay.selfmetrics import RelayMetrics
from relay.state.store import NodeStore, Outcome

HELLO_TIMEOUT_SECONDS = 30.0
# Reports remote write takes: new ones, and late ones the store keeps out of its current state.
EXPORTED = frozenset({Outcome.ACCEPTED, Outcome.OUTDATED})
# Each stream's max age varies by this fraction, so agents moved together do not return together.
AGE_JITTER = 0.1
# How long an ended request stream waits to learn whether it was a half-close or a cancel.
CANCEL_SETTLE_SECONDS = 0.2


def validate(report: tm.Metrics, hello: tm.Hello) -> str | None:
    """The reason a report cannot be stored, or None when it can."""
    if report.agent_id != hello.agent_id or report.node.name != hello.node_name:
        return "identity_mismatch"
    if report.sequence == 0 or not report.node.name:
        return "invalid"
    return None


class IngestService(telemetry_pb2_grpc.IngestServicer):
    def __init__(
        self,
        store: NodeStore,
        metrics: RelayMetrics,
        settings: tm.Settings | None = None,
        limits: ReportLimits | None = None,
        tokens: TokenFile | None = None,
        *,
        exporter: Exporter | None = None,
        max_stream_age_seconds: float = 0.0,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.settings = settings
        self.limits = limits if limits is not None else ReportLimits()
        self.tokens = tokens
        self.exporter = exporter
        self.max_stream_age_seconds = max_stream_age_seconds

    def _stream_deadline(self) -> float:
        """When this stream ends itself (after an ack), so agents spread over new replicas."""
        if self.max_stream_age_seconds <= 0:
            return float("inf")
        jitter = random.uniform(1 - AGE_JITTER, 1 + AGE_JITTER)
        return time.monotonic() + self.max_stream_age_seconds * jitter

    async def Stream(  # noqa: N802 - gRPC method name
        self,
        request_iterator: AsyncIterator[tm.AgentMessage],
        context: grpc.aio.ServicerContext[tm.AgentMessage, tm.RelayMessage],
    ) -> AsyncIterator[tm.RelayMessage]:
        if self.tokens is not None:
            metadata = {key: value for key, value in context.invocation_metadata() or ()}
            refused = self.tokens.check(str(metadata.get("authorization", "")) or None)
            if refused is not None:
                self.metrics.auth_failures.labels(refused).inc()
                logger.warning("refused stream from {}: {} bearer token", context.peer(), refused)
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{refused} bearer token")
                return
        hello = await self._hello(request_iterator, context)
        if hello is None:
            return
        node, peer = hello.node_name, context.peer()
        self.store.connected(node)
        self.metrics.connected_agents.inc()
        logger.info("agent {} on node {} connected from {}", hello.agent_id, node, peer)
        accepted = 0
        clean = False
        deadline = self._stream_deadline()
        try:
            if self.settings is not None:
                yield tm.RelayMessage(settings=self.settings)
            async for message in request_iterator:
                if not message.HasField("report"):
                    self.metrics.rejected.labels("invalid").inc()
                    continue
                if self.exporter is not None and not await self.exporter.wait_for_room():
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "remote-write queue full")
                outcome = self._ingest(message.report, hello)
                if outcome is Outcome.ACCEPTED:
                    accepted += 1
                if self.exporter is not None and outcome in EXPORTED:
                    self.exporter.submit(message.report)
                yield tm.RelayMessage(ack=tm.Ack(sequence=message.report.sequence))
                if time.monotonic() >= deadline:
                    self.metrics.streams_rotated.inc()
                    break
            else:
                # a cancelled call or a cut connection ends the iterator too, and the
                # handler's cancellation follows at once: give it the chance to surface
                await asyncio.sleep(CANCEL_SETTLE_SECONDS)
            clean = not context.cancelled()
        finally:
            self.store.disconnected(node)
            if clean:
                self.store.leave(node)
            self.metrics.connected_agents.dec()
            how = "clean" if clean else "lost"
            self.metrics.streams_closed.labels(how).inc()
            logger.info(
                "stream of node {} closed {} after {} accepted reports (highest sequence {})",
                node,
                how,
                accepted,
                self.store.highest_sequence(hello.agent_id),
            )

    async def _hello(
        self,
        request_iterator: AsyncIterator[tm.AgentMessage],
        context: grpc.aio.ServicerContext[tm.AgentMessage, tm.RelayMessage],
    ) -> tm.Hello | None:
        try:
            first = await asyncio.wait_for(anext(request_iterator), HELLO_TIMEOUT_SECONDS)
        except (StopAsyncIteration, TimeoutError):
            return None
        if not first.HasField("hello") or not first.hello.agent_id or not first.hello.node_name:
            self.metrics.rejected.labels("no_hello").inc()
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the first message must be a hello naming agent_id and node_name",
            )
            return None
        return first.hello

    def _ingest(self, report: tm.Metrics, hello: tm.Hello) -> Outcome | None:
        """The store's outcome, or None when the report failed validation."""
        started = time.perf_counter()
        try:
            reason = validate(report, hello)
            if reason is not None:
                self.metrics.rejected.labels(reason).inc()
                return None
            for what, count in enforce_limits(report, self.limits).items():
                self.metrics.truncations.labels(what).inc(count)
            outcome = self.store.accept(report)
            if outcome is not Outcome.ACCEPTED:
                self.metrics.rejected.labels(outcome.value).inc()
                return outcome
            self.metrics.received.inc()
            age = time.time() - report.collected_at_unix_nanos / 1e9
            self.metrics.report_age.observe(max(age, 0.0))
            return outcome
        finally:
            self.metrics.ingest_duration.observe(time.perf_counter() - started)
