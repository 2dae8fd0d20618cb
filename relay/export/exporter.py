"""Remote write for a relay: every accepted report's samples, at their collection time,
into one queue per receiver, drained by that receiver's sender shards.

Ingest calls `wait_for_room()` before it stores a report and `submit()` after, then
acknowledges: a report is acknowledged only once its samples are queued, and while a
queue is full no report is taken, so agents keep their own spool instead of the relay
growing a buffer. Nothing awaits between the two calls, so the bound is exceeded by at
most one report.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cramjam

from kubensage_api.telemetry import telemetry_pb2 as tm
from kubensage_common.logsetup import OnceLogger
from relay.enrich.kube import Enrichment
from relay.export.diskqueue import DiskQueue
from relay.export.encode import Encoding, batches, changed_rows, encode_node, stale_markers
from relay.export.metrics import RemoteWriteMetrics
from relay.export.order import Verdict, WriteOrder
from relay.export.queue import Block, MemoryQueue, Queue
from relay.export.receiver import Receiver
from relay.export.sender import RetryPolicy, Shard
from relay.series.rows import NodeContext
from relay.series.spec import Profile
from relay.state.store import NodeView

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_MEMORY_QUEUE_BYTES = 256 * MIB
DEFAULT_DISK_QUEUE_BYTES = 4096 * MIB
ROOM_POLL_SECONDS = 0.1
HOUSEKEEPING_SECONDS = 1.0
FORGET_ROWS_AFTER_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class _Written:
    report: tm.Metrics  # usually the very report the store holds, so no extra memory
    digests: dict[int, int]  # each row's key and the digest of its series


@dataclass(frozen=True)
class ExportConfig:
    receivers: tuple[Receiver, ...]
    external_labels: Mapping[str, str] = field(default_factory=dict)
    queue_dir: Path | None = None
    queue_max_bytes: int = 0  # 0: DEFAULT_MEMORY_QUEUE_BYTES or DEFAULT_DISK_QUEUE_BYTES
    queue_max_age_seconds: float = 86400.0
    shards: int = 4
    max_samples_per_send: int = 10_000
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_room_wait_seconds: float = 30.0

    def validate(self) -> None:
        if not self.receivers:
            raise ValueError("remote write needs at least one URL")
        for receiver in self.receivers:
            receiver.validate()
        displays = [receiver.display for receiver in self.receivers]
        if len(set(displays)) != len(displays):
            raise ValueError("a remote-write URL is given twice")
        if self.shards < 1 or self.max_samples_per_send < 1:
            raise ValueError("remote-write shards and samples per send must be at least 1")

    @property
    def max_bytes(self) -> int:
        if self.queue_max_bytes:
            return self.queue_max_bytes
        return DEFAULT_DISK_QUEUE_BYTES if self.queue_dir else DEFAULT_MEMORY_QUEUE_BYTES


class Exporter:
    def __init__(
        self,
        config: ExportConfig,
        profiles: Sequence[Profile],
        enrichment: Enrichment,
        metrics: RemoteWriteMetrics,
    ) -> None:
        self.config = config
        self.profiles = tuple(profiles)
        self.enrichment = enrichment
        self.metrics = metrics
        self.once = OnceLogger(logger)
        self.order = WriteOrder(config.queue_dir / "order.json" if config.queue_dir else None)
        self._encoding = Encoding(config.external_labels)
        # per node, the last report written and its rows, for staleness markers
        self._last: dict[str, _Written] = {}
        self._last_lock = threading.Lock()
        self._stopping = threading.Event()
        self._queues: list[Queue] = []
        self._shards: list[Shard] = []
        for receiver in config.receivers:
            queue = self._queue(receiver)
            receiver_metrics = metrics.receiver(
                receiver.display,
                _getter(queue, "samples"),
                _getter(queue, "bytes"),
                queue.max_bytes,
            )
            self._queues.append(queue)
            for index in range(config.shards):
                self._shards.append(
                    Shard(
                        f"remote-write-{len(self._queues)}-{index}",
                        receiver=receiver,
                        queue=queue,
                        metrics=receiver_metrics,
                        policy=config.retry,
                        stopping=self._stopping,
                        once=self.once,
                    )
                )
        self._housekeeping = threading.Thread(
            target=self._keep, name="remote-write-housekeeping", daemon=True
        )

    def _queue(self, receiver: Receiver) -> Queue:
        url = receiver.display
        dropped = self.metrics.samples.labels(url, "dropped")
        config = self.config
        if config.queue_dir is None:
            return MemoryQueue(config.max_bytes, config.queue_max_age_seconds, dropped.inc)
        return DiskQueue(
            config.queue_dir / receiver.key,
            config.max_bytes,
            config.queue_max_age_seconds,
            dropped.inc,
            on_corrupt=self.metrics.corrupt.labels(url).inc,
            on_recovered=self.order.written,
            before_delete=self.order.save,
        )

    def start(self) -> None:
        for shard in self._shards:
            shard.start()
        self._housekeeping.start()
        for receiver in self.config.receivers:
            logger.info(
                "remote write to %s (%s shards, queue %s up to %s MiB)",
                receiver.display,
                self.config.shards,
                f"on disk in {self.config.queue_dir}" if self.config.queue_dir else "in memory",
                self.config.max_bytes // MIB,
            )

    def _full(self) -> bool:
        return any(queue.bytes >= queue.max_bytes for queue in self._queues)

    async def wait_for_room(self) -> bool:
        """Wait (bounded) until every queue has room; False when they stayed full."""
        if not self._full():
            return True
        self.metrics.backpressure_waits.inc()
        self.once.problem(
            "remote-write:full",
            "a remote-write queue is full: holding acknowledgements, agents spool meanwhile",
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.config.max_room_wait_seconds
        try:
            while self._full() and loop.time() < deadline:
                await asyncio.sleep(ROOM_POLL_SECONDS)
        finally:
            self.metrics.backpressure_seconds.inc(loop.time() - started)
        if self._full():
            return False
        self.once.clear("remote-write:full")
        return True

    def submit(self, report: tm.Metrics) -> None:
        """Queue the report's samples for every receiver, unless its node already moved past it."""
        node = report.node.name
        collected_ms = report.collected_at_unix_nanos // 1_000_000
        verdict = self.order.verdict(node, collected_ms)
        if verdict is not Verdict.WRITE:
            self.metrics.reports.labels(verdict.value).inc()
            return
        try:
            series = self._series(node, report, collected_ms)
        except Exception as exc:  # one odd report must not stop the stream
            self.metrics.reports.labels("error").inc()
            self.once.problem(f"encode:{node}", f"cannot encode node {node}: {exc!r}")
            return
        self.once.clear(f"encode:{node}")
        now = time.time()
        blocks = [
            Block(bytes(cramjam.snappy.compress_raw(body)), samples, node, collected_ms, now)
            for body, samples in batches(series, self.config.max_samples_per_send)
        ]
        for queue, receiver in zip(self._queues, self.config.receivers, strict=True):
            for block in blocks:
                try:
                    queue.put(block)
                except OSError as exc:
                    self.metrics.samples.labels(receiver.display, "dropped").inc(block.samples)
                    self.once.problem(
                        f"queue:{receiver.display}",
                        f"cannot queue samples for {receiver.display}: {exc}; dropped",
                    )
        self.order.written(node, collected_ms)
        self.metrics.reports.labels(Verdict.WRITE.value).inc()

    def _series(self, node: str, report: tm.Metrics, collected_ms: int) -> list[bytes]:
        """The report's series, and staleness markers for the series its predecessor had."""
        encoded = encode_node(self.profiles, self._context(report), self._encoding)
        digests = encoded.digests()
        with self._last_lock:
            previous = self._last.get(node)
            self._last[node] = _Written(report, digests)
        if previous is None:
            return encoded.series
        changed = changed_rows(previous.digests, encoded, digests)
        if not changed:
            return encoded.series
        context = self._context(previous.report)
        markers = stale_markers(
            self.profiles,
            context,
            changed=changed,
            timestamp_ms=collected_ms,
            encoding=self._encoding,
        )
        return markers + encoded.series

    def _context(self, report: tm.Metrics) -> NodeContext:
        return report_context(report, self.enrichment)

    def _forget_silent_nodes(self) -> None:
        """Row memory of nodes that stopped reporting here (they moved, or are gone)."""
        horizon = (time.time() - FORGET_ROWS_AFTER_SECONDS) * 1e9
        with self._last_lock:
            for node, written in list(self._last.items()):
                if written.report.collected_at_unix_nanos < horizon:
                    del self._last[node]

    def _keep(self) -> None:
        """Flush disk queues and the write order about once a second."""
        rounds = 0
        while not self._stopping.wait(HOUSEKEEPING_SECONDS):
            self._flush()
            rounds += 1
            if rounds % 60 == 0:
                self._forget_silent_nodes()

    def _flush(self) -> None:
        for queue in self._queues:
            if isinstance(queue, DiskQueue):
                queue.sync()
        self.order.save()

    def stop(self, drain_seconds: float) -> None:
        """Give memory queues `drain_seconds` to empty, then stop the shards and close."""
        deadline = time.monotonic() + drain_seconds
        memory = [queue for queue in self._queues if isinstance(queue, MemoryQueue)]
        while any(queue.samples for queue in memory) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = sum(queue.samples for queue in memory)
        if left:
            logger.warning("remote write stopped with %s samples unsent (memory queue)", left)
        self._stopping.set()
        # a shard in the middle of a request finishes it (bounded by the request timeout)
        deadline = time.monotonic() + max(r.timeout_seconds for r in self.config.receivers) + 1
        for thread in [*self._shards, self._housekeeping]:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for queue in self._queues:
            queue.close()
        self.order.save()


def report_context(report: tm.Metrics, enrichment: Enrichment) -> NodeContext:
    """A report being written, as the walk takes it: its node, received now, connected."""
    view = NodeView(report.node.name, report.agent_id, report, time.time(), connected=True)
    return NodeContext(view, enrichment)


def _getter(queue: Queue, attribute: str) -> Callable[[], float]:
    return lambda: float(getattr(queue, attribute))
